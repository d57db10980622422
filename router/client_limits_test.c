/* Limits per client address: buckets refill at their rate and cap at their burst, classes
 * are independent, an IPv6 /64 is one client, the rate table stays bounded by evicting,
 * and connection counts are exact. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/client_limits.h"

static const uint8_t ip_a[4] = {192, 0, 2, 1};
static const uint8_t ip_b[4] = {192, 0, 2, 2};

static syn_rate_table *table(uint32_t rate, uint32_t burst, size_t entries) {
  syn_rate_rule rules[SYN_LIMIT_CLASSES] = {{0, 0}};
  for (int c = 0; c < SYN_LIMIT_CLASSES; c++) rules[c] = (syn_rate_rule){rate, burst};
  syn_rate_table *t = syn_rate_table_new(entries, rules);
  assert_non_null(t);
  return t;
}

static int taken(syn_rate_table *t, syn_limit_class c, const uint8_t *ip, size_t len, int tries,
                 uint64_t now) {
  int n = 0;
  for (int i = 0; i < tries; i++) n += syn_rate_take(t, c, ip, len, now);
  return n;
}

static void test_burst_then_refill(void **state) {
  (void)state;
  syn_rate_table *t = table(10, 5, 64);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_a, 4, 20, 1000), 5);
  /* 10 per second: one token every 100 ms, never more than the burst. */
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_a, 4, 20, 1099), 0);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_a, 4, 20, 1100), 1);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_a, 4, 20, 1400), 3);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_a, 4, 20, 100000), 5);
  syn_rate_table_free(t);
}

static void test_clients_and_classes_independent(void **state) {
  (void)state;
  syn_rate_table *t = table(1, 3, 64);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_a, 4, 10, 0), 3);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_b, 4, 10, 0), 3);
  assert_int_equal(taken(t, SYN_LIMIT_SCRAPE, ip_a, 4, 10, 0), 3);
  assert_int_equal(taken(t, SYN_LIMIT_API_WRITE, ip_a, 4, 10, 0), 3);
  syn_rate_table_free(t);
}

static void test_unlimited_class(void **state) {
  (void)state;
  syn_rate_rule rules[SYN_LIMIT_CLASSES] = {{0, 0}, {1, 1}, {1, 1}, {1, 1}};
  syn_rate_table *t = syn_rate_table_new(16, rules);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, ip_a, 4, 1000, 0), 1000);
  assert_int_equal(taken(t, SYN_LIMIT_SCRAPE, ip_a, 4, 10, 0), 1);
  syn_rate_table_free(t);
}

static void test_ipv6_slash64_is_one_client(void **state) {
  (void)state;
  syn_rate_table *t = table(1, 2, 64);
  uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1};
  uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1};
  uint8_t other[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2};
  a[15] = 1;
  b[15] = 0xfe;
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, a, 16, 10, 0), 2);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, b, 16, 10, 0), 0);
  assert_int_equal(taken(t, SYN_LIMIT_ANNOUNCE, other, 16, 10, 0), 2);
  syn_rate_table_free(t);
}

static void test_table_bounded_by_eviction(void **state) {
  (void)state;
  syn_rate_table *t = table(1, 1, 8);
  assert_int_equal(syn_rate_table_entries(t), 8);
  uint8_t ip[4] = {10, 0, 0, 0};
  for (int i = 0; i < 1000; i++) {
    ip[2] = (uint8_t)(i >> 8);
    ip[3] = (uint8_t)i;
    assert_true(syn_rate_take(t, SYN_LIMIT_ANNOUNCE, ip, 4, (uint64_t)i));
  }
  assert_true(syn_rate_table_evictions(t) >= 1000 - 8);
  /* The busy client seen last is still tracked: its next request is refused. */
  assert_false(syn_rate_take(t, SYN_LIMIT_ANNOUNCE, ip, 4, 999));
  syn_rate_table_free(t);
}

static void test_connection_counts(void **state) {
  (void)state;
  syn_conn_table *t = syn_conn_table_new(100);
  assert_non_null(t);
  for (int i = 0; i < 3; i++) assert_true(syn_conn_acquire(t, ip_a, 4, 3));
  assert_false(syn_conn_acquire(t, ip_a, 4, 3));
  assert_true(syn_conn_acquire(t, ip_b, 4, 3));
  assert_int_equal(syn_conn_table_clients(t), 2);
  syn_conn_release(t, ip_a, 4);
  assert_true(syn_conn_acquire(t, ip_a, 4, 3));
  for (int i = 0; i < 3; i++) syn_conn_release(t, ip_a, 4);
  syn_conn_release(t, ip_b, 4);
  assert_int_equal(syn_conn_table_clients(t), 0);
  syn_conn_release(t, ip_b, 4); /* an unknown client: nothing happens */
  assert_false(syn_conn_acquire(t, ip_a, 4, 0));
  syn_conn_table_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_refill),
      cmocka_unit_test(test_clients_and_classes_independent),
      cmocka_unit_test(test_unlimited_class),
      cmocka_unit_test(test_ipv6_slash64_is_one_client),
      cmocka_unit_test(test_table_bounded_by_eviction),
      cmocka_unit_test(test_connection_counts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
