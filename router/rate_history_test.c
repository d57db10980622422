/* The rate ring: rates from counter deltas over the real interval, a bounded ring that
 * keeps the newest points in order, and no invented or enormous rates. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/rate_history.h"

#include <stdlib.h>

static syn_rate_history *fresh(void) {
  syn_rate_history *h = malloc(sizeof *h);
  assert_non_null(h);
  syn_rate_history_init(h);
  return h;
}

static void sample(syn_rate_history *h, uint64_t t, uint64_t a, uint64_t s, uint64_t q,
                   uint64_t r) {
  const uint64_t totals[SYN_RATE_SERIES] = {a, s, q, r};
  syn_rate_history_sample(h, t, totals);
}

static void test_first_sample_only_primes(void **state) {
  (void)state;
  syn_rate_history *h = fresh();
  syn_rate_point out[4];
  assert_int_equal(syn_rate_history_points(h, out, 4), 0);
  sample(h, 5000, 100, 10, 1, 1);
  assert_int_equal(syn_rate_history_points(h, out, 4), 0);
  free(h);
}

static void test_rates_from_deltas(void **state) {
  (void)state;
  syn_rate_history *h = fresh();
  sample(h, 1000, 0, 0, 0, 0);
  sample(h, 2000, 250, 10, 3, 1);
  sample(h, 3000, 250, 30, 3, 2);
  syn_rate_point out[4];
  assert_int_equal(syn_rate_history_points(h, out, 4), 2);
  assert_int_equal(out[0].t_ms, 2000);
  assert_float_equal(out[0].rate[SYN_RATE_ANNOUNCES], 250.0, 1e-4);
  assert_float_equal(out[0].rate[SYN_RATE_SCRAPES], 10.0, 1e-4);
  assert_float_equal(out[0].rate[SYN_RATE_SEARCHES], 3.0, 1e-4);
  assert_float_equal(out[0].rate[SYN_RATE_REGISTRATIONS], 1.0, 1e-4);
  assert_int_equal(out[1].t_ms, 3000);
  assert_float_equal(out[1].rate[SYN_RATE_ANNOUNCES], 0.0, 1e-4);
  assert_float_equal(out[1].rate[SYN_RATE_SCRAPES], 20.0, 1e-4);
  free(h);
}

/* A late timer gives one point over the whole interval, at the average rate. */
static void test_late_sample_averages(void **state) {
  (void)state;
  syn_rate_history *h = fresh();
  sample(h, 1000, 0, 0, 0, 0);
  sample(h, 5000, 400, 0, 0, 0);
  sample(h, 5250, 450, 0, 0, 0);
  syn_rate_point out[4];
  assert_int_equal(syn_rate_history_points(h, out, 4), 2);
  assert_float_equal(out[0].rate[SYN_RATE_ANNOUNCES], 100.0, 1e-4);
  assert_float_equal(out[1].rate[SYN_RATE_ANNOUNCES], 200.0, 1e-4);
  free(h);
}

/* No time passed (or the clock stepped back): the sample is ignored, nothing divides by 0. */
static void test_same_time_ignored(void **state) {
  (void)state;
  syn_rate_history *h = fresh();
  sample(h, 1000, 0, 0, 0, 0);
  sample(h, 1000, 50, 0, 0, 0);
  sample(h, 900, 60, 0, 0, 0);
  syn_rate_point out[4];
  assert_int_equal(syn_rate_history_points(h, out, 4), 0);
  sample(h, 2000, 70, 0, 0, 0);
  assert_int_equal(syn_rate_history_points(h, out, 4), 1);
  assert_float_equal(out[0].rate[SYN_RATE_ANNOUNCES], 70.0, 1e-4);
  free(h);
}

static void test_counter_backwards_is_zero(void **state) {
  (void)state;
  syn_rate_history *h = fresh();
  sample(h, 1000, 1000, 5, 0, 0);
  sample(h, 2000, 10, 6, 0, 0);
  sample(h, 3000, 30, 6, 0, 0);
  syn_rate_point out[4];
  assert_int_equal(syn_rate_history_points(h, out, 4), 2);
  assert_float_equal(out[0].rate[SYN_RATE_ANNOUNCES], 0.0, 1e-4);
  assert_float_equal(out[0].rate[SYN_RATE_SCRAPES], 1.0, 1e-4);
  assert_float_equal(out[1].rate[SYN_RATE_ANNOUNCES], 20.0, 1e-4);
  free(h);
}

/* Past the capacity the oldest points go; the copy stays oldest first. */
static void test_ring_wraps_keeping_newest(void **state) {
  (void)state;
  syn_rate_history *h = fresh();
  const uint64_t extra = 37;
  for (uint64_t i = 0; i <= SYN_RATE_HISTORY_CAP + extra; i++)
    sample(h, 1000 * (i + 1), i, 0, 0, 0);
  static syn_rate_point out[SYN_RATE_HISTORY_CAP + 10];
  size_t n = syn_rate_history_points(h, out, SYN_RATE_HISTORY_CAP + 10);
  assert_int_equal(n, SYN_RATE_HISTORY_CAP);
  assert_int_equal(out[0].t_ms, 1000 * (extra + 2));
  for (size_t i = 1; i < n; i++) assert_int_equal(out[i].t_ms, out[i - 1].t_ms + 1000);
  assert_int_equal(out[n - 1].t_ms, 1000 * (SYN_RATE_HISTORY_CAP + extra + 1));
  /* A smaller buffer gets the newest points. */
  syn_rate_point last3[3];
  assert_int_equal(syn_rate_history_points(h, last3, 3), 3);
  assert_int_equal(last3[2].t_ms, out[n - 1].t_ms);
  assert_int_equal(last3[0].t_ms, out[n - 3].t_ms);
  free(h);
}

static void test_series_names(void **state) {
  (void)state;
  assert_string_equal(syn_rate_series_name(SYN_RATE_ANNOUNCES), "announces");
  assert_string_equal(syn_rate_series_name(SYN_RATE_REGISTRATIONS), "registrations");
  assert_string_equal(syn_rate_series_name(SYN_RATE_SERIES), "");
  assert_string_equal(syn_rate_series_name(-1), "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_sample_only_primes),
      cmocka_unit_test(test_rates_from_deltas),
      cmocka_unit_test(test_late_sample_averages),
      cmocka_unit_test(test_same_time_ignored),
      cmocka_unit_test(test_counter_backwards_is_zero),
      cmocka_unit_test(test_ring_wraps_keeping_newest),
      cmocka_unit_test(test_series_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
