/* Fuzz target: every protobuf message a node or router accepts from a peer. The first
 * byte chooses the receiver; the rest is the message body as it arrives:
 *   0 Batch         a node's data socket (node/node.c: arena unpack, then per request)
 *   1 BatchReply    a router's upstream (router/upstream.c: arena unpack, per reply)
 *   2 ReplicaRequest a node's peer server (node/peer_server.c)
 *   3 ReplicaReply  replication, sync and hand-off replies (node/replica.c, sync.c)
 *   4 PeerRequest   gossip and app calls (cluster/gossip_wire.c, with its own checks)
 *   5 PeerReply     gossip replies
 * After unpacking, the checks the receivers apply to what they keep run too: shards and
 * versions through node/shard_proto.c, announces into a real swarm store (node/swarm.c)
 * under peer_server.c's and node.c's bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cluster/gossip_wire.h"
#include "common/arena.h"
#include "node/shard_proto.h"
#include "node/swarm.h"
#include "proto/wire.h"

static syn_swarm_store *swarms;
static syn_arena arena;
static uint64_t announced;

static void check_shard(const Synapse__Shard *sh) {
  if (!sh) return;
  bool bad = false;
  float *emb = syn_shard_embedding_copy(sh, &bad);
  syn_shard_input in = syn_shard_input_from_proto(sh, emb);
  (void)in;
  syn_version v;
  if (sh->version) syn_version_from_proto(sh->version, &v);
  free(emb);
}

static void check_version(const Synapse__Version *p) {
  syn_version v;
  if (p) syn_version_from_proto(p, &v);
}

static void announce(const Synapse__AnnounceRequest *a) {
  if (a->info_hash.len != 20 || a->peer_id.len != 20 || (a->ip.len != 4 && a->ip.len != 16) ||
      a->port == 0 || a->port > 65535)
    return;
  uint8_t peers[50 * 18];
  syn_announce req = {.info_hash = a->info_hash.data, .peer_id = a->peer_id.data,
                      .ip = a->ip.data, .ip_len = a->ip.len, .port = (uint16_t)a->port,
                      .event = a->event, .left = a->left, .numwant = 20,
                      .families = a->families};
  syn_announce_result res = {.peers4 = peers, .peers6 = peers + 6 * 20};
  syn_swarm_announce(swarms, &req, 1000, &res);
  /* A fresh store now and then, so a long run's memory stays bounded. */
  if (++announced % 100000 == 0) {
    syn_swarm_store_free(swarms);
    swarms = syn_swarm_store_new(1800);
  }
}

static void batch(const uint8_t *data, size_t len) {
  syn_arena_reset(&arena);
  ProtobufCAllocator alloc = syn_wire_allocator(&arena);
  Synapse__Batch *b = synapse__batch__unpack(&alloc, len, data);
  if (!b) return;
  for (size_t i = 0; i < b->n_requests; i++) {
    const Synapse__Request *r = b->requests[i];
    if (r->body_case == SYNAPSE__REQUEST__BODY_ANNOUNCE) announce(r->announce);
    if (r->body_case == SYNAPSE__REQUEST__BODY_REGISTER) check_shard(r->register_->shard);
  }
}

static void batch_reply(const uint8_t *data, size_t len) {
  syn_arena_reset(&arena);
  ProtobufCAllocator alloc = syn_wire_allocator(&arena);
  Synapse__BatchReply *b = synapse__batch_reply__unpack(&alloc, len, data);
  if (!b) return;
  for (size_t i = 0; i < b->n_replies; i++) {
    const Synapse__Reply *r = b->replies[i];
    if (r->body_case == SYNAPSE__REPLY__BODY_GET) {
      check_shard(r->get->shard);
      check_version(r->get->version);
    }
  }
}

static void replica_request(const uint8_t *data, size_t len) {
  Synapse__ReplicaRequest *r = synapse__replica_request__unpack(NULL, len, data);
  if (!r) return;
  switch (r->body_case) {
  case SYNAPSE__REPLICA_REQUEST__BODY_SWARM_UPDATES:
    for (size_t i = 0; i < r->swarm_updates->n_announces; i++)
      announce(r->swarm_updates->announces[i]);
    break;
  case SYNAPSE__REPLICA_REQUEST__BODY_SHARD_PUT: check_shard(r->shard_put->shard); break;
  case SYNAPSE__REPLICA_REQUEST__BODY_SHARD_DELETE: check_version(r->shard_delete->version); break;
  default: break;
  }
  synapse__replica_request__free_unpacked(r, NULL);
}

static void replica_reply(const uint8_t *data, size_t len) {
  Synapse__ReplicaReply *r = synapse__replica_reply__unpack(NULL, len, data);
  if (!r) return;
  for (size_t i = 0; i < r->n_records; i++) {
    check_version(r->records[i]->version);
    check_shard(r->records[i]->shard);
  }
  for (size_t i = 0; i < r->n_keys; i++) check_version(r->keys[i]->version);
  for (size_t i = 0; i < r->n_peers; i++) announce(r->peers[i]);
  synapse__replica_reply__free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!swarms) {
    swarms = syn_swarm_store_new(1800);
    syn_arena_init(&arena, 64 * 1024);
  }
  if (size < 1) return 0;
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  switch (data[0] % 6) {
  case 0: batch(body, len); break;
  case 1: batch_reply(body, len); break;
  case 2: replica_request(body, len); break;
  case 3: replica_reply(body, len); break;
  default: {
    syn_gossip_decoded d;
    if (syn_gossip_decode(body, len, data[0] % 6 == 5, 64, &d) == 0) syn_gossip_decoded_free(&d);
    break;
  }
  }
  return 0;
}
