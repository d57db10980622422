/* Percent-encoding (RFC 3986) of binary strings, and query-string iteration.
 *
 * BitTorrent puts raw 20-byte info_hash and peer_id values in query strings, so decoding
 * works on bytes, never on C strings: the decoded value may contain NUL. */
#ifndef SYN_COMMON_URLCODEC_H
#define SYN_COMMON_URLCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

typedef struct syn_span {
  const char *ptr;
  size_t len;
} syn_span;

/* Decodes `in` into `out` (capacity `cap`). '+' becomes a space; '%' must be followed by two
 * hex digits (either case). Returns the decoded length, or -EINVAL on a malformed escape, or
 * -ENOSPC when `cap` is too small, whichever is met first scanning left to right. Never
 * writes past `cap`; on error `out` holds a partial result. */
long syn_percent_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* Appends `data` percent-encoded: unreserved characters (ALPHA DIGIT - . _ ~) stay,
 * every other byte becomes %XX (upper-case hex). 0 or -ENOMEM. */
int syn_percent_encode(syn_buf *b, const void *data, size_t len);

/* Iterates `key=value` pairs separated by '&' (or ';'). Call with *cursor at the start
 * of the query (after '?'); returns true and fills key and value (still encoded) while
 * pairs remain, skipping empty ones. A pair without '=' has an empty value. */
bool syn_query_next(const char **cursor, const char *end, syn_span *key, syn_span *value);

/* Lower-case hex of `len` bytes into out (2*len+1 bytes, NUL-terminated). */
void syn_hex_encode(const uint8_t *data, size_t len, char *out);
/* Decodes exactly 2*len hex characters (either case). 0 or -EINVAL (wrong length or a
 * non-hex character; `out` may then be partly written). */
int syn_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t len);

#endif
