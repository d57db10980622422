/* Limits per client address. Design notes:
 *
 * - Tokens are kept in thousandths so that a rate of r per second adds exactly r per
 *   millisecond: no floating point, no drift.
 * - One timestamp per entry refills every class at once; four classes cost four
 *   multiplications, cheaper than a timestamp per class would be in memory.
 * - Keys are SipHash (libsodium's crypto_shorthash) of the client's address or /64: a
 *   64-bit key stands for the address, so an entry is 32 bytes. Two clients sharing a key
 *   by chance (about 2^-64 per pair) would share their limits, nothing worse. */
#include "router/client_limits.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4
#define MILLI 1000u

const char *syn_limit_class_name(syn_limit_class c) {
  switch (c) {
  case SYN_LIMIT_ANNOUNCE: return "announce";
  case SYN_LIMIT_SCRAPE: return "scrape";
  case SYN_LIMIT_API_READ: return "api_read";
  case SYN_LIMIT_API_WRITE: return "api_write";
  default: return "unknown";
  }
}

uint64_t syn_client_key(const uint8_t hash_key[16], const uint8_t *ip, size_t ip_len) {
  uint8_t in[9] = {0};
  size_t n = 4;
  if (ip_len == 16) { /* the /64 prefix, tagged so it never equals an IPv4 key */
    memcpy(in, ip, 8);
    in[8] = 6;
    n = 9;
  } else {
    memcpy(in, ip, 4);
  }
  uint64_t out;
  crypto_shorthash((unsigned char *)&out, in, n, hash_key);
  return out | 1; /* 0 marks a free entry */
}

/* ---- request rates ---- */

typedef struct rate_entry {
  uint64_t key;     /* 0 = free */
  uint64_t seen_ms; /* last refill */
  uint32_t tokens[SYN_LIMIT_CLASSES]; /* thousandths of a request */
} rate_entry;

struct syn_rate_table {
  size_t sets;
  uint64_t evictions;
  syn_rate_rule rules[SYN_LIMIT_CLASSES];
  uint8_t hash_key[16];
  rate_entry *entries; /* sets * WAYS */
};

syn_rate_table *syn_rate_table_new(size_t entries, const syn_rate_rule rules[SYN_LIMIT_CLASSES]) {
  if (sodium_init() < 0) return NULL;
  syn_rate_table *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->sets = entries < WAYS ? 1 : (entries + WAYS - 1) / WAYS;
  t->entries = calloc(t->sets * WAYS, sizeof *t->entries);
  if (!t->entries) {
    free(t);
    return NULL;
  }
  memcpy(t->rules, rules, sizeof t->rules);
  randombytes_buf(t->hash_key, sizeof t->hash_key);
  return t;
}

void syn_rate_table_free(syn_rate_table *t) {
  if (!t) return;
  free(t->entries);
  free(t);
}

static void fill(const syn_rate_table *t, rate_entry *e) {
  for (int c = 0; c < SYN_LIMIT_CLASSES; c++) e->tokens[c] = t->rules[c].burst * MILLI;
}

static void refill(const syn_rate_table *t, rate_entry *e, uint64_t now_ms) {
  if (now_ms <= e->seen_ms) return;
  uint64_t elapsed = now_ms - e->seen_ms;
  e->seen_ms = now_ms;
  for (int c = 0; c < SYN_LIMIT_CLASSES; c++) {
    uint64_t cap = (uint64_t)t->rules[c].burst * MILLI;
    uint64_t v = e->tokens[c] + elapsed * t->rules[c].per_second;
    e->tokens[c] = (uint32_t)(v > cap ? cap : v);
  }
}

/* The client's entry: found, or a free or least recently seen one of its set taken. */
static rate_entry *entry_for(syn_rate_table *t, uint64_t key, uint64_t now_ms) {
  rate_entry *set = &t->entries[(key >> 2) % t->sets * WAYS];
  rate_entry *victim = &set[0];
  for (int i = 0; i < WAYS; i++) {
    if (set[i].key == key) return &set[i];
    if (set[i].key == 0 || set[i].seen_ms < victim->seen_ms) victim = &set[i];
    if (set[i].key == 0) break;
  }
  if (victim->key) t->evictions++;
  victim->key = key;
  victim->seen_ms = now_ms;
  fill(t, victim);
  return victim;
}

bool syn_rate_take(syn_rate_table *t, syn_limit_class cls, const uint8_t *ip, size_t ip_len,
                   uint64_t now_ms) {
  if (cls >= SYN_LIMIT_CLASSES || t->rules[cls].per_second == 0) return true;
  rate_entry *e = entry_for(t, syn_client_key(t->hash_key, ip, ip_len), now_ms);
  refill(t, e, now_ms);
  if (e->tokens[cls] < MILLI) return false;
  e->tokens[cls] -= MILLI;
  return true;
}

uint32_t syn_rate_retry_after(const syn_rate_table *t, syn_limit_class cls) {
  uint32_t rate = cls < SYN_LIMIT_CLASSES ? t->rules[cls].per_second : 0;
  return rate >= 1 ? 1 : 60;
}

size_t syn_rate_table_entries(const syn_rate_table *t) { return t->sets * WAYS; }
uint64_t syn_rate_table_evictions(const syn_rate_table *t) { return t->evictions; }

/* ---- open connections ---- */

typedef struct conn_entry {
  uint64_t key;
  uint32_t open;
  struct conn_entry *next;
} conn_entry;

struct syn_conn_table {
  size_t buckets; /* a power of two */
  size_t clients;
  uint8_t hash_key[16];
  conn_entry **heads;
};

syn_conn_table *syn_conn_table_new(size_t expected) {
  if (sodium_init() < 0) return NULL;
  syn_conn_table *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->buckets = 16;
  while (t->buckets < expected && t->buckets < ((size_t)1 << 24)) t->buckets <<= 1;
  t->heads = calloc(t->buckets, sizeof *t->heads);
  if (!t->heads) {
    free(t);
    return NULL;
  }
  randombytes_buf(t->hash_key, sizeof t->hash_key);
  return t;
}

void syn_conn_table_free(syn_conn_table *t) {
  if (!t) return;
  for (size_t i = 0; i < t->buckets; i++) {
    for (conn_entry *e = t->heads[i], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  }
  free(t->heads);
  free(t);
}

static conn_entry **conn_slot(syn_conn_table *t, uint64_t key) {
  conn_entry **p = &t->heads[(key >> 1) & (t->buckets - 1)];
  while (*p && (*p)->key != key) p = &(*p)->next;
  return p;
}

bool syn_conn_acquire(syn_conn_table *t, const uint8_t *ip, size_t ip_len, uint32_t max) {
  uint64_t key = syn_client_key(t->hash_key, ip, ip_len);
  conn_entry **p = conn_slot(t, key);
  if (*p) {
    if ((*p)->open >= max) return false;
    (*p)->open++;
    return true;
  }
  if (max == 0) return false;
  conn_entry *e = malloc(sizeof *e);
  if (!e) return false;
  *e = (conn_entry){key, 1, NULL};
  *p = e;
  t->clients++;
  return true;
}

void syn_conn_release(syn_conn_table *t, const uint8_t *ip, size_t ip_len) {
  conn_entry **p = conn_slot(t, syn_client_key(t->hash_key, ip, ip_len));
  conn_entry *e = *p;
  if (!e) return;
  if (--e->open) return;
  *p = e->next;
  free(e);
  t->clients--;
}

size_t syn_conn_table_clients(const syn_conn_table *t) { return t->clients; }
