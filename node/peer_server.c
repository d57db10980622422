/* What other nodes ask of this one, on the membership's app threads: one function per
 * request kind, each filling the reply. Every request is hostile input: sizes, layouts
 * and versions are checked before anything is applied or allocated. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyspace.h"
#include "node/replica_internal.h"
#include "node/shard_proto.h"
#include "node/ws_peers.h"
#include "proto/wire.h"

#define MAX_KEY_BUCKETS 4096
#define MAX_KEYS 50000 /* versions in one KeysRequest reply */
#define MAX_RECORDS 256
/* A records reply stays well under the members' message limit (4 MiB): 128 shards with
 * 4096-value embeddings and 16 KiB signatures and keys would not. At least one record
 * is always sent, and one record is far below the limit. */
#define RECORDS_REPLY_MAX_BYTES (2u << 20)
#define SWARM_PAGE_PEERS 20000 /* a page ends at the stripe where it passed this */

typedef struct served {
  Synapse__ReplicaReply rep;
  /* storage the reply points into, freed after packing */
  uint64_t *digests;
  syn_key_version *keys;
  size_t n_keys, keys_cap;
  Synapse__KeyVersion *key_msgs;
  Synapse__KeyVersion **key_ptrs;
  Synapse__Version *versions;
  syn_shard *shards;
  size_t n_shards;
  Synapse__Shard *shard_msgs;
  Synapse__Record *records;
  Synapse__Record **record_ptrs;
  Synapse__AnnounceRequest *peers;
  Synapse__AnnounceRequest **peer_ptrs;
  uint8_t *peer_bytes;
  size_t n_peers, peers_cap;
  /* WebSocket peers of a swarm pull's last page; their ids and routers in ws_bytes */
  Synapse__WsAnnounceRequest *ws;
  Synapse__WsAnnounceRequest **ws_ptrs;
  uint8_t *ws_bytes; /* WS_ENTRY_BYTES each: info_hash, peer_id, router id */
  size_t n_ws, ws_cap;
  protobuf_c_boolean *puts_ok, *puts_existed;
} served;

static void refuse(served *s, const char *why) {
  s->rep.ok = 0;
  s->rep.error = (char *)why;
}

static bool layout_matches(syn_replica *r, uint32_t partitions, uint32_t buckets) {
  return partitions == syn_index_partitions(r->index) && buckets == syn_index_buckets(r->index);
}

/* ---- writes from a coordinator ---- */

static void swarm_updates(syn_replica *r, const Synapse__SwarmUpdates *u, served *s) {
  uint32_t now = (uint32_t)(replica_mono_ms() / 1000);
  for (size_t i = 0; i < u->n_announces; i++) {
    const Synapse__AnnounceRequest *a = u->announces[i];
    if (a->info_hash.len != 20 || a->peer_id.len != 20 || (a->ip.len != 4 && a->ip.len != 16) ||
        a->port == 0 || a->port > 65535)
      continue;
    syn_announce req = {.info_hash = a->info_hash.data,
                        .peer_id = a->peer_id.data,
                        .ip = a->ip.data,
                        .ip_len = a->ip.len,
                        .port = (uint16_t)a->port,
                        .event = a->event,
                        .left = a->left};
    syn_announce_result res = {0};
    syn_swarm_announce(r->swarms, &req, now, &res);
  }
  /* WebSocket peers: the entry only (the coordinator left offers out and hands them on). */
  for (size_t i = 0; r->ws && i < u->n_ws_announces; i++) {
    Synapse__WsAnnounceRequest a = *u->ws_announces[i];
    if (a.has_answer) continue;
    a.n_offers = 0;
    syn_ws_local local[SYN_WS_MAX_OFFERS + 1];
    syn_ws_announce_result res;
    syn_ws_peers_announce(r->ws, &a, now, local, &res);
  }
  (void)s;
}

static void shard_put(syn_replica *r, const Synapse__ShardPut *p, served *s) {
  Synapse__Record rec = SYNAPSE__RECORD__INIT;
  rec.info_hash = p->shard->info_hash;
  rec.version = p->shard->version;
  rec.shard = p->shard;
  syn_key_version before;
  s->rep.has_existed = 1;
  s->rep.existed =
      rec.info_hash && syn_index_version(r->index, rec.info_hash, &before) == 0 && !before.deleted;
  int rc = replica_apply_record(r, &rec);
  if (rc) refuse(s, rc == -EINVAL ? "bad shard or version" : "cannot store the shard");
}

/* A coordinator's batch of registrations: one transaction here, an answer per shard. */
static void shard_puts(syn_replica *r, const Synapse__ShardPuts *p, served *s) {
  size_t n = p->n_shards;
  if (n == 0) return;
  s->records = calloc(n, sizeof *s->records);
  s->record_ptrs = calloc(n, sizeof *s->record_ptrs);
  s->puts_ok = calloc(n, sizeof *s->puts_ok);
  s->puts_existed = calloc(n, sizeof *s->puts_existed);
  bool *ok = calloc(n, sizeof *ok), *existed = calloc(n, sizeof *existed);
  if (s->records && s->record_ptrs && s->puts_ok && s->puts_existed && ok && existed) {
    for (size_t i = 0; i < n; i++) {
      synapse__record__init(&s->records[i]);
      s->records[i].info_hash = p->shards[i]->info_hash;
      s->records[i].version = p->shards[i]->version;
      s->records[i].shard = p->shards[i];
      s->record_ptrs[i] = &s->records[i];
    }
    replica_apply_records(r, s->record_ptrs, n, ok, existed);
    for (size_t i = 0; i < n; i++) {
      s->puts_ok[i] = ok[i];
      s->puts_existed[i] = existed[i];
    }
    s->rep.puts_ok = s->puts_ok;
    s->rep.n_puts_ok = n;
    s->rep.puts_existed = s->puts_existed;
    s->rep.n_puts_existed = n;
  } else {
    refuse(s, "out of memory");
  }
  free(ok);
  free(existed);
}

static void shard_delete(syn_replica *r, const Synapse__ShardDelete *d, served *s) {
  Synapse__Record rec = SYNAPSE__RECORD__INIT;
  rec.info_hash = d->info_hash;
  rec.version = d->version;
  syn_key_version before;
  s->rep.has_existed = 1;
  s->rep.existed = syn_index_version(r->index, d->info_hash, &before) == 0 && !before.deleted;
  int rc = replica_apply_record(r, &rec);
  if (rc) refuse(s, rc == -EINVAL ? "bad delete or version" : "cannot store the delete");
}

/* ---- anti-entropy and hand-off ---- */

static void digests(syn_replica *r, const Synapse__DigestRequest *d, served *s) {
  if (!layout_matches(r, d->partitions, d->buckets)) return refuse(s, "partition layout differs");
  uint32_t parts = d->partitions, nb = d->buckets;
  uint64_t *all = malloc((size_t)parts * nb * sizeof *all);
  if (!all) return refuse(s, "out of memory");
  syn_index_digests(r->index, all);
  if (!d->has_partition_set) { /* one per partition: XOR of its buckets */
    for (uint32_t p = 0; p < parts; p++) {
      uint64_t x = 0;
      for (uint32_t b = 0; b < nb; b++) x ^= all[(size_t)p * nb + b];
      all[p] = x;
    }
    s->rep.digests = (ProtobufCBinaryData){(size_t)parts * 8, (uint8_t *)all};
  } else {
    if (d->partition_set.len < (parts + 7) / 8) {
      free(all);
      return refuse(s, "bad partition set");
    }
    size_t k = 0;
    for (uint32_t p = 0; p < parts; p++) {
      if (!(d->partition_set.data[p / 8] & (1u << (p % 8)))) continue;
      memmove(all + k * nb, all + (size_t)p * nb, nb * sizeof *all);
      k++;
    }
    s->rep.digests = (ProtobufCBinaryData){k * nb * 8, (uint8_t *)all};
  }
  s->digests = all;
  s->rep.has_digests = 1;
}

static void keys(syn_replica *r, const Synapse__KeysRequest *k, served *s) {
  if (!layout_matches(r, k->partitions, k->buckets)) return refuse(s, "partition layout differs");
  if (k->n_bucket > MAX_KEY_BUCKETS) return refuse(s, "too many buckets");
  uint32_t total = k->partitions * k->buckets;
  for (size_t i = 0; i < k->n_bucket; i++) {
    if (k->bucket[i] >= total) return refuse(s, "bucket out of range");
    if (syn_index_bucket_keys(r->index, k->bucket[i], &s->keys, &s->n_keys, &s->keys_cap))
      return refuse(s, "cannot list the bucket");
    if (s->n_keys > MAX_KEYS) return refuse(s, "too many keys: ask for fewer buckets");
  }
  size_t n = s->n_keys;
  s->key_msgs = calloc(n + 1, sizeof *s->key_msgs);
  s->key_ptrs = calloc(n + 1, sizeof *s->key_ptrs);
  s->versions = calloc(n + 1, sizeof *s->versions);
  if (!s->key_msgs || !s->key_ptrs || !s->versions) return refuse(s, "out of memory");
  for (size_t i = 0; i < n; i++) {
    synapse__key_version__init(&s->key_msgs[i]);
    s->key_msgs[i].info_hash = s->keys[i].info_hash;
    syn_version_to_proto(&s->keys[i].version, &s->versions[i]);
    s->key_msgs[i].version = &s->versions[i];
    s->key_msgs[i].has_deleted = s->keys[i].deleted;
    s->key_msgs[i].deleted = s->keys[i].deleted;
    s->key_ptrs[i] = &s->key_msgs[i];
  }
  s->rep.keys = s->key_ptrs;
  s->rep.n_keys = n;
}

static void records(syn_replica *r, const Synapse__RecordsRequest *q, served *s) {
  if (q->n_info_hash > MAX_RECORDS) return refuse(s, "too many records");
  size_t n = q->n_info_hash;
  s->shards = calloc(n + 1, sizeof *s->shards);
  s->shard_msgs = calloc(n + 1, sizeof *s->shard_msgs);
  s->records = calloc(n + 1, sizeof *s->records);
  s->record_ptrs = calloc(n + 1, sizeof *s->record_ptrs);
  s->versions = calloc(n + 1, sizeof *s->versions);
  s->keys = calloc(n + 1, sizeof *s->keys);
  if (!s->shards || !s->shard_msgs || !s->records || !s->record_ptrs || !s->versions || !s->keys)
    return refuse(s, "out of memory");
  size_t k = 0, bytes = 0, i;
  for (i = 0; i < n && (k == 0 || bytes < RECORDS_REPLY_MAX_BYTES); i++) {
    Synapse__Record *rec = &s->records[k];
    synapse__record__init(rec);
    if (syn_index_get(r->index, q->info_hash[i], true, &s->shards[s->n_shards]) == 0) {
      syn_shard *sh = &s->shards[s->n_shards++];
      syn_shard_to_proto(sh, &s->shard_msgs[k], &s->versions[k]);
      rec->info_hash = sh->info_hash;
      rec->version = &s->versions[k];
      rec->shard = &s->shard_msgs[k];
    } else if (syn_index_version(r->index, q->info_hash[i], &s->keys[k]) == 0 &&
               s->keys[k].deleted) {
      rec->info_hash = s->keys[k].info_hash;
      syn_version_to_proto(&s->keys[k].version, &s->versions[k]);
      rec->version = &s->versions[k];
    } else {
      continue; /* gone since it was listed: the next round sees what replaced it */
    }
    s->record_ptrs[k] = rec;
    bytes += synapse__record__get_packed_size(rec);
    k++;
  }
  s->rep.records = s->record_ptrs;
  s->rep.n_records = k;
  s->rep.has_records_considered = 1;
  s->rep.records_considered = (uint32_t)i;
}

typedef struct swarm_page {
  served *s;
  const uint8_t *wanted;
  uint32_t partitions;
} swarm_page;

static bool page_wants(void *ctx, const uint8_t info_hash[20]) {
  const swarm_page *pg = ctx;
  uint32_t p = syn_partition_of(pg->partitions, info_hash);
  return pg->wanted[p / 8] & (1u << (p % 8));
}

static void page_emit(void *ctx, const uint8_t info_hash[20], const uint8_t *ip, size_t ip_len,
                      uint16_t port, const uint8_t peer_id[20], bool seeder) {
  served *s = ((swarm_page *)ctx)->s;
  if (s->n_peers == s->peers_cap) {
    size_t cap = s->peers_cap ? s->peers_cap * 2 : 1024;
    Synapse__AnnounceRequest *p = realloc(s->peers, cap * sizeof *p);
    if (!p) return;
    s->peers = p;
    uint8_t *b = realloc(s->peer_bytes, cap * 56);
    if (!b) return;
    s->peer_bytes = b;
    s->peers_cap = cap;
  }
  uint8_t *b = s->peer_bytes + s->n_peers * 56;
  memcpy(b, info_hash, 20);
  memcpy(b + 20, peer_id, 20);
  memcpy(b + 40, ip, ip_len);
  Synapse__AnnounceRequest *a = &s->peers[s->n_peers++];
  synapse__announce_request__init(a);
  a->port = port;
  a->has_left = 1;
  a->left = seeder ? 0 : 1;
  /* Pointers are set after the last realloc (pack_peers). */
  a->info_hash.len = 20;
  a->peer_id.len = 20;
  a->ip.len = ip_len;
}

static void pack_peers(served *s) {
  s->peer_ptrs = calloc(s->n_peers + 1, sizeof *s->peer_ptrs);
  if (!s->peer_ptrs) {
    s->n_peers = 0;
    return;
  }
  for (size_t i = 0; i < s->n_peers; i++) {
    uint8_t *b = s->peer_bytes + i * 56;
    s->peers[i].info_hash.data = b;
    s->peers[i].peer_id.data = b + 20;
    s->peers[i].ip.data = b + 40;
    s->peer_ptrs[i] = &s->peers[i];
  }
  s->rep.peers = s->peer_ptrs;
  s->rep.n_peers = s->n_peers;
}

#define WS_ENTRY_BYTES (40 + SYN_WS_ROUTER_ID_MAX + 1)
#define WS_PULL_MAX 65536 /* WebSocket peers in one pull (a few MiB) */

static void ws_emit(void *ctx, const uint8_t info_hash[20], const uint8_t peer_id[20],
                    const char *router, uint64_t boot, bool seed) {
  served *s = ((swarm_page *)ctx)->s;
  if (s->n_ws == s->ws_cap) {
    size_t cap = s->ws_cap ? s->ws_cap * 2 : 64;
    Synapse__WsAnnounceRequest *w = realloc(s->ws, cap * sizeof *w);
    if (!w) return;
    s->ws = w;
    uint8_t *b = realloc(s->ws_bytes, cap * WS_ENTRY_BYTES);
    if (!b) return;
    s->ws_bytes = b;
    s->ws_cap = cap;
  }
  uint8_t *b = s->ws_bytes + s->n_ws * WS_ENTRY_BYTES;
  memcpy(b, info_hash, 20);
  memcpy(b + 20, peer_id, 20);
  snprintf((char *)b + 40, SYN_WS_ROUTER_ID_MAX + 1, "%s", router);
  Synapse__WsAnnounceRequest *a = &s->ws[s->n_ws++];
  synapse__ws_announce_request__init(a);
  a->boot = boot;
  a->has_left = 1;
  a->left = seed ? 0 : 1;
  a->info_hash.len = a->peer_id.len = 20; /* pointers set once the arrays stop moving */
}

/* The pull's last page also carries the WebSocket peers of the partitions asked for. */
static void add_ws_peers(syn_replica *r, swarm_page *pg, uint32_t now) {
  served *s = pg->s;
  if (!r->ws) return;
  syn_ws_peers_export(r->ws, now, WS_PULL_MAX, page_wants, ws_emit, pg);
  if (!s->n_ws || !(s->ws_ptrs = calloc(s->n_ws, sizeof *s->ws_ptrs))) {
    s->n_ws = 0;
    return;
  }
  for (size_t i = 0; i < s->n_ws; i++) {
    uint8_t *b = s->ws_bytes + i * WS_ENTRY_BYTES;
    s->ws[i].info_hash.data = b;
    s->ws[i].peer_id.data = b + 20;
    s->ws[i].router = (char *)b + 40;
    s->ws_ptrs[i] = &s->ws[i];
  }
  s->rep.ws_peers = s->ws_ptrs;
  s->rep.n_ws_peers = s->n_ws;
}

static void swarms(syn_replica *r, const Synapse__SwarmPull *q, served *s) {
  if (q->partitions != syn_index_partitions(r->index) || q->wanted.len < (q->partitions + 7) / 8)
    return refuse(s, "bad swarm pull");
  atomic_store(&r->last_pull_ms, replica_mono_ms());
  swarm_page pg = {s, q->wanted.data, q->partitions};
  uint32_t stripe = q->has_stripe ? q->stripe : 0, now = (uint32_t)(replica_mono_ms() / 1000);
  while (stripe < SYN_SWARM_STRIPES && s->n_peers < SWARM_PAGE_PEERS) {
    syn_swarm_export_stripe(r->swarms, stripe, page_wants, page_emit, &pg, now);
    stripe++;
  }
  pack_peers(s);
  if (stripe < SYN_SWARM_STRIPES) {
    s->rep.has_next_stripe = 1;
    s->rep.next_stripe = stripe;
  } else {
    add_ws_peers(r, &pg, now);
  }
}

/* Whether this node holds every partition of the set in its ring and has pulled them
 * (so the asking node may drop its copies). */
static void confirm(syn_replica *r, const Synapse__Confirm *q, served *s) {
  atomic_store(&r->last_pull_ms, replica_mono_ms());
  syn_view *v = replica_view(r);
  bool ok = v && atomic_load(&r->caught_up) && q->wanted.len >= (q->partitions + 7) / 8 &&
            syn_ring_partitions(syn_view_ring(v)) == q->partitions &&
            syn_view_ring_version(v) == atomic_load(&r->pulled_version);
  long self = v ? syn_view_self_index(v) : -1;
  for (uint32_t p = 0; ok && p < q->partitions; p++)
    if ((q->wanted.data[p / 8] & (1u << (p % 8))) && !syn_view_holds(v, p, self)) ok = false;
  syn_view_put(v);
  if (!ok) refuse(s, "not holding those partitions, caught up");
}

static void served_free(served *s) {
  free(s->digests);
  free(s->keys);
  free(s->key_msgs);
  free(s->key_ptrs);
  free(s->versions);
  for (size_t i = 0; i < s->n_shards; i++) syn_shard_free(&s->shards[i]);
  free(s->shards);
  free(s->shard_msgs);
  free(s->records);
  free(s->record_ptrs);
  free(s->peers);
  free(s->peer_ptrs);
  free(s->ws);
  free(s->ws_ptrs);
  free(s->ws_bytes);
  free(s->peer_bytes);
  free(s->puts_ok);
  free(s->puts_existed);
}

int peer_serve(void *ctx, const uint8_t *data, size_t len, syn_buf *out) {
  syn_replica *r = ctx;
  Synapse__ReplicaRequest *req = synapse__replica_request__unpack(NULL, len, data);
  if (!req) return -EPROTO;
  served s = {.rep = SYNAPSE__REPLICA_REPLY__INIT};
  s.rep.ok = 1;
  /* A node whose data predates the tombstone grace says so: nobody may pull from it
   * (it may hold shards whose deletes the others have forgotten). */
  s.rep.has_stale = 1;
  s.rep.stale = atomic_load(&r->stale);
  switch (req->body_case) {
  case SYNAPSE__REPLICA_REQUEST__BODY_SWARM_UPDATES:
    swarm_updates(r, req->swarm_updates, &s);
    break;
  case SYNAPSE__REPLICA_REQUEST__BODY_SHARD_PUT: shard_put(r, req->shard_put, &s); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_SHARD_PUTS: shard_puts(r, req->shard_puts, &s); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_SHARD_DELETE: shard_delete(r, req->shard_delete, &s); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_DIGESTS: digests(r, req->digests, &s); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_KEYS: keys(r, req->keys, &s); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_RECORDS: records(r, req->records, &s); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_SWARMS: swarms(r, req->swarms, &s); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_CONFIRM: confirm(r, req->confirm, &s); break;
  default: refuse(&s, "unknown replica request");
  }
  size_t size = protobuf_c_message_get_packed_size(&s.rep.base);
  int rc = syn_buf_reserve(out, size);
  if (rc == 0) out->len += protobuf_c_message_pack(&s.rep.base, out->data + out->len);
  served_free(&s);
  synapse__replica_request__free_unpacked(req, NULL);
  return rc;
}
