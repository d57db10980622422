/* TLS over memory BIOs, against an OpenSSL client in memory: handshakes (TLS 1.3 and 1.2,
 * older versions refused), data both ways in odd chunks, reloads (a new connection sees the
 * new certificate, an open one goes on; missing files, mismatched and encrypted keys fail and
 * change nothing), a context freed under open connections, resumption from tickets without
 * a session cache, renegotiation refused, TLS 1.3 key updates, garbage and close_notify
 * ending a connection.
 * Certificates are made at run time in a temporary directory. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct pair {
  EVP_PKEY *key;
  X509 *cert;
} pair;

static char dir[] = "/tmp/tls_test_XXXXXX";
static char cert_path[64];
static char key_path[64];
static pair pair_a, pair_b, pair_rsa;

/* ---- certificates ---- */

static void make_pair(pair *p, const char *cn, bool rsa) {
  p->key = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
               : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  assert_non_null(p->key);
  p->cert = X509_new();
  assert_non_null(p->cert);
  assert_true(X509_set_version(p->cert, X509_VERSION_3));
  static long serial = 1;
  assert_true(ASN1_INTEGER_set(X509_get_serialNumber(p->cert), serial++));
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(p->cert), -60));
  assert_non_null(X509_gmtime_adj(X509_getm_notAfter(p->cert), 24 * 3600));
  X509_NAME *name = X509_get_subject_name(p->cert);
  assert_true(
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
  assert_true(X509_set_issuer_name(p->cert, name));
  assert_true(X509_set_pubkey(p->cert, p->key));
  assert_true(X509_sign(p->cert, p->key, EVP_sha256()) > 0);
}

static void free_pair(pair *p) {
  X509_free(p->cert);
  EVP_PKEY_free(p->key);
}

/* Writes next to `path` and renames over it, as a certificate manager would. */
static void write_pem(const char *path, X509 *cert, EVP_PKEY *key, const char *passphrase) {
  char tmp[80];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  assert_non_null(f);
  if (cert) assert_true(PEM_write_X509(f, cert));
  if (key && passphrase) {
    assert_true(PEM_write_PrivateKey(f, key, EVP_aes_256_cbc(), (unsigned char *)passphrase,
                                     (int)strlen(passphrase), NULL, NULL));
  } else if (key) {
    assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
  }
  assert_int_equal(fclose(f), 0);
  assert_int_equal(rename(tmp, path), 0);
}

static void install(const pair *cert, const pair *key) {
  write_pem(cert_path, cert->cert, NULL, NULL);
  write_pem(key_path, NULL, key->key, NULL);
}

static int group_setup(void **state) {
  (void)state;
  if (!mkdtemp(dir)) return -1;
  snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
  snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
  make_pair(&pair_a, "synapse-test-a", false);
  make_pair(&pair_b, "synapse-test-b", false);
  make_pair(&pair_rsa, "synapse-test-rsa", true);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  unlink(cert_path);
  unlink(key_path);
  rmdir(dir);
  free_pair(&pair_a);
  free_pair(&pair_b);
  free_pair(&pair_rsa);
  return 0;
}

static syn_tls_ctx *load_a(void) {
  install(&pair_a, &pair_a);
  char err[256] = "";
  syn_tls_ctx *ctx = syn_tls_ctx_load(cert_path, key_path, err, sizeof err);
  assert_non_null(ctx);
  assert_string_equal(err, "");
  return ctx;
}

/* ---- the client: an OpenSSL SSL over memory BIOs ---- */

typedef struct client {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *in;  /* from the server */
  BIO *out; /* to the server */
  syn_buf got;
  bool closed; /* read the server's close_notify */
} client;

/* max_version 0: any. A version below TLS 1.2 also needs security level 0 here. */
static void client_open(client *cl, int max_version, SSL_SESSION *resume) {
  memset(cl, 0, sizeof *cl);
  cl->ctx = SSL_CTX_new(TLS_client_method());
  assert_non_null(cl->ctx);
  if (max_version) {
    assert_true(SSL_CTX_set_max_proto_version(cl->ctx, max_version));
    if (max_version < TLS1_2_VERSION) {
      SSL_CTX_set_security_level(cl->ctx, 0);
      assert_true(SSL_CTX_set_min_proto_version(cl->ctx, 0));
      assert_true(SSL_CTX_set_cipher_list(cl->ctx, "DEFAULT:@SECLEVEL=0"));
    }
  }
  cl->ssl = SSL_new(cl->ctx);
  assert_non_null(cl->ssl);
  cl->in = BIO_new(BIO_s_mem());
  cl->out = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(cl->in, -1);
  BIO_set_mem_eof_return(cl->out, -1);
  SSL_set_bio(cl->ssl, cl->in, cl->out);
  if (resume) assert_true(SSL_set_session(cl->ssl, resume));
  SSL_set_connect_state(cl->ssl);
}

static void client_close(client *cl) {
  SSL_free(cl->ssl);
  SSL_CTX_free(cl->ctx);
  syn_buf_free(&cl->got);
}

/* What the client has to send, taken out of its BIO. */
static void client_take(client *cl, syn_buf *to) {
  size_t n = BIO_ctrl_pending(cl->out);
  assert_int_equal(syn_buf_reserve(to, n), 0);
  size_t got = 0;
  if (n) assert_true(BIO_read_ex(cl->out, to->data + to->len, n, &got));
  assert_int_equal(got, n);
  to->len += got;
}

/* Reads all the client can: application bytes into cl->got, tickets, close_notify. */
static void client_read(client *cl) {
  uint8_t buf[4096];
  for (;;) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(cl->ssl, buf, sizeof buf, &n)) {
      assert_int_equal(syn_buf_append(&cl->got, buf, n), 0);
      continue;
    }
    int e = SSL_get_error(cl->ssl, 0);
    if (e == SSL_ERROR_ZERO_RETURN) cl->closed = true;
    assert_true(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_ZERO_RETURN);
    ERR_clear_error();
    return;
  }
}

/* Gives the client what the server sent, `chunk` bytes at a time (0: at once). */
static void client_give(client *cl, const syn_buf *from, size_t chunk) {
  size_t off = 0;
  while (off < from->len) {
    size_t n = from->len - off;
    if (chunk && n > chunk) n = chunk;
    size_t put = 0;
    assert_true(BIO_write_ex(cl->in, from->data + off, n, &put));
    off += n;
    if (SSL_is_init_finished(cl->ssl)) client_read(cl);
  }
}

/* Runs the handshake to its end on both sides: 0, or -1 when the server gave up. */
static int handshake(client *cl, syn_tls_conn *s) {
  for (int round = 0; round < 8; round++) {
    ERR_clear_error();
    SSL_do_handshake(cl->ssl);
    ERR_clear_error();
    syn_buf c2s = SYN_BUF_INIT, s2c = SYN_BUF_INIT, plain = SYN_BUF_INIT;
    client_take(cl, &c2s);
    int rc = syn_tls_conn_feed(s, c2s.data, c2s.len, &plain, &s2c);
    assert_int_equal(plain.len, 0);
    client_give(cl, &s2c, 0);
    syn_buf_free(&c2s);
    syn_buf_free(&s2c);
    syn_buf_free(&plain);
    if (rc < 0) return -1;
    if (SSL_is_init_finished(cl->ssl) && syn_tls_conn_ready(s)) {
      client_read(cl); /* TLS 1.3 session tickets */
      return 0;
    }
  }
  fail_msg("handshake did not finish");
  return -1;
}

static void peer_cn(client *cl, char *cn, size_t cn_len) {
  X509 *peer = SSL_get0_peer_certificate(cl->ssl);
  assert_non_null(peer);
  assert_true(
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)cn_len) > 0);
}

/* Odd sizes, a few straddling record boundaries. */
static const size_t odd[] = {1, 3, 7, 13, 101, 1021, 4093, 16411, 5, 17000, 2};

/* Client -> server: `len` bytes written by the client, fed in odd chunks; the server's
 * plaintext must be them exactly. */
static void to_server(client *cl, syn_tls_conn *s, const uint8_t *data, size_t len) {
  size_t done = 0;
  assert_true(SSL_write_ex(cl->ssl, data, len, &done));
  assert_int_equal(done, len);
  syn_buf c2s = SYN_BUF_INIT, plain = SYN_BUF_INIT, s2c = SYN_BUF_INIT;
  client_take(cl, &c2s);
  size_t off = 0;
  for (size_t i = 0; off < c2s.len; i++) {
    size_t n = odd[i % (sizeof odd / sizeof odd[0])];
    if (n > c2s.len - off) n = c2s.len - off;
    assert_int_equal(syn_tls_conn_feed(s, c2s.data + off, n, &plain, &s2c), 0);
    off += n;
  }
  assert_int_equal(plain.len, len);
  assert_memory_equal(plain.data, data, len);
  assert_int_equal(s2c.len, 0);
  syn_buf_free(&c2s);
  syn_buf_free(&plain);
  syn_buf_free(&s2c);
}

/* Server -> client: written by syn_tls_conn_write, given to the client in odd chunks. */
static void to_client(client *cl, syn_tls_conn *s, const uint8_t *data, size_t len) {
  syn_buf s2c = SYN_BUF_INIT;
  assert_int_equal(syn_tls_conn_write(s, data, len, &s2c), 0);
  assert_true(s2c.len > len);
  cl->got.len = 0;
  size_t off = 0;
  for (size_t i = 0; off < s2c.len; i++) {
    size_t n = odd[(i + 3) % (sizeof odd / sizeof odd[0])];
    if (n > s2c.len - off) n = s2c.len - off;
    syn_buf part = {s2c.data + off, n, n};
    client_give(cl, &part, 0);
    off += n;
  }
  assert_int_equal(cl->got.len, len);
  assert_memory_equal(cl->got.data, data, len);
  syn_buf_free(&s2c);
}

static void exchange(client *cl, syn_tls_conn *s, const char *text) {
  to_server(cl, s, (const uint8_t *)text, strlen(text));
  to_client(cl, s, (const uint8_t *)text, strlen(text));
}

/* ---- tests ---- */

static void test_handshake_and_data(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  assert_non_null(s);
  assert_false(syn_tls_conn_ready(s));
  syn_buf out = SYN_BUF_INIT;
  assert_int_equal(syn_tls_conn_write(s, (const uint8_t *)"early", 5, &out), -1);
  assert_int_equal(out.len, 0);

  client cl;
  client_open(&cl, 0, NULL);
  assert_int_equal(handshake(&cl, s), 0);
  assert_true(syn_tls_conn_ready(s));
  assert_string_equal(syn_tls_conn_error(s), "");
  assert_int_equal(SSL_version(cl.ssl), TLS1_3_VERSION);
  char cn[64];
  peer_cn(&cl, cn, sizeof cn);
  assert_string_equal(cn, "synapse-test-a");

  exchange(&cl, s, "GET /announce HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
  assert_int_equal(syn_tls_conn_feed(s, NULL, 0, &out, &out), 0);
  assert_int_equal(out.len, 0);

  /* 100 KB each way, in odd chunks. */
  size_t big = 100 * 1024;
  uint8_t *msg = malloc(big);
  assert_non_null(msg);
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (size_t i = 0; i < big; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    msg[i] = (uint8_t)x;
  }
  to_server(&cl, s, msg, big);
  to_client(&cl, s, msg, big);
  free(msg);

  /* Our close_notify: the client reads the end of the stream, we write no more. */
  syn_tls_conn_shutdown(s, &out);
  assert_true(out.len > 0);
  client_give(&cl, &out, 0);
  assert_true(cl.closed);
  size_t len = out.len;
  syn_tls_conn_shutdown(s, &out);
  assert_int_equal(out.len, len);
  assert_int_equal(syn_tls_conn_write(s, (const uint8_t *)"late", 4, &out), -1);

  syn_buf_free(&out);
  client_close(&cl);
  syn_tls_conn_free(s);
  syn_tls_ctx_free(ctx);
}

static void test_tls12_and_older_refused(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  client cl;
  client_open(&cl, TLS1_2_VERSION, NULL);
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&cl, s), 0);
  assert_int_equal(SSL_version(cl.ssl), TLS1_2_VERSION);
  exchange(&cl, s, "over TLS 1.2");
  client_close(&cl);
  syn_tls_conn_free(s);

  client_open(&cl, TLS1_1_VERSION, NULL);
  s = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&cl, s), -1);
  assert_false(syn_tls_conn_ready(s));
  assert_string_equal(syn_tls_conn_error(s), "unsupported protocol");
  client_close(&cl);
  syn_tls_conn_free(s);
  syn_tls_ctx_free(ctx);
}

/* A client asking to renegotiate (TLS 1.2) is refused; the connection survives it. */
static void test_renegotiation_refused(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  client cl;
  client_open(&cl, TLS1_2_VERSION, NULL);
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&cl, s), 0);

  assert_true(SSL_renegotiate(cl.ssl));
  ERR_clear_error();
  SSL_do_handshake(cl.ssl);
  ERR_clear_error();
  syn_buf c2s = SYN_BUF_INIT, plain = SYN_BUF_INIT, s2c = SYN_BUF_INIT;
  client_take(&cl, &c2s);
  assert_true(c2s.len > 0);
  int rc = syn_tls_conn_feed(s, c2s.data, c2s.len, &plain, &s2c);
  assert_int_equal(rc, 0);
  assert_int_equal(plain.len, 0);
  /* One alert record (no_renegotiation), no ServerHello with its certificate. */
  assert_in_range(s2c.len, 1, 64);
  assert_true(syn_tls_conn_ready(s));
  syn_buf_free(&c2s);
  syn_buf_free(&plain);
  syn_buf_free(&s2c);
  client_close(&cl);
  syn_tls_conn_free(s);
  syn_tls_ctx_free(ctx);
}

static void test_reload(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  client before;
  client_open(&before, 0, NULL);
  syn_tls_conn *s_before = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&before, s_before), 0);
  /* Opened under A, not yet shaken hands: keeps A too. */
  syn_tls_conn *s_idle = syn_tls_conn_new(ctx);

  install(&pair_b, &pair_b);
  char err[256] = "";
  assert_int_equal(syn_tls_ctx_reload(ctx, err, sizeof err), 0);

  client after;
  client_open(&after, 0, NULL);
  syn_tls_conn *s_after = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&after, s_after), 0);
  char cn[64];
  peer_cn(&after, cn, sizeof cn);
  assert_string_equal(cn, "synapse-test-b");
  exchange(&after, s_after, "under b");

  exchange(&before, s_before, "still under a");
  peer_cn(&before, cn, sizeof cn);
  assert_string_equal(cn, "synapse-test-a");

  client idle;
  client_open(&idle, 0, NULL);
  assert_int_equal(handshake(&idle, s_idle), 0);
  peer_cn(&idle, cn, sizeof cn);
  assert_string_equal(cn, "synapse-test-a");

  /* Freeing the context leaves every open connection working. */
  syn_tls_ctx_free(ctx);
  exchange(&before, s_before, "after the context is gone");
  exchange(&after, s_after, "after the context is gone");
  exchange(&idle, s_idle, "after the context is gone");

  client_close(&before);
  client_close(&after);
  client_close(&idle);
  syn_tls_conn_free(s_before);
  syn_tls_conn_free(s_after);
  syn_tls_conn_free(s_idle);
}

/* A failed reload says why and leaves certificate A in force. */
static void expect_reload_fails(syn_tls_ctx *ctx, const char *needle) {
  char err[256] = "";
  assert_int_equal(syn_tls_ctx_reload(ctx, err, sizeof err), -1);
  if (!strstr(err, needle)) fail_msg("'%s' does not say '%s'", err, needle);
  assert_null(strchr(err, '\n'));

  client cl;
  client_open(&cl, 0, NULL);
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&cl, s), 0);
  char cn[64];
  peer_cn(&cl, cn, sizeof cn);
  assert_string_equal(cn, "synapse-test-a");
  exchange(&cl, s, "a stays");
  client_close(&cl);
  syn_tls_conn_free(s);
}

static void test_reload_failures(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();

  assert_int_equal(unlink(key_path), 0);
  expect_reload_fails(ctx, "No such file or directory");

  install(&pair_a, &pair_b); /* same type, another key */
  expect_reload_fails(ctx, "does not match");

  install(&pair_a, &pair_rsa); /* another type: OpenSSL files it in another slot */
  expect_reload_fails(ctx, "does not match");

  install(&pair_b, &pair_b);
  write_pem(key_path, NULL, pair_b.key, "secret"); /* refused, never prompted for */
  expect_reload_fails(ctx, "is encrypted");

  write_pem(cert_path, NULL, pair_b.key, NULL); /* a key where the certificate should be */
  expect_reload_fails(ctx, "certificate");

  FILE *f = fopen(cert_path, "w");
  assert_non_null(f);
  fclose(f);
  expect_reload_fails(ctx, "certificate");

  syn_tls_ctx_free(ctx);

  char err[256] = "";
  assert_null(syn_tls_ctx_load("/nonexistent/cert.pem", key_path, err, sizeof err));
  assert_non_null(strstr(err, "/nonexistent/cert.pem"));
  install(&pair_rsa, &pair_rsa); /* RSA works as well as EC */
  syn_tls_ctx *rsa = syn_tls_ctx_load(cert_path, key_path, err, sizeof err);
  assert_non_null(rsa);
  client cl;
  client_open(&cl, 0, NULL);
  syn_tls_conn *s = syn_tls_conn_new(rsa);
  assert_int_equal(handshake(&cl, s), 0);
  char cn[64];
  peer_cn(&cl, cn, sizeof cn);
  assert_string_equal(cn, "synapse-test-rsa");
  client_close(&cl);
  syn_tls_conn_free(s);
  syn_tls_ctx_free(rsa);
}

/* Sessions resume from the ticket alone (the server keeps no cache). */
static void test_resumption_by_ticket(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  client first;
  client_open(&first, 0, NULL);
  syn_tls_conn *s1 = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&first, s1), 0);
  SSL_SESSION *session = SSL_get1_session(first.ssl);
  assert_non_null(session);
  assert_true(SSL_SESSION_is_resumable(session));

  client second;
  client_open(&second, 0, session);
  syn_tls_conn *s2 = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&second, s2), 0);
  assert_true(SSL_session_reused(second.ssl));
  exchange(&second, s2, "resumed");

  SSL_SESSION_free(session);
  client_close(&first);
  client_close(&second);
  syn_tls_conn_free(s1);
  syn_tls_conn_free(s2);
  syn_tls_ctx_free(ctx);
}

static void expect_garbage_refused(syn_tls_ctx *ctx, const uint8_t *data, size_t len) {
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  syn_buf plain = SYN_BUF_INIT, cipher = SYN_BUF_INIT;
  assert_int_equal(syn_tls_conn_feed(s, data, len, &plain, &cipher), -1);
  assert_int_equal(plain.len, 0);
  assert_true(strlen(syn_tls_conn_error(s)) > 0);
  assert_false(syn_tls_conn_ready(s));
  /* Once failed, always failed, and nothing more goes out. */
  size_t sent = cipher.len;
  assert_int_equal(syn_tls_conn_feed(s, data, len, &plain, &cipher), -1);
  syn_tls_conn_shutdown(s, &cipher);
  assert_int_equal(cipher.len, sent);
  syn_buf_free(&plain);
  syn_buf_free(&cipher);
  syn_tls_conn_free(s);
}

static void test_garbage(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  const char *http = "GET /announce HTTP/1.1\r\nHost: tracker\r\n\r\n";
  expect_garbage_refused(ctx, (const uint8_t *)http, strlen(http));

  uint8_t noise[4096];
  uint64_t x = 88172645463325252u;
  for (size_t i = 0; i < sizeof noise; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    noise[i] = (uint8_t)x;
  }
  expect_garbage_refused(ctx, noise, sizeof noise);
  /* A handshake record header with noise for a body. */
  memcpy(noise, "\x16\x03\x01\x01\x00", 5);
  expect_garbage_refused(ctx, noise, 5 + 256);
  /* A record longer than TLS allows. */
  memcpy(noise, "\x16\x03\x01\xff\xff", 5);
  expect_garbage_refused(ctx, noise, sizeof noise);

  /* Noise after a good handshake: the records do not authenticate. */
  client cl;
  client_open(&cl, 0, NULL);
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&cl, s), 0);
  memcpy(noise, "\x17\x03\x03\x01\x00", 5);
  syn_buf plain = SYN_BUF_INIT, cipher = SYN_BUF_INIT;
  assert_int_equal(syn_tls_conn_feed(s, noise, 5 + 256, &plain, &cipher), -1);
  assert_int_equal(plain.len, 0);
  assert_true(strlen(syn_tls_conn_error(s)) > 0);
  assert_true(cipher.len > 0); /* the bad_record_mac alert */
  assert_int_equal(syn_tls_conn_write(s, (const uint8_t *)"x", 1, &cipher), -1);
  syn_buf_free(&plain);
  syn_buf_free(&cipher);
  client_close(&cl);
  syn_tls_conn_free(s);
  syn_tls_ctx_free(ctx);
}

static int key_updates_in; /* KeyUpdate messages the client received */

static void count_key_updates(int write_p, int version, int content_type, const void *buf,
                              size_t len, SSL *ssl, void *arg) {
  (void)version, (void)ssl, (void)arg;
  const uint8_t *b = buf;
  if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 && b[0] == SSL3_MT_KEY_UPDATE) {
    key_updates_in++;
  }
}

/* TLS 1.3 key updates: the client's own, and the one it asks of us. */
static void test_key_update(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  client cl;
  client_open(&cl, 0, NULL);
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&cl, s), 0);
  key_updates_in = 0;
  SSL_set_msg_callback(cl.ssl, count_key_updates);

  assert_true(SSL_key_update(cl.ssl, SSL_KEY_UPDATE_REQUESTED));
  size_t done = 0;
  assert_true(SSL_write_ex(cl.ssl, "new keys", 8, &done));
  syn_buf c2s = SYN_BUF_INIT, plain = SYN_BUF_INIT, s2c = SYN_BUF_INIT;
  client_take(&cl, &c2s);
  assert_int_equal(syn_tls_conn_feed(s, c2s.data, c2s.len, &plain, &s2c), 0);
  assert_int_equal(plain.len, 8);
  assert_memory_equal(plain.data, "new keys", 8);
  /* Ours waits for our next write (RFC 8446 asks for it before our next data, no sooner). */
  assert_int_equal(s2c.len, 0);
  exchange(&cl, s, "under the new keys");
  assert_int_equal(key_updates_in, 1);
  syn_buf_free(&c2s);
  syn_buf_free(&plain);
  syn_buf_free(&s2c);
  client_close(&cl);
  syn_tls_conn_free(s);
  syn_tls_ctx_free(ctx);
}

static void test_client_close_notify(void **state) {
  (void)state;
  syn_tls_ctx *ctx = load_a();
  client cl;
  client_open(&cl, 0, NULL);
  syn_tls_conn *s = syn_tls_conn_new(ctx);
  assert_int_equal(handshake(&cl, s), 0);
  exchange(&cl, s, "bye soon");

  ERR_clear_error();
  assert_int_equal(SSL_shutdown(cl.ssl), 0);
  syn_buf c2s = SYN_BUF_INIT, plain = SYN_BUF_INIT, s2c = SYN_BUF_INIT;
  client_take(&cl, &c2s);
  assert_true(c2s.len > 0);
  assert_int_equal(syn_tls_conn_feed(s, c2s.data, c2s.len, &plain, &s2c), -1);
  assert_int_equal(plain.len, 0);
  assert_string_equal(syn_tls_conn_error(s), "peer sent close_notify");
  /* Our close_notify in answer. */
  assert_true(s2c.len > 0);
  client_give(&cl, &s2c, 0);
  assert_true(cl.closed);
  syn_buf_free(&c2s);
  syn_buf_free(&plain);
  syn_buf_free(&s2c);
  client_close(&cl);
  syn_tls_conn_free(s);
  syn_tls_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_handshake_and_data),
      cmocka_unit_test(test_tls12_and_older_refused),
      cmocka_unit_test(test_renegotiation_refused),
      cmocka_unit_test(test_reload),
      cmocka_unit_test(test_reload_failures),
      cmocka_unit_test(test_resumption_by_ticket),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_key_update),
      cmocka_unit_test(test_client_close_notify),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
