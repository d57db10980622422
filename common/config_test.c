/* Unit tests for common/config.c: defaults, the sample config.yaml, YAML loading (good
 * and bad files), command-line flags over a file, validation and CIDRs. Cases live in
 * named tables; each YAML case is written to a temporary file and loaded from there.
 *
 * The sample config is found, in order: argv[1], the CONFIG_SAMPLE_PATH definition, or
 * ../config.yaml next to this source file (CMake passes absolute source paths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"

static char sample_path[PATH_MAX];

/* Writes text to a fresh temporary file; the caller unlinks path. */
static void write_temp(const char *text, char path[64]) {
  strcpy(path, "/tmp/syn_config_test_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t len = strlen(text);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  close(fd);
}

/* ---- Defaults and the sample file --------------------------------------------------- */

static void check_defaults(const syn_config *c) {
  assert_string_equal(c->host, "::");
  assert_int_equal(c->http_port, 6881);
  assert_int_equal(c->udp_port, 6969);
  assert_int_equal(c->role, SYN_PROCESS_STANDALONE);
  assert_non_null(c->node_id);
  assert_string_equal(c->node_id, ""); /* resolved at start: stored or random */
  assert_string_equal(c->peer_addr, "");
  assert_string_equal(c->cluster_addr, "tcp://127.0.0.1:7000");
  assert_int_equal(c->seed_count, 0);
  assert_string_equal(c->data_dir, "./data");
  assert_false(c->debug);
  assert_int_equal(c->announce_interval, 1800);
  assert_int_equal(c->min_interval, 900);
  assert_int_equal(c->peer_timeout, 2 * 1800 + 300);
  assert_false(c->peer_timeout_explicit);
  assert_int_equal(c->default_numwant, 50);
  assert_int_equal(c->max_numwant, 200);
  assert_false(c->full_scrape);
  assert_int_equal(c->full_scrape_interval, 600);
  assert_int_equal(c->full_scrape_max, 10000);
  assert_int_equal(c->trusted_proxy_count, 0);
  assert_string_equal(c->udp_secret, "");
  assert_int_equal(c->request_timeout_ms, 2000);
  assert_int_equal(c->public_url_count, 0);
  assert_int_equal(c->max_request_line, 8192);
  assert_int_equal(c->max_header_bytes, 16384);
  assert_int_equal(c->max_headers, 64);
  assert_int_equal(c->max_body, 1048576);
  assert_int_equal(c->max_connections, 10000);
  assert_int_equal(c->idle_timeout_ms, 60000);
  assert_int_equal(c->node_workers, 2);
  assert_int_equal(c->interval_jitter_percent, 5);
  assert_string_equal(c->log_format, "text");
  assert_string_equal(c->udp_secret_file, "");
  assert_true(c->swarm_snapshot);
  assert_int_equal(c->swarm_snapshot_max_mb, 2048);
}

/* The told interval stays within +- the jitter and never under min_interval. */
static void test_told_interval(void **state) {
  (void)state;
  syn_config c;
  syn_config_defaults(&c);
  uint32_t lo = UINT32_MAX, hi = 0;
  for (uint32_t r = 0; r < 1000; r++) {
    uint32_t t = syn_config_told_interval(&c, r * 2654435761u);
    lo = t < lo ? t : lo;
    hi = t > hi ? t : hi;
  }
  assert_int_equal(lo, 1800 - 90);
  assert_int_equal(hi, 1800 + 90);
  c.interval_jitter_percent = 0;
  assert_int_equal(syn_config_told_interval(&c, 12345), 1800);
  c.interval_jitter_percent = 50;
  c.min_interval = 1500;
  for (uint32_t r = 0; r < 100; r++) assert_true(syn_config_told_interval(&c, r) >= 1500);
  syn_config_free(&c);
}

static void test_defaults(void **state) {
  syn_config c;
  char err[256];
  syn_config_defaults(&c);
  check_defaults(&c);
  assert_int_equal(syn_config_validate(&c, err, sizeof err), 0);
  syn_config_free(&c);
}

/* The sample documents the defaults, so loading it must change nothing and validate. */
static void test_sample_file(void **state) {
  syn_config c;
  char err[256] = "";
  syn_config_defaults(&c);
  char *node_id = strdup(c.node_id);
  int rc = syn_config_load_yaml(&c, sample_path, err, sizeof err);
  if (rc != 0) fail_msg("%s", err);
  check_defaults(&c);
  assert_string_equal(c.node_id, node_id);
  assert_int_equal(syn_config_validate(&c, err, sizeof err), 0);
  free(node_id);
  syn_config_free(&c);
}

/* ---- YAML cases --------------------------------------------------------------------- */

typedef struct yaml_case {
  const char *name;
  const char *yaml;
  const char *err;                       /* NULL: must load; else a substring of the error */
  void (*check)(const syn_config *cfg);  /* after a successful load */
} yaml_case;

static void check_tracker(const syn_config *c) {
  assert_string_equal(c->host, "::");
  assert_int_equal(c->http_port, 8080);
  assert_int_equal(c->udp_port, 0);
  assert_int_equal(c->role, SYN_PROCESS_ROUTER);
  assert_string_equal(c->node_id, "r1");
  assert_int_equal(c->seed_count, 2);
  assert_string_equal(c->seeds[0], "tcp://a:7000");
  assert_string_equal(c->seeds[1], "tcp://b:7000");
  assert_string_equal(c->data_dir, "/var/lib/synapse");
  assert_true(c->debug);
}

static void check_interval_moves_timeout(const syn_config *c) {
  assert_int_equal(c->announce_interval, 600);
  assert_int_equal(c->peer_timeout, 1500);
  assert_false(c->peer_timeout_explicit);
}

static void check_explicit_timeout(const syn_config *c) {
  assert_int_equal(c->announce_interval, 600);
  assert_int_equal(c->peer_timeout, 700);
  assert_true(c->peer_timeout_explicit);
}

static void check_server_lists(const syn_config *c) {
  assert_int_equal(c->trusted_proxy_count, 2);
  assert_int_equal(c->trusted_proxies[0].prefix, 96 + 8);
  assert_int_equal(c->trusted_proxies[1].prefix, 8);
  assert_int_equal(c->public_url_count, 1);
  assert_string_equal(c->public_urls[0], "udp://t.example:6969/announce");
  assert_int_equal(c->max_numwant, 50);
  assert_true(c->full_scrape);
  assert_string_equal(c->udp_secret, "0123456789abcdef0123");
}

static void check_database_path(const syn_config *c) {
  assert_string_equal(c->data_dir, "/srv/db");
}

static void check_unchanged(const syn_config *c) { check_defaults(c); }

static void check_single_seed(const syn_config *c) {
  assert_int_equal(c->seed_count, 1);
  assert_string_equal(c->seeds[0], "tcp://only:7000");
}

static void check_limits_node(const syn_config *c) {
  assert_int_equal(c->max_request_line, 4096);
  assert_int_equal(c->max_headers, 32);
  assert_int_equal(c->max_body, 65536);
  assert_int_equal(c->idle_timeout_ms, 5000);
  assert_int_equal(c->node_workers, 8);
}

static const yaml_case yaml_cases[] = {
    {"tracker section",
     "tracker:\n  host: \"::\"\n  http_port: 8080\n  udp_port: 0\n  role: router\n"
     "  node_id: r1\n  seeds:\n    - tcp://a:7000\n    - tcp://b:7000\n"
     "  data_dir: /var/lib/synapse\n  debug: yes\n",
     NULL, check_tracker},
    {"interval moves derived peer_timeout", "server:\n  announce_interval: 600\n", NULL,
     check_interval_moves_timeout},
    {"explicit peer_timeout kept",
     "server:\n  peer_timeout: 700\n  announce_interval: 600\n", NULL, check_explicit_timeout},
    {"server lists and scalars",
     "server:\n  trusted_proxies: [10.0.0.0/8, \"fd00::/8\"]\n"
     "  public_announce_urls: [\"udp://t.example:6969/announce\"]\n"
     "  max_peers_returned: 50\n  full_scrape: true\n  udp_secret: 0123456789abcdef0123\n",
     NULL, check_server_lists},
    {"database.path sets data_dir", "database:\n  path: /srv/db\n", NULL, check_database_path},
    {"vector_search accepted and ignored",
     "vector_search:\n  index_type: faiss\n  dimension: 768\n  similarity_metric: cosine\n",
     NULL, check_unchanged},
    {"empty file", "", NULL, check_unchanged},
    {"comments only", "# nothing\n", NULL, check_unchanged},
    {"empty section", "node:\n", NULL, check_unchanged},
    {"scalar seed is a list of one", "tracker:\n  seeds: tcp://only:7000\n", NULL,
     check_single_seed},
    {"limits and node",
     "limits:\n  max_request_line: 4096\n  max_headers: 32\n  max_body: 65536\n"
     "  idle_timeout_ms: 5000\nnode:\n  workers: 8\n",
     NULL, check_limits_node},

    {"syntax error", "tracker:\n  host: [unclosed\n", "line ", NULL},
    {"bad indentation", "tracker:\n  host: a\n port: 1\n", "line 3", NULL},
    {"top level is a list", "- a\n- b\n", "expected sections", NULL},
    {"unknown section", "trackers:\n  host: a\n", "unknown section \"trackers\"", NULL},
    {"unknown key", "server:\n  announce_intervall: 5\n", "server.announce_intervall: unknown key",
     NULL},
    {"not a number", "server:\n  announce_interval: x\n",
     "server.announce_interval: \"x\" is not a number", NULL},
    {"negative number", "server:\n  min_interval: -5\n",
     "server.min_interval: \"-5\" is not a number", NULL},
    {"hex number", "limits:\n  max_body: 0x100\n", "limits.max_body: \"0x100\" is not a number",
     NULL},
    {"number too big", "limits:\n  max_body: 99999999999\n",
     "limits.max_body: \"99999999999\" is out of range (0-4294967295)", NULL},
    {"empty number", "node:\n  workers:\n", "node.workers: \"\" is not a number", NULL},
    {"bad port", "tracker:\n  http_port: 70000\n",
     "tracker.http_port: \"70000\" is not a port number (1-65535)", NULL},
    {"http port zero", "tracker:\n  http_port: 0\n",
     "tracker.http_port: \"0\" is not a port number (1-65535)", NULL},
    {"bad udp port", "tracker:\n  udp_port: abc\n",
     "tracker.udp_port: \"abc\" is not a port number (0-65535)", NULL},
    {"bad bool", "tracker:\n  debug: maybe\n",
     "tracker.debug: \"maybe\" is not a boolean (true or false)", NULL},
    {"bad role", "tracker:\n  role: leader\n",
     "tracker.role: \"leader\" is not one of standalone, node, router", NULL},
    {"bad cidr", "server:\n  trusted_proxies: [\"10.0.0.0/33\"]\n",
     "server.trusted_proxies: \"10.0.0.0/33\" is not an address or CIDR", NULL},
    {"too many public urls", "server:\n  public_announce_urls: [a, b, c, d, e, f, g, h, i]\n",
     "server.public_announce_urls: more than 8 entries", NULL},
    {"empty seed", "tracker:\n  seeds: [\"\"]\n", "tracker.seeds: empty entry", NULL},
    {"nested list entry", "tracker:\n  seeds: [[a]]\n",
     "tracker.seeds: list entries must be single values", NULL},
    {"list for a scalar", "tracker:\n  host: [a, b]\n", "tracker.host: expected a single value",
     NULL},
    {"mapping for a list", "tracker:\n  seeds: {a: b}\n", "tracker.seeds: expected a list", NULL},
    {"section is a scalar", "server: 5\n", "server: expected a mapping of keys", NULL},
    {"key set twice", "server:\n  min_interval: 5\n  min_interval: 6\n",
     "server.min_interval: set twice", NULL},
    {"second document", "tracker:\n  host: a\n---\nfoo: 1\n", "more than one YAML document",
     NULL},
    {"syntax error in a second document", "node:\n  workers: 2\n---\n  a: [\n", "line ", NULL},
    {"NUL in a value", "tracker:\n  host: \"a\\0b\"\n", "tracker.host: contains a NUL byte", NULL},
};

static void run_yaml_case(const yaml_case *tc) {
  char path[64], err[256] = "";
  syn_config c;
  write_temp(tc->yaml, path);
  syn_config_defaults(&c);
  int rc = syn_config_load_yaml(&c, path, err, sizeof err);
  unlink(path);
  if (tc->err == NULL && rc != 0) fail_msg("%s: unexpected error: %s", tc->name, err);
  if (tc->err != NULL && rc == 0) fail_msg("%s: loaded, expected \"%s\"", tc->name, tc->err);
  if (tc->err != NULL && strstr(err, tc->err) == NULL)
    fail_msg("%s: error \"%s\" lacks \"%s\"", tc->name, err, tc->err);
  if (tc->err != NULL && (strncmp(err, path, strlen(path)) != 0 || err[strlen(path)] != ':'))
    fail_msg("%s: error \"%s\" does not start with \"<file>:\"", tc->name, err);
  if (tc->check != NULL) tc->check(&c);
  syn_config_free(&c);
}

static void test_yaml_cases(void **state) {
  for (size_t i = 0; i < sizeof yaml_cases / sizeof yaml_cases[0]; i++)
    run_yaml_case(&yaml_cases[i]);
}

static void test_yaml_missing_file(void **state) {
  syn_config c;
  char err[256];
  syn_config_defaults(&c);
  assert_int_equal(syn_config_load_yaml(&c, "/nonexistent/config.yaml", err, sizeof err), -1);
  assert_string_equal(err, "/nonexistent/config.yaml: cannot open: No such file or directory");
  syn_config_free(&c);
}

/* ---- Command-line cases ------------------------------------------------------------- */

#define MAX_ARGS 16

typedef struct args_case {
  const char *name;
  const char *argv[MAX_ARGS]; /* NULL-terminated after argv[0]; "@FILE" = the yaml file */
  const char *yaml;           /* written to a temporary file when not NULL */
  int rc;
  const char *err; /* substring of the error when rc == -1 */
  void (*check)(const syn_config *cfg);
} args_case;

static void check_flags(const syn_config *c) {
  assert_string_equal(c->host, "127.0.0.1");
  assert_int_equal(c->http_port, 8080);
  assert_int_equal(c->udp_port, 0);
  assert_string_equal(c->data_dir, "/tmp/d");
  assert_true(c->debug);
  assert_int_equal(c->role, SYN_PROCESS_NODE);
  assert_string_equal(c->node_id, "n7");
  assert_string_equal(c->cluster_addr, "tcp://10.0.0.7:7000");
}

static void check_flags_over_file(const syn_config *c) {
  assert_int_equal(c->http_port, 9000);       /* flag wins over the file's 7000 */
  assert_int_equal(c->udp_port, 7001);        /* file value kept: no flag */
  assert_int_equal(c->announce_interval, 60); /* file only */
  assert_int_equal(c->peer_timeout, 420);     /* derived from the file's interval */
  assert_int_equal(c->seed_count, 2);         /* --seeds replaced the file's list */
  assert_string_equal(c->seeds[0], "tcp://x:1");
  assert_string_equal(c->seeds[1], "tcp://y:2");
  assert_int_equal(c->public_url_count, 2);   /* first --public-url replaced, then appended */
  assert_string_equal(c->public_urls[0], "http://p/announce");
  assert_string_equal(c->public_urls[1], "udp://p:6969/announce");
}

static void check_short_flags(const syn_config *c) {
  assert_int_equal(c->http_port, 1);
  assert_true(c->debug);
  assert_int_equal(c->udp_port, 65535);
}

static void check_nothing_changed(const syn_config *c) { check_defaults(c); }

static const char file_for_flags[] =
    "tracker:\n  http_port: 7000\n  udp_port: 7001\n  seeds: [tcp://file:1]\n"
    "server:\n  announce_interval: 60\n  min_interval: 30\n"
    "  public_announce_urls: [http://file/announce]\n";

static const args_case args_cases[] = {
    {"no flags", {"tracker", NULL}, NULL, 0, NULL, check_nothing_changed},
    {"every value flag",
     {"tracker", "--host", "127.0.0.1", "--port=8080", "--udp-port", "0", "--data-dir", "/tmp/d",
      "--debug", "--role=node", "--node-id", "n7", "--cluster-addr", "tcp://10.0.0.7:7000",
      NULL},
     NULL, 0, NULL, check_flags},
    {"short flags", {"tracker", "-p", "1", "-d", "--udp-port", "65535", NULL}, NULL, 0, NULL,
     check_short_flags},
    {"flags override the file, wherever --config is",
     {"tracker", "--port", "9000", "--seeds", "tcp://x:1,tcp://y:2", "--public-url",
      "http://p/announce", "--config", "@FILE", "--public-url", "udp://p:6969/announce", NULL},
     file_for_flags, 0, NULL, check_flags_over_file},
    {"help", {"tracker", "--help", NULL}, NULL, 1, NULL, check_nothing_changed},
    {"version", {"tracker", "-V", NULL}, NULL, 1, NULL, check_nothing_changed},
    {"help wins over a broken config", {"tracker", "--config", "/nonexistent.yaml", "-h", NULL},
     NULL, 1, NULL, NULL},

    {"bad port", {"tracker", "--port", "abc", NULL}, NULL, -1,
     "--port: \"abc\" is not a port number (1-65535)", NULL},
    {"port zero", {"tracker", "-p", "0", NULL}, NULL, -1,
     "--port: \"0\" is not a port number (1-65535)", NULL},
    {"bad udp port", {"tracker", "--udp-port", "65536", NULL}, NULL, -1,
     "--udp-port: \"65536\" is not a port number (0-65535)", NULL},
    {"bad role", {"tracker", "--role", "foo", NULL}, NULL, -1,
     "--role: \"foo\" is not one of standalone, node, router", NULL},
    {"missing value", {"tracker", "--node-id", NULL}, NULL, -1, "--node-id: missing value", NULL},
    {"unknown long flag",
     {"tracker", "--bogus", NULL},
     NULL,
     -1,
     "unknown option \"--bogus\" (see --help)",
     NULL},
    {"unknown short flag",
     {"tracker", "-x", NULL},
     NULL,
     -1,
     "unknown option \"-x\" (see --help)",
     NULL},
    {"value for a switch",
     {"tracker", "--debug=1", NULL},
     NULL,
     -1,
     "--debug: takes no value",
     NULL},
    {"positional argument",
     {"tracker", "--debug", "extra", NULL},
     NULL,
     -1,
     "unexpected argument \"extra\"",
     NULL},
    {"empty seed",
     {"tracker", "--seeds", "tcp://a:1,,tcp://b:2", NULL},
     NULL,
     -1,
     "--seeds: empty entry",
     NULL},
    {"too many public urls",
     {"tracker", "--public-url=a", "--public-url=b", "--public-url=c", "--public-url=d",
      "--public-url=e", "--public-url=f", "--public-url=g", "--public-url=h", "--public-url=i",
      NULL},
     NULL, -1, "--public-url: more than 8 entries", NULL},
    {"missing config file", {"tracker", "--config", "/nonexistent.yaml", NULL}, NULL, -1,
     "/nonexistent.yaml: cannot open: No such file or directory", NULL},
    {"bad value in the config file", {"tracker", "-c", "@FILE", NULL},
     "server:\n  announce_interval: x\n", -1, ": server.announce_interval: \"x\" is not a number",
     NULL},
};

static int run_args(const args_case *tc, syn_config *c, char *err, size_t err_len) {
  char path[64] = "";
  char *argv[MAX_ARGS + 1] = {0};
  int argc = 0;
  if (tc->yaml != NULL) write_temp(tc->yaml, path);
  for (; argc < MAX_ARGS && tc->argv[argc] != NULL; argc++) {
    const char *a = strcmp(tc->argv[argc], "@FILE") == 0 ? path : tc->argv[argc];
    argv[argc] = (char *)a;
  }
  int rc = syn_config_parse_args(c, argc, argv, err, err_len);
  if (path[0] != '\0') unlink(path);
  return rc;
}

static void run_args_case(const args_case *tc) {
  char err[256] = "";
  syn_config c;
  syn_config_defaults(&c);
  int rc = run_args(tc, &c, err, sizeof err);
  if (rc != tc->rc) fail_msg("%s: rc %d, expected %d (%s)", tc->name, rc, tc->rc, err);
  if (tc->err != NULL && strstr(err, tc->err) == NULL)
    fail_msg("%s: error \"%s\" lacks \"%s\"", tc->name, err, tc->err);
  if (tc->check != NULL) tc->check(&c);
  syn_config_free(&c);
}

static void test_args_cases(void **state) {
  for (size_t i = 0; i < sizeof args_cases / sizeof args_cases[0]; i++)
    run_args_case(&args_cases[i]);
}

/* ---- Validation --------------------------------------------------------------------- */

typedef struct validate_case {
  const char *name;
  void (*mutate)(syn_config *cfg);
  const char *err; /* NULL: valid */
} validate_case;

static void numwant_over_max(syn_config *c) { c->default_numwant = 300; }
static void max_numwant_huge(syn_config *c) { c->max_numwant = 5000; }
static void min_over_interval(syn_config *c) { c->min_interval = 2000; }
static void zero_interval(syn_config *c) { c->announce_interval = 0; }
static void timeout_too_short(syn_config *c) { c->peer_timeout = 1000; }
static void zero_workers(syn_config *c) { c->node_workers = 0; }
static void router_without_seeds(syn_config *c) { c->role = SYN_PROCESS_ROUTER; }
static void short_secret(syn_config *c) {
  free(c->udp_secret);
  c->udp_secret = strdup("short");
}
static void empty_host(syn_config *c) { c->host[0] = '\0'; }
static void max_numwant_equal(syn_config *c) { c->max_numwant = c->default_numwant; }
static void node_role(syn_config *c) { c->role = SYN_PROCESS_NODE; }

static const validate_case validate_cases[] = {
    {"numwant equal to max", max_numwant_equal, NULL},
    {"node without seeds", node_role, NULL},
    {"default numwant over max", numwant_over_max,
     "server.default_numwant (300) is greater than server.max_peers_returned (200)"},
    {"max numwant too large", max_numwant_huge,
     "server.max_peers_returned: 5000 is out of range (1-1000)"},
    {"min interval over interval", min_over_interval,
     "server.min_interval (2000) is greater than server.announce_interval (1800)"},
    {"zero interval", zero_interval, "server.announce_interval: 0 is out of range"},
    {"peer timeout shorter than interval", timeout_too_short,
     "server.peer_timeout (1000) is shorter than server.announce_interval (1800)"},
    {"no workers", zero_workers, "node.workers: 0 is out of range (1-256)"},
    {"router without seeds", router_without_seeds, "tracker.seeds: a router needs"},
    {"short udp secret", short_secret, "server.udp_secret: shorter than 16 characters"},
    {"empty host", empty_host, "tracker.host: must not be empty"},
};

static void test_validate_cases(void **state) {
  for (size_t i = 0; i < sizeof validate_cases / sizeof validate_cases[0]; i++) {
    const validate_case *tc = &validate_cases[i];
    char err[256] = "";
    syn_config c;
    syn_config_defaults(&c);
    tc->mutate(&c);
    int rc = syn_config_validate(&c, err, sizeof err);
    if (tc->err == NULL && rc != 0) fail_msg("%s: unexpected error: %s", tc->name, err);
    if (tc->err != NULL && (rc == 0 || strstr(err, tc->err) == NULL))
      fail_msg("%s: error \"%s\" lacks \"%s\"", tc->name, err, tc->err);
    syn_config_free(&c);
  }
}

/* ---- CIDR --------------------------------------------------------------------------- */

typedef struct cidr_case {
  const char *name;
  const char *cidr;   /* text to parse */
  bool parses;
  const char *ip;     /* address to test, NULL to skip */
  bool contains;
} cidr_case;

static const cidr_case cidr_cases[] = {
    {"v4 network, inside", "10.0.0.0/8", true, "10.255.1.2", true},
    {"v4 network, outside", "10.0.0.0/8", true, "11.0.0.1", false},
    {"v4 host bits ignored", "10.1.2.3/8", true, "10.9.9.9", true},
    {"v4 bare address", "192.168.1.7", true, "192.168.1.7", true},
    {"v4 bare address, neighbour", "192.168.1.7", true, "192.168.1.8", false},
    {"v4 /0 matches all v4", "0.0.0.0/0", true, "203.0.113.9", true},
    {"v4 /0 does not match v6", "0.0.0.0/0", true, "2001:db8::1", false},
    {"v4 /31 boundary", "192.168.0.0/31", true, "192.168.0.1", true},
    {"v4 /31 outside", "192.168.0.0/31", true, "192.168.0.2", false},
    {"v4 /32", "1.2.3.4/32", true, "1.2.3.4", true},
    {"v6 network, inside", "fd00::/8", true, "fdab::1", true},
    {"v6 network, outside", "fd00::/8", true, "fe80::1", false},
    {"v6 loopback", "::1/128", true, "::1", true},
    {"v6 bare address", "2001:db8::5", true, "2001:db8::5", true},
    {"v6 odd prefix", "2001:db8::/33", true, "2001:db8:7fff::1", true},
    {"v6 odd prefix, outside", "2001:db8::/33", true, "2001:db8:8000::1", false},
    {"v6 /0 matches v4 too", "::/0", true, "10.0.0.1", true},
    {"mapped cidr matches v4", "::ffff:10.0.0.0/104", true, "10.1.2.3", true},
    {"v4 cidr matches mapped v6", "10.0.0.0/8", true, "::ffff:10.2.3.4", true},
    {"v4 prefix too long", "10.0.0.0/33", false, NULL, false},
    {"v6 prefix too long", "::/129", false, NULL, false},
    {"empty prefix", "10.0.0.0/", false, NULL, false},
    {"negative prefix", "10.0.0.0/-1", false, NULL, false},
    {"prefix with space", "10.0.0.0/ 8", false, NULL, false},
    {"not an address", "example.com", false, NULL, false},
    {"short v4", "10.0.0/8", false, NULL, false},
    {"empty", "", false, NULL, false},
    {"only a prefix", "/8", false, NULL, false},
    {"two slashes", "10.0.0.0/8/8", false, NULL, false},
    {"leading space", " 10.0.0.0/8", false, NULL, false},
};

/* Tests an address in its natural length: 4 bytes for IPv4, 16 for IPv6. */
static bool contains_text(const syn_cidr *cidr, const char *ip) {
  uint8_t raw[16];
  if (inet_pton(AF_INET, ip, raw) == 1) return syn_cidr_contains(cidr, raw, 4);
  assert_int_equal(inet_pton(AF_INET6, ip, raw), 1);
  return syn_cidr_contains(cidr, raw, 16);
}

static void test_cidr_cases(void **state) {
  for (size_t i = 0; i < sizeof cidr_cases / sizeof cidr_cases[0]; i++) {
    const cidr_case *tc = &cidr_cases[i];
    syn_cidr cidr;
    bool parsed = syn_cidr_parse(tc->cidr, &cidr) == 0;
    if (parsed != tc->parses) fail_msg("%s: parse gave %d", tc->name, parsed);
    if (parsed && tc->ip != NULL && contains_text(&cidr, tc->ip) != tc->contains)
      fail_msg("%s: contains(%s) gave %d", tc->name, tc->ip, !tc->contains);
  }
}

static void test_cidr_bad_length(void **state) {
  syn_cidr cidr;
  uint8_t ip[16] = {0};
  assert_int_equal(syn_cidr_parse("::/0", &cidr), 0);
  assert_false(syn_cidr_contains(&cidr, ip, 5));
  assert_false(syn_cidr_contains(&cidr, ip, 0));
}

static void test_role_names(void **state) {
  assert_string_equal(syn_role_name(SYN_PROCESS_STANDALONE), "standalone");
  assert_string_equal(syn_role_name(SYN_PROCESS_NODE), "node");
  assert_string_equal(syn_role_name(SYN_PROCESS_ROUTER), "router");
  assert_non_null(strstr(syn_config_usage(), "--public-url"));
}

static void find_sample(int argc, char **argv) {
#ifdef CONFIG_SAMPLE_PATH
  const char *configured = CONFIG_SAMPLE_PATH;
#else
  const char *configured = NULL;
#endif
  if (argc > 1) {
    snprintf(sample_path, sizeof sample_path, "%s", argv[1]);
  } else if (configured != NULL) {
    snprintf(sample_path, sizeof sample_path, "%s", configured);
  } else {
    /* __FILE__ is .../common/config_test.c; the sample sits one level up. */
    const char *slash = strrchr(__FILE__, '/');
    int dir_len = slash ? (int)(slash - __FILE__) : 1;
    snprintf(sample_path, sizeof sample_path, "%.*s/../config.yaml", dir_len,
             slash ? __FILE__ : ".");
  }
}

int main(int argc, char **argv) {
  find_sample(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),          cmocka_unit_test(test_told_interval),
      cmocka_unit_test(test_sample_file),       cmocka_unit_test(test_yaml_cases),
      cmocka_unit_test(test_yaml_missing_file), cmocka_unit_test(test_args_cases),
      cmocka_unit_test(test_validate_cases),    cmocka_unit_test(test_cidr_cases),
      cmocka_unit_test(test_cidr_bad_length),   cmocka_unit_test(test_role_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
