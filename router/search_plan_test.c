/* The search plan: every partition answered once, by its first replica that can; what a
 * node leaves unserved or fails goes to the next replica; nothing is asked twice of one
 * node; a partition whose replicas are all used up is missed. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/search_plan.h"

#include <string.h>

enum { PARTS = 1000, NODES = 4, R = 3 };

/* Replicas of p: R consecutive nodes from p % NODES, minus the dead ones. */
typedef struct ring {
  bool dead[NODES];
} ring;

static size_t replicas(void *ctx, uint32_t p, int *slots, size_t cap) {
  const ring *r = ctx;
  size_t n = 0;
  for (int i = 0; i < R && n < cap; i++) {
    int s = (int)((p + (uint32_t)i) % NODES);
    if (!r->dead[s]) slots[n++] = s;
  }
  return n;
}

static bool bit(const uint8_t *b, uint32_t i) { return b && (b[i / 8] >> (i % 8)) & 1; }

/* How many slots of this round hold partition p. */
static int holders(const syn_search_plan *p, uint32_t part) {
  int n = 0;
  for (size_t i = 0; i < p->round_count; i++) n += bit(p->round[p->round_slots[i]], part);
  return n;
}

static void test_first_round_assigns_each_partition_once(void **state) {
  (void)state;
  ring r = {0};
  syn_search_plan p;
  assert_int_equal(syn_search_plan_init(&p, PARTS), 0);
  assert_int_equal(syn_search_plan_round(&p, replicas, &r), NODES);
  for (uint32_t part = 0; part < PARTS; part++) {
    assert_int_equal(holders(&p, part), 1);
    assert_true(bit(p.round[part % NODES], part)); /* the primary */
  }
  assert_false(syn_search_plan_has_pending(&p));
  assert_int_equal(p.missed, 0);
  syn_search_plan_free(&p);
}

static void test_unserved_and_failed_go_to_next_replica(void **state) {
  (void)state;
  ring r = {0};
  syn_search_plan p;
  assert_int_equal(syn_search_plan_init(&p, PARTS), 0);
  syn_search_plan_round(&p, replicas, &r);
  /* Node 1 fails; node 2 cannot serve partition 2 (it is its primary). */
  syn_search_plan_failed(&p, 1);
  uint8_t un[(PARTS + 7) / 8] = {0};
  un[0] = 1u << 2 | 1u << 1; /* 1 was not asked of node 2: ignored */
  syn_search_plan_unserved(&p, 2, un, sizeof un);
  assert_true(syn_search_plan_has_pending(&p));
  assert_int_equal(syn_search_plan_pending_count(&p), PARTS / NODES + 1);
  syn_search_plan_round(&p, replicas, &r);
  for (uint32_t part = 0; part < PARTS; part++) {
    bool again = part % NODES == 1 || part == 2;
    assert_int_equal(holders(&p, part), again ? 1 : 0);
  }
  assert_true(bit(p.round[2], 5));  /* node 1's partition 5 goes to node 2 */
  assert_true(bit(p.round[3], 2));  /* node 2's partition 2 goes to node 3 */
  assert_false(bit(p.round[2], 2)); /* never asked twice of one node */
  /* Everyone fails from now on: each partition is asked of each replica once, then missed. */
  for (int round = 0; round < 4; round++) {
    for (size_t i = 0; i < p.round_count; i++) syn_search_plan_failed(&p, p.round_slots[i]);
    syn_search_plan_round(&p, replicas, &r);
  }
  assert_false(syn_search_plan_has_pending(&p));
  assert_int_equal(p.round_count, 0);
  assert_int_equal(p.missed, PARTS / NODES + 1);
  syn_search_plan_free(&p);
}

static void test_dead_primary_is_skipped(void **state) {
  (void)state;
  ring r = {.dead = {false, true, false, false}};
  syn_search_plan p;
  assert_int_equal(syn_search_plan_init(&p, 13), 0); /* not a multiple of 8 */
  assert_int_equal(syn_search_plan_round(&p, replicas, &r), NODES - 1);
  for (uint32_t part = 0; part < 13; part++) assert_int_equal(holders(&p, part), 1);
  assert_null(p.round[1]);
  assert_false(bit(p.round[0], 13)); /* no bit past the layout */
  syn_search_plan_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_round_assigns_each_partition_once),
      cmocka_unit_test(test_unserved_and_failed_go_to_next_replica),
      cmocka_unit_test(test_dead_primary_is_skipped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
