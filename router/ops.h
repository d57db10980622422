/* Operations endpoints on the router (and on a node's admin port): /metrics, /api/stats,
 * /readyz, /cluster/status and /cluster/owner/{info_hash}; the status page and its
 * figures (GET /, /cluster/history, /cluster/ring: router/dashboard.h). Figures that live
 * on the nodes are gathered from every usable node by one call group (a StatsRequest each,
 * answered within OPS_DEADLINE_MS) and summed; a node that does not answer in time makes
 * the answer partial rather than late. Loop thread only. */
#ifndef SYN_ROUTER_OPS_H
#define SYN_ROUTER_OPS_H

#include <stdbool.h>
#include <uv.h>

#include "common/config.h"
#include "router/counters.h"
#include "router/http.h"
#include "router/nodes.h"
#include "router/udp.h"

typedef struct syn_ops {
  uv_loop_t *loop;
  const syn_config *cfg;
  syn_nodes *nodes;
  syn_http_server *http;
  syn_udp *udp; /* NULL when UDP is off */
  const syn_router_counters *counters;
  bool admin_only;               /* a node's admin port: /readyz also asks the node itself */
  const struct syn_admin *admin; /* access figures for /metrics (router/admin.h) */
  const struct syn_dashboard *dashboard; /* the status page's rate history; may be NULL */
  const struct syn_ws_tracker *ws;       /* WebSocket figures; NULL when ws is off */
} syn_ops;

/* Handles the path if it is an operations endpoint; false otherwise. */
bool syn_ops_handle(const syn_ops *ops, const syn_http_request *req, syn_http_slot *slot);

#endif
