/* Cost of the per-client limiter on the announce path: nanoseconds per syn_rate_take
 * (SipHash of the address, a 4-way set probe, a refill, a take) over a table of the
 * default size, with client addresses drawn from a pool larger or smaller than it.
 *
 *   build/bench/rate_take [clients] [takes]     (defaults 100000 clients, 20M takes)
 *
 * Compare with the CPU per announce of bench/run_announce_bench.sh (microseconds). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "router/client_limits.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  unsigned clients = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
  unsigned long takes = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000000;
  if (!clients) clients = 1;
  syn_rate_rule rules[SYN_LIMIT_CLASSES] = {{200, 2000}, {50, 500}, {100, 1000}, {200, 2000}};
  syn_rate_table *t = syn_rate_table_new(65536, rules);
  if (!t) return 1;
  uint32_t x = 2463534242u;
  unsigned long allowed = 0;
  double t0 = now_s();
  for (unsigned long i = 0; i < takes; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift: a client from the pool */
    uint32_t c = x % clients;
    uint8_t ip[4] = {10, (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    allowed += syn_rate_take(t, SYN_LIMIT_ANNOUNCE, ip, 4, i / 1000); /* 1M takes/s */
  }
  double dt = now_s() - t0;
  printf("RESULT rate_take clients=%u takes=%lu ns_per_take=%.1f allowed=%lu evictions=%llu\n",
         clients, takes, dt * 1e9 / (double)takes, allowed,
         (unsigned long long)syn_rate_table_evictions(t));
  syn_rate_table_free(t);
  return 0;
}
