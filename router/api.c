/* JSON API. Design notes:
 *
 * - Each API request becomes an api_call that lives until its response is written. A
 *   single request (register, get, delete, peers, embed) is one routed syn_req whose
 *   callback answers and frees the call; a search is one call group (router/call_group.h)
 *   whose completion answers and frees it, so no part can outlive the call.
 * - A search asks every node; each answers with its own top-k over all it holds, and a
 *   hit is kept only from the replica that serves its partition (the first replica, in
 *   routing order, that answered), so copies are dropped and a replica that lags behind
 *   (a shard deleted elsewhere) is never trusted over the one that serves reads. The
 *   top-k of a subset holding a shard contains it whenever the global top-k does, so the
 *   merge is exact over the union.
 * - Text search with an embedding service takes two steps: an EmbedRequest (a node does
 *   the blocking HTTP call on a worker thread), then the search with the vector and the
 *   words. If embedding fails, the search runs on keywords alone and says so ("mode").
 * - Hits are merged here: vector hits by similarity, keyword hits by score, each cut to
 *   `limit`, then fused by reciprocal rank (k = 60) when both kinds are present. */
#include "router/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/rank.h"
#include "router/api_json.h"
#include "router/call_group.h"

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
  uint8_t key[20];
  int slot; /* the node that sent it */
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
  bool embedded; /* the text query was embedded */
  bool partial;
  bool answered[SYN_NODES_MAX]; /* search: nodes whose part succeeded */
  int error_status;             /* search: a node refused the query (4xx) */
  char error[256];
  /* get: a quorum read, the newest answer kept */
  uint32_t read_quorum, read_ok;
  bool have_best, best_live;
  uint64_t best_hlc;
  char best_node[SYN_MEMBER_ID_MAX + 1];
  json_t *best;    /* the newest live shard's JSON, owned */
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

static void hit_list_free(hit_list *l) {
  for (size_t i = 0; i < l->count; i++) json_decref(l->items[i].json);
  free(l->items);
  memset(l, 0, sizeof *l);
}

static void call_free(api_call *c) {
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

static bool token_matches(const char *given, size_t len, const char *token) {
  size_t tlen = strlen(token);
  unsigned char diff = (unsigned char)(len != tlen);
  for (size_t i = 0; i < len; i++) diff |= (unsigned char)(given[i] ^ token[i < tlen ? i : 0]);
  return diff == 0;
}

/* 0 when writes are open or the bearer token is known; else answers 401 or 403. */
static int check_token(const syn_api *api, const syn_http_request *req, syn_http_slot *slot) {
  const syn_config *cfg = api->cfg;
  if (cfg->api_token_count == 0) return 0;
  const char *auth = req->authorization;
  if (!auth || req->authorization_len < 7 || strncasecmp(auth, "Bearer ", 7) != 0) {
    respond_error(slot, 401, "missing bearer token (Authorization: Bearer <token>)");
    return -1;
  }
  const char *tok = auth + 7;
  size_t len = req->authorization_len - 7;
  bool ok = false;
  for (size_t i = 0; i < cfg->api_token_count; i++)
    ok |= token_matches(tok, len, cfg->api_tokens[i]);
  if (ok) return 0;
  respond_error(slot, 403, "invalid bearer token");
  return -1;
}

/* ---- register, get, delete, peers ---- */

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
  Synapse__RegisterRequest reg = SYNAPSE__REGISTER_REQUEST__INIT;
  reg.shard = &in.shard;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_REGISTER;
  msg.register_ = &reg;
  api->counters->registrations++;
  send_routed(c, &msg); /* encoded at once: `in` may go */
  syn_register_input_free(&in);
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
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_GET) {
    c->last_status = status_of(rep);
    snprintf(c->last_error, sizeof c->last_error, "%s",
             rep->message && *rep->message ? rep->message : "shard lookup failed");
    return true;
  }
  const Synapse__GetReply *g = rep->get;
  c->read_ok++;
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
  return c->read_ok < c->read_quorum;
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
  for (size_t i = 0; i < n; i++) syn_group_send_to(g, slots[i], 0, msg);
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

/* Asks every usable node; the group's completion answers. */
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
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_SEARCH;
  msg.search = &s;
  c->kind = CALL_SEARCH;
  syn_nodes *nodes = c->api.nodes;
  int slots[SYN_NODES_MAX];
  size_t n = syn_nodes_fanout(nodes, slots, SYN_NODES_MAX);
  syn_group *g = n ? syn_group_new(nodes, c->api.loop, 0, on_search_part, on_search_done, c) : NULL;
  if (!g) {
    respond_error(c->slot, 503, "no node available, retry later");
    call_free(c);
    return;
  }
  for (size_t i = 0; i < n; i++)
    if (syn_group_send_to(g, slots[i], 0, &msg)) c->partial = true;
  if (syn_group_sent(g) == 0) {
    c->error_status = 503;
    snprintf(c->error, sizeof c->error, "tracker overloaded, retry later");
  }
  syn_group_seal(g); /* completes at once when nothing went out */
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

static int hit_list_push(hit_list *l, json_t *json, double similarity, const char *hash, int slot) {
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
  if (syn_info_hash_parse(h->hash, strlen(h->hash), h->hash, h->key)) memset(h->key, 0, 20);
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

static void collect_hits(api_call *c, hit_list *l, Synapse__SearchHit **hits, size_t n, int slot) {
  for (size_t i = 0; i < n; i++) {
    if (!hits[i]->shard->info_hash) continue;
    json_t *o = hit_json(c, hits[i]);
    if (!o || hit_list_push(l, o, hits[i]->similarity, hits[i]->shard->info_hash, slot))
      json_decref(o);
  }
}

/* Keeps each hit only from the replica that serves its partition: the first one, in
 * routing order, whose part answered. */
static void keep_serving_copies(api_call *c, hit_list *l) {
  size_t kept = 0;
  for (size_t i = 0; i < l->count; i++) {
    int slots[SYN_RING_MAX_REPLICATION];
    size_t n = syn_nodes_replicas(c->api.nodes, l->items[i].key, slots, SYN_RING_MAX_REPLICATION);
    int serving = -1;
    for (size_t k = 0; k < n && serving < 0; k++)
      if (c->answered[slots[k]]) serving = slots[k];
    if (serving == l->items[i].slot)
      l->items[kept++] = l->items[i];
    else
      json_decref(l->items[i].json);
  }
  l->count = kept;
}

static int by_similarity(const void *a, const void *b) {
  const hit *x = a, *y = b;
  if (x->similarity != y->similarity) return x->similarity < y->similarity ? 1 : -1;
  return strcmp(x->hash, y->hash);
}

/* Sorts best first, drops the second copy of a shard (two nodes may both have answered
 * for it while they disagreed on who is primary), and keeps `limit`. */
static void sort_and_cut(hit_list *l, uint32_t limit) {
  if (l->count > 1) qsort(l->items, l->count, sizeof *l->items, by_similarity);
  size_t kept = 0;
  for (size_t i = 0; i < l->count; i++) {
    bool dup = false;
    for (size_t j = 0; j < kept && !dup; j++) dup = !strcmp(l->items[j].hash, l->items[i].hash);
    if (dup || kept >= limit)
      json_decref(l->items[i].json);
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

/* Results in fused order: RRF over the two lists when both exist. */
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
    const hit *h = find_hit(v, fused[i].key);
    if (!h) h = find_hit(k, fused[i].key);
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
  if (in->model && c->model_known && in->embedding && c->model_dimension &&
      c->model_dimension != in->dimension && c->vector_hits.count == 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "embedding has %u values but model \"%s\" has dimension %u",
             in->dimension, in->model, c->model_dimension);
    respond_error(c->slot, 400, msg);
    return;
  }
  keep_serving_copies(c, &c->vector_hits);
  keep_serving_copies(c, &c->keyword_hits);
  sort_and_cut(&c->vector_hits, in->limit);
  sort_and_cut(&c->keyword_hits, in->limit);
  json_t *results = fused_results(c);
  json_t *doc = json_pack("{s:s,s:o,s:I,s:b}", "status", "success", "results", results, "count",
                          (json_int_t)json_array_size(results), "partial", c->partial);
  if (c->text_search) {
    const char *mode = c->embedded ? "hybrid" : "keyword";
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
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_SEARCH)
    return true; /* partial only if no other replica covers its partitions (done below) */
  const Synapse__SearchReply *s = rep->search;
  c->answered[slot] = true;
  if (s->has_model_known && s->model_known) {
    c->model_known = true;
    if (s->has_model_dimension) c->model_dimension = s->model_dimension;
  }
  collect_hits(c, &c->vector_hits, s->vector_hits, s->n_vector_hits, slot);
  collect_hits(c, &c->keyword_hits, s->keyword_hits, s->n_keyword_hits, slot);
  return true;
}

static void on_search_done(void *ctx, syn_group_end how, uint32_t parts_out) {
  api_call *c = ctx;
  /* Every node searches all it holds: an answer is whole while each partition was
   * searched by one of its replicas, whichever nodes failed or ran out of time. */
  c->partial = !syn_nodes_cover_all(c->api.nodes, c->answered);
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
