/* The component through its face (index.h): register/get/delete/search with SQLite and
 * faiss together, exactness against brute force, filters that still fill `limit`, model
 * normalisation, the auto switch in the background, snapshots across reopen (missing,
 * stale, corrupt), text search, kill -9 durability, concurrent searches and writes, group
 * commit (concurrent registrations; every acknowledged one durable across kill -9). */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "index/index.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/hlc.h"
#include "index/testutil.h"

enum { D = 32, K = 10 };

typedef struct fx {
  char *dir;
  syn_index_config cfg;
  syn_index *idx;
  float *vecs; /* shard i's embedding at vecs + i * D */
  size_t nvecs;
  unsigned char *live; /* which shards are registered now */
} fx;

/* A version at `ms`, strictly after every earlier one this test made (node "t"). */
static const syn_version *tv(int64_t ms) {
  static syn_version v;
  static uint64_t seq;
  v.hlc = syn_hlc_from_ms(ms) + ++seq;
  snprintf(v.node, sizeof v.node, "t");
  return &v;
}

static void hash_of(size_t i, char out[41]) { snprintf(out, 41, "%040zx", i + 1); }

static syn_index *open_idx(fx *f) {
  char err[256] = "";
  syn_index *idx = syn_index_open(&f->cfg, f->dir, err, sizeof err);
  if (!idx) fprintf(stderr, "open: %s\n", err);
  return idx;
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir("index");
  syn_index_config_defaults(&f->cfg);
  f->cfg.sync_full = false; /* NORMAL survives kill -9 too; FULL's fsyncs would slow tests */
  f->nvecs = 4000;
  f->vecs = tu_clustered(11, f->nvecs, D, 40, 0.7);
  f->live = calloc(f->nvecs, 1);
  f->idx = open_idx(f);
  *state = f;
  return f->idx ? 0 : -1;
}

static int teardown(void **state) {
  fx *f = *state;
  syn_index_close(f->idx);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f->vecs);
  free(f->live);
  free(f);
  return 0;
}

static void reopen(fx *f) {
  syn_index_close(f->idx);
  f->idx = open_idx(f);
  assert_non_null(f->idx);
}

/* Registers shard i with a model and up to two tags. */
static void reg(fx *f, size_t i, const char *model, const char *tag1, const char *tag2) {
  char h[41], name[64];
  hash_of(i, h);
  snprintf(name, sizeof name, "shard %zu", i);
  const char *tags[2] = {tag1, tag2};
  syn_shard_input in = {.info_hash = h,
                        .display_name = name,
                        .model = model,
                        .dimension = D,
                        .embedding = f->vecs + i * D,
                        .tags = tags,
                        .tag_count = tag2   ? 2
                                     : tag1 ? 1
                                            : 0,
                        .file_size = -1,
                        .entry_count = -1};
  char err[256] = "";
  int rc = syn_index_register(f->idx, &in, tv(1000 + (int64_t)i), NULL, err, sizeof err);
  if (rc) fail_msg("register %zu: %s", i, err);
  f->live[i] = 1;
}

static void del(fx *f, size_t i) {
  char h[41];
  hash_of(i, h);
  bool existed = false;
  assert_int_equal(syn_index_delete(f->idx, h, tv(1 << 30), 1, NULL, &existed), 0);
  assert_true(existed);
  f->live[i] = 0;
}

static size_t index_of(const syn_hit *h) { return strtoull(h->shard.info_hash, NULL, 16) - 1; }

static int search(fx *f, const float *q, const syn_search_filter *flt, uint32_t limit,
                  syn_hit **hits, size_t *n, syn_search_info *info) {
  return syn_index_search_embedding(f->idx, q, D, flt, limit, hits, n, info);
}

/* Whether shard i is the best hit for its own vector. */
static bool finds_itself(fx *f, size_t i) {
  syn_hit *hits;
  size_t n;
  assert_int_equal(search(f, f->vecs + i * D, NULL, 1, &hits, &n, NULL), 0);
  bool ok = n == 1 && index_of(&hits[0]) == i;
  syn_hits_free(hits, n);
  return ok;
}

static bool found_in_top(fx *f, size_t i, uint32_t k) {
  syn_hit *hits;
  size_t n;
  assert_int_equal(search(f, f->vecs + i * D, NULL, k, &hits, &n, NULL), 0);
  bool found = false;
  for (size_t j = 0; j < n; j++) found |= index_of(&hits[j]) == i;
  syn_hits_free(hits, n);
  return found;
}

/* ---- basics ---------------------------------------------------------------------------- */

static void test_register_get_delete(void **state) {
  fx *f = *state;
  reg(f, 0, "nomic-ai/nomic-embed-text-v1.5", "notes", NULL);
  syn_shard s;
  char h[41];
  hash_of(0, h);
  assert_int_equal(syn_index_get(f->idx, h, true, &s), 0);
  assert_string_equal(s.display_name, "shard 0");
  assert_string_equal(s.model_key, "nomic-embed-text-v1.5");
  assert_memory_equal(s.embedding, f->vecs, D * sizeof(float));
  syn_shard_free(&s);
  syn_hit *hits;
  size_t n;
  assert_int_equal(search(f, f->vecs, NULL, 5, &hits, &n, NULL), 0);
  assert_int_equal(n, 1);
  assert_string_equal(hits[0].shard.info_hash, h);
  assert_float_equal(hits[0].similarity, 1.0, 1e-5);
  assert_int_equal(hits[0].shard.tag_count, 1);
  assert_null(hits[0].shard.embedding);
  syn_hits_free(hits, n);
  bool existed = false;
  assert_int_equal(syn_index_delete(f->idx, h, tv(1 << 30), 5, NULL, &existed), 0);
  assert_true(existed);
  assert_int_equal(syn_index_get(f->idx, h, false, &s), -ENOENT);
  assert_int_equal(syn_index_delete(f->idx, h, tv(1 << 30), 6, NULL, &existed), 0);
  assert_false(existed); /* a second delete finds only the tombstone */
  assert_int_equal(search(f, f->vecs, NULL, 5, &hits, &n, NULL), 0);
  assert_int_equal(n, 0);
  syn_hits_free(hits, n);
  syn_index_stats st;
  assert_int_equal(syn_index_stats_get(f->idx, &st), 0);
  assert_int_equal(st.shards, 0);
  assert_int_equal(st.registrations, 1);
  assert_int_equal(st.deletions, 1);
}

static void test_bad_input(void **state) {
  fx *f = *state;
  reg(f, 0, "m", NULL, NULL);
  syn_hit *hits;
  size_t n;
  float zero[D] = {0}, nan_q[D] = {0};
  nan_q[3] = NAN;
  static const char *const names[] = {"limit 0",    "limit too big", "zero query", "NaN query",
                                      "NULL query", "empty model",   "bad tag",    "NaN min_sim"};
  for (int c = 0; c < (int)(sizeof names / sizeof names[0]); c++) {
    const float *q = f->vecs;
    uint32_t limit = 5;
    syn_search_filter flt = {0};
    const char *bad_tags[] = {"a\nb"};
    switch (c) {
    case 0: limit = 0; break;
    case 1: limit = SYN_SEARCH_MAX_LIMIT + 1; break;
    case 2: q = zero; break;
    case 3: q = nan_q; break;
    case 4: q = NULL; break;
    case 5: flt.model = "org/"; break;
    case 6: flt.tags = bad_tags, flt.tag_count = 1; break;
    case 7: flt.min_similarity = NAN; break;
    }
    int rc = search(f, q, &flt, limit, &hits, &n, NULL);
    if (rc != -EINVAL) fail_msg("case '%s': rc %d", names[c], rc);
    assert_null(hits);
  }
  /* Another dimension is not an error: nothing of that dimension here. */
  syn_search_info info;
  float q16[16] = {1};
  assert_int_equal(syn_index_search_embedding(f->idx, q16, 16, NULL, 5, &hits, &n, &info), 0);
  assert_int_equal(n, 0);
  assert_false(info.model_known);
  syn_hits_free(hits, n);
  char err[128] = "";
  syn_shard_input in = {.info_hash = "nothex",
                        .display_name = "x",
                        .model = "m",
                        .dimension = D,
                        .embedding = f->vecs};
  assert_int_equal(syn_index_register(f->idx, &in, tv(1), NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "info_hash"));
  assert_int_equal(syn_index_get(f->idx, "nothex", false, &(syn_shard){0}), -EINVAL);
  assert_string_equal(syn_index_strerror(-ENOENT), "no such shard");
}

/* Exact (flat, the auto default below its threshold) results equal brute force. */
static void test_matches_bruteforce(void **state) {
  fx *f = *state;
  const size_t n = 1500;
  for (size_t i = 0; i < n; i++) reg(f, i, "m", NULL, NULL);
  float *all = tu_clustered(11, f->nvecs + 20, D, 40, 0.7); /* same centres, new points */
  const float *queries = all + f->nvecs * D;
  for (size_t q = 0; q < 20; q++) {
    syn_hit *hits;
    size_t m;
    assert_int_equal(search(f, queries + q * D, NULL, K, &hits, &m, NULL), 0);
    assert_int_equal(m, K);
    size_t rows[K];
    assert_int_equal(tu_topk(f->vecs, n, D, queries + q * D, NULL, K, rows), K);
    for (size_t i = 0; i < K; i++) {
      assert_int_equal(index_of(&hits[i]), rows[i]);
      double cos = tu_dot(f->vecs + rows[i] * D, queries + q * D, D);
      assert_float_equal(hits[i].raw, cos, 1e-5);
      assert_float_equal(hits[i].similarity, cos > 0 ? cos : 0, 1e-5);
    }
    syn_hits_free(hits, m);
  }
  syn_hit *hits;
  size_t m;
  assert_int_equal(search(f, queries, NULL, SYN_SEARCH_MAX_LIMIT, &hits, &m, NULL), 0);
  assert_int_equal(m, SYN_SEARCH_MAX_LIMIT);
  for (size_t i = 1; i < m; i++) assert_true(hits[i - 1].raw >= hits[i].raw);
  syn_hits_free(hits, m);
  free(all);
}

static void test_min_similarity(void **state) {
  fx *f = *state;
  for (size_t i = 0; i < 500; i++) reg(f, i, "m", NULL, NULL);
  const float *q = f->vecs + 7 * D;
  size_t want = 0;
  for (size_t i = 0; i < 500; i++) want += tu_dot(f->vecs + i * D, q, D) >= 0.6;
  assert_true(want > 1 && want < 200);
  syn_search_filter flt = {.min_similarity = 0.6};
  syn_hit *hits;
  size_t n;
  assert_int_equal(search(f, q, &flt, 200, &hits, &n, NULL), 0);
  assert_int_equal(n, want);
  for (size_t i = 0; i < n; i++) assert_true(hits[i].similarity >= 0.6);
  syn_hits_free(hits, n);
}

static void test_model_filter_normalised(void **state) {
  fx *f = *state;
  for (size_t i = 0; i < 30; i++) reg(f, i, "nomic-ai/nomic-embed-text-v1.5", NULL, NULL);
  for (size_t i = 30; i < 60; i++) reg(f, i, "nomic-embed-text-v1.5", NULL, NULL);
  for (size_t i = 60; i < 90; i++) reg(f, i, "other-model", NULL, NULL);
  syn_hit *hits;
  size_t n;
  syn_search_info info;
  syn_search_filter flt = {.model = " NOMIC-EMBED-TEXT-V1.5 "};
  assert_int_equal(search(f, f->vecs + 65 * D, &flt, 100, &hits, &n, &info), 0);
  assert_int_equal(n, 60);
  assert_true(info.model_known);
  assert_int_equal(info.collections, 1);
  for (size_t i = 0; i < n; i++) assert_true(index_of(&hits[i]) < 60);
  syn_hits_free(hits, n);
  /* Without a model: every collection of the dimension, merged by similarity. */
  assert_int_equal(search(f, f->vecs + 65 * D, NULL, 100, &hits, &n, &info), 0);
  assert_int_equal(n, 90);
  assert_int_equal(info.collections, 2);
  assert_int_equal(index_of(&hits[0]), 65);
  syn_hits_free(hits, n);
  flt.model = "unknown-model";
  assert_int_equal(search(f, f->vecs, &flt, 10, &hits, &n, &info), 0);
  assert_int_equal(n, 0);
  assert_false(info.model_known);
  syn_hits_free(hits, n);
}

/* ---- filters fill `limit` -------------------------------------------------------------- */

static void check_tag_search(fx *f, size_t n, const char *tag, size_t period, bool exact_index) {
  const char *tags[] = {tag};
  syn_search_filter flt = {.tags = tags, .tag_count = 1};
  unsigned char *keep = calloc(n, 1);
  size_t matching = 0;
  for (size_t i = 0; i < n; i++) matching += keep[i] = i % period == 0;
  float *all = tu_clustered(11, f->nvecs + 10, D, 40, 0.7);
  const float *queries = all + f->nvecs * D;
  double recall = 0;
  syn_search_info info = {0};
  for (size_t q = 0; q < 10; q++) {
    syn_hit *hits;
    size_t m;
    assert_int_equal(search(f, queries + q * D, &flt, K, &hits, &m, &info), 0);
    size_t want = matching < K ? matching : K;
    if (m != want) fail_msg("tag %s: %zu hits, %zu expected", tag, m, want);
    size_t rows[K];
    size_t nt = tu_topk(f->vecs, n, D, queries + q * D, keep, K, rows);
    int64_t got[K], truth_l[K];
    for (size_t i = 0; i < m; i++) {
      assert_true(index_of(&hits[i]) % period == 0); /* every hit carries the tag */
      got[i] = (int64_t)index_of(&hits[i]);
    }
    for (size_t i = 0; i < nt; i++) truth_l[i] = (int64_t)rows[i];
    recall += tu_recall(got, m, truth_l, nt);
    syn_hits_free(hits, m);
  }
  recall /= 10;
  printf("    tag %-6s (%4zu of %zu match): recall %.3f, exact path %d, rounds %u\n", tag, matching,
         n, recall, info.exact, info.rounds);
  if (exact_index || info.exact)
    assert_float_equal(recall, 1.0, 1e-9);
  else
    assert_true(recall >= 0.9);
  free(all);
  free(keep);
}

static void check_tag_filters(fx *f, syn_index_type type) {
  f->cfg.type = type;
  f->cfg.exact_filter_max = 50;
  reopen(f);
  const size_t n = 2000;
  for (size_t i = 0; i < n; i++) {
    const char *t1 = i % 3 == 0 ? "common" : NULL;
    const char *t2 = i % 100 == 0 ? "RARE" : i % 20 == 0 ? "mid" : NULL;
    if (!t1) t1 = t2, t2 = NULL;
    reg(f, i, "m", t1, t2);
  }
  bool exact = type == SYN_INDEX_FLAT;
  check_tag_search(f, n, "common", 3, exact); /* 667 match: ANN, a little deeper */
  check_tag_search(f, n, "rare", 100, exact); /* 20 match: exact scan, case-insensitive */
  /* "mid" is on multiples of 20 that are not multiples of 100: 80 shards. */
  const char *tags[] = {"mid", "rare"}; /* any of: multiples of 20 */
  syn_search_filter flt = {.tags = tags, .tag_count = 2};
  syn_hit *hits;
  size_t m;
  syn_search_info info;
  assert_int_equal(search(f, f->vecs + 5 * D, &flt, 50, &hits, &m, &info), 0);
  assert_int_equal(m, 50); /* 100 match (> exact_filter_max): deep ANN still fills 50 */
  for (size_t i = 0; i < m; i++) assert_true(index_of(&hits[i]) % 20 == 0);
  printf("    tags mid|rare (100 of %zu match), limit 50: %zu hits, rounds %u, exact %d\n", n, m,
         info.rounds, info.exact);
  syn_hits_free(hits, m);
  /* "skew" is on 200 shards of another model and 15 of this one: the tag count (over all
   * collections) overestimates this collection's share, so the search has to go deeper
   * in rounds sized by what it sees, or finish exactly. */
  for (size_t i = 2000; i < 2200; i++) reg(f, i, "other", "skew", NULL);
  for (size_t i = 2200; i < 2215; i++) reg(f, i, "m", "skew", NULL);
  const char *skew[] = {"skew"};
  syn_search_filter fs = {.model = "m", .tags = skew, .tag_count = 1};
  assert_int_equal(search(f, f->vecs + 2205 * D, &fs, K, &hits, &m, &info), 0);
  assert_int_equal(m, K);
  assert_int_equal(index_of(&hits[0]), 2205);
  for (size_t i = 0; i < m; i++) assert_true(index_of(&hits[i]) >= 2200);
  printf("    tag skew (15 of 2000 in this model, 215 in all): %zu hits, rounds %u, exact %d\n", m,
         info.rounds, info.exact);
  assert_true(info.rounds > 1 || info.exact);
  syn_hits_free(hits, m);
  const char *none[] = {"absent"};
  flt.tags = none, flt.tag_count = 1;
  assert_int_equal(search(f, f->vecs, &flt, 10, &hits, &m, &info), 0);
  assert_int_equal(m, 0);
  syn_hits_free(hits, m);
}

static void test_tag_filters_flat(void **state) { check_tag_filters(*state, SYN_INDEX_FLAT); }
static void test_tag_filters_hnsw(void **state) { check_tag_filters(*state, SYN_INDEX_HNSW); }
static void test_tag_filters_ivf_sq8(void **state) { check_tag_filters(*state, SYN_INDEX_IVF_SQ8); }

/* ---- updates ----------------------------------------------------------------------------- */

static void test_update_moves_vector(void **state) {
  fx *f = *state;
  for (size_t i = 0; i < 100; i++) reg(f, i, "model-a", NULL, NULL);
  char h[41];
  hash_of(3, h);
  /* Shard 3 re-registered with shard 500's vector under another model. */
  syn_shard_input in = {.info_hash = h,
                        .display_name = "moved",
                        .model = "model-b",
                        .dimension = D,
                        .embedding = f->vecs + 500 * D,
                        .file_size = -1,
                        .entry_count = -1};
  char err[128];
  assert_int_equal(syn_index_register(f->idx, &in, tv(99999), NULL, err, sizeof err), 0);
  syn_hit *hits;
  size_t n;
  syn_search_filter fa = {.model = "model-a"}, fb = {.model = "model-b"};
  assert_int_equal(search(f, f->vecs + 3 * D, &fa, 100, &hits, &n, NULL), 0);
  assert_int_equal(n, 99);
  for (size_t i = 0; i < n; i++) assert_true(index_of(&hits[i]) != 3);
  syn_hits_free(hits, n);
  assert_int_equal(search(f, f->vecs + 500 * D, &fb, 10, &hits, &n, NULL), 0);
  assert_int_equal(n, 1);
  assert_string_equal(hits[0].shard.display_name, "moved");
  assert_float_equal(hits[0].similarity, 1.0, 1e-5);
  assert_int_equal(hits[0].shard.created_at_ms, 1003); /* kept */
  assert_int_equal(hits[0].shard.updated_at_ms, 99999);
  syn_hits_free(hits, n);
}

/* A shard may come without an embedding: found by words only; gaining one puts it in the
 * vector index, losing it again takes it out. */
static void test_without_embedding(void **state) {
  fx *f = *state;
  reg(f, 0, "m", NULL, NULL);
  char h[41], err[128];
  hash_of(7, h);
  syn_shard_input in = {.info_hash = h,
                        .display_name = "wordless vector",
                        .model = "m",
                        .dimension = D,
                        .file_size = -1,
                        .entry_count = -1};
  assert_int_equal(syn_index_register(f->idx, &in, tv(1), NULL, err, sizeof err), 0);
  syn_hit *hits;
  size_t n;
  assert_int_equal(syn_index_search_text(f->idx, "wordless", NULL, 5, &hits, &n, NULL), 0);
  assert_int_equal(n, 1);
  syn_hits_free(hits, n);
  assert_false(finds_itself(f, 7));
  in.embedding = f->vecs + 7 * D; /* gains an embedding */
  assert_int_equal(syn_index_register(f->idx, &in, tv(2), NULL, err, sizeof err), 0);
  assert_true(finds_itself(f, 7));
  in.embedding = NULL; /* and loses it */
  assert_int_equal(syn_index_register(f->idx, &in, tv(3), NULL, err, sizeof err), 0);
  assert_false(found_in_top(f, 7, 5));
  syn_shard s;
  assert_int_equal(syn_index_get(f->idx, h, true, &s), 0);
  assert_null(s.embedding);
  syn_shard_free(&s);
  reopen(f); /* and nothing of it comes back from a snapshot */
  assert_false(found_in_top(f, 7, 5));
  assert_true(finds_itself(f, 0));
}

/* Paging over every shard (hand-off): id order, one page at a time, embeddings included
 * (NULL for a shard registered without one), deleted shards absent. */
static void test_list_pages(void **state) {
  fx *f = *state;
  for (size_t i = 0; i < 25; i++) reg(f, i, i % 2 ? "a" : "b", NULL, NULL);
  for (size_t i = 0; i < 25; i += 8) del(f, i);
  char h[41], err[64];
  hash_of(30, h);
  syn_shard_input bare = {.info_hash = h,
                          .display_name = "bare",
                          .model = "a",
                          .dimension = D,
                          .file_size = -1,
                          .entry_count = -1};
  assert_int_equal(syn_index_register(f->idx, &bare, tv(1), NULL, err, sizeof err), 0);
  syn_shard page[10];
  size_t n, total = 0;
  int64_t cursor = 0, last = 0;
  do {
    assert_int_equal(syn_index_list(f->idx, cursor, 10, true, page, &n), 0);
    assert_true(n <= 10);
    for (size_t i = 0; i < n; i++) {
      assert_true(page[i].id > last);
      last = page[i].id;
      size_t idx = strtoull(page[i].info_hash, NULL, 16) - 1;
      if (idx == 30) {
        assert_null(page[i].embedding);
      } else {
        assert_true(f->live[idx]);
        assert_memory_equal(page[i].embedding, f->vecs + idx * D, D * sizeof(float));
      }
      syn_shard_free(&page[i]);
    }
    total += n;
    if (n) cursor = last;
  } while (n > 0);
  assert_int_equal(total, 25 - 4 + 1);
}

/* ---- the auto index switches in the background ------------------------------------------ */

static void test_auto_switch_in_background(void **state) {
  fx *f = *state;
  f->cfg.auto_threshold = 1500;
  f->cfg.min_train = 500;
  reopen(f);
  size_t i = 0;
  for (; i < 1600; i++) reg(f, i, "m", NULL, NULL);
  /* Keep writing and searching while the IVF is trained and swapped in; every new shard
   * must be found at once, whichever index answers. */
  syn_index_stats st;
  double t0 = tu_now();
  bool switched = false;
  size_t during = 0;
  while (i < f->nvecs && tu_now() - t0 < 30) {
    reg(f, i, "m", NULL, NULL);
    assert_true(found_in_top(f, i, 3));
    i++;
    assert_int_equal(syn_index_stats_get(f->idx, &st), 0);
    if (st.collections[0].building) during++;
    if (st.collections[0].type == SYN_INDEX_IVF && !st.collections[0].building) {
      switched = true;
      break;
    }
  }
  assert_true(switched);
  printf(
      "    switched to IVF (nlist %u, nprobe %u) at %zu shards; %zu registered during the"
      " build\n",
      st.collections[0].nlist, st.collections[0].nprobe, i, during);
  assert_int_equal(syn_index_wait_idle(f->idx, 20000), 0);
  assert_int_equal(syn_index_stats_get(f->idx, &st), 0);
  assert_int_equal(st.collections[0].vectors, i);
  assert_true(st.collections[0].snapshots_written >= 1);
  size_t found = 0;
  for (size_t j = 0; j < i; j += 7) found += found_in_top(f, j, 3);
  assert_true(found >= (i / 7) * 95 / 100);
}

/* ---- snapshots across reopen ------------------------------------------------------------- */

static void test_reopen_keeps_everything(void **state) {
  fx *f = *state;
  f->cfg.type = SYN_INDEX_HNSW;
  reopen(f);
  for (size_t i = 0; i < 600; i++) reg(f, i, "m", i % 2 ? "odd" : "even", NULL);
  for (size_t i = 0; i < 50; i++) del(f, i * 3);
  for (size_t i = 1000; i < 1020; i++) reg(f, i, "m", NULL, NULL);
  reopen(f);
  syn_index_stats st;
  assert_int_equal(syn_index_stats_get(f->idx, &st), 0);
  assert_int_equal(st.snapshot_loads, 1);
  assert_int_equal(st.snapshot_rejects, 0);
  assert_int_equal(st.reconciliations, 0);
  assert_int_equal(st.shards, 570);
  assert_int_equal(st.collections[0].type, SYN_INDEX_HNSW);
  assert_int_equal(st.collections[0].tombstones, 50);
  for (size_t i = 0; i < 1020; i++) {
    if (i >= 600 && i < 1000) continue;
    if (f->live[i] != finds_itself(f, i)) fail_msg("shard %zu live %d", i, f->live[i]);
  }
  syn_shard s;
  char h[41];
  hash_of(1, h);
  assert_int_equal(syn_index_get(f->idx, h, false, &s), 0);
  assert_string_equal(s.tags[0], "odd");
  syn_shard_free(&s);
}

static void list_snapshot_files(const char *dir, char paths[][800], size_t *n) {
  char vd[512];
  snprintf(vd, sizeof vd, "%s/vectors", dir);
  DIR *d = opendir(vd);
  assert_non_null(d);
  struct dirent *e;
  *n = 0;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') snprintf(paths[(*n)++], 800, "%s/%s", vd, e->d_name);
  closedir(d);
}

static void copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  assert_true(a && b);
  char buf[65536];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, a)) > 0) assert_int_equal(fwrite(buf, 1, got, b), got);
  fclose(a);
  fclose(b);
}

static void test_snapshot_missing_stale_corrupt(void **state) {
  fx *f = *state;
  f->cfg.type = SYN_INDEX_IVF;
  f->cfg.min_train = 200;
  reopen(f);
  for (size_t i = 0; i < 400; i++) reg(f, i, "m", NULL, NULL);
  assert_int_equal(syn_index_wait_idle(f->idx, 20000), 0); /* trained in the background */
  syn_index_close(f->idx);
  f->idx = NULL;
  char files[4][800], saved[4][820];
  size_t nf;
  list_snapshot_files(f->dir, files, &nf);
  assert_int_equal(nf, 2);

  /* Stale: keep the snapshot aside, change the data, put the old snapshot back. */
  for (size_t j = 0; j < nf; j++) {
    snprintf(saved[j], sizeof saved[j], "%.790s.saved", files[j]);
    copy_file(files[j], saved[j]);
  }
  f->idx = open_idx(f);
  for (size_t i = 400; i < 430; i++) reg(f, i, "m", NULL, NULL);
  for (size_t i = 0; i < 10; i++) del(f, i);
  syn_index_close(f->idx);
  for (size_t j = 0; j < nf; j++) copy_file(saved[j], files[j]);
  f->idx = open_idx(f);
  syn_index_stats st;
  syn_index_stats_get(f->idx, &st);
  assert_int_equal(st.snapshot_loads, 1);
  assert_int_equal(st.reconciliations, 1);
  assert_int_equal(st.collections[0].type, SYN_INDEX_IVF);
  for (size_t i = 0; i < 430; i++)
    if (f->live[i] != finds_itself(f, i)) fail_msg("stale: shard %zu live %d", i, f->live[i]);

  /* Missing: delete the snapshot files. */
  syn_index_close(f->idx);
  for (size_t j = 0; j < nf; j++) unlink(files[j]), unlink(saved[j]);
  f->idx = open_idx(f);
  syn_index_stats_get(f->idx, &st);
  assert_int_equal(st.snapshot_loads, 0);
  assert_int_equal(st.snapshot_rejects, 1);
  for (size_t i = 0; i < 430; i += 5)
    if (f->live[i] != finds_itself(f, i)) fail_msg("missing: shard %zu live %d", i, f->live[i]);
  assert_int_equal(syn_index_wait_idle(f->idx, 20000), 0); /* IVF rebuilt, snapshot written */

  /* Corrupt: flip a byte of the faiss file. */
  syn_index_close(f->idx);
  list_snapshot_files(f->dir, files, &nf);
  assert_int_equal(nf, 2);
  for (size_t j = 0; j < nf; j++) {
    if (!strstr(files[j], ".faiss")) continue;
    FILE *fp = fopen(files[j], "r+b");
    fseek(fp, 300, SEEK_SET);
    fputc(0xAB, fp);
    fclose(fp);
  }
  f->idx = open_idx(f);
  syn_index_stats_get(f->idx, &st);
  assert_int_equal(st.snapshot_rejects, 1);
  for (size_t i = 0; i < 430; i += 5)
    if (f->live[i] != finds_itself(f, i)) fail_msg("corrupt: shard %zu live %d", i, f->live[i]);
}

/* ---- text search --------------------------------------------------------------------------- */

static void reg_doc(fx *f, size_t i, const char *name, const char *desc, const char *tag,
                    const char *model) {
  char h[41];
  hash_of(i, h);
  const char *tags[] = {tag};
  syn_shard_input in = {.info_hash = h,
                        .display_name = name,
                        .model = model,
                        .dimension = D,
                        .embedding = f->vecs + i * D,
                        .tags = tags,
                        .tag_count = 1,
                        .description = desc,
                        .file_size = -1,
                        .entry_count = -1};
  char err[128];
  assert_int_equal(syn_index_register(f->idx, &in, tv(1), NULL, err, sizeof err), 0);
}

static void test_text_search(void **state) {
  fx *f = *state;
  reg_doc(f, 0, "Async Rust patterns", "executors and wakers", "programming", "m1");
  reg_doc(f, 1, "Rust on the garden fence", "iron oxide, async free", "garden", "m1");
  reg_doc(f, 2, "Pasta", "cooking notes", "rust", "m2");
  reg_doc(f, 3, "Unrelated", "nothing", "misc", "m1");
  syn_hit *hits;
  size_t n;
  syn_search_info info;
  assert_int_equal(syn_index_search_text(f->idx, "rust async", NULL, 10, &hits, &n, &info), 0);
  assert_int_equal(n, 3);
  /* Similarity is query-term coverage: both words in the name 1; "rust" in the name and
   * "async" in the description 0.75; "rust" as a tag alone 0.5. */
  static const char *const names[] = {"Async Rust patterns", "Rust on the garden fence", "Pasta"};
  static const double sims[] = {1.0, 0.75, 0.5};
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(hits[i].shard.display_name, names[i]);
    assert_float_equal(hits[i].similarity, sims[i], 1e-9);
  }
  syn_hits_free(hits, n);
  syn_search_filter flt = {.model = "org/M2"};
  assert_int_equal(syn_index_search_text(f->idx, "rust", &flt, 10, &hits, &n, NULL), 0);
  assert_int_equal(n, 1);
  assert_string_equal(hits[0].shard.display_name, "Pasta"); /* matched by its tag */
  syn_hits_free(hits, n);
  flt.model = "no-such-model";
  assert_int_equal(syn_index_search_text(f->idx, "rust", &flt, 10, &hits, &n, &info), 0);
  assert_int_equal(n, 0);
  assert_false(info.model_known);
  syn_hits_free(hits, n);
  const char *tags[] = {"Garden"};
  syn_search_filter ft = {.tags = tags, .tag_count = 1};
  assert_int_equal(syn_index_search_text(f->idx, "rust", &ft, 10, &hits, &n, NULL), 0);
  assert_int_equal(n, 1);
  syn_hits_free(hits, n);
  static const char *const hostile[] = {"",          "   ", "\"",    "((",  "rust\" OR \"1",
                                        "NEAR(a b)", "*",   "rust*", "AND", "display_name:x",
                                        "\xff\xfe"};
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    int rc = syn_index_search_text(f->idx, hostile[i], NULL, 10, &hits, &n, NULL);
    if (rc) fail_msg("hostile query %zu failed: %d", i, rc);
    syn_hits_free(hits, n);
  }
  assert_int_equal(syn_index_search_text(f->idx, "rust", NULL, 0, &hits, &n, NULL), -EINVAL);
}

/* ---- searches limited to partitions -------------------------------------------------------- */

enum { TP = 16 }; /* partitions in these tests */

/* Shard i's hash puts it in partition i % TP (its first 4 bytes are i). */
static void part_hash(size_t i, char out[41]) { snprintf(out, 41, "%08zx%032zx", i, i + 1); }
static size_t part_index(const syn_hit *h) {
  return strtoull(h->shard.info_hash + 24, NULL, 16) - 1;
}
static bool wanted(size_t i) { return (i % TP) % 3 == 0; }

static void reg_part(fx *f, size_t i, const char *tag) {
  char h[41], name[64];
  part_hash(i, h);
  snprintf(name, sizeof name, "memory shard %zu", i);
  const char *tags[] = {tag};
  syn_shard_input in = {.info_hash = h,
                        .display_name = name,
                        .model = "m",
                        .dimension = D,
                        .embedding = f->vecs + i * D,
                        .tags = tags,
                        .tag_count = tag ? 1 : 0,
                        .file_size = -1,
                        .entry_count = -1};
  char err[256] = "";
  if (syn_index_register(f->idx, &in, tv(1000 + (int64_t)i), NULL, err, sizeof err))
    fail_msg("register %zu: %s", i, err);
  f->live[i] = 1;
}

/* Each query's hits are exactly the top K of the wanted partitions' live shards. */
static void check_partition_search(fx *f, const uint8_t *parts, size_t n, const float *queries) {
  unsigned char *keep = malloc(n);
  for (size_t i = 0; i < n; i++) keep[i] = f->live[i] && wanted(i);
  syn_search_filter flt = {.partitions = parts};
  for (size_t q = 0; q < 20; q++) {
    syn_hit *hits;
    size_t m;
    syn_search_info info;
    assert_int_equal(search(f, queries + q * D, &flt, K, &hits, &m, &info), 0);
    assert_int_equal(m, K);
    if (info.exact) fail_msg("query %zu: answered by an exact scan, not the index", q);
    size_t rows[K];
    assert_int_equal(tu_topk(f->vecs, n, D, queries + q * D, keep, K, rows), K);
    for (size_t i = 0; i < K; i++) assert_int_equal(part_index(&hits[i]), rows[i]);
    syn_hits_free(hits, m);
  }
  free(keep);
}

static void test_partition_filter(void **state) {
  fx *f = *state;
  syn_index_close(f->idx);
  f->cfg.partitions = TP;
  f->cfg.type = SYN_INDEX_IVF; /* selector inside faiss's IVF scan */
  f->cfg.ivf_nlist = 16;
  f->cfg.min_train = 64;
  f->idx = open_idx(f);
  assert_non_null(f->idx);
  assert_int_equal(syn_index_partitions(f->idx), TP);
  const size_t n = 2000;
  for (size_t i = 0; i < n; i++) reg_part(f, i, i % 2 ? "odd" : NULL);
  assert_int_equal(syn_index_wait_idle(f->idx, 60000), 0);
  uint8_t parts[TP / 8] = {0};
  for (uint32_t p = 0; p < TP; p++)
    if (p % 3 == 0) parts[p / 8] |= (uint8_t)(1u << (p % 8));
  float *all = tu_clustered(11, f->nvecs + 20, D, 40, 0.7);
  const float *queries = all + f->nvecs * D;
  check_partition_search(f, parts, n, queries);
  /* A delete and a replacement are followed; so is a restart (the table is rebuilt). */
  for (size_t i = 0; i < n; i += 7)
    if (wanted(i)) {
      char h[41];
      part_hash(i, h);
      assert_int_equal(syn_index_delete(f->idx, h, tv(1 << 30), 1, NULL, NULL), 0);
      f->live[i] = 0;
    }
  check_partition_search(f, parts, n, queries);
  reopen(f);
  check_partition_search(f, parts, n, queries);
  /* Keyword and tag-filtered (exact, in SQLite) searches keep to the partitions too. */
  syn_search_filter flt = {.partitions = parts};
  syn_hit *hits;
  size_t m;
  assert_int_equal(syn_index_search_text(f->idx, "memory shard", &flt, 50, &hits, &m, NULL), 0);
  assert_int_equal(m, 50);
  for (size_t i = 0; i < m; i++) assert_true(wanted(part_index(&hits[i])));
  syn_hits_free(hits, m);
  const char *odd[] = {"odd"};
  syn_search_filter ft = {.partitions = parts, .tags = odd, .tag_count = 1};
  assert_int_equal(search(f, queries, &ft, K, &hits, &m, NULL), 0);
  assert_int_equal(m, K);
  for (size_t i = 0; i < m; i++) {
    size_t idx = part_index(&hits[i]);
    assert_true(wanted(idx) && idx % 2 == 1);
  }
  syn_hits_free(hits, m);
  /* No partition at all: nothing. */
  uint8_t none[TP / 8] = {0};
  syn_search_filter fn = {.partitions = none};
  syn_search_info info;
  assert_int_equal(search(f, queries, &fn, K, &hits, &m, &info), 0);
  assert_int_equal(m, 0);
  assert_false(info.exact); /* known empty: no scan at all */
  syn_hits_free(hits, m);
  free(all);
}

/* ---- durability ---------------------------------------------------------------------------- */

static void test_kill9_then_reopen(void **state) {
  fx *f = *state;
  syn_index_close(f->idx);
  f->idx = NULL;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    f->cfg.sync_full = true;
    f->idx = open_idx(f);
    if (!f->idx) _exit(3);
    for (size_t i = 0; i < 20; i++) reg(f, i, "m", NULL, NULL);
    for (size_t i = 0; i < 5; i++) del(f, i);
    raise(SIGKILL); /* no close, no snapshot */
    _exit(4);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  f->idx = open_idx(f);
  assert_non_null(f->idx);
  syn_index_stats st;
  syn_index_stats_get(f->idx, &st);
  assert_int_equal(st.shards, 15);
  for (size_t i = 0; i < 20; i++) assert_int_equal(finds_itself(f, i), i >= 5);
}

/* ---- concurrency --------------------------------------------------------------------------- */

typedef struct worker {
  fx *f;
  int seed;
  int errors;
} worker;

static void *searcher(void *arg) {
  worker *w = arg;
  for (int q = 0; q < 150; q++) {
    syn_hit *hits;
    size_t n;
    const char *tags[] = {"even"};
    syn_search_filter flt = {.tags = tags, .tag_count = (q % 3 == 0)};
    size_t row = (size_t)(w->seed * 131 + q * 17) % 1000;
    int rc = search(w->f, w->f->vecs + row * D, &flt, K, &hits, &n, NULL);
    if (rc != 0 || n != K) {
      fprintf(stderr, "search %d/%d: rc %d, %zu hits\n", w->seed, q, rc, n);
      w->errors++;
    }
    syn_hits_free(hits, n);
    if (q % 10 == 0) {
      rc = syn_index_search_text(w->f->idx, "shard 1", NULL, 5, &hits, &n, NULL);
      if (rc != 0) w->errors++;
      syn_hits_free(hits, n);
    }
  }
  return NULL;
}

static void test_concurrent_searches_and_writes(void **state) {
  fx *f = *state;
  f->cfg.type = SYN_INDEX_HNSW;
  f->cfg.tombstone_fraction = 0.05; /* compactions run while the threads work */
  reopen(f);
  for (size_t i = 0; i < 1000; i++) reg(f, i, "m", i % 2 ? "odd" : "even", NULL);
  worker w[3];
  pthread_t th[3];
  for (int t = 0; t < 3; t++) {
    w[t] = (worker){f, t, 0};
    assert_int_equal(pthread_create(&th[t], NULL, searcher, &w[t]), 0);
  }
  for (size_t i = 1000; i < 1300; i++) { /* writes from this thread meanwhile */
    reg(f, i, "m", i % 2 ? "odd" : "even", NULL);
    if (i % 3 == 0) del(f, i - 1000 + 1);
  }
  for (int t = 0; t < 3; t++) {
    pthread_join(th[t], NULL);
    assert_int_equal(w[t].errors, 0);
  }
  assert_int_equal(syn_index_wait_idle(f->idx, 20000), 0);
  syn_index_stats st;
  syn_index_stats_get(f->idx, &st);
  assert_int_equal(st.shards, 1300 - 100);
  assert_int_equal(st.collections[0].vectors, 1200);
  assert_true(st.collections[0].rebuilds >= 1);
  for (size_t i = 0; i < 1300; i += 11)
    if (f->live[i] != found_in_top(f, i, 3)) fail_msg("shard %zu live %d", i, f->live[i]);
}

/* ---- group commit ---------------------------------------------------------------------- */

enum { REG_THREADS = 8, REG_EACH = 40 };

typedef struct reg_worker {
  fx *f;
  int t;
  int ack_fd; /* -1, or a pipe: the index of each registration once acknowledged */
  int errors;
} reg_worker;

/* Registers shards [t * REG_EACH, (t + 1) * REG_EACH) one at a time, each with its own
 * version; no cmocka asserts off the main thread. */
static void *registrar(void *arg) {
  reg_worker *w = arg;
  for (uint32_t k = 0; k < REG_EACH; k++) {
    uint32_t i = (uint32_t)w->t * REG_EACH + k;
    char h[41], err[256];
    hash_of(i, h);
    syn_shard_input in = {.info_hash = h,
                          .display_name = "concurrent",
                          .model = "m",
                          .dimension = D,
                          .embedding = w->f->vecs + (size_t)i * D,
                          .file_size = -1,
                          .entry_count = -1};
    syn_version v = {.hlc = syn_hlc_from_ms(1000) + i};
    snprintf(v.node, sizeof v.node, "t");
    bool applied = false;
    if (syn_index_register(w->f->idx, &in, &v, &applied, err, sizeof err) || !applied) {
      w->errors++;
      continue;
    }
    if (w->ack_fd >= 0 && write(w->ack_fd, &i, sizeof i) != sizeof i) w->errors++;
  }
  return NULL;
}

static int run_registrars(fx *f, int ack_fd) {
  reg_worker w[REG_THREADS];
  pthread_t th[REG_THREADS];
  int errors = 0;
  for (int t = 0; t < REG_THREADS; t++) {
    w[t] = (reg_worker){f, t, ack_fd, 0};
    if (pthread_create(&th[t], NULL, registrar, &w[t])) return -1;
  }
  for (int t = 0; t < REG_THREADS; t++) {
    pthread_join(th[t], NULL);
    errors += w[t].errors;
  }
  return errors;
}

/* Concurrent registrations all succeed, each once, and the commits counted hold them
 * all (how many share one is timing; printed). */
static void test_concurrent_registrations(void **state) {
  fx *f = *state;
  assert_int_equal(run_registrars(f, -1), 0);
  syn_index_stats st;
  syn_index_stats_get(f->idx, &st);
  assert_int_equal(st.shards, REG_THREADS * REG_EACH);
  assert_int_equal(st.commit_writes, REG_THREADS * REG_EACH);
  assert_true(st.commit_groups >= 1 && st.commit_groups <= st.commit_writes);
  print_message("%d concurrent registrations in %llu commits\n", REG_THREADS * REG_EACH,
                (unsigned long long)st.commit_groups);
  for (size_t i = 0; i < REG_THREADS * REG_EACH; i += 7) assert_true(finds_itself(f, i));
}

/* Every registration acknowledged to a concurrent caller survives kill -9 of the
 * process in the middle of the others (synchronous=FULL, as the default). */
static void test_concurrent_registrations_kill9(void **state) {
  fx *f = *state;
  syn_index_close(f->idx);
  f->idx = NULL;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    f->cfg.sync_full = true;
    f->idx = open_idx(f);
    if (!f->idx) _exit(3);
    _exit(run_registrars(f, fds[1]) == 0 ? 0 : 4);
  }
  close(fds[1]);
  unsigned char *acked = calloc(REG_THREADS * REG_EACH, 1);
  size_t n = 0;
  uint32_t i;
  while (n < REG_THREADS * REG_EACH / 2 && read(fds[0], &i, sizeof i) == sizeof i) {
    if (i < REG_THREADS * REG_EACH) acked[i] = 1;
    n++;
  }
  kill(pid, SIGKILL);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  while (read(fds[0], &i, sizeof i) == sizeof i) /* acknowledged before it died */
    if (i < REG_THREADS * REG_EACH) acked[i] = 1, n++;
  close(fds[0]);
  assert_true(n >= REG_THREADS * REG_EACH / 2);
  f->idx = open_idx(f);
  assert_non_null(f->idx);
  for (i = 0; i < REG_THREADS * REG_EACH; i++) {
    if (!acked[i]) continue;
    char h[41];
    syn_shard s;
    hash_of(i, h);
    if (syn_index_get(f->idx, h, false, &s) != 0) fail_msg("acknowledged shard %u lost", i);
    syn_shard_free(&s);
  }
  print_message("%zu acknowledged registrations survived kill -9\n", n);
  free(acked);
}

/* Replica writes in one batch: registrations become searchable, a delete takes its
 * shard out of search, an update moves the vector, a bad record fails alone. */
static void test_apply_batch(void **state) {
  fx *f = *state;
  for (size_t i = 0; i < 20; i++) reg(f, i, "m", NULL, NULL);
  enum { N = 40 };
  char h[N][41];
  syn_shard_input in[N];
  syn_index_write w[N + 1];
  memset(w, 0, sizeof w);
  for (size_t i = 0; i < N; i++) {
    size_t shard = 10 + i; /* 10-19 are updates of registered shards, 20-49 are new */
    hash_of(shard, h[i]);
    in[i] = (syn_shard_input){.info_hash = h[i],
                              .display_name = "batched",
                              .model = "m",
                              .dimension = D,
                              .embedding = f->vecs + (shard + 100) * D,
                              .file_size = -1,
                              .entry_count = -1};
    w[i] = (syn_index_write){.shard = &in[i], .info_hash = h[i], .version = *tv(5000)};
  }
  char h0[41];
  hash_of(0, h0);
  w[5].shard = NULL; /* a delete of shard 15 instead of its update */
  w[5].now_ms = 1;
  static const float zero[D];
  syn_shard_input bad = in[6];
  bad.embedding = zero; /* shard 16: an all-zero vector is refused */
  w[6].shard = &bad;
  w[N] = (syn_index_write){.info_hash = h0, .version = *tv(5000), .now_ms = 1};
  assert_int_equal(syn_index_apply(f->idx, w, N + 1), 0);
  assert_int_equal(w[6].rc, -EINVAL);
  for (size_t i = 0; i <= N; i++)
    if (i != 6 && (w[i].rc != 0 || !w[i].applied)) fail_msg("write %zu: rc %d", i, w[i].rc);
  f->live[0] = f->live[15] = 0;
  for (size_t i = 20; i < 10 + N; i++) f->live[i] = 1;
  syn_shard s;
  assert_int_equal(syn_index_get(f->idx, h0, false, &s), -ENOENT);
  assert_int_equal(syn_index_get(f->idx, h[5], false, &s), -ENOENT);
  assert_int_equal(syn_index_get(f->idx, h[6], false, &s), 0); /* kept as registered */
  assert_string_not_equal(s.display_name, "batched");
  syn_shard_free(&s);
  for (size_t i = 0; i < N; i++) {
    if (i == 5 || i == 6) continue;
    syn_hit *hits;
    size_t n;
    assert_int_equal(search(f, f->vecs + (10 + i + 100) * D, NULL, 1, &hits, &n, NULL), 0);
    if (n != 1 || index_of(&hits[0]) != 10 + i) fail_msg("batched shard %zu not found", 10 + i);
    syn_hits_free(hits, n);
  }
  assert_false(found_in_top(f, 0, 3));
  assert_false(found_in_top(f, 15, 3));
  assert_true(finds_itself(f, 16));
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_register_get_delete),
      T(test_bad_input),
      T(test_matches_bruteforce),
      T(test_min_similarity),
      T(test_model_filter_normalised),
      T(test_tag_filters_flat),
      T(test_tag_filters_hnsw),
      T(test_tag_filters_ivf_sq8),
      T(test_update_moves_vector),
      T(test_without_embedding),
      T(test_list_pages),
      T(test_auto_switch_in_background),
      T(test_reopen_keeps_everything),
      T(test_snapshot_missing_stale_corrupt),
      T(test_text_search),
      T(test_partition_filter),
      T(test_kill9_then_reopen),
      T(test_concurrent_searches_and_writes),
      T(test_apply_batch),
      T(test_concurrent_registrations),
      T(test_concurrent_registrations_kill9),
  };
#undef T
  return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
