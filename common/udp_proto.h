/* BEP 15 UDP tracker packets: parsing requests and building replies.
 *
 * Parsing never trusts lengths: a packet is checked against the exact sizes BEP 15 gives
 * before any field is read. Nothing is allocated; parsed scrape hashes point into the
 * caller's packet buffer, which must outlive the parsed request. BEP 41 URL data may arrive
 * in several option chunks that are concatenated, so it is copied into a bounded buffer
 * inside the request instead. Pure functions, thread-safe. */
#ifndef SYN_COMMON_UDP_PROTO_H
#define SYN_COMMON_UDP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SYN_UDP_PROTOCOL_ID 0x41727101980ULL
#define SYN_UDP_MAX_SCRAPE 74
#define SYN_UDP_CONNECT_LEN 16
#define SYN_UDP_ANNOUNCE_LEN 98
/* BEP 41 URL data kept per announce; chunks beyond it are dropped (see syn_udp_parse). */
#define SYN_UDP_MAX_URL_DATA 1024

enum syn_udp_action {
  SYN_UDP_CONNECT = 0,
  SYN_UDP_ANNOUNCE = 1,
  SYN_UDP_SCRAPE = 2,
  SYN_UDP_ERROR = 3,
};

/* Parse results, negative so they read as errors. */
enum syn_udp_parse_error {
  SYN_UDP_ERR_SHORT = -1,       /* shorter than its action needs: ignore */
  SYN_UDP_ERR_PROTOCOL_ID = -2, /* connect without the magic: ignore */
  SYN_UDP_ERR_ACTION = -3,      /* unknown action: error packet */
  SYN_UDP_ERR_SCRAPE_COUNT = -4 /* no hash, or more than SYN_UDP_MAX_SCRAPE: error packet */
};

typedef struct syn_udp_request {
  uint64_t connection_id;
  uint32_t action;
  uint32_t transaction_id;
  /* announce */
  uint8_t info_hash[20];
  uint8_t peer_id[20];
  uint64_t downloaded;
  uint64_t left;
  uint64_t uploaded;
  uint32_t event; /* 0 none, 1 completed, 2 started, 3 stopped; other values read as 0 */
  uint32_t ip;    /* as sent; ignored, the source address counts */
  uint32_t key;
  int32_t num_want; /* -1 means default */
  uint16_t port;
  /* scrape */
  const uint8_t *scrape_hashes; /* scrape_count * 20 bytes, into the packet */
  size_t scrape_count;
  /* announce, BEP 41: the request string ("/announce?..."), url_data_len 0 when absent.
   * Kept last: parsing clears only the fields above it. */
  size_t url_data_len;
  uint8_t url_data[SYN_UDP_MAX_URL_DATA];
} syn_udp_request;

/* 0, or a syn_udp_parse_error. On SYN_UDP_ERR_ACTION and SYN_UDP_ERR_SCRAPE_COUNT the
 * transaction_id is filled so that an error packet can be sent. Bytes after a connect's 16
 * are ignored. After an announce's 98 bytes come BEP 41 options (0 end, 1 no-op, 2 URL data
 * with a 1-byte length); a malformed or truncated option, or URL data that would exceed
 * SYN_UDP_MAX_URL_DATA, ends option parsing and keeps the complete chunks before it: an
 * announce never fails because of its options. A scrape must carry 1..SYN_UDP_MAX_SCRAPE
 * whole hashes. */
int syn_udp_parse(const uint8_t *pkt, size_t len, syn_udp_request *out);

/* Builders return the packet length, or 0 when `cap` is too small. */
size_t syn_udp_build_connect(uint8_t *out, size_t cap, uint32_t transaction_id,
                             uint64_t connection_id);
/* `peers` holds compact records: 6 bytes each for IPv4, 18 for IPv6. */
size_t syn_udp_build_announce(uint8_t *out, size_t cap, uint32_t transaction_id, uint32_t interval,
                              uint32_t leechers, uint32_t seeders, const uint8_t *peers,
                              size_t peers_len);
/* Starts a scrape reply; append entries with syn_udp_put_scrape_entry. Returns 8, or 0 when
 * `cap` is below 8. */
size_t syn_udp_build_scrape_header(uint8_t *out, size_t cap, uint32_t transaction_id);
/* Writes 12 bytes at out+offset; returns the new length or 0 when full. */
size_t syn_udp_put_scrape_entry(uint8_t *out, size_t cap, size_t offset, uint32_t seeders,
                                uint32_t completed, uint32_t leechers);
/* The message follows the 8-byte header without a terminating NUL. */
size_t syn_udp_build_error(uint8_t *out, size_t cap, uint32_t transaction_id, const char *message);

#endif
