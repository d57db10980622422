/* Pure ranking helpers: the mapping of raw scores onto the contract's similarity (0..1),
 * and reciprocal rank fusion for hybrid search (the index maps scores, the router fuses
 * the lists of many nodes). No state, no allocation, no locks: any thread may call them.
 *
 * Similarity mappings:
 * - cosine c in [-1, 1] (inner product of unit vectors) -> clamp(c, 0, 1). Positive
 *   similarities keep their familiar cosine value, so a client's min_similarity of 0.7
 *   means cosine >= 0.7; opposite vectors are reported as 0.
 * - keyword hits -> query-term coverage: the share of the query's terms the shard
 *   contains, a term found in the display name or the tags counting 1 and one found only
 *   in the description 0.5. Stopwords ("how", "to", "the", ...) are not terms unless the
 *   query has nothing else (syn_rank_stopword). Every term weighs the same: a weighting
 *   by inverse document frequency would make one shard's similarity depend on what else
 *   its node holds (in a one-shard corpus every term's IDF is ~0, and bm25() ~1e-6), so
 *   the same hit would score differently on each replica and 0.00 on a fresh tracker.
 *   Coverage depends on the shard and the query alone. A shard whose name or tags hold
 *   every term scores 1; BM25 still orders hits of equal coverage. */
#ifndef SYN_COMMON_RANK_H
#define SYN_COMMON_RANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

double syn_sim_from_cosine(double cosine);

/* Where a query term was found in a shard: bit flags, one per full-text column. */
enum {
  SYN_TERM_IN_NAME = 1u << 0, /* display_name (FTS column 0) */
  SYN_TERM_IN_TEXT = 1u << 1, /* description (column 1) */
  SYN_TERM_IN_TAGS = 1u << 2, /* tags (column 2) */
};

/* Coverage of n query terms, fields[i] the SYN_TERM_IN_* flags of term i: 0..1 as above;
 * 0 when n is 0. */
double syn_sim_from_coverage(const uint8_t *fields, size_t n);

/* Whether the len bytes of term (ASCII case ignored) are an English stopword: articles,
 * prepositions, pronouns, auxiliaries and question words, the words a question wraps
 * around what it asks for ("how to use react hooks" asks for react, use, hooks). */
bool syn_rank_stopword(const char *term, size_t len);

/* Pseudo-relevance feedback (Rocchio's positive part): the mean of the n vectors of dim
 * values, each normalised first (so a long vector weighs no more than a short one),
 * normalised into out (dim floats). *radius receives the least cosine between out and
 * one of the vectors: how far the hits' topic spreads around it. Vectors of zero or
 * non-finite length are skipped. Returns how many went in; 0 leaves out undefined. */
size_t syn_rank_feedback(const float *const *vecs, size_t n, uint32_t dim, float *out,
                         double *radius);

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
 * descending, then by best single rank, then by keyword rank, then by key (strcmp), so
 * the order is deterministic. Returns the number written; cap >= nv + nk always suffices. */
size_t syn_rrf_fuse(const char *const *vector_keys, size_t nv, const char *const *keyword_keys,
                    size_t nk, double k, syn_rrf_item *out, size_t cap);

#endif
