/* TLS for the router's listeners (wss://), on OpenSSL memory BIOs so that it runs over any
 * libuv stream: the caller moves ciphertext between the socket and the connection. Nothing
 * here touches a socket, a timer or the loop; a handshake that never finishes is the
 * caller's deadline to enforce.
 *
 * - A context owns the certificate and key in force: one SSL_CTX, replaced whole by a
 *   reload. A connection owns its SSL (and the SSL its two memory BIOs) and holds its own
 *   reference to the SSL_CTX it was created under, so a reload or a free of the context
 *   never disturbs it. A connection takes the pair in force when it is created (accept).
 * - Server side only: TLS 1.2 or 1.3, AEAD suites with forward secrecy, no compression, no
 *   renegotiation, no client certificates. Sessions resume from tickets alone: the router
 *   keeps no session cache (tickets from before a reload just mean a full handshake).
 * - Output is appended to the caller's syn_buf; nothing handed out points into this
 *   module's memory except syn_tls_conn_error's text, valid until the connection is freed.
 * - Bounds are the caller's: a feed decrypts all it is given, and without compression
 *   plaintext never outweighs its ciphertext, so one feed adds to *plain at most its own
 *   length plus the record left incomplete by the feed before (16 KB). A caller that lets
 *   *plain pile up (a peer sending faster than it is served) must cap it itself: stop
 *   reading the socket, or close. Nothing here refuses input for its size.
 * - Loop thread only. OpenSSL's error queue is per thread; it is cleared around each call,
 *   so a failure here never leaks into another caller of OpenSSL on the same thread. */
#ifndef SYN_ROUTER_TLS_H
#define SYN_ROUTER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

typedef struct syn_tls_ctx syn_tls_ctx;   /* the certificate and key in force */
typedef struct syn_tls_conn syn_tls_conn; /* one connection's TLS state */

/* Loads a PEM certificate chain (leaf first) and its private key (checked to match; an
 * encrypted key is refused, never prompted for). NULL with a one-line message in err. */
syn_tls_ctx *syn_tls_ctx_load(const char *cert_file, const char *key_file, char *err,
                              size_t err_len);
/* Re-reads the same two files (SIGHUP): handshakes from now on use the new pair;
 * connections already open keep theirs and are not dropped. On failure (unreadable,
 * mismatched) nothing changes and err says why; 0 or -1. */
int syn_tls_ctx_reload(syn_tls_ctx *ctx, char *err, size_t err_len);
/* Frees the context; connections still open keep working (OpenSSL refcounts the SSL_CTX). */
void syn_tls_ctx_free(syn_tls_ctx *ctx);

syn_tls_conn *syn_tls_conn_new(syn_tls_ctx *ctx); /* server side; NULL on out of memory */
void syn_tls_conn_free(syn_tls_conn *c);
/* Ciphertext read from the socket. Decrypted application bytes are appended to *plain, and
 * bytes that must be sent (handshake records, alerts) to *cipher. 0; -1 on a fatal TLS
 * error or a peer's close_notify (then send *cipher, if anything, and close: it holds the
 * alert, or our close_notify in reply). On -1, what *plain received before the failure is
 * what the peer really sent; every later feed returns -1 at once. */
int syn_tls_conn_feed(syn_tls_conn *c, const uint8_t *data, size_t len, syn_buf *plain,
                      syn_buf *cipher);
/* Encrypts application bytes to send, appended to *cipher. Called only after the handshake
 * completed (syn_tls_conn_ready). 0 or -1 (also before the handshake, after a failure or
 * after syn_tls_conn_shutdown). */
int syn_tls_conn_write(syn_tls_conn *c, const uint8_t *data, size_t len, syn_buf *cipher);
/* Appends a close_notify alert to *cipher (once; nothing before the handshake completed or
 * after a failure, when there is nothing to close politely). Reading may go on after it. */
void syn_tls_conn_shutdown(syn_tls_conn *c, syn_buf *cipher);
bool syn_tls_conn_ready(const syn_tls_conn *c); /* handshake completed */
/* A short reason for the last fatal error (for the log), or "". */
const char *syn_tls_conn_error(const syn_tls_conn *c);

#endif
