/* WebSocket peers and signal outboxes (node/ws_peers.h).
 *
 * Layout: a chained hash table of swarms keyed by info_hash, each an array of entries
 * scanned linearly (a swarm holds at most SYN_WS_MAX_SWARM_PEERS, and WebTorrent swarms
 * are small); a fixed table of router slots, each entry naming its router by slot index.
 * A router's slot is freed only after every entry naming it is gone. */
#include "node/ws_peers.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/prng.h"
#include "proto/wire.h"

#define INITIAL_BUCKETS 1024

typedef struct ws_peer {
  uint8_t id[20];
  uint32_t expires;
  uint16_t router;
  uint8_t seed;
} ws_peer;

typedef struct ws_swarm {
  struct ws_swarm *next;
  uint8_t info_hash[20];
  uint32_t count, cap;
  uint32_t downloaded;
  ws_peer *peers;
} ws_swarm;

typedef struct ws_router {
  bool used;
  char id[SYN_WS_ROUTER_ID_MAX + 1];
  uint64_t boot;
  uint64_t entries;     /* swarm entries naming this slot */
  uint32_t last_active; /* s: its last announce or poll */
  void *parked;
  uint64_t parked_at_ms;
  syn_buf outbox; /* encoded WsPush body: repeated field 1 */
  uint64_t dropped;
} ws_router;

struct syn_ws_peers {
  pthread_mutex_t mu;
  ws_swarm **buckets;
  size_t bucket_count; /* a power of two */
  size_t swarms;
  size_t peers, max_peers;
  size_t expire_cursor;
  uint32_t timeout;
  uint64_t rng;
  uint64_t offers_sent, answers_sent, signals_dropped;
  ws_router routers[SYN_WS_MAX_ROUTERS];
};

static size_t bucket_of(const syn_ws_peers *p, const uint8_t hash[20]) {
  uint64_t h;
  memcpy(&h, hash, sizeof h); /* info_hashes are SHA-1 or SHA-256 outputs: already spread */
  return (size_t)h & (p->bucket_count - 1);
}

syn_ws_peers *syn_ws_peers_new(uint32_t peer_timeout_s, size_t max_peers) {
  syn_ws_peers *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->buckets = calloc(INITIAL_BUCKETS, sizeof *p->buckets);
  if (!p->buckets) {
    free(p);
    return NULL;
  }
  p->bucket_count = INITIAL_BUCKETS;
  p->timeout = peer_timeout_s;
  p->max_peers = max_peers;
  randombytes_buf(&p->rng, sizeof p->rng);
  p->rng |= 1;
  pthread_mutex_init(&p->mu, NULL);
  return p;
}

void syn_ws_peers_free(syn_ws_peers *p) {
  if (!p) return;
  for (size_t b = 0; b < p->bucket_count; b++) {
    for (ws_swarm *s = p->buckets[b], *next; s; s = next) {
      next = s->next;
      free(s->peers);
      free(s);
    }
  }
  for (size_t i = 0; i < SYN_WS_MAX_ROUTERS; i++) syn_buf_free(&p->routers[i].outbox);
  free(p->buckets);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

static ws_swarm *find_swarm(syn_ws_peers *p, const uint8_t hash[20]) {
  for (ws_swarm *s = p->buckets[bucket_of(p, hash)]; s; s = s->next)
    if (memcmp(s->info_hash, hash, 20) == 0) return s;
  return NULL;
}

static void grow_table(syn_ws_peers *p) {
  size_t n = p->bucket_count * 2;
  ws_swarm **nb = calloc(n, sizeof *nb);
  if (!nb) return; /* longer chains, still correct */
  ws_swarm **old = p->buckets;
  size_t old_n = p->bucket_count;
  p->buckets = nb;
  p->bucket_count = n;
  for (size_t b = 0; b < old_n; b++) {
    for (ws_swarm *s = old[b], *next; s; s = next) {
      next = s->next;
      size_t i = bucket_of(p, s->info_hash);
      s->next = nb[i];
      nb[i] = s;
    }
  }
  free(old);
  p->expire_cursor = 0;
}

static ws_swarm *get_swarm(syn_ws_peers *p, const uint8_t hash[20]) {
  ws_swarm *s = find_swarm(p, hash);
  if (s) return s;
  s = calloc(1, sizeof *s);
  if (!s) return NULL;
  memcpy(s->info_hash, hash, 20);
  size_t b = bucket_of(p, hash);
  s->next = p->buckets[b];
  p->buckets[b] = s;
  if (++p->swarms > p->bucket_count) grow_table(p);
  return s;
}

static void unlink_swarm(syn_ws_peers *p, ws_swarm *s) {
  ws_swarm **pp = &p->buckets[bucket_of(p, s->info_hash)];
  while (*pp != s) pp = &(*pp)->next;
  *pp = s->next;
  free(s->peers);
  free(s);
  p->swarms--;
}

static void release_slot(syn_ws_peers *p, uint16_t slot) {
  ws_router *r = &p->routers[slot];
  if (r->entries) r->entries--;
}

static void remove_at(syn_ws_peers *p, ws_swarm *s, uint32_t i) {
  release_slot(p, s->peers[i].router);
  s->peers[i] = s->peers[--s->count];
  p->peers--;
}

static int find_peer(const ws_swarm *s, const uint8_t id[20]) {
  for (uint32_t i = 0; i < s->count; i++)
    if (memcmp(s->peers[i].id, id, 20) == 0) return (int)i;
  return -1;
}

/* Drops every entry of router slot `slot`, and its outbox. */
static void purge_slot(syn_ws_peers *p, int slot) {
  ws_router *r = &p->routers[slot];
  for (size_t b = 0; r->entries && b < p->bucket_count; b++) {
    for (ws_swarm *s = p->buckets[b], *next; s; s = next) {
      next = s->next;
      for (uint32_t i = 0; i < s->count;)
        if (s->peers[i].router == slot)
          remove_at(p, s, i);
        else
          i++;
      if (s->count == 0 && s->downloaded == 0) unlink_swarm(p, s);
    }
  }
  r->entries = 0;
  syn_buf_reset(&r->outbox);
}

static int find_router(const syn_ws_peers *p, const char *id) {
  for (int i = 0; i < SYN_WS_MAX_ROUTERS; i++)
    if (p->routers[i].used && strcmp(p->routers[i].id, id) == 0) return i;
  return -1;
}

/* The slot of (id, boot), taken or renewed; -1 when the table is full or id too long. A
 * new boot drops what the router's previous process held. */
static int router_slot(syn_ws_peers *p, const char *id, uint64_t boot, uint32_t now) {
  if (strlen(id) > SYN_WS_ROUTER_ID_MAX) return -1;
  int slot = find_router(p, id);
  if (slot >= 0) {
    if (p->routers[slot].boot != boot) {
      purge_slot(p, slot);
      p->routers[slot].boot = boot;
    }
    p->routers[slot].last_active = now;
    return slot;
  }
  for (int i = 0; i < SYN_WS_MAX_ROUTERS; i++) {
    ws_router *r = &p->routers[i];
    if (r->used || r->entries) continue;
    r->used = true;
    strcpy(r->id, id);
    r->boot = boot;
    r->last_active = now;
    r->parked = NULL;
    r->dropped = 0;
    syn_buf_reset(&r->outbox);
    return i;
  }
  return -1;
}

static bool valid_request(const Synapse__WsAnnounceRequest *req) {
  if (req->info_hash.len != 20 || req->peer_id.len != 20) return false;
  if (req->n_offers > SYN_WS_MAX_OFFERS) return false;
  for (size_t i = 0; i < req->n_offers; i++)
    if (req->offers[i]->offer_id.len != 20) return false;
  if (req->has_answer && (!req->has_to_peer_id || req->to_peer_id.len != 20 || !req->has_offer_id ||
                          req->offer_id.len != 20))
    return false;
  return true;
}

/* Queues one signal for router slot `slot`; false when its outbox is full. */
static bool queue_signal(syn_ws_peers *p, int slot, const Synapse__WsAnnounceRequest *req,
                         const uint8_t to[20], int offer) {
  ws_router *r = &p->routers[slot];
  Synapse__WsSignal sig = SYNAPSE__WS_SIGNAL__INIT;
  sig.info_hash = req->info_hash;
  sig.to_peer_id.data = (uint8_t *)to;
  sig.to_peer_id.len = 20;
  sig.from_peer_id = req->peer_id;
  if (offer >= 0) {
    sig.offer_id = req->offers[offer]->offer_id;
    sig.has_offer = 1;
    sig.offer = req->offers[offer]->offer;
  } else {
    sig.offer_id = req->offer_id;
    sig.has_answer = 1;
    sig.answer = req->answer;
  }
  size_t need = synapse__ws_signal__get_packed_size(&sig) + 8;
  if (r->outbox.len + need > SYN_WS_OUTBOX_BYTES || syn_wire_append_field1(&r->outbox, &sig.base)) {
    r->dropped++;
    p->signals_dropped++;
    return false;
  }
  return true;
}

static void add_wake(syn_ws_announce_result *out, int slot) {
  for (size_t i = 0; i < out->wake_count; i++)
    if (out->wake[i] == slot) return;
  out->wake[out->wake_count++] = slot;
}

/* Routes one signal to the router holding `to`: back in the reply, or to an outbox. */
static void route_signal(syn_ws_peers *p, int origin, const Synapse__WsAnnounceRequest *req,
                         const ws_peer *to, int offer, syn_ws_local *local,
                         syn_ws_announce_result *out) {
  if (to->router == origin) {
    memcpy(local[out->local_count].to_peer_id, to->id, 20);
    local[out->local_count++].offer = offer;
  } else if (queue_signal(p, to->router, req, to->id, offer)) {
    add_wake(out, to->router);
  } else {
    return;
  }
  if (offer >= 0)
    out->offers_sent++, p->offers_sent++;
  else
    p->answers_sent++;
}

/* Hands each offer to a different other live peer, leechers only when the sender seeds. */
static void hand_out_offers(syn_ws_peers *p, ws_swarm *s, int origin,
                            const Synapse__WsAnnounceRequest *req, bool seed, uint32_t now,
                            syn_ws_local *local, syn_ws_announce_result *out) {
  uint32_t candidates[SYN_WS_MAX_SWARM_PEERS];
  uint32_t n = 0;
  for (uint32_t i = 0; i < s->count; i++) {
    const ws_peer *e = &s->peers[i];
    if (e->expires < now || memcmp(e->id, req->peer_id.data, 20) == 0) continue;
    if (seed && e->seed) continue;
    candidates[n++] = i;
  }
  for (size_t k = 0; k < req->n_offers && n > 0; k++) {
    uint32_t j = syn_prng_below(&p->rng, n);
    route_signal(p, origin, req, &s->peers[candidates[j]], (int)k, local, out);
    candidates[j] = candidates[--n]; /* each receiver gets one offer */
  }
}

static void count_swarm(const ws_swarm *s, uint32_t now, syn_scrape_result *out) {
  memset(out, 0, sizeof *out);
  if (!s) return;
  for (uint32_t i = 0; i < s->count; i++) {
    if (s->peers[i].expires < now) continue;
    if (s->peers[i].seed)
      out->complete++;
    else
      out->incomplete++;
  }
  out->downloaded = s->downloaded;
}

/* Adds or refreshes the announcing peer; -ENOSPC or -ENOMEM when it cannot be stored. */
static int upsert_peer(syn_ws_peers *p, ws_swarm *s, int slot,
                       const Synapse__WsAnnounceRequest *req, bool seed, uint32_t now) {
  int i = find_peer(s, req->peer_id.data);
  if (i < 0) {
    if (s->count >= SYN_WS_MAX_SWARM_PEERS || p->peers >= p->max_peers) return -ENOSPC;
    if (s->count == s->cap) {
      uint32_t cap = s->cap ? s->cap * 2 : 4;
      ws_peer *np = realloc(s->peers, (size_t)cap * sizeof *np);
      if (!np) return -ENOMEM;
      s->peers = np;
      s->cap = cap;
    }
    i = (int)s->count++;
    memcpy(s->peers[i].id, req->peer_id.data, 20);
    s->peers[i].router = (uint16_t)slot;
    p->routers[slot].entries++;
    p->peers++;
  } else if (s->peers[i].router != slot) {
    release_slot(p, s->peers[i].router); /* the peer moved to another router */
    s->peers[i].router = (uint16_t)slot;
    p->routers[slot].entries++;
  }
  s->peers[i].seed = seed;
  s->peers[i].expires = now + p->timeout;
  return 0;
}

static int announce_locked(syn_ws_peers *p, const Synapse__WsAnnounceRequest *req, uint32_t now,
                           syn_ws_local *local, syn_ws_announce_result *out) {
  int origin = router_slot(p, req->router, req->boot, now);
  if (origin < 0) return -ENOSPC;
  ws_swarm *s = find_swarm(p, req->info_hash.data);
  bool seed = req->has_left && req->left == 0;
  if (req->has_answer) { /* an answer changes nothing about the answerer */
    int to = s ? find_peer(s, req->to_peer_id.data) : -1;
    if (to >= 0 && s->peers[to].expires >= now)
      route_signal(p, origin, req, &s->peers[to], -1, local, out);
    else
      p->signals_dropped++;
    count_swarm(s, now, &out->ws);
    return 0;
  }
  if (req->event == SYNAPSE__EVENT__EVENT_STOPPED) {
    int i = s ? find_peer(s, req->peer_id.data) : -1;
    if (i >= 0) remove_at(p, s, (uint32_t)i);
    count_swarm(s, now, &out->ws);
    if (s && s->count == 0 && s->downloaded == 0) unlink_swarm(p, s);
    return 0;
  }
  if (!s && !(s = get_swarm(p, req->info_hash.data))) return -ENOMEM;
  int rc = upsert_peer(p, s, origin, req, seed, now);
  if (rc == 0 && req->event == SYNAPSE__EVENT__EVENT_COMPLETED) s->downloaded++;
  if (rc == 0) hand_out_offers(p, s, origin, req, seed, now, local, out);
  count_swarm(s, now, &out->ws);
  if (s->count == 0 && s->downloaded == 0) unlink_swarm(p, s);
  return rc;
}

int syn_ws_peers_announce(syn_ws_peers *p, const Synapse__WsAnnounceRequest *req, uint32_t now,
                          syn_ws_local *local, syn_ws_announce_result *out) {
  memset(out, 0, sizeof *out);
  if (!valid_request(req)) return -EINVAL;
  pthread_mutex_lock(&p->mu);
  int rc = announce_locked(p, req, now, local, out);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void syn_ws_peers_figures(syn_ws_peers *p, const uint8_t info_hash[20], uint32_t now,
                          syn_scrape_result *out) {
  pthread_mutex_lock(&p->mu);
  count_swarm(find_swarm(p, info_hash), now, out);
  pthread_mutex_unlock(&p->mu);
}

void syn_ws_peers_add_figures(syn_ws_peers *p, const uint8_t info_hash[20], uint32_t now,
                              syn_scrape_result *r) {
  if (!p) return;
  syn_scrape_result ws;
  syn_ws_peers_figures(p, info_hash, now, &ws);
  r->complete += ws.complete;
  r->incomplete += ws.incomplete;
  r->downloaded += ws.downloaded;
}

/* Moves a slot's outbox into *out (which is reset first). */
static void take_outbox(ws_router *r, syn_buf *out) {
  syn_buf_reset(out);
  syn_buf tmp = *out;
  *out = r->outbox;
  r->outbox = tmp;
}

int syn_ws_peers_poll(syn_ws_peers *p, const char *router, uint64_t boot, void *parked,
                      uint64_t now_ms, syn_buf *out, void **replaced) {
  *replaced = NULL;
  pthread_mutex_lock(&p->mu);
  int slot = router_slot(p, router, boot, (uint32_t)(now_ms / 1000));
  int rc;
  if (slot < 0) {
    rc = -ENOSPC;
  } else if (p->routers[slot].outbox.len) {
    take_outbox(&p->routers[slot], out);
    rc = 0;
  } else {
    *replaced = p->routers[slot].parked;
    p->routers[slot].parked = parked;
    p->routers[slot].parked_at_ms = now_ms;
    rc = 1;
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void *syn_ws_peers_collect(syn_ws_peers *p, int slot, syn_buf *out) {
  if (slot < 0 || slot >= SYN_WS_MAX_ROUTERS) return NULL;
  pthread_mutex_lock(&p->mu);
  ws_router *r = &p->routers[slot];
  void *parked = r->parked;
  if (parked && r->outbox.len) {
    r->parked = NULL;
    take_outbox(r, out);
  } else {
    parked = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  return parked;
}

void *syn_ws_peers_stale_poll(syn_ws_peers *p, uint64_t now_ms, uint64_t max_age_ms) {
  void *parked = NULL;
  pthread_mutex_lock(&p->mu);
  for (int i = 0; i < SYN_WS_MAX_ROUTERS && !parked; i++) {
    ws_router *r = &p->routers[i];
    /* now_ms may predate a poll parked after the caller read its clock: not stale */
    if (!r->parked || now_ms < r->parked_at_ms || now_ms - r->parked_at_ms < max_age_ms) continue;
    parked = r->parked;
    r->parked = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  return parked;
}

static void *free_slot(syn_ws_peers *p, int slot) {
  ws_router *r = &p->routers[slot];
  purge_slot(p, slot);
  void *parked = r->parked;
  r->parked = NULL;
  r->used = false;
  return parked;
}

void *syn_ws_peers_drop_router(syn_ws_peers *p, const char *router) {
  pthread_mutex_lock(&p->mu);
  int slot = find_router(p, router);
  void *parked = slot >= 0 ? free_slot(p, slot) : NULL;
  pthread_mutex_unlock(&p->mu);
  return parked;
}

int syn_ws_peers_drop_idle(syn_ws_peers *p, uint32_t now, uint32_t idle_s) {
  int dropped = 0;
  pthread_mutex_lock(&p->mu);
  for (int i = 0; i < SYN_WS_MAX_ROUTERS; i++) {
    ws_router *r = &p->routers[i];
    if (!r->used || r->parked || now < r->last_active || now - r->last_active < idle_s) continue;
    free_slot(p, i);
    dropped++;
  }
  pthread_mutex_unlock(&p->mu);
  return dropped;
}

size_t syn_ws_peers_routers(syn_ws_peers *p, char (*ids)[SYN_WS_ROUTER_ID_MAX + 1], size_t cap) {
  size_t n = 0;
  pthread_mutex_lock(&p->mu);
  for (int i = 0; i < SYN_WS_MAX_ROUTERS && n < cap; i++)
    if (p->routers[i].used) strcpy(ids[n++], p->routers[i].id);
  pthread_mutex_unlock(&p->mu);
  return n;
}

size_t syn_ws_peers_export(syn_ws_peers *p, uint32_t now, size_t max, syn_ws_wants_fn wants,
                           syn_ws_emit_fn emit, void *ctx) {
  size_t n = 0;
  pthread_mutex_lock(&p->mu);
  for (size_t b = 0; b < p->bucket_count && n < max; b++) {
    for (ws_swarm *s = p->buckets[b]; s && n < max; s = s->next) {
      if (!wants(ctx, s->info_hash)) continue;
      for (uint32_t i = 0; i < s->count && n < max; i++) {
        const ws_peer *e = &s->peers[i];
        if (e->expires < now) continue;
        const ws_router *r = &p->routers[e->router];
        emit(ctx, s->info_hash, e->id, r->id, r->boot, e->seed);
        n++;
      }
    }
  }
  pthread_mutex_unlock(&p->mu);
  return n;
}

void syn_ws_peers_expire_step(syn_ws_peers *p, uint32_t now, size_t budget) {
  pthread_mutex_lock(&p->mu);
  for (size_t k = 0; k < budget && p->swarms; k++) {
    size_t b = p->expire_cursor++ & (p->bucket_count - 1);
    for (ws_swarm *s = p->buckets[b], *next; s; s = next) {
      next = s->next;
      for (uint32_t i = 0; i < s->count;)
        if (s->peers[i].expires < now)
          remove_at(p, s, i);
        else
          i++;
      if (s->count == 0) unlink_swarm(p, s); /* its downloaded count goes with it */
    }
  }
  pthread_mutex_unlock(&p->mu);
}

void syn_ws_peers_stats(syn_ws_peers *p, syn_ws_stats *out) {
  pthread_mutex_lock(&p->mu);
  out->swarms = p->swarms;
  out->peers = p->peers;
  out->routers = 0;
  for (int i = 0; i < SYN_WS_MAX_ROUTERS; i++) out->routers += p->routers[i].used;
  out->offers_sent = p->offers_sent;
  out->answers_sent = p->answers_sent;
  out->signals_dropped = p->signals_dropped;
  pthread_mutex_unlock(&p->mu);
}
