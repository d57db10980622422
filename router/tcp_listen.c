/* Router TCP listeners (router/tcp_listen.h). */
#include "router/tcp_listen.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"

static int bind_host(uv_tcp_t *listener, const char *host, uint16_t port) {
  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (rc) rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
  if (rc) return UV_EINVAL;
  return uv_tcp_bind(listener, (struct sockaddr *)&addr, 0); /* IPv6: dual-stack */
}

int syn_tcp_listen(uv_loop_t *loop, uv_tcp_t *listener, const char *host, uint16_t port,
                   uv_connection_cb on_connection, const char *what, char *err, size_t err_len) {
  uv_tcp_init(loop, listener);
  int rc = bind_host(listener, host, port);
  if (rc == UV_EINVAL) {
    snprintf(err, err_len, "--host: \"%s\" is not an IPv4 or IPv6 address", host);
    return -1;
  }
  const char *fallback = syn_host_ipv4_fallback(host);
  if (rc == UV_EAFNOSUPPORT && fallback) {
    syn_warn("%s: no IPv6 here: listening on %s (IPv4 only)", what, fallback);
    rc = bind_host(listener, fallback, port);
  }
  if (rc == 0) rc = uv_listen((uv_stream_t *)listener, 1024, on_connection);
  if (rc) {
    snprintf(err, err_len, "%s %s:%u: %s", what, host, (unsigned)port, uv_strerror(rc));
    return -1;
  }
  return 0;
}

size_t syn_tcp_peer_ip(const uv_tcp_t *tcp, uint8_t ip[16]) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len)) return 0;
  if (ss.ss_family == AF_INET) {
    memcpy(ip, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    return 4;
  }
  const uint8_t *a6 = (const uint8_t *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!memcmp(a6, mapped, 12)) {
    memcpy(ip, a6 + 12, 4);
    return 4;
  }
  memcpy(ip, a6, 16);
  return 16;
}

static int parse_ip(const char *text, size_t len, uint8_t out[16], size_t *out_len) {
  char tmp[64];
  while (len && (*text == ' ' || *text == '\t')) text++, len--;
  while (len && (text[len - 1] == ' ' || text[len - 1] == '\t')) len--;
  if (len == 0 || len >= sizeof tmp) return -1;
  memcpy(tmp, text, len);
  tmp[len] = 0;
  if (inet_pton(AF_INET, tmp, out) == 1) {
    *out_len = 4;
    return 0;
  }
  if (inet_pton(AF_INET6, tmp, out) == 1) {
    *out_len = 16;
    return 0;
  }
  return -1;
}

bool syn_from_trusted_proxy(const struct syn_config *cfg, const uint8_t *ip, size_t ip_len) {
  for (size_t i = 0; i < cfg->trusted_proxy_count; i++)
    if (syn_cidr_contains(&cfg->trusted_proxies[i], ip, ip_len)) return true;
  return false;
}

size_t syn_client_ip(const struct syn_config *cfg, const uint8_t *peer_ip, size_t peer_len,
                     const char *xff, uint8_t out[16]) {
  memcpy(out, peer_ip, peer_len);
  if (!xff || !*xff || !syn_from_trusted_proxy(cfg, peer_ip, peer_len)) return peer_len;
  const char *last = strrchr(xff, ',');
  const char *start = last ? last + 1 : xff;
  uint8_t ip[16];
  size_t ip_len;
  if (parse_ip(start, strlen(start), ip, &ip_len)) return peer_len;
  memcpy(out, ip, ip_len);
  return ip_len;
}
