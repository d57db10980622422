/* Access lists: file parsing (comments, blanks, both info_hash forms), lookups over IPv4
 * and IPv6 at the edge prefixes (/0, /32, /128), deny over allow, errors naming FILE:LINE,
 * a failed reload keeping the old lists, the key set's removals, and bearer tokens by
 * scope (files with comments, the environment, rotation, a failed reload). */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/access.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/keyset.h"
#include "router/tokens.h"

static char *write_file(const char *text) {
  char *path = strdup("/tmp/access_test_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static syn_access_lists *load_one(syn_access_list_kind kind, const char *text, char *err,
                                  size_t err_len, char **path_out) {
  const char *paths[SYN_ACCESS_LISTS] = {0};
  char *path = write_file(text);
  paths[kind] = path;
  syn_access_lists *l = NULL;
  int rc = syn_access_lists_load(paths, &l, err, err_len);
  if (path_out)
    *path_out = path;
  else {
    unlink(path);
    free(path);
  }
  if (rc) assert_null(l);
  return l;
}

static bool ip_ok(const syn_access_lists *l, const char *text) {
  uint8_t b[16];
  if (inet_pton(AF_INET, text, b) == 1) return syn_access_lists_ip_allowed(l, b, 4);
  assert_int_equal(inet_pton(AF_INET6, text, b), 1);
  return syn_access_lists_ip_allowed(l, b, 16);
}

static void key_of(const char *hex40, uint8_t key[20]) {
  for (int i = 0; i < 20; i++) sscanf(hex40 + 2 * i, "%2hhx", &key[i]);
}

#define H1 "0123456789abcdef0123456789abcdef01234567"
#define H2 "89abcdef0123456789abcdef0123456789abcdef"
#define H3 "fedcba9876543210fedcba9876543210fedcba98"
#define V2 "aa00000000000000000000000000000000000000bbbbbbbbbbbbbbbbbbbbbbbb"

static void test_info_hash_lists(void **state) {
  (void)state;
  char err[256];
  syn_access_lists *l = load_one(SYN_ACCESS_HASH_ALLOW,
                                 "# torrents we serve\n\n" H1 "\n  " H2
                                 "  # trailing comment\r\n"
                                 "0123456789ABCDEF0123456789ABCDEF01234567\n" V2,
                                 err, sizeof err, NULL);
  assert_non_null(l);
  assert_int_equal(syn_access_lists_size(l, SYN_ACCESS_HASH_ALLOW), 3); /* H1 twice */
  uint8_t k[20];
  key_of(H1, k);
  assert_true(syn_access_lists_hash_allowed(l, k));
  key_of(H2, k);
  assert_true(syn_access_lists_hash_allowed(l, k));
  key_of(H3, k);
  assert_false(syn_access_lists_hash_allowed(l, k));
  key_of(V2, k); /* a v2 hash is matched on its first 20 bytes */
  assert_true(syn_access_lists_hash_allowed(l, k));
  assert_true(ip_ok(l, "192.0.2.1")); /* no IP list: every address */
  syn_access_lists_free(l);

  l = load_one(SYN_ACCESS_HASH_DENY, H3 "\n", err, sizeof err, NULL);
  key_of(H3, k);
  assert_false(syn_access_lists_hash_allowed(l, k));
  key_of(H1, k);
  assert_true(syn_access_lists_hash_allowed(l, k));
  syn_access_lists_free(l);

  l = load_one(SYN_ACCESS_HASH_ALLOW, "# nothing yet\n", err, sizeof err, NULL);
  assert_non_null(l); /* an empty allow list admits nothing */
  assert_false(syn_access_lists_hash_allowed(l, k));
  syn_access_lists_free(l);
}

static void test_ip_edges(void **state) {
  (void)state;
  char err[256];
  syn_access_lists *l =
      load_one(SYN_ACCESS_IP_ALLOW, "10.0.0.0/8\n192.0.2.7/32\n2001:db8::1/128\n2001:db8:1::/48\n",
               err, sizeof err, NULL);
  assert_non_null(l);
  assert_int_equal(syn_access_lists_size(l, SYN_ACCESS_IP_ALLOW), 4);
  static const struct {
    const char *ip;
    bool allowed;
  } cases[] = {
      {"10.0.0.0", true},      {"10.255.255.255", true},
      {"11.0.0.0", false},     {"9.255.255.255", false},
      {"192.0.2.7", true},     {"192.0.2.6", false},
      {"192.0.2.8", false},    {"::ffff:10.1.2.3", true},
      {"2001:db8::1", true},   {"2001:db8::2", false},
      {"2001:db8::", false},   {"2001:db8:1:ffff::1", true},
      {"2001:db8:2::", false}, {"::", false},
      {"ffff::", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (ip_ok(l, cases[i].ip) != cases[i].allowed) fail_msg("%s", cases[i].ip);
  }
  syn_access_lists_free(l);

  l = load_one(SYN_ACCESS_IP_DENY, "::/0\n", err, sizeof err, NULL); /* everything */
  assert_false(ip_ok(l, "::"));
  assert_false(ip_ok(l, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  assert_false(ip_ok(l, "198.51.100.1"));
  syn_access_lists_free(l);

  l = load_one(SYN_ACCESS_IP_DENY, "0.0.0.0/0\n", err, sizeof err, NULL); /* all of IPv4 */
  assert_false(ip_ok(l, "0.0.0.0"));
  assert_false(ip_ok(l, "255.255.255.255"));
  assert_true(ip_ok(l, "2001:db8::1"));
  syn_access_lists_free(l);

  /* Overlapping and adjacent ranges merge; lookups stay exact. */
  l = load_one(SYN_ACCESS_IP_DENY, "192.0.2.0/25\n192.0.2.128/25\n192.0.2.0/24\n192.0.2.5\n", err,
               sizeof err, NULL);
  assert_int_equal(syn_access_lists_size(l, SYN_ACCESS_IP_DENY), 4);
  assert_false(ip_ok(l, "192.0.2.0"));
  assert_false(ip_ok(l, "192.0.2.255"));
  assert_true(ip_ok(l, "192.0.3.0"));
  assert_true(ip_ok(l, "192.0.1.255"));
  syn_access_lists_free(l);
}

static void test_deny_wins(void **state) {
  (void)state;
  char *allow = write_file("10.0.0.0/8\n"), *deny = write_file("10.1.0.0/16\n");
  const char *paths[SYN_ACCESS_LISTS] = {NULL, NULL, allow, deny};
  syn_access_lists *l;
  char err[256];
  assert_int_equal(syn_access_lists_load(paths, &l, err, sizeof err), 0);
  assert_true(ip_ok(l, "10.2.0.1"));
  assert_false(ip_ok(l, "10.1.0.1"));
  assert_false(ip_ok(l, "11.0.0.1"));
  syn_access_lists_free(l);
  unlink(allow);
  unlink(deny);
  free(allow);
  free(deny);
}

static void test_errors_name_file_and_line(void **state) {
  (void)state;
  char err[512], *path, want[300];
  static const struct {
    syn_access_list_kind kind;
    const char *text;
    unsigned line;
  } cases[] = {
      {SYN_ACCESS_HASH_ALLOW, H1 "\n# ok\n" H1 "0\n", 3},      /* 41 digits */
      {SYN_ACCESS_HASH_DENY, "xyz\n", 1},                      /* not hex */
      {SYN_ACCESS_IP_ALLOW, "10.0.0.0/8\n\n10.0.0.0/33\n", 3}, /* prefix too long */
      {SYN_ACCESS_IP_DENY, "2001:db8::/129\n", 1},             /* prefix too long */
      {SYN_ACCESS_IP_DENY, "::1\n300.1.1.1\n", 2},             /* not an address */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_null(load_one(cases[i].kind, cases[i].text, err, sizeof err, &path));
    snprintf(want, sizeof want, "%s:%u: ", path, cases[i].line);
    if (strncmp(err, want, strlen(want)) != 0) fail_msg("case %zu: %s", i, err);
    unlink(path);
    free(path);
  }
  const char *paths[SYN_ACCESS_LISTS] = {"/nonexistent/allow.txt"};
  syn_access_lists *l;
  assert_int_equal(syn_access_lists_load(paths, &l, err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent/allow.txt: "));
}

static void test_reload_keeps_old_lists(void **state) {
  (void)state;
  char *path = write_file("192.0.2.0/24\n");
  syn_config cfg = {0};
  cfg.access_files[SYN_ACCESS_IP_DENY] = path;
  syn_access a;
  char err[512];
  assert_int_equal(syn_access_init(&a, &cfg, err, sizeof err), 0);
  uint8_t ip[4] = {192, 0, 2, 9};
  assert_string_equal(syn_access_check(&a, ip, 4, NULL, 0), SYN_ACCESS_IP_DENIED_TEXT);
  FILE *f = fopen(path, "w");
  fputs("192.0.2.0/24\nbogus\n", f);
  fclose(f);
  assert_int_equal(syn_access_reload(&a, err, sizeof err), -1);
  assert_non_null(strstr(err, ":2: "));
  assert_false(a.last_ok);
  assert_non_null(syn_access_check(&a, ip, 4, NULL, 0)); /* the old list still applies */
  f = fopen(path, "w");
  fputs("198.51.100.0/24\n", f);
  fclose(f);
  assert_int_equal(syn_access_reload(&a, err, sizeof err), 0);
  assert_true(a.last_ok);
  assert_null(syn_access_check(&a, ip, 4, NULL, 0));
  assert_int_equal(a.refused[SYN_REFUSED_IP], 2);
  syn_access_free(&a);
  unlink(path);
  free(path);
}

static void test_keyset_add_remove(void **state) {
  (void)state;
  syn_keyset s;
  syn_keyset_init(&s);
  uint8_t k[20] = {0};
  for (uint32_t i = 0; i < 5000; i++) {
    memcpy(k, &i, sizeof i);
    assert_int_equal(syn_keyset_add(&s, k), 0);
  }
  assert_int_equal(s.count, 5000);
  for (uint32_t i = 0; i < 5000; i += 2) {
    memcpy(k, &i, sizeof i);
    assert_true(syn_keyset_remove(&s, k));
  }
  for (uint32_t i = 0; i < 5000; i++) {
    memcpy(k, &i, sizeof i);
    if (syn_keyset_contains(&s, k) != (i % 2 == 1)) fail_msg("key %u", i);
  }
  assert_false(syn_keyset_remove(&s, k) && syn_keyset_remove(&s, k));
  syn_keyset_free(&s);
}

static int check(const syn_tokens *t, syn_token_scope scope, const char *header) {
  return syn_tokens_check(t, scope, header, header ? strlen(header) : 0);
}

static void test_tokens_by_scope(void **state) {
  (void)state;
  char *file = write_file("# rotated monthly\n  old-token  \n\nnew-token # since May\n");
  char inline_admin[] = "admin-token";
  syn_config cfg = {0};
  cfg.api_tokens_file = file;
  cfg.api_admin_tokens[0] = inline_admin;
  cfg.api_admin_token_count = 1;
  setenv("SYNAPSE_API_TOKENS", "env-a, env-b,", 1);
  char err[256];
  syn_tokens *t = syn_tokens_new(&cfg, err, sizeof err);
  assert_non_null(t);
  assert_int_equal(syn_tokens_count(t, SYN_SCOPE_WRITE), 4);
  assert_int_equal(syn_tokens_count(t, SYN_SCOPE_ADMIN), 1);
  static const struct {
    const char *header;
    int write, admin;
  } cases[] = {
      {"Bearer old-token", 0, 403},
      {"Bearer new-token", 0, 403},
      {"bearer env-b", 0, 403},
      {"Bearer admin-token", 0, 0},
      {"Bearer old-toke", 403, 403},
      {"Bearer old-tokenx", 403, 403},
      {"Bearer ", 403, 403},
      {"Basic b2xkLXRva2Vu", 401, 401},
      {NULL, 401, 401},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (check(t, SYN_SCOPE_WRITE, cases[i].header) != cases[i].write) fail_msg("write %zu", i);
    if (check(t, SYN_SCOPE_ADMIN, cases[i].header) != cases[i].admin) fail_msg("admin %zu", i);
  }
  /* Rotation: the old token goes; a file that cannot be read keeps what is held. */
  FILE *f = fopen(file, "w");
  fputs("new-token\n", f);
  fclose(f);
  assert_int_equal(syn_tokens_reload(t, err, sizeof err), 0);
  assert_int_equal(check(t, SYN_SCOPE_WRITE, "Bearer old-token"), 403);
  assert_int_equal(check(t, SYN_SCOPE_WRITE, "Bearer new-token"), 0);
  unlink(file);
  assert_int_equal(syn_tokens_reload(t, err, sizeof err), -1);
  assert_non_null(strstr(err, file));
  assert_int_equal(check(t, SYN_SCOPE_WRITE, "Bearer new-token"), 0);
  syn_tokens_free(t);
  unsetenv("SYNAPSE_API_TOKENS");
  free(file);

  /* No write token: writes are open; no admin token: nothing passes the admin check. */
  syn_config open = {0};
  t = syn_tokens_new(&open, err, sizeof err);
  assert_int_equal(check(t, SYN_SCOPE_WRITE, NULL), 0);
  assert_int_equal(check(t, SYN_SCOPE_ADMIN, "Bearer "), 403);
  syn_tokens_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_info_hash_lists),
      cmocka_unit_test(test_ip_edges),
      cmocka_unit_test(test_deny_wins),
      cmocka_unit_test(test_errors_name_file_and_line),
      cmocka_unit_test(test_reload_keeps_old_lists),
      cmocka_unit_test(test_keyset_add_remove),
      cmocka_unit_test(test_tokens_by_scope),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
