/* Admin endpoints on the router: POST /admin/reload re-reads the access lists
 * (router/access.h) and the token files (router/tokens.h) and answers what was loaded or
 * the error; GET /admin/lists answers the lists' files and sizes and the last reload's
 * time and result (never the entries). Both need an admin-scope bearer token; with no
 * admin token configured they are refused (403), never open.
 *
 * syn_admin_reload is also what SIGHUP runs (app/main.c through syn_router_reload).
 * Loop thread only. */
#ifndef SYN_ROUTER_ADMIN_H
#define SYN_ROUTER_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "router/access.h"
#include "router/http.h"
#include "router/tokens.h"

typedef struct syn_admin {
  const syn_config *cfg;
  syn_access *access;
  syn_tokens *tokens;
  int64_t tokens_reloaded_at_ms;
  bool tokens_ok;
  char tokens_error[256];
} syn_admin;

/* Reloads lists and tokens (each keeps what it held when its files fail); the outcome of
 * both is written to msg. 0 when both loaded, -1 otherwise. */
int syn_admin_reload(syn_admin *admin, char *msg, size_t msg_len);

/* Handles the /admin paths; false when the path is not one. */
bool syn_admin_handle(syn_admin *admin, const syn_http_request *req, syn_http_slot *slot);

/* Appends the access figures to a /metrics answer: refusals by reason, list sizes, the
 * last reload's time and result. */
void syn_admin_metrics(const syn_admin *admin, syn_buf *b);

#endif
