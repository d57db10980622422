/* WebTorrent messages (router/ws_json.h). */
#include "router/ws_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int syn_ws_binstr_get(const json_t *s, uint8_t *out, size_t n) {
  if (!json_is_string(s)) return -1;
  const unsigned char *p = (const unsigned char *)json_string_value(s);
  size_t len = json_string_length(s), k = 0;
  for (size_t i = 0; i < len; k++) {
    if (k == n) return -1;
    if (p[i] < 0x80) {
      out[k] = p[i++];
    } else if ((p[i] == 0xC2 || p[i] == 0xC3) && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
      out[k] = (uint8_t)((p[i] & 0x1F) << 6 | (p[i + 1] & 0x3F)); /* U+0080..U+00FF */
      i += 2;
    } else {
      return -1; /* above U+00FF: not a byte */
    }
  }
  return k == n ? 0 : -1;
}

json_t *syn_ws_binstr_new(const uint8_t *b, size_t n) {
  char buf[2 * 64];
  if (n > 64) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (b[i] < 0x80) {
      buf[k++] = (char)b[i];
    } else {
      buf[k++] = (char)(0xC0 | b[i] >> 6);
      buf[k++] = (char)(0x80 | (b[i] & 0x3F));
    }
  }
  return json_stringn(buf, k);
}

static int fail(char *why, size_t why_len, const char *msg) {
  snprintf(why, why_len, "%s", msg);
  return -1;
}

/* Compact JSON text of any value, owned by the caller. */
static char *value_text(const json_t *v, size_t *len) {
  char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (t) *len = strlen(t);
  return t;
}

static int parse_event(const json_t *ev, enum syn_ws_event *out) {
  *out = SYN_WS_EVENT_NONE;
  if (!ev || json_is_null(ev)) return 0;
  if (!json_is_string(ev)) return -1;
  const char *s = json_string_value(ev);
  if (!strcmp(s, "started"))
    *out = SYN_WS_EVENT_STARTED;
  else if (!strcmp(s, "completed"))
    *out = SYN_WS_EVENT_COMPLETED;
  else if (!strcmp(s, "stopped"))
    *out = SYN_WS_EVENT_STOPPED;
  else if (strcmp(s, "") && strcmp(s, "update") && strcmp(s, "empty"))
    return -1;
  return 0;
}

/* `left` as a number or a numeric string; anything else leaves it unknown (a leecher). */
static void parse_left(const json_t *v, syn_ws_msg *m) {
  double d = NAN;
  if (json_is_number(v))
    d = json_number_value(v);
  else if (json_is_string(v)) {
    char *end;
    d = strtod(json_string_value(v), &end);
    if (*end || end == json_string_value(v)) d = NAN; /* "" is no number either */
  }
  if (isfinite(d) && d >= 0 && d < 1.8e19) {
    m->has_left = true;
    m->left = (uint64_t)d;
  }
}

static int parse_offers(const json_t *offers, uint32_t max_offers, syn_ws_msg *m, char *why,
                        size_t why_len) {
  if (!offers || json_is_null(offers)) return 0;
  if (!json_is_array(offers)) return fail(why, why_len, "offers must be an array");
  if (json_array_size(offers) > max_offers || json_array_size(offers) > SYN_WS_MAX_MSG_OFFERS) {
    snprintf(why, why_len, "too many offers (at most %u)", max_offers);
    return -1;
  }
  size_t i;
  json_t *o;
  json_array_foreach(offers, i, o) {
    syn_ws_offer *off = &m->offers[m->n_offers];
    const json_t *sdp = json_object_get(o, "offer");
    if (!json_is_object(o) || !sdp ||
        syn_ws_binstr_get(json_object_get(o, "offer_id"), off->offer_id, 20))
      return fail(why, why_len, "invalid offer: needs offer and a 20-byte offer_id");
    if (!(off->json = value_text(sdp, &off->len))) return fail(why, why_len, "out of memory");
    m->n_offers++;
  }
  return 0;
}

static int parse_announce(const json_t *root, uint32_t max_offers, syn_ws_msg *m, char *why,
                          size_t why_len) {
  if (syn_ws_binstr_get(json_object_get(root, "info_hash"), m->info_hash, 20))
    return fail(why, why_len, "invalid info_hash");
  m->has_info_hash = true;
  if (syn_ws_binstr_get(json_object_get(root, "peer_id"), m->peer_id, 20))
    return fail(why, why_len, "invalid peer_id");
  const json_t *answer = json_object_get(root, "answer");
  if (answer && !json_is_null(answer)) {
    if (syn_ws_binstr_get(json_object_get(root, "to_peer_id"), m->to_peer_id, 20))
      return fail(why, why_len, "invalid `to_peer_id` (required with `answer`)");
    if (syn_ws_binstr_get(json_object_get(root, "offer_id"), m->offer_id, 20))
      return fail(why, why_len, "invalid `offer_id` (required with `answer`)");
    if (!(m->answer = value_text(answer, &m->answer_len)))
      return fail(why, why_len, "out of memory");
    m->has_answer = true;
    return 0; /* an answer is only handed on */
  }
  if (parse_event(json_object_get(root, "event"), &m->event))
    return fail(why, why_len, "invalid event");
  parse_left(json_object_get(root, "left"), m);
  if (m->event == SYN_WS_EVENT_STOPPED || m->event == SYN_WS_EVENT_COMPLETED) return 0;
  return parse_offers(json_object_get(root, "offers"), max_offers, m, why, why_len);
}

static int parse_scrape(const json_t *root, syn_ws_msg *m, char *why, size_t why_len) {
  const json_t *h = json_object_get(root, "info_hash");
  if (json_is_string(h)) {
    if (syn_ws_binstr_get(h, m->hashes[0], 20)) return fail(why, why_len, "invalid info_hash");
    m->n_hashes = 1;
    return 0;
  }
  if (!json_is_array(h) || json_array_size(h) == 0)
    return fail(why, why_len, "scrape needs info_hash");
  if (json_array_size(h) > SYN_WS_MAX_SCRAPE) {
    snprintf(why, why_len, "too many info_hash values (at most %d)", SYN_WS_MAX_SCRAPE);
    return -1;
  }
  size_t i;
  json_t *v;
  json_array_foreach(h, i, v) {
    if (syn_ws_binstr_get(v, m->hashes[m->n_hashes], 20))
      return fail(why, why_len, "invalid info_hash");
    m->n_hashes++;
  }
  return 0;
}

int syn_ws_parse(const uint8_t *text, size_t len, uint32_t max_offers, syn_ws_msg *out, char *why,
                 size_t why_len) {
  memset(out, 0, sizeof *out);
  json_t *root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return fail(why, why_len, "invalid JSON: expected an object");
  }
  const json_t *action = json_object_get(root, "action");
  int rc;
  if (json_is_string(action) && !strcmp(json_string_value(action), "announce")) {
    out->action = SYN_WS_ANNOUNCE;
    out->has_action = true;
    rc = parse_announce(root, max_offers, out, why, why_len);
  } else if (json_is_string(action) && !strcmp(json_string_value(action), "scrape")) {
    out->action = SYN_WS_SCRAPE;
    out->has_action = true;
    rc = parse_scrape(root, out, why, why_len);
  } else {
    rc = fail(why, why_len, "invalid action (announce or scrape)");
  }
  json_decref(root);
  return rc;
}

void syn_ws_msg_free(syn_ws_msg *m) {
  for (size_t i = 0; i < m->n_offers; i++) free(m->offers[i].json);
  m->n_offers = 0;
  free(m->answer);
  m->answer = NULL;
}

/* Appends `obj` as compact JSON and drops the reference. */
static int emit(syn_buf *out, json_t *obj) {
  if (!obj) return -1;
  char *t = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  if (!t) return -1;
  int rc = syn_buf_append(out, t, strlen(t)) ? -1 : 0;
  free(t);
  return rc;
}

int syn_ws_announce_reply(syn_buf *out, const uint8_t info_hash[20], uint32_t interval,
                          uint32_t complete, uint32_t incomplete) {
  return emit(out,
              json_pack("{s:s, s:I, s:o, s:I, s:I}", "action", "announce", "interval",
                        (json_int_t)interval, "info_hash", syn_ws_binstr_new(info_hash, 20),
                        "complete", (json_int_t)complete, "incomplete", (json_int_t)incomplete));
}

int syn_ws_signal(syn_buf *out, const uint8_t info_hash[20], const uint8_t from_peer_id[20],
                  const uint8_t offer_id[20], bool is_answer, const uint8_t *json, size_t len) {
  json_t *value = json_loadb((const char *)json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (!value) return -1; /* a node sends what a router parsed: this is not that */
  return emit(out, json_pack("{s:s, s:o, s:o, s:o, s:o}", "action", "announce",
                             is_answer ? "answer" : "offer", value, "offer_id",
                             syn_ws_binstr_new(offer_id, 20), "peer_id",
                             syn_ws_binstr_new(from_peer_id, 20), "info_hash",
                             syn_ws_binstr_new(info_hash, 20)));
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int syn_ws_scrape_reply(syn_buf *out, const uint8_t *entries, size_t count) {
  json_t *files = json_object();
  for (size_t i = 0; files && i < count; i++) {
    const uint8_t *e = entries + 32 * i;
    json_t *key = syn_ws_binstr_new(e, 20);
    json_t *f = json_pack("{s:I, s:I, s:I}", "complete", (json_int_t)be32(e + 20), "incomplete",
                          (json_int_t)be32(e + 28), "downloaded", (json_int_t)be32(e + 24));
    if (!key || !f ||
        json_object_setn_new(files, json_string_value(key), json_string_length(key), f)) {
      json_decref(key);
      json_decref(files);
      return -1;
    }
    json_decref(key);
  }
  return emit(out, files ? json_pack("{s:s, s:o}", "action", "scrape", "files", files) : NULL);
}

int syn_ws_failure(syn_buf *out, const char *why, const char *action, const uint8_t *info_hash) {
  json_t *o = json_pack("{s:s}", "failure reason", why);
  if (o && action) json_object_set_new(o, "action", json_string(action));
  if (o && info_hash) json_object_set_new(o, "info_hash", syn_ws_binstr_new(info_hash, 20));
  return emit(out, o);
}
