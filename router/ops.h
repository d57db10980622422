/* Operations endpoints on the router (and on a node's admin port): /metrics, /api/stats,
 * /readyz, /cluster/status and /cluster/owner/{info_hash}. Figures that live on the nodes
 * are gathered from every usable node (one StatsRequest each) and summed; a node that
 * does not answer makes the answer partial rather than failed. Loop thread only. */
#ifndef SYN_ROUTER_OPS_H
#define SYN_ROUTER_OPS_H

#include <stdbool.h>

#include "router/internal.h"

/* Handles the path if it is an operations endpoint; false otherwise. */
bool syn_ops_handle(syn_router *r, const syn_http_request *req, syn_http_slot *slot);

/* A node's reply for a PENDING_GATHER entry. */
void syn_ops_on_reply(syn_router *r, pending *p, const Synapse__Reply *rep);

#endif
