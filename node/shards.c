#include "node/shards.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hlc.h"
#include "common/log.h"
#include "common/urlcodec.h"
#include "node/embedder.h"
#include "node/shard_proto.h"
#include "proto/wire.h"

#define PEERS_MAX 200 /* /api/peers lists at most this many */

int syn_shards_index_config(const syn_config *cfg, syn_index_config *out, char *err,
                            size_t err_len) {
  syn_index_config_defaults(out);
  if (cfg->index_type && *cfg->index_type && syn_index_type_parse(cfg->index_type, &out->type)) {
    snprintf(err, err_len,
             "vector_search.index_type: \"%s\" is not one of auto, flat, flat_sq8, ivf, ivf_sq8, "
             "hnsw, hnsw_sq8",
             cfg->index_type);
    return -1;
  }
  if (cfg->auto_threshold) out->auto_threshold = cfg->auto_threshold;
  if (cfg->hnsw_m) out->hnsw_m = cfg->hnsw_m;
  if (cfg->hnsw_ef_construction) out->hnsw_ef_construction = cfg->hnsw_ef_construction;
  if (cfg->hnsw_ef_search) out->hnsw_ef_search = cfg->hnsw_ef_search;
  if (cfg->ivf_nlist) out->ivf_nlist = cfg->ivf_nlist;
  if (cfg->ivf_nprobe) out->ivf_nprobe = cfg->ivf_nprobe;
  out->partitions = cfg->partitions;
  return syn_index_config_validate(out, err, err_len) ? -1 : 0;
}

int syn_shards_handles(const Synapse__Request *req) {
  switch (req->body_case) {
  case SYNAPSE__REQUEST__BODY_REGISTER:
  case SYNAPSE__REQUEST__BODY_GET:
  case SYNAPSE__REQUEST__BODY_DELETE:
  case SYNAPSE__REQUEST__BODY_PEERS:
  case SYNAPSE__REQUEST__BODY_SEARCH:
  case SYNAPSE__REQUEST__BODY_EMBED: return 1;
  default: return 0;
  }
}

static void append(syn_buf *reply, Synapse__Reply *rep) {
  if (syn_wire_append_field1(reply, &rep->base)) syn_error("node: out of memory packing reply");
}

static void append_error(syn_buf *reply, uint64_t id, Synapse__ErrorCode code, const char *msg) {
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = id;
  rep.has_error = 1;
  rep.error = code;
  rep.message = (char *)msg;
  append(reply, &rep);
}

static Synapse__ErrorCode code_of(int rc) {
  switch (rc) {
  case -EINVAL: return SYNAPSE__ERROR_CODE__BAD_REQUEST;
  case -ENOENT: return SYNAPSE__ERROR_CODE__NOT_FOUND;
  default: return SYNAPSE__ERROR_CODE__INTERNAL;
  }
}

/* The 20 bytes that name a shard's swarm: v1 hash, or a v2 hash truncated (BEP 52). */
static void swarm_figures(syn_shards *sh, const char *hex, uint32_t now,
                          Synapse__SwarmFigures *out) {
  uint8_t key[20];
  syn_scrape_result r = {0};
  if (syn_hex_decode(hex, 40, key, 20) == 0) {
    syn_swarm_scrape(sh->swarms, key, now, &r);
    syn_ws_peers_add_figures(sh->ws, key, now, &r);
  }
  out->seeders = r.complete;
  out->leechers = r.incomplete;
  out->downloaded = r.downloaded;
}

static syn_version new_version(syn_shards *sh) {
  syn_version v = {.hlc = syn_hlc_now(&sh->hlc, 0)};
  snprintf(v.node, sizeof v.node, "%s", sh->cfg->node_id);
  return v;
}

/* One registration of a batch, from its request to its reply. */
typedef struct reg_item {
  uint64_t id;
  bool answered; /* its error reply is out */
  char hex[65];
  float *embedding; /* owned */
  syn_shard_input in;
  bool existed;
  syn_index_write *w;
  char err[256];
  syn_shard stored; /* what is copied to the other replicas */
  bool have_stored;
} reg_item;

static void reg_refuse(reg_item *it, syn_buf *reply, Synapse__ErrorCode code, const char *msg) {
  append_error(reply, it->id, code, msg);
  it->answered = true;
}

/* Checks one request and makes its write (the version stamped now); an error is
 * answered at once. */
static void reg_prepare(syn_shards *sh, const Synapse__Request *req, int64_t deadline_ms,
                        reg_item *it, syn_index_write *w, syn_buf *reply) {
  const Synapse__Shard *p = req->register_->shard;
  bool bad;
  it->id = req->id;
  if (deadline_ms && syn_wall_ms() > deadline_ms)
    return reg_refuse(it, reply, SYNAPSE__ERROR_CODE__UNAVAILABLE,
                      "the request's deadline passed before this node got to it; retry");
  if (!p->info_hash || syn_info_hash_normalize(p->info_hash, it->hex))
    return reg_refuse(it, reply, SYNAPSE__ERROR_CODE__BAD_REQUEST, "info_hash must be hex");
  it->embedding = syn_shard_embedding_copy(p, &bad);
  if (bad || (p->has_embedding && !it->embedding))
    return reg_refuse(it, reply,
                      bad ? SYNAPSE__ERROR_CODE__BAD_REQUEST : SYNAPSE__ERROR_CODE__INTERNAL,
                      bad ? "embedding length is not the dimension" : "out of memory");
  it->in = syn_shard_input_from_proto(p, it->embedding);
  it->in.created_at_ms = 0; /* a new write keeps the stored creation time, or starts one */
  syn_key_version before;
  it->existed = syn_index_version(sh->index, it->hex, &before) == 0 && !before.deleted;
  *w = (syn_index_write){.shard = &it->in,
                         .info_hash = it->hex,
                         .version = new_version(sh),
                         .err = it->err,
                         .errlen = sizeof it->err};
  it->w = w;
}

/* After the index applied them: errors answered, applied keys noted. */
static void reg_stored(syn_shards *sh, reg_item *it, syn_buf *reply) {
  if (it->answered) return;
  int rc = it->w->rc;
  if (rc == 0 && it->w->applied) syn_registered_note(sh->registered, it->hex, true);
  if (rc) reg_refuse(it, reply, code_of(rc), *it->err ? it->err : syn_index_strerror(rc));
}

/* Copies every stored write of the batch (with its times, version and embedding) to
 * the other replicas at once (W quorum each); answers each registration. */
static void reg_replicate(syn_shards *sh, reg_item *items, size_t n, syn_buf *reply) {
  syn_replica_copy *copies = calloc(n ? n : 1, sizeof *copies);
  Synapse__Shard *msgs = calloc(n ? n : 1, sizeof *msgs);
  Synapse__Version *versions = calloc(n ? n : 1, sizeof *versions);
  size_t *at = calloc(n ? n : 1, sizeof *at);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    reg_item *it = &items[i];
    if (it->answered) continue;
    if (!copies || !msgs || !versions || !at) {
      reg_refuse(it, reply, SYNAPSE__ERROR_CODE__INTERNAL, "out of memory");
      continue;
    }
    if (sh->replica && syn_index_get(sh->index, it->hex, true, &it->stored)) {
      reg_refuse(it, reply, SYNAPSE__ERROR_CODE__UNAVAILABLE,
                 "registration replaced before replication; retry");
      continue;
    }
    it->have_stored = sh->replica != NULL;
    if (it->have_stored) syn_shard_to_proto(&it->stored, &msgs[k], &versions[k]);
    copies[k].shard = &msgs[k];
    at[k++] = i;
  }
  if (k) syn_replica_put_many(sh->replica, copies, k);
  for (size_t j = 0; j < k; j++) {
    reg_item *it = &items[at[j]];
    if (copies[j].rc) {
      reg_refuse(it, reply, SYNAPSE__ERROR_CODE__UNAVAILABLE, copies[j].err);
      continue;
    }
    Synapse__RegisterReply body = SYNAPSE__REGISTER_REPLY__INIT;
    body.created = !it->existed && !copies[j].existed_elsewhere;
    Synapse__Reply rep = SYNAPSE__REPLY__INIT;
    rep.id = it->id;
    rep.body_case = SYNAPSE__REPLY__BODY_REGISTER;
    rep.register_ = &body;
    append(reply, &rep);
  }
  free(copies);
  free(msgs);
  free(versions);
  free(at);
}

static void reg_items_free(reg_item *items, size_t n) {
  for (size_t i = 0; items && i < n; i++) {
    free(items[i].embedding);
    if (items[i].have_stored) syn_shard_free(&items[i].stored);
  }
  free(items);
}

void syn_shards_register(syn_shards *sh, const Synapse__Request *const *reqs, size_t n,
                         int64_t deadline_ms, syn_buf *reply) {
  reg_item *items = calloc(n ? n : 1, sizeof *items);
  syn_index_write *w = calloc(n ? n : 1, sizeof *w);
  if (!items || !w) {
    for (size_t i = 0; i < n; i++)
      append_error(reply, reqs[i]->id, SYNAPSE__ERROR_CODE__INTERNAL, "out of memory");
    free(w);
    free(items);
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    reg_prepare(sh, reqs[i], deadline_ms, &items[i], &w[k], reply);
    k += items[i].w != NULL;
  }
  syn_index_apply(sh->index, w, k); /* one group commit; each write's rc tells */
  for (size_t i = 0; i < n; i++) reg_stored(sh, &items[i], reply);
  reg_replicate(sh, items, n, reply);
  reg_items_free(items, n);
  free(w);
}

static void append_not_serving(syn_buf *reply, uint64_t id) {
  append_error(reply, id, SYNAPSE__ERROR_CODE__NOT_SERVING,
               "this replica is catching up: ask another");
}

static void handle_get(syn_shards *sh, uint64_t id, const Synapse__ShardKey *k, uint32_t now,
                       syn_buf *reply) {
  if (!syn_replica_serving(sh->replica)) {
    append_not_serving(reply, id);
    return;
  }
  syn_shard s;
  Synapse__Shard shard = SYNAPSE__SHARD__INIT;
  Synapse__SwarmFigures swarm = SYNAPSE__SWARM_FIGURES__INIT;
  Synapse__Version version = SYNAPSE__VERSION__INIT;
  Synapse__GetReply body = SYNAPSE__GET_REPLY__INIT;
  syn_key_version kv;
  int rc = syn_index_get(sh->index, k->info_hash, false, &s);
  if (rc == 0) {
    syn_shard_to_proto(&s, &shard, &version);
    swarm_figures(sh, s.info_hash, now, &swarm);
    body.shard = &shard;
    body.version = &version;
  } else if (rc == -ENOENT) {
    /* Not held: say which version of it we know, a tombstone's or none. */
    if (syn_index_version(sh->index, k->info_hash, &kv) == 0) {
      syn_version_to_proto(&kv.version, &version);
      body.version = &version;
      body.has_deleted = 1;
      body.deleted = kv.deleted;
    }
    swarm_figures(sh, k->info_hash, now, &swarm);
  } else {
    append_error(reply, id, code_of(rc), syn_index_strerror(rc));
    return;
  }
  body.swarm = &swarm;
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = id;
  rep.body_case = SYNAPSE__REPLY__BODY_GET;
  rep.get = &body;
  append(reply, &rep);
  if (rc == 0) syn_shard_free(&s);
}

static void handle_delete(syn_shards *sh, uint64_t id, const Synapse__ShardKey *k, syn_buf *reply) {
  syn_version v = new_version(sh);
  bool existed = false;
  bool applied = false;
  int rc = syn_index_delete(sh->index, k->info_hash, &v, syn_wall_ms(), &applied, &existed);
  if (rc == 0 && applied) syn_registered_note(sh->registered, k->info_hash, false);
  if (rc) {
    append_error(reply, id, code_of(rc), syn_index_strerror(rc));
    return;
  }
  char err[256];
  bool elsewhere = false;
  if (sh->replica &&
      syn_replica_delete(sh->replica, k->info_hash, &v, &elsewhere, err, sizeof err)) {
    append_error(reply, id, SYNAPSE__ERROR_CODE__UNAVAILABLE, err);
    return;
  }
  Synapse__DeleteReply body = SYNAPSE__DELETE_REPLY__INIT;
  body.deleted = existed || elsewhere;
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = id;
  rep.body_case = SYNAPSE__REPLY__BODY_DELETE;
  rep.delete_ = &body;
  append(reply, &rep);
}

static void handle_peers(syn_shards *sh, uint64_t id, const Synapse__ShardKey *k, uint32_t now,
                         syn_buf *reply) {
  uint8_t key[20];
  if (strlen(k->info_hash) < 40 || syn_hex_decode(k->info_hash, 40, key, 20)) {
    append_error(reply, id, SYNAPSE__ERROR_CODE__BAD_REQUEST, "info_hash must be hex");
    return;
  }
  static _Thread_local uint8_t peers4[PEERS_MAX * 6], peers6[PEERS_MAX * 18];
  syn_announce_result res = {.peers4 = peers4, .peers6 = peers6};
  syn_swarm_peers(sh->swarms, key, now, PEERS_MAX, &res);
  Synapse__SwarmFigures swarm = SYNAPSE__SWARM_FIGURES__INIT;
  swarm.seeders = res.complete;
  swarm.leechers = res.incomplete;
  swarm.downloaded = res.downloaded;
  Synapse__PeersReply body = SYNAPSE__PEERS_REPLY__INIT;
  body.swarm = &swarm;
  body.has_peers4 = body.has_peers6 = 1;
  body.peers4 = (ProtobufCBinaryData){res.peers4_count * 6, peers4};
  body.peers6 = (ProtobufCBinaryData){res.peers6_count * 18, peers6};
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = id;
  rep.body_case = SYNAPSE__REPLY__BODY_PEERS;
  rep.peers = &body;
  append(reply, &rep);
}

/* Proto hits over index hits; everything borrowed from `hits`, freed by the caller. */
typedef struct hit_view {
  Synapse__SearchHit *msgs;
  Synapse__SearchHit **ptrs;
  Synapse__Shard *shards;
  Synapse__SwarmFigures *swarms;
} hit_view;

static int hit_view_build(syn_shards *sh, syn_hit *hits, size_t n, uint32_t now, hit_view *v) {
  v->msgs = calloc(n + 1, sizeof *v->msgs);
  v->ptrs = calloc(n + 1, sizeof *v->ptrs);
  v->shards = calloc(n + 1, sizeof *v->shards);
  v->swarms = calloc(n + 1, sizeof *v->swarms);
  if (!v->msgs || !v->ptrs || !v->shards || !v->swarms) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    synapse__search_hit__init(&v->msgs[i]);
    synapse__swarm_figures__init(&v->swarms[i]);
    syn_shard_to_proto(&hits[i].shard, &v->shards[i], NULL);
    swarm_figures(sh, hits[i].shard.info_hash, now, &v->swarms[i]);
    v->msgs[i].shard = &v->shards[i];
    v->msgs[i].swarm = &v->swarms[i];
    v->msgs[i].similarity = (float)hits[i].similarity;
    v->ptrs[i] = &v->msgs[i];
  }
  return 0;
}

/* Pseudo-relevance feedback: the embeddings of the best `want` keyword hits ride in their
 * shards (the router averages the cluster's best into a query vector). One indexed read
 * each, at most SYN_SEARCH_MAX_FEEDBACK; a hit replaced since it was found keeps no
 * embedding unless the new one has the same model and dimension. full[] holds what the
 * view points into until the reply is packed. */
static size_t attach_feedback(syn_shards *sh, const syn_hit *hits, size_t n, uint32_t want,
                              hit_view *v, syn_shard *full) {
  size_t got = 0;
  if (want > SYN_SEARCH_MAX_FEEDBACK) want = SYN_SEARCH_MAX_FEEDBACK;
  for (size_t i = 0; i < n && i < want; i++) {
    const syn_shard *h = &hits[i].shard;
    if (syn_index_get(sh->index, h->info_hash, true, &full[got]) != 0) continue;
    const syn_shard *f = &full[got++];
    if (!f->embedding || f->dimension != h->dimension || !f->model || !h->model ||
        strcmp(f->model, h->model) != 0)
      continue;
    v->shards[i].has_embedding = 1;
    v->shards[i].embedding =
        (ProtobufCBinaryData){(size_t)f->dimension * sizeof(float), (uint8_t *)f->embedding};
  }
  return got;
}

static void hit_view_free(hit_view *v) {
  free(v->msgs);
  free(v->ptrs);
  free(v->shards);
  free(v->swarms);
}

/* Whether a collection of this (normalised) model exists, and its dimension. */
static bool model_lookup(syn_shards *sh, const char *model, uint32_t *dim) {
  char key[SYN_SHARD_MAX_MODEL + 1];
  if (syn_model_key(model, key, sizeof key)) return false;
  static _Thread_local syn_index_stats st;
  if (syn_index_stats_get(sh->index, &st)) return false;
  for (size_t i = 0; i < st.collection_count && i < SYN_INDEX_STATS_MAX; i++) {
    if (strcmp(st.collections[i].model_key, key) != 0) continue;
    *dim = st.collections[i].dimension;
    return true;
  }
  return false;
}

/* The partitions of a router's search this node answers for: those asked (s->partitions)
 * that it is ready to serve, into served; the others into unserved. All it holds when the
 * search names none (standalone). -1 with the reply appended when it serves none. */
static int search_partitions(syn_shards *sh, uint64_t id, const Synapse__SearchRequest *s,
                             uint8_t **served, uint8_t **unserved, syn_buf *reply) {
  *served = *unserved = NULL;
  if (!s->has_partitions) {
    if (syn_replica_serving(sh->replica)) return 0;
    append_not_serving(reply, id);
    return -1;
  }
  uint32_t parts = syn_index_partitions(sh->index);
  size_t bytes = (parts + 7) / 8;
  if (!s->has_partition_count || s->partition_count != parts || s->partitions.len != bytes) {
    append_error(reply, id, SYNAPSE__ERROR_CODE__UNAVAILABLE,
                 "search names partitions of another layout (cluster.partitions differs)");
    return -1;
  }
  *served = malloc(bytes);
  *unserved = malloc(bytes);
  if (!*served || !*unserved) {
    append_error(reply, id, SYNAPSE__ERROR_CODE__INTERNAL, "out of memory");
    return -1;
  }
  if (syn_replica_ready_partitions(sh->replica, parts, *served) != 0) {
    append_not_serving(reply, id);
    return -1;
  }
  for (size_t i = 0; i < bytes; i++) {
    uint8_t asked = s->partitions.data[i];
    (*unserved)[i] = asked & (uint8_t) ~(*served)[i];
    (*served)[i] &= asked;
  }
  return 0;
}

static bool bits_any(const uint8_t *b, size_t bytes) {
  for (size_t i = 0; i < bytes; i++)
    if (b[i]) return true;
  return false;
}

static uint64_t bits_count(const uint8_t *b, size_t bytes) {
  uint64_t n = 0;
  for (size_t i = 0; i < bytes; i++) n += (uint64_t)__builtin_popcount(b[i]);
  return n;
}

static void handle_search(syn_shards *sh, uint64_t id, const Synapse__SearchRequest *s,
                          uint32_t now, syn_buf *reply) {
  uint8_t *served, *unserved;
  if (search_partitions(sh, id, s, &served, &unserved, reply) != 0) {
    free(served), free(unserved);
    return;
  }
  size_t part_bytes = s->has_partitions ? s->partitions.len : 0;
  bool none = served && !bits_any(served, part_bytes);
  if (served) {
    atomic_fetch_add(&sh->search_partitions, bits_count(served, part_bytes));
    atomic_fetch_add(&sh->search_unserved, bits_count(unserved, part_bytes));
  }
  syn_search_filter filter = {
      .model = s->model && *s->model ? s->model : NULL,
      .tags = (const char *const *)s->tags,
      .tag_count = s->n_tags,
      .min_similarity = s->has_min_similarity ? s->min_similarity : 0,
      .partitions = served,
  };
  syn_search_filter vfilter = filter;
  if (s->vector_model && *s->vector_model) vfilter.model = s->vector_model;
  syn_hit *vhits = NULL, *khits = NULL;
  size_t nv = 0, nk = 0;
  syn_search_info vinfo = {0}, kinfo = {0};
  int rc = 0;
  /* The node answers with its top `limit` over the partitions the router gave it (and it
   * is ready for): no other node answers for those, so the router's merge is exact and
   * holds no copies. */
  uint32_t depth = s->limit;
  float *query = NULL;
  if (!none && s->has_embedding && s->embedding.len >= sizeof(float)) {
    uint32_t dim = (uint32_t)(s->embedding.len / sizeof(float));
    query = malloc(s->embedding.len);
    if (!query)
      rc = -ENOMEM;
    else {
      memcpy(query, s->embedding.data, s->embedding.len);
      rc = syn_index_search_embedding(sh->index, query, dim, &vfilter, depth, &vhits, &nv, &vinfo);
    }
  }
  if (rc == 0 && !none && s->query && *s->query)
    rc = syn_index_search_text(sh->index, s->query, &filter, depth, &khits, &nk, &kinfo);
  free(query);

  hit_view vv = {0}, kv = {0};
  if (rc == 0 &&
      (hit_view_build(sh, vhits, nv, now, &vv) || hit_view_build(sh, khits, nk, now, &kv)))
    rc = -ENOMEM;
  syn_shard full[SYN_SEARCH_MAX_FEEDBACK];
  size_t nfull = 0;
  if (rc == 0 && s->has_feedback_docs && s->feedback_docs)
    nfull = attach_feedback(sh, khits, nk, s->feedback_docs, &kv, full);
  if (rc) {
    append_error(reply, id, code_of(rc), syn_index_strerror(rc));
  } else {
    Synapse__SearchReply body = SYNAPSE__SEARCH_REPLY__INIT;
    body.vector_hits = vv.ptrs;
    body.n_vector_hits = nv;
    body.keyword_hits = kv.ptrs;
    body.n_keyword_hits = nk;
    if (unserved && bits_any(unserved, part_bytes)) {
      body.has_unserved = 1;
      body.unserved = (ProtobufCBinaryData){part_bytes, unserved};
    }
    /* Whether the model filter names a model this node holds, at any dimension, so the
     * router can tell "unknown model" from "wrong dimension for that model". */
    if (filter.model) {
      uint32_t model_dim = 0;
      body.has_model_known = 1;
      body.model_known = model_lookup(sh, filter.model, &model_dim);
      body.has_model_dimension = body.model_known;
      body.model_dimension = model_dim;
    }
    Synapse__Reply rep = SYNAPSE__REPLY__INIT;
    rep.id = id;
    rep.body_case = SYNAPSE__REPLY__BODY_SEARCH;
    rep.search = &body;
    append(reply, &rep);
  }
  hit_view_free(&vv);
  hit_view_free(&kv);
  for (size_t i = 0; i < nfull; i++) syn_shard_free(&full[i]);
  syn_hits_free(vhits, nv);
  syn_hits_free(khits, nk);
  free(served);
  free(unserved);
}

static void handle_embed(syn_shards *sh, uint64_t id, const Synapse__EmbedRequest *e,
                         syn_buf *reply) {
  const syn_config *cfg = sh->cfg;
  if (!cfg->embedding_url || !*cfg->embedding_url) {
    append_error(reply, id, SYNAPSE__ERROR_CODE__UNSUPPORTED, "no embedding service configured");
    return;
  }
  syn_embedder_config ec = {
      .url = cfg->embedding_url,
      .api = cfg->embedding_api,
      .model = cfg->embedding_model,
      .prefix = cfg->embedding_query_prefix,
      /* Inside the router's deadline, so a slow embedder is
       * reported as such, not as a node that stopped answering. */
      .timeout_ms = cfg->embedding_timeout_ms < cfg->request_timeout_ms * 3 / 4
                        ? cfg->embedding_timeout_ms
                        : cfg->request_timeout_ms * 3 / 4};
  float *vec = NULL;
  uint32_t dim = 0;
  char err[256];
  if (syn_embed_text(&ec, e->text, &vec, &dim, err, sizeof err)) {
    /* INTERNAL, not UNAVAILABLE: the node answered; its embedding service did not. */
    append_error(reply, id, SYNAPSE__ERROR_CODE__INTERNAL, err);
    return;
  }
  Synapse__EmbedReply body = SYNAPSE__EMBED_REPLY__INIT;
  body.embedding = (ProtobufCBinaryData){dim * sizeof(float), (uint8_t *)vec};
  body.model = cfg->embedding_model;
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = id;
  rep.body_case = SYNAPSE__REPLY__BODY_EMBED;
  rep.embed = &body;
  append(reply, &rep);
  free(vec);
}

static bool is_write(const Synapse__Request *req) {
  return req->body_case == SYNAPSE__REQUEST__BODY_REGISTER ||
         req->body_case == SYNAPSE__REQUEST__BODY_DELETE;
}

void syn_shards_handle(syn_shards *sh, const Synapse__Request *req, uint32_t now,
                       int64_t deadline_ms, syn_buf *reply) {
  if (deadline_ms && is_write(req) && syn_wall_ms() > deadline_ms) {
    append_error(reply, req->id, SYNAPSE__ERROR_CODE__UNAVAILABLE,
                 "the request's deadline passed before this node got to it; retry");
    return;
  }
  switch (req->body_case) {
  case SYNAPSE__REQUEST__BODY_REGISTER: syn_shards_register(sh, &req, 1, deadline_ms, reply); break;
  case SYNAPSE__REQUEST__BODY_GET: handle_get(sh, req->id, req->get, now, reply); break;
  case SYNAPSE__REQUEST__BODY_DELETE: handle_delete(sh, req->id, req->delete_, reply); break;
  case SYNAPSE__REQUEST__BODY_PEERS: handle_peers(sh, req->id, req->peers, now, reply); break;
  case SYNAPSE__REQUEST__BODY_SEARCH: handle_search(sh, req->id, req->search, now, reply); break;
  case SYNAPSE__REQUEST__BODY_EMBED: handle_embed(sh, req->id, req->embed, reply); break;
  default: append_error(reply, req->id, SYNAPSE__ERROR_CODE__BAD_REQUEST, "unknown request"); break;
  }
}
