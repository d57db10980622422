/* The router's view of the cluster: which nodes exist, which are reachable, which hold a
 * given info_hash, and one batched upstream (cluster/upstream.h) to each node.
 *
 * Standalone (a static node URL): one node that holds everything, no membership.
 * Cluster: the router joins the membership as a member of role router (it owns nothing),
 * rebuilds the ring when the member set changes (join, leave, reap: design decision 1),
 * and follows liveness for routing only: a request goes to the first replica of its
 * partition that is alive (or suspect) and has not just failed here; a node whose
 * upstream timed out is skipped for a few seconds, so requests move to the next replica
 * before gossip has declared it dead.
 *
 * Loop thread only; membership callbacks wake the loop with uv_async_send. */
#ifndef SYN_CLUSTER_CLUSTER_H
#define SYN_CLUSTER_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/membership.h"
#include "cluster/upstream.h"
#include "common/config.h"

#define SYN_CLUSTER_MAX_NODES 256

typedef struct syn_cluster syn_cluster;

typedef struct syn_cluster_options {
  const syn_config *cfg;
  const char *static_node_url; /* standalone or a node's own admin port: that node only */
  const char *self_id;         /* member id (router role) */
  const char *peer_url;        /* where this router listens for gossip */
  const char *const *seed_peer_urls; /* node peer URLs to join through */
  size_t seed_count;
  syn_membership *membership; /* a node's own membership to follow (not owned), or NULL */
  syn_upstream_reply_fn on_reply; /* every node reply, on the loop thread */
  void *ctx;
} syn_cluster_options;

syn_cluster *syn_cluster_open(uv_loop_t *loop, const syn_cluster_options *opts, char *err,
                              size_t err_len);
/* Leaves the membership (if any), fails what is in flight, frees after the handles close. */
void syn_cluster_close(syn_cluster *c);

/* Node slot serving `info_hash` (first usable replica), or -1 when none is reachable. */
int syn_cluster_route(syn_cluster *c, const uint8_t info_hash[20]);
/* Slots of every usable node (for fan-out); returns how many were written. */
size_t syn_cluster_fanout(syn_cluster *c, int *slots, size_t cap);
/* Sends a request to a node slot: 0, -EBUSY (link full) or -ENODEV (slot gone). */
int syn_cluster_submit(syn_cluster *c, int slot, const Synapse__Request *req);

/* Whether the router has joined and knows at least one usable node. */
bool syn_cluster_ready(syn_cluster *c);

/* Members and ring figures for /cluster/status, without per-node data figures. */
json_t *syn_cluster_members_json(syn_cluster *c);
/* The slot's member id, for merging per-node stats into the status. */
const char *syn_cluster_slot_id(syn_cluster *c, int slot);
/* Replicas per partition in effect (R capped by the node count; 1 standalone). */
uint32_t syn_cluster_replication(syn_cluster *c);
/* Whether the slot is this process's own node (a node's admin view). */
bool syn_cluster_slot_is_self(syn_cluster *c, int slot);
/* Partition and replica ids (preference order) of an info_hash. */
json_t *syn_cluster_owner_json(syn_cluster *c, const uint8_t info_hash[20]);

/* A node's peer URL from its data URL: the same host, the next port
 * (tcp://h:7000 -> tcp://h:7001); other transports get a "-peer" suffix. 0 or -1. */
int syn_cluster_peer_url(const char *data_url, char *out, size_t out_len);

#endif
