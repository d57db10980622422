/* The rate ring (router/rate_history.h): cumulative counters in, per-second rates out. */
#include "router/rate_history.h"

#include <string.h>

static const char *const series_names[SYN_RATE_SERIES] = {"announces", "scrapes", "searches",
                                                          "registrations"};

const char *syn_rate_series_name(int series) {
  return series >= 0 && series < SYN_RATE_SERIES ? series_names[series] : "";
}

void syn_rate_history_init(syn_rate_history *h) { memset(h, 0, sizeof *h); }

void syn_rate_history_sample(syn_rate_history *h, uint64_t now_ms,
                             const uint64_t totals[SYN_RATE_SERIES]) {
  if (h->primed && now_ms <= h->last_t_ms) return; /* no time passed: nothing to say */
  if (h->primed) {
    syn_rate_point *p = &h->points[h->head];
    double seconds = (double)(now_ms - h->last_t_ms) / 1000.0;
    p->t_ms = now_ms;
    for (int s = 0; s < SYN_RATE_SERIES; s++) {
      uint64_t delta = totals[s] >= h->last[s] ? totals[s] - h->last[s] : 0;
      p->rate[s] = (float)((double)delta / seconds);
    }
    h->head = (h->head + 1) % SYN_RATE_HISTORY_CAP;
    if (h->count < SYN_RATE_HISTORY_CAP) h->count++;
  }
  h->primed = 1;
  h->last_t_ms = now_ms;
  memcpy(h->last, totals, sizeof h->last);
}

size_t syn_rate_history_points(const syn_rate_history *h, syn_rate_point *out, size_t cap) {
  size_t n = h->count < cap ? h->count : cap;
  /* The newest point is just before head; the n newest start n before it. */
  size_t first = (h->head + SYN_RATE_HISTORY_CAP - n) % SYN_RATE_HISTORY_CAP;
  for (size_t i = 0; i < n; i++) out[i] = h->points[(first + i) % SYN_RATE_HISTORY_CAP];
  return n;
}
