/* Admin endpoints and the access figures of /metrics. */
#include "router/admin.h"

#include <jansson.h>
#include <llhttp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

static const char *const list_names[SYN_ACCESS_LISTS] = {"info_hash_allow", "info_hash_deny",
                                                         "ip_allow", "ip_deny"};
static const char *const reason_names[SYN_REFUSED_REASONS] = {"ip_denied", "info_hash_denied",
                                                              "not_registered"};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void respond(syn_http_slot *slot, int status, json_t *doc) {
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  static const char oom[] = "{\"status\":\"error\",\"error\":\"out of memory\"}";
  syn_http_respond(slot, text ? status : 500, "application/json", text ? text : oom,
                   text ? strlen(text) : sizeof oom - 1,
                   status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL);
  free(text);
}

static void respond_error(syn_http_slot *slot, int status, const char *message) {
  respond(slot, status, json_pack("{s:s,s:s}", "status", "error", "error", message));
}

static json_t *sizes(const syn_admin *a) {
  json_t *o = json_object();
  for (int k = 0; k < SYN_ACCESS_LISTS; k++) {
    const char *path = a->access->paths[k];
    json_object_set_new(o, list_names[k],
                        path ? json_pack("{s:s,s:I}", "file", path, "entries",
                                         (json_int_t)syn_access_lists_size(a->access->lists,
                                                                           (syn_access_list_kind)k))
                             : json_null());
  }
  return o;
}

static json_t *token_counts(const syn_admin *a) {
  return json_pack("{s:I,s:I}", "write", (json_int_t)syn_tokens_count(a->tokens, SYN_SCOPE_WRITE),
                   "admin", (json_int_t)syn_tokens_count(a->tokens, SYN_SCOPE_ADMIN));
}

/* ---- reloads: read on a worker thread, installed on the loop thread ---- */

typedef struct reload_job {
  uv_work_t work;
  syn_admin *admin; /* NULL once the router stopped */
  syn_http_slot *slot;
  const syn_config *cfg; /* outlives the loop */
  char *paths[SYN_ACCESS_LISTS];
  int lists_rc, tokens_rc;
  syn_access_lists *lists;
  syn_token_sets *tokens;
  char lists_err[512], tokens_err[256];
} reload_job;

static void job_free(reload_job *j) {
  syn_access_lists_free(j->lists);
  syn_token_sets_free(j->tokens);
  for (int k = 0; k < SYN_ACCESS_LISTS; k++) free(j->paths[k]);
  free(j);
}

static void job_run(uv_work_t *w) {
  reload_job *j = w->data;
  j->lists_rc = syn_access_lists_load((const char *const *)j->paths, &j->lists, j->lists_err,
                                      sizeof j->lists_err);
  j->tokens_rc = syn_tokens_load(j->cfg, &j->tokens, j->tokens_err, sizeof j->tokens_err);
}

static void job_done(uv_work_t *w, int status) {
  (void)status;
  reload_job *j = w->data;
  syn_admin *a = j->admin;
  if (!a) {
    job_free(j);
    return;
  }
  a->job = NULL;
  char lists[600], tokens[300], msg[1024];
  int rc = syn_access_install(a->access, j->lists_rc, j->lists, j->lists_err, lists, sizeof lists);
  j->lists = NULL; /* installed (or NULL on failure) */
  a->tokens_reloaded_at_ms = wall_ms();
  a->tokens_ok = j->tokens_rc == 0;
  if (a->tokens_ok) {
    syn_tokens_install(a->tokens, j->tokens);
    j->tokens = NULL;
    a->tokens_error[0] = 0;
    snprintf(tokens, sizeof tokens, "tokens loaded: write %zu, admin %zu",
             syn_tokens_count(a->tokens, SYN_SCOPE_WRITE),
             syn_tokens_count(a->tokens, SYN_SCOPE_ADMIN));
  } else {
    snprintf(a->tokens_error, sizeof a->tokens_error, "%s", j->tokens_err);
    snprintf(tokens, sizeof tokens, "tokens kept: %s", a->tokens_error);
  }
  snprintf(msg, sizeof msg, "%s%s; %s", rc ? "access lists kept: " : "", lists, tokens);
  bool ok = rc == 0 && a->tokens_ok;
  if (ok)
    syn_info("reload: %s", msg);
  else
    syn_error("reload: %s", msg);
  if (j->slot)
    respond(j->slot, ok ? 200 : 500,
            json_pack("{s:s,s:s,s:o,s:o}", "status", ok ? "success" : "error",
                      ok ? "message" : "error", msg, "lists", sizes(a), "tokens", token_counts(a)));
  job_free(j);
  if (a->again) {
    a->again = false;
    syn_admin_reload_start(a, NULL);
  }
}

void syn_admin_reload_start(syn_admin *a, syn_http_slot *slot) {
  if (a->job) {
    if (slot)
      respond_error(slot, 409, "a reload is in progress: retry when it is done");
    else
      a->again = true;
    return;
  }
  reload_job *j = calloc(1, sizeof *j);
  bool ok = j != NULL;
  for (int k = 0; ok && k < SYN_ACCESS_LISTS; k++)
    if (a->access->paths[k]) ok = (j->paths[k] = strdup(a->access->paths[k])) != NULL;
  if (ok) {
    j->admin = a;
    j->slot = slot;
    j->cfg = a->cfg;
    j->work.data = j;
    ok = uv_queue_work(a->loop, &j->work, job_run, job_done) == 0;
  }
  if (!ok) {
    if (j) job_free(j);
    syn_error("reload: out of memory");
    if (slot) respond_error(slot, 500, "out of memory");
    return;
  }
  a->job = j;
}

void syn_admin_close(syn_admin *a) {
  if (a->job) a->job->admin = NULL;
  a->job = NULL;
}

static void lists(const syn_admin *a, syn_http_slot *slot) {
  const syn_access *x = a->access;
  json_t *last = json_pack("{s:I,s:b,s:s}", "at_ms", (json_int_t)x->reloaded_at_ms, "ok",
                           x->last_ok, "error", x->last_error);
  json_t *tok = token_counts(a);
  json_object_set_new(tok, "ok", json_boolean(a->tokens_ok));
  json_object_set_new(tok, "error", json_string(a->tokens_error));
  respond(slot, 200,
          json_pack("{s:s,s:o,s:o,s:o,s:b}", "status", "success", "lists", sizes(a), "last_reload",
                    last, "tokens", tok, "registered_only", a->cfg->registered_only));
}

bool syn_admin_handle(syn_admin *a, const syn_http_request *req, syn_http_slot *slot) {
  bool is_reload = req->path_len == 13 && !memcmp(req->path, "/admin/reload", 13);
  bool is_lists = req->path_len == 12 && !memcmp(req->path, "/admin/lists", 12);
  if (!is_reload && !is_lists) return false;
  if (syn_tokens_count(a->tokens, SYN_SCOPE_ADMIN) == 0) {
    respond_error(slot, 403, "admin endpoints need admin tokens");
    return true;
  }
  int status =
      syn_tokens_check(a->tokens, SYN_SCOPE_ADMIN, req->authorization, req->authorization_len);
  if (status) {
    respond_error(slot, status,
                  status == 401 ? "missing bearer token (Authorization: Bearer <token>)"
                                : "invalid admin token");
  } else if (is_reload && req->method == HTTP_POST) {
    syn_admin_reload_start(a, slot);
  } else if (is_lists && (req->method == HTTP_GET || req->method == HTTP_HEAD)) {
    lists(a, slot);
  } else {
    static const char body[] = "{\"status\":\"error\",\"error\":\"method not allowed\"}";
    syn_http_respond(slot, 405, "application/json", body, sizeof body - 1,
                     is_reload ? "Allow: POST\r\n" : "Allow: GET\r\n");
  }
  return true;
}

void syn_admin_metrics(const syn_admin *a, syn_buf *b) {
  const syn_access *x = a->access;
  syn_buf_printf(b,
                 "# HELP synapse_tracker_access_refused_total Requests refused by the "
                 "access lists or tracker.registered_only, by reason.\n"
                 "# TYPE synapse_tracker_access_refused_total counter\n");
  for (int i = 0; i < SYN_REFUSED_REASONS; i++)
    syn_buf_printf(b, "synapse_tracker_access_refused_total{reason=\"%s\"} %llu\n", reason_names[i],
                   (unsigned long long)x->refused[i]);
  syn_buf_printf(b,
                 "# HELP synapse_tracker_access_list_entries Entries of each access list "
                 "loaded (absent: not configured).\n"
                 "# TYPE synapse_tracker_access_list_entries gauge\n");
  for (int k = 0; k < SYN_ACCESS_LISTS; k++)
    if (x->paths[k])
      syn_buf_printf(b, "synapse_tracker_access_list_entries{list=\"%s\"} %zu\n", list_names[k],
                     syn_access_lists_size(x->lists, (syn_access_list_kind)k));
  syn_buf_printf(b,
                 "# HELP synapse_tracker_access_reload_timestamp_seconds When the access lists "
                 "were last loaded (or tried).\n"
                 "# TYPE synapse_tracker_access_reload_timestamp_seconds gauge\n"
                 "synapse_tracker_access_reload_timestamp_seconds %.3f\n"
                 "# HELP synapse_tracker_access_reload_success Whether the last load of the "
                 "access lists and token files succeeded (1) or kept the old ones (0).\n"
                 "# TYPE synapse_tracker_access_reload_success gauge\n"
                 "synapse_tracker_access_reload_success %d\n"
                 "# HELP synapse_tracker_access_reload_failures_total Loads that failed.\n"
                 "# TYPE synapse_tracker_access_reload_failures_total counter\n"
                 "synapse_tracker_access_reload_failures_total %llu\n",
                 (double)x->reloaded_at_ms / 1000.0, x->last_ok && a->tokens_ok,
                 (unsigned long long)x->reload_failures);
}
