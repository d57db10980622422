/* A node's part in the cluster: which partitions it holds and leads, replication of
 * writes to the other replicas, and hand-off of partitions when the member set changes.
 *
 * - Ownership comes from the membership's ring (design decisions 1-2).
 * - Announces are applied locally and queued; a replication thread pushes the queued
 *   changes to the other replicas in batches every cluster.replication_interval_ms
 *   (decision 3: a lost update costs at most one announce interval).
 * - Shard writes are copied synchronously: syn_replica_put/delete return once W replicas
 *   (this one included) have persisted the write, or fail.
 * - When the ring changes, partitions this node newly holds are pulled from a node that
 *   held them (shards page by page, then swarms); syn_replica_caught_up says when done.
 *   Partitions it no longer holds are dropped once every new holder confirms it has
 *   pulled them.
 * - Requests from other nodes arrive on the membership's peer threads (app messages).
 *
 * All functions are thread-safe. NULL (standalone) means: one node holds everything. */
#ifndef SYN_NODE_REPLICA_H
#define SYN_NODE_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"
#include "cluster/view.h"
#include "common/config.h"
#include "index/index.h"
#include "node/swarm.h"
#include "proto/tracker.pb-c.h"

typedef struct syn_replica syn_replica;

/* Registers the app handler on `members` and starts the replication and hand-off threads.
 * NULL with a message in err. */
syn_replica *syn_replica_start(const syn_config *cfg, syn_membership *members,
                               syn_view_source *view, syn_swarm_store *swarms, syn_index *index,
                               char *err, size_t err_len);
void syn_replica_stop(syn_replica *r);


/* Queues an applied announce for the other replicas (copied; never blocks on the
 * network). */
void syn_replica_announce(syn_replica *r, const Synapse__AnnounceRequest *a);

/* Copies a persisted shard write to the other replicas and waits for W in all. 0, or -1
 * with a message naming how many replicas persisted it. */
int syn_replica_put(syn_replica *r, const Synapse__Shard *shard, char *err, size_t err_len);
int syn_replica_delete(syn_replica *r, const char *info_hash, char *err, size_t err_len);
/* Remembers a local delete, so that hand-off cannot bring the shard back. */
void syn_replica_note_delete(syn_replica *r, const char *info_hash);

/* Graceful leave: waits until no other node has pulled from this one for quiet_ms
 * (they pull what they gained once they see it leave), at least min_ms and at most max_ms. */
void syn_replica_drain(syn_replica *r, uint32_t min_ms, uint32_t quiet_ms, uint32_t max_ms);

/* True once the node has joined and pulled every partition it gained. */
bool syn_replica_caught_up(syn_replica *r);

#endif
