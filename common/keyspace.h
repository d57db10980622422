/* The key space: how a 20-byte key (an info_hash, a v2 hash truncated) maps to one of P
 * partitions (the unit of ownership, cluster/ring.h) and to one of B buckets inside its
 * partition (the unit of anti-entropy: per-bucket digests let two replicas find the rows
 * they disagree on without comparing every row). Keys are already uniform (SHA-1 or
 * SHA-256), so their leading bytes are used as they are.
 *
 * bucket = partition * B + sub, so a partition's buckets are one contiguous range.
 * Pure functions; any thread. */
#ifndef SYN_COMMON_KEYSPACE_H
#define SYN_COMMON_KEYSPACE_H

#include <stdint.h>

#define SYN_BUCKETS_PER_PARTITION 64u

static inline uint32_t syn_be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Partition of a key for P partitions (P > 0). */
static inline uint32_t syn_partition_of(uint32_t partitions, const uint8_t key[20]) {
  return syn_be32(key) % partitions;
}

/* Global bucket index of a key: partition * buckets + (its next 4 bytes mod buckets). */
static inline uint32_t syn_bucket_of(uint32_t partitions, uint32_t buckets, const uint8_t key[20]) {
  return syn_partition_of(partitions, key) * buckets + syn_be32(key + 4) % buckets;
}

#endif
