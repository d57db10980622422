/* Cluster trust: seal and open nng message bodies with the shared cluster key.
 *
 * Design notes:
 * - The MAC is computed in one streaming pass (kind, bind, body, time, nonce): nothing is
 *   copied, and a batch of a thousand announces costs one pass over its bytes.
 * - Nonces are a random 64-bit base drawn once plus a per-process counter: unique per
 *   process without a getrandom call per message; with the time they make every request
 *   distinct, so binding a reply to its request's tag is binding it to that request.
 * - Refusals are counted in one atomic counter; the log line is rate-limited by a
 *   compare-and-swap on the time of the last line, so a flood of forged messages costs
 *   one line per 10 s, which says how many were refused meanwhile. */
#include "common/cluster_auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define LOG_EVERY_MS 10000
/* First byte 0: protobuf field number 0 is invalid, so a process without the key fails
 * to parse any sealed message (it cannot half-read one); then "SY" and the version. */
static const uint8_t MAGIC[4] = {0x00, 'S', 'Y', 0x01};

struct syn_cluster_auth {
  uint8_t keys[SYN_CLUSTER_KEYS_MAX][crypto_generichash_KEYBYTES]; /* keys[0] seals */
  size_t n_keys;
  uint64_t nonce_base;
  atomic_uint_fast64_t nonce_next;
  atomic_uint_fast64_t failures;
  atomic_uint_fast64_t logged_failures; /* failures counted at the last log line */
  atomic_uint_fast64_t last_log_ms;     /* monotonic; 0 = never */
};

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* The next key line of text at *pos: blanks around it trimmed, empty lines and lines
 * starting with '#' skipped. NULL when none is left. */
static const char *next_key(const char **pos, size_t *len) {
  const char *p = *pos;
  while (*p) {
    const char *end = strchr(p, '\n');
    if (!end) end = p + strlen(p);
    const char *next = *end ? end + 1 : end;
    while (p < end && isspace((unsigned char)*p)) p++;
    const char *e = end;
    while (e > p && isspace((unsigned char)e[-1])) e--;
    if (e > p && *p != '#') {
      *pos = next;
      *len = (size_t)(e - p);
      return p;
    }
    p = next;
  }
  *pos = p;
  return NULL;
}

int syn_cluster_key_check(const char *text, char *err, size_t err_len) {
  if (!text || !text[0]) return 0;
  size_t n, count = 0;
  const char *pos = text;
  while (next_key(&pos, &n)) {
    count++;
    if (n < SYN_CLUSTER_KEY_MIN) {
      snprintf(err, err_len,
               "cluster key %zu: %zu characters, at least %d needed (make one with `openssl "
               "rand -hex 32`)",
               count, n, SYN_CLUSTER_KEY_MIN);
      return -1;
    }
    if (n > SYN_CLUSTER_KEY_MAX) {
      snprintf(err, err_len, "cluster key %zu: %zu characters, at most %d", count, n,
               SYN_CLUSTER_KEY_MAX);
      return -1;
    }
  }
  if (count > SYN_CLUSTER_KEYS_MAX) {
    snprintf(err, err_len, "cluster key: %zu keys, at most %d (one a line)", count,
             SYN_CLUSTER_KEYS_MAX);
    return -1;
  }
  if (count == 0) {
    snprintf(err, err_len, "cluster key: only blank or comment lines");
    return -1;
  }
  return 0;
}

syn_cluster_auth *syn_cluster_auth_new(const char *text, char *err, size_t err_len) {
  if (!text || !text[0]) {
    snprintf(err, err_len, "cluster key: empty");
    return NULL;
  }
  if (syn_cluster_key_check(text, err, err_len)) return NULL;
  if (sodium_init() < 0) {
    snprintf(err, err_len, "cluster key: libsodium failed to initialise");
    return NULL;
  }
  syn_cluster_auth *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  static const uint8_t personal[crypto_generichash_blake2b_PERSONALBYTES] = "synapse-cluster";
  size_t n;
  const char *pos = text, *t;
  while ((t = next_key(&pos, &n)) && a->n_keys < SYN_CLUSTER_KEYS_MAX)
    crypto_generichash_blake2b_salt_personal(a->keys[a->n_keys++], crypto_generichash_KEYBYTES,
                                             (const uint8_t *)t, n, NULL, 0, NULL, personal);
  randombytes_buf(&a->nonce_base, sizeof a->nonce_base);
  return a;
}

void syn_cluster_auth_free(syn_cluster_auth *a) {
  if (!a) return;
  sodium_memzero(a->keys, sizeof a->keys);
  free(a);
}

uint64_t syn_cluster_auth_failures(const syn_cluster_auth *a) {
  return a ? atomic_load(&((syn_cluster_auth *)a)->failures) : 0;
}

static void compute_tag(const uint8_t key[crypto_generichash_KEYBYTES], syn_auth_kind kind,
                        const uint8_t *bind, const uint8_t *body, size_t len,
                        const uint8_t time_nonce[16], uint8_t tag[SYN_CLUSTER_AUTH_TAG]) {
  static const uint8_t no_bind[SYN_CLUSTER_AUTH_TAG];
  uint8_t k = (uint8_t)kind;
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, crypto_generichash_KEYBYTES, SYN_CLUSTER_AUTH_TAG);
  crypto_generichash_update(&st, &k, 1);
  crypto_generichash_update(&st, bind ? bind : no_bind, SYN_CLUSTER_AUTH_TAG);
  crypto_generichash_update(&st, body, len);
  crypto_generichash_update(&st, time_nonce, 16);
  crypto_generichash_final(&st, tag, SYN_CLUSTER_AUTH_TAG);
}

void syn_cluster_auth_seal_buf(const syn_cluster_auth *a, syn_auth_kind kind, const uint8_t *bind,
                               uint64_t now_ms, uint64_t nonce, const uint8_t *body, size_t len,
                               uint8_t trailer[SYN_CLUSTER_AUTH_OVERHEAD],
                               uint8_t tag[SYN_CLUSTER_AUTH_TAG]) {
  memcpy(trailer, MAGIC, 4);
  put_le64(trailer + 4, now_ms);
  put_le64(trailer + 12, nonce);
  compute_tag(a->keys[0], kind, bind, body, len, trailer + 4, trailer + 20);
  if (tag) memcpy(tag, trailer + 20, SYN_CLUSTER_AUTH_TAG);
}

int syn_cluster_auth_open_buf(const syn_cluster_auth *a, syn_auth_kind kind, const uint8_t *bind,
                              uint64_t now_ms, const uint8_t *msg, size_t len,
                              uint8_t tag[SYN_CLUSTER_AUTH_TAG]) {
  if (len < SYN_CLUSTER_AUTH_OVERHEAD) return -EBADMSG;
  size_t body_len = len - SYN_CLUSTER_AUTH_OVERHEAD;
  const uint8_t *trailer = msg + body_len;
  if (memcmp(trailer, MAGIC, 4) != 0) return -EBADMSG;
  /* The tag first: the time of a forged message says nothing worth logging. Each key in
   * turn, the sealing one first: more than one only while a key is being rotated. */
  uint8_t want[SYN_CLUSTER_AUTH_TAG];
  size_t k = 0;
  for (; k < a->n_keys; k++) {
    compute_tag(a->keys[k], kind, bind, msg, body_len, trailer + 4, want);
    if (crypto_verify_32(want, trailer + 20) == 0) break;
  }
  if (k == a->n_keys) return -EPERM;
  uint64_t sent = get_le64(trailer + 4);
  uint64_t skew = sent > now_ms ? sent - now_ms : now_ms - sent;
  if (skew > SYN_CLUSTER_AUTH_WINDOW_MS) return -ETIME;
  if (tag) memcpy(tag, want, SYN_CLUSTER_AUTH_TAG);
  return 0;
}

const char *syn_cluster_auth_strerror(int rc) {
  switch (rc) {
  case 0: return "ok";
  case -EBADMSG: return "no cluster MAC (the sender has no cluster key?)";
  case -EPERM: return "wrong cluster MAC (another cluster key, or altered)";
  case -ETIME: return "outside the replay window (a replay, or clocks more than 60 s apart)";
  default: return "unknown";
  }
}

int syn_cluster_auth_seal(syn_cluster_auth *a, nng_msg *msg, syn_auth_kind kind,
                          const uint8_t *bind, uint8_t tag[SYN_CLUSTER_AUTH_TAG]) {
  if (!a) {
    if (tag) memset(tag, 0, SYN_CLUSTER_AUTH_TAG);
    return 0;
  }
  uint8_t trailer[SYN_CLUSTER_AUTH_OVERHEAD];
  uint64_t nonce = a->nonce_base + atomic_fetch_add(&a->nonce_next, 1);
  syn_cluster_auth_seal_buf(a, kind, bind, wall_ms(), nonce, nng_msg_body(msg), nng_msg_len(msg),
                            trailer, tag);
  return nng_msg_append(msg, trailer, sizeof trailer) ? -ENOMEM : 0;
}

/* noinline: tests/lsan.supp names this function (see the header). */
__attribute__((noinline)) int syn_cluster_auth_sealed_msg(syn_cluster_auth *a, nng_msg **out,
                                                          const void *body, size_t len,
                                                          const void *tail, size_t tail_len,
                                                          syn_auth_kind kind, const uint8_t *bind,
                                                          uint8_t tag[SYN_CLUSTER_AUTH_TAG]) {
  *out = NULL;
  nng_msg *msg;
  /* Allocated at full size, then cut back: the appends below stay within the block. */
  if (nng_msg_alloc(&msg, len + tail_len + SYN_CLUSTER_AUTH_OVERHEAD)) return -ENOMEM;
  nng_msg_clear(msg);
  if (nng_msg_append(msg, body, len) || (tail_len && nng_msg_append(msg, tail, tail_len)) ||
      syn_cluster_auth_seal(a, msg, kind, bind, tag)) {
    nng_msg_free(msg);
    return -ENOMEM;
  }
  *out = msg;
  return 0;
}

static const char *kind_name(syn_auth_kind kind) {
  switch (kind) {
  case SYN_AUTH_GOSSIP_REQUEST: return "peer request";
  case SYN_AUTH_GOSSIP_REPLY: return "peer reply";
  case SYN_AUTH_BATCH_REQUEST: return "router batch";
  case SYN_AUTH_BATCH_REPLY: return "node reply";
  }
  return "message";
}

/* The sender's address, for the log line only. */
static void remote_addr(nng_msg *msg, char *out, size_t len) {
  nng_sockaddr sa;
  snprintf(out, len, "an unknown address");
  nng_pipe p = nng_msg_get_pipe(msg);
  if (nng_pipe_id(p) <= 0 || nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0) return;
  char ip[INET6_ADDRSTRLEN];
  if (sa.s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof ip))
    snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(sa.s_in.sa_port));
  else if (sa.s_family == NNG_AF_INET6 && inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof ip))
    snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(sa.s_in6.sa_port));
  else if (sa.s_family == NNG_AF_IPC)
    snprintf(out, len, "ipc://%s", sa.s_ipc.sa_path);
}

static void refused(syn_cluster_auth *a, nng_msg *msg, syn_auth_kind kind, int rc) {
  uint64_t total = atomic_fetch_add(&a->failures, 1) + 1;
  uint64_t now = mono_ms(), last = atomic_load(&a->last_log_ms);
  if (last && now - last < LOG_EVERY_MS) return;
  if (!atomic_compare_exchange_strong(&a->last_log_ms, &last, now)) return;
  uint64_t since = total - atomic_exchange(&a->logged_failures, total);
  char from[160]; /* an ipc path is up to 128 bytes */
  remote_addr(msg, from, sizeof from);
  syn_warn(
      "cluster: dropped a %s from %s: %s (%llu refused since the last such line, %llu in "
      "all)",
      kind_name(kind), from, syn_cluster_auth_strerror(rc), (unsigned long long)since,
      (unsigned long long)total);
}

int syn_cluster_auth_open(syn_cluster_auth *a, nng_msg *msg, syn_auth_kind kind,
                          const uint8_t *bind, uint8_t tag[SYN_CLUSTER_AUTH_TAG]) {
  if (!a) return 0;
  int rc =
      syn_cluster_auth_open_buf(a, kind, bind, wall_ms(), nng_msg_body(msg), nng_msg_len(msg), tag);
  if (rc) {
    refused(a, msg, kind, rc);
    return rc;
  }
  nng_msg_chop(msg, SYN_CLUSTER_AUTH_OVERHEAD);
  return 0;
}
