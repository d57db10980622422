/* WebTorrent tracking (router/ws_tracker.h). Design notes:
 *
 * - A ws_client outlives its socket while requests it sent are in flight: one reference
 *   for the socket, one per request; replies to a closed socket are dropped.
 * - One socket may carry several peer ids (bittorrent-tracker pools one socket per
 *   tracker URL between the torrents, and clients, of a page), so the client keeps
 *   (info_hash, peer_id) pairs and the peer map counts each id's uses per client. */
#include "router/ws_tracker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "router/ws_json.h"
#include "router/ws_server.h"

#define PEER_BUCKETS 4096

typedef struct ws_pair {
  uint8_t info_hash[20];
  uint8_t peer_id[20];
} ws_pair;

typedef struct ws_client {
  syn_ws_tracker *t;
  syn_ws_conn *conn; /* NULL once the socket closed */
  uint32_t refs;
  uint32_t announces_out; /* announces sent, not yet answered */
  bool leave_pending;     /* closed with announces out: leave once they are answered */
  const uint8_t *ip;
  size_t ip_len;
  uint8_t ip_copy[16];
  ws_pair *pairs;
  size_t n_pairs, cap_pairs;
} ws_client;

typedef struct peer_entry {
  struct peer_entry *next;
  uint8_t peer_id[20];
  ws_client *client;
  uint32_t uses; /* pairs of that client naming this id */
} peer_entry;

struct syn_ws_tracker {
  uv_loop_t *loop;
  syn_ws_tracker_options opts;
  syn_scraper scraper;
  char router_id[72];
  syn_ws_server *srv;
  peer_entry *peers[PEER_BUCKETS];
  syn_buf out;   /* one outgoing message, reused */
  bool stopping; /* the nodes' links are closing: no more requests */
  syn_ws_tracker_stats stats;
};

/* What a WsAnnounce request carries to its reply (in syn_req's inline data). */
typedef struct announce_ctx {
  ws_client *client;
  uint8_t info_hash[20];
  uint8_t peer_id[20];
  bool answer;
  bool stopped;
} announce_ctx;

_Static_assert(sizeof(announce_ctx) <= SYN_REQ_DATA, "announce_ctx fits a request's data");

/* ---- clients and the peer map ---- */

static void client_release(ws_client *c, uint32_t refs) {
  c->refs -= refs;
  if (c->refs) return;
  free(c->pairs);
  free(c);
}

static void client_unref(ws_client *c) { client_release(c, 1); }

static size_t peer_bucket(const uint8_t id[20]) {
  uint32_t h;
  memcpy(&h, id + 16, sizeof h); /* peer ids start with a client prefix; the end is random */
  return h % PEER_BUCKETS;
}

static peer_entry **peer_find(syn_ws_tracker *t, const uint8_t id[20]) {
  peer_entry **pp = &t->peers[peer_bucket(id)];
  while (*pp && memcmp((*pp)->peer_id, id, 20)) pp = &(*pp)->next;
  return pp;
}

/* The id now reaches this client (the latest socket to announce an id wins). */
static void peer_use(syn_ws_tracker *t, ws_client *c, const uint8_t id[20]) {
  peer_entry **pp = peer_find(t, id);
  peer_entry *e = *pp;
  if (!e) {
    if (!(e = calloc(1, sizeof *e))) return;
    memcpy(e->peer_id, id, 20);
    *pp = e;
  }
  if (e->client != c) e->uses = 0;
  e->client = c;
  e->uses++;
}

static void peer_release(syn_ws_tracker *t, ws_client *c, const uint8_t id[20]) {
  peer_entry **pp = peer_find(t, id);
  peer_entry *e = *pp;
  if (!e || e->client != c || --e->uses) return;
  *pp = e->next;
  free(e);
}

static ws_client *peer_client(syn_ws_tracker *t, const uint8_t id[20]) {
  peer_entry *e = *peer_find(t, id);
  return e && e->client->conn ? e->client : NULL;
}

static ssize_t find_pair(const ws_client *c, const uint8_t hash[20], const uint8_t id[20]) {
  for (size_t i = 0; i < c->n_pairs; i++)
    if (!memcmp(c->pairs[i].info_hash, hash, 20) && !memcmp(c->pairs[i].peer_id, id, 20))
      return (ssize_t)i;
  return -1;
}

/* 0; -ENOSPC past max_swarms_per_socket; -ENOMEM. */
static int add_pair(ws_client *c, const uint8_t hash[20], const uint8_t id[20]) {
  if (find_pair(c, hash, id) >= 0) return 0;
  if (c->n_pairs >= c->t->opts.cfg->ws_max_swarms_per_socket) return -ENOSPC;
  if (c->n_pairs == c->cap_pairs) {
    size_t cap = c->cap_pairs ? c->cap_pairs * 2 : 4;
    ws_pair *np = realloc(c->pairs, cap * sizeof *np);
    if (!np) return -ENOMEM;
    c->pairs = np;
    c->cap_pairs = cap;
  }
  memcpy(c->pairs[c->n_pairs].info_hash, hash, 20);
  memcpy(c->pairs[c->n_pairs].peer_id, id, 20);
  c->n_pairs++;
  peer_use(c->t, c, id);
  return 0;
}

static void drop_pair(ws_client *c, const uint8_t hash[20], const uint8_t id[20]) {
  ssize_t i = find_pair(c, hash, id);
  if (i < 0) return;
  c->pairs[i] = c->pairs[--c->n_pairs];
  peer_release(c->t, c, id);
}

/* ---- sending ---- */

static void send_out(syn_ws_tracker *t, ws_client *c) {
  if (c->conn && syn_ws_send(c->conn, (const char *)t->out.data, t->out.len))
    t->stats.closed_slow++;
  syn_buf_reset(&t->out);
}

static void send_failure(syn_ws_tracker *t, ws_client *c, const char *why, const char *action,
                         const uint8_t *info_hash) {
  t->stats.failures++;
  syn_buf_reset(&t->out);
  if (syn_ws_failure(&t->out, why, action, info_hash) == 0) send_out(t, c);
  syn_buf_reset(&t->out);
}

static void deliver_signal(syn_ws_tracker *t, const Synapse__WsSignal *s) {
  ws_client *c = s->to_peer_id.len == 20 ? peer_client(t, s->to_peer_id.data) : NULL;
  bool is_answer = s->has_answer;
  const ProtobufCBinaryData *body = is_answer ? &s->answer : &s->offer;
  if (!c || s->info_hash.len != 20 || s->from_peer_id.len != 20 || s->offer_id.len != 20 ||
      !(is_answer || s->has_offer)) {
    t->stats.signals_lost++;
    return;
  }
  syn_buf_reset(&t->out);
  if (syn_ws_signal(&t->out, s->info_hash.data, s->from_peer_id.data, s->offer_id.data, is_answer,
                    body->data, body->len)) {
    t->stats.signals_lost++;
    syn_buf_reset(&t->out);
    return;
  }
  t->stats.signals_in++;
  send_out(t, c);
}

void syn_ws_tracker_push(syn_ws_tracker *t, const Synapse__WsPush *push) {
  if (!t) return;
  for (size_t i = 0; i < push->n_signals; i++) deliver_signal(t, push->signals[i]);
}

static void leave_swarms(syn_ws_tracker *t, ws_client *c);

/* ---- announce ---- */

static const char *reply_error(const Synapse__Reply *rep) {
  if (rep->message && *rep->message) return rep->message;
  return rep->error == SYNAPSE__ERROR_CODE__UNAVAILABLE ? "no node available, retry later"
                                                        : "announce failed";
}

/* An announce of c was answered: a closed socket's peers leave now if it was the last. */
static void announce_answered(syn_ws_tracker *t, ws_client *c) {
  uint32_t refs = 1; /* the request's */
  if (--c->announces_out == 0 && c->leave_pending) {
    c->leave_pending = false;
    leave_swarms(t, c);
    refs++; /* and the closed socket's */
  }
  client_release(c, refs);
}

static void on_announce_reply(syn_req *req, const Synapse__Reply *rep) {
  announce_ctx *a = (announce_ctx *)req->data;
  ws_client *c = a->client;
  if (!c) return; /* a `stopped` for a closed socket: nobody to tell */
  syn_ws_tracker *t = c->t;
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_WS_ANNOUNCE) {
    if (!a->answer) send_failure(t, c, reply_error(rep), "announce", a->info_hash);
    announce_answered(t, c);
    return;
  }
  const Synapse__WsAnnounceReply *r = rep->ws_announce;
  if (!a->answer) {
    syn_buf_reset(&t->out);
    if (syn_ws_announce_reply(&t->out, a->info_hash, t->opts.cfg->ws_interval, r->complete,
                              r->incomplete) == 0)
      send_out(t, c);
    syn_buf_reset(&t->out);
  }
  for (size_t i = 0; i < r->n_signals; i++) deliver_signal(t, r->signals[i]);
  announce_answered(t, c);
}

static Synapse__Event event_of(enum syn_ws_event e) {
  switch (e) {
  case SYN_WS_EVENT_STARTED: return SYNAPSE__EVENT__EVENT_STARTED;
  case SYN_WS_EVENT_COMPLETED: return SYNAPSE__EVENT__EVENT_COMPLETED;
  case SYN_WS_EVENT_STOPPED: return SYNAPSE__EVENT__EVENT_STOPPED;
  default: return SYNAPSE__EVENT__EVENT_NONE;
  }
}

/* Sends one WsAnnounce; `client` NULL for a fire-and-forget `stopped`. 0 or the send's
 * error (-ENODEV, -EBUSY). */
static int send_announce(syn_ws_tracker *t, ws_client *client, const syn_ws_msg *m) {
  Synapse__WsOffer offers[SYN_WS_MAX_MSG_OFFERS], *offer_ptrs[SYN_WS_MAX_MSG_OFFERS];
  Synapse__WsAnnounceRequest wa = SYNAPSE__WS_ANNOUNCE_REQUEST__INIT;
  wa.info_hash = (ProtobufCBinaryData){20, (uint8_t *)m->info_hash};
  wa.peer_id = (ProtobufCBinaryData){20, (uint8_t *)m->peer_id};
  wa.router = t->router_id;
  wa.boot = t->opts.boot;
  wa.has_event = m->event != SYN_WS_EVENT_NONE;
  wa.event = event_of(m->event);
  wa.has_left = m->has_left;
  wa.left = m->left;
  for (size_t i = 0; i < m->n_offers; i++) {
    offers[i] = (Synapse__WsOffer)SYNAPSE__WS_OFFER__INIT;
    offers[i].offer_id = (ProtobufCBinaryData){20, (uint8_t *)m->offers[i].offer_id};
    offers[i].offer = (ProtobufCBinaryData){m->offers[i].len, (uint8_t *)m->offers[i].json};
    offer_ptrs[i] = &offers[i];
  }
  wa.n_offers = m->n_offers;
  wa.offers = offer_ptrs;
  if (m->has_answer) {
    wa.has_to_peer_id = wa.has_answer = wa.has_offer_id = 1;
    wa.to_peer_id = (ProtobufCBinaryData){20, (uint8_t *)m->to_peer_id};
    wa.answer = (ProtobufCBinaryData){m->answer_len, (uint8_t *)m->answer};
    wa.offer_id = (ProtobufCBinaryData){20, (uint8_t *)m->offer_id};
  }
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_WS_ANNOUNCE;
  msg.ws_announce = &wa;
  syn_req *req = syn_nodes_req(t->opts.nodes, on_announce_reply, NULL);
  if (!req) return -EBUSY;
  announce_ctx *a = (announce_ctx *)req->data;
  *a = (announce_ctx){
      .client = client, .answer = m->has_answer, .stopped = m->event == SYN_WS_EVENT_STOPPED};
  memcpy(a->info_hash, m->info_hash, 20);
  memcpy(a->peer_id, m->peer_id, 20);
  int rc = syn_nodes_send(t->opts.nodes, req, m->info_hash, &msg);
  if (rc == 0 && client) {
    client->refs++;
    client->announces_out++;
  }
  return rc;
}

static void handle_announce(syn_ws_tracker *t, ws_client *c, syn_ws_msg *m) {
  t->stats.announces++;
  const char *refused = t->opts.admit ? t->opts.admit(t->opts.admit_ctx, c->ip, c->ip_len,
                                                      (const uint8_t(*)[20])m->info_hash, 1, false)
                                      : NULL;
  if (refused) {
    send_failure(t, c, refused, "announce", m->info_hash);
    return;
  }
  if (!m->has_answer) {
    int rc = m->event == SYN_WS_EVENT_STOPPED ? 0 : add_pair(c, m->info_hash, m->peer_id);
    if (rc) {
      char why[96];
      snprintf(why, sizeof why, "too many swarms on one socket (at most %u)",
               t->opts.cfg->ws_max_swarms_per_socket);
      send_failure(t, c, rc == -ENOSPC ? why : "out of memory", "announce", m->info_hash);
      return;
    }
    if (m->event == SYN_WS_EVENT_STOPPED) drop_pair(c, m->info_hash, m->peer_id);
  }
  int rc = send_announce(t, c, m);
  if (rc)
    send_failure(
        t, c, rc == -ENODEV ? "no node available, retry later" : "tracker overloaded, retry later",
        "announce", m->info_hash);
}

/* ---- scrape ---- */

static void on_scrape_done(void *ctx, const char *error, const uint8_t *entries, size_t count) {
  ws_client *c = ctx;
  syn_ws_tracker *t = c->t;
  if (error) {
    send_failure(t, c, error, "scrape", NULL);
  } else {
    syn_buf_reset(&t->out);
    if (syn_ws_scrape_reply(&t->out, entries, count) == 0) send_out(t, c);
    syn_buf_reset(&t->out);
  }
  client_unref(c);
}

static void handle_scrape(syn_ws_tracker *t, ws_client *c, const syn_ws_msg *m) {
  t->stats.scrapes++;
  const char *refused = t->opts.admit
                            ? t->opts.admit(t->opts.admit_ctx, c->ip, c->ip_len,
                                            (const uint8_t(*)[20])m->hashes, m->n_hashes, true)
                            : NULL;
  if (refused) {
    send_failure(t, c, refused, "scrape", NULL);
    return;
  }
  c->refs++;
  syn_scrape_call(&t->scraper, (const uint8_t(*)[20])m->hashes, m->n_hashes, on_scrape_done, c);
}

/* ---- server callbacks ---- */

static void on_open(void *ctx, syn_ws_conn *conn) {
  syn_ws_tracker *t = ctx;
  ws_client *c = calloc(1, sizeof *c);
  if (!c) {
    syn_ws_close(conn, 1011, "out of memory");
    return;
  }
  c->t = t;
  c->conn = conn;
  c->refs = 1;
  const uint8_t *ip;
  c->ip_len = syn_ws_conn_ip(conn, &ip);
  memcpy(c->ip_copy, ip, c->ip_len);
  c->ip = c->ip_copy;
  syn_ws_conn_set_data(conn, c);
  t->stats.sockets++;
}

static void on_message(void *ctx, syn_ws_conn *conn, const uint8_t *text, size_t len) {
  syn_ws_tracker *t = ctx;
  ws_client *c = syn_ws_conn_data(conn);
  if (!c) return;
  static syn_ws_msg m; /* loop thread only; about 3 KB */
  char why[128];
  if (syn_ws_parse(text, len, t->opts.cfg->ws_max_offers, &m, why, sizeof why)) {
    const char *action = !m.has_action ? NULL : m.action == SYN_WS_SCRAPE ? "scrape" : "announce";
    send_failure(t, c, why, action, m.has_info_hash ? m.info_hash : NULL);
  } else if (m.action == SYN_WS_ANNOUNCE) {
    handle_announce(t, c, &m);
  } else {
    handle_scrape(t, c, &m);
  }
  syn_ws_msg_free(&m);
}

/* The socket is gone: its peers leave every swarm they announced in. Only once no
 * announce of it is out: the node may serve batches out of order, and an announce
 * applied after the `stopped` would put the peer back until it expired. */
static void on_close(void *ctx, syn_ws_conn *conn) {
  syn_ws_tracker *t = ctx;
  ws_client *c = syn_ws_conn_data(conn);
  if (!c) return;
  c->conn = NULL;
  t->stats.sockets--;
  if (c->announces_out) {
    c->leave_pending = true;
    return;
  }
  leave_swarms(t, c);
  client_unref(c);
}

static void leave_swarms(syn_ws_tracker *t, ws_client *c) {
  for (size_t i = 0; i < c->n_pairs; i++) {
    if (t->stopping) { /* nodes drop a router's peers once it has left */
      peer_release(t, c, c->pairs[i].peer_id);
      continue;
    }
    syn_ws_msg m = {.action = SYN_WS_ANNOUNCE, .event = SYN_WS_EVENT_STOPPED};
    memcpy(m.info_hash, c->pairs[i].info_hash, 20);
    memcpy(m.peer_id, c->pairs[i].peer_id, 20);
    send_announce(t, NULL, &m); /* best effort: an entry not removed expires */
    peer_release(t, c, c->pairs[i].peer_id);
  }
  c->n_pairs = 0;
}

/* ---- lifetime ---- */

syn_ws_tracker *syn_ws_tracker_start(uv_loop_t *loop, const syn_ws_tracker_options *opts, char *err,
                                     size_t err_len) {
  syn_ws_tracker *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  t->loop = loop;
  t->opts = *opts;
  t->scraper = *opts->scraper;
  t->opts.scraper = &t->scraper;
  snprintf(t->router_id, sizeof t->router_id, "%s", opts->router_id ? opts->router_id : "");
  syn_ws_callbacks cb = {on_open, on_message, on_close, t};
  t->srv = syn_ws_listen(loop, opts->cfg, &cb, err, err_len);
  if (!t->srv) {
    free(t);
    return NULL;
  }
  return t;
}

int syn_ws_tracker_reload(syn_ws_tracker *t, char *err, size_t err_len) {
  return t ? syn_ws_reload_tls(t->srv, err, err_len) : 0;
}

void syn_ws_tracker_stats_get(const syn_ws_tracker *t, syn_ws_tracker_stats *out) {
  *out = t->stats;
  if (!t->srv) return;
  syn_ws_stats s;
  syn_ws_stats_get(t->srv, &s);
  out->handshakes_refused = s.refused;
  out->closed_slow += s.closed_slow;
}

void syn_ws_tracker_stop(syn_ws_tracker *t) {
  if (!t || !t->srv) return;
  syn_ws_server_close(t->srv); /* on_close runs for every socket: stopped announces go out */
  t->srv = NULL;
  t->stopping = true;
}

void syn_ws_tracker_free(syn_ws_tracker *t) {
  if (!t) return;
  syn_ws_tracker_stop(t);
  for (size_t b = 0; b < PEER_BUCKETS; b++)
    for (peer_entry *e = t->peers[b], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  syn_buf_free(&t->out);
  free(t);
}
