/* Router: request dispatch. Design notes:
 *
 * - Every request forwarded to a node is a syn_req (router/request.h) whose callback
 *   answers the client; an announce keeps its reply address in the request's own data,
 *   so the hot path allocates nothing. Scrapes, searches and operations figures are call
 *   groups (router/call_group.h) in their own files.
 * - router/nodes.h guarantees one callback per request within the deadline, so nothing
 *   leaks and no sweep is needed.
 * - Counters live here (router/counters.h) and in the HTTP and UDP components; nothing on
 *   the hot path logs. */
#include "router/router.h"

#include <errno.h>
#include <llhttp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bencode.h"
#include "common/buf.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/prng.h"
#include "router/access.h"
#include "router/admin.h"
#include "router/api.h"
#include "router/client_limits.h"
#include "router/counters.h"
#include "router/dashboard.h"
#include "router/http.h"
#include "router/nodes.h"
#include "router/ops.h"
#include "router/scrape.h"
#include "router/tokens.h"
#include "router/tracker_query.h"
#include "router/udp.h"
#include "router/ws_tracker.h"

#define FULL_SCRAPE_CLIENTS 1024

typedef struct full_scrape_client {
  uint8_t ip[16];
  uint32_t last;
} full_scrape_client;

struct syn_router {
  uv_loop_t *loop;
  const syn_config *cfg;
  syn_router_options opts;
  syn_http_server *http;
  syn_udp *udp;
  syn_nodes *nodes;
  syn_ws_tracker *ws; /* WebTorrent over WebSocket; NULL when both its ports are off */
  uint64_t ws_boot;   /* this process's start, as nodes know its WebSocket peers */
  syn_router_counters counters;
  syn_api api;
  syn_ops ops;
  syn_scraper scraper;
  syn_access access;  /* access lists (router/access.h) */
  syn_tokens *tokens; /* bearer tokens (router/tokens.h) */
  syn_admin admin;
  syn_dashboard *dashboard; /* the status page's rate history (router/dashboard.h) */
  syn_rate_table *rates;    /* NULL when limits.rate_limit is off */
  full_scrape_client full_scrape[FULL_SCRAPE_CLIENTS];
  syn_buf scratch;
  uint64_t jitter_rng; /* the told interval's jitter (common/prng.h): no syscall per reply */
};

/* What an announce in flight needs to answer its client (in the request's data). */
typedef struct http_announce_state {
  syn_router *router;
  syn_http_slot *slot;
  bool compact;
  bool no_peer_id;
} http_announce_state;

typedef struct udp_announce_state {
  syn_router *router;
  uint32_t transaction_id;
  syn_udp_peer peer;
} udp_announce_state;

_Static_assert(sizeof(udp_announce_state) <= SYN_REQ_DATA, "UDP announce state fits a request");
_Static_assert(sizeof(http_announce_state) <= SYN_REQ_DATA, "HTTP announce state fits a request");

static void http_announce_reply(syn_req *req, const Synapse__Reply *rep);
static void udp_announce_reply(syn_req *req, const Synapse__Reply *rep);

/* ---- small reply helpers ---- */

static void respond_text(syn_http_slot *slot, int status, const char *text) {
  syn_http_respond(slot, status, "text/plain", text, strlen(text), NULL);
}

static void respond_failure(syn_router *r, syn_http_slot *slot, const char *reason) {
  r->counters.failures++;
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  syn_bencode_failure(b, reason);
  syn_http_respond(slot, 200, "text/plain", b->data, b->len, NULL);
}

static uint32_t wall_seconds(void) { return (uint32_t)time(NULL); }

static uint32_t clamp_numwant(const syn_config *cfg, int64_t asked) {
  if (asked < 0) return cfg->default_numwant;
  return asked > cfg->max_numwant ? cfg->max_numwant : (uint32_t)asked;
}

/* ---- HTTP announce and scrape ---- */

static void http_announce(syn_router *r, const syn_http_request *hr, syn_http_slot *slot) {
  syn_announce_query q;
  const char *err = syn_announce_query_parse(hr->query, hr->query_len, &q);
  if (err) {
    respond_failure(r, slot, err);
    return;
  }
  const char *refused = syn_access_check(&r->access, hr->client_ip, hr->client_ip_len,
                                         (const uint8_t(*)[20])q.info_hash, 1);
  if (refused) {
    respond_failure(r, slot, refused);
    return;
  }
  r->counters.http_announces++;
  syn_req *req = syn_nodes_req(r->nodes, http_announce_reply, NULL);
  if (!req) {
    r->counters.overloaded++;
    respond_failure(r, slot, "tracker overloaded, retry later");
    return;
  }
  http_announce_state *st = (http_announce_state *)(void *)req->data;
  *st = (http_announce_state){r, slot, q.compact, q.no_peer_id};
  Synapse__AnnounceRequest a = SYNAPSE__ANNOUNCE_REQUEST__INIT;
  a.info_hash = (ProtobufCBinaryData){20, q.info_hash};
  a.peer_id = (ProtobufCBinaryData){20, q.peer_id};
  a.ip = (ProtobufCBinaryData){hr->client_ip_len, (uint8_t *)hr->client_ip};
  a.port = q.port;
  a.has_event = 1;
  a.event = (Synapse__Event)q.event;
  a.has_left = a.has_uploaded = a.has_downloaded = 1;
  a.left = q.left;
  a.uploaded = q.uploaded;
  a.downloaded = q.downloaded;
  a.has_numwant = 1;
  a.numwant = clamp_numwant(r->cfg, q.numwant);
  a.has_want_peer_ids = 1;
  a.want_peer_ids = !q.compact && !q.no_peer_id;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_ANNOUNCE;
  msg.announce = &a;
  int rc = syn_nodes_send(r->nodes, req, q.info_hash, &msg);
  if (rc == 0) return;
  r->counters.overloaded++;
  respond_failure(r, slot,
                  rc == -ENODEV ? "no node available for this torrent, retry later"
                                : "tracker overloaded, retry later");
}

/* At most one full scrape per client address per interval; a small hashed table whose
 * collisions only make the limit stricter for the colliding clients. */
static bool full_scrape_allowed(syn_router *r, const uint8_t *ip, size_t ip_len) {
  uint8_t key[16] = {0};
  memcpy(key, ip, ip_len);
  uint32_t h = 2166136261u;
  for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 16777619u;
  full_scrape_client *c = &r->full_scrape[h % FULL_SCRAPE_CLIENTS];
  uint32_t now = wall_seconds();
  if (c->last && !memcmp(c->ip, key, 16) && now - c->last < r->cfg->full_scrape_interval)
    return false;
  memcpy(c->ip, key, 16);
  c->last = now;
  return true;
}

static void http_scrape(syn_router *r, const syn_http_request *hr, syn_http_slot *slot) {
  static syn_scrape_query q; /* 5 KB: kept off the stack; loop thread only */
  const char *err = syn_scrape_query_parse(hr->query, hr->query_len, &q);
  if (err) {
    respond_failure(r, slot, err);
    return;
  }
  if (q.count == 0 && !r->cfg->full_scrape) {
    respond_failure(r, slot, "full scrape is disabled: name at least one info_hash");
    return;
  }
  if (q.count == 0 && !full_scrape_allowed(r, hr->client_ip, hr->client_ip_len)) {
    respond_failure(r, slot, "full scrape rate limit: retry later");
    return;
  }
  const char *refused = syn_access_check(&r->access, hr->client_ip, hr->client_ip_len,
                                         (const uint8_t(*)[20])q.hashes, q.count);
  if (refused) {
    respond_failure(r, slot, refused);
    return;
  }
  r->counters.http_scrapes++;
  syn_scrape_http(&r->scraper, (const uint8_t(*)[20])q.hashes, q.count, slot);
}

/* The interval a client is told, jittered so that a restart does not synchronise them. */
static uint32_t told_interval(syn_router *r) {
  return syn_config_told_interval(r->cfg, (uint32_t)(syn_prng_next(&r->jitter_rng) >> 32));
}

static void http_announce_reply(syn_req *req, const Synapse__Reply *rep) {
  const http_announce_state *p = (const http_announce_state *)(const void *)req->data;
  syn_router *r = p->router;
  if (rep->error == SYNAPSE__ERROR_CODE__UNAVAILABLE) r->counters.node_errors++;
  if (rep->error == SYNAPSE__ERROR_CODE__NOT_REGISTERED)
    r->access.refused[SYN_REFUSED_NOT_REGISTERED]++;
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_ANNOUNCE) {
    respond_failure(r, p->slot, rep->message ? rep->message : "announce failed");
    return;
  }
  const Synapse__AnnounceReply *a = rep->announce;
  syn_announce_reply_view v = {
      .interval = told_interval(r),
      .min_interval = r->cfg->min_interval,
      .complete = a->complete,
      .incomplete = a->incomplete,
      .downloaded = a->downloaded,
      .peers4 = a->peers4.data,
      .peers4_count = a->peers4.len / 6,
      .peers6 = a->peers6.data,
      .peers6_count = a->peers6.len / 18,
      .peer_ids4 =
          a->has_peer_ids4 && a->peer_ids4.len == a->peers4.len / 6 * 20 ? a->peer_ids4.data : NULL,
      .peer_ids6 = a->has_peer_ids6 && a->peer_ids6.len == a->peers6.len / 18 * 20
                       ? a->peer_ids6.data
                       : NULL,
  };
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  int rc = p->compact ? syn_announce_reply_compact(b, &v)
                      : syn_announce_reply_dict(b, &v, p->no_peer_id);
  if (rc) {
    respond_failure(r, p->slot, "out of memory");
    return;
  }
  syn_http_respond(p->slot, 200, "text/plain", b->data, b->len, NULL);
}

/* ---- rate limits ---- */

static bool within_rate(syn_router *r, syn_limit_class cls, const uint8_t *ip, size_t ip_len) {
  if (!r->rates || syn_rate_take(r->rates, cls, ip, ip_len, uv_now(r->loop))) return true;
  r->counters.rate_limited[cls]++;
  return false;
}

/* The class a request is limited under; SYN_LIMIT_CLASSES for one that is not limited
 * (liveness probes must answer however busy the client is). */
static syn_limit_class http_class(const syn_http_request *req) {
  if (req->path_len == 8 && !memcmp(req->path, "/healthz", 8)) return SYN_LIMIT_CLASSES;
  if (req->path_len == 9 && !memcmp(req->path, "/announce", 9)) return SYN_LIMIT_ANNOUNCE;
  if (req->path_len == 7 && !memcmp(req->path, "/scrape", 7)) return SYN_LIMIT_SCRAPE;
  bool search = req->path_len >= 11 && !memcmp(req->path, "/api/search", 11);
  bool write = req->method == HTTP_DELETE || (req->method == HTTP_POST && !search);
  return write ? SYN_LIMIT_API_WRITE : SYN_LIMIT_API_READ;
}

/* 429 in the shape the endpoint speaks: bencoded for a BitTorrent client, JSON for /api. */
static void respond_rate_limited(syn_router *r, syn_limit_class cls, syn_http_slot *slot) {
  char headers[48];
  snprintf(headers, sizeof headers, "Retry-After: %u\r\n", syn_rate_retry_after(r->rates, cls));
  static const char reason[] = "rate limit exceeded for this address: retry later";
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  if (cls == SYN_LIMIT_ANNOUNCE || cls == SYN_LIMIT_SCRAPE) {
    syn_bencode_failure(b, reason);
    syn_http_respond(slot, 429, "text/plain", b->data, b->len, headers);
    return;
  }
  syn_buf_printf(b, "{\"status\":\"error\",\"error\":\"%s\"}", reason);
  syn_http_respond(slot, 429, "application/json", b->data, b->len, headers);
}

/* ---- UDP ---- */

static void udp_announce(syn_router *r, const syn_udp_request *u, const syn_udp_peer *from) {
  r->counters.udp_announces++;
  if (u->port == 0) { /* unreachable: never stored, never handed out (HTTP refuses it too) */
    r->counters.failures++;
    syn_udp_send_error(r->udp, from, u->transaction_id, "invalid port");
    return;
  }
  const char *refused =
      syn_access_check(&r->access, from->ip, from->ip_len, (const uint8_t(*)[20])u->info_hash, 1);
  if (refused) {
    r->counters.failures++;
    syn_udp_send_error(r->udp, from, u->transaction_id, refused);
    return;
  }
  syn_req *req = syn_nodes_req(r->nodes, udp_announce_reply, NULL);
  if (!req) {
    r->counters.overloaded++;
    syn_udp_send_error(r->udp, from, u->transaction_id, "tracker overloaded, retry later");
    return;
  }
  udp_announce_state *st = (udp_announce_state *)(void *)req->data;
  st->router = r;
  st->transaction_id = u->transaction_id;
  st->peer = *from;
  Synapse__AnnounceRequest a = SYNAPSE__ANNOUNCE_REQUEST__INIT;
  a.info_hash = (ProtobufCBinaryData){20, (uint8_t *)u->info_hash};
  a.peer_id = (ProtobufCBinaryData){20, (uint8_t *)u->peer_id};
  a.ip = (ProtobufCBinaryData){from->ip_len, (uint8_t *)from->ip};
  a.port = u->port;
  a.has_event = 1;
  a.event = u->event <= 3 ? (Synapse__Event)u->event : SYNAPSE__EVENT__EVENT_NONE;
  a.has_left = a.has_uploaded = a.has_downloaded = 1;
  a.left = u->left;
  a.uploaded = u->uploaded;
  a.downloaded = u->downloaded;
  a.has_numwant = 1;
  a.numwant = clamp_numwant(r->cfg, u->num_want);
  a.has_families = 1;
  a.families = from->ip_len == 4 ? 1 : 2; /* one address family per UDP reply */
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_ANNOUNCE;
  msg.announce = &a;
  int rc = syn_nodes_send(r->nodes, req, u->info_hash, &msg);
  if (rc == 0) return;
  r->counters.overloaded++;
  syn_udp_send_error(r->udp, from, u->transaction_id,
                     rc == -ENODEV ? "no node available for this torrent, retry later"
                                   : "tracker overloaded, retry later");
}

static void udp_scrape(syn_router *r, const syn_udp_request *u, const syn_udp_peer *from) {
  const char *refused = syn_access_check(&r->access, from->ip, from->ip_len,
                                         (const uint8_t(*)[20])u->scrape_hashes, u->scrape_count);
  if (refused) {
    r->counters.failures++;
    syn_udp_send_error(r->udp, from, u->transaction_id, refused);
    return;
  }
  r->counters.udp_scrapes++;
  syn_scrape_udp(&r->scraper, (const uint8_t(*)[20])u->scrape_hashes, u->scrape_count,
                 u->transaction_id, from);
}

static void on_udp_request(void *ctx, const syn_udp_request *u, const syn_udp_peer *from) {
  syn_router *r = ctx;
  syn_limit_class cls = u->action == SYN_UDP_ANNOUNCE ? SYN_LIMIT_ANNOUNCE : SYN_LIMIT_SCRAPE;
  if (!within_rate(r, cls, from->ip, from->ip_len)) {
    r->counters.failures++;
    syn_udp_send_error(r->udp, from, u->transaction_id,
                       "rate limit exceeded for this address: retry later");
  } else if (u->action == SYN_UDP_ANNOUNCE) {
    udp_announce(r, u, from);
  } else {
    udp_scrape(r, u, from);
  }
}

static void udp_announce_reply(syn_req *req, const Synapse__Reply *rep) {
  const udp_announce_state *p = (const udp_announce_state *)(const void *)req->data;
  syn_router *r = p->router;
  if (rep->error == SYNAPSE__ERROR_CODE__UNAVAILABLE) r->counters.node_errors++;
  if (rep->error == SYNAPSE__ERROR_CODE__NOT_REGISTERED)
    r->access.refused[SYN_REFUSED_NOT_REGISTERED]++;
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_ANNOUNCE) {
    r->counters.failures++;
    syn_udp_send_error(r->udp, &p->peer, p->transaction_id,
                       rep->message ? rep->message : "announce failed");
    return;
  }
  const Synapse__AnnounceReply *a = rep->announce;
  const ProtobufCBinaryData *peers = p->peer.ip_len == 4 ? &a->peers4 : &a->peers6;
  uint8_t pkt[20 + 18 * 1000];
  size_t len = syn_udp_build_announce(pkt, sizeof pkt, p->transaction_id, told_interval(r),
                                      a->incomplete, a->complete, peers->data, peers->len);
  if (len) syn_udp_send(r->udp, &p->peer, pkt, len);
}

/* ---- HTTP routing ---- */

static bool path_is(const syn_http_request *req, const char *path) {
  size_t n = strlen(path);
  return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static void method_not_allowed(syn_http_slot *slot, const char *allow) {
  char headers[64];
  snprintf(headers, sizeof headers, "Allow: %s\r\n", allow);
  const char *body = "{\"status\":\"error\",\"error\":\"method not allowed\"}";
  syn_http_respond(slot, 405, "application/json", body, strlen(body), headers);
}

/* The JSON API applies the IP lists: a refused address gets a 403 in JSON. */
static bool api_refused(syn_router *r, const syn_http_request *req, syn_http_slot *slot) {
  if (req->path_len < 5 || memcmp(req->path, "/api/", 5) != 0) return false;
  const char *why = syn_access_check(&r->access, req->client_ip, req->client_ip_len, NULL, 0);
  if (!why) return false;
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  syn_buf_printf(b, "{\"status\":\"error\",\"error\":\"%s\"}", why);
  syn_http_respond(slot, 403, "application/json", b->data, b->len, NULL);
  return true;
}

static void on_http_request(void *ctx, const syn_http_request *req, syn_http_slot *slot) {
  syn_router *r = ctx;
  bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
  syn_limit_class cls = http_class(req);
  if (cls < SYN_LIMIT_CLASSES && !within_rate(r, cls, req->client_ip, req->client_ip_len)) {
    respond_rate_limited(r, cls, slot);
  } else if (path_is(req, "/healthz")) {
    respond_text(slot, 200, "ok\n");
  } else if (syn_admin_handle(&r->admin, req, slot)) {
    /* answered by the admin endpoints (router/admin.h) */
  } else if (syn_ops_handle(&r->ops, req, slot)) {
    /* answered by the operations endpoints */
  } else if (r->opts.admin_only) {
    respond_text(slot, 404, "not found\n");
  } else if (path_is(req, "/announce")) {
    if (get)
      http_announce(r, req, slot);
    else
      method_not_allowed(slot, "GET");
  } else if (path_is(req, "/scrape")) {
    if (get)
      http_scrape(r, req, slot);
    else
      method_not_allowed(slot, "GET");
  } else if (api_refused(r, req, slot)) {
    /* the client's address is not allowed */
  } else if (syn_api_handle(&r->api, req, slot)) {
    /* answered by the JSON API */
  } else {
    const char *body = "{\"status\":\"error\",\"error\":\"not found\"}";
    syn_http_respond(slot, 404, "application/json", body, strlen(body), NULL);
  }
}

/* ---- WebSocket (WebTorrent) clients ---- */

static bool ws_enabled(const syn_config *cfg, const syn_router_options *opts) {
  return !opts->admin_only && (cfg->ws_port || cfg->wss_port);
}

static void on_ws_push(void *ctx, const Synapse__WsPush *push) {
  syn_router *r = ctx;
  syn_ws_tracker_push(r->ws, push);
}

/* The same rules as an HTTP or UDP request: access lists, then the client's rate. */
static const char *ws_admit(void *ctx, const uint8_t *ip, size_t ip_len,
                            const uint8_t (*hashes)[20], size_t n, bool scrape) {
  syn_router *r = ctx;
  const char *refused = syn_access_check(&r->access, ip, ip_len, hashes, n);
  if (refused) return refused;
  syn_limit_class cls = scrape ? SYN_LIMIT_SCRAPE : SYN_LIMIT_ANNOUNCE;
  return within_rate(r, cls, ip, ip_len) ? NULL : "rate limit exceeded, slow down";
}

static int start_ws(syn_router *r, uv_loop_t *loop, char *err, size_t err_len) {
  syn_ws_tracker_options wo = {
      .cfg = r->cfg,
      .nodes = r->nodes,
      .scraper = &r->scraper,
      .router_id = r->cfg->node_id,
      .boot = r->ws_boot,
      .admit = ws_admit,
      .admit_ctx = r,
  };
  r->ws = syn_ws_tracker_start(loop, &wo, err, err_len);
  return r->ws ? 0 : -1;
}

/* ---- lifetime ---- */

static int open_nodes(syn_router *r, uv_loop_t *loop, const syn_config *cfg,
                      const syn_router_options *opts, char *err, size_t err_len) {
  char peer_urls[SYN_MAX_SEEDS][300];
  const char *seeds[SYN_MAX_SEEDS];
  for (size_t i = 0; i < cfg->seed_count; i++) {
    if (syn_peer_url_default(cfg->seeds[i], peer_urls[i], sizeof peer_urls[i])) {
      snprintf(err, err_len, "--seeds: \"%s\" is not a tcp://HOST:PORT URL", cfg->seeds[i]);
      return -1;
    }
    seeds[i] = peer_urls[i];
  }
  syn_nodes_options no = {
      .cfg = cfg,
      .static_node_url = opts->node_url,
      .static_serve_inline = opts->node_serve_inline,
      .static_inline_ctx = opts->node_inline_ctx,
      .view = opts->view,
      .self_id = cfg->node_id,
      .peer_url = cfg->peer_addr,
      .seed_peer_urls = seeds,
      .seed_count = cfg->seed_count,
  };
  if (ws_enabled(cfg, opts)) {
    no.on_push = on_ws_push;
    no.push_ctx = r;
    no.ws_boot = r->ws_boot;
  }
  r->nodes = syn_nodes_open(loop, &no, err, err_len);
  return r->nodes ? 0 : -1;
}

syn_router *syn_router_start(uv_loop_t *loop, const syn_config *cfg, const syn_router_options *opts,
                             char *err, size_t err_len) {
  syn_router *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  r->loop = loop;
  randombytes_buf(&r->jitter_rng, sizeof r->jitter_rng);
  r->jitter_rng |= 1; /* xorshift's state is never 0 */
  r->cfg = cfg;
  r->opts = *opts;
  randombytes_buf(&r->ws_boot, sizeof r->ws_boot);
  if (open_nodes(r, loop, cfg, opts, err, err_len)) goto fail;
  if (syn_access_init(&r->access, cfg, err, err_len)) goto fail;
  r->tokens = syn_tokens_new(cfg, err, err_len);
  if (!r->tokens) goto fail;
  r->admin = (syn_admin){loop, cfg, &r->access, r->tokens, 0, true, "", NULL, false};
  if (cfg->rate_limit) {
    syn_rate_rule rules[SYN_LIMIT_CLASSES];
    for (int c = 0; c < SYN_LIMIT_CLASSES; c++)
      rules[c] = (syn_rate_rule){cfg->rate_per_s[c], cfg->rate_burst[c]};
    r->rates = syn_rate_table_new(cfg->rate_table_entries, rules);
    if (!r->rates) {
      snprintf(err, err_len, "out of memory");
      goto fail;
    }
  }
  r->http = syn_http_listen(loop, cfg, on_http_request, r, err, err_len);
  if (!r->http) goto fail;
  if (!opts->admin_only && cfg->udp_port) {
    r->udp = syn_udp_start(loop, cfg, on_udp_request, r, err, err_len);
    if (!r->udp) goto fail;
  }
  r->api = (syn_api){loop, cfg, r->nodes, &r->counters, r->tokens};
  r->scraper = (syn_scraper){loop, cfg, r->nodes, r->udp, &r->counters};
  if (ws_enabled(cfg, opts) && start_ws(r, loop, err, err_len)) goto fail;
  r->dashboard = syn_dashboard_start(loop, &r->counters);
  if (!r->dashboard) {
    snprintf(err, err_len, "out of memory");
    goto fail;
  }
  r->ops =
      (syn_ops){loop,      cfg,          r->nodes, r->http, r->udp, &r->counters, opts->admin_only,
                &r->admin, r->dashboard, r->ws};
  return r;
fail:
  syn_router_stop(r);
  return NULL;
}

void syn_router_reload(syn_router *r) {
  syn_admin_reload_start(&r->admin, NULL);
  char err[256] = "";
  if (!r->ws) return;
  if (syn_ws_tracker_reload(r->ws, err, sizeof err))
    syn_warn("reload: TLS certificate kept: %s", err);
  else if (r->cfg->wss_port)
    syn_info("reload: TLS certificate and key re-read from %s and %s", r->cfg->ws_cert_file,
             r->cfg->ws_key_file);
}

bool syn_router_refused(syn_router *r, char *why, size_t len) {
  return r->nodes && syn_nodes_refused(r->nodes, why, len);
}

void syn_router_stop(syn_router *r) {
  if (!r) return;
  /* WebSocket peers leave their swarms (best effort: nodes drop them anyway once this
   * router has left the membership). */
  syn_ws_tracker_stop(r->ws);
  /* Fail what is in flight first: replies may still be written to open connections. */
  if (r->nodes) syn_nodes_close(r->nodes);
  syn_ws_tracker_free(r->ws); /* after its requests in flight were failed */
  if (r->http) syn_http_close(r->http);
  if (r->udp) syn_udp_close(r->udp);
  syn_dashboard_close(r->dashboard);
  syn_buf_free(&r->scratch);
  syn_rate_table_free(r->rates);
  syn_admin_close(&r->admin); /* before what a reload in flight would install into */
  syn_access_free(&r->access);
  syn_tokens_free(r->tokens);
  free(r);
}
