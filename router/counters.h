/* The router's own counters, served on /metrics. One struct owned by the router; the
 * modules that count (tracker replies, scrapes, the API) get a pointer to it. Loop
 * thread only, so plain integers. */
#ifndef SYN_ROUTER_COUNTERS_H
#define SYN_ROUTER_COUNTERS_H

#include <stdint.h>

#define SYN_LATENCY_BUCKETS 8

typedef struct syn_router_counters {
  uint64_t http_announces;
  uint64_t http_scrapes;
  uint64_t udp_announces;
  uint64_t udp_scrapes;
  uint64_t failures;    /* failure reasons and UDP error packets sent */
  uint64_t overloaded;  /* refused because the node link was saturated */
  uint64_t node_errors; /* node unavailable or timed out */
  uint64_t rate_limited[4]; /* refused over a client's rate, by syn_limit_class */
  uint64_t registrations;
  uint64_t searches;
  uint64_t search_partitions_rerouted; /* asked of a next replica (unserved or failed) */
  uint64_t search_partitions_missed;   /* left without a replica to ask: partial answers */
  uint64_t search_copies_dropped;      /* a shard sent twice (a node ignoring its partitions) */
  uint64_t search_latency_us_sum;
  uint64_t search_latency_count;
  uint64_t search_latency_buckets[SYN_LATENCY_BUCKETS]; /* cumulative, le 1 ms .. 5 s */
} syn_router_counters;

/* Upper bounds of the latency buckets, in milliseconds (and as Prometheus `le` text). */
#define SYN_LATENCY_BOUNDS_MS {1, 5, 10, 25, 50, 100, 1000, 5000}
#define SYN_LATENCY_BOUNDS_LE {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "1", "5"}

static inline void syn_counters_search_latency(syn_router_counters *c, uint64_t ms) {
  static const uint64_t bounds[SYN_LATENCY_BUCKETS] = SYN_LATENCY_BOUNDS_MS;
  c->search_latency_us_sum += ms * 1000;
  c->search_latency_count++;
  for (int i = 0; i < SYN_LATENCY_BUCKETS; i++)
    if (ms <= bounds[i]) c->search_latency_buckets[i]++;
}

#endif
