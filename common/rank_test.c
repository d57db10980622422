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

/* Query-term coverage, in a table: the seed example ("How to use React hooks" against
 * "React Hooks Guide" tagged react, hooks) keeps react, use, hooks as terms. */
static void test_sim_from_coverage(void **state) {
  (void)state;
  enum { N = SYN_TERM_IN_NAME, D = SYN_TERM_IN_TEXT, T = SYN_TERM_IN_TAGS };
  static const struct {
    const char *name;
    uint8_t fields[4];
    size_t n;
    double want;
  } cases[] = {
      {"no terms", {0}, 0, 0.0},
      {"every term in the name", {N, N}, 2, 1.0},
      {"every term in the name or the tags", {N | T, T}, 2, 1.0},
      {"seed example: react, use, hooks", {N | T, 0, N | T}, 3, 2.0 / 3},
      {"description only counts half", {D, D}, 2, 0.5},
      {"name beats description for one term", {N | D}, 1, 1.0},
      {"one of three in the description", {D, 0, 0}, 3, 0.5 / 3},
      {"nothing found", {0, 0, 0, 0}, 4, 0.0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double got = syn_sim_from_coverage(cases[i].fields, cases[i].n);
    if (fabs(got - cases[i].want) > 1e-12)
      fail_msg("%s: %f, want %f", cases[i].name, got, cases[i].want);
  }
  assert_float_equal(syn_sim_from_coverage(NULL, 3), 0.0, 0);
  /* The bounds the contract states: all terms in name/tags >= 0.5 (here 1). */
  uint8_t all[3] = {N, T, N};
  assert_true(syn_sim_from_coverage(all, 3) >= 0.5);
}

static void test_rank_stopword(void **state) {
  (void)state;
  static const struct {
    const char *term;
    bool want;
  } cases[] = {{"how", true},  {"How", true},    {"TO", true},        {"the", true},    {"a", true},
               {"your", true}, {"use", false},   {"react", false},    {"hooks", false}, {"", false},
               {"tot", false}, {"hower", false}, {"whomever", false}, {"guide", false}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (syn_rank_stopword(cases[i].term, strlen(cases[i].term)) != cases[i].want)
      fail_msg("\"%s\": want %d", cases[i].term, cases[i].want);
  assert_false(syn_rank_stopword("to", 0));
  assert_true(syn_rank_stopword("tooth", 2)); /* len bytes only: "to" */
  assert_false(syn_rank_stopword(NULL, 2));
}

/* Feedback vectors: each input normalised, the mean normalised, the spread reported. */
static void test_rank_feedback(void **state) {
  (void)state;
  float out[2];
  double radius;
  const float a[] = {10, 0}, b[] = {0, 0.5f}, zero[] = {0, 0}, same[] = {3, 0};
  const float *two[] = {a, b};
  assert_int_equal(syn_rank_feedback(two, 2, 2, out, &radius), 2);
  /* Lengths do not count: the mean of (1,0) and (0,1), at 45 degrees to both. */
  assert_float_equal(out[0], sqrt(0.5), 1e-6);
  assert_float_equal(out[1], sqrt(0.5), 1e-6);
  assert_float_equal(radius, sqrt(0.5), 1e-6);
  const float *with_zero[] = {a, zero, NULL, same};
  assert_int_equal(syn_rank_feedback(with_zero, 4, 2, out, &radius), 2);
  assert_float_equal(out[0], 1.0, 1e-6);
  assert_float_equal(radius, 1.0, 1e-6);
  const float minus[] = {-1, 0};
  const float *opposite[] = {a, minus}; /* they cancel: no direction */
  assert_int_equal(syn_rank_feedback(opposite, 2, 2, out, &radius), 0);
  const float *none[] = {zero};
  assert_int_equal(syn_rank_feedback(none, 1, 2, out, &radius), 0);
  assert_int_equal(syn_rank_feedback(two, 2, 0, out, &radius), 0);
}

static void test_rrf_order(void **state) {
  (void)state;
  const char *vec[] = {"a", "b", "c"};
  const char *kw[] = {"c", "d", "a"};
  syn_rrf_item out[6];
  size_t n = syn_rrf_fuse(vec, 3, kw, 3, 60, out, 6);
  assert_int_equal(n, 4);
  /* a and c both have 1/61 + 1/63 and a best rank of 1: c, first for the words typed,
   * goes first. */
  const char *want[] = {"c", "a", "d", "b"}; /* d and b likewise: d is in the keyword list */
  for (size_t i = 0; i < 4; i++) assert_string_equal(out[i].key, want[i]);
  assert_float_equal(out[0].score, 1.0 / 61 + 1.0 / 63, 1e-12);
  assert_int_equal(out[1].rank_vector, 1);
  assert_int_equal(out[1].rank_keyword, 3);
  /* Mirror images: equal in score and best rank; the keyword list decides. */
  const char *v2[] = {"q", "p"}, *k2[] = {"p", "q"};
  n = syn_rrf_fuse(v2, 2, k2, 2, 60, out, 6);
  assert_string_equal(out[0].key, "p");
  assert_int_equal(out[2].rank_vector, 0);
  assert_int_equal(out[2].rank_keyword, 2);
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
      cmocka_unit_test(test_sim_from_coverage),
      cmocka_unit_test(test_rank_stopword),
      cmocka_unit_test(test_rank_feedback),
      cmocka_unit_test(test_rrf_order),
      cmocka_unit_test(test_rrf_both_lists_beat_one),
      cmocka_unit_test(test_rrf_duplicates_and_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
