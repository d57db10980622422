/* Ring spread: how evenly rendezvous hashing over P partitions spreads primaries and
 * replica slots, and how much moves when a node joins or leaves.
 *
 * Usage: ring_spread [partitions [replication [trials]]]   (defaults 1024 3 200)
 *
 * For each cluster size it prints max/mean and min/mean of primaries per node and of all
 * replica slots per node, for the ids "node-0".."node-<N-1>" (what the tests use) and as
 * the mean and worst over `trials` sets of random ids (so the figure is not the luck of
 * one naming); then the share of primaries and of replica slots that change hands when
 * node N joins N nodes, against the ideal 1/(N+1). Figures go to docs/benchmarks.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ring.h"

#define MAX_N 64

typedef struct spread {
  double prim_max, prim_min, all_max, all_min; /* over mean */
} spread;

static void make_ids(char ids[][40], const char **ptr, size_t n, unsigned trial) {
  for (size_t i = 0; i < n; i++) {
    if (trial == 0)
      snprintf(ids[i], 40, "node-%zu", i);
    else
      snprintf(ids[i], 40, "n-%08x-%08x", (unsigned)rand(), (unsigned)rand());
    ptr[i] = ids[i];
  }
}

static spread measure(const syn_ring *r) {
  size_t n = syn_ring_node_count(r);
  double mean = (double)syn_ring_partitions(r) / (double)n;
  double mean_all = mean * syn_ring_replication(r);
  spread s = {0, 1e9, 0, 1e9};
  for (size_t i = 0; i < n; i++) {
    uint32_t prim, rep;
    syn_ring_owned_by(r, syn_ring_node_id(r, i), &prim, &rep);
    double a = prim / mean, b = (prim + rep) / mean_all;
    if (a > s.prim_max) s.prim_max = a;
    if (a < s.prim_min) s.prim_min = a;
    if (b > s.all_max) s.all_max = b;
    if (b < s.all_min) s.all_min = b;
  }
  return s;
}

/* Share of primaries and of replica slots (a node newly in a partition's set) that differ
 * between a and b, over all partitions. */
static void moved(const syn_ring *a, const syn_ring *b, double *prim, double *slots) {
  uint32_t p_count = syn_ring_partitions(a);
  size_t prim_moved = 0, slot_moved = 0, slot_total = 0;
  for (uint32_t p = 0; p < p_count; p++) {
    const uint16_t *ia, *ib;
    size_t na = syn_ring_replicas(a, p, &ia), nb = syn_ring_replicas(b, p, &ib);
    if (strcmp(syn_ring_node_id(a, ia[0]), syn_ring_node_id(b, ib[0])) != 0) prim_moved++;
    for (size_t j = 0; j < nb; j++) {
      const char *id = syn_ring_node_id(b, ib[j]);
      int found = 0;
      for (size_t k = 0; k < na && !found; k++) found = !strcmp(id, syn_ring_node_id(a, ia[k]));
      slot_moved += !found;
    }
    slot_total += nb;
  }
  *prim = (double)prim_moved / p_count;
  *slots = (double)slot_moved / (double)slot_total;
}

int main(int argc, char **argv) {
  uint32_t partitions = argc > 1 ? (uint32_t)atoi(argv[1]) : SYN_RING_DEFAULT_PARTITIONS;
  uint32_t rf = argc > 2 ? (uint32_t)atoi(argv[2]) : SYN_RING_DEFAULT_REPLICATION;
  unsigned trials = argc > 3 ? (unsigned)atoi(argv[3]) : 200;
  static const size_t sizes[] = {3, 4, 5, 10, 20};
  char ids[MAX_N][40];
  const char *ptr[MAX_N];
  srand(12345);
  printf("partitions %u, replication %u, random id sets %u\n\n", partitions, rf, trials);
  printf("%-5s | %-29s | %-29s | %-27s\n", "", "primaries max/mean (min/mean)",
         "replica slots max/mean (min)", "join N->N+1: moved (ideal)");
  printf("%-5s | %-9s %-9s %-9s | %-9s %-9s %-9s | %-8s %-8s %-8s\n", "nodes", "node-i",
         "rand avg", "rand max", "node-i", "rand avg", "rand max", "prim", "slots", "1/(N+1)");
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    size_t n = sizes[si];
    spread named = {0}, avg = {0}, worst = {0, 1e9, 0, 1e9};
    double join_prim = 0, join_slots = 0;
    for (unsigned t = 0; t <= trials; t++) {
      make_ids(ids, ptr, n + 1, t);
      syn_ring *r = syn_ring_build(ptr, n, partitions, rf);
      syn_ring *grown = syn_ring_build(ptr, n + 1, partitions, rf);
      if (!r || !grown) return 1;
      spread s = measure(r);
      if (t == 0) {
        named = s;
        moved(r, grown, &join_prim, &join_slots);
      } else {
        avg.prim_max += s.prim_max / trials;
        avg.all_max += s.all_max / trials;
        avg.prim_min += s.prim_min / trials;
        avg.all_min += s.all_min / trials;
        if (s.prim_max > worst.prim_max) worst.prim_max = s.prim_max;
        if (s.all_max > worst.all_max) worst.all_max = s.all_max;
      }
      syn_ring_free(r);
      syn_ring_free(grown);
    }
    printf("%-5zu | %.3f     %.3f     %.3f     | %.3f     %.3f     %.3f     | %.3f    %.3f    "
           "%.3f\n",
           n, named.prim_max, avg.prim_max, worst.prim_max, named.all_max, avg.all_max,
           worst.all_max, join_prim, join_slots, 1.0 / (double)(n + 1));
    printf("%-5s | (min %.3f, avg min %.3f)     | (min %.3f, avg min %.3f)     |\n", "",
           named.prim_min, avg.prim_min, named.all_min, avg.all_min);
  }
  return 0;
}
