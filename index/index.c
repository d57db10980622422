/* The index component: shard store + one vector index per collection + the background
 * builder. The contract is in index.h.
 *
 * Writes: register, delete and apply all queue on the group commit (group_commit.h);
 * the leader of a group runs apply_writes, so every write's transaction may hold other
 * callers' writes too, and each caller returns once that transaction committed.
 *
 * Locks, in the only order they nest: write_mu (held by the group's leader for its
 * transaction and the vectors that follow, so that the vector indexes apply writes in
 * commit order) or snap_mu (makes snapshot writes single-threaded: builder,
 * syn_index_snapshot, close), then a collection's own rwlock
 * (inside syn_vindex). coll_mu guards the collection list, the builder's queue and its
 * state; it only ever wraps reads of a collection's immutable name and the creation of an
 * empty one, never a call that takes another lock or touches the store.
 *
 * Search path: candidates come from the collection's faiss index (or, for a selective
 * tag filter, from an exact scan of the matching rows in SQLite); each candidate label is
 * then checked against SQLite (exists, tag match, exact cosine for the SQ8 types), so a
 * result is never a deleted or replaced shard; when checks drop candidates the search
 * goes deeper with k doubled. */
#define _GNU_SOURCE
#include "index/index.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "index/group_commit.h"
#include "index/partition_map.h"
#include "index/vector_index.h"

typedef struct coll {
  syn_vindex *vi;
  bool queued;
} coll;

struct syn_index {
  syn_index_config cfg;
  char *snap_dir;
  syn_store *store;
  syn_vsource src;
  pthread_mutex_t write_mu;
  pthread_mutex_t snap_mu;
  pthread_mutex_t coll_mu;
  pthread_cond_t coll_cv; /* wakes the builder: work queued or stop */
  pthread_cond_t idle_cv; /* the builder finished a job */
  coll *colls;
  size_t ncolls, cap;
  bool busy;
  pthread_t builder;
  bool builder_started;
  atomic_bool stop;
  atomic_uint_fast64_t registrations, deletions, vector_searches, text_searches;
  atomic_uint_fast64_t exact_searches, deep_searches, snapshot_loads, snapshot_rejects;
  atomic_uint_fast64_t reconciliations, rebuilds_failed;
  atomic_uint_fast64_t commit_groups, commit_writes;
  syn_group_commit *commits; /* every write goes through it (group commit) */
  syn_pmap *parts_of;        /* label -> partition of every stored vector */
};

/* ---- vector source over the store --------------------------------------------------- */

static int src_scan(void *ctx, const char *model_key, uint32_t dim, syn_vsource_emit_fn emit,
                    void *emit_ctx) {
  return syn_store_scan_vectors(ctx, model_key, dim, emit, emit_ctx);
}

static int src_scan_ids(void *ctx, const char *model_key, uint32_t dim, syn_vsource_id_fn emit,
                        void *emit_ctx) {
  return syn_store_scan_ids(ctx, model_key, dim, emit, emit_ctx);
}

static int src_get(void *ctx, int64_t label, uint32_t dim, float *unit) {
  return syn_store_get_vector(ctx, label, dim, unit);
}

/* ---- collections ------------------------------------------------------------------------ */

static syn_vindex *coll_find_locked(syn_index *idx, const char *model_key, uint32_t dim) {
  for (size_t i = 0; i < idx->ncolls; i++) {
    syn_vindex *vi = idx->colls[i].vi;
    if (syn_vindex_dim(vi) == dim && strcmp(syn_vindex_model_key(vi), model_key) == 0) return vi;
  }
  return NULL;
}

static int coll_add_locked(syn_index *idx, syn_vindex *vi) {
  if (idx->ncolls == idx->cap) {
    size_t ncap = idx->cap ? idx->cap * 2 : 8;
    coll *nc = realloc(idx->colls, ncap * sizeof *nc);
    if (!nc) return -ENOMEM;
    idx->colls = nc, idx->cap = ncap;
  }
  idx->colls[idx->ncolls++] = (coll){vi, false};
  return 0;
}

/* The collection's index; created (empty) when `create` and missing. */
static syn_vindex *coll_get(syn_index *idx, const char *model_key, uint32_t dim, bool create) {
  pthread_mutex_lock(&idx->coll_mu);
  syn_vindex *vi = coll_find_locked(idx, model_key, dim);
  if (!vi && create && (vi = syn_vindex_new(model_key, dim, &idx->cfg)) != NULL &&
      coll_add_locked(idx, vi) != 0) {
    syn_vindex_free(vi);
    vi = NULL;
  }
  pthread_mutex_unlock(&idx->coll_mu);
  return vi;
}

/* Collections matching a model key (NULL = any) and dimension; *out is malloc'd. The
 * pointers stay valid until close: collections are never removed. */
static size_t coll_select(syn_index *idx, const char *model_key, uint32_t dim, syn_vindex ***out) {
  pthread_mutex_lock(&idx->coll_mu);
  size_t n = 0;
  *out = malloc((idx->ncolls + 1) * sizeof **out);
  for (size_t i = 0; *out && i < idx->ncolls; i++) {
    syn_vindex *vi = idx->colls[i].vi;
    if (syn_vindex_dim(vi) != dim) continue;
    if (model_key && strcmp(syn_vindex_model_key(vi), model_key) != 0) continue;
    (*out)[n++] = vi;
  }
  pthread_mutex_unlock(&idx->coll_mu);
  return n;
}

/* Whether any collection (of any dimension) has this model key. */
static bool model_known(syn_index *idx, const char *model_key) {
  pthread_mutex_lock(&idx->coll_mu);
  bool known = false;
  for (size_t i = 0; i < idx->ncolls && !known; i++)
    known = strcmp(syn_vindex_model_key(idx->colls[i].vi), model_key) == 0;
  pthread_mutex_unlock(&idx->coll_mu);
  return known;
}

/* Queues a rebuild if the collection asks for one, and wakes the builder. */
static void maybe_queue(syn_index *idx, syn_vindex *vi) {
  if (!vi || !syn_vindex_needs_rebuild(vi)) return;
  pthread_mutex_lock(&idx->coll_mu);
  for (size_t i = 0; i < idx->ncolls; i++) {
    if (idx->colls[i].vi != vi || idx->colls[i].queued) continue;
    idx->colls[i].queued = true;
    pthread_cond_signal(&idx->coll_cv);
  }
  pthread_mutex_unlock(&idx->coll_mu);
}

/* ---- background builder --------------------------------------------------------------- */

static int snapshot_all(syn_index *idx, bool force) {
  syn_vindex **v;
  pthread_mutex_lock(&idx->coll_mu);
  size_t n = idx->ncolls;
  v = malloc((n + 1) * sizeof *v);
  for (size_t i = 0; v && i < n; i++) v[i] = idx->colls[i].vi;
  pthread_mutex_unlock(&idx->coll_mu);
  if (!v) return -ENOMEM;
  int written = 0, err = 0;
  pthread_mutex_lock(&idx->snap_mu);
  for (size_t i = 0; i < n; i++) {
    int rc = syn_vindex_snapshot_write(v[i], idx->snap_dir, force);
    if (rc > 0) written++;
    if (rc < 0) err = rc;
  }
  pthread_mutex_unlock(&idx->snap_mu);
  free(v);
  return err ? err : written;
}

static void run_rebuild(syn_index *idx, syn_vindex *vi) {
  int rc = syn_vindex_rebuild(vi, &idx->src, &idx->stop);
  if (rc == 0) {
    syn_vindex_stats st;
    syn_vindex_stats_get(vi, &st);
    syn_info("index %s/%u rebuilt as %s: %zu vectors in %.2f s", syn_vindex_model_key(vi),
             syn_vindex_dim(vi), syn_index_type_name(st.type), st.last_build_vectors,
             st.last_build_seconds);
    pthread_mutex_lock(&idx->snap_mu);
    syn_vindex_snapshot_write(vi, idx->snap_dir, true);
    pthread_mutex_unlock(&idx->snap_mu);
    maybe_queue(idx, vi); /* it may have doubled while this build ran */
  } else if (rc != -ECANCELED && rc != -EBUSY) {
    atomic_fetch_add(&idx->rebuilds_failed, 1);
    syn_warn("index %s/%u rebuild failed: %s", syn_vindex_model_key(vi), syn_vindex_dim(vi),
             strerror(-rc));
  }
}

/* Re-checks every collection (a failed rebuild is retried this way). */
static void requeue_all(syn_index *idx) {
  syn_vindex **v;
  pthread_mutex_lock(&idx->coll_mu);
  size_t n = idx->ncolls;
  v = malloc((n + 1) * sizeof *v);
  for (size_t i = 0; v && i < n; i++) v[i] = idx->colls[i].vi;
  pthread_mutex_unlock(&idx->coll_mu);
  for (size_t i = 0; v && i < n; i++) maybe_queue(idx, v[i]);
  free(v);
}

static struct timespec deadline_after(double seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + seconds;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  return ts;
}

static bool past(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void *builder_main(void *arg) {
  syn_index *idx = arg;
  if (idx->cfg.build_threads) omp_set_num_threads((int)idx->cfg.build_threads);
  double period = idx->cfg.snapshot_interval_s ? idx->cfg.snapshot_interval_s : 60;
  struct timespec next = deadline_after(period);
  pthread_mutex_lock(&idx->coll_mu);
  while (!atomic_load(&idx->stop)) {
    syn_vindex *job = NULL;
    for (size_t i = 0; i < idx->ncolls && !job; i++) {
      if (!idx->colls[i].queued) continue;
      idx->colls[i].queued = false;
      job = idx->colls[i].vi;
    }
    if (!job && !past(&next)) {
      pthread_cond_timedwait(&idx->coll_cv, &idx->coll_mu, &next);
      continue;
    }
    idx->busy = true;
    pthread_mutex_unlock(&idx->coll_mu);
    if (job) {
      run_rebuild(idx, job);
    } else {
      if (idx->cfg.snapshot_interval_s) snapshot_all(idx, false);
      requeue_all(idx);
      next = deadline_after(period);
    }
    pthread_mutex_lock(&idx->coll_mu);
    idx->busy = false;
    pthread_cond_broadcast(&idx->idle_cv);
  }
  idx->busy = false;
  pthread_cond_broadcast(&idx->idle_cv);
  pthread_mutex_unlock(&idx->coll_mu);
  return NULL;
}

int syn_index_wait_idle(syn_index *idx, int timeout_ms) {
  struct timespec until = deadline_after(timeout_ms / 1000.0);
  pthread_mutex_lock(&idx->coll_mu);
  int rc = 0;
  for (;;) {
    bool queued = false;
    for (size_t i = 0; i < idx->ncolls; i++) queued |= idx->colls[i].queued;
    if ((!queued && !idx->busy) || !idx->builder_started) break;
    if (pthread_cond_timedwait(&idx->idle_cv, &idx->coll_mu, &until) == ETIMEDOUT) {
      rc = -ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&idx->coll_mu);
  return rc;
}

/* ---- open / close ---------------------------------------------------------------------- */

static int make_dir(const char *path) {
  if (mkdir(path, 0750) == 0 || errno == EEXIST) return 0;
  return -errno;
}

/* Loads one collection: its snapshot if usable, else an exact index from SQLite. */
static int open_collection(syn_index *idx, const syn_store_collection *c, char *err,
                           size_t errlen) {
  syn_vindex *vi = syn_vindex_new(c->model_key, c->dimension, &idx->cfg);
  if (!vi) return -ENOMEM;
  syn_vload_result res;
  int rc = syn_vindex_load(vi, idx->snap_dir, &idx->src, c->count, c->id_sum, &res);
  if (rc == 0) {
    atomic_fetch_add(&idx->snapshot_loads, 1);
    if (res.reconciled) {
      atomic_fetch_add(&idx->reconciliations, 1);
      syn_info("index %s/%u: snapshot reconciled (+%zu -%zu)", c->model_key, c->dimension,
               res.added, res.removed);
    }
  } else {
    atomic_fetch_add(&idx->snapshot_rejects, 1);
    syn_info("index %s/%u: %s; rebuilding from SQLite", c->model_key, c->dimension, res.reason);
    rc = syn_vindex_load_source(vi, &idx->src);
  }
  if (rc == 0) {
    pthread_mutex_lock(&idx->coll_mu);
    rc = coll_add_locked(idx, vi);
    pthread_mutex_unlock(&idx->coll_mu);
  }
  if (rc != 0) {
    if (err && errlen)
      snprintf(err, errlen, "index %s/%u: cannot load: %s", c->model_key, c->dimension,
               strerror(-rc));
    syn_vindex_free(vi);
    return rc;
  }
  maybe_queue(idx, vi);
  return 0;
}

static int open_collections(syn_index *idx, char *err, size_t errlen) {
  syn_store_collection *cs = NULL;
  size_t n = 0;
  int rc = syn_store_collections(idx->store, &cs, &n);
  if (rc && err && errlen) snprintf(err, errlen, "shard store: cannot list collections");
  for (size_t i = 0; rc == 0 && i < n; i++) rc = open_collection(idx, &cs[i], err, errlen);
  free(cs);
  return rc;
}

static int apply_group(void *ctx, syn_commit_req *const *reqs, size_t n);

static int note_partition(void *ctx, int64_t id, uint32_t partition) {
  return syn_pmap_put(ctx, id, partition);
}

static syn_index *index_alloc(const syn_index_config *cfg) {
  syn_index *idx = calloc(1, sizeof *idx);
  if (!idx) return NULL;
  idx->cfg = *cfg;
  pthread_mutex_init(&idx->write_mu, NULL);
  pthread_mutex_init(&idx->snap_mu, NULL);
  pthread_mutex_init(&idx->coll_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&idx->coll_cv, &ca);
  pthread_cond_init(&idx->idle_cv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&idx->stop, false);
  idx->commits = syn_group_commit_new(SYN_INDEX_GROUP_WRITES, apply_group, idx);
  idx->parts_of = syn_pmap_new();
  if (!idx->commits || !idx->parts_of) {
    syn_index_close(idx);
    return NULL;
  }
  return idx;
}

syn_index *syn_index_open(const syn_index_config *cfg, const char *data_dir, char *err,
                          size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (!cfg || !data_dir || syn_index_config_validate(cfg, err, errlen) != 0) {
    if (err && errlen && !err[0]) snprintf(err, errlen, "index: no config or data directory");
    return NULL;
  }
  syn_index *idx = index_alloc(cfg);
  size_t plen = strlen(data_dir) + 32;
  char *db = malloc(plen);
  if (!idx || !db || !(idx->snap_dir = malloc(plen))) {
    if (err && errlen) snprintf(err, errlen, "index: out of memory");
    free(db);
    syn_index_close(idx);
    return NULL;
  }
  snprintf(db, plen, "%s/shards.db", data_dir);
  snprintf(idx->snap_dir, plen, "%s/vectors", data_dir);
  const char *failed = data_dir;
  int rc = make_dir(data_dir);
  if (rc == 0 && (rc = make_dir(idx->snap_dir)) != 0) failed = idx->snap_dir;
  if (rc != 0 && err && errlen)
    snprintf(err, errlen, "index: cannot create %s: %s", failed, strerror(-rc));
  syn_store_options so = {cfg->read_connections, cfg->sync_full,  cfg->sqlite_mmap_mb,
                          cfg->sqlite_cache_mb,  cfg->partitions, 0};
  if (rc == 0 && !(idx->store = syn_store_open(db, &so, err, errlen))) rc = -EIO;
  free(db);
  idx->src = (syn_vsource){idx->store, src_scan, src_scan_ids, src_get};
  if (rc == 0) rc = syn_store_scan_partitions(idx->store, note_partition, idx->parts_of);
  if (rc != 0 && err && errlen && !err[0]) snprintf(err, errlen, "index: cannot read partitions");
  if (rc == 0) rc = open_collections(idx, err, errlen);
  if (rc == 0 && pthread_create(&idx->builder, NULL, builder_main, idx) != 0) {
    if (err && errlen) snprintf(err, errlen, "index: cannot start the builder thread");
    rc = -EAGAIN;
  }
  if (rc != 0) {
    syn_index_close(idx);
    return NULL;
  }
  idx->builder_started = true;
  return idx;
}

void syn_index_close(syn_index *idx) {
  if (!idx) return;
  if (idx->builder_started) {
    pthread_mutex_lock(&idx->coll_mu);
    atomic_store(&idx->stop, true);
    pthread_cond_broadcast(&idx->coll_cv);
    pthread_mutex_unlock(&idx->coll_mu);
    pthread_join(idx->builder, NULL);
    idx->builder_started = false;
    snapshot_all(idx, false);
  }
  for (size_t i = 0; i < idx->ncolls; i++) syn_vindex_free(idx->colls[i].vi);
  free(idx->colls);
  syn_store_close(idx->store);
  syn_group_commit_free(idx->commits);
  syn_pmap_free(idx->parts_of);
  pthread_mutex_destroy(&idx->write_mu);
  pthread_mutex_destroy(&idx->snap_mu);
  pthread_mutex_destroy(&idx->coll_mu);
  pthread_cond_destroy(&idx->coll_cv);
  pthread_cond_destroy(&idx->idle_cv);
  free(idx->snap_dir);
  free(idx);
}

/* ---- writes ------------------------------------------------------------------------------ */

/* Unit vector of v into out; false when v is not finite or is zero. */
static bool normalise(const float *v, uint32_t n, float *out) {
  double s = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!isfinite(v[i])) return false;
    s += (double)v[i] * v[i];
  }
  double norm = sqrt(s);
  if (!(norm > 1e-30) || !isfinite(norm)) return false;
  for (uint32_t i = 0; i < n; i++) out[i] = (float)(v[i] / norm);
  return true;
}

/* Applies a committed registration to the vector indexes (write_mu held). A failure here
 * leaves the row safely in SQLite and the collection flagged for a rebuild from it. */
static void apply_put(syn_index *idx, const syn_store_change *chg, const char *info_hash,
                      uint32_t dim, const float *unit, syn_vindex **vi, syn_vindex **old_vi) {
  /* The partition is known before faiss holds the vector, so a partition-limited search
   * never meets a label it cannot place. */
  if (syn_pmap_put(idx->parts_of, chg->id, syn_store_partition_of(idx->store, info_hash)) != 0)
    syn_warn(
        "index: partition of row %lld not recorded (out of memory): partition-limited "
        "searches miss it until restart",
        (long long)chg->id);
  *vi = coll_get(idx, chg->model_key, dim, true);
  *old_vi = NULL;
  bool moved =
      chg->old_id && (chg->old_dimension != dim || strcmp(chg->old_model_key, chg->model_key) != 0);
  if (moved) *old_vi = coll_get(idx, chg->old_model_key, chg->old_dimension, false);
  int rc = *vi ? syn_vindex_upsert(*vi, chg->id, unit, moved ? 0 : chg->old_id) : -ENOMEM;
  if (rc == 0 && *old_vi) rc = syn_vindex_remove(*old_vi, chg->old_id);
  if (chg->old_id && chg->old_id != chg->id) syn_pmap_del(idx->parts_of, chg->old_id);
  if (rc != 0)
    syn_warn("index %s/%u: vector of row %lld not applied (%s); rebuild queued", chg->model_key,
             dim, (long long)chg->id, strerror(-rc));
}

int syn_index_register(syn_index *idx, const syn_shard_input *in, const syn_version *v,
                       bool *applied, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  if (applied) *applied = false;
  if (!in || !v) return -EINVAL;
  syn_index_write w = {
      .shard = in, .info_hash = in->info_hash, .version = *v, .err = err, .errlen = errlen};
  int rc = syn_index_apply(idx, &w, 1);
  if (rc == 0) rc = w.rc;
  if (rc == 0 && applied) *applied = w.applied;
  return rc;
}

int syn_index_get(syn_index *idx, const char *info_hash, bool with_embedding, syn_shard *out) {
  return syn_store_get(idx->store, info_hash, with_embedding, out);
}

/* A record left the store (delete or forget): its vector leaves its collection. */
static void vector_gone(syn_index *idx, const syn_store_change *chg, syn_vindex **vi) {
  if (!chg->old_id) return;
  *vi = coll_get(idx, chg->old_model_key, chg->old_dimension, false);
  if (*vi && syn_vindex_remove(*vi, chg->old_id) != 0)
    syn_warn("index %s/%u: removal of row %lld failed; rebuild queued", chg->old_model_key,
             chg->old_dimension, (long long)chg->old_id);
  syn_pmap_del(idx->parts_of, chg->old_id);
}

int syn_index_delete(syn_index *idx, const char *info_hash, const syn_version *v, int64_t now_ms,
                     bool *applied, bool *existed) {
  if (applied) *applied = false;
  if (existed) *existed = false;
  if (!v) return -EINVAL;
  syn_index_write w = {.info_hash = info_hash, .version = *v, .now_ms = now_ms};
  int rc = syn_index_apply(idx, &w, 1);
  if (rc == 0) rc = w.rc;
  if (rc == 0 && applied) *applied = w.applied;
  if (rc == 0 && existed) *existed = w.existed;
  return rc;
}

/* The write's own message buffer, or a scratch one. */
static char *write_err(syn_index_write *w, char *scratch, size_t cap, size_t *len) {
  if (w->err && w->errlen) {
    w->err[0] = '\0';
    *len = w->errlen;
    return w->err;
  }
  *len = cap;
  return scratch;
}

/* One write of a group into the store; *unit gets the normalised vector of a
 * registration that has one (the caller frees). */
static int apply_one_stored(syn_index *idx, syn_index_write *w, syn_store_change *chg,
                            float **unit) {
  *unit = NULL;
  memset(chg, 0, sizeof *chg);
  if (!w->shard)
    return syn_store_batch_delete(idx->store, w->info_hash, &w->version, w->now_ms, chg);
  const syn_shard_input *in = w->shard;
  char scratch[256];
  size_t errlen;
  char *err = write_err(w, scratch, sizeof scratch, &errlen);
  if (syn_dimension_check("dimension", in->dimension, err, errlen)) return -EINVAL;
  if (in->embedding) {
    *unit = malloc(4 * (size_t)in->dimension);
    if (!*unit) return -ENOMEM;
    if (!normalise(in->embedding, in->dimension, *unit)) {
      snprintf(err, errlen, "embedding must be finite and not all zero");
      return -EINVAL;
    }
  }
  return syn_store_batch_put(idx->store, in, &w->version, chg, err, errlen);
}

/* After the commit: the vectors follow what the store applied, in the same order. */
static void apply_one_vectors(syn_index *idx, const syn_index_write *w, const syn_store_change *chg,
                              const float *unit, syn_vindex **vi, syn_vindex **old_vi) {
  *vi = *old_vi = NULL;
  if (w->rc != 0 || !chg->applied) return;
  if (!w->shard) {
    vector_gone(idx, chg, vi);
    if (chg->existed) atomic_fetch_add(&idx->deletions, 1);
    return;
  }
  atomic_fetch_add(&idx->registrations, 1);
  if (unit) {
    apply_put(idx, chg, w->info_hash, w->shard->dimension, unit, vi, old_vi);
    return;
  }
  vector_gone(idx, chg, old_vi); /* stored without a vector: the old one goes */
}

/* Scratch of one group: a change, a unit vector and two touched collections per write. */
typedef struct group_scratch {
  syn_store_change *chg;
  float **unit;
  syn_vindex **touched;
} group_scratch;

static int scratch_alloc(group_scratch *g, size_t n) {
  g->chg = calloc(n, sizeof *g->chg);
  g->unit = calloc(n, sizeof *g->unit);
  g->touched = calloc(2 * n, sizeof *g->touched);
  return g->chg && g->unit && g->touched ? 0 : -ENOMEM;
}

static void scratch_free(syn_index *idx, group_scratch *g, size_t n) {
  for (size_t i = 0; g->touched && i < 2 * n; i++) maybe_queue(idx, g->touched[i]);
  for (size_t i = 0; g->unit && i < n; i++) free(g->unit[i]);
  free(g->unit);
  free(g->chg);
  free(g->touched);
}

/* The n writes (w[i], from every request of a group, oldest first) in one store
 * transaction: one commit, one fsync; then their vectors in the same order. */
static int apply_writes(syn_index *idx, syn_index_write *const *w, size_t n) {
  group_scratch g;
  int rc = scratch_alloc(&g, n);
  if (rc == 0) {
    pthread_mutex_lock(&idx->write_mu);
    rc = syn_store_batch_begin(idx->store);
    for (size_t i = 0; rc == 0 && i < n; i++) {
      w[i]->rc = apply_one_stored(idx, w[i], &g.chg[i], &g.unit[i]);
      w[i]->applied = w[i]->rc == 0 && g.chg[i].applied;
      w[i]->existed = w[i]->rc == 0 && g.chg[i].existed;
    }
    if (rc == 0) rc = syn_store_batch_end(idx->store);
    for (size_t i = 0; rc == 0 && i < n; i++)
      apply_one_vectors(idx, w[i], &g.chg[i], g.unit[i], &g.touched[2 * i], &g.touched[2 * i + 1]);
    pthread_mutex_unlock(&idx->write_mu);
  }
  for (size_t i = 0; rc != 0 && i < n; i++) {
    w[i]->rc = rc;
    w[i]->applied = w[i]->existed = false;
  }
  scratch_free(idx, &g, n);
  return rc;
}

/* The group commit's apply function: every request's writes, flattened. */
static int apply_group(void *ctx, syn_commit_req *const *reqs, size_t n) {
  syn_index *idx = ctx;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += reqs[i]->n;
  syn_index_write **w = malloc((total ? total : 1) * sizeof *w);
  if (!w) return -ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < reqs[i]->n; j++) w[k++] = (syn_index_write *)reqs[i]->writes + j;
  int rc = total ? apply_writes(idx, w, total) : 0;
  free(w);
  atomic_fetch_add(&idx->commit_groups, 1);
  atomic_fetch_add(&idx->commit_writes, total);
  return rc;
}

int syn_index_apply(syn_index *idx, syn_index_write *w, size_t n) {
  for (size_t i = 0; i < n; i++) {
    w[i].rc = -EIO;
    w[i].applied = w[i].existed = false;
  }
  if (n == 0) return 0;
  syn_commit_req req = {.writes = w, .n = n};
  int rc = syn_group_commit_run(idx->commits, &req);
  for (size_t i = 0; rc != 0 && i < n; i++) w[i].rc = rc;
  return rc;
}

int syn_index_forget(syn_index *idx, const char *info_hash) {
  syn_store_change chg;
  syn_vindex *vi = NULL;
  pthread_mutex_lock(&idx->write_mu);
  int rc = syn_store_forget(idx->store, info_hash, &chg);
  if (rc == 0) vector_gone(idx, &chg, &vi);
  pthread_mutex_unlock(&idx->write_mu);
  maybe_queue(idx, vi);
  return rc;
}

int syn_index_version(syn_index *idx, const char *info_hash, syn_key_version *out) {
  return syn_store_version(idx->store, info_hash, out);
}

int syn_index_bucket_keys(syn_index *idx, uint32_t bucket, syn_key_version **out, size_t *n,
                          size_t *cap) {
  return syn_store_bucket_keys(idx->store, bucket, out, n, cap);
}

int syn_index_partition_keys(syn_index *idx, uint32_t partition, char (**out)[65], size_t *n) {
  return syn_store_partition_keys(idx->store, partition, out, n);
}

uint32_t syn_index_partitions(const syn_index *idx) { return syn_store_partitions(idx->store); }
uint32_t syn_index_buckets(const syn_index *idx) { return syn_store_buckets(idx->store); }
void syn_index_digests(syn_index *idx, uint64_t *out) { syn_store_digests(idx->store, out); }

int syn_index_purge_tombstones(syn_index *idx, int64_t older_than_ms, size_t max, size_t *purged) {
  return syn_store_purge_tombstones(idx->store, older_than_ms, max, purged);
}

/* ---- search ------------------------------------------------------------------------------ */

/* Scored ids collected over collections and rounds; duplicates removed at the end. */
typedef struct acc {
  syn_scored *v;
  size_t n, cap;
} acc;

static int acc_push(acc *a, int64_t id, double score) {
  if (a->n == a->cap) {
    size_t ncap = a->cap ? a->cap * 2 : 64;
    syn_scored *nv = realloc(a->v, ncap * sizeof *nv);
    if (!nv) return -ENOMEM;
    a->v = nv, a->cap = ncap;
  }
  a->v[a->n++] = (syn_scored){id, score};
  return 0;
}

static int cmp_score_desc(const void *pa, const void *pb) {
  const syn_scored *a = pa, *b = pb;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

static int cmp_i64(const void *pa, const void *pb) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  return a < b ? -1 : a > b;
}

static int cmp_id_then_score(const void *pa, const void *pb) {
  const syn_scored *a = pa, *b = pb;
  if (a->id != b->id) return a->id < b->id ? -1 : 1;
  return cmp_score_desc(pa, pb);
}

/* Keeps each id once (with its best score), then sorts best first. O(n log n): deep
 * filtered searches can collect thousands of candidates. */
static void acc_finish(acc *a) {
  if (a->n == 0) return;
  qsort(a->v, a->n, sizeof *a->v, cmp_id_then_score);
  size_t w = 0;
  for (size_t i = 0; i < a->n; i++)
    if (w == 0 || a->v[w - 1].id != a->v[i].id) a->v[w++] = a->v[i];
  a->n = w;
  qsort(a->v, a->n, sizeof *a->v, cmp_score_desc);
}

typedef struct vquery {
  syn_store_reader *r; /* the search's read session: every store call goes through it */
  const float *unit;
  uint32_t dim;
  const char *tags_json;
  const uint8_t *parts; /* partitions to search (syn_search_filter), or NULL */
  double min_cos;
  uint32_t limit;
} vquery;

/* A couple of candidates beyond `limit`, so that a shard deleted between the search and
 * the reading of the hits does not leave the answer one short. */
enum { SPARE = 2 };

static int exact_into(syn_index *idx, syn_vindex *vi, const vquery *q, acc *out) {
  size_t want = (size_t)q->limit + SPARE;
  syn_scored *tmp = malloc(want * sizeof *tmp);
  if (!tmp) return -ENOMEM;
  size_t n = 0;
  int rc = syn_store_exact_search(idx->store, q->r, syn_vindex_model_key(vi), q->dim, q->tags_json,
                                  q->parts, q->unit, q->min_cos, want, tmp, &n);
  for (size_t i = 0; rc == 0 && i < n; i++) rc = acc_push(out, tmp[i].id, tmp[i].score);
  free(tmp);
  atomic_fetch_add(&idx->exact_searches, 1);
  return rc;
}

typedef struct part_sel {
  const syn_pmap *map;
  const uint8_t *parts;
  size_t bytes;
} part_sel;

static bool in_parts(void *ctx, int64_t label) {
  const part_sel *p = ctx;
  return syn_pmap_in(p->map, label, p->parts, p->bytes);
}

static size_t partitions_reach(syn_index *idx, const uint8_t *parts) {
  syn_pmap_read_begin(idx->parts_of);
  size_t n = syn_pmap_count_in(idx->parts_of, parts, (syn_index_partitions(idx) + 7) / 8);
  syn_pmap_read_end(idx->parts_of);
  return n;
}

/* The collection's nearest k, inside faiss's scan limited to the query's partitions when
 * it names some. */
static int vindex_search(syn_index *idx, syn_vindex *vi, const vquery *q, uint32_t k,
                         int64_t *labels, float *scores, size_t *got) {
  if (!q->parts) return syn_vindex_search(vi, q->unit, k, NULL, labels, scores, got);
  part_sel ps = {idx->parts_of, q->parts, (syn_index_partitions(idx) + 7) / 8};
  syn_vselect sel = {in_parts, &ps};
  syn_pmap_read_begin(idx->parts_of);
  int rc = syn_vindex_search(vi, q->unit, k, &sel, labels, scores, got);
  syn_pmap_read_end(idx->parts_of);
  return rc;
}

/* Per-collection search state across deepening rounds. */
typedef struct round_buf {
  int64_t *labels, *seen;
  float *scores;
  syn_store_probe *probes;
  size_t nseen;
} round_buf;

static int round_buf_grow(round_buf *b, size_t k, size_t seen_cap) {
  int64_t *l = realloc(b->labels, k * sizeof *l);
  if (l) b->labels = l;
  float *s = realloc(b->scores, k * sizeof *s);
  if (s) b->scores = s;
  syn_store_probe *p = realloc(b->probes, k * sizeof *p);
  if (p) b->probes = p;
  int64_t *sn = realloc(b->seen, seen_cap * sizeof *sn);
  if (sn) b->seen = sn;
  return l && s && p && sn ? 0 : -ENOMEM;
}

static void round_buf_free(round_buf *b) {
  free(b->labels), free(b->scores), free(b->probes), free(b->seen);
}

/* One round: checks the labels not seen in earlier rounds against SQLite (existence, tags,
 * exact cosine when rescoring) and collects those that pass, counting them in *accepted. */
static int probe_round(syn_index *idx, const vquery *q, bool rescore, round_buf *b, size_t got,
                       acc *out, size_t *accepted, syn_search_info *info) {
  size_t np = 0;
  for (size_t i = 0; i < got; i++) {
    if (bsearch(&b->labels[i], b->seen, b->nseen, sizeof *b->seen, cmp_i64)) continue;
    b->probes[np] = (syn_store_probe){.id = b->labels[i], .cosine = b->scores[i]};
    np++;
  }
  float *approx = malloc((np + 1) * sizeof *approx);
  if (!approx) return -ENOMEM;
  for (size_t i = 0; i < np; i++) approx[i] = b->probes[i].cosine;
  int rc = syn_store_probe_rows(idx->store, q->r, q->tags_json, rescore ? q->unit : NULL, q->dim,
                                b->probes, np);
  for (size_t i = 0; rc == 0 && i < np; i++) {
    const syn_store_probe *p = &b->probes[i];
    b->seen[b->nseen++] = p->id;
    double cos = rescore ? p->cosine : approx[i];
    if (!p->exists || !p->matches || cos < q->min_cos) continue;
    rc = acc_push(out, p->id, cos);
    (*accepted)++;
  }
  free(approx);
  qsort(b->seen, b->nseen, sizeof *b->seen, cmp_i64);
  info->candidates += np;
  info->rounds++;
  return rc;
}

/* Searches the collection's index deeper and deeper (k doubling) until `limit` candidates
 * pass the checks. IVF (nprobe cells) and HNSW (efSearch) cannot always return k vectors:
 * when the index has nothing more to give for this query but has not shown every vector,
 * or a filtered search reaches deep_search_max, an exact scan finishes the job, so a
 * search returns `limit` hits whenever that many shards match. */
/* First k of a filtered search. It only gets here when more than exact_filter_max shards
 * match, so at least that fraction of the collection matches: asking for target / that
 * fraction usually fills `limit` in one round (an IVF round costs its nprobe cells
 * whatever k is). */
static size_t first_k(const syn_index *idx, const vquery *q, size_t target, size_t live) {
  if (!q->tags_json || live == 0) return target;
  double floor_sel = (double)(idx->cfg.exact_filter_max + 1) / (double)live;
  size_t k = floor_sel >= 1 ? target : (size_t)((double)target / floor_sel) + 1;
  if (k > idx->cfg.deep_search_max) k = idx->cfg.deep_search_max;
  return k < target * 4 ? target * 4 : k;
}

/* Next k: at least double, and enough for the acceptance rate seen so far. */
static size_t next_k(size_t k, size_t seen, size_t accepted, size_t target) {
  size_t next = k * 2;
  if (accepted > 0 && accepted < target) {
    double per = (double)seen / (double)accepted;
    size_t est = seen + (size_t)((double)(target - accepted) * per * 1.25) + 1;
    if (est > next) next = est;
  }
  return next;
}

/* Searches the collection's index deeper and deeper until enough candidates pass the
 * checks (`limit` plus spares; times sq8_refine for the SQ8 types, whose candidates are
 * re-ranked exactly). IVF (nprobe cells) and HNSW (efSearch) cannot always return k
 * vectors: when the index has nothing more to give for this query but has not shown every
 * vector, or a filtered search reaches deep_search_max, an exact scan finishes the job, so
 * a search returns `limit` hits whenever that many shards match. */
static int ann_into(syn_index *idx, syn_vindex *vi, const vquery *q, acc *out,
                    syn_search_info *info) {
  syn_vindex_stats st;
  syn_vindex_stats_get(vi, &st);
  bool sq8 = st.type == SYN_INDEX_FLAT_SQ8 || st.type == SYN_INDEX_IVF_SQ8 ||
             st.type == SYN_INDEX_HNSW_SQ8;
  size_t target = ((size_t)q->limit + SPARE) * (sq8 ? idx->cfg.sq8_refine : 1);
  /* Vectors the search can meet: a partition-limited one, at most those of its
   * partitions (counted over every collection). Having seen them all is the end. */
  size_t reach = q->parts ? partitions_reach(idx, q->parts) : st.live;
  if (reach > st.live) reach = st.live;
  size_t k = first_k(idx, q, target, st.live);
  if (k > reach) k = reach;
  round_buf b = {0};
  size_t accepted = 0, seen_cap = 0;
  int rc = 0;
  for (int round = 0; rc == 0 && k > 0; round++) {
    seen_cap += k;
    if ((rc = round_buf_grow(&b, k, seen_cap)) != 0) break;
    size_t got = 0;
    rc = vindex_search(idx, vi, q, (uint32_t)k, b.labels, b.scores, &got);
    if (rc == 0) rc = probe_round(idx, q, sq8, &b, got, out, &accepted, info);
    if (round > 0) atomic_fetch_add(&idx->deep_searches, 1);
    double slack = sq8 ? 0.05 : 1e-6;
    if (rc || accepted >= target || got >= reach || (got && b.scores[got - 1] < q->min_cos - slack))
      break;
    if (got < k || k >= st.live || (q->tags_json && k >= idx->cfg.deep_search_max)) {
      rc = exact_into(idx, vi, q, out);
      info->exact = true;
      break;
    }
    k = next_k(k, b.nseen, accepted, target);
    if (k > reach) k = reach;
    if (q->tags_json && k > idx->cfg.deep_search_max) k = idx->cfg.deep_search_max;
  }
  round_buf_free(&b);
  return rc;
}

static int search_collection(syn_index *idx, syn_vindex *vi, const vquery *q, acc *out,
                             syn_search_info *info) {
  info->collections++;
  if (q->tags_json) {
    /* Counted over all collections: an overestimate for this one, which at worst sends a
     * selective filter down the deeper ANN path (and its exact fallback). */
    int64_t m = 0;
    int rc = syn_store_count_tagged(idx->store, q->r, q->tags_json,
                                    (int64_t)idx->cfg.exact_filter_max + 1, &m);
    if (rc != 0) return rc;
    if (m == 0) return 0;
    if (m <= (int64_t)idx->cfg.exact_filter_max) {
      info->exact = true;
      return exact_into(idx, vi, q, out);
    }
  }
  return ann_into(idx, vi, q, out, info);
}

/* Reads the records of the best `limit` scored ids into hits, skipping rows deleted
 * since they were found. */
static int fill_hits(syn_index *idx, syn_store_reader *r, const acc *a, uint32_t limit, bool text,
                     syn_hit **hits, size_t *n) {
  size_t want = a->n < limit ? a->n : limit;
  *hits = calloc(want + 1, sizeof **hits);
  if (!*hits) return -ENOMEM;
  for (size_t i = 0; i < a->n && *n < want; i++) {
    syn_hit *h = &(*hits)[*n];
    int rc = syn_store_reader_get_by_id(idx->store, r, a->v[i].id, false, &h->shard);
    if (rc == -ENOENT) continue; /* deleted since it was found */
    if (rc != 0) return rc;
    h->raw = a->v[i].score;
    h->similarity = text ? h->raw : syn_sim_from_cosine(h->raw); /* coverage is 0..1 */
    (*n)++;
  }
  return 0;
}

/* Shared checks of a filter: model key and tags JSON (caller frees *tags_json). */
static int filter_prepare(const syn_search_filter *f, char *model_key, char **tags_json,
                          double *min_sim) {
  *tags_json = NULL;
  model_key[0] = '\0';
  *min_sim = 0;
  if (!f) return 0;
  if (f->model && syn_model_key(f->model, model_key, SYN_SHARD_MAX_MODEL + 1) != 0) return -EINVAL;
  if (!isfinite(f->min_similarity)) return -EINVAL;
  *min_sim = f->min_similarity;
  if (f->tag_count == 0) return 0;
  if (!f->tags) return -EINVAL;
  bool bad = false;
  *tags_json = syn_store_tags_json(f->tags, f->tag_count, &bad);
  return *tags_json ? 0 : bad ? -EINVAL : -ENOMEM;
}

int syn_index_search_embedding(syn_index *idx, const float *query, uint32_t dim,
                               const syn_search_filter *filter, uint32_t limit, syn_hit **hits,
                               size_t *n, syn_search_info *info) {
  syn_search_info dummy;
  info = info ? info : &dummy;
  memset(info, 0, sizeof *info);
  *hits = NULL;
  *n = 0;
  if (!query || dim == 0 || dim > SYN_SHARD_MAX_DIM || limit == 0 || limit > SYN_SEARCH_MAX_LIMIT)
    return -EINVAL;
  char model_key[SYN_SHARD_MAX_MODEL + 1];
  char *tags_json = NULL;
  double min_sim = 0;
  float *unit = malloc(4 * (size_t)dim);
  int rc = unit ? filter_prepare(filter, model_key, &tags_json, &min_sim) : -ENOMEM;
  if (rc == 0 && !normalise(query, dim, unit)) rc = -EINVAL;
  syn_vindex **vis = NULL;
  size_t nv = rc == 0 ? coll_select(idx, model_key[0] ? model_key : NULL, dim, &vis) : 0;
  if (rc == 0 && !vis) rc = -ENOMEM;
  info->model_known = nv > 0;
  syn_store_reader *r = rc == 0 ? syn_store_read_begin(idx->store) : NULL;
  if (rc == 0 && !r) rc = -EIO;
  vquery q = {.r = r,
              .unit = unit,
              .dim = dim,
              .tags_json = tags_json,
              .parts = filter ? filter->partitions : NULL,
              .min_cos = min_sim > 0 ? min_sim : -INFINITY,
              .limit = limit};
  acc a = {0};
  for (size_t i = 0; rc == 0 && i < nv; i++) rc = search_collection(idx, vis[i], &q, &a, info);
  if (rc == 0) {
    acc_finish(&a);
    rc = fill_hits(idx, r, &a, limit, false, hits, n);
  }
  syn_store_read_end(idx->store, r);
  atomic_fetch_add(&idx->vector_searches, 1);
  free(a.v), free(vis), free(unit), free(tags_json);
  if (rc != 0) syn_hits_free(*hits, *n), *hits = NULL, *n = 0;
  return rc;
}

int syn_index_search_text(syn_index *idx, const char *query, const syn_search_filter *filter,
                          uint32_t limit, syn_hit **hits, size_t *n, syn_search_info *info) {
  syn_search_info dummy;
  info = info ? info : &dummy;
  memset(info, 0, sizeof *info);
  *hits = NULL;
  *n = 0;
  if (!query || limit == 0 || limit > SYN_SEARCH_MAX_LIMIT) return -EINVAL;
  char model_key[SYN_SHARD_MAX_MODEL + 1], fts[2048];
  char *tags_json = NULL;
  double min_sim;
  int rc = filter_prepare(filter, model_key, &tags_json, &min_sim);
  int terms = rc == 0 ? syn_fts_query(query, fts, sizeof fts) : 0;
  info->model_known = rc == 0 && (!model_key[0] || model_known(idx, model_key));
  acc a = {.v = terms > 0 ? malloc(limit * sizeof *a.v) : NULL, .cap = limit};
  if (rc == 0 && terms > 0 && !a.v) rc = -ENOMEM;
  syn_store_reader *r = rc == 0 ? syn_store_read_begin(idx->store) : NULL;
  if (rc == 0 && !r) rc = -EIO;
  if (rc == 0 && terms > 0)
    rc = syn_store_text_search(idx->store, r, fts, model_key[0] ? model_key : NULL, tags_json,
                               filter ? filter->partitions : NULL, limit, a.v, &a.n);
  size_t w = 0; /* results come best first; keep those above min_similarity */
  for (size_t i = 0; rc == 0 && i < a.n; i++)
    if (a.v[i].score >= min_sim) a.v[w++] = a.v[i];
  a.n = w;
  if (rc == 0) rc = fill_hits(idx, r, &a, limit, true, hits, n);
  syn_store_read_end(idx->store, r);
  atomic_fetch_add(&idx->text_searches, 1);
  free(a.v), free(tags_json);
  if (rc != 0) syn_hits_free(*hits, *n), *hits = NULL, *n = 0;
  return rc;
}

void syn_hits_free(syn_hit *hits, size_t n) {
  if (!hits) return;
  for (size_t i = 0; i < n; i++) syn_shard_free(&hits[i].shard);
  free(hits);
}

/* ---- maintenance and figures ------------------------------------------------------------- */

int syn_index_snapshot(syn_index *idx) { return snapshot_all(idx, false); }

int syn_index_stats_get(syn_index *idx, syn_index_stats *out) {
  memset(out, 0, sizeof *out);
  out->shards = syn_store_count(idx->store);
  syn_vindex **v;
  pthread_mutex_lock(&idx->coll_mu);
  size_t n = idx->ncolls;
  v = malloc((n + 1) * sizeof *v);
  for (size_t i = 0; v && i < n; i++) v[i] = idx->colls[i].vi;
  pthread_mutex_unlock(&idx->coll_mu);
  if (!v) return -ENOMEM;
  out->collection_count = n;
  for (size_t i = 0; i < n && i < SYN_INDEX_STATS_MAX; i++) {
    syn_vindex_stats st;
    syn_vindex_stats_get(v[i], &st);
    syn_index_collection_stats *c = &out->collections[i];
    snprintf(c->model_key, sizeof c->model_key, "%s", syn_vindex_model_key(v[i]));
    c->dimension = syn_vindex_dim(v[i]);
    c->type = st.type;
    c->vectors = st.live;
    c->tombstones = st.dead;
    c->nlist = st.nlist;
    c->nprobe = st.nprobe;
    c->building = st.building;
    c->rebuilds = st.rebuilds;
    c->last_build_seconds = st.last_build_seconds;
    c->snapshots_written = st.snapshots_written;
  }
  free(v);
  out->registrations = atomic_load(&idx->registrations);
  out->deletions = atomic_load(&idx->deletions);
  out->vector_searches = atomic_load(&idx->vector_searches);
  out->text_searches = atomic_load(&idx->text_searches);
  out->exact_searches = atomic_load(&idx->exact_searches);
  out->deep_searches = atomic_load(&idx->deep_searches);
  out->snapshot_loads = atomic_load(&idx->snapshot_loads);
  out->snapshot_rejects = atomic_load(&idx->snapshot_rejects);
  out->reconciliations = atomic_load(&idx->reconciliations);
  out->rebuilds_failed = atomic_load(&idx->rebuilds_failed);
  out->corrupt_rows = syn_store_corrupt_rows(idx->store);
  out->commit_groups = atomic_load(&idx->commit_groups);
  out->commit_writes = atomic_load(&idx->commit_writes);
  return out->shards < 0 ? (int)out->shards : 0;
}

const char *syn_index_strerror(int rc) {
  switch (rc) {
  case 0: return "success";
  case -EINVAL: return "invalid input";
  case -ENOENT: return "no such shard";
  case -ENOMEM: return "out of memory";
  case -EIO: return "storage error";
  case -ETIMEDOUT: return "timed out";
  default: return rc < 0 ? strerror(-rc) : "unknown error";
  }
}

int syn_index_list(syn_index *idx, int64_t after_id, size_t max, bool with_embedding,
                   syn_shard *out, size_t *n) {
  *n = 0;
  int64_t ids[256];
  if (max > 256) max = 256;
  size_t got = 0;
  /* One read session: the ids and their records come from one snapshot, so no row of the
   * page can vanish in between (a page emptied that way would look like the end). */
  syn_store_reader *r = syn_store_read_begin(idx->store);
  if (!r) return -EIO;
  int rc = syn_store_list_ids(idx->store, r, after_id, max, ids, &got);
  for (size_t i = 0; rc == 0 && i < got; i++) {
    rc = syn_store_reader_get_by_id(idx->store, r, ids[i], with_embedding, &out[*n]);
    if (rc == 0) (*n)++;
  }
  syn_store_read_end(idx->store, r);
  if (rc != 0) {
    for (size_t i = 0; i < *n; i++) syn_shard_free(&out[i]);
    *n = 0;
  }
  return rc;
}
