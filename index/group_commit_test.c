/* Group commit queue: how a group is taken (pure, a table of cases), and, with a fake
 * apply function, that requests queued while a group is being applied go together in
 * the next group, each applied exactly once and answered with its group's result. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "index/group_commit.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

/* ---- syn_group_commit_take ---- */

typedef struct take_case {
  const char *name;
  size_t sizes[6];
  size_t n;
  size_t cap;
  size_t want;
} take_case;

static const take_case k_take[] = {
    {"empty queue", {0}, 0, 8, 0},
    {"one request", {3}, 1, 8, 1},
    {"all fit", {1, 2, 3}, 3, 8, 3},
    {"stops at the cap", {4, 4, 1}, 3, 8, 2},
    {"exactly the cap", {4, 4}, 2, 8, 2},
    {"oversized first goes alone", {20, 1}, 2, 8, 1},
    {"stops at the first that does not fit", {2, 7, 1}, 3, 8, 1},
    {"zero counts as one", {0, 0, 0}, 3, 2, 2},
    {"a batch of 1000 and singles", {1000, 1, 1, 1}, 4, 1002, 3},
};

static void test_take(void **state) {
  (void)state;
  for (size_t c = 0; c < sizeof k_take / sizeof k_take[0]; c++) {
    const take_case *tc = &k_take[c];
    syn_commit_req reqs[6];
    memset(reqs, 0, sizeof reqs);
    for (size_t i = 0; i < tc->n; i++) {
      reqs[i].n = tc->sizes[i];
      reqs[i].next = i + 1 < tc->n ? &reqs[i + 1] : NULL;
    }
    size_t got = syn_group_commit_take(tc->n ? &reqs[0] : NULL, tc->cap);
    if (got != tc->want) fail_msg("%s: took %zu, want %zu", tc->name, got, tc->want);
  }
}

/* ---- the queue with a fake apply function ---- */

enum { WAITERS = 7 };

typedef struct fake {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool release; /* the first group may finish */
  bool first_running;
  size_t groups;
  size_t sizes[WAITERS + 1]; /* requests per group, in order */
  int applied[WAITERS + 1];  /* times each caller's write was applied */
  syn_group_commit *g;
} fake;

/* Each request's writes point at one int: its caller's index. The first group waits for
 * the test's release; every group returns its number (so callers see which they were
 * in). */
static int fake_apply(void *ctx, syn_commit_req *const *reqs, size_t n) {
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  size_t group = f->groups++;
  f->sizes[group] = n;
  for (size_t i = 0; i < n; i++) f->applied[*(int *)reqs[i]->writes]++;
  if (group == 0) {
    f->first_running = true;
    pthread_cond_broadcast(&f->cv);
    while (!f->release) pthread_cond_wait(&f->cv, &f->mu);
  }
  pthread_mutex_unlock(&f->mu);
  return (int)group + 100;
}

typedef struct caller {
  fake *f;
  int index;
  int rc;
} caller;

static void *caller_main(void *arg) {
  caller *c = arg;
  syn_commit_req req = {.writes = &c->index, .n = 1};
  c->rc = syn_group_commit_run(c->f->g, &req);
  return NULL;
}

static void test_queued_requests_share_a_group(void **state) {
  (void)state;
  fake f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  f.g = syn_group_commit_new(64, fake_apply, &f);
  assert_non_null(f.g);
  caller c[WAITERS + 1];
  pthread_t th[WAITERS + 1];
  c[0] = (caller){&f, 0, 0};
  assert_int_equal(pthread_create(&th[0], NULL, caller_main, &c[0]), 0);
  pthread_mutex_lock(&f.mu); /* the first caller leads a group of its own and blocks in it */
  while (!f.first_running) pthread_cond_wait(&f.cv, &f.mu);
  pthread_mutex_unlock(&f.mu);
  for (int i = 1; i <= WAITERS; i++) {
    c[i] = (caller){&f, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
  }
  while (syn_group_commit_pending(f.g) < WAITERS) sched_yield(); /* all queued behind it */
  pthread_mutex_lock(&f.mu);
  f.release = true;
  pthread_cond_broadcast(&f.cv);
  pthread_mutex_unlock(&f.mu);
  for (int i = 0; i <= WAITERS; i++) pthread_join(th[i], NULL);

  assert_int_equal(f.groups, 2);
  assert_int_equal(f.sizes[0], 1);
  assert_int_equal(f.sizes[1], WAITERS);
  assert_int_equal(c[0].rc, 100);
  for (int i = 1; i <= WAITERS; i++) assert_int_equal(c[i].rc, 101);
  for (int i = 0; i <= WAITERS; i++) assert_int_equal(f.applied[i], 1);
  uint64_t groups, requests;
  syn_group_commit_counts(f.g, &groups, &requests);
  assert_int_equal(groups, 2);
  assert_int_equal(requests, WAITERS + 1);
  assert_int_equal(syn_group_commit_pending(f.g), 0);
  syn_group_commit_free(f.g);
}

/* With a cap of 3 writes, the 7 queued single writes go in groups of 3, 3 and 1. */
static void test_cap_splits_the_queue(void **state) {
  (void)state;
  fake f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  f.g = syn_group_commit_new(3, fake_apply, &f);
  assert_non_null(f.g);
  caller c[WAITERS + 1];
  pthread_t th[WAITERS + 1];
  c[0] = (caller){&f, 0, 0};
  assert_int_equal(pthread_create(&th[0], NULL, caller_main, &c[0]), 0);
  pthread_mutex_lock(&f.mu);
  while (!f.first_running) pthread_cond_wait(&f.cv, &f.mu);
  pthread_mutex_unlock(&f.mu);
  for (int i = 1; i <= WAITERS; i++) {
    c[i] = (caller){&f, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
  }
  while (syn_group_commit_pending(f.g) < WAITERS) sched_yield();
  pthread_mutex_lock(&f.mu);
  f.release = true;
  pthread_cond_broadcast(&f.cv);
  pthread_mutex_unlock(&f.mu);
  for (int i = 0; i <= WAITERS; i++) pthread_join(th[i], NULL);
  assert_int_equal(f.groups, 4);
  assert_int_equal(f.sizes[1], 3);
  assert_int_equal(f.sizes[2], 3);
  assert_int_equal(f.sizes[3], 1);
  for (int i = 0; i <= WAITERS; i++) assert_int_equal(f.applied[i], 1);
  syn_group_commit_free(f.g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_take),
      cmocka_unit_test(test_queued_requests_share_a_group),
      cmocka_unit_test(test_cap_splits_the_queue),
  };
  return cmocka_run_group_tests_name("group_commit", tests, NULL, NULL);
}
