/* Cost of the access checks on the announce path: an info_hash looked up in a deny list
 * of N entries (router/access.h, a hash set), an address in an IP list of N CIDRs (merged
 * ranges, binary search), and the registered-shard set of tracker.registered_only
 * (node/registered.h, a striped set under read locks).
 *
 * Run: build/bench/access_lookup [N]   (default 100000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node/registered.h"
#include "router/access.h"

#define LOOKUPS 2000000

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void fill(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)next();
}

static char *write_list(size_t n, int kind) {
  char *path = strdup("/tmp/access_lookup_XXXXXX");
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  for (size_t i = 0; i < n; i++) {
    uint8_t b[20];
    fill(b, sizeof b);
    if (kind == 0) {
      for (int j = 0; j < 20; j++) fprintf(f, "%02x", b[j]);
      fputc('\n', f);
    } else if (i % 2) {
      fprintf(f, "%u.%u.%u.0/24\n", b[0], b[1], b[2]);
    } else {
      fprintf(f, "2001:%x:%x::/48\n", b[0] << 8 | b[1], b[2] << 8 | b[3]);
    }
  }
  fclose(f);
  return path;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
  char *hashes = write_list(n, 0), *ips = write_list(n, 1), err[512];
  const char *paths[SYN_ACCESS_LISTS] = {NULL, hashes, NULL, ips};
  syn_access_lists *l;
  double t0 = now_ns();
  if (syn_access_lists_load(paths, &l, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  printf("load of %zu info_hashes and %zu CIDRs: %.1f ms\n", n, n, (now_ns() - t0) / 1e6);
  static uint8_t keys[4096][20];
  fill(&keys[0][0], sizeof keys);
  size_t hits = 0;
  t0 = now_ns();
  for (size_t i = 0; i < LOOKUPS; i++) hits += syn_access_lists_hash_allowed(l, keys[i & 4095]);
  printf("info_hash lookup: %.1f ns\n", (now_ns() - t0) / LOOKUPS);
  t0 = now_ns();
  for (size_t i = 0; i < LOOKUPS; i++) {
    const uint8_t *k = keys[i & 4095];
    hits += syn_access_lists_ip_allowed(l, k, (i & 1) ? 4 : 16);
  }
  printf("address lookup (half IPv4, half IPv6): %.1f ns\n", (now_ns() - t0) / LOOKUPS);
  syn_access_lists_free(l);
  unlink(hashes);
  unlink(ips);
  free(hashes);
  free(ips);

  syn_registered *reg = syn_registered_new();
  for (size_t i = 0; i < n; i++) {
    char hex[41];
    uint8_t b[20];
    fill(b, sizeof b);
    for (int j = 0; j < 20; j++) snprintf(hex + 2 * j, 3, "%02x", b[j]);
    syn_registered_note(reg, hex, true);
  }
  t0 = now_ns();
  for (size_t i = 0; i < LOOKUPS; i++) hits += syn_registered_has(reg, keys[i & 4095]);
  printf("registered-shard lookup (%zu shards): %.1f ns\n", syn_registered_count(reg),
         (now_ns() - t0) / LOOKUPS);
  syn_registered_free(reg);
  printf("(%zu allowed)\n", hits);
  return 0;
}
