/* Shard store: CRUD, upsert semantics, validation, normalisation, FTS ranking and
 * hostile queries, tag filters, schema versioning, durability across kill -9. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "index/shard_store.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "common/hlc.h"
#include "common/keyspace.h"
#include "common/urlcodec.h"
#include "index/testutil.h"

typedef struct fixture {
  char *dir;
  char path[512];
  syn_store *st;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir("store");
  snprintf(f->path, sizeof f->path, "%s/shards.db", f->dir);
  syn_store_options o = {2, false, 64, 4, 16, 4};
  char err[256];
  f->st = syn_store_open(f->path, &o, err, sizeof err);
  if (!f->st) fprintf(stderr, "open: %s\n", err);
  *state = f;
  return f->st ? 0 : -1;
}

static int teardown(void **state) {
  fixture *f = *state;
  syn_store_close(f->st);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static const float k_vec[4] = {3, 0, 4, 0}; /* norm 5 */

/* A valid input with hash "<c> repeated 40 times". */
static syn_shard_input base_input(char c, char *hash_buf) {
  memset(hash_buf, c, 40);
  hash_buf[40] = '\0';
  return (syn_shard_input){.info_hash = hash_buf,
                           .display_name = "shard",
                           .model = "m",
                           .dimension = 4,
                           .embedding = k_vec,
                           .file_size = -1,
                           .entry_count = -1};
}

/* The version of a write made at `ms` by node "t". */
static syn_version ver(int64_t ms) {
  syn_version v = {.hlc = syn_hlc_from_ms(ms)};
  snprintf(v.node, sizeof v.node, "t");
  return v;
}

static int put(fixture *f, const syn_shard_input *in, int64_t now, syn_store_change *chg) {
  char err[256] = "";
  syn_store_change tmp;
  syn_version v = ver(now);
  int rc = syn_store_put(f->st, in, &v, chg ? chg : &tmp, err, sizeof err);
  if (rc && rc != -EINVAL) fprintf(stderr, "put: %s\n", err);
  return rc;
}

static void test_roundtrip_all_fields(void **state) {
  fixture *f = *state;
  char h[41];
  syn_shard_input in = base_input('A', h);
  const char *tags[] = {"ml", "Rust", "\"quoted\\tag\"", "ml"};
  in.tags = tags;
  in.tag_count = 4;
  in.description = "notes about async rust";
  in.file_size = 12345;
  in.entry_count = 0;
  in.metadata_json = "{\"k\": [1, 2, {\"x\": null}]}";
  in.creator_agent_id = "agent-1";
  in.creator_public_key = "pk";
  in.signature = "sig";
  in.model = "nomic-ai/Nomic-Embed-Text-v1.5";
  syn_store_change chg;
  assert_int_equal(put(f, &in, 1000, &chg), 0);
  assert_true(chg.id > 0);
  assert_int_equal(chg.old_id, 0);
  assert_string_equal(chg.model_key, "nomic-embed-text-v1.5");
  assert_float_equal(chg.norm, 5.0, 1e-6);

  syn_shard s;
  assert_int_equal(syn_store_get(f->st, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true, &s), 0);
  assert_string_equal(s.info_hash, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  assert_string_equal(s.model, "nomic-ai/Nomic-Embed-Text-v1.5");
  assert_string_equal(s.model_key, "nomic-embed-text-v1.5");
  assert_int_equal(s.dimension, 4);
  assert_int_equal(s.tag_count, 3); /* duplicate "ml" dropped */
  assert_string_equal(s.tags[0], "ml");
  assert_string_equal(s.tags[1], "Rust");
  assert_string_equal(s.tags[2], "\"quoted\\tag\"");
  assert_string_equal(s.description, "notes about async rust");
  assert_int_equal(s.file_size, 12345);
  assert_int_equal(s.entry_count, 0);
  assert_string_equal(s.metadata_json, "{\"k\": [1, 2, {\"x\": null}]}");
  assert_string_equal(s.creator_agent_id, "agent-1");
  assert_string_equal(s.creator_public_key, "pk");
  assert_string_equal(s.signature, "sig");
  assert_memory_equal(s.embedding, k_vec, sizeof k_vec); /* raw, as registered */
  assert_int_equal(s.created_at_ms, 1000);
  assert_int_equal(s.updated_at_ms, 1000);
  syn_shard_free(&s);

  in.info_hash = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  in.tags = NULL, in.tag_count = 0, in.description = NULL, in.metadata_json = NULL;
  in.file_size = -1, in.creator_agent_id = NULL;
  assert_int_equal(put(f, &in, 5, NULL), 0);
  assert_int_equal(syn_store_get(f->st, in.info_hash, false, &s), 0);
  assert_null(s.description);
  assert_null(s.metadata_json);
  assert_null(s.creator_agent_id);
  assert_null(s.embedding);
  assert_int_equal(s.file_size, -1);
  assert_int_equal(s.tag_count, 0);
  syn_shard_free(&s);
  assert_int_equal(syn_store_count(f->st), 2);
}

static void test_upsert_keeps_created_at(void **state) {
  fixture *f = *state;
  char h[41];
  syn_shard_input in = base_input('c', h);
  syn_store_change c1, c2;
  assert_int_equal(put(f, &in, 1000, &c1), 0);
  in.display_name = "renamed";
  in.model = "other-model";
  assert_int_equal(put(f, &in, 2000, &c2), 0);
  assert_int_equal(c2.old_id, c1.id);
  assert_true(c2.id > c1.id); /* a new version gets a new id */
  assert_string_equal(c2.old_model_key, "m");
  assert_int_equal(c2.old_dimension, 4);
  syn_shard s;
  assert_int_equal(syn_store_get(f->st, h, false, &s), 0);
  assert_string_equal(s.display_name, "renamed");
  assert_string_equal(s.model_key, "other-model");
  assert_int_equal(s.created_at_ms, 1000);
  assert_int_equal(s.updated_at_ms, 2000);
  assert_int_equal(s.id, c2.id);
  syn_shard_free(&s);
  assert_int_equal(syn_store_count(f->st), 1);
  assert_int_equal(syn_store_get_by_id(f->st, c1.id, false, &s), -ENOENT);
  /* An explicit created_at (hand-off) wins. */
  in.created_at_ms = 7;
  assert_int_equal(put(f, &in, 3000, NULL), 0);
  assert_int_equal(syn_store_get(f->st, h, false, &s), 0);
  assert_int_equal(s.created_at_ms, 7);
  syn_shard_free(&s);
}

static void test_delete(void **state) {
  fixture *f = *state;
  char h[41];
  syn_shard_input in = base_input('d', h);
  syn_store_change c1, cd;
  assert_int_equal(put(f, &in, 1, &c1), 0);
  syn_version v2 = ver(2), v3 = ver(3);
  assert_int_equal(
      syn_store_delete(f->st, "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD", &v2, 50, &cd), 0);
  assert_true(cd.applied && cd.existed);
  assert_int_equal(cd.old_id, c1.id);
  assert_string_equal(cd.old_model_key, "m");
  syn_shard s;
  assert_int_equal(syn_store_get(f->st, h, false, &s), -ENOENT);
  assert_int_equal(syn_store_delete(f->st, h, &v3, 60, &cd), 0); /* a newer tombstone */
  assert_true(cd.applied && !cd.existed);
  assert_int_equal(syn_store_delete(f->st, "xyz", &v3, 60, &cd), -EINVAL);
  assert_int_equal(syn_store_count(f->st), 0);
  /* The FTS and tag tables follow the row. */
  char q[256];
  syn_fts_query("shard", q, sizeof q);
  syn_scored out[4];
  size_t n = 9;
  assert_int_equal(syn_store_text_search(f->st, NULL, q, NULL, NULL, NULL, 4, out, &n), 0);
  assert_int_equal(n, 0);
}

static void test_validation(void **state) {
  fixture *f = *state;
  static const float zero[4] = {0, 0, 0, 0};
  float nan_vec[4] = {1, NAN, 0, 0};
  char long_tag[200];
  memset(long_tag, 't', sizeof long_tag - 1);
  long_tag[sizeof long_tag - 1] = '\0';
  const char *ctl_tag[] = {"ok", "bad\ttag"};
  const char *too_long[] = {long_tag};
  const char *empty_tag[] = {""};
  const char *many[SYN_SHARD_MAX_TAGS + 1];
  for (size_t i = 0; i <= SYN_SHARD_MAX_TAGS; i++) many[i] = "x";
  static const char *const names[] = {
      "short info_hash",   "non-hex info_hash", "no display_name", "empty model key",
      "zero embedding",    "NaN in embedding",  "dimension 0",     "dimension too big",
      "control char tag",  "tag too long",      "too many tags",   "metadata not object",
      "metadata not JSON", "empty tag",
  };
  for (int c = 0; c < (int)(sizeof names / sizeof names[0]); c++) {
    char h[41];
    syn_shard_input in = base_input('e', h);
    switch (c) {
    case 0: in.info_hash = "1234"; break;
    case 1: in.info_hash = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"; break;
    case 2: in.display_name = NULL; break;
    case 3: in.model = "  org/  "; break;
    case 4: in.embedding = zero; break;
    case 5: in.embedding = nan_vec; break;
    case 6: in.dimension = 0; break;
    case 7: in.dimension = SYN_SHARD_MAX_DIM + 1; break;
    case 8: in.tags = ctl_tag, in.tag_count = 2; break;
    case 9: in.tags = too_long, in.tag_count = 1; break;
    case 10: in.tags = many, in.tag_count = SYN_SHARD_MAX_TAGS + 1; break;
    case 11: in.metadata_json = "[1, 2]"; break;
    case 12: in.metadata_json = "{not json"; break;
    case 13: in.tags = empty_tag, in.tag_count = 1; break;
    }
    char err[256] = "";
    syn_store_change chg;
    syn_version v = ver(1);
    int rc = syn_store_put(f->st, &in, &v, &chg, err, sizeof err);
    if (rc != -EINVAL) fprintf(stderr, "case %s: rc %d (%s)\n", names[c], rc, err);
    assert_int_equal(rc, -EINVAL);
    assert_true(err[0] != '\0');
  }
  assert_int_equal(syn_store_count(f->st), 0);
}

static void test_collections_by_model_key(void **state) {
  fixture *f = *state;
  char h1[41], h2[41], h3[41];
  syn_shard_input a = base_input('1', h1), b = base_input('2', h2), c = base_input('3', h3);
  a.model = "nomic-ai/nomic-embed-text-v1.5";
  b.model = "nomic-embed-text-v1.5";
  c.model = "nomic-embed-text-v1.5";
  float v8[8] = {1, 0, 0, 0, 0, 0, 0, 1};
  c.dimension = 8, c.embedding = v8; /* same model, another dimension: another collection */
  syn_store_change ca, cb, cc;
  assert_int_equal(put(f, &a, 1, &ca), 0);
  assert_int_equal(put(f, &b, 1, &cb), 0);
  assert_int_equal(put(f, &c, 1, &cc), 0);
  syn_store_collection *cs;
  size_t n;
  assert_int_equal(syn_store_collections(f->st, &cs, &n), 0);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(cs[i].model_key, "nomic-embed-text-v1.5");
    if (cs[i].dimension == 4) {
      assert_int_equal(cs[i].count, 2);
      assert_int_equal(cs[i].id_sum, ca.id + cb.id);
    } else {
      assert_int_equal(cs[i].dimension, 8);
      assert_int_equal(cs[i].count, 1);
    }
  }
  free(cs);
}

static int collect_unit(void *ctx, int64_t id, const float *unit) {
  int64_t *ids = ctx;
  ids[ids[0] + 1] = id;
  ids[0]++;
  assert_float_equal(tu_dot(unit, unit, 4), 1.0, 1e-5);
  return 0;
}

static void test_scan_probe_and_exact(void **state) {
  fixture *f = *state;
  const float vecs[3][4] = {{1, 0, 0, 0}, {1, 1, 0, 0}, {0, 0, 0, 2}};
  const char *t0[] = {"red"}, *t1[] = {"Blue", "red"}, *t2[] = {"green"};
  const char *const *tags[] = {t0, t1, t2};
  size_t ntags[] = {1, 2, 1};
  int64_t ids[3];
  for (int i = 0; i < 3; i++) {
    char h[41];
    syn_shard_input in = base_input((char)('a' + i), h);
    in.embedding = vecs[i];
    in.tags = tags[i], in.tag_count = ntags[i];
    syn_store_change chg;
    assert_int_equal(put(f, &in, 1, &chg), 0);
    ids[i] = chg.id;
  }
  int64_t seen[8] = {0};
  assert_int_equal(syn_store_scan_vectors(f->st, "m", 4, collect_unit, seen), 0);
  assert_int_equal(seen[0], 3);
  assert_true(seen[1] < seen[2] && seen[2] < seen[3]); /* id order */

  bool bad;
  const char *filter_tags[] = {"BLUE", "green"}; /* tags match ASCII case-insensitively */
  char *tj = syn_store_tags_json(filter_tags, 2, &bad);
  int64_t cnt = 0;
  assert_int_equal(syn_store_count_tagged(f->st, NULL, tj, 100, &cnt), 0);
  assert_int_equal(cnt, 2);
  assert_int_equal(syn_store_count_tagged(f->st, NULL, tj, 1, &cnt), 0);
  assert_int_equal(cnt, 1);

  const float q[4] = {1, 0, 0, 0};
  syn_store_probe p[4] = {{.id = ids[0]}, {.id = ids[1]}, {.id = ids[2]}, {.id = 99999}};
  assert_int_equal(syn_store_probe_rows(f->st, NULL, tj, q, 4, p, 4), 0);
  assert_true(p[0].exists && !p[0].matches);
  assert_true(p[1].exists && p[1].matches);
  assert_float_equal(p[1].cosine, 1.0 / sqrt(2.0), 1e-5);
  assert_true(p[2].exists && p[2].matches);
  assert_float_equal(p[2].cosine, 0.0, 1e-6);
  assert_false(p[3].exists);

  syn_scored out[3];
  size_t n = 0;
  assert_int_equal(syn_store_exact_search(f->st, NULL, "m", 4, NULL, NULL, q, -2, 3, out, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(out[0].id, ids[0]);
  assert_int_equal(out[1].id, ids[1]);
  assert_int_equal(syn_store_exact_search(f->st, NULL, "m", 4, tj, NULL, q, -2, 3, out, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(out[0].id, ids[1]);
  assert_int_equal(out[1].id, ids[2]);
  assert_int_equal(syn_store_exact_search(f->st, NULL, "m", 4, NULL, NULL, q, 0.5, 3, out, &n), 0);
  assert_int_equal(n, 2); /* min cosine drops the orthogonal one */
  float unit[4];
  assert_int_equal(syn_store_get_vector(f->st, ids[2], 4, unit), 0);
  assert_float_equal(unit[3], 1.0, 1e-6);
  assert_int_equal(syn_store_get_vector(f->st, 424242, 4, unit), -ENOENT);
  free(tj);
}

/* A read session sees one snapshot: a write committed during it is invisible to it and
 * visible after it. */
static void test_read_session_snapshot(void **state) {
  fixture *f = *state;
  char h1[41], h2[41];
  syn_shard_input a = base_input('1', h1), b = base_input('2', h2);
  syn_store_change ca, cb;
  assert_int_equal(put(f, &a, 1, &ca), 0);
  syn_store_reader *r = syn_store_read_begin(f->st);
  assert_non_null(r);
  syn_shard s;
  assert_int_equal(syn_store_reader_get_by_id(f->st, r, ca.id, true, &s), 0);
  syn_shard_free(&s);
  assert_int_equal(put(f, &b, 2, &cb), 0); /* the writer is never blocked by the session */
  assert_int_equal(syn_store_reader_get_by_id(f->st, r, cb.id, false, &s), -ENOENT);
  const float q[4] = {1, 0, 0, 0};
  syn_scored out[4];
  size_t n = 0;
  assert_int_equal(syn_store_exact_search(f->st, r, "m", 4, NULL, NULL, q, -2, 4, out, &n), 0);
  assert_int_equal(n, 1);
  syn_store_read_end(f->st, r);
  assert_int_equal(syn_store_get_by_id(f->st, cb.id, false, &s), 0);
  syn_shard_free(&s);
  assert_int_equal(syn_store_exact_search(f->st, NULL, "m", 4, NULL, NULL, q, -2, 4, out, &n), 0);
  assert_int_equal(n, 2);
}

/* A shard without an embedding: stored, readable with or without asking for the
 * embedding, found by words, never part of a vector collection. */
static void test_without_embedding(void **state) {
  fixture *f = *state;
  char h[41];
  syn_shard_input in = base_input('9', h);
  in.embedding = NULL;
  in.display_name = "wordy shard";
  syn_store_change chg;
  assert_int_equal(put(f, &in, 1, &chg), 0);
  syn_shard s;
  assert_int_equal(syn_store_get(f->st, h, true, &s), 0);
  assert_null(s.embedding);
  assert_string_equal(s.display_name, "wordy shard");
  syn_shard_free(&s);
  syn_store_collection *cs;
  size_t n;
  assert_int_equal(syn_store_collections(f->st, &cs, &n), 0);
  assert_int_equal(n, 0);
  free(cs);
  char q[64];
  syn_fts_query("wordy", q, sizeof q);
  syn_scored out[2];
  assert_int_equal(syn_store_text_search(f->st, NULL, q, NULL, NULL, NULL, 2, out, &n), 0);
  assert_int_equal(n, 1);
}

static void test_fts_query_builder(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
    int terms;
  } cases[] = {
      {"rust async", "\"rust\" OR \"async\"", 2},
      {"  \"rust\"  ", "\"rust\"", 1},
      {"a AND b", "\"b\"", 1}, /* "a" and "and" are stopwords */
      {"NOT", "\"NOT\"", 1},
      {"NEAR(x y)", "\"NEAR\" OR \"x\" OR \"y\"", 3},
      {"rust*", "\"rust\"", 1},
      {"display_name:rust", "\"display\" OR \"name\" OR \"rust\"", 3},
      {"^start -minus +plus", "\"start\" OR \"minus\" OR \"plus\"", 3},
      {"' OR 1=1 --", "\"1\"", 1}, /* "or" a stopword, "1" once */
      {"How to use React hooks", "\"use\" OR \"React\" OR \"hooks\"", 3},
      {"react React REACT", "\"react\"", 1},
      {"the who", "\"the\" OR \"who\"", 2}, /* only stopwords: kept */
      {"to be or not", "\"to\" OR \"be\" OR \"or\" OR \"not\"", 4},
      {"(((", "", 0},
      {"\"\"\"", "", 0},
      {"", "", 0},
      {"日本語 ノート", "\"日本語\" OR \"ノート\"", 2},
      {"caf\xc3\xa9", "\"caf\xc3\xa9\"", 1},
  };
  char out[2048];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(syn_fts_query(cases[i].in, out, sizeof out), cases[i].terms);
    assert_string_equal(out, cases[i].want);
  }
  char small[8];
  assert_int_equal(syn_fts_query("abcdefgh", small, sizeof small), -ENOSPC);
  /* 32 terms at most, 64 bytes per term, cut on a UTF-8 boundary. */
  char many[400] = "";
  for (int i = 0; i < 40; i++) sprintf(many + strlen(many), "w%d ", i);
  assert_int_equal(syn_fts_query(many, out, sizeof out), 32);
  char longword[200] = "";
  for (int i = 0; i < 30; i++) strcat(longword, "\xc3\xa9"); /* 60 bytes */
  strcat(longword, "abc\xc3\xa9\xc3\xa9");                   /* 67 bytes */
  assert_int_equal(syn_fts_query(longword, out, sizeof out), 1);
  assert_int_equal(strlen(out), 2 + 63);
}

static void add_doc(fixture *f, char c, const char *name, const char *desc, const char *tag,
                    const char *model) {
  char h[41];
  syn_shard_input in = base_input(c, h);
  in.display_name = name;
  in.description = desc;
  in.model = model;
  const char *tags[] = {tag};
  in.tags = tags;
  in.tag_count = tag ? 1 : 0;
  assert_int_equal(put(f, &in, 1, NULL), 0);
}

static void test_fts_ranking_and_filters(void **state) {
  fixture *f = *state;
  add_doc(f, '1', "Async Rust patterns", "executor notes", "programming", "m1");
  add_doc(f, '2', "Gardening diary", "tomatoes and rust fungus on leaves", "garden", "m1");
  add_doc(f, '3', "Cooking", "pasta", "rust", "m2");
  add_doc(f, '4', "Unrelated", "nothing here", "misc", "m1");
  add_doc(f, '5', "日本語のノート", "メモ", "misc", "m1");
  char q[2048];
  syn_scored out[8];
  size_t n;
  assert_int_equal(syn_fts_query("rust async", q, sizeof q), 2);
  assert_int_equal(syn_store_text_search(f->st, NULL, q, NULL, NULL, NULL, 8, out, &n), 0);
  assert_int_equal(n, 3);
  syn_shard s;
  assert_int_equal(syn_store_get_by_id(f->st, out[0].id, false, &s), 0);
  assert_string_equal(s.display_name, "Async Rust patterns"); /* both terms, in the name */
  syn_shard_free(&s);
  /* Best first by coverage: both terms in the name 1, "rust" as a tag 0.5 (one term of
   * two), "rust" in a description 0.25 (half a term of two). */
  assert_float_equal(out[0].score, 1.0, 1e-9);
  assert_float_equal(out[1].score, 0.5, 1e-9);
  assert_float_equal(out[2].score, 0.25, 1e-9);
  /* Model filter (by key) and tag filter. */
  assert_int_equal(syn_store_text_search(f->st, NULL, q, "m2", NULL, NULL, 8, out, &n), 0);
  assert_int_equal(n, 1);
  bool bad;
  const char *tg[] = {"GARDEN"};
  char *tj = syn_store_tags_json(tg, 1, &bad);
  assert_int_equal(syn_store_text_search(f->st, NULL, q, NULL, tj, NULL, 8, out, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(syn_store_get_by_id(f->st, out[0].id, false, &s), 0);
  assert_string_equal(s.display_name, "Gardening diary");
  syn_shard_free(&s);
  free(tj);
  /* Limit. */
  assert_int_equal(syn_store_text_search(f->st, NULL, q, NULL, NULL, NULL, 1, out, &n), 0);
  assert_int_equal(n, 1);
  /* Hostile input never reaches FTS5 as syntax: every query runs without error. */
  static const char *const hostile[] = {
      "\"",
      "rust\"",
      "rust AND",
      "AND OR NOT",
      "NEAR(rust async, 1)",
      "rust*",
      "*",
      "(rust",
      ")",
      "display_name:rust",
      "{tags}: x",
      "^rust",
      "rust -async",
      "' OR 1=1; DROP TABLE shards; --",
      "\\",
      "\xf0\x9f\xa6\x80 rust",
      "\xff\xfe rust",
      "日本語のノート",
      "NOT rust",
  };
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    int terms = syn_fts_query(hostile[i], q, sizeof q);
    assert_true(terms >= 0);
    if (terms == 0) continue;
    n = 99;
    int rc = syn_store_text_search(f->st, NULL, q, NULL, NULL, NULL, 8, out, &n);
    if (rc) fprintf(stderr, "hostile query %zu (%s) -> %s failed\n", i, hostile[i], q);
    assert_int_equal(rc, 0);
    assert_true(n <= 8);
  }
  assert_int_equal(syn_fts_query("rust -async", q, sizeof q), 2);
  assert_int_equal(syn_store_text_search(f->st, NULL, q, NULL, NULL, NULL, 8, out, &n), 0);
  assert_int_equal(n, 3); /* "-" is not NOT: async still adds, never excludes */
  assert_int_equal(syn_fts_query("日本語のノート", q, sizeof q), 1);
  assert_int_equal(syn_store_text_search(f->st, NULL, q, NULL, NULL, NULL, 8, out, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(syn_store_count(f->st), 5); /* and the table is still there */
}

static void test_schema_version(void **state) {
  fixture *f = *state;
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(s, 0), 2);
  sqlite3_finalize(s);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
  sqlite3_finalize(s);
  /* A database from a newer build is refused, not damaged. */
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  syn_store_close(f->st);
  char err[256] = "";
  syn_store_options o = {1, true, 0, 0, 16, 4};
  f->st = syn_store_open(f->path, &o, err, sizeof err);
  assert_null(f->st);
  assert_non_null(strstr(err, "newer"));
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=2", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  f->st = syn_store_open(f->path, &o, err, sizeof err);
  assert_non_null(f->st);
}

/* A database written by schema version 1 (no versions, no tombstones) is migrated: its
 * records get the version of their update time and their buckets and digests. */
static void test_migration_from_v1(void **state) {
  fixture *f = *state;
  char h[41];
  syn_shard_input in = base_input('f', h);
  assert_int_equal(put(f, &in, 4242, NULL), 0);
  syn_store_close(f->st);
  f->st = NULL;
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  const char *down =
      "DROP INDEX shards_by_bucket; ALTER TABLE shards DROP COLUMN version_hlc;"
      "ALTER TABLE shards DROP COLUMN version_node; ALTER TABLE shards DROP COLUMN bucket;"
      "DROP TABLE tombstones; DROP TABLE digests; DROP TABLE meta; PRAGMA user_version=1;";
  char *msg = NULL;
  int rc = sqlite3_exec(db, down, NULL, NULL, &msg);
  if (rc != SQLITE_OK) fail_msg("downgrade: %s", msg);
  sqlite3_close(db);
  syn_store_options o = {1, true, 0, 0, 16, 4};
  char err[256] = "";
  f->st = syn_store_open(f->path, &o, err, sizeof err);
  if (!f->st) fail_msg("open: %s", err);
  syn_key_version kv;
  assert_int_equal(syn_store_version(f->st, h, &kv), 0);
  assert_int_equal(kv.version.hlc, syn_hlc_from_ms(4242));
  assert_string_equal(kv.version.node, "");
  uint64_t d[64], want[64] = {0};
  syn_store_digests(f->st, d);
  uint8_t key[20];
  syn_hex_decode(h, 40, key, 20);
  want[syn_bucket_of(16, 4, key)] = syn_record_digest(h, &kv.version, false);
  assert_memory_equal(d, want, sizeof d);
}

/* A child registers and is killed with SIGKILL without closing anything: every put that
 * returned must be there when the store is opened again. */
static void test_kill9_durability(void **state) {
  fixture *f = *state;
  syn_store_close(f->st);
  f->st = NULL;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    syn_store_options o = {1, true, 0, 0, 16, 4};
    char err[256];
    syn_store *st = syn_store_open(f->path, &o, err, sizeof err);
    if (!st) _exit(3);
    for (int i = 0; i < 50; i++) {
      char h[41];
      snprintf(h, sizeof h, "%040d", i);
      float v[4] = {1, (float)i, 0, 0};
      syn_shard_input in = {.info_hash = h,
                            .display_name = "k",
                            .model = "m",
                            .dimension = 4,
                            .embedding = v,
                            .file_size = -1,
                            .entry_count = -1};
      syn_store_change chg;
      syn_version version = ver(1);
      if (syn_store_put(st, &in, &version, &chg, err, sizeof err) != 0) _exit(4);
    }
    raise(SIGKILL);
    _exit(5);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  syn_store_options o = {1, true, 0, 0, 16, 4};
  char err[256];
  f->st = syn_store_open(f->path, &o, err, sizeof err);
  assert_non_null(f->st);
  assert_int_equal(syn_store_count(f->st), 50);
  syn_shard s;
  assert_int_equal(syn_store_get(f->st, "0000000000000000000000000000000000000049", true, &s), 0);
  assert_float_equal(s.embedding[1], 49.0, 0);
  syn_shard_free(&s);
}

/* ---- versions, tombstones, digests ---- */

static bool stored_version(fixture *f, const char *h, int64_t ms, bool deleted) {
  syn_key_version kv;
  if (syn_store_version(f->st, h, &kv) != 0) return false;
  return kv.version.hlc == syn_hlc_from_ms(ms) && kv.deleted == deleted;
}

/* Newest version wins, whatever order the writes arrive in; a tombstone is a version
 * like any other, and only a newer write brings a deleted shard back. */
static void test_versions_newest_wins(void **state) {
  fixture *f = *state;
  char h[41];
  syn_shard_input in = base_input('e', h);
  syn_store_change chg;
  in.display_name = "v20";
  assert_int_equal(put(f, &in, 20, &chg), 0);
  assert_true(chg.applied && !chg.existed);
  in.display_name = "v10";
  assert_int_equal(put(f, &in, 10, &chg), 0); /* older: kept out */
  assert_false(chg.applied);
  assert_true(chg.existed);
  syn_shard s;
  assert_int_equal(syn_store_get(f->st, h, false, &s), 0);
  assert_string_equal(s.display_name, "v20");
  assert_int_equal(s.version.hlc, syn_hlc_from_ms(20));
  assert_string_equal(s.version.node, "t");
  syn_shard_free(&s);
  /* The same version from another node id wins by id (a deterministic tie-break). */
  syn_version tie = ver(20);
  snprintf(tie.node, sizeof tie.node, "u");
  in.display_name = "v20u";
  char err[128];
  assert_int_equal(syn_store_put(f->st, &in, &tie, &chg, err, sizeof err), 0);
  assert_true(chg.applied);
  syn_version old = ver(15), newer = ver(30), older_put = ver(25), newest = ver(40);
  assert_int_equal(syn_store_delete(f->st, h, &old, 100, &chg), 0);
  assert_false(chg.applied); /* a delete older than the record does nothing */
  assert_int_equal(syn_store_get(f->st, h, false, &s), 0);
  syn_shard_free(&s);
  assert_int_equal(syn_store_delete(f->st, h, &newer, 100, &chg), 0);
  assert_true(chg.applied && chg.existed);
  assert_true(stored_version(f, h, 30, true));
  assert_int_equal(syn_store_put(f->st, &in, &older_put, &chg, err, sizeof err), 0);
  assert_false(chg.applied); /* an older registration stays deleted */
  assert_int_equal(syn_store_get(f->st, h, false, &s), -ENOENT);
  assert_int_equal(syn_store_put(f->st, &in, &newest, &chg, err, sizeof err), 0);
  assert_true(chg.applied && !chg.existed);
  assert_true(stored_version(f, h, 40, false));
  assert_int_equal(syn_store_count(f->st), 1);
}

static void digest_copy(fixture *f, uint64_t *out) { syn_store_digests(f->st, out); }

static bool digests_zero(const uint64_t *d, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (d[i]) return false;
  return true;
}

/* Digests follow every write; the same records give the same digests in any order;
 * forgetting a record takes it out again; they survive a reopen. */
static void test_digests_track_writes(void **state) {
  fixture *f = *state;
  assert_int_equal(syn_store_partitions(f->st), 16);
  assert_int_equal(syn_store_buckets(f->st), 4);
  size_t n = 16 * 4;
  uint64_t d0[64], d1[64], d2[64];
  digest_copy(f, d0);
  assert_true(digests_zero(d0, n));
  char ha[41], hb[41];
  syn_shard_input a = base_input('1', ha), b = base_input('2', hb);
  assert_int_equal(put(f, &a, 5, NULL), 0);
  assert_int_equal(put(f, &b, 6, NULL), 0);
  digest_copy(f, d1);
  assert_false(digests_zero(d1, n));
  /* The same end state reached another way: b first, then a at an older version (kept
   * out), then a again at the same version as before. */
  syn_store_change chg;
  assert_int_equal(syn_store_forget(f->st, ha, &chg), 0);
  assert_int_equal(syn_store_forget(f->st, hb, &chg), 0);
  digest_copy(f, d2);
  assert_true(digests_zero(d2, n)); /* nothing left: back to zero */
  assert_int_equal(put(f, &b, 6, NULL), 0);
  assert_int_equal(put(f, &a, 5, NULL), 0);
  digest_copy(f, d2);
  assert_memory_equal(d1, d2, n * 8);
  /* A tombstone is part of the digest too. */
  syn_version v = ver(9);
  assert_int_equal(syn_store_delete(f->st, ha, &v, 1000, &chg), 0);
  digest_copy(f, d2);
  assert_memory_not_equal(d1, d2, n * 8);
  /* The bucket lists what the digest covers. */
  uint8_t key[20];
  syn_hex_decode(ha, 40, key, 20);
  uint32_t bucket = syn_bucket_of(16, 4, key);
  syn_key_version *keys = NULL;
  size_t nk = 0, cap = 0;
  assert_int_equal(syn_store_bucket_keys(f->st, bucket, &keys, &nk, &cap), 0);
  bool found = false;
  for (size_t i = 0; i < nk; i++)
    found |= !strcmp(keys[i].info_hash, ha) && keys[i].deleted && keys[i].deleted_at_ms == 1000;
  assert_true(found);
  free(keys);
  char(*pk)[65] = NULL;
  size_t np = 0;
  assert_int_equal(syn_store_partition_keys(f->st, syn_partition_of(16, key), &pk, &np), 0);
  assert_true(np >= 1);
  free(pk);
  /* Reopened with the same layout: the digests come back as they were. */
  syn_store_close(f->st);
  syn_store_options o = {2, false, 64, 4, 16, 4};
  char err[256];
  f->st = syn_store_open(f->path, &o, err, sizeof err);
  assert_non_null(f->st);
  uint64_t d3[64];
  digest_copy(f, d3);
  assert_memory_equal(d2, d3, n * 8);
}

/* A batch ends where the same writes one by one end, digests included; a record that
 * fails inside it (here one that would replace b with metadata the schema refuses) undoes
 * itself alone; what the batch wrote survives a reopen. */
static void test_batch_matches_single_writes(void **state) {
  fixture *f = *state;
  char ha[41], hb[41], hc[41];
  syn_shard_input a = base_input('a', ha), b = base_input('b', hb);
  base_input('c', hc);
  syn_version va = ver(5), vb = ver(6), vbad = ver(7), vc = ver(9);
  syn_store_change chg;
  char err[256];
  assert_int_equal(syn_store_put(f->st, &a, &va, &chg, err, sizeof err), 0);
  assert_int_equal(syn_store_put(f->st, &b, &vb, &chg, err, sizeof err), 0);
  assert_int_equal(syn_store_delete(f->st, hc, &vc, 1000, &chg), 0);
  uint64_t want[64], got[64];
  digest_copy(f, want);

  char path[600];
  snprintf(path, sizeof path, "%s/batch.db", f->dir);
  syn_store_options o = {2, false, 64, 4, 16, 4};
  syn_store *st = syn_store_open(path, &o, err, sizeof err);
  assert_non_null(st);
  assert_int_equal(syn_store_batch_begin(st), 0);
  assert_int_equal(syn_store_batch_put(st, &a, &va, &chg, err, sizeof err), 0);
  assert_true(chg.applied);
  assert_int_equal(syn_store_batch_put(st, &b, &vb, &chg, err, sizeof err), 0);
  syn_shard_input bad = b;
  bad.display_name = "bad";
  bad.metadata_json = "[1]";
  assert_int_equal(syn_store_batch_put(st, &bad, &vbad, &chg, err, sizeof err), -EINVAL);
  assert_int_equal(syn_store_batch_delete(st, hc, &vc, 1000, &chg), 0);
  assert_true(chg.applied && !chg.existed);
  assert_int_equal(syn_store_batch_delete(st, "not a hash", &vc, 1000, &chg), -EINVAL);
  assert_int_equal(syn_store_batch_end(st), 0);
  syn_store_digests(st, got);
  assert_memory_equal(want, got, sizeof want);
  syn_shard sb;
  assert_int_equal(syn_store_get(st, hb, false, &sb), 0);
  assert_string_equal(sb.display_name, "shard");
  assert_int_equal(sb.version.hlc, vb.hlc);
  syn_shard_free(&sb);
  assert_int_equal(syn_store_count(st), 2);
  syn_store_close(st);
  st = syn_store_open(path, &o, err, sizeof err);
  assert_non_null(st);
  syn_store_digests(st, got);
  assert_memory_equal(want, got, sizeof want);
  assert_int_equal(syn_store_count(st), 2);
  syn_store_close(st);
}

/* Opened with another partition count, every bucket and digest is recomputed: the
 * partition digests are those of the new layout. */
static void test_digests_relayout(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 20; i++) {
    char scratch[41], h[41];
    syn_shard_input in = base_input('x', scratch);
    snprintf(h, sizeof h, "%08x%032d", (unsigned)i * 2654435761u, i);
    in.info_hash = h;
    assert_int_equal(put(f, &in, 10 + i, NULL), 0);
  }
  syn_store_close(f->st);
  syn_store_options o = {2, false, 64, 4, 8, 2};
  char err[256];
  f->st = syn_store_open(f->path, &o, err, sizeof err);
  assert_non_null(f->st);
  assert_int_equal(syn_store_partitions(f->st), 8);
  uint64_t got[16], want[16] = {0};
  syn_store_digests(f->st, got);
  for (int i = 0; i < 20; i++) {
    char h[41];
    snprintf(h, sizeof h, "%08x%032d", (unsigned)i * 2654435761u, i);
    uint8_t key[20];
    syn_hex_decode(h, 40, key, 20);
    syn_version v = ver(10 + i);
    want[syn_bucket_of(8, 2, key)] ^= syn_record_digest(h, &v, false);
  }
  assert_memory_equal(got, want, sizeof got);
}

/* Only tombstones stored before the cutoff go, and a record written since survives. */
static void test_purge_tombstones(void **state) {
  fixture *f = *state;
  char ha[41], hb[41], hc[41];
  syn_shard_input a = base_input('a', ha), b = base_input('b', hb), c = base_input('c', hc);
  (void)c;
  assert_int_equal(put(f, &a, 1, NULL), 0);
  assert_int_equal(put(f, &b, 1, NULL), 0);
  syn_store_change chg;
  syn_version v2 = ver(2);
  assert_int_equal(syn_store_delete(f->st, ha, &v2, 1000, &chg), 0);
  assert_int_equal(syn_store_delete(f->st, hb, &v2, 5000, &chg), 0);
  assert_int_equal(syn_store_delete(f->st, hc, &v2, 1000, &chg), 0); /* never registered */
  assert_int_equal(put(f, &c, 3, NULL), 0);                          /* newer: back */
  size_t purged = 0;
  assert_int_equal(syn_store_purge_tombstones(f->st, 2000, 100, &purged), 0);
  assert_int_equal(purged, 1); /* a's; b's is younger; c is a record again */
  syn_key_version kv;
  assert_int_equal(syn_store_version(f->st, ha, &kv), -ENOENT);
  assert_true(stored_version(f, hb, 2, true));
  assert_true(stored_version(f, hc, 3, false));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_roundtrip_all_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_upsert_keeps_created_at, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_collections_by_model_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scan_probe_and_exact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_session_snapshot, setup, teardown),
      cmocka_unit_test_setup_teardown(test_without_embedding, setup, teardown),
      cmocka_unit_test(test_fts_query_builder),
      cmocka_unit_test_setup_teardown(test_fts_ranking_and_filters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill9_durability, setup, teardown),
      cmocka_unit_test_setup_teardown(test_versions_newest_wins, setup, teardown),
      cmocka_unit_test_setup_teardown(test_digests_track_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batch_matches_single_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_digests_relayout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_purge_tombstones, setup, teardown),
  };
  return cmocka_run_group_tests_name("shard_store", tests, NULL, NULL);
}
