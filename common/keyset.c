/* Linear probing with backward-shift deletion (no tombstones, so a set that sees many
 * removes never degrades), doubling when more than half full. */
#include "common/keyset.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 16

void syn_keyset_init(syn_keyset *s) {
  memset(s, 0, sizeof *s);
  randombytes_buf(s->seed, sizeof s->seed);
}

void syn_keyset_free(syn_keyset *s) {
  free(s->keys);
  free(s->used);
  s->keys = NULL;
  s->used = NULL;
  s->cap = s->count = 0;
}

static size_t slot_of(const syn_keyset *s, const uint8_t key[20]) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, key, 20, s->seed);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return (size_t)v & (s->cap - 1);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const syn_keyset *s, const uint8_t key[20]) {
  size_t i = slot_of(s, key);
  while (s->used[i] && memcmp(s->keys[i], key, 20) != 0) i = (i + 1) & (s->cap - 1);
  return i;
}

static int grow(syn_keyset *s) {
  size_t ncap = s->cap ? s->cap * 2 : MIN_CAP;
  syn_keyset n = {.cap = ncap};
  memcpy(n.seed, s->seed, sizeof n.seed);
  n.keys = malloc(ncap * sizeof *n.keys);
  n.used = calloc(ncap, 1);
  if (!n.keys || !n.used) {
    free(n.keys);
    free(n.used);
    return -ENOMEM;
  }
  for (size_t i = 0; i < s->cap; i++) {
    if (!s->used[i]) continue;
    size_t j = find(&n, s->keys[i]);
    memcpy(n.keys[j], s->keys[i], 20);
    n.used[j] = 1;
  }
  n.count = s->count;
  syn_keyset_free(s);
  *s = n;
  return 0;
}

int syn_keyset_add(syn_keyset *s, const uint8_t key[20]) {
  if ((s->count + 1) * 2 > s->cap && grow(s)) return -ENOMEM;
  size_t i = find(s, key);
  if (s->used[i]) return 0;
  memcpy(s->keys[i], key, 20);
  s->used[i] = 1;
  s->count++;
  return 0;
}

bool syn_keyset_contains(const syn_keyset *s, const uint8_t key[20]) {
  return s->cap && s->used[find(s, key)];
}

bool syn_keyset_remove(syn_keyset *s, const uint8_t key[20]) {
  if (!s->cap) return false;
  size_t mask = s->cap - 1, i = find(s, key);
  if (!s->used[i]) return false;
  /* Shift later members of the run back over the hole when their home slot allows it. */
  for (size_t j = (i + 1) & mask; s->used[j]; j = (j + 1) & mask) {
    size_t home = slot_of(s, s->keys[j]);
    bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
    if (!movable) continue;
    memcpy(s->keys[i], s->keys[j], 20);
    i = j;
  }
  s->used[i] = 0;
  s->count--;
  return true;
}
