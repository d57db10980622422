/* Pure ranking helpers: similarity mappings and rank fusion. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/rank.h"

#include <math.h>
#include <string.h>

static void test_sim_from_cosine(void **state) {
  (void)state;
  static const struct {
    double in, want;
  } cases[] = {{-1.0, 0.0}, {-0.2, 0.0}, {0.0, 0.0}, {0.42, 0.42}, {1.0, 1.0}, {1.0001, 1.0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_float_equal(syn_sim_from_cosine(cases[i].in), cases[i].want, 1e-12);
  assert_float_equal(syn_sim_from_cosine(NAN), 0.0, 0);
}

static void test_sim_from_bm25(void **state) {
  (void)state;
  assert_float_equal(syn_sim_from_bm25(0.0), 0.0, 0);
  assert_float_equal(syn_sim_from_bm25(0.5), 0.0, 0); /* positive bm25 cannot happen: 0 */
  assert_float_equal(syn_sim_from_bm25(-1.0), 0.5, 1e-12);
  assert_float_equal(syn_sim_from_bm25(-3.0), 0.75, 1e-12);
  double prev = 0;
  for (double b = -0.1; b > -100; b *= 1.7) { /* monotonic, inside (0, 1) */
    double s = syn_sim_from_bm25(b);
    assert_true(s > prev && s < 1.0);
    prev = s;
  }
}

static void test_rrf_order(void **state) {
  (void)state;
  const char *vec[] = {"a", "b", "c"};
  const char *kw[] = {"c", "d", "a"};
  syn_rrf_item out[6];
  size_t n = syn_rrf_fuse(vec, 3, kw, 3, 60, out, 6);
  assert_int_equal(n, 4);
  /* a and c both have 1/61 + 1/63 and a best rank of 1: the key breaks the tie. */
  const char *want[] = {"a", "c", "b", "d"};
  for (size_t i = 0; i < 4; i++) assert_string_equal(out[i].key, want[i]);
  assert_float_equal(out[0].score, 1.0 / 61 + 1.0 / 63, 1e-12);
  assert_int_equal(out[0].rank_vector, 1);
  assert_int_equal(out[0].rank_keyword, 3);
  assert_int_equal(out[3].rank_vector, 0);
  assert_int_equal(out[3].rank_keyword, 2);
}

static void test_rrf_both_lists_beat_one(void **state) {
  (void)state;
  /* x is second in both lists; y is first in one list only: x wins. */
  const char *vec[] = {"y", "x"};
  const char *kw[] = {"z", "x"};
  syn_rrf_item out[4];
  size_t n = syn_rrf_fuse(vec, 2, kw, 2, 0 /* default 60 */, out, 4);
  assert_int_equal(n, 3);
  assert_string_equal(out[0].key, "x");
  assert_float_equal(out[0].score, 2.0 / 62, 1e-12);
}

static void test_rrf_duplicates_and_cap(void **state) {
  (void)state;
  const char *vec[] = {"a", "a", "b"}; /* a repeated: counts at rank 1 only */
  syn_rrf_item out[8];
  size_t n = syn_rrf_fuse(vec, 3, NULL, 0, 60, out, 8);
  assert_int_equal(n, 2);
  assert_float_equal(out[0].score, 1.0 / 61, 1e-12);
  assert_int_equal(out[1].rank_vector, 3);
  n = syn_rrf_fuse(vec, 3, vec, 3, 60, out, 1);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].key, "a");
  assert_int_equal(syn_rrf_fuse(NULL, 0, NULL, 0, 60, out, 8), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sim_from_cosine),
      cmocka_unit_test(test_sim_from_bm25),
      cmocka_unit_test(test_rrf_order),
      cmocka_unit_test(test_rrf_both_lists_beat_one),
      cmocka_unit_test(test_rrf_duplicates_and_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
