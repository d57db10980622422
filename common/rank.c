/* Pure ranking helpers; see rank.h for the mappings and their reasons. */
#include "common/rank.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

double syn_sim_from_cosine(double cosine) {
  if (!(cosine > 0.0)) return 0.0; /* also maps NaN to 0 */
  return cosine > 1.0 ? 1.0 : cosine;
}

double syn_sim_from_coverage(const uint8_t *fields, size_t n) {
  if (n == 0 || !fields) return 0.0;
  double sum = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (fields[i] & (SYN_TERM_IN_NAME | SYN_TERM_IN_TAGS))
      sum += 1.0;
    else if (fields[i] & SYN_TERM_IN_TEXT)
      sum += 0.5;
  }
  return sum / (double)n;
}

/* Sorted (strcmp order) for bsearch; lower-case ASCII. */
static const char *const k_stopwords[] = {
    "a",    "about", "am",    "an",    "and",  "are",  "as",    "at",    "be",   "been",   "but",
    "by",   "can",   "could", "did",   "do",   "does", "for",   "from",  "had",  "has",    "have",
    "he",   "her",   "his",   "how",   "i",    "if",   "in",    "into",  "is",   "it",     "its",
    "me",   "my",    "no",    "not",   "of",   "on",   "or",    "our",   "she",  "should", "so",
    "such", "that",  "the",   "their", "them", "then", "there", "these", "they", "this",   "those",
    "to",   "was",   "we",    "were",  "what", "when", "where", "which", "who",  "whom",   "why",
    "will", "with",  "would", "you",   "your",
};

static int stopword_cmp(const void *key, const void *item) {
  return strcmp(key, *(const char *const *)item);
}

bool syn_rank_stopword(const char *term, size_t len) {
  char low[8];
  if (!term || len == 0 || len >= sizeof low) return false;
  for (size_t i = 0; i < len; i++) {
    char c = term[i];
    low[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  low[len] = '\0';
  return bsearch(low, k_stopwords, sizeof k_stopwords / sizeof k_stopwords[0],
                 sizeof k_stopwords[0], stopword_cmp) != NULL;
}

static double norm_of(const float *v, uint32_t dim) {
  double n = 0;
  for (uint32_t j = 0; j < dim; j++) n += (double)v[j] * v[j];
  return n > 0 && isfinite(n) ? sqrt(n) : 0;
}

size_t syn_rank_feedback(const float *const *vecs, size_t n, uint32_t dim, float *out,
                         double *radius) {
  double *sum = dim ? calloc(dim, sizeof *sum) : NULL;
  size_t used = 0;
  *radius = 1.0;
  if (!sum) return 0;
  for (size_t i = 0; i < n; i++) {
    double len = vecs[i] ? norm_of(vecs[i], dim) : 0;
    if (len == 0) continue;
    for (uint32_t j = 0; j < dim; j++) sum[j] += vecs[i][j] / len;
    used++;
  }
  double total = 0;
  for (uint32_t j = 0; j < dim; j++) total += sum[j] * sum[j];
  if (used == 0 || !(total > 0)) {
    free(sum);
    return 0;
  }
  for (uint32_t j = 0; j < dim; j++) out[j] = (float)(sum[j] / sqrt(total));
  free(sum);
  for (size_t i = 0; i < n; i++) {
    double len = vecs[i] ? norm_of(vecs[i], dim) : 0;
    if (len == 0) continue;
    double dot = 0;
    for (uint32_t j = 0; j < dim; j++) dot += (double)vecs[i][j] * out[j];
    if (dot / len < *radius) *radius = dot / len;
  }
  return used;
}

static size_t rrf_find(const syn_rrf_item *items, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(items[i].key, key) == 0) return i;
  return n;
}

/* Adds one list; ranks are 1-based and a repeated key keeps its first (best) rank. */
static size_t rrf_add(syn_rrf_item *out, size_t n, size_t cap, const char *const *keys,
                      size_t nkeys, double k, bool vector) {
  for (size_t i = 0; i < nkeys; i++) {
    if (!keys[i]) continue;
    size_t at = rrf_find(out, n, keys[i]);
    uint32_t rank = (uint32_t)(i + 1);
    if (at == n) {
      if (n == cap) continue;
      out[n] = (syn_rrf_item){.key = keys[i]};
      n++;
    }
    uint32_t *slot = vector ? &out[at].rank_vector : &out[at].rank_keyword;
    if (*slot != 0) continue;
    *slot = rank;
    out[at].score += 1.0 / (k + (double)rank);
  }
  return n;
}

static uint32_t best_rank(const syn_rrf_item *it) {
  uint32_t a = it->rank_vector ? it->rank_vector : UINT32_MAX;
  uint32_t b = it->rank_keyword ? it->rank_keyword : UINT32_MAX;
  return a < b ? a : b;
}

static int rrf_cmp(const void *pa, const void *pb) {
  const syn_rrf_item *a = pa, *b = pb;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  uint32_t ra = best_rank(a), rb = best_rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  /* Then the words the user typed: the keyword list's order (a key absent from it last).
   * The vector list's order among equal similarities says nothing (a feedback vector is
   * the mean of the hits it came from, equally close to each of them). */
  uint32_t ka = a->rank_keyword ? a->rank_keyword : UINT32_MAX;
  uint32_t kb = b->rank_keyword ? b->rank_keyword : UINT32_MAX;
  if (ka != kb) return ka < kb ? -1 : 1;
  return strcmp(a->key, b->key);
}

size_t syn_rrf_fuse(const char *const *vector_keys, size_t nv, const char *const *keyword_keys,
                    size_t nk, double k, syn_rrf_item *out, size_t cap) {
  if (!(k > 0.0)) k = 60.0;
  size_t n = 0;
  if (vector_keys) n = rrf_add(out, n, cap, vector_keys, nv, k, true);
  if (keyword_keys) n = rrf_add(out, n, cap, keyword_keys, nk, k, false);
  qsort(out, n, sizeof *out, rrf_cmp);
  return n;
}
