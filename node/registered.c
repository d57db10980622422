/* Striped key sets: the stripe is chosen by one byte of the key, the slot inside it by
 * the set's keyed hash (common/keyset.h), so chosen keys crowd neither. */
#include "node/registered.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyset.h"
#include "common/shard_rules.h"

#define STRIPES 16

typedef struct stripe {
  pthread_rwlock_t lock;
  syn_keyset keys;
} stripe;

struct syn_registered {
  stripe s[STRIPES];
};

static stripe *stripe_of(syn_registered *r, const uint8_t key[20]) {
  return &r->s[key[19] % STRIPES];
}

static void put(syn_registered *r, const uint8_t key[20], bool registered) {
  stripe *s = stripe_of(r, key);
  pthread_rwlock_wrlock(&s->lock);
  if (registered)
    syn_keyset_add(&s->keys, key); /* -ENOMEM: the key stays refused */
  else
    syn_keyset_remove(&s->keys, key);
  pthread_rwlock_unlock(&s->lock);
}

void syn_registered_note(syn_registered *r, const char *hex, bool registered) {
  char norm[65];
  uint8_t key[20];
  if (!r || !hex || syn_info_hash_parse(hex, strlen(hex), norm, key)) return;
  put(r, key, registered);
}

bool syn_registered_has(syn_registered *r, const uint8_t key[20]) {
  if (!r) return true;
  stripe *s = stripe_of(r, key);
  pthread_rwlock_rdlock(&s->lock);
  bool has = syn_keyset_contains(&s->keys, key);
  pthread_rwlock_unlock(&s->lock);
  return has;
}

size_t syn_registered_count(syn_registered *r) {
  size_t n = 0;
  for (int i = 0; r && i < STRIPES; i++) {
    pthread_rwlock_rdlock(&r->s[i].lock);
    n += r->s[i].keys.count;
    pthread_rwlock_unlock(&r->s[i].lock);
  }
  return n;
}

void syn_registered_free(syn_registered *r) {
  if (!r) return;
  for (int i = 0; i < STRIPES; i++) {
    pthread_rwlock_destroy(&r->s[i].lock);
    syn_keyset_free(&r->s[i].keys);
  }
  free(r);
}

syn_registered *syn_registered_new(void) {
  syn_registered *r = calloc(1, sizeof *r);
  for (int i = 0; r && i < STRIPES; i++) {
    pthread_rwlock_init(&r->s[i].lock, NULL);
    syn_keyset_init(&r->s[i].keys);
  }
  return r;
}

syn_registered *syn_registered_open(syn_index *idx, char *err, size_t err_len) {
  syn_registered *r = syn_registered_new();
  if (!r) {
    snprintf(err, err_len, "registered_only: out of memory");
    return NULL;
  }
  uint32_t total = syn_index_partitions(idx) * syn_index_buckets(idx);
  /* A bucket's digest is the XOR of its rows' digests (index/shard_store.h): zero for an
   * empty bucket, so those are skipped (a non-empty one XORs to zero with odds 2^-64). A
   * fresh or small store then costs a few queries instead of one per bucket. */
  uint64_t *digests = malloc((size_t)total * sizeof *digests);
  if (!digests) {
    snprintf(err, err_len, "registered_only: out of memory");
    syn_registered_free(r);
    return NULL;
  }
  syn_index_digests(idx, digests);
  syn_key_version *keys = NULL;
  size_t cap = 0;
  for (uint32_t b = 0; b < total; b++) {
    size_t n = 0;
    if (digests[b] == 0) continue;
    if (syn_index_bucket_keys(idx, b, &keys, &n, &cap)) {
      snprintf(err, err_len, "registered_only: cannot list the shards (bucket %u)", b);
      free(keys);
      free(digests);
      syn_registered_free(r);
      return NULL;
    }
    for (size_t i = 0; i < n; i++)
      if (!keys[i].deleted) syn_registered_note(r, keys[i].info_hash, true);
  }
  free(digests);
  free(keys);
  return r;
}
