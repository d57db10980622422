/* Swarm snapshots: the format and its checks are described in swarm_snapshot.h.
 *
 * Save: each stripe's records are copied into one buffer under the stripe lock (the
 * visitor only copies), then hashed and written with the lock released, so a save never
 * holds a lock across I/O. Load: one streaming pass through a stdio buffer, every record
 * checked as it is read and restored at once; the checksum is known only at the end, so a
 * file that fails it, or any other check, makes the load drop everything restored so far.
 * The whole file is never in memory. */
#define _GNU_SOURCE
#include "node/swarm_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

#define MAGIC "SYNSWARM"
#define HEADER_LEN 24
#define SWARM_LEN 33
#define PEER4_LEN 36
#define PEER6_LEN 48
#define TRAILER_LEN (1 + 8 + 8 + 32)
#define IO_BUFFER (1u << 20)

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- save ---- */

typedef struct save_ctx {
  syn_buf buf; /* one stripe's records */
  uint32_t now, timeout;
  int64_t wall_now;
  uint64_t swarms, peers;
  bool oom;
} save_ctx;

static void save_swarm(void *ctx, const uint8_t ih[20], uint32_t downloaded, uint32_t last_touch) {
  save_ctx *c = ctx;
  uint8_t r[SWARM_LEN];
  r[0] = 'S';
  memcpy(r + 1, ih, 20);
  put_u32(r + 21, downloaded);
  int64_t ago = last_touch < c->now ? (int64_t)(c->now - last_touch) : 0;
  put_u64(r + 25, (uint64_t)(c->wall_now - ago));
  c->oom |= syn_buf_append(&c->buf, r, sizeof r) != 0;
  c->swarms++;
}

static void save_peer(void *ctx, const uint8_t ih[20], const syn_swarm_peer_rec *p) {
  (void)ih;
  save_ctx *c = ctx;
  uint8_t r[PEER6_LEN];
  size_t o = 0;
  r[o++] = p->ip_len == 4 ? '4' : '6';
  memcpy(r + o, p->ip, p->ip_len);
  o += p->ip_len;
  r[o++] = (uint8_t)(p->port >> 8);
  r[o++] = (uint8_t)p->port;
  r[o++] = p->seeder ? 1 : 0;
  /* The store's expiry moment (last_seen + timeout) as wall-clock time. */
  int64_t left = (int64_t)p->last_seen + c->timeout - (int64_t)c->now;
  put_u64(r + o, (uint64_t)(c->wall_now + left));
  o += 8;
  memcpy(r + o, p->peer_id, 20);
  o += 20;
  c->oom |= syn_buf_append(&c->buf, r, o) != 0;
  c->peers++;
}

/* Writes, hashes and counts `len` bytes; -errno. */
static int put(FILE *f, crypto_generichash_state *h, const void *p, size_t len, uint64_t *written,
               uint64_t max_bytes) {
  if (*written + len > max_bytes) return -EFBIG;
  if (len && fwrite(p, 1, len, f) != len) return -EIO;
  crypto_generichash_update(h, p, len);
  *written += len;
  return 0;
}

static int write_records(syn_swarm_store *s, FILE *f, crypto_generichash_state *h,
                         uint64_t max_bytes, save_ctx *c, uint64_t *written) {
  syn_swarm_visitor vis = {.swarm = save_swarm, .peer = save_peer, .ctx = c};
  for (uint32_t k = 0; k < SYN_SWARM_STRIPES; k++) {
    syn_buf_reset(&c->buf);
    syn_swarm_visit_stripe(s, k, &vis, c->now);
    if (c->oom) return -ENOMEM;
    int rc = put(f, h, c->buf.data, c->buf.len, written, max_bytes);
    if (rc) return rc;
  }
  uint8_t t[1 + 16];
  t[0] = 'E';
  put_u64(t + 1, c->swarms);
  put_u64(t + 9, c->peers);
  int rc = put(f, h, t, sizeof t, written, max_bytes);
  if (rc) return rc;
  uint8_t sum[32];
  crypto_generichash_final(h, sum, sizeof sum);
  if (*written + sizeof sum > max_bytes) return -EFBIG;
  if (fwrite(sum, 1, sizeof sum, f) != sizeof sum) return -EIO;
  *written += sizeof sum;
  return 0;
}

static void fsync_dir_of(const char *path) {
  char copy[PATH_MAX];
  snprintf(copy, sizeof copy, "%s", path);
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

/* What save and load both do first: zeroed figures, the checksum library ready. */
static int snapshot_begin(syn_snapshot_stats *st, char *err, size_t err_len) {
  memset(st, 0, sizeof *st);
  if (sodium_init() >= 0) return 0;
  snprintf(err, err_len, "libsodium failed to initialise");
  return -1;
}

int syn_swarm_snapshot_save(syn_swarm_store *s, const char *path, uint64_t max_bytes, uint32_t now,
                            int64_t wall_now, uint32_t peer_timeout, syn_snapshot_stats *st,
                            char *err, size_t err_len) {
  uint64_t started = mono_us();
  if (snapshot_begin(st, err, err_len)) return -EIO;
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
    snprintf(err, err_len, "path too long");
    return -ENAMETOOLONG;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    int e = errno;
    if (fd >= 0) close(fd);
    snprintf(err, err_len, "cannot create %s: %s", tmp, strerror(e));
    return -e;
  }
  setvbuf(f, NULL, _IOFBF, IO_BUFFER);
  crypto_generichash_state h;
  crypto_generichash_init(&h, NULL, 0, 32);
  uint8_t hdr[HEADER_LEN];
  memcpy(hdr, MAGIC, 8);
  put_u32(hdr + 8, SYN_SNAPSHOT_VERSION);
  put_u32(hdr + 12, 0);
  put_u64(hdr + 16, (uint64_t)wall_now * 1000u);
  uint64_t written = 0;
  save_ctx c = {.buf = SYN_BUF_INIT, .now = now, .timeout = peer_timeout, .wall_now = wall_now};
  int rc = put(f, &h, hdr, sizeof hdr, &written, max_bytes);
  if (rc == 0) rc = write_records(s, f, &h, max_bytes, &c, &written);
  syn_buf_free(&c.buf);
  if (rc == 0 && fflush(f)) rc = -EIO;
  if (rc == 0 && fsync(fileno(f))) rc = -EIO;
  if (fclose(f) && rc == 0) rc = -EIO;
  if (rc == 0 && rename(tmp, path)) rc = -errno;
  if (rc) {
    unlink(tmp);
    snprintf(err, err_len, "%s: %s",
             rc == -EFBIG ? "larger than the configured bound" : "write failed", strerror(-rc));
    return rc;
  }
  fsync_dir_of(path);
  st->swarms = c.swarms;
  st->peers = c.peers;
  st->bytes = written;
  st->elapsed_us = mono_us() - started;
  return 0;
}

/* ---- load ---- */

typedef struct loader {
  FILE *f;
  crypto_generichash_state h;
  uint64_t remaining; /* bytes before the checksum */
} loader;

/* Reads `len` record bytes (all before the checksum), hashing them. */
static bool take(loader *l, void *p, size_t len) {
  if (len > l->remaining || fread(p, 1, len, l->f) != len) return false;
  crypto_generichash_update(&l->h, p, len);
  l->remaining -= len;
  return true;
}

/* Store-clock time of a wall-clock moment, clamped to [0, now]. */
static uint32_t store_time(int64_t wall, uint32_t now, int64_t wall_now) {
  int64_t t = (int64_t)now - (wall_now - wall);
  return t < 0 ? 0 : t > (int64_t)now ? now : (uint32_t)t;
}

typedef struct load_state {
  syn_swarm_store *s;
  uint32_t now, timeout;
  int64_t wall_now;
  uint8_t ih[20];
  bool have_swarm;
  syn_snapshot_stats *st;
} load_state;

static int load_peer(loader *l, load_state *ls, int tag) {
  size_t ip_len = tag == '4' ? 4 : 16;
  uint8_t r[PEER6_LEN];
  if (!take(l, r, (tag == '4' ? PEER4_LEN : PEER6_LEN) - 1)) return -EBADMSG;
  if (!ls->have_swarm || r[ip_len + 2] > 1) return -EBADMSG;
  ls->st->file_peers++;
  int64_t expiry = (int64_t)get_u64(r + ip_len + 3);
  int64_t left = expiry - ls->wall_now;
  if (left < 0) {
    ls->st->expired++;
    return 0;
  }
  if (left > ls->timeout) left = ls->timeout; /* the wall clock went back, or a shorter timeout */
  int64_t seen = (int64_t)ls->now + left - ls->timeout;
  syn_swarm_peer_rec p = {.ip = r,
                          .ip_len = ip_len,
                          .port = (uint16_t)(r[ip_len] << 8 | r[ip_len + 1]),
                          .peer_id = r + ip_len + 11,
                          .seeder = r[ip_len + 2] == 1,
                          .last_seen = seen < 0 ? 0 : (uint32_t)seen};
  int rc = syn_swarm_restore_peer(ls->s, ls->ih, &p, ls->now);
  if (rc < 0) return rc == -ENOMEM ? -ENOMEM : -EBADMSG;
  ls->st->peers += (uint64_t)rc;
  return 0;
}

static int load_swarm(loader *l, load_state *ls) {
  uint8_t r[SWARM_LEN - 1];
  if (!take(l, r, sizeof r)) return -EBADMSG;
  memcpy(ls->ih, r, 20);
  ls->have_swarm = true;
  ls->st->swarms++;
  uint32_t touch = store_time((int64_t)get_u64(r + 24), ls->now, ls->wall_now);
  return syn_swarm_restore_swarm(ls->s, ls->ih, get_u32(r + 20), touch, ls->now);
}

static int load_records(loader *l, load_state *ls) {
  for (;;) {
    uint8_t tag;
    if (!take(l, &tag, 1)) return -EBADMSG;
    int rc;
    if (tag == 'S') {
      rc = load_swarm(l, ls);
    } else if (tag == '4' || tag == '6') {
      rc = load_peer(l, ls, tag);
    } else if (tag == 'E') {
      uint8_t t[16], sum[32], want[32];
      if (!take(l, t, sizeof t) || l->remaining != 0) return -EBADMSG;
      if (fread(sum, 1, sizeof sum, l->f) != sizeof sum) return -EBADMSG;
      crypto_generichash_final(&l->h, want, sizeof want);
      if (sodium_memcmp(sum, want, sizeof sum) != 0) return -EBADMSG;
      if (get_u64(t) != ls->st->swarms || get_u64(t + 8) != ls->st->file_peers) return -EBADMSG;
      return 0;
    } else {
      return -EBADMSG;
    }
    if (rc) return rc;
  }
}

static bool drop_all(void *ctx, const uint8_t info_hash[20]) {
  (void)ctx;
  (void)info_hash;
  return true;
}

static int check_header(loader *l, uint64_t *size, uint64_t max_bytes, char *err, size_t err_len) {
  if (*size > max_bytes) {
    snprintf(err, err_len, "%llu bytes, over the bound of %llu", (unsigned long long)*size,
             (unsigned long long)max_bytes);
    return -EFBIG;
  }
  if (*size < HEADER_LEN + TRAILER_LEN) {
    snprintf(err, err_len, "truncated (%llu bytes)", (unsigned long long)*size);
    return -EBADMSG;
  }
  l->remaining = *size - 32;
  uint8_t hdr[HEADER_LEN];
  if (!take(l, hdr, sizeof hdr) || memcmp(hdr, MAGIC, 8) != 0) {
    snprintf(err, err_len, "not a swarm snapshot");
    return -EBADMSG;
  }
  if (get_u32(hdr + 8) != SYN_SNAPSHOT_VERSION) {
    snprintf(err, err_len, "format version %u, this build reads %u", get_u32(hdr + 8),
             SYN_SNAPSHOT_VERSION);
    return -EBADMSG;
  }
  return 0;
}

int syn_swarm_snapshot_load(syn_swarm_store *s, const char *path, uint64_t max_bytes, uint32_t now,
                            int64_t wall_now, uint32_t peer_timeout, syn_snapshot_stats *st,
                            char *err, size_t err_len) {
  uint64_t started = mono_us();
  if (snapshot_begin(st, err, err_len)) return -EIO;
  loader l = {.f = fopen(path, "rbe")};
  if (!l.f) {
    if (errno == ENOENT) return -ENOENT;
    snprintf(err, err_len, "cannot open: %s", strerror(errno));
    return -EIO;
  }
  setvbuf(l.f, NULL, _IOFBF, IO_BUFFER);
  struct stat sb;
  if (fstat(fileno(l.f), &sb)) {
    fclose(l.f);
    snprintf(err, err_len, "cannot stat: %s", strerror(errno));
    return -EIO;
  }
  uint64_t size = (uint64_t)sb.st_size;
  st->bytes = size;
  crypto_generichash_init(&l.h, NULL, 0, 32);
  int rc = check_header(&l, &size, max_bytes, err, err_len);
  if (rc == 0) {
    load_state ls = {.s = s, .now = now, .timeout = peer_timeout, .wall_now = wall_now, .st = st};
    rc = load_records(&l, &ls);
    if (rc == -EBADMSG) snprintf(err, err_len, "corrupt or truncated (checksum or record)");
    if (rc == -ENOMEM) snprintf(err, err_len, "out of memory");
  }
  fclose(l.f);
  if (rc) {
    syn_swarm_drop(s, drop_all, NULL);
    uint64_t bytes = st->bytes;
    memset(st, 0, sizeof *st);
    st->bytes = bytes;
    return rc;
  }
  st->elapsed_us = mono_us() - started;
  return 0;
}
