/* The router: the tracker's public face. Terminates HTTP (announce, scrape, API,
 * operations endpoints) and UDP (BEP 15), validates every request, and forwards the work
 * to the node over the cluster upstream; it holds no tracker state of its own, so any
 * number of routers can serve the same nodes.
 *
 * In admin-only mode (a node's own HTTP port) it serves just /healthz, /readyz and
 * /metrics, for probes and Prometheus.
 *
 * Runs entirely on one libuv loop thread; start and stop are called on that thread. */
#ifndef SYN_ROUTER_ROUTER_H
#define SYN_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/config.h"
#include "router/upstream.h"

typedef struct syn_router syn_router;

struct syn_view_source;

typedef struct syn_router_options {
  const char *node_url; /* standalone: nng URL of the one node serving everything */
  /* standalone: that node serving swarm-only batches on the loop thread (optional) */
  syn_upstream_inline_fn node_serve_inline;
  void *node_inline_ctx;
  bool admin_only;      /* serve operations endpoints only, no UDP (a node's admin port) */
  struct syn_view_source *view; /* a node's own cluster view to follow, or NULL */
} syn_router_options;

/* Binds the HTTP and UDP ports. With node_url, forwards everything to that node; with
 * a view, follows it; otherwise joins the cluster as a router through cfg->seeds (node
 * data URLs), listening for gossip on cfg->peer_addr. NULL with a one-line message in
 * err. `cfg` must outlive the router. */
syn_router *syn_router_start(uv_loop_t *loop, const syn_config *cfg,
                             const syn_router_options *opts, char *err, size_t err_len);

/* Re-reads the access lists and token files (SIGHUP) on a worker thread and installs
 * them on the loop thread; each keeps what it held when its files fail, and the outcome
 * is logged (router/admin.h). Loop thread. */
void syn_router_reload(syn_router *router);

/* Whether the cluster refused this router's member id (another live member holds it). */
bool syn_router_refused(syn_router *router, char *why, size_t len);

/* Closes the ports and fails requests in flight; memory is released as libuv closes the
 * handles, so run the loop until it is empty afterwards. */
void syn_router_stop(syn_router *router);

#endif
