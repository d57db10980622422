/* tracker.registered_only: the set of info_hashes registered as shards on this node, so
 * its announce path can refuse the others (the registry is the whitelist).
 *
 * Held in memory as 20-byte keys (a v2 hash truncated, as it is announced), in 16
 * stripes each under its own read-write lock, so a lookup costs one hash and one or two
 * cache lines and never touches SQLite. Filled from the index at start (every bucket's
 * records, tombstones left out) and kept in step by every write that reaches the index:
 * coordinated registers and deletes (node/shards.c), replicated writes and repair
 * (node/replica.c), and partitions forgotten (node/sync.c). A write is reflected only
 * once the index applied it, so a register older than a delete leaves the key out.
 *
 * Every function may be called from any thread; all of them accept NULL (the mode off)
 * and then do nothing (syn_registered_has answers true). */
#ifndef SYN_NODE_REGISTERED_H
#define SYN_NODE_REGISTERED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/index.h"

typedef struct syn_registered syn_registered;

/* An empty set. NULL when out of memory. */
syn_registered *syn_registered_new(void);

/* Reads every record's key from the index (blocks: one indexed query per bucket). NULL
 * with a message in err. Main thread, at start. */
syn_registered *syn_registered_open(syn_index *idx, char *err, size_t err_len);
void syn_registered_free(syn_registered *r);

/* After a write the index applied: a registration adds the key, a delete (or a forget)
 * removes it. hex is a 40- or 64-digit info_hash; anything else is ignored. */
void syn_registered_note(syn_registered *r, const char *hex, bool registered);

bool syn_registered_has(syn_registered *r, const uint8_t key[20]);
size_t syn_registered_count(syn_registered *r);

#endif
