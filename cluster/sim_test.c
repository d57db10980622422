/* Membership under faults, simulated (cluster/sim.h): thirty real SWIM machines over a
 * simulated network, each case a bounded scenario with assertions on what every member
 * ends up believing. The same simulator, at up to 1,000 members, is bench/swim_sim. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "cluster/sim.h"

#include <string.h>

#define N 30

static syn_sim_config config(uint64_t seed) {
  syn_sim_config c = {0};
  c.members = N;
  c.capacity = N + 4;
  c.seeds = 3;
  c.seed = seed;
  c.delay_ms = 1;
  c.link_jitter_ms = 2;
  c.jitter_ms = 2;
  syn_membership_config_defaults(&c.swim);
  return c;
}

/* Whether every live member holds every live member alive. */
static bool converged(const syn_sim *sim) {
  for (size_t i = 0; i < syn_sim_count(sim); i++) {
    if (!syn_sim_up(sim, i)) continue;
    for (size_t j = 0; j < syn_sim_count(sim); j++)
      if (syn_sim_up(sim, j) && syn_sim_state(sim, i, j, NULL) != SYN_MEMBER_ALIVE) return false;
  }
  return true;
}

/* Whether every live member other than `target` holds it in `state`. */
static bool all_see(const syn_sim *sim, size_t target, int state) {
  for (size_t i = 0; i < syn_sim_count(sim); i++)
    if (i != target && syn_sim_up(sim, i) && syn_sim_state(sim, i, target, NULL) != state)
      return false;
  return true;
}

/* Runs in 100 ms steps until pred holds, at most limit_ms; the time it took, or -1. */
static long run_until(syn_sim *sim, uint64_t limit_ms, bool (*pred)(const syn_sim *, size_t, int),
                      size_t target, int state) {
  uint64_t t0 = syn_sim_now(sim);
  while (syn_sim_now(sim) - t0 <= limit_ms) {
    if (pred(sim, target, state)) return (long)(syn_sim_now(sim) - t0);
    syn_sim_run_until(sim, syn_sim_now(sim) + 100);
  }
  return -1;
}

static bool converged_pred(const syn_sim *sim, size_t target, int state) { return converged(sim); }

static syn_sim *formed(uint64_t seed, const syn_sim_config *cfg) {
  syn_sim_config c = cfg ? *cfg : config(seed);
  syn_sim *sim = syn_sim_new(&c);
  assert_non_null(sim);
  assert_true(run_until(sim, 30000, converged_pred, 0, 0) >= 0);
  return sim;
}

/* Ten quiet minutes on a clean network: nobody is ever suspected. */
static void test_no_false_suspicion_without_loss(void **state) {
  syn_sim *sim = formed(11, NULL);
  syn_membership_stats a, b;
  syn_sim_stats(sim, &a);
  syn_sim_run_until(sim, syn_sim_now(sim) + 600000);
  syn_sim_stats(sim, &b);
  assert_int_equal(b.suspicions - a.suspicions, 0);
  assert_int_equal(b.refutations - a.refutations, 0);
  assert_true(b.probes - a.probes > N * 1000); /* 2.5 probes a second each */
  assert_true(converged(sim));
  syn_sim_free(sim);
}

/* Each crash is known by every other member within 15 s (probe, suspicion of at most
 * 7.1 s at 30 members, dissemination); the restarted member is back everywhere soon. */
static void test_every_crash_detected(void **state) {
  syn_sim *sim = formed(12, NULL);
  const size_t victims[] = {5, 17, 29, 3};
  for (size_t k = 0; k < 4; k++) {
    syn_sim_crash(sim, victims[k]);
    long took = run_until(sim, 15000, all_see, victims[k], SYN_MEMBER_DEAD);
    assert_true(took >= 0);
    assert_true(took >= 1200); /* at least the shortest suspicion timeout */
    assert_int_equal(syn_sim_restart(sim, victims[k]), 0);
    assert_true(run_until(sim, 20000, converged_pred, 0, 0) >= 0);
    uint64_t inc = 0;
    assert_int_equal(syn_sim_state(sim, 0, victims[k], &inc), SYN_MEMBER_ALIVE);
    assert_true(inc > 0); /* it refuted its death */
  }
  syn_sim_free(sim);
}

static void test_join_reaches_all(void **state) {
  syn_sim *sim = formed(13, NULL);
  for (int k = 0; k < 3; k++) {
    long j = syn_sim_join(sim);
    assert_true(j >= N);
    assert_true(run_until(sim, 10000, all_see, (size_t)j, SYN_MEMBER_ALIVE) >= 0);
  }
  assert_true(converged(sim));
  syn_sim_free(sim);
}

/* At 200 members every join reaches every member by gossip within 3 s, long before a
 * push-pull (every 30 s) would repair a miss: dissemination's transmissions are not
 * spent echoing news back to whoever brought it. */
static void test_join_disseminates_at_scale(void **state) {
  syn_sim_config c = config(19);
  c.members = 200;
  c.capacity = 212;
  syn_sim *sim = formed(19, &c);
  syn_sim_run_until(sim, syn_sim_now(sim) + 35000); /* the formation's news dies out */
  for (int k = 0; k < 12; k++) {
    syn_sim_run_until(sim, syn_sim_now(sim) + 3000);
    long j = syn_sim_join(sim);
    assert_true(j >= 200);
    assert_true(run_until(sim, 3000, all_see, (size_t)j, SYN_MEMBER_ALIVE) >= 0);
  }
  syn_sim_free(sim);
}

/* Two halves apart for 20 s declare each other dead; once the link is back the seeds
 * are re-contacted and everyone is alive everywhere again. */
static void test_partition_heals(void **state) {
  syn_sim *sim = formed(14, NULL);
  uint8_t side[N];
  for (size_t i = 0; i < N; i++) side[i] = i >= N / 2;
  syn_sim_partition(sim, side);
  syn_sim_run_until(sim, syn_sim_now(sim) + 20000);
  assert_int_equal(syn_sim_state(sim, 0, N - 1, NULL), SYN_MEMBER_DEAD);
  assert_int_equal(syn_sim_state(sim, N - 1, 0, NULL), SYN_MEMBER_DEAD);
  assert_int_equal(syn_sim_state(sim, 1, 2, NULL), SYN_MEMBER_ALIVE);
  syn_sim_partition(sim, NULL);
  assert_true(run_until(sim, 60000, converged_pred, 0, 0) >= 0);
  syn_sim_free(sim);
}

/* A member paused past its suspicion is declared dead, and refutes once it resumes. */
static void test_pause_then_refute(void **state) {
  syn_sim *sim = formed(15, NULL);
  syn_sim_pause(sim, 10, 12000);
  syn_sim_run_until(sim, syn_sim_now(sim) + 11000);
  assert_true(syn_sim_paused(sim, 10));
  assert_int_equal(syn_sim_state(sim, 0, 10, NULL), SYN_MEMBER_DEAD);
  syn_sim_run_until(sim, syn_sim_now(sim) + 1000);
  assert_false(syn_sim_paused(sim, 10));
  assert_true(run_until(sim, 20000, converged_pred, 0, 0) >= 0);
  assert_true(syn_swim_incarnation(syn_sim_swim(sim, 10)) > 0);
  syn_sim_free(sim);
}

/* Five minutes at 5% loss: suspicions happen and are refuted; nobody is declared dead. */
static void test_lossy_no_false_death(void **state) {
  syn_sim *sim = formed(16, NULL);
  syn_membership_stats a, b;
  syn_sim_stats(sim, &a);
  syn_sim_set_loss(sim, 0.05);
  syn_sim_run_until(sim, syn_sim_now(sim) + 300000);
  syn_sim_stats(sim, &b);
  assert_int_equal(b.deaths - a.deaths, 0);
  syn_sim_set_loss(sim, 0);
  assert_true(run_until(sim, 10000, converged_pred, 0, 0) >= 0);
  syn_sim_free(sim);
}

/* The same seed gives the same run, event for event. */
static void test_deterministic(void **state) {
  syn_sim_counters c[2];
  for (int k = 0; k < 2; k++) {
    syn_sim_config cfg = config(17);
    cfg.loss = 0.02;
    syn_sim *sim = syn_sim_new(&cfg);
    assert_non_null(sim);
    syn_sim_run_until(sim, 40000);
    syn_sim_crash(sim, 7);
    syn_sim_run_until(sim, 60000);
    syn_sim_counters_get(sim, &c[k]);
    syn_sim_free(sim);
  }
  assert_memory_equal(&c[0], &c[1], sizeof c[0]);
  assert_true(c[0].events > 10000 && c[0].lost > 0);
}

/* Lifeguard's local health: a member that hears everything a second late raises its
 * score (its probes miss their acks and its relays' nacks); with Lifeguard off it
 * cannot, and the switch leaves every other member's behaviour to plain SWIM. */
static void test_lifeguard_switch(void **state) {
  for (int off = 0; off < 2; off++) {
    syn_sim_config cfg = config(18);
    cfg.swim.lifeguard_off = off ? SYN_LIFEGUARD_ALL_OFF : 0;
    syn_sim *sim = formed(18, &cfg);
    syn_sim_set_member(sim, 4, 0, 1000);
    syn_sim_run_until(sim, syn_sim_now(sim) + 5000);
    uint32_t score = syn_swim_awareness(syn_sim_swim(sim, 4));
    if (off)
      assert_int_equal(score, 0);
    else
      assert_true(score > 0);
    syn_sim_free(sim);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_false_suspicion_without_loss),
      cmocka_unit_test(test_every_crash_detected),
      cmocka_unit_test(test_join_reaches_all),
      cmocka_unit_test(test_join_disseminates_at_scale),
      cmocka_unit_test(test_partition_heals),
      cmocka_unit_test(test_pause_then_refute),
      cmocka_unit_test(test_lossy_no_false_death),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_lifeguard_switch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
