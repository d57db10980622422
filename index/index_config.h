/* Configuration of the index component: which faiss index serves each (model, dimension)
 * collection, when it is rebuilt, how searches go deeper, and how SQLite persists.
 *
 * One struct, filled by syn_index_config_defaults (the reason for each default is given
 * there), then overwritten field by field from config.yaml's `vector_search:` section by
 * the caller. The struct is copied by syn_index_open, so the caller may free or reuse it
 * afterwards. Plain values only: no pointers, no ownership. */
#ifndef SYN_INDEX_CONFIG_H
#define SYN_INDEX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The faiss index type of a collection. The `_SQ8` variants store 8-bit scalar-quantised
 * codes (a quarter of the memory) and re-rank their candidates by exact cosine computed
 * from the float32 embeddings in SQLite, so reported similarities are always exact. */
typedef enum syn_index_type {
  SYN_INDEX_AUTO = 0, /* flat below auto_threshold vectors, IVF (auto nlist/nprobe) above */
  SYN_INDEX_FLAT,     /* exact scan; cost grows linearly (about 40 ms at 100k x 768 here) */
  SYN_INDEX_FLAT_SQ8,
  SYN_INDEX_IVF, /* inverted lists over k-means cells; trained on the vectors present */
  SYN_INDEX_IVF_SQ8,
  SYN_INDEX_HNSW, /* graph; no training, but no removal either (tombstones) */
  SYN_INDEX_HNSW_SQ8,
} syn_index_type;

#define SYN_INDEX_TYPE_COUNT 7

typedef struct syn_index_config {
  /* Index type for every collection (config key `index_type`: auto, flat, flat_sq8, ivf,
   * ivf_sq8, hnsw, hnsw_sq8). */
  syn_index_type type;

  /* auto: vectors in one collection at which exact search gives way to IVF. Flat costs
   * about 0.4 us per 768-d vector per query here, so 20k vectors is about 8 ms. The
   * collection goes back to flat only below half of this (hysteresis). */
  uint32_t auto_threshold;

  /* HNSW graph degree (memory grows by 8*M bytes per vector; recall grows with M). M and
   * efConstruction apply to builds: an index loaded from a snapshot keeps its own until
   * its next rebuild; efSearch, nprobe and the type apply at once (a type change queues a
   * background rebuild). */
  uint32_t hnsw_m;
  /* HNSW candidate list while inserting: higher builds slower and gives better graphs. */
  uint32_t hnsw_ef_construction;
  /* HNSW candidate list while searching (at least the k asked for): recall vs latency. */
  uint32_t hnsw_ef_search;

  /* IVF cells; 0 = automatic: min(4*sqrt(n), n/39) at each (re)training, so that k-means
   * has the 39 points per centroid faiss asks for. */
  uint32_t ivf_nlist;
  /* IVF cells visited per query; 0 = automatic: max(16, nlist/32), capped at nlist. More
   * probes = better recall, linearly more work (at 100k x 768 here: 16 probes of 1264
   * cells gave recall@10 1.000 in about 1.5 ms, 79 probes about 5 ms). */
  uint32_t ivf_nprobe;

  /* Vectors a collection needs before a trained type (ivf, *_sq8) replaces the exact flat
   * stand-in that serves it until then. Training on a handful of vectors gives poor cells
   * and poor quantiser ranges. */
  uint32_t min_train;
  /* A trained index is retrained in the background once the collection has grown to
   * growth x the vectors it was trained on (2.0: total training work stays linear). */
  double growth;
  /* HNSW compaction: rebuild once tombstones (deleted or replaced vectors still in the
   * graph) exceed this fraction of its vectors. Tombstones cost memory and search depth. */
  double tombstone_fraction;

  /* *_sq8 types fetch refine x limit candidates and re-rank them by exact cosine. */
  uint32_t sq8_refine;
  /* A search filtered by tags runs exactly (cosine over the matching rows' embeddings in
   * SQLite) when at most this many shards carry one of the tags; above it, the ANN index
   * is searched deeper and deeper (k doubling) until `limit` matches are found. */
  uint32_t exact_filter_max;
  /* Bound on that doubling k; beyond it the filtered search falls back to the exact scan. */
  uint32_t deep_search_max;

  /* Seconds between snapshots of changed faiss indexes (also written after every rebuild
   * and at close). 0 = only after rebuilds and at close. A stale snapshot costs a
   * reconciliation with SQLite at start, not correctness. */
  uint32_t snapshot_interval_s;
  /* OpenMP threads used by background (re)builds; 0 = OpenMP's default (all cores). Fewer
   * threads build slower but leave cores to queries. */
  uint32_t build_threads;

  /* SQLite read connections shared by the searching threads (WAL: reads never wait for the
   * writer). Each search holds one from start to end (one consistent snapshot); a thread
   * waits when all are busy, so this should be at least the node's worker count. */
  uint32_t read_connections;
  /* true: PRAGMA synchronous=FULL (every acknowledged registration survives power loss);
   * false: NORMAL (survives a process crash or kill -9, may lose the last commits on power
   * loss; commits are several times cheaper). */
  bool sync_full;
  /* SQLite memory-mapped I/O per connection, MiB of address space (the OS page cache is
   * shared, so this costs no RAM per connection); 0 disables it. Reads of embeddings for
   * exact scans and re-ranking then cost no system call per page. */
  uint32_t sqlite_mmap_mb;
  /* SQLite's own page cache per connection, MiB (SQLite's default is 2). */
  uint32_t sqlite_cache_mb;

  /* The cluster's partition count: records are kept in anti-entropy buckets of their
   * partition (common/keyspace.h), so replicas compare digests per partition and bucket.
   * 0 = 1024. Changing it recomputes every bucket at the next open. */
  uint32_t partitions;
} syn_index_config;

/* Fills every field with its default. */
void syn_index_config_defaults(syn_index_config *cfg);

/* "auto", "flat", "flat_sq8", "ivf", "ivf_sq8", "hnsw", "hnsw_sq8" (case-insensitive).
 * Returns 0, or -EINVAL for an unknown name. */
int syn_index_type_parse(const char *name, syn_index_type *out);
const char *syn_index_type_name(syn_index_type type);

/* Checks ranges (nonzero M, growth > 1, fractions in (0,1], ...). 0 or -EINVAL with a
 * message naming the field. */
int syn_index_config_validate(const syn_index_config *cfg, char *err, size_t errlen);

#endif
