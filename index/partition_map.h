/* Which partition each stored vector belongs to, by its label (the shard's row id), so a
 * search limited to some partitions can be restricted inside faiss's scan
 * (index/faiss_select.h) instead of filtered after it. Owned by the index (index.c):
 * filled from the store at open, kept with every committed write (under the index's
 * write_mu), read by searches on any thread.
 *
 * An open-addressing table (linear probing, backward-shift deletion) of 16 bytes a slot
 * at most half full; a rwlock lets searches read it in parallel while the writer waits
 * for them (writer-preferring, so a stream of searches cannot starve writes). */
#ifndef SYN_INDEX_PARTITION_MAP_H
#define SYN_INDEX_PARTITION_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct syn_pmap syn_pmap;

syn_pmap *syn_pmap_new(void);
void syn_pmap_free(syn_pmap *m);

/* Sets (or replaces) the partition of label (> 0). 0 or -ENOMEM. */
int syn_pmap_put(syn_pmap *m, int64_t label, uint32_t partition);
/* Forgets label (absent: nothing happens). */
void syn_pmap_del(syn_pmap *m, int64_t label);

/* A read section: lookups only between begin and end. */
void syn_pmap_read_begin(syn_pmap *m);
void syn_pmap_read_end(syn_pmap *m);
/* Whether label's partition has its bit set in parts (one bit per partition, LSB first,
 * `bytes` long); false for an unknown label. Inside a read section. */
bool syn_pmap_in(const syn_pmap *m, int64_t label, const uint8_t *parts, size_t bytes);

/* How many labels the partitions set in parts hold (inside a read section): 0 means a
 * search of them has nothing to find, and one that found this many found them all. */
size_t syn_pmap_count_in(const syn_pmap *m, const uint8_t *parts, size_t bytes);

/* Labels held and bytes of memory, for stats and tests. */
size_t syn_pmap_count(syn_pmap *m);
size_t syn_pmap_bytes(syn_pmap *m);

#endif
