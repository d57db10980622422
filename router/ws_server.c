/* WebSocket server (router/ws_server.h). Design notes:
 *
 * - Bytes flow socket -> TLS (wss only) -> handshake parser or wslay, and back
 *   wslay -> TLS -> socket. wslay's callbacks never touch the socket: recv reads from the
 *   connection's input buffer (filled by one libuv read, emptied by one
 *   wslay_event_recv), send appends to its output buffer, written after each step.
 * - The head is parsed by llhttp; on_headers_complete answers 2 ("no body, stop as for
 *   an upgrade"), so whatever follows the head in the same read is the first frame.
 * - A connection refused for its client's count still has its head read and is answered
 *   429, so the client sees why instead of a reset.
 * - Closing: after an error answer or once wslay wants neither to read nor to write (the
 *   closing handshake is done), the socket is shut down (pending writes go first), input
 *   is drained until the client closes (so the kernel does not reset the connection over
 *   unread bytes), then closed. A peer that never answers is cut off after CLOSE_WAIT_MS. */
#include "router/ws_server.h"

#include <llhttp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "common/buf.h"
#include "common/log.h"
#include "router/client_limits.h"
#include "router/tcp_listen.h"
#include "router/tls.h"

#define READ_BUF 65536
#define SWEEP_MS 1000
#define CLOSE_WAIT_MS 2000
#define MAX_QUEUED_BYTES (1u << 20) /* unsent to one client before it is cut off */
#define HEADER_VALUE_MAX 128
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum conn_state { ST_HANDSHAKE, ST_OPEN, ST_FINISHING };
enum header_kind { H_OTHER, H_UPGRADE, H_CONNECTION, H_KEY, H_VERSION, H_XFF };

struct syn_ws_conn {
  syn_ws_server *srv;
  uv_tcp_t tcp;
  uv_shutdown_t shutdown;
  struct syn_ws_conn *prev, *next;
  enum conn_state state;
  bool tls_listener;
  bool handle_closing;
  bool opened;  /* on_open ran: on_close is owed */
  bool counted; /* holds one of its client's connection slots */
  bool in_recv; /* inside wslay_event_recv: sends are queued, flushed after it returns */
  uint8_t peer_ip[16];
  size_t peer_ip_len;
  uint64_t last_active;
  uint64_t deadline; /* handshake, or the closing handshake; 0 none */
  size_t queued;     /* bytes handed to libuv, not yet written */
  void *data;
  syn_tls_conn *tls;
  /* handshake */
  llhttp_t parser;
  size_t head_bytes;
  int refuse_status;
  char url[256];
  size_t url_len;
  char field[32];
  size_t field_len;
  char value[HEADER_VALUE_MAX];
  size_t value_len;
  bool upgrade_ws, connection_upgrade, version_13;
  char key[32];
  char xff[256]; /* X-Forwarded-For, its last 255 bytes (the rightmost address counts) */
  size_t xff_len;
  bool via_proxy; /* the socket peer is a trusted proxy: the client is counted at the head */
  /* open */
  wslay_event_context_ptr ws;
  syn_buf in;
  size_t in_off;
  syn_buf out;
  syn_buf tls_plain, tls_cipher;
};

struct syn_ws_server {
  uv_loop_t *loop;
  const syn_config *cfg;
  syn_ws_callbacks cb;
  uv_tcp_t plain_listener, tls_listener;
  bool plain_on, tls_on;
  uv_timer_t sweep;
  int open_handles;
  bool closing;
  syn_tls_ctx *tls;
  syn_conn_table *per_client;
  llhttp_settings_t settings;
  syn_ws_conn *conns;
  size_t conn_count;
  syn_ws_stats stats;
  char read_buf[READ_BUF];
};

typedef struct write_req {
  uv_write_t req;
  syn_ws_conn *c;
  size_t len;
  char data[];
} write_req;

static void conn_close(syn_ws_conn *c);
static void process_plain(syn_ws_conn *c, const uint8_t *data, size_t len);

/* ---- writing ---- */

static void on_written(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  w->c->queued -= w->len;
  if (status < 0 && status != UV_ECANCELED) conn_close(w->c);
  free(w);
}

static void raw_write(syn_ws_conn *c, const void *data, size_t len) {
  if (!len || c->handle_closing) return;
  write_req *w = malloc(sizeof *w + len);
  if (!w) {
    conn_close(c);
    return;
  }
  w->c = c;
  w->len = len;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
    free(w);
    conn_close(c);
    return;
  }
  c->queued += len;
  if (c->queued > MAX_QUEUED_BYTES) { /* the client does not read: cut it off */
    c->srv->stats.closed_slow++;
    conn_close(c);
  }
}

static void flush_cipher(syn_ws_conn *c) {
  raw_write(c, c->tls_cipher.data, c->tls_cipher.len);
  syn_buf_reset(&c->tls_cipher);
}

/* Application bytes out, through TLS when the connection has it. */
static void write_plain(syn_ws_conn *c, const void *data, size_t len) {
  if (!c->tls) {
    raw_write(c, data, len);
    return;
  }
  if (syn_tls_conn_write(c->tls, data, len, &c->tls_cipher)) {
    c->srv->stats.tls_failures++;
    conn_close(c);
    return;
  }
  flush_cipher(c);
}

/* Our side is done; the client's may still be arriving (the rest of a message too big to
 * take). Closing now, with unread input, would reset the connection and the client could
 * lose our last frame or answer: input is read and dropped until the client closes too,
 * or CLOSE_WAIT_MS. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  syn_ws_conn *c = req->data;
  if (status || c->handle_closing) {
    conn_close(c);
    return;
  }
  c->deadline = uv_now(c->srv->loop) + CLOSE_WAIT_MS;
}

/* Everything queued goes out, then the connection closes. */
static void finish(syn_ws_conn *c) {
  if (c->state == ST_FINISHING || c->handle_closing) return;
  c->state = ST_FINISHING;
  if (c->tls) {
    syn_tls_conn_shutdown(c->tls, &c->tls_cipher);
    flush_cipher(c);
  }
  if (c->handle_closing) return;
  c->shutdown.data = c;
  if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown)) conn_close(c);
}

/* ---- the handshake ---- */

static void respond_status(syn_ws_conn *c, int status, const char *reason, const char *extra) {
  char head[512];
  char body[96];
  int blen = snprintf(body, sizeof body, "%d %s\n", status, reason);
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                   "Connection: close\r\n%s\r\n%s",
                   status, reason, blen, extra ? extra : "", body);
  c->srv->stats.refused++;
  write_plain(c, head, (size_t)n);
  finish(c);
}

static syn_ws_conn *parser_conn(llhttp_t *p) { return p->data; }

static void append_capped(char *dst, size_t *len, size_t cap, const char *at, size_t n) {
  size_t room = cap - 1 - *len;
  if (n > room) n = room;
  memcpy(dst + *len, at, n);
  *len += n;
  dst[*len] = '\0';
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  syn_ws_conn *c = parser_conn(p);
  append_capped(c->url, &c->url_len, sizeof c->url, at, n);
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  syn_ws_conn *c = parser_conn(p);
  append_capped(c->field, &c->field_len, sizeof c->field, at, n);
  return 0;
}

static enum header_kind header_kind(const char *name) {
  if (!strcasecmp(name, "upgrade")) return H_UPGRADE;
  if (!strcasecmp(name, "connection")) return H_CONNECTION;
  if (!strcasecmp(name, "sec-websocket-key")) return H_KEY;
  if (!strcasecmp(name, "sec-websocket-version")) return H_VERSION;
  if (!strcasecmp(name, "x-forwarded-for")) return H_XFF;
  return H_OTHER;
}

/* Keeps the last cap - 1 bytes of what is appended. */
static void append_tail(char *dst, size_t *len, size_t cap, const char *at, size_t n) {
  if (n >= cap - 1) {
    at += n - (cap - 1);
    n = cap - 1;
  }
  size_t keep = *len + n > cap - 1 ? cap - 1 - n : *len;
  memmove(dst, dst + *len - keep, keep);
  memcpy(dst + keep, at, n);
  *len = keep + n;
  dst[*len] = '\0';
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  syn_ws_conn *c = parser_conn(p);
  if (header_kind(c->field) == H_XFF)
    append_tail(c->xff, &c->xff_len, sizeof c->xff, at, n);
  else
    append_capped(c->value, &c->value_len, sizeof c->value, at, n);
  return 0;
}


/* Whether a comma-separated header value lists `token` (case-insensitive). */
static bool has_token(const char *value, const char *token) {
  size_t tl = strlen(token);
  for (const char *p = value; *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *end = p;
    while (*end && *end != ',') end++;
    const char *last = end;
    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) last--;
    if ((size_t)(last - p) == tl && !strncasecmp(p, token, tl)) return true;
    p = end;
  }
  return false;
}

static int on_header_value_complete(llhttp_t *p) {
  syn_ws_conn *c = parser_conn(p);
  switch (header_kind(c->field)) {
  case H_UPGRADE: c->upgrade_ws = has_token(c->value, "websocket"); break;
  case H_CONNECTION: c->connection_upgrade = has_token(c->value, "upgrade"); break;
  case H_KEY:
    if (c->value_len < sizeof c->key) memcpy(c->key, c->value, c->value_len + 1);
    break;
  case H_VERSION: c->version_13 = !strcmp(c->value, "13"); break;
  case H_XFF:
    append_tail(c->xff, &c->xff_len, sizeof c->xff, ",", 1); /* another header line */
    break;
  case H_OTHER: break;
  }
  c->field_len = c->value_len = 0;
  c->field[0] = c->value[0] = '\0';
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  (void)p;
  return 2; /* no body; llhttp_execute stops after the head with HPE_PAUSED_UPGRADE */
}

/* A 16-byte nonce in base64 (RFC 6455 4.1): 24 characters ending "==". */
static bool valid_key(const char *key) {
  if (strlen(key) != 24 || key[22] != '=' || key[23] != '=') return false;
  unsigned char raw[24];
  return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

static void accept_value(const char *key, char out[32]) {
  char joined[64];
  int n = snprintf(joined, sizeof joined, "%s%s", key, WS_GUID);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(joined, (size_t)n, md, &md_len, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
}

static bool path_served(const syn_ws_conn *c) {
  size_t n = strcspn(c->url, "?");
  return (n == 1 && c->url[0] == '/') || (n == 9 && !memcmp(c->url, "/announce", 9));
}

static ssize_t ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags,
                       void *user) {
  (void)flags;
  syn_ws_conn *c = user;
  size_t avail = c->in.len - c->in_off;
  if (!avail) {
    wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (len > avail) len = avail;
  memcpy(buf, c->in.data + c->in_off, len);
  c->in_off += len;
  return (ssize_t)len;
}

static ssize_t ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                       void *user) {
  (void)flags;
  syn_ws_conn *c = user;
  if (syn_buf_append(&c->out, data, len)) {
    wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

static void ws_message(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user) {
  (void)ws;
  syn_ws_conn *c = user;
  if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) return;
  c->srv->stats.messages_in++;
  if (c->state == ST_OPEN) c->srv->cb.on_message(c->srv->cb.ctx, c, arg->msg, arg->msg_length);
}

/* wslay's output so far goes out; the connection ends once the closing handshake is. */
static void ws_flush(syn_ws_conn *c) {
  if (!c->ws || c->handle_closing) return;
  if (wslay_event_send(c->ws)) {
    conn_close(c);
    return;
  }
  write_plain(c, c->out.data, c->out.len);
  syn_buf_reset(&c->out);
  if (!c->handle_closing && !wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws))
    finish(c);
}

static int open_ws(syn_ws_conn *c) {
  static const struct wslay_event_callbacks callbacks = {
      .recv_callback = ws_recv,
      .send_callback = ws_send,
      .on_msg_recv_callback = ws_message,
  };
  if (wslay_event_context_server_init(&c->ws, &callbacks, c)) return -1;
  wslay_event_config_set_max_recv_msg_length(c->ws, c->srv->cfg->ws_max_message);
  return 0;
}

/* Behind a trusted proxy the client is the one X-Forwarded-For names, counted now. */
static void count_forwarded_client(syn_ws_conn *c) {
  syn_ws_server *srv = c->srv;
  if (!c->via_proxy) return;
  while (c->xff_len && c->xff[c->xff_len - 1] == ',') c->xff[--c->xff_len] = '\0';
  uint8_t ip[16];
  size_t len = syn_client_ip(srv->cfg, c->peer_ip, c->peer_ip_len, c->xff, ip);
  memcpy(c->peer_ip, ip, len);
  c->peer_ip_len = len;
  c->counted = syn_conn_acquire(srv->per_client, c->peer_ip, c->peer_ip_len,
                                srv->cfg->ws_max_connections_per_ip);
  if (!c->counted) c->refuse_status = 429;
}

static void upgrade(syn_ws_conn *c, const uint8_t *rest, size_t rest_len) {
  syn_ws_server *srv = c->srv;
  count_forwarded_client(c);
  if (c->refuse_status) {
    respond_status(c, 429, "Too Many Requests", "Retry-After: 60\r\n");
    return;
  }
  if (c->parser.method != HTTP_GET) {
    respond_status(c, 405, "Method Not Allowed", "Allow: GET\r\n");
    return;
  }
  if (!path_served(c)) {
    respond_status(c, 404, "Not Found", NULL);
    return;
  }
  if (!c->upgrade_ws || !c->connection_upgrade) {
    respond_status(c, 426, "Upgrade Required", "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    return;
  }
  if (!c->version_13) {
    respond_status(c, 426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
    return;
  }
  if (!valid_key(c->key)) {
    respond_status(c, 400, "Bad Request", NULL);
    return;
  }
  if (open_ws(c)) {
    conn_close(c);
    return;
  }
  char accept[32];
  accept_value(c->key, accept);
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                   accept);
  write_plain(c, head, (size_t)n);
  if (c->handle_closing) return;
  c->state = ST_OPEN;
  c->deadline = 0;
  c->opened = true;
  srv->stats.handshakes++;
  srv->stats.open++;
  srv->cb.on_open(srv->cb.ctx, c);
  if (rest_len && !c->handle_closing) process_plain(c, rest, rest_len);
}

static void handshake_bytes(syn_ws_conn *c, const uint8_t *data, size_t len) {
  const syn_config *cfg = c->srv->cfg;
  c->head_bytes += len;
  llhttp_errno_t rc = llhttp_execute(&c->parser, (const char *)data, len);
  if (rc == HPE_PAUSED_UPGRADE) {
    const uint8_t *end = (const uint8_t *)llhttp_get_error_pos(&c->parser);
    size_t used = end && end >= data && end <= data + len ? (size_t)(end - data) : len;
    upgrade(c, data + used, len - used);
    return;
  }
  if (rc != HPE_OK) {
    respond_status(c, 400, "Bad Request", NULL);
    return;
  }
  if (c->head_bytes > (size_t)cfg->max_header_bytes + cfg->max_request_line)
    respond_status(c, 431, "Request Header Fields Too Large", NULL);
}

/* ---- reading ---- */

static void process_plain(syn_ws_conn *c, const uint8_t *data, size_t len) {
  if (c->state == ST_HANDSHAKE) {
    handshake_bytes(c, data, len);
    return;
  }
  if (c->state != ST_OPEN || !len) return;
  if (syn_buf_append(&c->in, data, len)) {
    conn_close(c);
    return;
  }
  c->in_recv = true;
  int rc = wslay_event_recv(c->ws);
  c->in_recv = false;
  syn_buf_reset(&c->in); /* wslay reads until it would block: nothing is left */
  c->in_off = 0;
  if (rc) {
    conn_close(c);
    return;
  }
  ws_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  syn_ws_conn *c = h->data;
  *buf = uv_buf_init(c->srv->read_buf, READ_BUF);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  syn_ws_conn *c = s->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (n == 0 || c->state == ST_FINISHING) return;
  c->last_active = uv_now(c->srv->loop);
  if (!c->tls) {
    process_plain(c, (const uint8_t *)buf->base, (size_t)n);
    return;
  }
  syn_buf_reset(&c->tls_plain);
  int rc = syn_tls_conn_feed(c->tls, (const uint8_t *)buf->base, (size_t)n, &c->tls_plain,
                             &c->tls_cipher);
  flush_cipher(c);
  if (rc) {
    if (!syn_tls_conn_ready(c->tls)) c->srv->stats.tls_failures++;
    syn_debug("wss: connection closed: %s", syn_tls_conn_error(c->tls));
    finish(c);
    return;
  }
  if (c->tls_plain.len && !c->handle_closing) process_plain(c, c->tls_plain.data, c->tls_plain.len);
}

/* ---- connections ---- */

static void server_free_if_done(syn_ws_server *srv) {
  if (!srv->closing || srv->open_handles || srv->conns) return;
  syn_conn_table_free(srv->per_client);
  syn_tls_ctx_free(srv->tls);
  free(srv);
}

static void on_conn_closed(uv_handle_t *h) {
  syn_ws_conn *c = h->data;
  syn_ws_server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->conn_count--;
  if (c->ws) wslay_event_context_free(c->ws);
  syn_tls_conn_free(c->tls);
  syn_buf_free(&c->in);
  syn_buf_free(&c->out);
  syn_buf_free(&c->tls_plain);
  syn_buf_free(&c->tls_cipher);
  free(c);
  server_free_if_done(srv);
}

static void conn_close(syn_ws_conn *c) {
  if (c->handle_closing) return;
  c->handle_closing = true;
  syn_ws_server *srv = c->srv;
  if (c->opened) {
    c->opened = false;
    srv->stats.open--;
    srv->cb.on_close(srv->cb.ctx, c);
  }
  if (c->counted) syn_conn_release(srv->per_client, c->peer_ip, c->peer_ip_len);
  c->counted = false;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_refused_closed(uv_handle_t *h) { free(h); }

static void refuse_pending(syn_ws_server *srv, uv_stream_t *listener) {
  uv_tcp_t *t = malloc(sizeof *t);
  if (!t) return;
  uv_tcp_init(srv->loop, t);
  uv_accept(listener, (uv_stream_t *)t);
  uv_close((uv_handle_t *)t, on_refused_closed);
}

/* A connection in the server's list with its handle initialised, not yet accepted. */
static syn_ws_conn *conn_new(syn_ws_server *srv) {
  syn_ws_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  c->next = srv->conns;
  if (srv->conns) srv->conns->prev = c;
  srv->conns = c;
  srv->conn_count++;
  return c;
}

static void accept_on(syn_ws_server *srv, uv_stream_t *listener, bool tls) {
  if (srv->conn_count >= srv->cfg->max_connections) {
    srv->stats.refused++;
    refuse_pending(srv, listener);
    return;
  }
  syn_ws_conn *c = conn_new(srv);
  if (!c) {
    refuse_pending(srv, listener);
    return;
  }
  if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
    conn_close(c);
    return;
  }
  if (tls && !(c->tls = syn_tls_conn_new(srv->tls))) {
    conn_close(c);
    return;
  }
  c->peer_ip_len = syn_tcp_peer_ip(&c->tcp, c->peer_ip);
  c->via_proxy = syn_from_trusted_proxy(srv->cfg, c->peer_ip, c->peer_ip_len);
  if (!c->via_proxy) {
    c->counted = c->peer_ip_len && syn_conn_acquire(srv->per_client, c->peer_ip, c->peer_ip_len,
                                                    srv->cfg->ws_max_connections_per_ip);
    if (!c->counted) c->refuse_status = 429;
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
  c->parser.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  c->last_active = uv_now(srv->loop);
  c->deadline = c->last_active + srv->cfg->header_timeout_ms;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_plain_connection(uv_stream_t *l, int status) {
  if (status == 0) accept_on(l->data, l, false);
}

static void on_tls_connection(uv_stream_t *l, int status) {
  if (status == 0) accept_on(l->data, l, true);
}

/* Every second: handshakes and closing handshakes past their deadline, idle sockets. */
static void on_sweep(uv_timer_t *t) {
  syn_ws_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  uint64_t idle_ms = (uint64_t)srv->cfg->ws_interval * 3000;
  for (syn_ws_conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    if (c->handle_closing) continue;
    if (c->deadline && now >= c->deadline) {
      conn_close(c);
    } else if (c->state == ST_OPEN && now - c->last_active > idle_ms) {
      srv->stats.closed_idle++;
      syn_ws_close(c, 1001, "idle");
    }
  }
}

/* ---- public ---- */

int syn_ws_send(syn_ws_conn *c, const char *text, size_t len) {
  if (c->state != ST_OPEN || c->handle_closing || wslay_event_get_close_sent(c->ws)) return -1;
  struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
  if (wslay_event_queue_msg(c->ws, &m)) return -1;
  c->srv->stats.messages_out++;
  if (!c->in_recv) ws_flush(c); /* wslay_event_send must not run inside its own recv */
  return c->handle_closing ? -1 : 0;
}

void syn_ws_close(syn_ws_conn *c, uint16_t code, const char *reason) {
  if (c->state != ST_OPEN || c->handle_closing) return;
  wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
  c->deadline = uv_now(c->srv->loop) + CLOSE_WAIT_MS;
  if (!c->in_recv) ws_flush(c);
}

size_t syn_ws_conn_ip(const syn_ws_conn *c, const uint8_t **ip) {
  *ip = c->peer_ip;
  return c->peer_ip_len;
}

void syn_ws_conn_set_data(syn_ws_conn *c, void *data) { c->data = data; }
void *syn_ws_conn_data(const syn_ws_conn *c) { return c->data; }

int syn_ws_reload_tls(syn_ws_server *srv, char *err, size_t err_len) {
  if (!srv->tls) return 0;
  return syn_tls_ctx_reload(srv->tls, err, err_len);
}

void syn_ws_stats_get(const syn_ws_server *srv, syn_ws_stats *out) { *out = srv->stats; }

static void on_server_handle_closed(uv_handle_t *h) {
  syn_ws_server *srv = h->data;
  srv->open_handles--;
  server_free_if_done(srv);
}

void syn_ws_server_close(syn_ws_server *srv) {
  if (!srv || srv->closing) return;
  srv->closing = true;
  for (syn_ws_conn *c = srv->conns; c; c = c->next) conn_close(c);
  if (srv->plain_on) uv_close((uv_handle_t *)&srv->plain_listener, on_server_handle_closed);
  if (srv->tls_on) uv_close((uv_handle_t *)&srv->tls_listener, on_server_handle_closed);
  uv_close((uv_handle_t *)&srv->sweep, on_server_handle_closed);
}

static int listen_one(syn_ws_server *srv, uv_tcp_t *l, bool *on, uint16_t port, uv_connection_cb cb,
                      const char *what, char *err, size_t err_len) {
  int rc = syn_tcp_listen(srv->loop, l, srv->cfg->host, port, cb, what, err, err_len);
  l->data = srv;
  *on = true;
  srv->open_handles++;
  return rc;
}

syn_ws_server *syn_ws_listen(uv_loop_t *loop, const syn_config *cfg, const syn_ws_callbacks *cb,
                             char *err, size_t err_len) {
  syn_ws_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  srv->loop = loop;
  srv->cfg = cfg;
  srv->cb = *cb;
  srv->per_client = syn_conn_table_new(cfg->max_connections);
  llhttp_settings_init(&srv->settings);
  srv->settings.on_url = on_url;
  srv->settings.on_header_field = on_header_field;
  srv->settings.on_header_value = on_header_value;
  srv->settings.on_header_value_complete = on_header_value_complete;
  srv->settings.on_headers_complete = on_headers_complete;
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  srv->open_handles++;
  if (!srv->per_client) {
    snprintf(err, err_len, "out of memory");
    goto fail;
  }
  if (cfg->wss_port &&
      !(srv->tls = syn_tls_ctx_load(cfg->ws_cert_file, cfg->ws_key_file, err, err_len)))
    goto fail;
  if (cfg->ws_port && listen_one(srv, &srv->plain_listener, &srv->plain_on, cfg->ws_port,
                                 on_plain_connection, "WebSocket port", err, err_len))
    goto fail;
  if (cfg->wss_port && listen_one(srv, &srv->tls_listener, &srv->tls_on, cfg->wss_port,
                                  on_tls_connection, "WebSocket TLS port", err, err_len))
    goto fail;
  uv_timer_start(&srv->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
  return srv;
fail:
  syn_ws_server_close(srv);
  return NULL;
}
