/* Pure ranking helpers; see rank.h for the mappings and their reasons. */
#include "common/rank.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

double syn_sim_from_cosine(double cosine) {
  if (!(cosine > 0.0)) return 0.0; /* also maps NaN to 0 */
  return cosine > 1.0 ? 1.0 : cosine;
}

double syn_sim_from_bm25(double bm25) {
  double r = -bm25;
  if (!(r > 0.0)) return 0.0;
  return r / (1.0 + r);
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
