/* Growable byte buffer used to build replies (bencode, JSON, packets).
 *
 * Owns its heap block; the holder frees it with syn_buf_free. Appends grow the block
 * geometrically and fail with -ENOMEM rather than abort, so a reply that cannot be built
 * is answered with an error. Not thread-safe: one owner at a time. */
#ifndef SYN_COMMON_BUF_H
#define SYN_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct syn_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} syn_buf;

#define SYN_BUF_INIT {NULL, 0, 0}

/* Ensures room for `extra` more bytes. 0 or -ENOMEM. */
int syn_buf_reserve(syn_buf *b, size_t extra);
int syn_buf_append(syn_buf *b, const void *data, size_t len);
int syn_buf_append_str(syn_buf *b, const char *s);
int syn_buf_append_byte(syn_buf *b, uint8_t c);
int syn_buf_printf(syn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Keeps the block, forgets the contents. */
void syn_buf_reset(syn_buf *b);
void syn_buf_free(syn_buf *b);

#endif
