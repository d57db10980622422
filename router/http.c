/* HTTP server. Design notes:
 *
 * - A connection holds a FIFO of response slots, one per parsed request. Responses are
 *   written only from the head of the FIFO, so pipelined requests are answered in order
 *   whichever finishes first.
 * - A connection is reference-counted: one reference for the socket, one per slot that
 *   has not been written or dropped. When the client goes away, slots still waiting for a
 *   node become orphans; answering an orphan just frees it, and the last reference frees
 *   the connection. Nothing is freed inside a callback that may still touch it.
 * - Request headers are not kept: only Host, X-Forwarded-For and Authorization are copied
 *   into fixed buffers, other headers are counted and measured against the limits.
 * - One read buffer is shared by all connections: libuv reads one connection at a time on
 *   this thread and the parser copies what it keeps.
 * - Deadlines: a request's head must arrive within header_timeout_ms of its first byte
 *   (of the accept, for a connection's first request), however slowly it trickles; a
 *   connection between requests may idle for idle_timeout_ms. One sweep a second checks
 *   both, so a deadline is met within a second.
 * - Lingering close: an error reply is followed by a shutdown of our side and reading
 *   and discarding for linger_ms (at most LINGER_MAX_BYTES), so the client, still
 *   sending, reads the reply instead of a reset (closing with unread input makes the
 *   kernel send RST, which destroys the reply in the client's receive buffer).
 * - Descriptors: libuv keeps a spare descriptor and, when accept fails with EMFILE,
 *   accepts and closes the pending connection with it, so the listener never stalls; we
 *   count that and warn at most once a minute. max_connections is held below the
 *   process's descriptor limit. */
#include "router/http.h"

#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "common/buf.h"
#include "common/log.h"
#include "router/client_limits.h"
#include "router/tcp_listen.h"

#define READ_BUFFER_SIZE (64 * 1024)
#define MAX_PIPELINED 64 /* queued responses before the connection stops being read */
#define HOST_MAX 255
#define XFF_MAX 511
#define AUTH_MAX 1023
#define SWEEP_INTERVAL_MS 1000
#define LINGER_MAX_BYTES (8u << 20)
#define FD_RESERVE 256 /* descriptors kept for nng, SQLite, snapshots and logs */
#define WARN_INTERVAL_MS 60000

enum header_kind { HEADER_OTHER, HEADER_HOST, HEADER_XFF, HEADER_AUTH };

typedef struct http_conn http_conn;

struct syn_http_slot {
  http_conn *conn;
  syn_http_slot *next;
  bool ready;
  bool orphan;
  bool close_after;
  bool head;   /* HEAD request: headers only */
  bool linger; /* an error reply: drain the client's input after it */
  uv_write_t write;
  syn_buf out;
};

struct http_conn {
  uv_tcp_t tcp;
  syn_http_server *srv;
  http_conn *prev, *next;
  llhttp_t parser;
  int refs;
  bool closing;
  bool paused;
  bool counted;   /* holds a place in the per-client connection count */
  bool in_head;   /* a request's head has begun and not ended */
  bool lingering; /* draining input after an error reply */
  uint64_t last_active;
  uint64_t head_deadline; /* 0 = no head expected yet */
  uint64_t linger_deadline;
  uint64_t lingered_bytes;
  uv_shutdown_t shutdown;
  uint8_t peer_ip[16];
  size_t peer_ip_len;
  /* request being parsed */
  syn_buf url;
  syn_buf body;
  char field[32];
  size_t field_len;
  enum header_kind header;
  char host[HOST_MAX + 1];
  size_t host_len;
  char xff[XFF_MAX + 1];
  size_t xff_len;
  char auth[AUTH_MAX + 1];
  size_t auth_len;
  uint32_t header_bytes;
  uint32_t header_count;
  int reject_status;
  /* responses, oldest first */
  syn_http_slot *head, *tail;
  uint32_t queued;
};

struct syn_http_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_timer_t sweep;
  const syn_config *cfg;
  syn_http_handler handler;
  void *handler_ctx;
  llhttp_settings_t settings;
  syn_conn_table *per_client;
  uint32_t max_connections; /* the configured limit, held below the descriptor limit */
  uint64_t last_emfile_warning;
  http_conn *conns;
  int open_handles;
  bool closing;
  syn_http_stats stats;
  char read_buffer[READ_BUFFER_SIZE];
  bool read_buffer_busy;
};

static void conn_close(http_conn *c);
static void conn_release(http_conn *c);

const char *syn_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

/* ---- response queue ---- */

static syn_http_slot *slot_new(http_conn *c) {
  syn_http_slot *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->conn = c;
  c->refs++;
  if (c->tail)
    c->tail->next = s;
  else
    c->head = s;
  c->tail = s;
  c->queued++;
  return s;
}

static void slot_free(syn_http_slot *s) {
  http_conn *c = s->conn;
  syn_buf_free(&s->out);
  free(s);
  conn_release(c);
}

static void maybe_resume(http_conn *c);
static void start_linger(http_conn *c);

static void on_written(uv_write_t *w, int status) {
  syn_http_slot *s = w->data;
  http_conn *c = s->conn;
  if (status == 0 && s->linger && c->srv->cfg->linger_ms)
    start_linger(c);
  else if (s->close_after || status < 0)
    conn_close(c);
  slot_free(s);
}

/* Writes every finished response at the head of the queue. */
static void flush_ready(http_conn *c) {
  while (c->head && c->head->ready) {
    syn_http_slot *s = c->head;
    c->head = s->next;
    if (!c->head) c->tail = NULL;
    c->queued--;
    if (c->closing) {
      slot_free(s);
      continue;
    }
    uv_buf_t buf = uv_buf_init((char *)s->out.data, (unsigned)s->out.len);
    s->write.data = s;
    if (uv_write(&s->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written)) {
      conn_close(c);
      slot_free(s);
    }
  }
  maybe_resume(c);
}

/* `sent` bytes of the body go out; Content-Length always names the whole body, so a
 * HEAD reply (sent = 0) announces what a GET would carry. */
static int format_response(syn_buf *out, int status, const char *content_type, const void *body,
                           size_t sent, size_t body_len, const char *extra, bool close_after) {
  int rc =
      syn_buf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                     status, syn_http_reason(status), content_type, body_len,
                     close_after ? "Connection: close\r\n" : "", extra ? extra : "");
  if (rc == 0) rc = syn_buf_append(out, body, sent);
  return rc;
}

void syn_http_respond(syn_http_slot *s, int status, const char *content_type, const void *body,
                      size_t body_len, const char *extra_headers) {
  if (s->orphan) {
    slot_free(s);
    return;
  }
  http_conn *c = s->conn;
  if (format_response(&s->out, status, content_type, body, s->head ? 0 : body_len, body_len,
                      extra_headers, s->close_after)) {
    syn_buf_reset(&s->out);
    s->close_after = true;
    static const char oom[] =
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n";
    syn_buf_append(&s->out, oom, sizeof oom - 1);
  }
  s->ready = true;
  flush_ready(c);
}

/* ---- connection lifetime ---- */

static void server_free_if_done(syn_http_server *srv);

static void conn_free(http_conn *c) {
  syn_http_server *srv = c->srv;
  if (c->counted) syn_conn_release(srv->per_client, c->peer_ip, c->peer_ip_len);
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  syn_buf_free(&c->url);
  syn_buf_free(&c->body);
  free(c);
  server_free_if_done(srv);
}

static void conn_release(http_conn *c) {
  if (--c->refs == 0) conn_free(c);
}

static void on_conn_closed(uv_handle_t *h) {
  http_conn *c = h->data;
  c->srv->stats.connections_open--;
  if (c->lingering) c->srv->stats.lingering--;
  /* Slots still waiting for a node stay alive as orphans; written-or-ready ones go. */
  syn_http_slot *s = c->head;
  c->head = c->tail = NULL;
  c->queued = 0;
  while (s) {
    syn_http_slot *next = s->next;
    if (s->ready)
      slot_free(s);
    else
      s->orphan = true;
    s = next;
  }
  conn_release(c);
}

static void conn_close(http_conn *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- reading and parsing ---- */

/* ---- lingering close ---- */

static void on_shutdown(uv_shutdown_t *req, int status) {
  http_conn *c = req->data;
  if (status < 0 && status != UV_ECANCELED) conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* The error reply is written: send FIN, then read and discard until the client closes,
 * LINGER_MAX_BYTES arrive or linger_ms pass (the sweep), whichever comes first. */
static void start_linger(http_conn *c) {
  if (c->closing || c->lingering) return;
  c->lingering = true;
  c->srv->stats.lingering++;
  c->srv->stats.lingered_total++;
  c->head_deadline = 0;
  c->linger_deadline = uv_now(c->srv->loop) + c->srv->cfg->linger_ms;
  c->shutdown.data = c;
  if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
    conn_close(c);
}

static void discard_input(http_conn *c, size_t n) {
  c->lingered_bytes += n;
  if (c->lingered_bytes > LINGER_MAX_BYTES) conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  http_conn *c = h->data;
  syn_http_server *srv = c->srv;
  if (srv->read_buffer_busy) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  srv->read_buffer_busy = true;
  buf->base = srv->read_buffer;
  buf->len = sizeof srv->read_buffer;
}

static void reset_request(http_conn *c) {
  syn_buf_reset(&c->url);
  syn_buf_reset(&c->body);
  c->field_len = 0;
  c->header = HEADER_OTHER;
  c->host_len = c->xff_len = c->auth_len = 0;
  c->header_bytes = c->header_count = 0;
}

/* Queues an error response that closes the connection, and stops parsing. */
static int reject(http_conn *c, int status) {
  c->reject_status = status;
  c->srv->stats.rejected++;
  return HPE_USER;
}

static void send_rejection(http_conn *c) {
  syn_http_slot *s = slot_new(c);
  if (!s) {
    conn_close(c);
    return;
  }
  s->close_after = true;
  s->linger = true;
  char body[160];
  int status = c->reject_status;
  uv_read_stop((uv_stream_t *)&c->tcp);
  /* The JSON API answers in its own error shape; everything else in plain text. */
  bool api = c->url.len >= 5 && !memcmp(c->url.data, "/api/", 5);
  int n = api ? snprintf(body, sizeof body, "{\"status\":\"error\",\"error\":\"%d %s\"}", status,
                         syn_http_reason(status))
              : snprintf(body, sizeof body, "%d %s\n", status, syn_http_reason(status));
  syn_http_respond(s, status, api ? "application/json" : "text/plain", body, (size_t)n, NULL);
}

static http_conn *conn_of(llhttp_t *p) { return p->data; }

static int on_message_begin(llhttp_t *p) {
  http_conn *c = conn_of(p);
  reset_request(c);
  c->in_head = true;
  if (!c->head_deadline) c->head_deadline = uv_now(c->srv->loop) + c->srv->cfg->header_timeout_ms;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  http_conn *c = conn_of(p);
  if (c->url.len + len > c->srv->cfg->max_request_line) return reject(c, 414);
  return syn_buf_append(&c->url, at, len) ? reject(c, 500) : 0;
}

static int count_header_bytes(http_conn *c, size_t len) {
  c->header_bytes += (uint32_t)len;
  return c->header_bytes > c->srv->cfg->max_header_bytes ? reject(c, 431) : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  http_conn *c = conn_of(p);
  if (count_header_bytes(c, len)) return HPE_USER;
  /* A name split across reads may already be marked too long (field_len = sizeof). */
  size_t room = c->field_len < sizeof c->field - 1 ? sizeof c->field - 1 - c->field_len : 0;
  size_t n = len < room ? len : room;
  memcpy(c->field + c->field_len, at, n);
  c->field_len += n;
  if (len > room) c->field_len = sizeof c->field; /* too long to be one we keep */
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  http_conn *c = conn_of(p);
  if (++c->header_count > c->srv->cfg->max_headers) return reject(c, 431);
  c->header = HEADER_OTHER;
  if (c->field_len < sizeof c->field) {
    c->field[c->field_len] = 0;
    if (!strcasecmp(c->field, "host"))
      c->header = HEADER_HOST;
    else if (!strcasecmp(c->field, "x-forwarded-for"))
      c->header = HEADER_XFF;
    else if (!strcasecmp(c->field, "authorization"))
      c->header = HEADER_AUTH;
  }
  c->field_len = 0;
  return 0;
}

static int keep_value(http_conn *c, char *dst, size_t *dst_len, size_t max, const char *at,
                      size_t len) {
  if (*dst_len + len > max) return reject(c, 431);
  memcpy(dst + *dst_len, at, len);
  *dst_len += len;
  dst[*dst_len] = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  http_conn *c = conn_of(p);
  if (count_header_bytes(c, len)) return HPE_USER;
  switch (c->header) {
  case HEADER_HOST: return keep_value(c, c->host, &c->host_len, HOST_MAX, at, len);
  case HEADER_XFF: return keep_value(c, c->xff, &c->xff_len, XFF_MAX, at, len);
  case HEADER_AUTH: return keep_value(c, c->auth, &c->auth_len, AUTH_MAX, at, len);
  default: return 0;
  }
}

/* The body this request may send: limits.max_body, or limits.max_batch_body for the one
 * endpoint that takes many shards at once (the path is known once the head is in). */
static uint64_t body_limit(const http_conn *c) {
  static const char batch[] = "/api/register/batch";
  const size_t n = sizeof batch - 1;
  const syn_config *cfg = c->srv->cfg;
  bool is_batch = c->url.len >= n && memcmp(c->url.data, batch, n) == 0 &&
                  (c->url.len == n || c->url.data[n] == '?');
  return is_batch && cfg->max_batch_body > cfg->max_body ? cfg->max_batch_body : cfg->max_body;
}

static int on_headers_complete(llhttp_t *p) {
  http_conn *c = conn_of(p);
  c->in_head = false;
  c->head_deadline = 0;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > body_limit(c)) return reject(c, 413);
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  http_conn *c = conn_of(p);
  if (c->body.len + len > body_limit(c)) return reject(c, 413);
  return syn_buf_append(&c->body, at, len) ? reject(c, 500) : 0;
}

static void client_address(const http_conn *c, syn_http_request *req) {
  req->client_ip_len = syn_client_ip(c->srv->cfg, c->peer_ip, c->peer_ip_len,
                                     c->xff_len ? c->xff : NULL, req->client_ip);
}

static int on_message_complete(llhttp_t *p) {
  http_conn *c = conn_of(p);
  syn_http_server *srv = c->srv;
  srv->stats.requests++;
  syn_http_request req = {.method = p->method};
  const char *url = (const char *)c->url.data;
  const char *q = c->url.len ? memchr(url, '?', c->url.len) : NULL;
  req.path = url ? url : "";
  req.path_len = q ? (size_t)(q - url) : c->url.len;
  if (q) {
    req.query = q + 1;
    req.query_len = c->url.len - req.path_len - 1;
  }
  req.body = (const char *)c->body.data;
  req.body_len = c->body.len;
  req.host = c->host_len ? c->host : NULL;
  req.host_len = c->host_len;
  req.authorization = c->auth_len ? c->auth : NULL;
  req.authorization_len = c->auth_len;
  client_address(c, &req);
  syn_http_slot *s = slot_new(c);
  if (!s) return reject(c, 500);
  s->close_after = !llhttp_should_keep_alive(p);
  s->head = p->method == HTTP_HEAD;
  srv->handler(srv->handler_ctx, &req, s);
  if (s == c->tail && s->close_after) return HPE_PAUSED; /* nothing may follow */
  return 0;
}

static void maybe_resume(http_conn *c) {
  if (c->paused && !c->closing && c->queued < MAX_PIPELINED / 2) {
    c->paused = false;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, NULL);
  }
}

static void parse_input(http_conn *c, const char *data, size_t len) {
  llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
  if (err == HPE_OK) {
    if (c->queued >= MAX_PIPELINED && !c->paused) {
      c->paused = true;
      uv_read_stop((uv_stream_t *)&c->tcp);
    }
    return;
  }
  if (err == HPE_PAUSED) { /* a request asked to close: ignore what follows */
    uv_read_stop((uv_stream_t *)&c->tcp);
    return;
  }
  /* A callback that rejected set the status; llhttp reports it under its own code. */
  if (!c->reject_status) {
    c->reject_status = 400;
    c->srv->stats.rejected++;
  }
  send_rejection(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  http_conn *c = stream->data;
  syn_http_server *srv = c->srv;
  if (buf->base == srv->read_buffer) srv->read_buffer_busy = false;
  if (nread == UV_ENOBUFS) return;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0 || c->closing) return;
  c->last_active = uv_now(srv->loop);
  if (c->lingering)
    discard_input(c, (size_t)nread);
  else
    parse_input(c, buf->base, (size_t)nread);
}

static void peer_address(http_conn *c) { c->peer_ip_len = syn_tcp_peer_ip(&c->tcp, c->peer_ip); }

static void on_rejected_closed(uv_handle_t *h) { free(h); }

/* Accepts the pending connection only to close it: the listener must be drained. */
static void refuse_pending(syn_http_server *srv, uv_stream_t *listener) {
  uv_tcp_t *t = malloc(sizeof *t);
  if (!t) return;
  uv_tcp_init(srv->loop, t);
  uv_accept(listener, (uv_stream_t *)t);
  uv_close((uv_handle_t *)t, on_rejected_closed);
}

static void accept_failed(syn_http_server *srv, int status) {
  if (status != UV_EMFILE && status != UV_ENFILE) return;
  srv->stats.refused_no_descriptor++;
  uint64_t now = uv_now(srv->loop);
  if (srv->last_emfile_warning && now - srv->last_emfile_warning < WARN_INTERVAL_MS) return;
  srv->last_emfile_warning = now;
  syn_warn(
      "http: out of file descriptors (%s): new connections are closed at once; "
      "%llu refused so far (raise `ulimit -n` or lower limits.max_connections)",
      uv_strerror(status), (unsigned long long)srv->stats.refused_no_descriptor);
}

/* One client may hold max_connections_per_ip; a proxy speaks for many, so it is exempt. */
static bool count_client(http_conn *c) {
  syn_http_server *srv = c->srv;
  if (!c->peer_ip_len || syn_from_trusted_proxy(srv->cfg, c->peer_ip, c->peer_ip_len)) return true;
  c->counted = syn_conn_acquire(srv->per_client, c->peer_ip, c->peer_ip_len,
                                srv->cfg->max_connections_per_ip);
  return c->counted;
}

/* A connection in the server's list with its handle initialised, not yet accepted. */
static http_conn *conn_new(syn_http_server *srv) {
  http_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->srv = srv;
  c->refs = 1;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  c->next = srv->conns;
  if (srv->conns) srv->conns->prev = c;
  srv->conns = c;
  srv->stats.connections_open++;
  srv->stats.connections_total++;
  return c;
}

static void on_connection(uv_stream_t *listener, int status) {
  syn_http_server *srv = listener->data;
  if (status < 0) {
    accept_failed(srv, status);
    return;
  }
  if (srv->stats.connections_open >= srv->max_connections) {
    srv->stats.refused_max_connections++;
    refuse_pending(srv, listener);
    return;
  }
  http_conn *c = conn_new(srv);
  if (!c) {
    refuse_pending(srv, listener);
    return;
  }
  if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
    conn_close(c);
    return;
  }
  peer_address(c);
  if (!count_client(c)) {
    srv->stats.refused_per_client++;
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
  c->parser.data = c;
  c->last_active = uv_now(srv->loop);
  c->head_deadline = c->last_active + srv->cfg->header_timeout_ms;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* A head that did not arrive in time: a partial one is answered 408; a connection that
 * never sent a byte is just closed (there is no request to answer). */
static void head_timed_out(http_conn *c) {
  c->srv->stats.header_timeouts++;
  c->head_deadline = 0;
  if (!c->in_head) {
    conn_close(c);
    return;
  }
  c->reject_status = 408;
  c->srv->stats.rejected++;
  send_rejection(c);
}

/* Every second: heads past their deadline, lingering past its time, idle keep-alive
 * connections (nothing queued, nothing read for idle_timeout_ms). */
static void on_sweep(uv_timer_t *t) {
  syn_http_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  for (http_conn *c = srv->conns; c; c = c->next) {
    if (c->closing) continue;
    if (c->lingering) {
      if (now >= c->linger_deadline) conn_close(c);
    } else if (c->head_deadline && now >= c->head_deadline) {
      head_timed_out(c);
    } else if (c->queued == 0 && !c->in_head && now - c->last_active > srv->cfg->idle_timeout_ms) {
      srv->stats.idle_closed++;
      conn_close(c);
    }
  }
}

/* max_connections, held below the descriptor limit (the hard limit, once app/ raised
 * the soft one to it), so that the last descriptors stay for everything else. */
static uint32_t connection_limit(const syn_config *cfg) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY) return cfg->max_connections;
  uint64_t usable = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
  if (cfg->max_connections <= usable) return cfg->max_connections;
  syn_warn(
      "http: limits.max_connections %u is above what %llu file descriptors allow; "
      "using %llu",
      cfg->max_connections, (unsigned long long)rl.rlim_cur, (unsigned long long)usable);
  return (uint32_t)usable;
}

static int bind_listener(syn_http_server *srv, char *err, size_t err_len) {
  srv->listener.data = srv;
  srv->open_handles++;
  int rc = syn_tcp_listen(srv->loop, &srv->listener, srv->cfg->host, srv->cfg->http_port,
                          on_connection, "HTTP port", err, err_len);
  srv->listener.data = srv;
  return rc;
}

/* The server goes last: after its own handles and every connection (whose close
 * callbacks and orphaned slots still use it). */
static void server_free_if_done(syn_http_server *srv) {
  if (!srv->closing || srv->open_handles || srv->conns) return;
  syn_conn_table_free(srv->per_client);
  free(srv);
}

static void on_server_handle_closed(uv_handle_t *h) {
  syn_http_server *srv = h->data;
  srv->open_handles--;
  server_free_if_done(srv);
}

syn_http_server *syn_http_listen(uv_loop_t *loop, const syn_config *cfg, syn_http_handler fn,
                                 void *ctx, char *err, size_t err_len) {
  syn_http_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  srv->loop = loop;
  srv->cfg = cfg;
  srv->handler = fn;
  srv->handler_ctx = ctx;
  srv->max_connections = connection_limit(cfg);
  srv->per_client = syn_conn_table_new(srv->max_connections);
  if (!srv->per_client) {
    snprintf(err, err_len, "out of memory");
    free(srv);
    return NULL;
  }
  llhttp_settings_init(&srv->settings);
  srv->settings.on_message_begin = on_message_begin;
  srv->settings.on_url = on_url;
  srv->settings.on_header_field = on_header_field;
  srv->settings.on_header_field_complete = on_header_field_complete;
  srv->settings.on_header_value = on_header_value;
  srv->settings.on_headers_complete = on_headers_complete;
  srv->settings.on_body = on_body;
  srv->settings.on_message_complete = on_message_complete;
  if (bind_listener(srv, err, err_len)) {
    srv->closing = true;
    uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    return NULL;
  }
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  srv->open_handles++;
  uv_timer_start(&srv->sweep, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
  return srv;
}

/* Connections by state are counted when asked (a walk of the list, done per /metrics
 * scrape), not kept up to date on every transition. */
void syn_http_stats_get(const syn_http_server *srv, syn_http_stats *out) {
  *out = srv->stats;
  out->reading_head = out->waiting = out->idle = 0;
  for (const http_conn *c = srv->conns; c; c = c->next) {
    if (c->closing || c->lingering) continue;
    if (c->queued)
      out->waiting++;
    else if (c->in_head)
      out->reading_head++;
    else
      out->idle++;
  }
}

void syn_http_close(syn_http_server *srv) {
  if (!srv || srv->closing) return;
  srv->closing = true;
  for (http_conn *c = srv->conns; c; c = c->next) conn_close(c);
  uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
  uv_close((uv_handle_t *)&srv->sweep, on_server_handle_closed);
}
