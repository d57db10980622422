/* Stateless BEP 15 connection IDs.
 *
 * id = time (32 bits) << 32 | first 4 bytes of SipHash-2-4(key, be32(time) || ip).
 * A 32-bit MAC is enough here: an ID only proves that the client received our connect reply
 * at that address within the last two minutes (anti-spoofing, as BEP 15 intends), and a
 * forger gets one guess per packet. IPv4 and IPv6 hash messages of different lengths, and
 * SipHash binds the length, so the same bytes can never validate for both families. */
#include "common/connid.h"

#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

_Static_assert(sizeof(((syn_connid_key *)0)->bytes) == crypto_shorthash_KEYBYTES,
               "connid key must be a SipHash key");
_Static_assert(crypto_generichash_BYTES_MIN <= 16, "generichash cannot produce 16 bytes");

#define MAC_INPUT_MAX (4 + 16)

static void sodium_ready(void) {
  /* Idempotent and thread-safe; fails only when no randomness source exists, and then no
   * key can be trusted, so stop. */
  if (sodium_init() < 0) {
    syn_error("connid: libsodium failed to initialise");
    abort();
  }
}

void syn_connid_key_init(syn_connid_key *key, const char *secret) {
  sodium_ready();
  if (!secret || !*secret) {
    randombytes_buf(key->bytes, sizeof key->bytes);
    return;
  }
  crypto_generichash(key->bytes, sizeof key->bytes, (const unsigned char *)secret, strlen(secret),
                     NULL, 0);
}

/* The 4 MAC bytes for (time, ip). `ip_len` is 4 or 16. */
static void connid_mac(const syn_connid_key *key, uint32_t time, const uint8_t *ip, size_t ip_len,
                       uint8_t mac[4]) {
  uint8_t msg[MAC_INPUT_MAX];
  msg[0] = (uint8_t)(time >> 24);
  msg[1] = (uint8_t)(time >> 16);
  msg[2] = (uint8_t)(time >> 8);
  msg[3] = (uint8_t)time;
  memcpy(msg + 4, ip, ip_len);
  uint8_t full[crypto_shorthash_BYTES];
  crypto_shorthash(full, msg, 4 + ip_len, key->bytes);
  memcpy(mac, full, 4);
}

static uint32_t load_be32(const uint8_t p[4]) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t syn_connid_make(const syn_connid_key *key, uint32_t now, const uint8_t *ip,
                         size_t ip_len) {
  assert(ip_len == 4 || ip_len == 16);
  uint8_t mac[4];
  connid_mac(key, now, ip, ip_len, mac);
  return (uint64_t)now << 32 | load_be32(mac);
}

bool syn_connid_check(const syn_connid_key *key, uint64_t id, uint32_t now, const uint8_t *ip,
                      size_t ip_len) {
  if (ip_len != 4 && ip_len != 16) return false;
  uint32_t issued = (uint32_t)(id >> 32);
  /* 64-bit arithmetic: neither bound may wrap around near 2^32. */
  if ((uint64_t)issued > (uint64_t)now + SYN_CONNID_SKEW) return false;
  if (issued < now && now - issued > SYN_CONNID_LIFETIME) return false;
  uint8_t want[4], got[4];
  connid_mac(key, issued, ip, ip_len, want);
  uint32_t low = (uint32_t)id;
  got[0] = (uint8_t)(low >> 24);
  got[1] = (uint8_t)(low >> 16);
  got[2] = (uint8_t)(low >> 8);
  got[3] = (uint8_t)low;
  return sodium_memcmp(want, got, 4) == 0;
}
