/* Tracker query tests: /announce and /scrape query parsing (every field, every default,
 * every failure message, overflowing numbers, binary values with %00, wrong lengths) and
 * the bencoded replies, compared byte for byte with what BEP 3, 7, 23 and 48 prescribe
 * (sorted keys, exact lengths). Each table row is one named cmocka test. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/tracker_query.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT(s) (s), sizeof(s) - 1

/* A 20-byte info_hash as a client sends it, and its bytes. */
#define IH_Q "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"
#define IH_B "\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a"
#define PID "-SY0001-abcdefghijkl"
#define ZERO20_Q "%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00"
#define ZERO20_B "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
#define BASE "info_hash=" IH_Q "&peer_id=" PID "&port=6881"

/* ---- announce parsing ---- */

typedef struct announce_want {
  const char *info_hash; /* 20 bytes */
  const char *peer_id;   /* 20 bytes */
  uint16_t port;
  uint64_t uploaded, downloaded, left;
  int event;
  int32_t numwant;
  bool compact, no_peer_id;
} announce_want;

typedef struct announce_case {
  const char *name;
  const char *query; /* NULL: no query string at all */
  size_t len;
  const char *err; /* expected failure reason, NULL for success */
  announce_want want;
} announce_case;

#define ERR(name, q, msg) {name, LIT(q), msg, {0}}

// clang-format off
static const announce_case announce_cases[] = {
    {"announce_defaults", LIT(BASE), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_all_fields",
     LIT(BASE "&uploaded=10&downloaded=20&left=30&event=started&numwant=25&compact=0"
              "&no_peer_id=1&key=abc&ip=1.2.3.4&trackerid=x&supportcrypto=1"),
     NULL, {IH_B, PID, 6881, 10, 20, 30, 2, 25, false, true}},
    {"announce_fields_in_any_order",
     LIT("event=completed&left=0&port=1&peer_id=" PID "&numwant=0&info_hash=" IH_Q),
     NULL, {IH_B, PID, 1, 0, 0, 0, 1, 0, true, false}},
    {"announce_left_zero_is_seeder", LIT(BASE "&left=0"), NULL,
     {IH_B, PID, 6881, 0, 0, 0, 0, -1, true, false}},
    {"announce_event_stopped", LIT(BASE "&event=stopped"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 3, -1, true, false}},
    {"announce_event_completed", LIT(BASE "&event=completed"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 1, -1, true, false}},
    {"announce_event_empty_is_none", LIT(BASE "&event="), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_event_paused_is_none", LIT(BASE "&event=paused"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_compact_1", LIT(BASE "&compact=1"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_compact_0", LIT(BASE "&compact=0"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, -1, false, false}},
    {"announce_no_peer_id_0", LIT(BASE "&no_peer_id=0"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_no_peer_id_without_value", LIT(BASE "&no_peer_id"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, -1, true, true}},
    {"announce_numwant_zero", LIT(BASE "&numwant=0"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, 0, true, false}},
    {"announce_numwant_large_kept", LIT(BASE "&numwant=1073741824"), NULL,
     {IH_B, PID, 6881, 0, 0, 1, 0, 1073741824, true, false}},
    {"announce_port_1", LIT("info_hash=" IH_Q "&peer_id=" PID "&port=1"), NULL,
     {IH_B, PID, 1, 0, 0, 1, 0, -1, true, false}},
    {"announce_port_65535", LIT("info_hash=" IH_Q "&peer_id=" PID "&port=65535"), NULL,
     {IH_B, PID, 65535, 0, 0, 1, 0, -1, true, false}},
    {"announce_port_leading_zeros", LIT("info_hash=" IH_Q "&peer_id=" PID "&port=00080"), NULL,
     {IH_B, PID, 80, 0, 0, 1, 0, -1, true, false}},
    {"announce_counters_at_int64_max",
     LIT(BASE "&uploaded=9223372036854775807&downloaded=9223372036854775807"
              "&left=9223372036854775807"),
     NULL, {IH_B, PID, 6881, INT64_MAX, INT64_MAX, INT64_MAX, 0, -1, true, false}},
    {"announce_binary_all_nul_info_hash",
     LIT("info_hash=" ZERO20_Q "&peer_id=" PID "&port=6881"), NULL,
     {ZERO20_B, PID, 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_binary_nul_inside_peer_id",
     LIT("info_hash=" IH_Q "&peer_id=ab%00cdefghijklmnop%00rs&port=6881"), NULL,
     {IH_B, "ab\0cdefghijklmnop\0rs", 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_lower_case_escapes",
     LIT("info_hash=%124Vx%9a%bc%de%f1%23Eg%89%ab%cd%ef%124Vx%9a&peer_id=" PID "&port=6881"),
     NULL, {IH_B, PID, 6881, 0, 0, 1, 0, -1, true, false}},
    {"announce_empty_pairs_skipped", LIT("&&" BASE "&&&left=5&"), NULL,
     {IH_B, PID, 6881, 0, 0, 5, 0, -1, true, false}},
    {"announce_last_duplicate_wins",
     LIT("info_hash=" ZERO20_Q "&" BASE "&port=7000"), NULL,
     {IH_B, PID, 7000, 0, 0, 1, 0, -1, true, false}},

    /* Missing required fields. */
    {"announce_no_query", NULL, 0, "missing info_hash", {0}},
    {"announce_empty_query", LIT(""), "missing info_hash", {0}},
    ERR("announce_missing_info_hash", "peer_id=" PID "&port=6881", "missing info_hash"),
    ERR("announce_missing_peer_id", "info_hash=" IH_Q "&port=6881", "missing peer_id"),
    ERR("announce_missing_port", "info_hash=" IH_Q "&peer_id=" PID, "missing port"),
    ERR("announce_key_case_matters", "INFO_HASH=" IH_Q "&peer_id=" PID "&port=6881",
        "missing info_hash"),

    /* Wrong lengths and malformed escapes. */
    ERR("announce_info_hash_19_bytes",
        "info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx&peer_id=" PID "&port=6881",
        "invalid info_hash: must be 20 bytes"),
    ERR("announce_info_hash_21_bytes", "info_hash=" IH_Q "%00&peer_id=" PID "&port=6881",
        "invalid info_hash: must be 20 bytes"),
    ERR("announce_info_hash_empty", "info_hash=&peer_id=" PID "&port=6881",
        "invalid info_hash: must be 20 bytes"),
    ERR("announce_info_hash_40_hex",
        "info_hash=123456789abcdef0123456789abcdef012345678&peer_id=" PID "&port=6881",
        "invalid info_hash: must be 20 bytes"),
    ERR("announce_info_hash_bad_escape",
        "info_hash=%G24Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&peer_id=" PID "&port=6881",
        "invalid info_hash: must be 20 bytes"),
    ERR("announce_info_hash_cut_escape",
        "info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9&peer_id=" PID "&port=6881",
        "invalid info_hash: must be 20 bytes"),
    ERR("announce_peer_id_19_bytes", "info_hash=" IH_Q "&peer_id=-SY0001-abcdefghijk&port=1",
        "invalid peer_id: must be 20 bytes"),
    ERR("announce_peer_id_21_bytes", "info_hash=" IH_Q "&peer_id=" PID "m&port=1",
        "invalid peer_id: must be 20 bytes"),

    /* Numbers. */
    ERR("announce_port_zero", "info_hash=" IH_Q "&peer_id=" PID "&port=0", "invalid port"),
    ERR("announce_port_65536", "info_hash=" IH_Q "&peer_id=" PID "&port=65536", "invalid port"),
    ERR("announce_port_negative", "info_hash=" IH_Q "&peer_id=" PID "&port=-1", "invalid port"),
    ERR("announce_port_text", "info_hash=" IH_Q "&peer_id=" PID "&port=http", "invalid port"),
    ERR("announce_port_empty", "info_hash=" IH_Q "&peer_id=" PID "&port=", "invalid port"),
    ERR("announce_port_plus_sign", "info_hash=" IH_Q "&peer_id=" PID "&port=+80", "invalid port"),
    ERR("announce_port_huge", "info_hash=" IH_Q "&peer_id=" PID "&port=18446744073709551617",
        "invalid port"),
    ERR("announce_uploaded_negative", BASE "&uploaded=-1", "invalid uploaded"),
    ERR("announce_uploaded_over_int64", BASE "&uploaded=9223372036854775808", "invalid uploaded"),
    ERR("announce_uploaded_uint64_max", BASE "&uploaded=18446744073709551615", "invalid uploaded"),
    ERR("announce_uploaded_over_uint64", BASE "&uploaded=18446744073709551616",
        "invalid uploaded"),
    ERR("announce_uploaded_20_nines", BASE "&uploaded=99999999999999999999", "invalid uploaded"),
    ERR("announce_uploaded_21_digits", BASE "&uploaded=000000000000000000001", "invalid uploaded"),
    ERR("announce_downloaded_text", BASE "&downloaded=x", "invalid downloaded"),
    ERR("announce_downloaded_over_uint64", BASE "&downloaded=36893488147419103232",
        "invalid downloaded"),
    ERR("announce_left_fraction", BASE "&left=1.5", "invalid left"),
    ERR("announce_left_empty", BASE "&left=", "invalid left"),
    ERR("announce_left_over_int64", BASE "&left=9223372036854775808", "invalid left"),
    ERR("announce_numwant_negative", BASE "&numwant=-1", "invalid numwant"),
    ERR("announce_numwant_over_limit", BASE "&numwant=1073741825", "invalid numwant"),
    ERR("announce_numwant_overflow", BASE "&numwant=18446744073709551616", "invalid numwant"),
    ERR("announce_numwant_text", BASE "&numwant=all", "invalid numwant"),

    /* Events. */
    ERR("announce_event_unknown", BASE "&event=bogus", "invalid event"),
    ERR("announce_event_case", BASE "&event=Started", "invalid event"),
    ERR("announce_event_prefix", BASE "&event=start", "invalid event"),
    ERR("announce_event_trailing", BASE "&event=stoppedx", "invalid event"),

    /* The first bad field is reported, even before a missing one. */
    ERR("announce_first_error_wins", "port=0&event=bogus", "invalid port"),
};
// clang-format on

static void test_announce(void **state) {
  const announce_case *c = *state;
  syn_announce_query q;
  memset(&q, 0xA5, sizeof q); /* the parser must set every field itself */
  const char *err = syn_announce_query_parse(c->query, c->len, &q);
  if (c->err) {
    assert_non_null(err);
    assert_string_equal(err, c->err);
    return;
  }
  if (err) fail_msg("unexpected failure: %s", err);
  const announce_want *w = &c->want;
  assert_memory_equal(q.info_hash, w->info_hash, 20);
  assert_memory_equal(q.peer_id, w->peer_id, 20);
  assert_int_equal(q.port, w->port);
  assert_true(q.uploaded == w->uploaded);
  assert_true(q.downloaded == w->downloaded);
  assert_true(q.left == w->left);
  assert_int_equal(q.event, w->event);
  assert_int_equal(q.numwant, w->numwant);
  assert_int_equal(q.compact, w->compact);
  assert_int_equal(q.no_peer_id, w->no_peer_id);
}

/* The query is a byte range, not a C string: nothing past `len` is read. */
static void test_announce_respects_len(void **state) {
  (void)state;
  static const char q[] = BASE "&left=0&event=bogus";
  syn_announce_query a;
  size_t len = sizeof(BASE) - 1 + strlen("&left=0");
  assert_null(syn_announce_query_parse(q, len, &a));
  assert_true(a.left == 0);
  assert_int_equal(a.event, 0);
  /* Cut inside the port value: "port=68". */
  assert_null(syn_announce_query_parse(q, sizeof(BASE) - 1 - 2, &a));
  assert_int_equal(a.port, 68);
}

/* ---- scrape parsing ---- */

typedef struct scrape_case {
  const char *name;
  const char *query;
  size_t len;
  const char *err;
  size_t count;
  const char *hashes; /* count * 20 bytes */
} scrape_case;

#define IH2_Q "bbbbbbbbbbbbbbbbbbbb"
#define IH3_Q "%FF%FE%FD%FC%FB%FA%F9%F8%F7%F6%F5%F4%F3%F2%F1%F0%EF%EE%ED%EC"
#define IH3_B "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0\xef\xee\xed\xec"

// clang-format off
static const scrape_case scrape_cases[] = {
    {"scrape_no_query_is_full", NULL, 0, NULL, 0, ""},
    {"scrape_empty_query_is_full", LIT(""), NULL, 0, ""},
    {"scrape_only_other_keys_is_full", LIT("key=1&peer_id=x"), NULL, 0, ""},
    {"scrape_one", LIT("info_hash=" IH_Q), NULL, 1, IH_B},
    {"scrape_three_in_request_order",
     LIT("info_hash=" IH3_Q "&info_hash=" IH_Q "&info_hash=" IH2_Q), NULL, 3,
     IH3_B IH_B "bbbbbbbbbbbbbbbbbbbb"},
    {"scrape_duplicates_kept_for_the_reply_to_merge",
     LIT("info_hash=" IH_Q "&info_hash=" IH_Q), NULL, 2, IH_B IH_B},
    {"scrape_other_keys_ignored",
     LIT("peer_id=abc&info_hash=" IH_Q "&info_hashes=x&INFO_HASH=y&info_hash=" ZERO20_Q
         "&numwant=3"),
     NULL, 2, IH_B ZERO20_B},
    {"scrape_binary_nul", LIT("info_hash=" ZERO20_Q), NULL, 1, ZERO20_B},
    {"scrape_short_hash", LIT("info_hash=" IH_Q "&info_hash=abc"),
     "invalid info_hash: must be 20 bytes", 0, ""},
    {"scrape_long_hash", LIT("info_hash=" IH_Q "%00"), "invalid info_hash: must be 20 bytes", 0,
     ""},
    {"scrape_empty_hash", LIT("info_hash="), "invalid info_hash: must be 20 bytes", 0, ""},
    {"scrape_bad_escape", LIT("info_hash=%zz4Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"),
     "invalid info_hash: must be 20 bytes", 0, ""},
};
// clang-format on

static void test_scrape(void **state) {
  const scrape_case *c = *state;
  static syn_scrape_query q;
  memset(&q, 0xA5, sizeof q);
  const char *err = syn_scrape_query_parse(c->query, c->len, &q);
  if (c->err) {
    assert_non_null(err);
    assert_string_equal(err, c->err);
    return;
  }
  if (err) fail_msg("unexpected failure: %s", err);
  assert_int_equal(q.count, c->count);
  for (size_t i = 0; i < c->count; i++) assert_memory_equal(q.hashes[i], c->hashes + 20 * i, 20);
}

/* Builds "info_hash=<h0>&info_hash=<h1>..." with n distinct hashes (byte i, then zeros). */
static char *many_hashes_query(size_t n, size_t *len) {
  size_t cap = n * (sizeof("info_hash=&") - 1 + 60) + 1;
  char *q = malloc(cap);
  assert_non_null(q);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    off += (size_t)snprintf(q + off, cap - off, "%sinfo_hash=%%%02X%%%02X", i ? "&" : "",
                            (unsigned)(i >> 8), (unsigned)(i & 0xff));
    for (int k = 0; k < 18; k++) off += (size_t)snprintf(q + off, cap - off, "%%00");
  }
  *len = off;
  return q;
}

static void test_scrape_256_accepted(void **state) {
  (void)state;
  size_t len;
  char *text = many_hashes_query(SYN_SCRAPE_MAX_HASHES, &len);
  static syn_scrape_query q;
  assert_null(syn_scrape_query_parse(text, len, &q));
  assert_int_equal(q.count, 256);
  for (size_t i = 0; i < 256; i++) {
    assert_int_equal(q.hashes[i][0], i >> 8);
    assert_int_equal(q.hashes[i][1], i & 0xff);
  }
  free(text);
}

static void test_scrape_257_refused(void **state) {
  (void)state;
  size_t len;
  char *text = many_hashes_query(SYN_SCRAPE_MAX_HASHES + 1, &len);
  static syn_scrape_query q;
  const char *err = syn_scrape_query_parse(text, len, &q);
  assert_non_null(err);
  assert_string_equal(err, "too many info_hash values in one scrape");
  free(text);
}

/* ---- replies ---- */

#define COUNTS(c, d, i) \
  "d8:completei" c "e10:downloadedi" d "e10:incompletei" i "e8:intervali1800e12:min intervali900e"

static const uint8_t peers4[] = {1, 2, 3, 4, 0x1a, 0xe1, 10, 0, 0, 255, 0xff, 0xff};
static const uint8_t peers6[] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                                 0x1a, 0xe1};
static const uint8_t ids4[] = "-AA0001-000000000001" "-AA0001-000000000002";
static const uint8_t ids6[] = "-BB0001-00000000e:00";

typedef enum { FORM_COMPACT, FORM_DICT, FORM_DICT_NO_PEER_ID } reply_form;

typedef struct reply_case {
  const char *name;
  reply_form form;
  syn_announce_reply_view view;
  const char *want;
  size_t want_len;
} reply_case;

// clang-format off
static const reply_case reply_cases[] = {
    {"reply_compact_empty", FORM_COMPACT,
     {1800, 900, 0, 1, 0, NULL, 0, NULL, 0, NULL, NULL},
     LIT(COUNTS("0", "0", "1") "5:peers0:e")},
    {"reply_compact_ipv4", FORM_COMPACT,
     {1800, 900, 3, 7, 11, peers4, 2, NULL, 0, NULL, NULL},
     LIT(COUNTS("3", "11", "7") "5:peers12:\x01\x02\x03\x04\x1a\xe1\x0a\x00\x00\xff\xff\xff" "e")},
    {"reply_compact_with_peers6", FORM_COMPACT,
     {1800, 900, 1, 1, 0, peers4, 1, peers6, 1, NULL, NULL},
     LIT(COUNTS("1", "0", "1") "5:peers6:\x01\x02\x03\x04\x1a\xe1"
         "6:peers618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe1" "e")},
    {"reply_compact_only_peers6", FORM_COMPACT,
     {1800, 900, 0, 2, 0, NULL, 0, peers6, 1, NULL, NULL},
     LIT(COUNTS("0", "0", "2") "5:peers0:"
         "6:peers618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe1" "e")},
    {"reply_compact_ids_ignored", FORM_COMPACT,
     {1800, 900, 0, 1, 0, peers4, 1, NULL, 0, ids4, NULL},
     LIT(COUNTS("0", "0", "1") "5:peers6:\x01\x02\x03\x04\x1a\xe1" "e")},
    {"reply_compact_uint32_max_counts", FORM_COMPACT,
     {86400, 1, 4294967295u, 4294967295u, 4294967295u, NULL, 0, NULL, 0, NULL, NULL},
     LIT("d8:completei4294967295e10:downloadedi4294967295e10:incompletei4294967295e"
         "8:intervali86400e12:min intervali1e5:peers0:e")},
    {"reply_dict_empty", FORM_DICT,
     {1800, 900, 0, 1, 0, NULL, 0, NULL, 0, NULL, NULL},
     LIT(COUNTS("0", "0", "1") "5:peerslee")},
    {"reply_dict_with_peer_ids", FORM_DICT,
     {1800, 900, 1, 2, 0, peers4, 2, NULL, 0, ids4, NULL},
     LIT(COUNTS("1", "0", "2") "5:peersl"
         "d2:ip7:1.2.3.47:peer id20:-AA0001-0000000000014:porti6881ee"
         "d2:ip10:10.0.0.2557:peer id20:-AA0001-0000000000024:porti65535ee"
         "ee")},
    {"reply_dict_no_peer_id", FORM_DICT_NO_PEER_ID,
     {1800, 900, 1, 2, 0, peers4, 2, NULL, 0, ids4, NULL},
     LIT(COUNTS("1", "0", "2") "5:peersl"
         "d2:ip7:1.2.3.44:porti6881ee"
         "d2:ip10:10.0.0.2554:porti65535ee"
         "ee")},
    {"reply_dict_ids_absent", FORM_DICT,
     {1800, 900, 1, 2, 0, peers4, 1, NULL, 0, NULL, NULL},
     LIT(COUNTS("1", "0", "2") "5:peersl" "d2:ip7:1.2.3.44:porti6881ee" "ee")},
    {"reply_dict_ipv6_joins_list", FORM_DICT,
     {1800, 900, 0, 3, 0, peers4, 1, peers6, 1, ids4, ids6},
     LIT(COUNTS("0", "0", "3") "5:peersl"
         "d2:ip7:1.2.3.47:peer id20:-AA0001-0000000000014:porti6881ee"
         "d2:ip11:2001:db8::17:peer id20:-BB0001-00000000e:004:porti6881ee"
         "ee")},
    {"reply_dict_ipv6_no_peer_id", FORM_DICT_NO_PEER_ID,
     {1800, 900, 0, 3, 0, NULL, 0, peers6, 1, NULL, ids6},
     LIT(COUNTS("0", "0", "3") "5:peersl" "d2:ip11:2001:db8::14:porti6881ee" "ee")},
};
// clang-format on

static void test_reply(void **state) {
  const reply_case *c = *state;
  syn_buf b = SYN_BUF_INIT;
  int rc = c->form == FORM_COMPACT ? syn_announce_reply_compact(&b, &c->view)
                                   : syn_announce_reply_dict(&b, &c->view,
                                                             c->form == FORM_DICT_NO_PEER_ID);
  assert_int_equal(rc, 0);
  if (b.len != c->want_len || memcmp(b.data, c->want, b.len) != 0) {
    print_message("got  (%zu): %.*s\nwant (%zu): %.*s\n", b.len, (int)b.len, (const char *)b.data,
                  c->want_len, (int)c->want_len, c->want);
  }
  assert_int_equal(b.len, c->want_len);
  assert_memory_equal(b.data, c->want, c->want_len);
  syn_buf_free(&b);
}

/* Replies append: whatever the buffer held before stays in front. */
static void test_reply_appends(void **state) {
  (void)state;
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_buf_append_str(&b, "XY"), 0);
  syn_announce_reply_view v = {1800, 900, 0, 1, 0, NULL, 0, NULL, 0, NULL, NULL};
  assert_int_equal(syn_announce_reply_compact(&b, &v), 0);
  static const char want[] = "XY" COUNTS("0", "0", "1") "5:peers0:e";
  assert_int_equal(b.len, sizeof want - 1);
  assert_memory_equal(b.data, want, sizeof want - 1);
  syn_buf_free(&b);
}

/* ---- scrape reply ---- */

typedef struct scrape_entry {
  uint8_t hash[20];
  uint8_t counts[12]; /* complete, downloaded, incomplete: big-endian uint32 */
} scrape_entry;

#define BE(x) (uint8_t)((x) >> 24), (uint8_t)((x) >> 16), (uint8_t)((x) >> 8), (uint8_t)(x)
#define ENTRY(h, c, d, i) {{h}, {BE(c), BE(d), BE(i)}}
#define H(b) b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b

typedef struct scrape_reply_case {
  const char *name;
  scrape_entry entries[6];
  size_t count;
  const char *want;
  size_t want_len;
} scrape_reply_case;

#define FILE_ENTRY(c, d, i) "d8:completei" c "e10:downloadedi" d "e10:incompletei" i "ee"

// clang-format off
static const scrape_reply_case scrape_reply_cases[] = {
    {"scrape_reply_empty", {{{0}, {0}}}, 0, LIT("d5:filesdee")},
    {"scrape_reply_one", {ENTRY(H('a'), 1, 2, 3)}, 1,
     LIT("d5:filesd20:aaaaaaaaaaaaaaaaaaaa" FILE_ENTRY("1", "2", "3") "ee")},
    {"scrape_reply_unknown_is_zeros", {ENTRY(H('z'), 0, 0, 0)}, 1,
     LIT("d5:filesd20:zzzzzzzzzzzzzzzzzzzz" FILE_ENTRY("0", "0", "0") "ee")},
    {"scrape_reply_sorted",
     {ENTRY(H('c'), 3, 0, 0), ENTRY(H('a'), 1, 0, 0), ENTRY(H(0xff), 4, 0, 0),
      ENTRY(H('b'), 2, 0, 0), ENTRY(H(0x00), 5, 0, 0)}, 5,
     LIT("d5:filesd"
         "20:" "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0" FILE_ENTRY("5", "0", "0")
         "20:aaaaaaaaaaaaaaaaaaaa" FILE_ENTRY("1", "0", "0")
         "20:bbbbbbbbbbbbbbbbbbbb" FILE_ENTRY("2", "0", "0")
         "20:cccccccccccccccccccc" FILE_ENTRY("3", "0", "0")
         "20:" "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
         FILE_ENTRY("4", "0", "0")
         "ee")},
    {"scrape_reply_deduplicated",
     {ENTRY(H('b'), 2, 7, 9), ENTRY(H('a'), 1, 1, 1), ENTRY(H('b'), 2, 7, 9),
      ENTRY(H('a'), 1, 1, 1), ENTRY(H('b'), 2, 7, 9)}, 5,
     LIT("d5:filesd"
         "20:aaaaaaaaaaaaaaaaaaaa" FILE_ENTRY("1", "1", "1")
         "20:bbbbbbbbbbbbbbbbbbbb" FILE_ENTRY("2", "7", "9")
         "ee")},
    {"scrape_reply_uint32_max", {ENTRY(H('m'), 4294967295u, 4294967295u, 4294967295u)}, 1,
     LIT("d5:filesd20:mmmmmmmmmmmmmmmmmmmm"
         FILE_ENTRY("4294967295", "4294967295", "4294967295") "ee")},
};
// clang-format on

static void test_scrape_reply(void **state) {
  const scrape_reply_case *c = *state;
  uint8_t raw[6 * 32];
  for (size_t i = 0; i < c->count; i++) {
    memcpy(raw + 32 * i, c->entries[i].hash, 20);
    memcpy(raw + 32 * i + 20, c->entries[i].counts, 12);
  }
  uint8_t before[sizeof raw];
  memcpy(before, raw, sizeof raw);
  syn_buf b = SYN_BUF_INIT;
  assert_int_equal(syn_scrape_reply(&b, raw, c->count), 0);
  if (b.len != c->want_len || memcmp(b.data, c->want, b.len) != 0) {
    print_message("got  (%zu): %.*s\nwant (%zu): %.*s\n", b.len, (int)b.len, (const char *)b.data,
                  c->want_len, (int)c->want_len, c->want);
  }
  assert_int_equal(b.len, c->want_len);
  assert_memory_equal(b.data, c->want, c->want_len);
  assert_memory_equal(raw, before, sizeof raw); /* the caller's entries are left alone */
  syn_buf_free(&b);
}

#define ADD_TABLE(tests, n, table, fn)                               \
  for (size_t i_ = 0; i_ < sizeof(table) / sizeof((table)[0]); i_++) \
    (tests)[(n)++] = (struct CMUnitTest) {                           \
      (table)[i_].name, (fn), NULL, NULL, (void *)&(table)[i_]       \
    }

int main(void) {
  static struct CMUnitTest tests[256];
  size_t n = 0;
  ADD_TABLE(tests, n, announce_cases, test_announce);
  ADD_TABLE(tests, n, scrape_cases, test_scrape);
  ADD_TABLE(tests, n, reply_cases, test_reply);
  ADD_TABLE(tests, n, scrape_reply_cases, test_scrape_reply);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_announce_respects_len);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_scrape_256_accepted);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_scrape_257_refused);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_reply_appends);
  return _cmocka_run_group_tests("tracker_query", tests, n, NULL, NULL);
}
