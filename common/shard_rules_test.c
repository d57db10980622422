/* Shard and search rules: info_hash forms, model-name normalisation, tag, text and
 * dimension rules, with the messages both the router and the index give. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/shard_rules.h"

#include <errno.h>
#include <string.h>

static void test_model_key(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"nomic-ai/nomic-embed-text-v1.5", "nomic-embed-text-v1.5"},
      {"nomic-embed-text-v1.5", "nomic-embed-text-v1.5"},
      {"  Nomic-AI/Nomic-Embed-Text-v1.5 ", "nomic-embed-text-v1.5"},
      {"sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"},
      {"hf.co/org/model", "model"},
      {"nomic-embed-text:latest", "nomic-embed-text"},
      {"nomic-embed-text:v1.5", "nomic-embed-text:v1.5"},
      {"text-embedding-3-small", "text-embedding-3-small"},
  };
  char out[64];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(syn_model_key(cases[i].in, out, sizeof out), 0);
    assert_string_equal(out, cases[i].want);
  }
  static const char *const bad[] = {"", "   ", "org/", "a/b/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(syn_model_key(bad[i], out, sizeof out), -EINVAL);
  assert_int_equal(syn_model_key("abcdef", out, 4), -ENAMETOOLONG);
}

static void test_info_hash(void **state) {
  (void)state;
  char out[65];
  assert_int_equal(syn_info_hash_normalize("0123456789ABCDEFabcdef0123456789abcdef01", out), 0);
  assert_string_equal(out, "0123456789abcdefabcdef0123456789abcdef01");
  char v2[65];
  memset(v2, 'F', 64);
  v2[64] = '\0';
  assert_int_equal(syn_info_hash_normalize(v2, out), 0);
  assert_int_equal(strlen(out), 64);
  static const char *const bad[] = {"", "abc", "0123456789abcdef0123456789abcdef0123456g",
                                    "0123456789abcdef0123456789abcdef012345678",
                                    "0123456789abcdef0123456789abcdef0123456789"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(syn_info_hash_normalize(bad[i], out), -EINVAL);
  assert_int_equal(syn_info_hash_normalize(NULL, out), -EINVAL);
}

static void test_info_hash_parse(void **state) {
  (void)state;
  char hex[65];
  uint8_t key[20];
  const char *v2 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
  assert_int_equal(syn_info_hash_parse(v2, 64, hex, key), 0);
  assert_string_equal(hex, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  assert_int_equal(key[0], 0xab);
  assert_int_equal(key[19], 0x01); /* the first 40 digits: BEP 52 truncation */
  assert_int_equal(syn_info_hash_parse(v2, 63, hex, key), -EINVAL);
  assert_int_equal(syn_info_hash_parse("zz", 2, hex, NULL), -EINVAL);
  assert_int_equal(syn_info_hash_parse(NULL, 40, hex, NULL), -EINVAL);
}

static void test_model_check(void **state) {
  (void)state;
  char err[128];
  static const struct {
    const char *model;
    int rc;
    const char *says;
  } cases[] = {
      {"nomic-embed-text", 0, NULL},
      {"nomic-ai/nomic-embed-text-v1.5", 0, NULL},
      {" ", -EINVAL, "names no model"},
      {"\t\n", -EINVAL, "control character"},
      {"org/", -EINVAL, "names no model"},
      {"", -EINVAL, "must not be empty"},
      {"a\x01", -EINVAL, "control character"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err[0] = 0;
    int rc = syn_model_check("model", cases[i].model, strlen(cases[i].model), err, sizeof err);
    assert_int_equal(rc, cases[i].rc);
    if (cases[i].says) {
      assert_non_null(strstr(err, cases[i].says));
      assert_non_null(strstr(err, "\"model\""));
    }
  }
  char long_name[200];
  memset(long_name, 'm', sizeof long_name);
  assert_int_equal(syn_model_check("model", long_name, 129, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "128 bytes"));
  assert_int_equal(syn_model_check("model", long_name, 128, err, sizeof err), 0);
  assert_int_equal(syn_model_check("model", "a\0b", 3, NULL, 0), -EINVAL);
}

static void test_tag_check(void **state) {
  (void)state;
  char err[128];
  assert_int_equal(syn_tag_check("tags", "react", 5, err, sizeof err), 0);
  assert_int_equal(syn_tag_check("tags", "", 0, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "1 to 64 bytes"));
  assert_int_equal(syn_tag_check("tags", "a,b", 3, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "','"));
  assert_int_equal(syn_tag_check("tags", "a\nb", 3, err, sizeof err), -EINVAL);
  assert_int_equal(syn_tag_check("tags", "a\0b", 3, err, sizeof err), -EINVAL);
  char t[65];
  memset(t, 't', sizeof t);
  assert_int_equal(syn_tag_check("tags", t, 64, err, sizeof err), 0);
  assert_int_equal(syn_tag_check("tags", t, 65, err, sizeof err), -EINVAL);
}

static void test_text_and_dimension(void **state) {
  (void)state;
  char err[128];
  assert_int_equal(syn_text_check("description", NULL, 0, 10, false, err, sizeof err), 0);
  assert_int_equal(syn_text_check("display_name", NULL, 0, 10, true, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "\"display_name\" is missing"));
  assert_int_equal(syn_text_check("display_name", "", 0, 10, true, err, sizeof err), -EINVAL);
  assert_int_equal(syn_text_check("d", "12345678901", 11, 10, false, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "longer than 10 bytes"));
  assert_int_equal(syn_text_check("d", "a\0b", 3, 10, false, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "NUL"));
  assert_int_equal(syn_text_check("d", "line\nline", 9, 10, false, err, sizeof err), 0);
  assert_int_equal(syn_dimension_check("dimension", 1, err, sizeof err), 0);
  assert_int_equal(syn_dimension_check("dimension", SYN_SHARD_MAX_DIM, err, sizeof err), 0);
  assert_int_equal(syn_dimension_check("dimension", 0, err, sizeof err), -EINVAL);
  assert_int_equal(syn_dimension_check("dimension", SYN_SHARD_MAX_DIM + 1, err, sizeof err),
                   -EINVAL);
  assert_non_null(strstr(err, "between 1 and 4096"));
}

/* The bounds of the identity fields at their edges, with the message naming the field. */
static void test_crypto_field_bounds(void **state) {
  (void)state;
  char err[128];
  static char big[SYN_SHARD_MAX_CRYPTO + 2];
  memset(big, 'A', sizeof big - 1);
  assert_int_equal(SYN_SHARD_MAX_CRYPTO, 16384);
  assert_int_equal(
      syn_text_check("signature", big, 16384, SYN_SHARD_MAX_CRYPTO, false, err, sizeof err), 0);
  assert_int_equal(
      syn_text_check("signature", big, 16385, SYN_SHARD_MAX_CRYPTO, false, err, sizeof err),
      -EINVAL);
  assert_string_equal(err, "\"signature\" is longer than 16384 bytes");
  assert_int_equal(syn_text_check("creator_public_key", big, 16385, SYN_SHARD_MAX_CRYPTO, false,
                                  err, sizeof err),
                   -EINVAL);
  assert_string_equal(err, "\"creator_public_key\" is longer than 16384 bytes");
  assert_int_equal(SYN_SHARD_MAX_AGENT_ID, 4096);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model_key),           cmocka_unit_test(test_info_hash),
      cmocka_unit_test(test_info_hash_parse),     cmocka_unit_test(test_model_check),
      cmocka_unit_test(test_tag_check),           cmocka_unit_test(test_text_and_dimension),
      cmocka_unit_test(test_crypto_field_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
