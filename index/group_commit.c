/* Group commit queue; the contract is in group_commit.h.
 *
 * Design notes:
 * - One mutex over a singly linked FIFO of waiting requests. The request at the head is
 *   the leader: it takes a group from the head (syn_group_commit_take), leaves the lock,
 *   applies the group, then under the lock pops the group, marks each request done and
 *   wakes it, and wakes the new head, which leads the next group. Requests that arrive
 *   meanwhile queue behind the group being applied: that is the batching.
 * - Each request waits on its own condition variable, so a commit wakes exactly the
 *   callers it finished and the next leader, not every waiter.
 * - The group's pointer array is allocated once (max_writes entries: every request
 *   counts at least one write, so no group holds more requests). */
#include "index/group_commit.h"

#include <errno.h>
#include <stdlib.h>

struct syn_group_commit {
  pthread_mutex_t mu;
  syn_commit_req *head, *tail;
  size_t pending; /* queued, not yet in a group */
  size_t max_writes;
  syn_commit_fn fn;
  void *ctx;
  syn_commit_req **group; /* the leader's scratch (one group at a time) */
  uint64_t groups, requests;
};

static size_t weight(const syn_commit_req *r) { return r->n ? r->n : 1; }

size_t syn_group_commit_take(const syn_commit_req *head, size_t max_writes) {
  if (!head) return 0;
  size_t k = 1, writes = weight(head);
  for (const syn_commit_req *r = head->next; r && writes + weight(r) <= max_writes; r = r->next) {
    writes += weight(r);
    k++;
  }
  return k;
}

syn_group_commit *syn_group_commit_new(size_t max_writes, syn_commit_fn fn, void *ctx) {
  syn_group_commit *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->max_writes = max_writes ? max_writes : 1;
  g->group = calloc(g->max_writes, sizeof *g->group);
  if (!g->group) {
    free(g);
    return NULL;
  }
  g->fn = fn;
  g->ctx = ctx;
  pthread_mutex_init(&g->mu, NULL);
  return g;
}

void syn_group_commit_free(syn_group_commit *g) {
  if (!g) return;
  pthread_mutex_destroy(&g->mu);
  free(g->group);
  free(g);
}

static void enqueue(syn_group_commit *g, syn_commit_req *req) {
  req->next = NULL;
  req->done = false;
  if (g->tail)
    g->tail->next = req;
  else
    g->head = req;
  g->tail = req;
  g->pending++;
}

/* The leader (req at the head, lock held): fills g->group; returns its size. */
static size_t take_group(syn_group_commit *g) {
  size_t k = syn_group_commit_take(g->head, g->max_writes);
  syn_commit_req *r = g->head;
  for (size_t i = 0; i < k; i++, r = r->next) g->group[i] = r;
  g->pending -= k;
  return k;
}

/* Lock held: pops the applied group, wakes its waiters and the next leader. */
static void finish_group(syn_group_commit *g, size_t k, int rc, const syn_commit_req *self) {
  for (size_t i = 0; i < k; i++) {
    syn_commit_req *r = g->head;
    g->head = r->next;
    r->rc = rc;
    r->done = true;
    if (r != self) pthread_cond_signal(&r->cv);
  }
  if (!g->head)
    g->tail = NULL;
  else
    pthread_cond_signal(&g->head->cv);
  g->groups++;
  g->requests += k;
}

int syn_group_commit_run(syn_group_commit *g, syn_commit_req *req) {
  if (pthread_cond_init(&req->cv, NULL)) return -ENOMEM;
  pthread_mutex_lock(&g->mu);
  enqueue(g, req);
  while (!req->done && g->head != req) pthread_cond_wait(&req->cv, &g->mu);
  if (!req->done) {
    size_t k = take_group(g);
    pthread_mutex_unlock(&g->mu);
    int rc = g->fn(g->ctx, g->group, k);
    pthread_mutex_lock(&g->mu);
    finish_group(g, k, rc, req);
  }
  pthread_mutex_unlock(&g->mu);
  pthread_cond_destroy(&req->cv);
  return req->rc;
}

size_t syn_group_commit_pending(syn_group_commit *g) {
  pthread_mutex_lock(&g->mu);
  size_t n = g->pending;
  pthread_mutex_unlock(&g->mu);
  return n;
}

void syn_group_commit_counts(syn_group_commit *g, uint64_t *groups, uint64_t *requests) {
  pthread_mutex_lock(&g->mu);
  *groups = g->groups;
  *requests = g->requests;
  pthread_mutex_unlock(&g->mu);
}
