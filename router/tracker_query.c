#include "router/tracker_query.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bencode.h"
#include "common/urlcodec.h"

static bool key_is(const syn_span *k, const char *name) {
  size_t n = strlen(name);
  return k->len == n && memcmp(k->ptr, name, n) == 0;
}

/* Decimal without sign, at most 20 digits, no overflow. */
static bool parse_u64(const syn_span *v, uint64_t max, uint64_t *out) {
  if (v->len == 0 || v->len > 20) return false;
  uint64_t x = 0;
  for (size_t i = 0; i < v->len; i++) {
    char c = v->ptr[i];
    if (c < '0' || c > '9') return false;
    uint64_t d = (uint64_t)(c - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  if (x > max) return false;
  *out = x;
  return true;
}

static bool decode20(const syn_span *v, uint8_t out[20]) {
  uint8_t tmp[21];
  long n = syn_percent_decode(v->ptr, v->len, tmp, sizeof tmp);
  if (n != 20) return false;
  memcpy(out, tmp, 20);
  return true;
}

static const char *parse_event(const syn_span *v, int *event) {
  if (v->len == 0) *event = 0;
  else if (v->len == 7 && !memcmp(v->ptr, "started", 7)) *event = 2;
  else if (v->len == 7 && !memcmp(v->ptr, "stopped", 7)) *event = 3;
  else if (v->len == 9 && !memcmp(v->ptr, "completed", 9)) *event = 1;
  else if (v->len == 6 && !memcmp(v->ptr, "paused", 6)) *event = 0; /* BEP 21 */
  else return "invalid event";
  return NULL;
}

static const char *announce_field(const syn_span *k, const syn_span *v, syn_announce_query *q,
                                  unsigned *seen) {
  uint64_t x;
  if (key_is(k, "info_hash")) {
    if (!decode20(v, q->info_hash)) return "invalid info_hash: must be 20 bytes";
    *seen |= 1;
  } else if (key_is(k, "peer_id")) {
    if (!decode20(v, q->peer_id)) return "invalid peer_id: must be 20 bytes";
    *seen |= 2;
  } else if (key_is(k, "port")) {
    if (!parse_u64(v, 65535, &x) || x == 0) return "invalid port";
    q->port = (uint16_t)x;
    *seen |= 4;
  } else if (key_is(k, "uploaded")) {
    if (!parse_u64(v, INT64_MAX, &q->uploaded)) return "invalid uploaded";
  } else if (key_is(k, "downloaded")) {
    if (!parse_u64(v, INT64_MAX, &q->downloaded)) return "invalid downloaded";
  } else if (key_is(k, "left")) {
    if (!parse_u64(v, INT64_MAX, &q->left)) return "invalid left";
    *seen |= 8;
  } else if (key_is(k, "event")) {
    return parse_event(v, &q->event);
  } else if (key_is(k, "numwant")) {
    if (!parse_u64(v, 1u << 30, &x)) return "invalid numwant";
    q->numwant = (int32_t)x;
  } else if (key_is(k, "compact")) {
    q->compact = !(v->len == 1 && v->ptr[0] == '0');
  } else if (key_is(k, "no_peer_id")) {
    q->no_peer_id = !(v->len == 1 && v->ptr[0] == '0');
  }
  return NULL; /* unknown keys (key, trackerid, ip, supportcrypto, ...) are ignored */
}

const char *syn_announce_query_parse(const char *query, size_t len, syn_announce_query *q) {
  memset(q, 0, sizeof *q);
  q->numwant = -1;
  q->compact = true;
  unsigned seen = 0;
  const char *cursor = query;
  syn_span k, v;
  while (query && syn_query_next(&cursor, query + len, &k, &v)) {
    const char *err = announce_field(&k, &v, q, &seen);
    if (err) return err;
  }
  if (!(seen & 1)) return "missing info_hash";
  if (!(seen & 2)) return "missing peer_id";
  if (!(seen & 4)) return "missing port";
  if (!(seen & 8)) q->left = 1; /* unknown: treat as a leecher, never as a seeder */
  return NULL;
}

const char *syn_scrape_query_parse(const char *query, size_t len, syn_scrape_query *q) {
  q->count = 0;
  const char *cursor = query;
  syn_span k, v;
  while (query && syn_query_next(&cursor, query + len, &k, &v)) {
    if (!key_is(&k, "info_hash")) continue;
    if (q->count == SYN_SCRAPE_MAX_HASHES) return "too many info_hash values in one scrape";
    if (!decode20(&v, q->hashes[q->count])) return "invalid info_hash: must be 20 bytes";
    q->count++;
  }
  return NULL;
}

static int put_counts(syn_buf *out, const syn_announce_reply_view *r) {
  int rc = 0;
  rc |= syn_bencode_str(out, "complete");
  rc |= syn_bencode_int(out, r->complete);
  rc |= syn_bencode_str(out, "downloaded");
  rc |= syn_bencode_int(out, r->downloaded);
  rc |= syn_bencode_str(out, "incomplete");
  rc |= syn_bencode_int(out, r->incomplete);
  rc |= syn_bencode_str(out, "interval");
  rc |= syn_bencode_int(out, r->interval);
  rc |= syn_bencode_str(out, "min interval");
  rc |= syn_bencode_int(out, r->min_interval);
  return rc ? -ENOMEM : 0;
}

int syn_announce_reply_compact(syn_buf *out, const syn_announce_reply_view *r) {
  int rc = syn_bencode_dict_begin(out);
  rc |= put_counts(out, r);
  rc |= syn_bencode_str(out, "peers");
  rc |= syn_bencode_bytes(out, r->peers4, r->peers4_count * 6);
  if (r->peers6_count) {
    rc |= syn_bencode_str(out, "peers6");
    rc |= syn_bencode_bytes(out, r->peers6, r->peers6_count * 18);
  }
  rc |= syn_bencode_end(out);
  return rc ? -ENOMEM : 0;
}

static int put_peer_dict(syn_buf *out, int family, const uint8_t *addr, const uint8_t *id) {
  char ip[INET6_ADDRSTRLEN];
  size_t alen = family == AF_INET ? 4 : 16;
  inet_ntop(family, addr, ip, sizeof ip);
  uint16_t port = (uint16_t)(addr[alen] << 8 | addr[alen + 1]);
  int rc = syn_bencode_dict_begin(out);
  rc |= syn_bencode_str(out, "ip");
  rc |= syn_bencode_str(out, ip);
  if (id) {
    rc |= syn_bencode_str(out, "peer id");
    rc |= syn_bencode_bytes(out, id, 20);
  }
  rc |= syn_bencode_str(out, "port");
  rc |= syn_bencode_int(out, port);
  rc |= syn_bencode_end(out);
  return rc;
}

int syn_announce_reply_dict(syn_buf *out, const syn_announce_reply_view *r, bool no_peer_id) {
  int rc = syn_bencode_dict_begin(out);
  rc |= put_counts(out, r);
  rc |= syn_bencode_str(out, "peers");
  rc |= syn_bencode_list_begin(out);
  for (size_t i = 0; i < r->peers4_count; i++) {
    const uint8_t *id = (!no_peer_id && r->peer_ids4) ? r->peer_ids4 + 20 * i : NULL;
    rc |= put_peer_dict(out, AF_INET, r->peers4 + 6 * i, id);
  }
  for (size_t i = 0; i < r->peers6_count; i++) {
    const uint8_t *id = (!no_peer_id && r->peer_ids6) ? r->peer_ids6 + 20 * i : NULL;
    rc |= put_peer_dict(out, AF_INET6, r->peers6 + 18 * i, id);
  }
  rc |= syn_bencode_end(out);
  rc |= syn_bencode_end(out);
  return rc ? -ENOMEM : 0;
}

static int cmp_entry(const void *a, const void *b) { return memcmp(a, b, 20); }

static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int syn_scrape_reply(syn_buf *out, const uint8_t *entries, size_t count) {
  uint8_t *sorted = malloc(count ? count * 32 : 1);
  if (!sorted) return -ENOMEM;
  memcpy(sorted, entries, count * 32);
  qsort(sorted, count, 32, cmp_entry);
  int rc = syn_bencode_dict_begin(out);
  rc |= syn_bencode_str(out, "files");
  rc |= syn_bencode_dict_begin(out);
  for (size_t i = 0; i < count; i++) {
    const uint8_t *e = sorted + 32 * i;
    if (i > 0 && memcmp(e, e - 32, 20) == 0) continue;
    rc |= syn_bencode_bytes(out, e, 20);
    rc |= syn_bencode_dict_begin(out);
    rc |= syn_bencode_str(out, "complete");
    rc |= syn_bencode_int(out, get_be32(e + 20));
    rc |= syn_bencode_str(out, "downloaded");
    rc |= syn_bencode_int(out, get_be32(e + 24));
    rc |= syn_bencode_str(out, "incomplete");
    rc |= syn_bencode_int(out, get_be32(e + 28));
    rc |= syn_bencode_end(out);
  }
  rc |= syn_bencode_end(out);
  rc |= syn_bencode_end(out);
  free(sorted);
  return rc ? -ENOMEM : 0;
}
