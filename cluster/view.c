/* Cluster view snapshots. Design notes:
 *
 * - A snapshot copies the member list (a few hundred records at most) and shares the
 *   ring through a reference-counted holder, so that liveness changes (frequent) cost a
 *   copy of the members and member-set changes (rare) a ring build as well.
 * - The source keeps the latest snapshot; the membership callback only sets `stale`, so
 *   no build ever runs on a membership thread with a caller waiting on it. */
#include "cluster/view.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ring_ref {
  syn_ring *ring;
  atomic_uint refs;
} ring_ref;

struct syn_view {
  atomic_uint refs;
  ring_ref *ring;
  uint64_t version, ring_version;
  syn_member_info *members;
  size_t n;
  long self; /* index into members, or -1 */
  long self_ring_index;
};

typedef struct listener {
  void (*fn)(void *ctx);
  void *ctx;
} listener;

struct syn_view_source {
  syn_membership *m;
  uint32_t partitions, replication;
  pthread_mutex_t mu;
  atomic_bool stale;
  syn_view *current;
  pthread_mutex_t listen_mu; /* held while listeners run, so unlisten waits for them */
  listener listeners[SYN_VIEW_MAX_LISTENERS];
};

static void ring_ref_put(ring_ref *r) {
  if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
    syn_ring_free(r->ring);
    free(r);
  }
}

static ring_ref *ring_ref_new(syn_ring *ring) {
  ring_ref *r = ring ? malloc(sizeof *r) : NULL;
  if (!r) {
    syn_ring_free(ring);
    return NULL;
  }
  r->ring = ring;
  atomic_init(&r->refs, 1);
  return r;
}

void syn_view_put(syn_view *v) {
  if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
  ring_ref_put(v->ring);
  free(v->members);
  free(v);
}

static int cmp_member_id(const void *a, const void *b) {
  return strcmp(((const syn_member_info *)a)->id, ((const syn_member_info *)b)->id);
}

/* A ring over the members that take part in it (syn_member_in_ring). */
static syn_ring *ring_over(const syn_member_info *members, size_t n, uint32_t partitions,
                           uint32_t replication) {
  const char **ids = malloc((n + 1) * sizeof *ids);
  if (!ids) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (syn_member_in_ring(&members[i])) ids[k++] = members[i].id;
  syn_ring *ring = syn_ring_build(ids, k, partitions, replication);
  free(ids);
  return ring;
}

/* A view over `members` (taken: the view frees it) with the given ring holder (its
 * reference taken too). */
static syn_view *view_new(syn_member_info *members, size_t n, ring_ref *ring, uint64_t version,
                          uint64_t ring_version) {
  syn_view *v = calloc(1, sizeof *v);
  if (!v) {
    free(members);
    ring_ref_put(ring);
    return NULL;
  }
  atomic_init(&v->refs, 1);
  qsort(members, n, sizeof *members, cmp_member_id);
  v->members = members;
  v->n = n;
  v->ring = ring;
  v->version = version;
  v->ring_version = ring_version;
  v->self = -1;
  for (size_t i = 0; i < n; i++)
    if (members[i].self) v->self = (long)i;
  v->self_ring_index = v->self >= 0 ? syn_ring_index_of(ring->ring, members[v->self].id) : -1;
  return v;
}

syn_view *syn_view_build(const syn_member_info *members, size_t n, uint32_t partitions,
                         uint32_t replication, uint64_t version, uint64_t ring_version) {
  syn_member_info *copy = malloc((n + 1) * sizeof *copy);
  if (!copy) return NULL;
  if (n) memcpy(copy, members, n * sizeof *copy);
  ring_ref *ring = ring_ref_new(ring_over(copy, n, partitions, replication));
  if (!ring) {
    free(copy);
    return NULL;
  }
  return view_new(copy, n, ring, version, ring_version);
}

/* The membership's member list, grown until it fits (the set may grow in between). */
static syn_member_info *snapshot_members(syn_membership *m, size_t *n, uint64_t *version,
                                         uint64_t *ring_version) {
  size_t cap = 64;
  for (;;) {
    syn_member_info *all = malloc(cap * sizeof *all);
    if (!all) return NULL;
    syn_membership_snapshot(m, all, cap, n, version, ring_version);
    if (*n <= cap) return all;
    free(all);
    cap = *n + 16;
  }
}

/* Builds a fresh snapshot; source lock held. */
static syn_view *rebuild(syn_view_source *s) {
  size_t n;
  uint64_t version, ring_version;
  syn_member_info *members = snapshot_members(s->m, &n, &version, &ring_version);
  if (!members) return NULL;
  ring_ref *ring = NULL;
  if (s->current && s->current->ring_version == ring_version) {
    ring = s->current->ring;
    atomic_fetch_add(&ring->refs, 1);
  } else {
    ring = ring_ref_new(ring_over(members, n, s->partitions, s->replication));
  }
  if (!ring) {
    free(members);
    return NULL;
  }
  return view_new(members, n, ring, version, ring_version);
}

syn_view *syn_view_get(syn_view_source *s) {
  pthread_mutex_lock(&s->mu);
  if (atomic_exchange(&s->stale, false) || !s->current) {
    syn_view *fresh = rebuild(s);
    if (fresh) {
      syn_view_put(s->current);
      s->current = fresh;
    } else {
      atomic_store(&s->stale, true); /* try again next time */
    }
  }
  syn_view *v = s->current;
  if (v) atomic_fetch_add(&v->refs, 1);
  pthread_mutex_unlock(&s->mu);
  return v;
}

/* Membership thread. */
static void on_change(void *ctx) {
  syn_view_source *s = ctx;
  atomic_store(&s->stale, true);
  pthread_mutex_lock(&s->listen_mu);
  for (int i = 0; i < SYN_VIEW_MAX_LISTENERS; i++)
    if (s->listeners[i].fn) s->listeners[i].fn(s->listeners[i].ctx);
  pthread_mutex_unlock(&s->listen_mu);
}

syn_view_source *syn_view_source_new(syn_membership *m, uint32_t partitions,
                                     uint32_t replication) {
  if (!m) return NULL;
  syn_view_source *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->m = m;
  s->partitions = partitions;
  s->replication = replication;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->listen_mu, NULL);
  atomic_init(&s->stale, true);
  syn_membership_set_on_change(m, on_change, s);
  return s;
}

void syn_view_source_free(syn_view_source *s) {
  if (!s) return;
  syn_membership_set_on_change(s->m, NULL, NULL);
  pthread_mutex_lock(&s->listen_mu); /* a callback that already started has finished */
  pthread_mutex_unlock(&s->listen_mu);
  syn_view_put(s->current);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->listen_mu);
  free(s);
}

syn_membership *syn_view_source_membership(syn_view_source *s) { return s->m; }

int syn_view_source_listen(syn_view_source *s, void (*fn)(void *ctx), void *ctx) {
  int rc = -ENOSPC;
  pthread_mutex_lock(&s->listen_mu);
  for (int i = 0; i < SYN_VIEW_MAX_LISTENERS && rc; i++) {
    if (s->listeners[i].fn) continue;
    s->listeners[i] = (listener){fn, ctx};
    rc = 0;
  }
  pthread_mutex_unlock(&s->listen_mu);
  return rc;
}

void syn_view_source_unlisten(syn_view_source *s, void (*fn)(void *ctx), void *ctx) {
  pthread_mutex_lock(&s->listen_mu);
  for (int i = 0; i < SYN_VIEW_MAX_LISTENERS; i++)
    if (s->listeners[i].fn == fn && s->listeners[i].ctx == ctx) s->listeners[i].fn = NULL;
  pthread_mutex_unlock(&s->listen_mu);
}

/* ---- reading a snapshot ---- */

const syn_ring *syn_view_ring(const syn_view *v) { return v->ring->ring; }
uint64_t syn_view_version(const syn_view *v) { return v->version; }
uint64_t syn_view_ring_version(const syn_view *v) { return v->ring_version; }

size_t syn_view_members(const syn_view *v, const syn_member_info **out) {
  *out = v->members;
  return v->n;
}

static int cmp_id_to_member(const void *id, const void *member) {
  return strcmp(id, ((const syn_member_info *)member)->id);
}

/* On every routed request: the id is compared in place, never copied. */
const syn_member_info *syn_view_member(const syn_view *v, const char *id) {
  return id ? bsearch(id, v->members, v->n, sizeof *v->members, cmp_id_to_member) : NULL;
}

const syn_member_info *syn_view_self(const syn_view *v) {
  return v->self >= 0 ? &v->members[v->self] : NULL;
}

long syn_view_self_index(const syn_view *v) { return v->self_ring_index; }

uint32_t syn_view_partition(const syn_view *v, const uint8_t key[20]) {
  return syn_ring_partition(v->ring->ring, key);
}

size_t syn_view_replicas(const syn_view *v, uint32_t partition, syn_view_replica *out,
                         size_t cap) {
  const uint16_t *idx;
  size_t n = syn_ring_replicas(v->ring->ring, partition, &idx);
  size_t k = 0;
  for (size_t i = 0; i < n && k < cap; i++) {
    out[k].ring_index = idx[i];
    out[k].member = syn_view_member(v, syn_ring_node_id(v->ring->ring, idx[i]));
    k++;
  }
  return k;
}

bool syn_view_holds(const syn_view *v, uint32_t partition, long ring_index) {
  return ring_index >= 0 && syn_ring_holds(v->ring->ring, partition, (size_t)ring_index, NULL);
}

bool syn_member_usable(const syn_member_info *m) {
  return m && (m->state == SYN_MEMBER_ALIVE || m->state == SYN_MEMBER_SUSPECT);
}
