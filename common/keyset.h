/* A set of 20-byte keys (info_hashes as they name a swarm: a v2 hash truncated, as
 * common/shard_rules.h defines): open addressing with linear probing at a load of at most
 * one half, so a lookup touches one or two cache lines. Slots are placed by SipHash-2-4
 * (libsodium's crypto_shorthash) under a random key per set, so keys an outsider chooses
 * cannot be made to collide.
 *
 * Used by router/access.c (an immutable set built off to the side, then swapped in) and
 * node/registered.c (kept in step with writes, under the caller's lock). Not thread-safe:
 * callers serialise writers against readers. */
#ifndef SYN_COMMON_KEYSET_H
#define SYN_COMMON_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct syn_keyset {
  uint8_t (*keys)[20]; /* cap slots */
  uint8_t *used;       /* cap flags */
  size_t cap;          /* 0 or a power of two */
  size_t count;
  uint8_t seed[16];
} syn_keyset;

/* An empty set (allocates nothing until the first insert). */
void syn_keyset_init(syn_keyset *s);
void syn_keyset_free(syn_keyset *s);

/* 0 (added, or already there) or -ENOMEM. */
int syn_keyset_add(syn_keyset *s, const uint8_t key[20]);
/* Whether the key was there. */
bool syn_keyset_remove(syn_keyset *s, const uint8_t key[20]);
bool syn_keyset_contains(const syn_keyset *s, const uint8_t key[20]);

#endif
