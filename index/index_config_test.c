/* Index configuration: defaults, type names, validation. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "index/index_config.h"

#include <errno.h>
#include <string.h>

static void test_config(void **state) {
  (void)state;
  syn_index_config cfg;
  syn_index_config_defaults(&cfg);
  char err[128];
  assert_int_equal(syn_index_config_validate(&cfg, err, sizeof err), 0);
  assert_int_equal(cfg.type, SYN_INDEX_AUTO);
  for (int t = 0; t < SYN_INDEX_TYPE_COUNT; t++) {
    syn_index_type back;
    assert_int_equal(syn_index_type_parse(syn_index_type_name((syn_index_type)t), &back), 0);
    assert_int_equal(back, t);
  }
  syn_index_type t;
  assert_int_equal(syn_index_type_parse("HNSW_SQ8", &t), 0);
  assert_int_equal(t, SYN_INDEX_HNSW_SQ8);
  assert_int_equal(syn_index_type_parse("annoy", &t), -EINVAL);
  cfg.growth = 1.0;
  assert_int_equal(syn_index_config_validate(&cfg, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "growth"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
