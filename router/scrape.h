/* Scrapes split by owner: the hashes of one scrape (HTTP BEP 48 or UDP BEP 15) are
 * grouped by the node that serves each, one ScrapeRequest goes to each such node, and
 * the replies are merged into one answer (UDP: in the order asked). A full scrape asks
 * every node. If any part fails, the client gets a failure reason or error packet.
 * Loop thread only. */
#ifndef SYN_ROUTER_SCRAPE_H
#define SYN_ROUTER_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "router/internal.h"

typedef struct scrape_call {
  bool udp;
  syn_http_slot *slot;   /* HTTP */
  uint32_t udp_tid;      /* UDP */
  syn_udp_peer udp_peer; /* UDP */
  uint32_t outstanding;
  bool failed;
  char error[160];
  size_t count;          /* hashes asked; 0 = full scrape */
  uint8_t (*hashes)[20]; /* heap, in the order asked */
  syn_buf entries;       /* merged node entries, 32 bytes each */
} scrape_call;

/* A call for `count` hashes (copied); NULL on ENOMEM. */
scrape_call *scrape_call_new(const uint8_t (*hashes)[20], size_t count);
/* Sends the parts, or answers at once when nothing can be sent. Takes ownership. */
void scrape_start(syn_router *r, scrape_call *sc);
/* One node's reply for a PENDING_SCRAPE_PART entry. */
void scrape_part_reply(syn_router *r, pending *p, const Synapse__Reply *rep);

#endif
