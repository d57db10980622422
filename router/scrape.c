#include "router/scrape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bencode.h"
#include "common/udp_proto.h"
#include "router/tracker_query.h"

scrape_call *scrape_call_new(const uint8_t (*hashes)[20], size_t count) {
  scrape_call *sc = calloc(1, sizeof *sc);
  if (!sc) return NULL;
  sc->count = count;
  if (count) {
    sc->hashes = malloc(count * 20);
    if (!sc->hashes) {
      free(sc);
      return NULL;
    }
    memcpy(sc->hashes, hashes, count * 20);
  }
  return sc;
}

static void scrape_free(scrape_call *sc) {
  free(sc->hashes);
  syn_buf_free(&sc->entries);
  free(sc);
}

static uint32_t get_be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static const uint8_t *find_entry(const scrape_call *sc, const uint8_t *hash) {
  for (size_t i = 0; i + 32 <= sc->entries.len; i += 32)
    if (!memcmp(sc->entries.data + i, hash, 20)) return sc->entries.data + i;
  return NULL;
}

static void answer_udp(syn_router *r, scrape_call *sc) {
  if (sc->failed) {
    r->counters.failures++;
    syn_udp_send_error(r->udp, &sc->udp_peer, sc->udp_tid, sc->error);
    return;
  }
  uint8_t pkt[8 + 12 * SYN_UDP_MAX_SCRAPE];
  size_t len = syn_udp_build_scrape_header(pkt, sizeof pkt, sc->udp_tid);
  for (size_t i = 0; i < sc->count && len; i++) {
    const uint8_t *e = find_entry(sc, sc->hashes[i]);
    len = syn_udp_put_scrape_entry(pkt, sizeof pkt, len, e ? get_be32(e + 20) : 0,
                                   e ? get_be32(e + 24) : 0, e ? get_be32(e + 28) : 0);
  }
  if (len) syn_udp_send(r->udp, &sc->udp_peer, pkt, len);
}

static void answer_http(syn_router *r, scrape_call *sc) {
  syn_buf *b = &r->scratch;
  syn_buf_reset(b);
  if (sc->failed || syn_scrape_reply(b, sc->entries.data, sc->entries.len / 32)) {
    r->counters.failures++;
    syn_buf_reset(b);
    syn_bencode_failure(b, sc->failed ? sc->error : "out of memory");
  }
  syn_http_respond(sc->slot, 200, "text/plain", b->data, b->len, NULL);
}

static void finish(syn_router *r, scrape_call *sc) {
  if (sc->udp) answer_udp(r, sc);
  else answer_http(r, sc);
  scrape_free(sc);
}

static void fail(scrape_call *sc, const char *why) {
  if (sc->failed) return;
  sc->failed = true;
  snprintf(sc->error, sizeof sc->error, "%s", why);
}

void scrape_part_reply(syn_router *r, pending *p, const Synapse__Reply *rep) {
  scrape_call *sc = p->scrape;
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_SCRAPE) {
    fail(sc, rep->message && *rep->message ? rep->message : "scrape failed");
  } else {
    const ProtobufCBinaryData *e = &rep->scrape->entries;
    if (syn_buf_append(&sc->entries, e->data, e->len - e->len % 32)) fail(sc, "out of memory");
  }
  if (--sc->outstanding == 0) finish(r, sc);
}

static void send_part(syn_router *r, scrape_call *sc, int node, ProtobufCBinaryData *hashes,
                      size_t n) {
  uint64_t id;
  pending *p = syn_router_pending_take(r, PENDING_SCRAPE_PART, &id);
  if (!p) {
    fail(sc, "tracker overloaded, retry later");
    return;
  }
  p->scrape = sc;
  Synapse__ScrapeRequest s = SYNAPSE__SCRAPE_REQUEST__INIT;
  s.n_info_hash = n;
  s.info_hash = hashes;
  s.has_max_full = 1;
  s.max_full = r->cfg->full_scrape_max;
  Synapse__Request req = SYNAPSE__REQUEST__INIT;
  req.id = id;
  req.body_case = SYNAPSE__REQUEST__BODY_SCRAPE;
  req.scrape = &s;
  if (syn_router_submit(r, p, node, &req)) {
    fail(sc, node < 0 ? "no node available, retry later" : "tracker overloaded, retry later");
    return;
  }
  sc->outstanding++;
}

/* Groups the hashes by serving node; one part per node. */
static void send_split(syn_router *r, scrape_call *sc) {
  int *owner = malloc(sc->count * sizeof *owner);
  ProtobufCBinaryData *group = malloc(sc->count * sizeof *group);
  bool *sent = calloc(sc->count, sizeof *sent);
  if (!owner || !group || !sent) {
    fail(sc, "out of memory");
  } else {
    for (size_t i = 0; i < sc->count; i++) owner[i] = syn_cluster_route(r->cluster, sc->hashes[i]);
    for (size_t i = 0; i < sc->count; i++) {
      if (sent[i]) continue;
      size_t n = 0;
      for (size_t j = i; j < sc->count; j++) {
        if (sent[j] || owner[j] != owner[i]) continue;
        group[n++] = (ProtobufCBinaryData){20, sc->hashes[j]};
        sent[j] = true;
      }
      send_part(r, sc, owner[i], group, n);
    }
  }
  free(owner);
  free(group);
  free(sent);
}

void scrape_start(syn_router *r, scrape_call *sc) {
  sc->outstanding = 1; /* held while parts go out, so none can finish the call early */
  if (sc->count) {
    send_split(r, sc);
  } else {
    int slots[SYN_CLUSTER_MAX_NODES];
    size_t n = syn_cluster_fanout(r->cluster, slots, SYN_CLUSTER_MAX_NODES);
    if (n == 0) fail(sc, "no node available, retry later");
    for (size_t i = 0; i < n; i++) send_part(r, sc, slots[i], NULL, 0);
  }
  if (--sc->outstanding == 0) finish(r, sc);
}
