/* One collection's vector index over the faiss C API; the contract and the update,
 * rebuild and snapshot schemes are described in vector_index.h.
 *
 * Layout: a `vinst` is one faiss index plus its label map (label -> live/dead), counts
 * and the sum of live labels (the snapshot signature). A syn_vindex owns the vinst that
 * serves queries (`cur`), the rwlock around it, and during a rebuild the log of writes
 * to replay into the next vinst. A vinst is only touched under its vindex's lock once it
 * is `cur`; while being built it belongs to the builder thread alone. */
#define _GNU_SOURCE
#include "index/vector_index.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "c_api/AutoTune_c.h"
#include "c_api/IndexIVF_c.h"
#include "c_api/Index_c.h"
#include "c_api/error_c.h"
#include "c_api/impl/AuxIndexStructures_c.h"
#include "c_api/index_factory_c.h"
#include "c_api/index_io_c.h"
#include "common/log.h"
#include "index/faiss_select.h"

enum { L_LIVE = 1, L_DEAD = 2, L_SEEN = 4 };
enum { ADD_BATCH = 4096, REPLAY_SWAP_MAX = 64, REPLAY_ROUNDS = 8 };

/* ---- planning -------------------------------------------------------------------- */

static bool is_hnsw(syn_index_type t) { return t == SYN_INDEX_HNSW || t == SYN_INDEX_HNSW_SQ8; }
static bool is_ivf(syn_index_type t) { return t == SYN_INDEX_IVF || t == SYN_INDEX_IVF_SQ8; }
static bool is_trained(syn_index_type t) {
  return is_ivf(t) || t == SYN_INDEX_FLAT_SQ8 || t == SYN_INDEX_HNSW_SQ8;
}

static uint32_t auto_nlist(size_t n) {
  double a = 4.0 * sqrt((double)n), b = (double)n / 39.0;
  double v = a < b ? a : b;
  if (v < 1) v = 1;
  if (v > 65536) v = 65536;
  return (uint32_t)v;
}

uint32_t syn_vindex_nprobe_for(const syn_index_config *cfg, uint32_t nlist) {
  if (nlist == 0) return 1;
  uint32_t p = cfg->ivf_nprobe ? cfg->ivf_nprobe : (nlist / 32 > 16 ? nlist / 32 : 16);
  return p > nlist ? nlist : p;
}

syn_vplan syn_vindex_plan(const syn_index_config *cfg, size_t live) {
  syn_vplan p = {SYN_INDEX_FLAT, 0, 0};
  size_t min_train = cfg->min_train > 2 ? cfg->min_train : 2;
  switch (cfg->type) {
  case SYN_INDEX_AUTO:
    if (live >= cfg->auto_threshold && live >= min_train) p.type = SYN_INDEX_IVF;
    break;
  case SYN_INDEX_HNSW: p.type = SYN_INDEX_HNSW; break;
  case SYN_INDEX_FLAT_SQ8:
  case SYN_INDEX_HNSW_SQ8:
    if (live >= min_train) p.type = cfg->type;
    break;
  case SYN_INDEX_IVF:
  case SYN_INDEX_IVF_SQ8: {
    size_t need = (size_t)cfg->ivf_nlist * 39;
    if (live >= (need > min_train ? need : min_train)) p.type = cfg->type;
    break;
  }
  default: break;
  }
  if (is_ivf(p.type)) {
    p.nlist = cfg->ivf_nlist ? cfg->ivf_nlist : auto_nlist(live);
    p.nprobe = syn_vindex_nprobe_for(cfg, p.nlist);
  }
  return p;
}

bool syn_vindex_should_rebuild(const syn_index_config *cfg, const syn_vplan_state *st) {
  if (st->type == SYN_INDEX_AUTO) return false;
  if (is_hnsw(st->type) && st->dead >= 16 &&
      (double)st->dead > cfg->tombstone_fraction * (double)(st->live + st->dead))
    return true;
  syn_vplan want = syn_vindex_plan(cfg, st->live);
  if (want.type != st->type) {
    if (cfg->type == SYN_INDEX_AUTO && st->type == SYN_INDEX_IVF &&
        st->live >= cfg->auto_threshold / 2)
      return false;
    if (cfg->type != SYN_INDEX_AUTO && st->type == cfg->type) return false;
    return true;
  }
  return is_trained(st->type) && st->trained_n > 0 &&
         (double)st->live >= cfg->growth * (double)st->trained_n;
}

/* ---- label map: open addressing, linear probing, key 0 = empty ------------------- */

typedef struct lmap {
  int64_t *keys;
  uint8_t *vals;
  size_t cap, n;
} lmap;

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static size_t lmap_slot(const lmap *m, int64_t key) {
  size_t mask = m->cap - 1, i = (size_t)mix64((uint64_t)key) & mask;
  while (m->keys[i] && m->keys[i] != key) i = (i + 1) & mask;
  return i;
}

static uint8_t lmap_get(const lmap *m, int64_t key) {
  if (!m->cap) return 0;
  size_t i = lmap_slot(m, key);
  return m->keys[i] ? m->vals[i] : 0;
}

static int lmap_resize(lmap *m, size_t cap) {
  lmap nm = {calloc(cap, sizeof *nm.keys), calloc(cap, 1), cap, 0};
  if (!nm.keys || !nm.vals) {
    free(nm.keys);
    free(nm.vals);
    return -ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = lmap_slot(&nm, m->keys[i]);
    nm.keys[j] = m->keys[i];
    nm.vals[j] = m->vals[i];
    nm.n++;
  }
  free(m->keys);
  free(m->vals);
  *m = nm;
  return 0;
}

static int lmap_put(lmap *m, int64_t key, uint8_t val) {
  if ((m->n + 1) * 4 > m->cap * 3 && lmap_resize(m, m->cap ? m->cap * 2 : 64) != 0) return -ENOMEM;
  size_t i = lmap_slot(m, key);
  if (!m->keys[i]) m->keys[i] = key, m->n++;
  m->vals[i] = val;
  return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void lmap_del(lmap *m, int64_t key) {
  if (!m->cap) return;
  size_t mask = m->cap - 1, i = lmap_slot(m, key), j = i;
  if (!m->keys[i]) return;
  m->keys[i] = 0;
  m->n--;
  for (;;) {
    j = (j + 1) & mask;
    if (!m->keys[j]) return;
    size_t k = (size_t)mix64((uint64_t)m->keys[j]) & mask;
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    m->keys[i] = m->keys[j];
    m->vals[i] = m->vals[j];
    m->keys[j] = 0;
    i = j;
  }
}

/* Updates the value of a present key (never allocates); absent keys are left alone. */
static void lmap_set(lmap *m, int64_t key, uint8_t val) {
  if (!m->cap) return;
  size_t i = lmap_slot(m, key);
  if (m->keys[i]) m->vals[i] = val;
}

static void lmap_free(lmap *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

/* ---- vinst: one faiss index with its labels --------------------------------------- */

typedef struct vinst {
  FaissIndex *fi;
  syn_index_type type;
  uint32_t dim, nlist, nprobe;
  size_t trained_n; /* collection size when trained; 0 = untrained type */
  lmap map;
  size_t live, dead;
  int64_t live_sum;
} vinst;

static int faiss_fail(const char *what) {
  const char *msg = faiss_get_last_error();
  syn_warn("faiss %s failed: %s", what, msg ? msg : "unknown error");
  return -EIO;
}

static int set_param(FaissIndex *fi, const char *name, double val) {
  FaissParameterSpace *ps = NULL;
  if (faiss_ParameterSpace_new(&ps) != 0) return faiss_fail("ParameterSpace");
  int rc = faiss_ParameterSpace_set_index_parameter(ps, fi, name, val);
  faiss_ParameterSpace_free(ps);
  return rc ? faiss_fail(name) : 0;
}

static void factory_desc(const syn_vplan *p, const syn_index_config *cfg, char *out, size_t cap) {
  unsigned m = cfg->hnsw_m ? cfg->hnsw_m : 32;
  switch (p->type) {
  case SYN_INDEX_FLAT_SQ8: snprintf(out, cap, "IDMap,SQ8"); break;
  case SYN_INDEX_IVF: snprintf(out, cap, "IVF%u,Flat", p->nlist); break;
  case SYN_INDEX_IVF_SQ8: snprintf(out, cap, "IVF%u,SQ8", p->nlist); break;
  case SYN_INDEX_HNSW: snprintf(out, cap, "IDMap,HNSW%u", m); break;
  case SYN_INDEX_HNSW_SQ8: snprintf(out, cap, "IDMap,HNSW%u,SQ8", m); break;
  default: snprintf(out, cap, "IDMap,Flat"); break;
  }
}

/* Search-time parameters from the config (also applied to loaded snapshots). */
static int vinst_tune(vinst *v, const syn_index_config *cfg) {
  if (is_ivf(v->type)) {
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(v->fi);
    if (!ivf) return -EIO;
    v->nlist = (uint32_t)faiss_IndexIVF_nlist(ivf);
    v->nprobe = syn_vindex_nprobe_for(cfg, v->nlist);
    faiss_IndexIVF_set_nprobe(ivf, v->nprobe);
  } else if (is_hnsw(v->type)) {
    return set_param(v->fi, "efSearch", cfg->hnsw_ef_search ? cfg->hnsw_ef_search : 64);
  }
  return 0;
}

static void vinst_free(vinst *v) {
  if (!v) return;
  if (v->fi) faiss_Index_free(v->fi);
  lmap_free(&v->map);
  free(v);
}

static vinst *vinst_new(const syn_vplan *p, uint32_t dim, const syn_index_config *cfg) {
  vinst *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->type = p->type;
  v->dim = dim;
  char desc[64];
  factory_desc(p, cfg, desc, sizeof desc);
  if (faiss_index_factory(&v->fi, (int)dim, desc, METRIC_INNER_PRODUCT) != 0) {
    faiss_fail(desc);
    vinst_free(v);
    return NULL;
  }
  int rc = 0;
  if (is_hnsw(p->type))
    rc = set_param(v->fi, "efConstruction",
                   cfg->hnsw_ef_construction ? cfg->hnsw_ef_construction : 64);
  if (rc == 0) rc = vinst_tune(v, cfg);
  if (rc != 0) {
    vinst_free(v);
    return NULL;
  }
  return v;
}

static int vinst_add_batch(vinst *v, size_t n, const float *x, const int64_t *labels) {
  for (size_t i = 0; i < n; i++)
    if (lmap_put(&v->map, labels[i], L_LIVE) != 0) return -ENOMEM;
  if (faiss_Index_add_with_ids(v->fi, (idx_t)n, x, labels) != 0) {
    for (size_t i = 0; i < n; i++) lmap_del(&v->map, labels[i]);
    return faiss_fail("add");
  }
  v->live += n;
  for (size_t i = 0; i < n; i++) v->live_sum += labels[i];
  return 0;
}

static int vinst_add(vinst *v, int64_t label, const float *x) {
  uint8_t st = lmap_get(&v->map, label);
  if (st & L_LIVE) return 0;
  if (st & L_DEAD) { /* ids are never reused, so this only follows a bogus removal */
    lmap_set(&v->map, label, L_LIVE);
    v->dead--, v->live++, v->live_sum += label;
    return 0;
  }
  return vinst_add_batch(v, 1, x, &label);
}

/* Removes the given live labels: physically, or as tombstones in HNSW. */
static int vinst_remove_batch(vinst *v, const int64_t *labels, size_t n) {
  if (n == 0) return 0;
  if (!is_hnsw(v->type)) {
    /* A range selector for one id: the batch one builds a hash set and a bloom filter. */
    FaissIDSelectorRange *range = NULL;
    FaissIDSelectorBatch *batch = NULL;
    int rc = n == 1 ? faiss_IDSelectorRange_new(&range, labels[0], labels[0] + 1)
                    : faiss_IDSelectorBatch_new(&batch, n, labels);
    const FaissIDSelector *sel =
        range ? (const FaissIDSelector *)range : (const FaissIDSelector *)batch;
    size_t removed = 0;
    if (rc == 0) rc = faiss_Index_remove_ids(v->fi, sel, &removed);
    if (range) faiss_IDSelectorRange_free(range);
    if (batch) faiss_IDSelector_free((FaissIDSelector *)batch);
    if (rc != 0) return faiss_fail("remove_ids");
  }
  for (size_t i = 0; i < n; i++) {
    if (is_hnsw(v->type)) {
      lmap_set(&v->map, labels[i], L_DEAD);
      v->dead++;
    } else {
      lmap_del(&v->map, labels[i]);
    }
    v->live--;
    v->live_sum -= labels[i];
  }
  return 0;
}

static int vinst_remove(vinst *v, int64_t label) {
  if (!(lmap_get(&v->map, label) & L_LIVE)) return 0;
  return vinst_remove_batch(v, &label, 1);
}

/* One faiss query of kk results, restricted to sel's labels when sel is given. */
static int vinst_query(const vinst *v, const float *q, size_t kk, const syn_vselect *sel, float *d,
                       idx_t *ids) {
  if (!sel)
    return faiss_Index_search(v->fi, 1, q, (idx_t)kk, d, ids) == 0 ? 0 : faiss_fail("search");
  char err[256];
  if (syn_faiss_search_selected(v->fi, q, (int64_t)kk, d, ids, sel->member, sel->ctx, err,
                                sizeof err) == 0)
    return 0;
  syn_warn("faiss selected search failed: %s", err);
  return -EIO;
}

/* Asks faiss for more than k when tombstones may take places, doubling until k live
 * labels are found, the whole index has been returned, or faiss has nothing more to give
 * (a short answer: IVF's probed cells, or the selector's labels, are exhausted). */
static int vinst_search(const vinst *v, const float *q, uint32_t k, const syn_vselect *sel,
                        int64_t *labels, float *scores, size_t *n) {
  *n = 0;
  size_t ntotal = (size_t)faiss_Index_ntotal(v->fi);
  if (ntotal == 0 || k == 0) return 0;
  size_t kk = (size_t)k + (v->dead < k ? v->dead : k);
  if (kk > ntotal) kk = ntotal;
  for (;;) {
    float *d = malloc(kk * sizeof *d);
    idx_t *ids = malloc(kk * sizeof *ids);
    if (!d || !ids) {
      free(d), free(ids);
      return -ENOMEM;
    }
    int rc = vinst_query(v, q, kk, sel, d, ids);
    size_t got = 0, returned = 0;
    for (size_t i = 0; rc == 0 && i < kk && got < k; i++) {
      if (ids[i] >= 0) returned++;
      if (ids[i] < 0 || !(lmap_get(&v->map, ids[i]) & L_LIVE)) continue;
      labels[got] = ids[i];
      scores[got] = d[i];
      got++;
    }
    free(d), free(ids);
    if (rc != 0) return rc;
    *n = got;
    if (got == k || kk >= ntotal || returned < kk) return 0;
    kk = kk * 2 > ntotal ? ntotal : kk * 2;
  }
}

/* ---- the collection index ---------------------------------------------------------- */

/* Upserts, removals and searches come one vector at a time from node workers: an OpenMP
 * team per call (faiss's IVF add and HNSW add always open one) would only add thread
 * hand-offs and spinning threads to a microsecond operation, so those calls run with one
 * OpenMP thread, restoring the caller's setting after. Rebuilds keep the builder's. */
static int omp_single_enter(void) {
  int prev = omp_get_max_threads();
  if (prev != 1) omp_set_num_threads(1);
  return prev;
}

static void omp_single_leave(int prev) {
  if (prev != 1) omp_set_num_threads(prev);
}

typedef struct pending_op {
  int64_t label, old_label;
  float *vec; /* NULL: remove label */
} pending_op;

struct syn_vindex {
  char *model_key;
  uint32_t dim;
  syn_index_config cfg;
  pthread_rwlock_t lock;
  vinst *cur;
  bool building, force_rebuild, pending_lost;
  pending_op *pend;
  size_t npend, cap_pend;
  uint64_t changes;
  uint64_t rebuilds, snapshots_written;
  double last_build_s;
  size_t last_build_n;
  uint64_t snap_changes; /* only the snapshot thread */
};

syn_vindex *syn_vindex_new(const char *model_key, uint32_t dim, const syn_index_config *cfg) {
  syn_vindex *vi = calloc(1, sizeof *vi);
  if (!vi || !(vi->model_key = strdup(model_key))) {
    free(vi);
    return NULL;
  }
  vi->dim = dim;
  vi->cfg = *cfg;
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* glibc's default prefers readers: a steady stream of searches would starve writers. */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&vi->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  return vi;
}

static void pending_clear(syn_vindex *vi) {
  for (size_t i = 0; i < vi->npend; i++) free(vi->pend[i].vec);
  free(vi->pend);
  vi->pend = NULL;
  vi->npend = vi->cap_pend = 0;
}

void syn_vindex_free(syn_vindex *vi) {
  if (!vi) return;
  vinst_free(vi->cur);
  pending_clear(vi);
  pthread_rwlock_destroy(&vi->lock);
  free(vi->model_key);
  free(vi);
}

const char *syn_vindex_model_key(const syn_vindex *vi) { return vi->model_key; }
uint32_t syn_vindex_dim(const syn_vindex *vi) { return vi->dim; }

/* Logs a write for replay into the index being built; a write that cannot be logged
 * dooms that build (it would miss the write), never the write itself. */
static void pending_push(syn_vindex *vi, int64_t label, int64_t old_label, const float *unit) {
  if (vi->pending_lost) return;
  if (vi->npend == vi->cap_pend) {
    size_t ncap = vi->cap_pend ? vi->cap_pend * 2 : 16;
    pending_op *np = realloc(vi->pend, ncap * sizeof *np);
    if (!np) goto lost;
    vi->pend = np, vi->cap_pend = ncap;
  }
  pending_op op = {label, old_label, NULL};
  if (unit) {
    if (!(op.vec = malloc(4 * (size_t)vi->dim))) goto lost;
    memcpy(op.vec, unit, 4 * (size_t)vi->dim);
  }
  vi->pend[vi->npend++] = op;
  return;
lost:
  vi->pending_lost = true;
}

int syn_vindex_upsert(syn_vindex *vi, int64_t label, const float *unit, int64_t old_label) {
  if (label <= 0) return -EINVAL;
  int omp = omp_single_enter();
  pthread_rwlock_wrlock(&vi->lock);
  int rc = 0;
  if (!vi->cur) {
    syn_vplan p = syn_vindex_plan(&vi->cfg, 1); /* never a trained type */
    if (!(vi->cur = vinst_new(&p, vi->dim, &vi->cfg))) rc = -ENOMEM;
  }
  if (rc == 0 && old_label > 0) rc = vinst_remove(vi->cur, old_label);
  if (rc == 0) rc = vinst_add(vi->cur, label, unit);
  if (vi->building) pending_push(vi, label, old_label, unit);
  if (rc != 0) vi->force_rebuild = true;
  vi->changes++;
  pthread_rwlock_unlock(&vi->lock);
  omp_single_leave(omp);
  return rc;
}

int syn_vindex_remove(syn_vindex *vi, int64_t label) {
  int omp = omp_single_enter();
  pthread_rwlock_wrlock(&vi->lock);
  int rc = vi->cur ? vinst_remove(vi->cur, label) : 0;
  if (vi->building) pending_push(vi, label, 0, NULL);
  if (rc != 0) vi->force_rebuild = true;
  vi->changes++;
  pthread_rwlock_unlock(&vi->lock);
  omp_single_leave(omp);
  return rc;
}

int syn_vindex_search(syn_vindex *vi, const float *unit, uint32_t k, const syn_vselect *sel,
                      int64_t *labels, float *scores, size_t *n) {
  *n = 0;
  int omp = omp_single_enter();
  pthread_rwlock_rdlock(&vi->lock);
  int rc = vi->cur ? vinst_search(vi->cur, unit, k, sel, labels, scores, n) : 0;
  pthread_rwlock_unlock(&vi->lock);
  omp_single_leave(omp);
  return rc;
}

bool syn_vindex_needs_rebuild(syn_vindex *vi) {
  pthread_rwlock_rdlock(&vi->lock);
  bool r = false;
  if (!vi->building && vi->cur) {
    syn_vplan_state st = {vi->cur->type, vi->cur->live, vi->cur->dead, vi->cur->trained_n};
    r = vi->force_rebuild || syn_vindex_should_rebuild(&vi->cfg, &st);
  }
  pthread_rwlock_unlock(&vi->lock);
  return r;
}

/* ---- rebuild ----------------------------------------------------------------------- */

typedef struct gather {
  float *x;
  int64_t *labels;
  size_t n, cap;
  uint32_t dim;
  const atomic_bool *cancel; /* checked every 1024 rows: close need not wait for a scan */
} gather;

static int gather_emit(void *ctx, int64_t label, const float *unit) {
  gather *g = ctx;
  if (g->cancel && (g->n & 1023) == 0 && atomic_load(g->cancel)) return -ECANCELED;
  if (g->n == g->cap) {
    size_t ncap = g->cap ? g->cap * 2 : 1024;
    float *nx = realloc(g->x, ncap * g->dim * sizeof *nx);
    if (!nx) return -ENOMEM;
    g->x = nx;
    int64_t *nl = realloc(g->labels, ncap * sizeof *nl);
    if (!nl) return -ENOMEM;
    g->labels = nl, g->cap = ncap;
  }
  memcpy(g->x + g->n * g->dim, unit, g->dim * sizeof *g->x);
  g->labels[g->n++] = label;
  return 0;
}

static void gather_free(gather *g) {
  free(g->x);
  free(g->labels);
  memset(g, 0, sizeof *g);
}

/* Moves an evenly spaced sample of `want` rows to the front of g, in place (rows and
 * labels swap together; the order in which vectors are added does not matter). Row i
 * takes row i*n/want, which is never a row already placed. */
static void gather_sample_to_front(gather *g, size_t want) {
  float *tmp = malloc(g->dim * sizeof *tmp);
  for (size_t i = 0; tmp && i < want; i++) {
    size_t j = i * g->n / want;
    if (j == i) continue;
    memcpy(tmp, g->x + i * g->dim, g->dim * sizeof *tmp);
    memcpy(g->x + i * g->dim, g->x + j * g->dim, g->dim * sizeof *tmp);
    memcpy(g->x + j * g->dim, tmp, g->dim * sizeof *tmp);
    int64_t l = g->labels[i];
    g->labels[i] = g->labels[j], g->labels[j] = l;
  }
  free(tmp); /* without tmp the prefix is simply the first rows: still a valid sample */
}

/* Trains on an evenly spaced sample: k-means wants 39..256 points per cell (40 here: the
 * cost of training grows with sample x cells, about a minute of one core for 80k x 1264
 * cells of 768-d on the reference machine), the scalar quantiser only value ranges. */
static int vinst_train_from(vinst *v, gather *g, const syn_vplan *p) {
  size_t want = is_ivf(p->type) ? (size_t)p->nlist * 40 : 65536;
  if (want > g->n) want = g->n;
  if (want < g->n) gather_sample_to_front(g, want);
  if (faiss_Index_train(v->fi, (idx_t)want, g->x) != 0) return faiss_fail("train");
  return 0;
}

static vinst *build_instance(const syn_vindex *vi, gather *g, const atomic_bool *cancel, int *rc) {
  syn_vplan p = syn_vindex_plan(&vi->cfg, g->n);
  vinst *v = vinst_new(&p, vi->dim, &vi->cfg);
  *rc = v ? 0 : -EIO;
  if (*rc == 0 && is_trained(p.type)) {
    *rc = vinst_train_from(v, g, &p);
    v->trained_n = g->n;
  }
  for (size_t i = 0; *rc == 0 && i < g->n; i += ADD_BATCH) {
    if (cancel && atomic_load(cancel)) *rc = -ECANCELED;
    size_t m = g->n - i < ADD_BATCH ? g->n - i : ADD_BATCH;
    if (*rc == 0) *rc = vinst_add_batch(v, m, g->x + i * g->dim, g->labels + i);
  }
  if (*rc != 0) {
    vinst_free(v);
    return NULL;
  }
  return v;
}

/* Replays logged writes in order. Runs of additions go to faiss in one call (one BLAS
 * assignment for IVF, one parallel insertion for HNSW: a long build can log tens of
 * thousands of registrations); a removal first flushes the run, as it may name a label
 * in it. */
static int replay(vinst *v, const pending_op *ops, size_t n) {
  enum { RUN = 1024 };
  float *x = malloc((size_t)RUN * v->dim * sizeof *x);
  int64_t *labels = malloc(RUN * sizeof *labels);
  int rc = x && labels ? 0 : -ENOMEM;
  size_t m = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const pending_op *op = &ops[i];
    int64_t removal = op->vec ? op->old_label : op->label;
    if (removal > 0) {
      if (m) rc = vinst_add_batch(v, m, x, labels), m = 0;
      if (rc == 0) rc = vinst_remove(v, removal);
    }
    if (rc != 0 || !op->vec) continue;
    if (lmap_get(&v->map, op->label) != 0) { /* already in the scan (or a tombstone) */
      rc = vinst_add(v, op->label, op->vec);
      continue;
    }
    memcpy(x + m * v->dim, op->vec, v->dim * sizeof *x);
    labels[m++] = op->label;
    if (m == RUN) rc = vinst_add_batch(v, m, x, labels), m = 0;
  }
  if (rc == 0 && m) rc = vinst_add_batch(v, m, x, labels);
  free(x);
  free(labels);
  return rc;
}

static void steal_pending(syn_vindex *vi, pending_op **ops, size_t *n) {
  *ops = vi->pend, *n = vi->npend;
  vi->pend = NULL;
  vi->npend = vi->cap_pend = 0;
}

static void free_ops(pending_op *ops, size_t n) {
  for (size_t i = 0; i < n; i++) free(ops[i].vec);
  free(ops);
}

/* Replays the write log into nv in rounds without the lock while it is long, then the
 * rest under the write lock, and swaps. *old receives the index to free (after unlock). */
static int replay_and_swap(syn_vindex *vi, vinst *nv, const atomic_bool *cancel, vinst **old) {
  for (int round = 0;; round++) {
    pthread_rwlock_wrlock(&vi->lock);
    bool cancelled = cancel && atomic_load(cancel);
    int rc = vi->pending_lost ? -ENOMEM : cancelled ? -ECANCELED : 0;
    if (rc == 0 && vi->npend > REPLAY_SWAP_MAX && round < REPLAY_ROUNDS) {
      pending_op *ops;
      size_t n;
      steal_pending(vi, &ops, &n);
      pthread_rwlock_unlock(&vi->lock);
      rc = replay(nv, ops, n);
      free_ops(ops, n);
      if (rc == 0) continue;
      pthread_rwlock_wrlock(&vi->lock);
    }
    if (rc == 0) rc = replay(nv, vi->pend, vi->npend);
    pending_clear(vi);
    vi->building = false;
    vi->pending_lost = false;
    if (rc == 0) {
      *old = vi->cur;
      vi->cur = nv;
      vi->rebuilds++;
      vi->changes++;
    } else {
      *old = nv;
      if (rc != -ECANCELED) vi->force_rebuild = true;
    }
    pthread_rwlock_unlock(&vi->lock);
    return rc;
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int syn_vindex_rebuild(syn_vindex *vi, const syn_vsource *src, const atomic_bool *cancel) {
  pthread_rwlock_wrlock(&vi->lock);
  if (vi->building) {
    pthread_rwlock_unlock(&vi->lock);
    return -EBUSY;
  }
  vi->building = true; /* from here on every write is logged; then the scan starts */
  vi->force_rebuild = vi->pending_lost = false;
  size_t hint = vi->cur ? vi->cur->live + 1024 : 1024;
  pthread_rwlock_unlock(&vi->lock);

  double t0 = now_s();
  /* Sized up front: doubling a buffer of hundreds of MB would copy it several times. */
  gather g = {.dim = vi->dim, .cancel = cancel};
  g.x = malloc(hint * vi->dim * sizeof *g.x);
  g.labels = malloc(hint * sizeof *g.labels);
  g.cap = g.x && g.labels ? hint : 0;
  int rc = src->scan(src->ctx, vi->model_key, vi->dim, gather_emit, &g);
  vinst *nv = rc == 0 ? build_instance(vi, &g, cancel, &rc) : NULL;
  size_t n = g.n;
  gather_free(&g);
  vinst *old = NULL;
  if (rc == 0) {
    rc = replay_and_swap(vi, nv, cancel, &old);
  } else {
    pthread_rwlock_wrlock(&vi->lock);
    pending_clear(vi);
    vi->building = vi->pending_lost = false;
    pthread_rwlock_unlock(&vi->lock);
  }
  vinst_free(old);
  if (rc == 0) {
    pthread_rwlock_wrlock(&vi->lock);
    vi->last_build_s = now_s() - t0;
    vi->last_build_n = n;
    pthread_rwlock_unlock(&vi->lock);
  }
  return rc;
}

int syn_vindex_load_source(syn_vindex *vi, const syn_vsource *src) {
  gather g = {.dim = vi->dim};
  int rc = src->scan(src->ctx, vi->model_key, vi->dim, gather_emit, &g);
  syn_vplan p = {SYN_INDEX_FLAT, 0, 0};
  vinst *v = rc == 0 ? vinst_new(&p, vi->dim, &vi->cfg) : NULL;
  if (rc == 0 && !v) rc = -EIO;
  for (size_t i = 0; rc == 0 && i < g.n; i += ADD_BATCH) {
    size_t m = g.n - i < ADD_BATCH ? g.n - i : ADD_BATCH;
    rc = vinst_add_batch(v, m, g.x + i * g.dim, g.labels + i);
  }
  gather_free(&g);
  if (rc != 0) {
    vinst_free(v);
    return rc;
  }
  pthread_rwlock_wrlock(&vi->lock);
  vinst *old = vi->cur;
  vi->cur = v;
  vi->changes++;
  pthread_rwlock_unlock(&vi->lock);
  vinst_free(old);
  return 0;
}

/* ---- snapshots --------------------------------------------------------------------- */

/* Every field 8 bytes wide: no padding, the same layout on every 64-bit target. */
typedef struct sidecar_hdr {
  char magic[8];
  uint64_t version, dim, type, nlist, nprobe, hnsw_m, trained_n, live, dead;
  int64_t live_sum;
  uint64_t nlabels, faiss_bytes, faiss_hash, key_len;
} sidecar_hdr;

static const char k_magic[8] = {'S', 'Y', 'N', 'V', 'I', 'D', 'X', '1'};

/* A word-at-a-time 64-bit hash (FNV-style multiply, rotate, final mix): fast enough to
 * check a few hundred MB at start, meant for corruption, not for adversaries. */
typedef struct hasher {
  uint64_t h, len;
} hasher;

static void hash_words(hasher *hs, const unsigned char *p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    hs->h = (hs->h ^ w) * 0x100000001b3ULL;
    hs->h = (hs->h << 31) | (hs->h >> 33);
  }
  for (; i < n; i++) hs->h = (hs->h ^ p[i]) * 0x100000001b3ULL;
  hs->len += n;
}

static uint64_t hash_final(const hasher *hs) { return mix64(hs->h ^ hs->len); }

static uint64_t hash_buf(const void *p, size_t n) {
  hasher hs = {0xcbf29ce484222325ULL, 0};
  hash_words(&hs, p, n);
  return hash_final(&hs);
}

/* Hash and size of a file; chunks are multiples of 8 so the result equals hash_buf. */
static int hash_file(const char *path, uint64_t *hash, uint64_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return -errno;
  enum { CHUNK = 1 << 20 };
  unsigned char *buf = malloc(CHUNK);
  if (!buf) {
    fclose(f);
    return -ENOMEM;
  }
  hasher hs = {0xcbf29ce484222325ULL, 0};
  size_t got;
  while ((got = fread(buf, 1, CHUNK, f)) > 0) hash_words(&hs, buf, got);
  int rc = ferror(f) ? -EIO : 0;
  fclose(f);
  free(buf);
  *hash = hash_final(&hs);
  *size = hs.len;
  return rc;
}

static int fsync_path(const char *path, bool dir) {
  int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

void syn_vindex_snapshot_names(const char *model_key, uint32_t dim, char *index_name,
                               char *sidecar_name, size_t cap) {
  char safe[49];
  size_t n = 0;
  for (const char *p = model_key; *p && n < sizeof safe - 1; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    safe[n++] = ok ? c : '_';
  }
  safe[n] = '\0';
  unsigned h = (unsigned)(hash_buf(model_key, strlen(model_key)) & 0xffffffffu);
  snprintf(index_name, cap, "vec-%s-%u-%08x.faiss", safe, dim, h);
  snprintf(sidecar_name, cap, "vec-%s-%u-%08x.meta", safe, dim, h);
}

static void snapshot_paths(const syn_vindex *vi, const char *dir, char *ip, char *sp, size_t cap) {
  char in[128], sn[128];
  syn_vindex_snapshot_names(vi->model_key, vi->dim, in, sn, sizeof in);
  snprintf(ip, cap, "%s/%s", dir, in);
  snprintf(sp, cap, "%s/%s", dir, sn);
}

/* Sidecar image of v (header, model key, labels, states); trailing hash left empty. */
static unsigned char *sidecar_build(const syn_vindex *vi, const vinst *v, size_t *len) {
  size_t klen = strlen(vi->model_key), n = v->map.n;
  *len = sizeof(sidecar_hdr) + klen + 9 * n + 8;
  unsigned char *buf = malloc(*len);
  if (!buf) return NULL;
  sidecar_hdr h = {.version = 1,
                   .dim = vi->dim,
                   .type = (uint64_t)v->type,
                   .nlist = v->nlist,
                   .nprobe = v->nprobe,
                   .hnsw_m = vi->cfg.hnsw_m,
                   .trained_n = v->trained_n,
                   .live = v->live,
                   .dead = v->dead,
                   .live_sum = v->live_sum,
                   .nlabels = n,
                   .key_len = klen};
  memcpy(h.magic, k_magic, sizeof h.magic);
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, vi->model_key, klen);
  unsigned char *labels = buf + sizeof h + klen, *states = labels + 8 * n;
  size_t j = 0;
  for (size_t i = 0; i < v->map.cap; i++) {
    if (!v->map.keys[i]) continue;
    memcpy(labels + 8 * j, &v->map.keys[i], 8);
    states[j++] = v->map.vals[i] & (L_LIVE | L_DEAD);
  }
  return buf;
}

static int write_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -errno;
  int rc = fwrite(buf, 1, len, f) == len ? 0 : -EIO;
  if (fclose(f) != 0 && rc == 0) rc = -EIO;
  return rc;
}

/* Checksums, fsyncs and renames the two temporary files into place, index first: a
 * crash in between leaves a sidecar whose checksum no longer matches the index. */
static int snapshot_commit(const char *dir, const char *ip, const char *sp, unsigned char *side,
                           size_t slen) {
  char itmp[4200], stmp[4200];
  snprintf(itmp, sizeof itmp, "%s.tmp", ip);
  snprintf(stmp, sizeof stmp, "%s.tmp", sp);
  sidecar_hdr h;
  memcpy(&h, side, sizeof h);
  int rc = hash_file(itmp, &h.faiss_hash, &h.faiss_bytes);
  if (rc == 0) {
    memcpy(side, &h, sizeof h);
    uint64_t sh = hash_buf(side, slen - 8);
    memcpy(side + slen - 8, &sh, 8);
    rc = write_file(stmp, side, slen);
  }
  if (rc == 0) rc = fsync_path(itmp, false);
  if (rc == 0) rc = fsync_path(stmp, false);
  if (rc == 0 && rename(itmp, ip) != 0) rc = -errno;
  if (rc == 0 && rename(stmp, sp) != 0) rc = -errno;
  if (rc == 0) rc = fsync_path(dir, true);
  if (rc != 0) unlink(itmp), unlink(stmp);
  return rc;
}

int syn_vindex_snapshot_write(syn_vindex *vi, const char *dir, bool force) {
  char ip[4096], sp[4096], itmp[4200];
  snapshot_paths(vi, dir, ip, sp, sizeof ip);
  snprintf(itmp, sizeof itmp, "%s.tmp", ip);
  pthread_rwlock_rdlock(&vi->lock);
  if (vi->building || !vi->cur || (!force && vi->changes == vi->snap_changes)) {
    pthread_rwlock_unlock(&vi->lock);
    return 0;
  }
  int rc = faiss_write_index_fname(vi->cur->fi, itmp) == 0 ? 0 : faiss_fail("write_index");
  size_t slen = 0;
  unsigned char *side = rc == 0 ? sidecar_build(vi, vi->cur, &slen) : NULL;
  if (rc == 0 && !side) rc = -ENOMEM;
  uint64_t at = vi->changes;
  pthread_rwlock_unlock(&vi->lock);
  if (rc == 0) rc = snapshot_commit(dir, ip, sp, side, slen);
  free(side);
  if (rc != 0) {
    unlink(itmp);
    syn_warn("index snapshot of %s/%u failed: %s", vi->model_key, vi->dim, strerror(-rc));
    return rc;
  }
  vi->snap_changes = at;
  pthread_rwlock_wrlock(&vi->lock);
  vi->snapshots_written++;
  pthread_rwlock_unlock(&vi->lock);
  return 1;
}

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct stat sb;
  unsigned char *buf = NULL;
  if (fstat(fileno(f), &sb) == 0 && sb.st_size > 0 && sb.st_size < (1LL << 34) &&
      (buf = malloc((size_t)sb.st_size)) != NULL) {
    *len = (size_t)sb.st_size;
    if (fread(buf, 1, *len, f) != *len) {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  return buf;
}

#define REFUSE(...)                                         \
  do {                                                      \
    snprintf(res->reason, sizeof res->reason, __VA_ARGS__); \
    goto refused;                                           \
  } while (0)

/* Parses and checks a sidecar; fills *h and a new vinst's label map and counts. */
static int sidecar_parse(const syn_vindex *vi, const unsigned char *buf, size_t len, sidecar_hdr *h,
                         vinst *v, syn_vload_result *res) {
  if (len < sizeof *h + 8) REFUSE("sidecar truncated");
  memcpy(h, buf, sizeof *h);
  uint64_t want;
  memcpy(&want, buf + len - 8, 8);
  if (memcmp(h->magic, k_magic, 8) != 0 || h->version != 1) REFUSE("sidecar format unknown");
  if (hash_buf(buf, len - 8) != want) REFUSE("sidecar checksum mismatch");
  size_t klen = strlen(vi->model_key);
  if (h->key_len != klen || memcmp(buf + sizeof *h, vi->model_key, klen) != 0 || h->dim != vi->dim)
    REFUSE("snapshot of another collection");
  if (h->nlabels > (len - sizeof *h - klen - 8) / 9 || len != sizeof *h + klen + 9 * h->nlabels + 8)
    REFUSE("sidecar size mismatch");
  if (h->type < SYN_INDEX_FLAT || h->type >= SYN_INDEX_TYPE_COUNT) REFUSE("bad index type");
  v->type = (syn_index_type)h->type;
  v->dim = vi->dim;
  v->trained_n = h->trained_n;
  const unsigned char *labels = buf + sizeof *h + klen, *states = labels + 8 * h->nlabels;
  for (uint64_t i = 0; i < h->nlabels; i++) {
    int64_t label;
    memcpy(&label, labels + 8 * i, 8);
    uint8_t st = states[i];
    bool ok = label > 0 && (st == L_LIVE || (st == L_DEAD && is_hnsw(v->type))) &&
              lmap_get(&v->map, label) == 0;
    if (!ok) REFUSE("bad label entry");
    if (lmap_put(&v->map, label, st) != 0) REFUSE("out of memory");
    if (st == L_LIVE)
      v->live++, v->live_sum += label;
    else
      v->dead++;
  }
  if (v->live != h->live || v->dead != h->dead || v->live_sum != h->live_sum)
    REFUSE("sidecar counts inconsistent");
  return 0;
refused:
  return -EINVAL;
}

/* Reads the faiss file after checking its size and checksum against the sidecar. */
static int faiss_file_load(const char *ip, const sidecar_hdr *h, vinst *v, syn_vload_result *res) {
  uint64_t hash = 0, size = 0;
  if (hash_file(ip, &hash, &size) != 0) REFUSE("index file missing");
  if (size != h->faiss_bytes || hash != h->faiss_hash) REFUSE("index file checksum mismatch");
  if (faiss_read_index_fname(ip, 0, &v->fi) != 0) REFUSE("faiss cannot read the index file");
  if (faiss_Index_d(v->fi) != (int)v->dim || (uint64_t)faiss_Index_ntotal(v->fi) != h->nlabels ||
      faiss_Index_metric_type(v->fi) != METRIC_INNER_PRODUCT || !faiss_Index_is_trained(v->fi))
    REFUSE("index file does not match its sidecar");
  if (is_ivf(v->type) && !faiss_IndexIVF_cast(v->fi)) REFUSE("index file of another type");
  return 0;
refused:
  return -EINVAL;
}

typedef struct recon {
  vinst *v;
  int64_t *missing;
  size_t nmissing, cap;
} recon;

static int recon_mark(void *ctx, int64_t label) {
  recon *r = ctx;
  vinst *v = r->v;
  uint8_t st = lmap_get(&v->map, label);
  if (st & L_LIVE) {
    lmap_set(&v->map, label, L_LIVE | L_SEEN);
    return 0;
  }
  if (r->nmissing == r->cap) {
    size_t ncap = r->cap ? r->cap * 2 : 64;
    int64_t *nm = realloc(r->missing, ncap * sizeof *nm);
    if (!nm) return -ENOMEM;
    r->missing = nm, r->cap = ncap;
  }
  r->missing[r->nmissing++] = label;
  return 0;
}

/* Brings a loaded snapshot up to the source: adds the rows it lacks, removes the ones the
 * source no longer has. The id scan only collects; vectors are fetched after it, so the
 * source never needs two connections at once. */
/* Adds a run of fetched vectors and marks them seen. */
static int recon_flush(vinst *v, const float *x, const int64_t *labels, size_t m,
                       syn_vload_result *res) {
  int rc = m ? vinst_add_batch(v, m, x, labels) : 0;
  for (size_t i = 0; rc == 0 && i < m; i++) lmap_set(&v->map, labels[i], L_LIVE | L_SEEN);
  if (rc == 0) res->added += m;
  return rc;
}

/* Brings a loaded snapshot up to the source: adds the rows it lacks (in runs, one faiss
 * call each), removes the ones the source no longer has. The id scan only collects;
 * vectors are fetched after it, so the source never needs two connections at once. A
 * snapshot missing more than a tenth of the collection (and 1024 vectors) is refused:
 * rebuilding in the background then costs less than adding them all during start-up. */
static int reconcile(syn_vindex *vi, vinst *v, const syn_vsource *src, int64_t want_count,
                     syn_vload_result *res) {
  enum { RUN = 1024 };
  recon r = {.v = v};
  int rc = src->scan_ids(src->ctx, vi->model_key, vi->dim, recon_mark, &r);
  size_t most = want_count / 10 > RUN ? (size_t)want_count / 10 : RUN;
  if (rc == 0 && r.nmissing > most) rc = -E2BIG;
  float *x = malloc((size_t)RUN * vi->dim * sizeof *x);
  int64_t *labels = malloc(RUN * sizeof *labels);
  if (rc == 0 && (!x || !labels)) rc = -ENOMEM;
  size_t m = 0;
  for (size_t i = 0; rc == 0 && i < r.nmissing; i++) {
    int64_t id = r.missing[i];
    rc = src->get(src->ctx, id, vi->dim, x + m * vi->dim);
    if (rc == -ENOENT) { /* deleted meanwhile: nothing to add */
      rc = 0;
      continue;
    }
    if (rc == 0 && (lmap_get(&v->map, id) & L_DEAD)) { /* a tombstone comes back */
      rc = vinst_add(v, id, x + m * vi->dim);
      lmap_set(&v->map, id, L_LIVE | L_SEEN);
      continue;
    }
    if (rc == 0) labels[m++] = id;
    if (rc == 0 && m == RUN) rc = recon_flush(v, x, labels, m, res), m = 0;
  }
  if (rc == 0) rc = recon_flush(v, x, labels, m, res);
  free(x);
  free(labels);
  free(r.missing);
  int64_t *gone = rc == 0 ? malloc((v->live + 1) * sizeof *gone) : NULL;
  size_t ngone = 0;
  if (rc == 0 && !gone) rc = -ENOMEM;
  for (size_t i = 0; rc == 0 && i < v->map.cap; i++) {
    if (!v->map.keys[i]) continue;
    if ((v->map.vals[i] & (L_LIVE | L_SEEN)) == L_LIVE) gone[ngone++] = v->map.keys[i];
    v->map.vals[i] &= (uint8_t)~L_SEEN;
  }
  if (rc == 0) rc = vinst_remove_batch(v, gone, ngone);
  res->removed = ngone;
  free(gone);
  return rc;
}

int syn_vindex_load(syn_vindex *vi, const char *dir, const syn_vsource *src, int64_t want_count,
                    int64_t want_sum, syn_vload_result *res) {
  memset(res, 0, sizeof *res);
  char ip[4096], sp[4096];
  snapshot_paths(vi, dir, ip, sp, sizeof ip);
  vinst *v = calloc(1, sizeof *v);
  if (!v) return -ENOMEM;
  size_t len = 0;
  unsigned char *buf = read_all(sp, &len);
  sidecar_hdr h;
  int rc = -EINVAL;
  if (!buf)
    snprintf(res->reason, sizeof res->reason, "no snapshot");
  else if ((rc = sidecar_parse(vi, buf, len, &h, v, res)) == 0)
    rc = faiss_file_load(ip, &h, v, res);
  free(buf);
  if (rc == 0 && vinst_tune(v, &vi->cfg) != 0) {
    snprintf(res->reason, sizeof res->reason, "cannot tune the loaded index");
    rc = -EIO;
  }
  if (rc == 0 && (v->live != (size_t)want_count || v->live_sum != want_sum)) {
    res->reconciled = true;
    rc = reconcile(vi, v, src, want_count, res);
    if (rc == 0 && (v->live != (size_t)want_count || v->live_sum != want_sum)) rc = -EAGAIN;
    if (rc != 0)
      snprintf(res->reason, sizeof res->reason, "%s",
               rc == -E2BIG ? "snapshot too stale" : "reconciliation failed");
  }
  if (rc != 0) {
    vinst_free(v);
    return rc;
  }
  pthread_rwlock_wrlock(&vi->lock);
  vinst *old = vi->cur;
  vi->cur = v;
  vi->changes++;
  if (!res->reconciled) vi->snap_changes = vi->changes;
  pthread_rwlock_unlock(&vi->lock);
  vinst_free(old);
  res->loaded = true;
  return 0;
}

void syn_vindex_stats_get(syn_vindex *vi, syn_vindex_stats *out) {
  memset(out, 0, sizeof *out);
  pthread_rwlock_rdlock(&vi->lock);
  if (vi->cur) {
    out->type = vi->cur->type;
    out->live = vi->cur->live;
    out->dead = vi->cur->dead;
    out->trained_n = vi->cur->trained_n;
    out->nlist = vi->cur->nlist;
    out->nprobe = vi->cur->nprobe;
  }
  out->building = vi->building;
  out->pending = vi->npend;
  out->rebuilds = vi->rebuilds;
  out->snapshots_written = vi->snapshots_written;
  out->last_build_seconds = vi->last_build_s;
  out->last_build_vectors = vi->last_build_n;
  out->changes = vi->changes;
  pthread_rwlock_unlock(&vi->lock);
}
