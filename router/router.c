/* Router: request dispatch. Design notes:
 *
 * - Every request forwarded to a node gets a pending entry; the entry's id travels in the
 *   Request and comes back in the Reply. Ids carry a generation, so a reply for an entry
 *   that was already answered (late, duplicated, or failed by the upstream) is ignored.
 * - The upstream guarantees one reply per request within the deadline, so entries never
 *   leak and no sweep is needed.
 * - Counters live here and in the HTTP and UDP components; nothing on the hot path logs. */
#include "router/router.h"

#include <errno.h>
#include <jansson.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/upstream.h"
#include "common/bencode.h"
#include "common/buf.h"
#include "common/log.h"
#include "router/api.h"
#include "router/internal.h"
#include "router/tracker_query.h"

/* ---- pending table ---- */

static int pending_grow(syn_router *r) {
  uint32_t cap = r->pending_cap ? r->pending_cap * 2 : PENDING_INITIAL;
  if (cap > PENDING_MAX) return -EBUSY;
  pending *p = realloc(r->pending, sizeof *p * cap);
  if (!p) return -ENOMEM;
  memset(p + r->pending_cap, 0, sizeof *p * (cap - r->pending_cap));
  for (uint32_t i = r->pending_cap; i < cap; i++) p[i].next_free = i + 1 < cap ? i + 1 : UINT32_MAX;
  r->pending_free = r->pending_cap;
  r->pending = p;
  r->pending_cap = cap;
  return 0;
}

pending *syn_router_pending_take(syn_router *r, uint8_t kind, uint64_t *id) {
  if (r->pending_free == UINT32_MAX && pending_grow(r)) return NULL;
  uint32_t idx = r->pending_free;
  pending *p = &r->pending[idx];
  r->pending_free = p->next_free;
  p->kind = kind;
  p->generation++;
  r->pending_used++;
  *id = (uint64_t)p->generation << 32 | idx;
  return p;
}

void syn_router_pending_release(syn_router *r, pending *p) {
  p->kind = PENDING_FREE;
  p->slot = NULL;
  p->call = NULL;
  p->next_free = r->pending_free;
  r->pending_free = (uint32_t)(p - r->pending);
  r->pending_used--;
}

static pending *pending_find(syn_router *r, uint64_t id) {
  uint32_t idx = (uint32_t)id;
  if (idx >= r->pending_cap) return NULL;
  pending *p = &r->pending[idx];
  if (p->kind == PENDING_FREE || p->generation != (uint32_t)(id >> 32)) return NULL;
  return p;
}

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

static void respond_json(syn_http_slot *slot, int status, json_t *doc) {
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if (!text) {
    respond_text(slot, 500, "out of memory\n");
    return;
  }
  syn_http_respond(slot, status, "application/json", text, strlen(text), NULL);
  free(text);
}

static uint32_t wall_seconds(void) { return (uint32_t)time(NULL); }

static uint32_t clamp_numwant(const syn_config *cfg, int64_t asked) {
  if (asked < 0) return cfg->default_numwant;
  return asked > cfg->max_numwant ? cfg->max_numwant : (uint32_t)asked;
}

/* Submits a request; on failure answers through `fail` and releases the entry. */
int syn_router_submit(syn_router *r, pending *p, const Synapse__Request *req) {
  int rc = syn_upstream_submit(r->upstream, req);
  if (rc == 0) return 0;
  r->counters.overloaded++;
  syn_router_pending_release(r, p);
  return rc;
}

/* ---- HTTP announce and scrape ---- */

static void http_announce(syn_router *r, const syn_http_request *hr, syn_http_slot *slot) {
  syn_announce_query q;
  const char *err = syn_announce_query_parse(hr->query, hr->query_len, &q);
  if (err) {
    respond_failure(r, slot, err);
    return;
  }
  r->counters.http_announces++;
  uint64_t id;
  pending *p = syn_router_pending_take(r, PENDING_HTTP_ANNOUNCE, &id);
  if (!p) {
    respond_failure(r, slot, "tracker overloaded, retry later");
    return;
  }
  p->slot = slot;
  p->compact = q.compact;
  p->no_peer_id = q.no_peer_id;
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
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.id = id;
  req.body_case = SYNAPSE__REQUEST__BODY_ANNOUNCE;
  req.announce = &a;
  if (syn_router_submit(r, p, &req)) respond_failure(r, slot, "tracker overloaded, retry later");
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
  r->counters.http_scrapes++;
  uint64_t id;
  pending *p = syn_router_pending_take(r, PENDING_HTTP_SCRAPE, &id);
  if (!p) {
    respond_failure(r, slot, "tracker overloaded, retry later");
    return;
  }
  p->slot = slot;
  ProtobufCBinaryData hashes[SYN_SCRAPE_MAX_HASHES];
  for (size_t i = 0; i < q.count; i++) hashes[i] = (ProtobufCBinaryData){20, q.hashes[i]};
  Synapse__ScrapeRequest s = SYNAPSE__SCRAPE_REQUEST__INIT;
  s.n_info_hash = q.count;
  s.info_hash = hashes;
  s.has_max_full = 1;
  s.max_full = r->cfg->full_scrape_max;
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.id = id;
  req.body_case = SYNAPSE__REQUEST__BODY_SCRAPE;
  req.scrape = &s;
  if (syn_router_submit(r, p, &req)) respond_failure(r, slot, "tracker overloaded, retry later");
}

static void http_announce_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_ANNOUNCE) {
    respond_failure(r, p->slot, rep->message ? rep->message : "announce failed");
    return;
  }
  const Synapse__AnnounceReply *a = rep->announce;
  syn_announce_reply_view v = {
      .interval = r->cfg->announce_interval,
      .min_interval = r->cfg->min_interval,
      .complete = a->complete,
      .incomplete = a->incomplete,
      .downloaded = a->downloaded,
      .peers4 = a->peers4.data,
      .peers4_count = a->peers4.len / 6,
      .peers6 = a->peers6.data,
      .peers6_count = a->peers6.len / 18,
      .peer_ids4 = a->has_peer_ids4 && a->peer_ids4.len == a->peers4.len / 6 * 20 ? a->peer_ids4.data : NULL,
      .peer_ids6 = a->has_peer_ids6 && a->peer_ids6.len == a->peers6.len / 18 * 20 ? a->peer_ids6.data : NULL,
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

static void http_scrape_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_SCRAPE) {
    respond_failure(r, p->slot, rep->message ? rep->message : "scrape failed");
    return;
  }
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  const ProtobufCBinaryData *e = &rep->scrape->entries;
  if (syn_scrape_reply(b, e->data, e->len / 32)) {
    respond_failure(r, p->slot, "out of memory");
    return;
  }
  syn_http_respond(p->slot, 200, "text/plain", b->data, b->len, NULL);
}

/* ---- stats, metrics, readiness ---- */

static void request_stats(syn_router *r, uint8_t kind, syn_http_slot *slot) {
  uint64_t id;
  pending *p = syn_router_pending_take(r, kind, &id);
  if (!p) {
    respond_text(slot, 503, "overloaded\n");
    return;
  }
  p->slot = slot;
  Synapse__StatsRequest s = SYNAPSE__STATS_REQUEST__INIT;
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.id = id;
  req.body_case = SYNAPSE__REQUEST__BODY_STATS;
  req.stats = &s;
  if (syn_router_submit(r, p, &req)) respond_text(slot, 503, "overloaded\n");
}

static void metric(syn_buf *b, const char *name, const char *type, const char *help, uint64_t v) {
  syn_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                 (unsigned long long)v);
}

/* Search latency as a Prometheus histogram (seconds). */
static void search_histogram(syn_buf *b, const router_counters *c) {
  static const char *const le[8] = {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "1", "5"};
  syn_buf_printf(b, "# HELP synapse_search_latency_seconds Search latency at the router.\n"
                    "# TYPE synapse_search_latency_seconds histogram\n");
  for (int i = 0; i < 8; i++) {
    syn_buf_printf(b, "synapse_search_latency_seconds_bucket{le=\"%s\"} %llu\n", le[i],
                   (unsigned long long)c->search_latency_buckets[i]);
  }
  uint64_t count = c->search_latency_count;
  syn_buf_printf(b, "synapse_search_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                 (unsigned long long)count);
  syn_buf_printf(b, "synapse_search_latency_seconds_sum %.6f\n",
                 (double)c->search_latency_us_sum / 1e6);
  syn_buf_printf(b, "synapse_search_latency_seconds_count %llu\n", (unsigned long long)count);
}

static void metrics_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  const Synapse__StatsReply *s = rep->body_case == SYNAPSE__REPLY__BODY_STATS ? rep->stats : NULL;
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  const router_counters *c = &r->counters;
  syn_http_stats hs;
  syn_http_stats_get(r->http, &hs);
  syn_udp_stats us = {0};
  if (r->udp) syn_udp_stats_get(r->udp, &us);
  metric(b, "synapse_tracker_announces_total", "counter", "Announces received (HTTP and UDP).",
         c->http_announces + c->udp_announces);
  metric(b, "synapse_tracker_http_announces_total", "counter", "HTTP announces.", c->http_announces);
  metric(b, "synapse_tracker_udp_announces_total", "counter", "UDP announces.", c->udp_announces);
  metric(b, "synapse_tracker_scrapes_total", "counter", "Scrapes received (HTTP and UDP).",
         c->http_scrapes + c->udp_scrapes);
  metric(b, "synapse_tracker_failures_total", "counter", "Failure replies sent.", c->failures);
  metric(b, "synapse_tracker_overloaded_total", "counter", "Requests refused: node link full.",
         c->overloaded);
  metric(b, "synapse_tracker_node_errors_total", "counter", "Requests the node did not answer.",
         c->node_errors);
  metric(b, "synapse_tracker_udp_connects_total", "counter", "UDP connect requests.", us.connects);
  metric(b, "synapse_tracker_udp_dropped_total", "counter", "UDP packets dropped.", us.dropped);
  metric(b, "synapse_tracker_udp_bad_connection_id_total", "counter",
         "UDP requests with an invalid connection id.", us.bad_connection_id);
  metric(b, "synapse_tracker_http_connections", "gauge", "Open HTTP connections.",
         hs.connections_open);
  metric(b, "synapse_tracker_http_requests_total", "counter", "HTTP requests parsed.", hs.requests);
  metric(b, "synapse_tracker_http_rejected_total", "counter",
         "HTTP requests rejected by limits or parse errors.", hs.rejected);
  metric(b, "synapse_tracker_node_up", "gauge", "1 when the node answered this scrape.", s ? 1 : 0);
  if (s) {
    metric(b, "synapse_tracker_active_peers", "gauge", "Peers in the swarm store.", s->peers);
    metric(b, "synapse_tracker_active_seeders", "gauge", "Seeders in the swarm store.", s->seeders);
    metric(b, "synapse_tracker_active_torrents", "gauge", "Torrents with peers.", s->torrents);
    metric(b, "synapse_tracker_peer_bytes", "gauge", "Bytes held by peer records.", s->peer_bytes);
    metric(b, "synapse_shards_total", "gauge", "Shards registered.", s->shards);
    metric(b, "synapse_vector_index_size", "gauge", "Vectors in the node's indexes.", s->vectors);
  }
  metric(b, "synapse_registrations_total", "counter", "Shard registrations received.",
         c->registrations);
  metric(b, "synapse_search_queries_total", "counter", "Searches received.", c->searches);
  search_histogram(b, c);
  syn_http_respond(p->slot, 200, "text/plain; version=0.0.4", b->data, b->len, NULL);
}

static void stats_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_STATS) {
    respond_json(p->slot, 503,
                 json_pack("{s:s,s:s}", "status", "error", "error",
                           rep->message ? rep->message : "node unavailable"));
    return;
  }
  const Synapse__StatsReply *s = rep->stats;
  const router_counters *c = &r->counters;
  respond_json(p->slot, 200,
               json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "status", "success", "total_shards",
                         (json_int_t)s->shards, "total_peers", (json_int_t)s->peers, "total_seeders",
                         (json_int_t)s->seeders, "active_torrents", (json_int_t)s->torrents,
                         "total_announced", (json_int_t)(c->http_announces + c->udp_announces),
                         "total_scraped", (json_int_t)(c->http_scrapes + c->udp_scrapes)));
}

static void ready_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  bool ok = !rep->error && rep->body_case == SYNAPSE__REPLY__BODY_STATS;
  respond_text(p->slot, ok ? 200 : 503, ok ? "ready\n" : "node unavailable\n");
}

/* ---- UDP ---- */

static void udp_announce(syn_router *r, const syn_udp_request *u, const syn_udp_peer *from) {
  r->counters.udp_announces++;
  uint64_t id;
  pending *p = syn_router_pending_take(r, PENDING_UDP_ANNOUNCE, &id);
  if (!p) {
    syn_udp_send_error(r->udp, from, u->transaction_id, "tracker overloaded, retry later");
    return;
  }
  p->udp_tid = u->transaction_id;
  p->udp_peer = *from;
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
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.id = id;
  req.body_case = SYNAPSE__REQUEST__BODY_ANNOUNCE;
  req.announce = &a;
  if (syn_router_submit(r, p, &req))
    syn_udp_send_error(r->udp, from, u->transaction_id, "tracker overloaded, retry later");
}

static void udp_scrape(syn_router *r, const syn_udp_request *u, const syn_udp_peer *from) {
  r->counters.udp_scrapes++;
  uint64_t id;
  pending *p = syn_router_pending_take(r, PENDING_UDP_SCRAPE, &id);
  if (!p) {
    syn_udp_send_error(r->udp, from, u->transaction_id, "tracker overloaded, retry later");
    return;
  }
  p->udp_tid = u->transaction_id;
  p->udp_peer = *from;
  ProtobufCBinaryData hashes[SYN_UDP_MAX_SCRAPE];
  for (size_t i = 0; i < u->scrape_count; i++)
    hashes[i] = (ProtobufCBinaryData){20, (uint8_t *)u->scrape_hashes + 20 * i};
  Synapse__ScrapeRequest s = SYNAPSE__SCRAPE_REQUEST__INIT;
  s.n_info_hash = u->scrape_count;
  s.info_hash = hashes;
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.id = id;
  req.body_case = SYNAPSE__REQUEST__BODY_SCRAPE;
  req.scrape = &s;
  if (syn_router_submit(r, p, &req))
    syn_udp_send_error(r->udp, from, u->transaction_id, "tracker overloaded, retry later");
}

static void on_udp_request(void *ctx, const syn_udp_request *u, const syn_udp_peer *from) {
  syn_router *r = ctx;
  if (u->action == SYN_UDP_ANNOUNCE) udp_announce(r, u, from);
  else udp_scrape(r, u, from);
}

static void udp_announce_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_ANNOUNCE) {
    r->counters.failures++;
    syn_udp_send_error(r->udp, &p->udp_peer, p->udp_tid,
                       rep->message ? rep->message : "announce failed");
    return;
  }
  const Synapse__AnnounceReply *a = rep->announce;
  const ProtobufCBinaryData *peers = p->udp_peer.ip_len == 4 ? &a->peers4 : &a->peers6;
  uint8_t pkt[20 + 18 * 1000];
  size_t len = syn_udp_build_announce(pkt, sizeof pkt, p->udp_tid, r->cfg->announce_interval,
                                      a->incomplete, a->complete, peers->data, peers->len);
  if (len) syn_udp_send(r->udp, &p->udp_peer, pkt, len);
}

static uint32_t get_be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void udp_scrape_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_SCRAPE) {
    r->counters.failures++;
    syn_udp_send_error(r->udp, &p->udp_peer, p->udp_tid,
                       rep->message ? rep->message : "scrape failed");
    return;
  }
  uint8_t pkt[8 + 12 * SYN_UDP_MAX_SCRAPE];
  size_t len = syn_udp_build_scrape_header(pkt, sizeof pkt, p->udp_tid);
  const ProtobufCBinaryData *e = &rep->scrape->entries;
  for (size_t i = 0; i < e->len / 32 && i < SYN_UDP_MAX_SCRAPE; i++) {
    const uint8_t *x = e->data + 32 * i;
    len = syn_udp_put_scrape_entry(pkt, sizeof pkt, len, get_be32(x + 20), get_be32(x + 24),
                                   get_be32(x + 28));
  }
  if (len) syn_udp_send(r->udp, &p->udp_peer, pkt, len);
}

/* ---- replies from the node ---- */

static void on_node_reply(void *ctx, const Synapse__Reply *rep) {
  syn_router *r = ctx;
  pending *p = pending_find(r, rep->id);
  if (!p) return; /* already answered */
  if (rep->error == SYNAPSE__ERROR_CODE__UNAVAILABLE) r->counters.node_errors++;
  switch (p->kind) {
  case PENDING_HTTP_ANNOUNCE: http_announce_reply(r, p, rep); break;
  case PENDING_HTTP_SCRAPE: http_scrape_reply(r, p, rep); break;
  case PENDING_HTTP_STATS: stats_reply(r, p, rep); break;
  case PENDING_HTTP_METRICS: metrics_reply(r, p, rep); break;
  case PENDING_HTTP_READY: ready_reply(r, p, rep); break;
  case PENDING_UDP_ANNOUNCE: udp_announce_reply(r, p, rep); break;
  case PENDING_UDP_SCRAPE: udp_scrape_reply(r, p, rep); break;
  case PENDING_API: syn_api_on_reply(r, p, rep); break;
  default: break;
  }
  syn_router_pending_release(r, p);
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

static void on_http_request(void *ctx, const syn_http_request *req, syn_http_slot *slot) {
  syn_router *r = ctx;
  bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
  if (path_is(req, "/healthz")) {
    respond_text(slot, 200, "ok\n");
  } else if (path_is(req, "/readyz")) {
    request_stats(r, PENDING_HTTP_READY, slot);
  } else if (path_is(req, "/metrics")) {
    request_stats(r, PENDING_HTTP_METRICS, slot);
  } else if (r->opts.admin_only) {
    respond_text(slot, 404, "not found\n");
  } else if (path_is(req, "/announce")) {
    if (get) http_announce(r, req, slot);
    else method_not_allowed(slot, "GET");
  } else if (path_is(req, "/scrape")) {
    if (get) http_scrape(r, req, slot);
    else method_not_allowed(slot, "GET");
  } else if (path_is(req, "/api/stats")) {
    if (get) request_stats(r, PENDING_HTTP_STATS, slot);
    else method_not_allowed(slot, "GET");
  } else if (syn_api_handle(r, req, slot)) {
    /* answered by the JSON API */
  } else {
    const char *body = "{\"status\":\"error\",\"error\":\"not found\"}";
    syn_http_respond(slot, 404, "application/json", body, strlen(body), NULL);
  }
}

/* ---- lifetime ---- */

syn_router *syn_router_start(uv_loop_t *loop, const syn_config *cfg,
                             const syn_router_options *opts, char *err, size_t err_len) {
  syn_router *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  r->loop = loop;
  r->cfg = cfg;
  r->opts = *opts;
  r->pending_free = UINT32_MAX;
  syn_upstream_options uo = {
      .url = opts->node_url,
      .timeout_ms = cfg->request_timeout_ms,
      .window = 4,
      .max_batch = 1024,
      .on_reply = on_node_reply,
      .ctx = r,
  };
  r->upstream = syn_upstream_open(loop, &uo, err, err_len);
  if (!r->upstream) goto fail;
  r->http = syn_http_listen(loop, cfg, on_http_request, r, err, err_len);
  if (!r->http) goto fail;
  if (!opts->admin_only && cfg->udp_port) {
    r->udp = syn_udp_start(loop, cfg, on_udp_request, r, err, err_len);
    if (!r->udp) goto fail;
  }
  return r;
fail:
  syn_router_stop(r);
  return NULL;
}

void syn_router_stop(syn_router *r) {
  if (!r) return;
  /* Fail what is in flight first: replies may still be written to open connections. */
  if (r->upstream) syn_upstream_close(r->upstream);
  if (r->http) syn_http_close(r->http);
  if (r->udp) syn_udp_close(r->udp);
  free(r->pending);
  syn_buf_free(&r->scratch);
  free(r);
}
