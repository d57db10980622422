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

/* Where a router's key comes from, in order: a configured secret (server.udp_secret, its
 * file server.udp_secret_file, or SYNAPSE_UDP_SECRET: the same text on every router makes
 * them accept each other's IDs); else <data_dir>/udp_secret, a random secret written there
 * on the first start (mode 0600, 64 hex characters: a valid udp_secret to copy to other
 * routers), so IDs handed out before a restart are still accepted after it. When that file
 * can be neither read nor created (no data directory, a read-only one), the key is random
 * for this process only: after a restart clients' IDs fail once and each client connects
 * again (one round trip, as BEP 15 clients do on any error). Logs which source it used.
 * Returns the source. Main thread, at start; blocks on the file system. */
#define SYN_CONNID_SECRET_FILE "udp_secret"
typedef enum syn_connid_source {
  SYN_CONNID_CONFIGURED = 0,
  SYN_CONNID_STORED,    /* read from the data directory */
  SYN_CONNID_GENERATED, /* created in the data directory just now */
  SYN_CONNID_EPHEMERAL, /* random, this process only */
} syn_connid_source;
syn_connid_source syn_connid_key_setup(syn_connid_key *key, const char *secret,
                                       const char *data_dir);

/* `ip` is 4 or 16 bytes in network order. */
uint64_t syn_connid_make(const syn_connid_key *key, uint32_t now, const uint8_t *ip, size_t ip_len);
bool syn_connid_check(const syn_connid_key *key, uint64_t id, uint32_t now, const uint8_t *ip,
                      size_t ip_len);

#endif
