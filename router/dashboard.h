/* The status page: one self-contained page for people, served at GET / by every router
 * and by a node's admin port, and the two figures only it reads.
 *
 * - GET / (and /index.html): router/dashboard/index.html, with the members table already
 *   filled in from the /cluster/status document (so the page is readable with JavaScript
 *   off); its script then refreshes everything in place every few seconds.
 * - GET /dashboard/app.js, /dashboard/style.css: the page's script and style.
 * - GET /cluster/history: the router's recent request rates (router/rate_history.h),
 *   sampled once a second on the loop's timer from the router's own counters.
 * - GET /cluster/ring: every partition's replica set, as indices into the ring's node list.
 *
 * The three files are compiled into the binary at build time (router/dashboard/embed.cmake
 * turns them into byte arrays): nothing is read from disk or fetched from elsewhere, and
 * the page's Content-Security-Policy allows nothing but this origin.
 *
 * Loop thread only. The dashboard is owned by the router (router.c), which starts it and
 * closes it. */
#ifndef SYN_ROUTER_DASHBOARD_H
#define SYN_ROUTER_DASHBOARD_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "router/counters.h"
#include "router/http.h"
#include "router/nodes.h"

typedef struct syn_dashboard syn_dashboard;

/* Starts sampling `counters` (owned by the caller, alive until syn_dashboard_close) once a
 * second. NULL when out of memory. */
syn_dashboard *syn_dashboard_start(uv_loop_t *loop, const syn_router_counters *counters);

/* Stops the timer; the dashboard is freed once libuv has closed it. NULL is a no-op. */
void syn_dashboard_close(syn_dashboard *d);

/* Whether `req` asks for the page itself (GET / or /index.html): the caller gathers the
 * /cluster/status document and hands it to syn_dashboard_page. */
bool syn_dashboard_is_page(const syn_http_request *req);

/* Answers the page with the members table rendered from `status` (a /cluster/status
 * document, borrowed). */
void syn_dashboard_page(syn_http_slot *slot, const json_t *status);

/* Answers the page's other paths (its script and style, /cluster/history, /cluster/ring);
 * false when the path is none of them. `d` may be NULL (history then answers 503). */
bool syn_dashboard_handle(const syn_dashboard *d, syn_nodes *nodes, const syn_http_request *req,
                          syn_http_slot *slot);

#endif
