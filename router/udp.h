/* BEP 15 UDP endpoint: socket I/O, connect handling and connection-ID checks.
 *
 * Owns one non-blocking UDP socket (dual-stack when bound to an IPv6 address). Reads are
 * batched with recvmmsg, at most SYN_UDP_READ_BUDGET datagrams per wake-up so one busy
 * client cannot starve the loop. Connect requests are answered here (they carry no
 * info_hash); announces and scrapes with a valid connection ID are handed to the router's
 * callback; bad packets get an error packet or, when too short to carry a transaction
 * id, silence. Replies are queued and sent together with sendmmsg at the end of the loop
 * turn. Everything runs on the loop thread. */
#ifndef SYN_ROUTER_UDP_H
#define SYN_ROUTER_UDP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/config.h"
#include "common/udp_proto.h"

#define SYN_UDP_READ_BUDGET 128

typedef struct syn_udp syn_udp;

typedef struct syn_udp_peer {
  struct sockaddr_storage addr; /* where the reply goes */
  socklen_t addr_len;
  uint8_t ip[16]; /* client address; IPv4-mapped addresses become 4 bytes */
  size_t ip_len;
} syn_udp_peer;

/* An announce or scrape that passed the connection-ID check. `req` points into the
 * receive buffer and is valid during the call only. */
typedef void (*syn_udp_request_fn)(void *ctx, const syn_udp_request *req,
                                   const syn_udp_peer *from);

typedef struct syn_udp_stats {
  uint64_t received;
  uint64_t connects;
  uint64_t announces;
  uint64_t scrapes;
  uint64_t errors_sent;
  uint64_t dropped; /* malformed and silent, or send failures */
  uint64_t bad_connection_id;
} syn_udp_stats;

syn_udp *syn_udp_start(uv_loop_t *loop, const syn_config *cfg, syn_udp_request_fn fn, void *ctx,
                       char *err, size_t err_len);

/* Queues a reply packet (copied). Dropped and counted when the queue is full. */
void syn_udp_send(syn_udp *udp, const syn_udp_peer *to, const uint8_t *pkt, size_t len);
void syn_udp_send_error(syn_udp *udp, const syn_udp_peer *to, uint32_t transaction_id,
                        const char *message);

void syn_udp_stats_get(const syn_udp *udp, syn_udp_stats *out);
void syn_udp_close(syn_udp *udp);

#endif
