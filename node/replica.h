/* A node's part in the cluster: which partitions it holds, the copies of its writes on
 * the other replicas, and the repair of what the replicas disagree on.
 *
 * - Ownership comes from the cluster view (cluster/view.h; design decisions 1-2).
 * - Swarm changes are applied locally and queued per replica; a pusher thread per
 *   replica sends them in batches every cluster.replication_interval_ms and keeps what
 *   it could not send for the next round (decision 3). Replication lag (the age of the
 *   oldest unacknowledged update) is reported per replica.
 * - Shard writes carry a version (common/version.h) chosen by the coordinating node;
 *   syn_replica_put / _delete copy a write that is already persisted here to the other
 *   replicas and return once W of them (this one included) hold it or something newer.
 * - Repair (node/sync.c): when the ring changes, the partitions this node gained are
 *   pulled from a node that held them; every anti_entropy_interval_ms the per-partition
 *   digests are compared with each other replica and only the differing records move.
 *   Newest version wins everywhere, tombstones included. A node that may have missed
 *   writes (it restarted, it was paused, it learned others had suspected it) compares
 *   everything it holds before it serves reads again (syn_replica_serving).
 * - Requests from other nodes arrive on the membership's app threads (node/peer_server.c).
 *
 * All functions are thread-safe. A NULL syn_replica (standalone) holds everything. */
#ifndef SYN_NODE_REPLICA_H
#define SYN_NODE_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"
#include "cluster/view.h"
#include "common/config.h"
#include "common/hlc.h"
#include "index/index.h"
#include "node/swarm.h"
#include "proto/tracker.pb-c.h"

typedef struct syn_replica syn_replica;
struct syn_registered;

/* Registers the app handler on `members`, listens to `view`, and starts the pusher and
 * sync threads. `hlc` is the node's clock (observed when remote versions arrive);
 * `registered` (NULL unless tracker.registered_only) is kept in step with every write the
 * replica applies. NULL with a message in err. */
syn_replica *syn_replica_start(const syn_config *cfg, syn_membership *members,
                               syn_view_source *view, syn_swarm_store *swarms, syn_index *index,
                               syn_hlc *hlc, struct syn_registered *registered, char *err,
                               size_t err_len);
void syn_replica_stop(syn_replica *r);

struct syn_ws_peers;
/* The node's WebSocket peers, which replicas' swarm updates also carry (node/ws_peers.h);
 * set once right after start. */
void syn_replica_set_ws(syn_replica *r, struct syn_ws_peers *ws);

/* Queues an applied announce for the other replicas of its partition (copied; never
 * blocks on the network). syn_replica_ws_announce does the same for a WebSocket peer's
 * announce, its offers left out (an answer is not queued at all). */
void syn_replica_announce(syn_replica *r, const Synapse__AnnounceRequest *a);
void syn_replica_ws_announce(syn_replica *r, const Synapse__WsAnnounceRequest *a);

/* Copies a persisted shard write (with its version and embedding) to the other replicas
 * and waits for W in all. 0, or -1 with a message naming how many replicas hold it.
 * *existed_elsewhere (may be NULL) tells whether a replica held a live record before. */
int syn_replica_put(syn_replica *r, const Synapse__Shard *shard, bool *existed_elsewhere, char *err,
                    size_t err_len);

/* The same for many persisted writes at once (a batch of registrations): the copies are
 * grouped by replica, and each replica gets them in as few ShardPuts messages as fit
 * (about 1 MiB each; one write alone goes as a ShardPut), applied there in one
 * transaction; every replica is asked at once (a thread each) and waited for. Each
 * copy's rc is 0 once W replicas in all hold it or something newer, else -1 with a
 * message in err naming how many do. r NULL (standalone): all 0. Blocks up to 3/4 of
 * the request timeout. The shards are borrowed for the call. */
typedef struct syn_replica_copy {
  const Synapse__Shard *shard; /* in: the stored write, with its version and embedding */
  int rc;                      /* out */
  bool existed_elsewhere;      /* out: a replica held a live record before */
  char err[96];                /* out, when rc != 0 */
} syn_replica_copy;
void syn_replica_put_many(syn_replica *r, syn_replica_copy *c, size_t n);
int syn_replica_delete(syn_replica *r, const char *info_hash, const syn_version *v,
                       bool *existed_elsewhere, char *err, size_t err_len);

/* Graceful leave: waits until no other node has pulled from this one for quiet_ms
 * (they pull what they gained once they see it leave), at least min_ms and at most max_ms. */
void syn_replica_drain(syn_replica *r, uint32_t min_ms, uint32_t quiet_ms, uint32_t max_ms);

/* True once the node has joined and pulled every partition it gained. */
bool syn_replica_caught_up(syn_replica *r);

/* Whether reads may be served now: caught up, and not just back from a pause (a worker
 * that finds the membership's clock stalled marks the node behind at once). */
bool syn_replica_serving(syn_replica *r);

/* The partitions (parts bits, one per partition, LSB first, into out) whose searches
 * this node may answer now: those it held in the ring of its last completed hand-off
 * pass, whose records it has therefore pulled or compared. A partition it gained in a
 * newer ring is left out until that pass completes; so is one it lost (its writes now go
 * to others). -1 when it serves no reads at all (syn_replica_serving) or parts is not its
 * layout. r NULL (standalone): every partition. */
int syn_replica_ready_partitions(syn_replica *r, uint32_t parts, uint8_t *out);

/* Replication lag per replica, for StatsReply (up to cap entries; peer ids copied into
 * ids, which the entries point to). Returns how many. */
size_t syn_replica_lag(syn_replica *r, Synapse__ReplicationLag *out,
                       char (*ids)[SYN_MEMBER_ID_MAX + 1], size_t cap);

/* The cost of the last catch-up pass and anti-entropy round, for StatsReply: fills up to
 * cap entries (kind names are static strings) and returns how many. */
size_t syn_replica_sync_rounds(syn_replica *r, Synapse__SyncRound *out, size_t cap);

#endif
