/* Fuzz target: the request parsers behind the HTTP paths. The first byte chooses the
 * entry point (announce query, scrape query, register body, search body, embedding
 * search body, API info_hash); the rest is the query string or body exactly as
 * router/http.c hands it to the handler. Every parse must return without a sanitizer
 * report, and whatever it fills must be releasable. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "router/api_json.h"
#include "router/tracker_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  char err[256];
  switch (data[0] % 6) {
  case 0: {
    syn_announce_query q;
    syn_announce_query_parse(text, len, &q);
    break;
  }
  case 1: {
    static syn_scrape_query q;
    syn_scrape_query_parse(text, len, &q);
    break;
  }
  case 2: {
    syn_register_input in;
    memset(&in, 0, sizeof in);
    /* Released whatever the outcome, as router/api.c does. */
    syn_api_parse_register(text, len, &in, err, sizeof err);
    syn_register_input_free(&in);
    break;
  }
  case 3:
  case 4: {
    syn_search_input in;
    memset(&in, 0, sizeof in);
    syn_api_parse_search(text, len, data[0] % 6 == 4, &in, err, sizeof err);
    syn_search_input_free(&in);
    break;
  }
  default: {
    char hex[65];
    uint8_t key[20];
    syn_api_parse_hash(text, len, hex, key);
    syn_json_depth_ok(text, len, SYN_API_MAX_DEPTH);
    break;
  }
  }
  return 0;
}
