/* A node's cluster side: lifetime, serving state, and the helpers its parts share.
 * Design notes:
 *
 * - Serving state: caught_up is false from start until the sync thread has compared
 *   (or pulled) every partition this node holds with another replica; `resync` asks for
 *   that again after anything that may have made this node miss writes: it refuted a
 *   suspicion about itself (others thought it dead, so writes went elsewhere), or its
 *   membership clock stalled (the process was paused). Until then reads are refused with
 *   NOT_SERVING and the router asks the next replica.
 * - Stale data: <data_dir>/synced_at records when a sync with another node last
 *   succeeded. A node whose record is older than the tombstone grace may hold shards
 *   whose deletes the others have already forgotten; it discards each partition and
 *   pulls it again from a replica that is not stale itself (node/sync.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "node/replica_internal.h"
#include "node/shard_proto.h"
#include "proto/wire.h"

#define PAUSE_MS 2000 /* the membership clock stalled this long: the process was paused */

uint64_t replica_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void replica_sleep(syn_replica *r, uint32_t ms) {
  uint64_t end = replica_mono_ms() + ms;
  while (!atomic_load(&r->stopping)) {
    uint64_t now = replica_mono_ms();
    if (now >= end) return;
    uint64_t left = end - now > 50 ? 50 : end - now;
    struct timespec ts = {0, (long)left * 1000000L};
    nanosleep(&ts, NULL);
  }
}

syn_view *replica_view(syn_replica *r) { return syn_view_get(r->views); }

bool replica_source_ok(const syn_member_info *m) {
  return m && m->peer_url[0] && !m->self && (syn_member_usable(m) || m->state == SYN_MEMBER_LEFT);
}

Synapse__ReplicaReply *replica_call(syn_replica *r, const char *peer_url,
                                    const Synapse__ReplicaRequest *req, uint32_t timeout_ms) {
  syn_buf msg = SYN_BUF_INIT, reply = SYN_BUF_INIT;
  Synapse__ReplicaReply *rep = NULL;
  if (syn_wire_pack(&msg, &req->base) == 0 &&
      syn_membership_app_call(r->m, peer_url, msg.data, msg.len, timeout_ms, &reply) == 0)
    rep = synapse__replica_reply__unpack(NULL, reply.len, reply.data);
  syn_buf_free(&msg);
  syn_buf_free(&reply);
  return rep;
}

/* A record from another node as an index write: validated, its clock observed. The
 * write points into hex, *in and *emb (an embedding copy: the caller frees it). 0 or
 * -EINVAL / -ENOMEM. */
typedef struct record_write {
  syn_index_write w;
  syn_shard_input in;
  float *emb;
  char hex[65];
} record_write;

static int record_to_write(syn_replica *r, const Synapse__Record *rec, record_write *out) {
  memset(out, 0, sizeof *out);
  out->w.info_hash = out->hex;
  out->w.now_ms = syn_wall_ms();
  if (!rec->info_hash || syn_info_hash_normalize(rec->info_hash, out->hex) ||
      !syn_version_from_proto(rec->version, &out->w.version) ||
      !syn_hlc_plausible(out->w.version.hlc, out->w.now_ms))
    return -EINVAL;
  syn_hlc_observe(r->hlc, out->w.version.hlc);
  if (!rec->shard) return 0;
  if (!rec->shard->info_hash || strcmp(rec->shard->info_hash, out->hex) != 0) return -EINVAL;
  bool bad;
  out->emb = syn_shard_embedding_copy(rec->shard, &bad);
  if (bad || (rec->shard->has_embedding && !out->emb)) return bad ? -EINVAL : -ENOMEM;
  out->in = syn_shard_input_from_proto(rec->shard, out->emb);
  out->w.shard = &out->in;
  return 0;
}

int replica_apply_record(syn_replica *r, const Synapse__Record *rec) {
  record_write rw;
  int rc = record_to_write(r, rec, &rw);
  bool applied = false;
  if (rc == 0 && !rw.w.shard)
    rc = syn_index_delete(r->index, rw.hex, &rw.w.version, rw.w.now_ms, &applied, NULL);
  else if (rc == 0) {
    char err[256];
    rc = syn_index_register(r->index, &rw.in, &rw.w.version, &applied, err, sizeof err);
  }
  if (rc == 0 && applied) syn_registered_note(r->registered, rw.hex, rw.w.shard != NULL);
  free(rw.emb);
  return rc;
}

size_t replica_apply_records(syn_replica *r, Synapse__Record *const *recs, size_t n, bool *ok,
                             bool *existed) {
  record_write *rw = calloc(n ? n : 1, sizeof *rw);
  syn_index_write *w = calloc(n ? n : 1, sizeof *w);
  size_t *at = calloc(n ? n : 1, sizeof *at); /* record index of each write */
  size_t valid = 0, applied_ok = 0;
  for (size_t i = 0; i < n; i++) {
    if (ok) ok[i] = false;
    if (existed) existed[i] = false;
  }
  for (size_t i = 0; rw && w && at && i < n; i++)
    if (record_to_write(r, recs[i], &rw[i]) == 0) {
      at[valid] = i;
      w[valid++] = rw[i].w;
    }
  if (rw && w && at && syn_index_apply(r->index, w, valid) == 0)
    for (size_t i = 0; i < valid; i++) {
      applied_ok += w[i].rc == 0;
      if (ok) ok[at[i]] = w[i].rc == 0;
      if (existed) existed[at[i]] = w[i].rc == 0 && w[i].existed;
      if (w[i].rc == 0 && w[i].applied)
        syn_registered_note(r->registered, w[i].info_hash, w[i].shard != NULL);
    }
  for (size_t i = 0; rw && i < n; i++) free(rw[i].emb);
  free(rw);
  free(w);
  free(at);
  return applied_ok;
}

/* ---- serving state ---- */

bool syn_replica_caught_up(syn_replica *r) { return !r || atomic_load(&r->caught_up); }

bool syn_replica_serving(syn_replica *r) {
  if (!r) return true;
  uint64_t tick = syn_membership_last_tick_ms(r->m);
  uint64_t pauses = syn_membership_pauses(r->m);
  bool paused = tick && replica_mono_ms() - tick > PAUSE_MS;
  if (pauses != atomic_exchange(&r->pauses_seen, pauses)) paused = true;
  if (paused && !atomic_load(&r->stopping)) {
    /* Paused (SIGSTOP, or starved that long): writes may have gone elsewhere meanwhile. */
    if (atomic_exchange(&r->caught_up, false))
      syn_warn("replica: this process was paused: comparing everything before serving reads");
    atomic_store(&r->resync, true);
  }
  return atomic_load(&r->caught_up);
}

int syn_replica_ready_partitions(syn_replica *r, uint32_t parts, uint8_t *out) {
  size_t bytes = (parts + 7) / 8;
  if (!r) {
    memset(out, 0xff, bytes);
    return 0;
  }
  if (!syn_replica_serving(r)) return -1;
  pthread_mutex_lock(&r->ready_mu);
  int rc = r->ready_parts == parts ? 0 : -1;
  if (rc == 0) memcpy(out, r->ready, bytes);
  pthread_mutex_unlock(&r->ready_mu);
  return rc;
}

void replica_publish_ready(syn_replica *r, const syn_ring *ring, const char *self_id) {
  uint32_t parts = syn_ring_partitions(ring);
  uint8_t *b = calloc((parts + 7) / 8 + 1, 1);
  long self = syn_ring_index_of(ring, self_id);
  if (!b) return; /* the previous set stays: at worst partitions are named unserved */
  for (uint32_t p = 0; self >= 0 && p < parts; p++)
    if (syn_ring_holds(ring, p, (size_t)self, NULL)) b[p / 8] |= (uint8_t)(1u << (p % 8));
  pthread_mutex_lock(&r->ready_mu);
  free(r->ready);
  r->ready = b;
  r->ready_parts = parts;
  pthread_mutex_unlock(&r->ready_mu);
}

void syn_replica_drain(syn_replica *r, uint32_t min_ms, uint32_t quiet_ms, uint32_t max_ms) {
  if (!r) return;
  uint64_t start = replica_mono_ms();
  for (;;) {
    uint64_t now = replica_mono_ms();
    uint64_t last = atomic_load(&r->last_pull_ms);
    bool quiet = now - (last > start ? last : start) >= quiet_ms;
    if (now - start >= max_ms || (now - start >= min_ms && quiet)) return;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/* ---- stale data ---- */

static int64_t read_synced_at(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  long long ms = 0;
  if (fscanf(f, "%lld", &ms) != 1) ms = 0;
  fclose(f);
  return ms;
}

static void check_stale(syn_replica *r) {
  snprintf(r->synced_path, sizeof r->synced_path, "%s/synced_at", r->cfg->data_dir);
  int64_t at = read_synced_at(r->synced_path);
  int64_t age = at ? syn_wall_ms() - at : 0;
  if (at && age > (int64_t)r->cfg->tombstone_grace_s * 1000) {
    atomic_store(&r->stale, true);
    syn_warn(
        "replica: data last synced %lld s ago, beyond the tombstone grace of %u s: "
        "partitions will be pulled again from up-to-date replicas",
        (long long)(age / 1000), r->cfg->tombstone_grace_s);
  }
}

/* ---- lifetime ---- */

static void on_view_change(void *ctx) {
  (void)ctx; /* the sync thread looks at the view every tick */
}

syn_replica *syn_replica_start(const syn_config *cfg, syn_membership *members,
                               syn_view_source *view, syn_swarm_store *swarms, syn_index *index,
                               syn_hlc *hlc, syn_registered *registered, char *err,
                               size_t err_len) {
  syn_replica *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  r->cfg = cfg;
  r->m = members;
  r->views = view;
  r->swarms = swarms;
  r->index = index;
  r->hlc = hlc;
  r->registered = registered;
  pthread_mutex_init(&r->push_mu, NULL);
  pthread_mutex_init(&r->figures_mu, NULL);
  pthread_mutex_init(&r->ready_mu, NULL);
  pthread_cond_init(&r->push_cv, NULL);
  check_stale(r);
  atomic_store(&r->pauses_seen, syn_membership_pauses(members));
  syn_view_source_listen(view, on_view_change, r);
  syn_membership_set_app_handler(members, peer_serve, r);
  if (replication_start(r, err, err_len)) {
    syn_replica_stop(r);
    return NULL;
  }
  r->sync_started = pthread_create(&r->sync_thread, NULL, sync_main, r) == 0;
  if (!r->sync_started) {
    snprintf(err, err_len, "cannot start the sync thread");
    syn_replica_stop(r);
    return NULL;
  }
  return r;
}

void syn_replica_stop(syn_replica *r) {
  if (!r) return;
  atomic_store(&r->stopping, true);
  syn_view_source_unlisten(r->views, on_view_change, r);
  if (r->sync_started) pthread_join(r->sync_thread, NULL);
  replication_stop(r);
  syn_membership_set_app_handler(r->m, NULL, NULL);
  pthread_mutex_destroy(&r->push_mu);
  pthread_mutex_destroy(&r->figures_mu);
  pthread_mutex_destroy(&r->ready_mu);
  free(r->ready);
  pthread_cond_destroy(&r->push_cv);
  free(r);
}

void replica_note_round(syn_replica *r, int kind, uint64_t duration_us, uint64_t partitions,
                        uint64_t buckets, uint64_t keys, uint64_t records) {
  pthread_mutex_lock(&r->figures_mu);
  sync_figures *f = &r->figures[kind];
  f->rounds++;
  f->last_duration_us = duration_us;
  f->last_partitions = partitions;
  f->last_buckets = buckets;
  f->last_keys = keys;
  f->last_records = records;
  f->records_pulled += records;
  pthread_mutex_unlock(&r->figures_mu);
}

size_t syn_replica_sync_rounds(syn_replica *r, Synapse__SyncRound *out, size_t cap) {
  static const char *const names[SYNC_KINDS] = {"catch_up", "anti_entropy"};
  if (!r) return 0;
  size_t n = 0;
  pthread_mutex_lock(&r->figures_mu);
  for (int k = 0; k < SYNC_KINDS && n < cap; k++, n++) {
    const sync_figures *f = &r->figures[k];
    synapse__sync_round__init(&out[n]);
    out[n].kind = (char *)names[k];
    out[n].rounds = f->rounds;
    out[n].has_last_duration_us = out[n].has_last_partitions_differing = 1;
    out[n].has_last_buckets_differing = out[n].has_last_keys_compared = 1;
    out[n].has_last_records_pulled = out[n].has_records_pulled = 1;
    out[n].last_duration_us = f->last_duration_us;
    out[n].last_partitions_differing = f->last_partitions;
    out[n].last_buckets_differing = f->last_buckets;
    out[n].last_keys_compared = f->last_keys;
    out[n].last_records_pulled = f->last_records;
    out[n].records_pulled = f->records_pulled;
  }
  pthread_mutex_unlock(&r->figures_mu);
  return n;
}
