/* The router's cluster view. Design notes:
 *
 * - Node slots are stable while a member exists, so a request's slot index stays valid
 *   while it is in flight; a slot is freed (its upstream closed, failing what it had in
 *   flight) only when its member leaves or is reaped.
 * - The ring comes from the membership and is rebuilt only when ring_version moves (the
 *   member set changed); liveness changes just update slot states.
 * - Every reply passes through here first, so a node that stops answering is marked
 *   failing for FAILING_MS and routing moves to the next replica at once. */
#include "cluster/cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/urlcodec.h"

#define FAILING_MS 3000

typedef struct node_slot node_slot;

struct node_slot {
  syn_cluster *cluster;
  int index;
  bool used;
  bool self;
  char id[SYN_MEMBER_ID_MAX + 1];
  char data_url[SYN_MEMBER_URL_MAX + 1];
  enum syn_member_state state;
  uint64_t incarnation;
  syn_upstream *up;
  uint64_t failing_until;
  bool caught_up; /* the node reported it holds every partition it gained */
};

/* Ids of the cluster's own readiness polls; router ids never set the top bit. */
#define POLL_ID_BASE (1ULL << 63)
#define POLL_INTERVAL_MS 250

struct syn_cluster {
  uv_loop_t *loop;
  syn_cluster_options opts;
  syn_membership *members;
  bool owns_members;
  uv_async_t wake;
  uv_timer_t poll;
  bool closing;
  syn_ring *ring;
  uint64_t ring_version;
  int ring_slot[SYN_CLUSTER_MAX_NODES]; /* ring node index -> slot */
  node_slot slots[SYN_CLUSTER_MAX_NODES];
  syn_member_info snapshot[SYN_CLUSTER_MAX_NODES];
  size_t snapshot_count;
  int closed_handles;
};

int syn_cluster_peer_url(const char *data_url, char *out, size_t out_len) {
  const char *colon = strrchr(data_url, ':');
  if (!strncmp(data_url, "tcp://", 6) && colon && colon > data_url + 6) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port >= 65535) return -1;
    int n = snprintf(out, out_len, "%.*s:%ld", (int)(colon - data_url), data_url, port + 1);
    return n > 0 && (size_t)n < out_len ? 0 : -1;
  }
  int n = snprintf(out, out_len, "%s-peer", data_url);
  return n > 0 && (size_t)n < out_len ? 0 : -1;
}

/* ---- replies ---- */

static void on_slot_reply(void *ctx, const Synapse__Reply *rep) {
  node_slot *s = ctx;
  syn_cluster *c = s->cluster;
  if (rep->id & POLL_ID_BASE) { /* our own poll: a joining node is caught up or not */
    if (!rep->error && rep->body_case == SYNAPSE__REPLY__BODY_STATS)
      s->caught_up = !rep->stats->has_caught_up || rep->stats->caught_up;
    return;
  }
  /* With one node there is nowhere else to go: never stop using it. */
  if (c->members && rep->error == SYNAPSE__ERROR_CODE__UNAVAILABLE)
    s->failing_until = uv_now(c->loop) + FAILING_MS;
  c->opts.on_reply(c->opts.ctx, rep);
}

/* The info_hash a request is routed by, if it has one. */
static bool request_key(const Synapse__Request *req, uint8_t key[20]) {
  const char *hex = NULL;
  switch (req->body_case) {
  case SYNAPSE__REQUEST__BODY_ANNOUNCE:
    if (req->announce->info_hash.len != 20) return false;
    memcpy(key, req->announce->info_hash.data, 20);
    return true;
  case SYNAPSE__REQUEST__BODY_SCRAPE: /* a part: every hash has the same owner */
    if (req->scrape->n_info_hash == 0 || req->scrape->info_hash[0].len != 20) return false;
    memcpy(key, req->scrape->info_hash[0].data, 20);
    return true;
  case SYNAPSE__REQUEST__BODY_REGISTER: hex = req->register_->shard->info_hash; break;
  case SYNAPSE__REQUEST__BODY_GET: hex = req->get->info_hash; break;
  case SYNAPSE__REQUEST__BODY_DELETE: hex = req->delete_->info_hash; break;
  case SYNAPSE__REQUEST__BODY_PEERS: hex = req->peers->info_hash; break;
  default: return false;
  }
  return hex && strlen(hex) >= 40 && syn_hex_decode(hex, 40, key, 20) == 0;
}

static void fail_request(syn_cluster *c, uint64_t id) {
  if (id & POLL_ID_BASE) return; /* our own poll: nobody waits for it */
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = id;
  rep.has_error = 1;
  rep.error = SYNAPSE__ERROR_CODE__UNAVAILABLE;
  rep.message = "node did not answer in time";
  c->opts.on_reply(c->opts.ctx, &rep);
}

/* A node missed the deadline: requests routed by info_hash go to the next usable replica
 * (this node is now marked failing, so routing skips it); the rest fail. */
static int on_slot_failed(void *ctx, const uint8_t *batch, size_t len) {
  node_slot *s = ctx;
  syn_cluster *c = s->cluster;
  if (!c->members) return -1; /* standalone: one node, nothing to fail over to */
  s->failing_until = uv_now(c->loop) + FAILING_MS;
  if (len == 0) return -1;
  Synapse__Batch *b = synapse__batch__unpack(NULL, len, batch);
  if (!b) return -1;
  for (size_t i = 0; i < b->n_requests; i++) {
    const Synapse__Request *req = b->requests[i];
    uint8_t key[20];
    int next = request_key(req, key) ? syn_cluster_route(c, key) : -1;
    if (next < 0 || next == s->index || syn_cluster_submit(c, next, req) != 0)
      fail_request(c, req->id);
  }
  synapse__batch__free_unpacked(b, NULL);
  return 0;
}

static int slot_open(syn_cluster *c, node_slot *s, const char *id, const char *url, char *err,
                     size_t err_len) {
  const syn_config *cfg = c->opts.cfg;
  syn_upstream_options uo = {
      .url = url,
      .timeout_ms = cfg->request_timeout_ms,
      .window = 4,
      .max_batch = 1024,
      .on_reply = on_slot_reply,
      .on_failed = on_slot_failed,
      .ctx = s,
  };
  s->up = syn_upstream_open(c->loop, &uo, err, err_len);
  if (!s->up) return -1;
  s->used = true;
  snprintf(s->id, sizeof s->id, "%s", id);
  snprintf(s->data_url, sizeof s->data_url, "%s", url);
  s->state = SYN_MEMBER_ALIVE;
  s->failing_until = 0;
  s->caught_up = c->members == NULL; /* a cluster node proves it by its first poll */
  return 0;
}

static void slot_close(node_slot *s) {
  if (!s->used) return;
  s->used = false;
  syn_upstream_close(s->up); /* fails its requests through on_slot_reply first */
  s->up = NULL;
}

static node_slot *slot_find(syn_cluster *c, const char *id) {
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++)
    if (c->slots[i].used && !strcmp(c->slots[i].id, id)) return &c->slots[i];
  return NULL;
}

static node_slot *slot_free(syn_cluster *c) {
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++)
    if (!c->slots[i].used) return &c->slots[i];
  return NULL;
}

/* ---- following the membership ---- */

static void map_ring(syn_cluster *c) {
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++) c->ring_slot[i] = -1;
  if (!c->ring) return;
  size_t n = syn_ring_node_count(c->ring);
  for (size_t i = 0; i < n && i < SYN_CLUSTER_MAX_NODES; i++) {
    node_slot *s = slot_find(c, syn_ring_node_id(c->ring, i));
    c->ring_slot[i] = s ? s->index : -1;
  }
}

static bool is_node_member(const syn_member_info *m) {
  return m->role == SYN_ROLE_NODE && m->state != SYN_MEMBER_LEFT && m->data_url[0];
}

static void sync_slots(syn_cluster *c) {
  /* Drop slots whose member is gone (left or reaped). */
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++) {
    node_slot *s = &c->slots[i];
    if (!s->used) continue;
    bool present = false;
    for (size_t j = 0; j < c->snapshot_count && !present; j++)
      present = is_node_member(&c->snapshot[j]) && !strcmp(c->snapshot[j].id, s->id);
    if (!present) slot_close(s);
  }
  for (size_t j = 0; j < c->snapshot_count; j++) {
    const syn_member_info *m = &c->snapshot[j];
    if (!is_node_member(m)) continue;
    node_slot *s = slot_find(c, m->id);
    if (!s && (s = slot_free(c))) {
      char err[256];
      if (slot_open(c, s, m->id, m->data_url, err, sizeof err)) {
        syn_warn("cluster: %s", err);
        continue;
      }
    }
    if (!s) continue;
    s->state = m->state;
    s->incarnation = m->incarnation;
    s->self = m->self;
  }
}

static void refresh(syn_cluster *c) {
  uint64_t version, ring_version;
  syn_membership_snapshot(c->members, c->snapshot, SYN_CLUSTER_MAX_NODES, &c->snapshot_count,
                          &version, &ring_version);
  if (c->snapshot_count > SYN_CLUSTER_MAX_NODES) c->snapshot_count = SYN_CLUSTER_MAX_NODES;
  sync_slots(c);
  if (!c->ring || ring_version != c->ring_version) {
    syn_ring *ring = syn_membership_build_ring(c->members, c->opts.cfg->partitions,
                                               c->opts.cfg->replication, &c->ring_version);
    if (ring) {
      syn_ring_free(c->ring);
      c->ring = ring;
    }
  }
  map_ring(c);
}

/* Asks every node whether it has caught up (joining nodes pull their partitions first). */
static void on_poll(uv_timer_t *t) {
  syn_cluster *c = t->data;
  Synapse__StatsRequest st = SYNAPSE__STATS_REQUEST__INIT;
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.body_case = SYNAPSE__REQUEST__BODY_STATS;
  req.stats = &st;
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++) {
    node_slot *s = &c->slots[i];
    if (!s->used || s->state == SYN_MEMBER_DEAD) continue;
    req.id = POLL_ID_BASE | (uint64_t)i;
    syn_upstream_submit(s->up, &req); /* a full link just skips this round */
  }
}

static void on_wake(uv_async_t *h) {
  syn_cluster *c = h->data;
  if (!c->closing) refresh(c);
}

/* Membership thread: only wakes the loop. */
static void on_membership_change(void *ctx) {
  syn_cluster *c = ctx;
  uv_async_send(&c->wake);
}

static syn_membership *start_membership(const syn_cluster_options *o, char *err, size_t err_len) {
  const syn_config *cfg = o->cfg;
  syn_membership_config mc;
  syn_membership_config_defaults(&mc);
  mc.self_id = o->self_id;
  mc.role = SYN_ROLE_ROUTER;
  mc.data_url = "";
  mc.peer_url = o->peer_url;
  mc.seeds = o->seed_peer_urls;
  mc.n_seeds = o->seed_count;
  mc.probe_interval_ms = cfg->probe_interval_ms;
  mc.probe_timeout_ms = cfg->probe_timeout_ms;
  mc.suspicion_mult = cfg->suspicion_mult;
  mc.reap_timeout_ms = cfg->reap_timeout_s * 1000;
  return syn_membership_start(&mc, err, err_len);
}

syn_cluster *syn_cluster_open(uv_loop_t *loop, const syn_cluster_options *opts, char *err,
                              size_t err_len) {
  syn_cluster *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  c->loop = loop;
  c->opts = *opts;
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++) {
    c->slots[i].cluster = c;
    c->slots[i].index = i;
    c->ring_slot[i] = -1;
  }
  if (opts->static_node_url) {
    if (slot_open(c, &c->slots[0], "local", opts->static_node_url, err, err_len)) {
      free(c);
      return NULL;
    }
    return c;
  }
  c->members = opts->membership;
  if (!c->members) {
    c->members = start_membership(opts, err, err_len);
    c->owns_members = true;
  }
  if (!c->members) {
    free(c);
    return NULL;
  }
  uv_async_init(loop, &c->wake, on_wake);
  c->wake.data = c;
  uv_timer_init(loop, &c->poll);
  c->poll.data = c;
  uv_timer_start(&c->poll, on_poll, 0, POLL_INTERVAL_MS);
  syn_membership_set_on_change(c->members, on_membership_change, c);
  refresh(c);
  return c;
}

static void on_handle_closed(uv_handle_t *h) {
  syn_cluster *c = h->data;
  if (uv_is_closing((uv_handle_t *)&c->wake) && uv_is_closing((uv_handle_t *)&c->poll) &&
      ++c->closed_handles == 2)
    free(c);
}

void syn_cluster_close(syn_cluster *c) {
  if (!c || c->closing) return;
  c->closing = true;
  if (c->members) {
    syn_membership_set_on_change(c->members, NULL, NULL);
    if (c->owns_members) {
      syn_membership_leave(c->members, 1000);
      syn_membership_stop(c->members);
    }
  }
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++) slot_close(&c->slots[i]);
  syn_ring_free(c->ring);
  c->ring = NULL;
  if (c->members) {
    uv_close((uv_handle_t *)&c->wake, on_handle_closed);
    uv_close((uv_handle_t *)&c->poll, on_handle_closed);
  } else {
    free(c);
  }
}

/* ---- routing ---- */

static bool usable(syn_cluster *c, const node_slot *s) {
  if (!s->used) return false;
  if (s->state != SYN_MEMBER_ALIVE && s->state != SYN_MEMBER_SUSPECT) return false;
  return uv_now(c->loop) >= s->failing_until;
}

int syn_cluster_route(syn_cluster *c, const uint8_t info_hash[20]) {
  if (!c->members) return c->slots[0].used ? 0 : -1;
  if (!c->ring) return -1;
  uint32_t p = syn_ring_partition(c->ring, info_hash);
  const uint16_t *idx;
  size_t n = syn_ring_replicas(c->ring, p, &idx);
  int not_caught_up = -1, fallback = -1;
  for (size_t i = 0; i < n; i++) {
    int slot = idx[i] < SYN_CLUSTER_MAX_NODES ? c->ring_slot[idx[i]] : -1;
    if (slot < 0) continue;
    node_slot *s = &c->slots[slot];
    /* A node still pulling the partitions it gained would answer without their peers. */
    if (usable(c, s) && s->caught_up) return slot;
    if (not_caught_up < 0 && usable(c, s)) not_caught_up = slot;
    /* Failing here but not declared dead: better than nothing. */
    if (fallback < 0 && s->state != SYN_MEMBER_DEAD) fallback = slot;
  }
  return not_caught_up >= 0 ? not_caught_up : fallback;
}

size_t syn_cluster_fanout(syn_cluster *c, int *slots, size_t cap) {
  size_t n = 0;
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES && n < cap; i++)
    if (usable(c, &c->slots[i])) slots[n++] = i;
  return n;
}

int syn_cluster_submit(syn_cluster *c, int slot, const Synapse__Request *req) {
  if (slot < 0 || slot >= SYN_CLUSTER_MAX_NODES || !c->slots[slot].used) return -ENODEV;
  return syn_upstream_submit(c->slots[slot].up, req);
}

bool syn_cluster_ready(syn_cluster *c) {
  if (!c->members) return c->slots[0].used;
  if (!syn_membership_joined(c->members) || !c->ring) return false;
  for (int i = 0; i < SYN_CLUSTER_MAX_NODES; i++)
    if (usable(c, &c->slots[i])) return true;
  return false;
}

const char *syn_cluster_slot_id(syn_cluster *c, int slot) {
  if (slot < 0 || slot >= SYN_CLUSTER_MAX_NODES || !c->slots[slot].used) return NULL;
  return c->slots[slot].id;
}

bool syn_cluster_slot_is_self(syn_cluster *c, int slot) {
  return slot >= 0 && slot < SYN_CLUSTER_MAX_NODES && c->slots[slot].used && c->slots[slot].self;
}

/* ---- status ---- */

uint32_t syn_cluster_replication(syn_cluster *c) {
  return c->ring ? syn_ring_replication(c->ring) : 1;
}

json_t *syn_cluster_members_json(syn_cluster *c) {
  json_t *list = json_array();
  if (c->members) refresh(c); /* last_seen moves without a membership change */
  if (!c->members) {
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:i}", "id", "local",
                                          "address", c->slots[0].data_url, "role", "node", "state",
                                          "alive", "incarnation", 0, "partitions_primary", 1,
                                          "partitions_replica", 0, "last_seen_ms", 0));
    return list;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  for (size_t i = 0; i < c->snapshot_count; i++) {
    const syn_member_info *m = &c->snapshot[i];
    uint32_t primary = 0, replica = 0;
    if (c->ring) syn_ring_owned_by(c->ring, m->id, &primary, &replica);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:i,s:i,s:b}", "id", m->id, "address",
                          m->data_url, "peer_address", m->peer_url, "role",
                          syn_member_role_name(m->role), "state", syn_member_state_name(m->state),
                          "incarnation", (json_int_t)m->incarnation, "partitions_primary",
                          (int)primary, "partitions_replica", (int)replica, "self", m->self);
    json_object_set_new(o, "last_seen_ms", m->self ? json_integer(0)
                        : m->last_seen_ms ? json_integer((json_int_t)(now - m->last_seen_ms))
                                          : json_null());
    json_array_append_new(list, o);
  }
  return list;
}

json_t *syn_cluster_owner_json(syn_cluster *c, const uint8_t info_hash[20]) {
  json_t *ids = json_array();
  uint32_t p = 0;
  if (!c->members) {
    json_array_append_new(ids, json_string("local"));
  } else if (c->ring) {
    p = syn_ring_partition(c->ring, info_hash);
    const uint16_t *idx;
    size_t n = syn_ring_replicas(c->ring, p, &idx);
    for (size_t i = 0; i < n; i++) json_array_append_new(ids, json_string(syn_ring_node_id(c->ring, idx[i])));
  }
  return json_pack("{s:s,s:i,s:o}", "status", "success", "partition", (int)p, "replicas", ids);
}
