/* SWIM state machine tests over a fake network: simulated milliseconds, no sockets, no
 * sleeps. The network delivers each call at once to the member that listens on its URL
 * and completes it after LATENCY ms, or fails it after its timeout when the callee is
 * down or the link between the two is cut. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "cluster/swim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 12
#define LATENCY 1
#define STEP 5
#define T0 1000000u

typedef struct event {
  uint64_t at;
  int caller;
  syn_swim_call *call;
  syn_swim_msg *reply; /* NULL: failed */
} event;

typedef struct net {
  size_t n;
  syn_swim *m[MAXN];
  char id[MAXN][16], url[MAXN][32];
  bool down[MAXN];
  bool cut[MAXN][MAXN];
  uint64_t now;
  event *ev;
  size_t n_ev, cap_ev;
  const char *alias_url; /* a second URL that reaches member alias_of (a resolved seed) */
  int alias_of;
  size_t alias_calls;   /* calls made to alias_url */
  const char *watch_id; /* counts records about this id that cross the network */
  size_t watch_sent;
  syn_membership_config cfg;
} net;

static syn_membership_config test_config(void) {
  syn_membership_config c;
  syn_membership_config_defaults(&c);
  c.reap_timeout_ms = 60000;
  return c;
}

static int by_url(const net *nw, const char *url) {
  if (nw->alias_url && strcmp(url, nw->alias_url) == 0) return nw->alias_of;
  for (size_t i = 0; i < nw->n; i++)
    if (strcmp(nw->url[i], url) == 0) return (int)i;
  return -1;
}

static bool reachable(const net *nw, int a, int b) {
  return b >= 0 && !nw->down[b] && !nw->down[a] && !nw->cut[a][b];
}

static void count_watch(net *nw, const syn_swim_msg *msg) {
  if (!nw->watch_id) return;
  for (size_t i = 0; i < msg->n_records; i++)
    nw->watch_sent += strcmp(msg->records[i].id, nw->watch_id) == 0;
}

static void push_event(net *nw, uint64_t at, int caller, syn_swim_call *call, syn_swim_msg *reply) {
  if (nw->n_ev == nw->cap_ev) {
    nw->cap_ev = nw->cap_ev ? nw->cap_ev * 2 : 64;
    nw->ev = realloc(nw->ev, nw->cap_ev * sizeof *nw->ev);
  }
  nw->ev[nw->n_ev++] = (event){at, caller, call, reply};
}

/* Runs one request at member `callee` from `caller`; returns the reply or NULL. */
static syn_swim_msg *serve(net *nw, int caller, int callee, const syn_swim_msg *req) {
  if (!reachable(nw, caller, callee)) return NULL;
  count_watch(nw, req);
  syn_swim_msg *reply = calloc(1, sizeof *reply);
  syn_swim_call *fwd;
  int rc = syn_swim_handle(nw->m[callee], nw->now, req, reply, &fwd);
  if (rc == SYN_SWIM_FORWARD) {
    int target = by_url(nw, fwd->url);
    syn_swim_msg *tr = serve(nw, callee, target, &fwd->msg);
    syn_swim_finish_forward(nw->m[callee], nw->now, req, fwd, tr, reply);
    if (tr) syn_swim_msg_clear(tr);
    free(tr);
  } else if (rc != 0) {
    syn_swim_msg_clear(reply);
    free(reply);
    return NULL;
  }
  count_watch(nw, reply);
  return reply;
}

static void dispatch(net *nw, int caller) {
  syn_swim_call *calls[64];
  size_t n;
  while ((n = syn_swim_take_calls(nw->m[caller], calls, 64)) > 0) {
    for (size_t i = 0; i < n; i++) {
      if (nw->alias_url && strcmp(calls[i]->url, nw->alias_url) == 0) nw->alias_calls++;
      syn_swim_msg *reply = serve(nw, caller, by_url(nw, calls[i]->url), &calls[i]->msg);
      uint64_t at = nw->now + (reply ? LATENCY : calls[i]->timeout_ms);
      push_event(nw, at, caller, calls[i], reply);
    }
  }
}

static void complete_due(net *nw) {
  for (size_t i = 0; i < nw->n_ev;) {
    event e = nw->ev[i];
    if (e.at > nw->now) {
      i++;
      continue;
    }
    nw->ev[i] = nw->ev[--nw->n_ev];
    if (!nw->down[e.caller]) syn_swim_call_done(nw->m[e.caller], nw->now, e.call, e.reply);
    syn_swim_call_free(e.call);
    if (e.reply) syn_swim_msg_clear(e.reply);
    free(e.reply);
  }
}

static void step(net *nw) {
  nw->now += STEP;
  complete_due(nw);
  for (size_t i = 0; i < nw->n; i++) {
    if (nw->down[i]) continue;
    syn_swim_tick(nw->m[i], nw->now);
    dispatch(nw, (int)i);
  }
}

static void run_for(net *nw, uint64_t ms) {
  uint64_t until = nw->now + ms;
  while (nw->now < until) step(nw);
}

/* Member i's view of member `id`; false when absent. */
static bool view(const net *nw, size_t i, const char *id, syn_member_info *out) {
  syn_member_info all[MAXN + 4];
  size_t n = syn_swim_snapshot(nw->m[i], nw->now, all, MAXN + 4);
  for (size_t k = 0; k < n && k < MAXN + 4; k++) {
    if (strcmp(all[k].id, id) == 0) {
      if (out) *out = all[k];
      return true;
    }
  }
  return false;
}

static int state_of(const net *nw, size_t i, const char *id) {
  syn_member_info info;
  return view(nw, i, id, &info) ? (int)info.state : -1;
}

static void start_member(net *nw, size_t i, uint64_t seed) {
  syn_membership_config c = nw->cfg;
  c.self_id = nw->id[i];
  c.peer_url = nw->url[i];
  c.data_url = "inproc://data";
  c.rng_seed = seed;
  nw->m[i] = syn_swim_new(&c, nw->now);
  assert_non_null(nw->m[i]);
  const char *seeds[] = {nw->url[0]};
  assert_int_equal(syn_swim_set_seeds(nw->m[i], seeds, 1), 0);
  nw->down[i] = false;
}

/* n members seeded with member 0's URL, run until all know each other. */
static void net_init(net *nw, size_t n, const syn_membership_config *cfg) {
  memset(nw, 0, sizeof *nw);
  nw->now = T0;
  nw->n = n;
  nw->cfg = cfg ? *cfg : test_config();
  for (size_t i = 0; i < n; i++) {
    snprintf(nw->id[i], sizeof nw->id[i], "m%zu", i);
    snprintf(nw->url[i], sizeof nw->url[i], "inproc://m%zu", i);
    start_member(nw, i, 1000 + i);
  }
}

static bool converged(const net *nw) {
  for (size_t i = 0; i < nw->n; i++) {
    if (nw->down[i]) continue;
    for (size_t j = 0; j < nw->n; j++)
      if (state_of(nw, i, nw->id[j]) != SYN_MEMBER_ALIVE) return false;
  }
  return true;
}

static void net_free(net *nw) {
  for (size_t i = 0; i < nw->n_ev; i++) {
    syn_swim_call_free(nw->ev[i].call);
    if (nw->ev[i].reply) syn_swim_msg_clear(nw->ev[i].reply);
    free(nw->ev[i].reply);
  }
  free(nw->ev);
  for (size_t i = 0; i < nw->n; i++) syn_swim_free(nw->m[i]);
}

static void converge(net *nw) {
  for (int i = 0; i < 1000 && !converged(nw); i++) step(nw);
  assert_true(converged(nw));
}

/* ---- pure helpers ---- */

static void test_timeouts(void **state) {
  syn_membership_config c = test_config();
  /* 3 x max(1, log10 N) x 400 ms, and 4 times that at most. */
  assert_int_equal(syn_swim_suspicion_timeout(&c, 1), 1200);
  assert_int_equal(syn_swim_suspicion_timeout(&c, 3), 1200);
  assert_int_equal(syn_swim_suspicion_timeout(&c, 10), 1200);
  assert_int_equal(syn_swim_suspicion_timeout(&c, 100), 2400);
  assert_int_equal(syn_swim_suspicion_max(&c, 10), 4800);
  /* k = suspicion_mult - 2 confirmations expected, none with fewer than k + 2 members. */
  assert_int_equal(syn_swim_expected_confirmations(&c, 2), 0);
  assert_int_equal(syn_swim_expected_confirmations(&c, 3), 1);
  assert_int_equal(syn_swim_expected_confirmations(&c, 50), 1);
  c.suspicion_mult = 5;
  assert_int_equal(syn_swim_expected_confirmations(&c, 4), 0);
  assert_int_equal(syn_swim_expected_confirmations(&c, 5), 3);
  assert_int_equal(syn_swim_retransmit_limit(&c, 1), 4);
  assert_int_equal(syn_swim_retransmit_limit(&c, 9), 4);
  assert_int_equal(syn_swim_retransmit_limit(&c, 10), 8);
  assert_int_equal(syn_swim_retransmit_limit(&c, 99), 8);
  assert_int_equal(syn_swim_retransmit_limit(&c, 100), 12);
}

/* Lifeguard's suspicion timeout: max without confirmations, min once k arrived, and
 * log-shaped in between (as memberlist's remainingSuspicionTime). */
static void test_lifeguard_timeout(void **state) {
  assert_int_equal(syn_lifeguard_suspicion_timeout(1000, 6000, 0, 3), 6000);
  assert_int_equal(syn_lifeguard_suspicion_timeout(1000, 6000, 3, 3), 1000);
  assert_int_equal(syn_lifeguard_suspicion_timeout(1000, 6000, 9, 3), 1000);
  /* c = 1 of k = 3: max - (max - min) * log 2 / log 4 = 6000 - 2500 */
  assert_int_equal(syn_lifeguard_suspicion_timeout(1000, 6000, 1, 3), 3500);
  uint64_t prev = 6001;
  for (uint32_t c = 0; c <= 3; c++) { /* strictly shrinking */
    uint64_t t = syn_lifeguard_suspicion_timeout(1000, 6000, c, 3);
    assert_true(t < prev);
    prev = t;
  }
  assert_int_equal(syn_lifeguard_suspicion_timeout(1000, 6000, 0, 0), 1000); /* k = 0 */
  assert_int_equal(syn_lifeguard_suspicion_timeout(1000, 500, 0, 3), 1000);  /* max < min */
  assert_int_equal(syn_lifeguard_scale(200, 0), 200);
  assert_int_equal(syn_lifeguard_scale(200, 7), 1600);
}

typedef struct prec_case {
  const char *name;
  uint64_t inc;
  uint8_t state;
  uint64_t cur_inc;
  uint8_t cur_state;
  bool want;
} prec_case;

static const prec_case prec_cases[] = {
    {"alive_higher_inc_beats_dead", 3, SYN_MEMBER_ALIVE, 2, SYN_MEMBER_DEAD, true},
    {"alive_same_inc_loses_to_suspect", 2, SYN_MEMBER_ALIVE, 2, SYN_MEMBER_SUSPECT, false},
    {"suspect_beats_alive_same_inc", 2, SYN_MEMBER_SUSPECT, 2, SYN_MEMBER_ALIVE, true},
    {"suspect_older_inc_loses", 1, SYN_MEMBER_SUSPECT, 2, SYN_MEMBER_ALIVE, false},
    {"dead_beats_suspect_same_inc", 2, SYN_MEMBER_DEAD, 2, SYN_MEMBER_SUSPECT, true},
    {"left_beats_dead_same_inc", 2, SYN_MEMBER_LEFT, 2, SYN_MEMBER_DEAD, true},
    {"dead_loses_to_left_same_inc", 2, SYN_MEMBER_DEAD, 2, SYN_MEMBER_LEFT, false},
    {"alive_loses_to_left_same_inc", 2, SYN_MEMBER_ALIVE, 2, SYN_MEMBER_LEFT, false},
    {"alive_higher_inc_beats_left", 3, SYN_MEMBER_ALIVE, 2, SYN_MEMBER_LEFT, true},
    {"same_record_is_no_news", 2, SYN_MEMBER_ALIVE, 2, SYN_MEMBER_ALIVE, false},
};

static void test_precedence(void **state) {
  const prec_case *c = *state;
  assert_int_equal(syn_swim_supersedes(c->inc, c->state, c->cur_inc, c->cur_state), c->want);
}

/* ---- direct handling ---- */

static syn_swim *lone(const char *id, uint64_t now) {
  syn_membership_config c = test_config();
  c.self_id = id;
  c.peer_url = "inproc://lone";
  return syn_swim_new(&c, now);
}

static void add_record(syn_swim_msg *msg, const char *id, uint8_t state, uint64_t inc,
                       uint64_t age) {
  syn_swim_record *r = syn_swim_msg_add(msg);
  snprintf(r->id, sizeof r->id, "%s", id);
  snprintf(r->peer_url, sizeof r->peer_url, "inproc://%s", id);
  snprintf(r->data_url, sizeof r->data_url, "inproc://data-%s", id);
  r->role = SYN_ROLE_NODE;
  r->state = state;
  r->incarnation = inc;
  r->age_ms = age;
}

static int handle(syn_swim *s, uint64_t now, syn_swim_msg *req, syn_swim_msg *reply) {
  syn_swim_call *fwd = NULL;
  int rc = syn_swim_handle(s, now, req, reply, &fwd);
  syn_swim_call_free(fwd);
  return rc;
}

static int lone_state(syn_swim *s, const char *id, uint64_t *inc) {
  syn_member_info all[16];
  size_t n = syn_swim_snapshot(s, T0, all, 16);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(all[i].id, id) == 0) {
      if (inc) *inc = all[i].incarnation;
      return (int)all[i].state;
    }
  }
  return -1;
}

/* A gossip message from "x" carrying one record. */
static void gossip_one(syn_swim *s, const char *id, uint8_t st, uint64_t inc) {
  syn_swim_msg req = {.type = SYN_SWIM_GOSSIP, .from = "x"}, reply = {0};
  add_record(&req, id, st, inc, 0);
  assert_int_equal(handle(s, T0, &req, &reply), 0);
  assert_int_equal(reply.type, SYN_SWIM_ACK);
  syn_swim_msg_clear(&req);
  syn_swim_msg_clear(&reply);
}

static bool carries(const syn_swim_msg *msg, const char *id) {
  for (size_t i = 0; i < msg->n_records; i++)
    if (!strcmp(msg->records[i].id, id)) return true;
  return false;
}

/* An answer does not tell its requester the news the request itself brought (that
 * would spend one of the record's few transmissions on a member that has it), but does
 * carry what the requester lacks or holds older. */
static void test_reply_skips_what_request_told(void **state) {
  syn_swim *s = lone("a", T0);
  gossip_one(s, "n1", SYN_MEMBER_ALIVE, 1); /* news queued at a */
  gossip_one(s, "n2", SYN_MEMBER_ALIVE, 3);
  syn_swim_msg req = {.type = SYN_SWIM_GOSSIP, .from = "b"}, reply = {0};
  add_record(&req, "b", SYN_MEMBER_ALIVE, 0, 0);
  add_record(&req, "n1", SYN_MEMBER_ALIVE, 1, 0); /* b knows n1 as a does */
  add_record(&req, "n2", SYN_MEMBER_ALIVE, 2, 0); /* b holds n2 older */
  assert_int_equal(handle(s, T0, &req, &reply), 0);
  assert_false(carries(&reply, "n1"));
  assert_true(carries(&reply, "n2"));
  assert_false(carries(&reply, "b"));
  syn_swim_msg_clear(&reply);
  /* n1's transmission was not spent: a request from a member that does not say it
   * knows n1 gets it. */
  syn_swim_msg other = {.type = SYN_SWIM_GOSSIP, .from = "c"};
  add_record(&other, "c", SYN_MEMBER_ALIVE, 0, 0);
  assert_int_equal(handle(s, T0, &other, &reply), 0);
  assert_true(carries(&reply, "n1"));
  assert_true(carries(&reply, "b"));
  syn_swim_msg_clear(&req);
  syn_swim_msg_clear(&other);
  syn_swim_msg_clear(&reply);
  syn_swim_free(s);
}

static void test_ping_wrong_target(void **state) {
  syn_swim *s = lone("a", T0);
  syn_swim_msg req = {.type = SYN_SWIM_PING, .seq = 7, .from = "b", .target_id = "other"};
  syn_swim_msg reply = {0};
  assert_int_equal(handle(s, T0, &req, &reply), 0);
  assert_int_equal(reply.type, SYN_SWIM_ACK);
  assert_int_equal(reply.seq, 7);
  assert_false(reply.ok);
  syn_swim_msg_clear(&reply);
  snprintf(req.target_id, sizeof req.target_id, "a");
  assert_int_equal(handle(s, T0, &req, &reply), 0);
  assert_true(reply.ok);
  assert_string_equal(reply.from, "a");
  syn_swim_msg_clear(&reply);
  /* A request claiming no sender, or a reply type, is refused. */
  syn_swim_msg bad = {.type = SYN_SWIM_PING};
  assert_int_equal(handle(s, T0, &bad, &reply), -EINVAL);
  syn_swim_msg ackmsg = {.type = SYN_SWIM_ACK, .from = "b"};
  assert_int_equal(handle(s, T0, &ackmsg, &reply), -EINVAL);
  syn_swim_free(s);
}

/* Out-of-range states and roles, empty or unprintable ids are dropped and counted. */
static void test_bad_records_dropped(void **state) {
  syn_swim *s = lone("a", T0);
  syn_swim_msg req = {.type = SYN_SWIM_GOSSIP, .from = "b"}, reply = {0};
  add_record(&req, "c", 9, 0, 0);
  add_record(&req, "", SYN_MEMBER_ALIVE, 0, 0);
  add_record(&req, "sp ace", SYN_MEMBER_ALIVE, 0, 0);
  add_record(&req, "d", SYN_MEMBER_ALIVE, 0, 0);
  req.records[3].role = 7;
  add_record(&req, "e", SYN_MEMBER_ALIVE, 0, 0);
  req.records[4].peer_url[0] = 0;
  assert_int_equal(handle(s, T0, &req, &reply), 0);
  syn_membership_stats st = {0};
  syn_swim_stats_add(s, &st);
  assert_int_equal(st.dropped, 5);
  assert_int_equal(syn_swim_member_count(s), 1);
  syn_swim_msg_clear(&req);
  syn_swim_msg_clear(&reply);
  syn_swim_free(s);
}

/* Left is terminal for its incarnation; only a higher incarnation brings it back. The
 * ring version moves on left and on the return, not on suspect or dead. */
static void test_left_is_terminal(void **state) {
  syn_swim *s = lone("a", T0);
  gossip_one(s, "b", SYN_MEMBER_ALIVE, 3);
  uint64_t rv = syn_swim_ring_version(s);
  gossip_one(s, "b", SYN_MEMBER_SUSPECT, 3);
  gossip_one(s, "b", SYN_MEMBER_DEAD, 3);
  assert_int_equal(lone_state(s, "b", NULL), SYN_MEMBER_DEAD);
  assert_int_equal(syn_swim_ring_version(s), rv);
  gossip_one(s, "b", SYN_MEMBER_LEFT, 3);
  assert_int_equal(lone_state(s, "b", NULL), SYN_MEMBER_LEFT);
  assert_int_equal(syn_swim_ring_version(s), rv + 1);
  gossip_one(s, "b", SYN_MEMBER_ALIVE, 3);
  gossip_one(s, "b", SYN_MEMBER_SUSPECT, 3);
  gossip_one(s, "b", SYN_MEMBER_DEAD, 3);
  assert_int_equal(lone_state(s, "b", NULL), SYN_MEMBER_LEFT);
  gossip_one(s, "b", SYN_MEMBER_ALIVE, 4);
  assert_int_equal(lone_state(s, "b", NULL), SYN_MEMBER_ALIVE);
  assert_int_equal(syn_swim_ring_version(s), rv + 2);
  /* News of a stranger's failure by gossip is not acted on. */
  gossip_one(s, "stranger", SYN_MEMBER_DEAD, 1);
  assert_int_equal(lone_state(s, "stranger", NULL), -1);
  syn_swim_free(s);
}

/* A push-pull brings strangers in any state (with the age of that state), turns a remote
 * "dead" about a member alive here into "suspect", refutes claims about self, and
 * answers with the full state. */
static void test_push_pull_merge(void **state) {
  syn_swim *s = lone("a", T0);
  gossip_one(s, "w", SYN_MEMBER_ALIVE, 1);
  syn_swim_msg req = {.type = SYN_SWIM_PUSH_PULL, .join = true, .from = "x"}, reply = {0};
  add_record(&req, "x", SYN_MEMBER_ALIVE, 2, 0);
  add_record(&req, "y", SYN_MEMBER_DEAD, 1, 5000);
  add_record(&req, "z", SYN_MEMBER_SUSPECT, 0, 0);
  add_record(&req, "w", SYN_MEMBER_DEAD, 1, 0);
  add_record(&req, "a", SYN_MEMBER_SUSPECT, 0, 0);
  assert_int_equal(handle(s, T0, &req, &reply), 0);
  assert_int_equal(reply.type, SYN_SWIM_PUSH_PULL);
  assert_int_equal(reply.n_records, 5); /* a, w, x, y, z */
  uint64_t inc;
  assert_int_equal(lone_state(s, "x", &inc), SYN_MEMBER_ALIVE);
  assert_int_equal(inc, 2);
  assert_int_equal(lone_state(s, "y", NULL), SYN_MEMBER_DEAD);
  assert_int_equal(lone_state(s, "z", NULL), SYN_MEMBER_SUSPECT);
  assert_int_equal(lone_state(s, "w", NULL), SYN_MEMBER_SUSPECT);
  assert_int_equal(lone_state(s, "a", &inc), SYN_MEMBER_ALIVE);
  assert_int_equal(inc, 1); /* refuted */
  syn_member_info all[8];
  syn_swim_snapshot(s, T0, all, 8);
  assert_string_equal(all[3].id, "y");
  assert_int_equal(all[3].state_since_ms, T0 - 5000);
  /* The reply carries y's age as seen here, and a's refutation. */
  for (size_t i = 0; i < reply.n_records; i++) {
    if (!strcmp(reply.records[i].id, "a")) assert_int_equal(reply.records[i].incarnation, 1);
    if (!strcmp(reply.records[i].id, "y")) assert_int_equal(reply.records[i].age_ms, 5000);
  }
  syn_swim_msg_clear(&req);
  syn_swim_msg_clear(&reply);
  syn_swim_free(s);
}

/* ---- over the fake network ---- */

static void test_converge(void **state) {
  net nw;
  net_init(&nw, 5, NULL);
  converge(&nw);
  assert_true(nw.now - T0 < 2000);
  for (size_t i = 0; i < nw.n; i++) assert_true(syn_swim_joined(nw.m[i]));
  net_free(&nw);
}

/* A member that stops answering is suspected within a few probe rounds and declared dead
 * exactly one suspicion timeout after it was suspected; the ring does not change. */
static void test_probe_timeout_suspect_then_dead(void **state) {
  net nw;
  net_init(&nw, 3, NULL);
  converge(&nw);
  uint64_t rv0 = syn_swim_ring_version(nw.m[0]);
  nw.down[2] = true;
  uint64_t crash = nw.now, suspected = 0, dead = 0;
  while (nw.now - crash < 20000 && !dead) {
    step(&nw);
    int st = state_of(&nw, 0, "m2");
    if (!suspected && st == SYN_MEMBER_SUSPECT) suspected = nw.now;
    if (st == SYN_MEMBER_DEAD) dead = nw.now;
  }
  assert_true(suspected > 0 && dead > 0);
  /* Two probers over two targets: m2 is probed within 1 s, failed 0.5 s later. */
  assert_true(suspected - crash <= 1500 + STEP);
  /* Lifeguard: the other survivor suspects m2 too, which confirms the suspicion and
   * brings the timeout down to its minimum, within one of its probe rounds. */
  uint64_t min = syn_swim_suspicion_timeout(&nw.cfg, 3);
  uint64_t max = syn_swim_suspicion_max(&nw.cfg, 3);
  assert_true(dead - suspected >= min - STEP);
  assert_true(dead - suspected <= min + 1500 + STEP);
  assert_true(dead - suspected < max);
  syn_membership_stats conf = {0};
  syn_swim_stats_add(nw.m[0], &conf);
  syn_swim_stats_add(nw.m[1], &conf);
  assert_true(conf.confirmations >= 1);
  run_for(&nw, 1000);
  assert_int_equal(state_of(&nw, 1, "m2"), SYN_MEMBER_DEAD);
  assert_int_equal(syn_swim_ring_version(nw.m[0]), rv0);
  syn_membership_stats st = {0};
  syn_swim_stats_add(nw.m[0], &st);
  assert_true(st.probes_failed >= 1 || st.suspicions >= 1);
  net_free(&nw);
}

/* A probe that started before the target refuted (say, across a healed partition) and
 * then runs out accuses only the incarnation it probed: the refutation stands. */
static void test_stale_probe_accuses_nobody(void **state) {
  syn_swim *s = lone("a", T0);
  gossip_one(s, "b", SYN_MEMBER_ALIVE, 0);
  uint64_t now = T0;
  syn_swim_call *ping = NULL;
  while (!ping && now < T0 + 5000) {
    syn_swim_tick(s, now);
    syn_swim_call *calls[8];
    size_t n = syn_swim_take_calls(s, calls, 8);
    for (size_t i = 0; i < n; i++) {
      if (calls[i]->msg.type == SYN_SWIM_PING && !ping) {
        ping = calls[i];
        continue;
      }
      syn_swim_call_done(s, now, calls[i], NULL);
      syn_swim_call_free(calls[i]);
    }
    now += STEP;
  }
  assert_non_null(ping);
  gossip_one(s, "b", SYN_MEMBER_ALIVE, 1); /* b refuted; we hear it from someone else */
  syn_swim_call_done(s, now, ping, NULL);
  syn_swim_call_free(ping);
  /* Run until the next probe starts: the stale one has run out by then. */
  bool next_probe = false;
  for (uint64_t end = now + 10000; now < end && !next_probe; now += STEP) {
    syn_swim_tick(s, now);
    syn_swim_call *calls[8];
    size_t n = syn_swim_take_calls(s, calls, 8);
    for (size_t i = 0; i < n; i++) {
      next_probe = next_probe || calls[i]->msg.type == SYN_SWIM_PING;
      syn_swim_call_done(s, now, calls[i], NULL);
      syn_swim_call_free(calls[i]);
    }
  }
  assert_true(next_probe);
  uint64_t inc = 0;
  assert_int_equal(lone_state(s, "b", &inc), SYN_MEMBER_ALIVE);
  assert_int_equal(inc, 1);
  syn_swim_free(s);
}

/* A member suspected by mistake refutes: its incarnation rises and everyone sees it
 * alive again before the suspicion timeout. */
static void test_refutation(void **state) {
  net nw;
  net_init(&nw, 3, NULL);
  converge(&nw);
  syn_swim_msg req = {.type = SYN_SWIM_GOSSIP, .from = "m1"}, reply = {0};
  add_record(&req, "m2", SYN_MEMBER_SUSPECT, 0, 0);
  assert_int_equal(handle(nw.m[0], nw.now, &req, &reply), 0);
  syn_swim_msg_clear(&req);
  syn_swim_msg_clear(&reply);
  assert_int_equal(state_of(&nw, 0, "m2"), SYN_MEMBER_SUSPECT);
  run_for(&nw, 3000);
  syn_member_info info;
  for (size_t i = 0; i < 3; i++) {
    assert_true(view(&nw, i, "m2", &info));
    assert_int_equal(info.state, SYN_MEMBER_ALIVE);
    assert_int_equal(info.incarnation, 1);
  }
  syn_membership_stats st = {0};
  syn_swim_stats_add(nw.m[2], &st);
  assert_int_equal(st.refutations, 1);
  run_for(&nw, 10000);
  assert_true(converged(&nw));
  net_free(&nw);
}

/* A suspicion nobody confirms runs to the longest timeout, which gives a falsely
 * suspected member time to refute: m0 cannot call anyone for 3 s (its own link is bad;
 * the others still reach it, so nobody else suspects anyone). m0 suspects the others,
 * but with no confirmation its suspicions last suspicion_max_mult times longer than
 * the minimum, the link comes back first, and the suspects hear of it (the buddy
 * system: m0's next ping to each carries its suspicion) and refute. Nobody dies. */
static void test_unconfirmed_suspicion_is_refuted(void **state) {
  net nw;
  net_init(&nw, 4, NULL);
  converge(&nw);
  for (size_t b = 1; b < 4; b++) nw.cut[0][b] = true;
  run_for(&nw, 3000);
  syn_membership_stats during = {0};
  syn_swim_stats_add(nw.m[0], &during);
  assert_true(during.suspicions >= 1);
  memset(nw.cut, 0, sizeof nw.cut);
  run_for(&nw, 20000);
  assert_true(converged(&nw));
  syn_membership_stats st = {0};
  for (size_t i = 0; i < 4; i++) syn_swim_stats_add(nw.m[i], &st);
  assert_true(st.refutations >= 1);
  assert_int_equal(st.deaths, 0);
  net_free(&nw);
}

/* Lifeguard local health: a member that can reach nobody sees every probe fail, and
 * raises its own score, probing more slowly instead of accusing everyone at full speed;
 * once it hears again, the score comes back down. */
static void test_local_health(void **state) {
  net nw;
  net_init(&nw, 4, NULL);
  converge(&nw);
  assert_int_equal(syn_swim_awareness(nw.m[0]), 0);
  for (size_t b = 1; b < 4; b++) nw.cut[0][b] = true; /* m0's outbound calls all fail */
  run_for(&nw, 10000);
  uint32_t sick = syn_swim_awareness(nw.m[0]);
  assert_true(sick >= 3);
  assert_true(sick <= nw.cfg.awareness_max - 1);
  assert_int_equal(syn_swim_awareness(nw.m[1]), 0); /* the others are healthy */
  memset(nw.cut, 0, sizeof nw.cut);
  run_for(&nw, 60000);
  assert_true(syn_swim_awareness(nw.m[0]) < sick);
  net_free(&nw);
}

/* With the direct link between m0 and m3 cut, indirect probes through the others vouch
 * for both: nobody is ever suspected. */
static void test_indirect_probe_keeps_alive(void **state) {
  net nw;
  net_init(&nw, 4, NULL);
  converge(&nw);
  nw.cut[0][3] = nw.cut[3][0] = true;
  run_for(&nw, 30000);
  assert_true(converged(&nw));
  syn_membership_stats st = {0};
  for (size_t i = 0; i < 4; i++) syn_swim_stats_add(nw.m[i], &st);
  assert_int_equal(st.suspicions, 0);
  assert_int_equal(st.probes_failed, 0);
  net_free(&nw);
}

/* News started at one member reaches all of 10 by piggybacking within a few gossip
 * rounds, and each member sends it a bounded number of times. */
static void test_dissemination_bounded(void **state) {
  syn_membership_config cfg = test_config();
  cfg.push_pull_interval_ms = 600000; /* only gossip and probes may carry the news */
  cfg.seed_interval_ms = 600000;
  net nw;
  net_init(&nw, 10, &cfg);
  converge(&nw);
  run_for(&nw, 5000); /* let the join news die out */
  nw.watch_id = "news";
  nw.watch_sent = 0;
  syn_swim_msg req = {.type = SYN_SWIM_GOSSIP, .from = "m1"}, reply = {0};
  add_record(&req, "news", SYN_MEMBER_ALIVE, 5, 0);
  assert_int_equal(handle(nw.m[0], nw.now, &req, &reply), 0);
  syn_swim_msg_clear(&req);
  syn_swim_msg_clear(&reply);
  uint64_t start = nw.now, reached = 0;
  while (!reached && nw.now - start < 5000) {
    step(&nw);
    size_t have = 0;
    for (size_t i = 0; i < nw.n; i++) have += view(&nw, i, "news", NULL);
    if (have == nw.n) reached = nw.now;
  }
  assert_true(reached > 0);
  /* log3(10) is about 2 rounds; allow 10 rounds of 200 ms. */
  assert_true(reached - start <= 10 * cfg.gossip_interval_ms);
  nw.watch_sent = 0;
  run_for(&nw, 2000);
  /* The record of "news" may change (it never answers, so it is suspected), so count
   * from a fresh start: within ~10 members x limit x (states it goes through). */
  uint32_t limit = syn_swim_retransmit_limit(&cfg, 11);
  assert_true(nw.watch_sent <= 3 * 11 * limit * 2);
  net_free(&nw);
}

/* A graceful leave: the member goes to left everywhere, the ring version moves, and the
 * leaver's calls all complete. */
static void test_graceful_leave(void **state) {
  net nw;
  net_init(&nw, 4, NULL);
  converge(&nw);
  uint64_t rv = syn_swim_ring_version(nw.m[0]);
  syn_swim_leave(nw.m[3], nw.now);
  assert_false(syn_swim_leave_done(nw.m[3]));
  dispatch(&nw, 3);
  run_for(&nw, 50);
  assert_true(syn_swim_leave_done(nw.m[3]));
  for (size_t i = 0; i < 3; i++) assert_int_equal(state_of(&nw, i, "m3"), SYN_MEMBER_LEFT);
  assert_int_equal(syn_swim_ring_version(nw.m[0]), rv + 1);
  nw.down[3] = true;
  run_for(&nw, 20000); /* a departed member is not probed, suspected or declared dead */
  for (size_t i = 0; i < 3; i++) assert_int_equal(state_of(&nw, i, "m3"), SYN_MEMBER_LEFT);
  net_free(&nw);
}

/* Dead longer than the reap timeout: removed from the set, and only then does the ring
 * version move. A stale record does not bring it back; a restart with the same id does. */
static void test_reap(void **state) {
  net nw;
  net_init(&nw, 3, NULL);
  converge(&nw);
  uint64_t rv = syn_swim_ring_version(nw.m[0]);
  nw.down[2] = true;
  run_for(&nw, 15000);
  assert_int_equal(state_of(&nw, 0, "m2"), SYN_MEMBER_DEAD);
  assert_int_equal(syn_swim_ring_version(nw.m[0]), rv);
  run_for(&nw, nw.cfg.reap_timeout_ms);
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(state_of(&nw, i, "m2"), -1);
    assert_int_equal(syn_swim_ring_version(nw.m[i]), rv + 1);
  }
  syn_membership_stats st = {0};
  syn_swim_stats_add(nw.m[0], &st);
  assert_int_equal(st.reaped, 1);
  /* A stale push-pull still holding m2 as dead does not re-add it. */
  syn_swim_msg req = {.type = SYN_SWIM_PUSH_PULL, .from = "m1"}, reply = {0};
  add_record(&req, "m2", SYN_MEMBER_DEAD, 0, 1000);
  assert_int_equal(handle(nw.m[0], nw.now, &req, &reply), 0);
  syn_swim_msg_clear(&req);
  syn_swim_msg_clear(&reply);
  assert_int_equal(state_of(&nw, 0, "m2"), -1);
  /* m2 restarts (incarnation 0): the join shows it its old record, it refutes, and
   * everyone has it alive again, back in the ring. */
  syn_swim_free(nw.m[2]);
  start_member(&nw, 2, 77);
  run_for(&nw, 5000);
  assert_true(converged(&nw));
  assert_int_equal(syn_swim_ring_version(nw.m[0]), rv + 2);
  net_free(&nw);
}

/* A member restarting before it was declared dead rejoins without a ring change. */
static void test_restart_keeps_ring(void **state) {
  net nw;
  net_init(&nw, 3, NULL);
  converge(&nw);
  run_for(&nw, 2000);
  uint64_t rv = syn_swim_ring_version(nw.m[0]);
  syn_swim_free(nw.m[1]);
  start_member(&nw, 1, 99);
  run_for(&nw, 5000);
  assert_true(converged(&nw));
  assert_int_equal(syn_swim_ring_version(nw.m[0]), rv);
  assert_int_equal(syn_swim_ring_version(nw.m[2]), rv);
  net_free(&nw);
}

/* Two halves that were cut apart declare each other dead, then find each other again
 * through the seeds once the link is back. */
static void test_partition_heals(void **state) {
  net nw;
  net_init(&nw, 4, NULL);
  converge(&nw);
  for (size_t a = 0; a < 2; a++)
    for (size_t b = 2; b < 4; b++) nw.cut[a][b] = nw.cut[b][a] = true;
  run_for(&nw, 15000);
  assert_int_equal(state_of(&nw, 0, "m3"), SYN_MEMBER_DEAD);
  assert_int_equal(state_of(&nw, 3, "m0"), SYN_MEMBER_DEAD);
  memset(nw.cut, 0, sizeof nw.cut);
  run_for(&nw, nw.cfg.seed_interval_ms + 5000);
  assert_true(converged(&nw));
  net_free(&nw);
}

/* Seeds that are addresses rather than advertised URLs (a resolved DNS name): a member
 * whose only seed turns out to be itself is the first member and counts as joined; the
 * others join through it and, once it is a known alive member, stop re-contacting it. */
static void test_seed_alias(void **state) {
  net nw;
  net_init(&nw, 3, NULL);
  nw.alias_url = "inproc://10.0.0.1";
  nw.alias_of = 0;
  const char *seeds[] = {nw.alias_url};
  for (size_t i = 0; i < nw.n; i++) assert_int_equal(syn_swim_set_seeds(nw.m[i], seeds, 1), 0);
  converge(&nw);
  run_for(&nw, 3000);
  for (size_t i = 0; i < nw.n; i++) assert_true(syn_swim_joined(nw.m[i]));
  nw.alias_calls = 0;
  run_for(&nw, 3 * nw.cfg.seed_interval_ms);
  assert_int_equal(nw.alias_calls, 0);
  /* Once m0 is dead to the others, its seed address is tried again (partition repair). */
  nw.down[0] = true;
  run_for(&nw, 10000 + nw.cfg.seed_interval_ms);
  assert_true(nw.alias_calls > 0);
  net_free(&nw);
}

int main(void) {
  enum { NP = sizeof prec_cases / sizeof prec_cases[0] };
  struct CMUnitTest tests[NP + 32];
  size_t n = 0;
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_timeouts);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_lifeguard_timeout);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_unconfirmed_suspicion_is_refuted);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_local_health);
  for (size_t i = 0; i < NP; i++)
    tests[n++] = (struct CMUnitTest){prec_cases[i].name, test_precedence, NULL, NULL,
                                     (void *)&prec_cases[i]};
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_ping_wrong_target);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_reply_skips_what_request_told);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bad_records_dropped);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_left_is_terminal);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_push_pull_merge);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_converge);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_probe_timeout_suspect_then_dead);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_refutation);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_stale_probe_accuses_nobody);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_indirect_probe_keeps_alive);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_dissemination_bounded);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_graceful_leave);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_reap);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_restart_keeps_ring);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_partition_heals);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_seed_alias);
  return _cmocka_run_group_tests("swim", tests, n, NULL, NULL);
}
