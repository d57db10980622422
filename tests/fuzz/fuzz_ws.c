/* Fuzz target: bytes from a WebSocket client through router/ws_server.c, compiled in whole
 * so that the real opening handshake (llhttp, the header checks, the key and the 101),
 * the per-client count, wslay's framing behind it (masking, fragmentation, ping/pong,
 * the message limit, the closing handshake) and the server's closing and draining all
 * run, then each message into the WebTorrent parser and builders (router/ws_json.c).
 *
 * Each input is one connection on plain ws://: a socketpair stands in for the accepted
 * TCP socket (set up as accept_on does, the listener aside). The first byte chooses the
 * size of the chunks the rest is written in (its low six bits, as fuzz_http) and whether
 * the socket peer is a trusted proxy (bit 6: the client is then the one X-Forwarded-For
 * names, counted at the head). Then the client shuts its side and the loop runs until the
 * server has freed the connection; one that never finishes is reported as a crash (a
 * hang).
 *
 * The callbacks answer as a tracker would: a failure reason for a message that does not
 * parse, an announce or scrape reply otherwise, and for an announce with offers (or an
 * answer) also the signal built from the first one, back to the same connection. Every
 * fourth message of a connection the server starts the closing handshake. on_close must
 * run exactly once for each connection given to on_open, and no message may arrive for
 * a connection after it: either is reported as a crash. With FUZZ_WS_TRACE set, each
 * input's outcome (the status line back, upgraded or refused, messages in and out) goes
 * to stderr, to check what a seed does. */
#include "router/ws_server.c"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router/ws_json.h"

#define MAX_PASSES 100000
#define MAX_OPENED 8
#define CLOSE_EVERY 4

typedef struct opened {
  syn_ws_conn *c;
  bool closed;
  unsigned messages;
} opened;

static uv_loop_t loop;
static syn_config cfg;
static syn_ws_server *srv;
static opened conns[MAX_OPENED];
static size_t n_conns;

static void fz_fail(const char *what) {
  fprintf(stderr, "fuzz_ws: %s\n", what);
  abort();
}

static opened *fz_find(syn_ws_conn *c) {
  for (size_t i = 0; i < n_conns; i++)
    if (conns[i].c == c && !conns[i].closed) return &conns[i];
  return NULL;
}

static void fz_on_open(void *ctx, syn_ws_conn *c) {
  (void)ctx;
  if (fz_find(c)) fz_fail("on_open twice for one connection");
  if (n_conns == MAX_OPENED) fz_fail("more connections opened than the harness made");
  const uint8_t *ip;
  if (!syn_ws_conn_ip(c, &ip)) fz_fail("an open connection without a client address");
  conns[n_conns] = (opened){c, false, 0};
  syn_ws_conn_set_data(c, &conns[n_conns]);
  n_conns++;
}

static void fz_on_close(void *ctx, syn_ws_conn *c) {
  (void)ctx;
  opened *o = fz_find(c);
  if (!o) fz_fail("on_close for a connection not open (twice, or never opened)");
  if (syn_ws_conn_data(c) != o) fz_fail("the connection's data changed");
  o->closed = true;
}

/* Every reply is one JSON object; an announce reply names the info_hash it was asked.
 * (A scrape reply whose info_hash holds a 0x00 has it in an object key, which is valid
 * JSON but which jansson does not decode: those are not checked.) */
static void fz_check_reply(const syn_buf *b, const uint8_t *info_hash, bool check) {
  if (!check) return;
  json_t *r = json_loadb((const char *)b->data, b->len, JSON_ALLOW_NUL, NULL);
  if (!json_is_object(r)) fz_fail("a reply that is not a JSON object");
  if (info_hash) {
    uint8_t back[20];
    if (syn_ws_binstr_get(json_object_get(r, "info_hash"), back, 20) || memcmp(back, info_hash, 20))
      fz_fail("a reply's info_hash does not decode to the one asked");
  }
  json_decref(r);
}

static void fz_reply(syn_ws_conn *c, syn_buf *b, const uint8_t *info_hash, bool check) {
  fz_check_reply(b, info_hash, check);
  syn_ws_send(c, (const char *)b->data, b->len);
  syn_buf_reset(b);
}

static void fz_on_message(void *ctx, syn_ws_conn *c, const uint8_t *msg, size_t len) {
  (void)ctx;
  opened *o = fz_find(c);
  if (!o) fz_fail("a message for a connection not open");
  syn_buf out = SYN_BUF_INIT;
  syn_ws_msg m;
  char why[256];
  if (syn_ws_parse(msg, len, 10, &m, why, sizeof why)) {
    const char *action = !m.has_action ? NULL : m.action == SYN_WS_SCRAPE ? "scrape" : "announce";
    if (syn_ws_failure(&out, why, action, m.has_info_hash ? m.info_hash : NULL))
      fz_fail("syn_ws_failure failed");
    fz_reply(c, &out, m.has_info_hash ? m.info_hash : NULL, true);
  } else if (m.action == SYN_WS_ANNOUNCE) {
    if (syn_ws_announce_reply(&out, m.info_hash, 120, (uint32_t)m.n_offers, m.has_left))
      fz_fail("syn_ws_announce_reply failed");
    fz_reply(c, &out, m.info_hash, true);
    /* What parsed is what a node hands back: the builders must take it. */
    if (m.n_offers) {
      if (syn_ws_signal(&out, m.info_hash, m.peer_id, m.offers[0].offer_id, false,
                        (const uint8_t *)m.offers[0].json, m.offers[0].len))
        fz_fail("syn_ws_signal refused a parsed offer");
      fz_reply(c, &out, m.info_hash, true);
    }
    if (m.has_answer) {
      if (syn_ws_signal(&out, m.info_hash, m.peer_id, m.offer_id, true, (const uint8_t *)m.answer,
                        m.answer_len))
        fz_fail("syn_ws_signal refused a parsed answer");
      fz_reply(c, &out, m.info_hash, true);
    }
  } else {
    uint8_t entries[SYN_WS_MAX_SCRAPE * 32];
    bool nul_key = false;
    for (size_t i = 0; i < m.n_hashes; i++) {
      uint8_t *e = entries + 32 * i;
      memcpy(e, m.hashes[i], 20);
      nul_key |= memchr(e, 0, 20) != NULL;
      for (size_t k = 20; k < 32; k++) e[k] = (uint8_t)(i * 7 + k);
    }
    if (syn_ws_scrape_reply(&out, entries, m.n_hashes)) fz_fail("syn_ws_scrape_reply failed");
    fz_reply(c, &out, NULL, !nul_key);
  }
  syn_ws_msg_free(&m);
  syn_buf_free(&out);
  if (++o->messages % CLOSE_EVERY == 0) syn_ws_close(c, 1000, "enough");
}

static void setup(void) {
  uv_loop_init(&loop);
  syn_config_defaults(&cfg);
  cfg.ws_port = 0; /* no listener: connections are opened by hand */
  cfg.wss_port = 0;
  cfg.ws_max_message = 1024; /* the smallest allowed, so that fragments can reach it */
  free(cfg.host);
  cfg.host = strdup("127.0.0.1");
  syn_cidr_parse("127.0.0.0/8", &cfg.trusted_proxies[0]);
  cfg.trusted_proxy_count = 1;
  static const syn_ws_callbacks cb = {fz_on_open, fz_on_message, fz_on_close, NULL};
  char err[256];
  srv = syn_ws_listen(&loop, &cfg, &cb, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "fuzz_ws: %s\n", err);
    abort();
  }
}

/* As accept_on, for an already connected socket (TCP_NODELAY aside: it is no TCP). */
static void open_conn(int fd, bool via_proxy) {
  syn_ws_conn *c = conn_new(srv);
  if (!c) abort();
  if (uv_tcp_open(&c->tcp, fd)) abort();
  static const uint8_t proxy[4] = {127, 0, 0, 1}, client[4] = {192, 0, 2, 7};
  memcpy(c->peer_ip, via_proxy ? proxy : client, 4);
  c->peer_ip_len = 4;
  c->via_proxy = syn_from_trusted_proxy(srv->cfg, c->peer_ip, c->peer_ip_len);
  if (c->via_proxy != via_proxy) abort();
  if (!c->via_proxy) {
    c->counted = syn_conn_acquire(srv->per_client, c->peer_ip, c->peer_ip_len,
                                  srv->cfg->ws_max_connections_per_ip);
    if (!c->counted) c->refuse_status = 429;
  }
  c->state = ST_HANDSHAKE;
  llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
  c->parser.data = c;
  c->last_active = uv_now(srv->loop);
  c->deadline = c->last_active + srv->cfg->header_timeout_ms;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) setup();
  if (size < 1) return 0;
  size_t chunk = (size_t)(data[0] % 64) * 37 + 1;
  bool via_proxy = data[0] & 0x40;
  data++, size--;
  if (chunk < size / 32) chunk = size / 32; /* at most about 32 reads a connection */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) abort();
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  n_conns = 0;
  open_conn(sv[0], via_proxy);
  syn_ws_stats before = srv->stats;
  size_t sent = 0, got = 0;
  bool shut = false;
  char sink[65536], status[13] = "";
  for (int pass = 0; srv->conns; pass++) {
    if (pass == MAX_PASSES) fz_fail("the connection never finished");
    if (sent < size) {
      size_t n = size - sent < chunk ? size - sent : chunk;
      ssize_t w = send(sv[1], data + sent, n, MSG_NOSIGNAL);
      if (w > 0) sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN) sent = size; /* the server closed its end */
    } else if (!shut) {
      shutdown(sv[1], SHUT_WR);
      shut = true;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    for (ssize_t r; (r = read(sv[1], sink, sizeof sink)) > 0; got += (size_t)r)
      if (!got) memcpy(status, sink, r < 12 ? (size_t)r : 12);
  }
  for (size_t i = 0; i < n_conns; i++)
    if (!conns[i].closed) fz_fail("a connection freed without on_close");
  if (srv->conn_count || srv->stats.open) fz_fail("the server still counts a connection");
  if (getenv("FUZZ_WS_TRACE")) /* what an input did, to check the seeds */
    fprintf(stderr, "fuzz_ws: \"%s\" %zu bytes back; upgraded %d refused %d messages in %d out %d\n",
            status, got, (int)(srv->stats.handshakes - before.handshakes),
            (int)(srv->stats.refused - before.refused),
            (int)(srv->stats.messages_in - before.messages_in),
            (int)(srv->stats.messages_out - before.messages_out));
  close(sv[1]);
  return 0;
}
