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

#include "common/config.h"

typedef struct syn_node syn_node;

/* Listens on `listen_url` (inproc://, ipc:// or tcp://). NULL with a message in err. */
syn_node *syn_node_start(const syn_config *cfg, const char *listen_url, char *err,
                         size_t err_len);
void syn_node_stop(syn_node *node);

#endif
