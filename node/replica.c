/* A node's cluster side. Design notes:
 *
 * - The view (ring + member states) is refreshed lazily: the membership callback only
 *   marks it stale, and the next caller rebuilds it under view_mu (a copy of at most
 *   SYN_REPLICA_MAX_MEMBERS members, cheap).
 * - Outgoing swarm changes are queued per target node as encoded AnnounceRequests
 *   (already in SwarmUpdates wire form) and sent by one replication thread; a queue
 *   over QUEUE_MAX bytes drops further updates for that target (counted): the peers
 *   re-announce within an interval anyway.
 * - Hand-off is a pull: the node that gains partitions asks a node that held them for
 *   their shards (paged by id) and swarms. A pulled shard replaces the local copy only
 *   when it is newer (updated_at), so pulls are idempotent and may repeat. */
#include "node/replica.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "common/urlcodec.h"
#include "node/shard_proto.h"
#include "proto/wire.h"

#define MAX_MEMBERS 256
#define QUEUE_MAX (4u * 1024 * 1024)
#define PULL_PAGE 128
#define PULL_MAX_PEERS 50000
#define HANDOFF_TICK_MS 200
#define RECENT_DELETES 4096
#define ANTI_ENTROPY_MS 10000 /* replicas compare partition digests this often */

typedef struct target_queue {
  char peer_url[SYN_MEMBER_URL_MAX + 1];
  syn_buf bytes; /* SwarmUpdates body: field-1 AnnounceRequests */
} target_queue;

struct syn_replica {
  const syn_config *cfg;
  syn_membership *m;
  syn_view_source *view_source;
  syn_swarm_store *swarms;
  syn_index *index;
  /* view */
  pthread_mutex_t view_mu;
  atomic_bool stale;
  syn_ring *ring;
  uint64_t ring_version;
  long self_index; /* in the ring, or -1 */
  syn_member_info members[MAX_MEMBERS];
  size_t member_count;
  /* replication queues, by ring node index of the current ring */
  pthread_mutex_t queue_mu;
  target_queue queues[MAX_MEMBERS];
  /* threads */
  pthread_t pusher, handoff;
  bool pusher_started, handoff_started;
  atomic_bool stopping;
  atomic_bool caught_up;
  atomic_uint_fast64_t dropped_updates;
  atomic_uint_fast64_t last_pull_ms; /* when another node last pulled from this one */
  atomic_uint_fast64_t pulled_version; /* ring version whose gained partitions are pulled */
  /* Shards deleted here lately, so that a hand-off page read before the delete cannot
   * bring them back (a bounded memory instead of tombstones in SQLite). */
  pthread_mutex_t deleted_mu;
  struct recent_delete {
    char info_hash[65];
    uint64_t at_ms; /* wall clock */
  } deleted[RECENT_DELETES];
  size_t deleted_next;
};

static uint32_t mono_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)ts.tv_sec;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint32_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- view ---- */

static const syn_member_info *member_by_id(syn_replica *r, const char *id) {
  for (size_t i = 0; i < r->member_count; i++)
    if (!strcmp(r->members[i].id, id)) return &r->members[i];
  return NULL;
}

static bool member_usable(const syn_member_info *mi) {
  return mi && (mi->state == SYN_MEMBER_ALIVE || mi->state == SYN_MEMBER_SUSPECT);
}

/* Caller holds view_mu. */
static void refresh_locked(syn_replica *r) {
  uint64_t version, ring_version;
  syn_membership_snapshot(r->m, r->members, MAX_MEMBERS, &r->member_count, &version,
                          &ring_version);
  if (r->member_count > MAX_MEMBERS) r->member_count = MAX_MEMBERS;
  if (!r->ring || ring_version != r->ring_version) {
    syn_ring *ring = syn_membership_build_ring(r->m, r->cfg->partitions, r->cfg->replication,
                                               &r->ring_version);
    if (ring) {
      syn_ring_free(r->ring);
      r->ring = ring;
      r->self_index = syn_ring_index_of(ring, r->cfg->node_id);
    }
  }
}

static void view_lock(syn_replica *r) {
  pthread_mutex_lock(&r->view_mu);
  if (atomic_exchange(&r->stale, false)) refresh_locked(r);
}

static void on_membership_change(void *ctx) {
  syn_replica *r = ctx;
  atomic_store(&r->stale, true);
}

/* Peer URLs of the other usable replicas of the partition of `info_hash`. */
static size_t other_replicas(syn_replica *r, const uint8_t info_hash[20],
                             char urls[][SYN_MEMBER_URL_MAX + 1], long *ring_index,
                             size_t cap, uint32_t *factor) {
  view_lock(r);
  size_t out = 0;
  *factor = 1;
  if (r->ring) {
    const uint16_t *idx;
    size_t n = syn_ring_replicas(r->ring, syn_ring_partition(r->ring, info_hash), &idx);
    *factor = (uint32_t)n;
    for (size_t i = 0; i < n && out < cap; i++) {
      if ((long)idx[i] == r->self_index) continue;
      const syn_member_info *mi = member_by_id(r, syn_ring_node_id(r->ring, idx[i]));
      if (!member_usable(mi) || !mi->peer_url[0]) continue;
      snprintf(urls[out], SYN_MEMBER_URL_MAX + 1, "%s", mi->peer_url);
      if (ring_index) ring_index[out] = idx[i];
      out++;
    }
  }
  pthread_mutex_unlock(&r->view_mu);
  return out;
}

/* ---- asynchronous swarm replication ---- */

void syn_replica_announce(syn_replica *r, const Synapse__AnnounceRequest *a) {
  if (!r || a->info_hash.len != 20) return;
  char urls[SYN_RING_MAX_REPLICATION][SYN_MEMBER_URL_MAX + 1];
  long index[SYN_RING_MAX_REPLICATION];
  uint32_t factor;
  size_t n = other_replicas(r, a->info_hash.data, urls, index, SYN_RING_MAX_REPLICATION, &factor);
  if (!n) return;
  pthread_mutex_lock(&r->queue_mu);
  for (size_t i = 0; i < n; i++) {
    target_queue *q = &r->queues[index[i] % MAX_MEMBERS];
    if (strcmp(q->peer_url, urls[i]) != 0) {
      syn_buf_reset(&q->bytes); /* the slot now serves another node */
      memcpy(q->peer_url, urls[i], sizeof q->peer_url);
    }
    if (q->bytes.len > QUEUE_MAX || syn_wire_append_field1(&q->bytes, &a->base))
      atomic_fetch_add(&r->dropped_updates, 1);
  }
  pthread_mutex_unlock(&r->queue_mu);
}

static size_t put_varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

/* ReplicaRequest{swarm_updates = SwarmUpdates(body)} without re-encoding the body. */
static int wrap_swarm_updates(const syn_buf *body, syn_buf *out) {
  uint8_t head[11];
  head[0] = 0x0a; /* ReplicaRequest field 1, length-delimited */
  size_t n = 1 + put_varint(head + 1, body->len);
  syn_buf_reset(out);
  if (syn_buf_append(out, head, n)) return -1;
  return syn_buf_append(out, body->data, body->len);
}

static void push_queues(syn_replica *r, syn_buf *batch, syn_buf *msg, syn_buf *reply) {
  for (size_t i = 0; i < MAX_MEMBERS; i++) {
    char url[SYN_MEMBER_URL_MAX + 1];
    pthread_mutex_lock(&r->queue_mu);
    target_queue *q = &r->queues[i];
    bool has = q->bytes.len > 0;
    if (has) {
      syn_buf tmp = *batch; /* swap: the queue keeps the emptied buffer */
      *batch = q->bytes;
      q->bytes = tmp;
      syn_buf_reset(&q->bytes);
      snprintf(url, sizeof url, "%s", q->peer_url);
    }
    pthread_mutex_unlock(&r->queue_mu);
    if (!has) continue;
    syn_buf_reset(reply);
    if (wrap_swarm_updates(batch, msg) == 0 &&
        syn_membership_app_call(r->m, url, msg->data, msg->len, r->cfg->request_timeout_ms,
                                reply) != 0)
      atomic_fetch_add(&r->dropped_updates, 1);
  }
}

static void *pusher_main(void *arg) {
  syn_replica *r = arg;
  syn_buf batch = SYN_BUF_INIT, msg = SYN_BUF_INIT, reply = SYN_BUF_INIT;
  while (!atomic_load(&r->stopping)) {
    sleep_ms(r->cfg->replication_interval_ms);
    push_queues(r, &batch, &msg, &reply);
  }
  syn_buf_free(&batch);
  syn_buf_free(&msg);
  syn_buf_free(&reply);
  return NULL;
}

/* ---- synchronous shard replication ---- */

/* One replica call; 1 when the replica answered ok. A call refused at once (the peer's
 * queue was full, or no connection yet) is tried again while the budget lasts. */
static int call_replica(syn_replica *r, const char *url, const syn_buf *msg, uint32_t budget_ms) {
  uint64_t deadline = mono_ms() + budget_ms;
  int ok = 0;
  syn_buf reply = SYN_BUF_INIT;
  for (;;) {
    uint64_t now = mono_ms();
    if (now >= deadline) break;
    syn_buf_reset(&reply);
    int rc = syn_membership_app_call(r->m, url, msg->data, msg->len, (uint32_t)(deadline - now),
                                     &reply);
    if (rc == 0) {
      Synapse__ReplicaReply *rep = synapse__replica_reply__unpack(NULL, reply.len, reply.data);
      ok = rep && rep->ok;
      if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
      break;
    }
    if (rc == -ETIMEDOUT) break;
    sleep_ms(10);
  }
  syn_buf_free(&reply);
  return ok;
}

typedef struct replica_call {
  syn_replica *r;
  const char *url;
  const syn_buf *msg;
  uint32_t budget_ms;
  int ok;
} replica_call;

static void *replica_call_main(void *arg) {
  replica_call *c = arg;
  c->ok = call_replica(c->r, c->url, c->msg, c->budget_ms);
  return NULL;
}

/* Sends the write to every other usable replica at once (a dead one costs its timeout
 * once, not once per replica) and counts the acknowledgements. */
static int replicate(syn_replica *r, const char *hex, const Synapse__ReplicaRequest *req,
                     const char *what, char *err, size_t err_len) {
  if (!r) return 0;
  uint8_t key[20];
  if (syn_hex_decode(hex, 40, key, 20)) {
    snprintf(err, err_len, "info_hash must be hex");
    return -1;
  }
  char urls[SYN_RING_MAX_REPLICATION][SYN_MEMBER_URL_MAX + 1];
  uint32_t factor;
  atomic_store(&r->stale, true); /* a write goes to the replicas of the ring as it is now */
  size_t n = other_replicas(r, key, urls, NULL, SYN_RING_MAX_REPLICATION, &factor);
  uint32_t need = r->cfg->write_quorum < factor ? r->cfg->write_quorum : factor;
  syn_buf msg = SYN_BUF_INIT;
  if (syn_buf_reserve(&msg, protobuf_c_message_get_packed_size(&req->base))) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  msg.len = protobuf_c_message_pack(&req->base, msg.data);
  /* Leaves the router's deadline some room for the local write and the reply. */
  uint32_t budget = r->cfg->request_timeout_ms * 3 / 4 + 1;
  replica_call calls[SYN_RING_MAX_REPLICATION];
  pthread_t threads[SYN_RING_MAX_REPLICATION];
  bool started[SYN_RING_MAX_REPLICATION] = {0};
  for (size_t i = 0; i < n; i++) {
    calls[i] = (replica_call){r, urls[i], &msg, budget, 0};
    started[i] = pthread_create(&threads[i], NULL, replica_call_main, &calls[i]) == 0;
    if (!started[i]) replica_call_main(&calls[i]);
  }
  uint32_t acks = 1; /* this node persisted it already */
  for (size_t i = 0; i < n; i++) {
    if (started[i]) pthread_join(threads[i], NULL);
    acks += (uint32_t)calls[i].ok;
  }
  syn_buf_free(&msg);
  if (acks >= need) return 0;
  snprintf(err, err_len, "%s persisted on %u of the %u replicas required; retry", what, acks, need);
  return -1;
}

int syn_replica_put(syn_replica *r, const Synapse__Shard *shard, char *err, size_t err_len) {
  Synapse__ShardPut put = SYNAPSE__SHARD_PUT__INIT;
  put.shard = (Synapse__Shard *)shard;
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_SHARD_PUT;
  req.shard_put = &put;
  return replicate(r, shard->info_hash, &req, "registration", err, err_len);
}

int syn_replica_delete(syn_replica *r, const char *info_hash, char *err, size_t err_len) {
  Synapse__ShardDelete del = SYNAPSE__SHARD_DELETE__INIT;
  del.info_hash = (char *)info_hash;
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_SHARD_DELETE;
  req.shard_delete = &del;
  return replicate(r, info_hash, &req, "delete", err, err_len);
}

/* ---- recent deletes ---- */

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void syn_replica_note_delete(syn_replica *r, const char *info_hash) {
  if (!r) return;
  pthread_mutex_lock(&r->deleted_mu);
  struct recent_delete *d = &r->deleted[r->deleted_next++ % RECENT_DELETES];
  snprintf(d->info_hash, sizeof d->info_hash, "%s", info_hash);
  d->at_ms = wall_ms();
  pthread_mutex_unlock(&r->deleted_mu);
}

/* Whether the shard was deleted here after the version `updated_ms` was written. */
static bool deleted_since(syn_replica *r, const char *info_hash, uint64_t updated_ms) {
  bool found = false;
  pthread_mutex_lock(&r->deleted_mu);
  for (size_t i = 0; i < RECENT_DELETES && !found; i++)
    found = r->deleted[i].at_ms && r->deleted[i].at_ms + 1000 >= updated_ms &&
            !strcasecmp(r->deleted[i].info_hash, info_hash);
  pthread_mutex_unlock(&r->deleted_mu);
  return found;
}

/* ---- applying what other nodes send ---- */

static void apply_announce(syn_replica *r, const Synapse__AnnounceRequest *a, uint32_t now) {
  if (a->info_hash.len != 20 || a->peer_id.len != 20 || (a->ip.len != 4 && a->ip.len != 16) ||
      a->port > 65535)
    return;
  syn_announce req = {.info_hash = a->info_hash.data,
                      .peer_id = a->peer_id.data,
                      .ip = a->ip.data,
                      .ip_len = a->ip.len,
                      .port = (uint16_t)a->port,
                      .event = a->event,
                      .left = a->left,
                      .numwant = 0,
                      .families = 0};
  syn_announce_result res = {0};
  syn_swarm_announce(r->swarms, &req, now, &res);
}

/* A delete another node made: applied here when the local copy is not newer. */
static void apply_remote_delete(syn_replica *r, const char *info_hash, int64_t at_ms) {
  syn_shard local;
  if (syn_index_get(r->index, info_hash, false, &local) != 0) return;
  bool older = local.updated_at_ms <= at_ms;
  syn_shard_free(&local);
  if (!older) return;
  syn_replica_note_delete(r, info_hash);
  syn_index_delete(r->index, info_hash);
}

/* Stores a shard from another node when it is newer than the local copy. */
static int apply_shard(syn_replica *r, const Synapse__Shard *p, bool only_if_newer) {
  if (only_if_newer && deleted_since(r, p->info_hash, (uint64_t)p->updated_at * 1000)) return 0;
  if (only_if_newer) {
    syn_shard local;
    if (syn_index_get(r->index, p->info_hash, false, &local) == 0) {
      bool newer = p->updated_at * 1000 > local.updated_at_ms;
      syn_shard_free(&local);
      if (!newer) return 0;
    }
  }
  bool bad;
  float *emb = syn_shard_embedding_copy(p, &bad);
  if (bad || (p->has_embedding && !emb)) return bad ? -EINVAL : -ENOMEM;
  syn_shard_input in = syn_shard_input_from_proto(p, emb);
  char err[256];
  int rc = syn_index_register(r->index, &in, p->updated_at * 1000, err, sizeof err);
  free(emb);
  return rc;
}

typedef struct pull_ctx {
  syn_replica *r;
  const uint8_t *wanted;
  uint32_t partitions;
  Synapse__AnnounceRequest *peers;
  uint8_t *bytes; /* ip, peer_id and hash storage for `peers` */
  size_t count, cap;
  char (*deleted_hash)[65]; /* recent deletes sent along (heap, RECENT_DELETES) */
  int64_t *deleted_at;
  size_t deleted_count;
} pull_ctx;

static bool wanted_partition(const uint8_t *bitmap, uint32_t partitions, const uint8_t hash[20]) {
  uint32_t p = syn_ring_partition_of(partitions, hash);
  return bitmap[p / 8] & (1u << (p % 8));
}

static bool pull_want(void *ctx, const uint8_t info_hash[20]) {
  pull_ctx *pc = ctx;
  return wanted_partition(pc->wanted, pc->partitions, info_hash);
}

static void pull_emit(void *ctx, const uint8_t info_hash[20], const uint8_t *ip, size_t ip_len,
                      uint16_t port, const uint8_t peer_id[20], bool seeder) {
  pull_ctx *pc = ctx;
  if (pc->count >= pc->cap) return;
  uint8_t *b = pc->bytes + pc->count * 56;
  memcpy(b, info_hash, 20);
  memcpy(b + 20, peer_id, 20);
  memcpy(b + 40, ip, ip_len);
  Synapse__AnnounceRequest *a = &pc->peers[pc->count++];
  synapse__announce_request__init(a);
  a->info_hash = (ProtobufCBinaryData){20, b};
  a->peer_id = (ProtobufCBinaryData){20, b + 20};
  a->ip = (ProtobufCBinaryData){ip_len, b + 40};
  a->port = port;
  a->has_left = 1;
  a->left = seeder ? 0 : 1;
}

static void serve_pull(syn_replica *r, const Synapse__PartitionPull *pull, Synapse__ReplicaReply *rep,
                       syn_shard *page, size_t *page_n, pull_ctx *pc) {
  size_t need = (pull->partitions + 7) / 8;
  if (pull->partitions == 0 || pull->wanted.len < need) {
    rep->ok = 0;
    rep->error = "bad pull";
    return;
  }
  int64_t after = pull->has_after_id ? pull->after_id : 0;
  size_t got = 0, n = 0;
  syn_shard batch[PULL_PAGE];
  /* Scan pages of shards in id order, keeping those of the wanted partitions. */
  while (got < PULL_PAGE && syn_index_list(r->index, after, PULL_PAGE, true, batch, &n) == 0 && n) {
    bool full = false;
    for (size_t i = 0; i < n; i++) {
      uint8_t key[20];
      if (got == PULL_PAGE) { /* page full: the rest is for the next pull */
        full = true;
        syn_shard_free(&batch[i]);
        continue;
      }
      after = batch[i].id;
      bool keep = syn_hex_decode(batch[i].info_hash, 40, key, 20) == 0 &&
                  wanted_partition(pull->wanted.data, pull->partitions, key);
      if (keep) page[got++] = batch[i];
      else syn_shard_free(&batch[i]);
    }
    if (!full && n < PULL_PAGE) {
      after = 0; /* reached the end */
      break;
    }
  }
  *page_n = got;
  rep->ok = 1;
  if (after) {
    rep->has_next_after_id = 1;
    rep->next_after_id = after;
  }
  if (!pull->has_after_id || pull->after_id == 0) {
    pthread_mutex_lock(&r->deleted_mu);
    for (size_t i = 0; i < RECENT_DELETES && pc->deleted_count < RECENT_DELETES; i++) {
      uint8_t key[20];
      const struct recent_delete *d = &r->deleted[i];
      if (!d->at_ms || syn_hex_decode(d->info_hash, 40, key, 20) ||
          !wanted_partition(pull->wanted.data, pull->partitions, key))
        continue;
      memcpy(pc->deleted_hash[pc->deleted_count], d->info_hash, 65);
      pc->deleted_at[pc->deleted_count++] = (int64_t)d->at_ms;
    }
    pthread_mutex_unlock(&r->deleted_mu);
  }
  if (pull->has_swarms && pull->swarms && (!pull->has_after_id || pull->after_id == 0)) {
    pc->r = r;
    pc->wanted = pull->wanted.data;
    pc->partitions = pull->partitions;
    syn_swarm_export(r->swarms, pull_want, pull_emit, pc, mono_seconds());
  }
}

/* Per-partition digests of every shard held: xor of a hash of (info_hash, updated_at),
 * so two replicas with the same versions of the same shards agree. out: P x 8 bytes. */
static int compute_digests(syn_replica *r, uint32_t parts, uint64_t *out) {
  memset(out, 0, (size_t)parts * sizeof *out);
  syn_shard page[PULL_PAGE];
  size_t n = 0;
  int64_t after = 0;
  int rc;
  while ((rc = syn_index_list(r->index, after, PULL_PAGE, false, page, &n)) == 0 && n) {
    for (size_t i = 0; i < n; i++) {
      uint8_t key[20];
      after = page[i].id;
      if (syn_hex_decode(page[i].info_hash, 40, key, 20) == 0) {
        uint64_t h = 1469598103934665603ULL;
        for (const char *c = page[i].info_hash; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ULL;
        h ^= (uint64_t)(page[i].updated_at_ms / 1000) * 0x9E3779B97F4A7C15ULL;
        out[syn_ring_partition_of(parts, key)] ^= h * 0xff51afd7ed558ccdULL;
      }
      syn_shard_free(&page[i]);
    }
    if (n < PULL_PAGE) break;
  }
  return rc;
}

/* Whether this node holds every partition of the bitmap in its ring and has pulled
 * them (so the asking node may drop its copies). */
static bool confirm_holds(syn_replica *r, const Synapse__PartitionPull *q) {
  if (!atomic_load(&r->caught_up) || q->wanted.len < (q->partitions + 7) / 8) return false;
  view_lock(r);
  bool ok = r->ring && r->self_index >= 0 && syn_ring_partitions(r->ring) == q->partitions &&
            r->ring_version == atomic_load(&r->pulled_version);
  for (uint32_t p = 0; ok && p < q->partitions; p++) {
    uint32_t rank;
    if ((q->wanted.data[p / 8] & (1u << (p % 8))) &&
        !syn_ring_holds(r->ring, p, (size_t)r->self_index, &rank))
      ok = false;
  }
  pthread_mutex_unlock(&r->view_mu);
  return ok;
}

static int on_app_request(void *ctx, const uint8_t *data, size_t len, syn_buf *out) {
  syn_replica *r = ctx;
  Synapse__ReplicaRequest *req = synapse__replica_request__unpack(NULL, len, data);
  if (!req) return -EPROTO;
  Synapse__ReplicaReply rep = SYNAPSE__REPLICA_REPLY__INIT;
  rep.ok = 1;
  static _Thread_local syn_shard page[PULL_PAGE];
  size_t page_n = 0;
  pull_ctx pc = {0};
  Synapse__Shard protos[PULL_PAGE];
  Synapse__Shard *proto_ptrs[PULL_PAGE];
  Synapse__AnnounceRequest **peer_ptrs = NULL;
  uint64_t *digests = NULL;
  Synapse__ShardDelete *del_msgs = NULL;
  Synapse__ShardDelete **del_ptrs = NULL;
  switch (req->body_case) {
  case SYNAPSE__REPLICA_REQUEST__BODY_SWARM_UPDATES: {
    uint32_t now = mono_seconds();
    for (size_t i = 0; i < req->swarm_updates->n_announces; i++)
      apply_announce(r, req->swarm_updates->announces[i], now);
    break;
  }
  case SYNAPSE__REPLICA_REQUEST__BODY_SHARD_PUT:
    rep.ok = apply_shard(r, req->shard_put->shard, false) == 0;
    break;
  case SYNAPSE__REPLICA_REQUEST__BODY_SHARD_DELETE: {
    syn_replica_note_delete(r, req->shard_delete->info_hash);
    int rc = syn_index_delete(r->index, req->shard_delete->info_hash);
    rep.ok = rc == 0 || rc == -ENOENT;
    break;
  }
  case SYNAPSE__REPLICA_REQUEST__BODY_CONFIRM:
    rep.ok = confirm_holds(r, req->confirm);
    break;
  case SYNAPSE__REPLICA_REQUEST__BODY_DIGEST:
    if (req->digest->partitions == 0 || req->digest->partitions > SYN_RING_MAX_PARTITIONS) {
      rep.ok = 0;
      break;
    }
    digests = malloc((size_t)req->digest->partitions * sizeof *digests);
    rep.ok = digests && compute_digests(r, req->digest->partitions, digests) == 0;
    if (rep.ok) {
      rep.has_digests = 1;
      rep.digests = (ProtobufCBinaryData){(size_t)req->digest->partitions * 8, (uint8_t *)digests};
    }
    break;
  case SYNAPSE__REPLICA_REQUEST__BODY_PULL:
    atomic_store(&r->last_pull_ms, mono_ms());
    pc.cap = PULL_MAX_PEERS;
    pc.peers = malloc(pc.cap * sizeof *pc.peers);
    pc.bytes = malloc(pc.cap * 56);
    if (!pc.peers || !pc.bytes) pc.cap = 0;
    pc.deleted_hash = malloc(RECENT_DELETES * sizeof *pc.deleted_hash);
    pc.deleted_at = malloc(RECENT_DELETES * sizeof *pc.deleted_at);
    del_msgs = malloc(RECENT_DELETES * sizeof *del_msgs);
    del_ptrs = malloc(RECENT_DELETES * sizeof *del_ptrs);
    if (!pc.deleted_hash || !pc.deleted_at || !del_msgs || !del_ptrs) {
      rep.ok = 0;
      break;
    }
    serve_pull(r, req->pull, &rep, page, &page_n, &pc);
    for (size_t i = 0; i < pc.deleted_count; i++) {
      synapse__shard_delete__init(&del_msgs[i]);
      del_msgs[i].info_hash = pc.deleted_hash[i];
      del_ptrs[i] = &del_msgs[i];
    }
    rep.deleted = del_ptrs;
    rep.n_deleted = pc.deleted_count;
    rep.deleted_at_ms = pc.deleted_at;
    rep.n_deleted_at_ms = pc.deleted_count;
    for (size_t i = 0; i < page_n; i++) {
      syn_shard_to_proto(&page[i], &protos[i]);
      proto_ptrs[i] = &protos[i];
    }
    rep.shards = proto_ptrs;
    rep.n_shards = page_n;
    peer_ptrs = malloc((pc.count + 1) * sizeof *peer_ptrs);
    for (size_t i = 0; peer_ptrs && i < pc.count; i++) peer_ptrs[i] = &pc.peers[i];
    rep.peers = peer_ptrs;
    rep.n_peers = peer_ptrs ? pc.count : 0;
    break;
  default:
    rep.ok = 0;
    rep.error = "unknown replica request";
  }
  size_t size = protobuf_c_message_get_packed_size(&rep.base);
  int rc = syn_buf_reserve(out, size);
  if (rc == 0) out->len += protobuf_c_message_pack(&rep.base, out->data + out->len);
  for (size_t i = 0; i < page_n; i++) syn_shard_free(&page[i]);
  free(peer_ptrs);
  free(digests);
  free(del_msgs);
  free(del_ptrs);
  free(pc.deleted_hash);
  free(pc.deleted_at);
  free(pc.peers);
  free(pc.bytes);
  synapse__replica_request__free_unpacked(req, NULL);
  return rc;
}

/* ---- hand-off: pulling partitions this node gained ---- */

typedef struct handoff_plan {
  uint32_t partitions;
  uint8_t *held_before; /* bitmap */
  bool first;
} handoff_plan;

/* Pulls the wanted partitions from one node, page by page. 0 when complete. */
static int pull_from(syn_replica *r, const char *url, const uint8_t *wanted, uint32_t partitions) {
  int64_t after = 0;
  bool first = true;
  uint32_t now = mono_seconds();
  for (;;) {
    Synapse__PartitionPull pull = SYNAPSE__PARTITION_PULL__INIT;
    pull.partitions = partitions;
    pull.wanted = (ProtobufCBinaryData){(partitions + 7) / 8, (uint8_t *)wanted};
    pull.has_after_id = 1;
    pull.after_id = after;
    pull.has_max_shards = 1;
    pull.max_shards = PULL_PAGE;
    pull.has_swarms = 1;
    pull.swarms = first;
    Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
    req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_PULL;
    req.pull = &pull;
    syn_buf msg = SYN_BUF_INIT, reply = SYN_BUF_INIT;
    size_t size = protobuf_c_message_get_packed_size(&req.base);
    int rc = syn_buf_reserve(&msg, size);
    if (rc == 0) {
      msg.len = protobuf_c_message_pack(&req.base, msg.data);
      rc = syn_membership_app_call(r->m, url, msg.data, msg.len, 10000, &reply);
    }
    Synapse__ReplicaReply *rep = rc ? NULL : synapse__replica_reply__unpack(NULL, reply.len, reply.data);
    syn_buf_free(&msg);
    syn_buf_free(&reply);
    if (!rep || !rep->ok) {
      if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
      return -1;
    }
    for (size_t i = 0; i < rep->n_deleted && i < rep->n_deleted_at_ms; i++)
      apply_remote_delete(r, rep->deleted[i]->info_hash, rep->deleted_at_ms[i]);
    for (size_t i = 0; i < rep->n_shards; i++) apply_shard(r, rep->shards[i], true);
    for (size_t i = 0; i < rep->n_peers; i++) apply_announce(r, rep->peers[i], now);
    bool more = rep->has_next_after_id;
    after = rep->next_after_id;
    synapse__replica_reply__free_unpacked(rep, NULL);
    if (!more) return 0;
    first = false;
  }
}

/* One pass: for every partition held now and not before, pull it from a usable node
 * that held it (or, on the first pass, from any other usable replica). 0 when all done. */
static int handoff_pass(syn_replica *r, handoff_plan *plan, syn_ring *before) {
  view_lock(r);
  syn_ring *ring = r->ring;
  long self = r->self_index;
  uint32_t parts = ring ? syn_ring_partitions(ring) : 0;
  size_t nodes = ring ? syn_ring_node_count(ring) : 0;
  uint8_t *wanted = calloc(nodes ? nodes : 1, (parts + 7) / 8 + 1);
  char (*urls)[SYN_MEMBER_URL_MAX + 1] = calloc(nodes ? nodes : 1, sizeof *urls);
  bool any = false;
  for (uint32_t p = 0; wanted && urls && ring && self >= 0 && p < parts; p++) {
    uint32_t rank;
    if (!syn_ring_holds(ring, p, (size_t)self, &rank)) continue;
    long old_self = before ? syn_ring_index_of(before, r->cfg->node_id) : -1;
    if (!plan->first && before && old_self >= 0 && syn_ring_holds(before, p, (size_t)old_self, &rank))
      continue; /* held it already */
    const syn_ring *src_ring = before && !plan->first ? before : ring;
    const uint16_t *idx;
    size_t n = syn_ring_replicas(src_ring, p, &idx);
    /* Prefer a source that stays a replica: it keeps receiving this partition's deletes,
     * where one that lost it may still hold a shard deleted meanwhile. */
    for (size_t pass = 0, found = 0; pass < 2 && !found; pass++)
    for (size_t i = 0; i < n; i++) {
      const char *id = syn_ring_node_id(src_ring, idx[i]);
      const syn_member_info *mi = member_by_id(r, id);
      if (!mi || mi->self || !member_usable(mi) || !mi->peer_url[0]) continue;
      long now_index = syn_ring_index_of(ring, id);
      if (pass == 0 && (now_index < 0 || !syn_ring_holds(ring, p, (size_t)now_index, &rank)))
        continue;
      found = 1;
      long k = syn_ring_index_of(ring, id);
      if (k < 0) k = (long)(nodes - 1); /* a node leaving: any spare row */
      wanted[(size_t)k * ((parts + 7) / 8 + 1) + p / 8] |= (uint8_t)(1u << (p % 8));
      snprintf(urls[k], SYN_MEMBER_URL_MAX + 1, "%s", mi->peer_url);
      any = true;
      break;
    }
  }
  pthread_mutex_unlock(&r->view_mu);
  int failed = 0;
  for (size_t k = 0; any && k < nodes; k++) {
    if (!urls[k][0]) continue;
    if (pull_from(r, urls[k], wanted + k * ((parts + 7) / 8 + 1), parts)) failed++;
  }
  free(wanted);
  free(urls);
  return failed ? -1 : 0;
}

static syn_ring *ring_copy(const syn_ring *ring) {
  if (!ring) return NULL;
  size_t n = syn_ring_node_count(ring);
  const char **ids = malloc((n ? n : 1) * sizeof *ids);
  if (!ids) return NULL;
  for (size_t i = 0; i < n; i++) ids[i] = syn_ring_node_id(ring, i);
  syn_ring *copy = syn_ring_build(ids, n, syn_ring_partitions(ring), syn_ring_replication(ring));
  free(ids);
  return copy;
}

/* ---- dropping what moved away, once its new holders confirm ---- */

typedef struct lost_set {
  uint32_t partitions;
  uint8_t *bitmap;
} lost_set;

static bool lost_want(void *ctx, const uint8_t info_hash[20]) {
  lost_set *ls = ctx;
  return wanted_partition(ls->bitmap, ls->partitions, info_hash);
}

static bool ask_confirm(syn_replica *r, const char *url, const uint8_t *bitmap, uint32_t parts) {
  Synapse__PartitionPull q = SYNAPSE__PARTITION_PULL__INIT;
  q.partitions = parts;
  q.wanted = (ProtobufCBinaryData){(parts + 7) / 8, (uint8_t *)bitmap};
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_CONFIRM;
  req.confirm = &q;
  syn_buf msg = SYN_BUF_INIT;
  bool ok = false;
  if (syn_buf_reserve(&msg, protobuf_c_message_get_packed_size(&req.base)) == 0) {
    msg.len = protobuf_c_message_pack(&req.base, msg.data);
    ok = call_replica(r, url, &msg, 2000);
  }
  syn_buf_free(&msg);
  return ok;
}

static void drop_shards(syn_replica *r, lost_set *ls) {
  syn_shard page[PULL_PAGE];
  size_t n = 0;
  int64_t after = 0;
  while (syn_index_list(r->index, after, PULL_PAGE, false, page, &n) == 0 && n) {
    for (size_t i = 0; i < n; i++) {
      uint8_t key[20];
      after = page[i].id;
      if (syn_hex_decode(page[i].info_hash, 40, key, 20) == 0 && lost_want(ls, key))
        syn_index_delete(r->index, page[i].info_hash);
      syn_shard_free(&page[i]);
    }
    if (n < PULL_PAGE) break;
  }
}

/* Partitions this node held in `before` and no longer holds: dropped once every current
 * holder confirms it has them. 0 when nothing is left to drop. */
static int drop_pass(syn_replica *r, syn_ring *before) {
  view_lock(r);
  syn_ring *ring = r->ring;
  uint32_t parts = ring ? syn_ring_partitions(ring) : 0;
  long self = ring ? r->self_index : -1;
  long old_self = before ? syn_ring_index_of(before, r->cfg->node_id) : -1;
  size_t nodes = ring ? syn_ring_node_count(ring) : 0;
  size_t row = (parts + 7) / 8 + 1;
  uint8_t *lost = calloc(1, row), *ask = calloc(nodes ? nodes : 1, row);
  char (*urls)[SYN_MEMBER_URL_MAX + 1] = calloc(nodes ? nodes : 1, sizeof *urls);
  bool any = false, blocked = false;
  for (uint32_t p = 0; lost && ask && urls && before && ring && old_self >= 0 && p < parts; p++) {
    uint32_t rank;
    if (!syn_ring_holds(before, p, (size_t)old_self, &rank)) continue;
    if (self >= 0 && syn_ring_holds(ring, p, (size_t)self, &rank)) continue;
    const uint16_t *idx;
    size_t n = syn_ring_replicas(ring, p, &idx);
    for (size_t i = 0; i < n; i++) {
      const syn_member_info *mi = member_by_id(r, syn_ring_node_id(ring, idx[i]));
      if (!member_usable(mi) || !mi->peer_url[0]) blocked = true;
      else {
        ask[idx[i] * row + p / 8] |= (uint8_t)(1u << (p % 8));
        snprintf(urls[idx[i]], SYN_MEMBER_URL_MAX + 1, "%s", mi->peer_url);
      }
    }
    lost[p / 8] |= (uint8_t)(1u << (p % 8));
    any = true;
  }
  pthread_mutex_unlock(&r->view_mu);
  bool confirmed = any && !blocked;
  for (size_t k = 0; confirmed && k < nodes; k++)
    if (urls[k][0] && !ask_confirm(r, urls[k], ask + k * row, parts)) confirmed = false;
  if (confirmed) {
    lost_set ls = {parts, lost};
    drop_shards(r, &ls);
    syn_swarm_drop(r->swarms, lost_want, &ls);
  }
  free(lost);
  free(ask);
  free(urls);
  return any && !confirmed ? -1 : 0;
}

/* Anti-entropy: for each other usable node, compare the digests of the partitions both
 * hold and pull the partitions that differ (newest version wins on each side). */
static void anti_entropy(syn_replica *r) {
  view_lock(r);
  syn_ring *ring = r->ring ? ring_copy(r->ring) : NULL;
  long self = r->self_index;
  char urls[MAX_MEMBERS][SYN_MEMBER_URL_MAX + 1];
  long idx[MAX_MEMBERS];
  size_t n = 0;
  for (size_t i = 0; ring && i < r->member_count && n < MAX_MEMBERS; i++) {
    const syn_member_info *mi = &r->members[i];
    long k = syn_ring_index_of(ring, mi->id);
    if (mi->self || k < 0 || !member_usable(mi) || !mi->peer_url[0]) continue;
    snprintf(urls[n], sizeof urls[n], "%s", mi->peer_url);
    idx[n++] = k;
  }
  pthread_mutex_unlock(&r->view_mu);
  uint32_t parts = ring ? syn_ring_partitions(ring) : 0;
  uint64_t *mine = ring && self >= 0 ? malloc((size_t)parts * 8) : NULL;
  uint8_t *wanted = mine ? calloc(1, (parts + 7) / 8) : NULL;
  if (wanted && compute_digests(r, parts, mine) == 0) {
    for (size_t j = 0; j < n; j++) {
      Synapse__PartitionPull q = SYNAPSE__PARTITION_PULL__INIT;
      q.partitions = parts;
      q.wanted = (ProtobufCBinaryData){0, NULL};
      Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
      req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_DIGEST;
      req.digest = &q;
      syn_buf msg = SYN_BUF_INIT, reply = SYN_BUF_INIT;
      if (syn_buf_reserve(&msg, protobuf_c_message_get_packed_size(&req.base)) == 0) {
        msg.len = protobuf_c_message_pack(&req.base, msg.data);
        if (syn_membership_app_call(r->m, urls[j], msg.data, msg.len, 10000, &reply) == 0) {
          Synapse__ReplicaReply *rep = synapse__replica_reply__unpack(NULL, reply.len, reply.data);
          bool differs = false;
          memset(wanted, 0, (parts + 7) / 8);
          for (uint32_t p = 0; rep && rep->ok && rep->has_digests && rep->digests.len == (size_t)parts * 8 && p < parts; p++) {
            uint32_t rank;
            uint64_t theirs;
            memcpy(&theirs, rep->digests.data + (size_t)p * 8, 8);
            if (theirs == mine[p] || !syn_ring_holds(ring, p, (size_t)self, &rank) ||
                !syn_ring_holds(ring, p, (size_t)idx[j], &rank))
              continue;
            wanted[p / 8] |= (uint8_t)(1u << (p % 8));
            differs = true;
          }
          if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
          if (differs) pull_from(r, urls[j], wanted, parts);
        }
      }
      syn_buf_free(&msg);
      syn_buf_free(&reply);
    }
  }
  free(mine);
  free(wanted);
  syn_ring_free(ring);
}

static void *handoff_main(void *arg) {
  syn_replica *r = arg;
  handoff_plan plan = {.first = true};
  syn_ring *before = NULL, *to_drop_from = NULL;
  uint64_t done_version = 0, last_entropy = mono_ms();
  while (!atomic_load(&r->stopping)) {
    /* The membership has one change callback, which the node's admin view may hold; a
     * refresh per tick bounds this view's staleness by HANDOFF_TICK_MS either way. */
    atomic_store(&r->stale, true);
    view_lock(r);
    uint64_t version = r->ring_version;
    bool have_ring = r->ring != NULL;
    bool joined = syn_membership_joined(r->m);
    pthread_mutex_unlock(&r->view_mu);
    if (have_ring && joined && (plan.first || version != done_version)) {
      if (handoff_pass(r, &plan, before) == 0) {
        view_lock(r);
        syn_ring_free(to_drop_from);
        to_drop_from = plan.first ? NULL : before; /* what this node held until now */
        before = ring_copy(r->ring);
        done_version = r->ring_version;
        atomic_store(&r->pulled_version, done_version);
        pthread_mutex_unlock(&r->view_mu);
        plan.first = false;
        atomic_store(&r->caught_up, true);
        last_entropy = 0; /* compare with the other holders right after a hand-off */
      }
    }
    if (to_drop_from && version == done_version && drop_pass(r, to_drop_from) == 0) {
      syn_ring_free(to_drop_from);
      to_drop_from = NULL;
    }
    if (atomic_load(&r->caught_up) && mono_ms() - last_entropy >= ANTI_ENTROPY_MS) {
      anti_entropy(r);
      last_entropy = mono_ms();
    }
    sleep_ms(HANDOFF_TICK_MS);
  }
  syn_ring_free(before);
  syn_ring_free(to_drop_from);
  return NULL;
}

void syn_replica_drain(syn_replica *r, uint32_t min_ms, uint32_t quiet_ms, uint32_t max_ms) {
  if (!r) return;
  uint64_t start = mono_ms();
  for (;;) {
    uint64_t now = mono_ms();
    uint64_t last = atomic_load(&r->last_pull_ms);
    bool quiet = now - (last > start ? last : start) >= quiet_ms;
    if (now - start >= max_ms || (now - start >= min_ms && quiet)) return;
    sleep_ms(50);
  }
}

bool syn_replica_caught_up(syn_replica *r) { return !r || atomic_load(&r->caught_up); }

/* ---- lifetime ---- */

syn_replica *syn_replica_start(const syn_config *cfg, syn_membership *members,
                               syn_view_source *view, syn_swarm_store *swarms, syn_index *index,
                               char *err, size_t err_len) {
  syn_replica *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  r->cfg = cfg;
  r->m = members;
  r->view_source = view;
  r->swarms = swarms;
  r->index = index;
  r->self_index = -1;
  pthread_mutex_init(&r->view_mu, NULL);
  pthread_mutex_init(&r->queue_mu, NULL);
  pthread_mutex_init(&r->deleted_mu, NULL);
  atomic_store(&r->stale, true);
  syn_view_source_listen(view, on_membership_change, r);
  syn_membership_set_app_handler(members, on_app_request, r);
  r->pusher_started = pthread_create(&r->pusher, NULL, pusher_main, r) == 0;
  r->handoff_started = pthread_create(&r->handoff, NULL, handoff_main, r) == 0;
  if (!r->pusher_started || !r->handoff_started) {
    snprintf(err, err_len, "cannot start replication threads");
    syn_replica_stop(r);
    return NULL;
  }
  return r;
}

void syn_replica_stop(syn_replica *r) {
  if (!r) return;
  atomic_store(&r->stopping, true);
  syn_view_source_unlisten(r->view_source, on_membership_change, r);
  if (r->pusher_started) pthread_join(r->pusher, NULL);
  if (r->handoff_started) pthread_join(r->handoff, NULL);
  syn_membership_set_app_handler(r->m, NULL, NULL);
  for (size_t i = 0; i < MAX_MEMBERS; i++) syn_buf_free(&r->queues[i].bytes);
  syn_ring_free(r->ring);
  pthread_mutex_destroy(&r->view_mu);
  pthread_mutex_destroy(&r->queue_mu);
  pthread_mutex_destroy(&r->deleted_mu);
  free(r);
}
