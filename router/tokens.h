/* Bearer tokens for the JSON API's writes and the admin endpoints, in two scopes:
 *
 * - write (register, delete): api.tokens, api.tokens_file, SYNAPSE_API_TOKENS;
 * - admin (the /admin endpoints): api.admin_tokens, api.admin_tokens_file, SYNAPSE_ADMIN_TOKENS.
 *
 * Each source may hold several tokens at once, so a token is rotated by listing the new
 * one beside the old, reloading, moving clients over, then removing the old one. Token
 * files hold one token a line ('#' comments, blank lines skipped) and are re-read on
 * SIGHUP and POST /admin/reload; a file that cannot be read keeps the tokens held.
 *
 * Only digests are kept (BLAKE2b-256, crypto_generichash): a presented token is hashed
 * and compared with every stored digest by sodium_memcmp, all of them every time, so
 * neither a token's length nor the position of its first wrong byte shows in the time.
 *
 * With no write token configured, writes are open (a laptop); an admin token also passes
 * the write check. With no admin token, the admin endpoints are refused, never open.
 * Loop thread only. */
#ifndef SYN_ROUTER_TOKENS_H
#define SYN_ROUTER_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

#define SYN_TOKENS_MAX 64 /* per scope, all sources together */

typedef enum syn_token_scope { SYN_SCOPE_WRITE, SYN_SCOPE_ADMIN, SYN_SCOPES } syn_token_scope;

typedef struct syn_tokens syn_tokens;

/* Reads every source. NULL with "FILE: why" in err when a file cannot be read or holds
 * too many tokens. cfg must outlive the tokens. */
syn_tokens *syn_tokens_new(const syn_config *cfg, char *err, size_t err_len);
/* Re-reads the sources; on failure keeps the tokens held and writes why. 0 or -1. */
int syn_tokens_reload(syn_tokens *t, char *err, size_t err_len);

/* The same in two halves, for reading the files off the loop thread: syn_tokens_load
 * reads every source into a fresh set (any thread; reads only the configuration), and
 * syn_tokens_install puts it in place (loop thread) and frees it. */
typedef struct syn_token_sets syn_token_sets;
int syn_tokens_load(const syn_config *cfg, syn_token_sets **out, char *err, size_t err_len);
void syn_tokens_install(syn_tokens *t, syn_token_sets *fresh);
/* Frees a set not installed (NULL is fine). */
void syn_token_sets_free(syn_token_sets *s);
void syn_tokens_free(syn_tokens *t);

size_t syn_tokens_count(const syn_tokens *t, syn_token_scope scope);

/* Checks an Authorization header value ("Bearer <token>", the scheme in any case) for a
 * scope: 0 when it passes (or, for writes, when no write token is configured), 401 when
 * no bearer token was given, 403 when the token is not one of the scope's. */
int syn_tokens_check(const syn_tokens *t, syn_token_scope scope, const char *authorization,
                     size_t len);

#endif
