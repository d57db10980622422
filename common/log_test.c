/* Unit tests for the JSON log line: the fields, the component taken from the message's
 * prefix, and escaping (quotes, backslashes, control characters, bytes that are not
 * UTF-8), each line parsed back with jansson. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "common/log.h"

#include <jansson.h>
#include <string.h>

#define T_MS 1767323045678LL /* 2026-01-02T03:04:05.678Z */

typedef struct line_case {
  const char *name;
  const char *message;
  uint64_t request_id;
  const char *component; /* expected */
  const char *text;      /* expected message after parsing */
} line_case;

static json_t *parse_line(const char *line, size_t len) {
  assert_true(len > 2);
  assert_int_equal(line[len - 1], '\n');
  assert_null(memchr(line, '\n', len - 1)); /* one line */
  json_error_t e;
  json_t *j = json_loadb(line, len, 0, &e);
  if (!j) fail_msg("not JSON (%s): %s", e.text, line);
  return j;
}

static void test_line(void **state) {
  const line_case *c = *state;
  char line[4096];
  size_t len = syn_log_json_line(line, sizeof line, T_MS, SYN_LOG_WARN, c->request_id, c->message);
  assert_int_equal(len, strlen(line));
  json_t *j = parse_line(line, len);
  assert_string_equal(json_string_value(json_object_get(j, "time")), "2026-01-02T03:04:05.678Z");
  assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
  assert_string_equal(json_string_value(json_object_get(j, "component")), c->component);
  assert_string_equal(json_string_value(json_object_get(j, "message")), c->text);
  json_t *rid = json_object_get(j, "request_id");
  if (c->request_id) {
    char want[32];
    snprintf(want, sizeof want, "0x%016llx", (unsigned long long)c->request_id);
    assert_string_equal(json_string_value(rid), want);
  } else {
    assert_null(rid);
  }
  json_decref(j);
}

/* A long message is cut, never the object: the line stays valid whatever the bound. */
static void test_truncation(void **state) {
  (void)state;
  char msg[3000];
  for (size_t i = 0; i < sizeof msg - 1; i++)
    msg[i] = i % 7 == 0 ? '"' : i % 11 == 0 ? '\x01' : 'x';
  msg[sizeof msg - 1] = '\0';
  for (size_t cap = 256; cap < 9000; cap += 97) {
    char line[9000];
    size_t len = syn_log_json_line(line, cap, T_MS, SYN_LOG_INFO, 42, msg);
    assert_true(len < cap);
    json_t *j = parse_line(line, len);
    assert_non_null(json_object_get(j, "request_id"));
    json_decref(j);
  }
}

#define LINE(n, m, id, comp, text)                                  \
  {                                                                 \
    n, test_line, NULL, NULL, &(line_case) { n, m, id, comp, text } \
  }

int main(void) {
  const struct CMUnitTest tests[] = {
      LINE("plain", "serving: role=standalone", 0, "serving", "role=standalone"),
      LINE("component prefix", "node: swarm snapshot loaded", 0, "node", "swarm snapshot loaded"),
      LINE("no component", "signal 15: shutting down", 0, "main", "signal 15: shutting down"),
      LINE("request id", "router: upstream failed", 0x0000000300000007ull, "router",
           "upstream failed"),
      LINE("quotes and backslash", "say \"hi\" \\ bye", 0, "main", "say \"hi\" \\ bye"),
      LINE("control characters",
           "a\nb\tc\rd\x01"
           "e\x1f"
           "f\x7f",
           0, "main",
           "a\nb\tc\rd\x01"
           "e\x1f"
           "f\x7f"),
      LINE("valid UTF-8 kept", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0, "main",
           "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
      LINE("invalid bytes replaced",
           "x\xff"
           "y\xc3"
           "z\xc0\xaf"
           "\xed\xa0\x80",
           0, "main",
           "x\xef\xbf\xbdy\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf"
           "\xbd"),
      LINE("truncated sequence at end", "end\xe2\x82", 0, "main", "end\xef\xbf\xbd\xef\xbf\xbd"),
      LINE("prefix needs a space", "http:x", 0, "main", "http:x"),
      cmocka_unit_test(test_truncation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
