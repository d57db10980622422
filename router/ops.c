/* Operations endpoints. A gather is one HTTP request waiting, as one call group, for a
 * StatsReply from each node it asked; the group's completion answers and frees it. */
#include "router/ops.h"

#include <jansson.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/admin.h"
#include "router/api_json.h"
#include "router/call_group.h"
#include "router/client_limits.h"
#include "router/dashboard.h"
#include "router/ws_tracker.h"

enum gather_kind { GATHER_METRICS, GATHER_STATS, GATHER_READY, GATHER_STATUS, GATHER_PAGE };

#define LAGS_KEPT 16

/* One replica's lag as a node reported it. */
typedef struct lag_figure {
  char peer[SYN_MEMBER_ID_MAX + 1];
  uint64_t lag_ms, queued, dropped;
} lag_figure;

#define ROUNDS_KEPT 2

/* One kind of replica comparison as a node reported it (Synapse__SyncRound). */
typedef struct round_figure {
  char kind[16];
  uint64_t rounds, duration_us, partitions, buckets, keys, records, records_total;
} round_figure;

typedef struct node_figures {
  char id[SYN_MEMBER_ID_MAX + 8];
  bool self; /* this process's own node (a node's admin port) */
  bool answered;
  Synapse__StatsReply stats; /* copied scalars (its pointers are not kept) */
  lag_figure lag[LAGS_KEPT];
  uint32_t n_lag;
  round_figure rounds[ROUNDS_KEPT];
  uint32_t n_rounds;
} node_figures;

/* Operations answers do not wait for a node that went silent: after OPS_DEADLINE_MS the
 * answer goes out with what arrived (marked partial). */
#define OPS_DEADLINE_MS 300

typedef struct gather {
  enum gather_kind kind;
  syn_ops ops;
  syn_http_slot *slot;
  uint32_t asked;
  uint32_t answered;
  Synapse__StatsReply sum;
  node_figures nodes[SYN_NODES_MAX];
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
static void search_histogram(syn_buf *b, const syn_router_counters *c) {
  static const char *const le[SYN_LATENCY_BUCKETS] = SYN_LATENCY_BOUNDS_LE;
  syn_buf_printf(b,
                 "# HELP synapse_search_latency_seconds Search latency at the router.\n"
                 "# TYPE synapse_search_latency_seconds histogram\n");
  for (int i = 0; i < SYN_LATENCY_BUCKETS; i++)
    syn_buf_printf(b, "synapse_search_latency_seconds_bucket{le=\"%s\"} %llu\n", le[i],
                   (unsigned long long)c->search_latency_buckets[i]);
  syn_buf_printf(b, "synapse_search_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                 (unsigned long long)c->search_latency_count);
  syn_buf_printf(b, "synapse_search_latency_seconds_sum %.6f\n",
                 (double)c->search_latency_us_sum / 1e6);
  syn_buf_printf(b, "synapse_search_latency_seconds_count %llu\n",
                 (unsigned long long)c->search_latency_count);
}

/* What the per-client limits and deadlines refused, by class and reason. */
static void http_defence_metrics(syn_buf *b, const syn_router_counters *c,
                                 const syn_http_stats *hs) {
  syn_buf_printf(b,
                 "# HELP synapse_tracker_rate_limited_total Requests refused over a "
                 "client's rate (429, BEP 15 error).\n"
                 "# TYPE synapse_tracker_rate_limited_total counter\n");
  for (int i = 0; i < SYN_LIMIT_CLASSES; i++)
    syn_buf_printf(b, "synapse_tracker_rate_limited_total{class=\"%s\"} %llu\n",
                   syn_limit_class_name((syn_limit_class)i),
                   (unsigned long long)c->rate_limited[i]);
  syn_buf_printf(b,
                 "# HELP synapse_tracker_http_connections_refused_total Connections "
                 "closed at accept, by reason.\n"
                 "# TYPE synapse_tracker_http_connections_refused_total counter\n");
  const struct {
    const char *reason;
    uint64_t n;
  } refused[] = {{"per_client", hs->refused_per_client},
                 {"max_connections", hs->refused_max_connections},
                 {"no_descriptor", hs->refused_no_descriptor}};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    syn_buf_printf(b, "synapse_tracker_http_connections_refused_total{reason=\"%s\"} %llu\n",
                   refused[i].reason, (unsigned long long)refused[i].n);
  syn_buf_printf(b,
                 "# HELP synapse_tracker_http_connections_by_state Open HTTP connections "
                 "by state.\n# TYPE synapse_tracker_http_connections_by_state gauge\n");
  const struct {
    const char *state;
    uint64_t n;
  } states[] = {{"reading_head", hs->reading_head},
                {"waiting", hs->waiting},
                {"idle", hs->idle},
                {"lingering", hs->lingering}};
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
    syn_buf_printf(b, "synapse_tracker_http_connections_by_state{state=\"%s\"} %llu\n",
                   states[i].state, (unsigned long long)states[i].n);
  metric(b, "synapse_tracker_http_header_timeouts_total", "counter",
         "Requests whose head did not arrive within limits.header_timeout_ms.",
         hs->header_timeouts);
  metric(b, "synapse_tracker_http_idle_closed_total", "counter",
         "Keep-alive connections closed after limits.idle_timeout_ms idle.", hs->idle_closed);
}

static void ws_metrics(const syn_ops *o, syn_buf *b) {
  if (!o->ws) return;
  syn_ws_tracker_stats ws;
  syn_ws_tracker_stats_get(o->ws, &ws);
  metric(b, "synapse_tracker_ws_sockets", "gauge", "Open WebSocket (WebTorrent) connections.",
         ws.sockets);
  metric(b, "synapse_tracker_ws_announces_total", "counter", "WebSocket announces and answers.",
         ws.announces);
  metric(b, "synapse_tracker_ws_scrapes_total", "counter", "WebSocket scrapes.", ws.scrapes);
  metric(b, "synapse_tracker_ws_failures_total", "counter",
         "WebSocket messages answered with a failure reason.", ws.failures);
  metric(b, "synapse_tracker_ws_signals_delivered_total", "counter",
         "Offers and answers delivered to a WebSocket here.", ws.signals_in);
  metric(b, "synapse_tracker_ws_signals_lost_total", "counter",
         "Offers and answers whose receiver was no longer connected here.", ws.signals_lost);
  metric(b, "synapse_tracker_ws_handshakes_refused_total", "counter",
         "WebSocket handshakes refused (per-client cap, bad requests).", ws.handshakes_refused);
  metric(b, "synapse_tracker_ws_closed_slow_total", "counter",
         "WebSocket clients cut off for not reading what they were sent.", ws.closed_slow);
}

static void router_metrics(const syn_ops *o, syn_buf *b) {
  const syn_router_counters *c = o->counters;
  syn_http_stats hs;
  syn_http_stats_get(o->http, &hs);
  syn_udp_stats us = {0};
  if (o->udp) syn_udp_stats_get(o->udp, &us);
  syn_nodes_stats ns;
  syn_nodes_stats_get(o->nodes, &ns);
  ws_metrics(o, b);
  metric(b, "synapse_tracker_announces_total", "counter", "Announces received (HTTP and UDP).",
         c->http_announces + c->udp_announces);
  metric(b, "synapse_tracker_http_announces_total", "counter", "HTTP announces.",
         c->http_announces);
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
  http_defence_metrics(b, c, &hs);
  syn_admin_metrics(o->admin, b);
  metric(b, "synapse_tracker_http_requests_total", "counter", "HTTP requests parsed.", hs.requests);
  metric(b, "synapse_tracker_http_rejected_total", "counter",
         "HTTP requests rejected by limits or parse errors.", hs.rejected);
  metric(b, "synapse_registrations_total", "counter", "Shard registrations received.",
         c->registrations);
  metric(b, "synapse_search_queries_total", "counter", "Searches received.", c->searches);
  metric(b, "synapse_search_partitions_rerouted_total", "counter",
         "Search partitions asked of their next replica (unserved or failed).",
         c->search_partitions_rerouted);
  metric(b, "synapse_search_partitions_missed_total", "counter",
         "Search partitions no replica answered for (partial answers).",
         c->search_partitions_missed);
  metric(b, "synapse_search_copies_dropped_total", "counter",
         "Search hits dropped as a second copy of a shard.", c->search_copies_dropped);
  metric(b, "synapse_router_failovers_total", "counter",
         "Requests resent to the next replica after a node failed to answer.", ns.failovers);
  metric(b, "synapse_router_node_link_losses_total", "counter", "Connections to nodes that broke.",
         ns.link_losses);
  metric(b, "synapse_router_node_failures_total", "counter",
         "Batches a node did not answer in time.", ns.node_failures);
  search_histogram(b, c);
}

/* Replication lag per (node, replica): the age of the oldest swarm update the node has
 * not yet had acknowledged by that replica. */
static void replication_metrics(syn_buf *b, const gather *g) {
  syn_buf_printf(b,
                 "# HELP synapse_replication_lag_seconds Age of the oldest swarm update a "
                 "node has queued for a replica and not had acknowledged.\n"
                 "# TYPE synapse_replication_lag_seconds gauge\n");
  for (uint32_t k = 0; k < g->asked; k++)
    for (uint32_t i = 0; g->nodes[k].answered && i < g->nodes[k].n_lag; i++)
      syn_buf_printf(b, "synapse_replication_lag_seconds{node=\"%s\",replica=\"%s\"} %.3f\n",
                     g->nodes[k].id, g->nodes[k].lag[i].peer,
                     (double)g->nodes[k].lag[i].lag_ms / 1000.0);
  syn_buf_printf(b,
                 "# HELP synapse_replication_dropped_total Swarm updates dropped because a "
                 "replica's queue was full.\n"
                 "# TYPE synapse_replication_dropped_total counter\n");
  for (uint32_t k = 0; k < g->asked; k++)
    for (uint32_t i = 0; g->nodes[k].answered && i < g->nodes[k].n_lag; i++)
      syn_buf_printf(b, "synapse_replication_dropped_total{node=\"%s\",replica=\"%s\"} %llu\n",
                     g->nodes[k].id, g->nodes[k].lag[i].peer,
                     (unsigned long long)g->nodes[k].lag[i].dropped);
}

/* What each node's last catch-up pass and anti-entropy round cost. */
static void sync_metric(syn_buf *b, const gather *g, const char *name, const char *type,
                        const char *help, int field) {
  syn_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  for (uint32_t k = 0; k < g->asked; k++) {
    const node_figures *f = &g->nodes[k];
    for (uint32_t i = 0; f->answered && i < f->n_rounds; i++) {
      const round_figure *r = &f->rounds[i];
      const uint64_t v[] = {r->rounds, r->duration_us, r->partitions,   r->buckets,
                            r->keys,   r->records,     r->records_total};
      if (field == 1)
        syn_buf_printf(b, "%s{node=\"%s\",kind=\"%s\"} %.6f\n", name, f->id, r->kind,
                       (double)v[1] / 1e6);
      else
        syn_buf_printf(b, "%s{node=\"%s\",kind=\"%s\"} %llu\n", name, f->id, r->kind,
                       (unsigned long long)v[field]);
    }
  }
}

static void sync_metrics(syn_buf *b, const gather *g) {
  sync_metric(b, g, "synapse_sync_rounds_total", "counter",
              "Comparisons with the other replicas (kind catch_up or anti_entropy).", 0);
  sync_metric(b, g, "synapse_sync_last_round_seconds", "gauge",
              "How long the last round of the kind took.", 1);
  sync_metric(b, g, "synapse_sync_last_round_partitions_differing", "gauge",
              "Partitions whose digests differed in the last round.", 2);
  sync_metric(b, g, "synapse_sync_last_round_buckets_differing", "gauge",
              "Buckets whose digests differed in the last round.", 3);
  sync_metric(b, g, "synapse_sync_last_round_keys_compared", "gauge",
              "Key versions compared in the last round.", 4);
  sync_metric(b, g, "synapse_sync_last_round_records_pulled", "gauge",
              "Records (shards and tombstones) pulled in the last round.", 5);
  sync_metric(b, g, "synapse_sync_records_pulled_total", "counter",
              "Records pulled by rounds of the kind since start.", 6);
}

/* This process's failure detector (SWIM with Lifeguard). */
static void membership_metrics(syn_buf *b, syn_membership *m) {
  if (!m) return;
  syn_membership_stats st;
  syn_membership_stats_get(m, &st);
  metric(b, "synapse_membership_probes_total", "counter", "Probes sent.", st.probes);
  metric(b, "synapse_membership_probes_failed_total", "counter",
         "Probes answered neither directly nor indirectly.", st.probes_failed);
  metric(b, "synapse_membership_suspicions_total", "counter", "Members suspected here.",
         st.suspicions);
  metric(b, "synapse_membership_confirmations_total", "counter",
         "Independent confirmations of suspicions (Lifeguard).", st.confirmations);
  metric(b, "synapse_membership_deaths_total", "counter", "Members declared dead here.", st.deaths);
  metric(b, "synapse_membership_refutations_total", "counter",
         "Times this member refuted a suspicion about itself.", st.refutations);
  metric(b, "synapse_membership_local_health", "gauge",
         "Lifeguard local health score (0 healthy; timeouts scale by score + 1).", st.awareness);
  metric(b, "synapse_membership_pauses_total", "counter",
         "Gossip turns two seconds or more late (the process was paused or starved).",
         syn_membership_pauses(m));
  metric(b, "synapse_cluster_auth_failures_total", "counter",
         "Cluster messages dropped for a missing or wrong MAC (common/cluster_auth.h).",
         st.auth_failures);
}

static void finish_metrics(gather *g) {
  syn_buf buf = SYN_BUF_INIT, *b = &buf;
  router_metrics(&g->ops, b);
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
  metric(b, "synapse_node_search_partitions_total", "counter",
         "Partitions nodes searched for routers' searches.", s->search_partitions);
  metric(b, "synapse_node_search_partitions_unserved_total", "counter",
         "Partitions nodes were asked for and could not serve yet.", s->search_partitions_unserved);
  metric(b, "synapse_announces_early_total", "counter",
         "Announces sooner than min interval: answered, not applied.", s->announces_early);
  metric(b, "synapse_swarm_snapshot_peers_loaded", "gauge",
         "Peers restored from the swarm snapshot at start.", s->snapshot_peers_loaded);
  metric(b, "synapse_swarm_snapshot_peers_saved", "gauge",
         "Peers in that snapshot, as the last stop saved them.", s->snapshot_peers_saved);
  metric(b, "synapse_swarm_snapshot_peers_expired", "gauge",
         "Peers of that snapshot dropped at load: expired meanwhile.", s->snapshot_peers_expired);
  syn_buf_printf(b,
                 "# HELP synapse_swarm_snapshot_load_seconds Time the swarm snapshot load took "
                 "(the slowest node).\n# TYPE synapse_swarm_snapshot_load_seconds gauge\n"
                 "synapse_swarm_snapshot_load_seconds %.6f\n",
                 (double)s->snapshot_load_us / 1e6);
  metric(b, "synapse_ws_peers", "gauge",
         "WebSocket (WebTorrent) peers in the swarm stores (replicas counted).", s->ws_peers);
  metric(b, "synapse_ws_signals_total", "counter",
         "Offers and answers the nodes handed on to a receiver.", s->ws_signals);
  metric(b, "synapse_ws_signals_dropped_total", "counter",
         "Offers and answers the nodes dropped (receiver gone, outbox full).",
         s->ws_signals_dropped);
  replication_metrics(b, g);
  sync_metrics(b, g);
  membership_metrics(b, syn_nodes_membership(g->ops.nodes));
  syn_http_respond(g->slot, 200, "text/plain; version=0.0.4", b->data, b->len, NULL);
  syn_buf_free(b);
}

static void finish_stats(gather *g) {
  if (g->answered == 0) {
    respond_doc(g->slot, 503, syn_api_error("no node answered"));
    return;
  }
  /* Every shard and swarm is held by R nodes: the sums count each R times. */
  uint32_t rf = syn_nodes_replication(g->ops.nodes);
  Synapse__StatsReply unique = g->sum;
  unique.shards = (g->sum.shards + rf / 2) / rf;
  unique.peers = (g->sum.peers + rf / 2) / rf;
  unique.seeders = (g->sum.seeders + rf / 2) / rf;
  unique.torrents = (g->sum.torrents + rf / 2) / rf;
  const Synapse__StatsReply *s = &unique;
  const syn_router_counters *c = g->ops.counters;
  respond_doc(
      g->slot, 200,
      json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "status", "success", "total_shards",
                (json_int_t)s->shards, "total_peers", (json_int_t)s->peers, "websocket_peers",
                (json_int_t)((g->sum.ws_peers + rf / 2) / rf), "total_seeders",
                (json_int_t)s->seeders, "active_torrents", (json_int_t)s->torrents,
                "total_announced", (json_int_t)(c->http_announces + c->udp_announces),
                "total_scraped", (json_int_t)(c->http_scrapes + c->udp_scrapes), "partial",
                g->answered < g->asked));
}

static json_t *status_doc(gather *g) {
  json_t *members = syn_nodes_members_json(g->ops.nodes);
  size_t i;
  json_t *m;
  json_array_foreach(members, i, m) {
    const char *id = json_string_value(json_object_get(m, "id"));
    const node_figures *f = NULL;
    for (uint32_t k = 0; k < g->asked && !f; k++)
      if (g->nodes[k].answered && id && !strcmp(g->nodes[k].id, id)) f = &g->nodes[k];
    json_object_set_new(m, "swarms", f ? json_integer((json_int_t)f->stats.torrents) : json_null());
    json_object_set_new(m, "peers", f ? json_integer((json_int_t)f->stats.peers) : json_null());
    json_object_set_new(m, "websocket_peers",
                        f ? json_integer((json_int_t)f->stats.ws_peers) : json_null());
    json_object_set_new(m, "shards", f ? json_integer((json_int_t)f->stats.shards) : json_null());
    json_object_set_new(m, "search_partitions",
                        f ? json_integer((json_int_t)f->stats.search_partitions) : json_null());
    json_object_set_new(
        m, "search_partitions_unserved",
        f ? json_integer((json_int_t)f->stats.search_partitions_unserved) : json_null());
    json_object_set_new(m, "caught_up", f ? json_boolean(f->stats.caught_up) : json_null());
    json_t *lag = f ? json_object() : json_null();
    uint64_t worst = 0;
    for (uint32_t j = 0; f && j < f->n_lag; j++) {
      json_object_set_new(lag, f->lag[j].peer, json_integer((json_int_t)f->lag[j].lag_ms));
      if (f->lag[j].lag_ms > worst) worst = f->lag[j].lag_ms;
    }
    json_object_set_new(m, "replication_lag_ms", lag);
    json_object_set_new(m, "replication_lag_max_ms",
                        f ? json_integer((json_int_t)worst) : json_null());
  }
  const syn_config *cfg = g->ops.cfg;
  bool clustered = cfg->role != SYN_PROCESS_STANDALONE;
  return json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:o}", "status", "success", "self", cfg->node_id,
                   "role", syn_role_name(cfg->role), "partitions",
                   clustered ? (int)cfg->partitions : 1, "replication_factor",
                   clustered ? (int)cfg->replication : 1, "write_quorum",
                   clustered ? (int)cfg->write_quorum : 1, "members", members);
}

/* /cluster/status, or the status page with its members table (router/dashboard.h). */
static void finish_status(gather *g) {
  json_t *doc = status_doc(g);
  if (g->kind == GATHER_PAGE) {
    syn_dashboard_page(g->slot, doc);
    json_decref(doc);
  } else {
    respond_doc(g->slot, 200, doc);
  }
}

static void respond(gather *g) {
  switch (g->kind) {
  case GATHER_METRICS: finish_metrics(g); break;
  case GATHER_STATS: finish_stats(g); break;
  case GATHER_STATUS:
  case GATHER_PAGE: finish_status(g); break;
  case GATHER_READY: { /* a node's admin port: joined, and this node caught up */
    bool ok = g->answered > 0 && syn_nodes_ready(g->ops.nodes);
    for (uint32_t k = 0; k < g->asked; k++)
      if (g->nodes[k].self && !(g->nodes[k].answered && g->nodes[k].stats.caught_up)) ok = false;
    syn_http_respond(g->slot, ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n",
                     ok ? 6 : 10, NULL);
    break;
  }
  }
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
  sum->search_partitions += s->search_partitions;
  sum->search_partitions_unserved += s->search_partitions_unserved;
  sum->announces_early += s->announces_early;
  sum->snapshot_peers_loaded += s->snapshot_peers_loaded;
  sum->snapshot_peers_saved += s->snapshot_peers_saved;
  sum->snapshot_peers_expired += s->snapshot_peers_expired;
  if (s->snapshot_load_us > sum->snapshot_load_us) sum->snapshot_load_us = s->snapshot_load_us;
  sum->ws_peers += s->ws_peers;
  sum->ws_signals += s->ws_signals;
  sum->ws_signals_dropped += s->ws_signals_dropped;
}

static bool on_part(void *ctx, uint32_t tag, int slot, const Synapse__Reply *rep) {
  gather *g = ctx;
  node_figures *f = &g->nodes[tag];
  if (!rep->error && rep->body_case == SYNAPSE__REPLY__BODY_STATS) {
    f->answered = true;
    f->stats = *rep->stats;
    f->stats.lag = NULL;
    f->stats.n_lag = 0;
    for (size_t i = 0; i < rep->stats->n_lag && f->n_lag < LAGS_KEPT; i++) {
      const Synapse__ReplicationLag *l = rep->stats->lag[i];
      lag_figure *lf = &f->lag[f->n_lag++];
      snprintf(lf->peer, sizeof lf->peer, "%s", l->peer ? l->peer : "");
      lf->lag_ms = l->lag_ms;
      lf->queued = l->queued;
      lf->dropped = l->dropped;
    }
    f->stats.sync = NULL;
    f->stats.n_sync = 0;
    for (size_t i = 0; i < rep->stats->n_sync && f->n_rounds < ROUNDS_KEPT; i++) {
      const Synapse__SyncRound *s = rep->stats->sync[i];
      round_figure *rf = &f->rounds[f->n_rounds++];
      *rf = (round_figure){.rounds = s->rounds,
                           .duration_us = s->last_duration_us,
                           .partitions = s->last_partitions_differing,
                           .buckets = s->last_buckets_differing,
                           .keys = s->last_keys_compared,
                           .records = s->last_records_pulled,
                           .records_total = s->records_pulled};
      snprintf(rf->kind, sizeof rf->kind, "%s", s->kind ? s->kind : "");
    }
    add(&g->sum, rep->stats);
    g->answered++;
  }
  return true;
}

static void on_done(void *ctx, syn_group_end how, uint32_t parts_out) {
  gather *g = ctx;
  respond(g);
  free(g);
}

static void start_gather(const syn_ops *o, enum gather_kind kind, syn_http_slot *slot) {
  gather *g = calloc(1, sizeof *g);
  syn_group *grp =
      g ? syn_group_new(o->nodes, o->loop, OPS_DEADLINE_MS, on_part, on_done, g) : NULL;
  if (!grp) {
    free(g);
    syn_http_respond(slot, 500, "text/plain", "out of memory\n", 14, NULL);
    return;
  }
  g->kind = kind;
  g->ops = *o;
  g->slot = slot;
  int slots[SYN_NODES_MAX];
  size_t n = syn_nodes_alive(o->nodes, slots, SYN_NODES_MAX);
  Synapse__StatsRequest s = SYNAPSE__STATS_REQUEST__INIT;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_STATS;
  msg.stats = &s;
  for (size_t i = 0; i < n; i++) {
    node_figures *f = &g->nodes[g->asked];
    const char *node_id = syn_nodes_slot_id(o->nodes, slots[i]);
    snprintf(f->id, sizeof f->id, "%s", node_id ? node_id : "");
    f->self = syn_nodes_slot_is_self(o->nodes, slots[i]);
    if (syn_group_send_to(grp, slots[i], g->asked, &msg) == 0) g->asked++;
  }
  syn_group_seal(grp);
}

static bool path_is(const syn_http_request *req, const char *path) {
  size_t n = strlen(path);
  return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static void owner(const syn_ops *o, const syn_http_request *req, syn_http_slot *slot) {
  const char *hex = req->path + strlen("/cluster/owner/");
  size_t len = req->path_len - strlen("/cluster/owner/");
  char norm[65];
  uint8_t key[20];
  if (syn_api_parse_hash(hex, len, norm, key)) {
    respond_doc(slot, 400, syn_api_error("info_hash must be 40 or 64 hexadecimal characters"));
    return;
  }
  json_t *doc = syn_nodes_owner_json(o->nodes, key);
  json_object_set_new(doc, "info_hash", json_string(norm));
  respond_doc(slot, 200, doc);
}

/* ---- /cluster/shard/{info_hash}: what each replica holds of one shard ---- */

typedef struct replica_probe {
  syn_http_slot *slot;
  syn_ops ops;
  char hex[65];
  json_t *replicas; /* array, owned */
} replica_probe;

static bool on_replica_part(void *ctx, uint32_t tag, int slot, const Synapse__Reply *rep) {
  replica_probe *p = ctx;
  const char *id = syn_nodes_slot_id(p->ops.nodes, slot);
  json_t *o = json_pack("{s:s}", "id", id ? id : "");
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_GET) {
    json_object_set_new(o, "error", json_string(rep->message ? rep->message : "no answer"));
  } else {
    const Synapse__GetReply *g = rep->get;
    const char *state = g->shard ? "live" : g->has_deleted && g->deleted ? "deleted" : "absent";
    json_object_set_new(o, "state", json_string(state));
    if (g->version && g->version->node) {
      char v[96];
      snprintf(v, sizeof v, "%llu.%s", (unsigned long long)g->version->hlc, g->version->node);
      json_object_set_new(o, "version", json_string(v));
    }
    if (g->shard && g->shard->display_name)
      json_object_set_new(o, "display_name", json_string(g->shard->display_name));
  }
  json_array_append_new(p->replicas, o);
  return true;
}

static void on_replica_done(void *ctx, syn_group_end how, uint32_t parts_out) {
  replica_probe *p = ctx;
  json_t *doc =
      json_pack("{s:s,s:s,s:o}", "status", "success", "info_hash", p->hex, "replicas", p->replicas);
  p->replicas = NULL;
  respond_doc(p->slot, 200, doc);
  free(p);
}

/* Asks every replica of the shard for the version it holds (operators, and tests that
 * check that replicas converge); answered within OPS_DEADLINE_MS. */
static void shard_replicas(const syn_ops *o, const syn_http_request *req, syn_http_slot *slot) {
  const char *hex = req->path + strlen("/cluster/shard/");
  size_t len = req->path_len - strlen("/cluster/shard/");
  uint8_t key[20];
  replica_probe *p = calloc(1, sizeof *p);
  if (!p || syn_api_parse_hash(hex, len, p->hex, key)) {
    free(p);
    respond_doc(slot, 400, syn_api_error("info_hash must be 40 or 64 hexadecimal characters"));
    return;
  }
  p->slot = slot;
  p->ops = *o;
  p->replicas = json_array();
  syn_group *g =
      syn_group_new(o->nodes, o->loop, OPS_DEADLINE_MS * 3, on_replica_part, on_replica_done, p);
  if (!g) {
    json_decref(p->replicas);
    free(p);
    respond_doc(slot, 500, syn_api_error("out of memory"));
    return;
  }
  Synapse__ShardKey sk = SYNAPSE__SHARD_KEY__INIT;
  sk.info_hash = p->hex;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_GET;
  msg.get = &sk;
  int slots[SYN_RING_MAX_REPLICATION];
  size_t n = syn_nodes_replicas(o->nodes, key, slots, SYN_RING_MAX_REPLICATION);
  for (size_t i = 0; i < n; i++) syn_group_send_to(g, slots[i], 0, &msg);
  syn_group_seal(g);
}

bool syn_ops_handle(const syn_ops *o, const syn_http_request *req, syn_http_slot *slot) {
  bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
  enum gather_kind kind;
  if (syn_dashboard_handle(o->dashboard, o->nodes, req, slot)) return true;
  if (syn_dashboard_is_page(req))
    kind = GATHER_PAGE;
  else if (path_is(req, "/metrics"))
    kind = GATHER_METRICS;
  else if (path_is(req, "/readyz"))
    kind = GATHER_READY;
  else if (path_is(req, "/cluster/status"))
    kind = GATHER_STATUS;
  else if (path_is(req, "/api/stats") && !o->admin_only)
    kind = GATHER_STATS;
  else if (req->path_len > 15 && !memcmp(req->path, "/cluster/owner/", 15)) {
    if (get)
      owner(o, req, slot);
    else
      respond_doc(slot, 405, syn_api_error("method not allowed"));
    return true;
  } else if (req->path_len > 15 && !memcmp(req->path, "/cluster/shard/", 15)) {
    if (get)
      shard_replicas(o, req, slot);
    else
      respond_doc(slot, 405, syn_api_error("method not allowed"));
    return true;
  } else
    return false;
  if (!get) {
    respond_doc(slot, 405, syn_api_error("method not allowed"));
    return true;
  }
  if (kind == GATHER_READY && !o->admin_only) { /* a router is ready with its view */
    bool ok = syn_nodes_ready(o->nodes);
    syn_http_respond(slot, ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n",
                     ok ? 6 : 10, NULL);
    return true;
  }
  start_gather(o, kind, slot);
  return true;
}
