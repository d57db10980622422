/* Pure ranking helpers; see rank.h for the mappings and their reasons. */
#include "index/rank.h"

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

int syn_model_key(const char *model, char *out, size_t cap) {
  if (!model || !out || cap == 0) return -EINVAL;
  const char *b = model, *e = model + strlen(model);
  while (b < e && (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')) b++;
  while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) e--;
  for (const char *p = b; p < e; p++)
    if (*p == '/') b = p + 1;
  static const char latest[] = ":latest";
  size_t ll = sizeof latest - 1;
  if ((size_t)(e - b) > ll && strncasecmp(e - ll, latest, ll) == 0) e -= ll;
  size_t n = (size_t)(e - b);
  if (n == 0) return -EINVAL;
  if (n + 1 > cap) return -ENAMETOOLONG;
  for (size_t i = 0; i < n; i++) {
    char c = b[i];
    out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  out[n] = '\0';
  return 0;
}

int syn_info_hash_normalize(const char *in, char out[65]) {
  if (!in) return -EINVAL;
  size_t n = strlen(in);
  if (n != 40 && n != 64) return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -EINVAL;
    out[i] = c;
  }
  out[n] = '\0';
  return 0;
}
