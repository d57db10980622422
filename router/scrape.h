/* Scrapes split by owner: the hashes of one scrape (HTTP BEP 48 or UDP BEP 15) are
 * grouped by the node that serves each, one ScrapeRequest goes to each such node as a
 * part of one call group (router/call_group.h), and the replies are merged into one
 * answer (UDP: in the order asked; unknown hashes as zeros). A full scrape asks every
 * node. If any part fails, the group ends at once and the client gets a failure reason
 * or an error packet. Loop thread only. */
#ifndef SYN_ROUTER_SCRAPE_H
#define SYN_ROUTER_SCRAPE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"
#include "router/counters.h"
#include "router/http.h"
#include "router/nodes.h"
#include "router/udp.h"

typedef struct syn_scraper {
  uv_loop_t *loop;
  const syn_config *cfg;
  syn_nodes *nodes;
  syn_udp *udp; /* NULL when UDP is off */
  syn_router_counters *counters;
} syn_scraper;

/* Scrapes `count` hashes (copied; 0 = a full scrape) and answers on the HTTP slot. */
void syn_scrape_http(const syn_scraper *s, const uint8_t (*hashes)[20], size_t count,
                     syn_http_slot *slot);
/* The same for a UDP client (at most SYN_UDP_MAX_SCRAPE hashes). */
void syn_scrape_udp(const syn_scraper *s, const uint8_t (*hashes)[20], size_t count,
                    uint32_t transaction_id, const syn_udp_peer *to);

/* The same for another caller (WebSocket clients): fn gets the merged entries (32 bytes
 * each: info_hash, then complete, downloaded, incomplete big-endian; hashes no node knows
 * are left out) or a failure text, exactly once, possibly before this returns. */
typedef void (*syn_scrape_done_fn)(void *ctx, const char *error, const uint8_t *entries,
                                   size_t count);
void syn_scrape_call(const syn_scraper *s, const uint8_t (*hashes)[20], size_t count,
                     syn_scrape_done_fn fn, void *ctx);

#endif
