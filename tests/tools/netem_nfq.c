/* netem_nfq: delay and loss on a network namespace's outgoing packets, for tests, on
 * kernels built without the netem queueing discipline (sch_netem). An nftables rule in
 * the namespace sends the packets to be slowed to an NFQUEUE; this program, running in
 * that namespace, holds each one `--delay-ms` before letting it go and drops
 * `--loss-pct` percent of them at random (seeded, so a run can be replayed). Order is
 * kept (one FIFO), as netem keeps it without jitter.
 *
 *   netem_nfq --queue 0 --delay-ms 20 --loss-pct 5 --seed 1 --duration-s 600
 *
 * It stops by itself after --duration-s (tests are bounded), or on SIGTERM/SIGINT. On
 * exit it lets everything still held go. The rule should say `queue ... bypass`, so
 * that packets flow unimpeded when no program listens. */
/* netinet/in.h before the kernel headers, so glibc's definitions win. */
// clang-format off
#include <netinet/in.h>
#include <sys/socket.h>
// clang-format on

#include <errno.h>
#include <getopt.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HELD_MAX 65536

typedef struct held {
  uint32_t id;
  uint64_t due_us;
} held;

typedef struct shaper {
  struct nfq_q_handle *qh;
  uint64_t delay_us;
  uint32_t loss_ppm; /* parts per million */
  uint64_t rng;
  held *ring;
  size_t head, count;
  uint64_t passed, dropped, overflow;
} shaper;

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t next_random(shaper *s) { /* xorshift64* */
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * 2685821657736338717ULL;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                     void *data) {
  (void)msg;
  shaper *s = data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  uint32_t id = ntohl(ph->packet_id);
  if (s->loss_ppm && next_random(s) % 1000000u < s->loss_ppm) {
    s->dropped++;
    return nfq_set_verdict(qh, id, NF_DROP, 0, NULL);
  }
  if (s->count == HELD_MAX) { /* never hold more than we can track: let it go now */
    s->overflow++;
    return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
  }
  s->ring[(s->head + s->count) % HELD_MAX] = (held){id, now_us() + s->delay_us};
  s->count++;
  return 0;
}

/* Releases what is due; returns the microseconds until the next one is (or -1). */
static int64_t release_due(shaper *s, bool all) {
  uint64_t now = now_us();
  while (s->count) {
    held *h = &s->ring[s->head];
    if (!all && h->due_us > now) return (int64_t)(h->due_us - now);
    nfq_set_verdict(s->qh, h->id, NF_ACCEPT, 0, NULL);
    s->passed++;
    s->head = (s->head + 1) % HELD_MAX;
    s->count--;
  }
  return -1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: netem_nfq --queue N --delay-ms D [--loss-pct P] [--seed S] "
          "--duration-s T\n");
  exit(2);
}

int main(int argc, char **argv) {
  unsigned queue = 0;
  double delay_ms = 0, loss_pct = 0, duration_s = 0;
  unsigned long long seed = 1;
  static const struct option opts[] = {
      {"queue", required_argument, NULL, 'q'},      {"delay-ms", required_argument, NULL, 'd'},
      {"loss-pct", required_argument, NULL, 'l'},   {"seed", required_argument, NULL, 's'},
      {"duration-s", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'q': queue = (unsigned)strtoul(optarg, NULL, 10); break;
    case 'd': delay_ms = strtod(optarg, NULL); break;
    case 'l': loss_pct = strtod(optarg, NULL); break;
    case 's': seed = strtoull(optarg, NULL, 10); break;
    case 't': duration_s = strtod(optarg, NULL); break;
    default: usage();
    }
  }
  if (duration_s <= 0 || delay_ms < 0 || loss_pct < 0 || loss_pct > 100) usage();
  shaper s = {.delay_us = (uint64_t)(delay_ms * 1000),
              .loss_ppm = (uint32_t)(loss_pct * 10000),
              .rng = seed ? seed : 1,
              .ring = calloc(HELD_MAX, sizeof(held))};
  struct nfq_handle *h = nfq_open();
  if (!s.ring || !h) {
    fprintf(stderr, "netem_nfq: cannot open nfqueue: %s\n", strerror(errno));
    return 1;
  }
  s.qh = nfq_create_queue(h, (uint16_t)queue, on_packet, &s);
  if (!s.qh || nfq_set_mode(s.qh, NFQNL_COPY_META, 0) < 0) {
    fprintf(stderr, "netem_nfq: cannot bind queue %u: %s\n", queue, strerror(errno));
    return 1;
  }
  nfq_set_queue_maxlen(s.qh, 16384);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int fd = nfq_fd(h);
  uint64_t end = now_us() + (uint64_t)(duration_s * 1e6);
  char buf[65536] __attribute__((aligned));
  printf("ready queue=%u delay_ms=%g loss_pct=%g\n", queue, delay_ms, loss_pct);
  fflush(stdout);
  while (!stop && now_us() < end) {
    int64_t wait_us = release_due(&s, false);
    int timeout = wait_us < 0 ? 100 : (int)((wait_us + 999) / 1000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout) > 0) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) nfq_handle_packet(h, buf, (int)n);
    }
  }
  release_due(&s, true);
  /* The caller reads this line to know the network really was lossy. */
  printf("done passed %llu dropped %llu overflow %llu\n", (unsigned long long)s.passed,
         (unsigned long long)s.dropped, (unsigned long long)s.overflow);
  fflush(stdout);
  nfq_destroy_queue(s.qh);
  nfq_close(h);
  free(s.ring);
  return 0;
}
