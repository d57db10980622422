/* SWIM state machine: the decisions of membership, without I/O or clocks.
 *
 * Everything here is a function of its inputs and `now_ms` (a monotonic clock in
 * milliseconds passed by the caller), so timeouts, refutation and dissemination are
 * tested with a fake transport and no sleeps (cluster/swim_test.c). The transport
 * (cluster/membership.c) owns the clock, the sockets and the lock: a syn_swim is not
 * thread-safe, and its owner calls it under one mutex.
 *
 * How it talks: every exchange is a call (request -> reply, as over nng req/rep).
 *   - syn_swim_tick runs the timers and queues calls; syn_swim_take_calls hands them to
 *     the transport, which sends each and reports the outcome with syn_swim_call_done
 *     (reply, or NULL when it failed or timed out).
 *   - syn_swim_handle answers an incoming request. An indirect probe (PING_REQ) cannot be
 *     answered at once: handle returns SYN_SWIM_FORWARD with a ping call to make; the
 *     transport makes it (blocking is fine, on a server thread) and then calls
 *     syn_swim_finish_forward to build the answer.
 *
 * State precedence, as in memberlist: a record (incarnation, state) overrides the one
 * held when its incarnation is higher, or equal with a stronger state, in the order
 * alive < suspect < dead < left. So only the member itself can clear a suspicion, by
 * raising its incarnation (refutation), and left is terminal for its incarnation. */
#ifndef SYN_CLUSTER_SWIM_H
#define SYN_CLUSTER_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"

enum syn_swim_type {
  SYN_SWIM_PING = 1,  /* probe; answered by ACK (ok=false if target_id is not the receiver) */
  SYN_SWIM_PING_REQ,  /* ask the receiver to ping target_id at target_url for us */
  SYN_SWIM_PUSH_PULL, /* full state both ways (join, periodic anti-entropy) */
  SYN_SWIM_LEAVE,     /* carries the sender's left record; answered by ACK */
  SYN_SWIM_GOSSIP,    /* piggyback only; answered by ACK with the receiver's piggyback */
  SYN_SWIM_ACK,       /* reply; ok=false is a nack from an indirect probe */
};

/* A member's state as it travels. */
typedef struct syn_swim_record {
  char id[SYN_MEMBER_ID_MAX + 1];
  char data_url[SYN_MEMBER_URL_MAX + 1];
  char peer_url[SYN_MEMBER_URL_MAX + 1];
  uint8_t role;  /* enum syn_member_role */
  uint8_t state; /* enum syn_member_state */
  uint64_t incarnation;
  uint64_t age_ms; /* push-pull only: how long the sender has held this state */
  char suspector[SYN_MEMBER_ID_MAX + 1]; /* suspect records: who suspected; may be empty */
} syn_swim_record;

typedef struct syn_swim_msg {
  enum syn_swim_type type;
  uint32_t seq;
  bool ok;   /* ACK */
  bool join; /* PUSH_PULL: sent while joining */
  char from[SYN_MEMBER_ID_MAX + 1];
  char target_id[SYN_MEMBER_ID_MAX + 1];   /* PING (may be empty), PING_REQ */
  char target_url[SYN_MEMBER_URL_MAX + 1]; /* PING_REQ; a conflict: the id's holder */
  char claimant_url[SYN_MEMBER_URL_MAX + 1]; /* a conflict: who else claims the id */
  syn_swim_record *records; /* piggybacked updates, or the full state in PUSH_PULL */
  size_t n_records, cap_records;
} syn_swim_msg;

/* Appends a record slot (zeroed) to msg; NULL when out of memory. */
syn_swim_record *syn_swim_msg_add(syn_swim_msg *msg);
/* Frees the records; the message may be reused. */
void syn_swim_msg_clear(syn_swim_msg *msg);

/* A request to send. The transport owns it after syn_swim_take_calls, passes it back to
 * syn_swim_call_done, then frees it with syn_swim_call_free. */
typedef struct syn_swim_call {
  char url[SYN_MEMBER_URL_MAX + 1];
  uint32_t timeout_ms;
  syn_swim_msg msg;
} syn_swim_call;

void syn_swim_call_free(syn_swim_call *call);

typedef struct syn_swim syn_swim;

/* A machine for the member described by cfg (self_id, role, urls and the timing fields;
 * seeds are set separately), starting at now_ms. NULL on bad config or no memory. */
syn_swim *syn_swim_new(const syn_membership_config *cfg, uint64_t now_ms);
void syn_swim_free(syn_swim *s);

/* Replaces the (resolved) seed URLs. The machine joins through them at the next tick
 * and re-contacts those that are not the peer_url of a known alive member every seed
 * interval. Copies the strings. 0 or -ENOMEM. */
int syn_swim_set_seeds(syn_swim *s, const char *const *urls, size_t n);

/* Runs every timer due at now_ms, queueing calls. */
void syn_swim_tick(syn_swim *s, uint64_t now_ms);

/* The earliest time at which tick has something to do. */
uint64_t syn_swim_next_deadline(const syn_swim *s);

/* Moves up to cap queued calls to out; returns how many. */
size_t syn_swim_take_calls(syn_swim *s, syn_swim_call **out, size_t cap);

/* Outcome of a call taken from this machine: its reply, or NULL on failure. */
void syn_swim_call_done(syn_swim *s, uint64_t now_ms, const syn_swim_call *call,
                        const syn_swim_msg *reply);

#define SYN_SWIM_FORWARD 1
#define SYN_SWIM_CONFLICT 2

/* Answers a request: fills `reply` (which must be empty) and returns 0; or returns
 * SYN_SWIM_FORWARD with *forward set to a ping the caller must make (then
 * syn_swim_finish_forward); or SYN_SWIM_CONFLICT, merging nothing, when the sender
 * claims an id another live member holds (a join with a taken id, or a message from a
 * process that calls itself by our own id): reply->target_id names the id,
 * reply->target_url the holder and reply->claimant_url the other, and the caller refuses
 * with an error; or -EINVAL for a request that makes no sense (a reply type), -ENOMEM. */
int syn_swim_handle(syn_swim *s, uint64_t now_ms, const syn_swim_msg *req, syn_swim_msg *reply,
                    syn_swim_call **forward);

/* Completes a PING_REQ: merges the target's reply (NULL if it failed) and fills `reply`
 * for the original requester. Frees `forward`. */
void syn_swim_finish_forward(syn_swim *s, uint64_t now_ms, const syn_swim_msg *req,
                             syn_swim_call *forward, const syn_swim_msg *target_reply,
                             syn_swim_msg *reply);

/* Queues one gossip message to url (telling a member that holds our id that we exist,
 * so that it logs the clash too). */
void syn_swim_notify(syn_swim *s, const char *url);

/* Graceful leave: self becomes left (leaving the ring) and a LEAVE call is queued to
 * every live member. syn_swim_leave_done tells when they have all completed. */
void syn_swim_leave(syn_swim *s, uint64_t now_ms);
bool syn_swim_leave_done(const syn_swim *s);

/* Copies up to cap members (sorted by id, self included, reaped ones not); returns the
 * total count. */
size_t syn_swim_snapshot(const syn_swim *s, uint64_t now_ms, syn_member_info *out, size_t cap);
uint64_t syn_swim_version(const syn_swim *s);
uint64_t syn_swim_ring_version(const syn_swim *s);
bool syn_swim_joined(const syn_swim *s);
uint64_t syn_swim_incarnation(const syn_swim *s);
/* Adds the machine's counters (probes, suspicions, ...) into out. */
void syn_swim_stats_add(const syn_swim *s, syn_membership_stats *out);
/* Members counted by the timeouts (self included, reaped excluded). */
size_t syn_swim_member_count(const syn_swim *s);

/* Local health score now (Lifeguard): 0 .. awareness_max - 1. */
uint32_t syn_swim_awareness(const syn_swim *s);

/* Member `id`'s state here (enum syn_member_state) and its incarnation, or -1 when it is
 * unknown or reaped. A binary search, no copy: for observers that ask about a few members
 * of a large view often (bench/swim_sim). */
int syn_swim_member_state(const syn_swim *s, const char *id, uint64_t *incarnation);

/* Pure helpers, exposed for tests. Suspicion (Lifeguard, "Lifeguard: Local Health
 * Awareness for More Accurate Failure Detection", Dadgar et al. 2018, as memberlist's
 * suspicion.go): min = suspicion_mult * max(1, log10 N) * probe interval, max =
 * suspicion_max_mult * min, k = suspicion_mult - 2 expected confirmations (0 when N - 2
 * < k); with c confirmations the timeout is max(min, max - (max - min) * log(c + 1) /
 * log(k + 1)). */
uint64_t syn_swim_suspicion_timeout(const syn_membership_config *cfg, size_t members);
uint64_t syn_swim_suspicion_max(const syn_membership_config *cfg, size_t members);
uint32_t syn_swim_expected_confirmations(const syn_membership_config *cfg, size_t members);
uint64_t syn_lifeguard_suspicion_timeout(uint64_t min_ms, uint64_t max_ms, uint32_t confirmations,
                                         uint32_t expected);
/* A timeout scaled by the local health score: value * (awareness + 1). */
uint64_t syn_lifeguard_scale(uint64_t value, uint32_t awareness);
uint32_t syn_swim_retransmit_limit(const syn_membership_config *cfg, size_t members);
/* Whether (inc, state) overrides (cur_inc, cur_state). */
bool syn_swim_supersedes(uint64_t inc, uint8_t state, uint64_t cur_inc, uint8_t cur_state);

#endif
