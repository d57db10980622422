/* Vector index of one collection: the unit-normalised embeddings of one (model key,
 * dimension), searched by inner product (= cosine), through the faiss C API.
 *
 * Labels: every vector carries a label, the SQLite row id of its shard version (ids grow
 * and are never reused; a re-registration gets a new id). The index knows nothing of
 * info_hashes; callers map labels back through the store.
 *
 * Index types (syn_index_type): Flat and Flat-SQ8 sit behind faiss's IDMap, IVF types
 * carry labels natively, HNSW types sit behind IDMap. What serves a collection is decided
 * by syn_vindex_plan from its size and the config; a trained type (IVF, *_SQ8) that does
 * not have enough vectors yet is served by an exact Flat "stand-in".
 *
 * Update and delete, for every type:
 * - Flat, Flat-SQ8, IVF, IVF-SQ8 remove a vector at once (faiss remove_ids; O(n) per call
 *   for Flat, which moves the vectors behind it, and for IVF, which scans its lists).
 * - HNSW cannot remove a node from its graph. A removed or replaced vector becomes a
 *   tombstone: its label is marked dead in the label map, searches skip it and ask faiss
 *   for more neighbours (k plus the tombstone count, doubling up to the index size) so
 *   that k live results still come back, and once tombstones exceed
 *   cfg.tombstone_fraction of the graph the planner asks for a rebuild (compaction).
 *   Because labels are never reused, a tombstone can never hide a live vector.
 *
 * Rebuilds (type change, retraining after growth, compaction) run on the caller's
 * background thread through syn_vindex_rebuild and never block searches: the current
 * index keeps answering and keeps receiving every upsert and removal, which are also
 * logged; the new index is built from a consistent scan of the source, the log is
 * replayed into it (in rounds, without the lock, until it is short), and it is swapped in
 * under the write lock together with the last few log entries. Nothing acknowledged is
 * ever missing from results. Peak memory during a rebuild is the old index, the new one
 * and the scanned vectors (3x the collection for float indexes).
 *
 * Snapshots: syn_vindex_snapshot_write stores the faiss index (faiss_write_index_fname)
 * and a sidecar file (labels, tombstones, type, parameters, live count and label sum,
 * the index file's size and checksum, its own checksum) under the data directory,
 * written to temporary names, fsynced and renamed. syn_vindex_load accepts a snapshot
 * only if both checksums, the collection and the dimension match; if its live set
 * differs from SQLite's, it is reconciled (missing vectors added, vanished ones removed)
 * before use, unless more than a tenth of the collection (and 1024 vectors) is missing:
 * such a snapshot is refused as too stale, since adding that many during start-up would
 * cost more than a background rebuild. Missing, corrupt, unreadable or too stale
 * snapshots make it fail, and the caller
 * builds from the source instead; nothing in a snapshot is trusted before its checksums.
 *
 * Threads: upsert, remove and search may be called concurrently from any threads; a
 * pthread rwlock (writer-preferring) protects the current index: searches share it,
 * upserts and removals take it exclusively for the duration of one faiss add or remove.
 * syn_vindex_rebuild and the snapshot functions are called from one background thread at
 * a time. No function calls out (source callbacks excepted) while holding the lock. */
#ifndef SYN_INDEX_VECTOR_INDEX_H
#define SYN_INDEX_VECTOR_INDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/index_config.h"

/* ---- planning: pure functions ------------------------------------------------------ */

typedef struct syn_vplan {
  syn_index_type type; /* concrete (never AUTO) */
  uint32_t nlist;      /* IVF types */
  uint32_t nprobe;     /* IVF types */
} syn_vplan;

/* What a collection of `live` vectors should be served by under cfg. */
syn_vplan syn_vindex_plan(const syn_index_config *cfg, size_t live);
/* nprobe for an IVF index of nlist cells under cfg. */
uint32_t syn_vindex_nprobe_for(const syn_index_config *cfg, uint32_t nlist);

/* The state the rebuild decision looks at. */
typedef struct syn_vplan_state {
  syn_index_type type; /* serving now; AUTO = nothing built yet */
  size_t live;
  size_t dead;      /* HNSW tombstones */
  size_t trained_n; /* vectors the serving index was trained on; 0 = untrained type */
} syn_vplan_state;

/* Whether the collection should be rebuilt: its type differs from the plan (with
 * hysteresis: auto's IVF stays until the collection shrinks below half the threshold,
 * and a configured trained type never falls back to the stand-in), a trained index has
 * grown to cfg.growth times its training set, or HNSW tombstones exceed their fraction
 * (and 16). */
bool syn_vindex_should_rebuild(const syn_index_config *cfg, const syn_vplan_state *st);

/* ---- the collection index ------------------------------------------------------------ */

typedef struct syn_vindex syn_vindex;

/* Where vectors come from for (re)builds and reconciliation: the shard store, or a test's
 * arrays. emit callbacks return 0 to go on; a nonzero return stops the scan and is
 * returned. scan must be one consistent read (it sees exactly the writes committed before
 * it started). */
typedef int (*syn_vsource_emit_fn)(void *emit_ctx, int64_t label, const float *unit);
typedef int (*syn_vsource_id_fn)(void *emit_ctx, int64_t label);
typedef struct syn_vsource {
  void *ctx;
  int (*scan)(void *ctx, const char *model_key, uint32_t dim, syn_vsource_emit_fn emit,
              void *emit_ctx);
  int (*scan_ids)(void *ctx, const char *model_key, uint32_t dim, syn_vsource_id_fn emit,
                  void *emit_ctx);
  int (*get)(void *ctx, int64_t label, uint32_t dim, float *unit);
} syn_vsource;

/* A new, empty collection index; cfg is copied. NULL on ENOMEM. */
syn_vindex *syn_vindex_new(const char *model_key, uint32_t dim, const syn_index_config *cfg);
/* No other call may be running. */
void syn_vindex_free(syn_vindex *vi);

const char *syn_vindex_model_key(const syn_vindex *vi);
uint32_t syn_vindex_dim(const syn_vindex *vi);

/* Adds the unit vector (dim floats, copied) under label, first removing old_label
 * (0 = none) if present. Re-adding a present label is a no-op. 0, -ENOMEM, or -EIO from
 * faiss (the index then asks for a rebuild through syn_vindex_needs_rebuild). */
int syn_vindex_upsert(syn_vindex *vi, int64_t label, const float *unit, int64_t old_label);
/* Removes label (tombstone for HNSW). 0 also when absent; -EIO from faiss. */
int syn_vindex_remove(syn_vindex *vi, int64_t label);

/* Restricts a search to the labels `member` accepts (asked by faiss for each candidate
 * before its distance is computed, on the searching thread, under the collection's read
 * lock). */
typedef struct syn_vselect {
  bool (*member)(void *ctx, int64_t label);
  void *ctx;
} syn_vselect;

/* Up to k live labels nearest to the unit query, best first, with their inner products
 * (approximate for the SQ8 types); only labels sel accepts when sel is not NULL. labels
 * and scores hold k items; *n receives the count, which is below k only when the
 * collection (or sel's part of it) has fewer live vectors, or, for IVF, its probed cells. */
int syn_vindex_search(syn_vindex *vi, const float *unit, uint32_t k, const syn_vselect *sel,
                      int64_t *labels, float *scores, size_t *n);

/* Whether the background thread should call syn_vindex_rebuild now. */
bool syn_vindex_needs_rebuild(syn_vindex *vi);

/* Builds the planned index from src and swaps it in. Blocks for the duration of the build
 * (seconds to minutes); searches and writes go on meanwhile. Stops early with -ECANCELED
 * when *cancel becomes true. 0, -EBUSY (a rebuild is already running), -ENOMEM, -EIO. */
int syn_vindex_rebuild(syn_vindex *vi, const syn_vsource *src, const atomic_bool *cancel);

/* Replaces whatever serves the collection by an exact Flat index of every vector in src.
 * For start-up when no snapshot can be used; the caller then rebuilds in the background
 * if the plan wants another type. */
int syn_vindex_load_source(syn_vindex *vi, const syn_vsource *src);

typedef struct syn_vload_result {
  bool loaded;      /* a snapshot was accepted */
  bool reconciled;  /* it was stale and was brought up to date */
  size_t added;     /* vectors added by reconciliation */
  size_t removed;   /* vectors removed by reconciliation */
  char reason[128]; /* why a snapshot was refused (missing, checksum, ...) */
} syn_vload_result;

/* Loads the collection's snapshot from dir and reconciles it with the source, whose live
 * set has want_count rows with label sum want_sum. 0 when the snapshot now serves the
 * collection; a negative errno (and res->reason) when it cannot be used. Start-up only,
 * before the index is shared with other threads. */
int syn_vindex_load(syn_vindex *vi, const char *dir, const syn_vsource *src, int64_t want_count,
                    int64_t want_sum, syn_vload_result *res);

/* Writes a snapshot if the index changed since the last one and no rebuild is running
 * (force: even if unchanged). Blocks writers of this collection (not searches) while faiss
 * serialises the index. 1 when written, 0 when there was nothing to do, or a negative
 * errno. */
int syn_vindex_snapshot_write(syn_vindex *vi, const char *dir, bool force);

/* File names (without directory) of the collection's snapshot and sidecar. */
void syn_vindex_snapshot_names(const char *model_key, uint32_t dim, char *index_name,
                               char *sidecar_name, size_t cap);

typedef struct syn_vindex_stats {
  syn_index_type type; /* serving now; AUTO = empty */
  size_t live;
  size_t dead;
  size_t trained_n;
  uint32_t nlist, nprobe;
  bool building;
  size_t pending; /* writes logged for replay into the index being built */
  uint64_t rebuilds;
  uint64_t snapshots_written;
  double last_build_seconds;
  size_t last_build_vectors;
  uint64_t changes; /* upserts and removals applied since creation */
} syn_vindex_stats;

void syn_vindex_stats_get(syn_vindex *vi, syn_vindex_stats *out);

#endif
