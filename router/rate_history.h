/* The router's recent request rates, for the status page's charts (GET /cluster/history).
 *
 * A fixed ring of SYN_RATE_HISTORY_CAP points, one per sample: each point is the rate of
 * every series (announces, scrapes, searches, registrations per second) over the interval
 * since the sample before, computed from the router's cumulative counters. Memory is
 * bounded whatever the uptime (the oldest point is overwritten); nothing is kept on disk.
 *
 * The router samples once a second on its loop's timer, so the ring covers the last
 * SYN_RATE_HISTORY_CAP seconds. A late timer (a busy loop) yields one point over the
 * longer interval, with the average rate and its real time, never invented points. A
 * counter that went backwards (it cannot in one process, but a caller might restart it)
 * counts as no requests rather than an enormous rate.
 *
 * Pure: `now_ms` (any monotonic clock) is passed in; no locks (loop thread only). */
#ifndef SYN_ROUTER_RATE_HISTORY_H
#define SYN_ROUTER_RATE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

enum {
  SYN_RATE_ANNOUNCES = 0, /* HTTP and UDP announces */
  SYN_RATE_SCRAPES,       /* HTTP and UDP scrapes */
  SYN_RATE_SEARCHES,      /* /api/search and /api/search/embedding */
  SYN_RATE_REGISTRATIONS, /* /api/register */
  SYN_RATE_SERIES
};

/* Five minutes at one sample a second: 300 x 40 bytes. */
#define SYN_RATE_HISTORY_CAP 300

typedef struct syn_rate_point {
  uint64_t t_ms;               /* when the interval ended */
  float rate[SYN_RATE_SERIES]; /* per second over the interval */
} syn_rate_point;

typedef struct syn_rate_history {
  syn_rate_point points[SYN_RATE_HISTORY_CAP];
  uint32_t head;  /* index of the next point written */
  uint32_t count; /* points held, at most SYN_RATE_HISTORY_CAP */
  int primed;     /* a first sample was taken: last_* hold it */
  uint64_t last_t_ms;
  uint64_t last[SYN_RATE_SERIES];
} syn_rate_history;

/* The series' names, as /cluster/history lists them. */
const char *syn_rate_series_name(int series);

/* Empties `h` (all zero is empty too). */
void syn_rate_history_init(syn_rate_history *h);

/* Takes a sample of the cumulative `totals` at `now_ms`. The first sample only primes;
 * each later one adds a point, unless no time passed since the last (ignored). */
void syn_rate_history_sample(syn_rate_history *h, uint64_t now_ms,
                             const uint64_t totals[SYN_RATE_SERIES]);

/* Copies up to `cap` of the newest points, oldest first, into `out`; returns how many. */
size_t syn_rate_history_points(const syn_rate_history *h, syn_rate_point *out, size_t cap);

#endif
