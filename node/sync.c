/* Repair between replicas: hand-off when the ring changes, anti-entropy between rounds,
 * dropping what moved away, and purging old tombstones. One thread. Design notes:
 *
 * - One mechanism serves hand-off and anti-entropy (Dynamo-style, digests as in
 *   Cassandra's repair, but kept incrementally by every write instead of built per
 *   round): to sync a set of partitions from a peer, ask for their bucket digests,
 *   compare with ours, ask for the versions of the records in the buckets that differ,
 *   and fetch only the records whose version there is newer than ours (tombstones
 *   included). Pulls only: the peer pulls from us in its own round. Its cost grows with
 *   the difference, not with the data: a round where nothing differs is one exchange of
 *   P x 8 bytes per pair of nodes.
 * - Hand-off: partitions held now and not in the ring of the last completed pass are
 *   synced from a node that held them (preferring one that still does), then their
 *   swarms are pulled page by page. The first pass after a start, and every pass after
 *   something that may have made this node miss writes (resync), compares every held
 *   partition with one other replica before the node serves reads again.
 * - A stale node (data older than the tombstone grace) forgets each partition before
 *   pulling it from a replica that is not stale itself, so no delete the others have
 *   forgotten can come back through it.
 * - Partitions this node no longer holds are dropped once every current holder confirms
 *   it has them, caught up. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/keyspace.h"
#include "common/log.h"
#include "common/urlcodec.h"
#include "node/replica_internal.h"
#include "node/shard_proto.h"
#include "node/ws_peers.h"

#define TICK_MS 200
#define KEYS_PER_REQUEST 1024   /* buckets asked for in one KeysRequest */
#define RECORDS_PER_REQUEST 128 /* records fetched in one RecordsRequest */
#define SYNC_TIMEOUT_MS 3000    /* a frozen peer costs this much once per attempt */
#define PURGE_EVERY_MS 60000
#define PURGE_BATCH 10000
#define SYN_VIEW_GROUPS 64 /* sources used at once in one hand-off attempt */

/* ---- bitmaps of partitions ---- */

typedef struct bitmap {
  uint32_t bits;
  uint8_t *b;
} bitmap;

static int bitmap_init(bitmap *m, uint32_t bits) {
  m->bits = bits;
  m->b = calloc((bits + 7) / 8 + 1, 1);
  return m->b ? 0 : -ENOMEM;
}

static void bitmap_free(bitmap *m) {
  free(m->b);
  m->b = NULL;
}

static void bit_set(bitmap *m, uint32_t i) { m->b[i / 8] |= (uint8_t)(1u << (i % 8)); }
static bool bit_get(const bitmap *m, uint32_t i) { return m->b[i / 8] & (1u << (i % 8)); }

static bool bitmap_any(const bitmap *m) {
  for (uint32_t i = 0; i < (m->bits + 7) / 8; i++)
    if (m->b[i]) return true;
  return false;
}

static ProtobufCBinaryData bitmap_bytes(const bitmap *m) {
  return (ProtobufCBinaryData){(m->bits + 7) / 8, m->b};
}

/* ---- one sync: digests -> keys -> records ---- */

typedef struct sync_stats {
  size_t partitions_differing, buckets_differing, keys_compared, records_pulled;
  bool partitions_from_digests; /* anti-entropy: counted from the partition digests */
} sync_stats;

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void note_round(syn_replica *r, int kind, uint64_t started_us, const sync_stats *st) {
  replica_note_round(r, kind, mono_us() - started_us, st->partitions_differing,
                     st->buckets_differing, st->keys_compared, st->records_pulled);
}

static bool remote_newer(syn_replica *r, const Synapse__KeyVersion *kv) {
  syn_version theirs;
  if (!kv->info_hash || !syn_version_from_proto(kv->version, &theirs)) return false;
  syn_key_version mine;
  int rc = syn_index_version(r->index, kv->info_hash, &mine);
  if (rc == -ENOENT) {
    /* A tombstone older than the grace is as good as gone: never take one back. */
    if (kv->has_deleted && kv->deleted &&
        syn_hlc_ms(theirs.hlc) < syn_wall_ms() - (int64_t)r->cfg->tombstone_grace_s * 1000)
      return false;
    return true;
  }
  return rc == 0 && syn_version_cmp(&theirs, &mine.version) > 0;
}

/* Asks for the records of `hashes`; a reply capped in bytes covers a prefix of them
 * (records_considered), and the rest is asked again until all are covered. */
static int fetch_records(syn_replica *r, const char *url, char **hashes, size_t n, sync_stats *st) {
  while (n > 0) {
    Synapse__RecordsRequest rr = SYNAPSE__RECORDS_REQUEST__INIT;
    rr.info_hash = hashes;
    rr.n_info_hash = n;
    Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
    req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_RECORDS;
    req.records = &rr;
    Synapse__ReplicaReply *rep = replica_call(r, url, &req, SYNC_TIMEOUT_MS);
    int rc = rep && rep->ok && !(rep->has_stale && rep->stale) ? 0 : -1;
    /* A peer that does not say covered them all; one that says 0 would loop for ever. */
    size_t covered = n;
    if (rc == 0 && rep->has_records_considered)
      covered =
          rep->records_considered == 0 || rep->records_considered > n ? n : rep->records_considered;
    if (rc == 0)
      st->records_pulled += replica_apply_records(r, rep->records, rep->n_records, NULL, NULL);
    if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
    if (rc) return rc;
    hashes += covered;
    n -= covered;
  }
  return 0;
}

/* Compares the versions of a batch of buckets and fetches what is newer there. */
static int sync_buckets(syn_replica *r, const char *url, uint32_t *buckets, size_t n,
                        sync_stats *st) {
  Synapse__KeysRequest kr = SYNAPSE__KEYS_REQUEST__INIT;
  kr.partitions = syn_index_partitions(r->index);
  kr.buckets = syn_index_buckets(r->index);
  kr.bucket = buckets;
  kr.n_bucket = n;
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_KEYS;
  req.keys = &kr;
  Synapse__ReplicaReply *rep = replica_call(r, url, &req, SYNC_TIMEOUT_MS);
  if (!rep || !rep->ok || (rep->has_stale && rep->stale)) {
    if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
    return -1;
  }
  char *want[RECORDS_PER_REQUEST];
  size_t nw = 0;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < rep->n_keys; i++) {
    st->keys_compared++;
    if (!remote_newer(r, rep->keys[i])) continue;
    want[nw++] = rep->keys[i]->info_hash;
    if (nw == RECORDS_PER_REQUEST) {
      rc = fetch_records(r, url, want, nw, st);
      nw = 0;
    }
  }
  if (rc == 0 && nw) rc = fetch_records(r, url, want, nw, st);
  synapse__replica_reply__free_unpacked(rep, NULL);
  return rc;
}

/* Syncs the partitions of `set` from the node at url. 0, -ESTALE (that node is behind
 * itself: find another), or -1. */
static int sync_partitions(syn_replica *r, const char *url, const bitmap *set, sync_stats *st) {
  uint32_t parts = syn_index_partitions(r->index), nb = syn_index_buckets(r->index);
  Synapse__DigestRequest dr = SYNAPSE__DIGEST_REQUEST__INIT;
  dr.partitions = parts;
  dr.buckets = nb;
  dr.has_partition_set = 1;
  dr.partition_set = bitmap_bytes(set);
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_DIGESTS;
  req.digests = &dr;
  Synapse__ReplicaReply *rep = replica_call(r, url, &req, SYNC_TIMEOUT_MS);
  if (!rep || !rep->ok) {
    if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
    return -1;
  }
  if (rep->has_stale && rep->stale) {
    synapse__replica_reply__free_unpacked(rep, NULL);
    return -ESTALE;
  }
  size_t count = 0;
  for (uint32_t p = 0; p < parts; p++) count += bit_get(set, p);
  uint64_t *mine = malloc((size_t)parts * nb * sizeof *mine);
  uint32_t *diff = malloc(KEYS_PER_REQUEST * sizeof *diff);
  int rc = mine && diff && rep->has_digests && rep->digests.len == count * nb * 8 ? 0 : -1;
  if (rc == 0) syn_index_digests(r->index, mine);
  size_t k = 0, nd = 0;
  for (uint32_t p = 0; rc == 0 && p < parts; p++) {
    if (!bit_get(set, p)) continue;
    bool differs = false;
    for (uint32_t b = 0; rc == 0 && b < nb; b++, k++) {
      uint64_t theirs;
      memcpy(&theirs, rep->digests.data + k * 8, 8);
      if (theirs == mine[(size_t)p * nb + b]) continue;
      st->buckets_differing++;
      differs = true;
      diff[nd++] = p * nb + b;
      if (nd == KEYS_PER_REQUEST) {
        rc = sync_buckets(r, url, diff, nd, st);
        nd = 0;
      }
    }
    /* The periodic round counted its differing partitions already. */
    if (differs && !st->partitions_from_digests) st->partitions_differing++;
  }
  if (rc == 0 && nd) rc = sync_buckets(r, url, diff, nd, st);
  free(mine);
  free(diff);
  synapse__replica_reply__free_unpacked(rep, NULL);
  return rc;
}

/* Pulls the swarms of `set` from url, one range of stripes a page. */
static int pull_swarms(syn_replica *r, const char *url, const bitmap *set) {
  uint32_t stripe = 0, now = (uint32_t)(replica_mono_ms() / 1000);
  for (;;) {
    Synapse__SwarmPull sp = SYNAPSE__SWARM_PULL__INIT;
    sp.partitions = set->bits;
    sp.wanted = bitmap_bytes(set);
    sp.has_stripe = 1;
    sp.stripe = stripe;
    Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
    req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_SWARMS;
    req.swarms = &sp;
    Synapse__ReplicaReply *rep = replica_call(r, url, &req, SYNC_TIMEOUT_MS);
    if (!rep || !rep->ok) {
      if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
      return -1;
    }
    for (size_t i = 0; i < rep->n_peers; i++) {
      const Synapse__AnnounceRequest *a = rep->peers[i];
      if (a->info_hash.len != 20 || a->peer_id.len != 20 || (a->ip.len != 4 && a->ip.len != 16) ||
          a->port == 0 || a->port > 65535)
        continue;
      syn_announce ann = {.info_hash = a->info_hash.data,
                          .peer_id = a->peer_id.data,
                          .ip = a->ip.data,
                          .ip_len = a->ip.len,
                          .port = (uint16_t)a->port,
                          .event = SYNAPSE__EVENT__EVENT_NONE,
                          .left = a->left};
      syn_announce_result res = {0};
      syn_swarm_announce(r->swarms, &ann, now, &res);
    }
    for (size_t i = 0; r->ws && i < rep->n_ws_peers; i++) {
      Synapse__WsAnnounceRequest a = *rep->ws_peers[i]; /* an entry: no offers, no answer */
      a.n_offers = 0;
      a.has_answer = 0;
      a.event = SYNAPSE__EVENT__EVENT_NONE;
      syn_ws_local local[SYN_WS_MAX_OFFERS + 1];
      syn_ws_announce_result res;
      syn_ws_peers_announce(r->ws, &a, now, local, &res);
    }
    bool more = rep->has_next_stripe && rep->next_stripe > stripe;
    stripe = rep->next_stripe;
    synapse__replica_reply__free_unpacked(rep, NULL);
    if (!more) return 0;
  }
}

static void note_synced(syn_replica *r) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp", r->synced_path);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f, "%lld\n", (long long)syn_wall_ms());
  if (fclose(f) == 0) rename(tmp, r->synced_path);
}

/* Forgets every record and tombstone of partition p (a stale node, before pulling). */
static void forget_partition(syn_replica *r, uint32_t p) {
  char(*keys)[65] = NULL;
  size_t n = 0;
  if (syn_index_partition_keys(r->index, p, &keys, &n) != 0) return;
  for (size_t i = 0; i < n; i++) {
    syn_index_forget(r->index, keys[i]);
    syn_registered_note(r->registered, keys[i], false);
  }
  free(keys);
}

/* ---- hand-off ---- */

/* Sources for partition p, preferred first: holders in `ring` now (they keep receiving
 * its writes), then holders in `before`. */
static size_t sources_for(const syn_view *v, const syn_ring *before, uint32_t p,
                          const syn_member_info **out, size_t cap) {
  size_t k = 0;
  syn_view_replica reps[SYN_RING_MAX_REPLICATION];
  size_t n = syn_view_replicas(v, p, reps, SYN_RING_MAX_REPLICATION);
  for (int pass = 0; pass < 2; pass++) /* alive ones first, then suspect (or left) ones */
    for (size_t i = 0; i < n && k < cap; i++)
      if (replica_source_ok(reps[i].member) &&
          (reps[i].member->state == SYN_MEMBER_ALIVE) == (pass == 0))
        out[k++] = reps[i].member;
  if (!before) return k;
  const uint16_t *idx;
  size_t nb = syn_ring_replicas(before, p, &idx);
  for (size_t i = 0; i < nb && k < cap; i++) {
    const syn_member_info *m = syn_view_member(v, syn_ring_node_id(before, idx[i]));
    bool dup = false;
    for (size_t j = 0; j < k; j++) dup |= out[j] == m;
    if (!dup && replica_source_ok(m)) out[k++] = m;
  }
  return k;
}

typedef struct pass_plan {
  bitmap want; /* partitions to sync in this pass */
  bool all;    /* every held partition (first pass, resync) */
} pass_plan;

/* Whether the node at url is up to date itself (a stale node must not be trusted to
 * hold every delete): 0; -ESTALE when it says it is stale; -1 when it did not answer
 * (which says nothing about its data: try again, never take it for stale). */
static int source_current(syn_replica *r, const char *url) {
  bitmap none;
  if (bitmap_init(&none, syn_index_partitions(r->index))) return -1;
  sync_stats probe = {0};
  int rc = sync_partitions(r, url, &none, &probe);
  bitmap_free(&none);
  return rc;
}

/* Members found stale during one pass. */
typedef struct stale_list {
  const syn_member_info *m[SYN_VIEW_GROUPS];
  size_t n;
} stale_list;

static bool is_listed(const stale_list *l, const syn_member_info *m) {
  for (size_t i = 0; i < l->n; i++)
    if (l->m[i] == m) return true;
  return false;
}

/* Syncs `set` (partitions in `pending`, all with `src` as their source this attempt);
 * clears those done from `pending`. */
static void sync_group(syn_replica *r, const syn_member_info *src, const bitmap *set,
                       bitmap *pending, bool with_swarms, stale_list *stale, sync_stats *st) {
  if (atomic_load(&r->stale)) {
    int rc = source_current(r, src->peer_url);
    if (rc == -ESTALE && stale->n < SYN_VIEW_GROUPS && !is_listed(stale, src))
      stale->m[stale->n++] = src;
    if (rc) return; /* a source that only timed out is asked again, not trusted stale */
    for (uint32_t p = 0; p < set->bits; p++) /* ours may hold forgotten deletes */
      if (bit_get(set, p)) forget_partition(r, p);
  }
  if (sync_partitions(r, src->peer_url, set, st) != 0) return;
  if (with_swarms) pull_swarms(r, src->peer_url, set);
  for (uint32_t i = 0; i < (set->bits + 7) / 8; i++) pending->b[i] &= (uint8_t)~set->b[i];
}

/* One hand-off pass over `plan`: each partition from its first source; what failed from
 * its next source; one sync per source with all its partitions at once. 0 when every
 * partition is done (a partition without any source counts as done: nothing to pull). */
static int handoff_pass(syn_replica *r, const syn_view *v, const syn_ring *before,
                        const pass_plan *plan, sync_stats *st) {
  uint32_t parts = plan->want.bits;
  bitmap pending;
  if (bitmap_init(&pending, parts)) return -1;
  memcpy(pending.b, plan->want.b, (parts + 7) / 8);
  /* Swarms live in memory only: a joining, restarted or resumed node pulls them too. */
  bool swarms = true;
  stale_list stale = {.n = 0};
  for (size_t attempt = 0;
       attempt < 2 * SYN_RING_MAX_REPLICATION && bitmap_any(&pending) && !atomic_load(&r->stopping);
       attempt++) {
    /* Sources of this attempt, and their partitions. */
    const syn_member_info *srcs[SYN_VIEW_GROUPS];
    bitmap sets[SYN_VIEW_GROUPS];
    size_t ns = 0;
    for (uint32_t p = 0; p < parts; p++) {
      if (!bit_get(&pending, p)) continue;
      const syn_member_info *cand[2 * SYN_RING_MAX_REPLICATION];
      size_t n = sources_for(v, before, p, cand, 2 * SYN_RING_MAX_REPLICATION);
      if (attempt >= n) {
        if (n == 0) pending.b[p / 8] &= (uint8_t) ~(1u << (p % 8)); /* nobody to ask */
        continue;
      }
      size_t g = 0;
      while (g < ns && srcs[g] != cand[attempt]) g++;
      if (g == ns) {
        if (ns == SYN_VIEW_GROUPS || bitmap_init(&sets[ns], parts)) continue;
        srcs[ns++] = cand[attempt];
      }
      bit_set(&sets[g], p);
    }
    for (size_t g = 0; g < ns; g++) {
      sync_group(r, srcs[g], &sets[g], &pending, swarms, &stale, st);
      bitmap_free(&sets[g]);
    }
  }
  /* A partition whose every source is as stale as we are (the whole cluster was away
   * that long) keeps what we have: nobody holds anything newer to pull. */
  for (uint32_t p = 0; stale.n && p < parts; p++) {
    if (!bit_get(&pending, p)) continue;
    const syn_member_info *cand[2 * SYN_RING_MAX_REPLICATION];
    size_t n = sources_for(v, before, p, cand, 2 * SYN_RING_MAX_REPLICATION);
    bool all_stale = n > 0;
    for (size_t i = 0; i < n; i++) all_stale &= is_listed(&stale, cand[i]);
    if (all_stale) pending.b[p / 8] &= (uint8_t) ~(1u << (p % 8));
  }
  bool done = !bitmap_any(&pending);
  bitmap_free(&pending);
  return done ? 0 : -1;
}

/* What this pass must sync: every partition held now (all), or those held now and not
 * in `before`. */
static int plan_pass(syn_replica *r, const syn_view *v, const syn_ring *before, bool all,
                     pass_plan *plan) {
  const syn_ring *ring = syn_view_ring(v);
  uint32_t parts = syn_ring_partitions(ring);
  if (bitmap_init(&plan->want, parts)) return -1;
  plan->all = all;
  long self = syn_view_self_index(v);
  long old_self = before ? syn_ring_index_of(before, syn_view_self(v)->id) : -1;
  for (uint32_t p = 0; self >= 0 && p < parts; p++) {
    if (!syn_view_holds(v, p, self)) continue;
    if (!all && old_self >= 0 && syn_ring_holds(before, p, (size_t)old_self, NULL)) continue;
    bit_set(&plan->want, p);
  }
  return 0;
}

/* ---- drops ---- */

static bool confirm(syn_replica *r, const char *url, const bitmap *set) {
  Synapse__Confirm c = SYNAPSE__CONFIRM__INIT;
  c.partitions = set->bits;
  c.wanted = bitmap_bytes(set);
  Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
  req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_CONFIRM;
  req.confirm = &c;
  Synapse__ReplicaReply *rep = replica_call(r, url, &req, 2000);
  bool ok = rep && rep->ok;
  if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
  return ok;
}

static bool lost_swarm(void *ctx, const uint8_t info_hash[20]) {
  const bitmap *lost = ctx;
  return bit_get(lost, syn_partition_of(lost->bits, info_hash));
}

/* Partitions in `was_held` that this node holds no longer: dropped once every current
 * holder confirms it has them, one Confirm per holder for all of its partitions at once.
 * 0 when nothing is left to drop. */
static int drop_pass(syn_replica *r, const syn_view *v, const bitmap *was_held) {
  const syn_ring *ring = syn_view_ring(v);
  uint32_t parts = syn_ring_partitions(ring);
  long self = syn_view_self_index(v);
  if (self < 0 || was_held->bits != parts) return 0;
  bitmap drop, sub;
  if (bitmap_init(&drop, parts)) return -1;
  if (bitmap_init(&sub, parts)) {
    bitmap_free(&drop);
    return -1;
  }
  int rc = 0;
  for (uint32_t p = 0; p < parts; p++) {
    if (!bit_get(was_held, p) || syn_view_holds(v, p, self)) continue;
    syn_view_replica reps[SYN_RING_MAX_REPLICATION];
    if (syn_view_replicas(v, p, reps, SYN_RING_MAX_REPLICATION) == 0)
      rc = -1; /* nobody else holds it (the last node left): keep it */
    else
      bit_set(&drop, p);
  }
  const syn_member_info *ms;
  size_t count = syn_view_members(v, &ms);
  for (size_t j = 0; j < count && bitmap_any(&drop); j++) {
    const syn_member_info *m = &ms[j];
    long k = syn_ring_index_of(ring, m->id);
    if (m->self || k < 0) continue;
    memset(sub.b, 0, (parts + 7) / 8);
    for (uint32_t p = 0; p < parts; p++)
      if (bit_get(&drop, p) && syn_view_holds(v, p, k)) bit_set(&sub, p);
    if (!bitmap_any(&sub)) continue;
    if (syn_member_usable(m) && m->peer_url[0] && confirm(r, m->peer_url, &sub)) continue;
    for (uint32_t i = 0; i < (parts + 7) / 8; i++) drop.b[i] &= (uint8_t)~sub.b[i];
    rc = -1; /* that holder cannot vouch for its partitions yet: keep them, ask again */
  }
  for (uint32_t p = 0; p < parts; p++)
    if (bit_get(&drop, p)) forget_partition(r, p);
  if (bitmap_any(&drop)) syn_swarm_drop(r->swarms, lost_swarm, &drop);
  bitmap_free(&sub);
  bitmap_free(&drop);
  return rc;
}

/* ---- anti-entropy ---- */

/* One round: with each other node, compare the digests of the partitions both hold and
 * sync those that differ. */
static void anti_entropy(syn_replica *r, const syn_view *v, sync_stats *st) {
  const syn_ring *ring = syn_view_ring(v);
  uint32_t parts = syn_ring_partitions(ring), nb = syn_index_buckets(r->index);
  long self = syn_view_self_index(v);
  if (self < 0 || parts != syn_index_partitions(r->index)) return;
  uint64_t *mine = malloc((size_t)parts * nb * sizeof *mine);
  if (!mine) return;
  syn_index_digests(r->index, mine);
  const syn_member_info *ms;
  size_t count = syn_view_members(v, &ms);
  for (size_t j = 0; j < count && !atomic_load(&r->stopping); j++) {
    const syn_member_info *m = &ms[j];
    long k = syn_ring_index_of(ring, m->id);
    if (m->self || k < 0 || !syn_member_usable(m) || !m->peer_url[0]) continue;
    Synapse__DigestRequest dr = SYNAPSE__DIGEST_REQUEST__INIT;
    dr.partitions = parts;
    dr.buckets = nb;
    Synapse__ReplicaRequest req = SYNAPSE__REPLICA_REQUEST__INIT;
    req.body_case = SYNAPSE__REPLICA_REQUEST__BODY_DIGESTS;
    req.digests = &dr;
    Synapse__ReplicaReply *rep = replica_call(r, m->peer_url, &req, SYNC_TIMEOUT_MS);
    bitmap differ;
    bool usable = rep && rep->ok && !(rep->has_stale && rep->stale) && rep->has_digests &&
                  rep->digests.len == (size_t)parts * 8 && bitmap_init(&differ, parts) == 0;
    for (uint32_t p = 0; usable && p < parts; p++) {
      if (!syn_view_holds(v, p, self) || !syn_view_holds(v, p, k)) continue;
      uint64_t theirs, ours = 0;
      memcpy(&theirs, rep->digests.data + (size_t)p * 8, 8);
      for (uint32_t b = 0; b < nb; b++) ours ^= mine[(size_t)p * nb + b];
      if (theirs == ours) continue;
      bit_set(&differ, p);
      st->partitions_differing++;
    }
    if (rep) synapse__replica_reply__free_unpacked(rep, NULL);
    if (!usable) continue;
    if (bitmap_any(&differ)) sync_partitions(r, m->peer_url, &differ, st);
    bitmap_free(&differ);
  }
  free(mine);
}

/* ---- the thread ---- */

static syn_ring *ring_copy(const syn_ring *ring) {
  size_t n = syn_ring_node_count(ring);
  const char **ids = malloc((n ? n : 1) * sizeof *ids);
  if (!ids) return NULL;
  for (size_t i = 0; i < n; i++) ids[i] = syn_ring_node_id(ring, i);
  syn_ring *copy = syn_ring_build(ids, n, syn_ring_partitions(ring), syn_ring_replication(ring));
  free(ids);
  return copy;
}

/* Whether gossip says others suspected this node since we last looked: writes may have
 * gone elsewhere while they thought it dead. */
static bool refuted_since(syn_replica *r) {
  syn_membership_stats ms;
  syn_membership_stats_get(r->m, &ms);
  bool moved = ms.refutations != r->refutations_seen;
  r->refutations_seen = ms.refutations;
  return moved;
}

typedef struct sync_state {
  syn_ring *before; /* ring of the last completed pass */
  /* Partitions this node held under the rings of the passes completed since its last
   * complete drop: a later pass (a resync, another ring change) must not make it forget
   * what is still to drop. */
  bitmap was_held;
  bool to_drop;
  uint64_t done_version;
  bool first;
  uint64_t last_entropy, last_purge;
} sync_state;

/* Adds the partitions member `self_id` holds under `ring` to those it may have to drop. */
static void note_held(sync_state *s, const syn_ring *ring, const char *self_id) {
  uint32_t parts = syn_ring_partitions(ring);
  if (s->was_held.bits != parts || !s->was_held.b) { /* first use, or a new partition count */
    bitmap_free(&s->was_held);
    if (bitmap_init(&s->was_held, parts)) return;
  }
  long self = syn_ring_index_of(ring, self_id);
  if (self < 0) return;
  for (uint32_t p = 0; p < parts; p++)
    if (syn_ring_holds(ring, p, (size_t)self, NULL)) bit_set(&s->was_held, p);
  s->to_drop = true;
}

typedef struct stray_scan {
  const syn_view *v;
  long self;
  uint32_t parts;
  bitmap *out;
} stray_scan;

static bool note_stray_swarm(void *ctx, const uint8_t info_hash[20]) {
  stray_scan *sc = ctx;
  uint32_t p = syn_partition_of(sc->parts, info_hash);
  if (!syn_view_holds(sc->v, p, sc->self)) bit_set(sc->out, p);
  return false; /* only looked at */
}

/* Records and swarms in partitions this node does not hold, under a ring whose drops are
 * done: a write or a swarm push that was on its way under the ring before (its sender's
 * view was older, or it passed the ownership check just before the drop) lands after the
 * drop and would stay for ever, counted twice. Each anti-entropy round adds such
 * partitions to those to drop, with the same confirmations. */
static void note_strays(syn_replica *r, sync_state *s, const syn_view *v) {
  const syn_ring *ring = syn_view_ring(v);
  uint32_t parts = syn_ring_partitions(ring), nb = syn_index_buckets(r->index);
  long self = syn_view_self_index(v);
  if (self < 0 || parts != syn_index_partitions(r->index)) return;
  if (s->was_held.bits != parts || !s->was_held.b) { /* no ring change since the start */
    bitmap_free(&s->was_held);
    if (bitmap_init(&s->was_held, parts)) return;
  }
  uint64_t *mine = malloc((size_t)parts * nb * sizeof *mine);
  if (!mine) return;
  syn_index_digests(r->index, mine);
  for (uint32_t p = 0; p < parts; p++) {
    if (syn_view_holds(v, p, self)) continue;
    for (uint32_t b = 0; b < nb; b++)
      if (mine[(size_t)p * nb + b]) {
        bit_set(&s->was_held, p);
        break;
      }
  }
  free(mine);
  stray_scan sc = {.v = v, .self = self, .parts = parts, .out = &s->was_held};
  syn_swarm_drop(r->swarms, note_stray_swarm, &sc);
  if (bitmap_any(&s->was_held)) s->to_drop = true;
}

static void maybe_purge(syn_replica *r, sync_state *s, uint64_t now) {
  /* Every minute, or twice per grace when the grace is shorter than that. */
  uint64_t every = (uint64_t)r->cfg->tombstone_grace_s * 500;
  if (every > PURGE_EVERY_MS) every = PURGE_EVERY_MS;
  if (now - s->last_purge < every || atomic_load(&r->stale)) return;
  s->last_purge = now;
  size_t purged = 0;
  int64_t cutoff = syn_wall_ms() - (int64_t)r->cfg->tombstone_grace_s * 1000;
  if (syn_index_purge_tombstones(r->index, cutoff, PURGE_BATCH, &purged) == 0 && purged)
    syn_info("replica: purged %zu tombstones older than %u s", purged, r->cfg->tombstone_grace_s);
}

static void tick(syn_replica *r, sync_state *s) {
  syn_view *v = replica_view(r);
  if (!v) return;
  if (refuted_since(r) && !s->first) {
    syn_info("replica: others suspected this node: comparing everything before serving reads");
    atomic_store(&r->caught_up, false);
    atomic_store(&r->resync, true);
  }
  syn_replica_serving(r); /* notices a pause */
  bool resync = atomic_load(&r->resync);
  uint64_t version = syn_view_ring_version(v);
  if (syn_membership_joined(r->m) && syn_view_self(v) &&
      (s->first || resync || version != s->done_version)) {
    pass_plan plan;
    sync_stats st = {0};
    bool all = s->first || resync;
    uint64_t started = mono_us();
    if (plan_pass(r, v, s->first ? NULL : s->before, all, &plan) == 0) {
      atomic_store(&r->resync, false);
      int rc = handoff_pass(r, v, s->first ? NULL : s->before, &plan, &st);
      note_round(r, SYNC_CATCH_UP, started, &st);
      if (rc == 0) {
        if (!s->first) note_held(s, s->before, syn_view_self(v)->id);
        syn_ring_free(s->before);
        s->before = ring_copy(syn_view_ring(v));
        replica_publish_ready(r, syn_view_ring(v), syn_view_self(v)->id);
        s->done_version = version;
        atomic_store(&r->pulled_version, version);
        s->first = false;
        atomic_store(&r->stale, false);
        atomic_store(&r->caught_up, true);
        note_synced(r);
        s->last_entropy = 0; /* compare with the other holders right after a hand-off */
      } else {
        atomic_store(&r->resync, resync); /* try the whole pass again */
      }
      bitmap_free(&plan.want);
    }
  }
  if (s->to_drop && version == s->done_version && drop_pass(r, v, &s->was_held) == 0) {
    memset(s->was_held.b, 0, (s->was_held.bits + 7) / 8);
    s->to_drop = false;
  }
  uint64_t now = replica_mono_ms();
  if (atomic_load(&r->caught_up) && now - s->last_entropy >= r->cfg->anti_entropy_interval_ms) {
    sync_stats st = {0};
    uint64_t started = mono_us();
    st.partitions_from_digests = true;
    anti_entropy(r, v, &st);
    note_round(r, SYNC_ANTI_ENTROPY, started, &st);
    if (version == s->done_version && !s->to_drop) note_strays(r, s, v);
    s->last_entropy = replica_mono_ms();
    note_synced(r);
  }
  maybe_purge(r, s, now);
  syn_view_put(v);
}

void *sync_main(void *arg) {
  syn_replica *r = arg;
  sync_state s = {.first = true, .last_purge = replica_mono_ms()};
  refuted_since(r);
  while (!atomic_load(&r->stopping)) {
    tick(r, &s);
    replica_sleep(r, TICK_MS);
  }
  syn_ring_free(s.before);
  bitmap_free(&s.was_held);
  return NULL;
}
