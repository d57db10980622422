/* Token digests per scope, rebuilt whole on each reload into a fresh set and copied over
 * the held one only when every source was read. */
#include "router/tokens.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DIGEST 32
#define MAX_TOKEN_LINE 1024

typedef struct digest_set {
  unsigned char d[SYN_TOKENS_MAX][DIGEST];
  size_t n;
} digest_set;

struct syn_token_sets {
  digest_set scopes[SYN_SCOPES];
};

struct syn_tokens {
  const syn_config *cfg;
  digest_set scopes[SYN_SCOPES];
};

static void digest_of(const char *token, size_t len, unsigned char out[DIGEST]) {
  crypto_generichash(out, DIGEST, (const unsigned char *)token, len, NULL, 0);
}

static int add_token(digest_set *s, const char *token, size_t len, const char *source, char *err,
                     size_t err_len) {
  if (len == 0) return 0;
  if (s->n == SYN_TOKENS_MAX) {
    snprintf(err, err_len, "%s: more than %d tokens", source, SYN_TOKENS_MAX);
    return -1;
  }
  digest_of(token, len, s->d[s->n++]);
  return 0;
}

/* Tokens separated by any of `seps`, white space around each trimmed. */
static int add_separated(digest_set *s, const char *text, const char *seps, const char *source,
                         char *err, size_t err_len) {
  while (*text) {
    size_t n = strcspn(text, seps);
    const char *t = text;
    size_t len = n;
    while (len && (*t == ' ' || *t == '\t')) t++, len--;
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t' || t[len - 1] == '\r')) len--;
    if (add_token(s, t, len, source, err, err_len)) return -1;
    text += n + (text[n] != 0);
  }
  return 0;
}

static int add_file(digest_set *s, const char *path, char *err, size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_len, "%s: %s", path, strerror(errno));
    return -1;
  }
  char line[MAX_TOKEN_LINE];
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "#\n")] = 0;
    rc = add_separated(s, line, "\n", path, err, err_len);
  }
  fclose(f);
  sodium_memzero(line, sizeof line);
  return rc;
}

static int load_scope(digest_set *s, char *const *inline_tokens, size_t n, const char *file,
                      const char *env, char *err, size_t err_len) {
  memset(s, 0, sizeof *s);
  for (size_t i = 0; i < n; i++)
    if (add_token(s, inline_tokens[i], strlen(inline_tokens[i]), "api", err, err_len)) return -1;
  if (file && *file && add_file(s, file, err, err_len)) return -1;
  const char *e = getenv(env);
  if (e && add_separated(s, e, ",", env, err, err_len)) return -1;
  return 0;
}

static int load_all(const syn_config *c, digest_set fresh[SYN_SCOPES], char *err, size_t err_len) {
  if (load_scope(&fresh[SYN_SCOPE_WRITE], c->api_tokens, c->api_token_count, c->api_tokens_file,
                 "SYNAPSE_API_TOKENS", err, err_len))
    return -1;
  return load_scope(&fresh[SYN_SCOPE_ADMIN], c->api_admin_tokens, c->api_admin_token_count,
                    c->api_admin_tokens_file, "SYNAPSE_ADMIN_TOKENS", err, err_len);
}

syn_tokens *syn_tokens_new(const syn_config *cfg, char *err, size_t err_len) {
  syn_tokens *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  t->cfg = cfg;
  if (syn_tokens_reload(t, err, err_len) == 0) return t;
  free(t);
  return NULL;
}

int syn_tokens_reload(syn_tokens *t, char *err, size_t err_len) {
  digest_set fresh[SYN_SCOPES];
  int rc = load_all(t->cfg, fresh, err, err_len);
  if (rc == 0) memcpy(t->scopes, fresh, sizeof fresh);
  sodium_memzero(fresh, sizeof fresh);
  return rc;
}

int syn_tokens_load(const syn_config *cfg, syn_token_sets **out, char *err, size_t err_len) {
  *out = calloc(1, sizeof **out);
  if (!*out) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  if (load_all(cfg, (*out)->scopes, err, err_len) == 0) return 0;
  sodium_memzero(*out, sizeof **out);
  free(*out);
  *out = NULL;
  return -1;
}

void syn_token_sets_free(syn_token_sets *s) {
  if (!s) return;
  sodium_memzero(s, sizeof *s);
  free(s);
}

void syn_tokens_install(syn_tokens *t, syn_token_sets *fresh) {
  memcpy(t->scopes, fresh->scopes, sizeof t->scopes);
  syn_token_sets_free(fresh);
}

void syn_tokens_free(syn_tokens *t) {
  if (!t) return;
  sodium_memzero(t, sizeof *t);
  free(t);
}

size_t syn_tokens_count(const syn_tokens *t, syn_token_scope scope) { return t->scopes[scope].n; }

/* Every digest is compared, whatever matched first. */
static bool in_set(const digest_set *s, const unsigned char d[DIGEST]) {
  int found = 0;
  for (size_t i = 0; i < s->n; i++) found |= sodium_memcmp(s->d[i], d, DIGEST) == 0;
  return found;
}

int syn_tokens_check(const syn_tokens *t, syn_token_scope scope, const char *authorization,
                     size_t len) {
  if (scope == SYN_SCOPE_WRITE && t->scopes[SYN_SCOPE_WRITE].n == 0) return 0;
  if (!authorization || len < 7 || strncasecmp(authorization, "Bearer ", 7) != 0) return 401;
  unsigned char d[DIGEST];
  digest_of(authorization + 7, len - 7, d);
  bool ok = in_set(&t->scopes[SYN_SCOPE_ADMIN], d);
  if (scope == SYN_SCOPE_WRITE) ok |= in_set(&t->scopes[SYN_SCOPE_WRITE], d);
  return ok ? 0 : 403;
}
