/* The swarm store: every torrent's peers, in memory, for the partitions a node serves.
 *
 * Owns all peer records. A peer is keyed by (ip, port), never by peer_id, so nobody can
 * overwrite another's entry (design.md decision 8). IPv4 and IPv6 peers are kept in
 * separate compact arrays per swarm, sorted by address for binary search; a record holds
 * the address, port, peer_id, last-announce time and a seeder flag, nothing else.
 *
 * Thread-safety: the store is striped by info_hash; each stripe has its own lock, so
 * node worker threads announce concurrently. No call blocks on I/O. Expiry is incremental:
 * a swarm drops its expired peers when it is touched, and syn_swarm_expire_step visits a
 * bounded number of swarms per call, so there is never a stop-the-world sweep. Time is
 * passed in (`now`, seconds) so that expiry is testable without sleeping. */
#ifndef SYN_NODE_SWARM_H
#define SYN_NODE_SWARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct syn_swarm_store syn_swarm_store;

enum syn_swarm_event {
  SYN_EVENT_NONE = 0,
  SYN_EVENT_COMPLETED = 1,
  SYN_EVENT_STARTED = 2,
  SYN_EVENT_STOPPED = 3,
};

#define SYN_FAMILY_V4 1u
#define SYN_FAMILY_V6 2u

typedef struct syn_announce {
  const uint8_t *info_hash; /* 20 bytes */
  const uint8_t *peer_id;   /* 20 bytes */
  const uint8_t *ip;        /* 4 or 16 bytes, network order */
  size_t ip_len;
  uint16_t port;
  int event;        /* syn_swarm_event */
  uint64_t left;    /* 0 = seeder */
  uint32_t numwant; /* already clamped by the caller */
  uint32_t families; /* SYN_FAMILY_* of the peers wanted */
  bool want_peer_ids;
} syn_announce;

/* Caller-provided output. peers4 must hold 6*numwant bytes, peers6 18*numwant, and the
 * id buffers 20*numwant when want_peer_ids; counts are filled. At most numwant peers in
 * all are returned, never the announcing peer itself, and a seeder gets only leechers. */
typedef struct syn_announce_result {
  uint32_t complete;   /* seeders after this announce */
  uint32_t incomplete; /* leechers after this announce */
  uint32_t downloaded; /* completed events seen */
  uint8_t *peers4;
  size_t peers4_count;
  uint8_t *peers6;
  size_t peers6_count;
  uint8_t *peer_ids4;
  uint8_t *peer_ids6;
} syn_announce_result;

typedef struct syn_scrape_result {
  uint32_t complete;
  uint32_t incomplete;
  uint32_t downloaded;
} syn_scrape_result;

typedef struct syn_swarm_totals {
  uint64_t torrents;
  uint64_t peers;
  uint64_t seeders;
  uint64_t peer_bytes; /* bytes held by peer arrays (capacity, not just used) */
} syn_swarm_totals;

/* peer_timeout: seconds without announce before a peer expires. NULL on ENOMEM. */
syn_swarm_store *syn_swarm_store_new(uint32_t peer_timeout);
void syn_swarm_store_free(syn_swarm_store *store);

/* Applies one announce and fills `out`. Returns 0, -EINVAL for a bad address length, or
 * -ENOMEM. A stopped event removes the peer and returns no peers. */
int syn_swarm_announce(syn_swarm_store *store, const syn_announce *req, uint32_t now,
                       syn_announce_result *out);

/* Figures for one info_hash; zeros for an unknown one. */
void syn_swarm_scrape(syn_swarm_store *store, const uint8_t info_hash[20], uint32_t now,
                      syn_scrape_result *out);

/* Calls fn for up to `max` swarms (full scrape); returns how many were visited. */
size_t syn_swarm_foreach(syn_swarm_store *store, size_t max,
                         void (*fn)(void *ctx, const uint8_t info_hash[20],
                                    const syn_scrape_result *r),
                         void *ctx);

/* Expires peers of up to `budget` swarms, resuming where the last call stopped; drops
 * swarms left empty. Returns the number of peers removed. */
size_t syn_swarm_expire_step(syn_swarm_store *store, uint32_t now, size_t budget);

void syn_swarm_totals_get(syn_swarm_store *store, syn_swarm_totals *out);

#endif
