/* Microbenchmark of the swarm store (node/swarm.c): memory per peer and raw announce rate.
 *
 * Each scenario runs in a forked child so that its RSS delta is not blurred by what an
 * earlier scenario left in the allocator. A scenario inserts `peers` distinct peers (random
 * address and port) over `torrents` info_hashes whose popularity follows a Zipf law with
 * exponent `s` (s = 0: uniform), 75% of them seeders, then prints bytes per peer two ways:
 *   store  = syn_swarm_totals.peer_bytes / peers  (peer arrays, capacity included)
 *   rss    = growth of the process RSS (/proc/self/statm) / peers  (everything: swarm
 *            structs, hash tables, malloc overhead)
 * (the RSS figure again after malloc_trim, which returns pages of chunks freed while arrays
 * grew), and then the single-thread rate of steady-state re-announces (random known peer,
 * numwant 50, the announcer's own family): the store alone, no parsing, no network; the
 * harness's own random pick of a peer (a cache miss or two) is inside the timing.
 *
 * Usage: swarm_memory [peers [torrents [zipf_s [announces]]]]
 *   defaults: 1000000 100000 1.0 2000000 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node/swarm.h"
#include "node/swarm_snapshot.h"

typedef struct scenario {
  const char *name;
  size_t peers, torrents;
  double zipf_s;
  int ipv6;
  size_t announces;
} scenario;

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static long rss_bytes(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
  fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

static double secs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* x^-s for x >= 1, without libm (the CMake target links the store only): exp(-s ln x). */
static double pow_neg(double x, double s) {
  uint64_t bits;
  memcpy(&bits, &x, 8);
  int e = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((1ULL << 52) - 1)) | (1023ULL << 52);
  double m, z, z2, term, ln = 0;
  memcpy(&m, &bits, 8);  /* x = m * 2^e, 1 <= m < 2 */
  z = (m - 1) / (m + 1); /* ln m = 2 atanh z, |z| < 1/3 */
  z2 = z * z;
  term = z;
  for (int k = 1; k < 40; k += 2, term *= z2) ln += term / k;
  double y = -s * (e * 0.6931471805599453 + 2 * ln);
  int k = (int)(y / 0.6931471805599453); /* exp y = 2^k exp r, |r| < ln 2 */
  double r = y - k * 0.6931471805599453, ex = 1;
  term = 1;
  for (int i = 1; i < 30; i++) ex += term *= r / i;
  if (k < -1000) return 0;
  bits = (uint64_t)(k + 1023) << 52;
  double p2;
  memcpy(&p2, &bits, 8);
  return ex * p2;
}

typedef struct peer {
  uint32_t torrent;
  uint8_t ip[16];
  uint16_t port;
  uint8_t seeder;
} peer;

/* Warm restart cost: the store saved to a snapshot (fsynced) and loaded into a new one. */
static void snapshot_round_trip(syn_swarm_store *s, uint32_t now) {
  char path[] = "/tmp/swarm_memory_snapshot.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return;
  close(fd);
  syn_snapshot_stats sv, ld;
  char err[256] = "";
  syn_swarm_store *t = syn_swarm_store_new(syn_swarm_peer_timeout(s));
  if (t &&
      syn_swarm_snapshot_save(s, path, UINT64_MAX, now, 1700000000, syn_swarm_peer_timeout(s), &sv,
                              err, sizeof err) == 0 &&
      syn_swarm_snapshot_load(t, path, UINT64_MAX, now, 1700000000, syn_swarm_peer_timeout(s), &ld,
                              err, sizeof err) == 0)
    printf("%-24s snapshot %6.1f MiB: save %6.1f ms, load %6.1f ms (%llu peers)\n", "",
           (double)sv.bytes / 1048576.0, (double)sv.elapsed_us / 1000.0,
           (double)ld.elapsed_us / 1000.0, (unsigned long long)ld.peers);
  else
    printf("snapshot failed: %s\n", err);
  syn_swarm_store_free(t);
  unlink(path);
}

static void hash_of(uint8_t ih[20], uint32_t t) {
  uint64_t x = t * 0x9E3779B97F4A7C15ULL + 1;
  for (int i = 0; i < 20; i++) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    ih[i] = (uint8_t)(x >> 56);
  }
}

static int run(const scenario *sc) {
  /* Workload first, so that its own memory is not counted. */
  double *cdf = malloc(sc->torrents * sizeof *cdf);
  peer *pv = malloc(sc->peers * sizeof *pv);
  uint8_t(*ih)[20] = malloc(sc->torrents * 20);
  if (!cdf || !pv || !ih) return 1;
  double acc = 0;
  for (size_t i = 0; i < sc->torrents; i++) cdf[i] = acc += pow_neg((double)(i + 1), sc->zipf_s);
  for (size_t i = 0; i < sc->torrents; i++) hash_of(ih[i], (uint32_t)i);
  for (size_t i = 0; i < sc->peers; i++) {
    double u = (double)(next() >> 11) / 9007199254740992.0 * acc;
    size_t lo = 0, hi = sc->torrents - 1;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (cdf[mid] < u)
        lo = mid + 1;
      else
        hi = mid;
    }
    pv[i].torrent = (uint32_t)lo;
    uint64_t r = next();
    memcpy(pv[i].ip, &r, 8);
    r = next();
    memcpy(pv[i].ip + 8, &r, 8);
    if (!sc->ipv6) pv[i].ip[0] = (uint8_t)(1 + pv[i].ip[0] % 223);
    pv[i].ip[0] = sc->ipv6 ? 0x20 : pv[i].ip[0]; /* not ::ffff:0:0/96 */
    pv[i].port = (uint16_t)(1024 + (r >> 48) % 60000);
    pv[i].seeder = (r & 3) != 0; /* 75% seeders */
  }
  uint8_t pid[20] = "-SY0001-bench-peerid";
  enum { NUMWANT = 50 };
  static uint8_t out4[6 * NUMWANT], out6[18 * NUMWANT];
  syn_announce_result res = {.peers4 = out4, .peers6 = out6};

  syn_swarm_store *s = syn_swarm_store_new(1800);
  if (!s) return 1;
  long rss0 = rss_bytes();
  uint32_t now = 1000000;
  double t0 = secs();
  for (size_t i = 0; i < sc->peers; i++) {
    const peer *p = &pv[i];
    syn_announce req = {ih[p->torrent],
                        pid,
                        p->ip,
                        sc->ipv6 ? 16 : 4,
                        p->port,
                        SYN_EVENT_STARTED,
                        p->seeder ? 0 : 1000,
                        0,
                        0,
                        false,
                        0};
    if (syn_swarm_announce(s, &req, now, &res)) return 1;
  }
  double t_ins = secs() - t0;
  long rss1 = rss_bytes();
  malloc_trim(0); /* hand back pages of chunks freed while arrays grew and buckets split */
  long rss2 = rss_bytes();
  syn_swarm_totals t;
  syn_swarm_totals_get(s, &t);
  printf(
      "%-24s peers %7llu torrents %6llu | bytes/peer: store %4.1f, rss %4.1f"
      " (%4.1f after malloc_trim) | %u-byte records | inserts %4.2f M/s\n",
      sc->name, (unsigned long long)t.peers, (unsigned long long)t.torrents,
      (double)t.peer_bytes / (double)t.peers, (double)(rss1 - rss0) / (double)t.peers,
      (double)(rss2 - rss0) / (double)t.peers, sc->ipv6 ? SYN_SWARM_RECORD_V6 : SYN_SWARM_RECORD_V4,
      t.peers / t_ins / 1e6);
  snapshot_round_trip(s, now);

  /* Steady state: known peers re-announce, numwant 50, one family. */
  size_t returned = 0;
  t0 = secs();
  for (size_t k = 0; k < sc->announces; k++) {
    const peer *p = &pv[next() % sc->peers];
    syn_announce req = {ih[p->torrent],
                        pid,
                        p->ip,
                        sc->ipv6 ? 16 : 4,
                        p->port,
                        SYN_EVENT_NONE,
                        p->seeder ? 0 : 1000,
                        NUMWANT,
                        sc->ipv6 ? SYN_FAMILY_V6 : SYN_FAMILY_V4,
                        false,
                        0};
    if (syn_swarm_announce(s, &req, now + 1 + (uint32_t)(k >> 20), &res)) return 1;
    returned += res.peers4_count + res.peers6_count;
  }
  double t_ann = secs() - t0;
  printf("%-24s re-announces, numwant %d, one thread: %.2f M/s (%.1f peers returned on avg)\n",
         sc->name, NUMWANT, sc->announces / t_ann / 1e6, (double)returned / sc->announces);
  syn_swarm_store_free(s);
  free(cdf);
  free(pv);
  free(ih);
  return 0;
}

int main(int argc, char **argv) {
  size_t peers = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  size_t torrents = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
  double zs = argc > 3 ? strtod(argv[3], NULL) : 1.0;
  size_t ann = argc > 4 ? strtoull(argv[4], NULL, 10) : 2000000;
  if (!peers || !torrents) return 2;
  char n1[64], n2[64];
  snprintf(n1, sizeof n1, "IPv4 zipf %.2f", zs);
  snprintf(n2, sizeof n2, "IPv6 zipf %.2f", zs);
  const scenario scs[] = {
      {n1, peers, torrents, zs, 0, ann},
      {n2, peers, torrents, zs, 1, ann},
      {"IPv4 big swarms (10 x)", peers, 10, 0.0, 0, ann},
      {"IPv6 big swarms (10 x)", peers, 10, 0.0, 1, ann},
  };
  printf("swarm store: %zu peers per scenario, peer timeout 1800 s\n", peers);
  fflush(stdout);
  for (size_t i = 0; i < sizeof scs / sizeof scs[0]; i++) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      int rc = run(&scs[i]);
      fflush(stdout);
      _exit(rc);
    }
    int st;
    waitpid(pid, &st, 0);
    fflush(stdout);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
      fprintf(stderr, "scenario %s failed\n", scs[i].name);
      return 1;
    }
  }
  return 0;
}
