/* Operations endpoints. A gather is one HTTP request waiting for a StatsReply from each
 * node it asked; it answers when the last one arrived or failed (the upstream deadline
 * bounds the wait). */
#include "router/ops.h"

#include <jansson.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "router/api_json.h"

enum gather_kind { GATHER_METRICS, GATHER_STATS, GATHER_READY, GATHER_STATUS };

typedef struct node_figures {
  char id[72];
  bool self; /* this process's own node (a node's admin port) */
  bool answered;
  Synapse__StatsReply stats; /* copied scalars */
} node_figures;

/* Operations answers do not wait for a node that went silent: after OPS_DEADLINE_MS the
 * answer goes out with what arrived (marked partial); late replies are just counted. */
#define OPS_DEADLINE_MS 300

typedef struct gather {
  enum gather_kind kind;
  syn_http_slot *slot;
  syn_router *router;
  uv_timer_t timer;
  bool responded;
  bool timer_closed;
  uint32_t outstanding;
  uint32_t asked;
  uint32_t answered;
  Synapse__StatsReply sum;
  node_figures nodes[SYN_CLUSTER_MAX_NODES];
} gather;

static void respond_doc(syn_http_slot *slot, int status, json_t *doc) {
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  syn_http_respond(slot, text ? status : 500, "application/json", text ? text : "{}",
                   text ? strlen(text) : 2, NULL);
  free(text);
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
  for (int i = 0; i < 8; i++)
    syn_buf_printf(b, "synapse_search_latency_seconds_bucket{le=\"%s\"} %llu\n", le[i],
                   (unsigned long long)c->search_latency_buckets[i]);
  syn_buf_printf(b, "synapse_search_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                 (unsigned long long)c->search_latency_count);
  syn_buf_printf(b, "synapse_search_latency_seconds_sum %.6f\n",
                 (double)c->search_latency_us_sum / 1e6);
  syn_buf_printf(b, "synapse_search_latency_seconds_count %llu\n",
                 (unsigned long long)c->search_latency_count);
}

static void router_metrics(syn_router *r, syn_buf *b) {
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
  metric(b, "synapse_tracker_node_errors_total", "counter", "Requests a node did not answer.",
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
  metric(b, "synapse_registrations_total", "counter", "Shard registrations received.",
         c->registrations);
  metric(b, "synapse_search_queries_total", "counter", "Searches received.", c->searches);
  search_histogram(b, c);
}

static void finish_metrics(syn_router *r, gather *g) {
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  router_metrics(r, b);
  const Synapse__StatsReply *s = &g->sum;
  metric(b, "synapse_tracker_nodes_asked", "gauge", "Nodes asked for figures.", g->asked);
  metric(b, "synapse_tracker_nodes_answered", "gauge", "Nodes that answered.", g->answered);
  metric(b, "synapse_tracker_active_peers", "gauge", "Peers in the swarm stores.", s->peers);
  metric(b, "synapse_tracker_active_seeders", "gauge", "Seeders in the swarm stores.", s->seeders);
  metric(b, "synapse_tracker_active_torrents", "gauge", "Torrents with peers.", s->torrents);
  metric(b, "synapse_tracker_peer_bytes", "gauge", "Bytes held by peer records.", s->peer_bytes);
  metric(b, "synapse_shards_total", "gauge", "Shards registered (replicas counted).", s->shards);
  metric(b, "synapse_vector_index_size", "gauge", "Vectors in the nodes' indexes.", s->vectors);
  metric(b, "synapse_node_searches_total", "counter", "Searches served by nodes.", s->searches);
  syn_http_respond(g->slot, 200, "text/plain; version=0.0.4", b->data, b->len, NULL);
}

static void finish_stats(syn_router *r, gather *g) {
  if (g->answered == 0) {
    respond_doc(g->slot, 503, syn_api_error("no node answered"));
    return;
  }
  /* Every shard and swarm is held by R nodes: the sums count each R times. */
  uint32_t rf = syn_cluster_replication(r->cluster);
  Synapse__StatsReply unique = g->sum;
  unique.shards = (g->sum.shards + rf / 2) / rf;
  unique.peers = (g->sum.peers + rf / 2) / rf;
  unique.seeders = (g->sum.seeders + rf / 2) / rf;
  unique.torrents = (g->sum.torrents + rf / 2) / rf;
  const Synapse__StatsReply *s = &unique;
  const router_counters *c = &r->counters;
  respond_doc(g->slot, 200,
              json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "status", "success", "total_shards",
                        (json_int_t)s->shards, "total_peers", (json_int_t)s->peers, "total_seeders",
                        (json_int_t)s->seeders, "active_torrents", (json_int_t)s->torrents,
                        "total_announced", (json_int_t)(c->http_announces + c->udp_announces),
                        "total_scraped", (json_int_t)(c->http_scrapes + c->udp_scrapes),
                        "partial", g->answered < g->asked));
}

static void finish_status(syn_router *r, gather *g) {
  json_t *members = syn_cluster_members_json(r->cluster);
  size_t i;
  json_t *m;
  json_array_foreach(members, i, m) {
    const char *id = json_string_value(json_object_get(m, "id"));
    const node_figures *f = NULL;
    for (uint32_t k = 0; k < g->asked && !f; k++)
      if (g->nodes[k].answered && id && !strcmp(g->nodes[k].id, id)) f = &g->nodes[k];
    json_object_set_new(m, "swarms", f ? json_integer((json_int_t)f->stats.torrents) : json_null());
    json_object_set_new(m, "peers", f ? json_integer((json_int_t)f->stats.peers) : json_null());
    json_object_set_new(m, "shards", f ? json_integer((json_int_t)f->stats.shards) : json_null());
  }
  const syn_config *cfg = r->cfg;
  bool clustered = cfg->role != SYN_PROCESS_STANDALONE;
  respond_doc(g->slot, 200,
              json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:o}", "status", "success", "self",
                        cfg->node_id, "role", syn_role_name(cfg->role), "partitions",
                        clustered ? (int)cfg->partitions : 1, "replication_factor",
                        clustered ? (int)cfg->replication : 1, "write_quorum",
                        clustered ? (int)cfg->write_quorum : 1, "members", members));
}

static void respond_once(syn_router *r, gather *g) {
  if (g->responded) return;
  g->responded = true;
  switch (g->kind) {
  case GATHER_METRICS: finish_metrics(r, g); break;
  case GATHER_STATS: finish_stats(r, g); break;
  case GATHER_STATUS: finish_status(r, g); break;
  case GATHER_READY: { /* a node's admin port: joined, and this node caught up */
    bool ok = g->answered > 0 && syn_cluster_ready(r->cluster);
    for (uint32_t k = 0; k < g->asked; k++)
      if (g->nodes[k].self && !(g->nodes[k].answered && g->nodes[k].stats.caught_up)) ok = false;
    syn_http_respond(g->slot, ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n",
                     ok ? 6 : 10, NULL);
    break;
  }
  }
}

static void on_timer_closed(uv_handle_t *h) {
  gather *g = h->data;
  g->timer_closed = true;
  if (g->outstanding == 0) free(g);
}

static void close_timer(gather *g) {
  if (!uv_is_closing((uv_handle_t *)&g->timer)) uv_close((uv_handle_t *)&g->timer, on_timer_closed);
}

static void on_deadline(uv_timer_t *t) {
  gather *g = t->data;
  respond_once(g->router, g);
  close_timer(g);
}

/* The last expected reply (or failure) arrived. */
static void finish(syn_router *r, gather *g) {
  respond_once(r, g);
  if (g->timer_closed) free(g);
  else close_timer(g);
}

static void add(Synapse__StatsReply *sum, const Synapse__StatsReply *s) {
  sum->torrents += s->torrents;
  sum->peers += s->peers;
  sum->seeders += s->seeders;
  sum->announces += s->announces;
  sum->scrapes += s->scrapes;
  sum->peer_bytes += s->peer_bytes;
  sum->shards += s->shards;
  sum->vectors += s->vectors;
  sum->searches += s->searches;
}

void syn_ops_on_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  gather *g = p->gather;
  node_figures *f = &g->nodes[p->node_index];
  if (!rep->error && rep->body_case == SYNAPSE__REPLY__BODY_STATS) {
    f->answered = true;
    f->stats = *rep->stats;
    add(&g->sum, rep->stats);
    g->answered++;
  }
  if (--g->outstanding == 0) finish(r, g);
}

static void start_gather(syn_router *r, enum gather_kind kind, syn_http_slot *slot) {
  gather *g = calloc(1, sizeof *g);
  if (!g) {
    syn_http_respond(slot, 500, "text/plain", "out of memory\n", 14, NULL);
    return;
  }
  g->kind = kind;
  g->slot = slot;
  g->router = r;
  uv_timer_init(r->loop, &g->timer);
  g->timer.data = g;
  uv_timer_start(&g->timer, on_deadline, OPS_DEADLINE_MS, 0);
  int slots[SYN_CLUSTER_MAX_NODES];
  size_t n = syn_cluster_fanout(r->cluster, slots, SYN_CLUSTER_MAX_NODES);
  Synapse__StatsRequest s = SYNAPSE__STATS_REQUEST__INIT;
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.body_case = SYNAPSE__REQUEST__BODY_STATS;
  req.stats = &s;
  g->outstanding = 1; /* held until every request is out, so none can finish early */
  for (size_t i = 0; i < n; i++) {
    uint64_t id;
    pending *p = syn_router_pending_take(r, PENDING_GATHER, &id);
    if (!p) break;
    const char *node_id = syn_cluster_slot_id(r->cluster, slots[i]);
    snprintf(g->nodes[g->asked].id, sizeof g->nodes[g->asked].id, "%s", node_id ? node_id : "");
    g->nodes[g->asked].self = syn_cluster_slot_is_self(r->cluster, slots[i]);
    p->gather = g;
    p->node_index = g->asked;
    req.id = id;
    if (syn_router_submit(r, p, slots[i], &req)) continue;
    g->asked++;
    g->outstanding++;
  }
  if (--g->outstanding == 0) finish(r, g);
}

static bool path_is(const syn_http_request *req, const char *path) {
  size_t n = strlen(path);
  return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static void owner(syn_router *r, const syn_http_request *req, syn_http_slot *slot) {
  const char *hex = req->path + strlen("/cluster/owner/");
  size_t len = req->path_len - strlen("/cluster/owner/");
  char norm[65];
  uint8_t key[20];
  if (syn_api_parse_hash(hex, len, norm, key)) {
    respond_doc(slot, 400, syn_api_error("info_hash must be 40 or 64 hexadecimal characters"));
    return;
  }
  json_t *doc = syn_cluster_owner_json(r->cluster, key);
  json_object_set_new(doc, "info_hash", json_string(norm));
  respond_doc(slot, 200, doc);
}

bool syn_ops_handle(syn_router *r, const syn_http_request *req, syn_http_slot *slot) {
  bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
  enum gather_kind kind;
  if (path_is(req, "/metrics")) kind = GATHER_METRICS;
  else if (path_is(req, "/readyz")) kind = GATHER_READY;
  else if (path_is(req, "/cluster/status")) kind = GATHER_STATUS;
  else if (path_is(req, "/api/stats") && !r->opts.admin_only) kind = GATHER_STATS;
  else if (req->path_len > 15 && !memcmp(req->path, "/cluster/owner/", 15)) {
    if (get) owner(r, req, slot);
    else respond_doc(slot, 405, syn_api_error("method not allowed"));
    return true;
  } else return false;
  if (!get) {
    respond_doc(slot, 405, syn_api_error("method not allowed"));
    return true;
  }
  if (kind == GATHER_READY && !r->opts.admin_only) { /* a router is ready with its view */
    bool ok = syn_cluster_ready(r->cluster);
    syn_http_respond(slot, ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n",
                     ok ? 6 : 10, NULL);
    return true;
  }
  start_gather(r, kind, slot);
  return true;
}
