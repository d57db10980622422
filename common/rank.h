/* Pure ranking helpers: the mapping of raw scores onto the contract's similarity (0..1),
 * and reciprocal rank fusion for hybrid search (the index maps scores, the router fuses
 * the lists of many nodes). No state, no allocation, no locks: any thread may call them.
 *
 * Similarity mappings (both monotonic, so they never reorder hits):
 * - cosine c in [-1, 1] (inner product of unit vectors) -> clamp(c, 0, 1). Positive
 *   similarities keep their familiar cosine value, so a client's min_similarity of 0.7
 *   means cosine >= 0.7; opposite vectors are reported as 0.
 * - FTS5 bm25() b (negative; lower is better) -> r / (1 + r) with r = max(0, -b). A term
 *   that matches one field of a small corpus gives r around 1 (0.5); strong multi-term
 *   matches approach 1. The value orders keyword hits; it is not a cosine. */
#ifndef SYN_COMMON_RANK_H
#define SYN_COMMON_RANK_H

#include <stddef.h>
#include <stdint.h>

double syn_sim_from_cosine(double cosine);
double syn_sim_from_bm25(double bm25);

/* One fused hit. key points into the caller's input arrays (not copied). rank_* are the
 * 1-based ranks in each input list, 0 where the key is absent from that list. */
typedef struct syn_rrf_item {
  const char *key;
  double score; /* sum over lists of 1 / (k + rank) */
  uint32_t rank_vector;
  uint32_t rank_keyword;
} syn_rrf_item;

/* Reciprocal rank fusion of two ranked lists of keys (e.g. info_hash strings), best first;
 * a key repeated within one list counts at its best rank. k is the RRF constant (60 in
 * the contract; <= 0 means 60). Writes up to cap items to out, ordered by score
 * descending, then by best single rank, then by key (strcmp), so the order is
 * deterministic. Returns the number written; cap >= nv + nk always suffices. */
size_t syn_rrf_fuse(const char *const *vector_keys, size_t nv, const char *const *keyword_keys,
                    size_t nk, double k, syn_rrf_item *out, size_t cap);

#endif
