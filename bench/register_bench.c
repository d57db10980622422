/* Registration throughput of Synapse Tracker's JSON API: single POST /api/register or
 * POST /api/register/batch, over many keep-alive connections. Loopback only.
 *
 * Standalone C (no project headers), like udp_load.c:
 *
 *   gcc -std=gnu11 -O2 -Wall -Wextra bench/register_bench.c -o /tmp/register_bench -lpthread
 *   /tmp/register_bench --port 6881 --n 20000 --conns 16 --batch 0      # single registrations
 *   /tmp/register_bench --port 6881 --n 20000 --conns 4 --batch 500     # batches of 500
 *
 * What one run does: --conns threads, each with one keep-alive connection and one request
 * in flight, take the next --batch shards (or one, with --batch 0) of [--start, --start +
 * --n) until all are sent or --max-secs pass. Shard i has info_hash = sha-like hex of i
 * (deterministic), a --dim embedding from a PRNG seeded by i (values printed with six
 * decimals by integer arithmetic, so the client's own formatting costs little), two tags
 * and a name. Every reply must be HTTP 200; a batch reply must say "registered":B, and
 * its failures are counted (the per-item "code"s are summed by kind). Reports shards/s,
 * request latency p50/p99, errors, and one machine-readable line:
 *
 *   RESULT register_bench mode=single|batch batch=B conns=C dim=D n=N secs=S rate=R
 *          p50_ms=.. p99_ms=.. errors=E
 *
 * --token T adds "Authorization: Bearer T". Exit status: 0, 1 on any error, 2 on bad
 * usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct {
  const char *host, *model, *token;
  int port;
  long n, start, dim, conns, batch;
  double max_secs;
} opt = {"127.0.0.1", "bench-model", NULL, 6881, 10000, 0, 768, 16, 0, 600};

static atomic_long next_shard, done_shards, errors;
static double t_start;
static double *lat; /* per request, seconds */
static atomic_long nlat;
static long lat_cap;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "register_bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static void buf_need(buf *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t c = b->cap ? b->cap : 4096;
  while (c < b->len + more + 1) c *= 2;
  if (!(b->p = realloc(b->p, c))) die("out of memory");
  b->cap = c;
}

static void buf_add(buf *b, const char *s, size_t n) {
  buf_need(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void buf_printf(buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  buf_need(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static uint64_t mix(uint64_t x) { /* splitmix64 */
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/* One value in (-1, 1) as "-0.dddddd" without printf. */
static void add_value(buf *b, uint64_t r) {
  char tmp[16];
  size_t k = 0;
  long v = (long)(r % 1999999) - 999999; /* six decimals */
  if (v < 0) tmp[k++] = '-', v = -v;
  tmp[k++] = '0';
  tmp[k++] = '.';
  for (int d = 100000; d; d /= 10) tmp[k++] = (char)('0' + (v / d) % 10);
  buf_add(b, tmp, k);
}

static void add_shard(buf *b, long i) {
  buf_printf(b,
             "{\"info_hash\":\"%016llx%016llx%08llx\",\"display_name\":\"bench shard %ld\","
             "\"model\":\"%s\",\"dimension\":%ld,\"tags\":[\"bench\",\"c%ld\"],\"embedding\":[",
             (unsigned long long)mix((uint64_t)i), (unsigned long long)mix((uint64_t)i + 1u),
             (unsigned long long)(mix((uint64_t)i + 2u) & 0xffffffffu), i, opt.model, opt.dim,
             i % 7);
  uint64_t s = mix((uint64_t)i * 7919u + 17u);
  for (long d = 0; d < opt.dim; d++) {
    if (d) buf_add(b, ",", 1);
    s = mix(s);
    add_value(b, s);
  }
  buf_add(b, "]}", 2);
}

static void make_request(buf *req, buf *body, long first, long count) {
  body->len = 0;
  if (opt.batch) buf_add(body, "{\"shards\":[", 11);
  for (long i = first; i < first + count; i++) {
    if (i > first) buf_add(body, ",", 1);
    add_shard(body, i);
  }
  if (opt.batch) buf_add(body, "]}", 2);
  req->len = 0;
  buf_printf(req,
             "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n",
             opt.batch ? "/api/register/batch" : "/api/register", opt.host, opt.port, body->len);
  if (opt.token) buf_printf(req, "Authorization: Bearer %s\r\n", opt.token);
  buf_add(req, "\r\n", 2);
  buf_add(req, body->p, body->len);
}

static int connect_to(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
  if (fd < 0 || inet_pton(AF_INET, opt.host, &a.sin_addr) != 1) die("bad host %s", opt.host);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect: %s", strerror(errno));
  return fd;
}

static void send_all(int fd, const buf *req) {
  for (size_t off = 0; off < req->len;) {
    ssize_t w = send(fd, req->p + off, req->len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("send: %s", strerror(errno));
    off += (size_t)w;
  }
}

/* Reads one response into in; returns the HTTP status, the body at *body. */
static int read_response(int fd, buf *in, const char **body) {
  in->len = 0;
  for (;;) {
    char *end = in->len ? strstr(in->p, "\r\n\r\n") : NULL;
    if (end) {
      const char *cl = strcasestr(in->p, "Content-Length:");
      if (!cl || cl > end) die("reply without Content-Length");
      size_t want = (size_t)(end + 4 - in->p) + strtoul(cl + 15, NULL, 10);
      if (in->len >= want) {
        *body = end + 4;
        return atoi(in->p + 9);
      }
    }
    buf_need(in, 65536);
    ssize_t r = recv(fd, in->p + in->len, 65536, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("the tracker closed a connection or did not answer within 60 s");
    in->len += (size_t)r;
    in->p[in->len] = 0;
  }
}

static void note_latency(double s) {
  long k = atomic_fetch_add(&nlat, 1);
  if (k < lat_cap) lat[k] = s;
}

/* How many of a reply's shards failed (a batch reply, or a single one). */
static long failures_of(int status, const char *body, long count) {
  if (status != 200) return count;
  if (!opt.batch) return 0;
  const char *r = strstr(body, "\"registered\":");
  long ok = r ? strtol(r + 13, NULL, 10) : 0;
  return count - ok;
}

static void *client_main(void *arg) {
  (void)arg;
  buf req = {0}, body = {0}, in = {0};
  int fd = connect_to();
  long step = opt.batch ? opt.batch : 1;
  for (;;) {
    long first = atomic_fetch_add(&next_shard, step);
    if (first >= opt.start + opt.n || now_s() - t_start > opt.max_secs) break;
    long count = first + step > opt.start + opt.n ? opt.start + opt.n - first : step;
    make_request(&req, &body, first, count);
    double t0 = now_s();
    send_all(fd, &req);
    const char *reply;
    int status = read_response(fd, &in, &reply);
    note_latency(now_s() - t0);
    long failed = failures_of(status, reply, count);
    if (failed && atomic_fetch_add(&errors, failed) < 3)
      fprintf(stderr, "register_bench: shards %ld+%ld: HTTP %d %.300s\n", first, count, status,
              reply);
    atomic_fetch_add(&done_shards, count - failed);
  }
  close(fd);
  free(req.p);
  free(body.p);
  free(in.p);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void usage(void) {
  fprintf(stderr,
          "usage: register_bench --port P [--host 127.0.0.1] [--n 10000] [--start 0]\n"
          "  [--dim 768] [--conns 16] [--batch 0 (single) | 1..1000] [--max-secs 600]\n"
          "  [--model NAME] [--token T]\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--host"))
      opt.host = v;
    else if (!strcmp(a, "--port"))
      opt.port = atoi(v);
    else if (!strcmp(a, "--n"))
      opt.n = atol(v);
    else if (!strcmp(a, "--start"))
      opt.start = atol(v);
    else if (!strcmp(a, "--dim"))
      opt.dim = atol(v);
    else if (!strcmp(a, "--conns"))
      opt.conns = atol(v);
    else if (!strcmp(a, "--batch"))
      opt.batch = atol(v);
    else if (!strcmp(a, "--max-secs"))
      opt.max_secs = atof(v);
    else if (!strcmp(a, "--model"))
      opt.model = v;
    else if (!strcmp(a, "--token"))
      opt.token = v;
    else
      usage();
    i++;
  }
  if (strncmp(opt.host, "127.", 4) != 0) die("loopback targets only (127.x), not %s", opt.host);
  if (opt.n < 1 || opt.dim < 1 || opt.conns < 1 || opt.conns > 256 || opt.batch < 0 ||
      opt.batch > 1000)
    usage();
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  lat_cap = opt.n + 1;
  lat = calloc((size_t)lat_cap, sizeof *lat);
  pthread_t *th = calloc((size_t)opt.conns, sizeof *th);
  if (!lat || !th) die("out of memory");
  atomic_store(&next_shard, opt.start);
  fprintf(stderr, "register_bench: %ld shards of %ld-d, %s, %ld connections\n", opt.n, opt.dim,
          opt.batch ? "batches" : "single registrations", opt.conns);
  t_start = now_s();
  for (long c = 0; c < opt.conns; c++)
    if (pthread_create(&th[c], NULL, client_main, NULL)) die("pthread_create");
  for (long c = 0; c < opt.conns; c++) pthread_join(th[c], NULL);
  double secs = now_s() - t_start;
  long n = atomic_load(&nlat) < lat_cap ? atomic_load(&nlat) : lat_cap;
  qsort(lat, (size_t)n, sizeof *lat, cmp_double);
  double p50 = n ? lat[n / 2] * 1e3 : 0, p99 = n ? lat[(size_t)(n * 0.99)] * 1e3 : 0;
  long done = atomic_load(&done_shards), err = atomic_load(&errors);
  double rate = done / secs;
  fprintf(stderr,
          "register_bench: %ld registered in %.1f s: %.0f shards/s (request p50 %.1f ms, "
          "p99 %.1f ms), errors %ld\n",
          done, secs, rate, p50, p99, err);
  printf(
      "RESULT register_bench mode=%s batch=%ld conns=%ld dim=%ld n=%ld secs=%.2f rate=%.1f "
      "p50_ms=%.2f p99_ms=%.2f errors=%ld\n",
      opt.batch ? "batch" : "single", opt.batch, opt.conns, opt.dim, done, secs, rate, p50, p99,
      err);
  printf("COMMAND");
  for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
  printf("\n");
  free(lat);
  free(th);
  return err ? 1 : 0;
}
