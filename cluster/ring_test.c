/* Ring tests: placement is a pure function of the id set, R is capped, and membership
 * changes move only what they must (design decision 2). */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "cluster/ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P 1024u
#define MAX_IDS 16

typedef struct ids {
  char buf[MAX_IDS][32];
  const char *ptr[MAX_IDS];
  size_t n;
} ids;

/* ids "node-<first>" .. "node-<first+n-1>". */
static void make_ids(ids *s, size_t first, size_t n) {
  s->n = n;
  for (size_t i = 0; i < n; i++) {
    snprintf(s->buf[i], sizeof s->buf[i], "node-%zu", first + i);
    s->ptr[i] = s->buf[i];
  }
}

/* The replica set of p as ids. */
static size_t replica_ids(const syn_ring *r, uint32_t p, const char **out) {
  const uint16_t *idx;
  size_t n = syn_ring_replicas(r, p, &idx);
  for (size_t k = 0; k < n; k++) out[k] = syn_ring_node_id(r, idx[k]);
  return n;
}

static bool contains(const char *const *set, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(set[i], id) == 0) return true;
  return false;
}

static void assert_same_table(const syn_ring *a, const syn_ring *b) {
  assert_int_equal(syn_ring_partitions(a), syn_ring_partitions(b));
  assert_int_equal(syn_ring_replication(a), syn_ring_replication(b));
  for (uint32_t p = 0; p < syn_ring_partitions(a); p++) {
    const char *ra[SYN_RING_MAX_REPLICATION], *rb[SYN_RING_MAX_REPLICATION];
    size_t na = replica_ids(a, p, ra), nb = replica_ids(b, p, rb);
    assert_int_equal(na, nb);
    for (size_t k = 0; k < na; k++) assert_string_equal(ra[k], rb[k]);
  }
  assert_true(syn_ring_fingerprint(a) == syn_ring_fingerprint(b));
}

static void test_partition_of(void **state) {
  uint8_t h[20] = {0};
  assert_int_equal(syn_ring_partition_of(P, h), 0);
  h[2] = 0x04;
  h[3] = 0x01; /* 1025 */
  assert_int_equal(syn_ring_partition_of(P, h), 1);
  memset(h, 0xff, sizeof h); /* 2^32 - 1 */
  assert_int_equal(syn_ring_partition_of(P, h), 1023);
  assert_int_equal(syn_ring_partition_of(1000, h), 4294967295u % 1000);
  h[4] = 0; /* bytes past the fourth do not matter */
  assert_int_equal(syn_ring_partition_of(P, h), 1023);
}

static void test_bad_arguments(void **state) {
  ids s;
  make_ids(&s, 0, 3);
  assert_null(syn_ring_build(s.ptr, s.n, 0, 3));
  assert_null(syn_ring_build(s.ptr, s.n, SYN_RING_MAX_PARTITIONS + 1, 3));
  assert_null(syn_ring_build(s.ptr, s.n, P, 0));
  assert_null(syn_ring_build(s.ptr, s.n, P, SYN_RING_MAX_REPLICATION + 1));
}

/* The same set in any order, with duplicates, gives the same table. */
static void test_deterministic_any_order(void **state) {
  ids s;
  make_ids(&s, 0, 7);
  syn_ring *a = syn_ring_build(s.ptr, s.n, P, 3);
  const char *rev[MAX_IDS + 2];
  for (size_t i = 0; i < s.n; i++) rev[i] = s.ptr[s.n - 1 - i];
  rev[s.n] = s.ptr[2];
  rev[s.n + 1] = s.ptr[5];
  syn_ring *b = syn_ring_build(rev, s.n + 2, P, 3);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(syn_ring_node_count(b), 7);
  assert_same_table(a, b);
  /* A different set or R gives a different fingerprint. */
  syn_ring *c = syn_ring_build(s.ptr, s.n - 1, P, 3);
  syn_ring *d = syn_ring_build(s.ptr, s.n, P, 2);
  assert_true(syn_ring_fingerprint(a) != syn_ring_fingerprint(c));
  assert_true(syn_ring_fingerprint(a) != syn_ring_fingerprint(d));
  syn_ring_free(a);
  syn_ring_free(b);
  syn_ring_free(c);
  syn_ring_free(d);
}

/* Every replica set has min(R, N) distinct members. */
static void test_replication_capped(void **state) {
  for (size_t n = 0; n <= 4; n++) {
    ids s;
    make_ids(&s, 0, n);
    syn_ring *r = syn_ring_build(s.ptr, n, P, 3);
    assert_non_null(r);
    size_t want = n < 3 ? n : 3;
    assert_int_equal(syn_ring_replication(r), want);
    for (uint32_t p = 0; p < P; p++) {
      const char *set[SYN_RING_MAX_REPLICATION];
      size_t got = replica_ids(r, p, set);
      assert_int_equal(got, want);
      for (size_t i = 0; i < got; i++)
        for (size_t j = i + 1; j < got; j++) assert_string_not_equal(set[i], set[j]);
    }
    syn_ring_free(r);
  }
}

static void test_single_node(void **state) {
  const char *one[] = {"solo"};
  syn_ring *r = syn_ring_build(one, 1, P, 3);
  uint32_t prim, rep;
  assert_int_equal(syn_ring_owned_by(r, "solo", &prim, &rep), 0);
  assert_int_equal(prim, P);
  assert_int_equal(rep, 0);
  assert_int_equal(syn_ring_owned_by(r, "other", &prim, &rep), -1);
  assert_int_equal(syn_ring_index_of(r, "solo"), 0);
  assert_int_equal(syn_ring_index_of(r, "other"), -1);
  syn_ring_free(r);
}

/* Every partition has exactly one primary and R-1 other replicas. */
static void test_owned_by_sums(void **state) {
  ids s;
  make_ids(&s, 0, 5);
  syn_ring *r = syn_ring_build(s.ptr, s.n, P, 3);
  uint32_t prim_total = 0, rep_total = 0;
  for (size_t i = 0; i < s.n; i++) {
    uint32_t prim, rep;
    assert_int_equal(syn_ring_owned_by(r, s.ptr[i], &prim, &rep), 0);
    prim_total += prim;
    rep_total += rep;
  }
  assert_int_equal(prim_total, P);
  assert_int_equal(rep_total, 2 * P);
  syn_ring_free(r);
}

/* Adding one node to n: the new set of each partition is the old set with the new node
 * possibly inserted (and the last old one dropped), in the same relative order; about
 * 1/(n+1) of the primaries move, all to the new node. */
static void check_join(size_t n, uint32_t rf) {
  ids before, after;
  make_ids(&before, 0, n);
  make_ids(&after, 0, n + 1);
  const char *new_id = after.ptr[n];
  syn_ring *a = syn_ring_build(before.ptr, before.n, P, rf);
  syn_ring *b = syn_ring_build(after.ptr, after.n, P, rf);
  size_t moved_primaries = 0, moved_slots = 0;
  for (uint32_t p = 0; p < P; p++) {
    const char *ra[SYN_RING_MAX_REPLICATION], *rb[SYN_RING_MAX_REPLICATION];
    size_t na = replica_ids(a, p, ra), nb = replica_ids(b, p, rb);
    size_t k = 0; /* walks ra in order */
    for (size_t j = 0; j < nb; j++) {
      if (strcmp(rb[j], new_id) == 0) {
        moved_slots++;
        continue;
      }
      assert_true(k < na);
      assert_string_equal(rb[j], ra[k]); /* no partition moves between old nodes */
      k++;
    }
    if (strcmp(ra[0], rb[0]) != 0) {
      assert_string_equal(rb[0], new_id);
      moved_primaries++;
    }
  }
  double share = (double)moved_primaries / P, ideal = 1.0 / (double)(n + 1);
  assert_true(share > ideal * 0.6 && share < ideal * 1.4);
  double slots = (double)moved_slots / (P * syn_ring_replication(b));
  double ideal_slots = (double)syn_ring_replication(b) / (double)(n + 1) /
                       syn_ring_replication(b); /* R/(n+1) of the rows, 1/(n+1) of slots */
  if (n + 1 > rf) assert_true(slots > ideal_slots * 0.6 && slots < ideal_slots * 1.4);
  syn_ring_free(a);
  syn_ring_free(b);
}

static void test_join_moves_little(void **state) {
  for (size_t n = 1; n <= 10; n++) check_join(n, 3);
  check_join(4, 1);
}

/* Removing a node: partitions it did not hold keep their set; those it held keep the
 * other members in order and gain one node. */
static void test_leave_moves_little(void **state) {
  ids all;
  make_ids(&all, 0, 6);
  const char *gone = all.ptr[3];
  const char *rest[5] = {all.ptr[0], all.ptr[1], all.ptr[2], all.ptr[4], all.ptr[5]};
  syn_ring *a = syn_ring_build(all.ptr, all.n, P, 3);
  syn_ring *b = syn_ring_build(rest, 5, P, 3);
  size_t moved = 0;
  for (uint32_t p = 0; p < P; p++) {
    const char *ra[SYN_RING_MAX_REPLICATION], *rb[SYN_RING_MAX_REPLICATION];
    size_t na = replica_ids(a, p, ra), nb = replica_ids(b, p, rb);
    assert_int_equal(na, nb);
    if (!contains(ra, na, gone)) {
      for (size_t k = 0; k < na; k++) assert_string_equal(ra[k], rb[k]);
      continue;
    }
    moved++;
    size_t j = 0;
    for (size_t k = 0; k < na; k++) {
      if (strcmp(ra[k], gone) == 0) continue;
      assert_string_equal(ra[k], rb[j]);
      j++;
    }
    assert_false(contains(ra, na, rb[nb - 1])); /* the newcomer takes the last place */
  }
  double share = (double)moved / P; /* about R/N of the partitions */
  assert_true(share > 0.5 * 3 / 6 && share < 1.5 * 3 / 6);
  syn_ring_free(a);
  syn_ring_free(b);
}

typedef struct spread_case {
  const char *name;
  size_t nodes;
  double max_over_mean; /* bound on max/mean of primaries per node */
} spread_case;

/* Primaries per node are Binomial(P, 1/N): at P = 1024 the standard deviation is 2.6%
 * of the mean at 3 nodes and 9.4% at 10, so max/mean stays well under these bounds. */
static const spread_case spread_cases[] = {
    {"spread_3_nodes", 3, 1.10},
    {"spread_5_nodes", 5, 1.15},
    {"spread_10_nodes", 10, 1.30},
};

static void test_spread(void **state) {
  const spread_case *c = *state;
  ids s;
  make_ids(&s, 0, c->nodes);
  syn_ring *r = syn_ring_build(s.ptr, s.n, P, 3);
  uint32_t max_prim = 0, max_all = 0;
  for (size_t i = 0; i < s.n; i++) {
    uint32_t prim, rep;
    syn_ring_owned_by(r, s.ptr[i], &prim, &rep);
    if (prim > max_prim) max_prim = prim;
    if (prim + rep > max_all) max_all = prim + rep;
  }
  double mean = (double)P / (double)c->nodes;
  double mean_all = (double)P * syn_ring_replication(r) / (double)c->nodes;
  assert_true(max_prim / mean <= c->max_over_mean);
  assert_true(max_all / mean_all <= c->max_over_mean);
  syn_ring_free(r);
}

int main(void) {
  enum { N = sizeof spread_cases / sizeof spread_cases[0] };
  struct CMUnitTest tests[N + 8];
  size_t n = 0;
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_partition_of);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_arguments);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_deterministic_any_order);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_replication_capped);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_single_node);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_owned_by_sums);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_join_moves_little);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_leave_moves_little);
  for (size_t i = 0; i < N; i++)
    tests[n++] =
        (struct CMUnitTest){spread_cases[i].name, test_spread, NULL, NULL, (void *)&spread_cases[i]};
  return _cmocka_run_group_tests("ring", tests, n, NULL, NULL);
}
