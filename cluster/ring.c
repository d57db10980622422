/* Ring: rendezvous hashing over sorted node ids, precomputed into a P x R table.
 *
 * Build cost is P x N hashes of short ids (1024 x 10 in microseconds), paid once per
 * member-set change; lookups are an index into the table. Ties between equal weights
 * (probability about N^2 / 2^64) are broken by the sorted id order, so the table stays a
 * pure function of the id set. */
#include "cluster/ring.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/keyspace.h"

struct syn_ring {
  uint32_t partitions;
  uint32_t replication; /* effective: min(requested, n) */
  size_t n;
  char **ids;      /* sorted, distinct */
  uint16_t *table; /* partitions x replication node indices, primary first */
  uint64_t fingerprint;
};

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

uint32_t syn_ring_partition_of(uint32_t partitions, const uint8_t info_hash[20]) {
  return syn_partition_of(partitions, info_hash); /* the one mapping: common/keyspace.h */
}

uint32_t syn_ring_partition(const syn_ring *ring, const uint8_t info_hash[20]) {
  return syn_ring_partition_of(ring->partitions, info_hash);
}

uint32_t syn_ring_partitions(const syn_ring *ring) { return ring->partitions; }
uint32_t syn_ring_replication(const syn_ring *ring) { return ring->replication; }
size_t syn_ring_node_count(const syn_ring *ring) { return ring->n; }
const char *syn_ring_node_id(const syn_ring *ring, size_t index) { return ring->ids[index]; }

void syn_ring_free(syn_ring *ring) {
  if (!ring) return;
  for (size_t i = 0; i < ring->n; i++) free(ring->ids[i]);
  free(ring->ids);
  free(ring->table);
  free(ring);
}

/* Copies, sorts and de-duplicates the ids. 0 or -1 (out of memory). */
static int copy_ids(syn_ring *ring, const char *const *node_ids, size_t n) {
  ring->ids = calloc(n ? n : 1, sizeof *ring->ids);
  if (!ring->ids) return -1;
  for (size_t i = 0; i < n; i++) {
    ring->ids[i] = strdup(node_ids[i]);
    if (!ring->ids[i]) {
      ring->n = i;
      return -1;
    }
  }
  ring->n = n;
  qsort(ring->ids, n, sizeof *ring->ids, cmp_str);
  size_t out = 0;
  for (size_t i = 0; i < n; i++) {
    if (out > 0 && strcmp(ring->ids[out - 1], ring->ids[i]) == 0) {
      free(ring->ids[i]);
      continue;
    }
    ring->ids[out++] = ring->ids[i];
  }
  ring->n = out;
  return 0;
}

/* Fills one row: the `r` nodes of highest weight, heaviest first. Insertion into a short
 * sorted list (r <= 16), so the cost is about n hashes. */
static void fill_row(const syn_ring *ring, const size_t *id_len, uint32_t partition,
                     uint16_t *row) {
  uint64_t best[SYN_RING_MAX_REPLICATION];
  uint32_t r = ring->replication, have = 0;
  for (size_t i = 0; i < ring->n; i++) {
    uint64_t w = XXH3_64bits_withSeed(ring->ids[i], id_len[i], partition);
    /* Strictly greater: an equal weight keeps the lower (earlier) index ahead. */
    uint32_t pos = have;
    while (pos > 0 && w > best[pos - 1]) pos--;
    if (pos >= r) continue;
    uint32_t last = have < r ? have : r - 1;
    for (uint32_t k = last; k > pos; k--) {
      best[k] = best[k - 1];
      row[k] = row[k - 1];
    }
    best[pos] = w;
    row[pos] = (uint16_t)i;
    if (have < r) have++;
  }
}

static uint64_t fingerprint(const syn_ring *ring) {
  XXH3_state_t *st = XXH3_createState();
  if (!st) return 0;
  XXH3_64bits_reset(st);
  for (size_t i = 0; i < ring->n; i++)
    XXH3_64bits_update(st, ring->ids[i], strlen(ring->ids[i]) + 1); /* NUL separates */
  uint32_t pr[2] = {ring->partitions, ring->replication};
  XXH3_64bits_update(st, pr, sizeof pr);
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

syn_ring *syn_ring_build(const char *const *node_ids, size_t n, uint32_t partitions,
                         uint32_t replication) {
  if (partitions == 0 || partitions > SYN_RING_MAX_PARTITIONS || replication == 0 ||
      replication > SYN_RING_MAX_REPLICATION || n > SYN_RING_MAX_NODES)
    return NULL;
  syn_ring *ring = calloc(1, sizeof *ring);
  if (!ring) return NULL;
  ring->partitions = partitions;
  size_t *id_len = NULL;
  if (copy_ids(ring, node_ids, n)) goto fail;
  ring->replication = ring->n < replication ? (uint32_t)ring->n : replication;
  ring->table = malloc(sizeof *ring->table * (size_t)partitions * (ring->replication + 1));
  id_len = malloc(sizeof *id_len * (ring->n + 1));
  if (!ring->table || !id_len) goto fail;
  for (size_t i = 0; i < ring->n; i++) id_len[i] = strlen(ring->ids[i]);
  if (ring->replication > 0)
    for (uint32_t p = 0; p < partitions; p++)
      fill_row(ring, id_len, p, ring->table + (size_t)p * ring->replication);
  free(id_len);
  ring->fingerprint = fingerprint(ring);
  return ring;
fail:
  free(id_len);
  syn_ring_free(ring);
  return NULL;
}

long syn_ring_index_of(const syn_ring *ring, const char *node_id) {
  size_t lo = 0, hi = ring->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(ring->ids[mid], node_id);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

size_t syn_ring_replicas(const syn_ring *ring, uint32_t partition, const uint16_t **indices) {
  *indices = ring->table + (size_t)partition * ring->replication;
  return ring->replication;
}

bool syn_ring_holds(const syn_ring *ring, uint32_t partition, size_t index, uint32_t *rank) {
  const uint16_t *row = ring->table + (size_t)partition * ring->replication;
  for (uint32_t k = 0; k < ring->replication; k++) {
    if (row[k] == index) {
      if (rank) *rank = k;
      return true;
    }
  }
  return false;
}

int syn_ring_owned_by(const syn_ring *ring, const char *node_id, uint32_t *primary_count,
                      uint32_t *replica_count) {
  *primary_count = *replica_count = 0;
  long idx = syn_ring_index_of(ring, node_id);
  if (idx < 0) return -1;
  for (uint32_t p = 0; p < ring->partitions; p++) {
    uint32_t rank;
    if (!syn_ring_holds(ring, p, (size_t)idx, &rank)) continue;
    if (rank == 0)
      (*primary_count)++;
    else
      (*replica_count)++;
  }
  return 0;
}

uint64_t syn_ring_fingerprint(const syn_ring *ring) { return ring->fingerprint; }
