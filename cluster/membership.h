/* Membership: who is in the cluster, and who is reachable, by SWIM-style gossip over nng.
 *
 * Every process (node or router) runs one syn_membership. It owns:
 *   - a peer server: an nng rep0 socket listening on the member's peer_url, served by
 *     `server_threads` threads answering pings, indirect pings, push-pull exchanges and
 *     leave notices, and `app_threads` threads running the node's own opaque `app`
 *     requests (apart, so that a slow app handler never delays a ping);
 *   - one req0 socket per peer URL it calls (cached, evicted when idle);
 *   - a gossip thread that drives the timers of the state machine (cluster/swim.h):
 *     probes, indirect probes, suspicion timeouts, piggybacked dissemination, periodic
 *     push-pull and seed re-contact, reaping;
 *   - a seeder thread that resolves the seed URLs (DNS names may stand for several
 *     addresses, as a Kubernetes headless Service does) every seed interval.
 *
 * Liveness is not ownership (design decision 1): the ring is built over the members of
 * role node that have not left and have not been reaped (syn_member_in_ring), so a member
 * that is merely suspect or dead still owns its partitions until the reap timeout; only
 * a join, a graceful leave or a reap changes `ring_version`.
 *
 * Errors are 0 or a negative errno value (strerror(-rc) turns one into text). */
#ifndef SYN_CLUSTER_MEMBERSHIP_H
#define SYN_CLUSTER_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/ring.h"
#include "common/buf.h"

/* Bounds on what a member may advertise; a peer message exceeding them is dropped. */
#define SYN_MEMBER_ID_MAX 64   /* bytes, without the NUL */
#define SYN_MEMBER_URL_MAX 256 /* bytes, without the NUL */

enum syn_member_state {
  SYN_MEMBER_ALIVE = 0,
  SYN_MEMBER_SUSPECT = 1, /* a probe failed; dead unless refuted within the timeout */
  SYN_MEMBER_DEAD = 2,    /* suspicion expired; still owns partitions until reaped */
  SYN_MEMBER_LEFT = 3,    /* left gracefully: terminal for its incarnation, owns nothing */
};

enum syn_member_role {
  SYN_ROLE_NODE = 0,   /* holds partitions */
  SYN_ROLE_ROUTER = 1, /* stateless front: a member that owns nothing */
};

typedef struct syn_member_info {
  char id[SYN_MEMBER_ID_MAX + 1];
  char data_url[SYN_MEMBER_URL_MAX + 1]; /* what routers dial for requests */
  char peer_url[SYN_MEMBER_URL_MAX + 1]; /* its peer (gossip and app) socket */
  enum syn_member_role role;
  enum syn_member_state state;
  uint64_t incarnation;
  uint64_t last_seen_ms;   /* monotonic ms of the last sign of life heard here; 0 never */
  uint64_t state_since_ms; /* monotonic ms when the current state began, as seen here */
  bool self;               /* this process */
  char suspected_by[SYN_MEMBER_ID_MAX + 1]; /* while suspect: who suspected first, if known */
} syn_member_info;

const char *syn_member_state_name(enum syn_member_state state); /* "alive", ... */
const char *syn_member_role_name(enum syn_member_role role);    /* "node", "router" */

/* Whether the member takes part in the ring: role node, not left (reaped members are
 * never reported). */
bool syn_member_in_ring(const syn_member_info *m);

/* Lifeguard's components (Dadgar et al. 2018), each of which lifeguard_off can turn off:
 * LHM, the local health multiplier (a member whose probes go unanswered, or that had to
 * refute, scales its probe interval and timeout); DOGPILE, the suspicion timeout that
 * starts at its longest and shrinks with independent confirmations (off: a fixed
 * suspicion_mult * max(1, log10 N) * probe interval, as SWIM); BUDDY, telling a suspect of
 * its suspicion in the ping to it and in the answer to anything it sends. */
#define SYN_LIFEGUARD_NO_LHM 1u
#define SYN_LIFEGUARD_NO_DOGPILE 2u
#define SYN_LIFEGUARD_NO_BUDDY 4u
#define SYN_LIFEGUARD_ALL_OFF 7u

/* Every knob, with syn_membership_config_defaults giving the reason for each default. */
typedef struct syn_membership_config {
  /* Identity. Strings are copied by start; the caller keeps ownership. */
  const char *self_id; /* unique, printable, at most SYN_MEMBER_ID_MAX bytes */
  enum syn_member_role role;
  const char *data_url;   /* advertised to others; may be empty for a router */
  const char *peer_url;   /* advertised peer socket: tcp://HOST:PORT, ipc://PATH, inproc:// */
  const char *listen_url; /* where to listen if not peer_url (e.g. tcp://0.0.0.0:PORT when
                             the advertised host cannot be bound); NULL or "": peer_url */
  /* Peer URLs to join through and re-contact; a tcp:// host may be a DNS name. */
  const char *const *seeds;
  size_t n_seeds;

  /* Failure detection. */
  uint32_t probe_interval_ms;  /* one member probed per interval */
  uint32_t probe_timeout_ms;   /* direct ping deadline before indirect probes */
  uint32_t indirect_checks;    /* members asked to ping a target that missed its ack */
  uint32_t suspicion_mult;     /* Lifeguard: suspect -> dead after at least
                                  mult*max(1,log10 N)*probe interval, once mult-2 others
                                  confirmed the suspicion */
  uint32_t suspicion_max_mult; /* ... and at most max_mult times that without confirmations */
  uint32_t awareness_max;      /* Lifeguard local health: timeouts scale up to this factor */
  uint32_t lifeguard_off;      /* SYN_LIFEGUARD_* bits: parts of Lifeguard turned off, for
                                  comparisons with plain SWIM (bench/swim_sim); 0 in service */

  /* Dissemination. */
  uint32_t gossip_interval_ms;    /* piggyback-only gossip rounds */
  uint32_t gossip_nodes;          /* members per gossip round */
  uint32_t retransmit_mult;       /* an update is sent mult*ceil(log10(N+1)) times */
  uint32_t max_piggyback;         /* updates carried per message */
  uint32_t gossip_to_dead_ms;     /* dead members still get gossip this long (to refute) */
  uint32_t push_pull_interval_ms; /* full-state exchange with one random member */
  uint32_t push_pull_timeout_ms;  /* deadline of a push-pull (and join) exchange */
  uint32_t seed_interval_ms;      /* re-contact seeds that are not known alive members */
  uint32_t join_retry_ms;         /* seed retry period until the first join succeeds */

  /* Membership lifetime. */
  uint32_t reap_timeout_ms; /* dead or left this long: removed from the member set */

  /* Transport and bounds. */
  uint32_t server_threads;    /* peer-server threads: gossip requests */
  uint32_t app_threads;       /* threads running the app handler */
  uint32_t app_queue;         /* app requests waiting for them; beyond: answered busy */
  uint32_t max_members;       /* members beyond this are not added (counted as dropped) */
  uint32_t max_message_bytes; /* NNG_OPT_RECVMAXSZ of every peer socket */
  uint32_t peer_idle_ms;      /* an unused cached req socket is closed after this */
  uint64_t rng_seed;          /* 0: random */

  /* Trust. */
  const char *cluster_key; /* shared key text (common/cluster_auth.h) sealing every
                              message; NULL or "": an open cluster (warned at start) */
} syn_membership_config;

/* Fills the defaults (memberlist's LAN values, facts.md). */
void syn_membership_config_defaults(syn_membership_config *cfg);

struct syn_config;
/* Takes the failure-detection knobs the process configuration sets (cluster.*), leaving
 * the rest at their defaults. Identity, URLs and seeds are the caller's. */
void syn_membership_config_apply(syn_membership_config *mc, const struct syn_config *cfg);

/* Counters for /metrics; monotonic since start. */
typedef struct syn_membership_stats {
  uint64_t msgs_in;      /* peer requests and replies decoded */
  uint64_t msgs_out;     /* peer requests and replies sent */
  uint64_t dropped;      /* undecodable or out-of-bounds messages and records, ignored */
  uint64_t calls_failed; /* outgoing calls that timed out or failed */
  uint64_t probes;
  uint64_t probes_failed; /* probes that got no ack, direct or indirect */
  uint64_t suspicions;    /* members that went alive -> suspect here */
  uint64_t deaths;        /* members that went to dead here */
  uint64_t refutations;   /* times this member raised its incarnation to refute */
  uint64_t reaped;        /* members removed after the reap timeout */
  uint64_t app_in, app_out;
  uint64_t confirmations; /* independent confirmations of suspicions counted (Lifeguard) */
  uint32_t awareness;     /* local health score now: 0 healthy, higher = slower probing */
  uint64_t auth_failures; /* messages refused for a missing or wrong cluster MAC, here and
                             on the sockets sharing syn_membership_auth */
} syn_membership_stats;

typedef struct syn_membership syn_membership;

/* Called when the member view changes (version bumped), on a membership thread (gossip,
 * peer server or an nng completion thread), never with a membership lock held. The callee
 * must only wake its own loop (uv_async_send) and return; it may call snapshot later. */
typedef void (*syn_membership_change_fn)(void *ctx);

/* Serves an app request on an app thread (several run at once). `req` is valid during
 * the call; append the answer to `reply` (owned by the server). Return 0 to send it,
 * nonzero to answer the caller with an error. May block (it holds one app thread). */
typedef int (*syn_membership_app_fn)(void *ctx, const uint8_t *req, size_t len, syn_buf *reply);

/* Listens, resolves the seeds once (blocks on DNS), starts the threads and begins joining
 * through the seeds (asynchronously: see syn_membership_joined). The config's strings are
 * copied. NULL with a message in err when the config is invalid or the listen fails.
 * Any thread. */
syn_membership *syn_membership_start(const syn_membership_config *cfg, char *err, size_t err_len);

/* Graceful leave: marks self left (so the ring drops it), tells every live member and
 * waits until they have all answered or timeout_ms passed. Blocks; any thread but the
 * membership's own. Gossip continues until stop so the news keeps spreading. 0, or
 * -ETIMEDOUT when some member did not answer in time (the news still spreads by gossip). */
int syn_membership_leave(syn_membership *m, uint32_t timeout_ms);

/* Stops every thread and frees everything. Blocks until the peer-server threads have
 * returned (an app handler in progress is waited for). Without a prior leave the others
 * will see this member fail. Call once, from a thread that is not a membership thread. */
void syn_membership_stop(syn_membership *m);

/* Sets the change callback (NULL to clear). Any thread. */
void syn_membership_set_on_change(syn_membership *m, syn_membership_change_fn fn, void *ctx);

/* Sets the app handler (NULL to clear: app requests are then answered with an error). Set
 * it before others can send app requests; any thread. Returns once no call of the
 * previous handler is running, so its context may be freed then. */
void syn_membership_set_app_handler(syn_membership *m, syn_membership_app_fn fn, void *ctx);

/* Sends an app request to the member listening at peer_url and waits for its reply (the
 * bytes are appended to *reply, which the caller owns). Blocks up to timeout_ms. For node
 * threads; from an app handler it holds an app thread while it waits. 0,
 * -ETIMEDOUT, -EMSGSIZE (request too large), -EBUSY (the peer's app queue is full: retry
 * later), -EREMOTEIO (the peer's handler failed or none is set), -EPROTO (undecodable
 * reply), -ECANCELED (stopping), -EIO (transport). */
int syn_membership_app_call(syn_membership *m, const char *peer_url, const void *req, size_t len,
                            uint32_t timeout_ms, syn_buf *reply);

/* Copies up to `cap` members (self included, sorted by id) into out; *count is the total,
 * which may exceed cap (call again with more room). version bumps on any change of the
 * view; ring_version only when the set of ring members changes. Either pointer may be
 * NULL. Any thread; takes the lock briefly. */
void syn_membership_snapshot(syn_membership *m, syn_member_info *out, size_t cap, size_t *count,
                             uint64_t *version, uint64_t *ring_version);

/* Builds the ring over the current ring members (syn_member_in_ring), and tells the
 * ring_version it corresponds to. NULL on bad arguments or no memory. Any thread. */
syn_ring *syn_membership_build_ring(syn_membership *m, uint32_t partitions, uint32_t replication,
                                    uint64_t *ring_version);

struct syn_cluster_auth;
/* The cluster key this member seals and opens with, NULL for an open cluster. The node's
 * data socket and a router's upstreams use the same one (one key, one failure counter).
 * Valid until syn_membership_stop; any thread. */
struct syn_cluster_auth *syn_membership_auth(syn_membership *m);

/* True once a join through a seed has succeeded (or there was no other seed to join). */
bool syn_membership_joined(syn_membership *m);

/* True when a member refused our join because another live member holds our id; the
 * reason (naming the id and both addresses) goes to why. The process should stop: it
 * will never be admitted under that id. */
bool syn_membership_refused(syn_membership *m, char *why, size_t len);

uint64_t syn_membership_self_incarnation(syn_membership *m);

/* Monotonic ms of the gossip thread's last turn (it turns at least every gossip
 * interval): a reader that finds it far in the past knows the process was paused. */
uint64_t syn_membership_last_tick_ms(syn_membership *m);
/* How many gossip turns came two seconds or more late (the process was paused, or
 * starved of CPU that long): a member that was away may have missed writes. */
uint64_t syn_membership_pauses(syn_membership *m);
void syn_membership_stats_get(syn_membership *m, syn_membership_stats *out);

#endif
