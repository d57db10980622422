/* The label -> partition table: against a plain array under random puts, replacements and
 * deletions (the deletion's backward shift is where an open-addressing table goes wrong). */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "index/partition_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { LABELS = 20000, PARTS = 1024 };

static uint64_t next(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static void test_against_reference(void **state) {
  (void)state;
  syn_pmap *m = syn_pmap_new();
  int32_t *ref = malloc((LABELS + 1) * sizeof *ref); /* -1 = absent */
  for (int i = 0; i <= LABELS; i++) ref[i] = -1;
  uint8_t parts[PARTS / 8];
  memset(parts, 0, sizeof parts);
  for (int p = 0; p < PARTS; p += 3) parts[p / 8] |= (uint8_t)(1u << (p % 8));
  uint64_t seed = 42;
  size_t live = 0;
  for (int op = 0; op < 200000; op++) {
    int64_t label = (int64_t)(next(&seed) % LABELS) + 1;
    if (next(&seed) % 3) {
      uint32_t p = (uint32_t)(next(&seed) % PARTS);
      assert_int_equal(syn_pmap_put(m, label, p), 0);
      if (ref[label] < 0) live++;
      ref[label] = (int32_t)p;
    } else {
      syn_pmap_del(m, label);
      if (ref[label] >= 0) live--;
      ref[label] = -1;
    }
  }
  assert_int_equal(syn_pmap_count(m), live);
  syn_pmap_read_begin(m);
  for (int64_t l = 1; l <= LABELS; l++) {
    bool want = ref[l] >= 0 && ref[l] % 3 == 0;
    assert_int_equal(syn_pmap_in(m, l, parts, sizeof parts), want);
  }
  assert_false(syn_pmap_in(m, LABELS + 7, parts, sizeof parts));
  size_t in_set = 0;
  for (int64_t l = 1; l <= LABELS; l++) in_set += ref[l] >= 0 && ref[l] % 3 == 0;
  assert_int_equal(syn_pmap_count_in(m, parts, sizeof parts), in_set);
  syn_pmap_read_end(m);
  /* A partition past the set's end is outside it. */
  assert_int_equal(syn_pmap_put(m, 1, PARTS + 5), 0);
  assert_int_equal(syn_pmap_put(m, 2, 65536), -EINVAL);
  syn_pmap_read_begin(m);
  assert_false(syn_pmap_in(m, 1, parts, sizeof parts));
  syn_pmap_read_end(m);
  assert_int_equal(syn_pmap_put(m, 0, 1), -EINVAL);
  assert_true(syn_pmap_bytes(m) >= live * 16);
  free(ref);
  syn_pmap_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_against_reference)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
