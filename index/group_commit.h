/* Group commit: the write sets of concurrent callers, queued while the previous group's
 * commit (and its fsync) runs, are applied together by one of those callers (the
 * leader, the oldest waiting) in one call of the apply function, so they share one
 * transaction and one fsync. Each caller returns only once the group holding its writes
 * has been applied (committed, durable), with that group's result. No thread of its own:
 * the leader is a caller (LevelDB's writer queue).
 *
 * A group takes the oldest request whatever its size, then younger ones in order while
 * the group's writes stay within max_writes, so one caller's big batch is never split
 * and never makes a group unbounded by others.
 *
 * Threads: any number of callers at once; syn_group_commit_run blocks (on the apply
 * function, or waiting for another caller's group). The apply function runs on the
 * leader's thread, outside the queue's lock, one group at a time. */
#ifndef SYN_INDEX_GROUP_COMMIT_H
#define SYN_INDEX_GROUP_COMMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One caller's write set, on the caller's stack for the duration of the call. */
typedef struct syn_commit_req {
  void *writes; /* the caller's, handed to the apply function */
  size_t n;     /* writes in it (counts towards max_writes; 0 counts as 1) */
  /* private to the queue */
  int rc;
  bool done;
  pthread_cond_t cv;
  struct syn_commit_req *next;
} syn_commit_req;

/* Applies one group (reqs[0..n-1], oldest first) and returns its result, which every
 * request of the group gets. */
typedef int (*syn_commit_fn)(void *ctx, syn_commit_req *const *reqs, size_t n);

typedef struct syn_group_commit syn_group_commit;

/* max_writes >= 1. NULL on ENOMEM. Called once, at open. */
syn_group_commit *syn_group_commit_new(size_t max_writes, syn_commit_fn fn, void *ctx);
/* No call may be running or follow. NULL is fine. */
void syn_group_commit_free(syn_group_commit *g);

/* Queues req (writes and n filled by the caller) and returns once the group holding it
 * was applied: the apply function's result for that group, or -ENOMEM. */
int syn_group_commit_run(syn_group_commit *g, syn_commit_req *req);

/* Requests queued and not yet taken into a group (tests and benchmarks wait on it). */
size_t syn_group_commit_pending(syn_group_commit *g);

/* Groups applied and requests in them, since the queue was made. */
void syn_group_commit_counts(syn_group_commit *g, uint64_t *groups, uint64_t *requests);

/* How many requests, from head along ->next, one group takes: the first always, then
 * each following one while the writes stay within max_writes. Pure. */
size_t syn_group_commit_take(const syn_commit_req *head, size_t max_writes);

#endif
