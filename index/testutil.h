/* Test helpers shared by the index tests (header-only, static): a deterministic PRNG,
 * clustered unit vectors (real embeddings cluster by topic; uniform noise would flatter
 * or ruin approximate indexes alike), brute-force top-k, recall, and temporary
 * directories. Not part of the library. */
#ifndef SYN_INDEX_TESTUTIL_H
#define SYN_INDEX_TESTUTIL_H

#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct tu_rng {
  uint64_t s;
} tu_rng;

static inline uint64_t tu_next(tu_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1DULL;
}

static inline double tu_uniform(tu_rng *r) {
  return (double)(tu_next(r) >> 11) / 9007199254740992.0;
}

static inline double tu_gauss(tu_rng *r) {
  double u = tu_uniform(r), v = tu_uniform(r);
  if (u < 1e-300) u = 1e-300;
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static inline void tu_normalise(float *v, uint32_t d) {
  double s = 0;
  for (uint32_t i = 0; i < d; i++) s += (double)v[i] * v[i];
  double inv = 1.0 / sqrt(s);
  for (uint32_t i = 0; i < d; i++) v[i] = (float)(v[i] * inv);
}

/* n unit vectors of dimension d around `clusters` random centres; spread is the noise
 * per coordinate relative to a unit centre (0.6: clusters overlap like topics do). */
static inline float *tu_clustered(uint64_t seed, size_t n, uint32_t d, uint32_t clusters,
                                  double spread) {
  tu_rng r = {seed * 0x9E3779B97F4A7C15ULL + 1};
  float *centres = malloc(sizeof(float) * clusters * d), *x = malloc(sizeof(float) * n * d);
  for (size_t i = 0; i < (size_t)clusters * d; i++) centres[i] = (float)tu_gauss(&r);
  for (uint32_t c = 0; c < clusters; c++) tu_normalise(centres + (size_t)c * d, d);
  double sigma = spread / sqrt((double)d);
  for (size_t i = 0; i < n; i++) {
    const float *c = centres + (tu_next(&r) % clusters) * d;
    for (uint32_t j = 0; j < d; j++) x[i * d + j] = (float)(c[j] + sigma * tu_gauss(&r));
    tu_normalise(x + i * d, d);
  }
  free(centres);
  return x;
}

static inline float tu_dot(const float *a, const float *b, uint32_t d) {
  double s = 0;
  for (uint32_t i = 0; i < d; i++) s += (double)a[i] * b[i];
  return (float)s;
}

/* Exact top-k (by inner product) of q among the rows of x whose keep[i] is nonzero
 * (keep may be NULL); writes row indexes into out, best first; returns the count. */
static inline size_t tu_topk(const float *x, size_t n, uint32_t d, const float *q,
                             const unsigned char *keep, size_t k, size_t *out) {
  float *best = malloc(sizeof(float) * (k + 1));
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (keep && !keep[i]) continue;
    float s = tu_dot(x + i * d, q, d);
    if (m == k && s <= best[m - 1]) continue;
    size_t j = m < k ? m++ : k - 1;
    while (j > 0 && best[j - 1] < s) {
      best[j] = best[j - 1];
      out[j] = out[j - 1];
      j--;
    }
    best[j] = s;
    out[j] = i;
  }
  free(best);
  return m;
}

/* |found ∩ truth| / |truth| for int64 labels. */
static inline double tu_recall(const int64_t *found, size_t nf, const int64_t *truth, size_t nt) {
  if (nt == 0) return 1.0;
  size_t hit = 0;
  for (size_t i = 0; i < nt; i++)
    for (size_t j = 0; j < nf; j++)
      if (truth[i] == found[j]) {
        hit++;
        break;
      }
  return (double)hit / (double)nt;
}

static inline char *tu_tempdir(const char *tag) {
  char tmpl[256];
  const char *base = getenv("TMPDIR");
  snprintf(tmpl, sizeof tmpl, "%s/syn-%s-XXXXXX", base ? base : "/tmp", tag);
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static inline void tu_rmrf(const char *dir) {
  if (!dir || strncmp(dir, "/tmp/", 5) != 0 || strstr(dir, "..")) return;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static inline double tu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
