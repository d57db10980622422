/* The JSON API on the router: shard registration, lookup, deletion, swarm peers, and
 * search by embedding or by text (design.md, "JSON API"). Validates every body
 * (router/api_json.h), forwards the work to the node, merges search hits into the top-k
 * with magnet links, and answers `{"status":"success",...}` or a 4xx/5xx with
 * `{"status":"error","error":...}`. Loop thread only. */
#ifndef SYN_ROUTER_API_H
#define SYN_ROUTER_API_H

#include <stdbool.h>

#include "router/internal.h"

/* Handles /api/... paths other than /api/stats; false when the path is not one. */
bool syn_api_handle(syn_router *r, const syn_http_request *req, syn_http_slot *slot);

/* A node's reply for a PENDING_API entry; releases nothing (the caller releases `p`). */
void syn_api_on_reply(syn_router *r, pending *p, const Synapse__Reply *rep);

#endif
