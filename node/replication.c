/* Copies of this node's writes on the other replicas. Design notes:
 *
 * - Swarm updates: an applied announce is appended, already encoded (proto/wire.h), to
 *   the queue of each other usable replica of its partition. Each replica has its own
 *   pusher thread, started the first time it is a target, so a slow, paused or cut-off
 *   replica delays only its own queue. A push that fails keeps its batch for the next
 *   round; a queue over REPLICA_QUEUE_MAX drops new updates (counted): the peers
 *   re-announce within an interval anyway (design decision 3).
 * - Replication lag of a replica: the age of the oldest update in its queue, which is
 *   only ever removed once that replica acknowledged the batch holding it.
 * - Shard writes: the coordinator persisted the write first; the copy goes to every
 *   other usable replica at once (one thread each, so a dead one costs its timeout once)
 *   and the write is acknowledged when W replicas in all hold it or something newer.
 * - Batches of shard writes (a node's batch of registrations): grouped by replica, one
 *   thread per replica sends its share as ShardPuts of about 1 MiB each, which the
 *   replica applies in one transaction (one fsync); each write is acknowledged by the
 *   same W rule on its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/replica_internal.h"
#include "node/shard_proto.h"
#include "proto/wire.h"

/* ---- swarm updates ---- */

/* The target for a member id, created (with its thread) on first use; push_mu held. */
static push_target *target_for(syn_replica *r, const syn_member_info *m);

static void *pusher_main(void *arg);

/* A slot for a new target: a never-used one, or one whose pusher retired (its thread is
 * joined here: it ended after releasing push_mu). NULL when every slot is busy. */
static push_target *free_slot(syn_replica *r) {
  if (r->n_targets < REPLICA_MAX_TARGETS) return &r->targets[r->n_targets++];
  for (size_t i = 0; i < r->n_targets; i++) {
    push_target *t = &r->targets[i];
    if (!t->retired) continue;
    if (t->started) pthread_join(t->thread, NULL);
    syn_buf_free(&t->queue);
    return t;
  }
  return NULL;
}

static push_target *target_for(syn_replica *r, const syn_member_info *m) {
  for (size_t i = 0; i < r->n_targets; i++) {
    push_target *t = &r->targets[i];
    if (t->retired || strcmp(t->id, m->id) != 0) continue;
    if (strcmp(t->peer_url, m->peer_url) != 0) /* it moved: the new address from now on */
      snprintf(t->peer_url, sizeof t->peer_url, "%s", m->peer_url);
    return t;
  }
  if (atomic_load(&r->stopping)) return NULL;
  push_target *t = free_slot(r);
  if (!t) return NULL;
  memset(t, 0, sizeof *t);
  t->r = r;
  snprintf(t->id, sizeof t->id, "%s", m->id);
  snprintf(t->peer_url, sizeof t->peer_url, "%s", m->peer_url);
  t->busy_ms = t->acked_ms = replica_mono_ms();
  t->started = pthread_create(&t->thread, NULL, pusher_main, t) == 0;
  if (!t->started) {
    t->retired = true; /* the slot stays free */
    return NULL;
  }
  return t;
}

/* An update no slot could take: counted, and logged at most once a minute. */
static void untargeted(syn_replica *r, uint64_t now) {
  r->untargeted++;
  if (r->untargeted_warn && now - r->untargeted_warn < 60000) return;
  r->untargeted_warn = now;
  syn_warn(
      "replication: all %d pusher slots busy: %llu swarm updates not pushed so far "
      "(anti-entropy repairs them)",
      REPLICA_MAX_TARGETS, (unsigned long long)r->untargeted);
}

/* Appends one update (an encoded message as SwarmUpdates field `field`) to the queue of
 * every other usable replica of info_hash's partition. */
static void queue_update(syn_replica *r, const uint8_t info_hash[20], uint32_t field,
                         const ProtobufCMessage *msg) {
  syn_view *v = replica_view(r);
  if (!v) return;
  syn_view_replica reps[SYN_RING_MAX_REPLICATION];
  size_t n = syn_view_replicas(v, syn_view_partition(v, info_hash), reps, SYN_RING_MAX_REPLICATION);
  uint64_t now = replica_mono_ms();
  pthread_mutex_lock(&r->push_mu);
  for (size_t i = 0; i < n; i++) {
    const syn_member_info *m = reps[i].member;
    if (!m || m->self || !syn_member_usable(m) || !m->peer_url[0]) continue;
    push_target *t = target_for(r, m);
    if (!t) {
      if (!atomic_load(&r->stopping)) untargeted(r, now);
      continue;
    }
    if (t->queue.len > REPLICA_QUEUE_MAX || syn_wire_append_field(&t->queue, field, msg)) {
      t->dropped++;
      continue;
    }
    if (t->queued++ == 0) t->oldest_ms = now;
  }
  pthread_mutex_unlock(&r->push_mu);
  syn_view_put(v);
}

void syn_replica_announce(syn_replica *r, const Synapse__AnnounceRequest *a) {
  if (!r || a->info_hash.len != 20) return;
  queue_update(r, a->info_hash.data, 1, &a->base);
}

void syn_replica_ws_announce(syn_replica *r, const Synapse__WsAnnounceRequest *a) {
  if (!r || a->info_hash.len != 20 || a->has_answer) return;
  Synapse__WsAnnounceRequest copy = *a; /* the peer, not its offers */
  copy.n_offers = 0;
  copy.offers = NULL;
  queue_update(r, a->info_hash.data, 2, &copy.base);
}

void syn_replica_set_ws(syn_replica *r, struct syn_ws_peers *ws) {
  if (r) r->ws = ws;
}

/* Sends one batch: 0 when the replica acknowledged it. */
static int push_batch(syn_replica *r, const char *url, const syn_buf *body) {
  syn_buf msg = SYN_BUF_INIT, reply = SYN_BUF_INIT;
  /* ReplicaRequest{swarm_updates = SwarmUpdates(body)} without re-encoding the body. */
  int rc = syn_wire_append_bytes_field(&msg, 1, body->data, body->len);
  uint32_t timeout = r->cfg->request_timeout_ms < 1000 ? r->cfg->request_timeout_ms : 1000;
  if (rc == 0) rc = syn_membership_app_call(r->m, url, msg.data, msg.len, timeout, &reply);
  Synapse__ReplicaReply *rep =
      rc == 0 ? synapse__replica_reply__unpack(NULL, reply.len, reply.data) : NULL;
  rc = rep && rep->ok ? 0 : -1;
  if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
  syn_buf_free(&msg);
  syn_buf_free(&reply);
  return rc;
}

/* Whether the view still holds the member usable (it may be sent updates again). */
static bool still_usable(syn_replica *r, const char *id) {
  syn_view *v = replica_view(r);
  if (!v) return false;
  const syn_member_info *m = syn_view_member(v, id);
  bool ok = m && syn_member_usable(m);
  syn_view_put(v);
  return ok;
}

/* Ends the pusher if it has been idle, or stuck on a member that is gone, for idle_ms
 * (cluster.replication_idle_s): slots follow the current replica sets, not every member
 * this node ever pushed to; push_mu held. What a gone member still had queued is dropped
 * (counted): it re-pulls swarms when it comes back. */
static bool retire_if_idle(push_target *t, uint64_t now, uint64_t idle_ms, bool gone) {
  bool idle = t->queued == 0 && now - t->busy_ms >= idle_ms;
  bool stuck = gone && now - t->acked_ms >= idle_ms;
  if (!idle && !stuck) return false;
  t->dropped += t->queued;
  t->queued = 0;
  t->oldest_ms = 0;
  syn_buf_reset(&t->queue);
  t->retired = true;
  return true;
}

static void *pusher_main(void *arg) {
  push_target *t = arg;
  syn_replica *r = t->r;
  syn_buf batch = SYN_BUF_INIT;
  char url[SYN_MEMBER_URL_MAX + 1];
  uint64_t idle_ms = (uint64_t)r->cfg->replication_idle_s * 1000;
  while (!atomic_load(&r->stopping)) {
    replica_sleep(r, r->cfg->replication_interval_ms);
    uint64_t now = replica_mono_ms();
    bool gone = now - t->acked_ms >= idle_ms && !still_usable(r, t->id);
    pthread_mutex_lock(&r->push_mu);
    if (retire_if_idle(t, now, idle_ms, gone)) {
      pthread_mutex_unlock(&r->push_mu);
      break;
    }
    uint64_t queued = t->queued, oldest = t->oldest_ms;
    syn_buf tmp = batch; /* swap: the queue keeps the emptied buffer */
    batch = t->queue;
    t->queue = tmp;
    syn_buf_reset(&t->queue);
    t->queued = 0;
    if (queued) t->busy_ms = now;
    snprintf(url, sizeof url, "%s", t->peer_url);
    pthread_mutex_unlock(&r->push_mu);
    if (queued == 0) continue;
    if (push_batch(r, url, &batch) == 0) { /* acknowledged: what came since dates itself */
      pthread_mutex_lock(&r->push_mu);
      t->acked_ms = replica_mono_ms();
      pthread_mutex_unlock(&r->push_mu);
      continue;
    }
    /* Not acknowledged: put it back in front of what arrived meanwhile. */
    pthread_mutex_lock(&r->push_mu);
    if (batch.len + t->queue.len <= REPLICA_QUEUE_MAX &&
        syn_buf_append(&batch, t->queue.data, t->queue.len) == 0) {
      syn_buf tmp2 = t->queue;
      t->queue = batch;
      batch = tmp2;
      t->queued += queued;
      t->oldest_ms = oldest;
    } else {
      t->dropped += queued;
      if (t->queued == 0) t->oldest_ms = 0;
    }
    pthread_mutex_unlock(&r->push_mu);
    syn_buf_reset(&batch);
  }
  syn_buf_free(&batch);
  return NULL;
}

size_t syn_replica_lag(syn_replica *r, Synapse__ReplicationLag *out,
                       char (*ids)[SYN_MEMBER_ID_MAX + 1], size_t cap) {
  if (!r) return 0;
  uint64_t now = replica_mono_ms();
  size_t n = 0;
  pthread_mutex_lock(&r->push_mu);
  for (size_t i = 0; i < r->n_targets && n < cap; i++) {
    const push_target *t = &r->targets[i];
    if (t->retired) continue;
    synapse__replication_lag__init(&out[n]);
    snprintf(ids[n], SYN_MEMBER_ID_MAX + 1, "%s", t->id);
    out[n].peer = ids[n];
    out[n].lag_ms = t->queued && now > t->oldest_ms ? now - t->oldest_ms : 0;
    out[n].has_queued = out[n].has_dropped = 1;
    out[n].queued = t->queued;
    out[n].dropped = t->dropped;
    n++;
  }
  pthread_mutex_unlock(&r->push_mu);
  return n;
}

int replication_start(syn_replica *r, char *err, size_t err_len) {
  (void)r, (void)err, (void)err_len; /* pushers start with their first target */
  return 0;
}

void replication_stop(syn_replica *r) {
  atomic_store(&r->stopping, true);
  pthread_mutex_lock(&r->push_mu);
  size_t n = r->n_targets;
  pthread_mutex_unlock(&r->push_mu);
  for (size_t i = 0; i < n; i++) {
    if (r->targets[i].started) pthread_join(r->targets[i].thread, NULL);
    syn_buf_free(&r->targets[i].queue);
  }
}

/* ---- shard writes: W copies before the acknowledgement ---- */

typedef struct copy_call {
  syn_replica *r;
  char url[SYN_MEMBER_URL_MAX + 1];
  const Synapse__ReplicaRequest *req;
  uint32_t budget_ms;
  bool ok, existed;
} copy_call;

/* One replica's copy; a call refused at once (the peer's queue was full, or no
 * connection yet) is tried again while the budget lasts. */
static void *copy_main(void *arg) {
  copy_call *c = arg;
  uint64_t deadline = replica_mono_ms() + c->budget_ms;
  for (;;) {
    uint64_t now = replica_mono_ms();
    if (now >= deadline || atomic_load(&c->r->stopping)) break;
    Synapse__ReplicaReply *rep = replica_call(c->r, c->url, c->req, (uint32_t)(deadline - now));
    if (rep) {
      c->ok = rep->ok;
      c->existed = rep->has_existed && rep->existed;
      synapse__replica_reply__free_unpacked(rep, NULL);
      break;
    }
    if (replica_mono_ms() + 20 >= deadline) break;
    replica_sleep(c->r, 10);
  }
  return NULL;
}

/* The other usable replicas of key's partition; returns how many, and the replication
 * factor in effect. */
static size_t copy_targets(syn_replica *r, const uint8_t key[20], copy_call *calls,
                           uint32_t *factor) {
  syn_view *v = replica_view(r);
  if (!v) return 0;
  syn_view_replica reps[SYN_RING_MAX_REPLICATION];
  size_t n = syn_view_replicas(v, syn_view_partition(v, key), reps, SYN_RING_MAX_REPLICATION);
  *factor = (uint32_t)(n ? n : 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const syn_member_info *m = reps[i].member;
    if (!m || m->self || !syn_member_usable(m) || !m->peer_url[0]) continue;
    snprintf(calls[k++].url, SYN_MEMBER_URL_MAX + 1, "%s", m->peer_url);
  }
  syn_view_put(v);
  return k;
}

static int replicate(syn_replica *r, const char *hex, const Synapse__ReplicaRequest *req,
                     const char *what, bool *existed, char *err, size_t err_len) {
  if (existed) *existed = false;
  if (!r) return 0;
  uint8_t key[20];
  char norm[65];
  if (syn_info_hash_parse(hex, strlen(hex), norm, key)) {
    snprintf(err, err_len, "info_hash must be hex");
    return -1;
  }
  copy_call calls[SYN_RING_MAX_REPLICATION];
  memset(calls, 0, sizeof calls);
  uint32_t factor = 1;
  size_t n = copy_targets(r, key, calls, &factor);
  uint32_t need = r->cfg->write_quorum < factor ? r->cfg->write_quorum : factor;
  /* Leaves the router's deadline room for the local write and the reply. */
  uint32_t budget = r->cfg->request_timeout_ms * 3 / 4 + 1;
  pthread_t threads[SYN_RING_MAX_REPLICATION];
  bool started[SYN_RING_MAX_REPLICATION] = {0};
  for (size_t i = 0; i < n; i++) {
    calls[i].r = r;
    calls[i].req = req;
    calls[i].budget_ms = budget;
    started[i] = pthread_create(&threads[i], NULL, copy_main, &calls[i]) == 0;
    if (!started[i]) copy_main(&calls[i]);
  }
  uint32_t acks = 1; /* this node holds it already */
  for (size_t i = 0; i < n; i++) {
    if (started[i]) pthread_join(threads[i], NULL);
    acks += calls[i].ok;
    if (existed && calls[i].existed) *existed = true;
  }
  if (acks >= need) return 0;
  snprintf(err, err_len, "%s persisted on %u of the %u replicas required; retry", what, acks, need);
  return -1;
}

/* ---- batches of shard writes: one ShardPuts per replica ---- */

/* A ShardPuts stays well under the members' message limit (4 MiB); one shard always
 * goes, and one shard is far below the limit. */
#define PUTS_MAX_BYTES (1u << 20)

/* The copies one batch sends to one replica: entries index the batch's copies. */
typedef struct puts_target {
  syn_replica *r;
  char url[SYN_MEMBER_URL_MAX + 1];
  size_t *items;
  bool *ok, *existed; /* per entry */
  size_t n, cap;
  uint64_t deadline;
  const syn_replica_copy *copies;
} puts_target;

/* One chunk as a request: ShardPut for one shard (what every version of a node
 * answers), ShardPuts for more. */
static Synapse__ReplicaReply *puts_call(puts_target *t, Synapse__Shard **shards, size_t n,
                                        uint32_t timeout_ms) {
  Synapse__ShardPut put = SYNAPSE__SHARD_PUT__INIT;
  Synapse__ShardPuts puts = SYNAPSE__SHARD_PUTS__INIT;
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  if (n == 1) {
    put.shard = shards[0];
    req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_SHARD_PUT;
    req.shard_put = &put;
  } else {
    puts.shards = shards;
    puts.n_shards = n;
    req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_SHARD_PUTS;
    req.shard_puts = &puts;
  }
  return replica_call(t->r, t->url, &req, timeout_ms);
}

/* Reads a chunk's answer into the target's per-entry flags. */
static void puts_note(puts_target *t, size_t first, size_t n, const Synapse__ReplicaReply *rep) {
  for (size_t j = 0; j < n; j++) {
    if (n == 1) {
      t->ok[first] = rep->ok;
      t->existed[first] = rep->has_existed && rep->existed;
    } else if (rep->ok && rep->n_puts_ok == n) {
      t->ok[first + j] = rep->puts_ok[j];
      t->existed[first + j] = j < rep->n_puts_existed && rep->puts_existed[j];
    }
  }
}

/* Sends entries [first, first + n) as one chunk, retried while the budget lasts. */
static void puts_chunk(puts_target *t, Synapse__Shard **shards, size_t first, size_t n) {
  for (size_t j = 0; j < n; j++) shards[j] = (Synapse__Shard *)t->copies[t->items[first + j]].shard;
  for (;;) {
    uint64_t now = replica_mono_ms();
    if (now >= t->deadline || atomic_load(&t->r->stopping)) return;
    Synapse__ReplicaReply *rep = puts_call(t, shards, n, (uint32_t)(t->deadline - now));
    if (rep) {
      puts_note(t, first, n, rep);
      synapse__replica_reply__free_unpacked(rep, NULL);
      return;
    }
    if (replica_mono_ms() + 20 >= t->deadline) return;
    replica_sleep(t->r, 10);
  }
}

static void *puts_main(void *arg) {
  puts_target *t = arg;
  Synapse__Shard **shards = malloc((t->n ? t->n : 1) * sizeof *shards);
  for (size_t first = 0; shards && first < t->n;) {
    size_t n = 0, bytes = 0;
    while (first + n < t->n) {
      size_t b = protobuf_c_message_get_packed_size(&t->copies[t->items[first + n]].shard->base);
      if (n > 0 && bytes + b > PUTS_MAX_BYTES) break;
      bytes += b;
      n++;
    }
    puts_chunk(t, shards, first, n);
    first += n;
  }
  free(shards);
  return NULL;
}

/* The target for url, added when new. NULL on ENOMEM. */
static puts_target *puts_target_for(puts_target **ts, size_t *nt, size_t *cap, const char *url) {
  for (size_t i = 0; i < *nt; i++)
    if (strcmp((*ts)[i].url, url) == 0) return &(*ts)[i];
  if (*nt == *cap) {
    size_t c = *cap ? 2 * *cap : 4;
    puts_target *g = realloc(*ts, c * sizeof *g);
    if (!g) return NULL;
    *ts = g;
    *cap = c;
  }
  puts_target *t = &(*ts)[(*nt)++];
  memset(t, 0, sizeof *t);
  snprintf(t->url, sizeof t->url, "%s", url);
  return t;
}

static int puts_target_add(puts_target *t, size_t item) {
  if (t->n == t->cap) {
    size_t c = t->cap ? 2 * t->cap : 16;
    size_t *items = realloc(t->items, c * sizeof *items);
    if (!items) return -ENOMEM;
    t->items = items;
    t->cap = c;
  }
  t->items[t->n++] = item;
  return 0;
}

/* Groups the copies by the replicas they go to; need[i] = the quorum of copy i (0: its
 * info_hash is malformed). */
static int puts_plan(syn_replica *r, const syn_replica_copy *c, size_t n, uint32_t *need,
                     puts_target **ts, size_t *nt) {
  size_t cap = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t key[20];
    char norm[65];
    need[i] = 0;
    const char *hex = c[i].shard->info_hash;
    if (!hex || syn_info_hash_parse(hex, strlen(hex), norm, key)) continue;
    copy_call calls[SYN_RING_MAX_REPLICATION];
    uint32_t factor = 1;
    size_t k = copy_targets(r, key, calls, &factor);
    need[i] = r->cfg->write_quorum < factor ? r->cfg->write_quorum : factor;
    for (size_t j = 0; j < k; j++) {
      puts_target *t = puts_target_for(ts, nt, &cap, calls[j].url);
      if (!t || puts_target_add(t, i)) return -ENOMEM;
    }
  }
  return 0;
}

/* Runs every target's copies at once (a thread each) and waits for all. */
static void puts_run(syn_replica *r, const syn_replica_copy *c, puts_target *ts, size_t nt) {
  /* Leaves the router's deadline room for the local write and the reply. */
  uint64_t deadline = replica_mono_ms() + r->cfg->request_timeout_ms * 3 / 4 + 1;
  pthread_t *threads = calloc(nt ? nt : 1, sizeof *threads);
  bool *started = calloc(nt ? nt : 1, sizeof *started);
  for (size_t i = 0; i < nt; i++) {
    puts_target *t = &ts[i];
    t->r = r;
    t->copies = c;
    t->deadline = deadline;
    t->ok = calloc(t->n, sizeof *t->ok);
    t->existed = calloc(t->n, sizeof *t->existed);
    if (!t->ok || !t->existed) continue; /* counted as not held there */
    if (threads && started) started[i] = pthread_create(&threads[i], NULL, puts_main, t) == 0;
    if (!started || !started[i]) puts_main(t);
  }
  for (size_t i = 0; i < nt; i++)
    if (started && started[i]) pthread_join(threads[i], NULL);
  free(threads);
  free(started);
}

/* Each copy's outcome from the targets' answers. */
static void puts_tally(syn_replica_copy *c, size_t n, const uint32_t *need, const puts_target *ts,
                       size_t nt, uint32_t *acks) {
  for (size_t i = 0; i < n; i++) acks[i] = 1; /* this node holds it already */
  for (size_t i = 0; i < nt; i++)
    for (size_t j = 0; ts[i].ok && ts[i].existed && j < ts[i].n; j++) {
      size_t item = ts[i].items[j];
      acks[item] += ts[i].ok[j];
      if (ts[i].existed[j]) c[item].existed_elsewhere = true;
    }
  for (size_t i = 0; i < n; i++) {
    c[i].rc = need[i] && acks[i] >= need[i] ? 0 : -1;
    if (c[i].rc && need[i])
      snprintf(c[i].err, sizeof c[i].err,
               "registration persisted on %u of the %u replicas required; retry", acks[i], need[i]);
    else if (c[i].rc)
      snprintf(c[i].err, sizeof c[i].err, "info_hash must be hex");
  }
}

void syn_replica_put_many(syn_replica *r, syn_replica_copy *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    c[i].rc = 0;
    c[i].existed_elsewhere = false;
    c[i].err[0] = '\0';
  }
  if (!r || n == 0) return;
  uint32_t *need = calloc(n, sizeof *need), *acks = calloc(n, sizeof *acks);
  puts_target *ts = NULL;
  size_t nt = 0;
  int rc = need && acks ? puts_plan(r, c, n, need, &ts, &nt) : -ENOMEM;
  if (rc == 0) {
    puts_run(r, c, ts, nt);
    puts_tally(c, n, need, ts, nt, acks);
  }
  for (size_t i = 0; rc && i < n; i++) {
    c[i].rc = -1;
    snprintf(c[i].err, sizeof c[i].err, "out of memory");
  }
  for (size_t i = 0; i < nt; i++) {
    free(ts[i].items);
    free(ts[i].ok);
    free(ts[i].existed);
  }
  free(ts);
  free(need);
  free(acks);
}

int syn_replica_put(syn_replica *r, const Synapse__Shard *shard, bool *existed_elsewhere, char *err,
                    size_t err_len) {
  syn_replica_copy c = {.shard = shard};
  syn_replica_put_many(r, &c, 1);
  if (existed_elsewhere) *existed_elsewhere = c.existed_elsewhere;
  if (c.rc) snprintf(err, err_len, "%s", c.err);
  return c.rc;
}

int syn_replica_delete(syn_replica *r, const char *info_hash, const syn_version *v,
                       bool *existed_elsewhere, char *err, size_t err_len) {
  Synapse__Version pv;
  syn_version_to_proto(v, &pv);
  Synapse__ShardDelete del = SYNAPSE__SHARD_DELETE__INIT;
  del.info_hash = (char *)info_hash;
  del.version = &pv;
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_SHARD_DELETE;
  req.shard_delete = &del;
  return replicate(r, info_hash, &req, "delete", existed_elsewhere, err, err_len);
}
