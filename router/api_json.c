#include "router/api_json.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/urlcodec.h"

static int fail(char *err, size_t err_len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_len, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return status;
}

bool syn_json_depth_ok(const char *body, size_t len, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') i++;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return true;
}

static int load_object(const char *body, size_t len, json_t **doc, char *err, size_t err_len) {
  if (len == 0) return fail(err, err_len, 400, "request body is empty: send a JSON object");
  if (!syn_json_depth_ok(body, len, SYN_API_MAX_DEPTH))
    return fail(err, err_len, 400, "JSON nested deeper than %d levels", SYN_API_MAX_DEPTH);
  json_error_t jerr;
  *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!*doc) return fail(err, err_len, 400, "invalid JSON: %s (at byte %d)", jerr.text, jerr.position);
  if (!json_is_object(*doc)) {
    json_decref(*doc);
    *doc = NULL;
    return fail(err, err_len, 400, "the body must be a JSON object");
  }
  return 0;
}

int syn_api_parse_hash(const char *text, size_t len, char hex_out[65], uint8_t swarm_key[20]) {
  return syn_info_hash_parse(text, len, hex_out, swarm_key) ? -1 : 0;
}

/* An optional string: NULL when absent; status when present but wrong. */
static int get_string(json_t *doc, const char *key, size_t max, bool required, const char **out,
                      char *err, size_t err_len) {
  json_t *v = json_object_get(doc, key);
  *out = NULL;
  if (!v || json_is_null(v)) {
    return required ? fail(err, err_len, 400, "missing field \"%s\"", key) : 0;
  }
  if (!json_is_string(v)) return fail(err, err_len, 400, "\"%s\" must be a string", key);
  if (syn_text_check(key, json_string_value(v), json_string_length(v), max, required, err, err_len))
    return 400;
  *out = json_string_value(v);
  return 0;
}

/* A model name (register, or a search filter): the shared rule, so a blank name is
 * refused here rather than by every node. */
static int get_model(json_t *doc, const char *key, const char *field, bool required,
                     const char **out, char *err, size_t err_len) {
  json_t *v = json_object_get(doc, key);
  *out = NULL;
  if (!v || json_is_null(v))
    return required ? fail(err, err_len, 400, "missing field \"%s\"", field) : 0;
  if (!json_is_string(v)) return fail(err, err_len, 400, "\"%s\" must be a string", field);
  size_t len = json_string_length(v);
  if (!required && len == 0) return 0; /* an empty filter is no filter */
  if (syn_model_check(field, json_string_value(v), len, err, err_len)) return 400;
  *out = json_string_value(v);
  return 0;
}

/* First of two accepted names (e.g. model / embedding_model). */
static json_t *get_alias(json_t *doc, const char *a, const char *b, const char **used) {
  json_t *v = json_object_get(doc, a);
  *used = a;
  if (v && !json_is_null(v)) return v;
  *used = b;
  return json_object_get(doc, b);
}

static int get_uint(json_t *v, const char *key, uint64_t min, uint64_t max, uint64_t *out,
                    char *err, size_t err_len) {
  if (!json_is_integer(v)) return fail(err, err_len, 400, "\"%s\" must be an integer", key);
  json_int_t x = json_integer_value(v);
  if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
    return fail(err, err_len, 400, "\"%s\" must be between %llu and %llu", key,
                (unsigned long long)min, (unsigned long long)max);
  *out = (uint64_t)x;
  return 0;
}

/* allow_one: a search filter may name one tag as a plain string. */
static int get_tags(json_t *v, const char *field, bool allow_one, const char **tags,
                    size_t *count, char *err, size_t err_len) {
  *count = 0;
  if (!v || json_is_null(v)) return 0;
  if (allow_one && json_is_string(v)) {
    if (syn_tag_check(field, json_string_value(v), json_string_length(v), err, err_len)) return 400;
    tags[(*count)++] = json_string_value(v);
    return 0;
  }
  if (!json_is_array(v)) return fail(err, err_len, 400, "\"%s\" must be an array of strings", field);
  if (json_array_size(v) > SYN_SHARD_MAX_TAGS)
    return fail(err, err_len, 400, "\"%s\" has more than %d entries", field, SYN_SHARD_MAX_TAGS);
  size_t i;
  json_t *t;
  json_array_foreach(v, i, t) {
    if (!json_is_string(t))
      return fail(err, err_len, 400, "\"%s\" must be an array of strings", field);
    if (syn_tag_check(field, json_string_value(t), json_string_length(t), err, err_len)) return 400;
    tags[(*count)++] = json_string_value(t);
  }
  return 0;
}

static int get_embedding(json_t *v, uint32_t want_dim, float **out, uint32_t *dim, char *err,
                         size_t err_len) {
  if (!json_is_array(v)) return fail(err, err_len, 400, "\"embedding\" must be an array of numbers");
  size_t n = json_array_size(v);
  if (n == 0 || n > SYN_SHARD_MAX_DIM)
    return fail(err, err_len, 400, "\"embedding\" must have 1 to %d values", SYN_SHARD_MAX_DIM);
  if (want_dim && n != want_dim)
    return fail(err, err_len, 400, "\"embedding\" has %zu values but the dimension is %u", n, want_dim);
  float *vec = malloc(n * sizeof *vec);
  if (!vec) return fail(err, err_len, 500, "out of memory");
  size_t i;
  json_t *x;
  bool nonzero = false;
  json_array_foreach(v, i, x) {
    double d = json_is_number(x) ? json_number_value(x) : NAN;
    float f = (float)d;
    if (!json_is_number(x) || !isfinite(f)) {
      free(vec);
      return fail(err, err_len, 400, "\"embedding\"[%zu] is not a finite number", i);
    }
    vec[i] = f;
    nonzero |= f != 0.0f;
  }
  if (!nonzero) {
    free(vec);
    return fail(err, err_len, 400, "\"embedding\" is all zeros: it has no direction to compare");
  }
  *out = vec;
  *dim = (uint32_t)n;
  return 0;
}

static int register_strings(syn_register_input *in, char *err, size_t err_len) {
  json_t *doc = in->doc;
  Synapse__Shard *s = &in->shard;
  const char *hash;
  int st = get_string(doc, "info_hash", 64, true, &hash, err, err_len);
  if (st) return st;
  if (syn_info_hash_parse(hash, strlen(hash), in->hash_hex, NULL))
    return fail(err, err_len, 400, "\"info_hash\" must be 40 or 64 hexadecimal characters");
  s->info_hash = in->hash_hex;
  const char *used;
  json_t *model = get_alias(doc, "model", "embedding_model", &used);
  if (!model || json_is_null(model))
    return fail(err, err_len, 400, "missing field \"model\" (or \"embedding_model\")");
  if ((st = get_model(doc, used, used, true, (const char **)&s->model, err, err_len))) return st;
  static const struct {
    const char *key;
    size_t offset, max;
    bool required;
  } fields[] = {
      {"display_name", offsetof(Synapse__Shard, display_name), SYN_SHARD_MAX_NAME, true},
      {"description", offsetof(Synapse__Shard, description), SYN_SHARD_MAX_TEXT, false},
      {"creator_agent_id", offsetof(Synapse__Shard, creator_agent_id), SYN_SHARD_MAX_AGENT_ID,
       false},
      {"creator_public_key", offsetof(Synapse__Shard, creator_public_key), SYN_SHARD_MAX_CRYPTO,
       false},
      {"signature", offsetof(Synapse__Shard, signature), SYN_SHARD_MAX_CRYPTO, false},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    const char **slot = (const char **)(void *)((char *)s + fields[i].offset);
    if ((st = get_string(doc, fields[i].key, fields[i].max, fields[i].required, slot, err,
                         err_len)))
      return st;
  }
  return 0;
}

static int register_numbers(syn_register_input *in, char *err, size_t err_len) {
  json_t *doc = in->doc;
  Synapse__Shard *s = &in->shard;
  const char *used;
  json_t *dim = get_alias(doc, "dimension", "dimension_size", &used);
  if (!dim || json_is_null(dim))
    return fail(err, err_len, 400, "missing field \"dimension\" (or \"dimension_size\")");
  uint64_t x = 0;
  int st = get_uint(dim, used, 0, UINT32_MAX, &x, err, err_len);
  if (st) return st;
  if (syn_dimension_check(used, x, err, err_len)) return 400;
  s->has_dimension = 1;
  s->dimension = (uint32_t)x;
  json_t *v;
  if ((v = json_object_get(doc, "file_size")) && !json_is_null(v)) {
    if ((st = get_uint(v, "file_size", 0, INT64_MAX, &s->file_size, err, err_len))) return st;
    s->has_file_size = 1;
  }
  if ((v = json_object_get(doc, "entry_count")) && !json_is_null(v)) {
    if ((st = get_uint(v, "entry_count", 0, INT64_MAX, &s->entry_count, err, err_len))) return st;
    s->has_entry_count = 1;
  }
  return 0;
}

static int register_structured(syn_register_input *in, char *err, size_t err_len) {
  json_t *doc = in->doc;
  Synapse__Shard *s = &in->shard;
  size_t ntags;
  int st =
      get_tags(json_object_get(doc, "tags"), "tags", false, (const char **)in->tags, &ntags, err, err_len);
  if (st) return st;
  s->tags = in->tags;
  s->n_tags = ntags;
  json_t *meta = json_object_get(doc, "metadata");
  if (meta && !json_is_null(meta)) {
    if (!json_is_object(meta)) return fail(err, err_len, 400, "\"metadata\" must be an object");
    in->metadata_json = json_dumps(meta, JSON_COMPACT);
    if (!in->metadata_json) return fail(err, err_len, 500, "out of memory");
    if (strlen(in->metadata_json) > SYN_SHARD_MAX_METADATA)
      return fail(err, err_len, 413, "\"metadata\" is larger than %d bytes", SYN_SHARD_MAX_METADATA);
    s->metadata_json = in->metadata_json;
  }
  json_t *emb = json_object_get(doc, "embedding");
  if (emb && !json_is_null(emb)) {
    uint32_t dim;
    if ((st = get_embedding(emb, s->dimension, &in->embedding, &dim, err, err_len))) return st;
    s->has_embedding = 1;
    s->embedding.data = (uint8_t *)in->embedding;
    s->embedding.len = dim * sizeof(float);
  }
  return 0;
}

/* The fields of one shard object (in->doc holds a reference to it). */
static int register_fields(syn_register_input *in, char *err, size_t err_len) {
  int st;
  if ((st = register_strings(in, err, err_len)) || (st = register_numbers(in, err, err_len)) ||
      (st = register_structured(in, err, err_len)))
    return st;
  return 0;
}

int syn_api_parse_register(const char *body, size_t len, syn_register_input *in, char *err,
                           size_t err_len) {
  memset(in, 0, sizeof *in);
  synapse__shard__init(&in->shard);
  int st = load_object(body, len, &in->doc, err, err_len);
  return st ? st : register_fields(in, err, err_len);
}

int syn_api_parse_register_item(json_t *item, syn_register_input *in, char *err, size_t err_len) {
  memset(in, 0, sizeof *in);
  synapse__shard__init(&in->shard);
  if (!json_is_object(item)) return fail(err, err_len, 400, "the shard must be a JSON object");
  in->doc = json_incref(item);
  return register_fields(in, err, err_len);
}

int syn_api_parse_register_batch(const char *body, size_t len, json_t **doc, json_t **shards,
                                 char *err, size_t err_len) {
  *shards = NULL;
  *doc = NULL;
  int st = load_object(body, len, doc, err, err_len);
  if (st) return st;
  json_t *list = json_object_get(*doc, "shards");
  if (!list || json_is_null(list)) return fail(err, err_len, 400, "missing field \"shards\"");
  if (!json_is_array(list)) return fail(err, err_len, 400, "\"shards\" must be an array");
  size_t n = json_array_size(list);
  if (n == 0) return fail(err, err_len, 400, "\"shards\" is empty");
  if (n > SYN_API_BATCH_MAX)
    return fail(err, err_len, 413, "\"shards\" holds %zu shards; at most %d a request", n,
                SYN_API_BATCH_MAX);
  *shards = list;
  return 0;
}

void syn_register_input_free(syn_register_input *in) {
  json_decref(in->doc);
  free(in->metadata_json);
  free(in->embedding);
  memset(in, 0, sizeof *in);
}

static int search_filters(json_t *doc, syn_search_input *out, char *err, size_t err_len) {
  json_t *f = json_object_get(doc, "filters");
  if (!f || json_is_null(f)) return 0;
  if (!json_is_object(f)) return fail(err, err_len, 400, "\"filters\" must be an object");
  int st = get_model(f, "model", "filters.model", false, &out->model, err, err_len);
  if (st) return st;
  return get_tags(json_object_get(f, "tags"), "filters.tags", true, out->tags, &out->tag_count, err,
                  err_len);
}

static int search_limits(json_t *doc, syn_search_input *out, char *err, size_t err_len) {
  out->limit = SYN_API_DEFAULT_LIMIT;
  json_t *v = json_object_get(doc, "limit");
  if (v && !json_is_null(v)) {
    uint64_t x = 0;
    int st = get_uint(v, "limit", 1, SYN_SEARCH_MAX_LIMIT, &x, err, err_len);
    if (st) return st;
    out->limit = (uint32_t)x;
  }
  v = json_object_get(doc, "min_similarity");
  if (v && !json_is_null(v)) {
    if (!json_is_number(v)) return fail(err, err_len, 400, "\"min_similarity\" must be a number");
    double m = json_number_value(v);
    if (!(m >= 0.0 && m <= 1.0))
      return fail(err, err_len, 400, "\"min_similarity\" must be between 0 and 1");
    out->min_similarity = (float)m;
  }
  return 0;
}

int syn_api_parse_search(const char *body, size_t len, bool need_embedding, syn_search_input *out,
                         char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  int st = load_object(body, len, &out->doc, err, err_len);
  if (st) return st;
  if ((st = search_limits(out->doc, out, err, err_len)) ||
      (st = search_filters(out->doc, out, err, err_len)))
    return st;
  if (need_embedding) {
    json_t *emb = json_object_get(out->doc, "embedding");
    if (!emb || json_is_null(emb)) return fail(err, err_len, 400, "missing field \"embedding\"");
    return get_embedding(emb, 0, &out->embedding, &out->dimension, err, err_len);
  }
  st = get_string(out->doc, "query", SYN_SEARCH_MAX_QUERY, true, &out->query, err, err_len);
  if (st) return st;
  for (const char *p = out->query; *p; p++)
    if (!isspace((unsigned char)*p)) return 0;
  return fail(err, err_len, 400, "\"query\" must contain a word");
}

void syn_search_input_free(syn_search_input *in) {
  json_decref(in->doc);
  free(in->embedding);
  memset(in, 0, sizeof *in);
}

static int append_param(syn_buf *out, const char *key, const char *value) {
  int rc = syn_buf_append_byte(out, '&');
  rc |= syn_buf_append_str(out, key);
  rc |= syn_buf_append_byte(out, '=');
  rc |= syn_percent_encode(out, value, strlen(value));
  return rc;
}

int syn_magnet_build(syn_buf *out, const Synapse__Shard *s, const char *const *trackers,
                     size_t tracker_count) {
  const char *hex = s->info_hash;
  int rc = syn_buf_append_str(out, "magnet:?xt=urn:btih:");
  rc |= syn_buf_append(out, hex, 40);
  if (strlen(hex) == 64) {
    rc |= syn_buf_append_str(out, "&xt=urn:btmh:1220");
    rc |= syn_buf_append(out, hex, 64);
  }
  if (s->display_name) rc |= append_param(out, "dn", s->display_name);
  for (size_t i = 0; i < tracker_count; i++) rc |= append_param(out, "tr", trackers[i]);
  if (s->model) rc |= append_param(out, "x.model", s->model);
  if (s->has_dimension) {
    char dims[16];
    snprintf(dims, sizeof dims, "%u", s->dimension);
    rc |= append_param(out, "x.dims", dims);
  }
  if (s->n_tags) {
    syn_buf tags = SYN_BUF_INIT;
    for (size_t i = 0; i < s->n_tags; i++) {
      if (i) rc |= syn_buf_append_byte(&tags, ',');
      rc |= syn_buf_append_str(&tags, s->tags[i]);
    }
    rc |= syn_buf_append_byte(&tags, 0);
    if (!rc) rc |= append_param(out, "x.tags", (const char *)tags.data);
    syn_buf_free(&tags);
  }
  rc |= syn_buf_append_byte(out, 0);
  if (!rc) out->len--; /* keep it NUL-terminated without counting the NUL */
  return rc ? -1 : 0;
}

static void set_opt_string(json_t *o, const char *key, const char *v) {
  json_object_set_new(o, key, v ? json_string(v) : json_null());
}

json_t *syn_api_shard_json(const Synapse__Shard *s, const Synapse__SwarmFigures *swarm) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "info_hash", json_string(s->info_hash));
  set_opt_string(o, "display_name", s->display_name);
  set_opt_string(o, "model", s->model);
  json_object_set_new(o, "dimension", json_integer(s->dimension));
  json_t *tags = json_array();
  for (size_t i = 0; i < s->n_tags; i++) json_array_append_new(tags, json_string(s->tags[i]));
  json_object_set_new(o, "tags", tags);
  set_opt_string(o, "description", s->description);
  json_object_set_new(o, "file_size", s->has_file_size ? json_integer((json_int_t)s->file_size) : json_null());
  json_object_set_new(o, "entry_count",
                      s->has_entry_count ? json_integer((json_int_t)s->entry_count) : json_null());
  json_t *meta = s->metadata_json ? json_loads(s->metadata_json, 0, NULL) : NULL;
  json_object_set_new(o, "metadata", meta ? meta : json_object());
  set_opt_string(o, "creator_agent_id", s->creator_agent_id);
  set_opt_string(o, "creator_public_key", s->creator_public_key);
  set_opt_string(o, "signature", s->signature);
  if (s->version && s->version->node) {
    char v[96];
    snprintf(v, sizeof v, "%llu.%s", (unsigned long long)s->version->hlc, s->version->node);
    json_object_set_new(o, "version", json_string(v));
  }
  if (s->has_created_at) json_object_set_new(o, "created_at", json_integer(s->created_at));
  if (s->has_updated_at) json_object_set_new(o, "updated_at", json_integer(s->updated_at));
  json_object_set_new(o, "seeders", json_integer(swarm ? swarm->seeders : 0));
  json_object_set_new(o, "leechers", json_integer(swarm ? swarm->leechers : 0));
  json_object_set_new(o, "downloaded", json_integer(swarm ? swarm->downloaded : 0));
  return o;
}

json_t *syn_api_error(const char *message) {
  return json_pack("{s:s,s:s}", "status", "error", "error", message);
}
