/* URL codec tests: tables of inputs with the exact bytes or error each must give, including
 * malformed escapes, embedded NULs, exact-capacity and overflow cases. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/urlcodec.h"

#include <errno.h>
#include <string.h>

#define LIT(s) (s), sizeof(s) - 1

/* ---- percent_decode ---- */

typedef struct decode_case {
  const char *name;
  const char *in;
  size_t in_len;
  size_t cap;
  long want; /* length, or a negative errno */
  const char *want_bytes;
} decode_case;

static const decode_case decode_cases[] = {
    {"decode_empty", LIT(""), 8, 0, ""},
    {"decode_empty_zero_cap", LIT(""), 0, 0, ""},
    {"decode_plain", LIT("abc"), 8, 3, "abc"},
    {"decode_plus_is_space", LIT("a+b"), 8, 3, "a b"},
    {"decode_escaped_plus", LIT("a%2Bb"), 8, 3, "a+b"},
    {"decode_space", LIT("%20"), 8, 1, " "},
    {"decode_lower_hex", LIT("%2f%ab"), 8, 2, "/\xab"},
    {"decode_upper_hex", LIT("%2F%AB"), 8, 2, "/\xab"},
    {"decode_nul_inside", LIT("a%00b"), 8, 3, "a\0b"},
    {"decode_all_nul", LIT("%00%00%00"), 8, 3, "\0\0\0"},
    {"decode_raw_nul_is_a_byte", LIT("a\0b"), 8, 3, "a\0b"},
    {"decode_high_raw_byte", LIT("\xff"), 8, 1, "\xff"},
    {"decode_info_hash", LIT("%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"), 20, 20,
     "\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a"},
    {"decode_bad_first_digit", LIT("%G1"), 8, -EINVAL, ""},
    {"decode_bad_second_digit", LIT("%1G"), 8, -EINVAL, ""},
    {"decode_bad_after_good", LIT("ab%41%g1"), 8, -EINVAL, ""},
    {"decode_trailing_percent", LIT("abc%"), 8, -EINVAL, ""},
    {"decode_trailing_one_digit", LIT("abc%4"), 8, -EINVAL, ""},
    {"decode_lone_percent", LIT("%"), 8, -EINVAL, ""},
    {"decode_double_percent", LIT("%%41"), 8, -EINVAL, ""},
    {"decode_sign_not_hex", LIT("%-1"), 8, -EINVAL, ""},
    {"decode_space_not_hex", LIT("% 1"), 8, -EINVAL, ""},
    {"decode_nul_not_hex", LIT("%\0001"), 8, -EINVAL, ""},
    /* The length bounds the input: the escape is cut off, not read past. */
    {"decode_escape_cut_by_len", "%41", 2, 8, -EINVAL, ""},
    {"decode_stops_at_len", "abcdef", 3, 8, 3, "abc"},
    {"decode_exact_cap", LIT("abcd"), 4, 4, "abcd"},
    {"decode_exact_cap_escaped", LIT("%41%42"), 2, 2, "AB"},
    {"decode_overflow_by_one", LIT("abcde"), 4, -ENOSPC, ""},
    {"decode_overflow_escaped", LIT("%41%42"), 1, -ENOSPC, ""},
    {"decode_zero_cap", LIT("a"), 0, -ENOSPC, ""},
};

static void test_decode(void **state) {
  const decode_case *c = *state;
  /* Canary bytes after `cap` catch any write past it. */
  uint8_t out[64];
  memset(out, 0xA5, sizeof out);
  long got = syn_percent_decode(c->in, c->in_len, out, c->cap);
  assert_int_equal(got, c->want);
  if (got >= 0) assert_memory_equal(out, c->want_bytes, (size_t)got);
  for (size_t i = c->cap; i < sizeof out; i++) assert_int_equal(out[i], 0xA5);
}

/* ---- percent_encode ---- */

typedef struct encode_case {
  const char *name;
  const char *in;
  size_t in_len;
  const char *want;
} encode_case;

static const encode_case encode_cases[] = {
    {"encode_empty", LIT(""), ""},
    {"encode_unreserved", LIT("AZaz09-._~"), "AZaz09-._~"},
    {"encode_space", LIT("a b"), "a%20b"},
    {"encode_plus", LIT("+"), "%2B"},
    {"encode_nul", LIT("\0"), "%00"},
    {"encode_high", LIT("\x80\xff"), "%80%FF"},
    {"encode_reserved", LIT("/?&=#%:@"), "%2F%3F%26%3D%23%25%3A%40"},
    {"encode_info_hash",
     LIT("\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a"),
     "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"},
};

static void test_encode(void **state) {
  const encode_case *c = *state;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_buf_append_str(&b, "p="), 0);
  assert_int_equal(syn_percent_encode(&b, c->in, c->in_len), 0);
  size_t want_len = strlen(c->want);
  assert_int_equal(b.len, 2 + want_len);
  assert_memory_equal(b.data, "p=", 2);
  assert_memory_equal(b.data + 2, c->want, want_len);
  syn_buf_free(&b);
}

/* Every byte value survives encode then decode, and only unreserved bytes stay literal. */
static void test_encode_decode_all_bytes(void **state) {
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_percent_encode(&b, all, sizeof all), 0);
  assert_int_equal(b.len, 66 + 190 * 3); /* 66 unreserved bytes, 190 escaped. */
  uint8_t back[256];
  assert_int_equal(syn_percent_decode((const char *)b.data, b.len, back, sizeof back), 256);
  assert_memory_equal(back, all, sizeof all);
  syn_buf_free(&b);
}

static void test_encode_too_large(void **state) {
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_percent_encode(&b, "x", SIZE_MAX / 3 + 1), -ENOMEM);
  assert_int_equal(b.len, 0);
  syn_buf_free(&b);
}

/* ---- query_next ---- */

typedef struct pair {
  const char *key;
  size_t key_len;
  const char *value;
  size_t value_len;
} pair;

// clang-format off
#define P(k, v) {LIT(k), LIT(v)}
// clang-format on

typedef struct query_case {
  const char *name;
  const char *query;
  size_t query_len;
  size_t n_pairs;
  pair pairs[4];
} query_case;

static const query_case query_cases[] = {
    {"query_empty", LIT(""), 0, {{0}}},
    {"query_one", LIT("a=1"), 1, {P("a", "1")}},
    {"query_two_amp", LIT("a=1&b=2"), 2, {P("a", "1"), P("b", "2")}},
    {"query_two_semicolon", LIT("a=1;bb=22"), 2, {P("a", "1"), P("bb", "22")}},
    {"query_skips_empty", LIT("&&a=1&;&b=2&&"), 2, {P("a", "1"), P("b", "2")}},
    {"query_only_separators", LIT("&;&"), 0, {{0}}},
    {"query_no_equals", LIT("flag"), 1, {P("flag", "")}},
    {"query_no_equals_then_pair", LIT("flag&x="), 2, {P("flag", ""), P("x", "")}},
    {"query_empty_key", LIT("=v"), 1, {P("", "v")}},
    {"query_second_equals_in_value", LIT("a=b=c"), 1, {P("a", "b=c")}},
    {"query_still_encoded",
     LIT("info_hash=%12%00&info_hash=abc"),
     2,
     {P("info_hash", "%12%00"), P("info_hash", "abc")}},
    {"query_raw_nul_in_value", LIT("a=1\0b&c"), 2, {P("a", "1\0b"), P("c", "")}},
    {"query_end_bounds_scan", "a=1&b=2", 3, 1, {P("a", "1")}},
    {"query_end_cuts_value", "key=value", 6, 1, {P("key", "va")}},
};

static void test_query(void **state) {
  const query_case *c = *state;
  const char *cursor = c->query;
  const char *end = c->query + c->query_len;
  syn_span key, value;
  for (size_t i = 0; i < c->n_pairs; i++) {
    assert_true(syn_query_next(&cursor, end, &key, &value));
    assert_int_equal(key.len, c->pairs[i].key_len);
    assert_memory_equal(key.ptr, c->pairs[i].key, key.len);
    assert_int_equal(value.len, c->pairs[i].value_len);
    assert_memory_equal(value.ptr, c->pairs[i].value, value.len);
    assert_true(value.ptr + value.len <= end);
  }
  assert_false(syn_query_next(&cursor, end, &key, &value));
  assert_ptr_equal(cursor, end);
  assert_false(syn_query_next(&cursor, end, &key, &value)); /* Stays finished. */
}

/* ---- hex ---- */

static void test_hex_encode(void **state) {
  static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  char out[2 * sizeof in + 2];
  memset(out, 'Z', sizeof out);
  syn_hex_encode(in, sizeof in, out);
  assert_memory_equal(out, "00017f80abff", 13); /* Includes the NUL. */
  assert_int_equal(out[13], 'Z');
  syn_hex_encode(in, 0, out);
  assert_int_equal(out[0], '\0');
}

typedef struct hex_case {
  const char *name;
  const char *hex;
  size_t hex_len;
  size_t len;
  int want;
  const char *want_bytes;
} hex_case;

static const hex_case hex_cases[] = {
    {"hex_lower", LIT("00017f80abff"), 6, 0, "\x00\x01\x7f\x80\xab\xff"},
    {"hex_upper", LIT("00017F80ABFF"), 6, 0, "\x00\x01\x7f\x80\xab\xff"},
    {"hex_mixed", LIT("aBcD"), 2, 0, "\xab\xcd"},
    {"hex_empty", LIT(""), 0, 0, ""},
    {"hex_info_hash", LIT("123456789abcdef123456789abcdef123456789a"), 20, 0,
     "\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a"},
    {"hex_odd_length", LIT("abc"), 1, -EINVAL, ""},
    {"hex_too_short", LIT("ab"), 2, -EINVAL, ""},
    {"hex_too_long", LIT("abcdef"), 2, -EINVAL, ""},
    {"hex_bad_char_g", LIT("0g"), 1, -EINVAL, ""},
    {"hex_bad_char_space", LIT(" 0"), 1, -EINVAL, ""},
    {"hex_bad_char_nul", LIT("0\0"), 1, -EINVAL, ""},
    {"hex_bad_char_prefix", LIT("0x"), 1, -EINVAL, ""},
    {"hex_huge_len", LIT("00"), SIZE_MAX / 2 + 1, -EINVAL, ""},
};

static void test_hex_decode(void **state) {
  const hex_case *c = *state;
  uint8_t out[32];
  int rc = syn_hex_decode(c->hex, c->hex_len, out, c->len);
  assert_int_equal(rc, c->want);
  if (rc == 0) assert_memory_equal(out, c->want_bytes, c->len);
}

/* ---- runner: one named cmocka test per table row ---- */

#define ADD_TABLE(tests, n, table, fn)                               \
  for (size_t i_ = 0; i_ < sizeof(table) / sizeof((table)[0]); i_++) \
    (tests)[(n)++] = (struct CMUnitTest) {                           \
      (table)[i_].name, (fn), NULL, NULL, (void *)&(table)[i_]       \
    }

int main(void) {
  struct CMUnitTest tests[128];
  size_t n = 0;
  ADD_TABLE(tests, n, decode_cases, test_decode);
  ADD_TABLE(tests, n, encode_cases, test_encode);
  ADD_TABLE(tests, n, query_cases, test_query);
  ADD_TABLE(tests, n, hex_cases, test_hex_decode);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_encode_decode_all_bytes);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_encode_too_large);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_hex_encode);
  return _cmocka_run_group_tests("urlcodec", tests, n, NULL, NULL);
}
