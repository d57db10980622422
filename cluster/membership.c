/* Membership transport: the SWIM state machine (cluster/swim.h) on nng sockets and
 * threads. Design notes:
 *
 * - One mutex (m->lock) guards the state machine, the peer-socket cache, the callbacks and
 *   the flags. Nothing calls out (change callback, app handler, nng_close, blocking nng
 *   calls) with it held; unlock_notify() releases it and then calls the change callback
 *   if the view's version moved.
 * - Peer server: a rep0 socket on peer_url, one context per server thread; each thread
 *   receives, decodes (undecodable or out-of-bounds: dropped and counted, no answer),
 *   answers gossip from the state machine, and sends. An indirect probe (PING_REQ) is
 *   served by pinging the target synchronously from the same thread. An app request is
 *   handed, with the context it arrived on, to a bounded queue served by `app_threads`
 *   threads (the server thread takes a fresh context and goes on receiving), so a slow
 *   app handler never delays a ping; a full queue is answered "busy" at once.
 * - Calls out: one req0 socket per peer URL, dialled without blocking (nng reconnects by
 *   itself), resend disabled in practice (resend time far beyond any deadline) and a
 *   per-aio deadline from the state machine. Each socket keeps a small free list of
 *   contexts, so contexts are not created per call (slow in bursts in nng 1.5.2).
 *   Gossip-thread calls are asynchronous (aio callback on an nng thread, then
 *   nng_aio_reap); app calls and forwarded pings are synchronous on the caller's thread.
 * - Threads: `server_threads` peer-server threads, `app_threads` app threads, one gossip
 *   thread (timers, dispatch,
 *   idle-socket eviction), one seeder thread (DNS resolution of the seeds every seed
 *   interval, kept off the gossip thread because getaddrinfo can block).
 * - Stop never closes a socket while a thread may still use one of its contexts (nng
 *   1.5.2 panics on a context operation racing the close of its socket): set stopping
 *   (new calls are refused), join the gossip and seeder threads, cancel every call in
 *   flight until none is left (each call registers its aio in a list for this), join the
 *   server threads (their receives poll the flag every WORKER_POLL_MS), and only then
 *   close the server and peer sockets and free.
 * - Trust (common/cluster_auth.h): every request is sealed before it is sent and every
 *   reply is opened, bound to its request's tag, before it is decoded; the server opens
 *   each request before anything else (a refusal is dropped unanswered: the sender learns
 *   nothing, its deadline expires) and seals its reply with the request's tag. */
#define _GNU_SOURCE
#include "cluster/membership.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cluster/gossip_wire.h"
#include "cluster/swim.h"
#include "common/cluster_auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/nng_close.h"

#define MAX_ASYNC_CALLS 256 /* gossip-thread calls in flight; more fail at once */
#define CTX_POOL 16         /* idle contexts kept per peer socket */
#define MAX_SEED_ADDRS 64   /* addresses taken from one seed name */
#define EVICT_EVERY_MS 10000
#define APP_OVERHEAD 512        /* envelope bytes around an app payload */
#define WORKER_POLL_MS 100      /* server threads check for stop this often when idle */
#define STOP_CLOSE_WAIT_MS 3000 /* how long stopping waits for one nng close */
#define PAUSE_GAP_MS 2000       /* a gossip turn this late: the process was paused */

/* A call in flight, listed so that stop can cancel it. */
typedef struct flight {
  nng_aio *aio;
  struct flight *prev, *next;
} flight;

typedef struct peer {
  char url[SYN_MEMBER_URL_MAX + 1];
  nng_socket sock;
  nng_ctx free_ctx[CTX_POOL];
  size_t n_free;
  size_t in_use;
  uint64_t last_used;
  /* A call on it timed out: its TCP connection may be wedged in retransmission backoff
   * after a partition (minutes, at worst), so new calls go over a fresh connection and
   * this one is closed once its last call ends. */
  bool stale;
  struct peer *next;
} peer;

/* An app request waiting for an app thread; it owns the context to answer on. */
typedef struct app_job {
  nng_ctx ctx;
  nng_msg *msg; /* the request's message, reused for the reply */
  syn_gossip_decoded d;
  uint8_t tag[SYN_CLUSTER_AUTH_TAG]; /* the request's, which the reply is bound to */
  struct app_job *next;
} app_job;

typedef struct out_call {
  flight fl; /* first: the list links out_calls and sync calls alike */
  syn_membership *m;
  peer *p;
  nng_ctx ctx;
  nng_aio *aio;
  syn_swim_call *call;
  bool receiving;
  uint8_t tag[SYN_CLUSTER_AUTH_TAG]; /* the request's, which the reply must be bound to */
} out_call;

struct syn_membership {
  syn_membership_config cfg; /* strings point into the copies below */
  char self_id[SYN_MEMBER_ID_MAX + 1];
  char data_url[SYN_MEMBER_URL_MAX + 1];
  char peer_url[SYN_MEMBER_URL_MAX + 1];
  char listen_url[SYN_MEMBER_URL_MAX + 1];
  char **seeds;
  size_t n_seeds;

  pthread_mutex_t lock;
  pthread_cond_t cond; /* wakes the gossip and seeder threads; in-flight drain */
  syn_swim *swim;
  syn_cluster_auth *auth; /* NULL: open cluster */
  bool stopping;
  uint64_t notified_version;
  syn_membership_change_fn on_change;
  void *on_change_ctx;
  syn_membership_app_fn app_fn;
  void *app_ctx;
  size_t app_running; /* handler calls in progress (set_app_handler waits for them) */
  peer *peers;
  size_t async_calls;  /* out_calls in flight */
  size_t inflight;     /* every call in flight, async and sync */
  flight flights;      /* list head of the calls in flight */
  atomic_bool closing; /* stopping, readable without the lock (server threads) */

  nng_socket server;
  pthread_t *workers;
  size_t n_workers;
  pthread_t *app_workers;
  size_t n_app_workers;
  pthread_cond_t app_cond; /* app queue not empty, or stopping */
  app_job *app_head, *app_tail;
  size_t app_queued;
  nng_ctx rep_free[CTX_POOL]; /* idle server contexts, handed back by app threads */
  size_t n_rep_free;
  pthread_t gossip_thread, seeder_thread;
  bool gossip_started, seeder_started;

  atomic_uint_fast64_t msgs_in, msgs_out, dropped, calls_failed, app_in, app_out;
  atomic_uint_fast64_t last_tick; /* monotonic ms of the gossip thread's last turn */
  atomic_uint_fast64_t pauses;    /* turns that came PAUSE_GAP_MS or more late */
  /* A join refused because another live member holds our id (under lock). */
  bool refused;
  char refusal[640];
  char conflict_logged[SYN_MEMBER_URL_MAX + 1]; /* claimant we last logged (holder side) */
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wait_until(syn_membership *m, uint64_t at_ms) {
  struct timespec ts = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
  pthread_cond_timedwait(&m->cond, &m->lock, &ts);
}

static int nng_to_errno(int rv) {
  switch (rv) {
  case 0: return 0;
  case NNG_ETIMEDOUT: return -ETIMEDOUT;
  case NNG_ECLOSED: return -ECANCELED;
  case NNG_ENOMEM: return -ENOMEM;
  case NNG_EMSGSIZE: return -EMSGSIZE;
  default: return -EIO;
  }
}

/* Releases the lock, then tells the change callback if the view moved. Wakes the gossip
 * thread: whatever happened may have queued calls or moved a deadline. */
static void unlock_notify(syn_membership *m) {
  uint64_t v = syn_swim_version(m->swim);
  syn_membership_change_fn fn = NULL;
  void *ctx = NULL;
  if (v != m->notified_version && !m->stopping) {
    m->notified_version = v;
    fn = m->on_change;
    ctx = m->on_change_ctx;
  }
  pthread_cond_broadcast(&m->cond);
  pthread_mutex_unlock(&m->lock);
  if (fn) fn(ctx);
}

/* ---- peer sockets (lock held) ---- */

static peer *peer_open(syn_membership *m, const char *url) {
  peer *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  snprintf(p->url, sizeof p->url, "%s", url);
  int rv = nng_req0_open(&p->sock);
  /* Never resend inside a deadline: the state machine decides what to retry. */
  if (rv == 0) rv = nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME, 3600 * 1000);
  if (rv == 0) rv = nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, m->cfg.max_message_bytes);
  if (rv == 0) rv = nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 50);
  if (rv == 0) rv = nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 1000);
  if (rv == 0) rv = nng_dial(p->sock, url, NULL, NNG_FLAG_NONBLOCK);
  if (rv) {
    if (p->sock.id) nng_close(p->sock); /* never had a context or aio: cannot block */
    free(p);
    return NULL;
  }
  p->next = m->peers;
  m->peers = p;
  return p;
}

/* A context on the socket for url, for the call whose aio is fl->aio (listed in flight):
 * 0, or a negative errno. */
static int peer_ctx_get(syn_membership *m, const char *url, flight *fl, peer **out, nng_ctx *ctx) {
  if (m->stopping) return -ECANCELED;
  peer *p = m->peers;
  while (p && (p->stale || strcmp(p->url, url) != 0)) p = p->next;
  if (!p && !(p = peer_open(m, url))) return -EINVAL;
  if (p->n_free > 0) {
    *ctx = p->free_ctx[--p->n_free];
  } else {
    int rv = nng_ctx_open(ctx, p->sock);
    if (rv) return nng_to_errno(rv);
  }
  p->in_use++;
  p->last_used = now_ms();
  *out = p;
  m->inflight++;
  fl->prev = &m->flights;
  fl->next = m->flights.next;
  m->flights.next->prev = fl;
  m->flights.next = fl;
  return 0;
}

/* A context is reusable after a failed exchange too: a new send on a req0 context
 * cancels whatever it still waited for, and a late reply to it is discarded. */
static void peer_ctx_put(syn_membership *m, peer *p, nng_ctx ctx, flight *fl, int rv) {
  if (rv == NNG_ETIMEDOUT) p->stale = true;
  fl->prev->next = fl->next;
  fl->next->prev = fl->prev;
  if (p->n_free < CTX_POOL && !m->stopping && !p->stale)
    p->free_ctx[p->n_free++] = ctx;
  else
    nng_ctx_close(ctx);
  p->in_use--;
  m->inflight--;
}

/* Unlinks the stale sockets no call uses any more, and, with `idle_too`, those not used
 * for peer_idle_ms (or every socket, with `all`); the caller closes them unlocked. */
static peer *peers_take_done(syn_membership *m, uint64_t now, bool idle_too, bool all) {
  peer *done = NULL, **link = &m->peers;
  while (*link) {
    peer *p = *link;
    bool idle = idle_too && now - p->last_used >= m->cfg.peer_idle_ms;
    if (all || (p->in_use == 0 && (p->stale || idle))) {
      *link = p->next;
      p->next = done;
      done = p;
    } else {
      link = &p->next;
    }
  }
  return done;
}

/* Bounded (common/nng_close.h): the gossip thread evicts idle peers, and must go on
 * ticking even when nng's close hangs. No context of ours is open on these sockets. */
static void peers_close(peer *list) {
  for (peer *p = list, *next; p; p = next) {
    next = p->next;
    syn_nng_close_within(p->sock, STOP_CLOSE_WAIT_MS, "membership peer");
    free(p);
  }
}

/* ---- synchronous calls (server threads, app callers) ---- */

/* Sends `req` to url and waits up to timeout_ms for the reply message. */
static int sync_call(syn_membership *m, const char *url, const syn_buf *req, uint32_t timeout_ms,
                     nng_msg **reply) {
  peer *p;
  nng_ctx ctx;
  nng_aio *aio = NULL;
  if (nng_aio_alloc(&aio, NULL, NULL)) return -ENOMEM;
  flight fl = {.aio = aio};
  pthread_mutex_lock(&m->lock);
  int rc = peer_ctx_get(m, url, &fl, &p, &ctx);
  pthread_mutex_unlock(&m->lock);
  if (rc) {
    nng_aio_free(aio);
    return rc;
  }
  nng_msg *msg = NULL;
  uint8_t tag[SYN_CLUSTER_AUTH_TAG];
  int rv = syn_cluster_auth_sealed_msg(m->auth, &msg, req->data, req->len, NULL, 0,
                                       SYN_AUTH_GOSSIP_REQUEST, NULL, tag)
               ? NNG_ENOMEM
               : 0;
  if (rv == 0) {
    nng_aio_set_timeout(aio, (nng_duration)timeout_ms);
    nng_aio_set_msg(aio, msg);
    msg = NULL;
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    rv = nng_aio_result(aio);
    if (rv) nng_msg_free(nng_aio_get_msg(aio));
  }
  if (rv == 0) {
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    rv = nng_aio_result(aio);
    if (rv == 0) *reply = nng_aio_get_msg(aio);
    if (rv == 0 && syn_cluster_auth_open(m->auth, *reply, SYN_AUTH_GOSSIP_REPLY, tag, NULL)) {
      nng_msg_free(*reply);
      *reply = NULL;
      rv = NNG_ECRYPTO;
    }
  }
  if (msg) nng_msg_free(msg);
  atomic_fetch_add(&m->msgs_out, 1);
  if (rv) atomic_fetch_add(&m->calls_failed, 1);
  pthread_mutex_lock(&m->lock);
  peer_ctx_put(m, p, ctx, &fl, rv);
  nng_aio_free(aio); /* after unlisting, under the lock: stop cannot cancel a freed aio */
  pthread_cond_broadcast(&m->cond);
  pthread_mutex_unlock(&m->lock);
  return nng_to_errno(rv);
}

/* Decodes a reply message (and frees it); 0 or -EPROTO (counted as dropped). */
static int decode_reply(syn_membership *m, nng_msg *msg, syn_gossip_decoded *d) {
  int rc = syn_gossip_decode(nng_msg_body(msg), nng_msg_len(msg), 1, m->cfg.max_members, d);
  nng_msg_free(msg);
  if (rc) {
    atomic_fetch_add(&m->dropped, 1);
    return -EPROTO;
  }
  atomic_fetch_add(&m->msgs_in, 1);
  return 0;
}

/* ---- asynchronous calls (gossip thread) ---- */

#define DUPLICATE_ID "duplicate member id"

/* A peer refused us: another live member holds our id. Logs once, tells the holder (so
 * that it logs too), and stops this member from ever counting as joined. Lock held. */
static void refused_locked(syn_membership *m, const char *why) {
  if (m->refused) return;
  m->refused = true;
  snprintf(m->refusal, sizeof m->refusal, "%s", why);
  syn_error(
      "membership: join refused: %s; this process is at %s: give it another --node-id "
      "(or stop the other one)",
      why, m->peer_url);
  const char *held = strstr(why, "held by ");
  if (held) {
    char url[SYN_MEMBER_URL_MAX + 1];
    if (sscanf(held + 8, "%256[^,]", url) == 1) syn_swim_notify(m->swim, url);
  }
}

static void async_finish(out_call *oc, int rv, nng_msg *reply_msg) {
  syn_membership *m = oc->m;
  syn_gossip_decoded d;
  bool have = reply_msg && decode_reply(m, reply_msg, &d) == 0;
  bool swim_reply = have && d.kind == SYN_GOSSIP_SWIM;
  if (rv) atomic_fetch_add(&m->calls_failed, 1);
  pthread_mutex_lock(&m->lock);
  if (have && d.kind == SYN_GOSSIP_ERROR && !strncmp(d.error, DUPLICATE_ID, strlen(DUPLICATE_ID)))
    refused_locked(m, d.error);
  syn_swim_call_done(m->swim, now_ms(), oc->call, swim_reply ? &d.msg : NULL);
  peer_ctx_put(m, oc->p, oc->ctx, &oc->fl, rv);
  m->async_calls--;
  unlock_notify(m);
  if (have) syn_gossip_decoded_free(&d);
  syn_swim_call_free(oc->call);
  nng_aio_reap(oc->aio);
  free(oc);
}

/* nng thread. */
static void async_cb(void *arg) {
  out_call *oc = arg;
  int rv = nng_aio_result(oc->aio);
  if (!oc->receiving) {
    if (rv) {
      nng_msg_free(nng_aio_get_msg(oc->aio));
      async_finish(oc, rv, NULL);
      return;
    }
    oc->receiving = true;
    nng_ctx_recv(oc->ctx, oc->aio);
    return;
  }
  nng_msg *reply = rv ? NULL : nng_aio_get_msg(oc->aio);
  if (reply && syn_cluster_auth_open(oc->m->auth, reply, SYN_AUTH_GOSSIP_REPLY, oc->tag, NULL)) {
    nng_msg_free(reply);
    reply = NULL;
    rv = NNG_ECRYPTO;
  }
  async_finish(oc, rv, reply);
}

/* Fails a call that could not be sent. */
static void fail_now(syn_membership *m, syn_swim_call *call) {
  atomic_fetch_add(&m->calls_failed, 1);
  pthread_mutex_lock(&m->lock);
  syn_swim_call_done(m->swim, now_ms(), call, NULL);
  unlock_notify(m);
  syn_swim_call_free(call);
}

static void dispatch(syn_membership *m, syn_swim_call *call, syn_buf *buf) {
  syn_buf_reset(buf);
  nng_msg *msg = NULL;
  out_call *oc = calloc(1, sizeof *oc);
  if (!oc || syn_gossip_encode(&call->msg, 0, buf) ||
      syn_cluster_auth_sealed_msg(m->auth, &msg, buf->data, buf->len, NULL, 0,
                                  SYN_AUTH_GOSSIP_REQUEST, NULL, oc->tag) ||
      nng_aio_alloc(&oc->aio, async_cb, oc)) {
    if (msg) nng_msg_free(msg);
    free(oc);
    fail_now(m, call);
    return;
  }
  oc->m = m;
  oc->call = call;
  oc->fl.aio = oc->aio;
  pthread_mutex_lock(&m->lock);
  int rc = m->async_calls < MAX_ASYNC_CALLS ? peer_ctx_get(m, call->url, &oc->fl, &oc->p, &oc->ctx)
                                            : -EBUSY;
  if (rc == 0) m->async_calls++;
  pthread_mutex_unlock(&m->lock);
  if (rc) {
    nng_msg_free(msg);
    nng_aio_free(oc->aio);
    free(oc);
    fail_now(m, call);
    return;
  }
  atomic_fetch_add(&m->msgs_out, 1);
  nng_aio_set_timeout(oc->aio, (nng_duration)call->timeout_ms);
  nng_aio_set_msg(oc->aio, msg);
  nng_ctx_send(oc->ctx, oc->aio);
}

/* ---- gossip thread ---- */

static void *gossip_main(void *arg) {
  syn_membership *m = arg;
  syn_swim_call *calls[64];
  syn_buf buf = SYN_BUF_INIT;
  uint64_t next_evict = now_ms() + EVICT_EVERY_MS;
  for (;;) {
    pthread_mutex_lock(&m->lock);
    if (m->stopping) {
      pthread_mutex_unlock(&m->lock);
      break;
    }
    uint64_t now = now_ms();
    uint64_t prev = atomic_exchange(&m->last_tick, now);
    if (prev && now - prev > PAUSE_GAP_MS) atomic_fetch_add(&m->pauses, 1);
    syn_swim_tick(m->swim, now);
    size_t n = syn_swim_take_calls(m->swim, calls, 64);
    bool evict = now >= next_evict;
    peer *idle = peers_take_done(m, now, evict, false);
    if (evict) next_evict = now + EVICT_EVERY_MS;
    if (n == 0 && !idle && syn_swim_version(m->swim) == m->notified_version) {
      uint64_t at = syn_swim_next_deadline(m->swim);
      if (at > next_evict) at = next_evict;
      if (at > now) wait_until(m, at);
      pthread_mutex_unlock(&m->lock);
      continue;
    }
    unlock_notify(m);
    peers_close(idle);
    for (size_t i = 0; i < n; i++) dispatch(m, calls[i], &buf);
  }
  syn_buf_free(&buf);
  return NULL;
}

/* ---- seeds ---- */

static bool add_unique(char **out, size_t *n, size_t cap, const char *url) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp(out[i], url) == 0) return true;
  if (*n >= cap) return true;
  out[*n] = strdup(url);
  if (!out[*n]) return false;
  (*n)++;
  return true;
}

/* Splits tcp://HOST:PORT (HOST may be [v6]); false for other schemes. */
static bool split_tcp(const char *url, char *scheme, char *host, char *port) {
  const char *sep = strstr(url, "://");
  if (!sep || sep - url > 8) return false;
  memcpy(scheme, url, (size_t)(sep - url));
  scheme[sep - url] = 0;
  if (strcmp(scheme, "tcp") && strcmp(scheme, "tcp4") && strcmp(scheme, "tcp6")) return false;
  const char *h = sep + 3, *colon;
  if (*h == '[') {
    const char *close = strchr(h, ']');
    if (!close || close[1] != ':') return false;
    snprintf(host, SYN_MEMBER_URL_MAX + 1, "%.*s", (int)(close - h - 1), h + 1);
    colon = close + 1;
  } else {
    colon = strrchr(h, ':');
    if (!colon) return false;
    snprintf(host, SYN_MEMBER_URL_MAX + 1, "%.*s", (int)(colon - h), h);
  }
  snprintf(port, 16, "%s", colon + 1);
  return host[0] && port[0];
}

/* Resolves one seed into peer URLs (every address of a DNS name); a name that does not
 * resolve now is kept as it is, so nng tries it too. */
static bool resolve_seed(const char *seed, char **out, size_t *n, size_t cap) {
  char scheme[16], host[SYN_MEMBER_URL_MAX + 1], port[16];
  if (!split_tcp(seed, scheme, host, port)) return add_unique(out, n, cap, seed);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  if (!strcmp(scheme, "tcp4")) hints.ai_family = AF_INET;
  if (!strcmp(scheme, "tcp6")) hints.ai_family = AF_INET6;
  if (getaddrinfo(host, port, &hints, &res) != 0) return add_unique(out, n, cap, seed);
  size_t taken = 0;
  bool ok = true;
  for (struct addrinfo *ai = res; ai && ok && taken < MAX_SEED_ADDRS; ai = ai->ai_next) {
    char addr[INET6_ADDRSTRLEN], url[SYN_MEMBER_URL_MAX + 1];
    const void *src = ai->ai_family == AF_INET
                          ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                          : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    if (!inet_ntop(ai->ai_family, src, addr, sizeof addr)) continue;
    snprintf(url, sizeof url, ai->ai_family == AF_INET ? "tcp://%s:%s" : "tcp://[%s]:%s", addr,
             port);
    ok = add_unique(out, n, cap, url);
    taken++;
  }
  freeaddrinfo(res);
  return ok;
}

/* Resolves every seed and hands the list to the state machine. Blocks on DNS. */
static void refresh_seeds(syn_membership *m) {
  size_t cap = m->n_seeds * MAX_SEED_ADDRS + 1, n = 0;
  char **urls = calloc(cap, sizeof *urls);
  if (!urls) return;
  for (size_t i = 0; i < m->n_seeds; i++) resolve_seed(m->seeds[i], urls, &n, cap);
  pthread_mutex_lock(&m->lock);
  syn_swim_set_seeds(m->swim, (const char *const *)urls, n);
  unlock_notify(m);
  for (size_t i = 0; i < n; i++) free(urls[i]);
  free(urls);
}

static void *seeder_main(void *arg) {
  syn_membership *m = arg;
  for (;;) {
    pthread_mutex_lock(&m->lock);
    uint64_t at = now_ms() + m->cfg.seed_interval_ms;
    while (!m->stopping && now_ms() < at) wait_until(m, at);
    bool stop = m->stopping;
    pthread_mutex_unlock(&m->lock);
    if (stop) break;
    refresh_seeds(m);
  }
  return NULL;
}

/* ---- peer server ---- */

static int serve_app(syn_membership *m, const syn_gossip_decoded *d, syn_buf *out,
                     syn_buf *scratch) {
  atomic_fetch_add(&m->app_in, 1);
  pthread_mutex_lock(&m->lock);
  syn_membership_app_fn fn = m->app_fn;
  void *ctx = m->app_ctx;
  if (fn) m->app_running++;
  pthread_mutex_unlock(&m->lock);
  if (!fn) return syn_gossip_encode_app(m->self_id, NULL, 0, 1, "no app handler", out);
  syn_buf_reset(scratch);
  int rc = fn(ctx, d->app, d->app_len, scratch);
  pthread_mutex_lock(&m->lock);
  m->app_running--;
  pthread_cond_broadcast(&m->cond);
  pthread_mutex_unlock(&m->lock);
  if (rc != 0) return syn_gossip_encode_app(m->self_id, NULL, 0, 1, "app handler failed", out);
  if (scratch->len + APP_OVERHEAD > m->cfg.max_message_bytes)
    return syn_gossip_encode_app(m->self_id, NULL, 0, 1, "app reply too large", out);
  return syn_gossip_encode_app(m->self_id, scratch->data, scratch->len, 1, NULL, out);
}

/* Pings the target of an indirect probe from this thread and builds the answer. */
static void serve_forward(syn_membership *m, const syn_swim_msg *req, syn_swim_call *fwd,
                          syn_swim_msg *reply, syn_buf *scratch) {
  syn_buf_reset(scratch);
  nng_msg *msg = NULL;
  syn_gossip_decoded d;
  bool have = false;
  if (syn_gossip_encode(&fwd->msg, 0, scratch) == 0 &&
      sync_call(m, fwd->url, scratch, fwd->timeout_ms, &msg) == 0)
    have = decode_reply(m, msg, &d) == 0 && d.kind == SYN_GOSSIP_SWIM;
  pthread_mutex_lock(&m->lock);
  syn_swim_finish_forward(m->swim, now_ms(), req, fwd, have ? &d.msg : NULL, reply);
  unlock_notify(m);
  if (have) syn_gossip_decoded_free(&d);
}

enum served { SERVED_REPLY, SERVED_DROP, SERVED_HANDED_OFF };

/* One error line per claimant: on the holder of the id, or on a member that refused the
 * join. Lock held. */
static void log_conflict_locked(syn_membership *m, const syn_swim_msg *c) {
  if (!strcmp(m->conflict_logged, c->claimant_url)) return;
  snprintf(m->conflict_logged, sizeof m->conflict_logged, "%s", c->claimant_url);
  if (!strcmp(c->target_id, m->self_id))
    syn_error(
        "membership: another process claims this member's id \"%s\": it is at %s, this "
        "one at %s; refused",
        c->target_id, c->claimant_url, m->peer_url);
  else
    syn_error("membership: refused a join: member id \"%s\" is held by %s and claimed by %s",
              c->target_id, c->target_url, c->claimant_url);
}

/* Queues an app request for the app threads; false when the queue is full. Takes `d`. */
static bool queue_app(syn_membership *m, nng_ctx ctx, nng_msg *msg, syn_gossip_decoded *d,
                      const uint8_t *tag) {
  app_job *job = malloc(sizeof *job);
  if (!job) return false;
  pthread_mutex_lock(&m->lock);
  if (m->app_queued >= m->cfg.app_queue || m->stopping) {
    pthread_mutex_unlock(&m->lock);
    free(job);
    return false;
  }
  *job = (app_job){.ctx = ctx, .msg = msg, .d = *d};
  memcpy(job->tag, tag, sizeof job->tag);
  if (m->app_tail)
    m->app_tail->next = job;
  else
    m->app_head = job;
  m->app_tail = job;
  m->app_queued++;
  pthread_cond_signal(&m->app_cond);
  pthread_mutex_unlock(&m->lock);
  return true;
}

/* Serves one request that arrived on ctx: a reply in out, a drop, or an app request
 * handed to the app threads together with ctx and msg. */
static enum served serve(syn_membership *m, nng_ctx ctx, nng_msg *msg, const uint8_t *tag,
                         syn_buf *out, syn_buf *scratch) {
  syn_gossip_decoded d;
  if (syn_gossip_decode(nng_msg_body(msg), nng_msg_len(msg), 0, m->cfg.max_members, &d)) {
    atomic_fetch_add(&m->dropped, 1);
    return SERVED_DROP;
  }
  atomic_fetch_add(&m->msgs_in, 1);
  if (d.kind == SYN_GOSSIP_APP) {
    if (queue_app(m, ctx, msg, &d, tag)) return SERVED_HANDED_OFF;
    syn_gossip_decoded_free(&d);
    atomic_fetch_add(&m->app_in, 1);
    return syn_gossip_encode_app(m->self_id, NULL, 0, 1, "busy", out) ? SERVED_DROP : SERVED_REPLY;
  }
  syn_swim_msg reply = {0};
  syn_swim_call *fwd = NULL;
  pthread_mutex_lock(&m->lock);
  int rc = syn_swim_handle(m->swim, now_ms(), &d.msg, &reply, &fwd);
  if (rc == SYN_SWIM_CONFLICT) log_conflict_locked(m, &reply);
  unlock_notify(m);
  if (rc == SYN_SWIM_CONFLICT) {
    char why[640];
    snprintf(why, sizeof why, DUPLICATE_ID " \"%s\": held by %s, claimed by %s", reply.target_id,
             reply.target_url, reply.claimant_url);
    syn_swim_msg_clear(&reply);
    syn_gossip_decoded_free(&d);
    return syn_gossip_encode_app(m->self_id, NULL, 0, 1, why, out) ? SERVED_DROP : SERVED_REPLY;
  }
  if (rc == SYN_SWIM_FORWARD) serve_forward(m, &d.msg, fwd, &reply, scratch);
  if (rc < 0) atomic_fetch_add(&m->dropped, 1);
  if (rc >= 0) rc = syn_gossip_encode(&reply, 1, out);
  syn_swim_msg_clear(&reply);
  syn_gossip_decoded_free(&d);
  return rc ? SERVED_DROP : SERVED_REPLY;
}

/* Sends `out` as the reply on ctx, sealed and bound to the request's tag. */
static void send_reply(syn_membership *m, nng_ctx ctx, nng_aio *aio, const syn_buf *out,
                       const uint8_t *tag) {
  nng_msg *msg;
  if (syn_cluster_auth_sealed_msg(m->auth, &msg, out->data, out->len, NULL, 0,
                                  SYN_AUTH_GOSSIP_REPLY, tag, NULL))
    return;
  nng_aio_set_timeout(aio, 1000);
  nng_aio_set_msg(aio, msg);
  nng_ctx_send(ctx, aio);
  nng_aio_wait(aio);
  if (nng_aio_result(aio))
    nng_msg_free(msg);
  else
    atomic_fetch_add(&m->msgs_out, 1);
}

/* A server context: an idle one handed back by an app thread, or a new one. */
static int server_ctx(syn_membership *m, nng_ctx *ctx) {
  pthread_mutex_lock(&m->lock);
  bool have = m->n_rep_free > 0;
  if (have) *ctx = m->rep_free[--m->n_rep_free];
  pthread_mutex_unlock(&m->lock);
  return have ? 0 : nng_ctx_open(ctx, m->server);
}

static void *worker_main(void *arg) {
  syn_membership *m = arg;
  nng_ctx ctx;
  nng_aio *aio;
  if (nng_aio_alloc(&aio, NULL, NULL)) return NULL;
  if (server_ctx(m, &ctx)) {
    nng_aio_free(aio);
    return NULL;
  }
  syn_buf out = SYN_BUF_INIT, scratch = SYN_BUF_INIT;
  while (!atomic_load(&m->closing)) {
    nng_aio_set_timeout(aio, WORKER_POLL_MS);
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    int rv = nng_aio_result(aio);
    if (rv == NNG_ECLOSED) break;
    if (rv) continue;
    nng_msg *msg = nng_aio_get_msg(aio);
    uint8_t tag[SYN_CLUSTER_AUTH_TAG];
    if (syn_cluster_auth_open(m->auth, msg, SYN_AUTH_GOSSIP_REQUEST, NULL, tag)) {
      nng_msg_free(msg); /* counted by the auth; unanswered, never parsed */
      continue;
    }
    syn_buf_reset(&out);
    enum served how = serve(m, ctx, msg, tag, &out, &scratch);
    if (how == SERVED_DROP) {
      nng_msg_free(msg); /* unanswered: the caller's deadline expires */
    } else if (how == SERVED_REPLY) {
      nng_msg_free(msg);
      send_reply(m, ctx, aio, &out, tag);
    } else if (server_ctx(m, &ctx)) { /* the old context went with the app request */
      break;
    }
  }
  nng_aio_free(aio);
  syn_buf_free(&out);
  syn_buf_free(&scratch);
  return NULL;
}

static void *app_main(void *arg) {
  syn_membership *m = arg;
  nng_aio *aio;
  if (nng_aio_alloc(&aio, NULL, NULL)) return NULL;
  syn_buf out = SYN_BUF_INIT, scratch = SYN_BUF_INIT;
  for (;;) {
    pthread_mutex_lock(&m->lock);
    while (!m->app_head && !m->stopping) pthread_cond_wait(&m->app_cond, &m->lock);
    app_job *job = m->stopping ? NULL : m->app_head;
    if (job) {
      m->app_head = job->next;
      if (!m->app_head) m->app_tail = NULL;
      m->app_queued--;
    }
    pthread_mutex_unlock(&m->lock);
    if (!job) break;
    syn_buf_reset(&out);
    if (serve_app(m, &job->d, &out, &scratch) == 0) send_reply(m, job->ctx, aio, &out, job->tag);
    syn_gossip_decoded_free(&job->d);
    nng_msg_free(job->msg);
    pthread_mutex_lock(&m->lock);
    bool keep = m->n_rep_free < CTX_POOL;
    if (keep) m->rep_free[m->n_rep_free++] = job->ctx;
    pthread_mutex_unlock(&m->lock);
    if (!keep) nng_ctx_close(job->ctx);
    free(job);
  }
  nng_aio_free(aio);
  syn_buf_free(&out);
  syn_buf_free(&scratch);
  return NULL;
}

/* Stop: requests still queued are dropped unanswered (their callers time out). */
static void discard_app_jobs(syn_membership *m) {
  for (app_job *job = m->app_head, *next; job; job = next) {
    next = job->next;
    nng_msg_free(job->msg);
    syn_gossip_decoded_free(&job->d);
    free(job);
  }
  m->app_head = m->app_tail = NULL;
  m->app_queued = 0;
}

/* ---- lifecycle ---- */

static int copy_config(syn_membership *m, const syn_membership_config *cfg, char *err,
                       size_t err_len) {
  m->cfg = *cfg;
  if (!cfg->self_id || !cfg->peer_url || strlen(cfg->self_id) > SYN_MEMBER_ID_MAX ||
      strlen(cfg->peer_url) > SYN_MEMBER_URL_MAX ||
      (cfg->data_url && strlen(cfg->data_url) > SYN_MEMBER_URL_MAX) ||
      (cfg->listen_url && strlen(cfg->listen_url) > SYN_MEMBER_URL_MAX)) {
    snprintf(err, err_len, "membership: self id or URLs missing or too long");
    return -1;
  }
  snprintf(m->self_id, sizeof m->self_id, "%s", cfg->self_id);
  snprintf(m->peer_url, sizeof m->peer_url, "%s", cfg->peer_url);
  snprintf(m->data_url, sizeof m->data_url, "%s", cfg->data_url ? cfg->data_url : "");
  snprintf(m->listen_url, sizeof m->listen_url, "%s",
           cfg->listen_url && cfg->listen_url[0] ? cfg->listen_url : cfg->peer_url);
  m->cfg.self_id = m->self_id;
  m->cfg.peer_url = m->peer_url;
  m->cfg.data_url = m->data_url;
  m->cfg.listen_url = m->listen_url;
  m->seeds = calloc(cfg->n_seeds + 1, sizeof *m->seeds);
  if (!m->seeds) return -1;
  for (size_t i = 0; i < cfg->n_seeds; i++) {
    if (!cfg->seeds[i] || !(m->seeds[m->n_seeds] = strdup(cfg->seeds[i]))) continue;
    m->n_seeds++;
  }
  m->cfg.seeds = NULL;
  m->cfg.n_seeds = 0;
  if (!m->cfg.rng_seed && getrandom(&m->cfg.rng_seed, sizeof m->cfg.rng_seed, 0) < 0)
    m->cfg.rng_seed = now_ms() ^ (uint64_t)(uintptr_t)m;
  if (m->cfg.server_threads == 0) m->cfg.server_threads = 1;
  if (m->cfg.app_threads == 0) m->cfg.app_threads = 1;
  return 0;
}

static int open_server(syn_membership *m, char *err, size_t err_len) {
  int rv = nng_rep0_open(&m->server);
  if (rv == 0) rv = nng_socket_set_size(m->server, NNG_OPT_RECVMAXSZ, m->cfg.max_message_bytes);
  if (rv == 0) rv = nng_listen(m->server, m->listen_url, NULL, 0);
  if (rv)
    snprintf(err, err_len, "membership: cannot listen on %s: %s", m->listen_url, nng_strerror(rv));
  return rv ? -1 : 0;
}

static void free_membership(syn_membership *m) {
  syn_swim_free(m->swim);
  syn_cluster_auth_free(m->auth);
  for (size_t i = 0; i < m->n_seeds; i++) free(m->seeds[i]);
  free(m->seeds);
  free(m->workers);
  free(m->app_workers);
  pthread_cond_destroy(&m->app_cond);
  pthread_cond_destroy(&m->cond);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

static int start_threads(syn_membership *m, char *err, size_t err_len) {
  m->workers = calloc(m->cfg.server_threads, sizeof *m->workers);
  if (!m->workers) return -1;
  for (; m->n_workers < m->cfg.server_threads; m->n_workers++)
    if (pthread_create(&m->workers[m->n_workers], NULL, worker_main, m)) break;
  m->app_workers = calloc(m->cfg.app_threads, sizeof *m->app_workers);
  if (!m->app_workers) return -1;
  for (; m->n_app_workers < m->cfg.app_threads; m->n_app_workers++)
    if (pthread_create(&m->app_workers[m->n_app_workers], NULL, app_main, m)) break;
  m->gossip_started = m->n_workers > 0 && !pthread_create(&m->gossip_thread, NULL, gossip_main, m);
  m->seeder_started = m->gossip_started && !pthread_create(&m->seeder_thread, NULL, seeder_main, m);
  if (m->n_workers == m->cfg.server_threads && m->n_app_workers == m->cfg.app_threads &&
      m->seeder_started)
    return 0;
  snprintf(err, err_len, "membership: cannot start threads");
  return -1;
}

/* The cluster key; none leaves the cluster open (app/ warns once the process serves). */
static int open_auth(syn_membership *m, const char *key, char *err, size_t err_len) {
  m->cfg.cluster_key = NULL; /* not kept: the derived key is */
  if (!key || !key[0]) return 0;
  char why[256];
  m->auth = syn_cluster_auth_new(key, why, sizeof why);
  if (!m->auth) snprintf(err, err_len, "membership: %s", why);
  return m->auth ? 0 : -1;
}

syn_membership *syn_membership_start(const syn_membership_config *cfg, char *err, size_t err_len) {
  syn_membership *m = calloc(1, sizeof *m);
  if (!m) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&m->lock, NULL);
  m->flights.next = m->flights.prev = &m->flights;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cond, &attr);
  pthread_cond_init(&m->app_cond, NULL);
  pthread_condattr_destroy(&attr);
  if (copy_config(m, cfg, err, err_len)) {
    free_membership(m);
    return NULL;
  }
  if (open_auth(m, cfg->cluster_key, err, err_len)) {
    free_membership(m);
    return NULL;
  }
  m->swim = syn_swim_new(&m->cfg, now_ms());
  if (!m->swim) {
    snprintf(err, err_len, "membership: invalid configuration (id, URLs or timings)");
    free_membership(m);
    return NULL;
  }
  m->notified_version = syn_swim_version(m->swim);
  if (open_server(m, err, err_len)) {
    nng_close(m->server);
    free_membership(m);
    return NULL;
  }
  refresh_seeds(m); /* before the first tick: joining starts at once */
  if (start_threads(m, err, err_len)) {
    syn_membership_stop(m);
    return NULL;
  }
  return m;
}

/* Cancels every call in flight until none is left. A cancel can miss a call between its
 * send and its receive, hence the loop. */
static void cancel_flights(syn_membership *m) {
  pthread_mutex_lock(&m->lock);
  while (m->inflight > 0) {
    for (flight *f = m->flights.next; f != &m->flights; f = f->next) nng_aio_cancel(f->aio);
    wait_until(m, now_ms() + 20);
  }
  pthread_mutex_unlock(&m->lock);
}

void syn_membership_stop(syn_membership *m) {
  if (!m) return;
  pthread_mutex_lock(&m->lock);
  m->stopping = true;
  atomic_store(&m->closing, true);
  pthread_cond_broadcast(&m->cond);
  pthread_cond_broadcast(&m->app_cond);
  pthread_mutex_unlock(&m->lock);
  if (m->gossip_started) pthread_join(m->gossip_thread, NULL);
  if (m->seeder_started) pthread_join(m->seeder_thread, NULL);
  cancel_flights(m);
  for (size_t i = 0; i < m->n_workers; i++) pthread_join(m->workers[i], NULL);
  for (size_t i = 0; i < m->n_app_workers; i++) pthread_join(m->app_workers[i], NULL);
  cancel_flights(m); /* a server thread may have started one before it saw the flag */
  discard_app_jobs(m);
  /* Bounded (common/nng_close.h): a stopping process must stop even when nng's close
   * hangs; no thread of ours uses these sockets any more. */
  syn_nng_close_within(m->server, STOP_CLOSE_WAIT_MS, "membership");
  pthread_mutex_lock(&m->lock);
  peer *all = peers_take_done(m, 0, false, true);
  pthread_mutex_unlock(&m->lock);
  peers_close(all);
  free_membership(m);
}

int syn_membership_leave(syn_membership *m, uint32_t timeout_ms) {
  uint64_t deadline = now_ms() + timeout_ms;
  pthread_mutex_lock(&m->lock);
  syn_swim_leave(m->swim, now_ms());
  unlock_notify(m);
  pthread_mutex_lock(&m->lock);
  while (!syn_swim_leave_done(m->swim) && !m->stopping && now_ms() < deadline)
    wait_until(m, deadline);
  bool done = syn_swim_leave_done(m->swim);
  pthread_mutex_unlock(&m->lock);
  return done ? 0 : -ETIMEDOUT;
}

void syn_membership_set_on_change(syn_membership *m, syn_membership_change_fn fn, void *ctx) {
  pthread_mutex_lock(&m->lock);
  m->on_change = fn;
  m->on_change_ctx = ctx;
  pthread_mutex_unlock(&m->lock);
}

void syn_membership_set_app_handler(syn_membership *m, syn_membership_app_fn fn, void *ctx) {
  pthread_mutex_lock(&m->lock);
  m->app_fn = fn;
  m->app_ctx = ctx;
  /* Whoever replaces the handler may free the old one's context: wait until no call of
   * it is still running. */
  while (m->app_running > 0) wait_until(m, now_ms() + 20);
  pthread_mutex_unlock(&m->lock);
}

int syn_membership_app_call(syn_membership *m, const char *peer_url, const void *req, size_t len,
                            uint32_t timeout_ms, syn_buf *reply) {
  if (len + APP_OVERHEAD > m->cfg.max_message_bytes) return -EMSGSIZE;
  if (!peer_url || strlen(peer_url) > SYN_MEMBER_URL_MAX) return -EINVAL;
  syn_buf buf = SYN_BUF_INIT;
  nng_msg *msg = NULL;
  int rc = syn_gossip_encode_app(m->self_id, req, len, 0, NULL, &buf);
  if (rc == 0) rc = sync_call(m, peer_url, &buf, timeout_ms, &msg);
  syn_buf_free(&buf);
  if (rc) return rc;
  atomic_fetch_add(&m->app_out, 1);
  syn_gossip_decoded d;
  if (decode_reply(m, msg, &d)) return -EPROTO;
  if (d.kind == SYN_GOSSIP_APP)
    rc = syn_buf_append(reply, d.app, d.app_len);
  else
    rc = d.kind != SYN_GOSSIP_ERROR ? -EPROTO : strcmp(d.error, "busy") == 0 ? -EBUSY : -EREMOTEIO;
  syn_gossip_decoded_free(&d);
  return rc;
}

void syn_membership_snapshot(syn_membership *m, syn_member_info *out, size_t cap, size_t *count,
                             uint64_t *version, uint64_t *ring_version) {
  pthread_mutex_lock(&m->lock);
  size_t n = syn_swim_snapshot(m->swim, now_ms(), out, cap);
  if (count) *count = n;
  if (version) *version = syn_swim_version(m->swim);
  if (ring_version) *ring_version = syn_swim_ring_version(m->swim);
  pthread_mutex_unlock(&m->lock);
}

syn_ring *syn_membership_build_ring(syn_membership *m, uint32_t partitions, uint32_t replication,
                                    uint64_t *ring_version) {
  syn_member_info *all = NULL;
  size_t n = 0, cap = 0;
  uint64_t rv = 0;
  for (;;) { /* the set may grow between sizing and copying */
    syn_membership_snapshot(m, all, cap, &n, NULL, &rv);
    if (n <= cap) break;
    free(all);
    cap = n + 8;
    all = malloc(cap * sizeof *all);
    if (!all) return NULL;
  }
  const char **ids = malloc((n + 1) * sizeof *ids);
  size_t k = 0;
  for (size_t i = 0; ids && i < n; i++)
    if (syn_member_in_ring(&all[i])) ids[k++] = all[i].id;
  syn_ring *ring = ids ? syn_ring_build(ids, k, partitions, replication) : NULL;
  free(ids);
  free(all);
  if (ring && ring_version) *ring_version = rv;
  return ring;
}

bool syn_membership_refused(syn_membership *m, char *why, size_t len) {
  pthread_mutex_lock(&m->lock);
  bool refused = m->refused;
  if (refused && why && len) snprintf(why, len, "%s", m->refusal);
  pthread_mutex_unlock(&m->lock);
  return refused;
}

syn_cluster_auth *syn_membership_auth(syn_membership *m) { return m->auth; }

bool syn_membership_joined(syn_membership *m) {
  pthread_mutex_lock(&m->lock);
  bool joined = syn_swim_joined(m->swim) && !m->refused;
  pthread_mutex_unlock(&m->lock);
  return joined;
}

uint64_t syn_membership_last_tick_ms(syn_membership *m) { return atomic_load(&m->last_tick); }
uint64_t syn_membership_pauses(syn_membership *m) { return atomic_load(&m->pauses); }

uint64_t syn_membership_self_incarnation(syn_membership *m) {
  pthread_mutex_lock(&m->lock);
  uint64_t inc = syn_swim_incarnation(m->swim);
  pthread_mutex_unlock(&m->lock);
  return inc;
}

void syn_membership_stats_get(syn_membership *m, syn_membership_stats *out) {
  memset(out, 0, sizeof *out);
  out->msgs_in = atomic_load(&m->msgs_in);
  out->msgs_out = atomic_load(&m->msgs_out);
  out->dropped = atomic_load(&m->dropped);
  out->calls_failed = atomic_load(&m->calls_failed);
  out->app_in = atomic_load(&m->app_in);
  out->app_out = atomic_load(&m->app_out);
  out->auth_failures = syn_cluster_auth_failures(m->auth);
  pthread_mutex_lock(&m->lock);
  syn_swim_stats_add(m->swim, out);
  pthread_mutex_unlock(&m->lock);
}

void syn_membership_config_apply(syn_membership_config *mc, const syn_config *cfg) {
  if (cfg->probe_interval_ms) mc->probe_interval_ms = cfg->probe_interval_ms;
  if (cfg->probe_timeout_ms) mc->probe_timeout_ms = cfg->probe_timeout_ms;
  if (cfg->suspicion_mult) mc->suspicion_mult = cfg->suspicion_mult;
  if (cfg->suspicion_max_mult) mc->suspicion_max_mult = cfg->suspicion_max_mult;
  if (cfg->reap_timeout_s) mc->reap_timeout_ms = cfg->reap_timeout_s * 1000;
  mc->cluster_key = cfg->cluster_key;
}
