/* Shard and search rules; see shard_rules.h. */
#include "common/shard_rules.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/urlcodec.h"

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int syn_info_hash_parse(const char *text, size_t len, char hex_out[65], uint8_t key[20]) {
  if (!text || (len != 40 && len != 64)) return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (!is_hex(c)) return -EINVAL;
    hex_out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
  }
  hex_out[len] = '\0';
  if (key && syn_hex_decode(hex_out, 40, key, 20) != 0) return -EINVAL;
  return 0;
}

int syn_info_hash_normalize(const char *text, char hex_out[65]) {
  if (!text) return -EINVAL;
  size_t len = strnlen(text, 65);
  return syn_info_hash_parse(text, len, hex_out, NULL);
}

int syn_model_key(const char *model, char *out, size_t cap) {
  return model ? syn_model_key_n(model, strlen(model), out, cap) : -EINVAL;
}

int syn_model_key_n(const char *model, size_t len, char *out, size_t cap) {
  if (!model || !out || cap == 0) return -EINVAL;
  const char *b = model, *e = model + len;
  while (b < e && is_blank(*b)) b++;
  while (e > b && is_blank(e[-1])) e--;
  for (const char *p = b; p < e; p++)
    if (*p == '/') b = p + 1;
  static const char latest[] = ":latest";
  size_t ll = sizeof latest - 1;
  if ((size_t)(e - b) > ll && strncasecmp(e - ll, latest, ll) == 0) e -= ll;
  while (e > b && is_blank(e[-1])) e--;
  size_t n = (size_t)(e - b);
  if (n == 0) return -EINVAL;
  if (n + 1 > cap) return -ENAMETOOLONG;
  for (size_t i = 0; i < n; i++) {
    char c = b[i];
    out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  out[n] = '\0';
  return 0;
}

bool syn_has_control(const char *text, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) return true;
  return false;
}

/* "field" rule, or "field": rule when the rule reads as a sentence of its own. */
static int fail(char *err, size_t errlen, const char *field, const char *what) {
  bool sentence = strncmp(what, "each ", 5) == 0 || strncmp(what, "tags ", 5) == 0;
  if (err && errlen) snprintf(err, errlen, sentence ? "\"%s\": %s" : "\"%s\" %s", field, what);
  return -EINVAL;
}

int syn_model_check(const char *field, const char *model, size_t len, char *err, size_t errlen) {
  if (!model || len == 0) return fail(err, errlen, field, "must not be empty");
  if (len > SYN_SHARD_MAX_MODEL) return fail(err, errlen, field, "is longer than 128 bytes");
  if (syn_has_control(model, len)) return fail(err, errlen, field, "contains a control character");
  char key[SYN_SHARD_MAX_MODEL + 1];
  if (memchr(model, 0, len) || syn_model_key_n(model, len, key, sizeof key) != 0)
    return fail(err, errlen, field, "names no model (it is blank or ends in '/')");
  return 0;
}

int syn_tag_check(const char *field, const char *tag, size_t len, char *err, size_t errlen) {
  if (!tag || len == 0 || len > SYN_SHARD_MAX_TAG)
    return fail(err, errlen, field, "each tag must be 1 to 64 bytes");
  if (syn_has_control(tag, len))
    return fail(err, errlen, field, "tags must not contain control characters");
  if (memchr(tag, ',', len)) return fail(err, errlen, field, "tags must not contain ','");
  return 0;
}

int syn_text_check(const char *field, const char *text, size_t len, size_t max, bool required,
                   char *err, size_t errlen) {
  if (!text) return required ? fail(err, errlen, field, "is missing") : 0;
  if (len > max) {
    char what[64];
    snprintf(what, sizeof what, "is longer than %zu bytes", max);
    return fail(err, errlen, field, what);
  }
  if (memchr(text, 0, len)) return fail(err, errlen, field, "contains a NUL character");
  if (required && len == 0) return fail(err, errlen, field, "must not be empty");
  return 0;
}

int syn_dimension_check(const char *field, uint64_t dimension, char *err, size_t errlen) {
  if (dimension >= 1 && dimension <= SYN_SHARD_MAX_DIM) return 0;
  return fail(err, errlen, field, "must be between 1 and 4096");
}
