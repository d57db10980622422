/* The shard store's anti-entropy side: bucket digests kept with every write, the listing
 * of a bucket's versions, tombstone purging, and the layout that maps keys to buckets.
 * Design notes:
 *
 * - A bucket's digest is the XOR of syn_record_digest over its records and tombstones.
 *   XOR makes it incremental: a write XORs out what it replaces and XORs in what it
 *   stores, in its own transaction; nothing ever scans a bucket to know its digest.
 * - The in-memory array (partitions x buckets, 8 bytes each: 512 KiB at 1024 x 64) is
 *   the source for readers; the `digests` table makes it survive restarts. Writers hold
 *   write_mu; the array is updated under digest_mu after COMMIT, so readers never see a
 *   value the database does not hold.
 * - The layout (partitions, buckets) is kept in `meta`. A database written with another
 *   one (or by schema version 1) gets every bucket and digest recomputed at open, in one
 *   transaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyspace.h"
#include "common/urlcodec.h"
#include "index/store_internal.h"

uint32_t store_bucket_of(const syn_store *st, const char *ih) {
  uint8_t key[20];
  if (syn_hex_decode(ih, 40, key, 20) != 0) return 0;
  return syn_bucket_of(st->partitions, st->buckets, key);
}

uint32_t syn_store_partition_of(const syn_store *st, const char *ih) {
  return store_bucket_of(st, ih) / st->buckets;
}

static size_t bucket_count(const syn_store *st) { return (size_t)st->partitions * st->buckets; }

/* ---- digests inside write transactions ---- */

static int persist_digest(store_conn *c, uint32_t bucket, uint64_t value) {
  sqlite3_stmt *s = store_stmt(c, ST_DIGEST_SET);
  if (!s) return -EIO;
  sqlite3_bind_int64(s, 1, bucket);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)value);
  int rc = sqlite3_step(s);
  store_stmt_done(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_digest_xor(syn_store *st, store_digest_txn *t, uint32_t bucket, uint64_t delta) {
  if (bucket >= bucket_count(st)) return -EINVAL;
  size_t i = 0;
  while (i < t->n && t->bucket[i] != bucket) i++;
  if (i == t->n) {
    if (t->n == t->cap) {
      size_t cap = t->cap ? t->cap * 2 : 4;
      uint32_t *b = realloc(t->bucket, cap * sizeof *b);
      if (!b) return -ENOMEM;
      t->bucket = b;
      uint64_t *v = realloc(t->value, cap * sizeof *v);
      if (!v) return -ENOMEM;
      t->value = v;
      t->cap = cap;
    }
    t->bucket[i] = bucket;
    t->value[i] = st->digest[bucket]; /* stable: writers are serialised by write_mu */
    t->n++;
  }
  t->value[i] ^= delta;
  return persist_digest(&st->writer, bucket, t->value[i]);
}

void store_digest_commit(syn_store *st, const store_digest_txn *t) {
  pthread_mutex_lock(&st->digest_mu);
  for (size_t i = 0; i < t->n; i++) st->digest[t->bucket[i]] = t->value[i];
  pthread_mutex_unlock(&st->digest_mu);
}

int store_digest_copy(store_digest_txn *dst, const store_digest_txn *src) {
  if (dst->cap < src->n) {
    uint32_t *b = realloc(dst->bucket, src->n * sizeof *b);
    if (!b) return -ENOMEM;
    dst->bucket = b;
    uint64_t *v = realloc(dst->value, src->n * sizeof *v);
    if (!v) return -ENOMEM;
    dst->value = v;
    dst->cap = src->n;
  }
  if (src->n) {
    memcpy(dst->bucket, src->bucket, src->n * sizeof *dst->bucket);
    memcpy(dst->value, src->value, src->n * sizeof *dst->value);
  }
  dst->n = src->n;
  return 0;
}

void store_digest_free(store_digest_txn *t) {
  free(t->bucket);
  free(t->value);
  memset(t, 0, sizeof *t);
}

/* ---- layout ---- */

static int meta_get(store_conn *c, const char *key, int64_t *value) {
  sqlite3_stmt *s = store_stmt(c, ST_META_GET);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *value = sqlite3_column_int64(s, 0);
  store_stmt_done(s);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

static int meta_set(store_conn *c, const char *key, int64_t value) {
  sqlite3_stmt *s = store_stmt(c, ST_META_SET);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, value);
  int rc = sqlite3_step(s);
  store_stmt_done(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Gives every record and tombstone its bucket under the store's layout and sums the
 * digests into st->digest (write transaction open). */
static int relayout_rows(syn_store *st, store_conn *c, bool tombs) {
  sqlite3_stmt *all = store_stmt(c, tombs ? ST_ALL_TOMB_KEYS : ST_ALL_SHARD_KEYS);
  if (!all) return -EIO;
  int rc = 0, step;
  while (rc == 0 && (step = sqlite3_step(all)) == SQLITE_ROW) {
    int col = tombs ? 0 : 1;
    int64_t id = tombs ? 0 : sqlite3_column_int64(all, 0);
    const char *ih = (const char *)sqlite3_column_text(all, col);
    syn_version v = {.hlc = (uint64_t)sqlite3_column_int64(all, col + 1)};
    const char *node = (const char *)sqlite3_column_text(all, col + 2);
    snprintf(v.node, sizeof v.node, "%s", node ? node : "");
    if (!ih) continue;
    uint32_t bucket = store_bucket_of(st, ih);
    st->digest[bucket] ^= syn_record_digest(ih, &v, tombs);
    sqlite3_stmt *set = store_stmt(c, tombs ? ST_SET_TOMB_BUCKET : ST_SET_SHARD_BUCKET);
    if (!set) {
      rc = -EIO;
      break;
    }
    if (tombs)
      sqlite3_bind_text(set, 1, ih, -1, SQLITE_TRANSIENT);
    else
      sqlite3_bind_int64(set, 1, id);
    sqlite3_bind_int64(set, 2, bucket);
    if (sqlite3_step(set) != SQLITE_DONE) rc = -EIO;
    store_stmt_done(set);
  }
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(all);
  return rc;
}

static int relayout(syn_store *st, store_conn *c) {
  memset(st->digest, 0, bucket_count(st) * sizeof *st->digest);
  int rc = store_run(c, ST_BEGIN);
  if (rc == 0) rc = relayout_rows(st, c, false);
  if (rc == 0) rc = relayout_rows(st, c, true);
  if (rc == 0) rc = store_run(c, ST_DIGEST_CLEAR);
  for (size_t b = 0; rc == 0 && b < bucket_count(st); b++)
    if (st->digest[b]) rc = persist_digest(c, (uint32_t)b, st->digest[b]);
  if (rc == 0) rc = meta_set(c, "partitions", st->partitions);
  if (rc == 0) rc = meta_set(c, "buckets", st->buckets);
  if (rc == 0) rc = store_run(c, ST_COMMIT);
  if (rc != 0 && !sqlite3_get_autocommit(c->db)) store_run(c, ST_ROLLBACK);
  return rc;
}

static int load_digests(syn_store *st, store_conn *c) {
  sqlite3_stmt *s = store_stmt(c, ST_DIGEST_ALL);
  if (!s) return -EIO;
  int step;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t b = sqlite3_column_int64(s, 0);
    if (b >= 0 && (size_t)b < bucket_count(st))
      st->digest[b] = (uint64_t)sqlite3_column_int64(s, 1);
  }
  store_stmt_done(s);
  return step == SQLITE_DONE ? 0 : -EIO;
}

int store_layout_open(syn_store *st, char *err, size_t errlen) {
  st->digest = calloc(bucket_count(st), sizeof *st->digest);
  if (!st->digest) {
    store_set_err(err, errlen, "%s", "out of memory");
    return -ENOMEM;
  }
  store_conn *c = &st->writer;
  int64_t parts = 0, buckets = 0;
  bool same = meta_get(c, "partitions", &parts) == 0 && meta_get(c, "buckets", &buckets) == 0 &&
              parts == st->partitions && buckets == st->buckets;
  int rc = same ? load_digests(st, c) : relayout(st, c);
  if (rc)
    store_set_err(err, errlen, "shard store: cannot lay out digests: %s", sqlite3_errmsg(c->db));
  return rc;
}

/* ---- reading versions and digests ---- */

uint32_t syn_store_partitions(const syn_store *st) { return st->partitions; }
uint32_t syn_store_buckets(const syn_store *st) { return st->buckets; }

void syn_store_digests(syn_store *st, uint64_t *out) {
  pthread_mutex_lock(&st->digest_mu);
  memcpy(out, st->digest, bucket_count(st) * sizeof *out);
  pthread_mutex_unlock(&st->digest_mu);
}

static void column_version(sqlite3_stmt *s, int col, syn_version *v) {
  v->hlc = (uint64_t)sqlite3_column_int64(s, col);
  const char *node = (const char *)sqlite3_column_text(s, col + 1);
  snprintf(v->node, sizeof v->node, "%s", node ? node : "");
}

int syn_store_version(syn_store *st, const char *info_hash, syn_key_version *out) {
  memset(out, 0, sizeof *out);
  if (syn_info_hash_normalize(info_hash, out->info_hash) != 0) return -EINVAL;
  store_conn *c = store_reader_acquire(st);
  int rc = -ENOENT;
  sqlite3_stmt *s = store_stmt(c, ST_FIND);
  if (!s) rc = -EIO;
  if (s) {
    sqlite3_bind_text(s, 1, out->info_hash, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
      column_version(s, 4, &out->version);
      rc = 0;
    } else if (step != SQLITE_DONE) {
      rc = -EIO;
    }
    store_stmt_done(s);
  }
  s = rc == -ENOENT ? store_stmt(c, ST_TOMB_FIND) : NULL;
  if (s) {
    sqlite3_bind_text(s, 1, out->info_hash, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
      column_version(s, 0, &out->version);
      out->deleted = true;
      out->deleted_at_ms = sqlite3_column_int64(s, 2);
      rc = 0;
    } else if (step != SQLITE_DONE) {
      rc = -EIO;
    }
    store_stmt_done(s);
  }
  store_reader_release(st, c);
  return rc;
}

static int grow_keys(syn_key_version **out, size_t n, size_t *cap) {
  if (n < *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 16;
  syn_key_version *k = realloc(*out, ncap * sizeof *k);
  if (!k) return -ENOMEM;
  *out = k;
  *cap = ncap;
  return 0;
}

static int bucket_rows(store_conn *c, enum stmt_id id, uint32_t bucket, bool tombs,
                       syn_key_version **out, size_t *n, size_t *cap) {
  sqlite3_stmt *s = store_stmt(c, id);
  if (!s) return -EIO;
  sqlite3_bind_int64(s, 1, bucket);
  int rc = 0, step;
  while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    if ((rc = grow_keys(out, *n, cap)) != 0) break;
    syn_key_version *k = &(*out)[*n];
    memset(k, 0, sizeof *k);
    const char *ih = (const char *)sqlite3_column_text(s, 0);
    snprintf(k->info_hash, sizeof k->info_hash, "%s", ih ? ih : "");
    column_version(s, 1, &k->version);
    k->deleted = tombs;
    if (tombs) k->deleted_at_ms = sqlite3_column_int64(s, 3);
    (*n)++;
  }
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(s);
  return rc;
}

int syn_store_bucket_keys(syn_store *st, uint32_t bucket, syn_key_version **out, size_t *n,
                          size_t *cap) {
  if (bucket >= bucket_count(st)) return -EINVAL;
  syn_store_reader *r = syn_store_read_begin(st); /* records and tombstones of one state */
  if (!r) return -EIO;
  store_conn *c = store_conn_use(st, r);
  int rc = bucket_rows(c, ST_BUCKET_SHARDS, bucket, false, out, n, cap);
  if (rc == 0) rc = bucket_rows(c, ST_BUCKET_TOMBS, bucket, true, out, n, cap);
  syn_store_read_end(st, r);
  return rc;
}

static int range_keys(store_conn *c, enum stmt_id id, uint32_t lo, uint32_t hi, char (**out)[65],
                      size_t *n, size_t *cap) {
  sqlite3_stmt *s = store_stmt(c, id);
  if (!s) return -EIO;
  sqlite3_bind_int64(s, 1, lo);
  sqlite3_bind_int64(s, 2, hi);
  int rc = 0, step;
  while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == *cap) {
      size_t ncap = *cap ? *cap * 2 : 64;
      char(*k)[65] = realloc(*out, ncap * sizeof *k);
      if (!k) {
        rc = -ENOMEM;
        break;
      }
      *out = k;
      *cap = ncap;
    }
    const char *ih = (const char *)sqlite3_column_text(s, 0);
    snprintf((*out)[(*n)++], 65, "%s", ih ? ih : "");
  }
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(s);
  return rc;
}

int syn_store_partition_keys(syn_store *st, uint32_t partition, char (**out)[65], size_t *n) {
  *out = NULL;
  *n = 0;
  if (partition >= st->partitions) return -EINVAL;
  uint32_t lo = partition * st->buckets, hi = lo + st->buckets - 1;
  size_t cap = 0;
  syn_store_reader *r = syn_store_read_begin(st);
  if (!r) return -EIO;
  store_conn *c = store_conn_use(st, r);
  int rc = range_keys(c, ST_RANGE_SHARDS, lo, hi, out, n, &cap);
  if (rc == 0) rc = range_keys(c, ST_RANGE_TOMBS, lo, hi, out, n, &cap);
  syn_store_read_end(st, r);
  if (rc) {
    free(*out);
    *out = NULL;
    *n = 0;
  }
  return rc;
}

/* ---- tombstone purge ---- */

int syn_store_purge_tombstones(syn_store *st, int64_t older_than_ms, size_t max, size_t *purged) {
  *purged = 0;
  char(*keys)[65] = NULL;
  size_t n = 0, cap = 0;
  store_conn *r = store_reader_acquire(st);
  sqlite3_stmt *s = store_stmt(r, ST_TOMB_OLD);
  int rc = s ? 0 : -EIO, step = SQLITE_DONE;
  if (s) {
    sqlite3_bind_int64(s, 1, older_than_ms);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
      if (n == cap) {
        size_t ncap = cap ? cap * 2 : 64;
        char(*k)[65] = realloc(keys, ncap * sizeof *k);
        if (!k) {
          rc = -ENOMEM;
          break;
        }
        keys = k;
        cap = ncap;
      }
      const char *ih = (const char *)sqlite3_column_text(s, 0);
      snprintf(keys[n++], 65, "%s", ih ? ih : "");
    }
    if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
    store_stmt_done(s);
  }
  store_reader_release(st, r);
  /* Each goes only if it is still that old tombstone (a write may have replaced it). */
  for (size_t i = 0; rc == 0 && i < n; i++) {
    bool gone = false;
    rc = store_purge_one(st, keys[i], older_than_ms, &gone);
    *purged += gone;
  }
  free(keys);
  return rc;
}
