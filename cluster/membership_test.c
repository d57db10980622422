/* Membership over real nng sockets, three members in one process, with short timings
 * (probe 100 ms): they converge; one stops without leaving and the others see it suspect,
 * then dead, within the expected window; a graceful leave; app calls; garbage on the
 * peer socket is dropped and counted; a DNS-named seed is resolved; with a cluster key,
 * members without it (or with another) neither join nor call. States are awaited by
 * polling snapshots every 10 ms up to a bounded deadline. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "cluster/membership.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/swim.h"

#define N 3
#define PROBE_MS 100

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

typedef struct cluster {
  syn_membership *m[N];
  char id[N][16];
  char url[N][64];
  const char *seeds[1];
  atomic_int changes;
  syn_membership_config cfg;
} cluster;

static syn_membership_config fast_config(void) {
  syn_membership_config c;
  syn_membership_config_defaults(&c);
  c.probe_interval_ms = PROBE_MS;
  c.probe_timeout_ms = 50;
  c.gossip_interval_ms = 20;
  c.push_pull_interval_ms = 1000;
  c.push_pull_timeout_ms = 500;
  c.seed_interval_ms = 500;
  c.join_retry_ms = 100;
  c.server_threads = 2;
  c.app_threads = 2;
  c.app_queue = 2;
  return c;
}

static void on_change(void *ctx) { atomic_fetch_add(&((cluster *)ctx)->changes, 1); }

static syn_membership *start(cluster *c, size_t i) {
  syn_membership_config cfg = c->cfg;
  cfg.self_id = c->id[i];
  cfg.peer_url = c->url[i];
  cfg.data_url = "inproc://data";
  cfg.seeds = c->seeds;
  cfg.n_seeds = 1;
  char err[256];
  syn_membership *m = syn_membership_start(&cfg, err, sizeof err);
  if (!m) fprintf(stderr, "start: %s\n", err);
  assert_non_null(m);
  syn_membership_set_on_change(m, on_change, c);
  return m;
}

static void cluster_start_with(cluster *c, const char *prefix, const syn_membership_config *cfg) {
  memset(c, 0, sizeof *c);
  c->cfg = *cfg;
  for (size_t i = 0; i < N; i++) {
    snprintf(c->id[i], sizeof c->id[i], "m%zu", i);
    snprintf(c->url[i], sizeof c->url[i], "inproc://%s-m%zu", prefix, i);
  }
  c->seeds[0] = c->url[0];
  for (size_t i = 0; i < N; i++) c->m[i] = start(c, i);
}

static void cluster_start(cluster *c, const char *prefix) {
  syn_membership_config cfg = fast_config();
  cluster_start_with(c, prefix, &cfg);
}

static void cluster_stop(cluster *c) {
  for (size_t i = 0; i < N; i++)
    if (c->m[i]) syn_membership_stop(c->m[i]);
}

/* Member `viewer`'s state for `id`; -1 when absent. */
static int state_of(syn_membership *viewer, const char *id) {
  syn_member_info all[8];
  size_t n;
  syn_membership_snapshot(viewer, all, 8, &n, NULL, NULL);
  for (size_t i = 0; i < n && i < 8; i++)
    if (strcmp(all[i].id, id) == 0) return (int)all[i].state;
  return -1;
}

/* Polls until every running member sees every member `alive_mask` selects as alive. */
static bool await_all_alive(cluster *c, unsigned alive_mask, unsigned deadline_ms) {
  uint64_t until = now_ms() + deadline_ms;
  while (now_ms() < until) {
    bool ok = true;
    for (size_t i = 0; i < N && ok; i++) {
      if (!c->m[i]) continue;
      for (size_t j = 0; j < N && ok; j++)
        if (alive_mask & (1u << j)) ok = state_of(c->m[i], c->id[j]) == SYN_MEMBER_ALIVE;
    }
    if (ok) return true;
    sleep_ms(10);
  }
  return false;
}

static void test_converge_then_failure_detected(void **state) {
  cluster c;
  cluster_start(&c, "fail");
  assert_true(await_all_alive(&c, 0x7, 5000));
  /* Views can fill by gossip before a member's own join exchange has answered. */
  uint64_t join_until = now_ms() + 3000;
  for (size_t i = 0; i < N; i++) {
    while (!syn_membership_joined(c.m[i]) && now_ms() < join_until) sleep_ms(10);
    assert_true(syn_membership_joined(c.m[i]));
  }
  assert_true(atomic_load(&c.changes) > 0);
  uint64_t rv_before;
  syn_membership_snapshot(c.m[0], NULL, 0, NULL, NULL, &rv_before);

  /* m2 stops without leaving. */
  syn_membership_stop(c.m[2]);
  c.m[2] = NULL;
  uint64_t stopped = now_ms(), suspect_at = 0, dead_at = 0;
  syn_membership_config cfg = fast_config();
  uint64_t suspicion = syn_swim_suspicion_timeout(&cfg, N);
  /* Probe rounds over 2 targets (2 x 100 ms) + the failed probe (100 ms) + suspicion
   * (400 ms), with generous slack for a loaded machine and sanitizers. */
  uint64_t window = 2 * PROBE_MS + PROBE_MS + suspicion + 2000;
  while (now_ms() - stopped < window && !dead_at) {
    int s0 = state_of(c.m[0], "m2");
    if (!suspect_at && s0 == SYN_MEMBER_SUSPECT) suspect_at = now_ms();
    if (s0 == SYN_MEMBER_DEAD) dead_at = now_ms();
    sleep_ms(10);
  }
  assert_true(dead_at > 0);
  assert_true(suspect_at > 0); /* seen suspect first: the suspicion lasts 400 ms */
  assert_true(dead_at - stopped >= suspicion);
  /* m1 agrees shortly after; the ring has not changed (liveness is not ownership). */
  uint64_t until = now_ms() + 2000;
  while (now_ms() < until && state_of(c.m[1], "m2") != SYN_MEMBER_DEAD) sleep_ms(10);
  assert_int_equal(state_of(c.m[1], "m2"), SYN_MEMBER_DEAD);
  uint64_t rv_after;
  syn_membership_snapshot(c.m[0], NULL, 0, NULL, NULL, &rv_after);
  assert_true(rv_after == rv_before);
  syn_ring *ring = syn_membership_build_ring(c.m[0], 64, 3, NULL);
  assert_non_null(ring);
  assert_int_equal(syn_ring_node_count(ring), 3);
  syn_ring_free(ring);

  syn_membership_stats st;
  syn_membership_stats_get(c.m[0], &st);
  assert_true(st.msgs_in > 0 && st.msgs_out > 0);
  assert_true(st.suspicions + st.deaths >= 1);
  cluster_stop(&c);
}

static void test_graceful_leave(void **state) {
  cluster c;
  cluster_start(&c, "leave");
  assert_true(await_all_alive(&c, 0x7, 5000));
  uint64_t rv_before;
  syn_membership_snapshot(c.m[0], NULL, 0, NULL, NULL, &rv_before);
  assert_int_equal(syn_membership_leave(c.m[1], 2000), 0);
  assert_int_equal(state_of(c.m[0], "m1"), SYN_MEMBER_LEFT);
  assert_int_equal(state_of(c.m[2], "m1"), SYN_MEMBER_LEFT);
  uint64_t rv_after;
  syn_ring *ring = syn_membership_build_ring(c.m[0], 64, 3, &rv_after);
  assert_true(rv_after != rv_before);
  assert_int_equal(syn_ring_node_count(ring), 2);
  assert_int_equal(syn_ring_index_of(ring, "m1"), -1);
  syn_ring_free(ring);
  cluster_stop(&c);
}

static int echo_app(void *ctx, const uint8_t *req, size_t len, syn_buf *reply) {
  if (len == 4 && memcmp(req, "fail", 4) == 0) return -1;
  syn_buf_append_str(reply, "echo:");
  return syn_buf_append(reply, req, len);
}

static void test_app_calls(void **state) {
  cluster c;
  cluster_start(&c, "app");
  syn_membership_set_app_handler(c.m[0], echo_app, NULL);
  syn_buf reply = SYN_BUF_INIT;
  assert_int_equal(syn_membership_app_call(c.m[1], c.url[0], "hi", 2, 1000, &reply), 0);
  assert_int_equal(reply.len, 7);
  assert_memory_equal(reply.data, "echo:hi", 7);
  syn_buf_reset(&reply);
  assert_int_equal(syn_membership_app_call(c.m[1], c.url[0], "fail", 4, 1000, &reply), -EREMOTEIO);
  /* No handler on m2. */
  assert_int_equal(syn_membership_app_call(c.m[1], c.url[2], "x", 1, 1000, &reply), -EREMOTEIO);
  /* Nobody listens there: the deadline holds. */
  uint64_t t = now_ms();
  assert_int_equal(syn_membership_app_call(c.m[1], "inproc://nobody", "x", 1, 200, &reply),
                   -ETIMEDOUT);
  assert_true(now_ms() - t < 1000);
  /* Too large for the peer's receive limit. */
  static uint8_t big[5u << 20];
  assert_int_equal(syn_membership_app_call(c.m[1], c.url[0], big, sizeof big, 1000, &reply),
                   -EMSGSIZE);
  syn_buf_free(&reply);
  cluster_stop(&c);
}

static int slow_app(void *ctx, const uint8_t *req, size_t len, syn_buf *reply) {
  sleep_ms(1000);
  return syn_buf_append(reply, "done", 4);
}

typedef struct caller {
  cluster *c;
  pthread_t thread;
  int rc;
} caller;

static void *call_slow(void *arg) {
  caller *k = arg;
  syn_buf reply = SYN_BUF_INIT;
  k->rc = syn_membership_app_call(k->c->m[1], k->c->url[0], "x", 1, 5000, &reply);
  syn_buf_free(&reply);
  return NULL;
}

/* Slow app handlers run apart from gossip: while both app threads are busy (1 s each)
 * and the queue is full, m0 still answers pings within a 200 ms probe timeout, so nobody
 * suspects it (were pings queued behind the handlers, they would wait up to 1 s), and
 * extra app requests are refused with -EBUSY at once instead of timing out. */
static void test_slow_app_handler(void **state) {
  syn_membership_config cfg = fast_config();
  cfg.probe_interval_ms = 400; /* roomy timings: a loaded machine must not fail pings */
  cfg.probe_timeout_ms = 200;
  cluster c;
  cluster_start_with(&c, "slow", &cfg);
  assert_true(await_all_alive(&c, 0x7, 5000));
  syn_membership_set_app_handler(c.m[0], slow_app, NULL);
  enum { CALLERS = 6 };
  caller k[CALLERS];
  for (int i = 0; i < CALLERS; i++) {
    k[i] = (caller){.c = &c};
    assert_int_equal(pthread_create(&k[i].thread, NULL, call_slow, &k[i]), 0);
  }
  int not_alive = 0;
  uint64_t until = now_ms() + 2200; /* two rounds of handlers */
  while (now_ms() < until) {
    not_alive += state_of(c.m[1], "m0") != SYN_MEMBER_ALIVE;
    not_alive += state_of(c.m[2], "m0") != SYN_MEMBER_ALIVE;
    sleep_ms(10);
  }
  int ok = 0, busy = 0;
  for (int i = 0; i < CALLERS; i++) {
    pthread_join(k[i].thread, NULL);
    ok += k[i].rc == 0;
    busy += k[i].rc == -EBUSY;
  }
  assert_int_equal(ok + busy, CALLERS);
  assert_true(ok >= 2);   /* at least the two running; queued ones too */
  assert_true(busy >= 1); /* the rest refused */
  assert_int_equal(not_alive, 0);
  cluster_stop(&c);
}

/* Bytes that are not a PeerRequest get no answer and are counted. */
static void test_garbage_dropped(void **state) {
  cluster c;
  cluster_start(&c, "junk");
  nng_socket s;
  assert_int_equal(nng_req0_open(&s), 0);
  assert_int_equal(nng_dial(s, c.url[0], NULL, 0), 0);
  nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 300);
  const char junk[] = "\xff\xff\xff\xff garbage";
  assert_int_equal(nng_send(s, (void *)junk, sizeof junk, 0), 0);
  char *buf;
  size_t len;
  assert_int_equal(nng_recv(s, &buf, &len, NNG_FLAG_ALLOC), NNG_ETIMEDOUT);
  nng_close(s);
  syn_membership_stats st;
  syn_membership_stats_get(c.m[0], &st);
  assert_true(st.dropped >= 1);
  assert_true(await_all_alive(&c, 0x7, 5000)); /* and the member is unharmed */
  cluster_stop(&c);
}

/* A seed given as tcp://localhost:PORT is resolved (to 127.0.0.1, maybe also ::1 where
 * nobody listens) and joined through; member a listens on 127.0.0.1 but advertises the
 * name, so both find out who answers at the resolved address. Loopback only. */
/* A loopback TCP port nobody listens on now: the kernel's pick for port 0. (A port made
 * from the pid collided with other tests' ephemeral ports.) */
static int free_loopback_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static void test_dns_seed(void **state) {
  int port = free_loopback_port();
  char url0[64], seed[64], listen0[64];
  snprintf(url0, sizeof url0, "tcp4://localhost:%d", port); /* IPv4 name: a listens there */
  snprintf(listen0, sizeof listen0, "tcp://127.0.0.1:%d", port);
  snprintf(seed, sizeof seed, "tcp://localhost:%d", port);
  const char *seeds[] = {seed};
  syn_membership_config cfg = fast_config();
  cfg.self_id = "a";
  cfg.peer_url = url0;
  cfg.listen_url = listen0;
  cfg.seeds = seeds;
  cfg.n_seeds = 1;
  char err[256];
  syn_membership *a = syn_membership_start(&cfg, err, sizeof err);
  if (!a) fprintf(stderr, "member a did not start: %s\n", err);
  assert_non_null(a);
  cfg.self_id = "b";
  cfg.peer_url = "inproc://dns-b";
  cfg.listen_url = NULL;
  syn_membership *b = syn_membership_start(&cfg, err, sizeof err);
  assert_non_null(b);
  uint64_t until = now_ms() + 5000;
  while (now_ms() < until &&
         (state_of(a, "b") != SYN_MEMBER_ALIVE || state_of(b, "a") != SYN_MEMBER_ALIVE))
    sleep_ms(10);
  assert_int_equal(state_of(a, "b"), SYN_MEMBER_ALIVE);
  assert_int_equal(state_of(b, "a"), SYN_MEMBER_ALIVE);
  assert_true(syn_membership_joined(b));
  until = now_ms() + 3000; /* a answers itself at the resolved address: joined too */
  while (now_ms() < until && !syn_membership_joined(a)) sleep_ms(10);
  assert_true(syn_membership_joined(a));
  syn_membership_stop(b);
  syn_membership_stop(a);
}

/* With a cluster key, the members that hold it converge and call each other; one with
 * another key and one with none (both seeded at m0) learn nothing and are never seen,
 * within a window of 15 probe intervals and 3 join retries each. */
static void test_cluster_key(void **state) {
  syn_membership_config cfg = fast_config();
  cfg.cluster_key = "this-is-the-cluster-key-of-the-test-0123";
  cluster c;
  cluster_start_with(&c, "key", &cfg);
  syn_membership_set_app_handler(c.m[1], echo_app, NULL);
  assert_true(await_all_alive(&c, 0x7, 5000));
  syn_buf reply = SYN_BUF_INIT;
  assert_int_equal(syn_membership_app_call(c.m[0], c.url[1], "hi", 2, 1000, &reply), 0);
  assert_int_equal(reply.len, 7);
  assert_memory_equal(reply.data, "echo:hi", 7);
  syn_buf_free(&reply);

  char err[256];
  const char *keys[2] = {"another-cluster-key-entirely-0123456789", NULL};
  syn_membership *outsiders[2];
  for (int i = 0; i < 2; i++) {
    syn_membership_config oc = fast_config();
    oc.cluster_key = keys[i];
    oc.self_id = i ? "nokey" : "wrongkey";
    oc.peer_url = i ? "inproc://key-nokey" : "inproc://key-wrongkey";
    oc.data_url = "inproc://data";
    oc.seeds = c.seeds;
    oc.n_seeds = 1;
    outsiders[i] = syn_membership_start(&oc, err, sizeof err);
    assert_non_null(outsiders[i]);
  }
  syn_membership_stats before;
  syn_membership_stats_get(c.m[0], &before);
  sleep_ms(15 * PROBE_MS); /* showing that nothing happens: a bounded window */
  for (int i = 0; i < 2; i++) {
    size_t n;
    syn_membership_snapshot(outsiders[i], NULL, 0, &n, NULL, NULL);
    assert_int_equal(n, 1); /* itself only */
    assert_false(syn_membership_joined(outsiders[i]));
    for (size_t j = 0; j < N; j++) {
      assert_int_equal(state_of(c.m[j], "wrongkey"), -1);
      assert_int_equal(state_of(c.m[j], "nokey"), -1);
    }
  }
  /* Nor can they call: an app call of theirs is dropped unanswered. */
  syn_buf r = SYN_BUF_INIT;
  assert_int_equal(syn_membership_app_call(outsiders[0], c.url[1], "x", 1, 200, &r), -ETIMEDOUT);
  assert_int_equal(syn_membership_app_call(outsiders[1], c.url[1], "x", 1, 200, &r), -ETIMEDOUT);
  syn_buf_free(&r);
  syn_membership_stats after;
  syn_membership_stats_get(c.m[0], &after);
  assert_true(after.auth_failures > before.auth_failures);
  assert_true(after.auth_failures >= 4); /* 3 join tries each, at least */
  syn_membership_stats_get(c.m[1], &after);
  assert_true(after.auth_failures >= 2);
  assert_true(await_all_alive(&c, 0x7, 1000)); /* and the cluster is unharmed */
  for (int i = 0; i < 2; i++) syn_membership_stop(outsiders[i]);
  cluster_stop(&c);
}

static void test_bad_config(void **state) {
  syn_membership_config cfg = fast_config();
  char err[256] = "";
  cfg.self_id = "x";
  cfg.peer_url = NULL;
  assert_null(syn_membership_start(&cfg, err, sizeof err));
  assert_true(err[0]);
  cfg.peer_url = "inproc://bad";
  cfg.probe_timeout_ms = cfg.probe_interval_ms; /* leaves no time for indirect probes */
  assert_null(syn_membership_start(&cfg, err, sizeof err));
  cfg = fast_config();
  cfg.self_id = "x";
  cfg.peer_url = "notascheme://here";
  assert_null(syn_membership_start(&cfg, err, sizeof err));
  cfg.peer_url = "inproc://bad";
  cfg.cluster_key = "too short";
  assert_null(syn_membership_start(&cfg, err, sizeof err));
  assert_non_null(strstr(err, "cluster key"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_converge_then_failure_detected),
      cmocka_unit_test(test_graceful_leave),
      cmocka_unit_test(test_app_calls),
      cmocka_unit_test(test_slow_app_handler),
      cmocka_unit_test(test_garbage_dropped),
      cmocka_unit_test(test_dns_seed),
      cmocka_unit_test(test_cluster_key),
      cmocka_unit_test(test_bad_config),
  };
  return cmocka_run_group_tests_name("membership", tests, NULL, NULL);
}
