/* swim_sim: the membership and the ring at 10 to 1,000 members, measured in simulation.
 *
 * Usage: swim_sim [--sizes 10,100,300,1000] [--seed S] [--only WHAT] [--trials T]
 *                 [--trials-large T] [--fp-member-hours H] [--fp-budget B] [--delay MS]
 *                 [--jitter MS] [--slow-members K]
 *   WHAT: load, crash, join, fp, slow, ring (comma-separated; default all)
 *
 * Every member is a real cluster/swim.c machine with the default membership
 * configuration; cluster/sim.h is the network and the clock (deterministic from the
 * seed). For each size it reports:
 *   load   messages and bytes (encoded by cluster/gossip_wire.c) per member per second in
 *          a quiet, converged cluster, by kind;
 *   crash  crash -> first suspicion, first death, death known to every member (median,
 *          p99, mean), in ms and protocol periods, over T crashes one after another
 *          (each crashed member is restarted once everyone knows, and rejoins);
 *   join   a new member -> alive in every member's view;
 *   fp     false positives with no crash at all, at 1% and 5% loss, Lifeguard on and off:
 *          distinct (member, incarnation) declared dead anywhere, and refutations (each
 *          one a member that heard itself suspected), per member-hour;
 *   slow   the Lifeguard paper's case (slow message processing): K members at a time
 *          (at most 16) receive every message late for a while; false deaths of healthy
 *          members with Lifeguard on, off, and each component off alone;
 *   ring   partition spread (max/mean of primaries and of replica slots) at P = 1024,
 *          4096, 16384, and the share of primaries and slots that move on a join and on a
 *          leave, for the same member ids.
 * Figures go to docs/benchmarks.md ("Membership at scale"). */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/ring.h"
#include "cluster/sim.h"

#define MAX_SIZES 8
#define PERIOD_MS 400.0 /* the default probe interval: one protocol period */

typedef struct options {
  size_t sizes[MAX_SIZES], n_sizes;
  uint64_t seed;
  unsigned trials;
  unsigned trials_large; /* crashes at 1,000 members and more */
  double fp_member_hours, fp_budget;
  unsigned slow_members; /* members slow at once in `slow` (0: 1 below 100 members, else 4) */
  uint32_t delay_ms, jitter_ms;
  bool load, crash, join, fp, slow, ring;
} options;

/* ---- observation: what the change callback records ---- */

typedef struct watch {
  long target; /* member watched, or -1 */
  uint64_t since;
  uint64_t first_suspect, first_dead; /* 0: not yet */
  bool *seen;                         /* per observer: reached the watched state */
  size_t n_seen;
  int want; /* SYN_MEMBER_DEAD (a crash) or SYN_MEMBER_ALIVE (a join) */
  /* false positives: distinct (victim, incarnation) declared dead anywhere */
  bool fp_on;
  uint64_t *deaths_seen;  /* per observer: its deaths counter when last looked at */
  uint64_t *dead_mark;    /* per victim: highest incarnation declared dead, plus one */
  uint64_t *healthy_from; /* per victim: time from which it counts as healthy */
  uint64_t fp_healthy, fp_unhealthy;
  size_t cap;
} watch;

static void watch_init(watch *w, size_t cap) {
  memset(w, 0, sizeof *w);
  w->target = -1;
  w->cap = cap;
  w->seen = calloc(cap, sizeof *w->seen);
  w->deaths_seen = calloc(cap, sizeof *w->deaths_seen);
  w->dead_mark = calloc(cap, sizeof *w->dead_mark);
  w->healthy_from = calloc(cap, sizeof *w->healthy_from);
  if (!w->seen || !w->deaths_seen || !w->dead_mark || !w->healthy_from) abort();
}

static void watch_free(watch *w) {
  free(w->seen);
  free(w->deaths_seen);
  free(w->dead_mark);
  free(w->healthy_from);
}

static void watch_start(watch *w, syn_sim *sim, long target, int want) {
  w->target = target;
  w->since = syn_sim_now(sim);
  w->first_suspect = w->first_dead = 0;
  w->want = want;
  memset(w->seen, 0, w->cap * sizeof *w->seen);
  w->n_seen = 0;
}

static void observe_target(watch *w, syn_sim *sim, size_t node) {
  int st = syn_sim_state(sim, node, (size_t)w->target, NULL);
  uint64_t now = syn_sim_now(sim);
  if (w->want == SYN_MEMBER_DEAD) {
    if (st == SYN_MEMBER_SUSPECT && !w->first_suspect) w->first_suspect = now;
    if (st == SYN_MEMBER_DEAD && !w->first_dead) w->first_dead = now;
    if (st == SYN_MEMBER_DEAD && !w->first_suspect) w->first_suspect = now;
  }
  if (st == w->want && !w->seen[node]) {
    w->seen[node] = true;
    w->n_seen++;
  }
}

/* A death declared by `node` that is new here: every member it holds dead is looked at
 * (only when its deaths counter moved, which is rare without crashes). */
static void observe_deaths(watch *w, syn_sim *sim, size_t node) {
  syn_membership_stats st = {0};
  syn_swim_stats_add(syn_sim_swim(sim, node), &st);
  if (st.deaths == w->deaths_seen[node]) return;
  w->deaths_seen[node] = st.deaths;
  for (size_t j = 0; j < syn_sim_count(sim); j++) {
    uint64_t inc;
    if (j == node || syn_sim_state(sim, node, j, &inc) != SYN_MEMBER_DEAD) continue;
    if (inc + 1 <= w->dead_mark[j]) continue;
    w->dead_mark[j] = inc + 1;
    if (syn_sim_now(sim) >= w->healthy_from[j])
      w->fp_healthy++;
    else
      w->fp_unhealthy++;
  }
}

static void on_change(void *ctx, syn_sim *sim, size_t node) {
  watch *w = ctx;
  if (w->target >= 0 && (size_t)w->target != node) observe_target(w, sim, node);
  if (w->fp_on) observe_deaths(w, sim, node);
}

/* ---- helpers ---- */

static size_t live_count(const syn_sim *sim) {
  size_t n = 0;
  for (size_t i = 0; i < syn_sim_count(sim); i++) n += syn_sim_up(sim, i);
  return n;
}

/* Whether every live member holds every live member alive. */
static bool converged(const syn_sim *sim) {
  size_t n = syn_sim_count(sim);
  for (size_t i = 0; i < n; i++) {
    if (!syn_sim_up(sim, i)) continue;
    for (size_t j = 0; j < n; j++)
      if (syn_sim_up(sim, j) && syn_sim_state(sim, i, j, NULL) != SYN_MEMBER_ALIVE) return false;
  }
  return true;
}

/* Runs until converged (checked every second), at most limit_ms; the time taken or 0. */
static uint64_t run_to_convergence(syn_sim *sim, uint64_t limit_ms) {
  uint64_t t0 = syn_sim_now(sim);
  while (syn_sim_now(sim) - t0 < limit_ms) {
    syn_sim_run_until(sim, syn_sim_now(sim) + 1000);
    if (converged(sim)) return syn_sim_now(sim) - t0;
  }
  return 0;
}

static syn_sim_config base_config(const options *o, size_t n, size_t extra, uint64_t seed) {
  syn_sim_config c = {0};
  c.members = n;
  c.capacity = n + extra;
  c.seeds = n >= 3 ? 3 : 1;
  c.seed = seed;
  c.delay_ms = o->delay_ms;
  c.link_jitter_ms = o->delay_ms;
  c.jitter_ms = o->jitter_ms;
  syn_membership_config_defaults(&c.swim);
  return c;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

typedef struct dist {
  double median, p99, mean, max;
} dist;

static dist distribution(uint64_t *v, size_t n) {
  dist d = {0};
  if (n == 0) return d;
  qsort(v, n, sizeof *v, cmp_u64);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (double)v[i];
  d.median = n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
  size_t k = (size_t)ceil(0.99 * (double)n);
  d.p99 = (double)v[(k ? k : 1) - 1];
  d.mean = sum / (double)n;
  d.max = (double)v[n - 1];
  return d;
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A started, converged cluster with its watch attached; NULL if it did not converge. */
static syn_sim *start_cluster(const syn_sim_config *c, watch *w, uint64_t *formed_ms) {
  syn_sim *sim = syn_sim_new(c);
  if (!sim) return NULL;
  watch_init(w, c->capacity);
  syn_sim_set_on_change(sim, on_change, w);
  uint64_t t = run_to_convergence(sim, 300000);
  if (formed_ms) *formed_ms = t;
  if (t == 0) {
    fprintf(stderr, "swim_sim: %zu members did not converge in 300 s\n", c->members);
    syn_sim_free(sim);
    watch_free(w);
    return NULL;
  }
  return sim;
}

/* ---- load ---- */

static const char *const kind_names[SYN_SIM_KINDS] = {"ping",  "ping-req", "push-pull",
                                                      "leave", "gossip",   "reply"};

/* Quiet load: after the formation's gossip died down, a minute (two push-pull periods). */
static void run_load(syn_sim *sim, size_t n, uint64_t formed) {
  syn_sim_run_until(sim, syn_sim_now(sim) + 35000); /* the join's gossip dies down */
  syn_sim_counters_reset(sim);
  syn_sim_count_bytes(sim, true);
  const double secs = 60;
  syn_sim_run_until(sim, syn_sim_now(sim) + (uint64_t)(secs * 1000));
  syn_sim_counters c2;
  syn_sim_counters_get(sim, &c2);
  double msgs = 0, bytes = 0, per = (double)n * secs;
  printf("load n=%zu formed_ms=%llu", n, (unsigned long long)formed);
  for (int k = 0; k < SYN_SIM_KINDS; k++) {
    msgs += (double)c2.msgs[k];
    bytes += (double)c2.bytes[k];
    printf(" %s=%.3f/%.0fB", kind_names[k], (double)c2.msgs[k] / per, (double)c2.bytes[k] / per);
  }
  printf(" total_msgs_per_member_s=%.3f per_period=%.3f bytes_per_member_s=%.0f\n", msgs / per,
         msgs / per * PERIOD_MS / 1000.0, bytes / per);
  syn_sim_count_bytes(sim, false);
}

/* ---- crashes and joins ---- */

/* Runs until every live member but the target has reached the watched state, at most
 * limit_ms; whether they did. */
static bool run_until_seen(syn_sim *sim, watch *w, uint64_t limit_ms) {
  uint64_t t0 = syn_sim_now(sim);
  while (syn_sim_now(sim) - t0 < limit_ms) {
    syn_sim_run_until(sim, syn_sim_now(sim) + 50);
    size_t need = live_count(sim) - (syn_sim_up(sim, (size_t)w->target) ? 1 : 0);
    if (w->n_seen >= need) return true;
  }
  return false;
}

/* The last moment an observer reached the watched state is not kept per observer; the
 * loop above stops within 50 ms of it, so the all-members figure has that resolution. */
static void run_crash(const options *o, syn_sim *sim, watch *wp, size_t n, size_t seeds) {
  watch *w = wp;
  unsigned t = n >= 1000 && o->trials > o->trials_large ? o->trials_large : o->trials;
  uint64_t *sus = calloc(t, sizeof *sus), *dead = calloc(t, sizeof *dead);
  uint64_t *all = calloc(t, sizeof *all), *back = calloc(t, sizeof *back);
  if (!sus || !dead || !all || !back) abort();
  unsigned missed = 0, done = 0;
  uint64_t rng = o->seed * 2654435761u + n;
  for (unsigned k = 0; k < t; k++) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t victim = seeds + (size_t)((rng >> 33) % (n - seeds));
    syn_sim_run_until(sim, syn_sim_now(sim) + 500 + (rng >> 20) % 400); /* any phase */
    watch_start(w, sim, (long)victim, SYN_MEMBER_DEAD);
    syn_sim_crash(sim, victim);
    bool seen = run_until_seen(sim, w, 120000);
    uint64_t all_ms = syn_sim_now(sim) - w->since;
    syn_sim_restart(sim, victim);
    if (!seen || !w->first_dead) {
      missed++;
      continue;
    }
    sus[done] = w->first_suspect - w->since;
    dead[done] = w->first_dead - w->since;
    all[done] = all_ms;
    watch_start(w, sim, (long)victim, SYN_MEMBER_ALIVE);
    run_until_seen(sim, w, 120000);
    back[done++] = syn_sim_now(sim) - w->since;
    w->target = -1;
  }
  dist ds = distribution(sus, done), dd = distribution(dead, done);
  dist da = distribution(all, done), db = distribution(back, done);
  printf(
      "crash n=%zu trials=%u missed=%u first_suspect_ms median=%.0f p99=%.0f mean=%.0f "
      "(mean %.2f periods) first_dead_ms median=%.0f p99=%.0f all_dead_ms median=%.0f "
      "p99=%.0f max=%.0f rejoin_all_ms median=%.0f p99=%.0f\n",
      n, done, missed, ds.median, ds.p99, ds.mean, ds.mean / PERIOD_MS, dd.median, dd.p99,
      da.median, da.p99, da.max, db.median, db.p99);
  free(sus);
  free(dead);
  free(all);
  free(back);
}

static void run_join(syn_sim *sim, watch *w, size_t n, unsigned joins) {
  uint64_t took[16];
  unsigned done = 0, missed = 0;
  for (unsigned k = 0; k < joins; k++) {
    syn_sim_run_until(sim, syn_sim_now(sim) + 5000);
    long j = syn_sim_join(sim);
    if (j < 0) break;
    watch_start(w, sim, j, SYN_MEMBER_ALIVE);
    if (!run_until_seen(sim, w, 120000)) missed++;
    took[done++] = syn_sim_now(sim) - w->since;
    w->target = -1;
  }
  dist d = distribution(took, done);
  printf("join n=%zu joins=%u missed=%u all_know_ms median=%.0f p99=%.0f max=%.0f\n", n, done,
         missed, d.median, d.p99, d.max);
}

/* Load, crashes and joins on one formed cluster (forming 1,000 members costs 30 s). */
static void run_cluster(const options *o, size_t n) {
  watch w;
  uint64_t formed;
  unsigned joins = o->trials < 10 ? o->trials : 10;
  syn_sim_config c = base_config(o, n, joins, o->seed);
  syn_sim *sim = start_cluster(&c, &w, &formed);
  if (!sim) return;
  if (o->load) run_load(sim, n, formed);
  if (o->crash) run_crash(o, sim, &w, n, c.seeds);
  if (o->join) run_join(sim, &w, n, joins);
  syn_sim_free(sim);
  watch_free(&w);
}

/* ---- false positives ---- */

typedef struct fp_result {
  double member_hours;
  uint64_t deaths_healthy, deaths_unhealthy, refutations, suspicions;
  double wall;
} fp_result;

/* A phase of a false-positive run: a loss rate, and optionally slow periods: `slow`
 * members at a time receive every message slow_ms late for 10 s, then recover (a member
 * counts as healthy again 30 s after its slow period). */
typedef struct fp_phase {
  double loss;
  unsigned slow;
  uint32_t slow_ms;
} fp_phase;

static void rotate_slow(syn_sim *sim, watch *w, const fp_phase *ph, uint64_t *rng, size_t n,
                        long *slow_set) {
  for (unsigned k = 0; k < ph->slow; k++) {
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    slow_set[k] = (long)((*rng >> 33) % n);
    syn_sim_set_member(sim, (size_t)slow_set[k], 0, ph->slow_ms);
    w->healthy_from[slow_set[k]] = syn_sim_now(sim) + 40000;
  }
}

/* Counts from the watch and the members' counters over one phase of sim_s seconds. */
static fp_result run_phase(syn_sim *sim, watch *w, size_t n, const fp_phase *ph, uint64_t seed,
                           double sim_s) {
  fp_result r = {0};
  syn_membership_stats before, after;
  syn_sim_stats(sim, &before);
  w->fp_healthy = w->fp_unhealthy = 0;
  syn_sim_set_loss(sim, ph->loss);
  double t0 = wall_s();
  uint64_t start = syn_sim_now(sim), end = start + (uint64_t)(sim_s * 1000);
  uint64_t rng = seed ^ 0x5eed;
  long slow_set[16];
  while (syn_sim_now(sim) < end) {
    if (ph->slow) rotate_slow(sim, w, ph, &rng, n, slow_set);
    syn_sim_run_until(sim, syn_sim_now(sim) + 10000);
    for (unsigned k = 0; k < ph->slow; k++) syn_sim_set_member(sim, (size_t)slow_set[k], 0, 0);
    if (ph->slow) syn_sim_run_until(sim, syn_sim_now(sim) + 10000);
  }
  r.wall = wall_s() - t0;
  syn_sim_stats(sim, &after);
  r.member_hours = (double)n * (double)(syn_sim_now(sim) - start) / 3.6e6;
  r.deaths_healthy = w->fp_healthy;
  r.deaths_unhealthy = w->fp_unhealthy;
  r.refutations = after.refutations - before.refutations;
  r.suspicions = after.suspicions - before.suspicions;
  return r;
}

/* Simulated seconds per phase: `fp_member_hours`, but at most what keeps the cost (which
 * grows as n^2 per simulated second) within the budget: 40 s at 1,000 members. */
static double fp_seconds(const options *o, size_t n) {
  double s = o->fp_member_hours * 3600.0 / (double)n;
  double budget = o->fp_budget / ((double)n * (double)n);
  return s < budget ? s : budget;
}

static void print_fp(const char *what, size_t n, uint32_t off, const fp_phase *ph,
                     const fp_result *r) {
  printf(
      "%s n=%zu loss=%.0f%% lifeguard_off=%u slow=%u/%ums member_hours=%.1f "
      "false_deaths_healthy=%llu (%.3f/member-hour) deaths_of_slow=%llu refutations=%llu "
      "(%.2f/member-hour) suspicions_seen=%llu wall_s=%.1f\n",
      what, n, ph->loss * 100, off, ph->slow, ph->slow_ms, r->member_hours,
      (unsigned long long)r->deaths_healthy, (double)r->deaths_healthy / r->member_hours,
      (unsigned long long)r->deaths_unhealthy, (unsigned long long)r->refutations,
      (double)r->refutations / r->member_hours, (unsigned long long)r->suspicions, r->wall);
  fflush(stdout);
}

/* One formed cluster with `off` as its Lifeguard switch, run through the phases. */
static void run_fp_cluster(const options *o, size_t n, uint32_t off, const char *what,
                           const fp_phase *phases, size_t n_phases) {
  watch w;
  syn_sim_config c = base_config(o, n, 0, o->seed + 3);
  c.swim.lifeguard_off = off;
  syn_sim *sim = start_cluster(&c, &w, NULL);
  if (!sim) return;
  syn_sim_run_until(sim, syn_sim_now(sim) + 30000);
  for (size_t i = 0; i < n; i++) {
    syn_membership_stats st = {0};
    syn_swim_stats_add(syn_sim_swim(sim, i), &st);
    w.deaths_seen[i] = st.deaths;
  }
  w.fp_on = true;
  for (size_t k = 0; k < n_phases; k++) {
    fp_result r = run_phase(sim, &w, n, &phases[k], o->seed + k, fp_seconds(o, n));
    print_fp(what, n, off, &phases[k], &r);
  }
  syn_sim_free(sim);
  watch_free(&w);
}

/* Lifeguard on: no loss (below 1,000 members), 1%, 5%; off: 1%, 5%. */
static void run_fp(const options *o, size_t n) {
  static const fp_phase phases[] = {{0.0, 0, 0}, {0.01, 0, 0}, {0.05, 0, 0}};
  run_fp_cluster(o, n, 0, "fp", n < 1000 ? phases : phases + 1, n < 1000 ? 3 : 2);
  run_fp_cluster(o, n, SYN_LIFEGUARD_ALL_OFF, "fp", phases + 1, 2);
}

/* The Lifeguard paper's case: on, off, and at 100 members each component off alone. */
static void run_slow(const options *o, size_t n) {
  static const uint32_t offs[] = {0,
                                  SYN_LIFEGUARD_ALL_OFF,
                                  SYN_LIFEGUARD_NO_LHM,
                                  SYN_LIFEGUARD_NO_DOGPILE,
                                  SYN_LIFEGUARD_NO_BUDDY,
                                  SYN_LIFEGUARD_NO_DOGPILE | SYN_LIFEGUARD_NO_BUDDY};
  unsigned slow = o->slow_members ? o->slow_members : n >= 100 ? 4 : 1;
  fp_phase ph = {0.0, slow < 16 ? slow : 16, 1000};
  size_t cases = n == 100 ? sizeof offs / sizeof offs[0] : 2;
  for (size_t k = 0; k < cases; k++) run_fp_cluster(o, n, offs[k], "slow", &ph, 1);
}

/* ---- the ring ---- */

typedef struct ring_fig {
  double prim_max, slot_max; /* over the mean */
  double join_prim, join_slot, leave_prim, leave_slot;
} ring_fig;

static void spread(const syn_ring *r, double *prim_max, double *slot_max) {
  size_t n = syn_ring_node_count(r);
  uint32_t p = syn_ring_partitions(r);
  uint32_t *prim = calloc(n, sizeof *prim), *slot = calloc(n, sizeof *slot);
  if (!prim || !slot) abort();
  for (uint32_t i = 0; i < p; i++) {
    const uint16_t *idx;
    size_t k = syn_ring_replicas(r, i, &idx);
    prim[idx[0]]++;
    for (size_t j = 0; j < k; j++) slot[idx[j]]++;
  }
  uint32_t pm = 0, sm = 0;
  for (size_t i = 0; i < n; i++) {
    if (prim[i] > pm) pm = prim[i];
    if (slot[i] > sm) sm = slot[i];
  }
  *prim_max = pm / ((double)p / (double)n);
  *slot_max = sm / ((double)p * syn_ring_replication(r) / (double)n);
  free(prim);
  free(slot);
}

/* Shares of primaries that changed and of replica slots held by a node that did not
 * hold that partition before. */
static void moved(const syn_ring *a, const syn_ring *b, double *prim, double *slot) {
  uint32_t p = syn_ring_partitions(a);
  size_t pm = 0, sm = 0, total = 0;
  for (uint32_t i = 0; i < p; i++) {
    const uint16_t *ia, *ib;
    syn_ring_replicas(a, i, &ia);
    size_t nb = syn_ring_replicas(b, i, &ib);
    pm += strcmp(syn_ring_node_id(a, ia[0]), syn_ring_node_id(b, ib[0])) != 0;
    for (size_t j = 0; j < nb; j++) {
      long was = syn_ring_index_of(a, syn_ring_node_id(b, ib[j]));
      sm += was < 0 || !syn_ring_holds(a, i, (size_t)was, NULL);
    }
    total += nb;
  }
  *prim = (double)pm / p;
  *slot = (double)sm / (double)total;
}

static ring_fig ring_figures(size_t n, uint32_t partitions) {
  ring_fig f = {0};
  char(*ids)[32] = calloc(n + 1, sizeof *ids);
  const char **ptr = calloc(n + 1, sizeof *ptr);
  if (!ids || !ptr) abort();
  for (size_t i = 0; i <= n; i++) {
    snprintf(ids[i], sizeof ids[i], "synapse-node-%zu", i); /* the simulator's ids */
    ptr[i] = ids[i];
  }
  syn_ring *base = syn_ring_build(ptr, n, partitions, SYN_RING_DEFAULT_REPLICATION);
  syn_ring *grown = syn_ring_build(ptr, n + 1, partitions, SYN_RING_DEFAULT_REPLICATION);
  ptr[n / 2] = ptr[n - 1]; /* one member in the middle leaves */
  syn_ring *shrunk = syn_ring_build(ptr, n - 1, partitions, SYN_RING_DEFAULT_REPLICATION);
  if (!base || !grown || !shrunk) abort();
  spread(base, &f.prim_max, &f.slot_max);
  moved(base, grown, &f.join_prim, &f.join_slot);
  moved(base, shrunk, &f.leave_prim, &f.leave_slot);
  syn_ring_free(base);
  syn_ring_free(grown);
  syn_ring_free(shrunk);
  free(ids);
  free(ptr);
  return f;
}

static void run_ring(size_t n) {
  static const uint32_t parts[] = {SYN_RING_DEFAULT_PARTITIONS, 4096, 16384};
  for (size_t k = 0; k < 3; k++) {
    ring_fig f = ring_figures(n, parts[k]);
    printf(
        "ring n=%zu P=%u R=%u primaries_max/mean=%.2f slots_max/mean=%.2f join_moved "
        "prim=%.4f slots=%.4f (ideal %.4f) leave_moved prim=%.4f slots=%.4f (ideal %.4f)\n",
        n, parts[k], SYN_RING_DEFAULT_REPLICATION, f.prim_max, f.slot_max, f.join_prim, f.join_slot,
        1.0 / (double)(n + 1), f.leave_prim, f.leave_slot, 1.0 / (double)n);
  }
}

/* ---- main ---- */

static void set_only(options *o, const char *list) {
  o->load = strstr(list, "load") != NULL;
  o->crash = strstr(list, "crash") != NULL;
  o->join = strstr(list, "join") != NULL;
  o->fp = strstr(list, "fp") != NULL;
  o->slow = strstr(list, "slow") != NULL;
  o->ring = strstr(list, "ring") != NULL;
}

static int parse(options *o, int argc, char **argv) {
  static const size_t def[] = {10, 100, 300, 1000};
  *o = (options){.seed = 1,
                 .trials = 40,
                 .trials_large = 10,
                 .fp_member_hours = 50,
                 .fp_budget = 4e7,
                 .delay_ms = 1,
                 .jitter_ms = 2};
  memcpy(o->sizes, def, sizeof def);
  o->n_sizes = 4;
  set_only(o, "load,crash,join,fp,slow,ring");
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--sizes")) {
      o->n_sizes = 0;
      for (char *p = (char *)v; *p && o->n_sizes < MAX_SIZES;) {
        o->sizes[o->n_sizes++] = strtoul(p, &p, 10);
        if (*p == ',') p++;
      }
    } else if (!strcmp(k, "--seed")) {
      o->seed = strtoull(v, NULL, 10);
    } else if (!strcmp(k, "--only")) {
      set_only(o, v);
    } else if (!strcmp(k, "--trials")) {
      o->trials = (unsigned)atoi(v);
    } else if (!strcmp(k, "--fp-member-hours")) {
      o->fp_member_hours = atof(v);
    } else if (!strcmp(k, "--fp-budget")) {
      o->fp_budget = atof(v);
    } else if (!strcmp(k, "--slow-members")) {
      o->slow_members = (unsigned)atoi(v);
    } else if (!strcmp(k, "--trials-large")) {
      o->trials_large = (unsigned)atoi(v);
    } else if (!strcmp(k, "--delay")) {
      o->delay_ms = (uint32_t)atoi(v);
    } else if (!strcmp(k, "--jitter")) {
      o->jitter_ms = (uint32_t)atoi(v);
    } else {
      return -EINVAL;
    }
  }
  for (size_t i = 0; i < o->n_sizes; i++)
    if (o->sizes[i] < 4) return -EINVAL;
  return o->trials > 0 ? 0 : -EINVAL;
}

int main(int argc, char **argv) {
  /* A push-pull at 1,000 members is a 660 KB record array: keep such blocks in the heap
   * rather than mapping and faulting them in afresh for every message. */
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  options o;
  if (parse(&o, argc, argv) || argc % 2 == 0) {
    fprintf(stderr,
            "usage: swim_sim [--sizes 10,100,300,1000] [--seed S] [--only "
            "load,crash,join,fp,slow,ring] [--trials T] [--fp-member-hours H] "
            "[--fp-budget B] [--trials-large T] [--delay MS] [--jitter MS] [--slow-members K]\n");
    return 2;
  }
  printf("swim_sim seed=%llu link delay %u-%u ms + jitter 0-%u ms, default membership config\n",
         (unsigned long long)o.seed, o.delay_ms, 2 * o.delay_ms, o.jitter_ms);
  for (size_t i = 0; i < o.n_sizes; i++) {
    size_t n = o.sizes[i];
    double t0 = wall_s();
    if (o.ring) run_ring(n);
    if (o.load || o.crash || o.join) run_cluster(&o, n);
    if (o.fp) run_fp(&o, n);
    if (o.slow) run_slow(&o, n);
    printf("size n=%zu wall_s=%.1f\n", n, wall_s() - t0);
    fflush(stdout);
  }
  return 0;
}
