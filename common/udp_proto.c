/* BEP 15 packet codec, with BEP 41 announce options.
 *
 * Requests (all big-endian):
 *   connect   0 protocol_id u64 | 8 action u32 | 12 transaction_id u32            = 16
 *   announce  0 connection_id u64 | 8 action | 12 tid | 16 info_hash[20] | 36 peer_id[20]
 *             | 56 downloaded u64 | 64 left u64 | 72 uploaded u64 | 80 event u32
 *             | 84 ip u32 | 88 key u32 | 92 num_want i32 | 96 port u16           = 98
 *             then BEP 41 options
 *   scrape    0 connection_id | 8 action | 12 tid | 16 info_hash[20] * N, 1 <= N <= 74
 * Replies: connect (action, tid, connection_id); announce (action, tid, interval, leechers,
 * seeders, peers); scrape (action, tid, then seeders, completed, leechers per hash); error
 * (action 3, tid, message).
 *
 * Every read is preceded by a length check against these offsets; nothing is read from
 * `pkt` beyond `len`, and nothing is written to `out` beyond `cap`. */
#include "common/udp_proto.h"

#include <string.h>

#define HEADER_LEN 16
#define REPLY_HEADER_LEN 8
#define ANNOUNCE_REPLY_FIXED 20
#define SCRAPE_ENTRY_LEN 12
#define HASH_LEN 20

enum bep41_option { OPT_END = 0, OPT_NOP = 1, OPT_URL_DATA = 2 };

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}

/* Walks BEP 41 options in opt[0..len). Malformed input ends the walk but keeps every URL
 * chunk completed before it: options are advisory, and the announce itself is valid.
 * Unknown types also end it, since their length encoding is not ours to guess. */
static void parse_options(const uint8_t *opt, size_t len, syn_udp_request *out) {
  size_t i = 0;
  while (i < len) {
    uint8_t type = opt[i++];
    if (type == OPT_NOP) continue;
    if (type != OPT_URL_DATA) return; /* OPT_END or unknown. */
    if (i >= len) return;             /* Missing length byte. */
    size_t chunk = opt[i++];
    if (chunk > len - i) return; /* Runs past the packet. */
    if (chunk > SYN_UDP_MAX_URL_DATA - out->url_data_len) return;
    memcpy(out->url_data + out->url_data_len, opt + i, chunk);
    out->url_data_len += chunk;
    i += chunk;
  }
}

static int parse_announce(const uint8_t *pkt, size_t len, syn_udp_request *out) {
  if (len < SYN_UDP_ANNOUNCE_LEN) return SYN_UDP_ERR_SHORT;
  memcpy(out->info_hash, pkt + 16, HASH_LEN);
  memcpy(out->peer_id, pkt + 36, HASH_LEN);
  out->downloaded = get64(pkt + 56);
  out->left = get64(pkt + 64);
  out->uploaded = get64(pkt + 72);
  out->event = get32(pkt + 80);
  if (out->event > 3) out->event = 0; /* Unknown events read as a regular announce. */
  out->ip = get32(pkt + 84);
  out->key = get32(pkt + 88);
  out->num_want = (int32_t)get32(pkt + 92);
  out->port = get16(pkt + 96);
  parse_options(pkt + SYN_UDP_ANNOUNCE_LEN, len - SYN_UDP_ANNOUNCE_LEN, out);
  return 0;
}

static int parse_scrape(const uint8_t *pkt, size_t len, syn_udp_request *out) {
  size_t body = len - HEADER_LEN;
  /* A trailing partial hash means the client and we disagree on the layout: refuse it
   * rather than answer for fewer hashes than it asked about. */
  if (body == 0 || body % HASH_LEN != 0) return SYN_UDP_ERR_SCRAPE_COUNT;
  if (body / HASH_LEN > SYN_UDP_MAX_SCRAPE) return SYN_UDP_ERR_SCRAPE_COUNT;
  out->scrape_hashes = pkt + HEADER_LEN;
  out->scrape_count = body / HASH_LEN;
  return 0;
}

int syn_udp_parse(const uint8_t *pkt, size_t len, syn_udp_request *out) {
  /* Clear everything but the URL buffer, which url_data_len = 0 already empties. */
  memset(out, 0, offsetof(syn_udp_request, url_data));
  if (len < HEADER_LEN) return SYN_UDP_ERR_SHORT;
  out->connection_id = get64(pkt);
  out->action = get32(pkt + 8);
  out->transaction_id = get32(pkt + 12);
  switch (out->action) {
    case SYN_UDP_CONNECT:
      return out->connection_id == SYN_UDP_PROTOCOL_ID ? 0 : SYN_UDP_ERR_PROTOCOL_ID;
    case SYN_UDP_ANNOUNCE: return parse_announce(pkt, len, out);
    case SYN_UDP_SCRAPE: return parse_scrape(pkt, len, out);
    default: return SYN_UDP_ERR_ACTION;
  }
}

static void put_reply_header(uint8_t *out, uint32_t action, uint32_t transaction_id) {
  put32(out, action);
  put32(out + 4, transaction_id);
}

size_t syn_udp_build_connect(uint8_t *out, size_t cap, uint32_t transaction_id,
                             uint64_t connection_id) {
  if (cap < SYN_UDP_CONNECT_LEN) return 0;
  put_reply_header(out, SYN_UDP_CONNECT, transaction_id);
  put64(out + 8, connection_id);
  return SYN_UDP_CONNECT_LEN;
}

size_t syn_udp_build_announce(uint8_t *out, size_t cap, uint32_t transaction_id, uint32_t interval,
                              uint32_t leechers, uint32_t seeders, const uint8_t *peers,
                              size_t peers_len) {
  if (cap < ANNOUNCE_REPLY_FIXED || peers_len > cap - ANNOUNCE_REPLY_FIXED) return 0;
  put_reply_header(out, SYN_UDP_ANNOUNCE, transaction_id);
  put32(out + 8, interval);
  put32(out + 12, leechers);
  put32(out + 16, seeders);
  if (peers_len) memcpy(out + ANNOUNCE_REPLY_FIXED, peers, peers_len);
  return ANNOUNCE_REPLY_FIXED + peers_len;
}

size_t syn_udp_build_scrape_header(uint8_t *out, size_t cap, uint32_t transaction_id) {
  if (cap < REPLY_HEADER_LEN) return 0;
  put_reply_header(out, SYN_UDP_SCRAPE, transaction_id);
  return REPLY_HEADER_LEN;
}

size_t syn_udp_put_scrape_entry(uint8_t *out, size_t cap, size_t offset, uint32_t seeders,
                                uint32_t completed, uint32_t leechers) {
  if (offset > cap || cap - offset < SCRAPE_ENTRY_LEN) return 0;
  put32(out + offset, seeders);
  put32(out + offset + 4, completed);
  put32(out + offset + 8, leechers);
  return offset + SCRAPE_ENTRY_LEN;
}

size_t syn_udp_build_error(uint8_t *out, size_t cap, uint32_t transaction_id, const char *message) {
  size_t msg_len = strlen(message);
  if (cap < REPLY_HEADER_LEN || msg_len > cap - REPLY_HEADER_LEN) return 0;
  put_reply_header(out, SYN_UDP_ERROR, transaction_id);
  memcpy(out + REPLY_HEADER_LEN, message, msg_len);
  return REPLY_HEADER_LEN + msg_len;
}
