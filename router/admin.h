/* Admin endpoints on the router: POST /admin/reload re-reads the access lists
 * (router/access.h) and the token files (router/tokens.h) and answers what was loaded or
 * the error; GET /admin/lists answers the lists' files and sizes and the last reload's
 * time and result (never the entries). Both need an admin-scope bearer token; with no
 * admin token configured they are refused (403), never open.
 *
 * A reload reads the files on a libuv worker thread (a list of a million entries takes
 * seconds to parse, and the loop must keep serving) and installs the outcome on the loop
 * thread: the lists swap in one pointer, the token digests in one copy. One reload runs
 * at a time: a SIGHUP meanwhile runs another after it, a POST meanwhile is answered 409.
 * SIGHUP runs syn_admin_reload_start (app/main.c through syn_router_reload).
 * Loop thread only. */
#ifndef SYN_ROUTER_ADMIN_H
#define SYN_ROUTER_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/config.h"
#include "router/access.h"
#include "router/http.h"
#include "router/tokens.h"

struct reload_job;

typedef struct syn_admin {
  uv_loop_t *loop;
  const syn_config *cfg;
  syn_access *access;
  syn_tokens *tokens;
  int64_t tokens_reloaded_at_ms;
  bool tokens_ok;
  char tokens_error[256];
  struct reload_job *job; /* the reload in flight, or NULL */
  bool again;             /* a SIGHUP came during it: reload once more after */
} syn_admin;

/* Starts a reload of lists and tokens (each keeps what it held when its files fail);
 * the outcome of both is logged and, when slot is not NULL, answered there. */
void syn_admin_reload_start(syn_admin *admin, syn_http_slot *slot);

/* At router stop: a reload in flight finishes unseen (its result is freed, its slot not
 * answered), so the admin may be freed at once. */
void syn_admin_close(syn_admin *admin);

/* Handles the /admin paths; false when the path is not one. */
bool syn_admin_handle(syn_admin *admin, const syn_http_request *req, syn_http_slot *slot);

/* Appends the access figures to a /metrics answer: refusals by reason, list sizes, the
 * last reload's time and result. */
void syn_admin_metrics(const syn_admin *admin, syn_buf *b);

#endif
