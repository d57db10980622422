#include "node/embedder.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <llhttp.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

int syn_embed_parse_url(const char *url, syn_http_url *out) {
  const char *p = url;
  if (strncmp(p, "http://", 7) != 0) return -1;
  p += 7;
  size_t host_len = strcspn(p, ":/?#@");
  if (host_len == 0 || host_len >= sizeof out->host) return -1;
  memcpy(out->host, p, host_len);
  out->host[host_len] = 0;
  p += host_len;
  snprintf(out->port, sizeof out->port, "80");
  if (*p == ':') {
    size_t port_len = strspn(p + 1, "0123456789");
    if (port_len == 0 || port_len > 5) return -1;
    memcpy(out->port, p + 1, port_len);
    out->port[port_len] = 0;
    p += 1 + port_len;
  }
  if (*p && *p != '/') return -1;
  snprintf(out->path, sizeof out->path, "%s", *p ? p : "/");
  return strlen(p) >= sizeof out->path ? -1 : 0;
}

char *syn_embed_request_body(const syn_embedder_config *cfg, const char *text) {
  if (strcmp(cfg->api, "ollama") != 0 && strcmp(cfg->api, "openai") != 0) return NULL;
  size_t n = strlen(cfg->prefix ? cfg->prefix : "") + strlen(text) + 1;
  char *input = malloc(n);
  if (!input) return NULL;
  snprintf(input, n, "%s%s", cfg->prefix ? cfg->prefix : "", text);
  json_t *doc = json_pack("{s:s,s:s}", "model", cfg->model, "input", input);
  free(input);
  char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  return body;
}

static int fail(char *err, size_t err_len, const char *msg) {
  snprintf(err, err_len, "%s", msg);
  return -1;
}

int syn_embed_parse_response(const char *api, const char *body, size_t len, float **out,
                             uint32_t *dim, char *err, size_t err_len) {
  json_error_t jerr;
  json_t *doc = json_loadb(body, len, 0, &jerr);
  if (!doc) return fail(err, err_len, "embedding service sent invalid JSON");
  json_t *vec = NULL;
  if (!strcmp(api, "ollama")) {
    vec = json_array_get(json_object_get(doc, "embeddings"), 0);
    if (!vec) vec = json_object_get(doc, "embedding"); /* the older /api/embeddings shape */
  } else {
    vec = json_object_get(json_array_get(json_object_get(doc, "data"), 0), "embedding");
  }
  size_t n = json_array_size(vec);
  if (!json_is_array(vec) || n == 0 || n > SYN_EMBED_MAX_DIM) {
    json_decref(doc);
    return fail(err, err_len, "embedding service reply has no embedding");
  }
  float *v = malloc(n * sizeof *v);
  if (!v) {
    json_decref(doc);
    return fail(err, err_len, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(vec, i);
    v[i] = (float)json_number_value(x);
    if (!json_is_number(x) || !isfinite(v[i])) {
      free(v);
      json_decref(doc);
      return fail(err, err_len, "embedding service reply has a non-numeric value");
    }
  }
  json_decref(doc);
  *out = v;
  *dim = (uint32_t)n;
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int64_t deadline) {
  int64_t left = deadline - now_ms();
  if (left <= 0) return -1;
  struct pollfd p = {.fd = fd, .events = events};
  int rc = poll(&p, 1, (int)left);
  return rc == 1 ? 0 : -1;
}

static int connect_to(const syn_http_url *u, int64_t deadline) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  if (getaddrinfo(u->host, u->port, &hints, &res)) return -1;
  int fd = -1;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (rc && (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) ||
               getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  return fd;
}

static int send_all(int fd, const char *data, size_t len, int64_t deadline) {
  while (len) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (wait_fd(fd, POLLOUT, deadline)) return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

typedef struct response {
  syn_buf body;
  bool complete;
  bool too_big;
} response;

static int on_body(llhttp_t *p, const char *at, size_t len) {
  response *r = p->data;
  if (r->body.len + len > SYN_EMBED_MAX_RESPONSE) {
    r->too_big = true;
    return HPE_USER;
  }
  return syn_buf_append(&r->body, at, len) ? HPE_USER : 0;
}

static int on_complete(llhttp_t *p) {
  ((response *)p->data)->complete = true;
  return HPE_PAUSED;
}

/* Reads and parses the response until it is complete, the peer closes, or the deadline. */
static int receive(int fd, response *r, int *status, int64_t deadline) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_body = on_body;
  settings.on_message_complete = on_complete;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &settings);
  parser.data = r;
  char buf[16384];
  while (!r->complete) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (wait_fd(fd, POLLIN, deadline)) return -1;
      continue;
    }
    if (n <= 0) {
      if (llhttp_finish(&parser) != HPE_OK && !r->complete) return -1;
      break;
    }
    llhttp_errno_t e = llhttp_execute(&parser, buf, (size_t)n);
    if (e != HPE_OK && e != HPE_PAUSED) return -1;
  }
  *status = parser.status_code;
  return r->complete ? 0 : -1;
}

static int exchange(const syn_http_url *u, const char *body, response *r, int *status,
                    int64_t deadline, char *err, size_t err_len) {
  int fd = connect_to(u, deadline);
  if (fd < 0) return fail(err, err_len, "embedding service unreachable");
  syn_buf req = SYN_BUF_INIT;
  int rc = syn_buf_printf(&req,
                          "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          u->path, u->host, u->port, strlen(body));
  rc |= syn_buf_append_str(&req, body);
  if (rc || send_all(fd, (const char *)req.data, req.len, deadline)) {
    syn_buf_free(&req);
    close(fd);
    return fail(err, err_len, "embedding service: send failed");
  }
  syn_buf_free(&req);
  rc = receive(fd, r, status, deadline);
  close(fd);
  if (rc) return fail(err, err_len, r->too_big ? "embedding service reply too large"
                                               : "embedding service did not answer in time");
  return 0;
}

int syn_embed_text(const syn_embedder_config *cfg, const char *text, float **out, uint32_t *dim,
                   char *err, size_t err_len) {
  syn_http_url u;
  if (!cfg->url || syn_embed_parse_url(cfg->url, &u))
    return fail(err, err_len, "embedding.url must look like http://host:port/path");
  char *body = syn_embed_request_body(cfg, text);
  if (!body) return fail(err, err_len, "embedding.api must be ollama or openai");
  int64_t deadline = now_ms() + cfg->timeout_ms;
  response r = {.body = SYN_BUF_INIT};
  int status = 0;
  int rc = exchange(&u, body, &r, &status, deadline, err, err_len);
  free(body);
  if (rc == 0 && status != 200) {
    snprintf(err, err_len, "embedding service answered HTTP %d", status);
    rc = -1;
  }
  if (rc == 0)
    rc = syn_embed_parse_response(cfg->api, (const char *)r.body.data, r.body.len, out, dim, err,
                                  err_len);
  syn_buf_free(&r.body);
  return rc;
}
