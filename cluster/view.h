/* The view of the cluster that the router and the node both use: the members as gossip
 * reports them, the ring over the node members, and for any partition its replicas in
 * preference order together with what gossip says of each.
 *
 * Liveness is not ownership (design decision 1): the ring is rebuilt only when the set
 * of ring members changes (a join, a graceful leave, a reap), never when a member merely
 * turns suspect or dead; liveness only decides which replica is usable.
 *
 * A syn_view is an immutable snapshot: any thread may read it without a lock while it
 * holds a reference (syn_view_get ... syn_view_put). A syn_view_source follows one
 * membership: the membership's change callback marks it stale, and the next get builds a
 * new snapshot (the ring is shared between snapshots until the member set changes).
 * Listeners of the source are told about every change, on a membership thread; they
 * must only wake their own thread (uv_async_send, a flag) and return. */
#ifndef SYN_CLUSTER_VIEW_H
#define SYN_CLUSTER_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"
#include "cluster/ring.h"

typedef struct syn_view syn_view;
typedef struct syn_view_source syn_view_source;

/* One replica of a partition: its index in the ring's sorted node ids and its member
 * record (NULL when gossip no longer lists it, e.g. between a reap and the rebuild). */
typedef struct syn_view_replica {
  uint32_t ring_index;
  const syn_member_info *member;
} syn_view_replica;

#define SYN_VIEW_MAX_LISTENERS 4

/* Follows `m` (not owned; it must outlive the source). NULL on bad arguments or no
 * memory. Takes the membership's change callback. Any thread. */
syn_view_source *syn_view_source_new(syn_membership *m, uint32_t partitions, uint32_t replication);
/* Releases the membership's change callback; snapshots still held stay valid. */
void syn_view_source_free(syn_view_source *s);

/* The membership it follows. */
syn_membership *syn_view_source_membership(syn_view_source *s);

/* Adds a change listener (at most SYN_VIEW_MAX_LISTENERS): 0 or -ENOSPC. Remove it before
 * its context goes away; after remove returns, it is not running and will not run. */
int syn_view_source_listen(syn_view_source *s, void (*fn)(void *ctx), void *ctx);
void syn_view_source_unlisten(syn_view_source *s, void (*fn)(void *ctx), void *ctx);

/* The latest snapshot, with a reference the caller releases with syn_view_put. NULL only
 * when memory runs out. Any thread; takes the source's lock briefly. */
syn_view *syn_view_get(syn_view_source *s);

/* A snapshot from a fixed member list (standalone, tests). Copies everything. */
syn_view *syn_view_build(const syn_member_info *members, size_t n, uint32_t partitions,
                         uint32_t replication, uint64_t version, uint64_t ring_version);

void syn_view_put(syn_view *v);

const syn_ring *syn_view_ring(const syn_view *v);
uint64_t syn_view_version(const syn_view *v);      /* moves on any membership change */
uint64_t syn_view_ring_version(const syn_view *v); /* moves when the ring's member set does */

/* Every member, sorted by id (self included); *out is owned by the view. */
size_t syn_view_members(const syn_view *v, const syn_member_info **out);
const syn_member_info *syn_view_member(const syn_view *v, const char *id);
/* This process's own record, or NULL for a built view without one. */
const syn_member_info *syn_view_self(const syn_view *v);
/* This process's index in the ring, or -1 when it holds no partitions. */
long syn_view_self_index(const syn_view *v);

/* Partition of a 20-byte key in this view's ring. */
uint32_t syn_view_partition(const syn_view *v, const uint8_t key[20]);
/* The replicas of `partition`, primary first; returns how many (at most cap). */
size_t syn_view_replicas(const syn_view *v, uint32_t partition, syn_view_replica *out,
                         size_t cap);
/* Whether ring node `ring_index` holds `partition`. */
bool syn_view_holds(const syn_view *v, uint32_t partition, long ring_index);

/* Whether gossip lets us send to the member: alive, or suspect (not yet dead). */
bool syn_member_usable(const syn_member_info *m);

#endif
