/* JSON API. Design notes:
 *
 * - Each API request becomes an api_call that lives until its response is written. A
 *   single request (register, get, delete, peers, embed) is one routed syn_req whose
 *   callback answers and frees the call; a search is one call group (router/call_group.h)
 *   whose completion answers and frees it, so no part can outlive the call.
 * - A search in a cluster is answered partition by partition (router/search_plan.h): each
 *   node is sent the partitions it answers for (each partition's first replica in
 *   routing order) and searches only those; partitions a node names unserved, or a
 *   failed node's, go to their next replica in another round. No shard comes from two
 *   nodes, and the top-k of each node's part contains every global top-k hit of that
 *   part, so the merge is exact over the union. A partition left without a replica to
 *   ask makes the answer partial. Standalone, the one node answers for all it holds.
 * - A batch of registrations (POST /api/register/batch) is one call group with a part
 *   per valid shard, each routed by its own info_hash like a single registration, so the
 *   upstream batching puts the shards of one node into as few messages as fit and the
 *   node commits them together; each shard's answer is its own (same checks, same
 *   messages as /api/register), and the call answers once every part has.
 * - Text search with an embedding service takes two steps: an EmbedRequest (a node does
 *   the blocking HTTP call on a worker thread), then the search with the vector and the
 *   words. If embedding fails, the search runs on keywords alone and says so ("mode").
 * - Hits are merged here: vector hits by similarity, keyword hits by score (equal scores
 *   by their rank on the node that sent them), each cut to `limit`, then fused by
 *   reciprocal rank (k = 60) when both kinds are present.
 * - Without an embedding (no service, or it failed), a text search can reach meaning by
 *   pseudo-relevance feedback (vector_search.feedback): the first fan-out asks each node
 *   for the embeddings of its best feedback_docs keyword hits; the cluster-wide best
 *   feedback_docs of them, of the best hit's model, are averaged (each normalised) into a
 *   query vector, and a second fan-out searches near it. Vector and keyword hits are then
 *   fused as in hybrid search ("mode": "keyword+feedback"). The extra cost is bounded:
 *   at most SYN_SEARCH_MAX_FEEDBACK embeddings per node reply, one more fan-out. */
#include "router/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <llhttp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/rank.h"
#include "router/api_json.h"
#include "router/call_group.h"
#include "router/search_plan.h"
#include "router/tokens.h"

#define MAX_HOST_LEN 255

typedef enum call_kind {
  CALL_REGISTER,
  CALL_GET,
  CALL_DELETE,
  CALL_PEERS,
  CALL_EMBED,
  CALL_SEARCH,
} call_kind;

typedef struct hit {
  json_t *json; /* result object, owned */
  double similarity;
  char hash[65];
  int slot;         /* the node that sent it */
  uint32_t rank;    /* its place in that node's list (0 = best) */
  float *embedding; /* feedback: the shard's embedding, owned, or NULL */
  uint32_t dim;
} hit;

typedef struct hit_list {
  hit *items;
  size_t count;
  size_t cap;
} hit_list;

typedef struct api_call {
  syn_api api;
  call_kind kind;
  syn_http_slot *slot;
  char hash_hex[65];
  uint8_t key[20];
  syn_search_input search; /* searches: owned inputs */
  bool text_search;
  bool embedded;          /* the text query was embedded */
  uint32_t feedback_docs; /* > 0: the first fan-out asked for feedback embeddings */
  bool feedback_phase;    /* the second fan-out (near the feedback vector) is out */
  bool feedback_ran;      /* it answered: vector hits come from feedback */
  bool keywords_done;     /* keyword hits of the first fan-out already sorted and cut */
  bool partial;
  /* search: the phase's request (its pointers into this call's own data) and, in a
   * cluster, which node answers for which partitions */
  Synapse__SearchRequest phase_req;
  syn_search_plan *plan;
  bool sent_any;                /* some part of this phase went out */
  bool answered[SYN_NODES_MAX]; /* search: nodes whose part succeeded */
  int error_status;             /* search: a node refused the query (4xx) */
  char error[256];
  /* get: a quorum read, the newest answer kept */
  uint32_t read_quorum, read_ok;
  bool have_best, best_live;
  uint64_t best_hlc;
  char best_node[SYN_MEMBER_ID_MAX + 1];
  json_t *best; /* the newest live shard's JSON, owned */
  /* Its swarm figures: the largest any replica reported, the first replica in routing
   * order always among them (the read waits for it): announces go to that one, and the
   * others get each peer, BitTorrent or WebSocket, a replication interval later. */
  uint32_t max_seeders, max_leechers, max_downloaded;
  int first_slot;
  bool first_done;
  int last_status; /* a part's failure, for when none answered */
  char last_error[256];
  bool model_known;
  uint32_t model_dimension;
  hit_list vector_hits;
  hit_list keyword_hits;
  uint64_t started_ms;
  char tracker_buf[2][MAX_HOST_LEN + 64];
  const char *trackers[SYN_MAX_PUBLIC_URLS];
  size_t tracker_count;
} api_call;

/* ---- responses ---- */

static void respond(syn_http_slot *slot, int status, json_t *doc) {
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  if (!text) {
    static const char oom[] = "{\"status\":\"error\",\"error\":\"out of memory\"}";
    syn_http_respond(slot, 500, "application/json", oom, sizeof oom - 1, NULL);
    return;
  }
  syn_http_respond(slot, status, "application/json", text, strlen(text), NULL);
  free(text);
}

static void respond_error(syn_http_slot *slot, int status, const char *message) {
  const char *extra = status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL;
  json_t *doc = syn_api_error(message);
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  syn_http_respond(slot, status, "application/json", text ? text : "{}", text ? strlen(text) : 2,
                   extra);
  free(text);
}

static void hit_drop(hit *h) {
  json_decref(h->json);
  free(h->embedding);
  h->json = NULL;
  h->embedding = NULL;
}

static void hit_list_free(hit_list *l) {
  for (size_t i = 0; i < l->count; i++) hit_drop(&l->items[i]);
  free(l->items);
  memset(l, 0, sizeof *l);
}

static void call_free(api_call *c) {
  if (c->plan) syn_search_plan_free(c->plan);
  free(c->plan);
  json_decref(c->best);
  syn_search_input_free(&c->search);
  hit_list_free(&c->vector_hits);
  hit_list_free(&c->keyword_hits);
  free(c);
}

/* Status for a node error code. */
static int status_of(const Synapse__Reply *rep) {
  switch (rep->error) {
  case SYNAPSE__ERROR_CODE__BAD_REQUEST: return 400;
  case SYNAPSE__ERROR_CODE__NOT_FOUND: return 404;
  case SYNAPSE__ERROR_CODE__UNAVAILABLE: return 503;
  case SYNAPSE__ERROR_CODE__UNSUPPORTED: return 501;
  default: return 500;
  }
}

static void respond_node_error(syn_http_slot *slot, const Synapse__Reply *rep,
                               const char *fallback) {
  respond_error(slot, status_of(rep), rep->message && *rep->message ? rep->message : fallback);
}

/* ---- request plumbing ---- */

static api_call *call_new(const syn_api *api, call_kind kind, syn_http_slot *slot) {
  api_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->api = *api;
  c->kind = kind;
  c->slot = slot;
  c->started_ms = uv_now(api->loop);
  return c;
}

static void on_single_reply(syn_req *req, const Synapse__Reply *rep);

/* Sends one request for `c` to the node serving its info_hash (with failover); answers
 * 503 and frees the call when it cannot go out. */
static void send_routed(api_call *c, Synapse__Request *msg) {
  syn_nodes *nodes = c->api.nodes;
  syn_req *req = syn_nodes_req(nodes, on_single_reply, c);
  int rc = req ? syn_nodes_send(nodes, req, c->key, msg) : -EBUSY;
  if (rc == 0) return;
  respond_error(c->slot, 503,
                rc == -ENODEV ? "no node available for this shard, retry later"
                              : "tracker overloaded, retry later");
  call_free(c);
}

/* Sends to one usable node (embedding a query needs any one). */
static void send_any(api_call *c, Synapse__Request *msg) {
  syn_nodes *nodes = c->api.nodes;
  int slots[SYN_NODES_MAX];
  size_t n = syn_nodes_fanout(nodes, slots, SYN_NODES_MAX);
  syn_req *req = n ? syn_nodes_req(nodes, on_single_reply, c) : NULL;
  if (req && syn_nodes_send_to(nodes, req, slots[0], msg) == 0) return;
  respond_error(c->slot, 503, "no node available, retry later");
  call_free(c);
}

/* 0 when writes are open or the bearer token has write (or admin) scope
 * (router/tokens.h); else answers 401 or 403. */
static int check_token(const syn_api *api, const syn_http_request *req, syn_http_slot *slot) {
  int status =
      syn_tokens_check(api->tokens, SYN_SCOPE_WRITE, req->authorization, req->authorization_len);
  if (status == 0) return 0;
  respond_error(slot, status,
                status == 401 ? "missing bearer token (Authorization: Bearer <token>)"
                              : "invalid bearer token");
  return -1;
}

/* ---- register, get, delete, peers ---- */

/* The node request registering in's shard; it points into `in` and `reg`, so it is
 * encoded (sent) before either goes. */
static Synapse__Request register_request(syn_register_input *in, Synapse__RegisterRequest *reg) {
  synapse__register_request__init(reg);
  reg->shard = &in->shard;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_REGISTER;
  msg.register_ = reg;
  return msg;
}

static void api_register(const syn_api *api, const syn_http_request *req, syn_http_slot *slot) {
  if (check_token(api, req, slot)) return;
  syn_register_input in;
  char err[256];
  int status = syn_api_parse_register(req->body, req->body_len, &in, err, sizeof err);
  if (status) {
    syn_register_input_free(&in);
    respond_error(slot, status, err);
    return;
  }
  api_call *c = call_new(api, CALL_REGISTER, slot);
  if (!c) {
    syn_register_input_free(&in);
    respond_error(slot, 500, "out of memory");
    return;
  }
  memcpy(c->hash_hex, in.hash_hex, sizeof c->hash_hex);
  syn_info_hash_parse(c->hash_hex, strlen(c->hash_hex), c->hash_hex, c->key);
  Synapse__RegisterRequest reg;
  Synapse__Request msg = register_request(&in, &reg);
  api->counters->registrations++;
  send_routed(c, &msg); /* encoded at once: `in` may go */
  syn_register_input_free(&in);
}

/* ---- register/batch: one call group, a routed part per shard ---- */

/* One shard of a batch: its answer once known (status 0 while its part is out). */
typedef struct batch_item {
  char hash_hex[65];
  int status;
  bool created;
  char error[256];
} batch_item;

typedef struct batch_call {
  syn_http_slot *slot;
  size_t n;
  batch_item *items;
  json_t *doc; /* the parsed body, until every shard went out (then NULL) */
} batch_call;

static void batch_item_fail(batch_item *it, int status, const char *message) {
  it->status = status;
  snprintf(it->error, sizeof it->error, "%s", message);
}

static bool on_batch_part(void *ctx, uint32_t tag, int slot, const Synapse__Reply *rep) {
  (void)slot;
  batch_call *b = ctx;
  batch_item *it = &b->items[tag];
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_REGISTER) {
    batch_item_fail(it, status_of(rep),
                    rep->message && *rep->message ? rep->message : "registration failed");
    return true;
  }
  it->status = 200;
  it->created = rep->register_->created;
  return true;
}

static json_t *batch_result(const batch_item *it, size_t index) {
  json_t *hash = it->hash_hex[0] ? json_string(it->hash_hex) : json_null();
  if (it->status == 200)
    return json_pack("{s:I,s:s,s:o,s:s,s:b}", "index", (json_int_t)index, "status", "success",
                     "info_hash", hash, "message", "Shard registered successfully", "created",
                     it->created);
  return json_pack("{s:I,s:s,s:o,s:s,s:i}", "index", (json_int_t)index, "status", "error",
                   "info_hash", hash, "error", it->error, "code", it->status);
}

/* Answers the batch: every shard's result in request order; "success" only when every
 * shard was registered. */
static void on_batch_done(void *ctx, syn_group_end how, uint32_t parts_out) {
  (void)how, (void)parts_out;
  batch_call *b = ctx;
  json_t *results = json_array();
  size_t ok = 0;
  for (size_t i = 0; i < b->n; i++) {
    batch_item *it = &b->items[i];
    if (it->status == 0) batch_item_fail(it, 503, "no answer from the node in time; retry");
    ok += it->status == 200;
    json_array_append_new(results, batch_result(it, i));
  }
  json_t *doc = json_pack("{s:s,s:I,s:I,s:I,s:o}", "status", ok == b->n ? "success" : "error",
                          "count", (json_int_t)b->n, "registered", (json_int_t)ok, "failed",
                          (json_int_t)(b->n - ok), "results", results);
  if (doc && ok < b->n) {
    char msg[96];
    snprintf(msg, sizeof msg, "%zu of %zu shards were not registered: see results", b->n - ok,
             b->n);
    json_object_set_new(doc, "error", json_string(msg));
  }
  respond(b->slot, 200, doc);
  json_decref(b->doc);
  free(b->items);
  free(b);
}

/* Validates shard i and sends it as its own routed part; a refusal is its result. */
static void batch_send_one(const syn_api *api, syn_group *g, batch_call *b, size_t i) {
  batch_item *it = &b->items[i];
  syn_register_input in;
  char err[256];
  int status = syn_api_parse_register_item(json_array_get(json_object_get(b->doc, "shards"), i),
                                           &in, err, sizeof err);
  if (status) {
    batch_item_fail(it, status, err);
    memcpy(it->hash_hex, in.hash_hex, sizeof it->hash_hex); /* when it got that far */
    syn_register_input_free(&in);
    return;
  }
  uint8_t key[20];
  syn_info_hash_parse(in.hash_hex, strlen(in.hash_hex), it->hash_hex, key);
  Synapse__RegisterRequest reg;
  Synapse__Request msg = register_request(&in, &reg);
  api->counters->registrations++;
  int rc = syn_group_send(g, key, (uint32_t)i, &msg); /* encoded at once: `in` may go */
  if (rc)
    batch_item_fail(it, 503,
                    rc == -ENODEV ? "no node available for this shard, retry later"
                                  : "tracker overloaded, retry later");
  syn_register_input_free(&in);
}

static void api_register_batch(const syn_api *api, const syn_http_request *req,
                               syn_http_slot *slot) {
  if (check_token(api, req, slot)) return;
  char err[256];
  json_t *doc, *shards;
  int status =
      syn_api_parse_register_batch(req->body, req->body_len, &doc, &shards, err, sizeof err);
  batch_call *b = status ? NULL : calloc(1, sizeof *b);
  if (b) b->items = calloc(json_array_size(shards), sizeof *b->items);
  syn_group *g = b && b->items
                     ? syn_group_new(api->nodes, api->loop, 0, on_batch_part, on_batch_done, b)
                     : NULL;
  if (!g) {
    respond_error(slot, status ? status : 500, status ? err : "out of memory");
    if (b) free(b->items);
    free(b);
    json_decref(doc);
    return;
  }
  b->slot = slot;
  b->doc = doc;
  b->n = json_array_size(shards);
  for (size_t i = 0; i < b->n; i++) batch_send_one(api, g, b, i);
  json_decref(b->doc); /* every part is encoded: the parsed body (about 50 bytes a number) goes */
  b->doc = NULL;
  syn_group_seal(g); /* may answer and free b at once */
}

/* ---- get: read several replicas, keep the newest ---- */

static int status_of(const Synapse__Reply *rep);

/* Whether (hlc, node) is newer than the best answer so far. */
static bool newer_than_best(const api_call *c, uint64_t hlc, const char *node) {
  if (!c->have_best) return true;
  if (hlc != c->best_hlc) return hlc > c->best_hlc;
  return strcmp(node ? node : "", c->best_node) > 0;
}

static bool on_read_part(void *ctx, uint32_t tag, int slot, const Synapse__Reply *rep) {
  api_call *c = ctx;
  if (slot == c->first_slot) c->first_done = true;
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_GET) {
    c->last_status = status_of(rep);
    snprintf(c->last_error, sizeof c->last_error, "%s",
             rep->message && *rep->message ? rep->message : "shard lookup failed");
    return true;
  }
  const Synapse__GetReply *g = rep->get;
  c->read_ok++;
  if (g->swarm) {
    if (g->swarm->seeders > c->max_seeders) c->max_seeders = g->swarm->seeders;
    if (g->swarm->leechers > c->max_leechers) c->max_leechers = g->swarm->leechers;
    if (g->swarm->downloaded > c->max_downloaded) c->max_downloaded = g->swarm->downloaded;
  }
  const Synapse__Version *v = g->version;
  uint64_t hlc = v ? v->hlc : 0;
  const char *node = v && v->node ? v->node : "";
  if ((v || g->shard) && newer_than_best(c, hlc, node)) {
    c->have_best = true;
    c->best_hlc = hlc;
    snprintf(c->best_node, sizeof c->best_node, "%s", node);
    json_decref(c->best);
    c->best = NULL;
    c->best_live = g->shard != NULL;
    if (g->shard) c->best = syn_api_shard_json(g->shard, g->swarm);
  }
  /* R - W + 1 answers overlap every write quorum: the newest of them is the last
   * acknowledged write. */
  return c->read_ok < c->read_quorum || !c->first_done;
}

static void on_read_done(void *ctx, syn_group_end how, uint32_t parts_out) {
  api_call *c = ctx;
  if (c->read_ok < c->read_quorum) {
    /* Fewer answers than overlap every write quorum: the newest of them might not be the
     * last acknowledged write, so none is given. */
    char msg[400];
    snprintf(msg, sizeof msg, "%u of the %u replicas needed answered (%s), retry later", c->read_ok,
             c->read_quorum, c->last_status ? c->last_error : "no answer in time");
    respond_error(c->slot, 503, msg);
  } else if (!c->best_live || !c->best) {
    respond_error(c->slot, 404, "shard not found");
  } else {
    json_t *shard = c->best;
    c->best = NULL;
    json_object_set_new(shard, "seeders", json_integer(c->max_seeders));
    json_object_set_new(shard, "leechers", json_integer(c->max_leechers));
    json_object_set_new(shard, "downloaded", json_integer(c->max_downloaded));
    json_t *doc = json_deep_copy(shard);
    json_object_set_new(doc, "status", json_string("success"));
    json_object_set_new(doc, "shard", shard);
    respond(c->slot, 200, doc);
  }
  call_free(c);
}

static void read_replicas(api_call *c, Synapse__Request *msg) {
  syn_nodes *nodes = c->api.nodes;
  int slots[SYN_RING_MAX_REPLICATION];
  size_t n = syn_nodes_replicas(nodes, c->key, slots, SYN_RING_MAX_REPLICATION);
  uint32_t rf = syn_nodes_replication(nodes);
  uint32_t w = c->api.cfg->write_quorum < rf ? c->api.cfg->write_quorum : rf;
  c->read_quorum = rf - (w ? w : 1) + 1;
  syn_group *g = n ? syn_group_new(nodes, c->api.loop, 0, on_read_part, on_read_done, c) : NULL;
  if (!g) {
    respond_error(c->slot, 503, "no node available for this shard, retry later");
    call_free(c);
    return;
  }
  c->first_slot = slots[0];
  for (size_t i = 0; i < n; i++)
    if (syn_group_send_to(g, slots[i], 0, msg) && i == 0) c->first_done = true;
  syn_group_seal(g);
}

static void key_request(const syn_api *api, call_kind kind, const char *hex, const uint8_t key[20],
                        syn_http_slot *slot) {
  api_call *c = call_new(api, kind, slot);
  if (!c) {
    respond_error(slot, 500, "out of memory");
    return;
  }
  memcpy(c->hash_hex, hex, sizeof c->hash_hex);
  memcpy(c->key, key, 20);
  Synapse__ShardKey sk = SYNAPSE__SHARD_KEY__INIT;
  sk.info_hash = c->hash_hex;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  switch (kind) {
  case CALL_GET:
    msg.body_case = SYNAPSE__REQUEST__BODY_GET;
    msg.get = &sk;
    break;
  case CALL_DELETE:
    msg.body_case = SYNAPSE__REQUEST__BODY_DELETE;
    msg.delete_ = &sk;
    break;
  default:
    msg.body_case = SYNAPSE__REQUEST__BODY_PEERS;
    msg.peers = &sk;
    break;
  }
  if (kind == CALL_GET)
    read_replicas(c, &msg);
  else
    send_routed(c, &msg);
}

/* ---- search ---- */

static bool host_is_safe(const char *host, size_t len) {
  if (len == 0 || len > MAX_HOST_LEN) return false;
  for (size_t i = 0; i < len; i++) {
    char ch = host[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']' || ch == '_';
    if (!ok) return false;
  }
  return true;
}

/* Announce URLs for magnet links: the configured public ones, else this tracker's own as
 * the client reached it (its Host header). */
static void choose_trackers(const syn_http_request *req, api_call *c) {
  const syn_config *cfg = c->api.cfg;
  if (cfg->public_url_count) {
    for (size_t i = 0; i < cfg->public_url_count; i++) c->trackers[i] = cfg->public_urls[i];
    c->tracker_count = cfg->public_url_count;
    return;
  }
  char host[MAX_HOST_LEN + 1];
  if (req->host && host_is_safe(req->host, req->host_len)) {
    memcpy(host, req->host, req->host_len);
    host[req->host_len] = 0;
  } else {
    bool any = !strcmp(cfg->host, "0.0.0.0") || !strcmp(cfg->host, "::");
    snprintf(host, sizeof host, strchr(cfg->host, ':') && !any ? "[%s]:%u" : "%s:%u",
             any ? "127.0.0.1" : cfg->host, (unsigned)cfg->http_port);
  }
  snprintf(c->tracker_buf[0], sizeof c->tracker_buf[0], "http://%s/announce", host);
  c->trackers[c->tracker_count++] = c->tracker_buf[0];
  if (!cfg->udp_port) return;
  char *colon = strrchr(host, ':'); /* strip the HTTP port, keep an IPv6 literal's brackets */
  if (colon && (host[0] != '[' || colon > strchr(host, ']'))) *colon = 0;
  snprintf(c->tracker_buf[1], sizeof c->tracker_buf[1], "udp://%s:%u/announce", host,
           (unsigned)cfg->udp_port);
  c->trackers[c->tracker_count++] = c->tracker_buf[1];
}

static bool on_search_part(void *ctx, uint32_t tag, int slot, const Synapse__Reply *rep);
static void on_search_done(void *ctx, syn_group_end how, uint32_t parts_out);

static size_t plan_replicas(void *ctx, uint32_t partition, int *slots, size_t cap) {
  return syn_nodes_partition_replicas(ctx, partition, slots, cap);
}

/* One round of a clustered search: each node gets the partitions the plan gives it. A
 * part that cannot go out gives its partitions back at once. */
static void send_round(api_call *c) {
  syn_nodes *nodes = c->api.nodes;
  syn_search_plan *plan = c->plan;
  size_t n = syn_search_plan_round(plan, plan_replicas, nodes);
  syn_group *g = n ? syn_group_new(nodes, c->api.loop, 0, on_search_part, on_search_done, c) : NULL;
  if (!g) {
    for (size_t i = 0; i < n; i++) syn_search_plan_failed(plan, plan->round_slots[i]);
    on_search_done(c, SYN_GROUP_ALL_ANSWERED, 0);
    return;
  }
  Synapse__SearchRequest s = c->phase_req;
  s.has_partitions = 1;
  s.has_partition_count = 1;
  s.partition_count = plan->parts;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_SEARCH;
  msg.search = &s;
  for (size_t i = 0; i < n; i++) {
    int slot = plan->round_slots[i];
    s.partitions = (ProtobufCBinaryData){plan->bytes, plan->round[slot]};
    if (syn_group_send_to(g, slot, 0, &msg))
      syn_search_plan_failed(plan, slot);
    else
      c->sent_any = true;
  }
  syn_group_seal(g); /* completes at once when nothing went out */
}

/* Starts a search phase (the search, or the feedback search after it) with request s,
 * kept for the rounds that follow; the phase's completion answers or goes on. */
static void start_phase(api_call *c, const Synapse__SearchRequest *s) {
  c->phase_req = *s;
  c->sent_any = false;
  memset(c->answered, 0, sizeof c->answered);
  syn_nodes *nodes = c->api.nodes;
  int slots[SYN_NODES_MAX];
  size_t n = syn_nodes_fanout(nodes, slots, SYN_NODES_MAX);
  if (n == 0) {
    c->error_status = 503;
    snprintf(c->error, sizeof c->error, "no node available, retry later");
    on_search_done(c, SYN_GROUP_ALL_ANSWERED, 0);
    return;
  }
  uint32_t parts = syn_nodes_partitions(nodes);
  if (parts) {
    if (c->plan) syn_search_plan_free(c->plan);
    if (!c->plan) c->plan = malloc(sizeof *c->plan);
    if (c->plan && syn_search_plan_init(c->plan, parts) == 0) {
      send_round(c);
      return;
    }
    if (c->plan) syn_search_plan_free(c->plan);
    free(c->plan);
    c->plan = NULL;
    c->error_status = 500;
    snprintf(c->error, sizeof c->error, "out of memory");
    on_search_done(c, SYN_GROUP_ALL_ANSWERED, 0);
    return;
  }
  /* Standalone: the one node answers for everything it holds. */
  syn_group *g = syn_group_new(nodes, c->api.loop, 0, on_search_part, on_search_done, c);
  if (!g) {
    c->error_status = 500;
    snprintf(c->error, sizeof c->error, "out of memory");
    on_search_done(c, SYN_GROUP_ALL_ANSWERED, 0);
    return;
  }
  Synapse__SearchRequest req = *s;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_SEARCH;
  msg.search = &req;
  for (size_t i = 0; i < n; i++) syn_group_send_to(g, slots[i], 0, &msg);
  c->sent_any = syn_group_sent(g) > 0;
  syn_group_seal(g); /* completes at once when nothing went out */
}

/* Asks the nodes; the phase's completion answers. */
static void send_search(api_call *c, const float *embedding, uint32_t dim) {
  syn_search_input *in = &c->search;
  Synapse__SearchRequest s = SYNAPSE__SEARCH_REQUEST__INIT;
  if (embedding) {
    s.has_embedding = 1;
    s.embedding.data = (uint8_t *)embedding;
    s.embedding.len = dim * sizeof(float);
  }
  s.query = c->text_search ? (char *)in->query : NULL;
  s.limit = in->limit;
  s.model = (char *)in->model;
  /* An embedded text query compares only with shards of the embedding service's model. */
  if (c->embedded && !in->model) s.vector_model = c->api.cfg->embedding_model;
  s.tags = (char **)in->tags;
  s.n_tags = in->tag_count;
  s.has_min_similarity = 1;
  s.min_similarity = in->min_similarity;
  const syn_config *cfg = c->api.cfg;
  if (c->text_search && !embedding && cfg->search_feedback && cfg->feedback_docs) {
    /* Pseudo-relevance feedback: each node sends the embeddings of its best keyword hits,
     * and searches deep enough that the cluster's best feedback_docs are among them. */
    c->feedback_docs =
        cfg->feedback_docs < SYN_SEARCH_MAX_FEEDBACK ? cfg->feedback_docs : SYN_SEARCH_MAX_FEEDBACK;
    s.has_feedback_docs = 1;
    s.feedback_docs = c->feedback_docs;
    if (s.limit < c->feedback_docs) s.limit = c->feedback_docs;
  }
  c->kind = CALL_SEARCH;
  start_phase(c, &s);
}

static void api_search(const syn_api *api, const syn_http_request *req, syn_http_slot *slot,
                       bool by_embedding) {
  api_call *c = call_new(api, CALL_SEARCH, slot);
  if (!c) {
    respond_error(slot, 500, "out of memory");
    return;
  }
  char err[256];
  int status =
      syn_api_parse_search(req->body, req->body_len, by_embedding, &c->search, err, sizeof err);
  if (status) {
    respond_error(slot, status, err);
    call_free(c);
    return;
  }
  api->counters->searches++;
  choose_trackers(req, c);
  c->text_search = !by_embedding;
  if (by_embedding) {
    send_search(c, c->search.embedding, c->search.dimension);
    return;
  }
  if (!api->cfg->embedding_url || !*api->cfg->embedding_url) {
    send_search(c, NULL, 0);
    return;
  }
  Synapse__EmbedRequest e = SYNAPSE__EMBED_REQUEST__INIT;
  e.text = (char *)c->search.query;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_EMBED;
  msg.embed = &e;
  c->kind = CALL_EMBED;
  send_any(c, &msg);
}

static int hit_list_push(hit_list *l, json_t *json, double similarity, const char *hash, int slot,
                         uint32_t rank) {
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    hit *items = realloc(l->items, cap * sizeof *items);
    if (!items) return -1;
    l->items = items;
    l->cap = cap;
  }
  hit *h = &l->items[l->count++];
  h->json = json;
  h->similarity = similarity;
  snprintf(h->hash, sizeof h->hash, "%s", hash);
  h->slot = slot;
  h->rank = rank;
  h->embedding = NULL;
  h->dim = 0;
  return 0;
}

static json_t *hit_json(api_call *c, const Synapse__SearchHit *h) {
  json_t *o = syn_api_shard_json(h->shard, h->swarm);
  if (!o) return NULL;
  syn_buf magnet = SYN_BUF_INIT;
  if (syn_magnet_build(&magnet, h->shard, c->trackers, c->tracker_count) == 0)
    json_object_set_new(o, "magnet_link", json_string((const char *)magnet.data));
  syn_buf_free(&magnet);
  json_object_set_new(o, "similarity", json_real(h->similarity));
  return o;
}

/* A feedback embedding that came with a keyword hit: a heap copy (protobuf bytes may be
 * unaligned) when its length is its shard's dimension. */
static void keep_embedding(hit *h, const Synapse__Shard *s) {
  size_t len = s->embedding.len;
  if (!s->has_embedding || !s->has_dimension || s->dimension == 0 ||
      s->dimension > SYN_SHARD_MAX_DIM || len != (size_t)s->dimension * sizeof(float))
    return;
  h->embedding = malloc(len);
  if (!h->embedding) return;
  memcpy(h->embedding, s->embedding.data, len);
  h->dim = s->dimension;
}

static void collect_hits(api_call *c, hit_list *l, Synapse__SearchHit **hits, size_t n, int slot,
                         bool feedback) {
  for (size_t i = 0; i < n; i++) {
    if (!hits[i]->shard->info_hash) continue;
    json_t *o = hit_json(c, hits[i]);
    if (!o ||
        hit_list_push(l, o, hits[i]->similarity, hits[i]->shard->info_hash, slot, (uint32_t)i)) {
      json_decref(o);
      continue;
    }
    if (feedback) keep_embedding(&l->items[l->count - 1], hits[i]->shard);
  }
}

/* Best first; equal similarities by their rank on their node (a keyword hit's BM25
 * order there), then by hash, so the order is deterministic. */
static int by_similarity(const void *a, const void *b) {
  const hit *x = a, *y = b;
  if (x->similarity != y->similarity) return x->similarity < y->similarity ? 1 : -1;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return strcmp(x->hash, y->hash);
}

/* Sorts best first, keeps `limit`, and drops a second copy of a shard, which only a node
 * that ignores the partitions it was given (an older version, during an upgrade) sends. */
static void sort_and_cut(api_call *c, hit_list *l, uint32_t limit) {
  if (l->count > 1) qsort(l->items, l->count, sizeof *l->items, by_similarity);
  size_t kept = 0;
  for (size_t i = 0; i < l->count; i++) {
    bool dup = false;
    for (size_t j = 0; j < kept && !dup; j++) dup = !strcmp(l->items[j].hash, l->items[i].hash);
    if (dup) c->api.counters->search_copies_dropped++;
    if (dup || kept >= limit)
      hit_drop(&l->items[i]);
    else
      l->items[kept++] = l->items[i];
  }
  l->count = kept;
}

static const hit *find_hit(const hit_list *l, const char *hash) {
  for (size_t i = 0; i < l->count; i++)
    if (!strcmp(l->items[i].hash, hash)) return &l->items[i];
  return NULL;
}

/* Results in fused order: RRF over the two lists when both exist. A hit in both lists
 * shows its vector similarity, except after feedback, where the vector is a synthetic
 * one and the keyword similarity is what a reader can check. */
static json_t *fused_results(api_call *c) {
  hit_list *v = &c->vector_hits, *k = &c->keyword_hits;
  json_t *out = json_array();
  if (k->count == 0 || v->count == 0) {
    hit_list *only = v->count ? v : k;
    for (size_t i = 0; i < only->count; i++) json_array_append(out, only->items[i].json);
    return out;
  }
  const char *vk[SYN_SEARCH_MAX_LIMIT], *kk[SYN_SEARCH_MAX_LIMIT];
  for (size_t i = 0; i < v->count; i++) vk[i] = v->items[i].hash;
  for (size_t i = 0; i < k->count; i++) kk[i] = k->items[i].hash;
  syn_rrf_item *fused = malloc((v->count + k->count) * sizeof *fused);
  size_t n = fused ? syn_rrf_fuse(vk, v->count, kk, k->count, 60, fused, v->count + k->count) : 0;
  for (size_t i = 0; i < n && i < c->search.limit; i++) {
    const hit *h = c->feedback_ran ? find_hit(k, fused[i].key) : find_hit(v, fused[i].key);
    if (!h) h = c->feedback_ran ? find_hit(v, fused[i].key) : find_hit(k, fused[i].key);
    json_t *o = json_deep_copy(h->json);
    json_object_set_new(o, "score", json_real(fused[i].score));
    json_array_append_new(out, o);
  }
  free(fused);
  return out;
}

static void finish_search(api_call *c) {
  syn_search_input *in = &c->search;
  if (c->error_status) {
    respond_error(c->slot, c->error_status, c->error);
    return;
  }
  if (in->model && !c->model_known && !c->partial) {
    char msg[256];
    snprintf(msg, sizeof msg, "unknown model \"%s\": no shard is registered with it", in->model);
    respond_error(c->slot, 404, msg);
    return;
  }
  if (in->model && c->model_known && in->embedding && !c->feedback_ran && c->model_dimension &&
      c->model_dimension != in->dimension && c->vector_hits.count == 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "embedding has %u values but model \"%s\" has dimension %u",
             in->dimension, in->model, c->model_dimension);
    respond_error(c->slot, 400, msg);
    return;
  }
  sort_and_cut(c, &c->vector_hits, in->limit);
  sort_and_cut(c, &c->keyword_hits, in->limit);
  json_t *results = fused_results(c);
  json_t *doc = json_pack("{s:s,s:o,s:I,s:b}", "status", "success", "results", results, "count",
                          (json_int_t)json_array_size(results), "partial", c->partial);
  if (c->text_search) {
    const char *mode = c->embedded ? "hybrid" : c->feedback_ran ? "keyword+feedback" : "keyword";
    json_object_set_new(doc, "mode", json_string(mode));
  }
  syn_counters_search_latency(c->api.counters, uv_now(c->api.loop) - c->started_ms);
  respond(c->slot, 200, doc);
}

/* ---- replies ---- */

static void embed_reply(api_call *c, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_EMBED ||
      rep->embed->embedding.len % sizeof(float) || rep->embed->embedding.len == 0) {
    send_search(c, NULL, 0); /* keyword search alone; mode says so */
    return;
  }
  c->embedded = true;
  uint32_t dim = (uint32_t)(rep->embed->embedding.len / sizeof(float));
  float *vec = malloc(rep->embed->embedding.len);
  if (!vec) {
    send_search(c, NULL, 0);
    return;
  }
  memcpy(vec, rep->embed->embedding.data, rep->embed->embedding.len);
  free(c->search.embedding);
  c->search.embedding = vec;
  c->search.dimension = dim;
  send_search(c, vec, dim);
}

static bool on_search_part(void *ctx, uint32_t tag, int slot, const Synapse__Reply *rep) {
  api_call *c = ctx;
  if (rep->error == SYNAPSE__ERROR_CODE__BAD_REQUEST) {
    /* Every node applies the same rules: one refusal is the answer. */
    c->error_status = 400;
    snprintf(c->error, sizeof c->error, "%s",
             rep->message && *rep->message ? rep->message : "bad search");
    return false;
  }
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_SEARCH) {
    if (c->plan) syn_search_plan_failed(c->plan, slot); /* its partitions: the next replica */
    return true;
  }
  const Synapse__SearchReply *s = rep->search;
  c->answered[slot] = true;
  if (c->plan && s->has_unserved)
    syn_search_plan_unserved(c->plan, slot, s->unserved.data, s->unserved.len);
  if (s->has_model_known && s->model_known) {
    c->model_known = true;
    if (s->has_model_dimension) c->model_dimension = s->model_dimension;
  }
  collect_hits(c, &c->vector_hits, s->vector_hits, s->n_vector_hits, slot, false);
  collect_hits(c, &c->keyword_hits, s->keyword_hits, s->n_keyword_hits, slot,
               c->feedback_docs && !c->feedback_phase);
  return true;
}

/* The feedback query vector (common/rank.h, syn_rank_feedback) from the embeddings of
 * the best feedback_docs keyword hits that have one, of the model (key) and dimension
 * of the best of them. Fills *model with that hit's model name (into its JSON), *used
 * with how many went in and *radius with their spread. */
static float *feedback_vector(api_call *c, uint32_t *dim, const char **model, size_t *used,
                              double *radius) {
  hit_list *k = &c->keyword_hits;
  char key[SYN_SHARD_MAX_MODEL + 1] = "", mk[SYN_SHARD_MAX_MODEL + 1];
  const float *vecs[SYN_SEARCH_MAX_FEEDBACK];
  size_t n = 0;
  *dim = 0;
  *model = NULL;
  for (size_t i = 0; i < k->count && i < c->feedback_docs && n < SYN_SEARCH_MAX_FEEDBACK; i++) {
    const hit *h = &k->items[i];
    const char *m = json_string_value(json_object_get(h->json, "model"));
    if (!h->embedding || !m || syn_model_key(m, mk, sizeof mk)) continue;
    if (!*model) {
      memcpy(key, mk, sizeof key);
      *dim = h->dim;
      *model = m;
    } else if (strcmp(mk, key) != 0 || h->dim != *dim) {
      continue;
    }
    vecs[n++] = h->embedding;
  }
  float *vec = n ? malloc(*dim * sizeof *vec) : NULL;
  *used = vec ? syn_rank_feedback(vecs, n, *dim, vec, radius) : 0;
  if (*used == 0) {
    free(vec);
    vec = NULL;
  }
  return vec;
}

/* After the keyword fan-out: keeps the keyword hits per partition, then searches the
 * cluster near the feedback vector, for shards at least as close to it as the farthest
 * embedding it was made of (so feedback adds only what lies within the hits' own
 * spread, never the nearest of whatever is left). One embedding says nothing about that
 * spread: feedback needs two. True when that second fan-out went out (its completion
 * answers; `c` may be gone at return), false to answer with keywords. */
static bool start_feedback(api_call *c) {
  syn_search_input *in = &c->search;
  sort_and_cut(c, &c->keyword_hits, in->limit > c->feedback_docs ? in->limit : c->feedback_docs);
  c->keywords_done = true;
  uint32_t dim;
  const char *model;
  size_t used;
  double radius;
  float *vec = feedback_vector(c, &dim, &model, &used, &radius);
  if (vec && used < 2) {
    free(vec);
    vec = NULL;
  }
  if (!vec) return false;
  radius -= 1e-4; /* so the farthest hit itself is not lost to float rounding */
  free(in->embedding);
  in->embedding = vec;
  in->dimension = dim;
  Synapse__SearchRequest s = SYNAPSE__SEARCH_REQUEST__INIT;
  s.has_embedding = 1;
  s.embedding.data = (uint8_t *)vec;
  s.embedding.len = dim * sizeof(float);
  s.limit = in->limit;
  s.model = (char *)in->model;
  s.vector_model = (char *)model; /* vectors of one model only */
  s.tags = (char **)in->tags;
  s.n_tags = in->tag_count;
  s.has_min_similarity = 1;
  s.min_similarity = in->min_similarity > radius ? in->min_similarity : (float)radius;
  c->feedback_phase = true;
  start_phase(c, &s);
  return true;
}

static void on_search_done(void *ctx, syn_group_end how, uint32_t parts_out) {
  api_call *c = ctx;
  (void)how, (void)parts_out;
  /* Partitions a node left unserved or failed on: their next replicas, another round. */
  if (c->plan && !c->error_status && syn_search_plan_has_pending(c->plan)) {
    c->api.counters->search_partitions_rerouted += syn_search_plan_pending_count(c->plan);
    send_round(c);
    return;
  }
  if (c->plan) c->api.counters->search_partitions_missed += c->plan->missed;
  if (!c->sent_any && !c->error_status) {
    c->error_status = 503;
    snprintf(c->error, sizeof c->error, "tracker overloaded, retry later");
  }
  /* Whole when every partition was answered for by one of its replicas. */
  bool whole = c->plan ? c->plan->missed == 0 : syn_nodes_cover_all(c->api.nodes, c->answered);
  if (!c->feedback_phase) {
    c->partial = !whole;
    if (c->feedback_docs && !c->error_status && start_feedback(c)) return;
  } else if (c->error_status) {
    /* The feedback search failed: the keyword answer stands alone. */
    c->error_status = 0;
    hit_list_free(&c->vector_hits);
  } else {
    c->feedback_ran = true;
    c->partial |= !whole;
  }
  finish_search(c);
  call_free(c);
}

static void register_reply(api_call *c, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_REGISTER) {
    respond_node_error(c->slot, rep, "registration failed");
    return;
  }
  respond(c->slot, 200,
          json_pack("{s:s,s:s,s:s,s:b}", "status", "success", "info_hash", c->hash_hex, "message",
                    "Shard registered successfully", "created", rep->register_->created));
}

static void delete_reply(api_call *c, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_DELETE) {
    respond_node_error(c->slot, rep, "delete failed");
    return;
  }
  if (!rep->delete_->deleted) {
    respond_error(c->slot, 404, "shard not found");
    return;
  }
  respond(c->slot, 200,
          json_pack("{s:s,s:s,s:s}", "status", "success", "info_hash", c->hash_hex, "message",
                    "Shard deleted"));
}

static json_t *peer_list(const ProtobufCBinaryData *v4, const ProtobufCBinaryData *v6) {
  json_t *list = json_array();
  char ip[64];
  for (size_t i = 0; i + 6 <= v4->len; i += 6) {
    const uint8_t *p = v4->data + i;
    snprintf(ip, sizeof ip, "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
    json_array_append_new(list, json_pack("{s:s,s:i}", "ip", ip, "port", p[4] << 8 | p[5]));
  }
  for (size_t i = 0; i + 18 <= v6->len; i += 18) {
    const uint8_t *p = v6->data + i;
    inet_ntop(AF_INET6, p, ip, sizeof ip);
    json_array_append_new(list, json_pack("{s:s,s:i}", "ip", ip, "port", p[16] << 8 | p[17]));
  }
  return list;
}

static void peers_reply(api_call *c, const Synapse__Reply *rep) {
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_PEERS) {
    respond_node_error(c->slot, rep, "peers lookup failed");
    return;
  }
  const Synapse__PeersReply *p = rep->peers;
  json_t *list = peer_list(&p->peers4, &p->peers6);
  respond(
      c->slot, 200,
      json_pack("{s:s,s:s,s:i,s:i,s:i,s:I,s:o}", "status", "success", "info_hash", c->hash_hex,
                "seeders", p->swarm->seeders, "leechers", p->swarm->leechers, "downloaded",
                p->swarm->downloaded, "count", (json_int_t)json_array_size(list), "peers", list));
}

static void on_single_reply(syn_req *req, const Synapse__Reply *rep) {
  api_call *c = req->ctx;
  switch (c->kind) {
  case CALL_EMBED: embed_reply(c, rep); return; /* the call goes on as a search */
  case CALL_REGISTER: register_reply(c, rep); break;
  case CALL_DELETE: delete_reply(c, rep); break;
  case CALL_PEERS: peers_reply(c, rep); break;
  default: break;
  }
  call_free(c);
}

/* ---- routing ---- */

static bool prefix_is(const syn_http_request *req, const char *prefix, const char **rest,
                      size_t *rest_len) {
  size_t n = strlen(prefix);
  if (req->path_len < n || memcmp(req->path, prefix, n) != 0) return false;
  *rest = req->path + n;
  *rest_len = req->path_len - n;
  return true;
}

static void method_not_allowed(syn_http_slot *slot, const char *allow) {
  char headers[64];
  snprintf(headers, sizeof headers, "Allow: %s\r\n", allow);
  const char *body = "{\"status\":\"error\",\"error\":\"method not allowed\"}";
  syn_http_respond(slot, 405, "application/json", body, strlen(body), headers);
}

static void shard_route(const syn_api *api, const syn_http_request *req, syn_http_slot *slot,
                        const char *rest, size_t len, bool peers) {
  char hex[65];
  uint8_t key[20];
  if (syn_api_parse_hash(rest, len, hex, key)) {
    respond_error(slot, 400, "info_hash must be 40 or 64 hexadecimal characters");
    return;
  }
  if (peers) {
    if (req->method == HTTP_GET)
      key_request(api, CALL_PEERS, hex, key, slot);
    else
      method_not_allowed(slot, "GET");
    return;
  }
  if (req->method == HTTP_GET) {
    key_request(api, CALL_GET, hex, key, slot);
  } else if (req->method == HTTP_DELETE) {
    if (check_token(api, req, slot) == 0) key_request(api, CALL_DELETE, hex, key, slot);
  } else {
    method_not_allowed(slot, "GET, DELETE");
  }
}

static bool path_is(const syn_http_request *req, const char *path) {
  size_t n = strlen(path);
  return req->path_len == n && memcmp(req->path, path, n) == 0;
}

bool syn_api_handle(const syn_api *api, const syn_http_request *req, syn_http_slot *slot) {
  const char *rest;
  size_t len;
  bool post = req->method == HTTP_POST;
  if (path_is(req, "/api/register")) {
    if (post)
      api_register(api, req, slot);
    else
      method_not_allowed(slot, "POST");
  } else if (path_is(req, "/api/register/batch")) {
    if (post)
      api_register_batch(api, req, slot);
    else
      method_not_allowed(slot, "POST");
  } else if (path_is(req, "/api/search/embedding")) {
    if (post)
      api_search(api, req, slot, true);
    else
      method_not_allowed(slot, "POST");
  } else if (path_is(req, "/api/search")) {
    if (post)
      api_search(api, req, slot, false);
    else
      method_not_allowed(slot, "POST");
  } else if (prefix_is(req, "/api/shard/", &rest, &len)) {
    shard_route(api, req, slot, rest, len, false);
  } else if (prefix_is(req, "/api/peers/", &rest, &len)) {
    shard_route(api, req, slot, rest, len, true);
  } else {
    return false;
  }
  return true;
}
