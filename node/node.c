/* Node request serving. Design notes:
 *
 * - One nng rep0 socket, `workers` contexts, each driven by its own thread in a blocking
 *   recv -> handle -> send loop. Threads rather than aio callbacks because handlers may
 *   block (SQLite, faiss) and nng's callback threads must not.
 * - Per worker, an arena holds the unpacked batch and a scratch buffer holds every peer
 *   list of the reply; both are reset per batch, so steady state allocates nothing but the
 *   nng messages themselves.
 * - Replies are appended to the BatchReply one by one (proto/wire.h), in request order. */
#include "node/node.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/membership.h"
#include "common/cluster_auth.h"
#include "common/log.h"
#include "common/nng_close.h"
#include "node/replica.h"
#include "node/shards.h"
#include "node/swarm.h"
#include "node/swarm_snapshot.h"
#include "node/ws_peers.h"
#include "proto/wire.h"

#define NODE_CLOSE_WAIT_MS 3000 /* a stopping node waits this long for nng (nng_close.h) */
#define EXPIRE_BUDGET 256       /* swarms visited per maintenance tick */
#define EXPIRE_TICK_MS 100
#define MAX_WORKERS 64
#define WS_POLL_HOLD_MS 15000 /* a parked poll is answered empty after this (router waits 30 s) */
#define WS_MAX_PEERS (1u << 20)
#define WS_ROUTER_CHECK_MS 1000 /* routers with WebSocket peers checked against membership */
#define REPORTED_LAGS 64
#define WORKER_POLL_MS                                                                       \
  100 /* how soon a worker notices that the node stops */ /* replicas whose lag a StatsReply \
                                                             carries */

typedef struct node_worker {
  struct syn_node *node;
  pthread_t thread;
  nng_ctx ctx;
  nng_aio *aio;
  syn_arena arena;
  syn_buf peers; /* scratch for peer lists of one batch */
  syn_buf reply; /* the BatchReply being built */
  /* syn_node_serve_inline's reply, valid until its next call */
  Synapse__AnnounceReply announce;
  Synapse__ScrapeReply scrape;
  syn_buf entries;
  syn_buf push; /* a WsPush body collected for a poll */
  /* the batch being served is one WsPoll (handle_batch): park it rather than answer */
  const Synapse__WsPoll *poll;
  uint64_t poll_id;
} node_worker;

/* A router's WsPoll held until signals arrive for it (node/ws_peers.h stores the pointer).
 * Owns its nng context: the worker that received the poll opened a new one for itself. */
typedef struct parked_poll {
  nng_ctx ctx;
  uint64_t id;
  uint8_t tag[SYN_CLUSTER_AUTH_TAG];
} parked_poll;

struct syn_node {
  nng_socket sock;
  syn_cluster_auth *auth; /* the membership's: batches opened, replies sealed; NULL: open */
  syn_swarm_store *swarms;
  syn_ws_peers *ws;               /* WebTorrent peers of the same swarms */
  struct syn_membership *members; /* NULL standalone */
  syn_shards shards;
  uint32_t max_numwant;
  uint32_t full_scrape_max;
  size_t worker_count;
  node_worker workers[MAX_WORKERS];
  node_worker inline_worker; /* syn_node_serve_inline's buffers: its caller's thread */
  pthread_t maintenance;
  bool maintenance_started;
  atomic_bool stopping;
  atomic_uint_fast64_t announces;
  atomic_uint_fast64_t scrapes;
  /* Warm restart (node/swarm_snapshot.h): loaded at start, written at stop. */
  uint32_t min_interval;
  atomic_uint_fast64_t announces_early;
  char *snapshot_path; /* NULL: snapshots off */
  uint64_t snapshot_max_bytes;
  bool snapshot_save; /* set once the node has started: a failed start keeps the old file */
  syn_snapshot_stats snapshot_loaded;
};

static uint32_t now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)ts.tv_sec;
}

/* Bytes of scratch one announce may need, so pointers into it stay valid. */
static size_t announce_scratch(const Synapse__AnnounceRequest *a, uint32_t numwant) {
  size_t per = 6 + 18 + (a->want_peer_ids ? 40 : 0);
  return (size_t)numwant * per;
}

static uint32_t numwant_of(const syn_node *node, const Synapse__AnnounceRequest *a) {
  uint32_t numwant = a->has_numwant ? a->numwant : 50;
  return numwant > node->max_numwant ? node->max_numwant : numwant;
}

static void reply_error(Synapse__Reply *rep, Synapse__ErrorCode code, char *message) {
  rep->has_error = 1;
  rep->error = code;
  rep->message = message;
}

static void handle_announce(syn_node *node, node_worker *w, const Synapse__AnnounceRequest *a,
                            uint32_t now, Synapse__Reply *rep, Synapse__AnnounceReply *out) {
  if (a->info_hash.len != 20 || a->peer_id.len != 20 || (a->ip.len != 4 && a->ip.len != 16) ||
      a->port > 65535) {
    reply_error(rep, SYNAPSE__ERROR_CODE__BAD_REQUEST, "malformed announce");
    return;
  }
  if (!syn_registered_has(node->shards.registered, a->info_hash.data)) {
    reply_error(rep, SYNAPSE__ERROR_CODE__NOT_REGISTERED, "info_hash is not registered as a shard");
    return;
  }
  uint32_t numwant = numwant_of(node, a);
  uint8_t *scratch = w->peers.data + w->peers.len;
  w->peers.len += announce_scratch(a, numwant);

  syn_announce req = {
      .info_hash = a->info_hash.data,
      .peer_id = a->peer_id.data,
      .ip = a->ip.data,
      .ip_len = a->ip.len,
      .port = (uint16_t)a->port,
      .event = a->event,
      .left = a->left,
      .numwant = numwant,
      .families = a->families,
      .want_peer_ids = a->want_peer_ids,
      .min_interval = node->min_interval,
  };
  syn_announce_result res = {.peers4 = scratch, .peers6 = scratch + 6 * (size_t)numwant};
  if (a->want_peer_ids) {
    res.peer_ids4 = scratch + 24 * (size_t)numwant;
    res.peer_ids6 = scratch + 44 * (size_t)numwant;
  }
  int rc = syn_swarm_announce(node->swarms, &req, now, &res);
  if (rc) {
    reply_error(rep,
                rc == -ENOMEM ? SYNAPSE__ERROR_CODE__INTERNAL : SYNAPSE__ERROR_CODE__BAD_REQUEST,
                rc == -ENOMEM ? "out of memory" : "malformed announce");
    return;
  }
  atomic_fetch_add_explicit(&node->announces, 1, memory_order_relaxed);
  if (res.early)
    atomic_fetch_add_explicit(&node->announces_early, 1, memory_order_relaxed);
  else
    syn_replica_announce(node->shards.replica, a); /* nothing changed: nothing to replicate */
  syn_scrape_result sum = {res.complete, res.incomplete, res.downloaded};
  syn_ws_peers_add_figures(node->ws, a->info_hash.data, now, &sum);
  out->complete = sum.complete;
  out->incomplete = sum.incomplete;
  out->downloaded = sum.downloaded;
  out->has_peers4 = 1;
  out->peers4.data = res.peers4;
  out->peers4.len = res.peers4_count * 6;
  out->has_peers6 = 1;
  out->peers6.data = res.peers6;
  out->peers6.len = res.peers6_count * 18;
  if (a->want_peer_ids) {
    out->has_peer_ids4 = out->has_peer_ids6 = 1;
    out->peer_ids4.data = res.peer_ids4;
    out->peer_ids4.len = res.peers4_count * 20;
    out->peer_ids6.data = res.peer_ids6;
    out->peer_ids6.len = res.peers6_count * 20;
  }
  rep->body_case = SYNAPSE__REPLY__BODY_ANNOUNCE;
  rep->announce = out;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void put_scrape_entry(uint8_t *p, const uint8_t hash[20], const syn_scrape_result *r) {
  memcpy(p, hash, 20);
  put_be32(p + 20, r->complete);
  put_be32(p + 24, r->downloaded);
  put_be32(p + 28, r->incomplete);
}

typedef struct full_scrape_ctx {
  syn_node *node;
  uint32_t now;
  syn_buf *out;
  bool failed;
} full_scrape_ctx;

static void full_scrape_visit(void *ctx, const uint8_t info_hash[20], const syn_scrape_result *r) {
  full_scrape_ctx *fs = ctx;
  if (fs->failed || syn_buf_reserve(fs->out, 32)) {
    fs->failed = true;
    return;
  }
  syn_scrape_result sum = *r;
  syn_ws_peers_add_figures(fs->node->ws, info_hash, fs->now, &sum);
  put_scrape_entry(fs->out->data + fs->out->len, info_hash, &sum);
  fs->out->len += 32;
}

/* Scrape entries go to a heap buffer owned by `entries`, freed after packing. */
static void handle_scrape(syn_node *node, const Synapse__ScrapeRequest *s, uint32_t now,
                          Synapse__Reply *rep, Synapse__ScrapeReply *out, syn_buf *entries) {
  atomic_fetch_add_explicit(&node->scrapes, 1, memory_order_relaxed);
  if (s->n_info_hash == 0) {
    uint32_t max =
        s->max_full && s->max_full < node->full_scrape_max ? s->max_full : node->full_scrape_max;
    full_scrape_ctx fs = {.node = node, .now = now, .out = entries};
    syn_swarm_foreach(node->swarms, max, full_scrape_visit, &fs);
    if (fs.failed) {
      reply_error(rep, SYNAPSE__ERROR_CODE__INTERNAL, "out of memory");
      return;
    }
  } else {
    if (syn_buf_reserve(entries, 32 * s->n_info_hash)) {
      reply_error(rep, SYNAPSE__ERROR_CODE__INTERNAL, "out of memory");
      return;
    }
    for (size_t i = 0; i < s->n_info_hash; i++) {
      if (s->info_hash[i].len != 20) {
        reply_error(rep, SYNAPSE__ERROR_CODE__BAD_REQUEST, "info_hash must be 20 bytes");
        return;
      }
      syn_scrape_result r;
      syn_swarm_scrape(node->swarms, s->info_hash[i].data, now, &r);
      syn_ws_peers_add_figures(node->ws, s->info_hash[i].data, now, &r);
      put_scrape_entry(entries->data + entries->len, s->info_hash[i].data, &r);
      entries->len += 32;
    }
  }
  out->entries.data = entries->data;
  out->entries.len = entries->len;
  rep->body_case = SYNAPSE__REPLY__BODY_SCRAPE;
  rep->scrape = out;
}

static void handle_stats(syn_node *node, Synapse__Reply *rep, Synapse__StatsReply *out) {
  syn_swarm_totals t;
  syn_swarm_totals_get(node->swarms, &t);
  out->torrents = t.torrents;
  out->peers = t.peers;
  out->seeders = t.seeders;
  out->peer_bytes = t.peer_bytes;
  out->announces = atomic_load_explicit(&node->announces, memory_order_relaxed);
  out->scrapes = atomic_load_explicit(&node->scrapes, memory_order_relaxed);
  out->has_announces_early = out->has_snapshot_peers_loaded = out->has_snapshot_peers_saved = 1;
  out->has_snapshot_peers_expired = out->has_snapshot_load_us = 1;
  out->announces_early = atomic_load_explicit(&node->announces_early, memory_order_relaxed);
  out->snapshot_peers_loaded = node->snapshot_loaded.peers;
  out->snapshot_peers_saved = node->snapshot_loaded.file_peers;
  out->snapshot_peers_expired = node->snapshot_loaded.expired;
  out->snapshot_load_us = node->snapshot_loaded.elapsed_us;
  syn_ws_stats ws;
  syn_ws_peers_stats(node->ws, &ws);
  out->has_ws_peers = out->has_ws_signals = out->has_ws_signals_dropped = 1;
  out->ws_peers = ws.peers;
  out->ws_signals = ws.offers_sent + ws.answers_sent;
  out->ws_signals_dropped = ws.signals_dropped;
  syn_index_stats is;
  if (node->shards.index && syn_index_stats_get(node->shards.index, &is) == 0) {
    out->has_shards = out->has_vectors = out->has_searches = 1;
    out->shards = (uint64_t)is.shards;
    for (size_t i = 0; i < is.collection_count; i++) out->vectors += is.collections[i].vectors;
    out->searches = is.vector_searches + is.text_searches;
    out->has_search_partitions = out->has_search_partitions_unserved = 1;
    out->search_partitions = atomic_load(&node->shards.search_partitions);
    out->search_partitions_unserved = atomic_load(&node->shards.search_unserved);
  }
  out->has_caught_up = 1;
  out->caught_up = syn_replica_serving(node->shards.replica);
  static _Thread_local Synapse__ReplicationLag lag[REPORTED_LAGS];
  static _Thread_local Synapse__ReplicationLag *lag_ptrs[REPORTED_LAGS];
  static _Thread_local char lag_ids[REPORTED_LAGS][SYN_MEMBER_ID_MAX + 1];
  size_t n = syn_replica_lag(node->shards.replica, lag, lag_ids, REPORTED_LAGS);
  for (size_t i = 0; i < n; i++) lag_ptrs[i] = &lag[i];
  out->lag = lag_ptrs;
  out->n_lag = n;
  static _Thread_local Synapse__SyncRound rounds[2];
  static _Thread_local Synapse__SyncRound *round_ptrs[2];
  out->n_sync = syn_replica_sync_rounds(node->shards.replica, rounds, 2);
  for (size_t i = 0; i < out->n_sync; i++) round_ptrs[i] = &rounds[i];
  out->sync = round_ptrs;
  rep->body_case = SYNAPSE__REPLY__BODY_STATS;
  rep->stats = out;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Answers a parked poll with `push` (an encoded WsPush body, possibly empty) and frees it.
 * Any thread; blocks only while nng queues the reply. */
static void answer_poll(syn_node *node, parked_poll *pp, const syn_buf *push) {
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = pp->id;
  syn_buf body = SYN_BUF_INIT, batch = SYN_BUF_INIT;
  nng_msg *msg = NULL;
  nng_aio *aio = NULL;
  /* A Reply is its id, then the WsPush as field 14, then wrapped as BatchReply field 1. */
  static const uint8_t empty[1];
  bool has = push && push->len;
  if (syn_wire_pack(&body, &rep.base) == 0 &&
      syn_wire_append_bytes_field(&body, 14, has ? push->data : empty, has ? push->len : 0) == 0 &&
      syn_wire_append_bytes_field(&batch, 1, body.data, body.len) == 0 &&
      syn_cluster_auth_sealed_msg(node->auth, &msg, batch.data, batch.len, NULL, 0,
                                  SYN_AUTH_BATCH_REPLY, pp->tag, NULL) == 0 &&
      nng_aio_alloc(&aio, NULL, NULL) == 0) {
    nng_aio_set_msg(aio, msg);
    nng_ctx_send(pp->ctx, aio);
    nng_aio_wait(aio);
    if (nng_aio_result(aio) == 0) msg = NULL;
  }
  if (msg) nng_msg_free(msg);
  if (aio) nng_aio_free(aio);
  nng_ctx_close(pp->ctx);
  syn_buf_free(&body);
  syn_buf_free(&batch);
  free(pp);
}

/* Answers the parked polls of routers an announce queued signals for. */
static void wake_routers(syn_node *node, const syn_ws_announce_result *res, syn_buf *push) {
  for (size_t i = 0; i < res->wake_count; i++) {
    parked_poll *pp = syn_ws_peers_collect(node->ws, res->wake[i], push);
    if (pp) answer_poll(node, pp, push);
  }
}

static void handle_ws_announce(syn_node *node, node_worker *w, const Synapse__WsAnnounceRequest *a,
                               uint32_t now, Synapse__Reply *rep, Synapse__WsAnnounceReply *out,
                               syn_ws_local *local, Synapse__WsSignal *sigs,
                               Synapse__WsSignal **sig_ptrs) {
  if (a->info_hash.len != 20) {
    reply_error(rep, SYNAPSE__ERROR_CODE__BAD_REQUEST, "malformed announce");
    return;
  }
  if (!syn_registered_has(node->shards.registered, a->info_hash.data)) {
    reply_error(rep, SYNAPSE__ERROR_CODE__NOT_REGISTERED, "info_hash is not registered as a shard");
    return;
  }
  syn_ws_announce_result res;
  int rc = syn_ws_peers_announce(node->ws, a, now, local, &res);
  if (rc) {
    reply_error(rep,
                rc == -EINVAL   ? SYNAPSE__ERROR_CODE__BAD_REQUEST
                : rc == -ENOSPC ? SYNAPSE__ERROR_CODE__UNAVAILABLE
                                : SYNAPSE__ERROR_CODE__INTERNAL,
                rc == -EINVAL   ? "malformed announce"
                : rc == -ENOSPC ? "too many WebSocket peers"
                                : "out of memory");
    return;
  }
  wake_routers(node, &res, &w->push);
  syn_replica_ws_announce(node->shards.replica, a); /* the peer, for a replica taking over */
  syn_scrape_result bt;
  syn_swarm_scrape(node->swarms, a->info_hash.data, now, &bt);
  out->complete = bt.complete + res.ws.complete;
  out->incomplete = bt.incomplete + res.ws.incomplete;
  out->downloaded = bt.downloaded + res.ws.downloaded;
  out->has_offers_sent = 1;
  out->offers_sent = res.offers_sent;
  for (size_t i = 0; i < res.local_count; i++) {
    Synapse__WsSignal *sg = &sigs[i];
    *sg = (Synapse__WsSignal)SYNAPSE__WS_SIGNAL__INIT;
    sg->info_hash = a->info_hash;
    sg->to_peer_id.data = local[i].to_peer_id;
    sg->to_peer_id.len = 20;
    sg->from_peer_id = a->peer_id;
    if (local[i].offer >= 0) {
      sg->offer_id = a->offers[local[i].offer]->offer_id;
      sg->has_offer = 1;
      sg->offer = a->offers[local[i].offer]->offer;
    } else {
      sg->offer_id = a->offer_id;
      sg->has_answer = 1;
      sg->answer = a->answer;
    }
    sig_ptrs[i] = sg;
  }
  out->signals = sig_ptrs;
  out->n_signals = res.local_count;
  rep->body_case = SYNAPSE__REPLY__BODY_WS_ANNOUNCE;
  rep->ws_announce = out;
}

/* Reserves scratch for the whole batch up front so that pointers into it stay valid
 * while replies are built. */
static int reserve_batch_scratch(syn_node *node, node_worker *w, const Synapse__Batch *batch) {
  size_t need = 0;
  for (size_t i = 0; i < batch->n_requests; i++) {
    const Synapse__Request *r = batch->requests[i];
    if (r->body_case != SYNAPSE__REQUEST__BODY_ANNOUNCE) continue;
    need += announce_scratch(r->announce, numwant_of(node, r->announce));
  }
  syn_buf_reset(&w->peers);
  return syn_buf_reserve(&w->peers, need + 1);
}

static void handle_request(syn_node *node, node_worker *w, const Synapse__Request *req,
                           uint32_t now, int64_t deadline_ms) {
  if (syn_shards_handles(req)) {
    syn_shards_handle(&node->shards, req, now, deadline_ms, &w->reply);
    return;
  }
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  Synapse__AnnounceReply announce = SYNAPSE__ANNOUNCE_REPLY__INIT;
  Synapse__ScrapeReply scrape = SYNAPSE__SCRAPE_REPLY__INIT;
  Synapse__StatsReply stats = SYNAPSE__STATS_REPLY__INIT;
  Synapse__WsAnnounceReply ws = SYNAPSE__WS_ANNOUNCE_REPLY__INIT;
  syn_ws_local local[SYN_WS_MAX_OFFERS + 1]; /* the reply's signals point into these */
  Synapse__WsSignal sigs[SYN_WS_MAX_OFFERS + 1];
  Synapse__WsSignal *sig_ptrs[SYN_WS_MAX_OFFERS + 1];
  syn_buf entries = SYN_BUF_INIT;
  rep.id = req->id;
  switch (req->body_case) {
  case SYNAPSE__REQUEST__BODY_ANNOUNCE:
    handle_announce(node, w, req->announce, now, &rep, &announce);
    break;
  case SYNAPSE__REQUEST__BODY_SCRAPE:
    handle_scrape(node, req->scrape, now, &rep, &scrape, &entries);
    break;
  case SYNAPSE__REQUEST__BODY_STATS: handle_stats(node, &rep, &stats); break;
  case SYNAPSE__REQUEST__BODY_WS_ANNOUNCE:
    handle_ws_announce(node, w, req->ws_announce, now, &rep, &ws, local, sigs, sig_ptrs);
    break;
  default: reply_error(&rep, SYNAPSE__ERROR_CODE__BAD_REQUEST, "unknown request"); break;
  }
  if (syn_wire_append_field1(&w->reply, &rep.base)) syn_error("node: out of memory packing reply");
  syn_buf_free(&entries);
}

/* Serves one encoded Batch into w->reply. */
static int handle_batch(syn_node *node, node_worker *w, const uint8_t *data, size_t len) {
  syn_arena_reset(&w->arena);
  ProtobufCAllocator alloc = syn_wire_allocator(&w->arena);
  Synapse__Batch *batch = synapse__batch__unpack(&alloc, len, data);
  syn_buf_reset(&w->reply);
  if (!batch) return -EPROTO; /* undecodable: dropped, the router's deadline answers */
  w->poll = NULL;
  if (batch->n_requests == 1 && batch->requests[0]->body_case == SYNAPSE__REQUEST__BODY_WS_POLL) {
    w->poll = batch->requests[0]->ws_poll; /* lives in the arena until the next batch */
    w->poll_id = batch->requests[0]->id;
    return 0;
  }
  if (reserve_batch_scratch(node, w, batch)) return -ENOMEM;
  uint32_t now = now_seconds();
  int64_t deadline = batch->has_deadline_unix_ms ? batch->deadline_unix_ms : 0;
  size_t regs = 0;
  for (size_t i = 0; i < batch->n_requests; i++) {
    Synapse__Request *r = batch->requests[i];
    if (r->body_case == SYNAPSE__REQUEST__BODY_REGISTER)
      batch->requests[regs++] = r; /* registrations to the front, the rest served now */
    else
      handle_request(node, w, r, now, deadline);
  }
  /* Every registration of the batch in one group commit and one copy per replica. */
  if (regs)
    syn_shards_register(&node->shards, (const Synapse__Request *const *)batch->requests, regs,
                        deadline, &w->reply);
  return 0;
}

/* The batch was one WsPoll: the worker hands its context to the poll (answered now when
 * signals wait, else parked until some arrive) and serves on with a fresh one. */
static void serve_poll(syn_node *node, node_worker *w, const uint8_t tag[SYN_CLUSTER_AUTH_TAG]) {
  nng_ctx fresh;
  parked_poll *pp = malloc(sizeof *pp);
  if (!pp) return; /* unanswered: the router's deadline re-polls */
  if (nng_ctx_open(&fresh, node->sock)) {
    free(pp);
    return;
  }
  pp->ctx = w->ctx;
  pp->id = w->poll_id;
  memcpy(pp->tag, tag, SYN_CLUSTER_AUTH_TAG);
  w->ctx = fresh;
  void *replaced = NULL;
  int rc = syn_ws_peers_poll(node->ws, w->poll->router, w->poll->boot, pp, now_ms(), &w->push,
                             &replaced);
  if (rc != 1) answer_poll(node, pp, rc == 0 ? &w->push : NULL);
  if (replaced) answer_poll(node, replaced, NULL);
}

static void *worker_main(void *arg) {
  node_worker *w = arg;
  syn_node *node = w->node;
  while (!atomic_load(&node->stopping)) {
    /* A bounded wait, so that the worker sees `stopping` by itself: the socket is closed
     * only once no worker uses it (closing it under a context in use panics nng). */
    nng_aio_set_timeout(w->aio, WORKER_POLL_MS);
    nng_ctx_recv(w->ctx, w->aio);
    nng_aio_wait(w->aio);
    int rv = nng_aio_result(w->aio);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) break;
    if (rv) continue;
    nng_msg *msg = nng_aio_get_msg(w->aio);
    uint8_t tag[SYN_CLUSTER_AUTH_TAG];
    if (syn_cluster_auth_open(node->auth, msg, SYN_AUTH_BATCH_REQUEST, NULL, tag)) {
      nng_msg_free(msg); /* no or wrong cluster MAC: counted, never parsed, unanswered */
      continue;
    }
    int rc = handle_batch(node, w, nng_msg_body(msg), nng_msg_len(msg));
    nng_msg_free(msg);
    if (rc == 0 && w->poll) {
      serve_poll(node, w, tag);
      continue;
    }
    /* On failure nothing is answered; the router's deadline reports it. */
    if (rc || syn_cluster_auth_sealed_msg(node->auth, &msg, w->reply.data, w->reply.len, NULL, 0,
                                          SYN_AUTH_BATCH_REPLY, tag, NULL))
      continue;
    nng_aio_set_msg(w->aio, msg);
    nng_aio_set_timeout(w->aio, NNG_DURATION_DEFAULT);
    nng_ctx_send(w->ctx, w->aio);
    nng_aio_wait(w->aio);
    if (nng_aio_result(w->aio)) nng_msg_free(msg);
  }
  return NULL;
}

/* Routers membership calls dead or gone lose their WebSocket peers; so do routers that
 * stopped polling without membership noticing (they always keep a poll parked). */
static void check_ws_routers(syn_node *node) {
  static char ids[SYN_WS_MAX_ROUTERS][SYN_WS_ROUTER_ID_MAX + 1];
  static syn_member_info members[SYN_WS_MAX_ROUTERS * 4];
  size_t n = syn_ws_peers_routers(node->ws, ids, SYN_WS_MAX_ROUTERS), count = 0;
  if (n == 0) return;
  syn_membership_snapshot(node->members, members, sizeof members / sizeof *members, &count, NULL,
                          NULL);
  if (count > sizeof members / sizeof *members) count = sizeof members / sizeof *members;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < count; j++) {
      if (strcmp(members[j].id, ids[i]) != 0) continue;
      if (members[j].state == SYN_MEMBER_DEAD || members[j].state == SYN_MEMBER_LEFT) {
        parked_poll *pp = syn_ws_peers_drop_router(node->ws, ids[i]);
        syn_info("node: router %s is %s: its WebSocket peers leave their swarms", ids[i],
                 syn_member_state_name(members[j].state));
        if (pp) answer_poll(node, pp, NULL);
      }
      break;
    }
  }
  if (syn_ws_peers_drop_idle(node->ws, now_seconds(), 2 * WS_POLL_HOLD_MS / 1000 + 30))
    syn_info("node: routers silent for a minute lost their WebSocket peers");
}

static void *maintenance_main(void *arg) {
  syn_node *node = arg;
  uint64_t last_check = 0;
  while (!atomic_load(&node->stopping)) {
    uint32_t now = now_seconds();
    syn_swarm_expire_step(node->swarms, now, EXPIRE_BUDGET);
    syn_ws_peers_expire_step(node->ws, now, EXPIRE_BUDGET);
    parked_poll *pp;
    while ((pp = syn_ws_peers_stale_poll(node->ws, now_ms(), WS_POLL_HOLD_MS)))
      answer_poll(node, pp, NULL);
    if (node->members && now_ms() - last_check >= WS_ROUTER_CHECK_MS) {
      last_check = now_ms();
      check_ws_routers(node);
    }
    nng_msleep(EXPIRE_TICK_MS);
  }
  return NULL;
}

/* Warm restart: the swarms the last stop wrote, before anything is served. A refused file
 * is logged and the node starts empty. In a cluster the first hand-off pass then pulls
 * every held partition's swarms as after any start (node/sync.c), adding to these. */
static void snapshot_load(syn_node *node, const syn_config *cfg) {
  if (!cfg->swarm_snapshot) return;
  size_t n = strlen(cfg->data_dir) + sizeof "/" SYN_SNAPSHOT_FILE;
  node->snapshot_path = malloc(n);
  if (!node->snapshot_path) return;
  snprintf(node->snapshot_path, n, "%s/%s", cfg->data_dir, SYN_SNAPSHOT_FILE);
  node->snapshot_max_bytes = (uint64_t)cfg->swarm_snapshot_max_mb << 20;
  char err[256] = "";
  syn_snapshot_stats *st = &node->snapshot_loaded;
  int rc = syn_swarm_snapshot_load(node->swarms, node->snapshot_path, node->snapshot_max_bytes,
                                   now_seconds(), (int64_t)time(NULL), cfg->peer_timeout, st, err,
                                   sizeof err);
  if (rc == 0)
    syn_info(
        "node: swarm snapshot %s: %llu swarms, %llu peers restored (%llu expired "
        "meanwhile) in %.1f ms",
        node->snapshot_path, (unsigned long long)st->swarms, (unsigned long long)st->peers,
        (unsigned long long)st->expired, (double)st->elapsed_us / 1000.0);
  else if (rc != -ENOENT)
    syn_warn("node: swarm snapshot %s refused (%s): starting with no swarms", node->snapshot_path,
             err);
}

static void snapshot_save(syn_node *node) {
  if (!node->snapshot_path || !node->snapshot_save) return;
  char err[256] = "";
  syn_snapshot_stats st;
  if (syn_swarm_snapshot_save(node->swarms, node->snapshot_path, node->snapshot_max_bytes,
                              now_seconds(), (int64_t)time(NULL),
                              syn_swarm_peer_timeout(node->swarms), &st, err, sizeof err) == 0)
    syn_info("node: swarm snapshot %s: %llu swarms, %llu peers, %llu bytes saved in %.1f ms",
             node->snapshot_path, (unsigned long long)st.swarms, (unsigned long long)st.peers,
             (unsigned long long)st.bytes, (double)st.elapsed_us / 1000.0);
  else
    syn_error("node: swarm snapshot %s not saved: %s", node->snapshot_path, err);
}

int syn_node_serve_inline(syn_node *node, const Synapse__Request *req, Synapse__Reply *rep) {
  if (!syn_wire_request_is_swarm_only(req)) return -EINVAL;
  node_worker *w = &node->inline_worker;
  uint32_t now = now_seconds();
  rep->id = req->id;
  if (req->body_case == SYNAPSE__REQUEST__BODY_SCRAPE) {
    w->scrape = (Synapse__ScrapeReply)SYNAPSE__SCRAPE_REPLY__INIT;
    syn_buf_reset(&w->entries);
    handle_scrape(node, req->scrape, now, rep, &w->scrape, &w->entries);
    return 0;
  }
  syn_buf_reset(&w->peers);
  if (syn_buf_reserve(&w->peers,
                      announce_scratch(req->announce, numwant_of(node, req->announce)) + 1))
    return -ENOMEM;
  w->announce = (Synapse__AnnounceReply)SYNAPSE__ANNOUNCE_REPLY__INIT;
  handle_announce(node, w, req->announce, now, rep, &w->announce);
  return 0;
}

static int open_socket(syn_node *node, const char *url, char *err, size_t err_len) {
  int rv = nng_rep0_open(&node->sock);
  if (rv == 0)
    rv = nng_socket_set_size(node->sock, NNG_OPT_RECVMAXSZ,
                             SYN_WIRE_MAX_REQUEST + SYN_CLUSTER_AUTH_OVERHEAD);
  if (rv == 0) rv = nng_listen(node->sock, url, NULL, 0);
  if (rv) snprintf(err, err_len, "node: cannot listen on %s: %s", url, nng_strerror(rv));
  return rv ? -1 : 0;
}

static int start_workers(syn_node *node, char *err, size_t err_len) {
  for (size_t i = 0; i < node->worker_count; i++) {
    node_worker *w = &node->workers[i];
    w->node = node;
    syn_arena_init(&w->arena, 256 * 1024);
    int rv = nng_ctx_open(&w->ctx, node->sock);
    if (rv == 0) rv = nng_aio_alloc(&w->aio, NULL, NULL);
    if (rv == 0) rv = pthread_create(&w->thread, NULL, worker_main, w) ? NNG_ENOMEM : 0;
    if (rv) {
      snprintf(err, err_len, "node: cannot start worker: %s", nng_strerror(rv));
      node->worker_count = i;
      return -1;
    }
  }
  return 0;
}

static int open_index(syn_node *node, const syn_config *cfg, char *err, size_t err_len) {
  syn_index_config icfg;
  if (syn_shards_index_config(cfg, &icfg, err, err_len)) return -1;
  node->shards.index = syn_index_open(&icfg, cfg->data_dir, err, err_len);
  if (!node->shards.index) return -1;
  if (cfg->registered_only)
    node->shards.registered = syn_registered_open(node->shards.index, err, err_len);
  return !cfg->registered_only || node->shards.registered ? 0 : -1;
}

syn_node *syn_node_start(const syn_config *cfg, const char *listen_url,
                         struct syn_membership *members, struct syn_view_source *view, char *err,
                         size_t err_len) {
  syn_node *node = calloc(1, sizeof *node);
  if (!node) {
    snprintf(err, err_len, "node: out of memory");
    return NULL;
  }
  node->inline_worker.node = node;
  syn_arena_init(&node->inline_worker.arena, 256 * 1024);
  node->auth = members ? syn_membership_auth(members) : NULL; /* standalone: inproc */
  node->max_numwant = cfg->max_numwant;
  node->full_scrape_max = cfg->full_scrape_max;
  node->worker_count = cfg->node_workers ? cfg->node_workers : 1;
  if (node->worker_count > MAX_WORKERS) node->worker_count = MAX_WORKERS;
  node->swarms = syn_swarm_store_new(cfg->peer_timeout);
  if (!node->swarms) {
    snprintf(err, err_len, "node: out of memory");
    free(node);
    return NULL;
  }
  node->ws = syn_ws_peers_new(2 * cfg->ws_interval + 60, WS_MAX_PEERS);
  if (!node->ws) {
    snprintf(err, err_len, "node: out of memory");
    syn_swarm_store_free(node->swarms);
    free(node);
    return NULL;
  }
  node->members = members;
  node->shards.swarms = node->swarms;
  node->shards.ws = node->ws;
  node->min_interval = cfg->min_interval;
  snapshot_load(node, cfg);
  node->shards.cfg = cfg;
  if (open_index(node, cfg, err, err_len)) {
    syn_node_stop(node);
    return NULL;
  }
  if (members) {
    node->shards.replica =
        syn_replica_start(cfg, members, view, node->swarms, node->shards.index, &node->shards.hlc,
                          node->shards.registered, err, err_len);
    if (!node->shards.replica) {
      syn_node_stop(node);
      return NULL;
    }
    syn_replica_set_ws(node->shards.replica, node->ws);
  }
  size_t wanted = node->worker_count;
  node->worker_count = 0;
  if (open_socket(node, listen_url, err, err_len)) {
    syn_node_stop(node);
    return NULL;
  }
  node->worker_count = wanted;
  if (start_workers(node, err, err_len)) {
    syn_node_stop(node);
    return NULL;
  }
  node->maintenance_started = pthread_create(&node->maintenance, NULL, maintenance_main, node) == 0;
  node->snapshot_save = true;
  return node;
}

void syn_node_abandon(syn_node *node) {
  if (!node) return;
  node->snapshot_save = false;
  syn_node_stop(node);
}

void syn_node_stop(syn_node *node) {
  if (!node) return;
  atomic_store(&node->stopping, true);
  for (size_t i = 0; i < node->worker_count; i++) pthread_join(node->workers[i].thread, NULL);
  if (node->maintenance_started) pthread_join(node->maintenance, NULL);
  node->maintenance_started = false;
  parked_poll *pp; /* polls still parked: their routers see the connection close */
  while (node->ws && (pp = syn_ws_peers_stale_poll(node->ws, UINT64_MAX, 0))) {
    nng_ctx_close(pp->ctx);
    free(pp);
  }
  /* No worker uses it any more. A close that hangs (nng 1.5.2) keeps the workers' aios:
   * nng may still touch them, and the process is about to exit. */
  bool closed = syn_nng_close_within(node->sock, NODE_CLOSE_WAIT_MS, "node");
  for (size_t i = 0; i < node->worker_count; i++) {
    node_worker *w = &node->workers[i];
    if (closed) nng_aio_free(w->aio);
    syn_arena_free(&w->arena);
    syn_buf_free(&w->peers);
    syn_buf_free(&w->reply);
    syn_buf_free(&w->push);
  }
  syn_arena_free(&node->inline_worker.arena);
  syn_buf_free(&node->inline_worker.peers);
  syn_buf_free(&node->inline_worker.entries);
  if (node->maintenance_started) pthread_join(node->maintenance, NULL);
  syn_replica_stop(node->shards.replica);
  snapshot_save(node); /* no worker, maintenance or replica thread left: the store holds still */
  free(node->snapshot_path);
  syn_registered_free(node->shards.registered);
  syn_index_close(node->shards.index);
  syn_swarm_store_free(node->swarms);
  syn_ws_peers_free(node->ws);
  free(node);
}

void syn_node_hand_off(syn_node *node, struct syn_membership *members) {
  if (!node || !members) return;
  syn_membership_leave(members, 2000);
  /* Others see the leave within a gossip round or two, then pull; wait for them. */
  syn_replica_drain(node->shards.replica, 1500, 1000, 15000);
}
