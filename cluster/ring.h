/* Ring: which nodes hold which partition.
 *
 * The key space (20-byte info_hashes, already uniform) is cut into a fixed number of
 * partitions P; an info_hash belongs to partition (big-endian first 4 bytes) mod P. Each
 * partition is held by R nodes (its replica set, primary first), chosen by rendezvous
 * (highest-random-weight) hashing: node i's weight for partition p is
 * XXH3_64bits_withSeed(id_i, p), and the R heaviest nodes hold p, heaviest first.
 *
 * Why rendezvous: the answer is a pure function of the set of node ids, so every member
 * that sees the same set computes the same table; adding a node only moves the slots it
 * now wins (about R/N of all replica slots, about 1/N of the primaries) and no partition
 * moves between two nodes that were already there; removing a node only moves its own
 * slots. Balance comes from P being large against N (the primaries of a node are
 * Binomial(P, 1/N)); bench/ring_spread measures max/mean.
 *
 * A syn_ring is immutable once built: build a new one when the member set changes, and
 * share a built ring between threads freely (read-only). All functions are pure, never
 * block, and may be called on any thread. */
#ifndef SYN_CLUSTER_RING_H
#define SYN_CLUSTER_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYN_RING_DEFAULT_PARTITIONS 1024u
#define SYN_RING_DEFAULT_REPLICATION 3u
/* Bounds that keep the table small (P*R 16-bit entries) and ids printable. */
#define SYN_RING_MAX_PARTITIONS 65536u
#define SYN_RING_MAX_REPLICATION 16u
#define SYN_RING_MAX_NODES 65535u

typedef struct syn_ring syn_ring;

/* Builds the table for the node ids (NUL-terminated, any order, duplicates counted once;
 * the ring keeps its own sorted copies). `replication` is capped by the number of
 * distinct ids. n may be 0: a ring without nodes, whose partitions have no replicas.
 * NULL when partitions is 0 or above SYN_RING_MAX_PARTITIONS, replication is 0 or above
 * SYN_RING_MAX_REPLICATION, n is above SYN_RING_MAX_NODES, or memory runs out. */
syn_ring *syn_ring_build(const char *const *node_ids, size_t n, uint32_t partitions,
                         uint32_t replication);

void syn_ring_free(syn_ring *ring);

/* Partition of an info_hash for P partitions (P > 0). */
uint32_t syn_ring_partition_of(uint32_t partitions, const uint8_t info_hash[20]);

/* Partition of an info_hash in this ring. */
uint32_t syn_ring_partition(const syn_ring *ring, const uint8_t info_hash[20]);

uint32_t syn_ring_partitions(const syn_ring *ring);
/* Effective replication: min(requested R, node count). */
uint32_t syn_ring_replication(const syn_ring *ring);
size_t syn_ring_node_count(const syn_ring *ring);

/* The i-th node id in sorted order (i < node count); owned by the ring. */
const char *syn_ring_node_id(const syn_ring *ring, size_t index);

/* Index of a node id in sorted order, or -1 when it is not in the ring. */
long syn_ring_index_of(const syn_ring *ring, const char *node_id);

/* The replica set of `partition` (< partitions) as node indices, primary first; returns
 * the count (the effective replication, 0 for an empty ring). The array is owned by the
 * ring. */
size_t syn_ring_replicas(const syn_ring *ring, uint32_t partition, const uint16_t **indices);

/* Whether node `index` is in the replica set of `partition`; its position (0 = primary)
 * in *rank when rank is not NULL. */
bool syn_ring_holds(const syn_ring *ring, uint32_t partition, size_t index, uint32_t *rank);

/* How many partitions the node is primary for, and how many it holds as a non-primary
 * replica. -1 (both 0) when the id is not in the ring, else 0. */
int syn_ring_owned_by(const syn_ring *ring, const char *node_id, uint32_t *primary_count,
                      uint32_t *replica_count);

/* A 64-bit digest of (ids, P, R): two members with equal fingerprints have equal tables,
 * which makes a cheap check that two views agree (/cluster/status, logs). */
uint64_t syn_ring_fingerprint(const syn_ring *ring);

#endif
