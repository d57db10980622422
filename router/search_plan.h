/* Which node answers a search for which partitions (design decision 4).
 *
 * A search is answered partition by partition: each partition by exactly one of its
 * replicas, the first in routing order that has not been asked for it yet. A round sends
 * every node the set of partitions it is to answer for; a node answers for those it is
 * ready to serve and names the others (unserved), and a node that fails gives back its
 * whole set; those go to their next replica in the next round. No partition is searched
 * twice, so the router's merge needs no deduplication and is exact over the union, and
 * a partition whose every replica was asked without an answer makes the result partial.
 *
 * Pure bookkeeping over bitmaps (one bit per partition, bit p in byte p / 8, LSB first);
 * the caller sends and collects. One plan per search phase, on one thread. */
#ifndef SYN_ROUTER_SEARCH_PLAN_H
#define SYN_ROUTER_SEARCH_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYN_PLAN_SLOTS 256 /* node slots (router/nodes.h SYN_NODES_MAX) */

/* The replicas of partition p as node slots, in routing order (the ones worth asking
 * first); returns how many (at most cap). */
typedef size_t (*syn_plan_replicas_fn)(void *ctx, uint32_t partition, int *slots, size_t cap);

typedef struct syn_search_plan {
  uint32_t parts;
  size_t bytes;                   /* (parts + 7) / 8 */
  uint8_t *pending;               /* partitions that still need an answer */
  uint8_t *asked[SYN_PLAN_SLOTS]; /* per slot: every partition it was asked for, or NULL */
  uint8_t *round[SYN_PLAN_SLOTS]; /* per slot: this round's partitions, or NULL */
  int round_slots[SYN_PLAN_SLOTS];
  size_t round_count; /* slots asked in this round, in round_slots */
  uint32_t rounds;    /* rounds planned so far */
  uint32_t missed;    /* partitions left without any replica to ask */
} syn_search_plan;

/* Every partition pending. 0 or -ENOMEM (then free it all the same). */
int syn_search_plan_init(syn_search_plan *p, uint32_t parts);
void syn_search_plan_free(syn_search_plan *p);

/* Plans the next round: each pending partition goes to its first replica (replicas()
 * order) not yet asked for it; a partition without one is counted in missed. Pending is
 * empty afterwards. Returns the number of slots in round_slots (0: nothing to send). */
size_t syn_search_plan_round(syn_search_plan *p, syn_plan_replicas_fn replicas, void *ctx);

/* A slot's answer named these partitions unserved (len bytes; extra bits ignored). Only
 * partitions it was asked for in this round go back to pending. */
void syn_search_plan_unserved(syn_search_plan *p, int slot, const uint8_t *bits, size_t len);

/* A slot failed (error, timeout, refused): its whole round goes back to pending. */
void syn_search_plan_failed(syn_search_plan *p, int slot);

/* Whether any partition waits for another round; how many do. */
bool syn_search_plan_has_pending(const syn_search_plan *p);
uint32_t syn_search_plan_pending_count(const syn_search_plan *p);

#endif
