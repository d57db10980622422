/* Embedding service client: turns a text query into a vector by calling an Ollama
 * (/api/embed) or OpenAI-style (/v1/embeddings) HTTP endpoint.
 *
 * Blocking, bounded by the configured timeout end to end (resolve, connect, send,
 * receive); called on node worker threads only, never on a loop thread. Plain HTTP (the
 * service runs beside the tracker); responses are parsed with llhttp and jansson and
 * bounded in size. Thread-safe: no shared state. */
#ifndef SYN_NODE_EMBEDDER_H
#define SYN_NODE_EMBEDDER_H

#include <stddef.h>
#include <stdint.h>

typedef struct syn_embedder_config {
  const char *url;    /* http://host[:port]/path */
  const char *api;    /* "ollama" or "openai" */
  const char *model;
  const char *prefix; /* prepended to the text, e.g. "search_query: " */
  uint32_t timeout_ms;
} syn_embedder_config;

#define SYN_EMBED_MAX_RESPONSE (8u * 1024 * 1024)
#define SYN_EMBED_MAX_DIM 8192

/* 0 with a malloc'd vector in *out (the caller frees), or -1 with a message in err. */
int syn_embed_text(const syn_embedder_config *cfg, const char *text, float **out, uint32_t *dim,
                   char *err, size_t err_len);

/* Pure parts, unit-tested. */
typedef struct syn_http_url {
  char host[256];
  char port[8];
  char path[1024];
} syn_http_url;
int syn_embed_parse_url(const char *url, syn_http_url *out);
/* JSON request body, malloc'd; NULL on ENOMEM or an unknown api. */
char *syn_embed_request_body(const syn_embedder_config *cfg, const char *text);
/* Reads the first embedding of a response body. 0 or -1 with message. */
int syn_embed_parse_response(const char *api, const char *body, size_t len, float **out,
                             uint32_t *dim, char *err, size_t err_len);

#endif
