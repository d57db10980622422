/* Upstream: the router's link to one node, carrying requests in batches.
 *
 * The router's loop thread submits requests one at a time; they are appended to the
 * current batch (already encoded, see proto/wire.h). At the end of each loop turn the
 * batch goes out as one nng message on a free req context; up to `window` batches are in
 * flight at once, so transport cost is shared and the link stays busy. nng completes
 * sends and receives on its own threads: those callbacks only queue the outcome and wake
 * the loop with uv_async_send; the loop thread decodes the BatchReply and calls on_reply
 * once per request.
 *
 * Every submitted request gets exactly one callback: its Reply, or a Reply carrying
 * UNAVAILABLE when the node does not answer within the deadline (set on the nng aio, so
 * it holds even when no node is connected). All functions are called on the loop thread;
 * none blocks.
 *
 * The link follows its TCP connection: when the connection to the node breaks (the
 * process died: the kernel resets the connection at once), every batch in flight is
 * handed back through on_failed right away instead of at its deadline, and
 * syn_upstream_connected turns false until nng has dialled the node again, so a caller
 * can route around a dead node in milliseconds rather than waiting for gossip. */
#ifndef SYN_ROUTER_UPSTREAM_H
#define SYN_ROUTER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/tracker.pb-c.h"

typedef struct syn_upstream syn_upstream;
struct syn_cluster_auth;

/* Called on the loop thread for each request. `reply` and everything it points to are
 * valid only during the call. */
typedef void (*syn_upstream_reply_fn)(void *ctx, const Synapse__Reply *reply);

/* Called on the loop thread with the encoded Batch of requests that the node did not
 * answer (deadline or transport error), before they are failed. Return 0 to take them
 * over (each must then get its reply some other way: resent elsewhere or failed by the
 * callee), or -1 to have them failed with UNAVAILABLE as usual. */
typedef int (*syn_upstream_failed_fn)(void *ctx, const uint8_t *batch, size_t len);

/* Called on the loop thread when the link comes up or goes down. */
typedef void (*syn_upstream_link_fn)(void *ctx, bool connected);

/* A node in this process serving one swarm-only request (proto/wire.h) on the calling
 * thread (node/node.h syn_node_serve_inline, wired by app/): fills *reply, whose
 * pointers stay valid until the next call. 0, or a negative errno (the request is then
 * failed). */
typedef int (*syn_upstream_inline_fn)(void *ctx, const Synapse__Request *req,
                                      Synapse__Reply *reply);

/* Called on the loop thread with the signals a node pushed for this router's WebSocket
 * peers (proto WsPush, answering the standing poll). Valid during the call only. */
typedef void (*syn_upstream_push_fn)(void *ctx, const Synapse__WsPush *push);

typedef struct syn_upstream_options {
  const char *url;          /* nng URL of the node: inproc://, ipc:// or tcp:// (copied) */
  uint32_t timeout_ms;      /* deadline of a batch from send to reply */
  uint32_t window;          /* batches in flight at once */
  uint32_t max_batch;       /* requests per batch before it is sent early */
  uint32_t max_queued;      /* requests waiting for a free slot before submit fails */
  syn_upstream_reply_fn on_reply;
  syn_upstream_failed_fn on_failed; /* optional */
  syn_upstream_link_fn on_link;     /* optional */
  struct syn_cluster_auth *auth;    /* seals batches, opens replies (common/cluster_auth.h);
                                       NULL: unsealed. Must outlive the upstream */
  void *ctx;
  /* Optional: swarm-only requests (proto/wire.h) are queued as copies and served through
   * this at the end of the loop turn, each reply delivered there, instead of going out
   * encoded in a batch. */
  syn_upstream_inline_fn serve_inline;
  void *inline_ctx;
  /* Optional: keep one WsPoll naming this router (poll_router, poll_boot) standing at the
   * node, on its own context outside the window; each answer goes to on_push and the poll
   * is sent again at once (after a failure, after a short pause). */
  syn_upstream_push_fn on_push;
  const char *poll_router; /* copied */
  uint64_t poll_boot;
} syn_upstream_options;

/* Dials the node (asynchronously: a node that is not up yet is retried by nng). NULL with
 * a message in err. */
syn_upstream *syn_upstream_open(uv_loop_t *loop, const syn_upstream_options *opts, char *err,
                                size_t err_len);

/* Queues a request (encoded, or copied for serve_inline, now: `req` may be freed on
 * return). Never calls back before it returns. 0, or -EBUSY when the
 * queue is full (the caller answers "overloaded"), or -ENOMEM. */
int syn_upstream_submit(syn_upstream *up, const Synapse__Request *req);

/* Sends whatever is queued if a slot is free. Called by the upstream itself at the end of
 * each loop turn; exposed for callers that want to push early. */
void syn_upstream_flush(syn_upstream *up);

/* Whether a connection to the node is up now. */
bool syn_upstream_connected(const syn_upstream *up);

/* Requests queued or in flight. */
size_t syn_upstream_pending(const syn_upstream *up);

/* Fails everything still pending with UNAVAILABLE, closes the socket, and frees the
 * upstream once libuv has closed its handles. */
void syn_upstream_close(syn_upstream *up);

#endif
