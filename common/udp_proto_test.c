/* BEP 15 / BEP 41 codec tests: golden packets written out byte by byte, every short length,
 * wrong magic, unknown actions, scrape counts at and past the bounds, malformed options, and
 * builders checked for exact bytes and for never writing past `cap`. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/udp_proto.h"

#include <string.h>

#define LIT(s) (const uint8_t *)(s), sizeof(s) - 1
#define CANARY 0xA5

/* A connect request, tid 0xdeadbeef. */
static const uint8_t connect_pkt[16] = {0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80,
                                        0x00, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef};

/* An announce with distinct bytes in every field so that any offset or byte-order slip
 * shows: event 2 (started), num_want -1, port 6881. */
static const uint8_t announce_pkt[98] = {
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,             /* connection_id */
    0x00, 0x00, 0x00, 0x01,                                     /* action announce */
    0xca, 0xfe, 0xba, 0xbe,                                     /* transaction_id */
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, /* info_hash */
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x00,
    '-',  'q',  'B',  '4',  '6',  '0',  '0',  '-',  'a',  'b', /* peer_id */
    'c',  'd',  'e',  'f',  'g',  'h',  'i',  'j',  'k',  'l',
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* downloaded */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* left */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* uploaded */
    0x00, 0x00, 0x00, 0x02,                         /* event started */
    0xc0, 0x00, 0x02, 0x07,                         /* ip */
    0x12, 0x34, 0x56, 0x78,                         /* key */
    0xff, 0xff, 0xff, 0xff,                         /* num_want -1 */
    0x1a, 0xe1,                                     /* port 6881 */
};

static void test_parse_connect(void **state) {
  syn_udp_request r;
  assert_int_equal(syn_udp_parse(connect_pkt, sizeof connect_pkt, &r), 0);
  assert_int_equal(r.action, SYN_UDP_CONNECT);
  assert_int_equal(r.connection_id, SYN_UDP_PROTOCOL_ID);
  assert_int_equal(r.transaction_id, 0xdeadbeef);
}

/* Bytes after the 16 are ignored: BEP 15 says not to assume fixed sizes. */
static void test_parse_connect_trailing_bytes(void **state) {
  uint8_t pkt[20];
  memcpy(pkt, connect_pkt, 16);
  memset(pkt + 16, 0xee, 4);
  syn_udp_request r;
  assert_int_equal(syn_udp_parse(pkt, sizeof pkt, &r), 0);
  assert_int_equal(r.transaction_id, 0xdeadbeef);
}

static void test_parse_connect_wrong_magic(void **state) {
  static const uint64_t bad[] = {0, SYN_UDP_PROTOCOL_ID + 1, SYN_UDP_PROTOCOL_ID << 8,
                                 0x8019102717040000ULL /* byte-swapped */, UINT64_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t pkt[16];
    memcpy(pkt, connect_pkt, 16);
    for (int b = 0; b < 8; b++) pkt[b] = (uint8_t)(bad[i] >> (56 - 8 * b));
    syn_udp_request r;
    int rc = syn_udp_parse(pkt, sizeof pkt, &r);
    if (rc != SYN_UDP_ERR_PROTOCOL_ID)
      fail_msg("magic %#llx: rc %d", (unsigned long long)bad[i], rc);
  }
}

static void test_parse_announce_fields(void **state) {
  syn_udp_request r;
  assert_int_equal(syn_udp_parse(announce_pkt, sizeof announce_pkt, &r), 0);
  assert_int_equal(r.connection_id, 0x1122334455667788ULL);
  assert_int_equal(r.action, SYN_UDP_ANNOUNCE);
  assert_int_equal(r.transaction_id, 0xcafebabe);
  assert_memory_equal(r.info_hash, announce_pkt + 16, 20);
  assert_int_equal(r.info_hash[19], 0x00);
  assert_memory_equal(r.peer_id, "-qB4600-abcdefghijkl", 20);
  assert_int_equal(r.downloaded, 0x0102030405060708ULL);
  assert_int_equal(r.left, 0);
  assert_int_equal(r.uploaded, 0xfffffffffffffffeULL);
  assert_int_equal(r.event, 2);
  assert_int_equal(r.ip, 0xc0000207);
  assert_int_equal(r.key, 0x12345678);
  assert_int_equal(r.num_want, -1);
  assert_int_equal(r.port, 6881);
  assert_int_equal(r.url_data_len, 0);
  assert_null(r.scrape_hashes);
  assert_int_equal(r.scrape_count, 0);
}

/* Fields that a client controls but whose range BEP 15 fixes. */
static void test_parse_announce_ranges(void **state) {
  static const struct {
    uint32_t event_in, event_out, num_want_in;
    int32_t num_want_out;
  } rows[] = {
      {0, 0, 0, 0},
      {1, 1, 50, 50},
      {3, 3, 0x7fffffff, INT32_MAX},
      {4, 0, 0x80000000, INT32_MIN},
      {0xffffffff, 0, 0xfffffffe, -2},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    uint8_t pkt[98];
    memcpy(pkt, announce_pkt, sizeof pkt);
    for (int b = 0; b < 4; b++) {
      pkt[80 + b] = (uint8_t)(rows[i].event_in >> (24 - 8 * b));
      pkt[92 + b] = (uint8_t)(rows[i].num_want_in >> (24 - 8 * b));
    }
    syn_udp_request r;
    assert_int_equal(syn_udp_parse(pkt, sizeof pkt, &r), 0);
    assert_int_equal(r.event, rows[i].event_out);
    assert_int_equal(r.num_want, rows[i].num_want_out);
  }
}

/* Every length below each action's minimum is SHORT, never a read past the end: the
 * packet is copied into a buffer of exactly that length so ASan sees any overread. */
static void test_parse_short_every_length(void **state) {
  static const struct {
    const uint8_t *pkt;
    size_t min;
  } kinds[] = {{connect_pkt, 16}, {announce_pkt, 98}};
  for (size_t k = 0; k < 2; k++) {
    for (size_t len = 0; len < kinds[k].min; len++) {
      uint8_t *copy = test_malloc(len ? len : 1);
      memcpy(copy, kinds[k].pkt, len);
      syn_udp_request r;
      int rc = syn_udp_parse(copy, len, &r);
      test_free(copy);
      if (rc != SYN_UDP_ERR_SHORT) fail_msg("kind %zu len %zu: rc %d", k, len, rc);
    }
  }
}

static void test_parse_unknown_action(void **state) {
  static const uint32_t actions[] = {SYN_UDP_ERROR, 4, 0x100, 0xffffffff};
  for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
    uint8_t pkt[16];
    memcpy(pkt, announce_pkt, 16);
    for (int b = 0; b < 4; b++) pkt[8 + b] = (uint8_t)(actions[i] >> (24 - 8 * b));
    syn_udp_request r;
    assert_int_equal(syn_udp_parse(pkt, sizeof pkt, &r), SYN_UDP_ERR_ACTION);
    assert_int_equal(r.action, actions[i]);
    assert_int_equal(r.transaction_id, 0xcafebabe); /* For the error reply. */
  }
}

/* ---- BEP 41 options ---- */

typedef struct option_case {
  const char *name;
  const uint8_t *opts;
  size_t opts_len;
  const uint8_t *want;
  size_t want_len;
} option_case;

/* Option bytes in octal escapes (\2 = URL data, \1 = NOP, \0 = end), which end at the
 * first non-octal digit, so that text can follow them in the same literal. */
static const option_case option_cases[] = {
    {"opt_none", LIT(""), LIT("")},
    {"opt_end_only", LIT("\0"), LIT("")},
    {"opt_url", LIT("\2\14/announce?a="), LIT("/announce?a=")},
    {"opt_url_then_end", LIT("\2\3/an\0"), LIT("/an")},
    {"opt_url_concatenated", LIT("\2\3/an\2\3nou\2\3nce"), LIT("/announce")},
    {"opt_nops_between", LIT("\1\1\2\2ab\1\2\1c\0"), LIT("abc")},
    {"opt_nops_only", LIT("\1\1\1"), LIT("")},
    {"opt_after_end_ignored", LIT("\2\1a\0\2\1b"), LIT("a")},
    {"opt_zero_length_chunk", LIT("\2\0\2\1x"), LIT("x")},
    {"opt_nul_in_url", LIT("\2\3a\0b"), LIT("a\0b")},
    {"opt_missing_length", LIT("\2"), LIT("")},
    {"opt_missing_length_after_good", LIT("\2\1a\2"), LIT("a")},
    {"opt_chunk_past_end", LIT("\2\5abc"), LIT("")},
    {"opt_chunk_past_end_by_one", LIT("\2\4abc"), LIT("")},
    {"opt_good_then_truncated", LIT("\2\1a\2\11bc"), LIT("a")},
    {"opt_max_length_past_end", LIT("\2\377abc"), LIT("")},
    {"opt_unknown_type_stops", LIT("\2\1a\7\1b\2\1c"), LIT("a")},
    {"opt_high_type_stops", LIT("\377"), LIT("")},
};

static void test_options(void **state) {
  const option_case *c = *state;
  size_t len = SYN_UDP_ANNOUNCE_LEN + c->opts_len;
  uint8_t *pkt = test_malloc(len); /* Exact size, so ASan catches overreads. */
  memcpy(pkt, announce_pkt, SYN_UDP_ANNOUNCE_LEN);
  memcpy(pkt + SYN_UDP_ANNOUNCE_LEN, c->opts, c->opts_len);
  static syn_udp_request r;
  int rc = syn_udp_parse(pkt, len, &r);
  test_free(pkt);
  assert_int_equal(rc, 0); /* Options never fail an announce. */
  assert_int_equal(r.port, 6881);
  assert_int_equal(r.url_data_len, c->want_len);
  assert_memory_equal(r.url_data, c->want, c->want_len);
}

/* URL data fills the buffer exactly, and a chunk that would overflow it ends parsing. */
static void test_options_capacity(void **state) {
  static uint8_t pkt[SYN_UDP_ANNOUNCE_LEN + 8 * 257];
  static syn_udp_request r;
  memcpy(pkt, announce_pkt, SYN_UDP_ANNOUNCE_LEN);
  size_t len = SYN_UDP_ANNOUNCE_LEN;
  /* 4 * 255 + 4 = SYN_UDP_MAX_URL_DATA, then one more byte. */
  static const uint8_t sizes[] = {255, 255, 255, 255, 4, 1};
  for (size_t i = 0; i < sizeof sizes; i++) {
    pkt[len++] = 2;
    pkt[len++] = sizes[i];
    memset(pkt + len, 'a' + (int)i, sizes[i]);
    len += sizes[i];
  }
  assert_int_equal(SYN_UDP_MAX_URL_DATA, 1024);
  assert_int_equal(syn_udp_parse(pkt, len, &r), 0);
  assert_int_equal(r.url_data_len, 1024);
  assert_int_equal(r.url_data[0], 'a');
  assert_int_equal(r.url_data[1019], 'd');
  assert_int_equal(r.url_data[1020], 'e');
  assert_int_equal(r.url_data[1023], 'e');
}

/* ---- scrape ---- */

typedef struct scrape_case {
  const char *name;
  size_t body_len; /* bytes after the 16-byte header */
  int want_rc;
  size_t want_count;
} scrape_case;

static const scrape_case scrape_cases[] = {
    {"scrape_count_0", 0, SYN_UDP_ERR_SCRAPE_COUNT, 0},
    {"scrape_count_1", 20, 0, 1},
    {"scrape_count_2", 40, 0, 2},
    {"scrape_count_74", 74 * 20, 0, 74},
    {"scrape_count_75", 75 * 20, SYN_UDP_ERR_SCRAPE_COUNT, 0},
    {"scrape_count_1000", 1000 * 20, SYN_UDP_ERR_SCRAPE_COUNT, 0},
    {"scrape_partial_only_1", 1, SYN_UDP_ERR_SCRAPE_COUNT, 0},
    {"scrape_partial_only_19", 19, SYN_UDP_ERR_SCRAPE_COUNT, 0},
    {"scrape_partial_trailing_1", 21, SYN_UDP_ERR_SCRAPE_COUNT, 0},
    {"scrape_partial_trailing_19", 39, SYN_UDP_ERR_SCRAPE_COUNT, 0},
    {"scrape_74_plus_partial", 74 * 20 + 1, SYN_UDP_ERR_SCRAPE_COUNT, 0},
};

static void test_scrape(void **state) {
  const scrape_case *c = *state;
  size_t len = 16 + c->body_len;
  uint8_t *pkt = test_malloc(len);
  memcpy(pkt, announce_pkt, 16);
  pkt[11] = SYN_UDP_SCRAPE;
  for (size_t i = 0; i < c->body_len; i++) pkt[16 + i] = (uint8_t)(i / 20 + i);
  syn_udp_request r;
  int rc = syn_udp_parse(pkt, len, &r);
  assert_int_equal(rc, c->want_rc);
  assert_int_equal(r.action, SYN_UDP_SCRAPE);
  assert_int_equal(r.transaction_id, 0xcafebabe);
  assert_int_equal(r.scrape_count, c->want_count);
  if (rc == 0) {
    assert_ptr_equal(r.scrape_hashes, pkt + 16);
  } else {
    assert_null(r.scrape_hashes);
  }
  test_free(pkt);
}

/* A reused request struct carries nothing over from the previous packet. */
static void test_parse_resets_request(void **state) {
  static uint8_t pkt[98 + 5];
  static syn_udp_request r;
  memcpy(pkt, announce_pkt, 98);
  memcpy(pkt + 98, "\x02\x03xyz", 5);
  assert_int_equal(syn_udp_parse(pkt, sizeof pkt, &r), 0);
  assert_int_equal(r.url_data_len, 3);
  uint8_t scrape[36];
  memcpy(scrape, announce_pkt, 36);
  scrape[11] = SYN_UDP_SCRAPE;
  assert_int_equal(syn_udp_parse(scrape, sizeof scrape, &r), 0);
  assert_int_equal(r.url_data_len, 0);
  assert_int_equal(r.port, 0);
  assert_int_equal(r.scrape_count, 1);
  assert_int_equal(syn_udp_parse(connect_pkt, sizeof connect_pkt, &r), 0);
  assert_null(r.scrape_hashes);
  assert_int_equal(r.scrape_count, 0);
}

/* ---- builders ---- */

static void assert_untouched(const uint8_t *buf, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    if (buf[i] != CANARY) fail_msg("byte %zu written: %#x", i, buf[i]);
  }
}

static void test_build_connect(void **state) {
  static const uint8_t want[16] = {0,    0,    0,    0,    0xde, 0xad, 0xbe, 0xef,
                                   0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  uint8_t out[32];
  memset(out, CANARY, sizeof out);
  assert_int_equal(syn_udp_build_connect(out, 15, 0xdeadbeef, 0x0102030405060708ULL), 0);
  assert_untouched(out, 0, sizeof out);
  assert_int_equal(syn_udp_build_connect(out, 16, 0xdeadbeef, 0x0102030405060708ULL), 16);
  assert_memory_equal(out, want, 16);
  assert_untouched(out, 16, sizeof out);
}

static void test_build_announce_ipv4(void **state) {
  static const uint8_t peers[12] = {10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0xc8, 0xd5};
  static const uint8_t want[32] = {0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, /* action, tid */
                                   0x00, 0x00, 0x07, 0x08, /* interval 1800 */
                                   0x00, 0x00, 0x00, 0x03, /* leechers */
                                   0x00, 0x01, 0x00, 0x00, /* seeders 65536 */
                                   10,   0,    0,    1,    0x1a, 0xe1, 192,  168,
                                   1,    2,    0xc8, 0xd5};
  uint8_t out[40];
  memset(out, CANARY, sizeof out);
  assert_int_equal(syn_udp_build_announce(out, 32, 0x01020304, 1800, 3, 65536, peers, 12), 32);
  assert_memory_equal(out, want, 32);
  assert_untouched(out, 32, sizeof out);
}

static void test_build_announce_ipv6(void **state) {
  static const uint8_t peer[18] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,    0,
                                   0,    0,    0,    0,    0, 0, 1, 0x1a, 0xe1};
  uint8_t out[64];
  memset(out, CANARY, sizeof out);
  assert_int_equal(syn_udp_build_announce(out, sizeof out, 7, 900, 0, 1, peer, 18), 38);
  static const uint8_t head[20] = {0,    0,    0, 1, 0, 0, 0, 7, 0, 0,
                                   0x03, 0x84, 0, 0, 0, 0, 0, 0, 0, 1};
  assert_memory_equal(out, head, 20);
  assert_memory_equal(out + 20, peer, 18);
  assert_untouched(out, 38, sizeof out);
}

static void test_build_announce_no_peers(void **state) {
  uint8_t out[20];
  assert_int_equal(syn_udp_build_announce(out, 20, 9, 60, 0, 0, NULL, 0), 20);
  static const uint8_t want[20] = {0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_memory_equal(out, want, 20);
}

static void test_build_announce_too_small(void **state) {
  static const uint8_t peers[12] = {0};
  uint8_t out[40];
  memset(out, CANARY, sizeof out);
  assert_int_equal(syn_udp_build_announce(out, 31, 1, 1, 1, 1, peers, 12), 0);
  assert_int_equal(syn_udp_build_announce(out, 19, 1, 1, 1, 1, NULL, 0), 0);
  assert_int_equal(syn_udp_build_announce(out, 0, 1, 1, 1, 1, NULL, 0), 0);
  /* A huge peers_len must not wrap the bound check. */
  assert_int_equal(syn_udp_build_announce(out, sizeof out, 1, 1, 1, 1, peers, SIZE_MAX), 0);
  assert_int_equal(syn_udp_build_announce(out, sizeof out, 1, 1, 1, 1, peers, SIZE_MAX - 19), 0);
  assert_untouched(out, 0, sizeof out);
}

static void test_build_scrape(void **state) {
  static const uint8_t want[32] = {
      0,    0,    0,    2,    0xaa, 0xbb, 0xcc, 0xdd,             /* action, tid */
      0,    0,    0,    5,    0,    0,    0,    9,    0, 0, 0, 2, /* seeders, completed, leechers */
      0xff, 0xff, 0xff, 0xff, 0,    0,    0,    0,    0, 0, 1, 0  /* second hash */
  };
  uint8_t out[40];
  memset(out, CANARY, sizeof out);
  size_t n = syn_udp_build_scrape_header(out, 32, 0xaabbccdd);
  assert_int_equal(n, 8);
  n = syn_udp_put_scrape_entry(out, 32, n, 5, 9, 2);
  assert_int_equal(n, 20);
  n = syn_udp_put_scrape_entry(out, 32, n, 0xffffffff, 0, 256); /* Fills cap exactly. */
  assert_int_equal(n, 32);
  assert_memory_equal(out, want, 32);
  assert_int_equal(syn_udp_put_scrape_entry(out, 32, n, 1, 1, 1), 0); /* Full. */
  assert_untouched(out, 32, sizeof out);
}

static void test_build_scrape_bounds(void **state) {
  uint8_t out[24];
  memset(out, CANARY, sizeof out);
  assert_int_equal(syn_udp_build_scrape_header(out, 7, 1), 0);
  assert_int_equal(syn_udp_put_scrape_entry(out, 19, 8, 1, 1, 1), 0);
  assert_int_equal(syn_udp_put_scrape_entry(out, 8, 20, 1, 1, 1), 0); /* offset > cap */
  assert_int_equal(syn_udp_put_scrape_entry(out, 8, SIZE_MAX - 4, 1, 1, 1), 0);
  assert_untouched(out, 0, sizeof out);
}

static void test_build_error(void **state) {
  static const uint8_t want[] = {0,   0,   0,   3,   0x12, 0x34, 0x56, 0x78, 'b',
                                 'a', 'd', ' ', 'c', 'o',  'n',  'n',  'e',  'c',
                                 't', 'i', 'o', 'n', ' ',  'i',  'd'};
  uint8_t out[40];
  memset(out, CANARY, sizeof out);
  assert_int_equal(syn_udp_build_error(out, sizeof want - 1, 0x12345678, "bad connection id"), 0);
  assert_untouched(out, 0, sizeof out);
  assert_int_equal(syn_udp_build_error(out, sizeof want, 0x12345678, "bad connection id"),
                   sizeof want);
  assert_memory_equal(out, want, sizeof want);
  assert_untouched(out, sizeof want, sizeof out); /* No NUL terminator. */
}

static void test_build_error_empty(void **state) {
  uint8_t out[16];
  memset(out, CANARY, sizeof out);
  assert_int_equal(syn_udp_build_error(out, 7, 5, ""), 0);
  assert_int_equal(syn_udp_build_error(out, 8, 5, ""), 8);
  static const uint8_t want[8] = {0, 0, 0, 3, 0, 0, 0, 5};
  assert_memory_equal(out, want, 8);
  assert_untouched(out, 8, sizeof out);
}

/* ---- runner ---- */

#define ADD_TABLE(tests, n, table, fn)                               \
  for (size_t i_ = 0; i_ < sizeof(table) / sizeof((table)[0]); i_++) \
    (tests)[(n)++] = (struct CMUnitTest) {                           \
      (table)[i_].name, (fn), NULL, NULL, (void *)&(table)[i_]       \
    }

int main(void) {
  static const struct CMUnitTest fixed[] = {
      cmocka_unit_test(test_parse_connect),
      cmocka_unit_test(test_parse_connect_trailing_bytes),
      cmocka_unit_test(test_parse_connect_wrong_magic),
      cmocka_unit_test(test_parse_announce_fields),
      cmocka_unit_test(test_parse_announce_ranges),
      cmocka_unit_test(test_parse_short_every_length),
      cmocka_unit_test(test_parse_unknown_action),
      cmocka_unit_test(test_parse_resets_request),
      cmocka_unit_test(test_options_capacity),
      cmocka_unit_test(test_build_connect),
      cmocka_unit_test(test_build_announce_ipv4),
      cmocka_unit_test(test_build_announce_ipv6),
      cmocka_unit_test(test_build_announce_no_peers),
      cmocka_unit_test(test_build_announce_too_small),
      cmocka_unit_test(test_build_scrape),
      cmocka_unit_test(test_build_scrape_bounds),
      cmocka_unit_test(test_build_error),
      cmocka_unit_test(test_build_error_empty),
  };
  struct CMUnitTest tests[128];
  size_t n = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) tests[n++] = fixed[i];
  ADD_TABLE(tests, n, option_cases, test_options);
  ADD_TABLE(tests, n, scrape_cases, test_scrape);
  return _cmocka_run_group_tests("udp_proto", tests, n, NULL, NULL);
}
