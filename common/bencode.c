/* Bencoding writer (BEP 3).
 *
 * Each call either appends its whole token or leaves the buffer as it was: room is reserved
 * before anything is written, so a caller that gets -ENOMEM can reset the buffer and answer
 * with an error without worrying about a half-written token. */
#include "common/bencode.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* "i" + 20 digits (INT64_MIN is "-9223372036854775808") + "e" + NUL. */
#define INT_TOKEN_MAX 24
/* A size_t length prefix: 20 digits + ':' + NUL. */
#define LEN_PREFIX_MAX 24

int syn_bencode_int(syn_buf *b, int64_t value) {
  char tmp[INT_TOKEN_MAX];
  int n = snprintf(tmp, sizeof tmp, "i%" PRId64 "e", value);
  return syn_buf_append(b, tmp, (size_t)n);
}

int syn_bencode_bytes(syn_buf *b, const void *data, size_t len) {
  char prefix[LEN_PREFIX_MAX];
  int n = snprintf(prefix, sizeof prefix, "%zu:", len);
  if (len > SIZE_MAX - (size_t)n) return -ENOMEM;
  int rc = syn_buf_reserve(b, (size_t)n + len);
  if (rc) return rc;
  syn_buf_append(b, prefix, (size_t)n); /* Cannot fail: reserved above. */
  return syn_buf_append(b, data, len);
}

int syn_bencode_str(syn_buf *b, const char *s) { return syn_bencode_bytes(b, s, strlen(s)); }

int syn_bencode_dict_begin(syn_buf *b) { return syn_buf_append_byte(b, 'd'); }

int syn_bencode_list_begin(syn_buf *b) { return syn_buf_append_byte(b, 'l'); }

int syn_bencode_end(syn_buf *b) { return syn_buf_append_byte(b, 'e'); }

int syn_bencode_failure(syn_buf *b, const char *reason) {
  static const char key[] = "d14:failure reason";
  size_t reason_len = strlen(reason);
  /* Reserve the whole reply so that it is appended entirely or not at all. */
  if (reason_len > SIZE_MAX - 64) return -ENOMEM;
  int rc = syn_buf_reserve(b, sizeof key - 1 + LEN_PREFIX_MAX + reason_len + 1);
  if (rc) return rc;
  syn_buf_append(b, key, sizeof key - 1);
  syn_bencode_bytes(b, reason, reason_len);
  return syn_bencode_end(b);
}
