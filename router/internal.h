/* Router internals shared by its files (router.c: tracker protocol and dispatch; api.c:
 * the JSON API). Not part of the component's public face: only files in router/ include
 * it. Everything here is touched on the loop thread only. */
#ifndef SYN_ROUTER_INTERNAL_H
#define SYN_ROUTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/upstream.h"
#include "common/buf.h"
#include "common/config.h"
#include "router/http.h"
#include "router/router.h"
#include "router/udp.h"

#define PENDING_INITIAL 4096
#define PENDING_MAX (1u << 20)
#define FULL_SCRAPE_CLIENTS 1024

enum pending_kind {
  PENDING_FREE = 0,
  PENDING_HTTP_ANNOUNCE,
  PENDING_HTTP_SCRAPE,
  PENDING_UDP_ANNOUNCE,
  PENDING_UDP_SCRAPE,
  PENDING_API,    /* a JSON API call; its state is in `call` */
  PENDING_GATHER, /* one node's part of an operations request; state in `gather` */
  PENDING_SCRAPE_PART, /* one node's part of a split scrape; state in `scrape` */
};

typedef struct pending {
  uint32_t generation;
  uint8_t kind;
  bool compact;
  bool no_peer_id;
  uint32_t next_free;
  syn_http_slot *slot;
  uint32_t udp_tid;
  syn_udp_peer udp_peer;
  struct api_call *call;
  struct gather *gather;
  struct scrape_call *scrape;
  uint32_t node_index; /* position of this part in its gather */
} pending;

typedef struct full_scrape_client {
  uint8_t ip[16];
  uint32_t last;
} full_scrape_client;

typedef struct router_counters {
  uint64_t http_announces;
  uint64_t http_scrapes;
  uint64_t udp_announces;
  uint64_t udp_scrapes;
  uint64_t failures;      /* failure reasons and UDP error packets sent */
  uint64_t overloaded;    /* refused because the node link was saturated */
  uint64_t node_errors;   /* node unavailable or timed out */
  uint64_t registrations;
  uint64_t searches;
  uint64_t search_latency_us_sum;
  uint64_t search_latency_count;
  uint64_t search_latency_buckets[8]; /* cumulative le 1ms..5s, for a Prometheus histogram */
} router_counters;

struct syn_router {
  uv_loop_t *loop;
  const syn_config *cfg;
  syn_router_options opts;
  syn_http_server *http;
  syn_udp *udp;
  syn_cluster *cluster;
  pending *pending;
  uint32_t pending_cap;
  uint32_t pending_free; /* head of the free list, or UINT32_MAX */
  uint32_t pending_used;
  router_counters counters;
  full_scrape_client full_scrape[FULL_SCRAPE_CLIENTS];
  syn_buf scratch;
  uint64_t started_ms;
};


/* A pending entry for a request about to be sent; NULL when the table is full. */
pending *syn_router_pending_take(syn_router *r, uint8_t kind, uint64_t *id);
void syn_router_pending_release(syn_router *r, pending *p);
/* Sends a request whose entry is `p` to a node slot (syn_cluster_route/fanout); on
 * failure releases the entry and returns < 0. */
int syn_router_submit(syn_router *r, pending *p, int slot, const Synapse__Request *req);

#endif
