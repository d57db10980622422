/* Split scrapes. A scrape_call lives from the first part sent to the group's completion,
 * which answers the client and frees it. */
#include "router/scrape.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bencode.h"
#include "common/buf.h"
#include "common/udp_proto.h"
#include "router/call_group.h"
#include "router/tracker_query.h"

typedef struct scrape_call {
  syn_scraper s;
  bool udp;
  syn_http_slot *slot;   /* HTTP */
  syn_scrape_done_fn fn; /* another caller */
  void *fn_ctx;
  uint32_t udp_tid;      /* UDP */
  syn_udp_peer udp_peer; /* UDP */
  bool failed;
  char error[160];
  size_t count;          /* hashes asked; 0 = full scrape */
  uint8_t (*hashes)[20]; /* heap, in the order asked */
  syn_buf entries;       /* merged node entries, 32 bytes each */
} scrape_call;

static scrape_call *call_new(const syn_scraper *s, const uint8_t (*hashes)[20], size_t count) {
  scrape_call *sc = calloc(1, sizeof *sc);
  if (!sc) return NULL;
  sc->s = *s;
  sc->count = count;
  if (count && !(sc->hashes = malloc(count * 20))) {
    free(sc);
    return NULL;
  }
  if (count) memcpy(sc->hashes, hashes, count * 20);
  return sc;
}

static void call_free(scrape_call *sc) {
  free(sc->hashes);
  syn_buf_free(&sc->entries);
  free(sc);
}

static void fail(scrape_call *sc, const char *why) {
  if (sc->failed) return;
  sc->failed = true;
  snprintf(sc->error, sizeof sc->error, "%s", why);
}

static uint32_t get_be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static const uint8_t *find_entry(const scrape_call *sc, const uint8_t *hash) {
  for (size_t i = 0; i + 32 <= sc->entries.len; i += 32)
    if (!memcmp(sc->entries.data + i, hash, 20)) return sc->entries.data + i;
  return NULL;
}

static void answer_udp(scrape_call *sc) {
  if (sc->failed) {
    sc->s.counters->failures++;
    syn_udp_send_error(sc->s.udp, &sc->udp_peer, sc->udp_tid, sc->error);
    return;
  }
  uint8_t pkt[8 + 12 * SYN_UDP_MAX_SCRAPE];
  size_t len = syn_udp_build_scrape_header(pkt, sizeof pkt, sc->udp_tid);
  for (size_t i = 0; i < sc->count && len; i++) {
    const uint8_t *e = find_entry(sc, sc->hashes[i]);
    len = syn_udp_put_scrape_entry(pkt, sizeof pkt, len, e ? get_be32(e + 20) : 0,
                                   e ? get_be32(e + 24) : 0, e ? get_be32(e + 28) : 0);
  }
  if (len) syn_udp_send(sc->s.udp, &sc->udp_peer, pkt, len);
}

static void answer_http(scrape_call *sc) {
  syn_buf b = SYN_BUF_INIT;
  if (sc->failed || syn_scrape_reply(&b, sc->entries.data, sc->entries.len / 32)) {
    sc->s.counters->failures++;
    syn_buf_reset(&b);
    syn_bencode_failure(&b, sc->failed ? sc->error : "out of memory");
  }
  syn_http_respond(sc->slot, 200, "text/plain", b.data, b.len, NULL);
  syn_buf_free(&b);
}

static bool on_part(void *ctx, uint32_t tag, int slot, const Synapse__Reply *rep) {
  scrape_call *sc = ctx;
  if (rep->error || rep->body_case != SYNAPSE__REPLY__BODY_SCRAPE) {
    fail(sc, rep->message && *rep->message ? rep->message : "scrape failed");
    return false; /* one part missing spoils the answer: end now */
  }
  const ProtobufCBinaryData *e = &rep->scrape->entries;
  if (syn_buf_append(&sc->entries, e->data, e->len - e->len % 32)) {
    fail(sc, "out of memory");
    return false;
  }
  return true;
}

static void on_done(void *ctx, syn_group_end how, uint32_t parts_out) {
  scrape_call *sc = ctx;
  if (how == SYN_GROUP_TIMED_OUT) fail(sc, "scrape timed out, retry later");
  if (sc->fn)
    sc->fn(sc->fn_ctx, sc->failed ? sc->error : NULL, sc->entries.data, sc->entries.len / 32);
  else if (sc->udp)
    answer_udp(sc);
  else
    answer_http(sc);
  call_free(sc);
}

static void send_part(scrape_call *sc, syn_group *g, int node, ProtobufCBinaryData *hashes,
                      size_t n) {
  Synapse__ScrapeRequest s = SYNAPSE__SCRAPE_REQUEST__INIT;
  s.n_info_hash = n;
  s.info_hash = hashes;
  s.has_max_full = 1;
  s.max_full = sc->s.cfg->full_scrape_max;
  Synapse__Request msg = SYNAPSE__REQUEST__INIT;
  msg.body_case = SYNAPSE__REQUEST__BODY_SCRAPE;
  msg.scrape = &s;
  if (syn_group_send_to(g, node, 0, &msg))
    fail(sc, node < 0 ? "no node available, retry later" : "tracker overloaded, retry later");
}

/* Groups the hashes by serving node; one part per node. */
static void send_split(scrape_call *sc, syn_group *g) {
  int *owner = malloc(sc->count * sizeof *owner);
  ProtobufCBinaryData *group = malloc(sc->count * sizeof *group);
  bool *sent = calloc(sc->count, sizeof *sent);
  if (!owner || !group || !sent) {
    fail(sc, "out of memory");
  } else {
    for (size_t i = 0; i < sc->count; i++) owner[i] = syn_nodes_route(sc->s.nodes, sc->hashes[i]);
    for (size_t i = 0; i < sc->count && !sc->failed; i++) {
      if (sent[i]) continue;
      size_t n = 0;
      for (size_t j = i; j < sc->count; j++) {
        if (sent[j] || owner[j] != owner[i]) continue;
        group[n++] = (ProtobufCBinaryData){20, sc->hashes[j]};
        sent[j] = true;
      }
      send_part(sc, g, owner[i], group, n);
    }
  }
  free(owner);
  free(group);
  free(sent);
}

static void send_full(scrape_call *sc, syn_group *g) {
  int slots[SYN_NODES_MAX];
  size_t n = syn_nodes_fanout(sc->s.nodes, slots, SYN_NODES_MAX);
  if (n == 0) fail(sc, "no node available, retry later");
  for (size_t i = 0; i < n && !sc->failed; i++) send_part(sc, g, slots[i], NULL, 0);
}

static void start(scrape_call *sc) {
  syn_group *g = syn_group_new(sc->s.nodes, sc->s.loop, 0, on_part, on_done, sc);
  if (!g) {
    fail(sc, "out of memory");
    on_done(sc, SYN_GROUP_FINISHED, 0);
    return;
  }
  if (sc->count) send_split(sc, g);
  else send_full(sc, g);
  if (sc->failed) syn_group_finish(g); /* a part could not go out: answer now */
  else syn_group_seal(g);
}

void syn_scrape_http(const syn_scraper *s, const uint8_t (*hashes)[20], size_t count,
                     syn_http_slot *slot) {
  scrape_call *sc = call_new(s, hashes, count);
  if (!sc) {
    syn_buf b = SYN_BUF_INIT;
    syn_bencode_failure(&b, "out of memory");
    syn_http_respond(slot, 200, "text/plain", b.data, b.len, NULL);
    syn_buf_free(&b);
    return;
  }
  sc->slot = slot;
  start(sc);
}

void syn_scrape_udp(const syn_scraper *s, const uint8_t (*hashes)[20], size_t count,
                    uint32_t transaction_id, const syn_udp_peer *to) {
  scrape_call *sc = call_new(s, hashes, count);
  if (!sc) {
    syn_udp_send_error(s->udp, to, transaction_id, "out of memory");
    return;
  }
  sc->udp = true;
  sc->udp_tid = transaction_id;
  sc->udp_peer = *to;
  start(sc);
}

void syn_scrape_call(const syn_scraper *s, const uint8_t (*hashes)[20], size_t count,
                     syn_scrape_done_fn fn, void *ctx) {
  scrape_call *sc = call_new(s, hashes, count);
  if (!sc) {
    fn(ctx, "out of memory", NULL, 0);
    return;
  }
  sc->fn = fn;
  sc->fn_ctx = ctx;
  start(sc);
}
