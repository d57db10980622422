/* Vector search benchmark client for Synapse Tracker's JSON API. Loopback only.
 *
 * Standalone C (no project headers), like udp_load.c:
 *
 *   gcc -std=gnu11 -O3 -march=native -Wall -Wextra bench/search_bench.c -o /tmp/search_bench -lm -lpthread
 *   /tmp/search_bench --port 8080 --pid <tracker pid> --n 10000
 *
 * What one run does, against one running tracker (bench/run_search_bench.sh starts a fresh
 * tracker per run and drives this program):
 *
 * 1. Generates --n shards and --queries queries, deterministically from --seed: --clusters
 *    Gaussian cluster centres (unit-normalised), each vector = its centre + N(0, spread^2)
 *    noise per coordinate, unit-normalised, then rounded to 7 decimals (the exact text sent
 *    in the JSON; the benchmark keeps the rounded values, so its exact search sees the very
 *    numbers the tracker parsed). Vector i depends only on (seed, i): the first 10k shards
 *    of a 100k set are the 10k set. Queries are fresh draws from the same mixture (a random
 *    centre plus the same noise), from a separate stream.
 * 2. Exact top-10 of every query by cosine, brute force over all --n vectors (float dot
 *    products over blocks of queries, the best 32 re-scored in double). Cached in
 *    --gt-cache FILE when given (keyed by every generation parameter).
 * 3. Reads the tracker's VmRSS (/proc/PID/status) as the "empty" baseline.
 * 4. Registers shards [--start, --n) with POST /api/register over --conns keep-alive
 *    connections, one request in flight on each (epoll); every reply must be 200.
 *    Reports shards/s for the whole phase and per tenth.
 * 5. Waits for the index to settle: the tracker exposes no "index building" state over
 *    HTTP, so this polls the process's CPU time (/proc/PID/stat): settled once it used less
 *    than --settle-cpu cores for --settle-secs consecutive seconds (a background faiss
 *    build keeps a core busy). Bounded by --settle-timeout.
 * 6. Reads VmRSS / RssAnon / RssFile again, and /metrics (synapse_vector_index_size and
 *    synapse_shards_total must equal --n).
 * 7. Sends --warmup queries (not counted, separate stream), then the --queries queries
 *    one at a time on one keep-alive connection: POST /api/search/embedding
 *    {embedding, limit, filters:{model}}; latency = first byte sent to last byte received.
 *    recall@10 = |returned info_hashes ∩ exact top-10| / 10, averaged.
 *    With --search-secs T the query set is sent again and again for T seconds; with
 *    --bg-rate R a second thread registers R shards per second meanwhile (search while
 *    agents register: see bg_main), which makes the index grow, retrain and swap.
 *
 * The last line is machine-readable:
 *   RESULT search_bench label=... n=... reg_rate=... p50_us=... p99_us=... recall10=... ...
 * Exit status: 0, 1 on any HTTP error or a failed check, 2 on bad usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define K 10          /* recall@K and the exact top-K */
#define GT_KEEP 32    /* candidates kept in float before the double re-score */
#define QBLOCK 8      /* queries per block in the brute force */
#define MAX_CONNS 256

/* ---------------------------------------------------------------- options */

static struct {
  const char *host;
  int port;
  long pid;
  long n, start, dim, clusters, queries, warmup, limit, conns, threads;
  double spread;
  uint64_t seed;
  const char *gt_cache;
  const char *model;
  const char *label;
  double settle_timeout, settle_cpu;
  int settle_secs;
  bool no_register, no_search;
  double timeout_s;
  double bg_rate;     /* registrations per second during the queries (0: none) */
  double search_secs; /* run the query set again and again for this long (0: once) */
} opt = {
    .host = "127.0.0.1",
    .port = 0,
    .pid = 0,
    .n = 10000,
    .start = 0,
    .dim = 768,
    .clusters = 100,
    .queries = 1000,
    .warmup = 50,
    .limit = 10,
    .conns = 16,
    .threads = 2,
    .spread = 0.03,
    .seed = 1,
    .model = "bench-embed-768",
    .label = "run",
    .settle_timeout = 900,
    .settle_cpu = 0.05,
    .settle_secs = 3,
    .timeout_s = 60,
};

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "search_bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- deterministic data */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t mix2(uint64_t a, uint64_t b) {
  uint64_t s = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);
  splitmix(&s);
  return splitmix(&s);
}

static double uniform01(uint64_t *s) { return ((splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static double gauss(uint64_t *s) { /* Box-Muller, one value per call (deterministic, simple) */
  double u = uniform01(s), v = uniform01(s);
  return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

enum { STREAM_CENTRE = 1, STREAM_SHARD = 2, STREAM_QUERY = 3, STREAM_WARMUP = 4 };

static float *centres; /* clusters x dim, unit */

static void make_centres(void) {
  centres = malloc(sizeof(float) * opt.clusters * opt.dim);
  if (!centres) die("out of memory");
  for (long c = 0; c < opt.clusters; c++) {
    uint64_t s = mix2(opt.seed ^ ((uint64_t)STREAM_CENTRE << 56), (uint64_t)c);
    double norm = 0;
    float *v = centres + c * opt.dim;
    for (long d = 0; d < opt.dim; d++) {
      v[d] = (float)gauss(&s);
      norm += (double)v[d] * v[d];
    }
    norm = sqrt(norm);
    for (long d = 0; d < opt.dim; d++) v[d] = (float)(v[d] / norm);
  }
}

/* Point `i` of `stream`: centre + spread * N(0,1), normalised, rounded to 7 decimals.
 * q7 receives the rounded values as integers (value = q7 / 1e7), out the floats. */
static void make_point(int stream, uint64_t i, float *out, int32_t *q7) {
  uint64_t s = mix2(opt.seed ^ ((uint64_t)stream << 56), i);
  long c = (long)(splitmix(&s) % (uint64_t)opt.clusters);
  const float *ce = centres + c * opt.dim;
  double tmp[4096], norm = 0;
  for (long d = 0; d < opt.dim; d++) {
    tmp[d] = ce[d] + opt.spread * gauss(&s);
    norm += tmp[d] * tmp[d];
  }
  norm = sqrt(norm);
  for (long d = 0; d < opt.dim; d++) {
    int32_t k = (int32_t)lrint(tmp[d] / norm * 1e7);
    if (q7) q7[d] = k;
    if (out) out[d] = (float)((double)k / 1e7);
  }
}

typedef struct gen_job {
  int stream;
  long from, to;
  float *vecs;
  int32_t *q7;
} gen_job;

static void *gen_main(void *arg) {
  gen_job *j = arg;
  for (long i = j->from; i < j->to; i++)
    make_point(j->stream, (uint64_t)i, j->vecs ? j->vecs + i * opt.dim : NULL,
               j->q7 ? j->q7 + i * opt.dim : NULL);
  return NULL;
}

static void generate(int stream, long count, float *vecs, int32_t *q7) {
  long t = opt.threads < 1 ? 1 : opt.threads;
  pthread_t th[64];
  gen_job jobs[64];
  if (t > 64) t = 64;
  for (long k = 0; k < t; k++) {
    jobs[k] = (gen_job){stream, count * k / t, count * (k + 1) / t, vecs, q7};
    if (pthread_create(&th[k], NULL, gen_main, &jobs[k])) die("pthread_create");
  }
  for (long k = 0; k < t; k++) pthread_join(th[k], NULL);
}

/* 40-hex info_hash of shard i: 16 hex scrambled from (seed, i), so that shards spread
 * over a cluster's partitions (the first 4 bytes choose one) as SHA-1 hashes do; then 8 hex
 * from the seed; then i in 16 hex. */
static char hash_prefix[9];

static void make_prefix(void) {
  uint64_t s = mix2(opt.seed, 0x5e4c4b454e43ULL);
  snprintf(hash_prefix, sizeof hash_prefix, "%08llx",
           (unsigned long long)(splitmix(&s) & 0xffffffffULL));
}

static uint64_t hash_spread(long i) { return mix2(opt.seed ^ 0x68617368ULL, (uint64_t)i); }

static void shard_hash(long i, char out[41]) {
  snprintf(out, 41, "%016llx%s%016llx", (unsigned long long)hash_spread(i), hash_prefix,
           (unsigned long long)i);
}

static long hash_index(const char *h) { /* -1 when not one of ours */
  if (strncasecmp(h + 16, hash_prefix, 8) != 0) return -1;
  char *end;
  unsigned long long v = strtoull(h + 24, &end, 16);
  if (end != h + 40) return -1;
  char want[17];
  snprintf(want, sizeof want, "%016llx", (unsigned long long)hash_spread((long)v));
  return strncasecmp(h, want, 16) == 0 ? (long)v : -1;
}

/* ---------------------------------------------------------------- exact top-K */

typedef struct topk {
  float s[GT_KEEP];
  int32_t id[GT_KEEP];
  int n;
} topk;

static void topk_push(topk *t, float s, int32_t id) { /* min-heap on s */
  if (t->n < GT_KEEP) {
    int i = t->n++;
    while (i > 0) {
      int p = (i - 1) / 2;
      if (t->s[p] <= s) break;
      t->s[i] = t->s[p];
      t->id[i] = t->id[p];
      i = p;
    }
    t->s[i] = s;
    t->id[i] = id;
    return;
  }
  if (s <= t->s[0]) return;
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    float ms = s;
    if (l < GT_KEEP && t->s[l] < ms) m = l, ms = t->s[l];
    if (r < GT_KEEP && t->s[r] < ms) m = r, ms = t->s[r];
    if (m == i) break;
    t->s[i] = t->s[m];
    t->id[i] = t->id[m];
    i = m;
  }
  t->s[i] = s;
  t->id[i] = id;
}

typedef struct gt_job {
  const float *base, *qs;
  long qfrom, qto;
  int32_t *gt;    /* queries x K */
  float *gt_sim;  /* queries x K: exact cosine of each */
} gt_job;

static const double *base_norm; /* per vector, double */

static double cos_double(const float *a, const float *b, double nb) {
  double dot = 0, na = 0;
  for (long d = 0; d < opt.dim; d++) {
    dot += (double)a[d] * b[d];
    na += (double)a[d] * a[d];
  }
  return dot / (sqrt(na) * nb);
}

typedef struct scored {
  double s;
  int32_t id;
} scored;

static int cmp_scored(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->s != y->s) return x->s < y->s ? 1 : -1;
  return x->id - y->id;
}

static void *gt_main(void *arg) {
  gt_job *j = arg;
  long D = opt.dim;
  float *inv = malloc(sizeof(float) * opt.n);
  for (long i = 0; i < opt.n; i++) inv[i] = (float)(1.0 / base_norm[i]);
  for (long q0 = j->qfrom; q0 < j->qto; q0 += QBLOCK) {
    long nq = j->qto - q0 < QBLOCK ? j->qto - q0 : QBLOCK;
    topk tk[QBLOCK];
    memset(tk, 0, sizeof tk);
    for (long i = 0; i < opt.n; i++) {
      const float *v = j->base + i * D;
      for (long b = 0; b < nq; b++) {
        const float *q = j->qs + (q0 + b) * D;
        float acc[16] = {0};
        for (long d = 0; d + 16 <= D; d += 16)
          for (int l = 0; l < 16; l++) acc[l] += q[d + l] * v[d + l];
        float s = 0;
        for (int l = 0; l < 16; l++) s += acc[l];
        for (long d = D - D % 16; d < D; d++) s += q[d] * v[d];
        topk_push(&tk[b], s * inv[i], (int32_t)i);
      }
    }
    for (long b = 0; b < nq; b++) {
      scored sc[GT_KEEP];
      const float *q = j->qs + (q0 + b) * D;
      for (int k = 0; k < tk[b].n; k++) {
        sc[k].id = tk[b].id[k];
        sc[k].s = cos_double(q, j->base + (long)sc[k].id * D, base_norm[sc[k].id]);
      }
      qsort(sc, (size_t)tk[b].n, sizeof *sc, cmp_scored);
      for (int k = 0; k < K; k++) {
        j->gt[(q0 + b) * K + k] = k < tk[b].n ? sc[k].id : -1;
        j->gt_sim[(q0 + b) * K + k] = k < tk[b].n ? (float)sc[k].s : 0;
      }
    }
  }
  free(inv);
  return NULL;
}

static void exact_topk(const float *base, const float *qs, int32_t *gt, float *gt_sim) {
  double *nrm = malloc(sizeof(double) * opt.n);
  for (long i = 0; i < opt.n; i++) {
    double s = 0;
    for (long d = 0; d < opt.dim; d++) s += (double)base[i * opt.dim + d] * base[i * opt.dim + d];
    nrm[i] = sqrt(s);
  }
  base_norm = nrm;
  long t = opt.threads < 1 ? 1 : opt.threads;
  if (t > 64) t = 64;
  pthread_t th[64];
  gt_job jobs[64];
  for (long k = 0; k < t; k++) {
    jobs[k] = (gt_job){base, qs, opt.queries * k / t, opt.queries * (k + 1) / t, gt, gt_sim};
    if (pthread_create(&th[k], NULL, gt_main, &jobs[k])) die("pthread_create");
  }
  for (long k = 0; k < t; k++) pthread_join(th[k], NULL);
  free(nrm);
}

typedef struct gt_header {
  char magic[8]; /* "SYNGT02" */
  uint64_t seed, n, dim, clusters, queries;
  double spread;
} gt_header;

static bool gt_load(const char *path, int32_t *gt, float *gt_sim) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  gt_header h, want = {"SYNGT02", opt.seed, (uint64_t)opt.n, (uint64_t)opt.dim,
                       (uint64_t)opt.clusters, (uint64_t)opt.queries, opt.spread};
  bool ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(&h, &want, sizeof h) == 0 &&
            fread(gt, sizeof(int32_t) * K, (size_t)opt.queries, f) == (size_t)opt.queries &&
            fread(gt_sim, sizeof(float) * K, (size_t)opt.queries, f) == (size_t)opt.queries;
  fclose(f);
  return ok;
}

static void gt_save(const char *path, const int32_t *gt, const float *gt_sim) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return;
  gt_header h = {"SYNGT02", opt.seed, (uint64_t)opt.n, (uint64_t)opt.dim,
                 (uint64_t)opt.clusters, (uint64_t)opt.queries, opt.spread};
  bool ok = fwrite(&h, sizeof h, 1, f) == 1 &&
            fwrite(gt, sizeof(int32_t) * K, (size_t)opt.queries, f) == (size_t)opt.queries &&
            fwrite(gt_sim, sizeof(float) * K, (size_t)opt.queries, f) == (size_t)opt.queries;
  if (fclose(f) || !ok || rename(tmp, path)) unlink(tmp);
}

/* ---------------------------------------------------------------- /proc */

typedef struct mem_info {
  long rss_kb, anon_kb, file_kb, hwm_kb;
} mem_info;

static mem_info read_mem(void) {
  mem_info m = {-1, -1, -1, -1};
  if (!opt.pid) return m;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", opt.pid);
  FILE *f = fopen(path, "r");
  if (!f) return m;
  while (fgets(line, sizeof line, f)) {
    long v;
    if (sscanf(line, "VmRSS: %ld", &v) == 1) m.rss_kb = v;
    else if (sscanf(line, "RssAnon: %ld", &v) == 1) m.anon_kb = v;
    else if (sscanf(line, "RssFile: %ld", &v) == 1) m.file_kb = v;
    else if (sscanf(line, "VmHWM: %ld", &v) == 1) m.hwm_kb = v;
  }
  fclose(f);
  return m;
}

static double proc_cpu_s(void) { /* utime + stime of the tracker, seconds; -1 if gone */
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%ld/stat", opt.pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* comm may hold spaces */
  if (!p) return -1;
  unsigned long long ut = 0, st = 0;
  /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---------------------------------------------------------------- HTTP */

static int connect_tracker(bool nonblock) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
  if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) die("bad --host %s", opt.host);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) die("connect %s:%d: %s", opt.host, opt.port, strerror(errno));
  if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  else {
    struct timeval tv = {(time_t)opt.timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return fd;
}

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 16384;
  while (cap < b->len + extra + 1) cap *= 2;
  b->p = realloc(b->p, cap);
  if (!b->p) die("out of memory");
  b->cap = cap;
}

static void buf_add(buf *b, const char *s, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void buf_printf(buf *b, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int n = b->cap ? vsnprintf(b->p + b->len, room, fmt, ap) : -1;
    va_end(ap);
    if (n >= 0 && (size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    buf_reserve(b, n > 0 ? (size_t)n + 1 : 256);
  }
}

/* Appends the JSON array of 7-decimal numbers without printf (fast). */
static void add_embedding(buf *b, const int32_t *q7) {
  buf_reserve(b, (size_t)opt.dim * 12 + 4);
  char *o = b->p + b->len;
  *o++ = '[';
  for (long d = 0; d < opt.dim; d++) {
    if (d) *o++ = ',';
    int32_t k = q7[d];
    if (k < 0) *o++ = '-', k = -k;
    int32_t ip = k / 10000000, fp = k % 10000000;
    if (ip >= 10) o += sprintf(o, "%d", ip);
    else *o++ = (char)('0' + ip);
    *o++ = '.';
    for (int p = 1000000; p; p /= 10) *o++ = (char)('0' + fp / p % 10);
  }
  *o++ = ']';
  b->len = (size_t)(o - b->p);
  b->p[b->len] = 0;
}

static void make_request(buf *b, const char *method, const char *path, const buf *body) {
  b->len = 0;
  buf_printf(b,
             "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: synapse-search-bench\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             method, path, opt.host, opt.port, body ? body->len : 0);
  if (body) buf_add(b, body->p, body->len);
}

/* Complete response in b? Returns total length (head + body), 0 if incomplete, -1 bad.
 * *status and *body_off are filled when complete. */
static long http_complete(const buf *b, int *status, size_t *body_off) {
  if (b->len < 12) return 0;
  char *end = memmem(b->p, b->len, "\r\n\r\n", 4);
  if (!end) return b->len > 65536 ? -1 : 0;
  size_t head = (size_t)(end - b->p) + 4;
  if (sscanf(b->p, "HTTP/1.%*d %d", status) != 1) return -1;
  long cl = -1;
  for (char *l = strstr(b->p, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
    if (strncasecmp(l + 2, "content-length:", 15) == 0) cl = strtol(l + 17, NULL, 10);
    if (strncasecmp(l + 2, "transfer-encoding:", 18) == 0) return -1; /* not produced by the tracker */
  }
  if (cl < 0) return -1;
  *body_off = head;
  return b->len >= head + (size_t)cl ? (long)(head + (size_t)cl) : 0;
}

/* One blocking request/response on fd (keep-alive); body of the reply into out. */
static int http_do_with(buf *reqbuf, int *fd, const char *method, const char *path,
                        const buf *body, buf *out, double *elapsed);

static int http_do(int *fd, const char *method, const char *path, const buf *body, buf *out,
                   double *elapsed) {
  static buf req; /* the main thread's; the background registrar has its own */
  return http_do_with(&req, fd, method, path, body, out, elapsed);
}

static int http_do_with(buf *reqbuf, int *fd, const char *method, const char *path,
                        const buf *body, buf *out, double *elapsed) {
#define req (*reqbuf)
  make_request(&req, method, path, body);
  for (int attempt = 0; attempt < 2; attempt++) {
    if (*fd < 0) *fd = connect_tracker(false);
    double t0 = now_s();
    size_t off = 0;
    bool broken = false;
    while (off < req.len) {
      ssize_t w = send(*fd, req.p + off, req.len - off, MSG_NOSIGNAL);
      if (w <= 0) {
        if (w < 0 && errno == EINTR) continue;
        broken = true;
        break;
      }
      off += (size_t)w;
    }
    out->len = 0;
    int status = 0;
    size_t body_off = 0;
    long total = 0;
    while (!broken && (total = http_complete(out, &status, &body_off)) == 0) {
      buf_reserve(out, 65536);
      ssize_t r = recv(*fd, out->p + out->len, out->cap - out->len - 1, 0);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        broken = true;
        break;
      }
      out->len += (size_t)r;
      out->p[out->len] = 0;
    }
    if (broken) { /* connection closed by the server: one retry on a new connection */
      close(*fd);
      *fd = -1;
      if (out->len == 0 && attempt == 0) continue;
      return -1;
    }
    if (total < 0) return -1;
    if (elapsed) *elapsed = now_s() - t0;
    memmove(out->p, out->p + body_off, (size_t)total - body_off);
    out->len = (size_t)total - body_off;
    out->p[out->len] = 0;
    return status;
  }
  return -1;
#undef req
}

/* ---------------------------------------------------------------- registration (epoll) */

typedef struct conn {
  int fd;
  buf out, in;
  size_t sent;
  long shard; /* in flight, -1 = idle */
  double t0;
} conn;

static long reg_errors;
static double *reg_lat; /* seconds per registration */

static void reg_body(buf *body, long i, const int32_t *q7) {
  char h[41];
  shard_hash(i, h);
  body->len = 0;
  buf_printf(body,
             "{\"info_hash\":\"%s\",\"display_name\":\"bench shard %ld\",\"model\":\"%s\","
             "\"dimension\":%ld,\"tags\":[\"bench\",\"c%ld\"],\"embedding\":",
             h, i, opt.model, opt.dim, i % 7);
  add_embedding(body, q7 + i * opt.dim);
  buf_add(body, "}", 1);
}

/* ---------------------------------------------------------------- background writes */

/* Registrations at --bg-rate per second while the queries run (search while agents
 * register): shards opt.n, opt.n + 1, ... on a connection of their own, each the negated
 * vector of STREAM_SHARD point i, so it lies opposite its cluster and never enters a
 * query's exact top-10 (computed over the first --n only) but lands in the same collection,
 * where it makes the index grow, retrain and swap. */
static struct {
  pthread_t thread;
  atomic_bool stop;
  long sent, errors;
  double max_lat;
} bg;

static void *bg_main(void *arg) {
  (void)arg;
  int fd = -1;
  buf req = {0}, body = {0}, reply = {0};
  int32_t *q7 = malloc(sizeof(int32_t) * (size_t)opt.dim);
  double start = now_s();
  for (long k = 0; q7 && !atomic_load(&bg.stop); k++) {
    double due = start + (double)k / opt.bg_rate, wait = due - now_s();
    if (wait > 0) {
      struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
      nanosleep(&ts, NULL);
    }
    long i = opt.n + k;
    make_point(STREAM_SHARD, (uint64_t)i, NULL, q7);
    for (long d = 0; d < opt.dim; d++) q7[d] = -q7[d];
    reg_body(&body, i, q7);
    double el = 0;
    int st = http_do_with(&req, &fd, "POST", "/api/register", &body, &reply, &el);
    if (st != 200) bg.errors++;
    if (el > bg.max_lat) bg.max_lat = el;
    bg.sent++;
  }
  if (fd >= 0) close(fd);
  free(q7), free(req.p), free(body.p), free(reply.p);
  return NULL;
}

static void conn_start(conn *c, long i, const int32_t *q7, buf *body) {
  reg_body(body, i, q7);
  make_request(&c->out, "POST", "/api/register", body);
  c->sent = 0;
  c->in.len = 0;
  c->shard = i;
  c->t0 = now_s();
}

static bool conn_flush(conn *c) { /* false: connection broken */
  while (c->sent < c->out.len) {
    ssize_t w = send(c->fd, c->out.p + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c->sent += (size_t)w;
  }
  return true;
}

static double register_all(const int32_t *q7, double *tenth_rate) {
  long total = opt.n - opt.start;
  long conns = opt.conns < total ? opt.conns : total;
  if (conns < 1) return 0;
  int ep = epoll_create1(0);
  conn *cs = calloc((size_t)conns, sizeof *cs);
  buf body = {0};
  long next = opt.start, done = 0;
  reg_lat = calloc((size_t)total + 1, sizeof *reg_lat);
  double t0 = now_s(), last_tenth_t = t0;
  long next_tenth = total / 10 ? total / 10 : 1;
  int tenth = 0;
  for (long k = 0; k < conns; k++) {
    cs[k].fd = connect_tracker(true);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = (uint64_t)k};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[k].fd, &ev);
    conn_start(&cs[k], next++, q7, &body);
    if (!conn_flush(&cs[k])) die("send failed");
  }
  struct epoll_event evs[MAX_CONNS];
  double deadline = now_s() + opt.timeout_s;
  while (done < total) {
    int n = epoll_wait(ep, evs, MAX_CONNS, 1000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (now_s() > deadline) die("registration stalled: no reply for %.0f s (%ld of %ld done)",
                                  opt.timeout_s, done, total);
      continue;
    }
    deadline = now_s() + opt.timeout_s;
    for (int e = 0; e < n; e++) {
      conn *c = &cs[evs[e].data.u64];
      if (c->shard < 0) continue;
      if (!conn_flush(c)) die("connection closed while sending shard %ld", c->shard);
      for (;;) {
        buf_reserve(&c->in, 65536);
        ssize_t r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("tracker closed a registration connection (shard %ld, %ld done)", c->shard, done);
        c->in.len += (size_t)r;
        c->in.p[c->in.len] = 0;
      }
      int status = 0;
      size_t body_off = 0;
      long tot = http_complete(&c->in, &status, &body_off);
      if (tot < 0) die("malformed reply to registration of shard %ld", c->shard);
      if (tot == 0) continue;
      if ((size_t)tot != c->in.len) die("unexpected extra bytes after a reply");
      if (status != 200) {
        if (reg_errors++ < 5)
          fprintf(stderr, "search_bench: register %ld: HTTP %d %.*s\n", c->shard, status,
                  (int)(c->in.len - body_off), c->in.p + body_off);
      }
      reg_lat[done] = now_s() - c->t0;
      done++;
      if (done >= next_tenth && tenth < 10) {
        double t = now_s();
        tenth_rate[tenth++] = (double)(total / 10 ? total / 10 : 1) / (t - last_tenth_t);
        last_tenth_t = t;
        next_tenth += total / 10 ? total / 10 : 1;
      }
      if (next < opt.n) {
        conn_start(c, next++, q7, &body);
        if (!conn_flush(c)) die("connection closed while sending shard %ld", c->shard);
      } else {
        c->shard = -1;
      }
    }
  }
  double secs = now_s() - t0;
  for (long k = 0; k < conns; k++) {
    close(cs[k].fd);
    free(cs[k].out.p);
    free(cs[k].in.p);
  }
  free(cs);
  free(body.p);
  close(ep);
  return secs;
}

/* ---------------------------------------------------------------- settle */

static double settle(double *cpu_used) {
  double t0 = now_s(), c0 = proc_cpu_s(), prev = c0;
  int quiet = 0;
  *cpu_used = 0;
  if (c0 < 0) return 0;
  while (now_s() - t0 < opt.settle_timeout) {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    double c = proc_cpu_s();
    if (c < 0) die("tracker process %ld is gone", opt.pid);
    quiet = c - prev < opt.settle_cpu ? quiet + 1 : 0;
    prev = c;
    if (quiet >= opt.settle_secs) {
      *cpu_used = c - c0;
      return now_s() - t0 - opt.settle_secs;
    }
  }
  *cpu_used = prev - c0;
  fprintf(stderr, "search_bench: index did not settle within %.0f s\n", opt.settle_timeout);
  return -1;
}

/* ---------------------------------------------------------------- search */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *sorted, long n, double p) {
  if (n <= 0) return 0;
  long i = (long)ceil(p / 100.0 * (double)n) - 1;
  if (i < 0) i = 0;
  if (i >= n) i = n - 1;
  return sorted[i];
}

/* info_hash values of the reply's results, in order; returns the count. */
static int parse_hits(const char *json, long *ids, int max) {
  const char *p = strstr(json, "\"results\"");
  int n = 0;
  while (p && n < max && (p = strstr(p, "\"info_hash\":\"")) != NULL) {
    p += 13;
    ids[n++] = strlen(p) >= 40 && p[40] == '"' ? hash_index(p) : -1;
  }
  return n;
}

static long metric_value(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; (p = strstr(p, name)) != NULL; p += n) {
    if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtol(p + n + 1, NULL, 10);
  }
  return -1;
}

/* ---------------------------------------------------------------- main */

static void usage(void) {
  fprintf(stderr,
          "usage: search_bench --port P [--host 127.0.0.1] [--pid PID] [--n N] [--start S]\n"
          "  [--dim 768] [--clusters 100] [--spread 0.03] [--seed 1] [--conns 16]\n"
          "  [--queries 1000] [--warmup 50] [--limit 10] [--threads 2] [--gt-cache FILE]\n"
          "  [--model NAME] [--label NAME] [--settle-timeout 900] [--settle-cpu 0.05]\n"
          "  [--settle-secs 3] [--timeout 60] [--no-register] [--no-search] [--gt-only]\n"
          "  [--verify-gt Q] [--bg-rate R] [--search-secs T]\n");
}

int main(int argc, char **argv) {
  bool gt_only = false;
  long verify_gt = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && (v || (die("%s needs a value", name), 0)) && ++i)
    if (ARG("--host")) opt.host = v;
    else if (ARG("--port")) opt.port = atoi(v);
    else if (ARG("--pid")) opt.pid = atol(v);
    else if (ARG("--n")) opt.n = atol(v);
    else if (ARG("--start")) opt.start = atol(v);
    else if (ARG("--dim")) opt.dim = atol(v);
    else if (ARG("--clusters")) opt.clusters = atol(v);
    else if (ARG("--spread")) opt.spread = atof(v);
    else if (ARG("--seed")) opt.seed = strtoull(v, NULL, 10);
    else if (ARG("--conns")) opt.conns = atol(v);
    else if (ARG("--queries")) opt.queries = atol(v);
    else if (ARG("--warmup")) opt.warmup = atol(v);
    else if (ARG("--limit")) opt.limit = atol(v);
    else if (ARG("--threads")) opt.threads = atol(v);
    else if (ARG("--gt-cache")) opt.gt_cache = v;
    else if (ARG("--model")) opt.model = v;
    else if (ARG("--label")) opt.label = v;
    else if (ARG("--settle-timeout")) opt.settle_timeout = atof(v);
    else if (ARG("--settle-cpu")) opt.settle_cpu = atof(v);
    else if (ARG("--settle-secs")) opt.settle_secs = atoi(v);
    else if (ARG("--timeout")) opt.timeout_s = atof(v);
    else if (ARG("--bg-rate")) opt.bg_rate = atof(v);
    else if (ARG("--search-secs")) opt.search_secs = atof(v);
    else if (!strcmp(a, "--no-register")) opt.no_register = true;
    else if (!strcmp(a, "--no-search")) opt.no_search = true;
    else if (!strcmp(a, "--gt-only")) gt_only = true;
    else if (ARG("--verify-gt")) verify_gt = atol(v);
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage();
      return 0;
    } else {
      usage();
      die("unknown argument '%s'", a);
    }
  }
  if (!gt_only && (opt.port <= 0 || opt.port > 65535)) die("--port is required");
  if (strcmp(opt.host, "127.0.0.1") != 0 && strcmp(opt.host, "localhost") != 0 &&
      strncmp(opt.host, "127.", 4) != 0)
    die("loopback targets only (127.0.0.0/8), not %s", opt.host);
  if (!strcmp(opt.host, "localhost")) opt.host = "127.0.0.1";
  if (opt.n < 1 || opt.dim < 1 || opt.dim > 4096 || opt.clusters < 1 || opt.queries < 0 ||
      opt.start < 0 || opt.start > opt.n || opt.conns < 1 || opt.conns > MAX_CONNS || opt.limit < 1)
    die("bad sizes");
  if (opt.n > INT32_MAX) die("--n too large");
  if (opt.limit < K) fprintf(stderr, "search_bench: note: --limit %ld < %d: recall@%d is capped\n", opt.limit, K, K);

  double t = now_s();
  make_centres();
  make_prefix();
  float *base = malloc(sizeof(float) * (size_t)opt.n * (size_t)opt.dim); /* only touched if needed */
  float *qs = malloc(sizeof(float) * (size_t)(opt.queries + 1) * (size_t)opt.dim);
  int32_t *qq7 = malloc(sizeof(int32_t) * (size_t)(opt.queries + 1) * (size_t)opt.dim);
  int32_t *gt = malloc(sizeof(int32_t) * K * (size_t)(opt.queries + 1));
  float *gt_sim = malloc(sizeof(float) * K * (size_t)(opt.queries + 1));
  if (!base || !qs || !qq7 || !gt || !gt_sim) die("out of memory");
  generate(STREAM_QUERY, opt.queries, qs, qq7);

  bool need_base = !opt.no_search || gt_only;
  bool have_gt = opt.gt_cache && gt_load(opt.gt_cache, gt, gt_sim);
  int32_t *rq7 = NULL;
  if (!opt.no_register && !gt_only) {
    rq7 = malloc(sizeof(int32_t) * (size_t)opt.n * (size_t)opt.dim);
    if (!rq7) die("out of memory");
  }
  if ((need_base && !have_gt) || rq7)
    generate(STREAM_SHARD, opt.n, need_base && !have_gt ? base : NULL, rq7);
  fprintf(stderr, "search_bench: generated %ld x %ld (+%ld queries) in %.1f s\n", opt.n, opt.dim,
          opt.queries, now_s() - t);
  if (need_base && !have_gt) {
    t = now_s();
    exact_topk(base, qs, gt, gt_sim);
    fprintf(stderr, "search_bench: exact top-%d of %ld queries over %ld vectors in %.1f s\n", K,
            opt.queries, opt.n, now_s() - t);
    if (opt.gt_cache) gt_save(opt.gt_cache, gt, gt_sim);
    /* self-check: plain double-precision scans for the first few queries */
    for (long q = 0; q < verify_gt && q < opt.queries; q++) {
      scored best[K];
      for (int k = 0; k < K; k++) best[k] = (scored){-2, -1};
      for (long i = 0; i < opt.n; i++) {
        double s = 0, nq = 0, nv = 0;
        for (long d = 0; d < opt.dim; d++) {
          s += (double)qs[q * opt.dim + d] * base[i * opt.dim + d];
          nq += (double)qs[q * opt.dim + d] * qs[q * opt.dim + d];
          nv += (double)base[i * opt.dim + d] * base[i * opt.dim + d];
        }
        s /= sqrt(nq) * sqrt(nv);
        if (s <= best[K - 1].s) continue;
        int k = K - 1;
        while (k > 0 && best[k - 1].s < s) best[k] = best[k - 1], k--;
        best[k] = (scored){s, (int32_t)i};
      }
      for (int k = 0; k < K; k++)
        if (best[k].id != gt[q * K + k])
          die("exact top-%d self-check failed at query %ld rank %d: %d vs %d", K, q, k, best[k].id,
              gt[q * K + k]);
    }
    if (verify_gt) fprintf(stderr, "search_bench: exact top-%d self-check passed (%ld queries)\n", K, verify_gt);
  } else if (have_gt) {
    fprintf(stderr, "search_bench: exact top-%d loaded from %s\n", K, opt.gt_cache);
  }
  free(base);
  double sim1 = 0, sim10 = 0;
  for (long q = 0; q < opt.queries; q++) sim1 += gt_sim[q * K], sim10 += gt_sim[q * K + K - 1];
  if (opt.queries > 0) {
    sim1 /= (double)opt.queries;
    sim10 /= (double)opt.queries;
    fprintf(stderr, "search_bench: exact neighbours of the queries: mean cosine %.4f at rank 1, %.4f at rank %d\n",
            sim1, sim10, K);
  }
  if (gt_only) {
    printf("RESULT search_bench_gt n=%ld queries=%ld sim1=%.4f sim10=%.4f\n", opt.n, opt.queries, sim1, sim10);
    return 0;
  }

  mem_info m0 = read_mem();
  double reg_secs = 0, tenth[10] = {0};
  long reg_n = opt.n - opt.start;
  if (!opt.no_register && reg_n > 0) {
    fprintf(stderr, "search_bench: registering %ld shards over %ld connections\n", reg_n, opt.conns);
    reg_secs = register_all(rq7, tenth);
    free(rq7);
  }
  double reg_rate = reg_secs > 0 ? (double)reg_n / reg_secs : 0;
  double reg_p50 = 0, reg_p99 = 0;
  if (reg_secs > 0) {
    qsort(reg_lat, (size_t)reg_n, sizeof *reg_lat, cmp_double);
    reg_p50 = pct(reg_lat, reg_n, 50) * 1e6;
    reg_p99 = pct(reg_lat, reg_n, 99) * 1e6;
    fprintf(stderr, "search_bench: registered %ld in %.1f s: %.0f shards/s (p50 %.1f ms, p99 %.1f ms), errors %ld\n",
            reg_n, reg_secs, reg_rate, reg_p50 / 1e3, reg_p99 / 1e3, reg_errors);
    fprintf(stderr, "search_bench: shards/s per tenth:");
    for (int k = 0; k < 10; k++) fprintf(stderr, " %.0f", tenth[k]);
    fprintf(stderr, "\n");
  }

  double cpu_used = 0, settle_s = 0;
  if (opt.pid) {
    settle_s = settle(&cpu_used);
    fprintf(stderr, "search_bench: index settled %.0f s after registration (tracker CPU %.1f s)\n",
            settle_s, cpu_used);
  }
  mem_info m1 = read_mem();

  int fd = -1;
  buf body = {0}, reply = {0};
  int status = http_do(&fd, "GET", "/metrics", NULL, &reply, NULL);
  long idx_size = status == 200 ? metric_value(reply.p, "synapse_vector_index_size") : -1;
  long shards_total = status == 200 ? metric_value(reply.p, "synapse_shards_total") : -1;
  int failures = 0;
  if (idx_size != opt.n || shards_total != opt.n) {
    fprintf(stderr, "search_bench: /metrics: synapse_vector_index_size %ld, synapse_shards_total %ld, expected %ld\n",
            idx_size, shards_total, opt.n);
    failures++;
  }

  double p50 = 0, p99 = 0, mean = 0, maxl = 0, recall = 0, recall_tol = 0;
  long search_errors = 0, short_replies = 0;
  if (!opt.no_search && opt.queries > 0) {
    float *wq = malloc(sizeof(float) * (size_t)opt.dim);
    int32_t *wq7 = malloc(sizeof(int32_t) * (size_t)opt.dim);
    for (long w = 0; w < opt.warmup; w++) {
      make_point(STREAM_WARMUP, (uint64_t)w, wq, wq7);
      body.len = 0;
      buf_printf(&body, "{\"limit\":%ld,\"filters\":{\"model\":\"%s\"},\"embedding\":", opt.limit, opt.model);
      add_embedding(&body, wq7);
      buf_add(&body, "}", 1);
      if (http_do(&fd, "POST", "/api/search/embedding", &body, &reply, NULL) != 200) search_errors++;
    }
    long cap = opt.queries, nq = 0;
    double *lat = malloc(sizeof(double) * (size_t)cap);
    long hits_ok = 0, hits_tol = 0;
    if (opt.bg_rate > 0 && pthread_create(&bg.thread, NULL, bg_main, NULL)) die("pthread_create");
    double search_t0 = now_s();
    for (long qn = 0;; qn++) {
      if (qn >= opt.queries && (opt.search_secs <= 0 || now_s() - search_t0 >= opt.search_secs)) break;
      long q = qn % opt.queries;
      if (nq == cap) {
        cap *= 2;
        lat = realloc(lat, sizeof(double) * (size_t)cap);
        if (!lat) die("out of memory");
      }
      body.len = 0;
      buf_printf(&body, "{\"limit\":%ld,\"filters\":{\"model\":\"%s\"},\"embedding\":", opt.limit, opt.model);
      add_embedding(&body, qq7 + q * opt.dim);
      buf_add(&body, "}", 1);
      double el = 0;
      int st = http_do(&fd, "POST", "/api/search/embedding", &body, &reply, &el);
      lat[nq++] = el;
      if (st != 200) {
        if (search_errors++ < 5) fprintf(stderr, "search_bench: search %ld: HTTP %d %s\n", q, st, reply.p ? reply.p : "");
        continue;
      }
      long ids[1024];
      int n = parse_hits(reply.p, ids, 1024);
      if (n < (opt.limit < K ? opt.limit : K) && n < opt.n) short_replies++;
      for (int a = 0; a < n && a < K; a++) {
        bool in_set = false;
        for (int b = 0; b < K && !in_set; b++) in_set = ids[a] >= 0 && ids[a] == gt[q * K + b];
        if (in_set) {
          hits_ok++;
          hits_tol++;
        } else if (ids[a] >= 0 && ids[a] < opt.n) {
          /* a tie with the exact 10th (float vs double rounding) also counts, in recall_tol */
          make_point(STREAM_SHARD, (uint64_t)ids[a], wq, NULL);
          double nv = 0;
          for (long d = 0; d < opt.dim; d++) nv += (double)wq[d] * wq[d];
          if (cos_double(qs + q * opt.dim, wq, sqrt(nv)) >= gt_sim[q * K + K - 1] - 1e-6) hits_tol++;
        }
      }
    }
    double search_span = now_s() - search_t0;
    if (opt.bg_rate > 0) {
      atomic_store(&bg.stop, true);
      pthread_join(bg.thread, NULL);
      fprintf(stderr,
              "search_bench: background: %ld registrations in %.1f s (%.0f/s), %ld errors, slowest %.1f ms\n",
              bg.sent, search_span, (double)bg.sent / search_span, bg.errors, bg.max_lat * 1e3);
    }
    recall = (double)hits_ok / (double)(K * nq);
    recall_tol = (double)hits_tol / (double)(K * nq);
    for (long q = 0; q < nq; q++) mean += lat[q];
    mean /= (double)nq;
    qsort(lat, (size_t)nq, sizeof *lat, cmp_double);
    p50 = pct(lat, nq, 50) * 1e6;
    p99 = pct(lat, nq, 99) * 1e6;
    maxl = lat[nq - 1] * 1e6;
    mean *= 1e6;
    fprintf(stderr,
            "search_bench: %ld queries, one at a time: p50 %.2f ms, p99 %.2f ms, mean %.2f ms, max %.2f ms; recall@%d %.4f (with ties within 1e-6: %.4f); errors %ld, short replies %ld\n",
            nq, p50 / 1e3, p99 / 1e3, mean / 1e3, maxl / 1e3, K, recall, recall_tol, search_errors,
            short_replies);
    free(lat);
    free(wq);
    free(wq7);
  }
  if (fd >= 0) close(fd);

  printf("RESULT search_bench label=%s n=%ld registered=%ld reg_secs=%.2f reg_rate=%.1f reg_p50_us=%.0f "
         "reg_p99_us=%.0f reg_errors=%ld settle_secs=%.1f settle_cpu_secs=%.1f rss_empty_kb=%ld rss_kb=%ld "
         "rss_anon_kb=%ld rss_file_kb=%ld hwm_kb=%ld index_size=%ld shards_total=%ld queries=%ld p50_us=%.0f "
         "p99_us=%.0f mean_us=%.0f max_us=%.0f recall10=%.4f recall10_ties=%.4f search_errors=%ld short_replies=%ld\n",
         opt.label, opt.n, opt.no_register ? 0 : reg_n, reg_secs, reg_rate, reg_p50, reg_p99, reg_errors,
         settle_s, cpu_used, m0.rss_kb, m1.rss_kb, m1.anon_kb, m1.file_kb, m1.hwm_kb, idx_size,
         shards_total, opt.no_search ? 0 : opt.queries, p50, p99, mean, maxl, recall, recall_tol, search_errors,
         short_replies);
  free(body.p);
  free(reply.p);
  return (reg_errors || search_errors || failures || settle_s < 0) ? 1 : 0;
}
