/* Shard metadata store: SQLite in WAL mode, the source of truth for shard records and
 * their embeddings (design decision 7). The faiss indexes are derived from it.
 *
 * Schema (version 1, PRAGMA user_version; migrated forward in one transaction per step at
 * open, refused when the file is newer than this code):
 * - shards: one row per info_hash. `id` is an AUTOINCREMENT rowid that is never reused;
 *   a re-registration deletes the old row and inserts a new one (new id, created_at kept),
 *   so an id names one version of one embedding and serves as the faiss label. The
 *   embedding is stored raw (float32, host byte order, little-endian on every supported
 *   target) with its L2 norm; cosine = dot(unit query, raw) / norm.
 * - shard_tags (tag COLLATE NOCASE, shard_id): tag filters are index lookups. Tags match
 *   case-insensitively for ASCII letters.
 * - shards_fts: FTS5 (unicode61, diacritics folded) over display_name, description and
 *   tags, an external-content table kept in sync by triggers, as is shard_tags.
 *
 * Threads: one writer connection behind a mutex (SQLite allows one writer at a time
 * anyway) and a pool of read connections (WAL: readers never wait for the writer and see
 * every committed write). Connections run in SQLite's multi-thread mode; the store never
 * lets two threads use one connection at once. Every function may be called from any
 * thread and blocks on disk I/O (and on a free read connection when the pool is busy);
 * none may be called from an event-loop thread.
 *
 * Durability: a write returns only after COMMIT (synchronous=FULL by default), so an
 * acknowledged registration survives kill -9 and, with FULL, power loss.
 *
 * Statements are prepared once per connection and every value is bound, never spliced
 * into SQL text. Errors: 0 or a negative errno (-EINVAL bad input, -ENOENT not found,
 * -ENOMEM, -EIO for an SQLite failure). */
#ifndef SYN_INDEX_SHARD_STORE_H
#define SYN_INDEX_SHARD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on one record: common/shard_rules.h, the rules the router checks too. */
#include "common/shard_rules.h"
#include "common/version.h"

/* A registration, borrowed from the caller for the duration of the call. Optional strings
 * may be NULL; optional integers are -1 when absent. */
typedef struct syn_shard_input {
  const char *info_hash;    /* 40 or 64 hex digits, any case */
  const char *display_name; /* required */
  const char *model;        /* required; stored as given, matched by its key */
  uint32_t dimension;       /* 1..SYN_SHARD_MAX_DIM */
  const float *embedding;   /* `dimension` finite floats, not all zero; NULL: no vector
                               (stored and found by keyword search only) */
  const char *const *tags;
  size_t tag_count;
  const char *description;
  int64_t file_size;
  int64_t entry_count;
  const char *metadata_json; /* a JSON object as text, or NULL */
  const char *creator_agent_id;
  const char *creator_public_key;
  const char *signature;
  int64_t created_at_ms; /* > 0 to carry a record's creation time over (hand-off,
                            replication); 0 = keep the existing one, else now */
} syn_shard_input;

/* A stored record. Every pointer is owned by the struct and freed by syn_shard_free;
 * absent optional strings are NULL, absent integers -1. */
typedef struct syn_shard {
  int64_t id;
  char info_hash[65];
  char *display_name;
  char *model;
  char *model_key;
  uint32_t dimension;
  char **tags;
  size_t tag_count;
  char *description;
  int64_t file_size;
  int64_t entry_count;
  char *metadata_json;
  char *creator_agent_id;
  char *creator_public_key;
  char *signature;
  float *embedding; /* raw, as registered; NULL unless asked for */
  int64_t created_at_ms;
  int64_t updated_at_ms;
  syn_version version; /* of the write that made this record */
} syn_shard;

/* Frees the members and zeroes the struct (not the struct itself). NULL is fine. */
void syn_shard_free(syn_shard *s);

typedef struct syn_store syn_store;

typedef struct syn_store_options {
  uint32_t read_connections; /* pool size, >= 1 */
  bool sync_full;            /* synchronous=FULL (true) or NORMAL */
  uint32_t mmap_mb;          /* PRAGMA mmap_size per connection, MiB; 0 = no mmap */
  uint32_t cache_mb;         /* PRAGMA cache_size per connection, MiB; 0 = SQLite's 2 MiB */
  uint32_t partitions;       /* the cluster's partition count (common/keyspace.h); 0 = 1024 */
  uint32_t buckets;          /* anti-entropy buckets per partition; 0 = the default (64) */
} syn_store_options;

/* Opens or creates the database at path and migrates its schema. NULL on failure with a
 * message in err. Called once, at start. */
syn_store *syn_store_open(const char *path, const syn_store_options *opt, char *err, size_t errlen);
/* Closes every connection. No other call may be running or follow. */
void syn_store_close(syn_store *st);

/* What a write changed, for the vector indexes and the caller. */
typedef struct syn_store_change {
  bool applied; /* false: the stored record or tombstone had a version at least as new */
  bool existed; /* a live record was there before the write */
  int64_t id;     /* row written; 0 after a delete */
  int64_t old_id; /* row replaced or deleted; 0 when there was none */
  char old_model_key[SYN_SHARD_MAX_MODEL + 1];
  uint32_t old_dimension;
  char model_key[SYN_SHARD_MAX_MODEL + 1]; /* of the row written */
  float norm;                              /* of the embedding written */
  int64_t created_at_ms;
} syn_store_change;

/* Writes are versioned (common/version.h): a write applies only when its version is newer
 * than both the stored record's and the stored tombstone's, so replicas that receive the
 * same writes in any order, any number of times, end on the same state. Every write
 * updates its bucket's digest in the same transaction. */

/* Inserts or replaces the record of in->info_hash, version v, and commits; a tombstone
 * it supersedes goes. updated_at is the version's time. 0 (chg->applied tells whether it
 * was newer), -EINVAL with a message naming the field, or -EIO. */
int syn_store_put(syn_store *st, const syn_shard_input *in, const syn_version *v,
                  syn_store_change *chg, char *err, size_t errlen);
/* Deletes with version v: the record goes and a tombstone with v and deleted_at = now_ms
 * stays (written even when no record was there: another replica may hold one). 0
 * (chg->applied, chg->existed), -EINVAL (bad hash) or -EIO. */
int syn_store_delete(syn_store *st, const char *info_hash, const syn_version *v, int64_t now_ms,
                     syn_store_change *chg);

/* Batches: many writes from replicas (anti-entropy, hand-off) in one transaction, so one
 * commit and one fsync for all of them. Between begin and end the caller holds the
 * store's writer (no other write runs). Each record is its own savepoint: one that fails
 * returns its error and undoes only itself. end commits and returns 0, or rolls the
 * whole batch back and returns -EIO; what the records reported in chg holds only after 0.
 * begin: 0, -ENOMEM or -EIO (then no batch is open). */
int syn_store_batch_begin(syn_store *st);
int syn_store_batch_put(syn_store *st, const syn_shard_input *in, const syn_version *v,
                        syn_store_change *chg, char *err, size_t errlen);
int syn_store_batch_delete(syn_store *st, const char *info_hash, const syn_version *v,
                           int64_t now_ms, syn_store_change *chg);
int syn_store_batch_end(syn_store *st);
/* Removes the local record or tombstone without leaving a tombstone (a partition that
 * moved to other nodes, or one discarded to be pulled again). 0, -ENOENT, -EINVAL, -EIO. */
int syn_store_forget(syn_store *st, const char *info_hash, syn_store_change *chg);

/* ---- versions, tombstones, digests (anti-entropy) ---- */

typedef struct syn_key_version {
  char info_hash[65];
  syn_version version;
  bool deleted;          /* a tombstone */
  int64_t deleted_at_ms; /* tombstones: when the delete was stored here */
} syn_key_version;

/* The version held for an info_hash, record or tombstone. 0, -ENOENT (neither), -EINVAL. */
int syn_store_version(syn_store *st, const char *info_hash, syn_key_version *out);

/* Every record and tombstone of one bucket (a global bucket index, common/keyspace.h),
 * appended to *out (grown with realloc; the caller frees it). 0, -ENOMEM, -EIO. */
int syn_store_bucket_keys(syn_store *st, uint32_t bucket, syn_key_version **out, size_t *n,
                          size_t *cap);

/* The info_hashes of every record and tombstone of one partition (malloc'd array of
 * 65-byte strings; the caller frees it). 0, -ENOMEM, -EIO. */
int syn_store_partition_keys(syn_store *st, uint32_t partition, char (**out)[65], size_t *n);

/* The layout, and a copy of every bucket digest (partitions x buckets values; bucket
 * b of partition p at p * buckets + b). Digests cost nothing to read: they are kept up
 * to date by every write. */
uint32_t syn_store_partitions(const syn_store *st);
uint32_t syn_store_buckets(const syn_store *st);
void syn_store_digests(syn_store *st, uint64_t *out);

/* Removes up to max tombstones stored before older_than_ms (their grace has passed).
 * 0 with the count in *purged, or -EIO. */
int syn_store_purge_tombstones(syn_store *st, int64_t older_than_ms, size_t max, size_t *purged);

/* A read session: one pooled connection holding one read transaction, so that a sequence
 * of reads (all those of one search) sees one consistent state and pays for one WAL
 * read lock instead of one per statement. Functions taking a `syn_store_reader *r` use
 * the session when r is not NULL and borrow a connection for the call otherwise. A thread
 * holding a session must pass it to every store call it makes until syn_store_read_end
 * (borrowing a second connection could wait forever on a pool it has drained itself).
 * NULL from begin on an SQLite failure. Sessions last milliseconds: a long one keeps the
 * WAL from being checkpointed past its snapshot. */
typedef struct syn_store_reader syn_store_reader;
syn_store_reader *syn_store_read_begin(syn_store *st);
void syn_store_read_end(syn_store *st, syn_store_reader *r);

/* Reads one record into *out (to be freed with syn_shard_free). 0, -ENOENT, -EINVAL. A
 * shard registered without an embedding has out->embedding NULL even when asked for. */
int syn_store_get(syn_store *st, const char *info_hash, bool with_embedding, syn_shard *out);
int syn_store_get_by_id(syn_store *st, int64_t id, bool with_embedding, syn_shard *out);
int syn_store_reader_get_by_id(syn_store *st, syn_store_reader *r, int64_t id, bool with_embedding,
                               syn_shard *out);
/* Number of shards, or a negative errno. */
int64_t syn_store_count(syn_store *st);
/* Up to max row ids greater than after_id, ascending (paging over every shard). */
int syn_store_list_ids(syn_store *st, syn_store_reader *r, int64_t after_id, size_t max,
                       int64_t *ids, size_t *n);

/* One (model_key, dimension) collection: its size and the sum of its ids, which
 * identifies its set of rows relative to any earlier state because ids only grow. */
typedef struct syn_store_collection {
  char model_key[SYN_SHARD_MAX_MODEL + 1];
  uint32_t dimension;
  int64_t count;
  int64_t id_sum;
} syn_store_collection;

/* Every collection with at least one row; *out is malloc'd (free it). */
int syn_store_collections(syn_store *st, syn_store_collection **out, size_t *n);

/* Calls fn for each row of a collection in id order with its unit-normalised embedding
 * (valid during the call only); a nonzero return from fn stops the scan and is returned.
 * Rows whose embedding is malformed are skipped and counted (syn_store_corrupt_rows).
 * The scan is one read transaction: it sees exactly the commits made before it began. */
typedef int (*syn_store_vector_fn)(void *ctx, int64_t id, const float *unit);
int syn_store_scan_vectors(syn_store *st, const char *model_key, uint32_t dim,
                           syn_store_vector_fn fn, void *ctx);
typedef int (*syn_store_id_fn)(void *ctx, int64_t id);
int syn_store_scan_ids(syn_store *st, const char *model_key, uint32_t dim, syn_store_id_fn fn,
                       void *ctx);
/* Partition of a (lower-case hex) info_hash in the store's layout. */
uint32_t syn_store_partition_of(const syn_store *st, const char *info_hash_hex);

/* Calls fn with the id and partition of every row that has an embedding (one read
 * transaction); a nonzero return from fn stops the scan and is returned. */
typedef int (*syn_store_partition_fn)(void *ctx, int64_t id, uint32_t partition);
int syn_store_scan_partitions(syn_store *st, syn_store_partition_fn fn, void *ctx);
/* Unit-normalised embedding of row id into unit (dim floats). 0, -ENOENT, -EIO. */
int syn_store_get_vector(syn_store *st, int64_t id, uint32_t dim, float *unit);
uint64_t syn_store_corrupt_rows(syn_store *st);

/* Tag filters are passed as a JSON array of strings built by syn_store_tags_json; NULL
 * means no tag filter. Returns a malloc'd string, NULL on ENOMEM; -EINVAL-worthy tags
 * (too many, too long, control characters) make it return NULL too and set *bad. */
char *syn_store_tags_json(const char *const *tags, size_t n, bool *bad);

/* Checks candidate rows from a vector index: for each id, whether the row still exists,
 * whether it carries one of the filter's tags (always true without a filter), and, when
 * qunit is not NULL, the exact cosine with the unit query from the stored embedding. */
typedef struct syn_store_probe {
  int64_t id;   /* in */
  bool exists;  /* out */
  bool matches; /* out */
  float cosine; /* out, when asked for */
} syn_store_probe;
int syn_store_probe_rows(syn_store *st, syn_store_reader *r, const char *tags_json,
                         const float *qunit, uint32_t dim, syn_store_probe *items, size_t n);

/* min(cap, number of shards carrying any of the tags). */
int syn_store_count_tagged(syn_store *st, syn_store_reader *r, const char *tags_json, int64_t cap,
                           int64_t *count);

typedef struct syn_scored {
  int64_t id;
  double score;
} syn_scored;

/* Exact cosine top-k over the rows of one collection (restricted to the tag filter when
 * tags_json is not NULL, and to the partitions whose bits are set in parts, one bit per
 * partition LSB first, when parts is not NULL), keeping rows with cosine >= min_cosine. out holds
 * limit items; *n receives the count, best first. Cost: one pass over the matching embeddings. */
int syn_store_exact_search(syn_store *st, syn_store_reader *r, const char *model_key, uint32_t dim,
                           const char *tags_json, const uint8_t *parts, const float *qunit,
                           double min_cosine, size_t limit, syn_scored *out, size_t *n);

/* Builds an FTS5 query from free text: terms are the runs of ASCII letters and digits and
 * non-ASCII bytes, each wrapped in double quotes (so no input is ever FTS syntax: AND, OR,
 * NEAR, *, ^, column filters and parentheses are separators or plain words), joined with
 * OR; at most 32 terms of at most 64 bytes. Stopwords (syn_rank_stopword) are left out
 * unless the text has nothing else, and a term repeated (ASCII case ignored) counts once,
 * so every phrase of the query is one term of the similarity's coverage. Returns the
 * number of terms (0 = nothing to search for) or -ENOSPC when out is too small (2 KiB
 * always suffices). */
int syn_fts_query(const char *text, char *out, size_t cap);

/* Full-text search over the rows matching fts_query (from syn_fts_query), optionally
 * restricted to a model key, to the tag filter and to the partitions in parts (as for
 * syn_store_exact_search). Ordered by query-term coverage
 * (common/rank.h: score, 0..1, the hit's similarity), then by BM25 (weights name 4,
 * description 1, tags 2) among equal coverage; best first. */
int syn_store_text_search(syn_store *st, syn_store_reader *r, const char *fts_query,
                          const char *model_key, const char *tags_json, const uint8_t *parts,
                          size_t limit, syn_scored *out, size_t *n);

#endif
