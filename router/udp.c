/* UDP endpoint. Design notes:
 *
 * - uv_poll on our own socket rather than uv_udp: recvmmsg and sendmmsg move many
 *   datagrams per system call, and replies are built straight into a fixed send ring.
 * - The send ring holds SEND_SLOTS packets of up to SEND_SLOT_SIZE bytes; it is flushed
 *   before the loop sleeps (a prepare handle: after the turn's check handles, where
 *   inline replies are delivered) and whenever it fills. A full kernel buffer drops the
 *   rest of the batch (UDP semantics; the client retries) and counts it.
 * - Connection IDs are stateless (common/connid.h), so any router accepts any router's. */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include "router/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/connid.h"
#include "common/log.h"

#define RECV_BATCH 32
#define RECV_SIZE 2048
#define SEND_SLOTS 256
#define SEND_SLOT_SIZE 4096
#define UDP_NO_FAMILY (-2) /* the kernel lacks the address family */

typedef struct send_slot {
  struct sockaddr_storage addr;
  socklen_t addr_len;
  size_t len;
  uint8_t data[SEND_SLOT_SIZE];
} send_slot;

struct syn_udp {
  uv_loop_t *loop;
  uv_poll_t poll;
  uv_prepare_t before_sleep;
  int open_handles;
  int fd;
  const syn_config *cfg;
  syn_connid_key key;
  syn_udp_request_fn on_request;
  void *ctx;
  syn_udp_stats stats;
  size_t send_count;
  send_slot send[SEND_SLOTS];
  struct mmsghdr send_msgs[SEND_SLOTS];
  struct iovec send_iov[SEND_SLOTS];
  uint8_t recv_buf[RECV_BATCH][RECV_SIZE];
  struct sockaddr_storage recv_addr[RECV_BATCH];
  struct mmsghdr recv_msgs[RECV_BATCH];
  struct iovec recv_iov[RECV_BATCH];
};

static uint32_t wall_seconds(void) { return (uint32_t)time(NULL); }

static void flush_sends(syn_udp *udp) {
  size_t done = 0;
  while (done < udp->send_count) {
    for (size_t i = done; i < udp->send_count; i++) {
      send_slot *s = &udp->send[i];
      udp->send_iov[i] = (struct iovec){s->data, s->len};
      udp->send_msgs[i].msg_hdr = (struct msghdr){.msg_name = &s->addr,
                                                  .msg_namelen = s->addr_len,
                                                  .msg_iov = &udp->send_iov[i],
                                                  .msg_iovlen = 1};
    }
    int n = sendmmsg(udp->fd, udp->send_msgs + done, (unsigned)(udp->send_count - done), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      /* EAGAIN or a per-destination error on the first packet: skip that one. */
      udp->stats.dropped++;
      done++;
      continue;
    }
    done += (size_t)n;
  }
  udp->send_count = 0;
}

static send_slot *send_slot_take(syn_udp *udp) {
  if (udp->send_count == SEND_SLOTS) flush_sends(udp);
  return &udp->send[udp->send_count++];
}

static void peer_to_slot(send_slot *s, const syn_udp_peer *to) {
  memcpy(&s->addr, &to->addr, to->addr_len);
  s->addr_len = to->addr_len;
}

void syn_udp_send(syn_udp *udp, const syn_udp_peer *to, const uint8_t *pkt, size_t len) {
  if (len > SEND_SLOT_SIZE) {
    udp->stats.dropped++;
    return;
  }
  send_slot *s = send_slot_take(udp);
  peer_to_slot(s, to);
  memcpy(s->data, pkt, len);
  s->len = len;
}

void syn_udp_send_error(syn_udp *udp, const syn_udp_peer *to, uint32_t transaction_id,
                        const char *message) {
  send_slot *s = send_slot_take(udp);
  peer_to_slot(s, to);
  s->len = syn_udp_build_error(s->data, SEND_SLOT_SIZE, transaction_id, message);
  udp->stats.errors_sent++;
}

static void fill_peer(syn_udp_peer *p, const struct sockaddr_storage *ss, socklen_t len) {
  memcpy(&p->addr, ss, len);
  p->addr_len = len;
  if (ss->ss_family == AF_INET) {
    memcpy(p->ip, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    p->ip_len = 4;
    return;
  }
  const uint8_t *a6 = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a6)) {
    memcpy(p->ip, a6 + 12, 4);
    p->ip_len = 4;
  } else {
    memcpy(p->ip, a6, 16);
    p->ip_len = 16;
  }
}

static void handle_connect(syn_udp *udp, const syn_udp_request *req, const syn_udp_peer *from) {
  udp->stats.connects++;
  send_slot *s = send_slot_take(udp);
  peer_to_slot(s, from);
  uint64_t id = syn_connid_make(&udp->key, wall_seconds(), from->ip, from->ip_len);
  s->len = syn_udp_build_connect(s->data, SEND_SLOT_SIZE, req->transaction_id, id);
}

static void handle_packet(syn_udp *udp, const uint8_t *pkt, size_t len, const syn_udp_peer *from) {
  syn_udp_request req;
  int rc = syn_udp_parse(pkt, len, &req);
  udp->stats.received++;
  if (rc == SYN_UDP_ERR_ACTION) {
    syn_udp_send_error(udp, from, req.transaction_id, "unknown action");
    return;
  }
  if (rc == SYN_UDP_ERR_SCRAPE_COUNT) {
    syn_udp_send_error(udp, from, req.transaction_id, "scrape needs 1 to 74 info_hashes");
    return;
  }
  if (rc) {
    udp->stats.dropped++;
    return;
  }
  if (req.action == SYN_UDP_CONNECT) {
    handle_connect(udp, &req, from);
    return;
  }
  if (!syn_connid_check(&udp->key, req.connection_id, wall_seconds(), from->ip, from->ip_len)) {
    udp->stats.bad_connection_id++;
    syn_udp_send_error(udp, from, req.transaction_id, "invalid or expired connection id");
    return;
  }
  if (req.action == SYN_UDP_ANNOUNCE) udp->stats.announces++;
  else udp->stats.scrapes++;
  udp->on_request(udp->ctx, &req, from);
}

static int receive_batch(syn_udp *udp) {
  for (int i = 0; i < RECV_BATCH; i++) {
    udp->recv_iov[i] = (struct iovec){udp->recv_buf[i], RECV_SIZE};
    udp->recv_msgs[i].msg_hdr = (struct msghdr){.msg_name = &udp->recv_addr[i],
                                                .msg_namelen = sizeof udp->recv_addr[i],
                                                .msg_iov = &udp->recv_iov[i],
                                                .msg_iovlen = 1};
  }
  int n = recvmmsg(udp->fd, udp->recv_msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
  for (int i = 0; i < n; i++) {
    if (udp->recv_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      udp->stats.dropped++;
      continue;
    }
    syn_udp_peer from;
    fill_peer(&from, &udp->recv_addr[i], udp->recv_msgs[i].msg_hdr.msg_namelen);
    handle_packet(udp, udp->recv_buf[i], udp->recv_msgs[i].msg_len, &from);
  }
  return n;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  syn_udp *udp = handle->data;
  if (status < 0) return;
  for (int budget = SYN_UDP_READ_BUDGET; budget > 0; budget -= RECV_BATCH) {
    if (receive_batch(udp) < RECV_BATCH) break;
  }
}

/* Before the loop waits for I/O: by then the turn has queued every reply it will, those
 * answered at the turn's end too (the upstream serves inline batches in a check handle). */
static void on_before_sleep(uv_prepare_t *handle) {
  syn_udp *udp = handle->data;
  if (udp->send_count) flush_sends(udp);
}

static int open_socket_on(syn_udp *udp, const char *host, char *err, size_t err_len) {
  const syn_config *cfg = udp->cfg;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(cfg->udp_port);
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(cfg->udp_port);
    len = sizeof *a6;
  } else {
    snprintf(err, err_len, "--host: \"%s\" is not an IPv4 or IPv6 address", host);
    return -1;
  }
  udp->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (udp->fd < 0 && errno == EAFNOSUPPORT) return UDP_NO_FAMILY;
  if (udp->fd < 0) {
    snprintf(err, err_len, "UDP socket: %s", strerror(errno));
    return -1;
  }
  int off = 0, buf = 8 << 20;
  if (ss.ss_family == AF_INET6) setsockopt(udp->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  setsockopt(udp->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(udp->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (bind(udp->fd, (struct sockaddr *)&ss, len)) {
    snprintf(err, err_len, "UDP port %s:%u: %s", host, (unsigned)cfg->udp_port,
             strerror(errno));
    close(udp->fd);
    udp->fd = -1;
    return -1;
  }
  return 0;
}

/* The configured host; the dual-stack default falls back to IPv4 where there is no IPv6. */
static int open_socket(syn_udp *udp, char *err, size_t err_len) {
  const char *host = udp->cfg->host, *fallback = syn_host_ipv4_fallback(host);
  int rc = open_socket_on(udp, host, err, err_len);
  if (rc != UDP_NO_FAMILY) return rc;
  if (fallback) {
    syn_warn("udp: no IPv6 here: listening on %s (IPv4 only)", fallback);
    rc = open_socket_on(udp, fallback, err, err_len);
  }
  if (rc == UDP_NO_FAMILY) snprintf(err, err_len, "UDP socket on %s: %s", host, strerror(errno));
  return rc ? -1 : 0;
}

syn_udp *syn_udp_start(uv_loop_t *loop, const syn_config *cfg, syn_udp_request_fn fn, void *ctx,
                       char *err, size_t err_len) {
  syn_udp *udp = calloc(1, sizeof *udp);
  if (!udp) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  udp->loop = loop;
  udp->cfg = cfg;
  udp->on_request = fn;
  udp->ctx = ctx;
  if (open_socket(udp, err, err_len)) {
    free(udp);
    return NULL;
  }
  /* Configured, or kept in the data directory: IDs survive a restart (common/connid.h). */
  syn_connid_key_setup(&udp->key, cfg->udp_secret, cfg->data_dir);
  uv_poll_init(loop, &udp->poll, udp->fd);
  uv_prepare_init(loop, &udp->before_sleep);
  udp->poll.data = udp->before_sleep.data = udp;
  udp->open_handles = 2;
  uv_poll_start(&udp->poll, UV_READABLE, on_readable);
  uv_prepare_start(&udp->before_sleep, on_before_sleep);
  return udp;
}

void syn_udp_stats_get(const syn_udp *udp, syn_udp_stats *out) { *out = udp->stats; }

static void on_closed(uv_handle_t *h) {
  syn_udp *udp = h->data;
  if (--udp->open_handles) return;
  close(udp->fd);
  free(udp);
}

void syn_udp_close(syn_udp *udp) {
  if (!udp) return;
  if (udp->send_count) flush_sends(udp);
  uv_close((uv_handle_t *)&udp->poll, on_closed);
  uv_close((uv_handle_t *)&udp->before_sleep, on_closed);
}
