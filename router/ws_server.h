/* WebSocket server on libuv (RFC 6455): the ws:// and wss:// listeners of WebTorrent
 * tracking.
 *
 * Owns the listening sockets (websocket.port, websocket.tls_port), every connection,
 * the opening handshake (an HTTP/1.1 GET upgraded, parsed by llhttp), the framing
 * (Debian's wslay: masking, fragmentation, ping/pong, the closing handshake) and TLS
 * (router/tls.h). Enforces: connections per client (HTTP 429 at the handshake past the
 * cap) and in all, a deadline for the handshake, a size limit per message (close 1009),
 * a bound on bytes queued for a client that does not read (the socket is closed), and an
 * idle timeout. Messages are handed to the owner's callbacks whole; what they mean is the
 * owner's business (router/ws_tracker.h).
 *
 * Everything runs on the loop thread. A connection given to on_open stays valid until
 * on_close has returned for it, exactly once; syn_ws_send on a closing one is a no-op. */
#ifndef SYN_ROUTER_WS_SERVER_H
#define SYN_ROUTER_WS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"

typedef struct syn_ws_server syn_ws_server;
typedef struct syn_ws_conn syn_ws_conn;

typedef struct syn_ws_callbacks {
  void (*on_open)(void *ctx, syn_ws_conn *c);
  /* One whole text or binary message; valid during the call only. */
  void (*on_message)(void *ctx, syn_ws_conn *c, const uint8_t *msg, size_t len);
  void (*on_close)(void *ctx, syn_ws_conn *c);
  void *ctx;
} syn_ws_callbacks;

typedef struct syn_ws_stats {
  uint64_t open;       /* connections open now (handshake done) */
  uint64_t handshakes; /* connections upgraded since start */
  uint64_t refused;    /* handshakes refused (limits, bad requests) */
  uint64_t messages_in;
  uint64_t messages_out;
  uint64_t closed_slow;  /* closed: too much queued for a client that does not read */
  uint64_t closed_idle;  /* closed: nothing heard within the idle timeout */
  uint64_t tls_failures; /* TLS handshakes or records that failed */
} syn_ws_stats;

/* Binds cfg->ws_port (when not 0) and cfg->wss_port (when not 0, loading the certificate
 * and key). NULL with a one-line message in err. `cfg` must outlive the server. */
syn_ws_server *syn_ws_listen(uv_loop_t *loop, const syn_config *cfg, const syn_ws_callbacks *cb,
                             char *err, size_t err_len);

/* Queues a text message (copied). 0; -1 when the connection is closing, or when it now
 * holds more unsent bytes than a reading client would (it is then closed). */
int syn_ws_send(syn_ws_conn *c, const char *text, size_t len);
/* Starts the closing handshake with `code` (1000 normal, 1008 policy, ...). */
void syn_ws_close(syn_ws_conn *c, uint16_t code, const char *reason);

/* The client's address (4 or 16 bytes; 0 when unknown). */
size_t syn_ws_conn_ip(const syn_ws_conn *c, const uint8_t **ip);

void syn_ws_conn_set_data(syn_ws_conn *c, void *data);
void *syn_ws_conn_data(const syn_ws_conn *c);

/* Re-reads the TLS certificate and key (SIGHUP): new handshakes use them, open
 * connections are kept. 0; -1 with a message (the old pair stays); 0 without wss. */
int syn_ws_reload_tls(syn_ws_server *srv, char *err, size_t err_len);

void syn_ws_stats_get(const syn_ws_server *srv, syn_ws_stats *out);

/* Closes the listeners and every connection (on_close runs for each open one); frees the
 * server once libuv has closed the handles. */
void syn_ws_server_close(syn_ws_server *srv);

#endif
