/* The router's link to the nodes: one batched upstream per node (router/upstream.h), the
 * requests in flight (router/request.h), and routing over the cluster view
 * (cluster/view.h).
 *
 * Routing: a request that names an info_hash goes to the first replica of its partition
 * that is usable now, in this order of preference: alive, connected, caught up (it has
 * pulled every partition it gained; polled four times a second) and not failing here; then
 * suspect ones; then replicas still catching up; then replicas whose link is down or that
 * just failed a request, as a last resort. A node whose connection broke or that missed a
 * deadline is "failing" for a few seconds, so traffic moves before gossip has decided.
 * When a node does not answer (deadline, or its connection broke), each routed request
 * of the failed batch is sent to the next replica (at most three tries in all); requests
 * sent to one node on purpose (fan-out parts) fail instead, and their caller decides.
 *
 * Modes: standalone (one static node that holds everything, no membership); router (joins
 * the membership as a member of role router, owning nothing); a node's admin port (follows
 * the node's own view). Loop thread only; membership changes wake the loop. */
#ifndef SYN_ROUTER_NODES_H
#define SYN_ROUTER_NODES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/membership.h"
#include "cluster/view.h"
#include "common/config.h"
#include "router/request.h"
#include "router/upstream.h"

#define SYN_NODES_MAX 256

typedef struct syn_nodes syn_nodes;

typedef struct syn_nodes_options {
  const syn_config *cfg;
  const char *static_node_url; /* standalone: the one node */
  syn_upstream_inline_fn static_serve_inline; /* and that node in this process, or NULL */
  void *static_inline_ctx;
  syn_view_source *view;       /* a node's own view (admin port), not owned; or NULL */
  /* router mode (neither of the above): this router's membership */
  const char *self_id;
  const char *peer_url;              /* where this router listens for gossip */
  const char *const *seed_peer_urls; /* node peer URLs to join through */
  size_t seed_count;
  /* router mode, optional: signals nodes push for this router's WebSocket peers; each
   * node link then keeps a WsPoll naming self_id and ws_boot standing (upstream.h). */
  syn_upstream_push_fn on_push;
  void *push_ctx;
  uint64_t ws_boot;
} syn_nodes_options;

syn_nodes *syn_nodes_open(uv_loop_t *loop, const syn_nodes_options *opts, char *err,
                          size_t err_len);
/* Leaves the membership (router mode), fails every request in flight (their callbacks
 * run now), and frees once the handles have closed. */
void syn_nodes_close(syn_nodes *n);

/* A request to send, or NULL when too many are in flight (answer "overloaded"). Its
 * callback runs exactly once after a successful send; if the send fails, the request is
 * released without a callback. */
syn_req *syn_nodes_req(syn_nodes *n, syn_req_cb cb, void *ctx);

/* Sends `msg` (its id is set here; encoded at once, so it may be freed on return) to the
 * node serving `key`, with failover. 0; -ENODEV (no node for it) or -EBUSY (link full),
 * and then `req` is released without a callback. */
int syn_nodes_send(syn_nodes *n, syn_req *req, const uint8_t key[20], Synapse__Request *msg);
/* The same to one node slot, without failover. */
int syn_nodes_send_to(syn_nodes *n, syn_req *req, int slot, Synapse__Request *msg);
/* Cancels a request sent or not: no callback will run. */
void syn_nodes_cancel(syn_nodes *n, syn_req *req);

/* The slot routing would pick for `key` now, or -1. */
int syn_nodes_route(syn_nodes *n, const uint8_t key[20]);
/* The usable replicas of `key`'s partition in routing order; returns how many. */
size_t syn_nodes_replicas(syn_nodes *n, const uint8_t key[20], int *slots, size_t cap);
/* Partitions of the current view's layout, or 0 standalone (and before a view). */
uint32_t syn_nodes_partitions(syn_nodes *n);
/* The replicas of partition p worth asking (not dead), best first: usable and caught up,
 * then suspect, then catching up or failing; returns how many. */
size_t syn_nodes_partition_replicas(syn_nodes *n, uint32_t p, int *slots, size_t cap);
/* Every node worth asking for a fan-out (usable, caught up); returns how many. */
size_t syn_nodes_fanout(syn_nodes *n, int *slots, size_t cap);
/* Whether every partition has a usable replica among the slots marked in answered
 * (SYN_NODES_MAX entries): a fan-out that heard from those missed nothing. */
bool syn_nodes_cover_all(syn_nodes *n, const bool *answered);
/* Every node gossip does not call dead, caught up or not (operations figures). */
size_t syn_nodes_alive(syn_nodes *n, int *slots, size_t cap);
/* Replicas per partition in effect (R capped by the node count; 1 standalone). */
uint32_t syn_nodes_replication(syn_nodes *n);

/* Whether this router's membership was refused (its id is taken); reason into why. */
bool syn_nodes_refused(syn_nodes *n, char *why, size_t len);

/* Whether the router has joined and knows at least one usable node. */
bool syn_nodes_ready(syn_nodes *n);
/* The slot's member id (NULL when the slot is free); whether it is this process's node. */
const char *syn_nodes_slot_id(syn_nodes *n, int slot);
bool syn_nodes_slot_is_self(syn_nodes *n, int slot);

/* Members and ring figures for /cluster/status (per-node data figures are the caller's),
 * and the partition and replicas of an info_hash for /cluster/owner. */
json_t *syn_nodes_members_json(syn_nodes *n);
json_t *syn_nodes_owner_json(syn_nodes *n, const uint8_t key[20]);

/* The current view's ring (standalone: one partition, one node), for the status page's
 * drawing of ownership. Valid until the loop turn ends: a later view replaces it. */
const syn_ring *syn_nodes_ring(syn_nodes *n);

/* This process's membership (router mode: its own; a node's admin port: the node's), or
 * NULL standalone. */
syn_membership *syn_nodes_membership(syn_nodes *n);

/* Counters for /metrics. */
typedef struct syn_nodes_stats {
  uint64_t failovers;     /* requests resent to the next replica */
  uint64_t link_losses;   /* node connections that broke */
  uint64_t node_failures; /* batches a node did not answer */
} syn_nodes_stats;
void syn_nodes_stats_get(const syn_nodes *n, syn_nodes_stats *out);

#endif
