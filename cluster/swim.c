/* SWIM state machine. Design notes:
 *
 * - Members live in one array sorted by id (binary search; N is tens to hundreds), self
 *   included. A reaped member stays as a tombstone for another reap timeout so that stale
 *   records about it (a slower member's push-pull) cannot bring it back into the ring;
 *   only an alive record with a higher incarnation (a real rejoin) does.
 * - Dissemination keeps no message queue: a member whose state changed is "queued", and
 *   each outgoing message carries the current records of the queued members sent the
 *   fewest times so far (memberlist's TransmitLimitedQueue), each at most
 *   retransmit_mult * ceil(log10(N+1)) times.
 * - News of a stranger's failure arriving by piggyback is ignored (memberlist does the
 *   same): there is nothing to probe. A push-pull, which is someone's whole view, adds
 *   strangers in any state with the age of that state, so a joining member builds the
 *   same ring as the others and reaps at about the same time; a remote "dead" about a
 *   member we think alive becomes "suspect" here, so we check it ourselves first.
 * - Bounds: max_members members; at most max_piggyback records per message; the outbox
 *   holds at most OUTBOX_MAX calls (more are dropped: the transport is not keeping up). */
#include "cluster/swim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/prng.h"

#define OUTBOX_MAX 4096
#define SEED_OWNERS_MAX 256 /* seed URLs whose answering member we remember */

/* Which member answered at a seed URL. Seeds are often addresses (a DNS name resolved)
 * that differ from the peer_url the member advertises: this is how a seed is recognised
 * as ourselves (skipped) or as a known alive member (not re-contacted). */
typedef struct seed_owner {
  char url[SYN_MEMBER_URL_MAX + 1];
  char id[SYN_MEMBER_ID_MAX + 1];
} seed_owner;

#define MAX_CONFIRMATIONS 8

typedef struct member {
  syn_member_info info;
  bool reaped; /* tombstone: not a member any more */
  bool queued; /* its record still has transmissions to make */
  uint32_t transmits;
  /* Lifeguard suspicion: starts at the longest timeout and shrinks as independent
   * members confirm it (their suspect records about the same incarnation). */
  uint64_t suspect_start, suspect_deadline;
  char suspector[SYN_MEMBER_ID_MAX + 1]; /* who suspected first (never a confirmation) */
  char announce[SYN_MEMBER_ID_MAX + 1];  /* the suspector our record carries: the first one,
                                            or us once we confirmed it ourselves */
  char confirmed[MAX_CONFIRMATIONS][SYN_MEMBER_ID_MAX + 1];
  uint32_t confirmations;
} member;

typedef struct probe_state {
  bool active;
  bool indirect; /* indirect probes sent */
  char target[SYN_MEMBER_ID_MAX + 1];
  uint64_t incarnation; /* the target's, when the probe started */
  uint32_t seq;
  uint64_t started;
  uint32_t interval, timeout; /* this probe's, scaled by local health */
  uint32_t expected_nacks, nacks;
} probe_state;

typedef struct counters {
  uint64_t probes, probes_failed, suspicions, deaths, refutations, reaped, dropped;
  uint64_t confirmations;
} counters;

struct syn_swim {
  syn_membership_config cfg; /* timing fields only; its strings are not kept */
  char self_id[SYN_MEMBER_ID_MAX + 1];
  member *members;
  size_t n, cap;
  uint64_t version, ring_version;
  uint64_t rng;
  uint32_t seq;
  /* probe order: a shuffled list of ids, walked round-robin and rebuilt per round */
  char (*order)[SYN_MEMBER_ID_MAX + 1];
  size_t order_len, order_pos;
  probe_state probe;
  uint64_t next_probe, next_gossip, next_push_pull, next_seed;
  char **seeds;
  size_t n_seeds;
  seed_owner *owners;
  size_t n_owners;
  bool seeds_set, joined, leaving;
  size_t leave_pending;
  syn_swim_call **out;
  size_t n_out, cap_out;
  counters c;
  uint32_t awareness; /* Lifeguard local health: 0 (healthy) .. awareness_max - 1 */
};

/* ---- small helpers ---- */

static uint64_t rnd(syn_swim *s) { return syn_prng_next(&s->rng); }

static void copy_str(char *dst, const char *src, size_t cap) {
  snprintf(dst, cap, "%s", src ? src : "");
}

static long find(const syn_swim *s, const char *id) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(s->members[mid].info.id, id);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -(long)lo - 1;
}

static member *lookup(syn_swim *s, const char *id) {
  long i = find(s, id);
  return i >= 0 ? &s->members[i] : NULL;
}

static member *self_member(syn_swim *s) { return lookup(s, s->self_id); }

static member *insert_at(syn_swim *s, size_t pos, const char *id) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    member *m = realloc(s->members, cap * sizeof *m);
    if (!m) return NULL;
    s->members = m;
    s->cap = cap;
  }
  memmove(&s->members[pos + 1], &s->members[pos], (s->n - pos) * sizeof *s->members);
  s->n++;
  member *m = &s->members[pos];
  memset(m, 0, sizeof *m);
  copy_str(m->info.id, id, sizeof m->info.id);
  return m;
}

static bool in_ring(const member *m) { return !m->reaped && syn_member_in_ring(&m->info); }

size_t syn_swim_member_count(const syn_swim *s) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++) n += !s->members[i].reaped;
  return n;
}

uint64_t syn_swim_suspicion_timeout(const syn_membership_config *cfg, size_t members) {
  double scale = members > 1 ? log10((double)members) : 0.0;
  if (scale < 1.0) scale = 1.0;
  return (uint64_t)((double)cfg->suspicion_mult * scale * (double)cfg->probe_interval_ms);
}

uint64_t syn_swim_suspicion_max(const syn_membership_config *cfg, size_t members) {
  return syn_swim_suspicion_timeout(cfg, members) *
         (cfg->suspicion_max_mult ? cfg->suspicion_max_mult : 1);
}

uint32_t syn_swim_expected_confirmations(const syn_membership_config *cfg, size_t members) {
  uint32_t k = cfg->suspicion_mult > 2 ? cfg->suspicion_mult - 2 : 0;
  return members < 2 || members - 2 < k ? 0 : k;
}

uint64_t syn_lifeguard_suspicion_timeout(uint64_t min_ms, uint64_t max_ms, uint32_t confirmations,
                                         uint32_t expected) {
  if (expected == 0 || max_ms <= min_ms) return min_ms;
  double frac = log((double)confirmations + 1.0) / log((double)expected + 1.0);
  double raw = (double)max_ms - frac * (double)(max_ms - min_ms);
  uint64_t t = raw > 0 ? (uint64_t)floor(raw) : 0;
  return t < min_ms ? min_ms : t;
}

uint64_t syn_lifeguard_scale(uint64_t value, uint32_t awareness) { return value * (awareness + 1); }

uint32_t syn_swim_retransmit_limit(const syn_membership_config *cfg, size_t members) {
  return cfg->retransmit_mult * (uint32_t)ceil(log10((double)members + 1.0));
}

/* Time since `since`, 0 if `since` is later (the owner passes a monotonic clock, but a
 * wrapped difference would reap a member at once). */
static uint64_t elapsed(uint64_t now, uint64_t since) { return now > since ? now - since : 0; }

static int state_rank(uint8_t state) { return state; /* alive < suspect < dead < left */ }

bool syn_swim_supersedes(uint64_t inc, uint8_t state, uint64_t cur_inc, uint8_t cur_state) {
  return inc > cur_inc || (inc == cur_inc && state_rank(state) > state_rank(cur_state));
}

static bool printable_id(const char *id) {
  if (!id[0]) return false;
  for (const char *p = id; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f) return false;
  return true;
}

static bool record_valid(const syn_swim_record *r) {
  return printable_id(r->id) && r->peer_url[0] && r->state <= SYN_MEMBER_LEFT &&
         r->role <= SYN_ROLE_ROUTER;
}

/* ---- messages and calls ---- */

syn_swim_record *syn_swim_msg_add(syn_swim_msg *msg) {
  if (msg->n_records == msg->cap_records) {
    size_t cap = msg->cap_records ? msg->cap_records * 2 : 8;
    syn_swim_record *r = realloc(msg->records, cap * sizeof *r);
    if (!r) return NULL;
    msg->records = r;
    msg->cap_records = cap;
  }
  syn_swim_record *r = &msg->records[msg->n_records++];
  memset(r, 0, sizeof *r);
  return r;
}

void syn_swim_msg_clear(syn_swim_msg *msg) {
  free(msg->records);
  msg->records = NULL;
  msg->n_records = msg->cap_records = 0;
}

void syn_swim_call_free(syn_swim_call *call) {
  if (!call) return;
  syn_swim_msg_clear(&call->msg);
  free(call);
}

static void to_record(const member *m, uint64_t now, bool with_age, syn_swim_record *r) {
  memcpy(r->id, m->info.id, sizeof r->id);
  memcpy(r->data_url, m->info.data_url, sizeof r->data_url);
  memcpy(r->peer_url, m->info.peer_url, sizeof r->peer_url);
  r->role = (uint8_t)m->info.role;
  r->state = (uint8_t)m->info.state;
  r->incarnation = m->info.incarnation;
  r->age_ms = with_age && now > m->info.state_since_ms ? now - m->info.state_since_ms : 0;
  if (m->info.state == SYN_MEMBER_SUSPECT)
    memcpy(r->suspector, m->announce, sizeof r->suspector);
  else
    r->suspector[0] = '\0';
}

static int cmp_transmits(const void *a, const void *b) {
  const member *x = *(member *const *)a, *y = *(member *const *)b;
  return (x->transmits > y->transmits) - (x->transmits < y->transmits);
}

/* Whether `known` (the request being answered) carries m's record at m's incarnation and
 * state or newer: its sender has the news, and telling it back would spend one of the
 * record's transmissions on nobody (an epidemic's later rounds are mostly such replies,
 * which left one member in three joins at 300 members unreached until a push-pull). */
static bool carried(const syn_swim_msg *known, const member *m) {
  if (!known) return false;
  for (size_t i = 0; i < known->n_records; i++) {
    const syn_swim_record *r = &known->records[i];
    if (strcmp(r->id, m->info.id) == 0)
      return !syn_swim_supersedes(m->info.incarnation, (uint8_t)m->info.state, r->incarnation,
                                  r->state);
  }
  return false;
}

/* Adds the sender's own record (so whoever we talk to learns of us at the first
 * exchange, even when the news of our join missed it), then the records of up to
 * max_piggyback queued members, fewest transmissions first, leaving out what `known`
 * (a request this message answers, or NULL) already told its sender. */
static void piggyback(syn_swim *s, syn_swim_msg *msg, const syn_swim_msg *known) {
  member *queued[256];
  size_t nq = 0;
  member *me = self_member(s);
  syn_swim_record *own = syn_swim_msg_add(msg);
  if (own) to_record(me, 0, false, own);
  for (size_t i = 0; i < s->n && nq < sizeof queued / sizeof queued[0]; i++) {
    member *m = &s->members[i];
    if (m->queued && !m->reaped && m != me && !carried(known, m)) queued[nq++] = m;
  }
  if (nq == 0) return;
  qsort(queued, nq, sizeof queued[0], cmp_transmits);
  uint32_t limit = syn_swim_retransmit_limit(&s->cfg, syn_swim_member_count(s));
  for (size_t i = 0; i < nq && i < s->cfg.max_piggyback; i++) {
    syn_swim_record *r = syn_swim_msg_add(msg);
    if (!r) return;
    to_record(queued[i], 0, false, r);
    if (++queued[i]->transmits >= limit) queued[i]->queued = false;
  }
}

static void full_state(syn_swim *s, uint64_t now, syn_swim_msg *msg) {
  for (size_t i = 0; i < s->n; i++) {
    if (s->members[i].reaped) continue;
    syn_swim_record *r = syn_swim_msg_add(msg);
    if (!r) return;
    to_record(&s->members[i], now, true, r);
  }
}

static syn_swim_call *new_call(syn_swim *s, enum syn_swim_type type, const char *url,
                               uint32_t timeout_ms) {
  syn_swim_call *call = calloc(1, sizeof *call);
  if (!call) return NULL;
  copy_str(call->url, url, sizeof call->url);
  call->timeout_ms = timeout_ms;
  call->msg.type = type;
  memcpy(call->msg.from, s->self_id, sizeof call->msg.from);
  return call;
}

static void push_call(syn_swim *s, syn_swim_call *call) {
  if (!call) return;
  if (s->n_out == s->cap_out) {
    size_t cap = s->cap_out ? s->cap_out * 2 : 16;
    syn_swim_call **out = cap <= OUTBOX_MAX ? realloc(s->out, cap * sizeof *out) : NULL;
    if (!out) {
      syn_swim_call_free(call);
      return;
    }
    s->out = out;
    s->cap_out = cap;
  }
  s->out[s->n_out++] = call;
}

size_t syn_swim_take_calls(syn_swim *s, syn_swim_call **out, size_t cap) {
  size_t n = s->n_out < cap ? s->n_out : cap;
  if (n == 0) return 0;
  memcpy(out, s->out, n * sizeof *out);
  memmove(s->out, s->out + n, (s->n_out - n) * sizeof *s->out);
  s->n_out -= n;
  return n;
}

/* ---- state changes ---- */

static void enqueue(member *m) {
  m->queued = true;
  m->transmits = 0;
}

/* The suspicion deadline after the confirmations so far (Lifeguard: from max down to
 * min as confirmations approach the expected count). */
static void refresh_suspicion(syn_swim *s, member *m) {
  size_t n = syn_swim_member_count(s);
  uint64_t min = syn_swim_suspicion_timeout(&s->cfg, n), max = syn_swim_suspicion_max(&s->cfg, n);
  uint32_t k = syn_swim_expected_confirmations(&s->cfg, n);
  if (s->cfg.lifeguard_off & SYN_LIFEGUARD_NO_DOGPILE) { /* SWIM: one fixed timeout */
    m->suspect_deadline = m->suspect_start + min;
    return;
  }
  m->suspect_deadline =
      m->suspect_start + syn_lifeguard_suspicion_timeout(min, max, m->confirmations, k);
}

/* An independent confirmation of a suspicion we hold (same incarnation, a suspector other
 * than the one who started it, ourselves included): the timeout shrinks. Our own
 * confirmation is news for the others: our record now names us, and goes out again. */
static void confirm_suspicion(syn_swim *s, member *m, const char *suspector) {
  if (s->cfg.lifeguard_off & SYN_LIFEGUARD_NO_DOGPILE) return; /* SWIM counts none */
  if (!suspector[0] || !strcmp(suspector, m->suspector)) return;
  for (uint32_t i = 0; i < m->confirmations && i < MAX_CONFIRMATIONS; i++)
    if (!strcmp(m->confirmed[i], suspector)) return;
  if (m->confirmations < MAX_CONFIRMATIONS)
    copy_str(m->confirmed[m->confirmations], suspector, sizeof m->confirmed[0]);
  m->confirmations++;
  s->c.confirmations++;
  refresh_suspicion(s, m);
  if (!strcmp(suspector, s->self_id)) {
    copy_str(m->announce, s->self_id, sizeof m->announce);
    enqueue(m);
  }
}

static void health_delta(syn_swim *s, int delta) {
  if (s->cfg.lifeguard_off & SYN_LIFEGUARD_NO_LHM) return; /* SWIM: the score stays 0 */
  uint32_t max = s->cfg.awareness_max ? s->cfg.awareness_max - 1 : 0;
  long v = (long)s->awareness + delta;
  s->awareness = v < 0 ? 0 : v > (long)max ? max : (uint32_t)v;
}

/* Moves m to (state, inc), effective since `since`; bumps the versions and queues the
 * news. Any applied record makes a tombstone a member again. */
static void set_state(syn_swim *s, member *m, uint8_t state, uint64_t inc, uint64_t now,
                      uint64_t since) {
  bool was_in = in_ring(m);
  uint8_t old = m->reaped ? SYN_MEMBER_DEAD : (uint8_t)m->info.state;
  m->reaped = false;
  m->info.state = (enum syn_member_state)state;
  m->info.incarnation = inc;
  m->info.state_since_ms = since;
  copy_str(m->info.suspected_by, state == SYN_MEMBER_SUSPECT ? m->suspector : "",
           sizeof m->info.suspected_by);
  if (state == SYN_MEMBER_SUSPECT) {
    m->suspect_start = now;
    m->confirmations = 0;
    refresh_suspicion(s, m);
    if (old == SYN_MEMBER_ALIVE) s->c.suspicions++;
  }
  if (state == SYN_MEMBER_DEAD && old != SYN_MEMBER_DEAD) s->c.deaths++;
  s->version++;
  if (was_in != in_ring(m)) s->ring_version++;
  enqueue(m);
}

/* A claim about ourselves that we do not hold: refute it with a higher incarnation. */
static void about_self(syn_swim *s, const syn_swim_record *r) {
  member *me = self_member(s);
  if (s->leaving) return;
  if (r->state == SYN_MEMBER_ALIVE && r->incarnation <= me->info.incarnation) return;
  if (r->state != SYN_MEMBER_ALIVE && r->incarnation < me->info.incarnation) return;
  me->info.incarnation = r->incarnation + 1;
  me->info.state = SYN_MEMBER_ALIVE;
  health_delta(s, 1); /* others could not hear us: maybe we are the slow one (Lifeguard) */
  s->version++;
  s->c.refutations++;
  enqueue(me);
}

static void take_urls(member *m, const syn_swim_record *r) {
  memcpy(m->info.data_url, r->data_url, sizeof m->info.data_url);
  memcpy(m->info.peer_url, r->peer_url, sizeof m->info.peer_url);
  m->info.role = (enum syn_member_role)r->role;
}

static uint64_t since_of(const syn_swim_record *r, uint64_t now, bool full) {
  if (!full || r->state == SYN_MEMBER_ALIVE) return now;
  return r->age_ms < now ? now - r->age_ms : 0;
}

static void add_stranger(syn_swim *s, uint64_t now, long pos, const syn_swim_record *r, bool full) {
  if (r->state != SYN_MEMBER_ALIVE && !full) return;
  if (syn_swim_member_count(s) >= s->cfg.max_members) {
    s->c.dropped++;
    return;
  }
  member *m = insert_at(s, (size_t)(-pos - 1), r->id);
  if (!m) return;
  m->reaped = true; /* so that set_state counts it as entering the ring */
  take_urls(m, r);
  set_state(s, m, r->state, r->incarnation, now, since_of(r, now, full));
  if (r->state != SYN_MEMBER_ALIVE) m->queued = false; /* old news: not worth gossip */
}

/* Merges one record; `full` when it comes from a push-pull. */
static void apply(syn_swim *s, uint64_t now, const syn_swim_record *r, bool full) {
  if (!record_valid(r)) {
    s->c.dropped++;
    return;
  }
  if (strcmp(r->id, s->self_id) == 0) {
    about_self(s, r);
    return;
  }
  long pos = find(s, r->id);
  if (pos < 0) {
    add_stranger(s, now, pos, r, full);
    return;
  }
  member *m = &s->members[pos];
  uint8_t state = r->state;
  if (!m->reaped && state == SYN_MEMBER_SUSPECT && m->info.state == SYN_MEMBER_SUSPECT &&
      r->incarnation == m->info.incarnation) {
    confirm_suspicion(s, m, r->suspector);
    return;
  }
  if (m->reaped && (state != SYN_MEMBER_ALIVE || r->incarnation <= m->info.incarnation)) return;
  if (!m->reaped &&
      !syn_swim_supersedes(r->incarnation, state, m->info.incarnation, (uint8_t)m->info.state))
    return;
  if (full && state == SYN_MEMBER_DEAD && m->info.state <= SYN_MEMBER_SUSPECT && !m->reaped) {
    state = SYN_MEMBER_SUSPECT;
    if (!syn_swim_supersedes(r->incarnation, state, m->info.incarnation, (uint8_t)m->info.state))
      return;
  }
  if (state == SYN_MEMBER_ALIVE) {
    take_urls(m, r);
    m->info.last_seen_ms = now;
  }
  if (state == SYN_MEMBER_SUSPECT) {
    copy_str(m->suspector, r->suspector, sizeof m->suspector);
    copy_str(m->announce, r->suspector, sizeof m->announce);
  }
  set_state(s, m, state, r->incarnation, now, since_of(r, now, full));
}

static void merge(syn_swim *s, uint64_t now, const syn_swim_msg *msg, bool full) {
  for (size_t i = 0; i < msg->n_records; i++) apply(s, now, &msg->records[i], full);
}

static void touch(syn_swim *s, const char *id, uint64_t now) {
  member *m = lookup(s, id);
  if (m && !m->reaped) m->info.last_seen_ms = now;
}

/* ---- probing ---- */

static bool probe_candidate(const member *m) {
  return !m->info.self && !m->reaped &&
         (m->info.state == SYN_MEMBER_ALIVE || m->info.state == SYN_MEMBER_SUSPECT);
}

static void rebuild_order(syn_swim *s) {
  free(s->order);
  s->order = malloc((s->n + 1) * sizeof *s->order);
  s->order_len = s->order_pos = 0;
  if (!s->order) return;
  for (size_t i = 0; i < s->n; i++)
    if (probe_candidate(&s->members[i]))
      memcpy(s->order[s->order_len++], s->members[i].info.id, sizeof *s->order);
  for (size_t i = s->order_len; i > 1; i--) { /* Fisher-Yates */
    size_t j = (size_t)(rnd(s) % i);
    char tmp[SYN_MEMBER_ID_MAX + 1];
    memcpy(tmp, s->order[i - 1], sizeof tmp);
    memcpy(s->order[i - 1], s->order[j], sizeof tmp);
    memcpy(s->order[j], tmp, sizeof tmp);
  }
}

/* The next probe target in round-robin order over a shuffled list, skipping members
 * that left, died or vanished since the list was made. */
static member *next_target(syn_swim *s) {
  for (int round = 0; round < 2; round++) {
    if (s->order_pos >= s->order_len) rebuild_order(s);
    while (s->order_pos < s->order_len) {
      member *m = lookup(s, s->order[s->order_pos++]);
      if (m && probe_candidate(m)) return m;
    }
  }
  return NULL;
}

static void start_probe(syn_swim *s, uint64_t now) {
  member *t = next_target(s);
  if (!t) return;
  /* Lifeguard local health: a member whose own probes go unanswered may be the slow
   * one, so it waits longer before accusing anyone. */
  uint32_t interval = (uint32_t)syn_lifeguard_scale(s->cfg.probe_interval_ms, s->awareness);
  uint32_t timeout = (uint32_t)syn_lifeguard_scale(s->cfg.probe_timeout_ms, s->awareness);
  s->probe = (probe_state){
      .active = true, .seq = ++s->seq, .started = now, .interval = interval, .timeout = timeout};
  memcpy(s->probe.target, t->info.id, sizeof s->probe.target);
  s->probe.incarnation = t->info.incarnation;
  s->c.probes++;
  syn_swim_call *call = new_call(s, SYN_SWIM_PING, t->info.peer_url, timeout);
  if (!call) return;
  call->msg.seq = s->probe.seq;
  memcpy(call->msg.target_id, t->info.id, sizeof call->msg.target_id);
  /* Lifeguard's buddy system: a suspect hears of its suspicion from whoever probes it
   * next, first thing in the ping, so it refutes before the timeout. */
  if (t->info.state == SYN_MEMBER_SUSPECT && !(s->cfg.lifeguard_off & SYN_LIFEGUARD_NO_BUDDY)) {
    syn_swim_record *r = syn_swim_msg_add(&call->msg);
    if (r) to_record(t, 0, false, r);
  }
  piggyback(s, &call->msg, NULL);
  push_call(s, call);
}

/* Picks up to k distinct random members satisfying ok(), not self, not `except`. */
static size_t pick_random(syn_swim *s, size_t k,
                          bool (*ok)(const syn_swim *, const member *, uint64_t), uint64_t now,
                          const char *except, member **out) {
  size_t n = 0, seen = 0;
  for (size_t i = 0; i < s->n; i++) { /* reservoir sampling */
    member *m = &s->members[i];
    if (m->info.self || m->reaped || !ok(s, m, now)) continue;
    if (except && strcmp(m->info.id, except) == 0) continue;
    seen++;
    if (n < k)
      out[n++] = m;
    else {
      size_t j = (size_t)(rnd(s) % seen);
      if (j < k) out[j] = m;
    }
  }
  return n;
}

static bool is_alive(const syn_swim *s, const member *m, uint64_t now) {
  return m->info.state == SYN_MEMBER_ALIVE;
}

static void send_indirect(syn_swim *s, uint64_t now) {
  s->probe.indirect = true;
  member *target = lookup(s, s->probe.target);
  if (!target) return;
  member *via[64];
  size_t k = s->cfg.indirect_checks < 64 ? s->cfg.indirect_checks : 64;
  size_t n = pick_random(s, k, is_alive, now, s->probe.target, via);
  uint32_t wait = s->probe.interval - s->probe.timeout;
  s->probe.expected_nacks = (uint32_t)n;
  for (size_t i = 0; i < n; i++) {
    syn_swim_call *call = new_call(s, SYN_SWIM_PING_REQ, via[i]->info.peer_url, wait);
    if (!call) return;
    call->msg.seq = s->probe.seq;
    memcpy(call->msg.target_id, target->info.id, sizeof call->msg.target_id);
    memcpy(call->msg.target_url, target->info.peer_url, sizeof call->msg.target_url);
    piggyback(s, &call->msg, NULL);
    push_call(s, call);
  }
}

/* No ack, direct or indirect, within the probe interval: suspect the target. Lifeguard:
 * every nack that should have come back from a relay and did not says our own network
 * is the problem, and raises our local health score; with no relays, one step. */
static void probe_failed(syn_swim *s, uint64_t now) {
  probe_state *p = &s->probe;
  p->active = false;
  s->c.probes_failed++;
  if (p->expected_nacks) {
    if (p->nacks < p->expected_nacks) health_delta(s, (int)(p->expected_nacks - p->nacks));
  } else {
    health_delta(s, 1);
  }
  member *m = lookup(s, p->target);
  /* A failed probe accuses only the incarnation it probed: one that started before a
   * partition healed must not suspect the member's refutation (as in memberlist). */
  if (m && m->info.incarnation != p->incarnation) return;
  if (m && !m->reaped && m->info.state == SYN_MEMBER_ALIVE) {
    copy_str(m->suspector, s->self_id, sizeof m->suspector);
    copy_str(m->announce, s->self_id, sizeof m->announce);
    set_state(s, m, SYN_MEMBER_SUSPECT, m->info.incarnation, now, now);
  } else if (m && !m->reaped && m->info.state == SYN_MEMBER_SUSPECT) {
    confirm_suspicion(s, m, s->self_id); /* counts only if another member suspected first */
  }
}

static void probe_succeeded(syn_swim *s) {
  s->probe.active = false;
  health_delta(s, -1);
}

static void run_probe(syn_swim *s, uint64_t now) {
  probe_state *p = &s->probe;
  if (p->active) {
    if (now >= p->started + p->interval)
      probe_failed(s, now);
    else if (!p->indirect && now >= p->started + p->timeout)
      send_indirect(s, now);
  }
  if (!p->active && !s->leaving && now >= s->next_probe) {
    s->next_probe = now + syn_lifeguard_scale(s->cfg.probe_interval_ms, s->awareness);
    start_probe(s, now);
  }
}

/* ---- gossip, push-pull, seeds, suspicion and reaping ---- */

static bool gossip_target(const syn_swim *s, const member *m, uint64_t now) {
  if (m->info.state == SYN_MEMBER_ALIVE || m->info.state == SYN_MEMBER_SUSPECT) return true;
  return m->info.state == SYN_MEMBER_DEAD &&
         elapsed(now, m->info.state_since_ms) < s->cfg.gossip_to_dead_ms;
}

static bool any_queued(const syn_swim *s) {
  for (size_t i = 0; i < s->n; i++)
    if (s->members[i].queued && !s->members[i].reaped && !s->members[i].info.self) return true;
  return false;
}

static void run_gossip(syn_swim *s, uint64_t now) {
  if (now < s->next_gossip) return;
  s->next_gossip = now + s->cfg.gossip_interval_ms;
  if (!any_queued(s)) return;
  member *to[64];
  size_t k = s->cfg.gossip_nodes < 64 ? s->cfg.gossip_nodes : 64;
  size_t n = pick_random(s, k, gossip_target, now, NULL, to);
  for (size_t i = 0; i < n; i++) {
    syn_swim_call *call =
        new_call(s, SYN_SWIM_GOSSIP, to[i]->info.peer_url, s->cfg.probe_timeout_ms);
    if (!call) return;
    piggyback(s, &call->msg, NULL);
    push_call(s, call);
  }
}

static void send_push_pull(syn_swim *s, uint64_t now, const char *url, bool join) {
  syn_swim_call *call = new_call(s, SYN_SWIM_PUSH_PULL, url, s->cfg.push_pull_timeout_ms);
  if (!call) return;
  call->msg.join = join;
  full_state(s, now, &call->msg);
  push_call(s, call);
}

static void run_push_pull(syn_swim *s, uint64_t now) {
  if (now < s->next_push_pull) return;
  s->next_push_pull = now + s->cfg.push_pull_interval_ms;
  member *to = NULL; /* set when pick_random finds one (gcc -O3 cannot tell) */
  if (!s->leaving && pick_random(s, 1, is_alive, now, NULL, &to) == 1)
    send_push_pull(s, now, to->info.peer_url, false);
}

static const char *seed_owner_of(const syn_swim *s, const char *url) {
  for (size_t i = 0; i < s->n_owners; i++)
    if (strcmp(s->owners[i].url, url) == 0) return s->owners[i].id;
  return NULL;
}

static void remember_seed_owner(syn_swim *s, const char *url, const char *id) {
  for (size_t i = 0; i < s->n_owners; i++) {
    if (strcmp(s->owners[i].url, url) == 0) {
      copy_str(s->owners[i].id, id, sizeof s->owners[i].id);
      return;
    }
  }
  if (!s->owners) s->owners = calloc(SEED_OWNERS_MAX, sizeof *s->owners);
  if (!s->owners) return;
  size_t i = s->n_owners < SEED_OWNERS_MAX ? s->n_owners++ : (size_t)(rnd(s) % SEED_OWNERS_MAX);
  copy_str(s->owners[i].url, url, sizeof s->owners[i].url);
  copy_str(s->owners[i].id, id, sizeof s->owners[i].id);
}

static bool is_self_seed(syn_swim *s, const char *url) {
  const char *owner = seed_owner_of(s, url);
  return strcmp(url, self_member(s)->info.peer_url) == 0 ||
         (owner && strcmp(owner, s->self_id) == 0);
}

/* Whether the seed is a member we know to be alive (by its advertised URL or by who
 * answered there before). */
static bool seed_known_alive(syn_swim *s, const char *url) {
  const char *owner = seed_owner_of(s, url);
  for (size_t i = 0; i < s->n; i++) {
    const member *m = &s->members[i];
    if (m->reaped || m->info.state != SYN_MEMBER_ALIVE) continue;
    if (strcmp(m->info.peer_url, url) == 0 || (owner && strcmp(m->info.id, owner) == 0))
      return true;
  }
  return false;
}

static bool alone(const syn_swim *s) {
  for (size_t i = 0; i < s->n; i++) {
    const member *m = &s->members[i];
    if (!m->info.self && !m->reaped && m->info.state == SYN_MEMBER_ALIVE) return false;
  }
  return true;
}

/* Joins through the seeds, then re-contacts those that are not known alive members, so
 * that two halves of a partition find each other again once the link is back: every
 * join_retry_ms while no other member is known alive (members starting together find
 * each other in a second), else every seed_interval_ms. A member whose seeds are all
 * itself is the first member: joined at once. */
static void run_seeds(syn_swim *s, uint64_t now) {
  if (!s->seeds_set || s->leaving) return;
  bool retry_fast = !s->joined || alone(s);
  /* The last other member just left or died: look for the cluster again at the join
   * pace, not at the (slower) re-contact pace of a member that has company. */
  if (retry_fast && s->next_seed > now + s->cfg.join_retry_ms)
    s->next_seed = now + s->cfg.join_retry_ms;
  if (now < s->next_seed) return;
  s->next_seed = now + (retry_fast ? s->cfg.join_retry_ms : s->cfg.seed_interval_ms);
  size_t others = 0;
  for (size_t i = 0; i < s->n_seeds; i++) {
    if (is_self_seed(s, s->seeds[i])) continue;
    others++;
    if (s->joined && seed_known_alive(s, s->seeds[i])) continue;
    send_push_pull(s, now, s->seeds[i], !s->joined);
  }
  if (others == 0) s->joined = true;
}

static void run_suspicions(syn_swim *s, uint64_t now) {
  for (size_t i = 0; i < s->n; i++) {
    member *m = &s->members[i];
    if (!m->reaped && m->info.state == SYN_MEMBER_SUSPECT && now >= m->suspect_deadline)
      set_state(s, m, SYN_MEMBER_DEAD, m->info.incarnation, now, now);
  }
}

static void run_reaper(syn_swim *s, uint64_t now) {
  for (size_t i = s->n; i-- > 0;) {
    member *m = &s->members[i];
    if (m->info.self || elapsed(now, m->info.state_since_ms) < s->cfg.reap_timeout_ms) continue;
    if (m->reaped) { /* tombstone expired */
      memmove(m, m + 1, (s->n - i - 1) * sizeof *m);
      s->n--;
      continue;
    }
    if (m->info.state != SYN_MEMBER_DEAD && m->info.state != SYN_MEMBER_LEFT) continue;
    bool was_in = in_ring(m);
    m->reaped = true;
    m->queued = false;
    m->info.state_since_ms = now;
    s->version++;
    if (was_in) s->ring_version++;
    s->c.reaped++;
  }
}

void syn_swim_tick(syn_swim *s, uint64_t now) {
  run_suspicions(s, now);
  run_probe(s, now);
  run_gossip(s, now);
  run_push_pull(s, now);
  run_seeds(s, now);
  run_reaper(s, now);
}

static void earliest(uint64_t *at, uint64_t t) {
  if (t < *at) *at = t;
}

uint64_t syn_swim_next_deadline(const syn_swim *s) {
  uint64_t at = s->next_gossip;
  if (!s->leaving) {
    earliest(&at, s->next_push_pull);
    if (s->seeds_set) earliest(&at, s->next_seed);
    earliest(&at, s->probe.active ? s->probe.started + s->probe.interval : s->next_probe);
    if (s->probe.active && !s->probe.indirect) earliest(&at, s->probe.started + s->probe.timeout);
  }
  for (size_t i = 0; i < s->n; i++) {
    const member *m = &s->members[i];
    if (m->info.self) continue;
    if (!m->reaped && m->info.state == SYN_MEMBER_SUSPECT) earliest(&at, m->suspect_deadline);
    if (m->reaped || m->info.state >= SYN_MEMBER_DEAD)
      earliest(&at, m->info.state_since_ms + s->cfg.reap_timeout_ms);
  }
  return at;
}

/* ---- requests and replies ---- */

void syn_swim_call_done(syn_swim *s, uint64_t now, const syn_swim_call *call,
                        const syn_swim_msg *reply) {
  const syn_swim_msg *req = &call->msg;
  if (reply && (reply->type == SYN_SWIM_ACK || reply->type == SYN_SWIM_PUSH_PULL)) {
    merge(s, now, reply, reply->type == SYN_SWIM_PUSH_PULL);
    touch(s, reply->from, now);
  }
  bool acked = reply && reply->type == SYN_SWIM_ACK && reply->ok;
  probe_state *p = &s->probe;
  bool current = p->active && req->seq == p->seq && strcmp(req->target_id, p->target) == 0;
  switch (req->type) {
  case SYN_SWIM_PING:
    if (current && acked)
      probe_succeeded(s);
    else if (current && !p->indirect) /* failed, or someone else answers at that URL */
      send_indirect(s, now);
    break;
  case SYN_SWIM_PING_REQ:
    if (current && acked)
      probe_succeeded(s);
    else if (current && reply && reply->type == SYN_SWIM_ACK && !reply->ok)
      p->nacks++;
    break;
  case SYN_SWIM_PUSH_PULL:
    if (!reply || reply->type != SYN_SWIM_PUSH_PULL) break;
    remember_seed_owner(s, call->url, reply->from);
    /* Answered, by a member or by ourselves under another address: either way we are
     * in a cluster (maybe of one), and seeds that did not answer are retried. */
    if (req->join) s->joined = true;
    break;
  case SYN_SWIM_LEAVE:
    if (s->leave_pending > 0) s->leave_pending--;
    break;
  default: break;
  }
}

/* A member reaped here that comes back at an incarnation its tombstone overrides would
 * stay out until the tombstone expires: show it the tombstone, so that it refutes. Only
 * the member itself is shown its tombstone; others would re-add a reaped member. */
static void tell_tombstone(syn_swim *s, uint64_t now, const char *id, syn_swim_msg *reply) {
  member *m = lookup(s, id);
  if (!m || !m->reaped) return;
  syn_swim_record *r = syn_swim_msg_add(reply);
  if (r) to_record(m, now, false, r);
}

/* The buddy system the other way round: a member we hold as suspect (or dead) that
 * talks to us hears of it in our answer, first, so it refutes even when the suspicion's
 * gossip was spent on calls that failed while its link was down. */
static void tell_suspect(syn_swim *s, const char *id, syn_swim_msg *reply) {
  if (s->cfg.lifeguard_off & SYN_LIFEGUARD_NO_BUDDY) return;
  member *m = lookup(s, id);
  if (!m || m->reaped || (m->info.state != SYN_MEMBER_SUSPECT && m->info.state != SYN_MEMBER_DEAD))
    return;
  syn_swim_record *r = syn_swim_msg_add(reply);
  if (r) to_record(m, 0, false, r);
}

/* The answer to req. */
static void ack(syn_swim *s, const syn_swim_msg *req, bool ok, syn_swim_msg *reply) {
  reply->type = SYN_SWIM_ACK;
  reply->seq = req->seq;
  reply->ok = ok;
  memcpy(reply->from, s->self_id, sizeof reply->from);
  tell_suspect(s, req->from, reply);
  piggyback(s, reply, req);
}

/* The sender's own record in a request (every request carries it first). */
static const syn_swim_record *sender_record(const syn_swim_msg *req) {
  for (size_t i = 0; i < req->n_records; i++)
    if (!strcmp(req->records[i].id, req->from)) return &req->records[i];
  return NULL;
}

/* Whether the request comes from a process claiming an id a live member (or we) holds
 * at another address. Fills the conflict fields of reply. */
static bool id_conflict(syn_swim *s, uint64_t now, const syn_swim_msg *req, syn_swim_msg *reply) {
  const syn_swim_record *own = sender_record(req);
  if (!own || !own->peer_url[0]) return false;
  const member *holder = lookup(s, req->from);
  if (!holder || holder->reaped) return false;
  if (!strcmp(holder->info.peer_url, own->peer_url)) return false;
  if (!holder->info.self) {
    /* A member that moved (a restarted pod on a new address) is no conflict once it is
     * no longer heard at the old one: only a join against a live, recently heard holder
     * is refused. */
    if (!req->join || holder->info.state != SYN_MEMBER_ALIVE) return false;
    uint64_t recent = syn_swim_suspicion_timeout(&s->cfg, syn_swim_member_count(s));
    if (elapsed(now, holder->info.last_seen_ms) > recent) return false;
  }
  copy_str(reply->target_id, req->from, sizeof reply->target_id);
  copy_str(reply->target_url, holder->info.peer_url, sizeof reply->target_url);
  copy_str(reply->claimant_url, own->peer_url, sizeof reply->claimant_url);
  return true;
}

int syn_swim_handle(syn_swim *s, uint64_t now, const syn_swim_msg *req, syn_swim_msg *reply,
                    syn_swim_call **forward) {
  if (forward) *forward = NULL;
  if (!printable_id(req->from) || req->type == SYN_SWIM_ACK) return -EINVAL;
  if (id_conflict(s, now, req, reply)) return SYN_SWIM_CONFLICT;
  merge(s, now, req, req->type == SYN_SWIM_PUSH_PULL);
  touch(s, req->from, now);
  switch (req->type) {
  case SYN_SWIM_PING:
    ack(s, req, !req->target_id[0] || strcmp(req->target_id, s->self_id) == 0, reply);
    return 0;
  case SYN_SWIM_GOSSIP:
  case SYN_SWIM_LEAVE: ack(s, req, true, reply); return 0;
  case SYN_SWIM_PUSH_PULL:
    reply->type = SYN_SWIM_PUSH_PULL;
    memcpy(reply->from, s->self_id, sizeof reply->from);
    full_state(s, now, reply);
    tell_tombstone(s, now, req->from, reply);
    return 0;
  case SYN_SWIM_PING_REQ: {
    if (!forward || !req->target_url[0] || !printable_id(req->target_id)) return -EINVAL;
    /* Ping the target where we know it to listen; the requester's URL only for a member
     * we do not know (it may have joined a moment ago). */
    member *t = lookup(s, req->target_id);
    const char *url = t && !t->reaped ? t->info.peer_url : req->target_url;
    /* Answer before the requester's own deadline (probe interval - probe timeout). */
    uint32_t wait = s->cfg.probe_interval_ms - s->cfg.probe_timeout_ms;
    uint32_t timeout = s->cfg.probe_timeout_ms < wait ? s->cfg.probe_timeout_ms : wait;
    syn_swim_call *call = new_call(s, SYN_SWIM_PING, url, timeout * 4 / 5 + 1);
    if (!call) return -ENOMEM;
    call->msg.seq = ++s->seq;
    memcpy(call->msg.target_id, req->target_id, sizeof call->msg.target_id);
    piggyback(s, &call->msg, NULL);
    *forward = call;
    return SYN_SWIM_FORWARD;
  }
  default: return -EINVAL;
  }
}

void syn_swim_finish_forward(syn_swim *s, uint64_t now, const syn_swim_msg *req,
                             syn_swim_call *forward, const syn_swim_msg *target_reply,
                             syn_swim_msg *reply) {
  bool ok = false;
  if (target_reply && target_reply->type == SYN_SWIM_ACK) {
    merge(s, now, target_reply, false);
    touch(s, target_reply->from, now);
    ok = target_reply->ok;
  }
  syn_swim_call_free(forward);
  ack(s, req, ok, reply);
}

/* ---- lifecycle and views ---- */

syn_swim *syn_swim_new(const syn_membership_config *cfg, uint64_t now) {
  if (!cfg->self_id || !printable_id(cfg->self_id) || strlen(cfg->self_id) > SYN_MEMBER_ID_MAX ||
      !cfg->peer_url || !cfg->peer_url[0] || strlen(cfg->peer_url) > SYN_MEMBER_URL_MAX ||
      (cfg->data_url && strlen(cfg->data_url) > SYN_MEMBER_URL_MAX) ||
      cfg->role > SYN_ROLE_ROUTER || cfg->probe_interval_ms == 0 ||
      cfg->probe_timeout_ms >= cfg->probe_interval_ms || cfg->gossip_interval_ms == 0 ||
      cfg->push_pull_interval_ms == 0 || cfg->seed_interval_ms == 0 || cfg->join_retry_ms == 0 ||
      cfg->retransmit_mult == 0 || cfg->max_members < 1)
    return NULL;
  syn_swim *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cfg = *cfg;
  s->cfg.self_id = s->cfg.data_url = s->cfg.peer_url = s->cfg.listen_url = NULL;
  s->cfg.seeds = NULL;
  s->cfg.n_seeds = 0;
  copy_str(s->self_id, cfg->self_id, sizeof s->self_id);
  member *me = insert_at(s, 0, cfg->self_id);
  if (!me) {
    free(s);
    return NULL;
  }
  copy_str(me->info.data_url, cfg->data_url, sizeof me->info.data_url);
  copy_str(me->info.peer_url, cfg->peer_url, sizeof me->info.peer_url);
  me->info.role = cfg->role;
  me->info.self = true;
  me->info.state_since_ms = me->info.last_seen_ms = now;
  enqueue(me);
  s->rng = cfg->rng_seed ? cfg->rng_seed : 0x9e3779b97f4a7c15ULL ^ strlen(cfg->self_id);
  for (const char *p = cfg->self_id; !cfg->rng_seed && *p; p++) s->rng = s->rng * 31 + (uint8_t)*p;
  if (!s->rng) s->rng = 1;
  s->version = s->ring_version = 1;
  s->next_probe = now + rnd(s) % cfg->probe_interval_ms; /* stagger members' probes */
  s->next_gossip = now + cfg->gossip_interval_ms;
  s->next_push_pull = now + cfg->push_pull_interval_ms;
  s->next_seed = now;
  return s;
}

static void free_seeds(syn_swim *s) {
  for (size_t i = 0; i < s->n_seeds; i++) free(s->seeds[i]);
  free(s->seeds);
  s->seeds = NULL;
  s->n_seeds = 0;
}

void syn_swim_free(syn_swim *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n_out; i++) syn_swim_call_free(s->out[i]);
  free(s->out);
  free_seeds(s);
  free(s->owners);
  free(s->order);
  free(s->members);
  free(s);
}

int syn_swim_set_seeds(syn_swim *s, const char *const *urls, size_t n) {
  char **copy = calloc(n ? n : 1, sizeof *copy);
  if (!copy) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    copy[i] = strdup(urls[i]);
    if (!copy[i]) {
      for (size_t j = 0; j < i; j++) free(copy[j]);
      free(copy);
      return -ENOMEM;
    }
  }
  free_seeds(s);
  s->seeds = copy;
  s->n_seeds = n;
  s->seeds_set = true;
  return 0;
}

void syn_swim_notify(syn_swim *s, const char *url) {
  syn_swim_call *call = new_call(s, SYN_SWIM_GOSSIP, url, s->cfg.push_pull_timeout_ms);
  if (!call) return;
  piggyback(s, &call->msg, NULL); /* our own record first: the holder sees our address */
  push_call(s, call);
}

void syn_swim_leave(syn_swim *s, uint64_t now) {
  if (s->leaving) return;
  member *me = self_member(s);
  set_state(s, me, SYN_MEMBER_LEFT, me->info.incarnation, now, now);
  s->leaving = true;
  s->probe.active = false;
  for (size_t i = 0; i < s->n; i++) {
    member *m = &s->members[i];
    if (!probe_candidate(m)) continue;
    syn_swim_call *call =
        new_call(s, SYN_SWIM_LEAVE, m->info.peer_url, s->cfg.push_pull_timeout_ms);
    if (!call) continue;
    piggyback(s, &call->msg, NULL); /* carries our left record first */
    push_call(s, call);
    s->leave_pending++;
  }
}

bool syn_swim_leave_done(const syn_swim *s) { return s->leaving && s->leave_pending == 0; }

size_t syn_swim_snapshot(const syn_swim *s, uint64_t now, syn_member_info *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++) {
    const member *m = &s->members[i];
    if (m->reaped) continue;
    if (n < cap) {
      out[n] = m->info;
      if (m->info.self) out[n].last_seen_ms = now;
    }
    n++;
  }
  return n;
}

uint64_t syn_swim_version(const syn_swim *s) { return s->version; }
uint64_t syn_swim_ring_version(const syn_swim *s) { return s->ring_version; }
bool syn_swim_joined(const syn_swim *s) { return s->joined; }

uint64_t syn_swim_incarnation(const syn_swim *s) {
  long i = find(s, s->self_id);
  return s->members[i].info.incarnation;
}

uint32_t syn_swim_awareness(const syn_swim *s) { return s->awareness; }

int syn_swim_member_state(const syn_swim *s, const char *id, uint64_t *incarnation) {
  long i = find(s, id);
  if (i < 0 || s->members[i].reaped) return -1;
  if (incarnation) *incarnation = s->members[i].info.incarnation;
  return (int)s->members[i].info.state;
}

void syn_swim_stats_add(const syn_swim *s, syn_membership_stats *out) {
  out->confirmations += s->c.confirmations;
  out->awareness = s->awareness;
  out->probes += s->c.probes;
  out->probes_failed += s->c.probes_failed;
  out->suspicions += s->c.suspicions;
  out->deaths += s->c.deaths;
  out->refutations += s->c.refutations;
  out->reaped += s->c.reaped;
  out->dropped += s->c.dropped;
}

/* ---- names (shared with membership.h) ---- */

const char *syn_member_state_name(enum syn_member_state state) {
  static const char *const names[] = {"alive", "suspect", "dead", "left"};
  return (unsigned)state < 4 ? names[state] : "unknown";
}

const char *syn_member_role_name(enum syn_member_role role) {
  return role == SYN_ROLE_NODE ? "node" : role == SYN_ROLE_ROUTER ? "router" : "unknown";
}

bool syn_member_in_ring(const syn_member_info *m) {
  return m->role == SYN_ROLE_NODE && m->state != SYN_MEMBER_LEFT;
}

/* The defaults: memberlist's DefaultLANConfig where it has one (facts.md lists them as
 * working), with the reason for each. */
void syn_membership_config_defaults(syn_membership_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->role = SYN_ROLE_NODE;
  /* 2.5 probes a second: with N members probing round-robin, a failed member is first
   * probed within about interval * e/(e-1) on average (SWIM), and the design wants the
   * whole detection (probe, suspicion, dissemination) within three seconds at the median
   * on a loaded machine: 400 ms gives about 2 s (500 ms measured 3.0 s with both cores
   * busy; docs/benchmarks.md). */
  cfg->probe_interval_ms = 400;
  /* A LAN round trip over nng costs well under a millisecond; 200 ms absorbs a busy peer
   * (and 20 ms of network delay each way) and leaves most of the interval to the
   * indirect probes. Lifeguard scales both with the local health score. */
  cfg->probe_timeout_ms = 200;
  /* Three members vouching rules out the prober's own bad link (memberlist). */
  cfg->indirect_checks = 3;
  /* Lifeguard suspicion: at least 3 x max(1, log10 N) x 400 ms (1.2 s up to 10 members),
   * once suspicion_mult - 2 other members confirmed it; up to suspicion_max_mult times
   * that (4.8 s) when nobody confirms, which leaves a falsely suspected member time to
   * hear of it (buddy system) and refute. */
  cfg->suspicion_mult = 3;
  cfg->suspicion_max_mult = 4;
  /* Lifeguard local health: timeouts scale up to 8x for a member that cannot hear. */
  cfg->awareness_max = 8;
  /* Every 200 ms to 3 members: news reaches N members in about log3(N) rounds. */
  cfg->gossip_interval_ms = 200;
  cfg->gossip_nodes = 3;
  /* 4 x ceil(log10(N+1)) sends per update: reaches everyone with high probability. */
  cfg->retransmit_mult = 4;
  /* Records are at most ~600 bytes; 32 keep a message small. */
  cfg->max_piggyback = 32;
  /* A member declared dead still hears about it for 30 s, so it can refute (memberlist). */
  cfg->gossip_to_dead_ms = 30000;
  /* Full-state exchange every 30 s repairs anything gossip missed (memberlist). */
  cfg->push_pull_interval_ms = 30000;
  cfg->push_pull_timeout_ms = 5000;
  /* A partition heals within 10 s of the link coming back. */
  cfg->seed_interval_ms = 10000;
  /* The members of a StatefulSet start together: retry seeds every second until joined. */
  cfg->join_retry_ms = 1000;
  /* Design decision 1: only a member dead this long (10 min) leaves the ring, so a pod
   * restart does not reshuffle data. */
  cfg->reap_timeout_ms = 600000;
  /* An indirect probe holds a server thread for up to 0.4 s: four threads keep pings
   * answered while a few of them run. */
  cfg->server_threads = 4;
  /* App requests (replication batches, hand-off) run apart from gossip; four handlers at
   * once, 64 more waiting (a burst from every other node), then "busy" at once rather
   * than a caller's timeout. */
  cfg->app_threads = 4;
  cfg->app_queue = 64;
  cfg->max_members = 4096;
  /* Bounds what a peer can make us allocate; a full state of 4096 members fits. */
  cfg->max_message_bytes = 4u << 20;
  /* Sockets to members not called for 5 minutes are closed (reaped members, old seeds). */
  cfg->peer_idle_ms = 300000;
}
