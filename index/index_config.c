/* Defaults and parsing of syn_index_config; each default carries its reason. */
#include "index/index_config.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>

static const char *const k_type_names[SYN_INDEX_TYPE_COUNT] = {
    [SYN_INDEX_AUTO] = "auto",         [SYN_INDEX_FLAT] = "flat",
    [SYN_INDEX_FLAT_SQ8] = "flat_sq8", [SYN_INDEX_IVF] = "ivf",
    [SYN_INDEX_IVF_SQ8] = "ivf_sq8",   [SYN_INDEX_HNSW] = "hnsw",
    [SYN_INDEX_HNSW_SQ8] = "hnsw_sq8",
};

void syn_index_config_defaults(syn_index_config *cfg) {
  *cfg = (syn_index_config){
      /* Exact while that is cheap, IVF once it is not: no tuning needed to start. */
      .type = SYN_INDEX_AUTO,
      /* A flat scan of 20k x 768 is about 8 ms here (facts.md: 42 ms at 100k). */
      .auto_threshold = 20000,
      /* faiss's usual HNSW32: recall 0.97 at efSearch 64 on 100k x 768 (facts.md). */
      .hnsw_m = 32,
      /* Twice faiss's default of 40: better graphs for modest extra build time. */
      .hnsw_ef_construction = 80,
      .hnsw_ef_search = 64,
      /* Automatic: min(4*sqrt(n), n/39), recomputed at each retraining. */
      .ivf_nlist = 0,
      /* Automatic: max(16, nlist/32). 16 of 1024-1264 cells gave recall@10 1.0 on
       * clustered 100k x 768 (facts.md, and measured again here); nlist/32 keeps a margin
       * on flatter data as cells multiply, at about 3% of the vectors scanned. */
      .ivf_nprobe = 0,
      /* Fewer vectors make poor k-means cells and quantiser ranges; exact is cheap there. */
      .min_train = 1000,
      /* Doubling keeps total retraining work linear in the collection size. */
      .growth = 2.0,
      /* A fifth of the graph dead costs about that much extra search depth. */
      .tombstone_fraction = 0.2,
      /* SQ8 alone gave recall 0.93 (facts.md); re-ranking 4x candidates exactly fixes it. */
      .sq8_refine = 4,
      /* 4096 x 768 floats is 12 MB read from the page cache: a few ms. */
      .exact_filter_max = 4096,
      /* Beyond this the matching set is large enough for the exact scan to be the
       * cheaper way to fill `limit`. */
      .deep_search_max = 8192,
      /* Five minutes: a crash costs at most five minutes of reconciliation. */
      .snapshot_interval_s = 300,
      /* One core builds, the other keeps answering queries (2-core nodes). */
      .build_threads = 1,
      /* A search holds one for its duration: at least the node's worker threads. */
      .read_connections = 8,
      /* A registration is acknowledged as persisted (design decision 3). */
      .sync_full = true,
      /* Covers 250k shards of 768 floats; address space only. */
      .sqlite_mmap_mb = 1024,
      /* Interior b-tree pages stay hot; the data pages come through mmap. */
      .sqlite_cache_mb = 8,
  };
}

int syn_index_type_parse(const char *name, syn_index_type *out) {
  if (!name) return -EINVAL;
  for (int i = 0; i < SYN_INDEX_TYPE_COUNT; i++) {
    if (strcasecmp(name, k_type_names[i]) == 0) {
      *out = (syn_index_type)i;
      return 0;
    }
  }
  return -EINVAL;
}

const char *syn_index_type_name(syn_index_type type) {
  return (unsigned)type < SYN_INDEX_TYPE_COUNT ? k_type_names[type] : "unknown";
}

int syn_index_config_validate(const syn_index_config *cfg, char *err, size_t errlen) {
  const char *bad = NULL;
  if ((unsigned)cfg->type >= SYN_INDEX_TYPE_COUNT)
    bad = "index_type";
  else if (cfg->hnsw_m < 4 || cfg->hnsw_m > 256)
    bad = "hnsw_m (4..256)";
  else if (cfg->hnsw_ef_construction == 0)
    bad = "hnsw_ef_construction (> 0)";
  else if (cfg->hnsw_ef_search == 0)
    bad = "hnsw_ef_search (> 0)";
  else if (cfg->ivf_nlist > 65536)
    bad = "ivf_nlist (0..65536)";
  else if (!(cfg->growth > 1.0))
    bad = "growth (> 1)";
  else if (!(cfg->tombstone_fraction > 0.0 && cfg->tombstone_fraction <= 1.0))
    bad = "tombstone_fraction (0..1]";
  else if (cfg->sq8_refine == 0 || cfg->sq8_refine > 64)
    bad = "sq8_refine (1..64)";
  else if (cfg->deep_search_max == 0)
    bad = "deep_search_max (> 0)";
  else if (cfg->read_connections == 0 || cfg->read_connections > 256)
    bad = "read_connections (1..256)";
  if (!bad) return 0;
  if (err && errlen) snprintf(err, errlen, "vector_search: bad %s", bad);
  return -EINVAL;
}
