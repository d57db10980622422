/* Internals shared by the files of the node's cluster side: replica.c (lifetime, state),
 * replication.c (swarm pushes, quorum writes), sync.c (hand-off, anti-entropy, drops,
 * tombstone purge) and peer_server.c (what other nodes ask). Not part of the
 * component's face. */
#ifndef SYN_NODE_REPLICA_INTERNAL_H
#define SYN_NODE_REPLICA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/buf.h"
#include "node/registered.h"
#include "node/replica.h"

#define REPLICA_MAX_TARGETS 64
#define REPLICA_QUEUE_MAX (8u * 1024 * 1024) /* bytes of swarm updates queued per replica */

/* One replica this node pushes swarm updates to, with its own pusher thread, so a slow
 * or paused replica delays nobody else. */
typedef struct push_target {
  struct syn_replica *r;
  char id[SYN_MEMBER_ID_MAX + 1];
  char peer_url[SYN_MEMBER_URL_MAX + 1];
  syn_buf queue;      /* SwarmUpdates body: field-1 AnnounceRequests (under push_mu) */
  uint64_t queued;    /* updates in queue */
  uint64_t oldest_ms; /* monotonic ms of the oldest update in queue, 0 when empty */
  uint64_t dropped;   /* updates dropped because the queue was full or the replica left */
  uint64_t busy_ms;   /* monotonic ms of the last round that had updates, or of creation */
  uint64_t acked_ms;  /* monotonic ms of the last acknowledged batch, or of creation */
  pthread_t thread;
  bool started; /* the thread is joinable (until joined) */
  bool retired; /* its thread ended: the slot is free for another member (push_mu) */
} push_target;

/* What the last round of one kind of comparison cost (replica.c reports them). */
enum { SYNC_CATCH_UP = 0, SYNC_ANTI_ENTROPY = 1, SYNC_KINDS = 2 };
typedef struct sync_figures {
  uint64_t rounds, last_duration_us, records_pulled;
  uint64_t last_partitions, last_buckets, last_keys, last_records;
} sync_figures;

struct syn_replica {
  const syn_config *cfg;
  syn_membership *m;
  syn_view_source *views;
  syn_swarm_store *swarms;
  struct syn_ws_peers *ws; /* WebSocket peers (node/ws_peers.h); NULL until set */
  syn_index *index;
  syn_hlc *hlc;
  syn_registered *registered; /* tracker.registered_only, or NULL (node/registered.h) */
  atomic_bool stopping;

  /* serving state */
  atomic_bool caught_up;               /* every held partition pulled or compared since (re)start */
  atomic_bool resync;                  /* compare everything again before serving reads */
  atomic_bool stale;                   /* this node's data predates the tombstone grace */
  atomic_uint_fast64_t pulled_version; /* ring version whose gained partitions are pulled */
  atomic_uint_fast64_t last_pull_ms;   /* when another node last pulled from this one */
  uint64_t refutations_seen;           /* sync thread only */
  atomic_uint_fast64_t pauses_seen;    /* the membership's pause count last looked at */
  pthread_mutex_t ready_mu;
  uint8_t *ready;       /* partitions held in the ring of the last completed pass (ready_mu) */
  uint32_t ready_parts; /* bits in ready; 0 until the first pass completed */
  char synced_path[4200];              /* <data_dir>/synced_at: when a sync last succeeded */

  /* swarm pushes */
  pthread_mutex_t push_mu;
  pthread_cond_t push_cv;
  push_target targets[REPLICA_MAX_TARGETS];
  size_t n_targets;         /* slots used so far, retired ones included */
  uint64_t untargeted;      /* updates not queued: every slot busy (push_mu) */
  uint64_t untargeted_warn; /* monotonic ms of the last warning about it */

  pthread_t sync_thread;
  bool sync_started;
  pthread_mutex_t figures_mu;
  sync_figures figures[SYNC_KINDS]; /* under figures_mu */
};

/* Monotonic and wall-clock milliseconds; a sleep that ends early when stopping. */
uint64_t replica_mono_ms(void);
void replica_sleep(syn_replica *r, uint32_t ms);

/* A reference to the current view (release with syn_view_put). */
syn_view *replica_view(syn_replica *r);

/* After a completed hand-off pass under `ring`: the partitions it gives this node are
 * the ones searches may be answered for (syn_replica_ready_partitions). */
void replica_publish_ready(syn_replica *r, const syn_ring *ring, const char *self_id);

/* Whether a member may be asked for data: usable, or left but still serving pulls. */
bool replica_source_ok(const syn_member_info *m);

/* One app call with its reply decoded; NULL on any failure (the caller counts it). */
Synapse__ReplicaReply *replica_call(syn_replica *r, const char *peer_url,
                                    const Synapse__ReplicaRequest *req, uint32_t timeout_ms);

/* Applies a record or tombstone from another node (newest version wins); observes its
 * clock. 0, or a negative errno for a malformed record. */
int replica_apply_record(syn_replica *r, const Synapse__Record *rec);
/* The same for many records at once (pulled, or a coordinator's batch of
 * registrations), in one index batch (one commit): the number applied without error.
 * ok[i] and existed[i] (each may be NULL; n entries) tell, per record, whether it was
 * stored (or something newer was held) and whether a live record was there before. */
size_t replica_apply_records(syn_replica *r, Synapse__Record *const *recs, size_t n, bool *ok,
                             bool *existed);

/* Records one finished round of `kind` (SYNC_*). */
void replica_note_round(syn_replica *r, int kind, uint64_t duration_us, uint64_t partitions,
                        uint64_t buckets, uint64_t keys, uint64_t records);

/* replication.c */
int replication_start(syn_replica *r, char *err, size_t err_len);
void replication_stop(syn_replica *r);

/* sync.c: the hand-off and anti-entropy thread */
void *sync_main(void *arg);

/* peer_server.c: the membership's app handler */
int peer_serve(void *ctx, const uint8_t *req, size_t len, syn_buf *reply);

#endif
