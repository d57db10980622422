/* Unit tests for swarm snapshots: round trip, expiry across the restart, and refusal of
 * truncated, corrupt, foreign and oversized files (the store must then be empty). Clocks
 * are passed in: the "restart" moves the wall clock and gives the new store another
 * monotonic origin, as a real restart does. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "node/swarm_snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT 100u
#define MONO0 5000u        /* store clock of the first process */
#define MONO1 200u         /* store clock of the second: it has just booted */
#define WALL0 1700000000LL /* wall clock at the save */
#define MAX_BYTES (64u << 20)

typedef struct fixture {
  char dir[64];
  char path[96];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/swarm_snapshot_test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/%s", f->dir, SYN_SNAPSHOT_FILE);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  unlink(f->path);
  rmdir(f->dir);
  free(f);
  return 0;
}

static void hash_of(uint8_t ih[20], uint32_t n) {
  memset(ih, 0x5A, 20);
  memcpy(ih, &n, 4);
}

static int announce(syn_swarm_store *s, uint32_t swarm_n, uint32_t host, bool six, uint64_t left,
                    int event, uint32_t now, syn_announce_result *r) {
  uint8_t ih[20], id[20], ip[16] = {0};
  hash_of(ih, swarm_n);
  memset(id, (int)host, 20);
  if (six) {
    ip[0] = 0x20;
    ip[1] = 0x01;
    ip[15] = (uint8_t)host;
  } else {
    ip[0] = 10;
    ip[3] = (uint8_t)host;
  }
  static uint8_t p4[6 * 64], p6[18 * 64];
  syn_announce req = {.info_hash = ih,
                      .peer_id = id,
                      .ip = ip,
                      .ip_len = six ? 16 : 4,
                      .port = (uint16_t)(6881 + host),
                      .event = event,
                      .left = left,
                      .numwant = 64,
                      .families = SYN_FAMILY_V4 | SYN_FAMILY_V6};
  *r = (syn_announce_result){.peers4 = p4, .peers6 = p6};
  return syn_swarm_announce(s, &req, now, r);
}

static syn_scrape_result scrape(syn_swarm_store *s, uint32_t swarm_n, uint32_t now) {
  uint8_t ih[20];
  hash_of(ih, swarm_n);
  syn_scrape_result r;
  syn_swarm_scrape(s, ih, now, &r);
  return r;
}

/* Swarm 1: 3 IPv4 leechers, 1 IPv6 seeder that completed. Swarm 2: one leecher that
 * announced 60 s before the save. Swarm 3: downloads but no peers left. */
static syn_swarm_store *populate(void) {
  syn_swarm_store *s = syn_swarm_store_new(TIMEOUT);
  assert_non_null(s);
  syn_announce_result r;
  assert_int_equal(announce(s, 2, 9, false, 5, SYN_EVENT_STARTED, MONO0 - 60, &r), 0);
  for (uint32_t h = 1; h <= 3; h++)
    assert_int_equal(announce(s, 1, h, false, 10, SYN_EVENT_STARTED, MONO0, &r), 0);
  assert_int_equal(announce(s, 1, 4, true, 10, SYN_EVENT_STARTED, MONO0, &r), 0);
  assert_int_equal(announce(s, 1, 4, true, 0, SYN_EVENT_COMPLETED, MONO0, &r), 0);
  assert_int_equal(announce(s, 3, 5, false, 0, SYN_EVENT_COMPLETED, MONO0 - 10, &r), 0);
  assert_int_equal(announce(s, 3, 5, false, 0, SYN_EVENT_STOPPED, MONO0 - 10, &r), 0);
  return s;
}

static void save(fixture *f, syn_swarm_store *s, syn_snapshot_stats *st) {
  char err[256] = "";
  assert_int_equal(
      syn_swarm_snapshot_save(s, f->path, MAX_BYTES, MONO0, WALL0, TIMEOUT, st, err, sizeof err),
      0);
}

static int load(fixture *f, syn_swarm_store *s, int64_t wall, syn_snapshot_stats *st) {
  char err[256] = "";
  return syn_swarm_snapshot_load(s, f->path, MAX_BYTES, MONO1, wall, TIMEOUT, st, err, sizeof err);
}

static void assert_empty(syn_swarm_store *s) {
  syn_swarm_totals t;
  syn_swarm_totals_get(s, &t);
  assert_int_equal(t.torrents, 0);
  assert_int_equal(t.peers, 0);
}

static void test_round_trip(void **state) {
  fixture *f = *state;
  syn_swarm_store *a = populate();
  syn_snapshot_stats st;
  save(f, a, &st);
  assert_int_equal(st.swarms, 3);
  assert_int_equal(st.peers, 5);
  assert_int_equal(st.bytes, 24 + 3 * 33 + 4 * 36 + 48 + 49);
  syn_swarm_store *b = syn_swarm_store_new(TIMEOUT);
  assert_int_equal(load(f, b, WALL0 + 5, &st), 0);
  assert_int_equal(st.swarms, 3);
  assert_int_equal(st.peers, 5);
  assert_int_equal(st.file_peers, 5);
  assert_int_equal(st.expired, 0);
  for (uint32_t n = 1; n <= 3; n++) {
    syn_scrape_result x = scrape(a, n, MONO0), y = scrape(b, n, MONO1);
    assert_int_equal(x.complete, y.complete);
    assert_int_equal(x.incomplete, y.incomplete);
    assert_int_equal(x.downloaded, y.downloaded);
  }
  assert_int_equal(scrape(b, 1, MONO1).complete, 1);
  assert_int_equal(scrape(b, 1, MONO1).incomplete, 3);
  assert_int_equal(scrape(b, 1, MONO1).downloaded, 1);
  assert_int_equal(scrape(b, 3, MONO1).downloaded, 1);
  /* A new leecher of swarm 1 is handed the four restored peers, both families. */
  syn_announce_result r;
  assert_int_equal(announce(b, 1, 7, false, 10, SYN_EVENT_STARTED, MONO1, &r), 0);
  assert_int_equal(r.peers4_count, 3);
  assert_int_equal(r.peers6_count, 1);
  syn_swarm_store_free(a);
  syn_swarm_store_free(b);
}

/* Peers keep their wall-clock expiry: swarm 2's leecher (60 s old at the save) outlives
 * the restart by TIMEOUT - 60 - gap seconds, and is dropped at load once that has passed. */
static void test_expiry_kept(void **state) {
  fixture *f = *state;
  syn_swarm_store *a = populate();
  syn_snapshot_stats st;
  save(f, a, &st);
  syn_swarm_store *b = syn_swarm_store_new(TIMEOUT);
  assert_int_equal(load(f, b, WALL0 + 30, &st), 0);
  assert_int_equal(scrape(b, 2, MONO1).incomplete, 1);
  /* 60 + 30 seconds old: it expires 10 s (+1) later on the new clock, not TIMEOUT later. */
  assert_int_equal(scrape(b, 2, MONO1 + 9).incomplete, 1);
  syn_swarm_expire_step(b, MONO1 + 11, 1000);
  assert_int_equal(scrape(b, 2, MONO1 + 11).incomplete, 0);
  syn_swarm_store_free(b);

  b = syn_swarm_store_new(TIMEOUT);
  assert_int_equal(load(f, b, WALL0 + 50, &st), 0);
  assert_int_equal(st.expired, 1);
  assert_int_equal(st.peers, 4);
  assert_int_equal(scrape(b, 2, MONO1).incomplete, 0);
  assert_int_equal(scrape(b, 1, MONO1).incomplete, 3);
  syn_swarm_store_free(b);

  /* Long after: every peer expired; only swarm 3 had downloads, and its last announce is
   * older than the timeout too, so the first expiry pass frees it. */
  b = syn_swarm_store_new(TIMEOUT);
  assert_int_equal(load(f, b, WALL0 + 1000, &st), 0);
  assert_int_equal(st.peers, 0);
  assert_int_equal(st.expired, 5);
  syn_swarm_expire_step(b, MONO1, 1000);
  assert_empty(b);
  syn_swarm_store_free(a);
  syn_swarm_store_free(b);
}

static long file_size(const char *path) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fclose(fp);
  return n;
}

static void test_truncated(void **state) {
  fixture *f = *state;
  syn_swarm_store *a = populate();
  syn_snapshot_stats st;
  save(f, a, &st);
  long full = file_size(f->path);
  /* Every length short of the whole file is refused, and leaves the store empty. */
  for (long n = full - 1; n >= 0; n--) {
    assert_int_equal(truncate(f->path, n), 0);
    syn_swarm_store *b = syn_swarm_store_new(TIMEOUT);
    int rc = load(f, b, WALL0, &st);
    assert_int_equal(rc, -EBADMSG);
    assert_empty(b);
    syn_swarm_store_free(b);
  }
  syn_swarm_store_free(a);
}

static void test_corrupt(void **state) {
  fixture *f = *state;
  syn_swarm_store *a = populate();
  syn_snapshot_stats st;
  save(f, a, &st);
  long full = file_size(f->path);
  uint8_t *orig = malloc((size_t)full);
  FILE *fp = fopen(f->path, "rb");
  assert_int_equal(fread(orig, 1, (size_t)full, fp), (size_t)full);
  fclose(fp);
  /* One flipped bit anywhere, header, record or checksum, is refused. */
  for (long off = 0; off < full; off++) {
    orig[off] ^= 0x10;
    fp = fopen(f->path, "wb");
    assert_int_equal(fwrite(orig, 1, (size_t)full, fp), (size_t)full);
    fclose(fp);
    orig[off] ^= 0x10;
    syn_swarm_store *b = syn_swarm_store_new(TIMEOUT);
    assert_int_equal(load(f, b, WALL0, &st), -EBADMSG);
    assert_empty(b);
    syn_swarm_store_free(b);
  }
  free(orig);
  syn_swarm_store_free(a);
}

static void test_refusals(void **state) {
  fixture *f = *state;
  syn_swarm_store *b = syn_swarm_store_new(TIMEOUT);
  syn_snapshot_stats st;
  char err[256] = "";
  assert_int_equal(load(f, b, WALL0, &st), -ENOENT);
  /* Not a snapshot at all. */
  FILE *fp = fopen(f->path, "wb");
  for (int i = 0; i < 200; i++) fputc('x', fp);
  fclose(fp);
  assert_int_equal(load(f, b, WALL0, &st), -EBADMSG);
  /* Another format version. */
  syn_swarm_store *a = populate();
  save(f, a, &st);
  fp = fopen(f->path, "r+b");
  fseek(fp, 8, SEEK_SET);
  fputc(SYN_SNAPSHOT_VERSION + 1, fp);
  fclose(fp);
  assert_int_equal(load(f, b, WALL0, &st), -EBADMSG);
  /* Over the bound: refused before reading, and not written either. */
  save(f, a, &st);
  assert_int_equal(
      syn_swarm_snapshot_load(b, f->path, 100, MONO1, WALL0, TIMEOUT, &st, err, sizeof err),
      -EFBIG);
  assert_empty(b);
  assert_int_equal(
      syn_swarm_snapshot_save(a, f->path, 100, MONO0, WALL0, TIMEOUT, &st, err, sizeof err),
      -EFBIG);
  assert_int_equal(file_size(f->path), 24 + 3 * 33 + 4 * 36 + 48 + 49); /* the old one stays */
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
  assert_int_equal(access(tmp, F_OK), -1);
  syn_swarm_store_free(a);
  syn_swarm_store_free(b);
}

/* A restored peer that re-announces right away is within min interval: its last announce
 * time came through the snapshot too. */
static void test_min_interval_after_load(void **state) {
  fixture *f = *state;
  syn_swarm_store *a = populate();
  syn_snapshot_stats st;
  save(f, a, &st);
  syn_swarm_store *b = syn_swarm_store_new(TIMEOUT);
  assert_int_equal(load(f, b, WALL0 + 5, &st), 0);
  uint8_t ih[20], id[20], ip[4] = {10, 0, 0, 1};
  hash_of(ih, 1);
  memset(id, 1, 20);
  uint8_t p4[6 * 8];
  syn_announce req = {.info_hash = ih,
                      .peer_id = id,
                      .ip = ip,
                      .ip_len = 4,
                      .port = 6882,
                      .left = 0,
                      .numwant = 8,
                      .families = SYN_FAMILY_V4,
                      .min_interval = 30};
  syn_announce_result r = {.peers4 = p4};
  assert_int_equal(syn_swarm_announce(b, &req, MONO1, &r), 0);
  assert_true(r.early);
  assert_int_equal(r.complete, 1); /* left = 0 not applied */
  syn_swarm_store_free(a);
  syn_swarm_store_free(b);
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(test_round_trip), CASE(test_expiry_kept), CASE(test_truncated),
      CASE(test_corrupt),    CASE(test_refusals),    CASE(test_min_interval_after_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
