/* Vector index of one collection, without SQLite: the planner, exactness of flat search,
 * recall of every type, update and delete for every type (HNSW tombstones included),
 * background rebuilds with concurrent writes, snapshots (round trip, stale, corrupt). */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "index/vector_index.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>

#include "index/testutil.h"

enum { D = 64, NQ = 100, K = 10 };

/* ---- a vector source over arrays, standing in for SQLite ---------------------------- */

typedef struct fsrc {
  uint32_t d;
  float *x;
  int64_t *labels; /* 0 = deleted */
  size_t n, cap;
  /* Optional pause after a scan, so a test can write while a rebuild is in progress. */
  bool block;
  int phase; /* 0 before the scan, 1 scanned and waiting, 2 released */
  pthread_mutex_t mu;
  pthread_cond_t cv;
} fsrc;

static void fsrc_init(fsrc *s, size_t cap, uint32_t d) {
  memset(s, 0, sizeof *s);
  s->d = d;
  s->x = malloc(sizeof(float) * cap * d);
  s->labels = calloc(cap, sizeof *s->labels);
  s->cap = cap;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
}

static void fsrc_free(fsrc *s) {
  free(s->x);
  free(s->labels);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
}

static void fsrc_add(fsrc *s, int64_t label, const float *v) {
  assert_true(s->n < s->cap);
  memcpy(s->x + s->n * s->d, v, sizeof(float) * s->d);
  s->labels[s->n++] = label;
}

static const float *fsrc_vec(const fsrc *s, int64_t label) {
  for (size_t i = 0; i < s->n; i++)
    if (s->labels[i] == label) return s->x + i * s->d;
  return NULL;
}

static void fsrc_del(fsrc *s, int64_t label) {
  for (size_t i = 0; i < s->n; i++)
    if (s->labels[i] == label) s->labels[i] = 0;
}

static void fsrc_signature(const fsrc *s, int64_t *count, int64_t *sum) {
  *count = *sum = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->labels[i]) (*count)++, *sum += s->labels[i];
}

static int fs_scan(void *ctx, const char *mk, uint32_t dim, syn_vsource_emit_fn emit, void *ectx) {
  fsrc *s = ctx;
  (void)mk;
  assert_int_equal(dim, s->d);
  for (size_t i = 0; i < s->n; i++) {
    if (!s->labels[i]) continue;
    int rc = emit(ectx, s->labels[i], s->x + i * s->d);
    if (rc) return rc;
  }
  pthread_mutex_lock(&s->mu);
  if (s->block) {
    s->phase = 1;
    pthread_cond_broadcast(&s->cv);
    while (s->phase != 2) pthread_cond_wait(&s->cv, &s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static int fs_scan_ids(void *ctx, const char *mk, uint32_t dim, syn_vsource_id_fn emit,
                       void *ectx) {
  fsrc *s = ctx;
  (void)mk, (void)dim;
  for (size_t i = 0; i < s->n; i++) {
    if (!s->labels[i]) continue;
    int rc = emit(ectx, s->labels[i]);
    if (rc) return rc;
  }
  return 0;
}

static int fs_get(void *ctx, int64_t label, uint32_t dim, float *unit) {
  const float *v = fsrc_vec(ctx, label);
  if (!v) return -ENOENT;
  memcpy(unit, v, sizeof(float) * dim);
  return 0;
}

static syn_vsource fsrc_source(fsrc *s) { return (syn_vsource){s, fs_scan, fs_scan_ids, fs_get}; }

static syn_index_config config_for(syn_index_type t) {
  syn_index_config cfg;
  syn_index_config_defaults(&cfg);
  cfg.type = t;
  return cfg;
}

/* Data: n clustered vectors labelled 1..n plus NQ queries from the same clusters. */
static float *make_data_d(uint64_t seed, size_t n, uint32_t d, uint32_t clusters, double spread,
                          fsrc *s) {
  float *all = tu_clustered(seed, n + NQ, d, clusters, spread);
  fsrc_init(s, n + 2000, d);
  for (size_t i = 0; i < n; i++) fsrc_add(s, (int64_t)i + 1, all + i * d);
  return all; /* queries at all + n * d */
}

static float *make_data(uint64_t seed, size_t n, fsrc *s) {
  return make_data_d(seed, n, D, 50, 0.6, s);
}

/* Exact top-k labels of q over the live rows of s. */
static size_t truth(const fsrc *s, const float *q, size_t k, int64_t *out) {
  unsigned char *keep = malloc(s->n);
  for (size_t i = 0; i < s->n; i++) keep[i] = s->labels[i] != 0;
  size_t *rows = malloc(k * sizeof *rows);
  size_t m = tu_topk(s->x, s->n, s->d, q, keep, k, rows);
  for (size_t i = 0; i < m; i++) out[i] = s->labels[rows[i]];
  free(rows);
  free(keep);
  return m;
}

/* Top K with SQ8 candidates re-ranked exactly (what index.c does with the stored floats). */
static size_t search_topk(syn_vindex *vi, const fsrc *s, const float *q, bool rerank,
                          int64_t *out) {
  uint32_t k = rerank ? 4 * K : K;
  int64_t labels[4 * K];
  float scores[4 * K];
  size_t n = 0;
  assert_int_equal(syn_vindex_search(vi, q, k, NULL, labels, scores, &n), 0);
  if (!rerank) {
    memcpy(out, labels, n * sizeof *out);
    return n;
  }
  for (size_t i = 0; i < n; i++) scores[i] = tu_dot(fsrc_vec(s, labels[i]), q, s->d);
  for (size_t i = 1; i < n; i++) /* insertion sort by exact score */
    for (size_t j = i; j > 0 && scores[j] > scores[j - 1]; j--) {
      float ts = scores[j];
      scores[j] = scores[j - 1], scores[j - 1] = ts;
      int64_t tl = labels[j];
      labels[j] = labels[j - 1], labels[j - 1] = tl;
    }
  size_t m = n < K ? n : K;
  memcpy(out, labels, m * sizeof *out);
  return m;
}

static bool is_sq8(syn_index_type t) {
  return t == SYN_INDEX_FLAT_SQ8 || t == SYN_INDEX_IVF_SQ8 || t == SYN_INDEX_HNSW_SQ8;
}

/* Mean recall@K over the NQ queries; *us_per_query gets the mean time of the index
 * search alone (the re-ranking and brute force are the test's). */
static double mean_recall(syn_vindex *vi, const fsrc *s, const float *queries, bool rerank,
                          double *us_per_query) {
  double sum = 0, spent = 0;
  for (size_t i = 0; i < NQ; i++) {
    int64_t got[K], want[K];
    double t0 = tu_now();
    size_t ng = search_topk(vi, s, queries + i * s->d, rerank, got);
    spent += tu_now() - t0;
    size_t nw = truth(s, queries + i * s->d, K, want);
    sum += tu_recall(got, ng, want, nw);
  }
  if (us_per_query) *us_per_query = spent * 1e6 / NQ;
  return sum / NQ;
}

/* ---- planner (pure) ---------------------------------------------------------------- */

static void test_planner_table(void **state) {
  (void)state;
  static const struct {
    const char *name;
    syn_index_type cfg_type;
    syn_vplan_state st;
    bool rebuild;
    syn_index_type plan_type;
  } cases[] = {
      {"auto small stays flat",
       SYN_INDEX_AUTO,
       {SYN_INDEX_FLAT, 19999, 0, 0},
       false,
       SYN_INDEX_FLAT},
      {"auto at threshold -> ivf",
       SYN_INDEX_AUTO,
       {SYN_INDEX_FLAT, 20000, 0, 0},
       true,
       SYN_INDEX_IVF},
      {"auto ivf keeps under 2x",
       SYN_INDEX_AUTO,
       {SYN_INDEX_IVF, 39999, 0, 20000},
       false,
       SYN_INDEX_IVF},
      {"auto ivf retrains at 2x",
       SYN_INDEX_AUTO,
       {SYN_INDEX_IVF, 40000, 0, 20000},
       true,
       SYN_INDEX_IVF},
      {"auto ivf hysteresis",
       SYN_INDEX_AUTO,
       {SYN_INDEX_IVF, 10000, 0, 20000},
       false,
       SYN_INDEX_FLAT},
      {"auto ivf back to flat",
       SYN_INDEX_AUTO,
       {SYN_INDEX_IVF, 9999, 0, 20000},
       true,
       SYN_INDEX_FLAT},
      {"nothing built yet", SYN_INDEX_AUTO, {SYN_INDEX_AUTO, 50000, 0, 0}, false, SYN_INDEX_IVF},
      {"ivf stand-in below min_train",
       SYN_INDEX_IVF,
       {SYN_INDEX_FLAT, 999, 0, 0},
       false,
       SYN_INDEX_FLAT},
      {"ivf trains at min_train", SYN_INDEX_IVF, {SYN_INDEX_FLAT, 1000, 0, 0}, true, SYN_INDEX_IVF},
      {"ivf never falls back", SYN_INDEX_IVF, {SYN_INDEX_IVF, 10, 0, 1000}, false, SYN_INDEX_FLAT},
      {"hnsw from the start", SYN_INDEX_HNSW, {SYN_INDEX_HNSW, 10, 0, 0}, false, SYN_INDEX_HNSW},
      {"hnsw few tombstones",
       SYN_INDEX_HNSW,
       {SYN_INDEX_HNSW, 1000, 200, 0},
       false,
       SYN_INDEX_HNSW},
      {"hnsw compaction", SYN_INDEX_HNSW, {SYN_INDEX_HNSW, 1000, 251, 0}, true, SYN_INDEX_HNSW},
      {"hnsw tombstones need 16",
       SYN_INDEX_HNSW,
       {SYN_INDEX_HNSW, 10, 15, 0},
       false,
       SYN_INDEX_HNSW},
      {"flat config replaces hnsw",
       SYN_INDEX_FLAT,
       {SYN_INDEX_HNSW, 10, 0, 0},
       true,
       SYN_INDEX_FLAT},
      {"sq8 stand-in", SYN_INDEX_HNSW_SQ8, {SYN_INDEX_FLAT, 5000, 0, 0}, true, SYN_INDEX_HNSW_SQ8},
      {"sq8 retrains at 2x",
       SYN_INDEX_FLAT_SQ8,
       {SYN_INDEX_FLAT_SQ8, 4000, 0, 2000},
       true,
       SYN_INDEX_FLAT_SQ8},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    syn_index_config cfg = config_for(cases[i].cfg_type);
    bool r = syn_vindex_should_rebuild(&cfg, &cases[i].st);
    syn_vplan p = syn_vindex_plan(&cfg, cases[i].st.live);
    if (r != cases[i].rebuild || p.type != cases[i].plan_type)
      fail_msg("case '%s': rebuild %d plan %s", cases[i].name, r, syn_index_type_name(p.type));
  }
  syn_index_config cfg = config_for(SYN_INDEX_AUTO);
  syn_vplan p = syn_vindex_plan(&cfg, 100000);
  assert_int_equal(p.nlist, 1264); /* 4 * sqrt(100000) */
  assert_int_equal(p.nprobe, 39);  /* nlist / 32 */
  p = syn_vindex_plan(&cfg, 20000);
  assert_int_equal(p.nlist, 512); /* 20000 / 39: enough points per cell */
  assert_int_equal(p.nprobe, 16);
  cfg.ivf_nprobe = 5000;
  assert_int_equal(syn_vindex_nprobe_for(&cfg, 100), 100);
}

/* ---- exactness and recall ----------------------------------------------------------- */

static void test_flat_is_exact(void **state) {
  (void)state;
  fsrc s;
  float *all = make_data(1, 3000, &s);
  syn_index_config cfg = config_for(SYN_INDEX_FLAT);
  syn_vindex *vi = syn_vindex_new("m", D, &cfg);
  for (size_t i = 0; i < s.n; i++)
    assert_int_equal(syn_vindex_upsert(vi, s.labels[i], s.x + i * D, 0), 0);
  for (size_t qi = 0; qi < 20; qi++) {
    const float *q = all + (3000 + qi) * D;
    int64_t got[K], want[K];
    float scores[K];
    size_t n;
    assert_int_equal(syn_vindex_search(vi, q, K, NULL, got, scores, &n), 0);
    assert_int_equal(n, K);
    assert_int_equal(truth(&s, q, K, want), K);
    for (size_t i = 0; i < K; i++) {
      assert_int_equal(got[i], want[i]);
      assert_float_equal(scores[i], tu_dot(fsrc_vec(&s, got[i]), q, D), 1e-5);
    }
  }
  int64_t lab[K], *many = malloc(5000 * sizeof *many);
  float sc[K], *many_sc = malloc(5000 * sizeof *many_sc);
  size_t n = 0;
  assert_int_equal(syn_vindex_search(vi, all, 5000, NULL, many, many_sc, &n), 0);
  assert_int_equal(n, 3000); /* fewer than k only when the collection is smaller */
  free(many), free(many_sc);
  syn_vindex_free(vi);
  vi = syn_vindex_new("m", D, &cfg); /* empty index answers empty */
  assert_int_equal(syn_vindex_search(vi, all, K, NULL, lab, sc, &n), 0);
  assert_int_equal(n, 0);
  syn_vindex_free(vi);
  free(all);
  fsrc_free(&s);
}

/* 6000 x 128-d in 100 broad clusters (noise larger than the centre: neighbours are
 * near-ties within a topic, topics overlap).
 * The last, deliberately starved configuration proves the data can fail a bad index. */
static void test_recall_every_type(void **state) {
  (void)state;
  static const syn_index_type types[] = {SYN_INDEX_FLAT,    SYN_INDEX_FLAT_SQ8, SYN_INDEX_IVF,
                                         SYN_INDEX_IVF_SQ8, SYN_INDEX_HNSW,     SYN_INDEX_HNSW_SQ8,
                                         SYN_INDEX_IVF};
  const size_t ntypes = sizeof types / sizeof types[0];
  fsrc s;
  const size_t n = 6000;
  const uint32_t d = 128;
  float *all = make_data_d(2, n, d, 100, 1.2, &s);
  syn_vsource src = fsrc_source(&s);
  for (size_t t = 0; t < ntypes; t++) {
    syn_index_config cfg = config_for(types[t]);
    bool control = t == ntypes - 1;
    if (control) cfg.ivf_nprobe = 1;
    syn_vindex *vi = syn_vindex_new("m", d, &cfg);
    double t0 = tu_now();
    assert_int_equal(syn_vindex_rebuild(vi, &src, NULL), 0);
    double build = tu_now() - t0;
    syn_vindex_stats st;
    syn_vindex_stats_get(vi, &st);
    assert_int_equal(st.type, types[t]);
    assert_int_equal(st.live, n);
    double us;
    double r = mean_recall(vi, &s, all + n * d, is_sq8(types[t]), &us);
    printf(
        "    %-9s n=%zu d=%u: recall@10 %.3f, %.0f us/query (k=%d), build %.2f s"
        " (nlist %u nprobe %u)%s\n",
        syn_index_type_name(types[t]), n, d, r, us, is_sq8(types[t]) ? 4 * K : K, build, st.nlist,
        st.nprobe, control ? " [control]" : "");
    if (control && r >= 0.95) fail_msg("control nprobe=1 reached %.3f: data too easy", r);
    if (!control && r < 0.95)
      fail_msg("%s recall@10 %.3f < 0.95", syn_index_type_name(types[t]), r);
    syn_vindex_free(vi);
  }
  free(all);
  fsrc_free(&s);
}

/* ---- search restricted to a subset of labels ---------------------------------------- */

static bool every_third(void *ctx, int64_t label) {
  (*(size_t *)ctx)++;
  return label % 3 == 0;
}

/* Every type: only accepted labels come back, the exact top-k of the subset is found (the
 * subset's recall as high as the whole's), and the scan asks about each candidate. */
static void test_selected_search_every_type(void **state) {
  (void)state;
  static const syn_index_type types[] = {SYN_INDEX_FLAT,    SYN_INDEX_FLAT_SQ8, SYN_INDEX_IVF,
                                         SYN_INDEX_IVF_SQ8, SYN_INDEX_HNSW,     SYN_INDEX_HNSW_SQ8};
  fsrc s;
  const size_t n = 6000;
  const uint32_t d = 128;
  float *all = make_data_d(2, n, d, 100, 1.2, &s);
  syn_vsource src = fsrc_source(&s);
  unsigned char *keep = malloc(s.n);
  for (size_t i = 0; i < s.n; i++) keep[i] = s.labels[i] && s.labels[i] % 3 == 0;
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    syn_index_config cfg = config_for(types[t]);
    syn_vindex *vi = syn_vindex_new("m", d, &cfg);
    assert_int_equal(syn_vindex_rebuild(vi, &src, NULL), 0);
    size_t asked = 0;
    syn_vselect sel = {every_third, &asked};
    double sum = 0;
    for (size_t q = 0; q < NQ; q++) {
      const float *qv = all + (n + q) * d;
      uint32_t k = is_sq8(types[t]) ? 4 * K : K;
      int64_t labels[4 * K];
      float scores[4 * K];
      size_t got = 0;
      assert_int_equal(syn_vindex_search(vi, qv, k, &sel, labels, scores, &got), 0);
      assert_int_equal(got, k);
      for (size_t i = 0; i < got; i++) assert_int_equal(labels[i] % 3, 0);
      if (is_sq8(types[t])) { /* re-rank exactly, as index.c does */
        for (size_t i = 0; i < got; i++) scores[i] = tu_dot(fsrc_vec(&s, labels[i]), qv, d);
        for (size_t i = 1; i < got; i++)
          for (size_t j = i; j > 0 && scores[j] > scores[j - 1]; j--) {
            float ts = scores[j];
            scores[j] = scores[j - 1], scores[j - 1] = ts;
            int64_t tl = labels[j];
            labels[j] = labels[j - 1], labels[j - 1] = tl;
          }
      }
      size_t rows[K];
      size_t m = tu_topk(s.x, s.n, d, qv, keep, K, rows);
      int64_t want[K];
      for (size_t i = 0; i < m; i++) want[i] = s.labels[rows[i]];
      sum += tu_recall(labels, got < K ? got : K, want, m);
    }
    double r = sum / NQ;
    printf("    %-9s selected third: recall@10 %.3f, %.0f labels asked per query\n",
           syn_index_type_name(types[t]), r, (double)asked / NQ);
    if (r < (types[t] == SYN_INDEX_FLAT ? 0.999 : 0.95))
      fail_msg("%s selected recall@10 %.3f", syn_index_type_name(types[t]), r);
    assert_true(asked > 0);
    syn_vindex_free(vi);
  }
  free(keep);
  free(all);
  fsrc_free(&s);
}

/* ---- update and delete ----------------------------------------------------------------- */

static void check_update_delete(syn_index_type type) {
  fsrc s;
  const size_t n = 3000;
  float *all = make_data(3, n, &s);
  syn_vsource src = fsrc_source(&s);
  syn_index_config cfg = config_for(type);
  syn_vindex *vi = syn_vindex_new("m", D, &cfg);
  assert_int_equal(syn_vindex_rebuild(vi, &src, NULL), 0);
  /* Delete 100: none of them comes back, even for its own vector as the query. */
  for (int64_t l = 1; l <= 100; l++) {
    assert_int_equal(syn_vindex_remove(vi, l), 0);
    fsrc_del(&s, l);
  }
  assert_int_equal(syn_vindex_remove(vi, 424242), 0); /* absent: fine */
  for (int64_t l = 1; l <= 100; l += 9) {
    int64_t got[K];
    size_t m = search_topk(vi, &s, all + (l - 1) * D, is_sq8(type), got);
    assert_int_equal(m, K);
    for (size_t i = 0; i < m; i++) assert_true(got[i] > 100);
  }
  /* Update 50: label l is replaced by label 10000 + l carrying a query vector. */
  for (int64_t l = 101; l <= 150; l++) {
    const float *v = all + (n + (size_t)(l - 101)) * D;
    assert_int_equal(syn_vindex_upsert(vi, 10000 + l, v, l), 0);
    fsrc_del(&s, l);
    fsrc_add(&s, 10000 + l, v);
  }
  for (int64_t l = 101; l <= 150; l++) {
    int64_t got[K];
    size_t m = search_topk(vi, &s, all + (n + (size_t)(l - 101)) * D, is_sq8(type), got);
    assert_int_equal(m, K);
    assert_int_equal(got[0], 10000 + l);
    for (size_t i = 0; i < m; i++) assert_true(got[i] < 101 || got[i] > 150);
  }
  syn_vindex_stats st;
  syn_vindex_stats_get(vi, &st);
  assert_int_equal(st.live, n - 100);
  bool hnsw = type == SYN_INDEX_HNSW || type == SYN_INDEX_HNSW_SQ8;
  assert_int_equal(st.dead, hnsw ? 150 : 0);
  /* Heavy deletion: HNSW asks for compaction, the others never need it. */
  for (int64_t l = 151; l <= 800; l++) {
    assert_int_equal(syn_vindex_remove(vi, l), 0);
    fsrc_del(&s, l);
  }
  assert_int_equal(syn_vindex_needs_rebuild(vi), hnsw);
  double r = mean_recall(vi, &s, all + n * D, is_sq8(type), NULL);
  assert_true(r >= 0.9); /* still answers well through 800 tombstones */
  assert_int_equal(syn_vindex_rebuild(vi, &src, NULL), 0);
  syn_vindex_stats_get(vi, &st);
  assert_int_equal(st.dead, 0);
  assert_int_equal(st.live, n - 800 + 50);
  assert_false(syn_vindex_needs_rebuild(vi));
  assert_true(mean_recall(vi, &s, all + n * D, is_sq8(type), NULL) >= 0.95);
  syn_vindex_free(vi);
  free(all);
  fsrc_free(&s);
}

static void test_update_delete_flat(void **state) {
  (void)state, check_update_delete(SYN_INDEX_FLAT);
}
static void test_update_delete_flat_sq8(void **state) {
  (void)state, check_update_delete(SYN_INDEX_FLAT_SQ8);
}
static void test_update_delete_ivf(void **state) {
  (void)state, check_update_delete(SYN_INDEX_IVF);
}
static void test_update_delete_ivf_sq8(void **state) {
  (void)state, check_update_delete(SYN_INDEX_IVF_SQ8);
}
static void test_update_delete_hnsw(void **state) {
  (void)state, check_update_delete(SYN_INDEX_HNSW);
}
static void test_update_delete_hnsw_sq8(void **state) {
  (void)state, check_update_delete(SYN_INDEX_HNSW_SQ8);
}

/* ---- background rebuild with writes in flight ------------------------------------------- */

typedef struct rebuild_job {
  syn_vindex *vi;
  syn_vsource src;
  int rc;
} rebuild_job;

static void *rebuild_thread(void *arg) {
  rebuild_job *j = arg;
  j->rc = syn_vindex_rebuild(j->vi, &j->src, NULL);
  return NULL;
}

static void test_background_switch_with_writes(void **state) {
  (void)state;
  fsrc s;
  const size_t n = 2500;
  float *all = make_data(4, n, &s);
  float *extra = tu_clustered(4, n + NQ + 300, D, 50, 0.6) + (n + NQ) * D; /* 300 more */
  syn_index_config cfg = config_for(SYN_INDEX_AUTO);
  cfg.auto_threshold = 2000;
  syn_vindex *vi = syn_vindex_new("m", D, &cfg);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(syn_vindex_upsert(vi, s.labels[i], s.x + i * D, 0), 0);
  syn_vindex_stats st;
  syn_vindex_stats_get(vi, &st);
  assert_int_equal(st.type, SYN_INDEX_FLAT);
  assert_true(syn_vindex_needs_rebuild(vi));

  s.block = true;
  rebuild_job job = {vi, fsrc_source(&s), -1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, rebuild_thread, &job), 0);
  pthread_mutex_lock(&s.mu);
  while (s.phase != 1) pthread_cond_wait(&s.cv, &s.mu);
  pthread_mutex_unlock(&s.mu);
  /* The scan is over and the build has not been swapped in: write and search now. */
  for (size_t i = 0; i < 300; i++) {
    int64_t label = 20000 + (int64_t)i;
    assert_int_equal(syn_vindex_upsert(vi, label, extra + i * D, 0), 0);
    int64_t got[K];
    float sc[K];
    size_t m;
    assert_int_equal(syn_vindex_search(vi, extra + i * D, K, NULL, got, sc, &m), 0);
    assert_int_equal(got[0], label); /* visible at once */
  }
  for (int64_t l = 1; l <= 100; l++) assert_int_equal(syn_vindex_remove(vi, l), 0);
  syn_vindex_stats_get(vi, &st);
  assert_true(st.building);
  assert_int_equal(st.pending, 400);
  assert_int_equal(st.type, SYN_INDEX_FLAT);  /* the old index still answers */
  assert_false(syn_vindex_needs_rebuild(vi)); /* never two builds at once */
  assert_int_equal(syn_vindex_rebuild(vi, &job.src, NULL), -EBUSY);

  pthread_mutex_lock(&s.mu);
  s.phase = 2;
  pthread_cond_broadcast(&s.cv);
  pthread_mutex_unlock(&s.mu);
  pthread_join(th, NULL);
  assert_int_equal(job.rc, 0);

  syn_vindex_stats_get(vi, &st);
  assert_int_equal(st.type, SYN_INDEX_IVF);
  assert_false(st.building);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.live, n + 300 - 100);
  assert_int_equal(st.rebuilds, 1);
  for (size_t i = 0; i < 300; i++) { /* the replayed writes are in the new index */
    int64_t got[K];
    float sc[K];
    size_t m;
    assert_int_equal(syn_vindex_search(vi, extra + i * D, K, NULL, got, sc, &m), 0);
    assert_int_equal(got[0], 20000 + (int64_t)i);
  }
  for (int64_t l = 1; l <= 100; l += 7) {
    int64_t got[K];
    float sc[K];
    size_t m;
    assert_int_equal(syn_vindex_search(vi, all + (l - 1) * D, K, NULL, got, sc, &m), 0);
    for (size_t i = 0; i < m; i++) assert_true(got[i] > 100);
  }
  syn_vindex_free(vi);
  free(all);
  free(extra - (n + NQ) * D);
  fsrc_free(&s);
}

/* ---- snapshots --------------------------------------------------------------------------- */

typedef struct snap_fixture {
  char *dir;
  fsrc s;
  float *all;
  syn_vindex *vi;
} snap_fixture;

static int snap_setup(void **state) {
  snap_fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir("vsnap");
  f->all = make_data(5, 3000, &f->s);
  syn_index_config cfg = config_for(SYN_INDEX_HNSW);
  f->vi = syn_vindex_new("org-model", D, &cfg);
  syn_vsource src = fsrc_source(&f->s);
  if (syn_vindex_rebuild(f->vi, &src, NULL) != 0) return -1;
  for (int64_t l = 1; l <= 30; l++) { /* some tombstones, to be kept across the snapshot */
    syn_vindex_remove(f->vi, l);
    fsrc_del(&f->s, l);
  }
  *state = f;
  return 0;
}

static int snap_teardown(void **state) {
  snap_fixture *f = *state;
  syn_vindex_free(f->vi);
  fsrc_free(&f->s);
  free(f->all);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static syn_vindex *load_fresh(snap_fixture *f, const char *key, syn_vload_result *res, int *rc) {
  syn_index_config cfg = config_for(SYN_INDEX_HNSW);
  syn_vindex *vi = syn_vindex_new(key, D, &cfg);
  int64_t count, sum;
  fsrc_signature(&f->s, &count, &sum);
  syn_vsource src = fsrc_source(&f->s);
  *rc = syn_vindex_load(vi, f->dir, &src, count, sum, res);
  return vi;
}

static void test_snapshot_roundtrip(void **state) {
  snap_fixture *f = *state;
  assert_int_equal(syn_vindex_snapshot_write(f->vi, f->dir, false), 1);
  assert_int_equal(syn_vindex_snapshot_write(f->vi, f->dir, false), 0); /* unchanged */
  syn_vload_result res;
  int rc;
  syn_vindex *vi = load_fresh(f, "org-model", &res, &rc);
  if (rc) fail_msg("load refused: %s", res.reason);
  assert_true(res.loaded);
  assert_false(res.reconciled);
  syn_vindex_stats a, b;
  syn_vindex_stats_get(f->vi, &a);
  syn_vindex_stats_get(vi, &b);
  assert_int_equal(b.type, SYN_INDEX_HNSW);
  assert_int_equal(b.live, a.live);
  assert_int_equal(b.dead, 30);
  for (size_t q = 0; q < 20; q++) {
    int64_t l1[K], l2[K];
    float s1[K], s2[K];
    size_t n1, n2;
    const float *qv = f->all + (3000 + q) * D;
    syn_vindex_search(f->vi, qv, K, NULL, l1, s1, &n1);
    syn_vindex_search(vi, qv, K, NULL, l2, s2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(l1, l2, n1 * sizeof *l1);
  }
  assert_int_equal(syn_vindex_snapshot_write(vi, f->dir, false), 0); /* loaded = clean */
  syn_vindex_free(vi);
}

static void test_snapshot_stale_is_reconciled(void **state) {
  snap_fixture *f = *state;
  assert_int_equal(syn_vindex_snapshot_write(f->vi, f->dir, false), 1);
  /* SQLite moved on after the snapshot (as after a crash): 10 deleted, 20 added. */
  for (int64_t l = 31; l <= 40; l++) fsrc_del(&f->s, l);
  float *more = tu_clustered(9, 20, D, 5, 0.3);
  for (int64_t i = 0; i < 20; i++) fsrc_add(&f->s, 50000 + i, more + i * D);
  syn_vload_result res;
  int rc;
  syn_vindex *vi = load_fresh(f, "org-model", &res, &rc);
  if (rc) fail_msg("load refused: %s", res.reason);
  assert_true(res.reconciled);
  assert_int_equal(res.added, 20);
  assert_int_equal(res.removed, 10);
  for (int64_t i = 0; i < 20; i++) {
    int64_t l[K];
    float sc[K];
    size_t n;
    assert_int_equal(syn_vindex_search(vi, more + i * D, K, NULL, l, sc, &n), 0);
    assert_int_equal(l[0], 50000 + i);
  }
  for (int64_t l = 31; l <= 40; l++) {
    int64_t got[K];
    float sc[K];
    size_t n;
    assert_int_equal(syn_vindex_search(vi, f->all + (l - 1) * D, K, NULL, got, sc, &n), 0);
    for (size_t i = 0; i < n; i++) assert_true(got[i] > 40);
  }
  assert_int_equal(syn_vindex_snapshot_write(vi, f->dir, false), 1); /* reconciled = dirty */
  syn_vindex_free(vi);
  free(more);
  /* Far behind (1100 missing of 4090): refused, the caller rebuilds in the background. */
  float *lots = tu_clustered(10, 1100, D, 5, 0.3);
  for (int64_t i = 0; i < 1100; i++) fsrc_add(&f->s, 60000 + i, lots + i * D);
  vi = load_fresh(f, "org-model", &res, &rc);
  assert_int_equal(rc, -E2BIG);
  assert_string_equal(res.reason, "snapshot too stale");
  syn_vindex_stats st;
  syn_vindex_stats_get(vi, &st);
  assert_int_equal(st.live, 0);
  syn_vindex_free(vi);
  free(lots);
}

static void flip_byte(const char *path, long at) {
  FILE *fp = fopen(path, "r+b");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  if (at < 0) at = size / 2;
  fseek(fp, at, SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, at, SEEK_SET);
  fputc(c ^ 0x5a, fp);
  fclose(fp);
}

static void test_snapshot_corrupt_refused(void **state) {
  snap_fixture *f = *state;
  static const char *const cases[] = {
      "missing sidecar", "missing index",     "flipped index byte", "flipped sidecar byte",
      "truncated index", "truncated sidecar", "another collection", "garbage index",
  };
  char in[128], sn[128], ip[600], sp[600];
  syn_vindex_snapshot_names("org-model", D, in, sn, sizeof in);
  snprintf(ip, sizeof ip, "%s/%s", f->dir, in);
  snprintf(sp, sizeof sp, "%s/%s", f->dir, sn);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    assert_int_equal(syn_vindex_snapshot_write(f->vi, f->dir, true), 1);
    const char *key = "org-model";
    switch (c) {
    case 0: unlink(sp); break;
    case 1: unlink(ip); break;
    case 2: flip_byte(ip, -1); break;
    case 3: flip_byte(sp, 20); break;
    case 4: assert_int_equal(truncate(ip, 100), 0); break;
    case 5: assert_int_equal(truncate(sp, 64), 0); break;
    case 6: { /* files of org-model renamed to another collection's names */
      char in2[128], sn2[128], ip2[600], sp2[600];
      syn_vindex_snapshot_names("other", D, in2, sn2, sizeof in2);
      snprintf(ip2, sizeof ip2, "%s/%s", f->dir, in2);
      snprintf(sp2, sizeof sp2, "%s/%s", f->dir, sn2);
      assert_int_equal(rename(ip, ip2), 0);
      assert_int_equal(rename(sp, sp2), 0);
      key = "other";
      break;
    }
    case 7: { /* a well-formed sidecar pointing at garbage with the same checksum cannot
                 happen; garbage of another length is caught by size */
      FILE *fp = fopen(ip, "wb");
      fputs("not a faiss index", fp);
      fclose(fp);
      break;
    }
    }
    syn_vload_result res;
    int rc;
    syn_vindex *vi = load_fresh(f, key, &res, &rc);
    if (rc == 0) fail_msg("case '%s': corrupt snapshot accepted", cases[c]);
    assert_false(res.loaded);
    assert_true(res.reason[0] != '\0');
    printf("    %-20s -> refused: %s\n", cases[c], res.reason);
    syn_vindex_stats st;
    syn_vindex_stats_get(vi, &st);
    assert_int_equal(st.live, 0); /* nothing half-loaded */
    syn_vsource src = fsrc_source(&f->s);
    assert_int_equal(syn_vindex_load_source(vi, &src), 0); /* the fallback works */
    syn_vindex_stats_get(vi, &st);
    assert_int_equal(st.live, 3000 - 30);
    syn_vindex_free(vi);
  }
}

int main(void) {
  omp_set_num_threads(1); /* shared 2-core machines: no spinning OpenMP teams in tests */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_planner_table),
      cmocka_unit_test(test_flat_is_exact),
      cmocka_unit_test(test_recall_every_type),
      cmocka_unit_test(test_selected_search_every_type),
      cmocka_unit_test(test_update_delete_flat),
      cmocka_unit_test(test_update_delete_flat_sq8),
      cmocka_unit_test(test_update_delete_ivf),
      cmocka_unit_test(test_update_delete_ivf_sq8),
      cmocka_unit_test(test_update_delete_hnsw),
      cmocka_unit_test(test_update_delete_hnsw_sq8),
      cmocka_unit_test(test_background_switch_with_writes),
      cmocka_unit_test_setup_teardown(test_snapshot_roundtrip, snap_setup, snap_teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_stale_is_reconciled, snap_setup, snap_teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_corrupt_refused, snap_setup, snap_teardown),
  };
  return cmocka_run_group_tests_name("vector_index", tests, NULL, NULL);
}
