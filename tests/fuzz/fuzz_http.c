/* Fuzz target: bytes from a client through router/http.c, compiled in whole so that the
 * real llhttp settings, callbacks, limits, response queue and lingering close all run,
 * then into the request handling that parses announce and scrape queries
 * (router/tracker_query.c) and JSON API bodies (router/api_json.c).
 *
 * Each input is one connection: a socketpair stands in for the accepted TCP socket (the
 * connection is set up as on_connection does, the listener aside), the input is written
 * to the client end in chunks whose size the first byte chooses (at most about 32), then the client shuts
 * its side and the loop runs until the server has freed the connection. The handler
 * answers two requests in three at once and defers the third, answering deferred ones
 * later in reverse order, so pipelined replies are reordered by the queue and some
 * slots outlive their connection. A connection that never finishes is reported as a
 * crash (a hang). */
#include "router/http.c"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router/api_json.h"
#include "router/tracker_query.h"

#define DEFERRED_MAX 32
#define MAX_PASSES 100000

static uv_loop_t loop;
static syn_config cfg;
static syn_http_server *srv;
static syn_http_slot *deferred[DEFERRED_MAX];
static size_t n_deferred;
static unsigned handled;

static bool path_is(const syn_http_request *req, const char *p) {
  return req->path_len == strlen(p) && !memcmp(req->path, p, req->path_len);
}

static int handle_api(const syn_http_request *req, char *err, size_t err_len) {
  if (path_is(req, "/api/register")) {
    syn_register_input in;
    int st = syn_api_parse_register(req->body, req->body_len, &in, err, err_len);
    syn_register_input_free(&in);
    return st ? st : 200;
  }
  bool by_embedding = path_is(req, "/api/search/embedding");
  if (by_embedding || path_is(req, "/api/search")) {
    syn_search_input in;
    int st = syn_api_parse_search(req->body, req->body_len, by_embedding, &in, err, err_len);
    syn_search_input_free(&in);
    return st ? st : 200;
  }
  return 404;
}

static void handle(void *ctx, const syn_http_request *req, syn_http_slot *slot) {
  (void)ctx;
  char err[256] = "";
  int status = 404;
  const char *q = req->query ? req->query : "";
  if (path_is(req, "/announce")) {
    syn_announce_query a;
    status = syn_announce_query_parse(q, req->query_len, &a) ? 400 : 200;
  } else if (path_is(req, "/scrape")) {
    static syn_scrape_query s;
    status = syn_scrape_query_parse(q, req->query_len, &s) ? 400 : 200;
  } else if (req->path_len >= 5 && !memcmp(req->path, "/api/", 5)) {
    status = handle_api(req, err, sizeof err);
  }
  if (++handled % 3 == 0 && n_deferred < DEFERRED_MAX) {
    deferred[n_deferred++] = slot;
    return;
  }
  syn_http_respond(slot, status, "text/plain", err, strlen(err), NULL);
}

static void answer_deferred(void) {
  while (n_deferred) {
    syn_http_slot *s = deferred[--n_deferred];
    syn_http_respond(s, 200, "text/plain", "late", 4, "X-Late: 1\r\n");
  }
}

static void setup(void) {
  uv_loop_init(&loop);
  syn_config_defaults(&cfg);
  cfg.http_port = 0;
  free(cfg.host);
  cfg.host = strdup("127.0.0.1");
  syn_cidr_parse("127.0.0.0/8", &cfg.trusted_proxies[0]); /* so X-Forwarded-For is read */
  cfg.trusted_proxy_count = 1;
  char err[256];
  srv = syn_http_listen(&loop, &cfg, handle, NULL, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "fuzz_http: %s\n", err);
    abort();
  }
}

/* As on_connection, for an already connected socket. */
static void open_conn(int fd) {
  http_conn *c = conn_new(srv);
  if (!c || uv_tcp_open(&c->tcp, fd)) abort();
  static const uint8_t lo[4] = {127, 0, 0, 1};
  memcpy(c->peer_ip, lo, 4);
  c->peer_ip_len = 4;
  llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
  c->parser.data = c;
  c->last_active = uv_now(srv->loop);
  c->head_deadline = c->last_active + srv->cfg->header_timeout_ms;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) setup();
  if (size < 1) return 0;
  size_t chunk = (size_t)(data[0] % 64) * 37 + 1;
  data++, size--;
  if (chunk < size / 32) chunk = size / 32; /* at most about 32 reads a connection */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) abort();
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  open_conn(sv[0]);
  size_t sent = 0;
  bool shut = false;
  char sink[65536];
  for (int pass = 0; srv->conns; pass++) {
    if (pass == MAX_PASSES) {
      fprintf(stderr, "fuzz_http: the connection never finished\n");
      abort();
    }
    if (sent < size) {
      size_t n = size - sent < chunk ? size - sent : chunk;
      ssize_t w = write(sv[1], data + sent, n);
      if (w > 0) sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN) sent = size; /* the server closed its end */
    } else if (!shut) {
      shutdown(sv[1], SHUT_WR);
      shut = true;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    answer_deferred();
    while (read(sv[1], sink, sizeof sink) > 0) {
    }
  }
  answer_deferred();
  close(sv[1]);
  return 0;
}
