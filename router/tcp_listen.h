/* What every TCP listener of the router (HTTP, ws://, wss://) does the same way: bind
 * host:port (IPv6 dual-stack, falling back to IPv4 where the host has no IPv6) and name a
 * connection's client address as 4 or 16 bytes (IPv4-mapped addresses as IPv4), and
 * whom a request from a trusted proxy speaks for. */
#ifndef SYN_ROUTER_TCP_LISTEN_H
#define SYN_ROUTER_TCP_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Initialises *listener on `loop`, binds it and starts listening with on_connection.
 * `what` names the port in err ("HTTP port"). 0, or -1 with a one-line message; the
 * handle is initialised either way (close it). */
int syn_tcp_listen(uv_loop_t *loop, uv_tcp_t *listener, const char *host, uint16_t port,
                   uv_connection_cb on_connection, const char *what, char *err, size_t err_len);

/* The peer's address into ip (4 or 16 bytes); its length, or 0 when unknown. */
size_t syn_tcp_peer_ip(const uv_tcp_t *tcp, uint8_t ip[16]);

struct syn_config;
/* Whether the socket peer is one of cfg->trusted_proxies (it speaks for others). */
bool syn_from_trusted_proxy(const struct syn_config *cfg, const uint8_t *ip, size_t ip_len);

/* The client a request speaks for: the socket peer, unless that peer is one of
 * cfg->trusted_proxies and the request has an X-Forwarded-For value (xff, NUL-terminated,
 * or NULL): then its rightmost address, the one the proxy itself appended. Into out;
 * returns the length (4 or 16, 0 when the peer is unknown). */
size_t syn_client_ip(const struct syn_config *cfg, const uint8_t *peer_ip, size_t peer_len,
                     const char *xff, uint8_t out[16]);

#endif
