/* Parsing of /announce and /scrape query strings (BEP 3, 23, 7, 48), and building of
 * their bencoded replies. Pure functions, no I/O: unit-tested in tracker_query_test.c.
 *
 * Parsing validates everything a client sends: info_hash and peer_id must percent-decode
 * to exactly 20 bytes, numbers must be decimal and in range, the event must be known.
 * On failure the returned message is the text of the bencoded failure reason. */
#ifndef SYN_ROUTER_TRACKER_QUERY_H
#define SYN_ROUTER_TRACKER_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define SYN_SCRAPE_MAX_HASHES 256

typedef struct syn_announce_query {
  uint8_t info_hash[20];
  uint8_t peer_id[20];
  uint16_t port;
  uint64_t uploaded;
  uint64_t downloaded;
  uint64_t left;
  int event;        /* syn_swarm_event numbering: 0 none, 1 completed, 2 started, 3 stopped */
  int32_t numwant;  /* -1 when absent */
  bool compact;     /* default true; compact=0 asks for dictionaries */
  bool no_peer_id;
} syn_announce_query;

typedef struct syn_scrape_query {
  uint8_t hashes[SYN_SCRAPE_MAX_HASHES][20];
  size_t count; /* 0 = full scrape */
} syn_scrape_query;

/* NULL on success, else a failure reason (static string). */
const char *syn_announce_query_parse(const char *query, size_t len, syn_announce_query *out);
const char *syn_scrape_query_parse(const char *query, size_t len, syn_scrape_query *out);

typedef struct syn_announce_reply_view {
  uint32_t interval;
  uint32_t min_interval;
  uint32_t complete;
  uint32_t incomplete;
  uint32_t downloaded;
  const uint8_t *peers4; /* 6 bytes each */
  size_t peers4_count;
  const uint8_t *peers6; /* 18 bytes each */
  size_t peers6_count;
  const uint8_t *peer_ids4; /* 20 bytes each, or NULL */
  const uint8_t *peer_ids6;
} syn_announce_reply_view;

/* Compact form: `peers` (and `peers6` when there are IPv6 peers) as strings. */
int syn_announce_reply_compact(syn_buf *out, const syn_announce_reply_view *r);
/* Dictionary form: `peers` as a list of {ip, peer id, port}; peer id omitted when
 * no_peer_id or when ids are absent. IPv6 peers join the same list. */
int syn_announce_reply_dict(syn_buf *out, const syn_announce_reply_view *r, bool no_peer_id);

/* `entries`: 32 bytes each (info_hash, complete, downloaded, incomplete as big-endian
 * uint32), as ScrapeReply.entries carries them. Files are written in sorted hash order,
 * duplicates once. */
int syn_scrape_reply(syn_buf *out, const uint8_t *entries, size_t count);

#endif
