/* The WebTorrent tracker protocol's messages (as npm bittorrent-tracker's client and server
 * speak them), parsed and built: pure functions, no I/O.
 *
 * Hashes and ids travel as "binary strings": JavaScript strings whose code units are the
 * bytes, so in JSON each byte is one code point U+0000..U+00FF (UTF-8 on the wire). An
 * offer or answer is any JSON value (an RTCSessionDescription as {type, sdp}); it is kept
 * as compact JSON text, bounded by the message limit, and handed on unchanged. */
#ifndef SYN_ROUTER_WS_JSON_H
#define SYN_ROUTER_WS_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define SYN_WS_MAX_MSG_OFFERS 64 /* the configured max_offers is at most this */
#define SYN_WS_MAX_SCRAPE 64     /* info_hashes in one scrape */

enum syn_ws_action { SYN_WS_ANNOUNCE, SYN_WS_SCRAPE };
enum syn_ws_event {
  SYN_WS_EVENT_NONE,
  SYN_WS_EVENT_STARTED,
  SYN_WS_EVENT_COMPLETED,
  SYN_WS_EVENT_STOPPED
};

typedef struct syn_ws_offer {
  uint8_t offer_id[20];
  char *json; /* compact JSON text, owned */
  size_t len;
} syn_ws_offer;

typedef struct syn_ws_msg {
  enum syn_ws_action action;
  bool has_action;    /* the action was one of the two (a failure reply names it) */
  bool has_info_hash; /* for the failure reply's info_hash, set as soon as it parsed */
  uint8_t info_hash[20];
  uint8_t peer_id[20];
  enum syn_ws_event event;
  bool has_left;
  uint64_t left;
  size_t n_offers;
  syn_ws_offer offers[SYN_WS_MAX_MSG_OFFERS];
  bool has_answer; /* an answer to to_peer_id's offer offer_id */
  uint8_t to_peer_id[20];
  uint8_t offer_id[20];
  char *answer; /* compact JSON text, owned */
  size_t answer_len;
  size_t n_hashes; /* scrape */
  uint8_t hashes[SYN_WS_MAX_SCRAPE][20];
} syn_ws_msg;

/* Decodes a binary string of exactly `n` bytes. 0, or -1 (not a string, a code point
 * above U+00FF, another length). */
int syn_ws_binstr_get(const json_t *s, uint8_t *out, size_t n);
/* A new JSON string holding the bytes as a binary string; NULL on out of memory. */
json_t *syn_ws_binstr_new(const uint8_t *b, size_t n);

/* Parses one client message. 0; -1 with the failure reason for the client in `why` (the
 * action and info_hash parsed so far stay in *out for the reply). max_offers: offers
 * allowed in one announce (at most SYN_WS_MAX_MSG_OFFERS). Free with syn_ws_msg_free
 * either way. */
int syn_ws_parse(const uint8_t *text, size_t len, uint32_t max_offers, syn_ws_msg *out, char *why,
                 size_t why_len);
void syn_ws_msg_free(syn_ws_msg *m);

/* Builders: each appends one message's JSON text to `out`; 0 or -1 (out of memory, or a
 * signal whose offer/answer text is not JSON). */
int syn_ws_announce_reply(syn_buf *out, const uint8_t info_hash[20], uint32_t interval,
                          uint32_t complete, uint32_t incomplete);
/* An offer (is_answer false) or answer from from_peer_id, carried as JSON text. */
int syn_ws_signal(syn_buf *out, const uint8_t info_hash[20], const uint8_t from_peer_id[20],
                  const uint8_t offer_id[20], bool is_answer, const uint8_t *json, size_t len);
/* entries: 32 bytes each (info_hash, then complete, downloaded, incomplete big-endian). */
int syn_ws_scrape_reply(syn_buf *out, const uint8_t *entries, size_t count);
/* {"failure reason": why, "action"?, "info_hash"?}; action/info_hash NULL to leave out. */
int syn_ws_failure(syn_buf *out, const char *why, const char *action, const uint8_t *info_hash);

#endif
