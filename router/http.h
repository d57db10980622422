/* HTTP/1.x server on libuv + llhttp: connections, parsing, limits, ordered responses.
 *
 * Owns the listening socket and every connection. Supports keep-alive, pipelining (many
 * requests in one read are answered in order even when later ones finish first) and
 * HTTP/1.0. Enforces the configured limits: request line (414), header bytes and count
 * (431), body (413), a deadline for each request's head (408), connections per client
 * and in all, and closes the connection after such an error, lingering so the client
 * reads the reply. Requests are handed
 * to one handler function together with a response slot; the handler answers at once or
 * later (after a node replied) with syn_http_respond. A slot outlives its connection:
 * answering a slot whose client went away is a no-op, so handlers never track clients.
 *
 * Everything runs on the loop thread. */
#ifndef SYN_ROUTER_HTTP_H
#define SYN_ROUTER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"

typedef struct syn_http_server syn_http_server;
typedef struct syn_http_slot syn_http_slot;

typedef struct syn_http_request {
  int method;           /* llhttp_method_t */
  const char *path;     /* URL path, not decoded, not NUL-terminated */
  size_t path_len;
  const char *query;    /* after '?', or NULL */
  size_t query_len;
  const char *body;
  size_t body_len;
  const char *host;     /* Host header, or NULL */
  size_t host_len;
  const char *authorization; /* Authorization header, or NULL */
  size_t authorization_len;
  uint8_t client_ip[16]; /* from the socket, or X-Forwarded-For from a trusted proxy */
  size_t client_ip_len;  /* 4 or 16 */
} syn_http_request;

/* Called on the loop thread; `req` is valid during the call only. The handler must
 * eventually call syn_http_respond on `slot` exactly once. */
typedef void (*syn_http_handler)(void *ctx, const syn_http_request *req, syn_http_slot *slot);

typedef struct syn_http_stats {
  uint64_t connections_open;
  uint64_t connections_total;
  uint64_t lingering;         /* open connections draining input after an error reply */
  uint64_t reading_head;      /* ... receiving a request's head */
  uint64_t waiting;           /* ... with a request being answered */
  uint64_t idle;              /* ... between requests (or before the first byte) */
  uint64_t lingered_total;
  uint64_t requests;
  uint64_t rejected;          /* limit violations and parse errors */
  uint64_t header_timeouts;   /* heads not complete within header_timeout_ms */
  uint64_t idle_closed;       /* keep-alive connections closed idle */
  uint64_t refused_per_client;     /* connections over max_connections_per_ip */
  uint64_t refused_max_connections; /* connections over max_connections */
  uint64_t refused_no_descriptor;  /* accepts that failed: out of file descriptors */
} syn_http_stats;

/* Binds host:port and starts accepting. NULL with a message in err (e.g. port in use). */
syn_http_server *syn_http_listen(uv_loop_t *loop, const syn_config *cfg, syn_http_handler fn,
                                 void *ctx, char *err, size_t err_len);

/* Answers a request. `body` is copied. Extra headers, if any, are complete lines ending
 * in "\r\n". Takes ownership of nothing; the slot is freed once written. */
void syn_http_respond(syn_http_slot *slot, int status, const char *content_type,
                      const void *body, size_t body_len, const char *extra_headers);

void syn_http_stats_get(const syn_http_server *srv, syn_http_stats *out);

/* Stops accepting and closes every connection; frees the server after the last close. */
void syn_http_close(syn_http_server *srv);

const char *syn_http_reason(int status);

#endif
