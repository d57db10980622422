/* JSON API validation and output shapes (api_json.h): tables of request bodies with the
 * status and the words of the message each must give, the fields a valid body fills,
 * info_hash parsing, the nesting-depth pre-check, exact magnet links, and the shard JSON
 * object. One named cmocka test per table row. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/api_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H40 "0123456789abcdef0123456789ABCDEF01234567"
#define H40_LOWER "0123456789abcdef0123456789abcdef01234567"
#define H64 "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define H64_LOWER "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define BASE "\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4"
#define EMB "\"embedding\":[0.5,1,-2,3e-3]"

/* A body is `fmt`, with its one %s (if any) replaced by `fill` repeated `times` times. */
static char *make_body(const char *fmt, const char *fill, size_t times, size_t *len) {
  size_t flen = fill ? strlen(fill) : 0;
  char *rep = malloc(flen * times + 1);
  assert_non_null(rep);
  for (size_t i = 0; i < times; i++) memcpy(rep + i * flen, fill, flen);
  rep[flen * times] = 0;
  size_t cap = strlen(fmt) + flen * times + 1;
  char *body = malloc(cap);
  assert_non_null(body);
  if (strstr(fmt, "%s")) snprintf(body, cap, fmt, rep);
  else snprintf(body, cap, "%s", fmt);
  free(rep);
  *len = strlen(body);
  return body;
}

/* ---- syn_api_parse_register ---- */

typedef struct parse_case {
  const char *name;
  const char *fmt;
  const char *fill;
  size_t times;
  int want;              /* 0 or the HTTP status */
  const char *want_text; /* substring of the message when want != 0 */
  bool need_embedding;   /* search cases only */
} parse_case;

static const parse_case register_cases[] = {
    /* accepted */
    {"reg_ok_minimal_no_embedding", "{" BASE "}", NULL, 0, 0, NULL, false},
    {"reg_ok_with_embedding", "{" BASE "," EMB "}", NULL, 0, 0, NULL, false},
    {"reg_ok_aliases",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"embedding_model\":\"m\","
     "\"dimension_size\":4," EMB "}",
     NULL, 0, 0, NULL, false},
    {"reg_ok_v2_hash",
     "{\"info_hash\":\"" H64 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":1}", NULL, 0,
     0, NULL, false},
    {"reg_ok_nulls_are_absent",
     "{" BASE ",\"description\":null,\"tags\":null,\"metadata\":null,\"embedding\":null,"
     "\"file_size\":null,\"signature\":null}",
     NULL, 0, 0, NULL, false},
    {"reg_ok_dimension_4096", "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\","
     "\"dimension\":4096}", NULL, 0, 0, NULL, false},
    {"reg_ok_64_tags", "{" BASE ",\"tags\":[%s\"z\"]}", "\"t\",", 63, 0, NULL, false},
    {"reg_ok_tag_64_bytes", "{" BASE ",\"tags\":[\"%s\"]}", "x", 64, 0, NULL, false},
    {"reg_ok_depth_16", "(nested_metadata_body)", NULL, 0, 0, NULL, false},
    {"reg_ok_unknown_fields_ignored", "{" BASE ",\"color\":\"blue\"}", NULL, 0, 0, NULL, false},
    /* body */
    {"reg_empty_body", "", NULL, 0, 400, "empty", false},
    {"reg_not_json", "hello", NULL, 0, 400, "invalid JSON", false},
    {"reg_truncated", "{\"info_hash\":\"0123", NULL, 0, 400, "invalid JSON", false},
    {"reg_trailing_garbage", "{" BASE "} x", NULL, 0, 400, "invalid JSON", false},
    {"reg_array_body", "[{" BASE "}]", NULL, 0, 400, "JSON object", false},
    {"reg_string_body", "\"x\"", NULL, 0, 400, "JSON", false},
    {"reg_duplicate_key", "{" BASE ",\"model\":\"m2\"}", NULL, 0, 400, "invalid JSON", false},
    {"reg_escaped_nul", "{" BASE ",\"description\":\"a\\u0000b\"}", NULL, 0, 400, "invalid JSON",
     false},
    {"reg_depth_100", "%s", "[", 100, 400, "nested deeper than 16", false},
    {"reg_depth_17_in_metadata", "(nested_metadata_body)", NULL, 0, 400, "nested deeper", false},
    {"reg_non_finite_literal", "{" BASE ",\"embedding\":[1e999,1,1,1]}", NULL, 0, 400,
     "invalid JSON", false},
    /* info_hash */
    {"reg_missing_info_hash", "{\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}", NULL, 0,
     400, "missing field \"info_hash\"", false},
    {"reg_info_hash_number", "{\"info_hash\":12,\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}",
     NULL, 0, 400, "\"info_hash\" must be a string", false},
    {"reg_info_hash_empty", "{\"info_hash\":\"\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}",
     NULL, 0, 400, "info_hash", false},
    {"reg_info_hash_39", "{\"info_hash\":\"%s\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}",
     "a", 39, 400, "\"info_hash\" must be 40 or 64 hexadecimal", false},
    {"reg_info_hash_41", "{\"info_hash\":\"%s\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}",
     "a", 41, 400, "\"info_hash\" must be 40 or 64 hexadecimal", false},
    {"reg_info_hash_63", "{\"info_hash\":\"%s\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}",
     "a", 63, 400, "\"info_hash\" must be 40 or 64 hexadecimal", false},
    {"reg_info_hash_65", "{\"info_hash\":\"%s\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}",
     "a", 65, 400, "info_hash", false},
    {"reg_info_hash_not_hex", "{\"info_hash\":\"%s\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4}",
     "g", 40, 400, "hexadecimal", false},
    /* strings */
    {"reg_missing_model", "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"dimension\":4}", NULL, 0,
     400, "missing field \"model\" (or \"embedding_model\")", false},
    {"reg_model_empty", "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"\",\"dimension\":4}",
     NULL, 0, 400, "\"model\" must not be empty", false},
    {"reg_embedding_model_number",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"embedding_model\":7,\"dimension\":4}", NULL, 0,
     400, "\"embedding_model\" must be a string", false},
    {"reg_model_too_long",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"%s\",\"dimension\":4}", "m", 129, 400,
     "\"model\" is longer than 128", false},
    {"reg_model_blank", "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"  \",\"dimension\":4}",
     NULL, 0, 400, "\"model\" names no model", false},
    {"reg_missing_display_name", "{\"info_hash\":\"" H40 "\",\"model\":\"m\",\"dimension\":4}", NULL, 0,
     400, "missing field \"display_name\"", false},
    {"reg_display_name_number",
     "{\"info_hash\":\"" H40 "\",\"display_name\":[],\"model\":\"m\",\"dimension\":4}", NULL, 0, 400,
     "\"display_name\" must be a string", false},
    {"reg_display_name_too_long",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"%s\",\"model\":\"m\",\"dimension\":4}", "x", 513, 400,
     "\"display_name\" is longer than 512", false},
    {"reg_description_number", "{" BASE ",\"description\":1}", NULL, 0, 400,
     "\"description\" must be a string", false},
    {"reg_description_too_long", "{" BASE ",\"description\":\"%s\"}", "d", 16385, 400,
     "\"description\" is longer than 16384", false},
    /* Post-quantum identities: an ML-DSA-87 signature is 6,172 base64 characters, its
     * public key about 4,900; each field takes up to 16 KiB, and the error names it. */
    {"reg_ok_signature_16384", "{" BASE ",\"signature\":\"%s\"}", "s", 16384, 0, NULL, false},
    {"reg_ok_creator_key_16384", "{" BASE ",\"creator_public_key\":\"%s\"}", "k", 16384, 0, NULL,
     false},
    {"reg_signature_16385", "{" BASE ",\"signature\":\"%s\"}", "s", 16385, 400,
     "\"signature\" is longer than 16384 bytes", false},
    {"reg_creator_key_16385", "{" BASE ",\"creator_public_key\":\"%s\"}", "k", 16385, 400,
     "\"creator_public_key\" is longer than 16384 bytes", false},
    {"reg_ok_creator_agent_4096", "{" BASE ",\"creator_agent_id\":\"%s\"}", "a", 4096, 0, NULL,
     false},
    {"reg_creator_agent_4097", "{" BASE ",\"creator_agent_id\":\"%s\"}", "a", 4097, 400,
     "\"creator_agent_id\" is longer than 4096 bytes", false},
    {"reg_signature_bool", "{" BASE ",\"signature\":true}", NULL, 0, 400,
     "\"signature\" must be a string", false},
    {"reg_creator_agent_object", "{" BASE ",\"creator_agent_id\":{}}", NULL, 0, 400,
     "\"creator_agent_id\" must be a string", false},
    /* dimension */
    {"reg_missing_dimension", "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\"}", NULL,
     0, 400, "missing field \"dimension\" (or \"dimension_size\")", false},
    {"reg_dimension_0", "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":0}",
     NULL, 0, 400, "\"dimension\" must be between 1 and 4096", false},
    {"reg_dimension_4097",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4097}", NULL, 0,
     400, "\"dimension\" must be between", false},
    {"reg_dimension_negative",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":-4}", NULL, 0, 400,
     "\"dimension\" must be between", false},
    {"reg_dimension_string",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":\"4\"}", NULL, 0, 400,
     "\"dimension\" must be an integer", false},
    {"reg_dimension_real",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension\":4.5}", NULL, 0, 400,
     "\"dimension\" must be an integer", false},
    {"reg_dimension_size_string",
     "{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":\"m\",\"dimension_size\":\"4\"}", NULL,
     0, 400, "\"dimension_size\" must be an integer", false},
    /* embedding */
    {"reg_embedding_short", "{" BASE ",\"embedding\":[1,2,3]}", NULL, 0, 400,
     "\"embedding\" has 3 values but the dimension is 4", false},
    {"reg_embedding_long", "{" BASE ",\"embedding\":[1,2,3,4,5]}", NULL, 0, 400,
     "\"embedding\" has 5 values but the dimension is 4", false},
    {"reg_embedding_empty", "{" BASE ",\"embedding\":[]}", NULL, 0, 400, "1 to 4096 values", false},
    {"reg_embedding_not_array", "{" BASE ",\"embedding\":\"1,2,3,4\"}", NULL, 0, 400,
     "\"embedding\" must be an array of numbers", false},
    {"reg_embedding_string_item", "{" BASE ",\"embedding\":[1,\"2\",3,4]}", NULL, 0, 400,
     "\"embedding\"[1] is not a finite number", false},
    {"reg_embedding_null_item", "{" BASE ",\"embedding\":[1,2,3,null]}", NULL, 0, 400,
     "\"embedding\"[3] is not a finite number", false},
    {"reg_embedding_float_overflow", "{" BASE ",\"embedding\":[1,2,1e39,4]}", NULL, 0, 400,
     "\"embedding\"[2] is not a finite number", false},
    {"reg_embedding_nested", "{" BASE ",\"embedding\":[[1,2,3,4],1,1,1]}", NULL, 0, 400,
     "\"embedding\"[0]", false},
    /* tags, metadata, numbers */
    {"reg_tags_string", "{" BASE ",\"tags\":\"a,b\"}", NULL, 0, 400,
     "\"tags\" must be an array of strings", false},
    {"reg_tags_number_item", "{" BASE ",\"tags\":[\"a\",2]}", NULL, 0, 400,
     "\"tags\" must be an array of strings", false},
    {"reg_tags_65", "{" BASE ",\"tags\":[%s\"z\"]}", "\"t\",", 64, 400,
     "\"tags\" has more than 64 entries", false},
    {"reg_tag_65_bytes", "{" BASE ",\"tags\":[\"%s\"]}", "x", 65, 400, "each tag must be 1 to 64 bytes",
     false},
    {"reg_tag_empty", "{" BASE ",\"tags\":[\"\"]}", NULL, 0, 400, "each tag must be 1 to 64 bytes", false},
    {"reg_tag_comma", "{" BASE ",\"tags\":[\"a,b\"]}", NULL, 0, 400, "','", false},
    {"reg_metadata_array", "{" BASE ",\"metadata\":[1]}", NULL, 0, 400, "\"metadata\" must be an object",
     false},
    {"reg_metadata_string", "{" BASE ",\"metadata\":\"{}\"}", NULL, 0, 400,
     "\"metadata\" must be an object", false},
    {"reg_metadata_too_large", "{" BASE ",\"metadata\":{\"k\":\"%s\"}}", "v", 65536, 413,
     "\"metadata\" is larger than 65536", false},
    {"reg_file_size_negative", "{" BASE ",\"file_size\":-1}", NULL, 0, 400, "\"file_size\" must be between",
     false},
    {"reg_file_size_string", "{" BASE ",\"file_size\":\"1\"}", NULL, 0, 400,
     "\"file_size\" must be an integer", false},
    {"reg_entry_count_real", "{" BASE ",\"entry_count\":1.5}", NULL, 0, 400,
     "\"entry_count\" must be an integer", false},
};

/* 16 levels in all (the document plus 15 in metadata) pass; 17 do not. */
static char *nested_metadata_body(int metadata_levels, size_t *len) {
  char open[256] = "", close[64] = "";
  for (int i = 0; i < metadata_levels - 1; i++) strcat(open, "{\"a\":"), strcat(close, "}");
  char fmt[512];
  snprintf(fmt, sizeof fmt, "{" BASE ",\"metadata\":%s{}%s}", open, close);
  return make_body(fmt, NULL, 0, len);
}

static char *case_body(const parse_case *c, size_t *len) {
  if (!strcmp(c->name, "reg_ok_depth_16")) return nested_metadata_body(15, len);
  if (!strcmp(c->name, "reg_depth_17_in_metadata")) return nested_metadata_body(16, len);
  return make_body(c->fmt, c->fill, c->times, len);
}

static void check_status(const parse_case *c, int st, const char *err) {
  if (st != c->want) fail_msg("%s: status %d (want %d), message \"%s\"", c->name, st, c->want, err);
  if (c->want) {
    assert_true(err[0] != 0);
    if (!strstr(err, c->want_text))
      fail_msg("%s: message \"%s\" lacks \"%s\"", c->name, err, c->want_text);
  }
}

static void test_register_case(void **state) {
  const parse_case *c = *state;
  size_t len;
  char *body = case_body(c, &len);
  syn_register_input in;
  char err[256] = "";
  int st = syn_api_parse_register(body, len, &in, err, sizeof err);
  check_status(c, st, err);
  syn_register_input_free(&in);
  free(body);
}

/* Each register case's body as one shard of a batch: the same status and the same
 * message as /api/register gives (one rule, in one place). Bodies that are not a JSON
 * object are the envelope's concern and skipped. */
static void test_register_items_as_single(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof register_cases / sizeof register_cases[0]; i++) {
    const parse_case *c = &register_cases[i];
    size_t len;
    char *body = case_body(c, &len);
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (doc && json_is_object(doc) && syn_json_depth_ok(body, len, SYN_API_MAX_DEPTH)) {
      syn_register_input a, b;
      char ea[256] = "", eb[256] = "";
      int sa = syn_api_parse_register(body, len, &a, ea, sizeof ea);
      int sb = syn_api_parse_register_item(doc, &b, eb, sizeof eb);
      if (sa != sb || strcmp(ea, eb) != 0)
        fail_msg("%s: single %d \"%s\", batch item %d \"%s\"", c->name, sa, ea, sb, eb);
      if (sa == 0) assert_string_equal(a.hash_hex, b.hash_hex);
      syn_register_input_free(&a);
      syn_register_input_free(&b);
    }
    json_decref(doc);
    free(body);
  }
}

/* ---- syn_api_parse_register_batch ---- */

typedef struct batch_case {
  const char *name;
  const char *fmt; /* %s: `times` copies of fill */
  const char *fill;
  size_t times;
  int want;
  const char *want_text;
  size_t want_n;
} batch_case;

static const batch_case batch_cases[] = {
    {"batch_one", "{\"shards\":[{}]}", NULL, 0, 0, NULL, 1},
    {"batch_1000", "{\"shards\":[%s{}]}", "{},", 999, 0, NULL, 1000},
    {"batch_1001", "{\"shards\":[%s{}]}", "{},", 1000, 413, "at most 1000 a request", 0},
    {"batch_empty_list", "{\"shards\":[]}", NULL, 0, 400, "\"shards\" is empty", 0},
    {"batch_no_shards", "{\"items\":[{}]}", NULL, 0, 400, "missing field \"shards\"", 0},
    {"batch_null_shards", "{\"shards\":null}", NULL, 0, 400, "missing field \"shards\"", 0},
    {"batch_shards_object", "{\"shards\":{}}", NULL, 0, 400, "\"shards\" must be an array", 0},
    {"batch_array_body", "[{}]", NULL, 0, 400, "the body must be a JSON object", 0},
    {"batch_empty_body", "", NULL, 0, 400, "request body is empty", 0},
    {"batch_bad_json", "{\"shards\":[", NULL, 0, 400, "invalid JSON", 0},
    {"batch_too_deep", "{\"shards\":[%s]}", "[", 20, 400, "nested deeper than 16", 0},
};

static void test_batch_case(void **state) {
  const batch_case *c = *state;
  size_t len;
  char *body = make_body(c->fmt, c->fill, c->times, &len);
  json_t *doc = (json_t *)1, *shards = (json_t *)1;
  char err[256] = "";
  int st = syn_api_parse_register_batch(body, len, &doc, &shards, err, sizeof err);
  if (st != c->want) fail_msg("%s: status %d (want %d), message \"%s\"", c->name, st, c->want, err);
  if (c->want && !strstr(err, c->want_text))
    fail_msg("%s: message \"%s\" lacks \"%s\"", c->name, err, c->want_text);
  if (c->want)
    assert_null(shards);
  else
    assert_int_equal(json_array_size(shards), c->want_n);
  json_decref(doc);
  free(body);
}

/* A shard of a batch that is not an object is refused on its own. */
static void test_batch_item_not_object(void **state) {
  (void)state;
  json_t *item = json_integer(5);
  syn_register_input in;
  char err[256] = "";
  assert_int_equal(syn_api_parse_register_item(item, &in, err, sizeof err), 400);
  assert_string_equal(err, "the shard must be a JSON object");
  syn_register_input_free(&in);
  json_decref(item);
}

/* ---- syn_api_parse_search ---- */

static const parse_case search_cases[] = {
    /* accepted */
    {"search_emb_ok_minimal", "{\"embedding\":[1,2]}", NULL, 0, 0, NULL, true},
    {"search_emb_ok_full",
     "{\"embedding\":[1,2],\"limit\":1000,\"min_similarity\":1,\"filters\":{\"model\":\"m\","
     "\"tags\":[\"a\",\"b\"]}}",
     NULL, 0, 0, NULL, true},
    {"search_emb_ok_4096", "{\"embedding\":[%s1]}", "0,", 4095, 0, NULL, true},
    {"search_text_ok", "{\"query\":\"kubernetes deployment\"}", NULL, 0, 0, NULL, false},
    {"search_text_ok_1024", "{\"query\":\"%s\"}", "q", 1024, 0, NULL, false},
    {"search_text_ok_null_filters", "{\"query\":\"x\",\"filters\":null,\"limit\":null}", NULL, 0, 0,
     NULL, false},
    /* body */
    {"search_empty_body", "", NULL, 0, 400, "empty", true},
    {"search_not_json", "{embedding:[1]}", NULL, 0, 400, "invalid JSON", true},
    {"search_array_body", "[1,2]", NULL, 0, 400, "JSON object", true},
    {"search_depth_17", "%s", "{\"a\":", 17, 400, "nested deeper", false},
    /* embedding */
    {"search_emb_missing", "{\"limit\":3}", NULL, 0, 400, "missing field \"embedding\"", true},
    {"search_emb_null", "{\"embedding\":null}", NULL, 0, 400, "missing field \"embedding\"", true},
    {"search_emb_object", "{\"embedding\":{\"0\":1}}", NULL, 0, 400, "must be an array of numbers", true},
    {"search_emb_empty", "{\"embedding\":[]}", NULL, 0, 400, "1 to 4096 values", true},
    {"search_emb_4097", "{\"embedding\":[%s1]}", "0,", 4096, 400, "1 to 4096 values", true},
    {"search_emb_bool", "{\"embedding\":[1,true]}", NULL, 0, 400, "\"embedding\"[1] is not a finite",
     true},
    {"search_emb_overflow", "{\"embedding\":[-1e300]}", NULL, 0, 400, "\"embedding\"[0] is not a finite",
     true},
    /* query */
    {"search_query_missing", "{\"limit\":3}", NULL, 0, 400, "missing field \"query\"", false},
    {"search_query_number", "{\"query\":5}", NULL, 0, 400, "\"query\" must be a string", false},
    {"search_query_empty", "{\"query\":\"\"}", NULL, 0, 400, "\"query\" must not be empty", false},
    {"search_query_blank", "{\"query\":\" \\t\\n\"}", NULL, 0, 400, "\"query\" must contain a word",
     false},
    {"search_query_1025", "{\"query\":\"%s\"}", "q", 1025, 400, "\"query\" is longer than 1024", false},
    /* limit, min_similarity */
    {"search_limit_0", "{\"embedding\":[1],\"limit\":0}", NULL, 0, 400,
     "\"limit\" must be between 1 and 1000", true},
    {"search_limit_1001", "{\"embedding\":[1],\"limit\":1001}", NULL, 0, 400, "\"limit\" must be between",
     true},
    {"search_limit_negative", "{\"query\":\"x\",\"limit\":-1}", NULL, 0, 400, "\"limit\" must be between",
     false},
    {"search_limit_string", "{\"embedding\":[1],\"limit\":\"10\"}", NULL, 0, 400,
     "\"limit\" must be an integer", true},
    {"search_limit_real", "{\"query\":\"x\",\"limit\":2.5}", NULL, 0, 400, "\"limit\" must be an integer",
     false},
    {"search_min_sim_2", "{\"embedding\":[1],\"min_similarity\":2}", NULL, 0, 400,
     "\"min_similarity\" must be between 0 and 1", true},
    {"search_min_sim_negative", "{\"embedding\":[1],\"min_similarity\":-0.01}", NULL, 0, 400,
     "\"min_similarity\" must be between 0 and 1", true},
    {"search_min_sim_string", "{\"embedding\":[1],\"min_similarity\":\"0.5\"}", NULL, 0, 400,
     "\"min_similarity\" must be a number", true},
    /* filters */
    {"search_filters_array", "{\"embedding\":[1],\"filters\":[]}", NULL, 0, 400,
     "\"filters\" must be an object", true},
    {"search_filter_model_number", "{\"query\":\"x\",\"filters\":{\"model\":1}}", NULL, 0, 400,
     "\"filters.model\" must be a string", false},
    {"search_filter_model_too_long", "{\"query\":\"x\",\"filters\":{\"model\":\"%s\"}}", "m", 129, 400,
     "\"filters.model\" is longer than 128", false},
    {"search_filter_model_blank", "{\"embedding\":[1,0,0,0],\"limit\":5,\"filters\":{\"model\":\" \"}}",
     NULL, 0, 400, "\"filters.model\" names no model", true},
    {"search_filter_model_control", "{\"embedding\":[1],\"filters\":{\"model\":\"a\\u0001\"}}",
     NULL, 0, 400, "\"filters.model\" contains a control character", true},
    {"search_filter_model_slash", "{\"query\":\"x\",\"filters\":{\"model\":\"org/\"}}", NULL, 0,
     400, "\"filters.model\" names no model", false},
    {"search_filter_tags_number", "{\"embedding\":[1],\"filters\":{\"tags\":1}}", NULL, 0, 400,
     "\"filters.tags\" must be an array of strings", true},
    {"search_filter_tag_empty_string", "{\"embedding\":[1],\"filters\":{\"tags\":\"\"}}", NULL, 0, 400,
     "each tag must be 1 to 64 bytes", true},
    {"search_filter_tags_65", "{\"embedding\":[1],\"filters\":{\"tags\":[%s\"z\"]}}", "\"t\",", 64, 400,
     "more than 64 entries", true},
};

static void test_search_case(void **state) {
  const parse_case *c = *state;
  size_t len;
  char *body = case_body(c, &len);
  syn_search_input in;
  char err[256] = "";
  int st = syn_api_parse_search(body, len, c->need_embedding, &in, err, sizeof err);
  check_status(c, st, err);
  syn_search_input_free(&in);
  free(body);
}

/* ---- what valid bodies fill ---- */

static int parse_register(const char *body, syn_register_input *in) {
  char err[256] = "";
  int st = syn_api_parse_register(body, strlen(body), in, err, sizeof err);
  if (st) fail_msg("status %d: %s", st, err);
  return st;
}

static void test_register_fields_full(void **state) {
  (void)state;
  const char *body =
      "{\"info_hash\":\"" H40 "\",\"display_name\":\"React Hooks Guide\","
      "\"model\":\"nomic-ai/nomic-embed-text-v1.5\",\"dimension\":4," EMB ","
      "\"tags\":[\"react\",\"hooks\"],\"description\":\"how to\",\"file_size\":123456789012,"
      "\"entry_count\":7,\"metadata\":{\"b\": [1, 2], \"a\": {\"x\": null}},"
      "\"creator_agent_id\":\"agent-1\",\"creator_public_key\":\"pk\",\"signature\":\"sig\"}";
  syn_register_input in;
  parse_register(body, &in);
  const Synapse__Shard *s = &in.shard;
  assert_string_equal(in.hash_hex, H40_LOWER);
  assert_string_equal(s->info_hash, H40_LOWER);
  assert_string_equal(s->display_name, "React Hooks Guide");
  assert_string_equal(s->model, "nomic-ai/nomic-embed-text-v1.5"); /* stored as given */
  assert_true(s->has_dimension);
  assert_int_equal(s->dimension, 4);
  assert_int_equal(s->n_tags, 2);
  assert_string_equal(s->tags[0], "react");
  assert_string_equal(s->tags[1], "hooks");
  assert_string_equal(s->description, "how to");
  assert_true(s->has_file_size);
  assert_true(s->file_size == 123456789012ull);
  assert_true(s->has_entry_count);
  assert_int_equal(s->entry_count, 7);
  assert_string_equal(s->creator_agent_id, "agent-1");
  assert_string_equal(s->creator_public_key, "pk");
  assert_string_equal(s->signature, "sig");
  /* metadata: a compact JSON object holding the same document */
  assert_non_null(s->metadata_json);
  json_t *meta = json_loads(s->metadata_json, 0, NULL);
  json_t *want = json_loads("{\"b\":[1,2],\"a\":{\"x\":null}}", 0, NULL);
  assert_true(json_equal(meta, want));
  assert_null(strchr(s->metadata_json, ' '));
  json_decref(meta);
  json_decref(want);
  assert_true(s->has_embedding);
  assert_int_equal(s->embedding.len, 4 * sizeof(float));
  const float want_emb[4] = {0.5f, 1.0f, -2.0f, 3e-3f};
  float got[4];
  memcpy(got, s->embedding.data, sizeof got);
  for (int i = 0; i < 4; i++) assert_true(got[i] == want_emb[i]);
  assert_false(s->has_created_at);
  syn_register_input_free(&in);
}

static void test_register_fields_minimal_and_aliases(void **state) {
  (void)state;
  syn_register_input in;
  parse_register("{\"info_hash\":\"" H64 "\",\"display_name\":\"n\",\"embedding_model\":\"e5\","
                 "\"dimension_size\":2,\"embedding\":[3,4]}",
                 &in);
  assert_string_equal(in.shard.info_hash, H64_LOWER);
  assert_string_equal(in.shard.model, "e5");
  assert_int_equal(in.shard.dimension, 2);
  assert_int_equal(in.shard.n_tags, 0);
  assert_null(in.shard.description);
  assert_null(in.shard.metadata_json);
  assert_false(in.shard.has_file_size);
  assert_false(in.shard.has_entry_count);
  assert_true(in.shard.has_embedding);
  syn_register_input_free(&in);

  /* "model" wins over "embedding_model"; null counts as absent. */
  parse_register("{\"info_hash\":\"" H40 "\",\"display_name\":\"n\",\"model\":null,"
                 "\"embedding_model\":\"e5\",\"dimension\":3}",
                 &in);
  assert_string_equal(in.shard.model, "e5");
  assert_false(in.shard.has_embedding);
  assert_null(in.embedding);
  syn_register_input_free(&in);
}

static void test_search_fields(void **state) {
  (void)state;
  syn_search_input in;
  char err[256];
  const char *b1 = "{\"embedding\":[1,2,3]}";
  assert_int_equal(syn_api_parse_search(b1, strlen(b1), true, &in, err, sizeof err), 0);
  assert_int_equal(in.dimension, 3);
  assert_true(in.embedding[2] == 3.0f);
  assert_int_equal(in.limit, SYN_API_DEFAULT_LIMIT);
  assert_null(in.model);
  assert_int_equal(in.tag_count, 0);
  assert_true(in.min_similarity == 0.0f);
  assert_null(in.query);
  syn_search_input_free(&in);

  const char *b2 = "{\"embedding\":[1],\"limit\":7,\"min_similarity\":0.25,"
                   "\"filters\":{\"model\":\"nomic-embed-text-v1.5\",\"tags\":[\"x\",\"y\"]}}";
  assert_int_equal(syn_api_parse_search(b2, strlen(b2), true, &in, err, sizeof err), 0);
  assert_int_equal(in.limit, 7);
  assert_true(in.min_similarity == 0.25f);
  assert_string_equal(in.model, "nomic-embed-text-v1.5");
  assert_int_equal(in.tag_count, 2);
  assert_string_equal(in.tags[1], "y");
  syn_search_input_free(&in);

  const char *b3 = "{\"query\":\"  react hooks \",\"filters\":{\"model\":\"\",\"tags\":\"devops\"}}";
  assert_int_equal(syn_api_parse_search(b3, strlen(b3), false, &in, err, sizeof err), 0);
  assert_string_equal(in.query, "  react hooks ");
  assert_null(in.model); /* an empty model filter is no filter */
  assert_int_equal(in.tag_count, 1);
  assert_string_equal(in.tags[0], "devops");
  assert_null(in.embedding);
  syn_search_input_free(&in);
}

/* The body is bounded by len, not by a NUL: bytes past len are never read as JSON. */
static void test_parse_respects_len(void **state) {
  (void)state;
  const char *body = "{\"embedding\":[1]}GARBAGE";
  syn_search_input in;
  char err[256];
  assert_int_equal(syn_api_parse_search(body, strlen("{\"embedding\":[1]}"), true, &in, err, sizeof err), 0);
  syn_search_input_free(&in);
  assert_int_equal(syn_api_parse_search(body, 5, true, &in, err, sizeof err), 400);
  syn_search_input_free(&in);
}

/* ---- syn_api_parse_hash ---- */

typedef struct hash_case {
  const char *name;
  const char *text;
  size_t len;
  int want;
  const char *want_hex;
  const char *want_key_hex; /* the 20 swarm-key bytes, as hex */
} hash_case;

#define HLIT(s) (s), sizeof(s) - 1

static const hash_case hash_cases[] = {
    {"hash_v1_lower", HLIT(H40_LOWER), 0, H40_LOWER, H40_LOWER},
    {"hash_v1_upper_and_mixed", HLIT(H40), 0, H40_LOWER, H40_LOWER},
    {"hash_v1_all_f", HLIT("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"), 0,
     "ffffffffffffffffffffffffffffffffffffffff", "ffffffffffffffffffffffffffffffffffffffff"},
    {"hash_v2_64", HLIT(H64), 0, H64_LOWER, "00112233445566778899aabbccddeeff00112233"},
    {"hash_empty", HLIT(""), -1, NULL, NULL},
    {"hash_39", "0123456789abcdef0123456789abcdef0123456", 39, -1, NULL, NULL},
    {"hash_41", HLIT("0123456789abcdef0123456789abcdef012345678"), -1, NULL, NULL},
    {"hash_63", HLIT("00112233445566778899aabbccddeeff00112233445566778899aabbccddeef"), -1, NULL, NULL},
    {"hash_65", HLIT("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0"), -1, NULL,
     NULL},
    {"hash_non_hex_g", HLIT("g123456789abcdef0123456789abcdef01234567"), -1, NULL, NULL},
    {"hash_0x_prefix", HLIT("0x23456789abcdef0123456789abcdef01234567"), -1, NULL, NULL},
    {"hash_space", HLIT("0123456789abcdef 123456789abcdef01234567"), -1, NULL, NULL},
    {"hash_nul_inside", HLIT("0123456789abcdef\0" "123456789abcdef01234567"), -1, NULL, NULL},
    {"hash_v2_non_hex_tail", HLIT("00112233445566778899aabbccddeeff00112233445566778899aabbccddeez"),
     -1, NULL, NULL},
    {"hash_percent_encoded", HLIT("%01%23%45%67%89%ab%cd%ef%01%23%45%67%89%"), -1, NULL, NULL},
};

static void test_hash_case(void **state) {
  const hash_case *c = *state;
  char hex[65];
  uint8_t key[20];
  memset(hex, 'Z', sizeof hex);
  int rc = syn_api_parse_hash(c->text, c->len, hex, key);
  assert_int_equal(rc, c->want);
  if (rc) return;
  assert_string_equal(hex, c->want_hex);
  char key_hex[41];
  for (int i = 0; i < 20; i++) snprintf(key_hex + 2 * i, 3, "%02x", key[i]);
  assert_string_equal(key_hex, c->want_key_hex);
}

/* ---- syn_json_depth_ok ---- */

typedef struct depth_case {
  const char *name;
  const char *text;
  size_t len; /* 0: strlen */
  int max;
  bool want;
} depth_case;

static const depth_case depth_cases[] = {
    {"depth_scalar", "1", 0, 0, true},
    {"depth_empty_object", "{}", 0, 1, true},
    {"depth_object_over_0", "{}", 0, 0, false},
    {"depth_16_arrays", "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]", 0, 16, true},
    {"depth_17_arrays", "[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]", 0, 16, false},
    {"depth_siblings_do_not_add", "[[],[],[],{},{\"a\":[]}]", 0, 3, true},
    {"depth_mixed_5", "{\"a\":[{\"b\":[{}]}]}", 0, 5, true},
    {"depth_mixed_5_over_4", "{\"a\":[{\"b\":[{}]}]}", 0, 4, false},
    {"depth_brackets_in_string", "{\"a\":\"[[[[[[[[[[{{{{{{{{\"}", 0, 1, true},
    {"depth_escaped_quote_in_string", "{\"a\":\"\\\"[[[[[[\"}", 0, 1, true},
    {"depth_escaped_backslash_ends_string", "{\"a\":\"\\\\\",\"b\":[[[]]]}", 0, 3, false},
    {"depth_escaped_backslash_ok", "{\"a\":\"\\\\\",\"b\":[[[]]]}", 0, 4, true},
    {"depth_key_with_brackets", "{\"[[[[\":{\"}}}}\":[1]}}", 0, 3, true},
    {"depth_bounded_by_len", "[[[[[[[[[[", 3, 3, true},
    {"depth_bounded_by_len_over", "[[[[[[[[[[", 4, 3, false},
    {"depth_unterminated_string", "[\"[[[[[[", 0, 1, true},
    {"depth_100", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
     0, 16, false},
};

static void test_depth_case(void **state) {
  const depth_case *c = *state;
  size_t len = c->len ? c->len : strlen(c->text);
  assert_int_equal(syn_json_depth_ok(c->text, len, c->max), c->want);
}

/* ---- syn_magnet_build ---- */

typedef struct magnet_case {
  const char *name;
  const char *info_hash;
  const char *display_name;
  const char *model;
  int has_dimension;
  uint32_t dimension;
  const char *tags[4];
  size_t n_tags;
  const char *trackers[4];
  size_t n_trackers;
  const char *want;
} magnet_case;

#define TR_HTTP "http%3A%2F%2Ftracker.example.org%3A6881%2Fannounce"
#define TR_UDP "udp%3A%2F%2Ftracker.example.org%3A6969%2Fannounce"

static const magnet_case magnet_cases[] = {
    {"magnet_v1_full", H40_LOWER, "React Hooks Guide", "nomic-embed-text-v1.5", 1, 768,
     {"react", "hooks"}, 2,
     {"http://tracker.example.org:6881/announce", "udp://tracker.example.org:6969/announce"}, 2,
     "magnet:?xt=urn:btih:" H40_LOWER "&dn=React%20Hooks%20Guide&tr=" TR_HTTP "&tr=" TR_UDP
     "&x.model=nomic-embed-text-v1.5&x.dims=768&x.tags=react%2Chooks"},
    {"magnet_v2_btmh", H64_LOWER, "v2", "m", 1, 4, {0}, 0,
     {"http://tracker.example.org:6881/announce"}, 1,
     "magnet:?xt=urn:btih:00112233445566778899aabbccddeeff00112233&xt=urn:btmh:1220" H64_LOWER
     "&dn=v2&tr=" TR_HTTP "&x.model=m&x.dims=4"},
    {"magnet_percent_encoding", H40_LOWER, "a b&c=d+e%f/g?h#i caf\xc3\xa9 \xe2\x98\x95 ~-._",
     "org/model name", 1, 1, {"deep learning", "c&d", "\xc3\xbc"}, 3, {0}, 0,
     "magnet:?xt=urn:btih:" H40_LOWER
     "&dn=a%20b%26c%3Dd%2Be%25f%2Fg%3Fh%23i%20caf%C3%A9%20%E2%98%95%20~-._"
     "&x.model=org%2Fmodel%20name&x.dims=1&x.tags=deep%20learning%2Cc%26d%2C%C3%BC"},
    {"magnet_several_trackers", H40_LOWER, "n", "m", 1, 2, {0}, 0,
     {"http://a.example/announce", "udp://b.example:80/announce", "https://c.example/a?k=v&x=y",
      "udp://[2001:db8::1]:6969/announce"},
     4,
     "magnet:?xt=urn:btih:" H40_LOWER "&dn=n&tr=http%3A%2F%2Fa.example%2Fannounce"
     "&tr=udp%3A%2F%2Fb.example%3A80%2Fannounce&tr=https%3A%2F%2Fc.example%2Fa%3Fk%3Dv%26x%3Dy"
     "&tr=udp%3A%2F%2F%5B2001%3Adb8%3A%3A1%5D%3A6969%2Fannounce&x.model=m&x.dims=2"},
    {"magnet_bare", H40_LOWER, NULL, NULL, 0, 0, {0}, 0, {0}, 0, "magnet:?xt=urn:btih:" H40_LOWER},
    {"magnet_one_tag", H40_LOWER, "", "m", 1, 3, {"solo"}, 1, {0}, 0,
     "magnet:?xt=urn:btih:" H40_LOWER "&dn=&x.model=m&x.dims=3&x.tags=solo"},
};

static void test_magnet_case(void **state) {
  const magnet_case *c = *state;
  Synapse__Shard s = SYNAPSE__SHARD__INIT;
  s.info_hash = (char *)c->info_hash;
  s.display_name = (char *)c->display_name;
  s.model = (char *)c->model;
  s.has_dimension = c->has_dimension;
  s.dimension = c->dimension;
  s.tags = (char **)c->tags;
  s.n_tags = c->n_tags;
  syn_buf out = SYN_BUF_INIT;
  assert_int_equal(syn_magnet_build(&out, &s, c->trackers, c->n_trackers), 0);
  assert_non_null(out.data);
  assert_string_equal((const char *)out.data, c->want);
  assert_int_equal(out.len, strlen(c->want)); /* NUL-terminated, NUL not counted */
  syn_buf_free(&out);
}

/* Appending to a buffer that already holds text keeps that text. */
static void test_magnet_appends(void **state) {
  (void)state;
  Synapse__Shard s = SYNAPSE__SHARD__INIT;
  s.info_hash = H40_LOWER;
  syn_buf out = SYN_BUF_INIT;
  assert_int_equal(syn_buf_append_str(&out, "link: "), 0);
  assert_int_equal(syn_magnet_build(&out, &s, NULL, 0), 0);
  assert_string_equal((const char *)out.data, "link: magnet:?xt=urn:btih:" H40_LOWER);
  syn_buf_free(&out);
}

/* ---- syn_api_shard_json, syn_api_error ---- */

static void test_shard_json_full(void **state) {
  (void)state;
  char *tags[] = {"a", "b c"};
  float emb[2] = {1, 2};
  Synapse__Shard s = SYNAPSE__SHARD__INIT;
  s.info_hash = H40_LOWER;
  s.display_name = "name";
  s.model = "nomic-embed-text-v1.5";
  s.has_dimension = 1;
  s.dimension = 2;
  s.tags = tags;
  s.n_tags = 2;
  s.description = "desc";
  s.has_file_size = 1;
  s.file_size = 123456789012ull;
  s.has_entry_count = 1;
  s.entry_count = 0;
  s.metadata_json = "{\"k\":[1,{\"x\":true}]}";
  s.creator_agent_id = "agent";
  s.creator_public_key = "pk";
  s.signature = "sig";
  s.has_embedding = 1;
  s.embedding = (ProtobufCBinaryData){sizeof emb, (uint8_t *)emb};
  s.has_created_at = 1;
  s.created_at = 1700000000;
  s.has_updated_at = 1;
  s.updated_at = 1700000100;
  Synapse__SwarmFigures sw = SYNAPSE__SWARM_FIGURES__INIT;
  sw.seeders = 5;
  sw.leechers = 2;
  sw.downloaded = 9;
  json_t *o = syn_api_shard_json(&s, &sw);
  assert_non_null(o);
  json_t *want = json_loads(
      "{\"info_hash\":\"" H40_LOWER "\",\"display_name\":\"name\",\"model\":\"nomic-embed-text-v1.5\","
      "\"dimension\":2,\"tags\":[\"a\",\"b c\"],\"description\":\"desc\",\"file_size\":123456789012,"
      "\"entry_count\":0,\"metadata\":{\"k\":[1,{\"x\":true}]},\"creator_agent_id\":\"agent\","
      "\"creator_public_key\":\"pk\",\"signature\":\"sig\",\"created_at\":1700000000,"
      "\"updated_at\":1700000100,\"seeders\":5,\"leechers\":2,\"downloaded\":9}",
      0, NULL);
  assert_non_null(want);
  if (!json_equal(o, want)) {
    char *got = json_dumps(o, JSON_SORT_KEYS);
    fail_msg("shard JSON differs: %s", got);
  }
  assert_null(json_object_get(o, "embedding")); /* never sent back */
  json_decref(want);
  json_decref(o);
}

static void test_shard_json_minimal(void **state) {
  (void)state;
  Synapse__Shard s = SYNAPSE__SHARD__INIT;
  s.info_hash = H64_LOWER;
  s.metadata_json = "not json"; /* stored text that does not parse: an empty object */
  json_t *o = syn_api_shard_json(&s, NULL);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "info_hash")), H64_LOWER);
  const char *nulls[] = {"display_name", "model", "description", "file_size", "entry_count",
                         "creator_agent_id", "creator_public_key", "signature"};
  for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++) {
    json_t *v = json_object_get(o, nulls[i]);
    if (!v || !json_is_null(v)) fail_msg("\"%s\" must be present and null", nulls[i]);
  }
  assert_true(json_is_array(json_object_get(o, "tags")));
  assert_int_equal(json_array_size(json_object_get(o, "tags")), 0);
  assert_true(json_is_object(json_object_get(o, "metadata")));
  assert_int_equal(json_object_size(json_object_get(o, "metadata")), 0);
  assert_int_equal(json_integer_value(json_object_get(o, "seeders")), 0);
  assert_int_equal(json_integer_value(json_object_get(o, "leechers")), 0);
  assert_int_equal(json_integer_value(json_object_get(o, "downloaded")), 0);
  assert_null(json_object_get(o, "created_at"));
  assert_null(json_object_get(o, "updated_at"));
  json_decref(o);
}

static void test_error_json(void **state) {
  (void)state;
  json_t *e = syn_api_error("\"limit\" must be between 1 and 1000");
  assert_non_null(e);
  assert_int_equal(json_object_size(e), 2);
  assert_string_equal(json_string_value(json_object_get(e, "status")), "error");
  assert_string_equal(json_string_value(json_object_get(e, "error")),
                      "\"limit\" must be between 1 and 1000");
  json_decref(e);
}

/* ---- runner: one named cmocka test per table row ---- */

#define ADD_TABLE(tests, n, table, fn)                               \
  for (size_t i_ = 0; i_ < sizeof(table) / sizeof((table)[0]); i_++) \
    (tests)[(n)++] = (struct CMUnitTest) {                           \
      (table)[i_].name, (fn), NULL, NULL, (void *)&(table)[i_]       \
    }

int main(void) {
  static struct CMUnitTest tests[256];
  size_t n = 0;
  ADD_TABLE(tests, n, register_cases, test_register_case);
  ADD_TABLE(tests, n, search_cases, test_search_case);
  ADD_TABLE(tests, n, hash_cases, test_hash_case);
  ADD_TABLE(tests, n, depth_cases, test_depth_case);
  ADD_TABLE(tests, n, magnet_cases, test_magnet_case);
  ADD_TABLE(tests, n, batch_cases, test_batch_case);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_register_items_as_single);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_batch_item_not_object);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_register_fields_full);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_register_fields_minimal_and_aliases);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_search_fields);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_parse_respects_len);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_magnet_appends);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_shard_json_full);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_shard_json_minimal);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_error_json);
  assert_true(n <= sizeof tests / sizeof *tests);
  return _cmocka_run_group_tests("api_json", tests, n, NULL, NULL);
}
