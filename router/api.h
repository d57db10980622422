/* The JSON API on the router: shard registration, lookup, deletion, swarm peers, and
 * search by embedding or by text (design.md, "JSON API"). Validates every body
 * (router/api_json.h, with the rules of common/shard_rules.h), forwards the work to the
 * nodes (one routed request, or a call group for a search), merges search hits into the
 * top-k with magnet links, and answers `{"status":"success",...}` or a 4xx/5xx with
 * `{"status":"error","error":...}`. Loop thread only. */
#ifndef SYN_ROUTER_API_H
#define SYN_ROUTER_API_H

#include <stdbool.h>
#include <uv.h>

#include "common/config.h"
#include "router/counters.h"
#include "router/http.h"
#include "router/nodes.h"

typedef struct syn_api {
  uv_loop_t *loop;
  const syn_config *cfg;
  syn_nodes *nodes;
  syn_router_counters *counters;
  const struct syn_tokens *tokens; /* write-scope bearer tokens (router/tokens.h) */
} syn_api;

/* Handles /api/... paths other than /api/stats; false when the path is not one. */
bool syn_api_handle(const syn_api *api, const syn_http_request *req, syn_http_slot *slot);

#endif
