/* Gossip wire tests: round trips of every message type, and rejection of what a peer
 * must not be trusted with (garbage, truncation, over-long strings, enums out of range,
 * too many records, no body). */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "cluster/gossip_wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/cluster.pb-c.h"

static void add(syn_swim_msg *msg, const char *id, uint8_t state, uint64_t inc, uint64_t age) {
  syn_swim_record *r = syn_swim_msg_add(msg);
  snprintf(r->id, sizeof r->id, "%s", id);
  snprintf(r->peer_url, sizeof r->peer_url, "tcp://10.0.0.1:7946");
  snprintf(r->data_url, sizeof r->data_url, "tcp://10.0.0.1:7000");
  r->role = SYN_ROLE_ROUTER;
  r->state = state;
  r->incarnation = inc;
  r->age_ms = age;
}

static void roundtrip(const syn_swim_msg *in, int reply, syn_gossip_decoded *d) {
  syn_buf buf = SYN_BUF_INIT;
  assert_int_equal(syn_gossip_encode(in, reply, &buf), 0);
  assert_int_equal(syn_gossip_decode(buf.data, buf.len, reply, 100, d), 0);
  assert_int_equal(d->kind, SYN_GOSSIP_SWIM);
  assert_int_equal(d->msg.type, in->type);
  assert_string_equal(d->msg.from, in->from);
  assert_int_equal(d->msg.n_records, in->n_records);
  for (size_t i = 0; i < in->n_records; i++) {
    const syn_swim_record *a = &in->records[i], *b = &d->msg.records[i];
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->peer_url, b->peer_url);
    assert_string_equal(a->data_url, b->data_url);
    assert_int_equal(a->role, b->role);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->incarnation, b->incarnation);
    if (in->type == SYN_SWIM_PUSH_PULL) assert_int_equal(a->age_ms, b->age_ms);
  }
  syn_buf_free(&buf);
}

static void test_roundtrip_requests(void **state) {
  static const enum syn_swim_type types[] = {SYN_SWIM_PING, SYN_SWIM_PING_REQ, SYN_SWIM_PUSH_PULL,
                                             SYN_SWIM_LEAVE, SYN_SWIM_GOSSIP};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    syn_swim_msg in = {.type = types[t], .seq = 42, .join = true, .from = "node-a",
                       .target_id = "node-b", .target_url = "tcp://10.0.0.2:7946"};
    add(&in, "node-a", SYN_MEMBER_ALIVE, 3, 0);
    add(&in, "node-c", SYN_MEMBER_DEAD, 9, 12345);
    syn_gossip_decoded d;
    roundtrip(&in, 0, &d);
    if (types[t] == SYN_SWIM_PING || types[t] == SYN_SWIM_PING_REQ) {
      assert_int_equal(d.msg.seq, 42);
      assert_string_equal(d.msg.target_id, "node-b");
    }
    if (types[t] == SYN_SWIM_PING_REQ) assert_string_equal(d.msg.target_url, "tcp://10.0.0.2:7946");
    if (types[t] == SYN_SWIM_PUSH_PULL) assert_true(d.msg.join);
    syn_gossip_decoded_free(&d);
    syn_swim_msg_clear(&in);
  }
}

static void test_roundtrip_replies(void **state) {
  for (int ok = 0; ok <= 1; ok++) {
    syn_swim_msg in = {.type = SYN_SWIM_ACK, .seq = 7, .ok = ok, .from = "node-b"};
    add(&in, "node-b", SYN_MEMBER_SUSPECT, 1, 0);
    syn_gossip_decoded d;
    roundtrip(&in, 1, &d);
    assert_int_equal(d.msg.seq, 7);
    assert_int_equal(d.msg.ok, ok);
    syn_gossip_decoded_free(&d);
    syn_swim_msg_clear(&in);
  }
  syn_swim_msg pp = {.type = SYN_SWIM_PUSH_PULL, .from = "node-b"};
  for (int i = 0; i < 50; i++) add(&pp, i % 2 ? "x" : "y", SYN_MEMBER_LEFT, (uint64_t)i, 99);
  syn_gossip_decoded d;
  roundtrip(&pp, 1, &d);
  syn_gossip_decoded_free(&d);
  syn_swim_msg_clear(&pp);
}

static void test_app_roundtrip(void **state) {
  syn_buf buf = SYN_BUF_INIT;
  const uint8_t payload[] = {0, 1, 2, 0xff};
  assert_int_equal(syn_gossip_encode_app("node-a", payload, sizeof payload, 0, NULL, &buf), 0);
  syn_gossip_decoded d;
  assert_int_equal(syn_gossip_decode(buf.data, buf.len, 0, 10, &d), 0);
  assert_int_equal(d.kind, SYN_GOSSIP_APP);
  assert_int_equal(d.app_len, sizeof payload);
  assert_memory_equal(d.app, payload, sizeof payload);
  assert_string_equal(d.from, "node-a");
  syn_gossip_decoded_free(&d);
  syn_buf_reset(&buf);
  assert_int_equal(syn_gossip_encode_app("node-b", NULL, 0, 1, "no app handler", &buf), 0);
  assert_int_equal(syn_gossip_decode(buf.data, buf.len, 1, 10, &d), 0);
  assert_int_equal(d.kind, SYN_GOSSIP_ERROR);
  assert_string_equal(d.error, "no app handler");
  syn_gossip_decoded_free(&d);
  syn_buf_free(&buf);
}

/* Packs a PeerRequest with one Member, after `mutate` changes it. */
typedef void (*mutate_fn)(Synapse__Cluster__PeerRequest *req, Synapse__Cluster__Member *m);

static int decode_mutated(mutate_fn mutate, size_t max_records) {
  Synapse__Cluster__PeerRequest req = SYNAPSE__CLUSTER__PEER_REQUEST__INIT;
  Synapse__Cluster__Gossip g = SYNAPSE__CLUSTER__GOSSIP__INIT;
  Synapse__Cluster__Member m = SYNAPSE__CLUSTER__MEMBER__INIT;
  Synapse__Cluster__Member *ms[1] = {&m};
  req.from = "node-a";
  req.body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY_GOSSIP;
  req.gossip = &g;
  req.n_updates = 1;
  req.updates = ms;
  m.id = "node-a";
  m.data_url = "";
  m.peer_url = "tcp://x:1";
  if (mutate) mutate(&req, &m);
  uint8_t buf[4096];
  size_t len = synapse__cluster__peer_request__pack(&req, buf);
  syn_gossip_decoded d;
  int rc = syn_gossip_decode(buf, len, 0, max_records, &d);
  if (rc == 0) syn_gossip_decoded_free(&d);
  return rc;
}

static char long_id[SYN_MEMBER_ID_MAX + 2];
static char long_url[SYN_MEMBER_URL_MAX + 2];

static void m_long_id(Synapse__Cluster__PeerRequest *r, Synapse__Cluster__Member *m) { m->id = long_id; }
static void m_long_from(Synapse__Cluster__PeerRequest *r, Synapse__Cluster__Member *m) { r->from = long_id; }
static void m_long_url(Synapse__Cluster__PeerRequest *r, Synapse__Cluster__Member *m) { m->peer_url = long_url; }
static void m_bad_state(Synapse__Cluster__PeerRequest *r, Synapse__Cluster__Member *m) { m->state = 4; }
static void m_bad_role(Synapse__Cluster__PeerRequest *r, Synapse__Cluster__Member *m) { m->role = 2; }
static void m_no_body(Synapse__Cluster__PeerRequest *r, Synapse__Cluster__Member *m) {
  r->body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY__NOT_SET;
}

static void test_rejects_out_of_bounds(void **state) {
  memset(long_id, 'i', sizeof long_id - 1);
  memset(long_url, 'u', sizeof long_url - 1);
  assert_int_equal(decode_mutated(NULL, 10), 0);
  assert_int_equal(decode_mutated(NULL, 0), -EBADMSG); /* more records than allowed */
  assert_int_equal(decode_mutated(m_long_id, 10), -EBADMSG);
  assert_int_equal(decode_mutated(m_long_from, 10), -EBADMSG);
  assert_int_equal(decode_mutated(m_long_url, 10), -EBADMSG);
  assert_int_equal(decode_mutated(m_bad_state, 10), -EBADMSG);
  assert_int_equal(decode_mutated(m_bad_role, 10), -EBADMSG);
  assert_int_equal(decode_mutated(m_no_body, 10), -EBADMSG);
}

static void test_rejects_garbage(void **state) {
  syn_gossip_decoded d;
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
  assert_int_equal(syn_gossip_decode(junk, sizeof junk, 0, 10, &d), -EBADMSG);
  assert_int_equal(syn_gossip_decode(junk, sizeof junk, 1, 10, &d), -EBADMSG);
  assert_int_equal(syn_gossip_decode(junk, 0, 0, 10, &d), -EBADMSG); /* no `from` */
  /* Every truncation of a valid message is rejected or decodes cleanly, never crashes. */
  syn_swim_msg in = {.type = SYN_SWIM_PUSH_PULL, .from = "node-a"};
  add(&in, "node-a", SYN_MEMBER_ALIVE, 1, 0);
  add(&in, "node-b", SYN_MEMBER_ALIVE, 2, 0);
  syn_buf buf = SYN_BUF_INIT;
  assert_int_equal(syn_gossip_encode(&in, 0, &buf), 0);
  for (size_t len = 0; len < buf.len; len++) {
    if (syn_gossip_decode(buf.data, len, 0, 10, &d) == 0) syn_gossip_decoded_free(&d);
  }
  for (size_t i = 0; i < buf.len; i++) { /* single-byte corruption */
    uint8_t saved = buf.data[i];
    buf.data[i] ^= 0x5a;
    if (syn_gossip_decode(buf.data, buf.len, 0, 10, &d) == 0) syn_gossip_decoded_free(&d);
    buf.data[i] = saved;
  }
  syn_buf_free(&buf);
  syn_swim_msg_clear(&in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_requests),
      cmocka_unit_test(test_roundtrip_replies),
      cmocka_unit_test(test_app_roundtrip),
      cmocka_unit_test(test_rejects_out_of_bounds),
      cmocka_unit_test(test_rejects_garbage),
  };
  return cmocka_run_group_tests_name("gossip_wire", tests, NULL, NULL);
}
