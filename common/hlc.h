/* Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks and
 * Consistent Snapshots in Globally Distributed Databases", 2014), packed into 64 bits:
 * the wall clock in milliseconds in the upper 48 bits and a logical counter in the lower
 * 16. A timestamp from syn_hlc_now is greater than every earlier one from the same clock
 * and than every timestamp the clock has observed, and stays within the counter's reach
 * of the wall clock, so versions order writes causally across nodes whose clocks drift,
 * and still read as times.
 *
 * Thread-safe without locks (one compare-and-swap loop). */
#ifndef SYN_COMMON_HLC_H
#define SYN_COMMON_HLC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct syn_hlc {
  _Atomic uint64_t last;
} syn_hlc;

#define SYN_HLC_INIT {0}

/* Largest skew accepted from a remote timestamp: a version further ahead of our wall
 * clock comes from a broken clock (or a hostile peer) and would drag every later
 * version ahead with it. */
#define SYN_HLC_MAX_SKEW_MS (5 * 60 * 1000)

/* A new timestamp; wall_ms is the caller's CLOCK_REALTIME in ms (0: read it here). */
uint64_t syn_hlc_now(syn_hlc *c, int64_t wall_ms);

/* Makes every later syn_hlc_now greater than `remote`. */
void syn_hlc_observe(syn_hlc *c, uint64_t remote);

/* Whether `remote` is at most SYN_HLC_MAX_SKEW_MS ahead of wall_ms. */
bool syn_hlc_plausible(uint64_t remote, int64_t wall_ms);

/* The wall-clock milliseconds of a timestamp, and the first timestamp of a millisecond. */
static inline int64_t syn_hlc_ms(uint64_t t) { return (int64_t)(t >> 16); }
static inline uint64_t syn_hlc_from_ms(int64_t ms) { return ms > 0 ? (uint64_t)ms << 16 : 0; }

/* CLOCK_REALTIME in milliseconds. */
int64_t syn_wall_ms(void);

#endif
