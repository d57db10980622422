/* Membership simulator: many SWIM machines (cluster/swim.c, the code every member runs)
 * in one process, over a simulated network and clock.
 *
 * What it is for: measuring at hundreds or thousands of members what a handful of real
 * processes cannot show (detection time, false positives, dissemination, message load),
 * and testing the protocol under faults deterministically. Nothing of the protocol is
 * re-implemented here: the simulator plays the part of cluster/membership.c (the
 * transport), calling syn_swim_tick at each machine's next deadline, handing each call
 * from syn_swim_take_calls to its callee's syn_swim_handle, running an indirect probe's
 * forward ping and syn_swim_finish_forward, and reporting outcomes with
 * syn_swim_call_done, replies or timeouts (a call is failed at its timeout_ms, as nng's
 * aio timeout does).
 *
 * The network: each message (a request, a reply) takes the link's delay (a fixed
 * per-link base in [delay_ms, delay_ms + link_jitter_ms) plus per-message jitter in
 * [0, jitter_ms)) plus the receiver's extra processing delay (a slow member), and is lost
 * with the link's probability (global loss, combined with each end's own loss). A
 * partition drops every message between members on different sides. A crashed member
 * drops everything; a restarted one is a new machine with the same id and URL; a paused
 * one handles nothing until it resumes (what reached it meanwhile waits, in order, as
 * in a socket buffer), then its clock jumps.
 *
 * Determinism: events run in (time, sequence) order from a binary heap, and every random
 * choice (delays, losses, each machine's rng_seed) comes from the one seed, so a run is
 * a pure function of its configuration and the calls made on it. Time is simulated
 * milliseconds; nothing sleeps.
 *
 * Not modelled: the transport's thread limits (server_threads: a member here runs any
 * number of indirect probes at once), connection setup, and bandwidth (a message's size
 * does not change its delay).
 *
 * Single-threaded; no function blocks. Indices name members in creation order. */
#ifndef SYN_CLUSTER_SIM_H
#define SYN_CLUSTER_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/swim.h"

typedef struct syn_sim syn_sim;

typedef struct syn_sim_config {
  size_t members;             /* started by syn_sim_new */
  size_t capacity;            /* most members ever (joins included); 0: members */
  size_t seeds;               /* the first `seeds` members are everyone's seeds (1 if 0) */
  uint64_t seed;              /* every random choice derives from it */
  uint32_t delay_ms;          /* one-way base delay of a link */
  uint32_t link_jitter_ms;    /* links differ by up to this much (fixed per link) */
  uint32_t jitter_ms;         /* each message adds up to this much */
  double loss;                /* probability that one message is lost */
  bool count_bytes;           /* encode every message with cluster/gossip_wire.c to count bytes */
  syn_membership_config swim; /* timing and bounds for every member (ids and URLs are
                                 the simulator's; rng_seed derived from seed) */
} syn_sim_config;

/* Messages and bytes by kind since the last syn_sim_counters_reset. Requests are counted
 * when sent, replies when sent back (a lost message counts: it was sent). */
enum syn_sim_kind {
  SYN_SIM_PING,
  SYN_SIM_PING_REQ,
  SYN_SIM_PUSH_PULL,
  SYN_SIM_LEAVE,
  SYN_SIM_GOSSIP,
  SYN_SIM_REPLY, /* acks, nacks, push-pull answers */
  SYN_SIM_KINDS
};

typedef struct syn_sim_counters {
  uint64_t msgs[SYN_SIM_KINDS];
  uint64_t bytes[SYN_SIM_KINDS]; /* encoded protobuf bodies; 0 unless count_bytes */
  uint64_t lost;                 /* dropped by loss or a partition */
  uint64_t events;               /* simulator events run */
} syn_sim_counters;

/* Called after an event at member `node` changed its view (syn_swim_version moved). */
typedef void (*syn_sim_change_fn)(void *ctx, syn_sim *sim, size_t node);

/* Starts cfg->members members at time 0 (all at once, as a StatefulSet does); they join
 * through the seeds. NULL on bad config or no memory. */
syn_sim *syn_sim_new(const syn_sim_config *cfg);
void syn_sim_free(syn_sim *sim);

void syn_sim_set_on_change(syn_sim *sim, syn_sim_change_fn fn, void *ctx);

/* Runs every event up to and including time t (simulated ms), then sets the clock to t. */
void syn_sim_run_until(syn_sim *sim, uint64_t t);
uint64_t syn_sim_now(const syn_sim *sim);

/* Members ever created (the next join gets this index). */
size_t syn_sim_count(const syn_sim *sim);
const char *syn_sim_id(const syn_sim *sim, size_t node);
/* The member's machine, or NULL while it is crashed. Read it only between runs or from
 * the change callback. */
syn_swim *syn_sim_swim(syn_sim *sim, size_t node);
bool syn_sim_up(const syn_sim *sim, size_t node);     /* not crashed */
bool syn_sim_paused(const syn_sim *sim, size_t node); /* up but paused */

/* Faults. Each takes effect at the current time. */
void syn_sim_crash(syn_sim *sim, size_t node);
/* A crashed member starts again: a new machine, same id and URL, joining via the seeds.
 * -EINVAL if it is up. */
int syn_sim_restart(syn_sim *sim, size_t node);
/* A new member joining through the seeds; its index, or -ENOSPC / -ENOMEM. */
long syn_sim_join(syn_sim *sim);
/* Graceful leave (syn_swim_leave); the member stays up, gossiping, until crashed. */
void syn_sim_leave(syn_sim *sim, size_t node);
/* The member handles nothing for ms milliseconds (a stop-the-world pause). */
void syn_sim_pause(syn_sim *sim, size_t node, uint64_t ms);
/* Side of each member: messages between different sides are dropped. NULL heals. The
 * array (syn_sim_count entries at the call; later joins are on side 0) is copied. */
void syn_sim_partition(syn_sim *sim, const uint8_t *side);
void syn_sim_set_loss(syn_sim *sim, double loss);
/* Whether messages are encoded to count their bytes (costly: off while not measuring). */
void syn_sim_count_bytes(syn_sim *sim, bool on);
/* A member's own loss (each message to or from it) and its extra processing delay (each
 * message it receives waits this long: a slow, CPU-starved member). */
void syn_sim_set_member(syn_sim *sim, size_t node, double loss, uint32_t slow_ms);

/* Member `observer`'s view of member `target`: enum syn_member_state, or -1 when the
 * observer is crashed or does not know the target. */
int syn_sim_state(const syn_sim *sim, size_t observer, size_t target, uint64_t *incarnation);

void syn_sim_counters_get(const syn_sim *sim, syn_sim_counters *out);
void syn_sim_counters_reset(syn_sim *sim);
/* Sum of every live member's syn_swim_stats_add. */
void syn_sim_stats(const syn_sim *sim, syn_membership_stats *out);

#endif
