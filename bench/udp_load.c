/*
 * udp_load: a BEP 15 (UDP tracker protocol) announce/scrape load generator.
 *
 * Modelled on aquatic's UDP load tester: many info_hashes with skewed
 * (truncated Pareto) popularity, numwant 30, announce:scrape about 100:1,
 * 75% seeders, connection ids obtained once and reused, several sockets with
 * a window of requests in flight on each (replies matched by transaction id).
 *
 * Standalone on purpose (no project headers):
 *   gcc -std=gnu11 -O2 -Wall -Wextra -Werror bench/udp_load.c -o /tmp/udp_load -lm
 *
 * Only loopback targets (127.0.0.0/8, ::1) are accepted.
 * Run with --help for the flags.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_MAGIC 0x41727101980ULL
#define ACT_CONNECT 0
#define ACT_ANNOUNCE 1
#define ACT_SCRAPE 2
#define ACT_ERROR 3

#define MAX_WINDOW 65535u /* slot index 0xFFFF is reserved for connects */
#define CONNECT_SLOT 0xFFFFu
#define BATCH 64
#define RECV_BUF 2048
#define MAX_SCRAPE_HASHES 74 /* BEP 15 limit: 74 hashes per scrape */

/* ------------------------------------------------------------------ */
/* configuration                                                       */

struct config {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;
    char target[80];
    bool have_target;
    double duration_s;
    uint64_t max_requests;
    uint32_t n_hashes;
    uint32_t n_peers;
    uint64_t seed;
    int sockets;
    int window;
    int threads;
    int numwant;
    int scrape_every; /* one scrape per this many requests (100 => 100:1) */
    int scrape_max;   /* hashes per scrape: 1..scrape_max */
    double seeder_ratio;
    double pareto_shape;
    double timeout_s;
    double reconnect_s;
    const char *dump_path;
    bool cover; /* announce every (hash, peer) pair once, in order, instead of at random */
};

static struct config cfg = {
    .duration_s = 10.0,
    .max_requests = 50000000ULL,
    .n_hashes = 100000,
    .n_peers = 50000,
    .seed = 1,
    .sockets = 4,
    .window = 16,
    .threads = 1,
    .numwant = 30,
    .scrape_every = 101,
    .scrape_max = 10,
    .seeder_ratio = 0.75,
    .pareto_shape = 1.0,
    .timeout_s = 1.0,
    .reconnect_s = 60.0,
};

static uint8_t *g_hashes; /* n_hashes * 20 bytes */
static volatile sig_atomic_t g_stop;
static uint64_t g_sent_total; /* atomic: requests sent by all workers (hard cap) */
static uint64_t g_cover_next; /* atomic: the next (hash, peer) pair in --cover mode */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t s[4];
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng_t *r) /* xoshiro256** */
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in (0, 1] */
static inline double rng_unit(rng_t *r) { return ((rng_next(r) >> 11) + 1) * 0x1.0p-53; }

static inline uint32_t rng_below(rng_t *r, uint32_t n) { return (uint32_t)(((rng_next(r) >> 32) * n) >> 32); }

/* Truncated Pareto over [0, n): x ~ Pareto(scale 1, shape), index = (x-1)/100 * n,
 * resampled when x >= 101 (as aquatic's load tester, without its pile-up on
 * the last index). With shape 1, half the requests go to the top 1% of hashes. */
static inline uint32_t pick_hash(rng_t *r)
{
    for (;;) {
        double x = pow(rng_unit(r), -1.0 / cfg.pareto_shape);
        double f = (x - 1.0) / 100.0;
        if (f < 1.0) {
            uint32_t i = (uint32_t)(f * cfg.n_hashes);
            if (i < cfg.n_hashes)
                return i;
        }
    }
}

static inline void put_u16(uint8_t *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static inline void put_u32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline void put_u64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static inline uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

static void gen_hashes(void)
{
    g_hashes = malloc((size_t)cfg.n_hashes * 20);
    if (!g_hashes) {
        perror("malloc");
        exit(1);
    }
    for (uint32_t i = 0; i < cfg.n_hashes; i++) {
        uint64_t x = cfg.seed * 0x2545F4914F6CDD1DULL ^ ((uint64_t)i << 1 | 1) * 0x9E3779B97F4A7C15ULL;
        uint8_t *h = g_hashes + (size_t)i * 20;
        for (int k = 0; k < 20; k += 8) {
            uint64_t v = splitmix64(&x);
            memcpy(h + k, &v, (20 - k) < 8 ? (size_t)(20 - k) : 8);
        }
    }
}

static int dump_hashes(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        fprintf(stderr, "udp_load: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    static const char hx[] = "0123456789abcdef";
    char line[42];
    line[40] = '\n';
    for (uint32_t i = 0; i < cfg.n_hashes; i++) {
        const uint8_t *h = g_hashes + (size_t)i * 20;
        for (int k = 0; k < 20; k++) {
            line[2 * k] = hx[h[k] >> 4];
            line[2 * k + 1] = hx[h[k] & 15];
        }
        fwrite(line, 1, 41, f);
    }
    if (f != stdout) {
        if (fclose(f) != 0) {
            fprintf(stderr, "udp_load: writing %s: %s\n", path, strerror(errno));
            return -1;
        }
    } else {
        fflush(f);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* log-linear latency histogram (nanoseconds, ~3% buckets)             */

#define H_SUB_BITS 5
#define H_SUB (1u << H_SUB_BITS)
#define H_NBUCKETS ((64 - H_SUB_BITS + 1) * H_SUB)

struct hist {
    uint64_t b[H_NBUCKETS];
    uint64_t n;
    uint64_t max;
    double sum;
};

static inline unsigned h_index(uint64_t v)
{
    if (v < H_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= H_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - H_SUB_BITS)) & (H_SUB - 1);
    return (e - H_SUB_BITS + 1) * H_SUB + sub;
}

static double h_mid(unsigned idx)
{
    if (idx < H_SUB)
        return idx;
    unsigned e = idx / H_SUB + H_SUB_BITS - 1;
    unsigned sub = idx % H_SUB;
    double lo = ldexp((double)(H_SUB + sub), (int)(e - H_SUB_BITS));
    double w = ldexp(1.0, (int)(e - H_SUB_BITS));
    return lo + w / 2;
}

static inline void h_add(struct hist *h, uint64_t v)
{
    h->b[h_index(v)]++;
    h->n++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

static void h_merge(struct hist *d, const struct hist *s)
{
    for (unsigned i = 0; i < H_NBUCKETS; i++)
        d->b[i] += s->b[i];
    d->n += s->n;
    d->sum += s->sum;
    if (s->max > d->max)
        d->max = s->max;
}

/* percentile in microseconds */
static double h_pct_us(const struct hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t target = (uint64_t)ceil(p * (double)h->n);
    if (target < 1)
        target = 1;
    uint64_t c = 0;
    for (unsigned i = 0; i < H_NBUCKETS; i++) {
        c += h->b[i];
        if (c >= target) {
            double v = h_mid(i);
            if (v > (double)h->max)
                v = (double)h->max;
            return v / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

/* ------------------------------------------------------------------ */
/* workers                                                             */

enum { K_FREE = 0, K_ANNOUNCE = 1, K_SCRAPE = 2 };
enum { C_NONE = 0, C_CONNECTING = 1, C_CONNECTED = 2 };

struct slot {
    uint64_t sent_ns;
    uint16_t gen;
    uint8_t kind;
    uint8_t nhash;
};

struct sock {
    int fd;
    int state;
    uint64_t conn_id;
    uint32_t connect_tid;
    uint64_t connect_sent_ns;
    uint64_t connected_at_ns;
    struct slot *slots;
    uint16_t *freelist;
    int nfree;
    int inflight;
};

struct stats {
    uint64_t sent_announce, sent_scrape, sent_connect;
    uint64_t resp_announce, resp_scrape, resp_connect;
    uint64_t errors, connect_errors, malformed, unmatched, short_announce;
    uint64_t lost, connect_lost, send_fail, reconnects;
    uint64_t peers_returned;
    uint64_t last_resp_ns;
    char first_error[128];
};

struct worker {
    int id;
    pthread_t th;
    rng_t rng;
    int nsocks;
    struct sock *socks;
    int epfd;
    uint64_t start_ns, deadline_ns;
    struct stats st;
    struct hist h_ann, h_scr;
    /* send batch buffers */
    uint8_t sbuf[BATCH][16 + 20 * MAX_SCRAPE_HASHES];
    struct iovec siov[BATCH];
    struct mmsghdr smsg[BATCH];
    uint16_t sslot[BATCH];
    /* receive batch buffers */
    uint8_t rbuf[BATCH][RECV_BUF];
    struct iovec riov[BATCH];
    struct mmsghdr rmsg[BATCH];
};

static void die(const char *what)
{
    fprintf(stderr, "udp_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void send_connect(struct worker *w, struct sock *s, uint64_t t)
{
    uint8_t pkt[16];
    s->connect_tid = ((uint32_t)(rng_next(&w->rng) >> 48) << 16) | CONNECT_SLOT;
    put_u64(pkt, PROTOCOL_MAGIC);
    put_u32(pkt + 8, ACT_CONNECT);
    put_u32(pkt + 12, s->connect_tid);
    s->state = C_CONNECTING;
    s->connect_sent_ns = t;
    if (send(s->fd, pkt, sizeof pkt, 0) < 0)
        w->st.send_fail++;
    else
        w->st.sent_connect++;
}

static void sock_init(struct worker *w, struct sock *s)
{
    s->fd = socket(cfg.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket");
    int sz = 4 << 20;
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (connect(s->fd, (struct sockaddr *)&cfg.addr, cfg.addrlen) < 0)
        die("connect");
    s->slots = calloc((size_t)cfg.window, sizeof *s->slots);
    s->freelist = calloc((size_t)cfg.window, sizeof *s->freelist);
    if (!s->slots || !s->freelist)
        die("calloc");
    for (int i = 0; i < cfg.window; i++)
        s->freelist[i] = (uint16_t)(cfg.window - 1 - i);
    s->nfree = cfg.window;
    s->state = C_NONE;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        die("epoll_ctl");
}

static inline void slot_free(struct sock *s, uint16_t idx)
{
    s->slots[idx].kind = K_FREE;
    s->freelist[s->nfree++] = idx;
    s->inflight--;
}

static void note_error(struct worker *w, const uint8_t *msg, size_t len)
{
    if (w->st.first_error[0])
        return;
    size_t n = len < sizeof w->st.first_error - 1 ? len : sizeof w->st.first_error - 1;
    for (size_t i = 0; i < n; i++)
        w->st.first_error[i] = (msg[i] >= 32 && msg[i] < 127) ? (char)msg[i] : '?';
    w->st.first_error[n] = 0;
    if (n == 0)
        strcpy(w->st.first_error, "(empty)");
}

static void handle_reply(struct worker *w, struct sock *s, const uint8_t *p, size_t len, uint64_t t)
{
    if (len < 8) {
        w->st.malformed++;
        return;
    }
    uint32_t action = get_u32(p);
    uint32_t tid = get_u32(p + 4);
    uint16_t idx = (uint16_t)(tid & 0xFFFF);

    if (idx == CONNECT_SLOT) {
        if (s->state != C_CONNECTING || tid != s->connect_tid) {
            w->st.unmatched++;
            return;
        }
        if (action == ACT_CONNECT && len == 16) {
            s->conn_id = get_u64(p + 8);
            s->state = C_CONNECTED;
            s->connected_at_ns = t;
            w->st.resp_connect++;
        } else if (action == ACT_ERROR) {
            w->st.connect_errors++;
            note_error(w, p + 8, len - 8);
            send_connect(w, s, t);
        } else {
            w->st.malformed++;
        }
        return;
    }

    if (idx >= cfg.window) {
        w->st.unmatched++;
        return;
    }
    struct slot *sl = &s->slots[idx];
    if (sl->kind == K_FREE || sl->gen != (uint16_t)(tid >> 16)) {
        w->st.unmatched++; /* late reply after a timeout, or an unknown tid */
        return;
    }
    uint64_t lat = t > sl->sent_ns ? t - sl->sent_ns : 0;
    if (action == ACT_ERROR) {
        w->st.errors++;
        note_error(w, p + 8, len - 8);
        slot_free(s, idx);
        /* maybe our connection id expired: get a fresh one */
        if (s->state == C_CONNECTED) {
            w->st.reconnects++;
            send_connect(w, s, t);
        }
        return;
    }
    if (sl->kind == K_ANNOUNCE) {
        size_t peer_sz = cfg.family == AF_INET6 ? 18 : 6;
        if (action != ACT_ANNOUNCE || len < 20 || (len - 20) % peer_sz != 0 ||
            (len - 20) / peer_sz > (size_t)cfg.numwant) {
            w->st.malformed++;
            if (action == ACT_ANNOUNCE && len == 8)
                w->st.short_announce++;
            slot_free(s, idx);
            return;
        }
        w->st.resp_announce++;
        w->st.peers_returned += (len - 20) / peer_sz;
        h_add(&w->h_ann, lat);
    } else {
        if (action != ACT_SCRAPE || len != 8 + 12 * (size_t)sl->nhash) {
            w->st.malformed++;
            slot_free(s, idx);
            return;
        }
        w->st.resp_scrape++;
        h_add(&w->h_scr, lat);
    }
    w->st.last_resp_ns = t;
    slot_free(s, idx);
}

static void recv_all(struct worker *w, struct sock *s)
{
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < BATCH; i++) {
            w->riov[i].iov_base = w->rbuf[i];
            w->riov[i].iov_len = RECV_BUF;
            memset(&w->rmsg[i].msg_hdr, 0, sizeof w->rmsg[i].msg_hdr);
            w->rmsg[i].msg_hdr.msg_iov = &w->riov[i];
            w->rmsg[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(s->fd, w->rmsg, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                /* ECONNREFUSED: nothing listens on the port (ICMP unreachable) */
                w->st.send_fail++;
            }
            return;
        }
        uint64_t t = now_ns();
        for (int i = 0; i < n; i++) {
            if (w->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) {
                w->st.malformed++;
                continue;
            }
            handle_reply(w, s, w->rbuf[i], w->rmsg[i].msg_len, t);
        }
        if (n < BATCH)
            return;
    }
}

static int build_request(struct worker *w, struct sock *s, int b, uint16_t idx)
{
    uint8_t *p = w->sbuf[b];
    struct slot *sl = &s->slots[idx];
    sl->gen++;
    uint32_t tid = ((uint32_t)sl->gen << 16) | idx;
    put_u64(p, s->conn_id);
    put_u32(p + 12, tid);
    bool scrape = cfg.scrape_every > 0 && rng_below(&w->rng, (uint32_t)cfg.scrape_every) == 0;
    if (scrape) {
        int n = 1 + (int)rng_below(&w->rng, (uint32_t)cfg.scrape_max);
        put_u32(p + 8, ACT_SCRAPE);
        for (int i = 0; i < n; i++)
            memcpy(p + 16 + 20 * i, g_hashes + (size_t)pick_hash(&w->rng) * 20, 20);
        sl->kind = K_SCRAPE;
        sl->nhash = (uint8_t)n;
        return 16 + 20 * n;
    }
    uint32_t peer, hash;
    if (cfg.cover) { /* pair k: hash k mod H, the (k div H)-th peer: swarms fill evenly */
        uint64_t k = __atomic_fetch_add(&g_cover_next, 1, __ATOMIC_RELAXED);
        hash = (uint32_t)(k % cfg.n_hashes);
        peer = (uint32_t)((k / cfg.n_hashes) % cfg.n_peers);
    } else {
        peer = rng_below(&w->rng, cfg.n_peers);
        hash = pick_hash(&w->rng);
    }
    uint64_t pid = (uint64_t)peer * 0x9E3779B97F4A7C15ULL ^ cfg.seed;
    put_u32(p + 8, ACT_ANNOUNCE);
    memcpy(p + 16, g_hashes + (size_t)hash * 20, 20);
    memcpy(p + 36, "-UL0001-", 8);
    uint64_t pid_bits = splitmix64(&pid);
    memcpy(p + 44, &pid_bits, 8);
    memcpy(p + 52, &peer, 4);
    bool seeder = rng_unit(&w->rng) <= cfg.seeder_ratio;
    uint64_t left = seeder ? 0 : 1 + (rng_next(&w->rng) >> 34);
    put_u64(p + 56, seeder ? (1ULL << 30) : (1ULL << 30) - left); /* downloaded */
    put_u64(p + 64, left);
    put_u64(p + 72, 0);                   /* uploaded */
    put_u32(p + 80, 0);                   /* event: none */
    put_u32(p + 84, 0);                   /* ip: default */
    put_u32(p + 88, (uint32_t)pid_bits);  /* key */
    put_u32(p + 92, (uint32_t)cfg.numwant);
    put_u16(p + 96, (uint16_t)(1024 + peer % 64000));
    sl->kind = K_ANNOUNCE;
    sl->nhash = 1;
    return 98;
}

static void fill(struct worker *w, struct sock *s)
{
    while (s->state == C_CONNECTED && s->nfree > 0 && !g_stop) {
        int want = s->nfree < BATCH ? s->nfree : BATCH;
        uint64_t before = __atomic_fetch_add(&g_sent_total, (uint64_t)want, __ATOMIC_RELAXED);
        if (before >= cfg.max_requests)
            return;
        if (before + (uint64_t)want > cfg.max_requests)
            want = (int)(cfg.max_requests - before);
        for (int b = 0; b < want; b++) {
            uint16_t idx = s->freelist[--s->nfree];
            s->inflight++;
            w->sslot[b] = idx;
            int len = build_request(w, s, b, idx);
            w->siov[b].iov_base = w->sbuf[b];
            w->siov[b].iov_len = (size_t)len;
            memset(&w->smsg[b].msg_hdr, 0, sizeof w->smsg[b].msg_hdr);
            w->smsg[b].msg_hdr.msg_iov = &w->siov[b];
            w->smsg[b].msg_hdr.msg_iovlen = 1;
        }
        uint64_t t = now_ns();
        int sent = sendmmsg(s->fd, w->smsg, (unsigned)want, MSG_DONTWAIT);
        if (sent < 0)
            sent = 0;
        for (int b = 0; b < want; b++) {
            struct slot *sl = &s->slots[w->sslot[b]];
            if (b < sent) {
                sl->sent_ns = t;
                if (sl->kind == K_ANNOUNCE)
                    w->st.sent_announce++;
                else
                    w->st.sent_scrape++;
            } else {
                slot_free(s, w->sslot[b]);
            }
        }
        if (sent < want) {
            __atomic_fetch_sub(&g_sent_total, (uint64_t)(want - sent), __ATOMIC_RELAXED);
            w->st.send_fail++;
            return; /* socket buffer full: wait for replies */
        }
    }
}

static void check_timeouts(struct worker *w, uint64_t t, bool sending)
{
    uint64_t to = (uint64_t)(cfg.timeout_s * 1e9);
    uint64_t reconn = (uint64_t)(cfg.reconnect_s * 1e9);
    for (int i = 0; i < w->nsocks; i++) {
        struct sock *s = &w->socks[i];
        if (s->inflight > 0) {
            for (int k = 0; k < cfg.window; k++) {
                struct slot *sl = &s->slots[k];
                if (sl->kind != K_FREE && t - sl->sent_ns > to) {
                    w->st.lost++;
                    slot_free(s, (uint16_t)k);
                }
            }
        }
        if (!sending)
            continue;
        if (s->state == C_CONNECTING && t - s->connect_sent_ns > to) {
            w->st.connect_lost++;
            send_connect(w, s, t);
        } else if (s->state == C_CONNECTED && t - s->connected_at_ns > reconn) {
            w->st.reconnects++;
            send_connect(w, s, t);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        die("epoll_create1");
    for (int i = 0; i < w->nsocks; i++)
        sock_init(w, &w->socks[i]);
    uint64_t t = now_ns();
    for (int i = 0; i < w->nsocks; i++)
        send_connect(w, &w->socks[i], t);

    uint64_t drain_end = w->deadline_ns + (uint64_t)(cfg.timeout_s * 1e9) + 50000000ULL;
    uint64_t last_tick = t;
    struct epoll_event evs[64];
    for (;;) {
        t = now_ns();
        bool sending = t < w->deadline_ns && !g_stop &&
                       __atomic_load_n(&g_sent_total, __ATOMIC_RELAXED) < cfg.max_requests;
        if (!sending) {
            int inflight = 0;
            for (int i = 0; i < w->nsocks; i++)
                inflight += w->socks[i].inflight;
            if (inflight == 0 || t > drain_end || g_stop)
                break;
        }
        if (t - last_tick > 5000000ULL) {
            check_timeouts(w, t, sending);
            last_tick = t;
        }
        if (sending)
            for (int i = 0; i < w->nsocks; i++)
                fill(w, &w->socks[i]);
        int n = epoll_wait(w->epfd, evs, 64, 2);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++)
            recv_all(w, evs[i].data.ptr);
    }
    /* whatever is still in flight now was never answered */
    for (int i = 0; i < w->nsocks; i++) {
        struct sock *s = &w->socks[i];
        w->st.lost += (uint64_t)s->inflight;
        close(s->fd);
        free(s->slots);
        free(s->freelist);
    }
    close(w->epfd);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* command line                                                        */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: udp_load --target HOST:PORT [options]\n"
            "       udp_load --dump-hashes FILE [--hashes N] [--seed S]\n"
            "BEP 15 UDP announce/scrape load generator; loopback targets only.\n"
            "  -t, --target ADDR:PORT  tracker (127.0.0.0/8 or [::1]); or --host/--port\n"
            "      --host ADDR, --port PORT\n"
            "  -d, --duration SEC      sending time (default %.0f)\n"
            "  -m, --max-requests N    hard cap on requests sent (default %" PRIu64 ")\n"
            "  -n, --hashes N          info_hashes in the pool (default %u)\n"
            "      --peers N           simulated peers (default %u)\n"
            "  -s, --seed S            seed for hashes and requests (default %" PRIu64 ")\n"
            "  -S, --sockets N         UDP sockets in total (default %d)\n"
            "  -w, --window N          requests in flight per socket (default %d)\n"
            "  -T, --threads N         worker threads (default %d)\n"
            "      --numwant N         (default %d)\n"
            "      --scrape-every N    one scrape per N requests, 0 = none (default %d: 100:1)\n"
            "      --scrape-max N      hashes per scrape, 1..N (default %d)\n"
            "      --seeders F         fraction of announces with left=0 (default %.2f)\n"
            "      --pareto-shape F    popularity skew; larger = more skewed (default %.1f)\n"
            "      --timeout SEC       a request unanswered this long is lost (default %.1f)\n"
            "      --reconnect SEC     connection id lifetime before reconnect (default %.0f)\n"
            "      --cover             announce each (hash, peer) pair once, in order (with\n"
            "                          --max-requests hashes*peers: that many distinct peers)\n"
            "      --dump-hashes FILE  write the pool as 40-hex lines (opentracker whitelist);\n"
            "                          exits afterwards unless a target is given\n",
            cfg.duration_s, cfg.max_requests, cfg.n_hashes, cfg.n_peers, cfg.seed, cfg.sockets,
            cfg.window, cfg.threads, cfg.numwant, cfg.scrape_every, cfg.scrape_max, cfg.seeder_ratio,
            cfg.pareto_shape, cfg.timeout_s, cfg.reconnect_s);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_dbl(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static void bad(const char *opt, const char *val)
{
    fprintf(stderr, "udp_load: bad value for %s: '%s'\n", opt, val);
    exit(2);
}

static uint64_t arg_u64(const char *opt, const char *val, uint64_t lo, uint64_t hi)
{
    uint64_t v;
    if (!parse_u64(val, &v) || v < lo || v > hi)
        bad(opt, val);
    return v;
}

static double arg_dbl(const char *opt, const char *val, double lo, double hi)
{
    double v;
    if (!parse_dbl(val, &v) || v < lo || v > hi)
        bad(opt, val);
    return v;
}

/* Accept only numeric loopback addresses (and the name "localhost"). */
static void set_target(const char *host, const char *port_s)
{
    uint64_t port;
    if (!parse_u64(port_s, &port) || port == 0 || port > 65535)
        bad("port", port_s);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    memset(&cfg.addr, 0, sizeof cfg.addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&cfg.addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "udp_load: refusing non-loopback target %s (only 127.0.0.0/8 or ::1)\n", host);
            exit(2);
        }
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        cfg.addrlen = sizeof *a4;
        cfg.family = AF_INET;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            fprintf(stderr, "udp_load: use the plain IPv4 form instead of %s\n", host);
            exit(2);
        }
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
            fprintf(stderr, "udp_load: refusing non-loopback target %s (only 127.0.0.0/8 or ::1)\n", host);
            exit(2);
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        cfg.addrlen = sizeof *a6;
        cfg.family = AF_INET6;
    } else {
        fprintf(stderr, "udp_load: target must be a numeric loopback address, got '%s'\n", host);
        exit(2);
    }
    snprintf(cfg.target, sizeof cfg.target, cfg.family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port_s);
    cfg.have_target = true;
}

static void parse_target(const char *t)
{
    char buf[128];
    if (strlen(t) >= sizeof buf)
        bad("--target", t);
    strcpy(buf, t);
    char *host = buf, *port;
    if (buf[0] == '[') {
        char *rb = strchr(buf, ']');
        if (!rb || rb[1] != ':')
            bad("--target", t);
        *rb = 0;
        host = buf + 1;
        port = rb + 2;
    } else {
        port = strrchr(buf, ':');
        if (!port || strchr(buf, ':') != port)
            bad("--target (use [::1]:PORT for IPv6)", t);
        *port++ = 0;
    }
    set_target(host, port);
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv)
{
    enum {
        O_HOST = 256, O_PORT, O_PEERS, O_NUMWANT, O_SCRAPE_EVERY, O_SCRAPE_MAX, O_SEEDERS,
        O_SHAPE, O_TIMEOUT, O_RECONNECT, O_DUMP, O_COVER
    };
    static const struct option opts[] = {
        {"target", required_argument, 0, 't'},
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"duration", required_argument, 0, 'd'},
        {"max-requests", required_argument, 0, 'm'},
        {"hashes", required_argument, 0, 'n'},
        {"peers", required_argument, 0, O_PEERS},
        {"seed", required_argument, 0, 's'},
        {"sockets", required_argument, 0, 'S'},
        {"window", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 'T'},
        {"numwant", required_argument, 0, O_NUMWANT},
        {"scrape-every", required_argument, 0, O_SCRAPE_EVERY},
        {"scrape-max", required_argument, 0, O_SCRAPE_MAX},
        {"seeders", required_argument, 0, O_SEEDERS},
        {"pareto-shape", required_argument, 0, O_SHAPE},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"reconnect", required_argument, 0, O_RECONNECT},
        {"dump-hashes", required_argument, 0, O_DUMP},
        {"cover", no_argument, 0, O_COVER},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *host = NULL, *port = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "t:d:m:n:s:S:w:T:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': parse_target(optarg); break;
        case O_HOST: host = optarg; break;
        case O_PORT: port = optarg; break;
        case 'd': cfg.duration_s = arg_dbl("--duration", optarg, 0.1, 3600); break;
        case 'm': cfg.max_requests = arg_u64("--max-requests", optarg, 1, UINT64_MAX / 2); break;
        case 'n': cfg.n_hashes = (uint32_t)arg_u64("--hashes", optarg, 1, 50000000); break;
        case O_PEERS: cfg.n_peers = (uint32_t)arg_u64("--peers", optarg, 1, 100000000); break;
        case 's': cfg.seed = arg_u64("--seed", optarg, 0, UINT64_MAX); break;
        case 'S': cfg.sockets = (int)arg_u64("--sockets", optarg, 1, 1024); break;
        case 'w': cfg.window = (int)arg_u64("--window", optarg, 1, MAX_WINDOW); break;
        case 'T': cfg.threads = (int)arg_u64("--threads", optarg, 1, 64); break;
        case O_NUMWANT: cfg.numwant = (int)arg_u64("--numwant", optarg, 0, 200); break;
        case O_SCRAPE_EVERY: cfg.scrape_every = (int)arg_u64("--scrape-every", optarg, 0, 1000000); break;
        case O_SCRAPE_MAX: cfg.scrape_max = (int)arg_u64("--scrape-max", optarg, 1, MAX_SCRAPE_HASHES); break;
        case O_SEEDERS: cfg.seeder_ratio = arg_dbl("--seeders", optarg, 0, 1); break;
        case O_SHAPE: cfg.pareto_shape = arg_dbl("--pareto-shape", optarg, 0.05, 100); break;
        case O_TIMEOUT: cfg.timeout_s = arg_dbl("--timeout", optarg, 0.001, 60); break;
        case O_RECONNECT: cfg.reconnect_s = arg_dbl("--reconnect", optarg, 0.01, 3600); break;
        case O_DUMP: cfg.dump_path = optarg; break;
        case O_COVER: cfg.cover = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "udp_load: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (host || port) {
        if (!host || !port) {
            fprintf(stderr, "udp_load: --host and --port go together\n");
            return 2;
        }
        set_target(host, port);
    }
    gen_hashes();
    if (cfg.dump_path) {
        if (dump_hashes(cfg.dump_path) < 0)
            return 1;
        if (!cfg.have_target)
            return 0;
    }
    if (!cfg.have_target) {
        usage(stderr);
        return 2;
    }
    if (cfg.sockets < cfg.threads)
        cfg.sockets = cfg.threads;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct worker *ws = calloc((size_t)cfg.threads, sizeof *ws);
    if (!ws)
        die("calloc");
    uint64_t start = now_ns();
    uint64_t deadline = start + (uint64_t)(cfg.duration_s * 1e9);
    for (int i = 0; i < cfg.threads; i++) {
        struct worker *w = &ws[i];
        w->id = i;
        w->nsocks = cfg.sockets / cfg.threads + (i < cfg.sockets % cfg.threads);
        w->socks = calloc((size_t)w->nsocks, sizeof *w->socks);
        if (!w->socks)
            die("calloc");
        rng_seed(&w->rng, cfg.seed * 1000003ULL + (uint64_t)i + 1);
        w->start_ns = start;
        w->deadline_ns = deadline;
        if (cfg.threads == 1) {
            worker_main(w);
        } else if ((errno = pthread_create(&w->th, NULL, worker_main, w)) != 0) {
            die("pthread_create");
        }
    }
    if (cfg.threads > 1)
        for (int i = 0; i < cfg.threads; i++)
            pthread_join(ws[i].th, NULL);

    struct stats T = {0};
    static struct hist ha, hs;
    const char *first_error = "";
    for (int i = 0; i < cfg.threads; i++) {
        struct stats *s = &ws[i].st;
        T.sent_announce += s->sent_announce;
        T.sent_scrape += s->sent_scrape;
        T.sent_connect += s->sent_connect;
        T.resp_announce += s->resp_announce;
        T.resp_scrape += s->resp_scrape;
        T.resp_connect += s->resp_connect;
        T.errors += s->errors;
        T.connect_errors += s->connect_errors;
        T.malformed += s->malformed;
        T.unmatched += s->unmatched;
        T.short_announce += s->short_announce;
        T.lost += s->lost;
        T.connect_lost += s->connect_lost;
        T.send_fail += s->send_fail;
        T.reconnects += s->reconnects;
        T.peers_returned += s->peers_returned;
        if (s->last_resp_ns > T.last_resp_ns)
            T.last_resp_ns = s->last_resp_ns;
        if (!first_error[0] && s->first_error[0])
            first_error = s->first_error;
        h_merge(&ha, &ws[i].h_ann);
        h_merge(&hs, &ws[i].h_scr);
    }
    uint64_t end = T.last_resp_ns > start ? T.last_resp_ns : now_ns();
    double el = (double)(end - start) / 1e9;
    if (el <= 0)
        el = 1e-9;
    double ann_rps = (double)T.resp_announce / el, scr_rps = (double)T.resp_scrape / el;
    uint64_t all_err = T.errors + T.connect_errors;

    printf("udp_load: target %s, %.2f s (of %.1f s), %d thread(s), %d socket(s) x window %d, "
           "%u hashes (pareto %.2f), %u peers, seed %" PRIu64 "%s\n",
           cfg.target, el, cfg.duration_s, cfg.threads, cfg.sockets, cfg.window, cfg.n_hashes,
           cfg.pareto_shape, cfg.n_peers, cfg.seed, g_stop ? " (interrupted)" : "");
    printf("  announce: sent %" PRIu64 ", ok %" PRIu64 ", %.0f/s, latency p50 %.1f us, p99 %.1f us, "
           "max %.1f us, avg %.1f peers/reply\n",
           T.sent_announce, T.resp_announce, ann_rps, h_pct_us(&ha, 0.50), h_pct_us(&ha, 0.99),
           (double)ha.max / 1000.0, T.resp_announce ? (double)T.peers_returned / (double)T.resp_announce : 0.0);
    printf("  scrape:   sent %" PRIu64 ", ok %" PRIu64 ", %.0f/s, latency p50 %.1f us, p99 %.1f us\n",
           T.sent_scrape, T.resp_scrape, scr_rps, h_pct_us(&hs, 0.50), h_pct_us(&hs, 0.99));
    printf("  connect:  sent %" PRIu64 ", ok %" PRIu64 ", lost %" PRIu64 ", reconnects %" PRIu64 "\n",
           T.sent_connect, T.resp_connect, T.connect_lost, T.reconnects);
    printf("  errors %" PRIu64 " (connect %" PRIu64 ")%s%s%s, lost (no reply in %.1f s) %" PRIu64
           ", malformed %" PRIu64 ", unmatched/late %" PRIu64 ", send/recv failures %" PRIu64 "\n",
           all_err, T.connect_errors, first_error[0] ? ", first: \"" : "", first_error,
           first_error[0] ? "\"" : "", cfg.timeout_s, T.lost, T.malformed, T.unmatched, T.send_fail);
    if (T.short_announce)
        printf("  note: %" PRIu64 " malformed replies were 8-byte announce headers, which is how "
               "opentracker refuses a hash missing from its whitelist (dump it with --dump-hashes "
               "and the same --seed/--hashes)\n", T.short_announce);
    printf("RESULT udp_announce rps=%.0f p50_us=%.1f p99_us=%.1f errors=%" PRIu64 " lost=%" PRIu64
           " malformed=%" PRIu64 " scrape_rps=%.0f scrape_p50_us=%.1f scrape_p99_us=%.1f"
           " announces=%" PRIu64 " scrapes=%" PRIu64 " seconds=%.2f target=%s\n",
           ann_rps, h_pct_us(&ha, 0.50), h_pct_us(&ha, 0.99), all_err, T.lost, T.malformed, scr_rps,
           h_pct_us(&hs, 0.50), h_pct_us(&hs, 0.99), T.resp_announce, T.resp_scrape, el, cfg.target);
    fflush(stdout);

    for (int i = 0; i < cfg.threads; i++)
        free(ws[i].socks);
    free(ws);
    free(g_hashes);
    /* exit status: 0 if the tracker answered anything, 3 if it answered nothing */
    return (T.resp_announce + T.resp_scrape) > 0 ? 0 : 3;
}
