/* A node's shard requests: register, get, delete, peers, search, embed. Bridges the
 * protobuf messages from routers to the index component (SQLite + faiss) and annotates
 * every shard with the live figures of its swarm from the node's own swarm store.
 *
 * Writes: the node that receives a register or delete from a router coordinates it: it
 * gives the write a version (its hybrid logical clock and its id), persists it, then
 * copies it to the other replicas (node/replica.h) and acknowledges once W hold it.
 * Reads: a node that may lack writes (catching up) answers NOT_SERVING, and the router
 * reads another replica; a get answers with the version held, so the router can keep the
 * newest of several replicas' answers.
 *
 * Called on node worker threads; every call blocks on SQLite/faiss (or, for embed, on the
 * embedding service) and appends exactly one Reply to `reply`. */
#ifndef SYN_NODE_SHARDS_H
#define SYN_NODE_SHARDS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "index/index.h"
#include "node/registered.h"
#include "node/replica.h"
#include "node/swarm.h"
#include "node/ws_peers.h"
#include "proto/tracker.pb-c.h"

typedef struct syn_shards {
  syn_index *index;
  syn_swarm_store *swarms;
  syn_ws_peers *ws;     /* their WebTorrent peers, counted with them */
  syn_replica *replica; /* NULL standalone */
  const syn_config *cfg;
  syn_hlc hlc;                /* versions of the writes this node coordinates */
  syn_registered *registered; /* tracker.registered_only: keys of the shards held; NULL
                                 when the mode is off (node/registered.h) */
  atomic_uint_fast64_t search_partitions; /* searched for routers' searches, since start */
  atomic_uint_fast64_t search_unserved;   /* asked for and not ready here */
} syn_shards;

/* Maps the config's vector_search keys onto the index's config (0 = index default).
 * -1 with a message for an unknown index type. */
int syn_shards_index_config(const syn_config *cfg, syn_index_config *out, char *err,
                            size_t err_len);

/* True when `req` is a shard request this module answers. */
int syn_shards_handles(const Synapse__Request *req);

/* Handles one request and appends its Reply to `reply`. A write met after deadline_ms
 * (wall clock; 0 = none) is refused UNAVAILABLE without being applied: the router has
 * told its client it failed. */
void syn_shards_handle(syn_shards *sh, const Synapse__Request *req, uint32_t now,
                       int64_t deadline_ms, syn_buf *reply);

/* Handles the n register requests of one batch together and appends one Reply for each
 * (in any order: replies carry their request's id): their writes go to the index at
 * once (one group commit, so one fsync for all of them and whatever other workers
 * write meanwhile), then to the other replicas at once (syn_replica_put_many). Each is
 * acknowledged only once W replicas hold it, exactly as one registration alone. */
void syn_shards_register(syn_shards *sh, const Synapse__Request *const *reqs, size_t n,
                         int64_t deadline_ms, syn_buf *reply);

#endif
