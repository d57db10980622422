/* Unit tests for the WebTorrent messages: binary strings, parsing of the client's messages
 * (with their failure reasons) and the replies built for it, read back with jansson.
 *
 * Client messages are written here by hand, with a JSON string encoder of the test's own
 * (lit), so the parser is not only checked against the module's own encoder. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/ws_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT_MAX (32 * 6 + 3) /* a 32-byte binary string, all escaped */

/* Bytes with every awkward value: NUL, control, quote, backslash, DEL, >= 0x80. */
static const uint8_t IH[20] = {0x00, 0x01, 0x22, 0x5C, 0x7F, 0x80, 0xC3, 0xFF, 'a',  0x0A,
                               0x10, 0x20, 0x2F, 0x9F, 0xA0, 0xBF, 0xC0, 0xE9, 0x00, 0xFE};
static const uint8_t PID[20] = {'-',  'W',  'W',  '0',  '1',  '0',  '0',  '-',  0x00, 0x00,
                                0xAB, 0xCD, 0xEF, 0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0x00};
static const uint8_t TO[20] = {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                               0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};

/* A JSON string literal whose code points are the bytes (escapes for control characters,
 * quote and backslash; UTF-8 for U+0080..U+00FF). */
static const char *lit(char out[LIT_MAX], const uint8_t *b, size_t n) {
  size_t k = 0;
  out[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    if (b[i] < 0x20 || b[i] == '"' || b[i] == '\\') {
      k += (size_t)snprintf(out + k, 7, "\\u%04x", b[i]);
    } else if (b[i] < 0x80) {
      out[k++] = (char)b[i];
    } else {
      out[k++] = (char)(0xC0 | b[i] >> 6);
      out[k++] = (char)(0x80 | (b[i] & 0x3F));
    }
  }
  out[k++] = '"';
  out[k] = '\0';
  return out;
}

static void offer_id_of(uint8_t id[20], int k) {
  for (int i = 0; i < 20; i++) id[i] = (uint8_t)(k * 37 + i * 13);
  id[3] = 0x00;
  id[7] = 0xF0;
}

/* Fixed literals, built once. */
static char L_IH[LIT_MAX], L_PID[LIT_MAX], L_TO[LIT_MAX];

static int group_setup(void **state) {
  (void)state;
  lit(L_IH, IH, 20);
  lit(L_PID, PID, 20);
  lit(L_TO, TO, 20);
  return 0;
}

/* An offers array of n offers, offer k with offer_id offer_id_of(k) and {"sdp":"k"}. */
static void offers_array(syn_buf *b, int n) {
  syn_buf_append_str(b, "[");
  for (int k = 0; k < n; k++) {
    uint8_t id[20];
    char l[LIT_MAX];
    offer_id_of(id, k);
    syn_buf_printf(b, "%s{\"offer_id\":%s,\"offer\":{\"sdp\":\"%d\"}}", k ? "," : "",
                   lit(l, id, 20), k);
  }
  syn_buf_append_str(b, "]");
}

static int parse(const char *text, uint32_t max_offers, syn_ws_msg *m, char *why) {
  memset(m, 0xEE, sizeof *m); /* parse must clear it */
  strcpy(why, "(unset)");
  return syn_ws_parse((const uint8_t *)text, strlen(text), max_offers, m, why, 128);
}

static int parse_buf(const syn_buf *b, uint32_t max_offers, syn_ws_msg *m, char *why) {
  memset(m, 0xEE, sizeof *m);
  strcpy(why, "(unset)");
  return syn_ws_parse(b->data, b->len, max_offers, m, why, 128);
}

/* Parses a built message. Builders write binary strings with NULs (\u0000). */
static json_t *load(const syn_buf *b) {
  json_error_t err;
  json_t *v = json_loadb((const char *)b->data, b->len, JSON_ALLOW_NUL, &err);
  if (!v) fail_msg("built text does not parse: %s: %.*s", err.text, (int)b->len, b->data);
  assert_true(json_is_object(v));
  return v;
}

static void assert_binstr(const json_t *v, const uint8_t *want, size_t n) {
  uint8_t got[64];
  assert_non_null(v);
  assert_int_equal(syn_ws_binstr_get(v, got, n), 0);
  assert_memory_equal(got, want, n);
}

static void assert_int_field(const json_t *o, const char *key, json_int_t want) {
  const json_t *v = json_object_get(o, key);
  assert_true(json_is_integer(v));
  assert_int_equal(json_integer_value(v), want);
}

static void assert_str_field(const json_t *o, const char *key, const char *want) {
  const json_t *v = json_object_get(o, key);
  assert_true(json_is_string(v));
  assert_string_equal(json_string_value(v), want);
}

/* ---- binary strings ---- */

static void test_binstr_all_bytes_round_trip(void **state) {
  (void)state;
  /* Every byte value, 64 at a time, through a JSON string and through JSON text. */
  for (int chunk = 0; chunk < 4; chunk++) {
    uint8_t b[64], got[64];
    for (int i = 0; i < 64; i++) b[i] = (uint8_t)(chunk * 64 + i);
    json_t *s = syn_ws_binstr_new(b, 64);
    assert_non_null(s);
    /* One code point per byte: one UTF-8 byte below 0x80, two from 0x80. */
    assert_int_equal(json_string_length(s), chunk < 2 ? 64 : 128);
    memset(got, 0xEE, sizeof got);
    assert_int_equal(syn_ws_binstr_get(s, got, 64), 0);
    assert_memory_equal(got, b, 64);
    char *text = json_dumps(s, JSON_ENCODE_ANY);
    assert_non_null(text);
    json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(back);
    assert_true(json_equal(s, back));
    memset(got, 0xEE, sizeof got);
    assert_int_equal(syn_ws_binstr_get(back, got, 64), 0);
    assert_memory_equal(got, b, 64);
    /* The test's own encoding decodes the same. */
    char l[64 * 6 + 3];
    size_t k = 0;
    l[k++] = '"';
    for (int i = 0; i < 64; i++) {
      char one[LIT_MAX];
      lit(one, &b[i], 1);
      size_t n = strlen(one) - 2;
      memcpy(l + k, one + 1, n);
      k += n;
    }
    l[k++] = '"';
    json_t *mine = json_loadb(l, k, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(mine);
    assert_true(json_equal(mine, s));
    json_decref(mine);
    json_decref(back);
    free(text);
    json_decref(s);
  }
  /* 20 bytes of each single value, as hashes are. */
  for (int v = 0; v < 256; v++) {
    uint8_t b[20], got[20];
    memset(b, v, sizeof b);
    json_t *s = syn_ws_binstr_new(b, 20);
    assert_non_null(s);
    assert_int_equal(syn_ws_binstr_get(s, got, 20), 0);
    assert_memory_equal(got, b, 20);
    json_decref(s);
  }
  /* Empty is fine too. */
  json_t *s = syn_ws_binstr_new(IH, 0);
  assert_non_null(s);
  assert_int_equal(json_string_length(s), 0);
  uint8_t none[1];
  assert_int_equal(syn_ws_binstr_get(s, none, 0), 0);
  json_decref(s);
}

static void test_binstr_rejects(void **state) {
  (void)state;
  uint8_t got[21];
  json_t *s = syn_ws_binstr_new(IH, 20);
  assert_int_equal(syn_ws_binstr_get(s, got, 19), -1); /* longer than asked */
  assert_int_equal(syn_ws_binstr_get(s, got, 21), -1); /* shorter */
  json_decref(s);
  s = json_string("");
  assert_int_equal(syn_ws_binstr_get(s, got, 20), -1);
  json_decref(s);
  /* Not strings. */
  json_t *i = json_integer(5), *n = json_null(), *a = json_array();
  assert_int_equal(syn_ws_binstr_get(i, got, 20), -1);
  assert_int_equal(syn_ws_binstr_get(n, got, 20), -1);
  assert_int_equal(syn_ws_binstr_get(a, got, 20), -1);
  assert_int_equal(syn_ws_binstr_get(NULL, got, 20), -1);
  json_decref(i);
  json_decref(n);
  json_decref(a);
  /* Code points above U+00FF, wherever they are: 20 code points, but not 20 bytes. */
  const char *above[] = {
      "\"\\u0100aaaaaaaaaaaaaaaaaaa\"", /* U+0100 first */
      "\"aaaaaaaaaaaaaaaaaaa\\u0100\"", /* last */
      "\"aaaaaaaaa\\u20acaaaaaaaaaa\"", /* U+20AC: three UTF-8 bytes */
      "\"aaaaaaaaa\xe2\x82\xac"
      "aaaaaaaaaa\"",                          /* the same, raw */
      "\"aaaaaaaaaaaaaaaaaaa\\ud83d\\ude00\"", /* U+1F600: four */
      "\"aaaaaaaaaaaaaaaaaaa\\uffff\"",
  };
  for (size_t k = 0; k < sizeof above / sizeof *above; k++) {
    json_t *v = json_loads(above[k], JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    assert_int_equal(syn_ws_binstr_get(v, got, 20), -1);
    json_decref(v);
  }
  /* U+00FF itself is a byte. */
  json_t *v = json_loads("\"aaaaaaaaaaaaaaaaaaa\\u00ff\"", JSON_DECODE_ANY, NULL);
  assert_int_equal(syn_ws_binstr_get(v, got, 20), 0);
  assert_int_equal(got[19], 0xFF);
  json_decref(v);
  /* A lead byte without its continuation (jansson never makes one; a caller could). */
  v = json_stringn_nocheck("aaaaaaaaaaaaaaaaaaa\xc3", 20);
  assert_int_equal(syn_ws_binstr_get(v, got, 20), -1);
  json_decref(v);
  v = json_stringn_nocheck(
      "aaaaaaaaaaaaaaaaaa\xc3"
      "a",
      20);
  assert_int_equal(syn_ws_binstr_get(v, got, 19), -1);
  json_decref(v);
}

/* ---- parsing ---- */

static void test_parse_announce(void **state) {
  (void)state;
  uint8_t oid0[20], oid1[20], oid2[20], oid3[20];
  char l0[LIT_MAX], l1[LIT_MAX], l2[LIT_MAX], l3[LIT_MAX];
  offer_id_of(oid0, 0);
  offer_id_of(oid1, 1);
  offer_id_of(oid2, 2);
  offer_id_of(oid3, 3);
  syn_buf b = SYN_BUF_INIT;
  syn_buf_printf(
      &b,
      "{\"action\":\"announce\", \"info_hash\":%s, \"peer_id\":%s, \"event\":\"started\","
      " \"left\":12345, \"numwant\":5, \"uploaded\":0, \"downloaded\":0, \"offers\": ["
      "{\"offer_id\":%s, \"offer\": { \"type\" : \"offer\", \"sdp\" : \"v=0\\r\\n\" }},"
      "{\"offer\": [1, \"two\", {\"three\": 3.5, \"n\": null}], \"offer_id\":%s},"
      "{\"offer_id\":%s, \"offer\": \"just a string\"},"
      "{\"offer_id\":%s, \"offer\": {\"sdp\": \"\\u00e9\\u0000\\ud83d\\ude00\"}}]}",
      L_IH, L_PID, lit(l0, oid0, 20), lit(l1, oid1, 20), lit(l2, oid2, 20), lit(l3, oid3, 20));
  syn_ws_msg m;
  char why[128];
  assert_int_equal(parse_buf(&b, 8, &m, why), 0);
  assert_int_equal(m.action, SYN_WS_ANNOUNCE);
  assert_true(m.has_action);
  assert_true(m.has_info_hash);
  assert_memory_equal(m.info_hash, IH, 20);
  assert_memory_equal(m.peer_id, PID, 20);
  assert_int_equal(m.event, SYN_WS_EVENT_STARTED);
  assert_true(m.has_left);
  assert_int_equal(m.left, 12345);
  assert_false(m.has_answer);
  assert_null(m.answer);
  assert_int_equal(m.n_hashes, 0);
  assert_int_equal(m.n_offers, 4);
  assert_memory_equal(m.offers[0].offer_id, oid0, 20);
  assert_memory_equal(m.offers[1].offer_id, oid1, 20);
  assert_memory_equal(m.offers[2].offer_id, oid2, 20);
  assert_memory_equal(m.offers[3].offer_id, oid3, 20);
  /* Offers kept as compact JSON text, in their own key order. */
  assert_string_equal(m.offers[0].json, "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}");
  assert_string_equal(m.offers[1].json, "[1,\"two\",{\"three\":3.5,\"n\":null}]");
  assert_string_equal(m.offers[2].json, "\"just a string\"");
  for (int k = 0; k < 4; k++) assert_int_equal(m.offers[k].len, strlen(m.offers[k].json));
  /* ... and that text is JSON for the same value. */
  json_t *v = json_loadb(m.offers[3].json, m.offers[3].len, JSON_ALLOW_NUL, NULL);
  assert_non_null(v);
  const json_t *sdp = json_object_get(v, "sdp");
  assert_int_equal(json_string_length(sdp), 2 + 1 + 4);
  assert_memory_equal(json_string_value(sdp), "\xc3\xa9\0\xf0\x9f\x98\x80", 7);
  json_decref(v);
  syn_ws_msg_free(&m);
  assert_int_equal(m.n_offers, 0);
  assert_null(m.answer);
  syn_ws_msg_free(&m); /* twice is harmless */
  syn_buf_free(&b);
}

static void test_parse_events(void **state) {
  (void)state;
  static const struct {
    const char *json; /* the event member, or "" for none */
    int event;        /* -1: rejected */
  } cases[] = {
      {"", SYN_WS_EVENT_NONE},
      {",\"event\":null", SYN_WS_EVENT_NONE},
      {",\"event\":\"\"", SYN_WS_EVENT_NONE},
      {",\"event\":\"update\"", SYN_WS_EVENT_NONE},
      {",\"event\":\"empty\"", SYN_WS_EVENT_NONE},
      {",\"event\":\"started\"", SYN_WS_EVENT_STARTED},
      {",\"event\":\"completed\"", SYN_WS_EVENT_COMPLETED},
      {",\"event\":\"stopped\"", SYN_WS_EVENT_STOPPED},
      {",\"event\":\"paused\"", -1},
      {",\"event\":\"Started\"", -1},
      {",\"event\":2", -1},
      {",\"event\":{}", -1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char text[512];
    snprintf(text, sizeof text, "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s%s}", L_IH,
             L_PID, cases[k].json);
    syn_ws_msg m;
    char why[128];
    int rc = parse(text, 8, &m, why);
    if (cases[k].event < 0) {
      assert_int_equal(rc, -1);
      assert_string_equal(why, "invalid event");
      assert_true(m.has_action);
      assert_true(m.has_info_hash);
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(m.event, cases[k].event);
    }
    syn_ws_msg_free(&m);
  }
}

static void test_parse_left(void **state) {
  (void)state;
  static const struct {
    const char *json;
    bool has;
    uint64_t left;
  } cases[] = {
      {"", false, 0},
      {",\"left\":0", true, 0},
      {",\"left\":12345", true, 12345},
      {",\"left\":1e3", true, 1000},
      {",\"left\":1099511627776", true, 1099511627776ull},
      {",\"left\":\"0\"", true, 0},
      {",\"left\":\"4096\"", true, 4096},
      {",\"left\":null", false, 0}, /* JSON.stringify(Infinity) */
      {",\"left\":-1", false, 0},
      {",\"left\":1e30", false, 0},
      {",\"left\":\"12abc\"", false, 0},
      {",\"left\":\"abc\"", false, 0},
      {",\"left\":\"\"", false, 0}, /* not a number: unknown, not a seed */
      {",\"left\":\"nan\"", false, 0},
      {",\"left\":\"inf\"", false, 0},
      {",\"left\":true", false, 0},
      {",\"left\":[0]", false, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char text[512];
    snprintf(text, sizeof text, "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s%s}", L_IH,
             L_PID, cases[k].json);
    syn_ws_msg m;
    char why[128];
    assert_int_equal(parse(text, 8, &m, why), 0);
    if (m.has_left != cases[k].has) fail_msg("left %s: has_left %d", cases[k].json, m.has_left);
    if (cases[k].has) assert_int_equal(m.left, cases[k].left);
    syn_ws_msg_free(&m);
  }
}

static void test_parse_offers_ignored_when_stopping(void **state) {
  (void)state;
  /* Offers with stopped or completed are not handed on: not even checked. */
  const char *events[] = {"stopped", "completed"};
  for (int e = 0; e < 2; e++) {
    syn_buf b = SYN_BUF_INIT;
    syn_buf_printf(&b,
                   "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"event\":\"%s\","
                   "\"offers\":",
                   L_IH, L_PID, events[e]);
    offers_array(&b, 10);
    syn_buf_append_str(&b, "}");
    syn_ws_msg m;
    char why[128];
    assert_int_equal(parse_buf(&b, 2, &m, why), 0);
    assert_int_equal(m.n_offers, 0);
    syn_ws_msg_free(&m);
    syn_buf_free(&b);
  }
  /* Without offers, or with null or empty ones: none. */
  const char *none[] = {"", ",\"offers\":null", ",\"offers\":[]"};
  for (int k = 0; k < 3; k++) {
    char text[512];
    snprintf(text, sizeof text, "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s%s}", L_IH,
             L_PID, none[k]);
    syn_ws_msg m;
    char why[128];
    assert_int_equal(parse(text, 8, &m, why), 0);
    assert_int_equal(m.n_offers, 0);
    syn_ws_msg_free(&m);
  }
}

static void test_parse_offer_limits(void **state) {
  (void)state;
  static const struct {
    int offers;
    uint32_t max;
    const char *why; /* NULL: accepted */
  } cases[] = {
      {2, 2, NULL},
      {3, 2, "too many offers (at most 2)"},
      {1, 0, "too many offers (at most 0)"},
      {SYN_WS_MAX_MSG_OFFERS, SYN_WS_MAX_MSG_OFFERS, NULL},
      {SYN_WS_MAX_MSG_OFFERS + 1, SYN_WS_MAX_MSG_OFFERS, "too many offers (at most 64)"},
      {SYN_WS_MAX_MSG_OFFERS + 1, 1000, "too many offers (at most 1000)"}, /* never past 64 */
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    syn_buf b = SYN_BUF_INIT;
    syn_buf_printf(&b, "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"offers\":", L_IH,
                   L_PID);
    offers_array(&b, cases[c].offers);
    syn_buf_append_str(&b, "}");
    syn_ws_msg m;
    char why[128];
    int rc = parse_buf(&b, cases[c].max, &m, why);
    if (cases[c].why) {
      assert_int_equal(rc, -1);
      assert_string_equal(why, cases[c].why);
      assert_int_equal(m.n_offers, 0);
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal((int)m.n_offers, cases[c].offers);
      for (int k = 0; k < cases[c].offers; k++) {
        uint8_t id[20];
        char sdp[32];
        offer_id_of(id, k);
        snprintf(sdp, sizeof sdp, "{\"sdp\":\"%d\"}", k);
        assert_memory_equal(m.offers[k].offer_id, id, 20);
        assert_string_equal(m.offers[k].json, sdp);
      }
    }
    syn_ws_msg_free(&m);
    syn_buf_free(&b);
  }
}

static void test_parse_answer(void **state) {
  (void)state;
  uint8_t oid[20];
  char l[LIT_MAX];
  offer_id_of(oid, 9);
  char text[1024];
  snprintf(text, sizeof text,
           "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"to_peer_id\":%s,"
           "\"offer_id\":%s,\"answer\":{\"type\":\"answer\", \"sdp\":\"v=0\"},"
           "\"event\":\"bogus\",\"offers\":7}",
           L_IH, L_PID, L_TO, lit(l, oid, 20));
  syn_ws_msg m;
  char why[128];
  /* An answer is only handed on: the rest of the announce is not looked at. */
  assert_int_equal(parse(text, 8, &m, why), 0);
  assert_int_equal(m.action, SYN_WS_ANNOUNCE);
  assert_true(m.has_answer);
  assert_memory_equal(m.info_hash, IH, 20);
  assert_memory_equal(m.peer_id, PID, 20);
  assert_memory_equal(m.to_peer_id, TO, 20);
  assert_memory_equal(m.offer_id, oid, 20);
  assert_string_equal(m.answer, "{\"type\":\"answer\",\"sdp\":\"v=0\"}");
  assert_int_equal(m.answer_len, strlen(m.answer));
  assert_int_equal(m.n_offers, 0);
  assert_false(m.has_left);
  syn_ws_msg_free(&m);
  assert_null(m.answer);

  /* A null answer is no answer. */
  snprintf(text, sizeof text,
           "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"answer\":null}", L_IH,
           L_PID);
  assert_int_equal(parse(text, 8, &m, why), 0);
  assert_false(m.has_answer);
  assert_null(m.answer);
  syn_ws_msg_free(&m);

  static const struct {
    const char *fmt; /* info_hash, peer_id, then one more literal */
    const char *why;
  } bad[] = {
      {"{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"offer_id\":%s,\"answer\":{}}",
       "invalid `to_peer_id` (required with `answer`)"},
      {"{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"to_peer_id\":\"short\","
       "\"offer_id\":%s,\"answer\":{}}",
       "invalid `to_peer_id` (required with `answer`)"},
      {"{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"to_peer_id\":%s,\"answer\":{}}",
       "invalid `offer_id` (required with `answer`)"},
      {"{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"to_peer_id\":%s,"
       "\"offer_id\":[],\"answer\":{}}",
       "invalid `offer_id` (required with `answer`)"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    snprintf(text, sizeof text, bad[k].fmt, L_IH, L_PID, k < 2 ? l : L_TO);
    assert_int_equal(parse(text, 8, &m, why), -1);
    assert_string_equal(why, bad[k].why);
    assert_true(m.has_action);
    assert_true(m.has_info_hash);
    assert_false(m.has_answer);
    syn_ws_msg_free(&m);
  }
}

static void test_parse_scrape(void **state) {
  (void)state;
  char text[64 * 130];
  syn_ws_msg m;
  char why[128];
  snprintf(text, sizeof text, "{\"action\":\"scrape\",\"info_hash\":%s}", L_IH);
  assert_int_equal(parse(text, 8, &m, why), 0);
  assert_int_equal(m.action, SYN_WS_SCRAPE);
  assert_true(m.has_action);
  assert_int_equal(m.n_hashes, 1);
  assert_memory_equal(m.hashes[0], IH, 20);
  assert_int_equal(m.n_offers, 0);
  syn_ws_msg_free(&m);

  snprintf(text, sizeof text, "{\"action\":\"scrape\",\"info_hash\":[%s,%s,%s]}", L_IH, L_TO,
           L_PID);
  assert_int_equal(parse(text, 8, &m, why), 0);
  assert_int_equal(m.action, SYN_WS_SCRAPE);
  assert_int_equal(m.n_hashes, 3);
  assert_memory_equal(m.hashes[0], IH, 20);
  assert_memory_equal(m.hashes[1], TO, 20);
  assert_memory_equal(m.hashes[2], PID, 20);
  syn_ws_msg_free(&m);

  /* As many as allowed, and one more. */
  for (int n = SYN_WS_MAX_SCRAPE; n <= SYN_WS_MAX_SCRAPE + 1; n++) {
    syn_buf b = SYN_BUF_INIT;
    syn_buf_append_str(&b, "{\"action\":\"scrape\",\"info_hash\":[");
    for (int k = 0; k < n; k++) {
      uint8_t h[20];
      char l[LIT_MAX];
      offer_id_of(h, k);
      syn_buf_printf(&b, "%s%s", k ? "," : "", lit(l, h, 20));
    }
    syn_buf_append_str(&b, "]}");
    int rc = parse_buf(&b, 8, &m, why);
    if (n == SYN_WS_MAX_SCRAPE) {
      assert_int_equal(rc, 0);
      assert_int_equal(m.n_hashes, SYN_WS_MAX_SCRAPE);
      uint8_t last[20];
      offer_id_of(last, SYN_WS_MAX_SCRAPE - 1);
      assert_memory_equal(m.hashes[SYN_WS_MAX_SCRAPE - 1], last, 20);
    } else {
      assert_int_equal(rc, -1);
      assert_string_equal(why, "too many info_hash values (at most 64)");
      assert_true(m.has_action);
    }
    syn_ws_msg_free(&m);
    syn_buf_free(&b);
  }

  static const struct {
    const char *fmt; /* with one %s, a good hash */
    const char *why;
  } bad[] = {
      {"{\"action\":\"scrape\"}%s", "scrape needs info_hash"},
      {"{\"action\":\"scrape\",\"info_hash\":null}%s", "scrape needs info_hash"},
      {"{\"action\":\"scrape\",\"info_hash\":[]}%s", "scrape needs info_hash"},
      {"{\"action\":\"scrape\",\"info_hash\":5}%s", "scrape needs info_hash"},
      {"{\"action\":\"scrape\",\"info_hash\":\"short\"}%s", "invalid info_hash"},
      {"{\"action\":\"scrape\",\"info_hash\":[%s,\"short\"]}", "invalid info_hash"},
      {"{\"action\":\"scrape\",\"info_hash\":[%s,7]}", "invalid info_hash"},
      {"{\"action\":\"scrape\",\"info_hash\":\"aaaaaaaaaaaaaaaaaaa\\u0101\"}%s",
       "invalid info_hash"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    snprintf(text, sizeof text, bad[k].fmt, strstr(bad[k].fmt, "[%s") ? L_IH : "");
    assert_int_equal(parse(text, 8, &m, why), -1);
    assert_string_equal(why, bad[k].why);
    assert_true(m.has_action);
    assert_int_equal(m.action, SYN_WS_SCRAPE);
    syn_ws_msg_free(&m);
  }
}

/* Expands a message template: $A the announce opening, $H a good info_hash, $P a good
 * peer_id, $h a 19-byte info_hash, $p a 21-byte peer_id, $O a good offer_id. */
static void expand(char *out, size_t cap, const char *t) {
  char h19[LIT_MAX], p21[LIT_MAX], oid[LIT_MAX];
  uint8_t zeros[21] = {0}, o[20];
  offer_id_of(o, 0);
  lit(h19, IH, 19);
  lit(p21, zeros, 21);
  lit(oid, o, 20);
  size_t k = 0;
  for (; *t; t++) {
    const char *put = NULL;
    if (*t == '$') {
      switch (*++t) {
      case 'A': put = "{\"action\":\"announce\","; break;
      case 'H': put = L_IH; break;
      case 'P': put = L_PID; break;
      case 'h': put = h19; break;
      case 'p': put = p21; break;
      case 'O': put = oid; break;
      default: fail_msg("template: $%c", *t);
      }
    }
    size_t n = put ? strlen(put) : 1;
    assert_true(k + n < cap);
    memcpy(out + k, put ? put : t, n);
    k += n;
  }
  out[k] = '\0';
}

static void test_parse_failures(void **state) {
  (void)state;
  static const struct {
    const char *t; /* a template for expand */
    const char *why;
    bool has_action, has_info_hash;
  } cases[] = {
      {"not json", "invalid JSON: expected an object", false, false},
      {"", "invalid JSON: expected an object", false, false},
      {"[1,2,3]", "invalid JSON: expected an object", false, false},
      {"\"announce\"", "invalid JSON: expected an object", false, false},
      {"42", "invalid JSON: expected an object", false, false},
      {"null", "invalid JSON: expected an object", false, false},
      {"$A\"info_hash\":$H", "invalid JSON: expected an object", false, false}, /* cut */
      {"{\"action\":\"announce\",\"action\":\"scrape\"}", "invalid JSON: expected an object", false,
       false}, /* duplicate keys */
      {"{\"action\":\"announce\"} trailing", "invalid JSON: expected an object", false, false},
      {"{\"action\":\"announce\",\"info_hash\":\"\xff\"}", "invalid JSON: expected an object",
       false, false}, /* not UTF-8 */
      {"{}", "invalid action (announce or scrape)", false, false},
      {"{\"info_hash\":$H,\"peer_id\":$P}", "invalid action (announce or scrape)", false, false},
      {"{\"action\":\"connect\"}", "invalid action (announce or scrape)", false, false},
      {"{\"action\":\"Announce\"}", "invalid action (announce or scrape)", false, false},
      {"{\"action\":1}", "invalid action (announce or scrape)", false, false},
      {"{\"action\":null}", "invalid action (announce or scrape)", false, false},
      {"$A\"peer_id\":$P}", "invalid info_hash", true, false},
      {"$A\"info_hash\":$h,\"peer_id\":$P}", "invalid info_hash", true, false},
      {"$A\"info_hash\":[$H],\"peer_id\":$P}", "invalid info_hash", true, false},
      {"$A\"info_hash\":\"aaaaaaaaaaaaaaaaaaa\\u0100\",\"peer_id\":$P}", "invalid info_hash", true,
       false},
      {"$A\"info_hash\":$H}", "invalid peer_id", true, true},
      {"$A\"info_hash\":$H,\"peer_id\":$p}", "invalid peer_id", true, true},
      {"$A\"info_hash\":$H,\"peer_id\":1}", "invalid peer_id", true, true},
      {"$A\"info_hash\":$H,\"peer_id\":$P,\"offers\":{}}", "offers must be an array", true, true},
      {"$A\"info_hash\":$H,\"peer_id\":$P,\"offers\":\"x\"}", "offers must be an array", true,
       true},
      {"$A\"info_hash\":$H,\"peer_id\":$P,\"offers\":[{\"offer\":{}}]}",
       "invalid offer: needs offer and a 20-byte offer_id", true, true},
      {"$A\"info_hash\":$H,\"peer_id\":$P,\"offers\":[{\"offer\":{},\"offer_id\":\"x\"}]}",
       "invalid offer: needs offer and a 20-byte offer_id", true, true},
      {"$A\"info_hash\":$H,\"peer_id\":$P,\"offers\":[{\"offer_id\":$O}]}",
       "invalid offer: needs offer and a 20-byte offer_id", true, true},
      {"$A\"info_hash\":$H,\"peer_id\":$P,\"offers\":[5]}",
       "invalid offer: needs offer and a 20-byte offer_id", true, true},
      /* A bad offer after a good one: the good one is freed with the message. */
      {"$A\"info_hash\":$H,\"peer_id\":$P,\"offers\":[{\"offer_id\":$O,\"offer\":{"
       "\"sdp\":\"x\"}},{\"offer_id\":$O}]}",
       "invalid offer: needs offer and a 20-byte offer_id", true, true},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char text[1024];
    expand(text, sizeof text, cases[k].t);
    syn_ws_msg m;
    char why[128];
    if (parse(text, 8, &m, why) != -1) fail_msg("accepted: %s", text);
    if (strcmp(why, cases[k].why)) fail_msg("%s: \"%s\", not \"%s\"", text, why, cases[k].why);
    assert_int_equal(m.has_action, cases[k].has_action);
    assert_int_equal(m.has_info_hash, cases[k].has_info_hash);
    if (m.has_action) assert_int_equal(m.action, SYN_WS_ANNOUNCE);
    if (m.has_info_hash) assert_memory_equal(m.info_hash, IH, 20);
    syn_ws_msg_free(&m);
  }
  /* The reason is cut to the room given, and still terminated. */
  syn_ws_msg m;
  char small[8];
  assert_int_equal(syn_ws_parse((const uint8_t *)"x", 1, 8, &m, small, sizeof small), -1);
  assert_string_equal(small, "invalid");
  syn_ws_msg_free(&m);
  /* Text is taken by length, not to a NUL: a message cut short is not JSON... */
  char why[128];
  const char obj[] = "{\"action\":\"scrape\",\"info_hash\":\"aaaaaaaaaaaaaaaaaaaa\"}";
  assert_int_equal(syn_ws_parse((const uint8_t *)obj, sizeof obj - 3, 8, &m, why, sizeof why), -1);
  assert_string_equal(why, "invalid JSON: expected an object");
  syn_ws_msg_free(&m);
  /* ... and bytes past the length are not read. */
  const char more[] = "{\"action\":\"scrape\",\"info_hash\":\"aaaaaaaaaaaaaaaaaaaa\"}garbage";
  assert_int_equal(syn_ws_parse((const uint8_t *)more, sizeof obj - 1, 8, &m, why, sizeof why), 0);
  assert_int_equal(m.n_hashes, 1);
  syn_ws_msg_free(&m);
}

/* ---- builders ---- */

static void test_announce_reply(void **state) {
  (void)state;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_announce_reply(&b, IH, 120, 3, 4000000000u), 0);
  json_t *o = load(&b);
  assert_str_field(o, "action", "announce");
  assert_int_field(o, "interval", 120);
  assert_int_field(o, "complete", 3);
  assert_int_field(o, "incomplete", 4000000000);
  assert_binstr(json_object_get(o, "info_hash"), IH, 20);
  assert_int_equal(json_object_size(o), 5);
  json_decref(o);
  /* Builders append. */
  size_t first = b.len;
  assert_int_equal(syn_ws_announce_reply(&b, TO, 0, 0, 0), 0);
  syn_buf second = {b.data + first, b.len - first, 0};
  o = load(&second);
  assert_binstr(json_object_get(o, "info_hash"), TO, 20);
  assert_int_field(o, "interval", 0);
  json_decref(o);
  syn_buf_free(&b);
}

static void test_signal(void **state) {
  (void)state;
  uint8_t oid[20];
  offer_id_of(oid, 4);
  const char *sdp = "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\na=x\"}";
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_signal(&b, IH, PID, oid, false, (const uint8_t *)sdp, strlen(sdp)), 0);
  json_t *o = load(&b);
  assert_str_field(o, "action", "announce");
  assert_binstr(json_object_get(o, "info_hash"), IH, 20);
  assert_binstr(json_object_get(o, "peer_id"), PID, 20);
  assert_binstr(json_object_get(o, "offer_id"), oid, 20);
  json_t *want = json_loads(sdp, 0, NULL);
  assert_true(json_equal(json_object_get(o, "offer"), want));
  assert_null(json_object_get(o, "answer"));
  assert_int_equal(json_object_size(o), 5);
  json_decref(o);

  syn_buf_reset(&b);
  assert_int_equal(syn_ws_signal(&b, IH, TO, oid, true, (const uint8_t *)sdp, strlen(sdp)), 0);
  o = load(&b);
  assert_true(json_equal(json_object_get(o, "answer"), want));
  assert_null(json_object_get(o, "offer"));
  assert_binstr(json_object_get(o, "peer_id"), TO, 20);
  json_decref(o);
  json_decref(want);

  /* Any JSON value, as the parser keeps it. */
  syn_buf_reset(&b);
  assert_int_equal(syn_ws_signal(&b, IH, TO, oid, false, (const uint8_t *)"\"s\"", 3), 0);
  o = load(&b);
  assert_str_field(o, "offer", "s");
  json_decref(o);

  /* Not JSON: refused, nothing appended. */
  const char *bad[] = {"", "{", "{\"sdp\":}", "v=0\r\n", "{} {}", "[1,]"};
  syn_buf_reset(&b);
  syn_buf_append_str(&b, "kept");
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    assert_int_equal(
        syn_ws_signal(&b, IH, PID, oid, k % 2, (const uint8_t *)bad[k], strlen(bad[k])), -1);
    assert_int_equal(b.len, 4);
  }
  /* Taken by length: what lies past it is not read. */
  syn_buf_reset(&b);
  assert_int_equal(syn_ws_signal(&b, IH, PID, oid, false, (const uint8_t *)"[1]]", 3), 0);
  json_t *o3 = load(&b);
  assert_int_equal(json_array_size(json_object_get(o3, "offer")), 1);
  json_decref(o3);
  syn_buf_free(&b);
}

/* The parser's offer text is what a signal carries on: parse, then build, then parse. */
static void test_offer_parsed_then_signalled(void **state) {
  (void)state;
  uint8_t oid[20];
  char l[LIT_MAX];
  offer_id_of(oid, 1);
  char text[1024];
  snprintf(text, sizeof text,
           "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":%s,\"offers\":[{\"offer_id\":%s,"
           "\"offer\":{\"type\":\"offer\",\"sdp\":\"a\\u0000b\\u00ff\\\"\\\\\"}}]}",
           L_IH, L_PID, lit(l, oid, 20));
  syn_ws_msg m;
  char why[128];
  assert_int_equal(parse(text, 8, &m, why), 0);
  assert_int_equal(m.n_offers, 1);
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_signal(&b, m.info_hash, m.peer_id, m.offers[0].offer_id, false,
                                 (const uint8_t *)m.offers[0].json, m.offers[0].len),
                   0);
  json_t *o = load(&b);
  const json_t *sdp = json_object_get(json_object_get(o, "offer"), "sdp");
  assert_int_equal(json_string_length(sdp), 7);
  assert_memory_equal(json_string_value(sdp), "a\0b\xc3\xbf\"\\", 7);
  assert_binstr(json_object_get(o, "offer_id"), oid, 20);
  json_decref(o);
  syn_ws_msg_free(&m);
  syn_buf_free(&b);
}

/* Reads a scrape reply's files, whose keys are binary strings: jansson does not take
 * \u0000 in object keys, so those are read as U+0100 (never a byte of a binary string) and
 * turned back. */
static json_t *load_files(const syn_buf *b, bool *had_nul) {
  char *t = malloc(b->len + 1);
  assert_non_null(t);
  memcpy(t, b->data, b->len);
  t[b->len] = '\0';
  *had_nul = false;
  for (char *p = t; (p = strstr(p, "\\u0000")); p += 6) {
    memcpy(p, "\\u0100", 6);
    *had_nul = true;
  }
  json_t *o = json_loads(t, 0, NULL);
  if (!o) fail_msg("scrape reply does not parse: %s", t);
  free(t);
  return o;
}

static bool key_bytes(const char *key, size_t len, uint8_t out[20]) {
  size_t k = 0;
  for (size_t i = 0; i < len; k++) {
    if (k == 20) return false;
    unsigned char c = (unsigned char)key[i];
    if (c == 0xC4 && i + 1 < len && (unsigned char)key[i + 1] == 0x80) {
      out[k] = 0, i += 2; /* our stand-in for \u0000 */
    } else if (c < 0x80) {
      out[k] = c, i++;
    } else if ((c == 0xC2 || c == 0xC3) && i + 1 < len) {
      out[k] = (uint8_t)((c & 0x1F) << 6 | ((unsigned char)key[i + 1] & 0x3F)), i += 2;
    } else {
      return false;
    }
  }
  return k == 20;
}

static void put_entry(uint8_t *e, const uint8_t ih[20], uint32_t complete, uint32_t downloaded,
                      uint32_t incomplete) {
  memcpy(e, ih, 20);
  uint32_t v[3] = {complete, downloaded, incomplete};
  for (int f = 0; f < 3; f++)
    for (int i = 0; i < 4; i++) e[20 + 4 * f + i] = (uint8_t)(v[f] >> (24 - 8 * i));
}

static void test_scrape_reply(void **state) {
  (void)state;
  uint8_t plain[20];
  memset(plain, 'p', 20);
  uint8_t entries[3 * 32];
  put_entry(entries, IH, 1, 2, 3); /* NULs, quote, backslash, >= 0x80 */
  put_entry(entries + 32, plain, 0, 0, 0);
  put_entry(entries + 64, TO, 0xFFFFFFFFu, 0x01020304u, 70000);
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_scrape_reply(&b, entries, 3), 0);
  bool had_nul;
  json_t *o = load_files(&b, &had_nul);
  assert_true(had_nul); /* the keys carry the NUL bytes, escaped */
  assert_str_field(o, "action", "scrape");
  assert_int_equal(json_object_size(o), 2);
  json_t *files = json_object_get(o, "files");
  assert_true(json_is_object(files));
  assert_int_equal(json_object_size(files), 3);
  int seen = 0;
  const char *key;
  size_t key_len;
  json_t *f;
  json_object_keylen_foreach(files, key, key_len, f) {
    uint8_t h[20];
    assert_true(key_bytes(key, key_len, h));
    assert_int_equal(json_object_size(f), 3);
    if (!memcmp(h, IH, 20)) {
      seen |= 1;
      assert_int_field(f, "complete", 1);
      assert_int_field(f, "downloaded", 2);
      assert_int_field(f, "incomplete", 3);
    } else if (!memcmp(h, plain, 20)) {
      seen |= 2;
      assert_int_field(f, "complete", 0);
      assert_int_field(f, "downloaded", 0);
      assert_int_field(f, "incomplete", 0);
    } else if (!memcmp(h, TO, 20)) {
      seen |= 4;
      assert_int_field(f, "complete", 0xFFFFFFFFll);
      assert_int_field(f, "downloaded", 0x01020304);
      assert_int_field(f, "incomplete", 70000);
    } else {
      fail_msg("a files key that is none of the hashes");
    }
  }
  assert_int_equal(seen, 7);
  json_decref(o);
  json_t *direct = json_loadb((const char *)b.data, b.len, JSON_ALLOW_NUL, NULL);
  assert_null(direct); /* jansson refuses the NUL keys: why load_files exists */

  /* Without NULs it reads as is, and the keys decode with the module's own decoder. */

  syn_buf_reset(&b);
  assert_int_equal(syn_ws_scrape_reply(&b, entries + 32, 1), 0);
  o = load(&b);
  files = json_object_get(o, "files");
  json_object_keylen_foreach(files, key, key_len, f) {
    json_t *k = json_stringn(key, key_len);
    assert_binstr(k, plain, 20);
    json_decref(k);
  }
  json_decref(o);

  syn_buf_reset(&b);
  assert_int_equal(syn_ws_scrape_reply(&b, NULL, 0), 0);
  o = load(&b);
  assert_true(json_is_object(json_object_get(o, "files")));
  assert_int_equal(json_object_size(json_object_get(o, "files")), 0);
  json_decref(o);
  syn_buf_free(&b);
}

static void test_failure(void **state) {
  (void)state;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_failure(&b, "invalid \"peer_id\"\n", "announce", IH), 0);
  json_t *o = load(&b);
  assert_str_field(o, "failure reason", "invalid \"peer_id\"\n");
  assert_str_field(o, "action", "announce");
  assert_binstr(json_object_get(o, "info_hash"), IH, 20);
  assert_int_equal(json_object_size(o), 3);
  json_decref(o);
  syn_buf_reset(&b);
  assert_int_equal(syn_ws_failure(&b, "invalid JSON: expected an object", NULL, NULL), 0);
  o = load(&b);
  assert_str_field(o, "failure reason", "invalid JSON: expected an object");
  assert_null(json_object_get(o, "action"));
  assert_null(json_object_get(o, "info_hash"));
  assert_int_equal(json_object_size(o), 1);
  json_decref(o);
  syn_buf_reset(&b);
  assert_int_equal(syn_ws_failure(&b, "too many info_hash values (at most 64)", "scrape", NULL), 0);
  o = load(&b);
  assert_str_field(o, "action", "scrape");
  assert_null(json_object_get(o, "info_hash"));
  json_decref(o);
  syn_buf_free(&b);
}

/* A failure reply from a failed parse: the fields the parse left for it. */
static void test_failure_from_parse(void **state) {
  (void)state;
  char text[512];
  snprintf(text, sizeof text, "{\"action\":\"announce\",\"info_hash\":%s,\"peer_id\":7}", L_IH);
  syn_ws_msg m;
  char why[128];
  assert_int_equal(parse(text, 8, &m, why), -1);
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_ws_failure(&b, why, m.has_action ? "announce" : NULL,
                                  m.has_info_hash ? m.info_hash : NULL),
                   0);
  json_t *o = load(&b);
  assert_str_field(o, "failure reason", "invalid peer_id");
  assert_binstr(json_object_get(o, "info_hash"), IH, 20);
  json_decref(o);
  syn_ws_msg_free(&m);
  syn_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_binstr_all_bytes_round_trip),
      cmocka_unit_test(test_binstr_rejects),
      cmocka_unit_test(test_parse_announce),
      cmocka_unit_test(test_parse_events),
      cmocka_unit_test(test_parse_left),
      cmocka_unit_test(test_parse_offers_ignored_when_stopping),
      cmocka_unit_test(test_parse_offer_limits),
      cmocka_unit_test(test_parse_answer),
      cmocka_unit_test(test_parse_scrape),
      cmocka_unit_test(test_parse_failures),
      cmocka_unit_test(test_announce_reply),
      cmocka_unit_test(test_signal),
      cmocka_unit_test(test_offer_parsed_then_signalled),
      cmocka_unit_test(test_scrape_reply),
      cmocka_unit_test(test_failure),
      cmocka_unit_test(test_failure_from_parse),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
