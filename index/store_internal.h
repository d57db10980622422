/* Internals of the shard store shared by its files (shard_store.c: connections, schema,
 * writes and reads; store_sync.c: versions' digests, buckets and tombstones). Not part
 * of the component's face: only index/ files include it. */
#ifndef SYN_INDEX_STORE_INTERNAL_H
#define SYN_INDEX_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

#include "index/shard_store.h"

enum stmt_id {
  ST_BEGIN,
  ST_BEGIN_READ,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_SAVEPOINT,
  ST_RELEASE,
  ST_ROLLBACK_TO,
  ST_FIND,
  ST_DELETE_ID,
  ST_INSERT,
  ST_DELETE_HASH,
  ST_GET_HASH,
  ST_GET_HASH_EMB,
  ST_GET_ID,
  ST_GET_ID_EMB,
  ST_JSON_EACH,
  ST_COUNT,
  ST_LIST_IDS,
  ST_COLLECTIONS,
  ST_SCAN_VECTORS,
  ST_SCAN_IDS,
  ST_SCAN_PARTITIONS,
  ST_GET_VECTOR,
  ST_PROBE,
  ST_PROBE_EMB,
  ST_COUNT_TAGGED,
  ST_EXACT_ALL,
  ST_EXACT_TAGGED,
  ST_TEXT,
  /* versions, tombstones and digests */
  ST_TOMB_FIND,
  ST_TOMB_DELETE,
  ST_TOMB_PUT,
  ST_DIGEST_SET,
  ST_META_GET,
  ST_META_SET,
  ST_TOMB_OLD,
  ST_BUCKET_SHARDS,
  ST_BUCKET_TOMBS,
  ST_RANGE_SHARDS,
  ST_RANGE_TOMBS,
  ST_DIGEST_ALL,
  ST_ALL_SHARD_KEYS,
  ST_ALL_TOMB_KEYS,
  ST_SET_SHARD_BUCKET,
  ST_SET_TOMB_BUCKET,
  ST_DIGEST_CLEAR,
  ST__N
};

extern const char *const store_sql[ST__N];

typedef struct store_conn {
  sqlite3 *db;
  sqlite3_stmt *st[ST__N];
} store_conn;

struct syn_store {
  store_conn writer;
  pthread_mutex_t write_mu;
  store_conn *readers;
  size_t nreaders;
  size_t *free_stack;
  size_t nfree;
  pthread_mutex_t pool_mu;
  pthread_cond_t pool_cv;
  atomic_uint_fast64_t corrupt;
  /* anti-entropy digests, one per bucket (store_sync.c); written under write_mu,
   * read under digest_mu */
  uint32_t partitions, buckets;
  uint64_t *digest;
  pthread_mutex_t digest_mu;
  /* the open batch's digest changes (syn_store_batch_*; write_mu held meanwhile) */
  struct store_digest_txn *batch;
};

/* A statement of the connection, prepared on first use (NULL on failure). Every use
 * ends with store_stmt_done, so no statement keeps a read transaction open. */
sqlite3_stmt *store_stmt(store_conn *c, enum stmt_id id);
void store_stmt_done(sqlite3_stmt *s);
/* Runs a statement without results (BEGIN, COMMIT, ...): 0 or -EIO. */
int store_run(store_conn *c, enum stmt_id id);

store_conn *store_reader_acquire(syn_store *st);
void store_reader_release(syn_store *st, store_conn *c);
/* A session's connection, or one borrowed from the pool for a single call. */
store_conn *store_conn_use(syn_store *st, syn_store_reader *r);
void store_conn_done(syn_store *st, syn_store_reader *r, store_conn *c);

void store_set_err(char *err, size_t errlen, const char *fmt, const char *detail);

/* The bucket of a (lower-case hex) info_hash in the store's layout. */
uint32_t store_bucket_of(const syn_store *st, const char *info_hash_hex);

/* Digest bookkeeping inside a write transaction (write_mu held): XORs `delta` into the
 * bucket's digest and persists the new value; the in-memory copy follows on commit
 * (store_digest_commit) and is left alone on rollback. Free with store_digest_free. */
typedef struct store_digest_txn {
  uint32_t *bucket;
  uint64_t *value;
  size_t n, cap;
} store_digest_txn;
int store_digest_xor(syn_store *st, store_digest_txn *t, uint32_t bucket, uint64_t delta);
void store_digest_commit(syn_store *st, const store_digest_txn *t);
/* dst = src (for undoing one record of a batch); 0 or -ENOMEM. */
int store_digest_copy(store_digest_txn *dst, const store_digest_txn *src);
void store_digest_free(store_digest_txn *t);

/* Looks up the version stored for ih (lower-case hex) in the write transaction: the
 * record's (with its row id, creation time, model key and dimension in chg->old_*) and
 * the tombstone's. found_* tell which exist. */
typedef struct store_current {
  bool found_record, found_tomb;
  syn_version record, tomb;
  int64_t created_at_ms;
  int64_t tomb_deleted_at_ms;
} store_current;
int store_find_current(store_conn *c, const char *ih, syn_store_change *chg, store_current *cur);

/* Removes ih's tombstone if it is still one stored before older_than_ms (a write since
 * may have replaced it): one transaction. 0 with *purged, or -EIO. */
int store_purge_one(syn_store *st, const char *ih, int64_t older_than_ms, bool *purged);

/* Opens the digests at store open: loads them, or recomputes every bucket and digest
 * when the database was laid out for another partition count (or never was). */
int store_layout_open(syn_store *st, char *err, size_t errlen);

#endif
