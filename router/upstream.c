/* Upstream batching. Design notes:
 *
 * - The current batch is a byte buffer of encoded Requests plus the list of their ids.
 *   It is capped at max_batch requests; once full and no slot is free, submit fails with
 *   -EBUSY, which is the router's backpressure signal ("overloaded").
 * - Each slot is one req0 context and one aio. Its state machine runs on nng threads:
 *   send -> recv -> done. "Done" slots are put on a mutex-protected list and the loop is
 *   woken; a slot holds at most one outcome, so the list is bounded by `window`.
 * - The node answers in request order; if a reply is missing or out of order, every id
 *   of the batch is then also failed: the router ignores ids it has already completed.
 * - Pipe notifications (nng threads) count the connections and flag a loss; the loop
 *   then cancels every aio in flight, so their batches fail over at once. Without that,
 *   req0 would keep a request whose connection broke and resend it after the redial,
 *   to a node that may have applied it already.
 * - Trust (common/cluster_auth.h): each batch is sealed when it goes out and the slot
 *   keeps its tag; the reply is opened on the nng thread, bound to that tag, and one that
 *   does not open (a process without the key, or another cluster's) fails the slot like a
 *   broken link, so its requests go to the next replica.
 * - Inline (standalone): with opts.serve_inline, a swarm-only request (an announce
 *   touches a few hundred bytes of the swarm store under a stripe lock) is copied into
 *   an arena instead of being encoded, and served on the loop thread at the end of the
 *   turn, its reply delivered there: no nng message, no thread hand-off, no protobuf
 *   packing either way. A profile of the nng path showed over 40% of the process's CPU
 *   in futex waits and context switches of the two hand-offs per batch, and protobuf-c
 *   12% of what was left. Everything else (shards wait on SQLite and faiss) still goes to
 *   the workers in batches. Submit never serves: its caller is mid-request.
 * - Closing never waits on the loop thread. On nng 1.5.2 nng_close can wait for ever
 *   for a pipe or dialer that a close raced with (seen when a node leaves: the loop of
 *   every member stopped answering; nng fixed endpoint shutdown after 1.5.2). So the
 *   loop hands what is in flight to the caller at once, and a thread of its own closes
 *   the socket and tells the loop, which frees the link then. A close that has not
 *   returned after CLOSE_PATIENCE_MS is logged and no longer keeps the loop alive, so a
 *   process still stops. */
#include "router/upstream.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/cluster_auth.h"
#include "common/hlc.h"
#include "common/log.h"
#include "proto/wire.h"

#define MAX_WINDOW 64
#define CLOSE_PATIENCE_MS 5000
#define POLL_TIMEOUT_MS 30000 /* the node answers a parked poll empty after 15 s */
#define POLL_RETRY_MS 250     /* pause after a failed poll (node down, restarting) */

enum slot_state { SLOT_FREE, SLOT_SENDING, SLOT_RECEIVING, SLOT_DONE };

typedef struct upstream_slot {
  syn_upstream *up;
  nng_ctx ctx;
  nng_aio *aio;
  enum slot_state state;
  int result;     /* nng error of the exchange, 0 when reply is set */
  nng_msg *reply; /* owned by the slot until the loop decodes it */
  uint64_t *ids;  /* requests carried by the batch in flight */
  size_t id_count;
  size_t id_cap;
  syn_buf sent;                      /* the batch in flight, kept to hand back if it fails */
  uint8_t tag[SYN_CLUSTER_AUTH_TAG]; /* the batch's seal, which the reply is bound to */
  bool abandoned; /* loop thread: its requests were handed back at close */
  struct upstream_slot *next_done;
} upstream_slot;

typedef struct inline_queue {
  const Synapse__Request **reqs; /* max_batch of them */
  size_t n;
  syn_arena arena;
} inline_queue;

struct syn_upstream {
  uv_loop_t *loop;
  uv_async_t wake;
  uv_check_t turn_end;
  uv_timer_t close_timer; /* CLOSE_PATIENCE_MS after the close began */
  int open_handles;
  bool closing;
  pthread_t closer;
  bool closer_started;
  syn_upstream_options opts; /* opts.url points at url: the caller's may go at close */
  char url[320];
  char poll_router[72];
  upstream_slot poll;     /* the standing WsPoll (opts.on_push), outside the window */
  uv_timer_t poll_timer;  /* re-sends it after a failure */
  bool polling;           /* loop thread: a poll is out */
  nng_socket sock;
  upstream_slot slots[MAX_WINDOW];
  size_t slot_count;
  size_t busy_slots;
  size_t in_flight; /* requests in busy slots */
  /* batch being filled on the loop thread */
  syn_buf batch;
  uint64_t *batch_ids;
  size_t batch_count;
  /* swarm-only requests waiting to be served inline: copies in `arena`, swapped with
   * the spare pair while a queue is served, so replies that submit queue anew */
  inline_queue inline_q, inline_spare;
  /* slots finished on nng threads, waiting for the loop */
  pthread_mutex_t done_lock;
  upstream_slot *done_head;
  bool wake_closed;      /* under done_lock: pipe callbacks must not wake a closed handle */
  bool sock_closed;      /* under done_lock: the closer thread's nng_close returned */
  atomic_int pipes;      /* connections up now */
  atomic_bool link_lost; /* a connection went down since the loop last looked */
  bool connected_seen;   /* what on_link was last told (loop thread) */
  bool ever_connected;   /* a connection was up once (loop thread) */
  syn_arena arena;
};

static void slot_finish(upstream_slot *s, int result, nng_msg *reply) {
  syn_upstream *up = s->up;
  s->result = result;
  s->reply = reply;
  pthread_mutex_lock(&up->done_lock);
  s->state = SLOT_DONE;
  s->next_done = up->done_head;
  up->done_head = s;
  pthread_mutex_unlock(&up->done_lock);
  uv_async_send(&up->wake);
}

/* nng thread. */
static void slot_aio_cb(void *arg) {
  upstream_slot *s = arg;
  int rv = nng_aio_result(s->aio);
  if (s->state == SLOT_SENDING) {
    if (rv) {
      nng_msg_free(nng_aio_get_msg(s->aio));
      slot_finish(s, rv, NULL);
      return;
    }
    s->state = SLOT_RECEIVING;
    nng_ctx_recv(s->ctx, s->aio);
    return;
  }
  nng_msg *reply = rv ? NULL : nng_aio_get_msg(s->aio);
  if (reply && syn_cluster_auth_open(s->up->opts.auth, reply, SYN_AUTH_BATCH_REPLY, s->tag, NULL)) {
    nng_msg_free(reply);
    reply = NULL;
    rv = NNG_ECRYPTO;
  }
  slot_finish(s, rv, reply);
}

static void fail_ids(syn_upstream *up, const uint64_t *ids, size_t n, const char *why) {
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.has_error = 1;
  rep.error = SYNAPSE__ERROR_CODE__UNAVAILABLE;
  rep.message = (char *)why;
  for (size_t i = 0; i < n; i++) {
    rep.id = ids[i];
    up->opts.on_reply(up->opts.ctx, &rep);
  }
}

static bool replies_match(const Synapse__BatchReply *br, const uint64_t *ids, size_t n) {
  if (br->n_replies != n) return false;
  for (size_t i = 0; i < br->n_replies; i++)
    if (br->replies[i]->id != ids[i]) return false;
  return true;
}

/* Decodes an encoded BatchReply and calls on_reply for each reply; every id of the batch
 * that it does not answer in order is failed too (the router ignores ids it completed). */
static void deliver_replies(syn_upstream *up, const uint8_t *data, size_t len,
                            const uint64_t *ids, size_t n) {
  syn_arena_reset(&up->arena);
  ProtobufCAllocator alloc = syn_wire_allocator(&up->arena);
  Synapse__BatchReply *br = synapse__batch_reply__unpack(&alloc, len, data);
  if (!br) {
    fail_ids(up, ids, n, "node sent an undecodable reply");
    return;
  }
  for (size_t i = 0; i < br->n_replies; i++) up->opts.on_reply(up->opts.ctx, br->replies[i]);
  if (!replies_match(br, ids, n)) fail_ids(up, ids, n, "node reply incomplete");
}

/* `result` is the slot's, or NNG_ECLOSED for a slot abandoned at close. */
static void deliver(syn_upstream *up, upstream_slot *s, int result) {
  /* Also while closing: the node left, and its requests can go to the next replica. */
  if (result && up->opts.on_failed &&
      up->opts.on_failed(up->opts.ctx, s->sent.data, s->sent.len) == 0)
    return;
  if (result) {
    fail_ids(up, s->ids, s->id_count,
             result == NNG_ETIMEDOUT ? "node did not answer in time" : "node unavailable");
    return;
  }
  nng_msg *reply = s->reply;
  s->reply = NULL;
  deliver_replies(up, nng_msg_body(reply), nng_msg_len(reply), s->ids, s->id_count);
  nng_msg_free(reply);
}

/* nng thread. */
static void on_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg) {
  (void)pipe;
  syn_upstream *up = arg;
  if (ev == NNG_PIPE_EV_ADD_POST) atomic_fetch_add(&up->pipes, 1);
  if (ev == NNG_PIPE_EV_REM_POST) {
    atomic_fetch_sub(&up->pipes, 1);
    atomic_store(&up->link_lost, true);
  }
  pthread_mutex_lock(&up->done_lock);
  if (!up->wake_closed) uv_async_send(&up->wake);
  pthread_mutex_unlock(&up->done_lock);
}

/* The connection broke: what is in flight will not be answered by that process. */
static void abort_in_flight(syn_upstream *up) {
  for (size_t i = 0; i < up->slot_count; i++) {
    enum slot_state st = up->slots[i].state;
    if (st == SLOT_SENDING || st == SLOT_RECEIVING) nng_aio_cancel(up->slots[i].aio);
  }
  if (up->polling) nng_aio_cancel(up->poll.aio);
}

static void follow_link(syn_upstream *up) {
  if (atomic_exchange(&up->link_lost, false)) abort_in_flight(up);
  bool connected = atomic_load(&up->pipes) > 0;
  if (connected) up->ever_connected = true;
  if (connected == up->connected_seen) return;
  up->connected_seen = connected;
  if (up->opts.on_link) up->opts.on_link(up->opts.ctx, connected);
}

bool syn_upstream_connected(const syn_upstream *up) { return atomic_load(&up->pipes) > 0; }

static void finish_close(syn_upstream *up);

static void on_poll_timer(uv_timer_t *t);

/* Sends the standing poll: Batch{Request{id 0, ws_poll}}. */
static void send_poll(syn_upstream *up) {
  if (!up->opts.on_push || up->polling || up->closing) return;
  upstream_slot *s = &up->poll;
  Synapse__WsPoll poll = SYNAPSE__WS_POLL__INIT;
  poll.router = up->poll_router;
  poll.boot = up->opts.poll_boot;
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.body_case = SYNAPSE__REQUEST__BODY_WS_POLL;
  req.ws_poll = &poll;
  syn_buf_reset(&s->sent);
  nng_msg *msg;
  if (syn_wire_append_field1(&s->sent, &req.base) ||
      syn_cluster_auth_sealed_msg(up->opts.auth, &msg, s->sent.data, s->sent.len, NULL, 0,
                                  SYN_AUTH_BATCH_REQUEST, NULL, s->tag)) {
    uv_timer_start(&up->poll_timer, on_poll_timer, POLL_RETRY_MS, 0);
    return;
  }
  up->polling = true;
  s->state = SLOT_SENDING;
  nng_aio_set_msg(s->aio, msg);
  nng_aio_set_timeout(s->aio, POLL_TIMEOUT_MS);
  nng_ctx_send(s->ctx, s->aio);
}

static void on_poll_timer(uv_timer_t *t) { send_poll(t->data); }

/* The poll came back: its signals go to on_push, and it goes out again. */
static void poll_done(syn_upstream *up, upstream_slot *s) {
  up->polling = false;
  s->state = SLOT_FREE;
  nng_msg *reply = s->reply;
  s->reply = NULL;
  if (up->closing) {
    nng_msg_free(reply);
    return;
  }
  if (s->result || !reply) {
    nng_msg_free(reply);
    uv_timer_start(&up->poll_timer, on_poll_timer, POLL_RETRY_MS, 0);
    return;
  }
  syn_arena_reset(&up->arena);
  ProtobufCAllocator alloc = syn_wire_allocator(&up->arena);
  Synapse__BatchReply *br =
      synapse__batch_reply__unpack(&alloc, nng_msg_len(reply), nng_msg_body(reply));
  nng_msg_free(reply);
  for (size_t i = 0; br && i < br->n_replies; i++)
    if (br->replies[i]->body_case == SYNAPSE__REPLY__BODY_WS_PUSH)
      up->opts.on_push(up->opts.ctx, br->replies[i]->ws_push);
  send_poll(up);
}

/* Slots the nng threads finished; while closing, their outcome was delivered already
 * (abandon_in_flight) and only a reply is left to free. */
static void take_done(syn_upstream *up) {
  pthread_mutex_lock(&up->done_lock);
  upstream_slot *done = up->done_head;
  up->done_head = NULL;
  pthread_mutex_unlock(&up->done_lock);
  for (upstream_slot *s = done, *next; s; s = next) {
    next = s->next_done;
    if (s == &up->poll) {
      poll_done(up, s);
      continue;
    }
    if (s->abandoned) {
      nng_msg_free(s->reply);
      s->reply = NULL;
    } else {
      up->in_flight -= s->id_count;
      deliver(up, s, s->result);
      s->id_count = 0;
      up->busy_slots--;
    }
    s->state = SLOT_FREE;
  }
}

static void on_wake(uv_async_t *handle) {
  syn_upstream *up = handle->data;
  if (up->closing) {
    take_done(up);
    finish_close(up);
    return;
  }
  follow_link(up);
  take_done(up);
  syn_upstream_flush(up);
}

static void on_turn_end(uv_check_t *handle) { syn_upstream_flush(handle->data); }

static int open_poll(syn_upstream *up) {
  upstream_slot *s = &up->poll;
  s->up = up;
  int rv = nng_ctx_open(&s->ctx, up->sock);
  /* One poll stands for up to 15 s: req0 must not resend it meanwhile. */
  if (rv == 0) rv = nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, POLL_TIMEOUT_MS * 2);
  if (rv == 0) rv = nng_aio_alloc(&s->aio, slot_aio_cb, s);
  return rv;
}

static upstream_slot *free_slot(syn_upstream *up) {
  if (up->busy_slots == up->slot_count) return NULL;
  for (size_t i = 0; i < up->slot_count; i++)
    if (up->slots[i].state == SLOT_FREE) return &up->slots[i];
  return NULL;
}

/* Hands the current batch's ids to the slot by swapping buffers: no copy. */
static void move_ids(syn_upstream *up, upstream_slot *s) {
  uint64_t *ids = s->ids;
  s->ids = up->batch_ids;
  s->id_count = up->batch_count;
  up->batch_ids = ids;
  up->batch_count = 0;
}

/* Batch.deadline_unix_ms (field 2, varint) encoded. */
static size_t deadline_field(uint8_t *out, int64_t ms) {
  size_t n = 0;
  out[n++] = 0x10; /* field 2, wire type 0 */
  uint64_t v = (uint64_t)ms;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

/* The link was up and is down now (the node died or restarts): what is queued goes back
 * to the caller at once, to be sent elsewhere, instead of waiting in nng for a
 * connection until its deadline. */
static bool hand_back_queued(syn_upstream *up) {
  if (!up->ever_connected || atomic_load(&up->pipes) > 0) return false;
  size_t n = up->batch_count;
  up->batch_count = 0;
  if (!(up->opts.on_failed && up->opts.on_failed(up->opts.ctx, up->batch.data, up->batch.len) == 0))
    fail_ids(up, up->batch_ids, n, "node unavailable");
  syn_buf_reset(&up->batch);
  return true;
}

/* Sends the current batch to the node as one nng message, if a slot is free. */
static void send_batch(syn_upstream *up) {
  if (up->batch_count == 0 || up->closing) return;
  if (hand_back_queued(up)) return;
  upstream_slot *s = free_slot(up);
  if (!s) return;
  nng_msg *msg;
  /* Batch field 2: the deadline, after the requests (protobuf fields may come in any
   * order). */
  uint8_t tail[11];
  size_t tail_len = deadline_field(tail, syn_wall_ms() + up->opts.timeout_ms);
  if (syn_cluster_auth_sealed_msg(up->opts.auth, &msg, up->batch.data, up->batch.len, tail,
                                  tail_len, SYN_AUTH_BATCH_REQUEST, NULL, s->tag))
    return; /* retried next turn; the requests stay queued */
  if (up->opts.on_failed) {
    syn_buf_reset(&s->sent);
    if (syn_buf_append(&s->sent, up->batch.data, up->batch.len)) syn_buf_reset(&s->sent);
  }
  syn_buf_reset(&up->batch);
  move_ids(up, s);
  up->in_flight += s->id_count;
  up->busy_slots++;
  s->state = SLOT_SENDING;
  nng_aio_set_msg(s->aio, msg);
  nng_aio_set_timeout(s->aio, (nng_duration)up->opts.timeout_ms);
  nng_ctx_send(s->ctx, s->aio);
}

/* Serves the queued swarm-only requests on this thread, one reply delivered per request.
 * The queue is swapped out first: a reply callback that submits again queues anew. */
static void serve_queue(syn_upstream *up) {
  inline_queue q = up->inline_q;
  up->inline_q = up->inline_spare;
  for (size_t i = 0; i < q.n; i++) {
    Synapse__Reply rep = SYNAPSE__REPLY__INIT;
    if (up->opts.serve_inline(up->opts.inline_ctx, q.reqs[i], &rep)) {
      fail_ids(up, &q.reqs[i]->id, 1, "node could not serve the request");
      continue;
    }
    rep.id = q.reqs[i]->id;
    up->opts.on_reply(up->opts.ctx, &rep);
  }
  q.n = 0;
  syn_arena_reset(&q.arena);
  up->inline_spare = q;
}

/* Replies that submit again are served in the same turn, a few rounds at most; what is
 * left then waits for the next turn's end, which the replies' own I/O brings. */
#define INLINE_ROUNDS 4

void syn_upstream_flush(syn_upstream *up) {
  for (int round = 0; round < INLINE_ROUNDS && up->inline_q.n && !up->closing; round++)
    serve_queue(up);
  send_batch(up);
}

static int copy_bytes(syn_arena *a, ProtobufCBinaryData *b) {
  if (!b->len) return 0;
  uint8_t *p = syn_arena_alloc(a, b->len);
  if (!p) return -1;
  memcpy(p, b->data, b->len);
  b->data = p;
  return 0;
}

/* A swarm-only request copied into `a`, with everything it points to (the caller's may
 * be freed once submit returns). NULL when out of memory. */
static const Synapse__Request *copy_swarm_request(syn_arena *a, const Synapse__Request *req) {
  Synapse__Request *c = syn_arena_alloc(a, sizeof *c);
  if (!c) return NULL;
  *c = *req;
  if (req->body_case == SYNAPSE__REQUEST__BODY_ANNOUNCE) {
    Synapse__AnnounceRequest *an = syn_arena_alloc(a, sizeof *an);
    if (!an) return NULL;
    *an = *req->announce;
    if (copy_bytes(a, &an->info_hash) || copy_bytes(a, &an->peer_id) || copy_bytes(a, &an->ip))
      return NULL;
    c->announce = an;
    return c;
  }
  Synapse__ScrapeRequest *sc = syn_arena_alloc(a, sizeof *sc);
  size_t n = req->scrape->n_info_hash;
  ProtobufCBinaryData *hashes = sc ? syn_arena_alloc(a, n * sizeof *hashes) : NULL;
  if (!hashes) return NULL;
  *sc = *req->scrape;
  for (size_t i = 0; i < n; i++) {
    hashes[i] = req->scrape->info_hash[i];
    if (copy_bytes(a, &hashes[i])) return NULL;
  }
  sc->info_hash = hashes;
  c->scrape = sc;
  return c;
}

static int queue_inline(syn_upstream *up, const Synapse__Request *req) {
  if (up->inline_q.n >= up->opts.max_batch) return -EBUSY;
  const Synapse__Request *c = copy_swarm_request(&up->inline_q.arena, req);
  if (!c) return -ENOMEM;
  up->inline_q.reqs[up->inline_q.n++] = c;
  return 0;
}

/* A batch goes out once it holds this many bytes, well under a node's 8 MiB receive
 * limit: a few hundred signed registrations with 4096-value embeddings in one loop turn
 * would otherwise make one message the node refuses whole. */
#define MAX_BATCH_BYTES (2u << 20)

static bool batch_full(const syn_upstream *up) {
  return up->batch_count >= up->opts.max_batch || up->batch.len >= MAX_BATCH_BYTES;
}

int syn_upstream_submit(syn_upstream *up, const Synapse__Request *req) {
  if (up->closing) return -EBUSY;
  if (up->opts.serve_inline && syn_wire_request_is_swarm_only(req)) return queue_inline(up, req);
  if (batch_full(up)) {
    send_batch(up); /* never inline here: the caller is mid-request, no reply may run */
    if (batch_full(up)) return -EBUSY;
  }
  size_t before = up->batch.len;
  if (syn_wire_append_field1(&up->batch, &req->base)) {
    up->batch.len = before;
    return -ENOMEM;
  }
  up->batch_ids[up->batch_count++] = req->id;
  return 0;
}

size_t syn_upstream_pending(const syn_upstream *up) {
  return up->batch_count + up->in_flight + up->inline_q.n;
}

static int open_socket(syn_upstream *up, char *err, size_t err_len) {
  int rv = nng_req0_open(&up->sock);
  /* No resend inside the deadline: a resent batch would be applied twice. */
  if (rv == 0)
    rv = nng_socket_set_ms(up->sock, NNG_OPT_REQ_RESENDTIME,
                           (nng_duration)up->opts.timeout_ms * 4 + 1000);
  if (rv == 0)
    rv = nng_socket_set_size(up->sock, NNG_OPT_RECVMAXSZ,
                             SYN_WIRE_MAX_REPLY + SYN_CLUSTER_AUTH_OVERHEAD);
  if (rv == 0) rv = nng_socket_set_ms(up->sock, NNG_OPT_RECONNMINT, 50);
  if (rv == 0) rv = nng_socket_set_ms(up->sock, NNG_OPT_RECONNMAXT, 1000);
  if (rv == 0) rv = nng_pipe_notify(up->sock, NNG_PIPE_EV_ADD_POST, on_pipe, up);
  if (rv == 0) rv = nng_pipe_notify(up->sock, NNG_PIPE_EV_REM_POST, on_pipe, up);
  if (rv == 0) rv = nng_dial(up->sock, up->opts.url, NULL, NNG_FLAG_NONBLOCK);
  if (rv) snprintf(err, err_len, "cannot dial node at %s: %s", up->opts.url, nng_strerror(rv));
  return rv ? -1 : 0;
}

static int open_slots(syn_upstream *up, char *err, size_t err_len) {
  for (size_t i = 0; i < up->slot_count; i++) {
    upstream_slot *s = &up->slots[i];
    s->up = up;
    s->ids = malloc(sizeof *s->ids * up->opts.max_batch);
    int rv = s->ids ? nng_ctx_open(&s->ctx, up->sock) : NNG_ENOMEM;
    if (rv == 0) rv = nng_aio_alloc(&s->aio, slot_aio_cb, s);
    if (rv) {
      snprintf(err, err_len, "cannot open node link: %s", nng_strerror(rv));
      return -1;
    }
  }
  return 0;
}

static void free_up(syn_upstream *up) {
  if (up->poll.aio) nng_aio_free(up->poll.aio);
  syn_buf_free(&up->poll.sent);
  for (size_t i = 0; i < up->slot_count; i++) {
    nng_aio_free(up->slots[i].aio);
    free(up->slots[i].ids);
    syn_buf_free(&up->slots[i].sent);
  }
  pthread_mutex_destroy(&up->done_lock);
  syn_buf_free(&up->batch);
  free(up->batch_ids);
  free(up->inline_q.reqs);
  free(up->inline_spare.reqs);
  syn_arena_free(&up->inline_q.arena);
  syn_arena_free(&up->inline_spare.arena);
  syn_arena_free(&up->arena);
  free(up);
}

static void start_close(syn_upstream *up);

static void on_handle_closed(uv_handle_t *h) {
  syn_upstream *up = h->data;
  if (--up->open_handles == 0) free_up(up);
}

syn_upstream *syn_upstream_open(uv_loop_t *loop, const syn_upstream_options *opts, char *err,
                                size_t err_len) {
  syn_upstream *up = calloc(1, sizeof *up);
  if (!up) return NULL;
  up->loop = loop;
  up->opts = *opts;
  if (!opts->url || strlen(opts->url) >= sizeof up->url) {
    snprintf(err, err_len, "node URL too long");
    free(up);
    return NULL;
  }
  memcpy(up->url, opts->url, strlen(opts->url) + 1);
  up->opts.url = up->url;
  if (!up->opts.max_batch) up->opts.max_batch = 1024;
  up->slot_count = opts->window ? opts->window : 8;
  if (up->slot_count > MAX_WINDOW) up->slot_count = MAX_WINDOW;
  pthread_mutex_init(&up->done_lock, NULL);
  syn_arena_init(&up->arena, 256 * 1024);
  up->batch_ids = malloc(sizeof *up->batch_ids * up->opts.max_batch);
  up->inline_q.reqs = malloc(sizeof *up->inline_q.reqs * up->opts.max_batch);
  up->inline_spare.reqs = malloc(sizeof *up->inline_spare.reqs * up->opts.max_batch);
  syn_arena_init(&up->inline_q.arena, 64 * 1024);
  syn_arena_init(&up->inline_spare.arena, 64 * 1024);
  /* The wake handle first: pipe notifications may arrive as soon as the dial starts. */
  uv_async_init(loop, &up->wake, on_wake);
  up->wake.data = up;
  bool allocated = up->batch_ids && up->inline_q.reqs && up->inline_spare.reqs;
  uv_check_init(loop, &up->turn_end);
  up->turn_end.data = up;
  uv_timer_init(loop, &up->close_timer);
  up->close_timer.data = up;
  uv_timer_init(loop, &up->poll_timer);
  up->poll_timer.data = up;
  up->open_handles = 4;
  snprintf(up->poll_router, sizeof up->poll_router, "%s",
           opts->poll_router ? opts->poll_router : "");
  if (!allocated || open_socket(up, err, err_len) || open_slots(up, err, err_len) ||
      (opts->on_push && open_poll(up))) {
    if (!allocated) snprintf(err, err_len, "out of memory");
    else if (!err[0]) snprintf(err, err_len, "cannot open the node link's poll");
    start_close(up);
    return NULL;
  }
  uv_check_start(&up->turn_end, on_turn_end);
  send_poll(up);
  return up;
}

/* Closer thread: closing the socket completes every aio with NNG_ECLOSED; after the
 * stops no callback can run, and the loop is told under the lock it frees the handle
 * under. */
static void *closer_main(void *arg) {
  syn_upstream *up = arg;
  nng_close(up->sock);
  for (size_t i = 0; i < up->slot_count; i++)
    if (up->slots[i].aio) nng_aio_stop(up->slots[i].aio);
  if (up->poll.aio) nng_aio_stop(up->poll.aio);
  pthread_mutex_lock(&up->done_lock);
  up->sock_closed = true;
  uv_async_send(&up->wake);
  pthread_mutex_unlock(&up->done_lock);
  return NULL;
}

/* Loop thread, once the closer thread is done: the handles go, then the memory. */
static void finish_close(syn_upstream *up) {
  pthread_mutex_lock(&up->done_lock);
  bool closed = up->sock_closed && !up->wake_closed;
  if (closed) up->wake_closed = true;
  pthread_mutex_unlock(&up->done_lock);
  if (!closed) return;
  take_done(up); /* what finished between on_wake's look and the closer's word */
  if (up->closer_started) pthread_join(up->closer, NULL);
  if (!uv_is_closing((uv_handle_t *)&up->close_timer))
    uv_close((uv_handle_t *)&up->close_timer, on_handle_closed);
  uv_close((uv_handle_t *)&up->wake, on_handle_closed);
}

static void on_close_overdue(uv_timer_t *t) {
  syn_upstream *up = t->data;
  syn_warn("router: closing the link to %s has not finished after %d ms (nng); "
           "it no longer holds the process",
           up->opts.url, CLOSE_PATIENCE_MS);
  uv_unref((uv_handle_t *)&up->wake);
  uv_close((uv_handle_t *)t, on_handle_closed);
}

/* Slots still in nng are handed back now, as failed, so their requests go to the next
 * replica without waiting for the close; whatever nng says about them later is freed. */
static void abandon_in_flight(syn_upstream *up) {
  take_done(up);
  for (size_t i = 0; i < up->slot_count; i++) {
    upstream_slot *s = &up->slots[i];
    if (!s->id_count) continue; /* free: only a slot sent carries requests */
    s->abandoned = true;
    up->in_flight -= s->id_count;
    deliver(up, s, NNG_ECLOSED);
    s->id_count = 0;
    up->busy_slots--;
  }
}

static void start_close(syn_upstream *up) {
  up->closing = true;
  uv_close((uv_handle_t *)&up->turn_end, on_handle_closed);
  uv_close((uv_handle_t *)&up->poll_timer, on_handle_closed);
  up->closer_started = pthread_create(&up->closer, NULL, closer_main, up) == 0;
  if (!up->closer_started) closer_main(up); /* no thread to spare: close here */
  uv_timer_start(&up->close_timer, on_close_overdue, CLOSE_PATIENCE_MS, 0);
}

void syn_upstream_close(syn_upstream *up) {
  if (!up || up->closing) return;
  abandon_in_flight(up);
  if (!(up->batch_count && up->opts.on_failed &&
        up->opts.on_failed(up->opts.ctx, up->batch.data, up->batch.len) == 0))
    fail_ids(up, up->batch_ids, up->batch_count, "shutting down");
  up->batch_count = 0;
  for (size_t i = 0; i < up->inline_q.n; i++)
    fail_ids(up, &up->inline_q.reqs[i]->id, 1, "shutting down");
  up->inline_q.n = 0;
  start_close(up);
}
