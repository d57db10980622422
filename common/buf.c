#include "common/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int syn_buf_reserve(syn_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t need = b->len + extra;
  if (need < b->len) return -ENOMEM;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) return -ENOMEM;
    cap *= 2;
  }
  uint8_t *data = realloc(b->data, cap);
  if (!data) return -ENOMEM;
  b->data = data;
  b->cap = cap;
  return 0;
}

int syn_buf_append(syn_buf *b, const void *data, size_t len) {
  if (len == 0) return 0;
  int rc = syn_buf_reserve(b, len);
  if (rc) return rc;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

int syn_buf_append_str(syn_buf *b, const char *s) { return syn_buf_append(b, s, strlen(s)); }

int syn_buf_append_byte(syn_buf *b, uint8_t c) { return syn_buf_append(b, &c, 1); }

int syn_buf_printf(syn_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return -EINVAL;
  if ((size_t)n < sizeof small) return syn_buf_append(b, small, (size_t)n);
  int rc = syn_buf_reserve(b, (size_t)n + 1);
  if (rc) return rc;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void syn_buf_reset(syn_buf *b) { b->len = 0; }

void syn_buf_free(syn_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
