/* The router's node links. Design notes:
 *
 * - A link (one per node member) is stable while its member exists, so a slot index
 *   stays valid while requests are in flight; a link closes (failing what it had in
 *   flight) only when its member leaves or is reaped.
 * - The loop thread holds one view snapshot and swaps it when the view source says the
 *   membership moved; liveness changes only update the links' states.
 * - Every reply passes through here first: an UNAVAILABLE answer or a missed deadline
 *   marks the node failing for FAILING_MS, a broken connection at once, so routing moves
 *   to the next replica before gossip has decided anything. */
#include "router/nodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "router/upstream.h"

#define FAILING_MS 3000
#define POLL_INTERVAL_MS 250
#define MAX_ATTEMPTS 3
#define MAX_REQUESTS (1u << 20)

typedef struct node_link {
  syn_nodes *nodes;
  int index;
  bool used;
  bool self;
  char id[SYN_MEMBER_ID_MAX + 1];
  char data_url[SYN_MEMBER_URL_MAX + 1];
  enum syn_member_state state;
  syn_upstream *up;
  uint64_t failing_until;
  bool caught_up; /* the node reported it holds every partition it gained */
  bool polling;   /* a readiness poll is in flight */
} node_link;

struct syn_nodes {
  uv_loop_t *loop;
  syn_nodes_options opts;
  const syn_config *cfg;
  syn_membership *members; /* router mode: ours */
  syn_view_source *source;
  bool owns_source;
  syn_view *view;
  uv_async_t wake;
  uv_timer_t poll;
  bool handles_open;
  int open_handles;
  bool closing;
  int ring_slot[SYN_NODES_MAX]; /* ring node index -> link */
  node_link links[SYN_NODES_MAX];
  syn_req_table *reqs;
  syn_nodes_stats stats;
};

static bool clustered(const syn_nodes *n) { return n->source != NULL; }

/* ---- replies and failures ---- */

static node_link *link_at(syn_nodes *n, int slot) {
  if (slot < 0 || slot >= SYN_NODES_MAX || !n->links[slot].used) return NULL;
  return &n->links[slot];
}

static void mark_failing(node_link *l) {
  if (clustered(l->nodes)) l->failing_until = uv_now(l->nodes->loop) + FAILING_MS;
}

static int route_except(syn_nodes *n, const uint8_t key[20], int except);

/* Sends an already routed request to the next replica; false when there is none. */
static bool fail_over(syn_nodes *n, syn_req *req, const Synapse__Request *msg, int failed) {
  if (!req->routed || req->attempts >= MAX_ATTEMPTS || n->closing) return false;
  int next = route_except(n, req->key, failed);
  node_link *l = link_at(n, next);
  if (!l || syn_upstream_submit(l->up, msg) != 0) return false;
  req->attempts++;
  n->stats.failovers++;
  return true;
}

static void on_link_reply(void *ctx, const Synapse__Reply *rep) {
  node_link *l = ctx;
  syn_nodes *n = l->nodes;
  syn_req *req = syn_req_find(n->reqs, rep->id);
  if (!req) return; /* cancelled, or answered already */
  if (rep->error == SYNAPSE__ERROR_CODE__UNAVAILABLE) mark_failing(l);
  /* The node is behind (it was away, or is still pulling): route elsewhere until its
   * next poll says it caught up. Reads ask several replicas, so the caller copes. */
  if (rep->error == SYNAPSE__ERROR_CODE__NOT_SERVING) l->caught_up = false;
  syn_req_complete(n->reqs, req, rep);
}

/* A batch the node did not answer (deadline, broken connection, closing). */
static int on_link_failed(void *ctx, const uint8_t *batch, size_t len) {
  node_link *l = ctx;
  syn_nodes *n = l->nodes;
  mark_failing(l);
  n->stats.node_failures++;
  Synapse__Batch *b = len ? synapse__batch__unpack(NULL, len, batch) : NULL;
  if (!b) return -1; /* the upstream fails every id of the batch */
  for (size_t i = 0; i < b->n_requests; i++) {
    const Synapse__Request *msg = b->requests[i];
    syn_req *req = syn_req_find(n->reqs, msg->id);
    if (!req || fail_over(n, req, msg, l->index)) continue;
    syn_req_fail(n->reqs, req, SYNAPSE__ERROR_CODE__UNAVAILABLE,
                 n->closing ? "shutting down" : "node did not answer in time");
  }
  synapse__batch__free_unpacked(b, NULL);
  return 0;
}

static void on_link_state(void *ctx, bool connected) {
  node_link *l = ctx;
  if (connected) return; /* the next poll tells whether it caught up */
  l->nodes->stats.link_losses++;
  l->caught_up = !clustered(l->nodes); /* it may be a new process: it must say so */
  mark_failing(l);
}

static void on_link_push(void *ctx, const Synapse__WsPush *push) {
  node_link *l = ctx;
  l->nodes->opts.on_push(l->nodes->opts.push_ctx, push);
}

static int link_open(syn_nodes *n, node_link *l, const char *id, const char *url, char *err,
                     size_t err_len) {
  syn_membership *members = syn_nodes_membership(n);
  syn_upstream_options uo = {
      .url = url,
      .auth = members ? syn_membership_auth(members) : NULL,
      .timeout_ms = n->cfg->request_timeout_ms,
      .window = 4,
      .max_batch = 1024,
      .on_reply = on_link_reply,
      .on_failed = on_link_failed,
      .on_link = on_link_state,
      .ctx = l,
  };
  if (!clustered(n)) { /* standalone: the node lives in this process */
    uo.serve_inline = n->opts.static_serve_inline;
    uo.inline_ctx = n->opts.static_inline_ctx;
  } else if (n->opts.on_push && n->opts.self_id) { /* a router with WebSocket peers */
    uo.on_push = on_link_push;
    uo.poll_router = n->opts.self_id;
    uo.poll_boot = n->opts.ws_boot;
  }
  l->up = syn_upstream_open(n->loop, &uo, err, err_len);
  if (!l->up) return -1;
  l->used = true;
  snprintf(l->id, sizeof l->id, "%s", id);
  snprintf(l->data_url, sizeof l->data_url, "%s", url);
  l->state = SYN_MEMBER_ALIVE;
  l->failing_until = 0;
  l->caught_up = !clustered(n); /* a cluster node proves it by its first poll */
  l->polling = false;
  return 0;
}

static void link_close(node_link *l) {
  if (!l->used) return;
  l->used = false;
  syn_upstream_close(l->up); /* fails what it has in flight through on_link_failed */
  l->up = NULL;
}

static node_link *link_find(syn_nodes *n, const char *id) {
  for (int i = 0; i < SYN_NODES_MAX; i++)
    if (n->links[i].used && !strcmp(n->links[i].id, id)) return &n->links[i];
  return NULL;
}

static node_link *link_free(syn_nodes *n) {
  for (int i = 0; i < SYN_NODES_MAX; i++)
    if (!n->links[i].used) return &n->links[i];
  return NULL;
}

/* ---- following the view ---- */

static bool is_node_member(const syn_member_info *m) {
  return m->role == SYN_ROLE_NODE && m->state != SYN_MEMBER_LEFT && m->data_url[0];
}

static void sync_links(syn_nodes *n) {
  const syn_member_info *ms;
  size_t count = syn_view_members(n->view, &ms);
  for (int i = 0; i < SYN_NODES_MAX; i++) {
    node_link *l = &n->links[i];
    if (!l->used) continue;
    const syn_member_info *m = syn_view_member(n->view, l->id);
    if (!m || !is_node_member(m) || strcmp(m->data_url, l->data_url) != 0) link_close(l);
  }
  for (size_t j = 0; j < count; j++) {
    const syn_member_info *m = &ms[j];
    if (!is_node_member(m)) continue;
    node_link *l = link_find(n, m->id);
    if (!l && (l = link_free(n))) {
      char err[256];
      if (link_open(n, l, m->id, m->data_url, err, sizeof err)) {
        syn_warn("router: %s", err);
        continue;
      }
    }
    if (!l) continue;
    l->state = m->state;
    l->self = m->self;
  }
}

static void map_ring(syn_nodes *n) {
  for (int i = 0; i < SYN_NODES_MAX; i++) n->ring_slot[i] = -1;
  const syn_ring *ring = syn_view_ring(n->view);
  size_t count = syn_ring_node_count(ring);
  for (size_t i = 0; i < count && i < SYN_NODES_MAX; i++) {
    node_link *l = link_find(n, syn_ring_node_id(ring, i));
    n->ring_slot[i] = l ? l->index : -1;
  }
}

static void refresh(syn_nodes *n) {
  syn_view *v = syn_view_get(n->source);
  if (!v) return;
  syn_view_put(n->view);
  n->view = v;
  sync_links(n);
  map_ring(n);
}

static void on_wake(uv_async_t *h) {
  syn_nodes *n = h->data;
  if (!n->closing) refresh(n);
}

/* Membership thread: only wakes the loop. */
static void on_view_change(void *ctx) {
  syn_nodes *n = ctx;
  uv_async_send(&n->wake);
}

/* ---- readiness polls: a joining node gets traffic once it has caught up ---- */

static void on_poll_reply(syn_req *req, const Synapse__Reply *rep) {
  node_link *l = req->ctx;
  l->polling = false;
  if (!rep->error && rep->body_case == SYNAPSE__REPLY__BODY_STATS)
    l->caught_up = !rep->stats->has_caught_up || rep->stats->caught_up;
}

static void on_poll(uv_timer_t *t) {
  syn_nodes *n = t->data;
  Synapse__StatsRequest st = SYNAPSE__STATS_REQUEST__INIT;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_STATS;
  msg.stats = &st;
  for (int i = 0; i < SYN_NODES_MAX; i++) {
    node_link *l = &n->links[i];
    if (!l->used || l->polling || l->state == SYN_MEMBER_DEAD) continue;
    syn_req *req = syn_req_start(n->reqs, on_poll_reply, l);
    if (req && syn_nodes_send_to(n, req, i, &msg) == 0) l->polling = true;
  }
}

/* ---- lifetime ---- */

static syn_membership *start_membership(const syn_nodes_options *o, char *err, size_t err_len) {
  const syn_config *cfg = o->cfg;
  syn_membership_config mc;
  syn_membership_config_defaults(&mc);
  syn_membership_config_apply(&mc, cfg);
  mc.self_id = o->self_id;
  mc.role = SYN_ROLE_ROUTER;
  mc.data_url = "";
  mc.peer_url = o->peer_url;
  mc.seeds = o->seed_peer_urls;
  mc.n_seeds = o->seed_count;
  return syn_membership_start(&mc, err, err_len);
}

static int open_static(syn_nodes *n, char *err, size_t err_len) {
  syn_member_info local = {.role = SYN_ROLE_NODE, .state = SYN_MEMBER_ALIVE};
  snprintf(local.id, sizeof local.id, "local");
  snprintf(local.data_url, sizeof local.data_url, "%s", n->opts.static_node_url);
  n->view = syn_view_build(&local, 1, 1, 1, 1, 1);
  if (!n->view || link_open(n, &n->links[0], "local", n->opts.static_node_url, err, err_len)) {
    if (!n->view) snprintf(err, err_len, "out of memory");
    return -1;
  }
  map_ring(n);
  return 0;
}

static int open_clustered(syn_nodes *n, char *err, size_t err_len) {
  const syn_nodes_options *o = &n->opts;
  n->source = o->view;
  if (!n->source) {
    n->members = start_membership(o, err, err_len);
    if (!n->members) return -1;
    n->source = syn_view_source_new(n->members, n->cfg->partitions, n->cfg->replication);
    n->owns_source = true;
    if (!n->source) {
      snprintf(err, err_len, "out of memory");
      return -1;
    }
  }
  uv_async_init(n->loop, &n->wake, on_wake);
  uv_timer_init(n->loop, &n->poll);
  n->wake.data = n->poll.data = n;
  n->handles_open = true;
  uv_timer_start(&n->poll, on_poll, 0, POLL_INTERVAL_MS);
  if (syn_view_source_listen(n->source, on_view_change, n)) {
    snprintf(err, err_len, "too many listeners on the cluster view");
    return -1;
  }
  refresh(n);
  return n->view ? 0 : -1;
}

syn_nodes *syn_nodes_open(uv_loop_t *loop, const syn_nodes_options *opts, char *err,
                          size_t err_len) {
  syn_nodes *n = calloc(1, sizeof *n);
  if (!n || !(n->reqs = syn_req_table_new(MAX_REQUESTS))) {
    free(n);
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  n->loop = loop;
  n->opts = *opts;
  n->cfg = opts->cfg;
  for (int i = 0; i < SYN_NODES_MAX; i++) {
    n->links[i].nodes = n;
    n->links[i].index = i;
    n->ring_slot[i] = -1;
  }
  int rc = opts->static_node_url ? open_static(n, err, err_len) : open_clustered(n, err, err_len);
  if (rc) {
    syn_nodes_close(n);
    return NULL;
  }
  return n;
}

static void on_handle_closed(uv_handle_t *h) {
  syn_nodes *n = h->data;
  if (--n->open_handles == 0) {
    syn_req_table_free(n->reqs);
    free(n);
  }
}

void syn_nodes_close(syn_nodes *n) {
  if (!n || n->closing) return;
  n->closing = true;
  if (n->source) syn_view_source_unlisten(n->source, on_view_change, n);
  if (n->members) syn_membership_leave(n->members, 1000);
  for (int i = 0; i < SYN_NODES_MAX; i++) link_close(&n->links[i]);
  if (n->owns_source) syn_view_source_free(n->source);
  if (n->members) syn_membership_stop(n->members);
  syn_view_put(n->view);
  n->view = NULL;
  if (!n->handles_open) {
    syn_req_table_free(n->reqs);
    free(n);
    return;
  }
  n->open_handles = 2;
  uv_close((uv_handle_t *)&n->wake, on_handle_closed);
  uv_close((uv_handle_t *)&n->poll, on_handle_closed);
}

/* ---- routing ---- */

/* Lower is better; -1: do not send there. */
static int tier(syn_nodes *n, const node_link *l) {
  if (!l->used) return -1;
  if (!clustered(n)) return 0;
  bool alive = l->state == SYN_MEMBER_ALIVE;
  if (!alive && l->state != SYN_MEMBER_SUSPECT) return -1;
  bool ok = uv_now(n->loop) >= l->failing_until && syn_upstream_connected(l->up);
  if (!ok) return 3;
  if (!l->caught_up) return 2;
  return alive ? 0 : 1;
}

/* The replicas of key's partition as links, ring order. */
static size_t replica_links(syn_nodes *n, const uint8_t key[20], node_link **out, size_t cap) {
  if (!n->view) return 0;
  syn_view_replica reps[SYN_RING_MAX_REPLICATION];
  size_t count =
      syn_view_replicas(n->view, syn_view_partition(n->view, key), reps, SYN_RING_MAX_REPLICATION);
  size_t k = 0;
  for (size_t i = 0; i < count && k < cap; i++) {
    int slot = reps[i].ring_index < SYN_NODES_MAX ? n->ring_slot[reps[i].ring_index] : -1;
    if (slot >= 0) out[k++] = &n->links[slot];
  }
  return k;
}

static int route_except(syn_nodes *n, const uint8_t key[20], int except) {
  node_link *reps[SYN_RING_MAX_REPLICATION];
  size_t count = replica_links(n, key, reps, SYN_RING_MAX_REPLICATION);
  int best = -1, best_tier = 99;
  for (size_t i = 0; i < count; i++) {
    int t = tier(n, reps[i]);
    if (t < 0 || reps[i]->index == except || t >= best_tier) continue;
    best = reps[i]->index;
    best_tier = t;
  }
  return best;
}

int syn_nodes_route(syn_nodes *n, const uint8_t key[20]) { return route_except(n, key, -1); }

size_t syn_nodes_replicas(syn_nodes *n, const uint8_t key[20], int *slots, size_t cap) {
  node_link *reps[SYN_RING_MAX_REPLICATION];
  size_t count = replica_links(n, key, reps, SYN_RING_MAX_REPLICATION);
  size_t k = 0;
  for (int t = 0; t <= 3; t++)
    for (size_t i = 0; i < count && k < cap; i++)
      if (tier(n, reps[i]) == t) slots[k++] = reps[i]->index;
  return k;
}

uint32_t syn_nodes_partitions(syn_nodes *n) {
  return clustered(n) && n->view ? syn_ring_partitions(syn_view_ring(n->view)) : 0;
}

size_t syn_nodes_partition_replicas(syn_nodes *n, uint32_t p, int *slots, size_t cap) {
  if (!clustered(n) || !n->view) return 0;
  syn_view_replica reps[SYN_RING_MAX_REPLICATION];
  size_t count = syn_view_replicas(n->view, p, reps, SYN_RING_MAX_REPLICATION);
  size_t k = 0;
  for (int t = 0; t <= 3; t++)
    for (size_t i = 0; i < count && k < cap; i++) {
      int slot = reps[i].ring_index < SYN_NODES_MAX ? n->ring_slot[reps[i].ring_index] : -1;
      if (slot >= 0 && tier(n, &n->links[slot]) == t) slots[k++] = slot;
    }
  return k;
}

size_t syn_nodes_fanout(syn_nodes *n, int *slots, size_t cap) {
  size_t k = 0;
  for (int i = 0; i < SYN_NODES_MAX && k < cap; i++) {
    int t = tier(n, &n->links[i]);
    if (t == 0 || t == 1) slots[k++] = i;
  }
  return k;
}

size_t syn_nodes_alive(syn_nodes *n, int *slots, size_t cap) {
  size_t k = 0;
  for (int i = 0; i < SYN_NODES_MAX && k < cap; i++)
    if (tier(n, &n->links[i]) >= 0) slots[k++] = i;
  return k;
}

bool syn_nodes_cover_all(syn_nodes *n, const bool *answered) {
  if (!clustered(n)) return answered[0];
  if (!n->view) return false;
  uint32_t parts = syn_ring_partitions(syn_view_ring(n->view));
  for (uint32_t p = 0; p < parts; p++) {
    syn_view_replica reps[SYN_RING_MAX_REPLICATION];
    size_t count = syn_view_replicas(n->view, p, reps, SYN_RING_MAX_REPLICATION);
    bool heard = false;
    for (size_t i = 0; i < count && !heard; i++) {
      int slot = reps[i].ring_index < SYN_NODES_MAX ? n->ring_slot[reps[i].ring_index] : -1;
      heard = slot >= 0 && answered[slot];
    }
    if (!heard) return false;
  }
  return true;
}

uint32_t syn_nodes_replication(syn_nodes *n) {
  return n->view ? syn_ring_replication(syn_view_ring(n->view)) : 1;
}

/* ---- sending ---- */

syn_req *syn_nodes_req(syn_nodes *n, syn_req_cb cb, void *ctx) {
  return n->closing ? NULL : syn_req_start(n->reqs, cb, ctx);
}

int syn_nodes_send_to(syn_nodes *n, syn_req *req, int slot, Synapse__Request *msg) {
  node_link *l = link_at(n, slot);
  msg->id = req->id;
  int rc = l ? syn_upstream_submit(l->up, msg) : -ENODEV;
  if (rc) syn_req_cancel(n->reqs, req);
  return rc;
}

int syn_nodes_send(syn_nodes *n, syn_req *req, const uint8_t key[20], Synapse__Request *msg) {
  req->routed = true;
  memcpy(req->key, key, 20);
  req->attempts = 1;
  return syn_nodes_send_to(n, req, syn_nodes_route(n, key), msg);
}

void syn_nodes_cancel(syn_nodes *n, syn_req *req) { syn_req_cancel(n->reqs, req); }

bool syn_nodes_refused(syn_nodes *n, char *why, size_t len) {
  return n->members && syn_membership_refused(n->members, why, len);
}

bool syn_nodes_ready(syn_nodes *n) {
  if (!clustered(n)) return n->links[0].used;
  if (n->members && !syn_membership_joined(n->members)) return false;
  for (int i = 0; i < SYN_NODES_MAX; i++) {
    int t = tier(n, &n->links[i]);
    if (t == 0 || t == 1) return true;
  }
  return false;
}

const char *syn_nodes_slot_id(syn_nodes *n, int slot) {
  node_link *l = link_at(n, slot);
  return l ? l->id : NULL;
}

bool syn_nodes_slot_is_self(syn_nodes *n, int slot) {
  node_link *l = link_at(n, slot);
  return l && l->self;
}

void syn_nodes_stats_get(const syn_nodes *n, syn_nodes_stats *out) { *out = n->stats; }

syn_membership *syn_nodes_membership(syn_nodes *n) {
  return n->source ? syn_view_source_membership(n->source) : NULL;
}

/* ---- status ---- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static json_t *member_json(syn_nodes *n, const syn_member_info *m, uint64_t now) {
  uint32_t primary = 0, replica = 0;
  syn_ring_owned_by(syn_view_ring(n->view), m->id, &primary, &replica);
  json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:i,s:i,s:b}", "id", m->id, "address",
                        m->data_url, "peer_address", m->peer_url, "role",
                        syn_member_role_name(m->role), "state", syn_member_state_name(m->state),
                        "incarnation", (json_int_t)m->incarnation, "partitions_primary",
                        (int)primary, "partitions_replica", (int)replica, "self", m->self);
  json_object_set_new(o, "last_seen_ms",
                      m->self           ? json_integer(0)
                      : m->last_seen_ms ? json_integer((json_int_t)(now - m->last_seen_ms))
                                        : json_null());
  if (m->state == SYN_MEMBER_SUSPECT && m->suspected_by[0])
    json_object_set_new(o, "suspected_by", json_string(m->suspected_by));
  return o;
}

json_t *syn_nodes_members_json(syn_nodes *n) {
  json_t *list = json_array();
  if (!clustered(n)) {
    json_array_append_new(
        list, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:i}", "id", "local", "address",
                        n->links[0].data_url, "role", "node", "state", "alive", "incarnation", 0,
                        "partitions_primary", 1, "partitions_replica", 0, "last_seen_ms", 0));
    return list;
  }
  refresh(n); /* last_seen moves without a membership change */
  /* Fresh last_seen figures: the membership's own snapshot, not the view's. */
  syn_member_info *all = NULL;
  size_t count = 0;
  const syn_member_info *ms;
  size_t vn = syn_view_members(n->view, &ms);
  syn_membership *m = syn_view_source_membership(n->source);
  if (m) {
    all = malloc((vn + 16) * sizeof *all);
    if (all) syn_membership_snapshot(m, all, vn + 16, &count, NULL, NULL);
    if (count > vn + 16) count = vn + 16;
    ms = all;
    vn = count;
  }
  uint64_t now = mono_ms();
  for (size_t i = 0; i < vn; i++) json_array_append_new(list, member_json(n, &ms[i], now));
  free(all);
  return list;
}

const syn_ring *syn_nodes_ring(syn_nodes *n) {
  if (clustered(n)) refresh(n);
  return syn_view_ring(n->view);
}

json_t *syn_nodes_owner_json(syn_nodes *n, const uint8_t key[20]) {
  json_t *ids = json_array();
  uint32_t p = 0;
  if (!clustered(n)) {
    json_array_append_new(ids, json_string("local"));
  } else if (n->view) {
    const syn_ring *ring = syn_view_ring(n->view);
    p = syn_ring_partition(ring, key);
    const uint16_t *idx;
    size_t count = syn_ring_replicas(ring, p, &idx);
    for (size_t i = 0; i < count; i++)
      json_array_append_new(ids, json_string(syn_ring_node_id(ring, idx[i])));
  }
  return json_pack("{s:s,s:i,s:o}", "status", "success", "partition", (int)p, "replicas", ids);
}
