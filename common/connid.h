/* Stateless UDP connection IDs (BEP 15), as design.md decision 5 describes.
 *
 * An ID is 32 bits of issue time (seconds) and 32 bits of a keyed MAC (SipHash-2-4 from
 * libsodium) over (time, client IP). Any router holding the same key accepts the IDs of
 * any other; nothing is stored per client. IDs are valid for SYN_CONNID_LIFETIME seconds;
 * IDs stamped in the future (beyond a small clock-skew allowance) are rejected. The MAC
 * comparison is constant-time. Pure functions: `now` is passed in. Thread-safe. */
#ifndef SYN_COMMON_CONNID_H
#define SYN_COMMON_CONNID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYN_CONNID_LIFETIME 120
#define SYN_CONNID_SKEW 5

typedef struct syn_connid_key {
  uint8_t bytes[16];
} syn_connid_key;

/* Derives the key from a shared secret string (any length; hashed). An empty secret
 * yields a random key, so IDs are then only valid on this process. */
void syn_connid_key_init(syn_connid_key *key, const char *secret);

/* `ip` is 4 or 16 bytes in network order. */
uint64_t syn_connid_make(const syn_connid_key *key, uint32_t now, const uint8_t *ip, size_t ip_len);
bool syn_connid_check(const syn_connid_key *key, uint64_t id, uint32_t now, const uint8_t *ip,
                      size_t ip_len);

#endif
