/* Fuzz target: BEP 15 packets as router/udp.c receives them: parse, then the
 * connection-ID check an announce or scrape must pass (with the source address and
 * clock taken from the input, so both accepted and refused IDs are reached), and the
 * error reply a refused packet gets. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/connid.h"
#include "common/udp_proto.h"

static syn_connid_key key;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) {
    syn_connid_key_init(&key, "fuzz secret");
    ready = 1;
  }
  /* Leading bytes: 4 of clock, 1 choosing an IPv4 or IPv6 source, then the packet. */
  if (size < 5) return 0;
  uint32_t now;
  memcpy(&now, data, 4);
  size_t ip_len = (data[4] & 1) ? 16 : 4;
  uint8_t ip[16] = {127, 0, 0, 1};
  if (data[4] & 2) ip[0] = data[4];
  const uint8_t *pkt = data + 5;
  size_t len = size - 5;
  static syn_udp_request req;
  int rc = syn_udp_parse(pkt, len, &req);
  uint8_t out[1500];
  if (rc == 0 && req.action == SYN_UDP_CONNECT) {
    uint64_t id = syn_connid_make(&key, now, ip, ip_len);
    if (!syn_connid_check(&key, id, now, ip, ip_len)) __builtin_trap(); /* own IDs pass */
    syn_udp_build_connect(out, sizeof out, req.transaction_id, id);
  } else if (rc == 0) {
    if (!syn_connid_check(&key, req.connection_id, now, ip, ip_len))
      syn_udp_build_error(out, sizeof out, req.transaction_id, "bad connection id");
    if (req.action == SYN_UDP_SCRAPE) {
      size_t n = syn_udp_build_scrape_header(out, sizeof out, req.transaction_id);
      for (size_t i = 0; i < req.scrape_count && n; i++) {
        volatile uint8_t b = req.scrape_hashes[i * 20 + 19]; /* inside the packet */
        (void)b;
        n = syn_udp_put_scrape_entry(out, sizeof out, n, 1, 2, 3);
      }
    }
    if (req.url_data_len > SYN_UDP_MAX_URL_DATA) __builtin_trap();
  } else if (rc == SYN_UDP_ERR_ACTION || rc == SYN_UDP_ERR_SCRAPE_COUNT) {
    syn_udp_build_error(out, sizeof out, req.transaction_id, "bad request");
  }
  return 0;
}
