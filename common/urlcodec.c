/* Percent-encoding, query-string iteration and hex, over bytes.
 *
 * Query strings come straight from the network, so every function works on (pointer, length)
 * and never reads past `len` or writes past `cap`; nothing relies on NUL termination of its
 * input. Decoding is strict: a '%' must be followed by two hex digits, because a lenient
 * decoder would hand two different info_hashes the same bytes. */
#include "common/urlcodec.h"

#include <errno.h>
#include <limits.h>

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

/* Value of one hex digit, or -1. */
static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long syn_percent_decode(const char *in, size_t len, uint8_t *out, size_t cap) {
  if (len > LONG_MAX) return -EINVAL;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = (uint8_t)in[i];
    if (c == '%') {
      if (len - i < 3) return -EINVAL;
      int hi = hex_value((unsigned char)in[i + 1]);
      int lo = hex_value((unsigned char)in[i + 2]);
      if (hi < 0 || lo < 0) return -EINVAL;
      c = (uint8_t)(hi << 4 | lo);
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (n == cap) return -ENOSPC;
    out[n++] = c;
  }
  return (long)n;
}

static int is_unreserved(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int syn_percent_encode(syn_buf *b, const void *data, size_t len) {
  /* Reserve the worst case up front so that the value is appended whole or not at all. */
  if (len > SIZE_MAX / 3) return -ENOMEM;
  int rc = syn_buf_reserve(b, len * 3);
  if (rc) return rc;
  const uint8_t *p = data;
  uint8_t *w = b->data + b->len;
  for (size_t i = 0; i < len; i++) {
    if (is_unreserved(p[i])) {
      *w++ = p[i];
      continue;
    }
    *w++ = '%';
    *w++ = (uint8_t)hex_upper[p[i] >> 4];
    *w++ = (uint8_t)hex_upper[p[i] & 15];
  }
  b->len = (size_t)(w - b->data);
  return 0;
}

static const char *find_separator(const char *p, const char *end) {
  while (p < end && *p != '&' && *p != ';') p++;
  return p;
}

bool syn_query_next(const char **cursor, const char *end, syn_span *key, syn_span *value) {
  const char *p = *cursor;
  while (p < end && (*p == '&' || *p == ';')) p++; /* Empty pairs: "a=1&&b=2". */
  if (p >= end) {
    *cursor = end;
    return false;
  }
  const char *stop = find_separator(p, end);
  const char *eq = p;
  while (eq < stop && *eq != '=') eq++;
  key->ptr = p;
  key->len = (size_t)(eq - p);
  value->ptr = eq < stop ? eq + 1 : stop;
  value->len = (size_t)(stop - value->ptr);
  *cursor = stop;
  return true;
}

void syn_hex_encode(const uint8_t *data, size_t len, char *out) {
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = hex_lower[data[i] >> 4];
    out[2 * i + 1] = hex_lower[data[i] & 15];
  }
  out[2 * len] = '\0';
}

int syn_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t len) {
  if (len > SIZE_MAX / 2 || hex_len != 2 * len) return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    int hi = hex_value((unsigned char)hex[2 * i]);
    int lo = hex_value((unsigned char)hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -EINVAL;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}
