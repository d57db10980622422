/* Bencode writer tests: each case is a short program of writer calls and the exact bytes it
 * must produce. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/bencode.h"

#include <errno.h>
#include <string.h>

enum op_kind { OP_DONE = 0, OP_INT, OP_STR, OP_BYTES, OP_DICT, OP_LIST, OP_END, OP_FAILURE };

typedef struct op {
  enum op_kind kind;
  int64_t value;    /* OP_INT */
  const char *text; /* OP_STR, OP_BYTES, OP_FAILURE */
  size_t len;       /* OP_BYTES */
} op;

/* One initializer per line. */
// clang-format off
#define I(v) \
  { OP_INT, (v), NULL, 0 }
#define S(s) \
  { OP_STR, 0, (s), 0 }
#define B(lit) \
  { OP_BYTES, 0, (lit), sizeof(lit) - 1 }
#define DICT \
  { OP_DICT, 0, NULL, 0 }
#define LIST \
  { OP_LIST, 0, NULL, 0 }
#define END \
  { OP_END, 0, NULL, 0 }
#define FAIL(s) \
  { OP_FAILURE, 0, (s), 0 }
// clang-format on

typedef struct encode_case {
  const char *name;
  op ops[16];
  const char *want;
  size_t want_len;
} encode_case;

#define WANT(lit) (lit), sizeof(lit) - 1

static const encode_case cases[] = {
    {"int_zero", {I(0)}, WANT("i0e")},
    {"int_positive", {I(42)}, WANT("i42e")},
    {"int_negative", {I(-1)}, WANT("i-1e")},
    {"int_max", {I(INT64_MAX)}, WANT("i9223372036854775807e")},
    {"int_min", {I(INT64_MIN)}, WANT("i-9223372036854775808e")},
    {"str_empty", {S("")}, WANT("0:")},
    {"str_plain", {S("spam")}, WANT("4:spam")},
    {"bytes_empty", {{OP_BYTES, 0, NULL, 0}}, WANT("0:")},
    {"bytes_with_nul", {B("a\0b")}, WANT("3:a\0b")},
    {"bytes_all_nul", {B("\0\0\0\0")}, WANT("4:\0\0\0\0")},
    {"bytes_info_hash",
     {B("\x00\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0\x01\x02\x00")},
     WANT("20:\x00\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0\x01\x02\x00")},
    {"bytes_ten_long", {B("0123456789")}, WANT("10:0123456789")},
    {"list_empty", {LIST, END}, WANT("le")},
    {"dict_empty", {DICT, END}, WANT("de")},
    {"list_mixed", {LIST, S("spam"), I(42), I(-7), END}, WANT("l4:spami42ei-7ee")},
    {"dict_nested",
     {DICT, S("a"), DICT, S("b"), I(1), END, S("c"), LIST, LIST, END, END, END},
     WANT("d1:ad1:bi1ee1:clleee")},
    {"announce_reply",
     {DICT, S("complete"), I(5), S("incomplete"), I(0), S("interval"), I(1800), S("peers"),
      B("\x7f\x00\x00\x01\x1a\xe1"), END},
     WANT("d8:completei5e10:incompletei0e8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1"
          "e")},
    {"failure", {FAIL("invalid info_hash")}, WANT("d14:failure reason17:invalid info_hashe")},
    {"failure_empty_reason", {FAIL("")}, WANT("d14:failure reason0:e")},
    {"appends_after_existing", {I(1), FAIL("x"), S("z")}, WANT("i1ed14:failure reason1:xe1:z")},
};

static int run_op(syn_buf *b, const op *o) {
  switch (o->kind) {
    case OP_INT: return syn_bencode_int(b, o->value);
    case OP_STR: return syn_bencode_str(b, o->text);
    case OP_BYTES: return syn_bencode_bytes(b, o->text, o->len);
    case OP_DICT: return syn_bencode_dict_begin(b);
    case OP_LIST: return syn_bencode_list_begin(b);
    case OP_END: return syn_bencode_end(b);
    case OP_FAILURE: return syn_bencode_failure(b, o->text);
    case OP_DONE: break;
  }
  return -EINVAL;
}

static void test_encode_case(void **state) {
  const encode_case *c = *state;
  syn_buf b = SYN_BUF_INIT;
  for (const op *o = c->ops; o->kind != OP_DONE; o++) assert_int_equal(run_op(&b, o), 0);
  assert_int_equal(b.len, c->want_len);
  assert_memory_equal(b.data, c->want, c->want_len);
  syn_buf_free(&b);
}

/* A length whose prefix no longer fits in size_t is refused before anything is written. */
static void test_bytes_length_overflow(void **state) {
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_bencode_str(&b, "ok"), 0);
  assert_int_equal(syn_bencode_bytes(&b, "x", SIZE_MAX), -ENOMEM);
  assert_int_equal(syn_bencode_bytes(&b, "x", SIZE_MAX - 10), -ENOMEM);
  assert_int_equal(b.len, 4);
  assert_memory_equal(b.data, "2:ok", 4);
  syn_buf_free(&b);
}

/* Long strings get a multi-digit prefix and every byte, across buffer growth. */
static void test_long_string(void **state) {
  static char big[5000];
  memset(big, 'q', sizeof big - 1);
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_bencode_str(&b, big), 0);
  assert_int_equal(b.len, 5 + 4999);
  assert_memory_equal(b.data, "4999:", 5);
  assert_memory_equal(b.data + 5, big, 4999);
  syn_buf_free(&b);
}

int main(void) {
  enum { N = sizeof cases / sizeof cases[0] };
  struct CMUnitTest tests[N + 2];
  for (size_t i = 0; i < N; i++) {
    tests[i] = (struct CMUnitTest){cases[i].name, test_encode_case, NULL, NULL, (void *)&cases[i]};
  }
  tests[N] = (struct CMUnitTest)cmocka_unit_test(test_bytes_length_overflow);
  tests[N + 1] = (struct CMUnitTest)cmocka_unit_test(test_long_string);
  return _cmocka_run_group_tests("bencode", tests, N + 2, NULL, NULL);
}
