/* Connection ID tests. The known-answer values were computed independently (BLAKE2b-128 of
 * the secret, then SipHash-2-4 over be32(time) || ip, in a separate Python script), so any
 * change to the construction or byte order fails here, not between two router versions. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/connid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET "synapse-test-secret"
#define T0 1700000000u

static const uint8_t ip4[4] = {192, 0, 2, 7};
static const uint8_t ip4_other[4] = {192, 0, 2, 8};
static const uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t ip6_other[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
/* ip4 as its first 4 bytes, and as an IPv4-mapped IPv6 address. */
static const uint8_t ip6_prefix_ip4[16] = {192, 0, 2, 7};
static const uint8_t ip6_mapped_ip4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};

static void test_key_known_answer(void **state) {
  static const uint8_t want[16] = {0x8e, 0x0b, 0x44, 0x7e, 0xc7, 0xa0, 0xa4, 0x32,
                                   0x44, 0x1e, 0xee, 0x4b, 0x88, 0x58, 0x01, 0xb5};
  syn_connid_key key;
  syn_connid_key_init(&key, SECRET);
  assert_memory_equal(key.bytes, want, 16);
}

static void test_id_known_answer(void **state) {
  syn_connid_key key;
  syn_connid_key_init(&key, SECRET);
  assert_int_equal(syn_connid_make(&key, T0, ip4, 4), 0x6553f100155cdc5eULL);
  assert_int_equal(syn_connid_make(&key, T0, ip6, 16), 0x6553f100a35f491eULL);
}

static void test_key_same_secret_same_key(void **state) {
  syn_connid_key a, b, c;
  syn_connid_key_init(&a, "shared");
  syn_connid_key_init(&b, "shared");
  syn_connid_key_init(&c, "shared!");
  assert_memory_equal(a.bytes, b.bytes, 16);
  assert_memory_not_equal(a.bytes, c.bytes, 16);
}

/* An empty secret must not become a fixed, guessable key: each call draws a new one. */
static void test_key_empty_secret_is_random(void **state) {
  syn_connid_key a, b, c;
  syn_connid_key_init(&a, "");
  syn_connid_key_init(&b, "");
  syn_connid_key_init(&c, NULL);
  assert_memory_not_equal(a.bytes, b.bytes, 16);
  assert_memory_not_equal(a.bytes, c.bytes, 16);
  uint64_t id = syn_connid_make(&a, T0, ip4, 4);
  assert_true(syn_connid_check(&a, id, T0, ip4, 4));
  assert_false(syn_connid_check(&b, id, T0, ip4, 4));
}

/* ---- table: an ID made at (make_time, make_ip), checked at (check_time, check_ip) ---- */

enum key_choice { SAME_KEY, OTHER_KEY };

typedef struct check_case {
  const char *name;
  uint32_t make_time;
  const uint8_t *make_ip;
  size_t make_len;
  uint32_t check_time;
  const uint8_t *check_ip;
  size_t check_len;
  enum key_choice key;
  uint64_t xor_id; /* Flips bits of the ID before the check. */
  bool want;
} check_case;

static const check_case check_cases[] = {
    {"valid_same_second", T0, ip4, 4, T0, ip4, 4, SAME_KEY, 0, true},
    {"valid_one_minute", T0, ip4, 4, T0 + 60, ip4, 4, SAME_KEY, 0, true},
    {"valid_at_lifetime", T0, ip4, 4, T0 + SYN_CONNID_LIFETIME, ip4, 4, SAME_KEY, 0, true},
    {"expired_after_lifetime", T0, ip4, 4, T0 + SYN_CONNID_LIFETIME + 1, ip4, 4, SAME_KEY, 0,
     false},
    {"expired_long_ago", T0, ip4, 4, T0 + 86400, ip4, 4, SAME_KEY, 0, false},
    {"future_within_skew", T0, ip4, 4, T0 - SYN_CONNID_SKEW, ip4, 4, SAME_KEY, 0, true},
    {"future_beyond_skew", T0, ip4, 4, T0 - SYN_CONNID_SKEW - 1, ip4, 4, SAME_KEY, 0, false},
    {"future_far", T0, ip4, 4, 0, ip4, 4, SAME_KEY, 0, false},
    {"wrong_ip", T0, ip4, 4, T0, ip4_other, 4, SAME_KEY, 0, false},
    {"wrong_key", T0, ip4, 4, T0, ip4, 4, OTHER_KEY, 0, false},
    {"tampered_mac_bit", T0, ip4, 4, T0, ip4, 4, SAME_KEY, 1, false},
    {"tampered_mac_high_bit", T0, ip4, 4, T0, ip4, 4, SAME_KEY, 0x80000000ULL, false},
    /* Moving the timestamp, e.g. to extend an ID's life, breaks the MAC. */
    {"tampered_time", T0, ip4, 4, T0, ip4, 4, SAME_KEY, 1ULL << 32, false},
    {"ipv6_valid", T0, ip6, 16, T0 + 10, ip6, 16, SAME_KEY, 0, true},
    {"ipv6_wrong_ip", T0, ip6, 16, T0, ip6_other, 16, SAME_KEY, 0, false},
    {"ipv6_expired", T0, ip6, 16, T0 + SYN_CONNID_LIFETIME + 1, ip6, 16, SAME_KEY, 0, false},
    {"ipv4_id_as_ipv6_prefix", T0, ip4, 4, T0, ip6_prefix_ip4, 16, SAME_KEY, 0, false},
    {"ipv4_id_as_mapped_ipv6", T0, ip4, 4, T0, ip6_mapped_ip4, 16, SAME_KEY, 0, false},
    {"ipv6_id_as_ipv4", T0, ip6_prefix_ip4, 16, T0, ip4, 4, SAME_KEY, 0, false},
    {"bad_ip_len_zero", T0, ip4, 4, T0, ip4, 0, SAME_KEY, 0, false},
    {"bad_ip_len_five", T0, ip4, 4, T0, ip6, 5, SAME_KEY, 0, false},
    /* Near 2^32 the bounds must not wrap. */
    {"wrap_valid_near_max", 0xFFFFFFF0u, ip4, 4, 0xFFFFFFFFu, ip4, 4, SAME_KEY, 0, true},
    {"wrap_future_near_max", 0xFFFFFFFFu, ip4, 4, 0xFFFFFFFEu, ip4, 4, SAME_KEY, 0, true},
    {"wrap_old_id_at_max", 0, ip4, 4, 0xFFFFFFFFu, ip4, 4, SAME_KEY, 0, false},
    {"wrap_future_from_zero", 0xFFFFFFFFu, ip4, 4, 0, ip4, 4, SAME_KEY, 0, false},
};

static void test_check(void **state) {
  const check_case *c = *state;
  syn_connid_key key, other;
  syn_connid_key_init(&key, SECRET);
  syn_connid_key_init(&other, "another-secret");
  uint64_t id = syn_connid_make(&key, c->make_time, c->make_ip, c->make_len);
  assert_int_equal(id >> 32, c->make_time);
  const syn_connid_key *k = c->key == SAME_KEY ? &key : &other;
  bool got = syn_connid_check(k, id ^ c->xor_id, c->check_time, c->check_ip, c->check_len);
  assert_int_equal(got, c->want);
}

/* An all-zero or all-one ID (a client that never connected) is not accepted. */
/* The key's sources: a configured secret; else a file generated once in the data directory
 * (0600) and read back by the next start, so the same key comes back; else (no usable
 * directory) a random one. */
static void test_key_setup_sources(void **state) {
  (void)state;
  char dir[] = "/tmp/connid_test.XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/%s", dir, SYN_CONNID_SECRET_FILE);
  syn_connid_key a, b, c;
  assert_int_equal(syn_connid_key_setup(&a, "", dir), SYN_CONNID_GENERATED);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(syn_connid_key_setup(&b, NULL, dir), SYN_CONNID_STORED);
  assert_memory_equal(a.bytes, b.bytes, sizeof a.bytes);
  /* The stored text is itself a valid udp_secret: another router given it agrees. */
  char text[128] = "";
  FILE *f = fopen(path, "r");
  assert_non_null(fgets(text, sizeof text, f));
  fclose(f);
  text[strcspn(text, "\n")] = '\0';
  assert_int_equal(syn_connid_key_setup(&c, text, NULL), SYN_CONNID_CONFIGURED);
  assert_memory_equal(a.bytes, c.bytes, sizeof a.bytes);
  /* A configured secret wins over the file. */
  assert_int_equal(syn_connid_key_setup(&c, "another-secret-of-16+", dir), SYN_CONNID_CONFIGURED);
  assert_memory_not_equal(a.bytes, c.bytes, sizeof a.bytes);
  /* A damaged file is left alone and not used. */
  f = fopen(path, "w");
  fputs("short\n", f);
  fclose(f);
  assert_int_equal(syn_connid_key_setup(&c, "", dir), SYN_CONNID_EPHEMERAL);
  unlink(path);
  rmdir(dir);
  /* No data directory (or one that is gone): random, this process only. */
  assert_int_equal(syn_connid_key_setup(&c, "", dir), SYN_CONNID_EPHEMERAL);
  assert_int_equal(syn_connid_key_setup(&c, "", NULL), SYN_CONNID_EPHEMERAL);
}

static void test_check_garbage_ids(void **state) {
  syn_connid_key key;
  syn_connid_key_init(&key, SECRET);
  assert_false(syn_connid_check(&key, 0, T0, ip4, 4));
  assert_false(syn_connid_check(&key, UINT64_MAX, T0, ip4, 4));
  assert_false(syn_connid_check(&key, 0x41727101980ULL, T0, ip4, 4));
}

int main(void) {
  enum { N = sizeof check_cases / sizeof check_cases[0] };
  struct CMUnitTest tests[N + 8];
  size_t n = 0;
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_key_known_answer);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_id_known_answer);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_key_same_secret_same_key);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_key_empty_secret_is_random);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_check_garbage_ids);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_key_setup_sources);
  for (size_t i = 0; i < N; i++) {
    tests[n++] =
        (struct CMUnitTest){check_cases[i].name, test_check, NULL, NULL, (void *)&check_cases[i]};
  }
  return _cmocka_run_group_tests("connid", tests, n, NULL, NULL);
}
