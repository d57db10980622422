/* The index component: a node's shard registry and search engine.
 *
 * What it owns, under the data directory given to syn_index_open:
 * - shards.db (+ -wal, -shm): SQLite, the source of truth for every shard record and its
 *   embedding (see shard_store.h for the schema and durability);
 * - vectors/: snapshots of the faiss indexes, derived state that may be deleted at any
 *   time (see vector_index.h);
 * - one faiss index per (model key, dimension) collection in memory, never mixing models
 *   (design decision 6), similarity = cosine;
 * - one background thread that (re)builds indexes (auto flat -> IVF switch, retraining as
 *   a collection grows, HNSW compaction) and writes snapshots every
 *   cfg.snapshot_interval_s, after every rebuild and at close.
 *
 * Callers: the node's worker threads, several at once, for every function below except
 * open and close (the node's main thread, once each). Every call blocks on SQLite and/or
 * faiss work (microseconds to milliseconds; a write waits for the fsync of the COMMIT
 * that holds it), so none may run on an event-loop thread. Writes (register, delete,
 * apply) go through one group commit (below): concurrent writers share transactions;
 * searches run in parallel with each other, with writes and with rebuilds, and never
 * wait for a rebuild.
 *
 * Errors: 0 or a negative errno, with syn_index_strerror for text: -EINVAL bad input (the
 * router should answer 4xx), -ENOENT unknown info_hash, -ENOMEM, -EIO storage failure.
 *
 * Ownership: inputs are borrowed for the duration of the call. Outputs (syn_shard,
 * syn_hit arrays) are allocated here and released by the caller with syn_shard_free and
 * syn_hits_free. */
#ifndef SYN_INDEX_INDEX_H
#define SYN_INDEX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rank.h"
#include "common/shard_rules.h"
#include "index/index_config.h"
#include "index/shard_store.h"

typedef struct syn_index syn_index;

#define SYN_INDEX_STATS_MAX 32 /* collections reported by syn_index_stats_get */

/* Opens (creating if needed; data_dir's parent must exist) the registry under data_dir,
 * loads or rebuilds every collection's vector index, and starts the background thread.
 * cfg is copied. Blocks for the loading: snapshots load at disk speed (a stale one is
 * reconciled with SQLite first); a collection without a usable snapshot is first served
 * by an exact index built from SQLite (a few seconds per 100k x 768 vectors) and its
 * approximate index follows in the background. NULL on failure, with a one-line message
 * in err. Main thread, once. */
syn_index *syn_index_open(const syn_index_config *cfg, const char *data_dir, char *err,
                          size_t errlen);

/* Stops the background thread (abandoning a rebuild in progress), writes the snapshots of
 * changed indexes, and frees everything. No other call may be running or follow. */
void syn_index_close(syn_index *idx);

/* Registers a shard with version v (common/version.h), or replaces the existing record
 * of its info_hash (created_at is kept), when v is newer than what is stored (record or
 * tombstone); *applied tells (may be NULL). Returns after the record is committed to
 * SQLite and its vector is in the index: the shard is searchable as soon as this
 * returns, and survives kill -9. updated_at is v's time. 0, -EINVAL with a message
 * naming the field in err, -ENOMEM, or -EIO. */
int syn_index_register(syn_index *idx, const syn_shard_input *in, const syn_version *v,
                       bool *applied, char *err, size_t errlen);

/* Reads a shard (40 or 64 hex, any case); the embedding only when asked for. *out is
 * filled on success (free with syn_shard_free). 0, -ENOENT, -EINVAL, -EIO. */
int syn_index_get(syn_index *idx, const char *info_hash, bool with_embedding, syn_shard *out);

/* Deletes a shard with version v: when v is newer than what is stored, the record goes
 * (committed, and gone from every result, on return) and a tombstone stays, stored at
 * now_ms, until syn_index_purge_tombstones removes it after its grace. *applied and
 * *existed (a live record was there) may be NULL. 0, -EINVAL, -EIO. */
int syn_index_delete(syn_index *idx, const char *info_hash, const syn_version *v, int64_t now_ms,
                     bool *applied, bool *existed);

/* Group commit: every write (register, delete, apply) is queued, and the writes of all
 * callers queued while the previous transaction's commit ran are applied together, in
 * queue order, in one store transaction: one COMMIT and one fsync for the lot, each
 * write in its own savepoint so that one bad write fails alone (index/group_commit.h).
 * A call returns only once the transaction holding its writes has committed, so the
 * durability of each write is that of a lone one (synchronous=FULL by default: it
 * survives kill -9 and power loss). A group holds at most SYN_INDEX_GROUP_WRITES writes
 * (one caller's batch larger than that goes alone, whole). */
#define SYN_INDEX_GROUP_WRITES 2048

/* Many writes at once: a batch of registrations (node/shards.c), or writes from other
 * replicas (anti-entropy, hand-off). */
typedef struct syn_index_write {
  const syn_shard_input *shard; /* a registration, or NULL: a delete of info_hash */
  const char *info_hash;
  syn_version version;
  int64_t now_ms; /* a delete's tombstone time */
  char *err;      /* optional: a registration's -EINVAL message naming the field */
  size_t errlen;
  int rc;       /* out: as syn_index_register / syn_index_delete return */
  bool applied; /* out: it was newer than what was stored */
  bool existed; /* out: a live record was there before */
} syn_index_write;

/* Applies the n writes in order; each one's outcome goes to its rc and applied, and a
 * write that fails leaves the others alone. Vectors change only once the transaction
 * is committed. 0, or -ENOMEM / -EIO when the transaction could not run or commit (then
 * nothing was applied and every rc says so). */
int syn_index_apply(syn_index *idx, syn_index_write *w, size_t n);

/* Removes the local record or tombstone without leaving a tombstone: the partition moved
 * to other nodes, or is discarded to be pulled again. 0, -ENOENT, -EINVAL, -EIO. */
int syn_index_forget(syn_index *idx, const char *info_hash);

/* ---- anti-entropy (shard_store.h has the details) ---- */

/* The version stored for an info_hash, record or tombstone. 0, -ENOENT, -EINVAL. */
int syn_index_version(syn_index *idx, const char *info_hash, syn_key_version *out);
/* Every record and tombstone of a bucket, appended to *out (caller frees). */
int syn_index_bucket_keys(syn_index *idx, uint32_t bucket, syn_key_version **out, size_t *n,
                          size_t *cap);
/* The info_hashes of a partition's records and tombstones (caller frees *out). */
int syn_index_partition_keys(syn_index *idx, uint32_t partition, char (**out)[65], size_t *n);
/* Layout, and a copy of every bucket digest (partitions x buckets; kept by every write). */
uint32_t syn_index_partitions(const syn_index *idx);
uint32_t syn_index_buckets(const syn_index *idx);
void syn_index_digests(syn_index *idx, uint64_t *out);
/* Removes up to max tombstones stored before older_than_ms. */
int syn_index_purge_tombstones(syn_index *idx, int64_t older_than_ms, size_t max, size_t *purged);

typedef struct syn_search_filter {
  const char *model;       /* NULL: every collection of the query's dimension; otherwise
                              normalised (syn_model_key) and matched exactly */
  const char *const *tags; /* a shard matches when it carries any of them (ASCII
                              case-insensitive); tag_count 0 = no tag filter */
  size_t tag_count;
  double min_similarity; /* hits below it (on the 0..1 similarity) are dropped */
  /* Only shards of these partitions (one bit per partition of syn_index_partitions, LSB
   * first); NULL = all. Applied inside the scans (faiss's, and SQLite's), so a search of
   * a third of the partitions costs about a third and still returns `limit` hits when
   * that many of them match. */
  const uint8_t *partitions;
} syn_search_filter;

typedef struct syn_hit {
  double similarity; /* 0..1: syn_sim_from_cosine, or query-term coverage (text search) */
  double raw;        /* cosine (vector search) or coverage (text search) */
  syn_shard shard;   /* full record without its embedding */
} syn_hit;

/* How a search was answered, for metrics, the reply's mode, and tests. */
typedef struct syn_search_info {
  uint32_t collections; /* collections searched */
  bool model_known;     /* vector search: a collection of the filter's model (without one:
                           of any model) and the query's dimension exists on this node;
                           text search: the filter's model has a collection (true without
                           one). In a cluster, "unknown model" means unknown on every node. */
  bool exact;           /* some collection was answered by an exact scan from SQLite */
  uint32_t rounds;      /* index searches made (more than collections = went deeper) */
  size_t candidates;    /* index hits checked against SQLite */
} syn_search_info;

/* Nearest shards to an embedding by cosine, best first: at most limit (1..
 * SYN_SEARCH_MAX_LIMIT) hits, and exactly min(limit, matching shards) unless
 * min_similarity cuts them. The query is normalised here (zero or non-finite -> -EINVAL).
 * Filters: see syn_search_filter; a filtered search goes deeper (k doubling) or scans
 * the matching rows exactly, so it still returns `limit` hits when that many match.
 * Recall against exact search is that of the collection's index type (flat: exact).
 * filter and info may be NULL. *hits is malloc'd (free with syn_hits_free). */
int syn_index_search_embedding(syn_index *idx, const float *query, uint32_t dim,
                               const syn_search_filter *filter, uint32_t limit, syn_hit **hits,
                               size_t *n, syn_search_info *info);

/* Keyword search over display name, description and tags; the query's words (stopwords
 * left out) are quoted and joined with OR (syn_fts_query), so no input is FTS syntax. A
 * hit's similarity is its query-term coverage (common/rank.h); BM25 (name 4,
 * description 1, tags 2) orders hits of equal coverage. A query without any word gives
 * 0 hits. Filters: model (by key, any dimension), tags, min_similarity on the coverage. Hybrid
 * search (vector + keyword) is the caller's: run both and fuse with syn_rrf_fuse (rank.h). */
int syn_index_search_text(syn_index *idx, const char *query, const syn_search_filter *filter,
                          uint32_t limit, syn_hit **hits, size_t *n, syn_search_info *info);

void syn_hits_free(syn_hit *hits, size_t n);

/* Pages over every shard in id order (hand-off of partitions between nodes): up to max
 * (at most 256) records with id > after_id into out (each freed by the caller with
 * syn_shard_free); out[n - 1].id is the cursor for the next page, and n == 0 means the
 * end. A page is read from one snapshot. On error nothing is returned. Worker threads
 * only; blocks on SQLite. */
int syn_index_list(syn_index *idx, int64_t after_id, size_t max, bool with_embedding,
                   syn_shard *out, size_t *n);

/* Writes the snapshot of every collection changed since its last one, now. Blocks for
 * the writing (writers of a collection wait while faiss serialises it, searches do not).
 * Returns how many were written or a negative errno. Any thread; e.g. at SIGTERM before
 * hand-off. */
int syn_index_snapshot(syn_index *idx);

/* Waits until no rebuild is queued or running, up to timeout_ms. 0, or -ETIMEDOUT. For
 * tests, benchmarks and orderly shutdowns; searches never need it. */
int syn_index_wait_idle(syn_index *idx, int timeout_ms);

typedef struct syn_index_collection_stats {
  char model_key[SYN_SHARD_MAX_MODEL + 1];
  uint32_t dimension;
  syn_index_type type; /* serving now (FLAT while a trained type is being built) */
  size_t vectors;      /* live */
  size_t tombstones;   /* HNSW */
  uint32_t nlist, nprobe;
  bool building;
  uint64_t rebuilds;
  double last_build_seconds;
  uint64_t snapshots_written;
} syn_index_collection_stats;

typedef struct syn_index_stats {
  int64_t shards; /* rows in SQLite */
  size_t collection_count;
  syn_index_collection_stats collections[SYN_INDEX_STATS_MAX]; /* the first ones */
  uint64_t registrations, deletions;
  uint64_t vector_searches, text_searches, exact_searches, deep_searches;
  uint64_t snapshot_loads, snapshot_rejects, reconciliations, rebuilds_failed;
  uint64_t corrupt_rows; /* rows skipped because their stored embedding is malformed */
  uint64_t commit_groups, commit_writes; /* transactions committed by the group commit and
                                            the writes in them */
} syn_index_stats;

/* Counters and per-collection figures for /api/stats, /metrics and /cluster/status. */
int syn_index_stats_get(syn_index *idx, syn_index_stats *out);

const char *syn_index_strerror(int rc);

#endif
