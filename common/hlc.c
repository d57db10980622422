/* Hybrid logical clock; see hlc.h. With the packed form, "the physical part moves on
 * when the wall clock passes it, else the counter moves" is max(last + 1, wall << 16). */
#include "common/hlc.h"

#include <time.h>

int64_t syn_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t syn_hlc_now(syn_hlc *c, int64_t wall_ms) {
  uint64_t pt = syn_hlc_from_ms(wall_ms ? wall_ms : syn_wall_ms());
  uint64_t old = atomic_load(&c->last);
  for (;;) {
    uint64_t next = old + 1 > pt ? old + 1 : pt;
    if (atomic_compare_exchange_weak(&c->last, &old, next)) return next;
  }
}

void syn_hlc_observe(syn_hlc *c, uint64_t remote) {
  uint64_t old = atomic_load(&c->last);
  while (remote > old && !atomic_compare_exchange_weak(&c->last, &old, remote)) {
  }
}

bool syn_hlc_plausible(uint64_t remote, int64_t wall_ms) {
  return syn_hlc_ms(remote) <= wall_ms + SYN_HLC_MAX_SKEW_MS;
}
