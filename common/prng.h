/* A fast, non-cryptographic pseudo-random generator: xorshift64* (Vigna, "An
 * experimental exploration of Marsaglia's xorshift generators, scrambled", 2016).
 *
 * For choices that need spread, not secrecy: which peers an announce is handed, the
 * jitter of the interval a client is told, which member gossip probes next. The caller
 * owns the 64-bit state (never 0; seed it once from a real random source) and keeps it to
 * one thread or under its own lock. Secrets (keys, connection IDs, nonces) come from
 * libsodium instead. */
#ifndef SYN_COMMON_PRNG_H
#define SYN_COMMON_PRNG_H

#include <stdint.h>

static inline uint64_t syn_prng_next(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform-enough value in [0, n) from the high half of a word (Lemire's multiply-shift,
 * without the rejection step: a bias of n / 2^32 at most). */
static inline uint32_t syn_prng_below(uint64_t *state, uint32_t n) {
  return (uint32_t)(((syn_prng_next(state) >> 32) * (uint64_t)n) >> 32);
}

#endif
