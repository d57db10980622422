/* TLS over memory BIOs. Design notes:
 *
 * - Input is written to the read BIO and output drained from the write BIO at most a
 *   record's worth at a time, and a BIO that grew past BIO_KEEP_MAX is replaced once empty:
 *   a memory BIO never gives back the largest block it held, which would undo what
 *   SSL_MODE_RELEASE_BUFFERS saves on an idle connection.
 * - SSL_read runs until it wants more input (SSL_MODE_AUTO_RETRY makes it go through
 *   handshake and alert records on its own), so a feed leaves nothing undecrypted behind.
 * - The error queue is cleared before each SSL call (SSL_get_error reads it) and after a
 *   failure is recorded, so no stale error names the wrong connection.
 * - A memory write BIO never asks to be retried, so SSL_ERROR_WANT_WRITE cannot happen;
 *   anything but WANT_READ is the end of the connection. */
#include "router/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A record's plaintext at most: the unit of SSL_write and of the read buffer. */
#define RECORD_MAX 16384
/* Fed to the read BIO at a time: one full record with its header and overhead. */
#define FEED_CHUNK (RECORD_MAX + 2048)
/* An emptied BIO whose block grew past this is replaced by a fresh one. */
#define BIO_KEEP_MAX 8192

/* Mozilla's "intermediate" TLS 1.2 suites without DHE (no parameters to keep up to date):
 * ECDHE for forward secrecy, AEAD only. TLS 1.3 keeps OpenSSL's defaults (all AEAD). */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct syn_tls_ctx {
  SSL_CTX *ssl_ctx; /* the pair in force; each connection holds its own reference */
  char *cert_file;
  char *key_file;
};

struct syn_tls_conn {
  SSL *ssl; /* owns both BIOs */
  bool ready;
  bool failed; /* a fatal error or the peer's close_notify: nothing more goes through */
  bool shut;   /* our close_notify is written */
  char error[128];
};

/* The first error on OpenSSL's queue (the cause; later ones say where it surfaced) as its
 * reason text, or `fallback` when the queue is empty. Clears the queue. */
static void openssl_reason(char *out, size_t out_len, const char *fallback) {
  unsigned long e = ERR_peek_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  if (reason) {
    snprintf(out, out_len, "%s", reason);
  } else if (e && out_len > 0) {
    ERR_error_string_n(e, out, out_len);
  } else {
    snprintf(out, out_len, "%s", fallback);
  }
  ERR_clear_error();
}

/* ---- contexts ---- */

/* Refuses to decrypt a key rather than let OpenSSL prompt on the terminal (a daemon
 * reloading on SIGHUP would wait there for ever); `asked`, when given, notes the request. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked) {
  (void)buf, (void)size, (void)rwflag;
  if (asked) *(bool *)asked = true;
  return 0;
}

/* Checked before OpenSSL opens the file, so that the message is the system's. */
static bool readable(const char *path, const char *what, char *err, size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_len, "%s %s: %s", what, path, strerror(errno));
    return false;
  }
  fclose(f);
  return true;
}

static EVP_PKEY *read_key(const char *path, char *err, size_t err_len) {
  BIO *in = BIO_new_file(path, "r");
  bool asked = false;
  EVP_PKEY *key = in ? PEM_read_bio_PrivateKey(in, NULL, no_passphrase, &asked) : NULL;
  BIO_free(in);
  if (key) return key;
  char why[96];
  openssl_reason(why, sizeof why, "unreadable");
  if (asked) { /* OpenSSL's own words would be "bad decrypt" */
    snprintf(err, err_len, "private key %s is encrypted (give it without a passphrase)", path);
  } else {
    snprintf(err, err_len, "private key %s: %s", path, why);
  }
  return NULL;
}

static SSL_CTX *build(const char *cert_file, const char *key_file, char *err, size_t err_len) {
  ERR_clear_error();
  if (!readable(cert_file, "certificate", err, err_len)) return NULL;
  if (!readable(key_file, "private key", err, err_len)) return NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    snprintf(err, err_len, "cannot create a TLS context (out of memory)");
    ERR_clear_error();
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* No compression: CRIME, and a record could then decrypt to more than it weighs. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_AUTO_RETRY);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  if (!SSL_CTX_set_cipher_list(ctx, tls12_ciphers)) {
    char why[96];
    openssl_reason(why, sizeof why, "refused");
    snprintf(err, err_len, "TLS 1.2 cipher list: %s", why);
    goto fail;
  }
  if (!SSL_CTX_use_certificate_chain_file(ctx, cert_file)) {
    char why[96];
    openssl_reason(why, sizeof why, "unreadable");
    snprintf(err, err_len, "certificate %s: %s", cert_file, why);
    goto fail;
  }
  EVP_PKEY *key = read_key(key_file, err, err_len);
  if (!key) goto fail;
  /* use_PrivateKey checks a key against a certificate of its own type only: a key of
   * another type lands in another slot, which check_private_key then finds bare. */
  int ok = SSL_CTX_use_PrivateKey(ctx, key) && SSL_CTX_check_private_key(ctx);
  EVP_PKEY_free(key);
  if (!ok) {
    ERR_clear_error();
    snprintf(err, err_len, "private key %s does not match certificate %s", key_file, cert_file);
    goto fail;
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

syn_tls_ctx *syn_tls_ctx_load(const char *cert_file, const char *key_file, char *err,
                              size_t err_len) {
  syn_tls_ctx *ctx = calloc(1, sizeof *ctx);
  if (ctx) {
    ctx->cert_file = strdup(cert_file);
    ctx->key_file = strdup(key_file);
  }
  if (!ctx || !ctx->cert_file || !ctx->key_file) {
    snprintf(err, err_len, "out of memory");
    syn_tls_ctx_free(ctx);
    return NULL;
  }
  ctx->ssl_ctx = build(cert_file, key_file, err, err_len);
  if (!ctx->ssl_ctx) {
    syn_tls_ctx_free(ctx);
    return NULL;
  }
  return ctx;
}

int syn_tls_ctx_reload(syn_tls_ctx *ctx, char *err, size_t err_len) {
  SSL_CTX *fresh = build(ctx->cert_file, ctx->key_file, err, err_len);
  if (!fresh) return -1;
  SSL_CTX_free(ctx->ssl_ctx); /* drops our reference only: open connections hold theirs */
  ctx->ssl_ctx = fresh;
  return 0;
}

void syn_tls_ctx_free(syn_tls_ctx *ctx) {
  if (!ctx) return;
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx->cert_file);
  free(ctx->key_file);
  free(ctx);
}

/* ---- connections ---- */

/* Empty reads say "retry" (-1), never end of file: more ciphertext may come. */
static BIO *mem_bio(void) {
  BIO *b = BIO_new(BIO_s_mem());
  if (b) BIO_set_mem_eof_return(b, -1);
  return b;
}

syn_tls_conn *syn_tls_conn_new(syn_tls_ctx *ctx) {
  syn_tls_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  ERR_clear_error();
  c->ssl = SSL_new(ctx->ssl_ctx);
  BIO *in = mem_bio();
  BIO *out = mem_bio();
  if (!c->ssl || !in || !out) {
    BIO_free(in);
    BIO_free(out);
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_bio(c->ssl, in, out);
  SSL_set_accept_state(c->ssl);
  return c;
}

void syn_tls_conn_free(syn_tls_conn *c) {
  if (!c) return;
  SSL_free(c->ssl);
  free(c);
}

/* Ends the connection: nothing goes through it any more. Always -1. */
static int fail(syn_tls_conn *c, const char *why) {
  c->failed = true;
  snprintf(c->error, sizeof c->error, "%s", why);
  ERR_clear_error();
  return -1;
}

static int fail_openssl(syn_tls_conn *c, const char *fallback) {
  openssl_reason(c->error, sizeof c->error, fallback);
  c->failed = true;
  return -1;
}

/* Moves all OpenSSL wrote (records, alerts) to *cipher. 0, or -1 when out of memory. */
static int drain(syn_tls_conn *c, syn_buf *cipher) {
  BIO *out = SSL_get_wbio(c->ssl);
  size_t pending;
  while ((pending = BIO_ctrl_pending(out)) > 0) {
    if (syn_buf_reserve(cipher, pending)) return -1;
    size_t got = 0;
    if (!BIO_read_ex(out, cipher->data + cipher->len, pending, &got) || got == 0) return -1;
    cipher->len += got;
  }
  return 0;
}

static bool bio_oversized(BIO *b) {
  BUF_MEM *m = NULL;
  return BIO_ctrl_pending(b) == 0 && BIO_get_mem_ptr(b, &m) > 0 && m && m->max > BIO_KEEP_MAX;
}

/* Replaces an emptied BIO that grew large (the old one is freed by SSL_set0_*). Out of
 * memory here only means keeping the big one. */
static void trim(syn_tls_conn *c) {
  if (bio_oversized(SSL_get_rbio(c->ssl))) {
    BIO *fresh = mem_bio();
    if (fresh) SSL_set0_rbio(c->ssl, fresh);
  }
  if (bio_oversized(SSL_get_wbio(c->ssl))) {
    BIO *fresh = mem_bio();
    if (fresh) SSL_set0_wbio(c->ssl, fresh);
  }
  ERR_clear_error();
}

/* SSL_read until OpenSSL wants more ciphertext. 0, or -1 when the connection is over. */
static int read_all(syn_tls_conn *c, syn_buf *plain) {
  uint8_t buf[RECORD_MAX];
  for (;;) {
    size_t got = 0;
    ERR_clear_error();
    int ok = SSL_read_ex(c->ssl, buf, sizeof buf, &got);
    if (!c->ready && SSL_is_init_finished(c->ssl)) c->ready = true;
    if (ok) {
      if (syn_buf_append(plain, buf, got)) return fail(c, "out of memory");
      continue;
    }
    switch (SSL_get_error(c->ssl, ok)) {
    case SSL_ERROR_WANT_READ: return 0;
    case SSL_ERROR_ZERO_RETURN:
      /* The peer's close_notify: answer with ours (required before TLS 1.3, polite in
       * it) for the caller to send before it closes. */
      ERR_clear_error();
      if (!c->shut) SSL_shutdown(c->ssl);
      c->shut = true;
      return fail(c, "peer sent close_notify");
    case SSL_ERROR_SSL: return fail_openssl(c, "protocol error");
    case SSL_ERROR_SYSCALL: return fail_openssl(c, "unexpected end of input");
    default: return fail_openssl(c, "unexpected TLS state");
    }
  }
}

int syn_tls_conn_feed(syn_tls_conn *c, const uint8_t *data, size_t len, syn_buf *plain,
                      syn_buf *cipher) {
  if (c->failed) return -1;
  int rc = 0;
  while (len > 0 && rc == 0) {
    size_t n = len < FEED_CHUNK ? len : FEED_CHUNK;
    size_t put = 0;
    ERR_clear_error();
    if (!BIO_write_ex(SSL_get_rbio(c->ssl), data, n, &put) || put != n) {
      fail(c, "out of memory");
      break;
    }
    data += n;
    len -= n;
    rc = read_all(c, plain);
    /* Even after a failure: the alert OpenSSL wrote is for the peer. */
    if (drain(c, cipher)) rc = fail(c, "out of memory");
  }
  if (c->failed) return -1;
  trim(c);
  return 0;
}

int syn_tls_conn_write(syn_tls_conn *c, const uint8_t *data, size_t len, syn_buf *cipher) {
  if (c->failed || !c->ready || c->shut) return -1;
  while (len > 0) {
    size_t n = len < RECORD_MAX ? len : RECORD_MAX;
    size_t done = 0;
    ERR_clear_error();
    if (!SSL_write_ex(c->ssl, data, n, &done)) {
      fail_openssl(c, "write failed");
      drain(c, cipher);
      return -1;
    }
    data += done;
    len -= done;
    if (drain(c, cipher)) return fail(c, "out of memory");
  }
  trim(c);
  return 0;
}

void syn_tls_conn_shutdown(syn_tls_conn *c, syn_buf *cipher) {
  /* After SSL_ERROR_SSL, OpenSSL says not to call SSL_shutdown; in the handshake it would
   * only fail. */
  if (c->failed || c->shut || !c->ready) return;
  ERR_clear_error();
  SSL_shutdown(c->ssl); /* 0: sent, the peer's not seen; we do not wait for it */
  c->shut = true;
  if (drain(c, cipher)) fail(c, "out of memory");
  ERR_clear_error();
}

bool syn_tls_conn_ready(const syn_tls_conn *c) { return c->ready; }

const char *syn_tls_conn_error(const syn_tls_conn *c) { return c->error; }
