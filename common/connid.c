/* Stateless BEP 15 connection IDs.
 *
 * id = time (32 bits) << 32 | first 4 bytes of SipHash-2-4(key, be32(time) || ip).
 * A 32-bit MAC is enough here: an ID only proves that the client received our connect reply
 * at that address within the last two minutes (anti-spoofing, as BEP 15 intends), and a
 * forger gets one guess per packet. IPv4 and IPv6 hash messages of different lengths, and
 * SipHash binds the length, so the same bytes can never validate for both families. */
#include "common/connid.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Reads a stored secret (trailing blanks dropped). 0, or -1 when missing or unusable. */
static int read_secret(const char *path, char *out, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, out, cap - 1);
  close(fd);
  if (n <= 0) return -1;
  out[n] = '\0';
  while (n && isspace((unsigned char)out[n - 1])) out[--n] = '\0';
  return n >= 16 && strlen(out) == (size_t)n ? 0 : -1;
}

/* Creates the secret file once: written to a temporary name, fsynced, then linked into
 * place, so a concurrent start (or a crash) never leaves a half-written key; when another
 * process won the race, its key is used. */
static int create_secret(const char *path, char *out, size_t cap) {
  uint8_t raw[32];
  randombytes_buf(raw, sizeof raw);
  if (cap < 2 * sizeof raw + 1) return -1;
  sodium_bin2hex(out, cap, raw, sizeof raw);
  sodium_memzero(raw, sizeof raw);
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) return -1;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t len = strlen(out);
  bool ok = write(fd, out, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
  close(fd);
  int rc = ok && link(tmp, path) == 0 ? 0 : -1;
  bool raced = !rc ? false : errno == EEXIST;
  unlink(tmp);
  if (rc && raced) return read_secret(path, out, cap) == 0 ? 1 : -1;
  return rc;
}

syn_connid_source syn_connid_key_setup(syn_connid_key *key, const char *secret,
                                       const char *data_dir) {
  if (secret && *secret) {
    syn_connid_key_init(key, secret);
    syn_info("udp: connection-ID key from the configured secret");
    return SYN_CONNID_CONFIGURED;
  }
  char path[PATH_MAX], text[128];
  syn_connid_source src = SYN_CONNID_EPHEMERAL;
  if (data_dir && *data_dir &&
      snprintf(path, sizeof path, "%s/%s", data_dir, SYN_CONNID_SECRET_FILE) < (int)sizeof path) {
    if (read_secret(path, text, sizeof text) == 0) {
      src = SYN_CONNID_STORED;
    } else if (access(path, F_OK) == 0) {
      syn_warn("udp: %s is unreadable or shorter than 16 characters: it is left alone", path);
    } else {
      int rc = create_secret(path, text, sizeof text);
      src = rc == 0 ? SYN_CONNID_GENERATED : rc == 1 ? SYN_CONNID_STORED : SYN_CONNID_EPHEMERAL;
    }
  }
  if (src == SYN_CONNID_EPHEMERAL) {
    syn_connid_key_init(key, "");
    syn_warn(
        "udp: no udp_secret and no usable data directory: connection IDs are valid for "
        "this process only (clients connect again after a restart)");
    return src;
  }
  syn_connid_key_init(key, text);
  sodium_memzero(text, sizeof text);
  syn_info("udp: connection-ID key %s %s (set server.udp_secret to share one between routers)",
           src == SYN_CONNID_GENERATED ? "generated into" : "from", path);
  return src;
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
