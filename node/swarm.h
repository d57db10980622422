/* The swarm store: every torrent's peers, in memory, for the partitions a node serves.
 *
 * Owns all peer records. A peer is keyed by (ip, port), never by peer_id, so nobody can
 * overwrite another's entry (design.md decision 8). IPv4 and IPv6 peers are kept in
 * separate compact arrays per swarm, sorted by address for binary search (past about a
 * thousand peers a family's array is split into hash buckets, each sorted, so an insert
 * never moves more than a few tens of KiB); a record holds the address, port, peer_id,
 * last-announce time and a seeder flag, nothing else.
 *
 * Thread-safety: every function but syn_swarm_store_free may be called from any thread at
 * any time. The store is striped by info_hash (256 stripes); each stripe has its own lock, so
 * node worker threads announce concurrently. No call blocks on I/O, logs or calls out while
 * holding a lock. Expiry is incremental: a swarm drops its expired peers when it is touched
 * (at most once per clean interval = peer_timeout/16, clamped to 1..60 s), and
 * syn_swarm_expire_step visits a bounded number of swarms per call, so there is never a
 * stop-the-world sweep. A peer is expired once now - last_seen > peer_timeout; an expired peer
 * is never handed out, but may still count in the figures for up to one clean interval. Time
 * is passed in (`now`, seconds) so that expiry is testable without sleeping.
 *
 * Memory: 30 bytes per IPv4 record and 42 per IPv6 record (SYN_SWARM_RECORD_V4/V6), arrays growing
 * by 1.125x; see bench/swarm_memory.c for measured figures. Design notes at the top of swarm.c. */
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

#define SYN_SWARM_RECORD_V4 30u
#define SYN_SWARM_RECORD_V6 42u

#define SYN_FAMILY_V4 1u
#define SYN_FAMILY_V6 2u

typedef struct syn_announce {
  const uint8_t *info_hash; /* 20 bytes */
  const uint8_t *peer_id;   /* 20 bytes; NULL stores zeros */
  const uint8_t *ip;        /* 4 or 16 bytes, network order; ::ffff:a.b.c.d counts as IPv4 */
  size_t ip_len;
  uint16_t port;
  int event;         /* syn_swarm_event */
  uint64_t left;     /* 0 = seeder */
  uint32_t numwant;  /* already clamped by the caller */
  uint32_t families; /* SYN_FAMILY_* of the peers wanted */
  bool want_peer_ids;
  uint32_t min_interval; /* s; 0 = always applied (replicas, hand-off); see syn_swarm_announce */
} syn_announce;

/* Caller-provided output. peers4 must hold 6*numwant bytes, peers6 18*numwant, and the
 * id buffers 20*numwant when want_peer_ids; counts are filled. A family is served only if
 * its SYN_FAMILY_* bit is set and its buffer is non-NULL (likewise ids need want_peer_ids
 * and a non-NULL buffer). Entries are the compact forms: ip[4] port[2] (BEP 23) and
 * ip[16] port[2] (BEP 7), network order; peer_ids4[20*i] belongs to peers4[6*i].
 * At most numwant peers in all are returned, never the announcing peer itself (same ip and
 * port), never an expired one, and a seeder gets only leechers. When both families are
 * wanted, numwant is split in proportion to the candidates in each family, and what one
 * family cannot fill goes to the other. A seeder's scan is bounded (16 * numwant + 64
 * records per family), so in a huge swarm with very few leechers it may get fewer leechers
 * than exist; those leechers are handed the seeders anyway. */
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
  bool early; /* within min_interval: answered, not applied */
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
uint32_t syn_swarm_peer_timeout(const syn_swarm_store *store);

/* Applies one announce and fills `out`. Returns 0, -EINVAL for a bad address length (or a
 * NULL req, info_hash or ip), or -ENOMEM (state unchanged). Called by node workers; takes
 * one stripe lock; allocates only for a new swarm or when a new peer needs an array to grow
 * (geometrically), so re-announces of known peers never allocate.
 *
 * The peer is keyed by (ip, port): a new peer_id replaces the old one; left == 0 makes it a
 * seeder, left > 0 a leecher, whatever the event. A stopped event removes the peer and
 * returns no peers; on an unknown swarm it creates nothing. A completed event counts in
 * `downloaded` only when left == 0 and the peer was not already a seeder (new, or a leecher
 * until now), so repeats count once per leecher -> seeder transition. A swarm left without
 * peers is freed at once if its downloaded count is 0; otherwise it is kept (with its count)
 * until one peer_timeout after its last announce. Figures are those after this announce.
 *
 * min interval: with req->min_interval > 0, a known live peer's announce with no event or
 * `started`, less than min_interval seconds after the last announce of it that was applied,
 * is answered without being applied (out->early): its record (seeder flag, peer_id,
 * last-announce time), the swarm and every counter stay as they were, and the reply is the
 * ordinary one computed from the current swarm, the peer counting as what its record says
 * (so a changed `left` waits for the next applied announce). The check reads the record's
 * own last-announce time, so it costs no memory. `completed` and `stopped` are always
 * applied: a client sends each once, so dropping one would lose a download count or keep
 * a departed peer handed out until it expires. */
int syn_swarm_announce(syn_swarm_store *store, const syn_announce *req, uint32_t now,
                       syn_announce_result *out);

/* Every live peer of the swarms `want` accepts (hand-off of partitions to another node).
 * emit runs with a stripe lock held: it must only copy, never call into the store. `ip`
 * is 4 or 16 bytes. Returns the number of peers emitted. */
typedef void (*syn_swarm_export_fn)(void *ctx, const uint8_t info_hash[20], const uint8_t *ip,
                                    size_t ip_len, uint16_t port, const uint8_t peer_id[20],
                                    bool seeder);
size_t syn_swarm_export(syn_swarm_store *store,
                        bool (*want)(void *ctx, const uint8_t info_hash[20]),
                        syn_swarm_export_fn emit, void *ctx, uint32_t now);

/* The same for the swarms of one stripe (0 <= stripe < SYN_SWARM_STRIPES): hand-off in
 * pages, one range of stripes at a time, so no reply has to hold every peer. */
#define SYN_SWARM_STRIPES 256
size_t syn_swarm_export_stripe(syn_swarm_store *store, uint32_t stripe,
                               bool (*want)(void *ctx, const uint8_t info_hash[20]),
                               syn_swarm_export_fn emit, void *ctx, uint32_t now);

/* One live peer as the visitor below sees it: pointers into the store, valid only during
 * the callback. last_seen is the store's clock (the `now` of its last applied announce). */
typedef struct syn_swarm_peer_rec {
  const uint8_t *ip; /* 4 or 16 bytes */
  size_t ip_len;
  uint16_t port;
  const uint8_t *peer_id; /* 20 bytes */
  bool seeder;
  uint32_t last_seen;
} syn_swarm_peer_rec;

/* The walker under syn_swarm_export_stripe, with everything a snapshot needs: for each
 * swarm `want` accepts (NULL: all), `swarm` (may be NULL) with its downloaded count and
 * last announce time, then `peer` for each of its live peers. Both run with the stripe lock
 * held: they must only copy, never call into the store. Returns the peers visited. */
typedef struct syn_swarm_visitor {
  bool (*want)(void *ctx, const uint8_t info_hash[20]);
  void (*swarm)(void *ctx, const uint8_t info_hash[20], uint32_t downloaded, uint32_t last_touch);
  void (*peer)(void *ctx, const uint8_t info_hash[20], const syn_swarm_peer_rec *p);
  void *ctx;
} syn_swarm_visitor;
size_t syn_swarm_visit_stripe(syn_swarm_store *store, uint32_t stripe, const syn_swarm_visitor *v,
                              uint32_t now);

/* Restoring a snapshot (node/swarm_snapshot.h), times on the store's clock, clamped to
 * `now`. restore_swarm keeps the larger downloaded count and last announce time (a swarm
 * with downloaded 0 is not created: its peers bring it back). restore_peer adds a peer with
 * its last-announce time, so it expires when it would have: 1 when added, 0 when it has
 * expired already or the store holds a newer announce of it, -EINVAL, -ENOMEM. */
int syn_swarm_restore_swarm(syn_swarm_store *store, const uint8_t info_hash[20],
                            uint32_t downloaded, uint32_t last_touch, uint32_t now);
int syn_swarm_restore_peer(syn_swarm_store *store, const uint8_t info_hash[20],
                           const syn_swarm_peer_rec *p, uint32_t now);

/* Drops every swarm `want` accepts (partitions handed off to other nodes). Returns the
 * number of swarms dropped. */
size_t syn_swarm_drop(syn_swarm_store *store, bool (*want)(void *ctx, const uint8_t info_hash[20]),
                      void *ctx);

/* Up to `max` peers of a swarm without announcing (for /api/peers): peer buffers as for
 * syn_swarm_announce (ids not filled); counts and figures set. 0, or -ENOENT for an
 * unknown swarm (figures zero). */
int syn_swarm_peers(syn_swarm_store *store, const uint8_t info_hash[20], uint32_t now, uint32_t max,
                    syn_announce_result *out);

/* Figures for one info_hash; zeros for an unknown one. Drops the swarm's expired peers
 * first if due (see above), so it takes the stripe lock like an announce. */
void syn_swarm_scrape(syn_swarm_store *store, const uint8_t info_hash[20], uint32_t now,
                      syn_scrape_result *out);

/* Calls fn for up to `max` swarms (full scrape); returns how many were visited. Swarms are
 * copied out one stripe at a time and fn runs with no lock held (it may call the store);
 * each swarm is seen at most once, but a swarm created or freed meanwhile may or may not be.
 * Allocates a scratch buffer of about one stripe's swarms (32 bytes each). */
size_t syn_swarm_foreach(syn_swarm_store *store, size_t max,
                         void (*fn)(void *ctx, const uint8_t info_hash[20],
                                    const syn_scrape_result *r),
                         void *ctx);

/* Expires peers of up to `budget` swarms, resuming where the last call stopped and going
 * at most once round the store per call; drops swarms left empty (see the downloaded rule
 * above), gives back array space when less than half of it is used, and shrinks hash tables
 * that are under 1/8 full. Returns the number of peers removed. Meant for one periodic
 * timer; concurrent callers are serialised. Takes one stripe lock at a time. */
size_t syn_swarm_expire_step(syn_swarm_store *store, uint32_t now, size_t budget);

/* Sums per-stripe counters kept up to date by every change: 256 x 4 relaxed loads, no
 * lock, so it is cheap enough for /metrics; the sum is not a snapshot across stripes. */
void syn_swarm_totals_get(syn_swarm_store *store, syn_swarm_totals *out);

#endif
