/* Limits per client address: token buckets for request rates and counts of open
 * connections. The router's defence against one client taking the tracker off the air.
 *
 * A client is its IPv4 address, or its IPv6 /64 (one host usually holds a whole /64, so
 * per-address limits on IPv6 would limit nothing). Addresses are hashed with a random key
 * chosen at start, so no one can aim collisions at another client.
 *
 * The rate table has a fixed size chosen at start (bounded memory whatever the traffic):
 * 4-way sets, the least recently seen entry of a full set evicted. An evicted client
 * starts again with a full burst: a flood of many addresses can only make limits more
 * lenient for others, never stricter. The connection table is exact (an entry lives while
 * its client has a connection open), so its size is bounded by the open connections.
 *
 * Loop thread only; nothing here locks. Pure apart from the hash key: `now` is passed in. */
#ifndef SYN_ROUTER_CLIENT_LIMITS_H
#define SYN_ROUTER_CLIENT_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum syn_limit_class {
  SYN_LIMIT_ANNOUNCE = 0, /* HTTP and UDP announces */
  SYN_LIMIT_SCRAPE,       /* HTTP and UDP scrapes */
  SYN_LIMIT_API_READ,     /* GET /api/..., searches, operations figures */
  SYN_LIMIT_API_WRITE,    /* register and delete */
  SYN_LIMIT_CLASSES
} syn_limit_class;

const char *syn_limit_class_name(syn_limit_class c);

typedef struct syn_rate_rule {
  uint32_t per_second; /* tokens added per second; 0 = this class is not limited */
  uint32_t burst;      /* bucket size: requests a quiet client may send at once */
} syn_rate_rule;

/* The client key of an address (4 or 16 bytes) under a table's hash key. */
uint64_t syn_client_key(const uint8_t hash_key[16], const uint8_t *ip, size_t ip_len);

/* ---- request rates ---- */

typedef struct syn_rate_table syn_rate_table;

/* `entries` is rounded up to a multiple of 4 (at least 4). NULL when out of memory. */
syn_rate_table *syn_rate_table_new(size_t entries, const syn_rate_rule rules[SYN_LIMIT_CLASSES]);
void syn_rate_table_free(syn_rate_table *t);

/* Takes one token of `cls` for the client at `now_ms` (any monotonic clock): true when
 * the request may go on, false when the client is over its limit. */
bool syn_rate_take(syn_rate_table *t, syn_limit_class cls, const uint8_t *ip, size_t ip_len,
                   uint64_t now_ms);

/* Seconds until the client of a refused request has a token again (at least 1), for
 * Retry-After. */
uint32_t syn_rate_retry_after(const syn_rate_table *t, syn_limit_class cls);

size_t syn_rate_table_entries(const syn_rate_table *t);
uint64_t syn_rate_table_evictions(const syn_rate_table *t);

/* ---- open connections ---- */

typedef struct syn_conn_table syn_conn_table;

/* `expected` sizes the bucket array (the connection limit). NULL when out of memory. */
syn_conn_table *syn_conn_table_new(size_t expected);
void syn_conn_table_free(syn_conn_table *t);

/* Counts one more connection of the client unless it already has `max`: true when
 * counted (the caller must later call syn_conn_release with the same address). */
bool syn_conn_acquire(syn_conn_table *t, const uint8_t *ip, size_t ip_len, uint32_t max);
void syn_conn_release(syn_conn_table *t, const uint8_t *ip, size_t ip_len);

/* Clients with at least one connection open. */
size_t syn_conn_table_clients(const syn_conn_table *t);

#endif
