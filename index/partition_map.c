/* See partition_map.h. */
#define _GNU_SOURCE
#include "index/partition_map.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct slot {
  int64_t label; /* 0 = empty */
  uint32_t partition;
} slot;

enum { COUNTED = 65536 }; /* partitions with a count (SYN_RING_MAX_PARTITIONS) */

struct syn_pmap {
  pthread_rwlock_t lock;
  slot *slots;
  size_t cap, n; /* cap: a power of two, or 0 */
  uint32_t *per; /* labels per partition, COUNTED entries */
};

static size_t home(const syn_pmap *m, int64_t label) {
  uint64_t x = (uint64_t)label * 0x9e3779b97f4a7c15ULL; /* Fibonacci hashing */
  return (size_t)(x >> 32) & (m->cap - 1);
}

syn_pmap *syn_pmap_new(void) {
  syn_pmap *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&m->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  if (!(m->per = calloc(COUNTED, sizeof *m->per))) {
    syn_pmap_free(m);
    return NULL;
  }
  return m;
}

void syn_pmap_free(syn_pmap *m) {
  if (!m) return;
  pthread_rwlock_destroy(&m->lock);
  free(m->slots);
  free(m->per);
  free(m);
}

static slot *find(const syn_pmap *m, int64_t label) {
  if (!m->cap) return NULL;
  for (size_t i = home(m, label);; i = (i + 1) & (m->cap - 1)) {
    if (m->slots[i].label == label) return &m->slots[i];
    if (m->slots[i].label == 0) return NULL;
  }
}

static void insert_fresh(syn_pmap *m, int64_t label, uint32_t partition) {
  size_t i = home(m, label);
  while (m->slots[i].label) i = (i + 1) & (m->cap - 1);
  m->slots[i] = (slot){label, partition};
  m->n++;
}

static int grow(syn_pmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  slot *old = m->slots;
  size_t old_cap = m->cap;
  if (!(m->slots = calloc(cap, sizeof *m->slots))) {
    m->slots = old;
    return -ENOMEM;
  }
  m->cap = cap;
  m->n = 0;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].label) insert_fresh(m, old[i].label, old[i].partition);
  free(old);
  return 0;
}

int syn_pmap_put(syn_pmap *m, int64_t label, uint32_t partition) {
  if (label <= 0 || partition >= COUNTED) return -EINVAL;
  pthread_rwlock_wrlock(&m->lock);
  int rc = 0;
  slot *s = find(m, label);
  if (s) {
    m->per[s->partition]--;
    s->partition = partition;
    m->per[partition]++;
  } else if ((m->n + 1) * 2 > m->cap && (rc = grow(m)) != 0) {
    ;
  } else {
    insert_fresh(m, label, partition);
    m->per[partition]++;
  }
  pthread_rwlock_unlock(&m->lock);
  return rc;
}

void syn_pmap_del(syn_pmap *m, int64_t label) {
  pthread_rwlock_wrlock(&m->lock);
  slot *s = find(m, label);
  if (s) {
    /* Backward-shift deletion: later entries of the run move into the hole when their
     * home is not between the hole and them, so lookups never need tombstones. */
    m->per[s->partition]--;
    size_t mask = m->cap - 1, hole = (size_t)(s - m->slots);
    for (size_t j = (hole + 1) & mask; m->slots[j].label; j = (j + 1) & mask) {
      size_t h = home(m, m->slots[j].label);
      bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (stays) continue;
      m->slots[hole] = m->slots[j];
      hole = j;
    }
    m->slots[hole].label = 0;
    m->n--;
  }
  pthread_rwlock_unlock(&m->lock);
}

void syn_pmap_read_begin(syn_pmap *m) { pthread_rwlock_rdlock(&m->lock); }
void syn_pmap_read_end(syn_pmap *m) { pthread_rwlock_unlock(&m->lock); }

bool syn_pmap_in(const syn_pmap *m, int64_t label, const uint8_t *parts, size_t bytes) {
  const slot *s = find(m, label);
  if (!s) return false;
  size_t byte = s->partition / 8;
  return byte < bytes && (parts[byte] >> (s->partition % 8)) & 1;
}

size_t syn_pmap_count_in(const syn_pmap *m, const uint8_t *parts, size_t bytes) {
  size_t n = 0;
  for (size_t i = 0; i < bytes && i * 8 < COUNTED; i++)
    for (uint8_t b = parts[i]; b; b &= (uint8_t)(b - 1))
      n += m->per[i * 8 + (size_t)__builtin_ctz(b)];
  return n;
}

size_t syn_pmap_count(syn_pmap *m) {
  pthread_rwlock_rdlock(&m->lock);
  size_t n = m->n;
  pthread_rwlock_unlock(&m->lock);
  return n;
}

size_t syn_pmap_bytes(syn_pmap *m) {
  pthread_rwlock_rdlock(&m->lock);
  size_t b = sizeof *m + m->cap * sizeof *m->slots + COUNTED * sizeof *m->per;
  pthread_rwlock_unlock(&m->lock);
  return b;
}
