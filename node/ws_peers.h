/* WebSocket (WebTorrent) peers of the swarms a node owns, and the signals in transit to
 * the routers that hold their sockets.
 *
 * A WebTorrent peer cannot be dialled: it is reached through the router holding its
 * WebSocket. So its entry in a swarm names that router (member id and boot: a restarted
 * router's sockets are all gone), and an announce carrying offers hands each offer to a
 * different other peer of the swarm. A signal (offer or answer) for a peer on the asking
 * router goes straight back in the reply; one for a peer on another router waits in that
 * router's outbox until the router's standing poll (proto WsPoll) collects it. The poll
 * itself is parked here as an opaque pointer the caller (node.c) owns the meaning of.
 *
 * The owner replicates each entry (node/replication.c, with the swarm updates) and a
 * replica applies it here with its offers left out, so whoever serves the swarm next
 * knows its peers. Entries go when their socket closes (the router announces `stopped` for each swarm of
 * the socket), when they are not refreshed within the peer timeout, when their router
 * restarts (a new boot) or when the caller reports the router dead (membership).
 *
 * Owns every swarm entry, router slot and outbox. Thread-safe: one mutex, held briefly;
 * WebSocket traffic is small beside BitTorrent announces. */
#ifndef SYN_NODE_WS_PEERS_H
#define SYN_NODE_WS_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "node/swarm.h"
#include "proto/tracker.pb-c.h"

#define SYN_WS_MAX_ROUTERS 64          /* routers with WebSocket peers on one node at once */
#define SYN_WS_MAX_SWARM_PEERS 4096    /* WebSocket peers in one swarm */
#define SYN_WS_MAX_OFFERS 64           /* offers handed on per announce (the router limits more) */
#define SYN_WS_OUTBOX_BYTES (4u << 20) /* signals waiting for one router's poll */
#define SYN_WS_ROUTER_ID_MAX 64        /* bytes of a router's member id (membership's bound) */

typedef struct syn_ws_peers syn_ws_peers;

/* NULL on out of memory. Entries live peer_timeout_s without an announce; at most
 * max_peers in all (a new peer beyond is refused). */
syn_ws_peers *syn_ws_peers_new(uint32_t peer_timeout_s, size_t max_peers);
/* Frees everything. Parked polls are forgotten: the caller closes their sockets first. */
void syn_ws_peers_free(syn_ws_peers *p);

/* A signal for a socket of the asking router: to `to_peer_id`, carrying the request's
 * offer number `offer` (or its answer when offer is -1). */
typedef struct syn_ws_local {
  uint8_t to_peer_id[20];
  int offer;
} syn_ws_local;

typedef struct syn_ws_announce_result {
  syn_scrape_result ws; /* the swarm's WebSocket peers after the announce */
  uint32_t offers_sent; /* offers that found a receiver */
  size_t local_count;   /* entries written to `local` */
  /* router slots whose outbox got signals: answer their parked poll (syn_ws_peers_collect) */
  int wake[SYN_WS_MAX_OFFERS + 1];
  size_t wake_count;
} syn_ws_announce_result;

/* Applies one announce from router req->router: adds, refreshes or (event stopped)
 * removes the peer, hands each offer to a different other peer (a seed's offers only to
 * leechers), forwards an answer to the peer it answers. `local` has room for
 * SYN_WS_MAX_OFFERS + 1 entries. 0; -EINVAL (malformed: sizes, too many offers),
 * -ENOSPC (the swarm or the store is full: nothing stored), -ENOMEM. */
int syn_ws_peers_announce(syn_ws_peers *p, const Synapse__WsAnnounceRequest *req, uint32_t now,
                          syn_ws_local *local, syn_ws_announce_result *out);

/* The WebSocket peers of one swarm (zeros when there are none). */
void syn_ws_peers_figures(syn_ws_peers *p, const uint8_t info_hash[20], uint32_t now,
                          syn_scrape_result *out);
/* Adds them to a swarm's BitTorrent figures: the two kinds of peers are counted together
 * in every announce reply, scrape and search hit. p may be NULL (nothing added). */
void syn_ws_peers_add_figures(syn_ws_peers *p, const uint8_t info_hash[20], uint32_t now,
                              syn_scrape_result *r);

/* A router's poll arrived. When signals wait for it they are moved to *out (an encoded
 * WsPush: repeated field 1) and the poll is not kept: answer it now; returns 0. Otherwise
 * `parked` is kept for later and 1 returned; a poll parked before for the same router
 * comes back in *replaced (answer it empty), else *replaced is NULL. A new boot for a
 * known router id first drops that router's peers. -ENOSPC when every router slot is
 * taken (answer empty). */
int syn_ws_peers_poll(syn_ws_peers *p, const char *router, uint64_t boot, void *parked,
                      uint64_t now_ms, syn_buf *out, void **replaced);

/* For a woken slot: its parked poll and waiting signals, both taken (NULL when no poll is
 * parked: the signals stay for the next poll). */
void *syn_ws_peers_collect(syn_ws_peers *p, int slot, syn_buf *out);

/* Parked polls older than max_age_ms, taken one at a time (answer each empty); NULL when
 * none is left. */
void *syn_ws_peers_stale_poll(syn_ws_peers *p, uint64_t now_ms, uint64_t max_age_ms);

/* Drops a router's peers and outbox (membership declared it dead or it left); returns its
 * parked poll, if any, for the caller to answer or close. */
void *syn_ws_peers_drop_router(syn_ws_peers *p, const char *router);

/* Drops routers without a parked poll whose last announce or poll is idle_s old (a router
 * that died unseen by membership: a live one always has a poll parked); how many. */
int syn_ws_peers_drop_idle(syn_ws_peers *p, uint32_t now, uint32_t idle_s);

/* Every router id that has a slot, for the caller to check against membership; returns
 * how many were written (at most cap). */
size_t syn_ws_peers_routers(syn_ws_peers *p, char (*ids)[SYN_WS_ROUTER_ID_MAX + 1], size_t cap);

/* Calls emit, with the lock held (emit must not call the store), for every live entry of
 * the swarms `wants` accepts, at most max; returns how many. For a node taking over
 * partitions (node/sync.c's swarm pull). */
typedef bool (*syn_ws_wants_fn)(void *ctx, const uint8_t info_hash[20]);
typedef void (*syn_ws_emit_fn)(void *ctx, const uint8_t info_hash[20], const uint8_t peer_id[20],
                               const char *router, uint64_t boot, bool seed);
size_t syn_ws_peers_export(syn_ws_peers *p, uint32_t now, size_t max, syn_ws_wants_fn wants,
                           syn_ws_emit_fn emit, void *ctx);

/* Removes expired entries from up to `budget` swarms (a cursor walks the table). */
void syn_ws_peers_expire_step(syn_ws_peers *p, uint32_t now, size_t budget);

typedef struct syn_ws_stats {
  uint64_t swarms;
  uint64_t peers;
  uint64_t routers;
  uint64_t offers_sent;
  uint64_t answers_sent;
  uint64_t signals_dropped; /* outbox full, or receiver gone */
} syn_ws_stats;
void syn_ws_peers_stats(syn_ws_peers *p, syn_ws_stats *out);

#endif
