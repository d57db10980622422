/* Unit tests for the WebSocket peers of swarms and the signal outboxes of routers. Time is
 * passed in, so expiry and idle routers are tested without sleeping. Requests are built as
 * Synapse__WsAnnounceRequest structs on the stack, as node.c gets them unpacked. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "node/ws_peers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT 120u
#define T0 1000u
#define MAXP 100000u
#define BUDGET 4096u /* expire steps that visit every bucket of a small table */

/* One request and the storage its pointers point into (never copied: it points at itself). */
typedef struct req {
  Synapse__WsAnnounceRequest r;
  uint8_t ih[20], id[20], to[20], oid[20];
  char router[SYN_WS_ROUTER_ID_MAX + 8];
  char answer[64];
  Synapse__WsOffer offer_msgs[SYN_WS_MAX_OFFERS + 1];
  Synapse__WsOffer *offers[SYN_WS_MAX_OFFERS + 1];
  uint8_t offer_ids[SYN_WS_MAX_OFFERS + 1][20];
  char offer_text[SYN_WS_MAX_OFFERS + 1][48];
} req;

/* One announce's outputs. */
typedef struct res {
  syn_ws_local local[SYN_WS_MAX_OFFERS + 1];
  syn_ws_announce_result out;
} res;

static void hash_of(uint8_t ih[20], uint32_t n) {
  for (int i = 0; i < 20; i++) ih[i] = (uint8_t)((n * 2654435761u) >> ((i % 4) * 8)) ^ (uint8_t)i;
  memcpy(ih + 16, &n, 4);
}

static void id_of(uint8_t id[20], uint32_t n) {
  memset(id, 0xAB, 20);
  memcpy(id + 4, &n, 4);
}

static void offer_id_of(uint8_t id[20], uint32_t peer, uint32_t k) {
  memset(id, 0x0F, 20);
  memcpy(id, &peer, 4);
  memcpy(id + 8, &k, 4);
}

/* An announce of peer `peer` in swarm `swarm` through `router` (boot `boot`); left < 0:
 * absent. */
static req *ann(req *q, uint32_t swarm, uint32_t peer, const char *router, uint64_t boot,
                int64_t left) {
  memset(q, 0, sizeof *q);
  q->r = (Synapse__WsAnnounceRequest)SYNAPSE__WS_ANNOUNCE_REQUEST__INIT;
  hash_of(q->ih, swarm);
  id_of(q->id, peer);
  snprintf(q->router, sizeof q->router, "%s", router);
  q->r.info_hash = (ProtobufCBinaryData){20, q->ih};
  q->r.peer_id = (ProtobufCBinaryData){20, q->id};
  q->r.router = q->router;
  q->r.boot = boot;
  if (left >= 0) {
    q->r.has_left = 1;
    q->r.left = (uint64_t)left;
  }
  return q;
}

static req *with_event(req *q, Synapse__Event ev) {
  q->r.has_event = 1;
  q->r.event = ev;
  return q;
}

/* Adds n offers; offer k has offer_id offer_id_of(peer, k) and text {"sdp":"o <peer> <k>"}. */
static req *with_offers(req *q, size_t n) {
  uint32_t peer;
  memcpy(&peer, q->id + 4, 4);
  for (size_t k = 0; k < n; k++) {
    offer_id_of(q->offer_ids[k], peer, (uint32_t)k);
    int len = snprintf(q->offer_text[k], sizeof q->offer_text[k], "{\"sdp\":\"o %u %zu\"}",
                       (unsigned)peer, k);
    q->offer_msgs[k] = (Synapse__WsOffer)SYNAPSE__WS_OFFER__INIT;
    q->offer_msgs[k].offer_id = (ProtobufCBinaryData){20, q->offer_ids[k]};
    q->offer_msgs[k].offer = (ProtobufCBinaryData){(size_t)len, (uint8_t *)q->offer_text[k]};
    q->offers[k] = &q->offer_msgs[k];
  }
  q->r.n_offers = n;
  q->r.offers = q->offers;
  return q;
}

/* Makes q an answer to peer to_peer's offer number k. */
static req *with_answer(req *q, uint32_t to_peer, uint32_t k) {
  id_of(q->to, to_peer);
  offer_id_of(q->oid, to_peer, k);
  int len = snprintf(q->answer, sizeof q->answer, "{\"sdp\":\"answer to %u\"}", (unsigned)to_peer);
  q->r.has_to_peer_id = 1;
  q->r.to_peer_id = (ProtobufCBinaryData){20, q->to};
  q->r.has_offer_id = 1;
  q->r.offer_id = (ProtobufCBinaryData){20, q->oid};
  q->r.has_answer = 1;
  q->r.answer = (ProtobufCBinaryData){(size_t)len, (uint8_t *)q->answer};
  return q;
}

static int go(syn_ws_peers *p, req *q, uint32_t now, res *r) {
  memset(r, 0xEE, sizeof *r); /* the call must set everything it reports */
  return syn_ws_peers_announce(p, &q->r, now, r->local, &r->out);
}

/* Announces and expects success. */
static void join(syn_ws_peers *p, uint32_t swarm, uint32_t peer, const char *router, uint64_t boot,
                 int64_t left, uint32_t now) {
  req q;
  res r;
  assert_int_equal(go(p, ann(&q, swarm, peer, router, boot, left), now, &r), 0);
}

/* The peer number of an id made by id_of. */
static uint32_t peer_of(const uint8_t id[20]) {
  uint8_t want[20];
  uint32_t n;
  memcpy(&n, id + 4, 4);
  id_of(want, n);
  assert_memory_equal(id, want, 20);
  return n;
}

static void figures(syn_ws_peers *p, uint32_t swarm, uint32_t now, uint32_t complete,
                    uint32_t incomplete, uint32_t downloaded) {
  uint8_t ih[20];
  hash_of(ih, swarm);
  syn_scrape_result f;
  memset(&f, 0xEE, sizeof f);
  syn_ws_peers_figures(p, ih, now, &f);
  assert_int_equal(f.complete, complete);
  assert_int_equal(f.incomplete, incomplete);
  assert_int_equal(f.downloaded, downloaded);
}

static syn_ws_stats stats(syn_ws_peers *p) {
  syn_ws_stats s;
  memset(&s, 0xEE, sizeof s);
  syn_ws_peers_stats(p, &s);
  return s;
}

static Synapse__WsPush *unpack_push(const syn_buf *b) {
  assert_true(b->len > 0);
  Synapse__WsPush *push = synapse__ws_push__unpack(NULL, b->len, b->data);
  assert_non_null(push);
  return push;
}

/* Checks that signal s is request q's offer number k (or its answer when k < 0) for to_peer. */
static void check_signal(const Synapse__WsSignal *s, const req *q, int k, uint32_t to_peer) {
  uint8_t to[20];
  id_of(to, to_peer);
  assert_int_equal(s->info_hash.len, 20);
  assert_memory_equal(s->info_hash.data, q->ih, 20);
  assert_int_equal(s->to_peer_id.len, 20);
  assert_memory_equal(s->to_peer_id.data, to, 20);
  assert_int_equal(s->from_peer_id.len, 20);
  assert_memory_equal(s->from_peer_id.data, q->id, 20);
  assert_int_equal(s->offer_id.len, 20);
  if (k >= 0) {
    assert_true(s->has_offer);
    assert_false(s->has_answer);
    assert_memory_equal(s->offer_id.data, q->offer_ids[k], 20);
    assert_int_equal(s->offer.len, strlen(q->offer_text[k]));
    assert_memory_equal(s->offer.data, q->offer_text[k], s->offer.len);
  } else {
    assert_true(s->has_answer);
    assert_false(s->has_offer);
    assert_memory_equal(s->offer_id.data, q->oid, 20);
    assert_int_equal(s->answer.len, strlen(q->answer));
    assert_memory_equal(s->answer.data, q->answer, s->answer.len);
  }
}

/* The offer number of a signal of q (by its offer_id). */
static int offer_index(const Synapse__WsSignal *s, const req *q) {
  for (size_t k = 0; k < q->r.n_offers; k++)
    if (memcmp(s->offer_id.data, q->offer_ids[k], 20) == 0) return (int)k;
  fail_msg("a signal with an offer_id the request did not have");
  return -1;
}

static int setup(void **state) {
  *state = syn_ws_peers_new(TIMEOUT, MAXP);
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  syn_ws_peers_free(*state);
  return 0;
}

/* ---- peers and figures ---- */

static void test_announce_adds_and_counts(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  assert_int_equal(go(p, ann(&q, 1, 1, "A", 7, 0), T0, &r), 0);
  assert_int_equal(r.out.ws.complete, 1);
  assert_int_equal(r.out.ws.incomplete, 0);
  assert_int_equal(r.out.ws.downloaded, 0);
  assert_int_equal(r.out.offers_sent, 0);
  assert_int_equal(r.out.local_count, 0);
  assert_int_equal(r.out.wake_count, 0);
  assert_int_equal(go(p, ann(&q, 1, 2, "A", 7, 12345), T0, &r), 0);
  assert_int_equal(r.out.ws.complete, 1);
  assert_int_equal(r.out.ws.incomplete, 1);
  assert_int_equal(go(p, ann(&q, 1, 3, "A", 7, -1), T0, &r), 0); /* left unknown: a leecher */
  assert_int_equal(r.out.ws.complete, 1);
  assert_int_equal(r.out.ws.incomplete, 2);
  figures(p, 1, T0, 1, 2, 0);
  figures(p, 2, T0, 0, 0, 0);   /* no such swarm */
  join(p, 2, 1, "A", 7, 0, T0); /* the same peer in another swarm is another entry */
  figures(p, 2, T0, 1, 0, 0);
  figures(p, 1, T0, 1, 2, 0);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.swarms, 2);
  assert_int_equal(s.peers, 4);
  assert_int_equal(s.routers, 1);
  assert_int_equal(s.offers_sent, 0);
  assert_int_equal(s.answers_sent, 0);
  assert_int_equal(s.signals_dropped, 0);
}

static void test_refresh(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 1, "A", 7, 100, T0);
  figures(p, 1, T0, 0, 1, 0);
  /* The same peer again, now done: still one entry, now a seed, with a new deadline. */
  assert_int_equal(go(p, with_event(ann(&q, 1, 1, "A", 7, 0), SYNAPSE__EVENT__EVENT_COMPLETED),
                      T0 + TIMEOUT - 10, &r),
                   0);
  assert_int_equal(r.out.ws.complete, 1);
  assert_int_equal(r.out.ws.incomplete, 0);
  assert_int_equal(r.out.ws.downloaded, 1);
  assert_int_equal(stats(p).peers, 1);
  figures(p, 1, T0 + TIMEOUT + 5, 1, 0, 1);
  syn_ws_peers_expire_step(p, T0 + TIMEOUT + 5, BUDGET);
  assert_int_equal(stats(p).peers, 1);
  figures(p, 1, T0 + 2 * TIMEOUT - 10, 1, 0, 1);
  /* Back to leeching (a new file, say): counted as a leecher again. */
  join(p, 1, 1, "A", 7, -1, T0 + 2 * TIMEOUT - 10);
  figures(p, 1, T0 + 2 * TIMEOUT - 10, 0, 1, 1);
}

static void test_stopped_removes(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 1, "A", 7, 0, T0);
  join(p, 1, 2, "A", 7, 50, T0);
  assert_int_equal(
      go(p, with_event(ann(&q, 1, 1, "A", 7, 0), SYNAPSE__EVENT__EVENT_STOPPED), T0 + 1, &r), 0);
  assert_int_equal(r.out.ws.complete, 0);
  assert_int_equal(r.out.ws.incomplete, 1);
  assert_int_equal(stats(p).peers, 1);
  /* Stopping a peer that is not there changes nothing. */
  assert_int_equal(
      go(p, with_event(ann(&q, 1, 9, "A", 7, 0), SYNAPSE__EVENT__EVENT_STOPPED), T0 + 1, &r), 0);
  assert_int_equal(r.out.ws.incomplete, 1);
  assert_int_equal(
      go(p, with_event(ann(&q, 5, 9, "A", 7, 0), SYNAPSE__EVENT__EVENT_STOPPED), T0 + 1, &r), 0);
  assert_int_equal(r.out.ws.complete + r.out.ws.incomplete, 0);
  assert_int_equal(stats(p).swarms, 1);
  /* The last one gone: the swarm goes too. */
  assert_int_equal(
      go(p, with_event(ann(&q, 1, 2, "A", 7, 50), SYNAPSE__EVENT__EVENT_STOPPED), T0 + 1, &r), 0);
  assert_int_equal(r.out.ws.complete + r.out.ws.incomplete, 0);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.peers, 0);
  assert_int_equal(s.swarms, 0);
  figures(p, 1, T0 + 1, 0, 0, 0);
}

static void test_expiry(void **state) {
  syn_ws_peers *p = *state;
  join(p, 1, 1, "A", 7, 0, T0);
  join(p, 1, 2, "A", 7, 5, T0 + 50);
  join(p, 2, 3, "A", 7, 5, T0);
  figures(p, 1, T0 + TIMEOUT, 1, 1, 0); /* the last second of the first peer */
  syn_ws_peers_expire_step(p, T0 + TIMEOUT, BUDGET);
  assert_int_equal(stats(p).peers, 3);
  /* Past its timeout a peer is no longer counted, even before the sweep removes it. */
  figures(p, 1, T0 + TIMEOUT + 1, 0, 1, 0);
  figures(p, 2, T0 + TIMEOUT + 1, 0, 0, 0);
  assert_int_equal(stats(p).peers, 3);
  syn_ws_peers_expire_step(p, T0 + TIMEOUT + 1, BUDGET);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.peers, 1);
  assert_int_equal(s.swarms, 1);
  figures(p, 1, T0 + TIMEOUT + 1, 0, 1, 0);
  syn_ws_peers_expire_step(p, T0 + 50 + TIMEOUT + 1, BUDGET);
  s = stats(p);
  assert_int_equal(s.peers, 0);
  assert_int_equal(s.swarms, 0);
}

static void test_expired_peer_gets_no_offer(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 1, "A", 7, 5, T0);
  join(p, 1, 2, "A", 7, 5, T0 + 60);
  /* Peer 1 expired at T0 + TIMEOUT + 1 but is not swept yet: only peer 2 is offered. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 3, "A", 7, 5), 2), T0 + TIMEOUT + 1, &r), 0);
  assert_int_equal(r.out.offers_sent, 1);
  assert_int_equal(r.out.local_count, 1);
  assert_int_equal(peer_of(r.local[0].to_peer_id), 2);
  assert_int_equal(r.out.ws.incomplete, 2);
}

static void test_many_swarms(void **state) {
  syn_ws_peers *p = *state;
  enum { N = 3000 }; /* past the initial table: it grows */
  for (uint32_t i = 0; i < N; i++) join(p, i, i, "A", 7, i % 2 ? 5 : 0, T0);
  assert_int_equal(stats(p).swarms, N);
  for (uint32_t i = 0; i < N; i++) figures(p, i, T0, i % 2 ? 0 : 1, i % 2 ? 1 : 0, 0);
  syn_ws_peers_expire_step(p, T0 + TIMEOUT + 1, 2 * BUDGET);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.swarms, 0);
  assert_int_equal(s.peers, 0);
}

/* ---- offers ---- */

static void test_offers_go_to_distinct_other_peers(void **state) {
  syn_ws_peers *p = *state;
  enum { PEERS = 10, OFFERS = 5 };
  for (uint32_t i = 1; i <= PEERS; i++) join(p, 1, i, "A", 7, 5, T0);
  for (int round = 0; round < 50; round++) {
    req q;
    res r;
    uint32_t sender = 1 + (uint32_t)round % PEERS;
    assert_int_equal(go(p, with_offers(ann(&q, 1, sender, "A", 7, 5), OFFERS), T0, &r), 0);
    assert_int_equal(r.out.offers_sent, OFFERS);
    assert_int_equal(r.out.local_count, OFFERS);
    assert_int_equal(r.out.wake_count, 0);
    bool seen_peer[PEERS + 1] = {false}, seen_offer[OFFERS] = {false};
    for (size_t i = 0; i < r.out.local_count; i++) {
      uint32_t to = peer_of(r.local[i].to_peer_id);
      assert_true(to >= 1 && to <= PEERS);
      assert_int_not_equal(to, sender);
      assert_false(seen_peer[to]);
      seen_peer[to] = true;
      assert_true(r.local[i].offer >= 0 && r.local[i].offer < OFFERS);
      assert_false(seen_offer[r.local[i].offer]);
      seen_offer[r.local[i].offer] = true;
    }
  }
  assert_int_equal(stats(p).offers_sent, 50 * OFFERS);
  assert_int_equal(stats(p).peers, PEERS);
}

static void test_offers_reach_every_peer_over_time(void **state) {
  syn_ws_peers *p = *state;
  enum { PEERS = 8 };
  for (uint32_t i = 1; i <= PEERS; i++) join(p, 1, i, "A", 7, 5, T0);
  bool seen[PEERS + 1] = {false};
  for (int round = 0; round < 200; round++) {
    req q;
    res r;
    assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 1), T0, &r), 0);
    assert_int_equal(r.out.local_count, 1);
    seen[peer_of(r.local[0].to_peer_id)] = true;
  }
  for (uint32_t i = 2; i <= PEERS; i++) assert_true(seen[i]); /* chance of failing < 1e-12 */
}

static void test_seed_offers_only_to_leechers(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  for (uint32_t i = 1; i <= 5; i++) join(p, 1, i, "A", 7, 0, T0);  /* seeds */
  for (uint32_t i = 6; i <= 8; i++) join(p, 1, i, "A", 7, 10, T0); /* leechers */
  for (int round = 0; round < 20; round++) {
    assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 0), 8), T0, &r), 0);
    assert_int_equal(r.out.offers_sent, 3);
    assert_int_equal(r.out.local_count, 3);
    for (size_t i = 0; i < r.out.local_count; i++) {
      uint32_t to = peer_of(r.local[i].to_peer_id);
      assert_true(to >= 6 && to <= 8);
    }
  }
  /* A leecher's offers go to seeds and leechers alike: every other peer. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 6, "A", 7, 10), 8), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 7);
  assert_int_equal(r.out.local_count, 7);
  /* So do those of a peer whose left is unknown. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 7, "A", 7, -1), 8), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 7);
}

static void test_more_offers_than_receivers(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  /* Alone in the swarm: nobody to offer to. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 5), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 0);
  assert_int_equal(r.out.local_count, 0);
  assert_int_equal(r.out.wake_count, 0);
  assert_int_equal(r.out.ws.incomplete, 1); /* but it joined */
  join(p, 1, 2, "A", 7, 5, T0);
  join(p, 1, 3, "A", 7, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 5), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 2);
  assert_int_equal(r.out.local_count, 2);
  assert_int_not_equal(peer_of(r.local[0].to_peer_id), peer_of(r.local[1].to_peer_id));
  assert_int_not_equal(r.local[0].offer, r.local[1].offer);
  /* As many offers as the limit, to more peers than that. */
  for (uint32_t i = 10; i < 10 + SYN_WS_MAX_OFFERS + 5; i++) join(p, 1, i, "A", 7, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), SYN_WS_MAX_OFFERS), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, SYN_WS_MAX_OFFERS);
  assert_int_equal(r.out.local_count, SYN_WS_MAX_OFFERS);
  assert_int_equal(stats(p).offers_sent, 2 + SYN_WS_MAX_OFFERS);
}

static void test_offer_to_same_router_is_local(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 2, "A", 7, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 3), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 1);
  assert_int_equal(r.out.local_count, 1);
  assert_int_equal(r.out.wake_count, 0);
  assert_int_equal(peer_of(r.local[0].to_peer_id), 2);
  assert_true(r.local[0].offer >= 0 && r.local[0].offer < 3);
  /* Nothing was queued for router A: its poll parks. */
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "A", 7, &token, 5000, &b, &replaced), 1);
  assert_int_equal(b.len, 0);
  syn_buf_free(&b);
}

static void test_offer_to_other_router_is_queued(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 2, "B", 9, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 1), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 1);
  assert_int_equal(r.out.local_count, 0);
  assert_int_equal(r.out.wake_count, 1);
  /* B's poll finds the signal waiting: answered at once, nothing parked. */
  static char token;
  void *replaced = &token;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token, 5000, &b, &replaced), 0);
  assert_null(replaced);
  Synapse__WsPush *push = unpack_push(&b);
  assert_int_equal(push->n_signals, 1);
  check_signal(push->signals[0], &q, 0, 2);
  synapse__ws_push__free_unpacked(push, NULL);
  /* Taken: the next poll parks, and the woken slot has nothing for a collect. */
  assert_null(syn_ws_peers_collect(p, r.out.wake[0], &b));
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token, 5001, &b, &replaced), 1);
  assert_null(replaced);
  assert_null(syn_ws_peers_stale_poll(p, 5002, 1000));
  assert_ptr_equal(syn_ws_peers_stale_poll(p, 7000, 1000), &token);
  syn_buf_free(&b);
}

static void test_collect_returns_parked_poll_and_outbox(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  static char token_b, token_c;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  join(p, 1, 2, "B", 9, 5, T0);
  join(p, 1, 3, "B", 9, 5, T0);
  join(p, 1, 4, "C", 3, 5, T0);
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token_b, 1000, &b, &replaced), 1);
  assert_null(replaced);
  assert_int_equal(syn_ws_peers_poll(p, "C", 3, &token_c, 1000, &b, &replaced), 1);
  assert_null(replaced);
  /* Offers to three peers on two other routers: each router woken once. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 6), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 3);
  assert_int_equal(r.out.local_count, 0);
  assert_int_equal(r.out.wake_count, 2);
  assert_int_not_equal(r.out.wake[0], r.out.wake[1]);
  bool used[6] = {false};
  int got_b = 0, got_c = 0;
  for (size_t w = 0; w < r.out.wake_count; w++) {
    syn_buf_reset(&b);
    void *parked = syn_ws_peers_collect(p, r.out.wake[w], &b);
    assert_true(parked == &token_b || parked == &token_c);
    Synapse__WsPush *push = unpack_push(&b);
    if (parked == &token_b) {
      got_b++;
      assert_int_equal(push->n_signals, 2);
    } else {
      got_c++;
      assert_int_equal(push->n_signals, 1);
    }
    for (size_t i = 0; i < push->n_signals; i++) {
      int k = offer_index(push->signals[i], &q);
      assert_false(used[k]);
      used[k] = true;
      uint32_t to = peer_of(push->signals[i]->to_peer_id.data);
      assert_true(parked == &token_b ? to == 2 || to == 3 : to == 4);
      check_signal(push->signals[i], &q, k, to);
    }
    if (push->n_signals == 2)
      assert_memory_not_equal(push->signals[0]->to_peer_id.data, push->signals[1]->to_peer_id.data,
                              20);
    synapse__ws_push__free_unpacked(push, NULL);
    /* Both taken. */
    syn_buf_reset(&b);
    assert_null(syn_ws_peers_collect(p, r.out.wake[w], &b));
    assert_int_equal(b.len, 0);
  }
  assert_int_equal(got_b, 1);
  assert_int_equal(got_c, 1);
  syn_buf_free(&b);
}

static void test_collect_without_parked_poll_keeps_signals(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 2, "B", 9, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 1), T0, &r), 0);
  assert_int_equal(r.out.wake_count, 1);
  syn_buf b = SYN_BUF_INIT;
  assert_null(syn_ws_peers_collect(p, r.out.wake[0], &b));
  assert_int_equal(b.len, 0);
  assert_null(syn_ws_peers_collect(p, -1, &b));
  assert_null(syn_ws_peers_collect(p, SYN_WS_MAX_ROUTERS, &b));
  /* A second offer (peer 1 again: its only other peer is 2) joins the first. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 1), T0 + 1, &r), 0);
  assert_int_equal(r.out.wake_count, 1);
  static char token;
  void *replaced;
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token, 1000, &b, &replaced), 0);
  Synapse__WsPush *push = unpack_push(&b);
  assert_int_equal(push->n_signals, 2);
  check_signal(push->signals[0], &q, 0, 2);
  check_signal(push->signals[1], &q, 0, 2);
  synapse__ws_push__free_unpacked(push, NULL);
  syn_buf_free(&b);
}

static void test_poll_parks_and_replaces(void **state) {
  syn_ws_peers *p = *state;
  static char t1, t2, t3;
  void *replaced = &t3;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &t1, 1000, &b, &replaced), 1);
  assert_null(replaced);
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &t2, 2000, &b, &replaced), 1);
  assert_ptr_equal(replaced, &t1);
  assert_int_equal(stats(p).routers, 1);
  /* Another router's poll is its own. */
  assert_int_equal(syn_ws_peers_poll(p, "C", 1, &t3, 2000, &b, &replaced), 1);
  assert_null(replaced);
  assert_int_equal(stats(p).routers, 2);
  /* A signal for B wakes it with t2. */
  join(p, 1, 2, "B", 9, 5, T0);
  req q;
  res r;
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "C", 1, 5), 1), T0, &r), 0);
  assert_int_equal(r.out.wake_count, 1);
  assert_ptr_equal(syn_ws_peers_collect(p, r.out.wake[0], &b), &t2);
  Synapse__WsPush *push = unpack_push(&b);
  assert_int_equal(push->n_signals, 1);
  check_signal(push->signals[0], &q, 0, 2);
  synapse__ws_push__free_unpacked(push, NULL);
  syn_buf_free(&b);
}

static void test_stale_poll(void **state) {
  syn_ws_peers *p = *state;
  static char tb, tc;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  assert_null(syn_ws_peers_stale_poll(p, 100000, 0));
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &tb, 10000, &b, &replaced), 1);
  assert_int_equal(syn_ws_peers_poll(p, "C", 1, &tc, 20000, &b, &replaced), 1);
  assert_null(syn_ws_peers_stale_poll(p, 20000, 25000));
  assert_null(syn_ws_peers_stale_poll(p, 34999, 25000));
  assert_ptr_equal(syn_ws_peers_stale_poll(p, 35001, 25000), &tb);
  assert_null(syn_ws_peers_stale_poll(p, 35001, 25000)); /* taken; C's is younger */
  assert_ptr_equal(syn_ws_peers_stale_poll(p, 45001, 25000), &tc);
  assert_null(syn_ws_peers_stale_poll(p, 1000000, 25000));
  /* Taken polls are gone from their slots: a new poll replaces nothing. */
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &tc, 50000, &b, &replaced), 1);
  assert_null(replaced);
  syn_buf_free(&b);
}

/* The maintenance thread reads its clock before taking the lock, so a poll parked or an
 * announce made in between carries a later time than the sweep's `now`: neither is old. */
static void test_clock_read_before_park(void **state) {
  syn_ws_peers *p = *state;
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token, 1000ull * T0, &b, &replaced), 1);
  assert_null(syn_ws_peers_stale_poll(p, 1000ull * T0 - 1, 25000));
  assert_null(syn_ws_peers_stale_poll(p, 1000ull * T0 - 1000, 0));
  assert_ptr_equal(syn_ws_peers_stale_poll(p, UINT64_MAX, 0), &token); /* shutdown takes all */
  join(p, 1, 1, "A", 7, 5, T0);
  assert_int_equal(syn_ws_peers_drop_idle(p, T0 - 1, 90), 0);
  assert_int_equal(stats(p).peers, 1);
  assert_int_equal(stats(p).routers, 2);
  syn_buf_free(&b);
}

/* ---- answers ---- */

static void test_answer_reaches_offerer_router(void **state) {
  syn_ws_peers *p = *state;
  req q, a;
  res r;
  join(p, 1, 2, "B", 9, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 1), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 1);
  /* Peer 2 (on B) answers peer 1's offer 0: the answer goes to A's outbox. */
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 5), 1, 0), T0 + 1, &r), 0);
  assert_int_equal(r.out.offers_sent, 0);
  assert_int_equal(r.out.local_count, 0);
  assert_int_equal(r.out.wake_count, 1);
  assert_int_equal(r.out.ws.incomplete, 2);
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "A", 7, &token, 2000, &b, &replaced), 0);
  Synapse__WsPush *push = unpack_push(&b);
  assert_int_equal(push->n_signals, 1);
  check_signal(push->signals[0], &a, -1, 1);
  synapse__ws_push__free_unpacked(push, NULL);
  syn_buf_free(&b);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.answers_sent, 1);
  assert_int_equal(s.offers_sent, 1);
  assert_int_equal(s.signals_dropped, 0);
}

static void test_answer_on_same_router_is_local(void **state) {
  syn_ws_peers *p = *state;
  req a;
  res r;
  join(p, 1, 1, "A", 7, 5, T0);
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "A", 7, 5), 1, 3), T0, &r), 0);
  assert_int_equal(r.out.local_count, 1);
  assert_int_equal(peer_of(r.local[0].to_peer_id), 1);
  assert_int_equal(r.local[0].offer, -1);
  assert_int_equal(r.out.wake_count, 0);
  assert_int_equal(r.out.offers_sent, 0);
  assert_int_equal(stats(p).answers_sent, 1);
}

static void test_answer_does_not_add_answerer(void **state) {
  syn_ws_peers *p = *state;
  req a;
  res r;
  join(p, 1, 1, "A", 7, 5, T0);
  /* Peer 2 never announced itself: answering adds it nowhere, even with left 0. */
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 0), 1, 0), T0, &r), 0);
  assert_int_equal(r.out.ws.complete, 0);
  assert_int_equal(r.out.ws.incomplete, 1);
  figures(p, 1, T0, 0, 1, 0);
  assert_int_equal(stats(p).peers, 1);
  /* Nor does it refresh one that did. */
  join(p, 1, 2, "B", 9, 5, T0);
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 5), 1, 0), T0 + TIMEOUT, &r), 0);
  figures(p, 1, T0 + TIMEOUT + 1, 0, 0, 0);
}

static void test_answer_to_missing_peer_dropped(void **state) {
  syn_ws_peers *p = *state;
  req a;
  res r;
  /* No swarm at all. */
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 5), 1, 0), T0, &r), 0);
  assert_int_equal(r.out.local_count + r.out.wake_count, 0);
  assert_int_equal(r.out.ws.complete + r.out.ws.incomplete + r.out.ws.downloaded, 0);
  /* A swarm, but not the offerer; then the offerer expired. */
  join(p, 1, 3, "A", 7, 5, T0);
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 5), 1, 0), T0, &r), 0);
  assert_int_equal(r.out.local_count + r.out.wake_count, 0);
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 5), 3, 0), T0 + TIMEOUT + 1, &r), 0);
  assert_int_equal(r.out.local_count + r.out.wake_count, 0);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.answers_sent, 0);
  assert_int_equal(s.signals_dropped, 3);
}

/* ---- routers ---- */

static void test_new_boot_drops_peers(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 1, "A", 7, 5, T0);
  join(p, 2, 2, "A", 7, 5, T0);
  join(p, 1, 3, "B", 9, 0, T0);
  assert_int_equal(stats(p).peers, 3);
  /* A restarted: what its previous process held is gone. */
  assert_int_equal(go(p, ann(&q, 3, 4, "A", 8, 5), T0 + 1, &r), 0);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.peers, 2);
  assert_int_equal(s.swarms, 2);
  assert_int_equal(s.routers, 2);
  figures(p, 1, T0 + 1, 1, 0, 0);
  figures(p, 2, T0 + 1, 0, 0, 0);
  figures(p, 3, T0 + 1, 0, 1, 0);
  /* The same boot again changes nothing. */
  join(p, 3, 5, "A", 8, 5, T0 + 1);
  assert_int_equal(stats(p).peers, 3);
  /* A new boot seen in a poll: B's peer and its waiting signal go. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 6, "A", 8, 5), 1), T0 + 1, &r), 0);
  assert_int_equal(r.out.wake_count, 1);
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "B", 10, &token, 1000ull * (T0 + 2), &b, &replaced), 1);
  assert_null(replaced);
  assert_int_equal(b.len, 0);
  figures(p, 1, T0 + 2, 0, 1, 0);
  assert_int_equal(stats(p).peers, 3);
  assert_int_equal(stats(p).routers, 2);
  syn_buf_free(&b);
}

static void test_drop_router(void **state) {
  syn_ws_peers *p = *state;
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  join(p, 1, 1, "A", 7, 5, T0);
  join(p, 2, 2, "A", 7, 0, T0);
  join(p, 1, 3, "B", 9, 5, T0);
  assert_int_equal(syn_ws_peers_poll(p, "A", 7, &token, 1000ull * T0, &b, &replaced), 1);
  char ids[SYN_WS_MAX_ROUTERS][SYN_WS_ROUTER_ID_MAX + 1];
  assert_int_equal(syn_ws_peers_routers(p, ids, SYN_WS_MAX_ROUTERS), 2);
  assert_int_equal(syn_ws_peers_routers(p, ids, 1), 1);
  assert_ptr_equal(syn_ws_peers_drop_router(p, "A"), &token);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.peers, 1);
  assert_int_equal(s.swarms, 1);
  assert_int_equal(s.routers, 1);
  figures(p, 1, T0, 0, 1, 0);
  figures(p, 2, T0, 0, 0, 0);
  assert_int_equal(syn_ws_peers_routers(p, ids, SYN_WS_MAX_ROUTERS), 1);
  assert_string_equal(ids[0], "B");
  /* Without a parked poll, or unknown: NULL. */
  assert_null(syn_ws_peers_drop_router(p, "B"));
  assert_int_equal(stats(p).peers, 0);
  assert_null(syn_ws_peers_drop_router(p, "nobody"));
  assert_int_equal(stats(p).routers, 0);
  /* A dropped router comes back afresh. */
  join(p, 1, 1, "A", 7, 5, T0 + 1);
  assert_int_equal(stats(p).peers, 1);
  syn_buf_free(&b);
}

static void test_drop_router_drops_outbox(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 2, "B", 9, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 1), T0, &r), 0);
  assert_int_equal(r.out.wake_count, 1);
  assert_null(syn_ws_peers_drop_router(p, "B"));
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token, 1000, &b, &replaced), 1);
  assert_int_equal(b.len, 0);
  syn_buf_free(&b);
}

static void test_drop_idle(void **state) {
  syn_ws_peers *p = *state;
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  enum { IDLE = 90 };
  join(p, 1, 1, "A", 7, 5, T0);
  join(p, 1, 2, "B", 9, 5, T0);
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token, 1000ull * T0, &b, &replaced), 1);
  assert_int_equal(syn_ws_peers_drop_idle(p, T0 + IDLE - 1, IDLE), 0);
  assert_int_equal(stats(p).routers, 2);
  /* A is silent and has no poll parked: dropped. B has one: kept, however old. */
  assert_int_equal(syn_ws_peers_drop_idle(p, T0 + IDLE, IDLE), 1);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.routers, 1);
  assert_int_equal(s.peers, 1);
  figures(p, 1, T0 + IDLE, 0, 1, 0);
  char ids[SYN_WS_MAX_ROUTERS][SYN_WS_ROUTER_ID_MAX + 1];
  assert_int_equal(syn_ws_peers_routers(p, ids, SYN_WS_MAX_ROUTERS), 1);
  assert_string_equal(ids[0], "B");
  assert_int_equal(syn_ws_peers_drop_idle(p, T0 + 10 * IDLE, IDLE), 0);
  /* Its poll taken (stale) and not renewed: B goes too. */
  assert_ptr_equal(syn_ws_peers_stale_poll(p, 1000ull * (T0 + 30), 25000), &token);
  assert_int_equal(syn_ws_peers_drop_idle(p, T0 + 10 * IDLE, IDLE), 1);
  assert_int_equal(stats(p).routers, 0);
  assert_int_equal(stats(p).peers, 0);
  syn_buf_free(&b);
}

static void test_announce_keeps_router_active(void **state) {
  syn_ws_peers *p = *state;
  enum { IDLE = 90 };
  join(p, 1, 1, "A", 7, 5, T0);
  join(p, 1, 1, "A", 7, 5, T0 + 60);
  assert_int_equal(syn_ws_peers_drop_idle(p, T0 + 100, IDLE), 0);
  assert_int_equal(syn_ws_peers_drop_idle(p, T0 + 60 + IDLE, IDLE), 1);
}

static void test_router_slots_bounded(void **state) {
  syn_ws_peers *p = *state;
  char name[16];
  for (int i = 0; i < SYN_WS_MAX_ROUTERS; i++) {
    snprintf(name, sizeof name, "r%d", i);
    join(p, 1, (uint32_t)i, name, 1, 5, T0);
  }
  assert_int_equal(stats(p).routers, SYN_WS_MAX_ROUTERS);
  req q;
  res r;
  assert_int_equal(go(p, ann(&q, 1, 999, "one too many", 1, 5), T0, &r), -ENOSPC);
  static char token;
  void *replaced = &token;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "one too many", 1, &token, 1000, &b, &replaced), -ENOSPC);
  assert_null(replaced);
  /* Known routers still poll. */
  assert_int_equal(syn_ws_peers_poll(p, "r3", 1, &token, 1000, &b, &replaced), 1);
  assert_int_equal(stats(p).peers, SYN_WS_MAX_ROUTERS);
  assert_ptr_equal(syn_ws_peers_drop_router(p, "r3"), &token);
  /* With a slot free, an id longer than membership's bound still has none. */
  char longid[SYN_WS_ROUTER_ID_MAX + 2];
  memset(longid, 'x', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  assert_int_equal(syn_ws_peers_poll(p, longid, 1, &token, 1000, &b, &replaced), -ENOSPC);
  assert_int_equal(go(p, ann(&q, 1, 999, longid, 1, 5), T0, &r), -ENOSPC);
  longid[SYN_WS_ROUTER_ID_MAX] = '\0'; /* at the bound: fine */
  assert_int_equal(syn_ws_peers_poll(p, longid, 1, &token, 1000, &b, &replaced), 1);
  assert_ptr_equal(syn_ws_peers_drop_router(p, longid), &token);
  /* The freed slot takes the newcomer. */
  assert_int_equal(go(p, ann(&q, 1, 999, "one too many", 1, 5), T0, &r), 0);
  assert_int_equal(stats(p).routers, SYN_WS_MAX_ROUTERS);
  syn_buf_free(&b);
}

static void test_peer_moves_router(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  join(p, 1, 2, "A", 7, 5, T0);
  join(p, 1, 2, "B", 9, 5, T0 + 1); /* the same peer, reconnected through B */
  assert_int_equal(stats(p).peers, 1);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 1), T0 + 1, &r), 0);
  assert_int_equal(r.out.local_count, 0);
  assert_int_equal(r.out.wake_count, 1);
  /* A's going takes only its own peers (peer 1), not the one that moved. */
  assert_null(syn_ws_peers_drop_router(p, "A"));
  assert_int_equal(stats(p).peers, 1);
  figures(p, 1, T0 + 1, 0, 1, 0);
  assert_null(syn_ws_peers_drop_router(p, "B"));
  assert_int_equal(stats(p).peers, 0);
}

/* ---- limits and malformed requests ---- */

static void test_malformed_requests(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  ann(&q, 1, 1, "A", 7, 5);
  q.r.info_hash.len = 19;
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  q.r.info_hash.len = 21;
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  ann(&q, 1, 1, "A", 7, 5);
  q.r.peer_id.len = 0;
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  with_offers(ann(&q, 1, 1, "A", 7, 5), SYN_WS_MAX_OFFERS + 1);
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  with_offers(ann(&q, 1, 1, "A", 7, 5), 3);
  q.offer_msgs[2].offer_id.len = 19;
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  with_answer(ann(&q, 1, 1, "A", 7, 5), 2, 0);
  q.r.has_to_peer_id = 0;
  q.r.to_peer_id = (ProtobufCBinaryData){0, NULL};
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  with_answer(ann(&q, 1, 1, "A", 7, 5), 2, 0);
  q.r.to_peer_id.len = 10;
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  with_answer(ann(&q, 1, 1, "A", 7, 5), 2, 0);
  q.r.has_offer_id = 0;
  q.r.offer_id = (ProtobufCBinaryData){0, NULL};
  assert_int_equal(go(p, &q, T0, &r), -EINVAL);
  /* Nothing was stored, not even a router slot. */
  syn_ws_stats s = stats(p);
  assert_int_equal(s.peers, 0);
  assert_int_equal(s.swarms, 0);
  assert_int_equal(s.routers, 0);
  /* The limit itself is fine. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), SYN_WS_MAX_OFFERS), T0, &r), 0);
}

static void test_swarm_full(void **state) {
  syn_ws_peers *p = *state;
  req q;
  res r;
  for (uint32_t i = 0; i < SYN_WS_MAX_SWARM_PEERS; i++) join(p, 1, i, "A", 7, 5, T0);
  figures(p, 1, T0, 0, SYN_WS_MAX_SWARM_PEERS, 0);
  assert_int_equal(go(p, ann(&q, 1, SYN_WS_MAX_SWARM_PEERS, "A", 7, 5), T0, &r), -ENOSPC);
  figures(p, 1, T0, 0, SYN_WS_MAX_SWARM_PEERS, 0);
  /* A full swarm still refreshes its peers, and offers from them go out. */
  assert_int_equal(go(p, with_offers(ann(&q, 1, 7, "A", 7, 0), 4), T0 + 1, &r), 0);
  assert_int_equal(r.out.offers_sent, 4);
  figures(p, 1, T0 + 1, 1, SYN_WS_MAX_SWARM_PEERS - 1, 0);
  /* Other swarms are not full. */
  join(p, 2, SYN_WS_MAX_SWARM_PEERS, "A", 7, 5, T0);
  assert_int_equal(stats(p).peers, SYN_WS_MAX_SWARM_PEERS + 1);
  /* One leaves: the newcomer fits. */
  assert_int_equal(
      go(p, with_event(ann(&q, 1, 0, "A", 7, 5), SYNAPSE__EVENT__EVENT_STOPPED), T0 + 1, &r), 0);
  join(p, 1, SYN_WS_MAX_SWARM_PEERS, "A", 7, 5, T0 + 1);
}

static void test_max_peers(void **state) {
  (void)state;
  syn_ws_peers *p = syn_ws_peers_new(TIMEOUT, 3);
  assert_non_null(p);
  req q;
  res r;
  join(p, 1, 1, "A", 7, 5, T0);
  join(p, 1, 2, "A", 7, 5, T0);
  join(p, 2, 3, "A", 7, 5, T0);
  assert_int_equal(go(p, ann(&q, 1, 4, "A", 7, 5), T0, &r), -ENOSPC);
  assert_int_equal(go(p, ann(&q, 3, 4, "A", 7, 5), T0, &r), -ENOSPC);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.peers, 3);
  assert_int_equal(s.swarms, 2); /* the refused peer's swarm was not left behind */
  figures(p, 3, T0, 0, 0, 0);
  join(p, 1, 1, "A", 7, 0, T0 + 1); /* refreshing is not adding */
  assert_int_equal(
      go(p, with_event(ann(&q, 2, 3, "A", 7, 5), SYNAPSE__EVENT__EVENT_STOPPED), T0 + 1, &r), 0);
  join(p, 3, 4, "A", 7, 5, T0 + 1);
  assert_int_equal(stats(p).peers, 3);
  syn_ws_peers_free(p);
}

static void test_outbox_bounded(void **state) {
  syn_ws_peers *p = *state;
  enum { BIG = 80 * 1024 };
  char *big = malloc(BIG);
  assert_non_null(big);
  memset(big, 'x', BIG);
  for (uint32_t i = 1; i <= SYN_WS_MAX_OFFERS; i++) join(p, 1, 1000 + i, "B", 9, 5, T0);
  req q;
  res r;
  with_offers(ann(&q, 1, 1, "A", 7, 5), SYN_WS_MAX_OFFERS);
  for (size_t k = 0; k < SYN_WS_MAX_OFFERS; k++)
    q.offer_msgs[k].offer = (ProtobufCBinaryData){BIG, (uint8_t *)big};
  assert_int_equal(go(p, &q, T0, &r), 0);
  /* 64 x 80 KiB does not fit in B's 4 MiB: the rest are dropped. */
  uint32_t fit = SYN_WS_OUTBOX_BYTES / (BIG + 100);
  assert_in_range(r.out.offers_sent, fit - 1, fit + 1);
  assert_true(r.out.offers_sent < SYN_WS_MAX_OFFERS);
  assert_int_equal(r.out.wake_count, 1);
  syn_ws_stats s = stats(p);
  assert_int_equal(s.offers_sent, r.out.offers_sent);
  assert_int_equal(s.signals_dropped, SYN_WS_MAX_OFFERS - r.out.offers_sent);
  static char token;
  void *replaced;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_peers_poll(p, "B", 9, &token, 1000, &b, &replaced), 0);
  assert_true(b.len <= SYN_WS_OUTBOX_BYTES);
  Synapse__WsPush *push = unpack_push(&b);
  assert_int_equal(push->n_signals, r.out.offers_sent);
  for (size_t i = 0; i < push->n_signals; i++) assert_int_equal(push->signals[i]->offer.len, BIG);
  synapse__ws_push__free_unpacked(push, NULL);
  /* Emptied: room again. */
  assert_int_equal(go(p, &q, T0, &r), 0);
  assert_in_range(r.out.offers_sent, fit - 1, fit + 1);
  syn_buf_free(&b);
  free(big);
}

static void test_add_figures(void **state) {
  syn_ws_peers *p = *state;
  join(p, 1, 1, "A", 7, 0, T0);
  join(p, 1, 2, "A", 7, 5, T0);
  join(p, 1, 3, "B", 9, -1, T0);
  req q;
  res r;
  assert_int_equal(
      go(p, with_event(ann(&q, 1, 2, "A", 7, 0), SYNAPSE__EVENT__EVENT_COMPLETED), T0, &r), 0);
  uint8_t ih[20];
  hash_of(ih, 1);
  syn_scrape_result f = {10, 20, 30};
  syn_ws_peers_add_figures(p, ih, T0, &f);
  assert_int_equal(f.complete, 12);
  assert_int_equal(f.incomplete, 21);
  assert_int_equal(f.downloaded, 31);
  syn_ws_peers_add_figures(NULL, ih, T0, &f);
  assert_int_equal(f.complete, 12);
  assert_int_equal(f.incomplete, 21);
  assert_int_equal(f.downloaded, 31);
  hash_of(ih, 2);
  syn_ws_peers_add_figures(p, ih, T0, &f); /* no such swarm: nothing added */
  assert_int_equal(f.complete, 12);
  assert_int_equal(f.incomplete, 21);
  assert_int_equal(f.downloaded, 31);
}

static void test_stats(void **state) {
  syn_ws_peers *p = *state;
  req q, a;
  res r;
  syn_ws_stats s = stats(p);
  assert_int_equal(s.swarms + s.peers + s.routers, 0);
  assert_int_equal(s.offers_sent + s.answers_sent + s.signals_dropped, 0);
  join(p, 1, 2, "B", 9, 5, T0);
  join(p, 1, 3, "A", 7, 5, T0);
  join(p, 2, 4, "C", 1, 5, T0);
  assert_int_equal(go(p, with_offers(ann(&q, 1, 1, "A", 7, 5), 4), T0, &r), 0);
  assert_int_equal(r.out.offers_sent, 2);
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 5), 1, 0), T0, &r), 0);
  assert_int_equal(go(p, with_answer(ann(&a, 1, 2, "B", 9, 5), 77, 0), T0, &r), 0);
  s = stats(p);
  assert_int_equal(s.swarms, 2);
  assert_int_equal(s.peers, 4);
  assert_int_equal(s.routers, 3);
  assert_int_equal(s.offers_sent, 2);
  assert_int_equal(s.answers_sent, 1);
  assert_int_equal(s.signals_dropped, 1);
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(test_announce_adds_and_counts),
      CASE(test_refresh),
      CASE(test_stopped_removes),
      CASE(test_expiry),
      CASE(test_expired_peer_gets_no_offer),
      CASE(test_many_swarms),
      CASE(test_offers_go_to_distinct_other_peers),
      CASE(test_offers_reach_every_peer_over_time),
      CASE(test_seed_offers_only_to_leechers),
      CASE(test_more_offers_than_receivers),
      CASE(test_offer_to_same_router_is_local),
      CASE(test_offer_to_other_router_is_queued),
      CASE(test_collect_returns_parked_poll_and_outbox),
      CASE(test_collect_without_parked_poll_keeps_signals),
      CASE(test_poll_parks_and_replaces),
      CASE(test_stale_poll),
      CASE(test_clock_read_before_park),
      CASE(test_answer_reaches_offerer_router),
      CASE(test_answer_on_same_router_is_local),
      CASE(test_answer_does_not_add_answerer),
      CASE(test_answer_to_missing_peer_dropped),
      CASE(test_new_boot_drops_peers),
      CASE(test_drop_router),
      CASE(test_drop_router_drops_outbox),
      CASE(test_drop_idle),
      CASE(test_announce_keeps_router_active),
      CASE(test_router_slots_bounded),
      CASE(test_peer_moves_router),
      CASE(test_malformed_requests),
      CASE(test_swarm_full),
      CASE(test_max_peers),
      CASE(test_outbox_bounded),
      CASE(test_add_figures),
      CASE(test_stats),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
