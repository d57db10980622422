/* Membership simulator. Design notes:
 *
 * - One binary heap of events ordered by (time, sequence): a call's arrival at its
 *   callee, a reply's arrival at the caller, a call's timeout, a member's next tick, a
 *   pause's end. Sequence numbers make ties deterministic.
 * - A call in flight is a `pcall`: the swim call, its caller and the caller's epoch
 *   (bumped by each crash, so that events of a previous life are recognised and dropped),
 *   whether it completed (a reply or its timeout, whichever comes first), and a
 *   reference count over the events that name it. An indirect probe's forward ping is a
 *   pcall of the relay that points at the PING_REQ it serves; its completion runs
 *   syn_swim_finish_forward and sends the relay's answer back.
 * - After every event at a member the simulator does what membership.c's gossip thread
 *   does when woken: it takes the queued calls and sends them, then sleeps until
 *   syn_swim_next_deadline (a tick event; a later, earlier one supersedes it).
 * - A paused member's events are set aside in arrival order and run when it resumes. */
#include "cluster/sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/gossip_wire.h"
#include "common/buf.h"

enum ev_kind { EV_TICK, EV_REQ, EV_REP, EV_TIMEOUT, EV_RESUME };

typedef struct pcall {
  syn_swim_call *call;
  struct pcall *orig; /* a forward ping: the PING_REQ it serves (one reference held) */
  uint32_t caller, epoch;
  bool done;
  int refs;
} pcall;

typedef struct ev {
  uint64_t at, seq;
  uint8_t kind;
  bool error; /* EV_REP: the callee refused (an error reply: the call fails at once) */
  uint32_t node, epoch;
  pcall *pc;
  syn_swim_msg *reply; /* EV_REP */
} ev;

typedef struct evq {
  ev *v;
  size_t n, cap;
} evq;

typedef struct simnode {
  syn_swim *swim; /* NULL while crashed */
  char id[32], peer_url[48], data_url[48];
  uint32_t epoch;
  bool paused;
  uint64_t tick_at; /* the pending tick's time, 0 if none */
  uint64_t version;       /* the view version last reported to on_change */
  uint64_t confirmations; /* its confirmations counter when its deadline was computed */
  double loss;
  uint32_t slow_ms;
  uint8_t side;
  evq deferred; /* while paused */
} simnode;

struct syn_sim {
  syn_sim_config cfg;
  simnode *nodes;
  size_t n, cap;
  uint64_t now, seq, rng;
  evq heap;
  bool partitioned;
  syn_sim_counters c;
  syn_buf buf; /* scratch for encoding */
  syn_sim_change_fn on_change;
  void *on_change_ctx;
};

/* ---- randomness ---- */

static uint64_t rnd(syn_sim *sim) { /* xorshift64* */
  sim->rng ^= sim->rng >> 12;
  sim->rng ^= sim->rng << 25;
  sim->rng ^= sim->rng >> 27;
  return sim->rng * 2685821657736338717ULL;
}

static double rnd_unit(syn_sim *sim) { return (double)(rnd(sim) >> 11) / 9007199254740992.0; }

static uint64_t mix(uint64_t x) { /* splitmix64 finaliser */
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* ---- the event heap ---- */

static bool before(const ev *a, const ev *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static int evq_push(evq *q, const ev *e) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 1024;
    ev *v = realloc(q->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    q->v = v;
    q->cap = cap;
  }
  q->v[q->n++] = *e;
  return 0;
}

static void heap_push(syn_sim *sim, ev e) {
  e.seq = sim->seq++;
  evq *h = &sim->heap;
  if (evq_push(h, &e)) abort(); /* a simulator without memory cannot go on meaningfully */
  size_t i = h->n - 1;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(&h->v[i], &h->v[parent])) break;
    ev tmp = h->v[i];
    h->v[i] = h->v[parent];
    h->v[parent] = tmp;
    i = parent;
  }
}

static ev heap_pop(syn_sim *sim) {
  evq *h = &sim->heap;
  ev top = h->v[0];
  h->v[0] = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && before(&h->v[l], &h->v[m])) m = l;
    if (r < h->n && before(&h->v[r], &h->v[m])) m = r;
    if (m == i) break;
    ev tmp = h->v[i];
    h->v[i] = h->v[m];
    h->v[m] = tmp;
    i = m;
  }
  return top;
}

/* ---- calls ---- */

static void release(pcall *pc) {
  if (!pc || --pc->refs > 0) return;
  syn_swim_call_free(pc->call);
  release(pc->orig);
  free(pc);
}

static void free_reply(syn_swim_msg *reply) {
  if (!reply) return;
  syn_swim_msg_clear(reply);
  free(reply);
}

/* Drops an event that will not run, releasing what it holds. */
static void drop_event(ev *e) {
  free_reply(e->reply);
  release(e->pc);
}

static void schedule(syn_sim *sim, uint64_t at, uint8_t kind, uint32_t node, pcall *pc,
                     syn_swim_msg *reply, bool error) {
  if (pc) pc->refs++;
  ev e = {.at = at, .kind = kind, .error = error, .node = node, .pc = pc, .reply = reply};
  e.epoch = sim->nodes[node].epoch;
  heap_push(sim, e);
}

/* The member listening at url, or -1 (URLs are tcp://10.a.b.c:7946, a.b.c the index). */
static long node_of(const syn_sim *sim, const char *url) {
  unsigned a, b, c;
  if (sscanf(url, "tcp://10.%u.%u.%u:7946", &a, &b, &c) != 3) return -1;
  size_t i = (size_t)a << 16 | (size_t)b << 8 | c;
  return i < sim->n ? (long)i : -1;
}

static uint64_t link_delay(syn_sim *sim, uint32_t from, uint32_t to) {
  uint64_t lo = from < to ? from : to, hi = from < to ? to : from;
  uint64_t d = sim->cfg.delay_ms;
  if (sim->cfg.link_jitter_ms) d += mix(sim->cfg.seed ^ (lo << 32 | hi)) % sim->cfg.link_jitter_ms;
  if (sim->cfg.jitter_ms) d += rnd(sim) % sim->cfg.jitter_ms;
  return d + sim->nodes[to].slow_ms;
}

static bool lost(syn_sim *sim, uint32_t from, uint32_t to) {
  const simnode *a = &sim->nodes[from], *b = &sim->nodes[to];
  if (sim->partitioned && a->side != b->side) return true;
  double keep = (1.0 - sim->cfg.loss) * (1.0 - a->loss) * (1.0 - b->loss);
  return keep < 1.0 && rnd_unit(sim) >= keep;
}

static enum syn_sim_kind kind_of(const syn_swim_msg *msg, bool reply) {
  if (reply) return SYN_SIM_REPLY;
  switch (msg->type) {
  case SYN_SWIM_PING: return SYN_SIM_PING;
  case SYN_SWIM_PING_REQ: return SYN_SIM_PING_REQ;
  case SYN_SWIM_PUSH_PULL: return SYN_SIM_PUSH_PULL;
  case SYN_SWIM_LEAVE: return SYN_SIM_LEAVE;
  default: return SYN_SIM_GOSSIP;
  }
}

static void count(syn_sim *sim, const syn_swim_msg *msg, bool reply) {
  enum syn_sim_kind k = kind_of(msg, reply);
  sim->c.msgs[k]++;
  if (!sim->cfg.count_bytes) return;
  syn_buf_reset(&sim->buf);
  if (syn_gossip_encode(msg, reply, &sim->buf) == 0) sim->c.bytes[k] += sim->buf.len;
}

/* Sends a call from its caller: it arrives after the link's delay unless lost, and fails
 * at its timeout unless a reply came first. */
static void send_call(syn_sim *sim, pcall *pc) {
  count(sim, &pc->call->msg, false);
  schedule(sim, sim->now + pc->call->timeout_ms, EV_TIMEOUT, pc->caller, pc, NULL, false);
  long to = node_of(sim, pc->call->url);
  if (to < 0) return;
  if (lost(sim, pc->caller, (uint32_t)to)) {
    sim->c.lost++;
    return;
  }
  schedule(sim, sim->now + link_delay(sim, pc->caller, (uint32_t)to), EV_REQ, (uint32_t)to, pc,
           NULL, false);
}

/* Sends `reply` (owned; NULL with error for a refusal) from member `from` to pc's caller. */
static void send_reply(syn_sim *sim, uint32_t from, pcall *pc, syn_swim_msg *reply, bool error) {
  if (reply) count(sim, reply, true);
  if (lost(sim, from, pc->caller)) {
    sim->c.lost++;
    free_reply(reply);
    return;
  }
  uint64_t at = sim->now + link_delay(sim, from, pc->caller);
  /* The reply is for the caller's life that sent the call, not a later one. */
  pc->refs++;
  ev e = {.at = at, .kind = EV_REP, .error = error, .node = pc->caller, .pc = pc, .reply = reply};
  e.epoch = pc->epoch;
  heap_push(sim, e);
}

static pcall *new_pcall(syn_sim *sim, uint32_t caller, syn_swim_call *call) {
  pcall *pc = calloc(1, sizeof *pc);
  if (!pc) abort();
  pc->call = call;
  pc->caller = caller;
  pc->epoch = sim->nodes[caller].epoch;
  return pc;
}

/* ---- member turns ---- */

/* What the transport does after anything happened at a member: send what it queued,
 * report a changed view, and sleep until its next deadline. */
static void after_event(syn_sim *sim, uint32_t i, bool ticked) {
  simnode *nd = &sim->nodes[i];
  syn_swim_call *calls[64];
  size_t n;
  while ((n = syn_swim_take_calls(nd->swim, calls, 64)) > 0)
    for (size_t k = 0; k < n; k++) {
      pcall *pc = new_pcall(sim, i, calls[k]);
      pc->refs++; /* held across send_call, which may schedule nothing */
      send_call(sim, pc);
      release(pc);
    }
  uint64_t v = syn_swim_version(nd->swim);
  bool changed = v != nd->version;
  if (changed) {
    nd->version = v;
    if (sim->on_change) sim->on_change(sim->on_change_ctx, sim, i);
  }
  /* A machine's deadlines move only in its tick, with a change of its view (a new
   * suspicion), or with a confirmation (a shorter suspicion): otherwise the pending tick
   * stands, which spares a scan of every member after each message. */
  syn_membership_stats st = {0};
  syn_swim_stats_add(nd->swim, &st);
  if (!ticked && !changed && st.confirmations == nd->confirmations && nd->tick_at) return;
  nd->confirmations = st.confirmations;
  uint64_t at = syn_swim_next_deadline(nd->swim);
  if (at <= sim->now) at = sim->now + 1;
  if (nd->tick_at == 0 || at < nd->tick_at) {
    nd->tick_at = at;
    schedule(sim, at, EV_TICK, i, NULL, NULL, false);
  }
}

static void run_request(syn_sim *sim, uint32_t i, pcall *pc) {
  simnode *nd = &sim->nodes[i];
  syn_swim_msg *reply = calloc(1, sizeof *reply);
  if (!reply) abort();
  syn_swim_call *fwd = NULL;
  int rc = syn_swim_handle(nd->swim, sim->now, &pc->call->msg, reply, &fwd);
  if (rc == SYN_SWIM_FORWARD) {
    free_reply(reply);
    pcall *f = new_pcall(sim, i, fwd);
    f->orig = pc;
    pc->refs++;
    f->refs++;
    send_call(sim, f);
    release(f);
  } else if (rc == 0) {
    send_reply(sim, i, pc, reply, false);
  } else { /* a conflict or a bad request: membership.c answers with an error */
    free_reply(reply);
    send_reply(sim, i, pc, NULL, true);
  }
  after_event(sim, i, false);
}

static syn_swim_call *dup_call(const syn_swim_call *call) {
  syn_swim_call *copy = malloc(sizeof *copy);
  if (!copy) abort();
  *copy = *call;
  copy->msg.records = NULL;
  copy->msg.n_records = copy->msg.cap_records = 0;
  for (size_t i = 0; i < call->msg.n_records; i++) {
    syn_swim_record *r = syn_swim_msg_add(&copy->msg);
    if (!r) abort();
    *r = call->msg.records[i];
  }
  return copy;
}

/* A call's outcome at its caller: the reply (NULL: failed). Takes the reply. */
static void complete(syn_sim *sim, uint32_t i, pcall *pc, syn_swim_msg *reply) {
  simnode *nd = &sim->nodes[i];
  pc->done = true;
  if (pc->orig) {
    syn_swim_msg *answer = calloc(1, sizeof *answer);
    if (!answer) abort();
    /* finish_forward frees the call it is given; the ping may still be on its way to
     * (or waiting at) the target, which must see it, so it gets a copy. */
    syn_swim_finish_forward(nd->swim, sim->now, &pc->orig->call->msg, dup_call(pc->call), reply,
                            answer);
    send_reply(sim, i, pc->orig, answer, false);
    release(pc->orig);
    pc->orig = NULL;
  } else {
    syn_swim_call_done(nd->swim, sim->now, pc->call, reply);
  }
  free_reply(reply);
  after_event(sim, i, false);
}

static void resume(syn_sim *sim, uint32_t i) {
  simnode *nd = &sim->nodes[i];
  nd->paused = false;
  evq q = nd->deferred;
  nd->deferred = (evq){0};
  for (size_t k = 0; k < q.n; k++) {
    q.v[k].at = sim->now;
    heap_push(sim, q.v[k]); /* in arrival order: sequence numbers keep it */
  }
  free(q.v);
  nd->tick_at = 0;
  syn_swim_tick(nd->swim, sim->now); /* the clock jumped: every overdue timer fires */
  after_event(sim, i, true);
}

/* Runs one event, or drops it when its member's life (epoch) is over. */
static void run_event(syn_sim *sim, ev *e) {
  simnode *nd = &sim->nodes[e->node];
  bool alive = nd->swim != NULL;
  bool mine = e->kind == EV_REQ || e->epoch == nd->epoch; /* requests reach any life */
  if (!alive || !mine || (e->kind == EV_TICK && (nd->paused || e->at != nd->tick_at))) {
    drop_event(e);
    return;
  }
  if (nd->paused && e->kind != EV_RESUME) {
    if (evq_push(&nd->deferred, e)) abort();
    return;
  }
  sim->c.events++;
  switch (e->kind) {
  case EV_TICK:
    nd->tick_at = 0;
    syn_swim_tick(nd->swim, sim->now);
    after_event(sim, e->node, true);
    break;
  case EV_REQ: run_request(sim, e->node, e->pc); break;
  case EV_REP:
  case EV_TIMEOUT:
    if (e->pc->done) break;
    complete(sim, e->node, e->pc, e->reply);
    e->reply = NULL;
    break;
  case EV_RESUME: resume(sim, e->node); break;
  default: break;
  }
  drop_event(e);
}

void syn_sim_run_until(syn_sim *sim, uint64_t t) {
  while (sim->heap.n > 0 && sim->heap.v[0].at <= t) {
    ev e = heap_pop(sim);
    if (e.at > sim->now) sim->now = e.at;
    run_event(sim, &e);
  }
  if (t > sim->now) sim->now = t;
}

/* ---- members ---- */

static int start_machine(syn_sim *sim, uint32_t i) {
  simnode *nd = &sim->nodes[i];
  syn_membership_config c = sim->cfg.swim;
  c.self_id = nd->id;
  c.peer_url = nd->peer_url;
  c.data_url = nd->data_url;
  c.role = SYN_ROLE_NODE;
  c.rng_seed = mix(sim->cfg.seed * 1000003u + i * 7919u + nd->epoch) | 1;
  nd->swim = syn_swim_new(&c, sim->now);
  if (!nd->swim) return -ENOMEM;
  size_t k = sim->cfg.seeds ? sim->cfg.seeds : 1;
  const char *seeds[16];
  if (k > 16) k = 16;
  for (size_t s = 0; s < k; s++) seeds[s] = sim->nodes[s].peer_url;
  if (syn_swim_set_seeds(nd->swim, seeds, k)) return -ENOMEM;
  nd->version = syn_swim_version(nd->swim);
  nd->tick_at = 0;
  nd->paused = false;
  after_event(sim, i, true);
  return 0;
}

static long add_member(syn_sim *sim) {
  if (sim->n == sim->cap) return -ENOSPC;
  uint32_t i = (uint32_t)sim->n++;
  simnode *nd = &sim->nodes[i];
  memset(nd, 0, sizeof *nd);
  snprintf(nd->id, sizeof nd->id, "synapse-node-%u", i);
  snprintf(nd->peer_url, sizeof nd->peer_url, "tcp://10.%u.%u.%u:7946", (i >> 16) & 255,
           (i >> 8) & 255, i & 255);
  snprintf(nd->data_url, sizeof nd->data_url, "tcp://10.%u.%u.%u:7100", (i >> 16) & 255,
           (i >> 8) & 255, i & 255);
  int rc = start_machine(sim, i);
  return rc ? rc : (long)i;
}

syn_sim *syn_sim_new(const syn_sim_config *cfg) {
  size_t cap = cfg->capacity > cfg->members ? cfg->capacity : cfg->members;
  if (cap == 0 || cap > (1u << 24) || cfg->loss < 0 || cfg->loss >= 1) return NULL;
  syn_sim *sim = calloc(1, sizeof *sim);
  if (!sim) return NULL;
  sim->cfg = *cfg;
  sim->rng = mix(cfg->seed) | 1;
  sim->cap = cap;
  sim->nodes = calloc(cap, sizeof *sim->nodes);
  sim->now = 1; /* 0 means "no tick pending" */
  if (!sim->nodes) {
    free(sim);
    return NULL;
  }
  for (size_t i = 0; i < cfg->members; i++) {
    if (add_member(sim) < 0) {
      syn_sim_free(sim);
      return NULL;
    }
  }
  return sim;
}

void syn_sim_free(syn_sim *sim) {
  if (!sim) return;
  while (sim->heap.n > 0) {
    ev e = heap_pop(sim);
    drop_event(&e);
  }
  free(sim->heap.v);
  for (size_t i = 0; i < sim->n; i++) {
    simnode *nd = &sim->nodes[i];
    for (size_t k = 0; k < nd->deferred.n; k++) drop_event(&nd->deferred.v[k]);
    free(nd->deferred.v);
    syn_swim_free(nd->swim);
  }
  free(sim->nodes);
  syn_buf_free(&sim->buf);
  free(sim);
}

void syn_sim_set_on_change(syn_sim *sim, syn_sim_change_fn fn, void *ctx) {
  sim->on_change = fn;
  sim->on_change_ctx = ctx;
}

uint64_t syn_sim_now(const syn_sim *sim) { return sim->now; }
size_t syn_sim_count(const syn_sim *sim) { return sim->n; }
const char *syn_sim_id(const syn_sim *sim, size_t node) { return sim->nodes[node].id; }
syn_swim *syn_sim_swim(syn_sim *sim, size_t node) { return sim->nodes[node].swim; }
bool syn_sim_up(const syn_sim *sim, size_t node) { return sim->nodes[node].swim != NULL; }

bool syn_sim_paused(const syn_sim *sim, size_t node) {
  return sim->nodes[node].swim && sim->nodes[node].paused;
}

/* ---- faults ---- */

static void drop_deferred(simnode *nd) {
  for (size_t k = 0; k < nd->deferred.n; k++) drop_event(&nd->deferred.v[k]);
  nd->deferred.n = 0;
}

void syn_sim_crash(syn_sim *sim, size_t node) {
  simnode *nd = &sim->nodes[node];
  if (!nd->swim) return;
  syn_swim_free(nd->swim);
  nd->swim = NULL;
  nd->epoch++; /* everything in flight for this life is dropped when it comes due */
  nd->paused = false;
  nd->tick_at = 0;
  drop_deferred(nd);
}

int syn_sim_restart(syn_sim *sim, size_t node) {
  if (node >= sim->n || sim->nodes[node].swim) return -EINVAL;
  return start_machine(sim, (uint32_t)node);
}

long syn_sim_join(syn_sim *sim) { return add_member(sim); }

void syn_sim_leave(syn_sim *sim, size_t node) {
  simnode *nd = &sim->nodes[node];
  if (!nd->swim || nd->paused) return;
  syn_swim_leave(nd->swim, sim->now);
  after_event(sim, (uint32_t)node, true);
}

void syn_sim_pause(syn_sim *sim, size_t node, uint64_t ms) {
  simnode *nd = &sim->nodes[node];
  if (!nd->swim || nd->paused) return;
  nd->paused = true;
  schedule(sim, sim->now + ms, EV_RESUME, (uint32_t)node, NULL, NULL, false);
}

void syn_sim_partition(syn_sim *sim, const uint8_t *side) {
  sim->partitioned = side != NULL;
  for (size_t i = 0; i < sim->n; i++) sim->nodes[i].side = side ? side[i] : 0;
}

void syn_sim_set_loss(syn_sim *sim, double loss) { sim->cfg.loss = loss; }
void syn_sim_count_bytes(syn_sim *sim, bool on) { sim->cfg.count_bytes = on; }

void syn_sim_set_member(syn_sim *sim, size_t node, double loss, uint32_t slow_ms) {
  sim->nodes[node].loss = loss;
  sim->nodes[node].slow_ms = slow_ms;
}

/* ---- observation ---- */

int syn_sim_state(const syn_sim *sim, size_t observer, size_t target, uint64_t *incarnation) {
  const syn_swim *s = sim->nodes[observer].swim;
  return s ? syn_swim_member_state(s, sim->nodes[target].id, incarnation) : -1;
}

void syn_sim_counters_get(const syn_sim *sim, syn_sim_counters *out) { *out = sim->c; }
void syn_sim_counters_reset(syn_sim *sim) { memset(&sim->c, 0, sizeof sim->c); }

void syn_sim_stats(const syn_sim *sim, syn_membership_stats *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < sim->n; i++)
    if (sim->nodes[i].swim) syn_swim_stats_add(sim->nodes[i].swim, out);
}
