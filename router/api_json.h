/* The JSON API's input validation and output shapes (design.md, "JSON API"). Pure
 * functions over jansson documents, no I/O: unit-tested in api_json_test.c.
 *
 * Validation turns hostile bodies into either a filled request or an HTTP status with a
 * message that names the problem. Bounds (checked before anything is kept): nesting
 * depth here; string lengths, tags, model names, dimensions and limits by the rules in
 * common/shard_rules.h, which the index applies too. */
#ifndef SYN_ROUTER_API_JSON_H
#define SYN_ROUTER_API_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/tracker.pb-c.h"

#include "common/shard_rules.h"

#define SYN_API_MAX_DEPTH 16
#define SYN_API_DEFAULT_LIMIT 10

/* A shard to register. Strings point into `doc` (owned here), the embedding is a heap
 * copy (owned here); syn_register_input_free releases both. */
typedef struct syn_register_input {
  json_t *doc;
  Synapse__Shard shard;
  char hash_hex[65];
  char *tags[SYN_SHARD_MAX_TAGS];
  char *metadata_json; /* heap */
  float *embedding;    /* heap, shard.dimension floats, or NULL */
} syn_register_input;

typedef struct syn_search_input {
  json_t *doc;
  float *embedding; /* heap, or NULL */
  uint32_t dimension;
  const char *query; /* into doc, or NULL */
  uint32_t limit;
  const char *model; /* into doc, or NULL */
  const char *tags[SYN_SHARD_MAX_TAGS];
  size_t tag_count;
  float min_similarity;
} syn_search_input;

/* Each returns 0, or an HTTP status (400, 413, 422) with a message in err. */
int syn_api_parse_register(const char *body, size_t len, syn_register_input *out, char *err,
                           size_t err_len);
void syn_register_input_free(syn_register_input *in);

/* POST /api/register/batch: {"shards": [shard, ...]}, each shard what /api/register
 * takes, at most SYN_API_BATCH_MAX of them. parse_register_batch checks the envelope and
 * points *shards into *doc (the caller frees *doc with json_decref, also on failure);
 * parse_register_item checks one shard with the very rules and messages of
 * syn_api_parse_register (it keeps a reference to item in in->doc). */
#define SYN_API_BATCH_MAX 1000
int syn_api_parse_register_batch(const char *body, size_t len, json_t **doc, json_t **shards,
                                 char *err, size_t err_len);
int syn_api_parse_register_item(json_t *item, syn_register_input *in, char *err, size_t err_len);

/* need_embedding: /api/search/embedding (embedding required, query ignored) versus
 * /api/search (query required, embedding not accepted). */
int syn_api_parse_search(const char *body, size_t len, bool need_embedding, syn_search_input *out,
                         char *err, size_t err_len);
void syn_search_input_free(syn_search_input *in);

/* An info_hash as the API accepts it: 40 hex (v1) or 64 hex (v2), either case. Fills the
 * lower-case form (NUL-terminated) and the 20 bytes that name its swarm (v2 truncated,
 * as BEP 52 clients announce it). 0 or -1. */
int syn_api_parse_hash(const char *text, size_t len, char hex_out[65], uint8_t swarm_key[20]);

/* Rejects nesting deeper than max_depth without parsing (jansson has no depth limit). */
bool syn_json_depth_ok(const char *body, size_t len, int max_depth);

/* magnet:?xt=urn:btih:<40 hex>[&xt=urn:btmh:1220<64 hex>]&dn=..&tr=..(each)&x.model=..
 * &x.dims=..&x.tags=a,b — every value percent-encoded. */
int syn_magnet_build(syn_buf *out, const Synapse__Shard *shard, const char *const *trackers,
                     size_t tracker_count);

/* JSON object of a shard (no embedding) with seeders/leechers; NULL on ENOMEM. */
json_t *syn_api_shard_json(const Synapse__Shard *shard, const Synapse__SwarmFigures *swarm);

/* {"status":"error","error":message} */
json_t *syn_api_error(const char *message);

#endif
