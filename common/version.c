/* Record versions; see version.h. */
#include "common/version.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

int syn_version_cmp(const syn_version *a, const syn_version *b) {
  if (a->hlc != b->hlc) return a->hlc < b->hlc ? -1 : 1;
  return strcmp(a->node, b->node);
}

uint64_t syn_record_digest(const char *info_hash_hex, const syn_version *v, bool deleted) {
  uint8_t buf[64 + 8 + SYN_NODE_ID_MAX + 2];
  size_t n = 0, hl = strnlen(info_hash_hex, 64), nl = strnlen(v->node, SYN_NODE_ID_MAX);
  memcpy(buf, info_hash_hex, hl);
  n += hl;
  buf[n++] = deleted ? 'D' : 'L';
  for (int i = 0; i < 8; i++) buf[n++] = (uint8_t)(v->hlc >> (8 * i));
  memcpy(buf + n, v->node, nl);
  n += nl;
  return XXH3_64bits(buf, n);
}

void syn_version_format(const syn_version *v, char *out, size_t len) {
  snprintf(out, len, "%llu.%s", (unsigned long long)v->hlc, v->node);
}
