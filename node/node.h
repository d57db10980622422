/* A node: serves tracker requests for the info_hashes it owns.
 *
 * Owns the swarm store and the nng reply socket the routers talk to. Requests arrive in
 * batches (proto/tracker.proto Batch); each of `workers` threads owns one nng context and
 * serves one batch at a time: unpack, apply every request to the store, pack one
 * BatchReply, send. Work that blocks (later: SQLite, faiss) runs on these threads, never on
 * a router's loop thread. A maintenance thread expires peers a few swarms at a time.
 *
 * Lifetime: syn_node_start on the main thread; syn_node_stop closes the socket, joins the
 * threads and frees everything. */
#ifndef SYN_NODE_NODE_H
#define SYN_NODE_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "proto/tracker.pb-c.h"

typedef struct syn_node syn_node;

struct syn_membership;
struct syn_view_source;

/* Listens on `listen_url` (inproc://, ipc:// or tcp://). With a membership (role node),
 * the node takes part in the cluster: it replicates and hands off partitions
 * (node/replica.h); without one (standalone) it holds everything. NULL with a message in
 * err. */
syn_node *syn_node_start(const syn_config *cfg, const char *listen_url,
                         struct syn_membership *members, struct syn_view_source *view, char *err,
                         size_t err_len);
void syn_node_stop(syn_node *node);
/* As syn_node_stop, without writing the swarm snapshot: a process whose start failed
 * after the node started keeps the file of its last clean stop. */
void syn_node_abandon(syn_node *node);

/* Serves one swarm-only request (proto/wire.h syn_wire_request_is_swarm_only: an
 * announce, a scrape of named info_hashes) on the calling thread, for a router in the
 * same process: no nng message, no thread hand-off, no protobuf packing. Fills *rep; what
 * it points to stays valid until the next call. One calling thread at a time, beside the
 * workers. 0; -EINVAL for another kind of request (nothing served), -ENOMEM. */
int syn_node_serve_inline(syn_node *node, const Synapse__Request *req, Synapse__Reply *rep);

/* Graceful leave (SIGTERM): announces the departure and keeps serving the other nodes'
 * pulls until they stop coming (bounded), so no acknowledged shard is left behind.
 * Blocks; main thread. */
void syn_node_hand_off(syn_node *node, struct syn_membership *members);

#endif
