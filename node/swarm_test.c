/* Unit tests for the swarm store. Time is passed in, so expiry is tested without sleeping.
 * Every case gets a fresh store with a 100 s peer timeout (clean interval 6 s). */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "node/swarm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT 100u
#define T0 1000u
#define MAXW 256u

typedef struct fixture {
  syn_swarm_store *s;
  const void *param; /* the case's table row, if any */
} fixture;

/* One announce's request and reply buffers. */
typedef struct ann {
  uint8_t ih[20];
  uint8_t id[20];
  uint8_t ip[16];
  size_t ip_len;
  uint16_t port;
  int event;
  uint64_t left;
  uint32_t numwant;
  uint32_t families;
  bool want_ids;
  syn_announce_result r;
  uint8_t p4[6 * MAXW], p6[18 * MAXW], id4[20 * MAXW], id6[20 * MAXW];
} ann;

static void hash_of(uint8_t ih[20], uint32_t n) {
  /* Spread the bytes so that swarms land in different stripes. */
  for (int i = 0; i < 20; i++) ih[i] = (uint8_t)((n * 2654435761u) >> ((i % 4) * 8)) ^ (uint8_t)i;
  memcpy(ih + 16, &n, 4);
}

static void id_of(uint8_t id[20], uint32_t n) {
  memset(id, 0xAB, 20);
  memcpy(id + 4, &n, 4);
}

/* An IPv4 announce from 10.x.y.z (x.y.z = host) with peer_id derived from id_n. */
static ann *v4(ann *a, uint32_t swarm_n, uint32_t host, uint16_t port, uint32_t id_n) {
  memset(a, 0, offsetof(ann, r));
  hash_of(a->ih, swarm_n);
  id_of(a->id, id_n);
  a->ip[0] = 10;
  a->ip[1] = (uint8_t)(host >> 16);
  a->ip[2] = (uint8_t)(host >> 8);
  a->ip[3] = (uint8_t)host;
  a->ip_len = 4;
  a->port = port;
  a->left = 100;
  a->numwant = 50;
  a->families = SYN_FAMILY_V4 | SYN_FAMILY_V6;
  return a;
}

/* An IPv6 announce from 2001:db8::host. */
static ann *v6(ann *a, uint32_t swarm_n, uint32_t host, uint16_t port, uint32_t id_n) {
  v4(a, swarm_n, host, port, id_n);
  memset(a->ip, 0, 16);
  a->ip[0] = 0x20;
  a->ip[1] = 0x01;
  a->ip[2] = 0x0d;
  a->ip[3] = 0xb8;
  a->ip[13] = (uint8_t)(host >> 16);
  a->ip[14] = (uint8_t)(host >> 8);
  a->ip[15] = (uint8_t)host;
  a->ip_len = 16;
  return a;
}

static int run(syn_swarm_store *s, ann *a, uint32_t now) {
  syn_announce req = {a->ih,   a->id,      a->ip,       a->ip_len,   a->port, a->event,
                      a->left, a->numwant, a->families, a->want_ids, 0};
  a->r = (syn_announce_result){
      .peers4 = a->p4, .peers6 = a->p6, .peer_ids4 = a->id4, .peer_ids6 = a->id6};
  return syn_swarm_announce(s, &req, now, &a->r);
}

/* Announces and asserts success. */
static ann *go(syn_swarm_store *s, ann *a, uint32_t now) {
  assert_int_equal(run(s, a, now), 0);
  return a;
}

static uint32_t host_of4(const uint8_t *p) { return (uint32_t)p[1] << 16 | p[2] << 8 | p[3]; }
static uint16_t port_of4(const uint8_t *p) { return (uint16_t)(p[4] << 8 | p[5]); }

static syn_swarm_totals totals(syn_swarm_store *s) {
  syn_swarm_totals t;
  syn_swarm_totals_get(s, &t);
  return t;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->param = *state;
  f->s = syn_swarm_store_new(TIMEOUT);
  assert_non_null(f->s);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  syn_swarm_store_free(f->s);
  free(f);
  return 0;
}

#define STORE (((fixture *)*state)->s)

static void test_add(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  go(s, v4(&a, 1, 1, 6881, 1), T0);
  assert_int_equal(a.r.complete, 0);
  assert_int_equal(a.r.incomplete, 1);
  assert_int_equal(a.r.peers4_count, 0);
  a.left = 0;
  go(s, v4(&a, 1, 2, 6882, 2), T0);
  assert_int_equal(a.r.complete, 0);
  assert_int_equal(a.r.incomplete, 2);
  assert_int_equal(a.r.peers4_count, 1);
  const uint8_t want[6] = {10, 0, 0, 1, 0x1a, 0xe1}; /* 10.0.0.1:6881, BEP 23 compact */
  assert_memory_equal(a.p4, want, 6);
  syn_swarm_totals t = totals(s);
  assert_int_equal(t.torrents, 1);
  assert_int_equal(t.peers, 2);
  assert_int_equal(t.seeders, 0);
}

static void test_update_same_key(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  go(s, v4(&a, 1, 1, 6881, 1), T0);
  go(s, v4(&a, 1, 1, 6881, 2), T0 + 1); /* same ip:port, new peer_id: replaces */
  assert_int_equal(a.r.incomplete, 1);
  v4(&a, 1, 9, 7000, 9);
  a.want_ids = true;
  go(s, &a, T0 + 2);
  assert_int_equal(a.r.incomplete, 2);
  assert_int_equal(a.r.peers4_count, 1);
  uint8_t id[20];
  id_of(id, 2);
  assert_memory_equal(a.id4, id, 20);
  go(s, v4(&a, 1, 1, 6882, 3), T0 + 3); /* same ip, other port: another peer */
  assert_int_equal(a.r.incomplete, 3);
  assert_int_equal(totals(s).peers, 3);
}

static void test_stop_removes(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  go(s, v4(&a, 1, 1, 1, 1), T0);
  v4(&a, 1, 2, 1, 2)->left = 0;
  go(s, &a, T0);
  go(s, v4(&a, 1, 3, 1, 3), T0);
  assert_int_equal(a.r.complete, 1);
  assert_int_equal(a.r.incomplete, 2);
  v4(&a, 1, 1, 1, 1)->event = SYN_EVENT_STOPPED;
  go(s, &a, T0 + 1);
  assert_int_equal(a.r.complete, 1);
  assert_int_equal(a.r.incomplete, 1);
  assert_int_equal(a.r.peers4_count, 0);
  syn_scrape_result sr;
  syn_swarm_scrape(s, a.ih, T0 + 1, &sr);
  assert_int_equal(sr.complete, 1);
  assert_int_equal(sr.incomplete, 1);
  assert_int_equal(totals(s).peers, 2);
  assert_int_equal(totals(s).seeders, 1);
  /* Stopping an absent peer changes nothing; the last stop frees the swarm. */
  go(s, &a, T0 + 1);
  assert_int_equal(a.r.incomplete, 1);
  v4(&a, 1, 2, 1, 2)->event = SYN_EVENT_STOPPED;
  go(s, &a, T0 + 2);
  assert_int_equal(a.r.complete, 0);
  assert_int_equal(a.r.incomplete, 1);
  v4(&a, 1, 3, 1, 3)->event = SYN_EVENT_STOPPED;
  go(s, &a, T0 + 2);
  assert_int_equal(a.r.incomplete, 0);
  syn_swarm_totals t = totals(s);
  assert_int_equal(t.torrents, 0);
  assert_int_equal(t.peers, 0);
  assert_int_equal(t.peer_bytes, 0);
}

static void test_stop_unknown(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  v4(&a, 7, 1, 1, 1)->event = SYN_EVENT_STOPPED;
  a.r.complete = 99;
  go(s, &a, T0);
  assert_int_equal(a.r.complete, 0);
  assert_int_equal(a.r.incomplete, 0);
  assert_int_equal(a.r.downloaded, 0);
  assert_int_equal(totals(s).torrents, 0);
}

static void test_completed_once(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  go(s, v4(&a, 1, 1, 1, 1), T0);
  v4(&a, 1, 1, 1, 1)->event = SYN_EVENT_COMPLETED;
  a.left = 0;
  go(s, &a, T0 + 1);
  assert_int_equal(a.r.downloaded, 1);
  assert_int_equal(a.r.complete, 1);
  assert_int_equal(a.r.incomplete, 0);
  go(s, &a, T0 + 2); /* repeated completed from a seeder: not counted */
  assert_int_equal(a.r.downloaded, 1);
  v4(&a, 1, 2, 1, 2)->event = SYN_EVENT_COMPLETED; /* left > 0: bogus, not counted */
  go(s, &a, T0 + 2);
  assert_int_equal(a.r.downloaded, 1);
  v4(&a, 1, 3, 1, 3)->event = SYN_EVENT_COMPLETED; /* first seen as completed: counted */
  a.left = 0;
  go(s, &a, T0 + 2);
  assert_int_equal(a.r.downloaded, 2);
  syn_scrape_result sr;
  syn_swarm_scrape(s, a.ih, T0 + 2, &sr);
  assert_int_equal(sr.downloaded, 2);
  assert_int_equal(sr.complete, 2);
  assert_int_equal(sr.incomplete, 1);
}

static void test_downloaded_outlives_peers(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  v4(&a, 1, 1, 1, 1)->event = SYN_EVENT_COMPLETED;
  a.left = 0;
  go(s, &a, T0);
  a.event = SYN_EVENT_STOPPED;
  go(s, &a, T0 + 1);
  syn_scrape_result sr;
  syn_swarm_scrape(s, a.ih, T0 + 1, &sr);
  assert_int_equal(sr.downloaded, 1);
  assert_int_equal(sr.complete + sr.incomplete, 0);
  assert_int_equal(totals(s).torrents, 1);
  assert_int_equal(syn_swarm_expire_step(s, T0 + 50, 100), 0);
  assert_int_equal(totals(s).torrents, 1); /* kept for one timeout after the last announce */
  syn_swarm_expire_step(s, T0 + 1 + TIMEOUT + 1, 100);
  assert_int_equal(totals(s).torrents, 0);
}

static void test_seeder_counting(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t i = 0; i < 5; i++) {
    v4(&a, 1, i, 1, i)->left = i < 3 ? 0 : 10;
    go(s, &a, T0);
  }
  assert_int_equal(a.r.complete, 3);
  assert_int_equal(a.r.incomplete, 2);
  v4(&a, 1, 0, 1, 0)->left = 5; /* a seeder turns leecher again (e.g. data lost) */
  go(s, &a, T0 + 1);
  assert_int_equal(a.r.complete, 2);
  assert_int_equal(a.r.incomplete, 3);
  v4(&a, 1, 4, 1, 4)->left = 0; /* a leecher finishes without a completed event */
  go(s, &a, T0 + 1);
  assert_int_equal(a.r.complete, 3);
  assert_int_equal(a.r.incomplete, 2);
  assert_int_equal(a.r.downloaded, 0);
  assert_int_equal(totals(s).seeders, 3);
}

/* numwant cases: `others` peers already in the swarm, the last one asks. */
typedef struct numwant_case {
  uint32_t others, numwant, expect;
} numwant_case;

static void test_numwant(void **state) {
  const numwant_case *c = ((fixture *)*state)->param;
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t i = 0; i < c->others; i++) go(s, v4(&a, 1, i, 1, i), T0);
  v4(&a, 1, 1000, 1, 1000)->numwant = c->numwant;
  go(s, &a, T0);
  assert_int_equal(a.r.peers4_count, c->expect);
  assert_int_equal(a.r.peers6_count, 0);
  assert_int_equal(a.r.incomplete, c->others + 1);
  /* Distinct peers, each one of the others. */
  for (size_t i = 0; i < a.r.peers4_count; i++) {
    assert_true(host_of4(a.p4 + 6 * i) < c->others);
    for (size_t j = 0; j < i; j++) assert_memory_not_equal(a.p4 + 6 * i, a.p4 + 6 * j, 6);
  }
}

static void test_never_self(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t i = 0; i < 10; i++) go(s, v4(&a, 1, 5, (uint16_t)(100 + i), i), T0);
  /* Everyone shares one IP; only the port tells them apart. Each asks many times. */
  for (uint32_t round = 0; round < 20; round++)
    for (uint32_t i = 0; i < 10; i++) {
      go(s, v4(&a, 1, 5, (uint16_t)(100 + i), i), T0 + 1 + round);
      assert_int_equal(a.r.peers4_count, 9);
      for (size_t k = 0; k < 9; k++) assert_int_not_equal(port_of4(a.p4 + 6 * k), 100 + i);
    }
}

static void test_seeder_gets_leechers(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t i = 0; i < 8; i++) {
    v4(&a, 1, i, 1, i)->left = i < 5 ? 0 : 1; /* hosts 0..4 seed, 5..7 leech */
    go(s, &a, T0);
  }
  v4(&a, 1, 0, 1, 0)->left = 0;
  go(s, &a, T0 + 1);
  assert_int_equal(a.r.peers4_count, 3);
  for (size_t k = 0; k < 3; k++) assert_true(host_of4(a.p4 + 6 * k) >= 5);
  go(s, v4(&a, 1, 5, 1, 5), T0 + 1); /* a leecher gets everyone else */
  assert_int_equal(a.r.peers4_count, 7);
}

static void test_families(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t i = 0; i < 3; i++) go(s, v4(&a, 1, i, 1, i), T0);
  for (uint32_t i = 0; i < 2; i++) go(s, v6(&a, 1, i, 1, 10 + i), T0);
  assert_int_equal(a.r.incomplete, 5);

  v4(&a, 1, 50, 1, 50)->families = SYN_FAMILY_V4;
  go(s, &a, T0);
  assert_int_equal(a.r.peers4_count, 3);
  assert_int_equal(a.r.peers6_count, 0);

  v4(&a, 1, 50, 1, 50)->families = SYN_FAMILY_V6; /* an IPv4 announcer may ask for IPv6 */
  go(s, &a, T0);
  assert_int_equal(a.r.peers4_count, 0);
  assert_int_equal(a.r.peers6_count, 2);
  for (size_t k = 0; k < 2; k++) {
    assert_int_equal(a.p6[18 * k], 0x20);
    assert_true(a.p6[18 * k + 15] <= 1);
    assert_int_equal(a.p6[18 * k + 17], 1); /* port 1 */
  }

  go(s, v4(&a, 1, 50, 1, 50), T0); /* both: everything that fits */
  assert_int_equal(a.r.peers4_count, 3);
  assert_int_equal(a.r.peers6_count, 2);

  /* Both, numwant 3: shared in proportion to 3 IPv4 and 2 IPv6 candidates: 2 + 1. */
  v4(&a, 1, 50, 1, 50)->numwant = 3;
  go(s, &a, T0);
  assert_int_equal(a.r.peers4_count, 2);
  assert_int_equal(a.r.peers6_count, 1);

  /* An IPv6 announcer is never returned to itself either. */
  v6(&a, 1, 0, 1, 10)->families = SYN_FAMILY_V6;
  go(s, &a, T0);
  assert_int_equal(a.r.peers6_count, 1);
  assert_int_equal(a.p6[15], 1);
  assert_int_equal(a.r.incomplete, 6);
}

static void test_family_shortfall(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  /* 4 IPv4 peers (all seeders) and 4 IPv6 leechers; a seeder wants 6: only leechers fit. */
  for (uint32_t i = 0; i < 4; i++) {
    v4(&a, 1, i, 1, i)->left = 0;
    go(s, &a, T0);
    go(s, v6(&a, 1, i, 1, i), T0);
  }
  v4(&a, 1, 77, 1, 77)->left = 0;
  a.numwant = 6;
  go(s, &a, T0);
  assert_int_equal(a.r.peers4_count, 0);
  assert_int_equal(a.r.peers6_count, 4);
  /* A leecher wanting 7 of 8 others gets 7 whatever the split. */
  v6(&a, 1, 99, 1, 99)->numwant = 7;
  go(s, &a, T0);
  assert_int_equal(a.r.peers4_count + a.r.peers6_count, 7);
  assert_true(a.r.peers6_count <= 4);
  assert_true(a.r.peers4_count <= 5);
}

static void test_mapped_v4(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  v6(&a, 1, 0, 80, 1);
  const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
  memcpy(a.ip, mapped, 16);
  go(s, &a, T0);
  go(s, v4(&a, 1, 3, 1, 3), T0);
  assert_int_equal(a.r.peers4_count, 1);
  assert_int_equal(a.r.peers6_count, 0);
  const uint8_t want[6] = {192, 0, 2, 7, 0, 80};
  assert_memory_equal(a.p4, want, 6);
}

static void test_peer_ids(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t i = 0; i < 20; i++) go(s, v4(&a, 1, i, (uint16_t)(2000 + i), 500 + i), T0);
  for (uint32_t i = 0; i < 5; i++) go(s, v6(&a, 1, i, 3000, 900 + i), T0);
  v4(&a, 1, 100, 1, 100)->want_ids = true;
  go(s, &a, T0);
  assert_int_equal(a.r.peers4_count + a.r.peers6_count, 25);
  for (size_t k = 0; k < a.r.peers4_count; k++) {
    uint32_t h = host_of4(a.p4 + 6 * k);
    assert_int_equal(port_of4(a.p4 + 6 * k), 2000 + h);
    uint8_t id[20];
    id_of(id, 500 + h);
    assert_memory_equal(a.id4 + 20 * k, id, 20);
  }
  for (size_t k = 0; k < a.r.peers6_count; k++) {
    uint8_t id[20];
    id_of(id, 900 + a.p6[18 * k + 15]);
    assert_memory_equal(a.id6 + 20 * k, id, 20);
  }
}

static void test_expiry_on_touch(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  go(s, v4(&a, 1, 1, 1, 1), T0);           /* A */
  go(s, v4(&a, 1, 2, 1, 2), T0 + 3);       /* B */
  go(s, v4(&a, 1, 3, 1, 3), T0 + TIMEOUT); /* C: A is exactly at the limit, still alive */
  assert_int_equal(a.r.incomplete, 3);
  assert_int_equal(a.r.peers4_count, 2);
  go(s, v4(&a, 1, 4, 1, 4), T0 + TIMEOUT + 1); /* D: A expired and compacted away */
  assert_int_equal(a.r.incomplete, 3);
  assert_int_equal(a.r.peers4_count, 2);
  for (size_t k = 0; k < 2; k++) assert_int_not_equal(host_of4(a.p4 + 6 * k), 1);
  /* At T0+104 B has expired, but the last compaction was 3 s ago (< 6 s): B still counts
   * until the next one, yet is never handed out. */
  go(s, v4(&a, 1, 5, 1, 5), T0 + TIMEOUT + 4);
  assert_int_equal(a.r.incomplete, 4);
  assert_int_equal(a.r.peers4_count, 2);
  for (size_t k = 0; k < 2; k++) assert_true(host_of4(a.p4 + 6 * k) >= 3);
  go(s, v4(&a, 1, 6, 1, 6), T0 + TIMEOUT + 7); /* compaction due again: B goes */
  assert_int_equal(a.r.incomplete, 4);
  assert_int_equal(totals(s).peers, 4);
  syn_scrape_result sr;
  syn_swarm_scrape(s, a.ih, T0 + 3 * TIMEOUT, &sr); /* a scrape compacts too */
  assert_int_equal(sr.incomplete, 0);
  assert_int_equal(totals(s).peers, 0);
}

static void test_expire_step_budget(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t sw = 0; sw < 3; sw++)
    for (uint32_t i = 0; i < 2; i++) go(s, v4(&a, sw, i, 1, i), T0);
  go(s, v4(&a, 3, 1, 1, 1), T0 + 150); /* a fourth swarm, still fresh at T0+200 */
  assert_int_equal(totals(s).torrents, 4);
  uint32_t now = T0 + 200;
  /* Visit one swarm at a time: each visit of an old swarm frees 2 peers and the swarm. */
  size_t sum = 0;
  for (int call = 0; call < 4; call++) {
    size_t got = syn_swarm_expire_step(s, now, 1);
    assert_true(got == 0 || got == 2);
    sum += got;
    assert_int_equal(totals(s).peers, 7 - sum);
    assert_int_equal(totals(s).torrents, 4 - sum / 2);
  }
  assert_int_equal(sum, 6);
  syn_swarm_totals t = totals(s);
  assert_int_equal(t.torrents, 1);
  assert_int_equal(t.peers, 1);
  assert_int_equal(syn_swarm_expire_step(s, now, 1000), 0);
  assert_int_equal(syn_swarm_expire_step(s, now, 0), 0);
  assert_int_equal(syn_swarm_expire_step(s, T0 + 251, 1000), 1);
  assert_int_equal(totals(s).torrents, 0);
  assert_int_equal(totals(s).peer_bytes, 0);
}

static void test_scrape_unknown(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  go(s, v4(&a, 1, 1, 1, 1), T0);
  uint8_t ih[20];
  hash_of(ih, 2);
  syn_scrape_result sr = {7, 7, 7};
  syn_swarm_scrape(s, ih, T0, &sr);
  assert_int_equal(sr.complete, 0);
  assert_int_equal(sr.incomplete, 0);
  assert_int_equal(sr.downloaded, 0);
  assert_int_equal(totals(s).torrents, 1);
}

typedef struct fe_acc {
  size_t calls;
  uint64_t peers;
  uint32_t seen[16];
} fe_acc;

static void fe_count(void *ctx, const uint8_t ih[20], const syn_scrape_result *r) {
  fe_acc *acc = ctx;
  uint32_t n;
  memcpy(&n, ih + 16, 4);
  assert_true(n < 16);
  acc->seen[n]++;
  acc->calls++;
  acc->peers += r->complete + r->incomplete;
}

static void test_foreach_bound(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t sw = 0; sw < 10; sw++)
    for (uint32_t i = 0; i <= sw; i++) go(s, v4(&a, sw, i, 1, i), T0);
  fe_acc acc = {0};
  assert_int_equal(syn_swarm_foreach(s, 3, fe_count, &acc), 3);
  assert_int_equal(acc.calls, 3);
  memset(&acc, 0, sizeof acc);
  assert_int_equal(syn_swarm_foreach(s, 100, fe_count, &acc), 10);
  assert_int_equal(acc.calls, 10);
  assert_int_equal(acc.peers, 55);
  for (uint32_t sw = 0; sw < 10; sw++) assert_int_equal(acc.seen[sw], 1);
  assert_int_equal(syn_swarm_foreach(s, 0, fe_count, &acc), 0);
}

/* Thousands of swarms: probe chains collide within a stripe, and deleting from the middle of
 * a chain (stop, expire_step) must leave every other swarm findable. */
static void test_many_swarms(void **state) {
  enum { M = 6000 };
  syn_swarm_store *s = STORE;
  ann a;
  for (uint32_t sw = 0; sw < M; sw++)
    for (uint32_t i = 0; i <= sw % 3; i++) go(s, v4(&a, sw, i, 1, i), sw % 5 ? T0 : T0 + 50);
  for (uint32_t sw = 0; sw < M; sw += 2) /* swarms with one peer and an even number go */
    if (sw % 3 == 0) {
      v4(&a, sw, 0, 1, 0)->event = SYN_EVENT_STOPPED;
      go(s, &a, T0 + 1);
    }
  /* Then everything last seen at T0 expires, in steps of 7 swarms: one round in all. */
  for (uint32_t call = 0; call < M / 7 + 1; call++) syn_swarm_expire_step(s, T0 + TIMEOUT + 1, 7);
  uint64_t peers = 0, torrents = 0;
  for (uint32_t sw = 0; sw < M; sw++) {
    uint8_t ih[20];
    hash_of(ih, sw);
    syn_scrape_result sr;
    syn_swarm_scrape(s, ih, T0 + TIMEOUT + 1, &sr);
    uint32_t want = sw % 5 || (sw % 2 == 0 && sw % 3 == 0) ? 0 : sw % 3 + 1;
    assert_int_equal(sr.incomplete, want);
    peers += want;
    torrents += want > 0;
  }
  syn_swarm_totals t = totals(s);
  assert_int_equal(t.torrents, torrents);
  assert_int_equal(t.peers, peers);
}

static void test_totals(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  syn_swarm_totals t = totals(s);
  assert_int_equal(t.torrents + t.peers + t.seeders + t.peer_bytes, 0);
  go(s, v4(&a, 1, 1, 1, 1), T0);
  /* One record, capacity 1 (growth 1.125x + 1 from none). */
  assert_int_equal(totals(s).peer_bytes, SYN_SWARM_RECORD_V4);
  v6(&a, 2, 1, 1, 1)->left = 0;
  go(s, &a, T0);
  t = totals(s);
  assert_int_equal(t.torrents, 2);
  assert_int_equal(t.peers, 2);
  assert_int_equal(t.seeders, 1);
  assert_int_equal(t.peer_bytes, SYN_SWARM_RECORD_V4 + SYN_SWARM_RECORD_V6);
  for (uint32_t i = 2; i < 12; i++) go(s, v4(&a, 1, i, 1, i), T0);
  t = totals(s);
  assert_int_equal(t.peers, 12);
  assert_true(t.peer_bytes >= 11 * SYN_SWARM_RECORD_V4 + SYN_SWARM_RECORD_V6 &&
              t.peer_bytes <= 2 * (11 * SYN_SWARM_RECORD_V4 + SYN_SWARM_RECORD_V6));
}

/* min interval: a re-announce (none or started) sooner than min_interval after the last
 * applied one is answered from the current swarm and changes nothing; completed and stopped
 * always apply; replicas (min_interval 0) always apply. */
static void test_min_interval(void **state) {
  syn_swarm_store *s = STORE;
  ann a, b;
  go(s, v4(&b, 1, 2, 1, 2), T0); /* another leecher, so replies carry a peer */
  v4(&a, 1, 1, 1, 1)->event = SYN_EVENT_STARTED;
  go(s, &a, T0);
  syn_swarm_totals before = totals(s);
  assert_false(a.r.early);
  /* started again, now claiming to be a seeder, 10 s later: not applied. */
  syn_announce req = {a.ih, a.id, a.ip,          a.ip_len, a.port, SYN_EVENT_STARTED,
                      0,    50,   SYN_FAMILY_V4, false,    30};
  a.r = (syn_announce_result){.peers4 = a.p4, .peers6 = a.p6};
  assert_int_equal(syn_swarm_announce(s, &req, T0 + 10, &a.r), 0);
  assert_true(a.r.early);
  assert_int_equal(a.r.complete, 0);
  assert_int_equal(a.r.incomplete, 2);
  assert_int_equal(a.r.peers4_count, 1); /* the ordinary reply: the other peer */
  assert_int_equal(host_of4(a.p4), 2);
  syn_swarm_totals after = totals(s);
  assert_int_equal(after.seeders, before.seeders);
  assert_int_equal(after.peers, before.peers);
  assert_int_equal(after.peer_bytes, before.peer_bytes); /* the check costs no bytes */
  /* The early announce did not refresh the peer: it still expires TIMEOUT after T0. */
  req.event = SYN_EVENT_NONE;
  assert_int_equal(syn_swarm_announce(s, &req, T0 + 29, &a.r), 0);
  assert_true(a.r.early);
  syn_swarm_expire_step(s, T0 + TIMEOUT + 1, 1000);
  syn_scrape_result sr;
  syn_swarm_scrape(s, a.ih, T0 + TIMEOUT + 1, &sr);
  assert_int_equal(sr.incomplete + sr.complete, 0);

  /* At min_interval it applies. */
  go(s, v4(&a, 2, 1, 1, 1), T0);
  req.info_hash = a.ih;
  assert_int_equal(syn_swarm_announce(s, &req, T0 + 30, &a.r), 0);
  assert_false(a.r.early);
  assert_int_equal(a.r.complete, 1);
  /* completed is applied however soon (counted once), and so is stopped. */
  go(s, v4(&a, 3, 1, 1, 1), T0);
  req.info_hash = a.ih;
  req.event = SYN_EVENT_COMPLETED;
  assert_int_equal(syn_swarm_announce(s, &req, T0 + 1, &a.r), 0);
  assert_false(a.r.early);
  assert_int_equal(a.r.downloaded, 1);
  req.event = SYN_EVENT_STOPPED;
  assert_int_equal(syn_swarm_announce(s, &req, T0 + 2, &a.r), 0);
  assert_false(a.r.early);
  syn_swarm_scrape(s, a.ih, T0 + 2, &sr);
  assert_int_equal(sr.complete + sr.incomplete, 0);
  assert_int_equal(sr.downloaded, 1);
  /* min_interval 0 (replication, hand-off): always applied. */
  go(s, v4(&a, 4, 1, 1, 1), T0);
  req.info_hash = a.ih;
  req.event = SYN_EVENT_NONE;
  req.min_interval = 0;
  assert_int_equal(syn_swarm_announce(s, &req, T0 + 1, &a.r), 0);
  assert_false(a.r.early);
  assert_int_equal(a.r.complete, 1);
  /* A peer the swarm does not know is applied whatever min_interval says. */
  v4(&b, 4, 9, 1, 9);
  req.ip = b.ip;
  req.min_interval = 30;
  assert_int_equal(syn_swarm_announce(s, &req, T0 + 1, &a.r), 0);
  assert_false(a.r.early);
  assert_int_equal(a.r.complete, 2);
}

/* The visitor sees every live peer with its last-announce time, and swarms with downloads
 * but no peers; restoring them into another store gives the same figures. */
typedef struct copy_ctx {
  syn_swarm_store *to;
  uint32_t now;
  size_t swarms;
} copy_ctx;

static void copy_swarm(void *ctx, const uint8_t ih[20], uint32_t downloaded, uint32_t touch) {
  copy_ctx *c = ctx;
  c->swarms++;
  assert_int_equal(syn_swarm_restore_swarm(c->to, ih, downloaded, touch, c->now), 0);
}

static void copy_peer(void *ctx, const uint8_t ih[20], const syn_swarm_peer_rec *p) {
  copy_ctx *c = ctx;
  assert_int_equal(syn_swarm_restore_peer(c->to, ih, p, c->now), 1);
}

static void test_visit_restore(void **state) {
  syn_swarm_store *s = STORE, *t = syn_swarm_store_new(TIMEOUT);
  ann a;
  go(s, v4(&a, 1, 1, 1, 1), T0 - 50);
  go(s, v6(&a, 1, 2, 1, 2), T0);
  v4(&a, 2, 3, 1, 3)->left = 0;
  a.event = SYN_EVENT_COMPLETED;
  go(s, &a, T0);
  a.event = SYN_EVENT_STOPPED;
  go(s, &a, T0);
  copy_ctx c = {t, T0, 0};
  syn_swarm_visitor vis = {.swarm = copy_swarm, .peer = copy_peer, .ctx = &c};
  size_t peers = 0;
  for (uint32_t k = 0; k < SYN_SWARM_STRIPES; k++) peers += syn_swarm_visit_stripe(s, k, &vis, T0);
  assert_int_equal(peers, 2);
  assert_int_equal(c.swarms, 2);
  syn_scrape_result x, y;
  for (uint32_t n = 1; n <= 2; n++) {
    v4(&a, n, 1, 1, 1);
    syn_swarm_scrape(s, a.ih, T0, &x);
    syn_swarm_scrape(t, a.ih, T0, &y);
    assert_memory_equal(&x, &y, sizeof x);
  }
  /* The older peer kept its time: it expires 50 s before the other. */
  syn_swarm_expire_step(t, T0 + TIMEOUT - 49, 1000);
  v4(&a, 1, 1, 1, 1);
  syn_swarm_scrape(t, a.ih, T0 + TIMEOUT - 49, &y);
  assert_int_equal(y.incomplete, 1);
  /* Restoring an older announce over a newer one changes nothing; an expired one neither. */
  uint8_t ip[4] = {10, 0, 0, 2}, id[20] = {0};
  syn_swarm_peer_rec p = {ip, 4, 1, id, true, T0};
  assert_int_equal(syn_swarm_restore_peer(t, a.ih, &p, T0 + 10), 1);
  p.last_seen = T0 - 5;
  assert_int_equal(syn_swarm_restore_peer(t, a.ih, &p, T0 + 10), 0);
  p.last_seen = 1;
  p.ip = (uint8_t[4]){10, 0, 0, 7};
  assert_int_equal(syn_swarm_restore_peer(t, a.ih, &p, T0 + 10), 0);
  p.ip_len = 5;
  assert_int_equal(syn_swarm_restore_peer(t, a.ih, &p, T0 + 10), -EINVAL);
  syn_swarm_store_free(t);
}

static void test_bad_ip_len(void **state) {
  syn_swarm_store *s = STORE;
  ann a;
  static const size_t bad[] = {0, 1, 3, 5, 6, 15, 17, 18, 32};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    v4(&a, 1, 1, 1, 1)->ip_len = bad[i];
    assert_int_equal(run(s, &a, T0), -EINVAL);
    assert_int_equal(a.r.peers4_count, 0);
  }
  syn_announce req = {0};
  syn_announce_result r = {0};
  assert_int_equal(syn_swarm_announce(s, &req, T0, &r), -EINVAL);
  assert_int_equal(totals(s).torrents, 0);
}

/* 10k peers per family in one swarm, inserted in random order: the lookup must find each one
 * again (updates do not add), and buckets split and merge on the way. */
static void many_peers(syn_swarm_store *s, bool six) {
  enum { N = 10000 };
  static uint32_t perm[N];
  static ann a;
  for (uint32_t i = 0; i < N; i++) perm[i] = i;
  uint64_t x = 88172645463325252ULL;
  for (uint32_t i = N - 1; i > 0; i--) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint32_t j = (uint32_t)(x % (i + 1)), tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  /* host = i / 4, port = 1000 + i % 4: neighbours in address order differ by port only. */
#define PEER(i) (six ? v6 : v4)(&a, 1, (i) / 4, (uint16_t)(1000 + (i) % 4), (i))
  for (uint32_t k = 0; k < N; k++) {
    go(s, PEER(perm[k]), T0);
    assert_int_equal(a.r.incomplete, k + 1);
  }
  for (uint32_t k = 0; k < N; k += 4) { /* every 4th peer re-announces as a seeder */
    PEER(k)->left = 0;
    go(s, &a, T0 + 50);
    assert_int_equal(a.r.incomplete + a.r.complete, N);
  }
  assert_int_equal(a.r.complete, N / 4);
  PEER(1)->numwant = 200;
  a.want_ids = true;
  go(s, &a, T0 + 50);
  size_t got = six ? a.r.peers6_count : a.r.peers4_count;
  assert_int_equal(got, 200);
  for (size_t k = 0; k < got; k++) {
    const uint8_t *p = six ? a.p6 + 18 * k : a.p4 + 6 * k;
    const uint8_t *hp = six ? p + 13 : p + 1;
    uint32_t host = (uint32_t)hp[0] << 16 | hp[1] << 8 | hp[2];
    uint32_t port = (uint32_t)p[six ? 16 : 4] << 8 | p[six ? 17 : 5];
    uint32_t i = host * 4 + (port - 1000);
    assert_true(i < N && i != 1);
    uint8_t id[20];
    id_of(id, i);
    assert_memory_equal((six ? a.id6 : a.id4) + 20 * k, id, 20);
  }
  /* At T0+101 the peers last seen at T0 are expired, the rest not; 2501 left: the 16
   * buckets merge back to 8. */
  assert_int_equal(syn_swarm_expire_step(s, T0 + TIMEOUT + 1, 10), N - N / 4 - 1);
  syn_swarm_totals t = totals(s);
  assert_int_equal(t.peers, N / 4 + 1);
  assert_true(t.peer_bytes <= 2 * t.peers * (six ? 44 : 32));
  for (uint32_t k = 0; k < N; k += 4) { /* every survivor is found and stopped */
    PEER(k)->event = SYN_EVENT_STOPPED;
    go(s, &a, T0 + TIMEOUT + 2);
  }
  assert_int_equal(a.r.complete, 0);
  assert_int_equal(a.r.incomplete, 1);
#undef PEER
}

static void test_many_peers_v4(void **state) { many_peers(STORE, false); }
static void test_many_peers_v6(void **state) { many_peers(STORE, true); }

/* Concurrency smoke test: 4 threads announce to 64 shared swarms, each from its own
 * addresses, then stop half of their peers; a fifth thread reads totals, scrapes and expires
 * meanwhile (with a `now` at which nothing has expired). */
enum { THREADS = 4, SWARMS = 64, PER = 50 };

typedef struct worker {
  syn_swarm_store *s;
  uint32_t t;
  int failures;
} worker;

static void *announcer(void *arg) {
  worker *w = arg;
  ann *a = malloc(sizeof *a);
  for (int phase = 0; phase < 2; phase++)
    for (uint32_t p = 0; p < PER; p++)
      for (uint32_t sw = 0; sw < SWARMS; sw++) {
        if (phase == 1 && p % 2) continue;
        v4(a, sw, w->t << 12 | p, 1, p)->left = p % 3 ? 1 : 0;
        if (phase == 1) a->event = SYN_EVENT_STOPPED;
        a->numwant = 30;
        if (run(w->s, a, T0 + phase) != 0) w->failures++;
        if (a->r.peers4_count > 30) w->failures++;
      }
  free(a);
  return NULL;
}

static atomic_int stop_reader;

static void fe_nop(void *ctx, const uint8_t ih[20], const syn_scrape_result *r) {
  ++*(size_t *)ctx;
}

static void *reader(void *arg) {
  worker *w = arg;
  while (!stop_reader) {
    syn_swarm_totals t;
    syn_swarm_totals_get(w->s, &t);
    if (t.peers > THREADS * SWARMS * PER) w->failures++;
    syn_swarm_expire_step(w->s, T0 + 1, 16);
    size_t n = 0;
    syn_swarm_foreach(w->s, 1000, fe_nop, &n);
    if (n > SWARMS) w->failures++;
  }
  return NULL;
}

static void test_concurrency(void **state) {
  syn_swarm_store *s = STORE;
  pthread_t th[THREADS + 1];
  worker w[THREADS + 1];
  stop_reader = 0;
  for (uint32_t i = 0; i <= THREADS; i++) {
    w[i] = (worker){s, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, i < THREADS ? announcer : reader, &w[i]), 0);
  }
  for (uint32_t i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  stop_reader = 1;
  pthread_join(th[THREADS], NULL);
  for (uint32_t i = 0; i <= THREADS; i++) assert_int_equal(w[i].failures, 0);
  syn_swarm_totals t = totals(s);
  assert_int_equal(t.torrents, SWARMS);
  assert_int_equal(t.peers, THREADS * SWARMS * PER / 2);
  /* Survivors are the odd p; seeders are those with p % 3 == 0: p = 3, 9, ..., 45 → 8. */
  assert_int_equal(t.seeders, THREADS * SWARMS * 8);
  syn_scrape_result sr;
  uint8_t ih[20];
  hash_of(ih, 5);
  syn_swarm_scrape(s, ih, T0 + 1, &sr);
  assert_int_equal(sr.complete, THREADS * 8);
  assert_int_equal(sr.incomplete, THREADS * (PER / 2 - 8));
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define NUMWANT(name, o, w, e)                                       \
  {                                                                  \
    name, test_numwant, setup, teardown, &(numwant_case) { o, w, e } \
  }

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(test_add),
      CASE(test_update_same_key),
      CASE(test_stop_removes),
      CASE(test_stop_unknown),
      CASE(test_completed_once),
      CASE(test_downloaded_outlives_peers),
      CASE(test_seeder_counting),
      NUMWANT("numwant 0", 5, 0, 0),
      NUMWANT("numwant 1", 5, 1, 1),
      NUMWANT("numwant = available", 5, 5, 5),
      NUMWANT("numwant > available", 5, 50, 5),
      NUMWANT("numwant alone in swarm", 0, 50, 0),
      NUMWANT("numwant 200 of 300", 300, 200, 200),
      CASE(test_never_self),
      CASE(test_seeder_gets_leechers),
      CASE(test_families),
      CASE(test_family_shortfall),
      CASE(test_mapped_v4),
      CASE(test_peer_ids),
      CASE(test_expiry_on_touch),
      CASE(test_expire_step_budget),
      CASE(test_scrape_unknown),
      CASE(test_foreach_bound),
      CASE(test_many_swarms),
      CASE(test_totals),
      CASE(test_bad_ip_len),
      CASE(test_min_interval),
      CASE(test_visit_restore),
      CASE(test_many_peers_v4),
      CASE(test_many_peers_v6),
      CASE(test_concurrency),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
