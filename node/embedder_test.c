/* Unit tests for the embedding client's pure parts: URL parsing, request bodies and
 * response parsing (both API styles, hostile replies). */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on
#include <stdlib.h>
#include <string.h>

#include "node/embedder.h"

typedef struct url_case {
  const char *name;
  const char *url;
  int rc;
  const char *host, *port, *path;
} url_case;

static const url_case url_cases[] = {
    {"ollama default", "http://127.0.0.1:11434/api/embed", 0, "127.0.0.1", "11434", "/api/embed"},
    {"no port", "http://embedder/v1/embeddings", 0, "embedder", "80", "/v1/embeddings"},
    {"no path", "http://host:8080", 0, "host", "8080", "/"},
    {"https refused", "https://host/x", -1, NULL, NULL, NULL},
    {"empty host", "http://:80/x", -1, NULL, NULL, NULL},
    {"bad port", "http://host:abc/x", -1, NULL, NULL, NULL},
    {"port too long", "http://host:123456/x", -1, NULL, NULL, NULL},
    {"junk after host", "http://host?x", -1, NULL, NULL, NULL},
};

static void test_urls(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
    const url_case *c = &url_cases[i];
    syn_http_url u;
    int rc = syn_embed_parse_url(c->url, &u);
    if (rc != c->rc) fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
    if (rc) continue;
    assert_string_equal(u.host, c->host);
    assert_string_equal(u.port, c->port);
    assert_string_equal(u.path, c->path);
  }
}

static void test_request_bodies(void **state) {
  (void)state;
  syn_embedder_config cfg = {.api = "ollama", .model = "nomic-embed-text", .prefix = "search_query: "};
  char *body = syn_embed_request_body(&cfg, "react \"hooks\"");
  assert_string_equal(body, "{\"model\":\"nomic-embed-text\",\"input\":\"search_query: react \\\"hooks\\\"\"}");
  free(body);
  cfg.api = "openai";
  cfg.prefix = NULL;
  body = syn_embed_request_body(&cfg, "x");
  assert_string_equal(body, "{\"model\":\"nomic-embed-text\",\"input\":\"x\"}");
  free(body);
  cfg.api = "grpc";
  assert_null(syn_embed_request_body(&cfg, "x"));
}

typedef struct response_case {
  const char *name;
  const char *api;
  const char *body;
  int rc;
  uint32_t dim;
  float first;
} response_case;

static const response_case response_cases[] = {
    {"ollama embed", "ollama", "{\"model\":\"m\",\"embeddings\":[[0.5,-1,2]]}", 0, 3, 0.5f},
    {"ollama legacy", "ollama", "{\"embedding\":[1,2]}", 0, 2, 1.0f},
    {"openai", "openai", "{\"data\":[{\"embedding\":[0.25,0.75],\"index\":0}]}", 0, 2, 0.25f},
    {"not json", "ollama", "<html>", -1, 0, 0},
    {"empty vector", "ollama", "{\"embeddings\":[[]]}", -1, 0, 0},
    {"strings inside", "ollama", "{\"embeddings\":[[1,\"x\"]]}", -1, 0, 0},
    {"wrong shape for openai", "openai", "{\"embeddings\":[[1]]}", -1, 0, 0},
    {"overflowing float", "ollama", "{\"embeddings\":[[1e300]]}", -1, 0, 0},
    {"error object", "openai", "{\"error\":{\"message\":\"nope\"}}", -1, 0, 0},
};

static void test_responses(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof response_cases / sizeof response_cases[0]; i++) {
    const response_case *c = &response_cases[i];
    float *v = NULL;
    uint32_t dim = 0;
    char err[128] = "";
    int rc = syn_embed_parse_response(c->api, c->body, strlen(c->body), &v, &dim, err, sizeof err);
    if (rc != c->rc) fail_msg("%s: rc %d, want %d (%s)", c->name, rc, c->rc, err);
    if (rc == 0) {
      assert_int_equal(dim, c->dim);
      assert_true(v[0] == c->first);
    } else {
      assert_true(strlen(err) > 0);
    }
    free(v);
  }
}

static void test_unreachable_service_fails_within_timeout(void **state) {
  (void)state;
  /* Port 1 on loopback: nothing listens, so connect is refused at once. */
  syn_embedder_config cfg = {.url = "http://127.0.0.1:1/api/embed", .api = "ollama", .model = "m",
                             .prefix = "", .timeout_ms = 500};
  float *v = NULL;
  uint32_t dim;
  char err[128];
  assert_int_equal(syn_embed_text(&cfg, "q", &v, &dim, err, sizeof err), -1);
  assert_null(v);
  assert_string_equal(err, "embedding service unreachable");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_request_bodies),
      cmocka_unit_test(test_responses),
      cmocka_unit_test(test_unreachable_service_fails_within_timeout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
