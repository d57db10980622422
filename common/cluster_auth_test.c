/* Cluster trust tests: seal and open of buffers (pure: the clock is an argument) and of
 * nng messages, the key rules, and where the key comes from (config, file, environment).
 * The known-answer tag was computed independently (Python hashlib: BLAKE2b-256 of the key
 * text personalised "synapse-cluster", then keyed BLAKE2b-256 of kind | bind | body |
 * le64(time) | le64(nonce)), so a change of construction fails here, not between two
 * versions of a running cluster. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/cluster_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"

#define KEY "0123456789abcdef0123456789abcdef"
#define OTHER_KEY "0123456789abcdef0123456789abcdeX"
#define T0 1700000000123ull
#define OH SYN_CLUSTER_AUTH_OVERHEAD

static syn_cluster_auth *auth_of(const char *text) {
  char err[256];
  syn_cluster_auth *a = syn_cluster_auth_new(text, err, sizeof err);
  assert_non_null(a);
  return a;
}

/* body followed by its seal, in a heap buffer of *len bytes. */
static uint8_t *sealed(const syn_cluster_auth *a, syn_auth_kind kind, const uint8_t *bind,
                       uint64_t now, const void *body, size_t len, size_t *out_len) {
  uint8_t *buf = malloc(len + OH);
  assert_non_null(buf);
  if (len) memcpy(buf, body, len);
  syn_cluster_auth_seal_buf(a, kind, bind, now, 42, buf, len, buf + len, NULL);
  *out_len = len + OH;
  return buf;
}

static void test_known_answer(void **state) {
  static const uint8_t want[32] = {0xe5, 0xd2, 0xba, 0x77, 0x28, 0xaa, 0xc7, 0x9e, 0x9c, 0x1e, 0xa5,
                                   0x8c, 0x38, 0xd4, 0x8c, 0xfe, 0xa5, 0x50, 0x3e, 0x07, 0xdf, 0x7c,
                                   0x52, 0xe2, 0xa9, 0xeb, 0x7f, 0x9c, 0x89, 0x9e, 0xed, 0x85};
  syn_cluster_auth *a = auth_of(KEY);
  uint8_t trailer[OH], tag[32];
  syn_cluster_auth_seal_buf(a, SYN_AUTH_BATCH_REQUEST, NULL, T0, 42, (const uint8_t *)"hello", 5,
                            trailer, tag);
  assert_memory_equal(tag, want, 32);
  assert_memory_equal(trailer + 20, want, 32);
  assert_memory_equal(trailer, "\0SY\1", 4);
  syn_cluster_auth_free(a);
}

static void test_round_trip(void **state) {
  syn_cluster_auth *a = auth_of(KEY);
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_GOSSIP_REQUEST, NULL, T0, "ping", 4, &len);
  uint8_t tag[32];
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_GOSSIP_REQUEST, NULL, T0, m, len, tag), 0);
  assert_memory_equal(tag, m + 4 + 20, 32);
  free(m);
  syn_cluster_auth_free(a);
}

static void test_empty_message(void **state) {
  syn_cluster_auth *a = auth_of(KEY);
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_BATCH_REPLY, NULL, T0, NULL, 0, &len);
  assert_int_equal(len, OH);
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REPLY, NULL, T0, m, len, NULL), 0);
  /* Nothing at all, or a body without a seal: missing. */
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REPLY, NULL, T0, m, 0, NULL),
                   -EBADMSG);
  uint8_t plain[OH + 8] = {0};
  assert_int_equal(
      syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REPLY, NULL, T0, plain, sizeof plain, NULL),
      -EBADMSG);
  free(m);
  syn_cluster_auth_free(a);
}

static void test_wrong_key(void **state) {
  syn_cluster_auth *a = auth_of(KEY), *b = auth_of(OTHER_KEY);
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_GOSSIP_REQUEST, NULL, T0, "join", 4, &len);
  assert_int_equal(syn_cluster_auth_open_buf(b, SYN_AUTH_GOSSIP_REQUEST, NULL, T0, m, len, NULL),
                   -EPERM);
  free(m);
  syn_cluster_auth_free(a);
  syn_cluster_auth_free(b);
}

static void test_truncated(void **state) {
  syn_cluster_auth *a = auth_of(KEY);
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_BATCH_REQUEST, NULL, T0, "a batch of requests", 19, &len);
  /* Every shorter prefix fails: the seal is read from the end. */
  for (size_t cut = 1; cut <= len; cut++)
    assert_int_not_equal(
        syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REQUEST, NULL, T0, m, len - cut, NULL), 0);
  /* A body shortened with the seal kept whole: the tag no longer matches. */
  memmove(m + 1, m + 2, len - 2);
  assert_int_equal(
      syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REQUEST, NULL, T0, m + 1, len - 2, NULL), -EPERM);
  free(m);
  syn_cluster_auth_free(a);
}

static void test_flipped_bits(void **state) {
  syn_cluster_auth *a = auth_of(KEY);
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_GOSSIP_REPLY, NULL, T0, "membership update", 17, &len);
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      m[i] ^= (uint8_t)(1u << bit);
      int rc = syn_cluster_auth_open_buf(a, SYN_AUTH_GOSSIP_REPLY, NULL, T0, m, len, NULL);
      /* The magic's bytes make it "missing"; everything else "wrong". */
      assert_int_equal(rc, i >= len - OH && i < len - OH + 4 ? -EBADMSG : -EPERM);
      m[i] ^= (uint8_t)(1u << bit);
    }
  }
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_GOSSIP_REPLY, NULL, T0, m, len, NULL), 0);
  free(m);
  syn_cluster_auth_free(a);
}

static void test_kind_is_bound(void **state) {
  syn_cluster_auth *a = auth_of(KEY);
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_GOSSIP_REQUEST, NULL, T0, "x", 1, &len);
  for (int k = SYN_AUTH_GOSSIP_REPLY; k <= SYN_AUTH_BATCH_REPLY; k++)
    assert_int_equal(syn_cluster_auth_open_buf(a, (syn_auth_kind)k, NULL, T0, m, len, NULL),
                     -EPERM);
  free(m);
  syn_cluster_auth_free(a);
}

static void test_reply_is_bound_to_its_request(void **state) {
  syn_cluster_auth *a = auth_of(KEY);
  uint8_t req1[OH], req2[OH], tag1[32], tag2[32];
  syn_cluster_auth_seal_buf(a, SYN_AUTH_BATCH_REQUEST, NULL, T0, 1, (const uint8_t *)"q", 1, req1,
                            tag1);
  syn_cluster_auth_seal_buf(a, SYN_AUTH_BATCH_REQUEST, NULL, T0, 2, (const uint8_t *)"q", 1, req2,
                            tag2);
  assert_memory_not_equal(tag1, tag2, 32); /* same body, same ms: the nonce differs */
  size_t len;
  uint8_t *rep = sealed(a, SYN_AUTH_BATCH_REPLY, tag1, T0, "answer", 6, &len);
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REPLY, tag1, T0, rep, len, NULL), 0);
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REPLY, tag2, T0, rep, len, NULL),
                   -EPERM);
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REPLY, NULL, T0, rep, len, NULL),
                   -EPERM);
  free(rep);
  syn_cluster_auth_free(a);
}

static void test_replay_window(void **state) {
  syn_cluster_auth *a = auth_of(KEY);
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_BATCH_REQUEST, NULL, T0, "register", 8, &len);
  const uint64_t w = SYN_CLUSTER_AUTH_WINDOW_MS;
  const struct {
    uint64_t now;
    int rc;
  } cases[] = {{T0 + w, 0}, {T0 - w, 0}, {T0 + w + 1, -ETIME}, {T0 - w - 1, -ETIME}, {0, -ETIME}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_int_equal(
        syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REQUEST, NULL, cases[i].now, m, len, NULL),
        cases[i].rc);
  free(m);
  syn_cluster_auth_free(a);
}

static void test_key_rules(void **state) {
  char err[256] = "";
  assert_int_equal(syn_cluster_key_check(NULL, err, sizeof err), 0);
  assert_int_equal(syn_cluster_key_check("", err, sizeof err), 0);
  assert_int_equal(syn_cluster_key_check(KEY, err, sizeof err), 0);
  assert_int_equal(syn_cluster_key_check("too short", err, sizeof err), -1);
  assert_non_null(strstr(err, "at least 32"));
  /* Blanks around do not count toward the length. */
  assert_int_equal(syn_cluster_key_check("   0123456789abcdef0123456789abcde\n", err, sizeof err),
                   -1);
  char *huge = malloc(SYN_CLUSTER_KEY_MAX + 2);
  memset(huge, 'k', SYN_CLUSTER_KEY_MAX + 1);
  huge[SYN_CLUSTER_KEY_MAX + 1] = 0;
  assert_int_equal(syn_cluster_key_check(huge, err, sizeof err), -1);
  free(huge);
  assert_null(syn_cluster_auth_new("", err, sizeof err));
  assert_null(syn_cluster_auth_new("short", err, sizeof err));
  /* A key file's newline is not part of the key. */
  syn_cluster_auth *a = auth_of(KEY), *b = auth_of("  " KEY "\r\n");
  size_t len;
  uint8_t *m = sealed(a, SYN_AUTH_GOSSIP_REQUEST, NULL, T0, "x", 1, &len);
  assert_int_equal(syn_cluster_auth_open_buf(b, SYN_AUTH_GOSSIP_REQUEST, NULL, T0, m, len, NULL),
                   0);
  free(m);
  syn_cluster_auth_free(a);
  syn_cluster_auth_free(b);
}

/* Rotation: one key a line, the first seals, any opens; the three steps of a rolling
 * rotation never leave two processes unable to talk. */
static void test_rotation(void **state) {
  char err[256] = "";
  assert_int_equal(syn_cluster_key_check(KEY "\n# next\n\n" OTHER_KEY "\n", err, sizeof err), 0);
  assert_int_equal(syn_cluster_key_check(KEY "\nshort\n", err, sizeof err), -1);
  assert_non_null(strstr(err, "cluster key 2"));
  assert_int_equal(syn_cluster_key_check("# only a comment\n\n", err, sizeof err), -1);
  assert_int_equal(
      syn_cluster_key_check(KEY "\n" KEY "\n" KEY "\n" KEY "\n" OTHER_KEY, err, sizeof err), -1);
  assert_non_null(strstr(err, "at most 4"));
  const char *steps[] = {KEY, KEY "\n" OTHER_KEY, OTHER_KEY "\n" KEY, OTHER_KEY};
  syn_cluster_auth *a[4];
  for (int i = 0; i < 4; i++) a[i] = auth_of(steps[i]);
  /* Neighbouring steps (processes mid-roll) open each other's messages both ways. */
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      size_t len;
      uint8_t *m = sealed(a[i], SYN_AUTH_BATCH_REQUEST, NULL, T0, "batch", 5, &len);
      int rc = syn_cluster_auth_open_buf(a[j], SYN_AUTH_BATCH_REQUEST, NULL, T0, m, len, NULL);
      int seals_old = i < 2, accepts_old = j < 3, seals_new = i >= 2, accepts_new = j >= 1;
      int want = (seals_old && accepts_old) || (seals_new && accepts_new) ? 0 : -EPERM;
      assert_int_equal(rc, want);
      free(m);
    }
  for (int i = 0; i < 4; i++) syn_cluster_auth_free(a[i]);
}

static uint64_t wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_nng_messages(void **state) {
  syn_cluster_auth *a = auth_of(KEY), *b = auth_of(OTHER_KEY);
  nng_msg *msg;
  assert_int_equal(nng_msg_alloc(&msg, 0), 0);
  assert_int_equal(nng_msg_append(msg, "batch", 5), 0);
  uint8_t sent_tag[32], got_tag[32];
  assert_int_equal(syn_cluster_auth_seal(a, msg, SYN_AUTH_BATCH_REQUEST, NULL, sent_tag), 0);
  assert_int_equal(nng_msg_len(msg), 5 + OH);
  /* A failed open leaves the message as it was, and counts. */
  assert_int_equal(syn_cluster_auth_open(b, msg, SYN_AUTH_BATCH_REQUEST, NULL, got_tag), -EPERM);
  assert_int_equal(syn_cluster_auth_open(b, msg, SYN_AUTH_BATCH_REQUEST, NULL, got_tag), -EPERM);
  assert_int_equal(nng_msg_len(msg), 5 + OH);
  assert_int_equal(syn_cluster_auth_failures(b), 2);
  assert_int_equal(syn_cluster_auth_open(a, msg, SYN_AUTH_BATCH_REQUEST, NULL, got_tag), 0);
  assert_int_equal(syn_cluster_auth_failures(a), 0);
  assert_memory_equal(got_tag, sent_tag, 32);
  assert_int_equal(nng_msg_len(msg), 5);
  assert_memory_equal(nng_msg_body(msg), "batch", 5);
  /* Stripped: a second open finds no seal. */
  assert_int_equal(syn_cluster_auth_open(a, msg, SYN_AUTH_BATCH_REQUEST, NULL, NULL), -EBADMSG);
  assert_int_equal(syn_cluster_auth_failures(a), 1);
  /* No key: nothing is added, nothing is checked. */
  assert_int_equal(syn_cluster_auth_seal(NULL, msg, SYN_AUTH_BATCH_REPLY, NULL, got_tag), 0);
  assert_int_equal(nng_msg_len(msg), 5);
  assert_int_equal(syn_cluster_auth_open(NULL, msg, SYN_AUTH_BATCH_REPLY, NULL, NULL), 0);
  assert_int_equal(syn_cluster_auth_failures(NULL), 0);
  /* The seal carries this machine's wall clock. */
  assert_int_equal(syn_cluster_auth_seal(a, msg, SYN_AUTH_BATCH_REPLY, sent_tag, NULL), 0);
  assert_int_equal(syn_cluster_auth_open_buf(a, SYN_AUTH_BATCH_REPLY, sent_tag, wall_now(),
                                             nng_msg_body(msg), nng_msg_len(msg), NULL),
                   0);
  nng_msg_free(msg);
  syn_cluster_auth_free(a);
  syn_cluster_auth_free(b);
}

/* ---- where the key comes from ---- */

static int parse(syn_config *cfg, const char *yaml, const char *flag_file, char *err,
                 size_t err_len) {
  char path[] = "/tmp/cluster_auth_test_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
  close(fd);
  char *argv[6] = {"tracker", "--config", path, NULL, NULL, NULL};
  int argc = 3;
  if (flag_file) {
    argv[argc++] = "--cluster-key-file";
    argv[argc++] = (char *)flag_file;
  }
  syn_config_defaults(cfg);
  int rc = syn_config_parse_args(cfg, argc, argv, err, err_len);
  if (rc == 0) rc = syn_config_validate(cfg, err, err_len);
  unlink(path);
  return rc;
}

static void test_key_sources(void **state) {
  char err[512], key_file[] = "/tmp/cluster_key_XXXXXX";
  int fd = mkstemp(key_file);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, KEY "\n", sizeof KEY), (ssize_t)sizeof KEY);
  close(fd);
  syn_config cfg;
  unsetenv("SYNAPSE_CLUSTER_KEY");

  int rc = parse(&cfg, "tracker: {http_port: 6881}\n", NULL, err, sizeof err);
  if (rc) fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);
  assert_string_equal(cfg.cluster_key, ""); /* none: open */
  syn_config_free(&cfg);

  assert_int_equal(parse(&cfg, "cluster: {key: " KEY "}\n", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.cluster_key, KEY);
  syn_config_free(&cfg);

  assert_int_equal(parse(&cfg, "tracker: {http_port: 6881}\n", key_file, err, sizeof err), 0);
  assert_string_equal(cfg.cluster_key, KEY "\n");
  syn_config_free(&cfg);

  setenv("SYNAPSE_CLUSTER_KEY", KEY, 1);
  assert_int_equal(parse(&cfg, "tracker: {http_port: 6881}\n", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.cluster_key, KEY);
  syn_config_free(&cfg);
  /* Two sources: refused, naming both. */
  assert_int_equal(parse(&cfg, "tracker: {http_port: 6881}\n", key_file, err, sizeof err), -1);
  assert_non_null(strstr(err, "cluster.key_file SYNAPSE_CLUSTER_KEY"));
  syn_config_free(&cfg);
  unsetenv("SYNAPSE_CLUSTER_KEY");

  assert_int_equal(parse(&cfg, "cluster: {key: short}\n", NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "at least 32"));
  syn_config_free(&cfg);
  assert_int_equal(
      parse(&cfg, "tracker: {http_port: 6881}\n", "/nonexistent/cluster.key", err, sizeof err), -1);
  assert_non_null(strstr(err, "cannot read \"/nonexistent/cluster.key\""));
  syn_config_free(&cfg);
  unlink(key_file);
  (void)err;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answer),  cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_empty_message), cmocka_unit_test(test_wrong_key),
      cmocka_unit_test(test_truncated),     cmocka_unit_test(test_flipped_bits),
      cmocka_unit_test(test_kind_is_bound), cmocka_unit_test(test_reply_is_bound_to_its_request),
      cmocka_unit_test(test_replay_window), cmocka_unit_test(test_key_rules),
      cmocka_unit_test(test_nng_messages),  cmocka_unit_test(test_key_sources),
      cmocka_unit_test(test_rotation),
  };
  return cmocka_run_group_tests_name("cluster_auth", tests, NULL, NULL);
}
