/* WebTorrent tracking: the WebSocket clients of this router and their part in the swarms.
 *
 * Owns the WebSocket server (router/ws_server.h), one record per open socket (the peer
 * ids and swarms it announced in), and the map from peer id to socket that signals are
 * delivered through. An announce becomes a WsAnnounceRequest to the node owning its
 * info_hash (router/nodes.h, with failover like any announce); the node counts the peer
 * with the swarm's BitTorrent peers and picks who gets each offer. Signals for sockets of
 * this router come back in the reply; signals from other routers' peers arrive through
 * the nodes' pushes (syn_ws_tracker_push). When a socket closes, its peer leaves every
 * swarm it announced in (a `stopped` per swarm).
 *
 * Loop thread only. */
#ifndef SYN_ROUTER_WS_TRACKER_H
#define SYN_ROUTER_WS_TRACKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"
#include "proto/tracker.pb-c.h"
#include "router/nodes.h"
#include "router/scrape.h"

typedef struct syn_ws_tracker syn_ws_tracker;

/* NULL when the client at ip may announce (scrape: false) or scrape the n info_hashes,
 * else the failure reason to answer (access lists, rate limits: the router's rules). */
typedef const char *(*syn_ws_admit_fn)(void *ctx, const uint8_t *ip, size_t ip_len,
                                       const uint8_t (*hashes)[20], size_t n, bool scrape);

typedef struct syn_ws_tracker_options {
  const syn_config *cfg;
  syn_nodes *nodes;
  const syn_scraper *scraper; /* copied */
  const char *router_id;      /* this router's member id (copied) */
  uint64_t boot;              /* this process's start, as the nodes' polls name it */
  syn_ws_admit_fn admit;
  void *admit_ctx;
} syn_ws_tracker_options;

/* Binds the WebSocket ports. NULL with a one-line message in err. */
syn_ws_tracker *syn_ws_tracker_start(uv_loop_t *loop, const syn_ws_tracker_options *opts, char *err,
                                     size_t err_len);

/* Signals a node pushed for this router's sockets. */
void syn_ws_tracker_push(syn_ws_tracker *t, const Synapse__WsPush *push);

/* SIGHUP: re-reads the TLS certificate and key (router/ws_server.h). */
int syn_ws_tracker_reload(syn_ws_tracker *t, char *err, size_t err_len);

typedef struct syn_ws_tracker_stats {
  uint64_t sockets; /* open now */
  uint64_t announces;
  uint64_t scrapes;
  uint64_t failures;     /* messages answered with a failure reason */
  uint64_t signals_in;   /* offers and answers delivered to a socket here */
  uint64_t signals_lost; /* ... whose receiver was no longer connected */
  uint64_t handshakes_refused;
  uint64_t closed_slow;
} syn_ws_tracker_stats;
void syn_ws_tracker_stats_get(const syn_ws_tracker *t, syn_ws_tracker_stats *out);

/* Closes every socket (their peers leave their swarms) and the ports. Requests still in
 * flight complete later (when the nodes' links close): free after that. */
void syn_ws_tracker_stop(syn_ws_tracker *t);
void syn_ws_tracker_free(syn_ws_tracker *t);

#endif
