/* Requests in flight from the router to the nodes, in the style of libuv's uv_req_t and
 * nng's aio: a request is started with a completion callback and completes exactly
 * once, with the node's Reply or with a failure Reply the router made (UNAVAILABLE when
 * no node answered in time); or it is cancelled, and then never completes. After its
 * callback returns (or after cancel) the request is gone.
 *
 * Each request has an id (generation << 32 | index) that travels in the Request message
 * and comes back in the Reply; a reply whose id no longer names a request in flight
 * (late, duplicated, or for a cancelled request) finds nothing and is dropped.
 *
 * Requests live in chunks that never move, so a pointer to one stays valid until it
 * completes or is cancelled. Each carries SYN_REQ_DATA bytes for its owner's state (an
 * announce's reply address, a part's index), so the hot path allocates nothing.
 *
 * Loop thread only. */
#ifndef SYN_ROUTER_REQUEST_H
#define SYN_ROUTER_REQUEST_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/tracker.pb-c.h"

#define SYN_REQ_DATA 192

typedef struct syn_req syn_req;
typedef struct syn_req_table syn_req_table;

/* Called once, on the loop thread; `reply` is valid during the call only. */
typedef void (*syn_req_cb)(syn_req *req, const Synapse__Reply *reply);

struct syn_req {
  uint64_t id;
  syn_req_cb cb;
  void *ctx;
  /* the sender's (router/nodes.c): where it went, for failover */
  uint8_t attempts; /* nodes tried so far */
  bool routed;      /* sent by key (may go to the next replica), not to one node */
  uint8_t key[20];
  alignas(max_align_t) unsigned char data[SYN_REQ_DATA];
  /* the table's own */
  uint32_t next_free;
  bool active;
};

/* A table holding at most `max` requests at once. NULL on ENOMEM. */
syn_req_table *syn_req_table_new(uint32_t max);
/* Frees the table; requests still in flight are dropped without a callback. */
void syn_req_table_free(syn_req_table *t);

/* A new request, data zeroed; NULL when `max` are in flight (the caller answers
 * "overloaded"). */
syn_req *syn_req_start(syn_req_table *t, syn_req_cb cb, void *ctx);

/* The request with this id, or NULL when none is in flight under it. */
syn_req *syn_req_find(syn_req_table *t, uint64_t id);

/* Completes: runs the callback, then releases the request. */
void syn_req_complete(syn_req_table *t, syn_req *req, const Synapse__Reply *reply);

/* Completes with a failure the router made (code and message), as if a node sent it. */
void syn_req_fail(syn_req_table *t, syn_req *req, Synapse__ErrorCode code, const char *message);

/* Releases without a callback; a later reply under its id is dropped. */
void syn_req_cancel(syn_req_table *t, syn_req *req);

/* Requests in flight. */
size_t syn_req_active(const syn_req_table *t);

#endif
