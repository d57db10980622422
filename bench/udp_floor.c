/*
 * udp_floor: the floor of this machine's UDP path for a BEP 15 tracker.
 *
 * A stateless responder: it answers each packet with a fixed reply through
 * recvmmsg/sendmmsg, batches of up to 64, on one thread, and keeps nothing:
 *   connect  -> a connection id (always the same one),
 *   announce -> interval 1800, 10 leechers, 20 seeders and 30 fixed IPv4 peers,
 *   scrape   -> zeros for every hash asked,
 *   anything else -> a BEP 15 error.
 * What a real tracker costs per announce above this responder's cost is its own work:
 * parsing, the swarm, the reply; the kernel's receive and send are the same for both.
 * bench/run_announce_bench.sh runs it beside the trackers and states their CPU per
 * announce as a multiple of this one's.
 *
 * Standalone (no project headers):
 *   gcc -std=gnu11 -O2 -Wall -Wextra -Werror bench/udp_floor.c -o /tmp/udp_floor
 *   /tmp/udp_floor --host 127.0.0.1 --port 6969 [--seconds 60]
 * Prints "ready udp=PORT" once bound. Binds loopback only; stops after --seconds
 * (default 600) or on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PACKET_MAX 2048
#define PEERS 30
#define SCRAPE_MAX 74 /* BEP 15: at most 74 hashes per scrape */

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void put32(uint8_t *p, uint32_t v) {
  v = htonl(v);
  memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return ntohl(v);
}

static uint8_t announce_reply[20 + 6 * PEERS];

static void build_announce_reply(void) {
  put32(announce_reply, 1);
  put32(announce_reply + 8, 1800);
  put32(announce_reply + 12, 10);
  put32(announce_reply + 16, 20);
  for (int i = 0; i < PEERS; i++) {
    uint8_t *p = announce_reply + 20 + 6 * i;
    p[0] = 10, p[1] = 0, p[2] = (uint8_t)(i >> 8), p[3] = (uint8_t)(i + 1);
    p[4] = 0x1a, p[5] = 0xe1; /* port 6881 */
  }
}

/* Writes the reply to req[0, len) into out; returns its length. */
static size_t answer(const uint8_t *req, size_t len, uint8_t *out) {
  if (len < 16) {
    put32(out, 3);
    memset(out + 4, 0, 4);
    memcpy(out + 8, "short", 5);
    return 13;
  }
  uint32_t action = get32(req + 8);
  const uint8_t *tid = req + 12;
  if (action == 0) {
    put32(out, 0);
    memcpy(out + 4, tid, 4);
    memcpy(out + 8, "floorcid", 8);
    return 16;
  }
  if (action == 1 && len >= 98) {
    memcpy(out, announce_reply, sizeof announce_reply);
    memcpy(out + 4, tid, 4);
    return sizeof announce_reply;
  }
  if (action == 2) {
    size_t hashes = (len - 16) / 20;
    if (hashes > SCRAPE_MAX) hashes = SCRAPE_MAX;
    put32(out, 2);
    memcpy(out + 4, tid, 4);
    memset(out + 8, 0, 12 * hashes);
    return 8 + 12 * hashes;
  }
  put32(out, 3);
  memcpy(out + 4, tid, 4);
  memcpy(out + 8, "bad action", 10);
  return 18;
}

struct batch {
  uint8_t in[BATCH][PACKET_MAX];
  uint8_t out[BATCH][8 + 12 * SCRAPE_MAX + sizeof announce_reply];
  struct sockaddr_storage from[BATCH];
  struct iovec in_iov[BATCH], out_iov[BATCH];
  struct mmsghdr in_msg[BATCH], out_msg[BATCH];
};

static void batch_init(struct batch *b) {
  for (int i = 0; i < BATCH; i++) {
    b->in_iov[i] = (struct iovec){b->in[i], PACKET_MAX};
    b->in_msg[i].msg_hdr = (struct msghdr){.msg_iov = &b->in_iov[i], .msg_iovlen = 1};
    b->out_msg[i].msg_hdr = (struct msghdr){.msg_iov = &b->out_iov[i], .msg_iovlen = 1};
  }
}

/* One receive, one send: returns the packets answered, or -1 on an error to stop for. */
static int serve_batch(int fd, struct batch *b) {
  for (int i = 0; i < BATCH; i++) {
    b->in_msg[i].msg_hdr.msg_name = &b->from[i];
    b->in_msg[i].msg_hdr.msg_namelen = sizeof b->from[i];
  }
  int n = recvmmsg(fd, b->in_msg, BATCH, MSG_DONTWAIT, NULL);
  if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  for (int i = 0; i < n; i++) {
    size_t len = answer(b->in[i], b->in_msg[i].msg_len, b->out[i]);
    b->out_iov[i] = (struct iovec){b->out[i], len};
    b->out_msg[i].msg_hdr.msg_name = &b->from[i];
    b->out_msg[i].msg_hdr.msg_namelen = b->in_msg[i].msg_hdr.msg_namelen;
  }
  for (int sent = 0; sent < n;) {
    int m = sendmmsg(fd, b->out_msg + sent, (unsigned)(n - sent), 0);
    if (m < 0) {
      if (errno == EINTR) continue;
      break; /* a full socket buffer drops the rest, as a tracker under load would */
    }
    sent += m;
  }
  return n;
}

static int bind_loopback(const char *host, int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "udp_floor: --host must be a 127.x.y.z address, got '%s'\n", host);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int buf = 4 << 20;
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa)) {
    perror("udp_floor: bind");
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 6969;
  double seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else {
      fprintf(stderr, "usage: udp_floor [--host 127.0.0.1] [--port N] [--seconds S]\n");
      return 2;
    }
  }
  build_announce_reply();
  int fd = bind_loopback(host, port);
  if (fd < 0) return 1;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  static struct batch b;
  batch_init(&b);
  printf("ready udp=%d\n", port);
  fflush(stdout);
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned long long answered = 0;
  while (!stop_requested) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 200) < 0 && errno != EINTR) break;
    int n = serve_batch(fd, &b);
    if (n < 0) break;
    answered += (unsigned)n;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
      break;
  }
  fprintf(stderr, "udp_floor: %llu packets answered\n", answered);
  close(fd);
  return 0;
}
