/* Shard metadata store on SQLite; the contract is in shard_store.h.
 *
 * Design notes:
 * - Connections: one writer (behind write_mu) and a fixed pool of readers handed out by
 *   a mutex and condition variable. Each connection caches its prepared statements in an
 *   array indexed by enum stmt_id, prepared on first use; every use ends with a reset so
 *   no statement keeps a read transaction (and with it the WAL) pinned.
 * - Upsert is delete + insert in one IMMEDIATE transaction rather than UPDATE: the new
 *   row gets a fresh AUTOINCREMENT id, so an id always names one embedding version and the
 *   HNSW tombstone of the old version can never be confused with the new one.
 * - Triggers keep shards_fts and shard_tags in sync with shards, so no code path can
 *   forget them. Tags are stored as a JSON array built here (quotes, backslashes and
 *   control characters escaped) and read back through json_each.
 * - Rows come from disk, so they are checked like any input: an embedding blob whose
 *   length is not 4 x dimension or a non-positive norm makes the row count as corrupt and
 *   be skipped rather than trusted. */
#define _GNU_SOURCE
#include "index/shard_store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/hlc.h"
#include "common/keyspace.h"
#include "common/rank.h"
#include "common/shard_rules.h"
#include "index/store_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "embeddings are stored as little-endian float32; add byte swapping for this target"
#endif

/* ---- schema ---------------------------------------------------------------------- */

static const char k_schema_v1[] =
    "CREATE TABLE shards ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " info_hash TEXT NOT NULL UNIQUE,"
    " model_key TEXT NOT NULL,"
    " dimension INTEGER NOT NULL CHECK (dimension > 0),"
    " norm REAL NOT NULL CHECK (norm >= 0)," /* 0: registered without an embedding */
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " display_name TEXT NOT NULL,"
    " model TEXT NOT NULL,"
    " tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),"
    " file_size INTEGER,"
    " entry_count INTEGER,"
    " creator_agent_id TEXT,"
    " creator_public_key TEXT,"
    " signature TEXT,"
    " description TEXT,"
    " metadata TEXT CHECK (metadata IS NULL OR"
    "   CASE WHEN json_valid(metadata) THEN json_type(metadata) = 'object' ELSE 0 END),"
    " embedding BLOB CHECK (embedding IS NULL OR length(embedding) = 4 * dimension));"
    "CREATE INDEX shards_by_collection ON shards(model_key, dimension, id);"
    "CREATE TABLE shard_tags ("
    " tag TEXT NOT NULL COLLATE NOCASE,"
    " shard_id INTEGER NOT NULL,"
    " PRIMARY KEY (tag, shard_id)) WITHOUT ROWID;"
    "CREATE INDEX shard_tags_by_shard ON shard_tags(shard_id);"
    "CREATE VIRTUAL TABLE shards_fts USING fts5(display_name, description, tags,"
    " content='shards', content_rowid='id', tokenize='unicode61 remove_diacritics 2');"
    "CREATE TRIGGER shards_ai AFTER INSERT ON shards BEGIN"
    " INSERT INTO shards_fts(rowid, display_name, description, tags)"
    "  VALUES (new.id, new.display_name, new.description, new.tags);"
    " INSERT OR IGNORE INTO shard_tags(tag, shard_id) SELECT value, new.id FROM "
    "json_each(new.tags);"
    "END;"
    "CREATE TRIGGER shards_ad AFTER DELETE ON shards BEGIN"
    " INSERT INTO shards_fts(shards_fts, rowid, display_name, description, tags)"
    "  VALUES ('delete', old.id, old.display_name, old.description, old.tags);"
    " DELETE FROM shard_tags WHERE shard_id = old.id;"
    "END;"
    "CREATE TRIGGER shards_au AFTER UPDATE ON shards BEGIN"
    " INSERT INTO shards_fts(shards_fts, rowid, display_name, description, tags)"
    "  VALUES ('delete', old.id, old.display_name, old.description, old.tags);"
    " INSERT INTO shards_fts(rowid, display_name, description, tags)"
    "  VALUES (new.id, new.display_name, new.description, new.tags);"
    " DELETE FROM shard_tags WHERE shard_id = old.id;"
    " INSERT OR IGNORE INTO shard_tags(tag, shard_id) SELECT value, new.id FROM "
    "json_each(new.tags);"
    "END;";

/* Version 2: versions and tombstones (design decisions, cluster under faults). Every
 * record carries the version of the write that made it; a delete leaves a tombstone
 * with its version; both carry their anti-entropy bucket, and `digests` holds each
 * bucket's XOR of record digests, kept with every write in the same transaction. The
 * buckets depend on the cluster's partition count, kept in `meta`; a database opened
 * with another layout has its buckets and digests recomputed (store_sync.c). Rows of
 * version 1 get the version of their update time, from no node. */
static const char k_schema_v2[] =
    "ALTER TABLE shards ADD COLUMN version_hlc INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE shards ADD COLUMN version_node TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE shards ADD COLUMN bucket INTEGER NOT NULL DEFAULT 0;"
    "UPDATE shards SET version_hlc = updated_at * 65536;"
    "CREATE INDEX shards_by_bucket ON shards(bucket, info_hash);"
    "CREATE TABLE tombstones ("
    " info_hash TEXT PRIMARY KEY,"
    " bucket INTEGER NOT NULL,"
    " version_hlc INTEGER NOT NULL,"
    " version_node TEXT NOT NULL,"
    " deleted_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX tombstones_by_bucket ON tombstones(bucket, info_hash);"
    "CREATE INDEX tombstones_by_age ON tombstones(deleted_at);"
    "CREATE TABLE digests (bucket INTEGER PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

/* k_migrations[i] takes a database from user_version i to i + 1. */
static const char *const k_migrations[] = {k_schema_v1, k_schema_v2};
#define SCHEMA_VERSION ((int)(sizeof k_migrations / sizeof k_migrations[0]))

/* ---- statements ------------------------------------------------------------------ */

/* A search limited to some partitions: `set` is a blob of one bit per partition (bit p of
 * byte p / 8, LSB first; NULL = every partition), `nb` the buckets per partition, so a
 * row's partition is its bucket / nb (common/keyspace.h). */
#define PART_FILTER(set, nb) " AND (" set " IS NULL OR syn_bit(" set ", s.bucket / " nb "))"

#define RECORD_COLS                                                                         \
  "id, info_hash, model_key, dimension, created_at, updated_at, display_name, model, tags," \
  " file_size, entry_count, creator_agent_id, creator_public_key, signature, description,"  \
  " metadata, norm, version_hlc, version_node"
#define TAG_FILTER "SELECT value FROM json_each(?%d)"

const char *const store_sql[ST__N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT rec",
    [ST_RELEASE] = "RELEASE rec",
    [ST_ROLLBACK_TO] = "ROLLBACK TO rec",
    [ST_FIND] =
        "SELECT id, created_at, model_key, dimension, version_hlc, version_node"
        " FROM shards WHERE info_hash = ?1",
    [ST_DELETE_ID] = "DELETE FROM shards WHERE id = ?1",
    [ST_INSERT] =
        "INSERT INTO shards (info_hash, model_key, dimension, norm, created_at,"
        " updated_at, display_name, model, tags, file_size, entry_count,"
        " creator_agent_id, creator_public_key, signature, description, metadata,"
        " embedding, version_hlc, version_node, bucket) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
        " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    [ST_DELETE_HASH] = "DELETE FROM shards WHERE info_hash = ?1 RETURNING id, model_key, dimension",
    [ST_TOMB_FIND] =
        "SELECT version_hlc, version_node, deleted_at FROM tombstones WHERE info_hash = ?1",
    [ST_TOMB_DELETE] = "DELETE FROM tombstones WHERE info_hash = ?1",
    [ST_TOMB_PUT] =
        "INSERT OR REPLACE INTO tombstones (info_hash, bucket, version_hlc, version_node,"
        " deleted_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_DIGEST_SET] = "INSERT OR REPLACE INTO digests (bucket, value) VALUES (?1, ?2)",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
    [ST_TOMB_OLD] = "SELECT info_hash FROM tombstones WHERE deleted_at < ?1 LIMIT ?2",
    [ST_BUCKET_SHARDS] =
        "SELECT info_hash, version_hlc, version_node FROM shards WHERE bucket = ?1",
    [ST_BUCKET_TOMBS] =
        "SELECT info_hash, version_hlc, version_node, deleted_at FROM tombstones"
        " WHERE bucket = ?1",
    [ST_RANGE_SHARDS] = "SELECT info_hash FROM shards WHERE bucket BETWEEN ?1 AND ?2",
    [ST_RANGE_TOMBS] = "SELECT info_hash FROM tombstones WHERE bucket BETWEEN ?1 AND ?2",
    [ST_DIGEST_ALL] = "SELECT bucket, value FROM digests",
    [ST_ALL_SHARD_KEYS] = "SELECT id, info_hash, version_hlc, version_node FROM shards",
    [ST_ALL_TOMB_KEYS] = "SELECT info_hash, version_hlc, version_node FROM tombstones",
    [ST_SET_SHARD_BUCKET] = "UPDATE shards SET bucket = ?2 WHERE id = ?1",
    [ST_SET_TOMB_BUCKET] = "UPDATE tombstones SET bucket = ?2 WHERE info_hash = ?1",
    [ST_DIGEST_CLEAR] = "DELETE FROM digests",
    [ST_GET_HASH] = "SELECT " RECORD_COLS " FROM shards WHERE info_hash = ?1",
    [ST_GET_HASH_EMB] = "SELECT " RECORD_COLS ", embedding FROM shards WHERE info_hash = ?1",
    [ST_GET_ID] = "SELECT " RECORD_COLS " FROM shards WHERE id = ?1",
    [ST_GET_ID_EMB] = "SELECT " RECORD_COLS ", embedding FROM shards WHERE id = ?1",
    [ST_JSON_EACH] = "SELECT value FROM json_each(?1) WHERE type = 'text'",
    [ST_COUNT] = "SELECT count(*) FROM shards",
    [ST_LIST_IDS] = "SELECT id FROM shards WHERE id > ?1 ORDER BY id LIMIT ?2",
    [ST_COLLECTIONS] =
        "SELECT model_key, dimension, count(*), sum(id) FROM shards"
        " WHERE embedding IS NOT NULL GROUP BY model_key, dimension",
    [ST_SCAN_VECTORS] =
        "SELECT id, norm, embedding FROM shards"
        " WHERE model_key = ?1 AND dimension = ?2 AND embedding IS NOT NULL ORDER BY id",
    [ST_SCAN_PARTITIONS] = "SELECT id, bucket FROM shards WHERE embedding IS NOT NULL",
    [ST_SCAN_IDS] =
        "SELECT id FROM shards WHERE model_key = ?1 AND dimension = ?2"
        " AND embedding IS NOT NULL ORDER BY id",
    [ST_GET_VECTOR] = "SELECT dimension, norm, embedding FROM shards WHERE id = ?1",
    [ST_PROBE] =
        "SELECT ?2 IS NULL OR EXISTS (SELECT 1 FROM shard_tags t WHERE t.shard_id = s.id"
        " AND t.tag IN (SELECT value FROM json_each(?2))) FROM shards s WHERE s.id = ?1",
    [ST_PROBE_EMB] =
        "SELECT ?2 IS NULL OR EXISTS (SELECT 1 FROM shard_tags t WHERE t.shard_id ="
        " s.id AND t.tag IN (SELECT value FROM json_each(?2))), s.dimension,"
        " s.norm, s.embedding FROM shards s WHERE s.id = ?1",
    [ST_COUNT_TAGGED] =
        "SELECT count(*) FROM (SELECT DISTINCT shard_id FROM shard_tags"
        " WHERE tag IN (SELECT value FROM json_each(?1)) LIMIT ?2)",
    /* ?4 ?5: the partitions a search is limited to (PART_FILTER). */
    [ST_EXACT_ALL] =
        "SELECT id, norm, embedding FROM shards s WHERE model_key = ?1"
        " AND dimension = ?2 AND embedding IS NOT NULL" PART_FILTER("?4", "?5"),
    /* The unary + keeps the planner off shards_by_collection: the tag list is the
     * selective side, so rows are fetched by rowid from it. */
    [ST_EXACT_TAGGED] =
        "SELECT s.id, s.norm, s.embedding FROM shards s WHERE s.id IN"
        " (SELECT shard_id FROM shard_tags WHERE tag IN"
        " (SELECT value FROM json_each(?3)))"
        " AND +s.model_key = ?1 AND +s.dimension = ?2 AND s.embedding IS NOT NULL" PART_FILTER(
            "?4", "?5"),
    [ST_TEXT] =
        "SELECT s.id, syn_coverage(shards_fts) AS c, bm25(shards_fts, 4.0, 1.0, 2.0) AS r"
        " FROM shards_fts JOIN shards s ON s.id = shards_fts.rowid"
        " WHERE shards_fts MATCH ?1 AND (?2 IS NULL OR s.model_key = ?2)"
        " AND (?3 IS NULL OR EXISTS (SELECT 1 FROM shard_tags t WHERE t.shard_id = s.id"
        " AND t.tag IN (SELECT value FROM json_each(?3))))" PART_FILTER(
            "?5", "?6") " ORDER BY c DESC, r LIMIT ?4",
};

void store_set_err(char *err, size_t errlen, const char *fmt, const char *detail) {
  if (err && errlen) snprintf(err, errlen, fmt, detail ? detail : "");
}

sqlite3_stmt *store_stmt(store_conn *c, enum stmt_id id) {
  if (!c->st[id] && sqlite3_prepare_v3(c->db, store_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                       &c->st[id], NULL) != SQLITE_OK) {
    c->st[id] = NULL;
    return NULL;
  }
  return c->st[id];
}

void store_stmt_done(sqlite3_stmt *s) {
  if (!s) return;
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

/* Runs a statement without results (BEGIN, COMMIT, ...). */
int store_run(store_conn *c, enum stmt_id id) {
  sqlite3_stmt *s = store_stmt(c, id);
  if (!s) return -EIO;
  int rc = sqlite3_step(s);
  store_stmt_done(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

store_conn *store_reader_acquire(syn_store *st) {
  pthread_mutex_lock(&st->pool_mu);
  while (st->nfree == 0) pthread_cond_wait(&st->pool_cv, &st->pool_mu);
  store_conn *c = &st->readers[st->free_stack[--st->nfree]];
  pthread_mutex_unlock(&st->pool_mu);
  return c;
}

void store_reader_release(syn_store *st, store_conn *c) {
  pthread_mutex_lock(&st->pool_mu);
  st->free_stack[st->nfree++] = (size_t)(c - st->readers);
  pthread_cond_signal(&st->pool_cv);
  pthread_mutex_unlock(&st->pool_mu);
}

/* A session's connection, or one borrowed from the pool for a single call. */
store_conn *store_conn_use(syn_store *st, syn_store_reader *r) {
  return r ? (store_conn *)(void *)r : store_reader_acquire(st);
}

void store_conn_done(syn_store *st, syn_store_reader *r, store_conn *c) {
  if (!r) store_reader_release(st, c);
}

syn_store_reader *syn_store_read_begin(syn_store *st) {
  store_conn *c = store_reader_acquire(st);
  if (store_run(c, ST_BEGIN_READ) != 0) {
    store_reader_release(st, c);
    return NULL;
  }
  return (syn_store_reader *)(void *)c;
}

void syn_store_read_end(syn_store *st, syn_store_reader *r) {
  if (!r) return;
  store_conn *c = (store_conn *)(void *)r;
  if (!sqlite3_get_autocommit(c->db)) store_run(c, ST_COMMIT);
  store_reader_release(st, c);
}

/* ---- open, migrate, close -------------------------------------------------------- */

static void conn_close(store_conn *c) {
  for (int i = 0; i < ST__N; i++) sqlite3_finalize(c->st[i]);
  memset(c->st, 0, sizeof c->st);
  if (c->db) sqlite3_close_v2(c->db);
  c->db = NULL;
}

/* syn_coverage(shards_fts): the similarity of a keyword hit (common/rank.h), from the
 * columns in which each phrase of the query (one term each, syn_fts_query) occurs in
 * this row. FTS5's own tokenizer decided the matches, so case folding and diacritics are
 * exactly those of MATCH. Cost: one pass over the row's instances of the query's terms. */
static void coverage_fn(const Fts5ExtensionApi *x, Fts5Context *fc, sqlite3_context *ctx, int nval,
                        sqlite3_value **vals) {
  (void)nval, (void)vals;
  uint8_t fields[64] = {0};
  int nphrase = x->xPhraseCount(fc), ninst = 0;
  if (nphrase > (int)sizeof fields) nphrase = (int)sizeof fields;
  int rc = x->xInstCount(fc, &ninst);
  for (int i = 0; rc == SQLITE_OK && i < ninst; i++) {
    int phrase, col, off;
    rc = x->xInst(fc, i, &phrase, &col, &off);
    if (rc == SQLITE_OK && phrase >= 0 && phrase < nphrase && col >= 0 && col < 8)
      fields[phrase] |= (uint8_t)(1u << col);
  }
  if (rc != SQLITE_OK) {
    sqlite3_result_error_code(ctx, rc);
    return;
  }
  sqlite3_result_double(ctx, syn_sim_from_coverage(fields, (size_t)(nphrase > 0 ? nphrase : 0)));
}

/* syn_bit(blob, n): bit n of the blob, LSB first (0 past its end or for a negative n). */
static void bit_fn(sqlite3_context *ctx, int nval, sqlite3_value **vals) {
  (void)nval;
  const unsigned char *b = sqlite3_value_blob(vals[0]);
  int len = sqlite3_value_bytes(vals[0]);
  sqlite3_int64 n = sqlite3_value_int64(vals[1]);
  bool set = b && n >= 0 && n / 8 < len && (b[n / 8] >> (n % 8)) & 1;
  sqlite3_result_int(ctx, set);
}

/* Registers syn_coverage with this connection's FTS5. 0 or -EIO (no FTS5). */
static int register_coverage(sqlite3 *db) {
  fts5_api *api = NULL;
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, NULL) != SQLITE_OK) return -EIO;
  sqlite3_bind_pointer(s, 1, (void *)&api, "fts5_api_ptr", NULL);
  sqlite3_step(s);
  sqlite3_finalize(s);
  if (!api || api->iVersion < 2) return -EIO;
  return api->xCreateFunction(api, "syn_coverage", NULL, coverage_fn, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int conn_open(store_conn *c, const char *path, bool writer, const syn_store_options *opt,
                     char *err, size_t errlen) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
    store_set_err(err, errlen, "sqlite open: %s", c->db ? sqlite3_errmsg(c->db) : "out of memory");
    return -EIO;
  }
  sqlite3_busy_timeout(c->db, 5000);
  /* mmap lets every connection read pages straight from the OS page cache (no pread per
   * page, no copy per connection); a negative cache_size is in KiB. */
  char sql[256];
  int len = snprintf(sql, sizeof sql,
                     "PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF; PRAGMA mmap_size=%llu;%s",
                     opt->sync_full ? "FULL" : "NORMAL", (unsigned long long)opt->mmap_mb << 20,
                     writer ? "" : " PRAGMA query_only=1;");
  if (opt->cache_mb && len > 0 && (size_t)len < sizeof sql)
    snprintf(sql + len, sizeof sql - (size_t)len, " PRAGMA cache_size=-%u;", opt->cache_mb * 1024);
  char *msg = NULL;
  if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    store_set_err(err, errlen, "sqlite pragma: %s", msg);
    sqlite3_free(msg);
    return -EIO;
  }
  if (sqlite3_create_function(c->db, "syn_bit", 2,
                              SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL, bit_fn,
                              NULL, NULL) != SQLITE_OK) {
    store_set_err(err, errlen, "sqlite: %s", sqlite3_errmsg(c->db));
    return -EIO;
  }
  if (register_coverage(c->db)) {
    store_set_err(err, errlen, "sqlite: %s", "FTS5 is missing (keyword search needs it)");
    return -EIO;
  }
  return 0;
}

static int wal_cb(void *ctx, int ncol, char **vals, char **names) {
  (void)ncol, (void)names;
  *(bool *)ctx = vals[0] && strcmp(vals[0], "wal") == 0;
  return 0;
}

static int user_version(sqlite3 *db, int *v) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) return -EIO;
  int rc = sqlite3_step(s);
  *v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
  sqlite3_finalize(s);
  return *v < 0 ? -EIO : 0;
}

/* Applies the migrations this file is missing, one transaction each. */
static int migrate(sqlite3 *db, char *err, size_t errlen) {
  int v;
  if (user_version(db, &v) != 0) {
    store_set_err(err, errlen, "sqlite: cannot read user_version: %s", sqlite3_errmsg(db));
    return -EIO;
  }
  if (v > SCHEMA_VERSION) {
    if (err && errlen)
      snprintf(err, errlen, "shard database schema version %d is newer than this build's %d", v,
               SCHEMA_VERSION);
    return -EINVAL;
  }
  for (; v < SCHEMA_VERSION; v++) {
    char tail[64];
    snprintf(tail, sizeof tail, "PRAGMA user_version=%d; COMMIT;", v + 1);
    char *msg = NULL;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, k_migrations[v], NULL, NULL, &msg);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, tail, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
      store_set_err(err, errlen, "shard schema migration failed: %s", msg);
      sqlite3_free(msg);
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
      return -EIO;
    }
  }
  return 0;
}

static int open_writer(syn_store *st, const char *path, const syn_store_options *opt, char *err,
                       size_t errlen) {
  int rc = conn_open(&st->writer, path, true, opt, err, errlen);
  if (rc) return rc;
  bool wal = false;
  char *msg = NULL;
  if (sqlite3_exec(st->writer.db, "PRAGMA journal_mode=WAL", wal_cb, &wal, &msg) != SQLITE_OK ||
      !wal) {
    store_set_err(err, errlen, "sqlite: cannot enable WAL: %s", msg ? msg : "refused");
    sqlite3_free(msg);
    return -EIO;
  }
  return migrate(st->writer.db, err, errlen);
}

syn_store *syn_store_open(const char *path, const syn_store_options *opt, char *err,
                          size_t errlen) {
  if (!sqlite3_threadsafe()) {
    store_set_err(err, errlen, "%s", "sqlite3 was built without thread support");
    return NULL;
  }
  syn_store *st = calloc(1, sizeof *st);
  size_t nr = opt && opt->read_connections ? opt->read_connections : 4;
  syn_store_options o = opt ? *opt : (syn_store_options){4, true, 256, 0, 0, 0};
  if (!st || !(st->readers = calloc(nr, sizeof *st->readers)) ||
      !(st->free_stack = calloc(nr, sizeof *st->free_stack))) {
    store_set_err(err, errlen, "%s", "out of memory");
    if (st) free(st->readers);
    free(st);
    return NULL;
  }
  pthread_mutex_init(&st->write_mu, NULL);
  pthread_mutex_init(&st->pool_mu, NULL);
  pthread_cond_init(&st->pool_cv, NULL);
  atomic_init(&st->corrupt, 0);
  st->nreaders = nr;
  st->partitions = o.partitions ? o.partitions : 1024;
  st->buckets = o.buckets ? o.buckets : SYN_BUCKETS_PER_PARTITION;
  pthread_mutex_init(&st->digest_mu, NULL);
  if (open_writer(st, path, &o, err, errlen) != 0) goto fail;
  if (store_layout_open(st, err, errlen) != 0) goto fail;
  for (size_t i = 0; i < nr; i++) {
    if (conn_open(&st->readers[i], path, false, &o, err, errlen) != 0) goto fail;
    st->free_stack[st->nfree++] = i;
  }
  return st;
fail:
  syn_store_close(st);
  return NULL;
}

void syn_store_close(syn_store *st) {
  if (!st) return;
  for (size_t i = 0; i < st->nreaders; i++) conn_close(&st->readers[i]);
  conn_close(&st->writer);
  pthread_mutex_destroy(&st->write_mu);
  pthread_mutex_destroy(&st->pool_mu);
  pthread_cond_destroy(&st->pool_cv);
  pthread_mutex_destroy(&st->digest_mu);
  free(st->digest);
  free(st->readers);
  free(st->free_stack);
  free(st);
}

/* ---- input checks ---------------------------------------------------------------- */

static bool ascii_ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = *a, y = *b;
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    if (x != y) return false;
  }
  return *a == *b;
}

static void json_put_string(char **w, const char *s) {
  static const char hex[] = "0123456789abcdef";
  char *p = *w;
  *p++ = '"';
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      memcpy(p, "\\u00", 4);
      p[4] = hex[c >> 4];
      p[5] = hex[c & 15];
      p += 6;
    } else {
      *p++ = (char)c;
    }
  }
  *p++ = '"';
  *w = p;
}

/* Tags as a JSON array, duplicates (ASCII case-insensitive) dropped, first spelling kept.
 * Escaping grows a string at most 6x. */
char *syn_store_tags_json(const char *const *tags, size_t n, bool *bad) {
  *bad = false;
  if (n > SYN_SHARD_MAX_TAGS) {
    *bad = true;
    return NULL;
  }
  size_t cap = 3;
  for (size_t i = 0; i < n; i++) {
    size_t len = tags[i] ? strlen(tags[i]) : 0;
    if (syn_tag_check("tags", tags[i], len, NULL, 0) != 0) {
      *bad = true;
      return NULL;
    }
    cap += 6 * len + 3;
  }
  char *out = malloc(cap), *w = out;
  if (!out) return NULL;
  *w++ = '[';
  for (size_t i = 0; i < n; i++) {
    bool dup = false;
    for (size_t j = 0; j < i && !dup; j++) dup = ascii_ieq(tags[i], tags[j]);
    if (dup) continue;
    if (w[-1] != '[') *w++ = ',';
    json_put_string(&w, tags[i]);
  }
  *w++ = ']';
  *w = '\0';
  return out;
}

/* L2 norm of a finite, nonzero vector; 0 when the vector is unusable. */
static double vec_norm(const float *v, uint32_t n) {
  double s = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!isfinite(v[i])) return 0;
    s += (double)v[i] * v[i];
  }
  double r = sqrt(s);
  return isfinite(r) && r > 1e-30 ? r : 0;
}

/* The same rules the router applies (common/shard_rules.h), so a write the router let
 * through is never refused here, and a node never stores what a router would refuse. */
static int check_strings(const syn_shard_input *in, char *err, size_t errlen) {
  static const struct {
    const char *field;
    size_t offset, max;
    bool required;
  } fields[] = {
      {"display_name", offsetof(syn_shard_input, display_name), SYN_SHARD_MAX_NAME, true},
      {"description", offsetof(syn_shard_input, description), SYN_SHARD_MAX_TEXT, false},
      {"metadata", offsetof(syn_shard_input, metadata_json), SYN_SHARD_MAX_METADATA, false},
      {"creator_agent_id", offsetof(syn_shard_input, creator_agent_id), SYN_SHARD_MAX_AGENT_ID,
       false},
      {"creator_public_key", offsetof(syn_shard_input, creator_public_key), SYN_SHARD_MAX_CRYPTO,
       false},
      {"signature", offsetof(syn_shard_input, signature), SYN_SHARD_MAX_CRYPTO, false},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    const char *v = *(const char *const *)(const void *)((const char *)in + fields[i].offset);
    int rc = syn_text_check(fields[i].field, v, v ? strlen(v) : 0, fields[i].max,
                            fields[i].required, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

static int check_input(const syn_shard_input *in, char *ih, char *model_key, double *norm,
                       char *err, size_t errlen) {
  int rc;
  if (!in->info_hash || syn_info_hash_normalize(in->info_hash, ih) != 0) {
    store_set_err(err, errlen, "%s", "\"info_hash\" must be 40 or 64 hexadecimal characters");
    return -EINVAL;
  }
  if ((rc = check_strings(in, err, errlen)) != 0) return rc;
  if ((rc = syn_model_check("model", in->model, in->model ? strlen(in->model) : 0, err, errlen)))
    return rc;
  syn_model_key(in->model, model_key, SYN_SHARD_MAX_MODEL + 1);
  if ((rc = syn_dimension_check("dimension", in->dimension, err, errlen))) return rc;
  /* A shard without an embedding is stored and found by words, never by vector. */
  *norm = 0;
  if (in->embedding && (*norm = vec_norm(in->embedding, in->dimension)) == 0) {
    store_set_err(err, errlen, "%s", "embedding must be finite and not all zero");
    return -EINVAL;
  }
  if (in->tag_count && !in->tags) {
    store_set_err(err, errlen, "%s", "tags missing");
    return -EINVAL;
  }
  return 0;
}

/* ---- writes ---------------------------------------------------------------------- */

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v) {
  if (v)
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(s, i);
}

static void bind_int_or_null(sqlite3_stmt *s, int i, int64_t v) {
  if (v >= 0)
    sqlite3_bind_int64(s, i, v);
  else
    sqlite3_bind_null(s, i);
}

static void read_version(sqlite3_stmt *s, int col, syn_version *v) {
  v->hlc = (uint64_t)sqlite3_column_int64(s, col);
  const char *node = (const char *)sqlite3_column_text(s, col + 1);
  snprintf(v->node, sizeof v->node, "%s", node ? node : "");
}

int store_find_current(store_conn *c, const char *ih, syn_store_change *chg, store_current *cur) {
  memset(cur, 0, sizeof *cur);
  sqlite3_stmt *s = store_stmt(c, ST_FIND);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, ih, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    cur->found_record = true;
    chg->old_id = sqlite3_column_int64(s, 0);
    cur->created_at_ms = sqlite3_column_int64(s, 1);
    const char *mk = (const char *)sqlite3_column_text(s, 2);
    snprintf(chg->old_model_key, sizeof chg->old_model_key, "%s", mk ? mk : "");
    chg->old_dimension = (uint32_t)sqlite3_column_int64(s, 3);
    read_version(s, 4, &cur->record);
  }
  store_stmt_done(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return -EIO;
  s = store_stmt(c, ST_TOMB_FIND);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, ih, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    cur->found_tomb = true;
    read_version(s, 0, &cur->tomb);
    cur->tomb_deleted_at_ms = sqlite3_column_int64(s, 2);
  }
  store_stmt_done(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}

/* Whether v is newer than everything stored for the key. */
static bool newer_than_current(const store_current *cur, const syn_version *v) {
  if (cur->found_record && syn_version_cmp(v, &cur->record) <= 0) return false;
  if (cur->found_tomb && syn_version_cmp(v, &cur->tomb) <= 0) return false;
  return true;
}

static int exec_key(store_conn *c, enum stmt_id id, const char *ih) {
  sqlite3_stmt *s = store_stmt(c, id);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, ih, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  store_stmt_done(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

static int delete_row(store_conn *c, int64_t id) {
  sqlite3_stmt *s = store_stmt(c, ST_DELETE_ID);
  if (!s) return -EIO;
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s);
  store_stmt_done(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Removes what is stored for ih (record and tombstone), XORing them out of the digest. */
static int remove_current(syn_store *st, store_conn *c, const char *ih, uint32_t bucket,
                          const store_current *cur, const syn_store_change *chg,
                          store_digest_txn *t) {
  int rc = 0;
  if (cur->found_record) {
    rc = delete_row(c, chg->old_id);
    if (rc == 0) rc = store_digest_xor(st, t, bucket, syn_record_digest(ih, &cur->record, false));
  }
  if (rc == 0 && cur->found_tomb) {
    rc = exec_key(c, ST_TOMB_DELETE, ih);
    if (rc == 0) rc = store_digest_xor(st, t, bucket, syn_record_digest(ih, &cur->tomb, true));
  }
  return rc;
}

/* Ends a write transaction: COMMIT (and the digests follow) or ROLLBACK. */
static int finish_write(syn_store *st, store_conn *c, int rc, store_digest_txn *t, char *err,
                        size_t errlen) {
  if (rc == 0) rc = store_run(c, ST_COMMIT);
  if (rc == 0) {
    store_digest_commit(st, t);
  } else {
    if (rc == -EIO && err && errlen && !err[0])
      store_set_err(err, errlen, "sqlite: %s", sqlite3_errmsg(c->db));
    if (!sqlite3_get_autocommit(c->db)) store_run(c, ST_ROLLBACK);
  }
  store_digest_free(t);
  return rc;
}

static int put_insert(store_conn *c, const syn_shard_input *in, const char *ih, const char *tags,
                      const syn_store_change *chg, const syn_version *v, uint32_t bucket, char *err,
                      size_t errlen) {
  sqlite3_stmt *s = store_stmt(c, ST_INSERT);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, ih, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, chg->model_key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, in->dimension);
  sqlite3_bind_double(s, 4, chg->norm);
  sqlite3_bind_int64(s, 5, chg->created_at_ms);
  sqlite3_bind_int64(s, 6, syn_hlc_ms(v->hlc));
  sqlite3_bind_text(s, 7, in->display_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 8, in->model, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 9, tags, -1, SQLITE_STATIC);
  bind_int_or_null(s, 10, in->file_size);
  bind_int_or_null(s, 11, in->entry_count);
  bind_text_or_null(s, 12, in->creator_agent_id);
  bind_text_or_null(s, 13, in->creator_public_key);
  bind_text_or_null(s, 14, in->signature);
  bind_text_or_null(s, 15, in->description);
  bind_text_or_null(s, 16, in->metadata_json);
  if (in->embedding)
    sqlite3_bind_blob(s, 17, in->embedding, (int)(4 * in->dimension), SQLITE_STATIC);
  else
    sqlite3_bind_null(s, 17);
  sqlite3_bind_int64(s, 18, (sqlite3_int64)v->hlc);
  sqlite3_bind_text(s, 19, v->node, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 20, bucket);
  int rc = sqlite3_step(s);
  int ext = sqlite3_extended_errcode(c->db);
  store_stmt_done(s);
  if (rc == SQLITE_DONE) return 0;
  if (ext == SQLITE_CONSTRAINT_CHECK) {
    store_set_err(err, errlen, "%s", "metadata must be a JSON object");
    return -EINVAL;
  }
  store_set_err(err, errlen, "sqlite insert: %s", sqlite3_errmsg(c->db));
  return -EIO;
}

/* check_input and the tags' JSON (*tags: the caller frees). */
static int prepare_put(const syn_shard_input *in, char ih[65], syn_store_change *chg, char **tags,
                       char *err, size_t errlen) {
  double norm;
  memset(chg, 0, sizeof *chg);
  int rc = check_input(in, ih, chg->model_key, &norm, err, errlen);
  if (rc) return rc;
  bool bad = false;
  *tags = syn_store_tags_json(in->tags, in->tag_count, &bad);
  if (!*tags) {
    if (bad)
      snprintf(err, errlen, "at most %d tags of 1..%d bytes without control characters or ','",
               SYN_SHARD_MAX_TAGS, SYN_SHARD_MAX_TAG);
    else
      store_set_err(err, errlen, "%s", "out of memory");
    return bad ? -EINVAL : -ENOMEM;
  }
  chg->norm = (float)norm;
  return 0;
}

/* What is stored for ih, and whether v is newer than it (chg->existed, chg->applied). */
static int find_against(store_conn *c, const char *ih, const syn_version *v, syn_store_change *chg,
                        store_current *cur) {
  int rc = store_find_current(c, ih, chg, cur);
  chg->existed = cur->found_record;
  chg->applied = rc == 0 && newer_than_current(cur, v);
  return rc;
}

/* The put itself, inside an open write transaction (write_mu held). */
static int put_in_txn(syn_store *st, const syn_shard_input *in, const char *ih, const char *tags,
                      const syn_version *v, syn_store_change *chg, store_digest_txn *t, char *err,
                      size_t errlen) {
  uint32_t bucket = store_bucket_of(st, ih);
  store_conn *c = &st->writer;
  store_current cur;
  int rc = find_against(c, ih, v, chg, &cur);
  if (rc == 0 && chg->applied) {
    chg->created_at_ms = in->created_at_ms > 0   ? in->created_at_ms
                         : cur.created_at_ms > 0 ? cur.created_at_ms
                                                 : syn_hlc_ms(v->hlc);
    rc = remove_current(st, c, ih, bucket, &cur, chg, t);
    if (rc == 0) rc = put_insert(c, in, ih, tags, chg, v, bucket, err, errlen);
    if (rc == 0) chg->id = sqlite3_last_insert_rowid(c->db);
    if (rc == 0) rc = store_digest_xor(st, t, bucket, syn_record_digest(ih, v, false));
  }
  if (rc == 0 && !chg->applied) chg->old_id = 0; /* nothing changed for the indexes */
  return rc;
}

int syn_store_put(syn_store *st, const syn_shard_input *in, const syn_version *v,
                  syn_store_change *chg, char *err, size_t errlen) {
  char ih[65], *tags = NULL;
  int rc = prepare_put(in, ih, chg, &tags, err, errlen);
  if (rc) return rc;
  store_digest_txn t = {0};
  pthread_mutex_lock(&st->write_mu);
  store_conn *c = &st->writer;
  rc = store_run(c, ST_BEGIN);
  if (rc == 0) rc = put_in_txn(st, in, ih, tags, v, chg, &t, err, errlen);
  rc = finish_write(st, c, rc, &t, err, errlen);
  pthread_mutex_unlock(&st->write_mu);
  free(tags);
  return rc;
}

static int put_tombstone(store_conn *c, const char *ih, uint32_t bucket, const syn_version *v,
                         int64_t now_ms) {
  sqlite3_stmt *s = store_stmt(c, ST_TOMB_PUT);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, ih, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, bucket);
  sqlite3_bind_int64(s, 3, (sqlite3_int64)v->hlc);
  sqlite3_bind_text(s, 4, v->node, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 5, now_ms);
  int rc = sqlite3_step(s);
  store_stmt_done(s);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

/* The delete itself, inside an open write transaction (write_mu held). */
static int delete_in_txn(syn_store *st, const char *ih, const syn_version *v, int64_t now_ms,
                         syn_store_change *chg, store_digest_txn *t) {
  uint32_t bucket = store_bucket_of(st, ih);
  store_conn *c = &st->writer;
  store_current cur;
  int rc = find_against(c, ih, v, chg, &cur);
  if (rc == 0 && chg->applied) {
    rc = remove_current(st, c, ih, bucket, &cur, chg, t);
    if (rc == 0) rc = put_tombstone(c, ih, bucket, v, now_ms);
    if (rc == 0) rc = store_digest_xor(st, t, bucket, syn_record_digest(ih, v, true));
  }
  if (rc == 0 && (!chg->applied || !cur.found_record)) chg->old_id = 0;
  return rc;
}

int syn_store_delete(syn_store *st, const char *info_hash, const syn_version *v, int64_t now_ms,
                     syn_store_change *chg) {
  char ih[65];
  memset(chg, 0, sizeof *chg);
  if (syn_info_hash_normalize(info_hash, ih) != 0) return -EINVAL;
  store_digest_txn t = {0};
  pthread_mutex_lock(&st->write_mu);
  store_conn *c = &st->writer;
  int rc = store_run(c, ST_BEGIN);
  if (rc == 0) rc = delete_in_txn(st, ih, v, now_ms, chg, &t);
  rc = finish_write(st, c, rc, &t, NULL, 0);
  pthread_mutex_unlock(&st->write_mu);
  return rc;
}

/* ---- batches: many replica writes in one transaction ------------------------------ */

int syn_store_batch_begin(syn_store *st) {
  store_digest_txn *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  pthread_mutex_lock(&st->write_mu);
  int rc = store_run(&st->writer, ST_BEGIN);
  if (rc) {
    pthread_mutex_unlock(&st->write_mu);
    free(t);
    return rc;
  }
  st->batch = t;
  return 0;
}

/* One record of a batch runs in a savepoint: a failure undoes that record alone, in
 * SQLite and in the batch's digest changes. */
static int record_begin(syn_store *st, store_digest_txn *undo) {
  int rc = store_digest_copy(undo, st->batch);
  return rc ? rc : store_run(&st->writer, ST_SAVEPOINT);
}

static int record_end(syn_store *st, int rc, store_digest_txn *undo) {
  if (rc != 0) {
    store_run(&st->writer, ST_ROLLBACK_TO);
    store_digest_copy(st->batch, undo); /* shrinks or keeps its size: cannot fail */
  }
  int released = store_run(&st->writer, ST_RELEASE);
  store_digest_free(undo);
  return rc ? rc : released;
}

int syn_store_batch_put(syn_store *st, const syn_shard_input *in, const syn_version *v,
                        syn_store_change *chg, char *err, size_t errlen) {
  char ih[65], *tags = NULL;
  int rc = prepare_put(in, ih, chg, &tags, err, errlen);
  if (rc) return rc;
  store_digest_txn undo = {0};
  rc = record_begin(st, &undo);
  if (rc == 0) rc = put_in_txn(st, in, ih, tags, v, chg, st->batch, err, errlen);
  rc = record_end(st, rc, &undo);
  free(tags);
  return rc;
}

int syn_store_batch_delete(syn_store *st, const char *info_hash, const syn_version *v,
                           int64_t now_ms, syn_store_change *chg) {
  char ih[65];
  memset(chg, 0, sizeof *chg);
  if (syn_info_hash_normalize(info_hash, ih) != 0) return -EINVAL;
  store_digest_txn undo = {0};
  int rc = record_begin(st, &undo);
  if (rc == 0) rc = delete_in_txn(st, ih, v, now_ms, chg, st->batch);
  return record_end(st, rc, &undo);
}

int syn_store_batch_end(syn_store *st) {
  store_digest_txn *t = st->batch;
  st->batch = NULL;
  int rc = finish_write(st, &st->writer, 0, t, NULL, 0);
  pthread_mutex_unlock(&st->write_mu);
  free(t);
  return rc;
}

int syn_store_forget(syn_store *st, const char *info_hash, syn_store_change *chg) {
  char ih[65];
  memset(chg, 0, sizeof *chg);
  if (syn_info_hash_normalize(info_hash, ih) != 0) return -EINVAL;
  uint32_t bucket = store_bucket_of(st, ih);
  store_digest_txn t = {0};
  store_current cur;
  pthread_mutex_lock(&st->write_mu);
  store_conn *c = &st->writer;
  int rc = store_run(c, ST_BEGIN);
  if (rc == 0) rc = store_find_current(c, ih, chg, &cur);
  chg->existed = cur.found_record;
  if (rc == 0 && !cur.found_record && !cur.found_tomb) rc = -ENOENT;
  if (rc == 0) rc = remove_current(st, c, ih, bucket, &cur, chg, &t);
  if (!cur.found_record) chg->old_id = 0;
  rc = finish_write(st, c, rc, &t, NULL, 0);
  pthread_mutex_unlock(&st->write_mu);
  return rc;
}

int store_purge_one(syn_store *st, const char *ih, int64_t older_than_ms, bool *purged) {
  syn_store_change chg = {0};
  uint32_t bucket = store_bucket_of(st, ih);
  store_digest_txn t = {0};
  store_current cur;
  *purged = false;
  pthread_mutex_lock(&st->write_mu);
  store_conn *c = &st->writer;
  int rc = store_run(c, ST_BEGIN);
  if (rc == 0) rc = store_find_current(c, ih, &chg, &cur);
  if (rc == 0 && cur.found_tomb && !cur.found_record && cur.tomb_deleted_at_ms < older_than_ms) {
    rc = remove_current(st, c, ih, bucket, &cur, &chg, &t);
    *purged = rc == 0;
  }
  rc = finish_write(st, c, rc, &t, NULL, 0);
  if (rc) *purged = false;
  pthread_mutex_unlock(&st->write_mu);
  return rc;
}

/* ---- reads ----------------------------------------------------------------------- */

static char *col_dup(sqlite3_stmt *s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return NULL;
  const char *t = (const char *)sqlite3_column_text(s, i);
  return strdup(t ? t : "");
}

static int64_t col_int_or_absent(sqlite3_stmt *s, int i) {
  return sqlite3_column_type(s, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, i);
}

static int parse_tags(store_conn *c, const char *json, syn_shard *out) {
  sqlite3_stmt *s = store_stmt(c, ST_JSON_EACH);
  if (!s) return -EIO;
  sqlite3_bind_text(s, 1, json ? json : "[]", -1, SQLITE_STATIC);
  int rc, ret = 0;
  size_t cap = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW && out->tag_count < SYN_SHARD_MAX_TAGS) {
    if (out->tag_count == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      char **nt = realloc(out->tags, ncap * sizeof *nt);
      if (!nt) {
        ret = -ENOMEM;
        break;
      }
      out->tags = nt, cap = ncap;
    }
    if (!(out->tags[out->tag_count] = col_dup(s, 0))) {
      ret = -ENOMEM;
      break;
    }
    out->tag_count++;
  }
  if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE) ret = -EIO;
  store_stmt_done(s);
  return ret;
}

/* Fills out from a row of RECORD_COLS [, embedding]. */
static int read_record(store_conn *c, sqlite3_stmt *s, bool with_embedding, syn_shard *out) {
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(s, 0);
  const char *ih = (const char *)sqlite3_column_text(s, 1);
  snprintf(out->info_hash, sizeof out->info_hash, "%s", ih ? ih : "");
  out->model_key = col_dup(s, 2);
  out->dimension = (uint32_t)sqlite3_column_int64(s, 3);
  out->created_at_ms = sqlite3_column_int64(s, 4);
  out->updated_at_ms = sqlite3_column_int64(s, 5);
  out->display_name = col_dup(s, 6);
  out->model = col_dup(s, 7);
  out->file_size = col_int_or_absent(s, 9);
  out->entry_count = col_int_or_absent(s, 10);
  out->creator_agent_id = col_dup(s, 11);
  out->creator_public_key = col_dup(s, 12);
  out->signature = col_dup(s, 13);
  out->description = col_dup(s, 14);
  out->metadata_json = col_dup(s, 15);
  if (!out->model_key || !out->display_name || !out->model) return -ENOMEM;
  read_version(s, 17, &out->version);
  if (with_embedding) {
    size_t bytes = (size_t)sqlite3_column_bytes(s, 19);
    const void *blob = sqlite3_column_blob(s, 19);
    if (!blob && sqlite3_column_type(s, 19) == SQLITE_NULL)
      bytes = 0; /* no embedding */
    else if (bytes != 4 * (size_t)out->dimension || !blob)
      return -EIO;
    if (bytes && !(out->embedding = malloc(bytes))) return -ENOMEM;
    if (bytes) memcpy(out->embedding, blob, bytes);
  }
  char *tags = col_dup(s, 8);
  int rc = parse_tags(c, tags, out);
  free(tags);
  return rc;
}

void syn_shard_free(syn_shard *s) {
  if (!s) return;
  free(s->display_name);
  free(s->model);
  free(s->model_key);
  for (size_t i = 0; i < s->tag_count; i++) free(s->tags[i]);
  free(s->tags);
  free(s->description);
  free(s->metadata_json);
  free(s->creator_agent_id);
  free(s->creator_public_key);
  free(s->signature);
  free(s->embedding);
  memset(s, 0, sizeof *s);
}

static int get_record(syn_store *st, syn_store_reader *r, enum stmt_id id, const char *hash,
                      int64_t rowid, bool with_embedding, syn_shard *out) {
  memset(out, 0, sizeof *out);
  store_conn *c = store_conn_use(st, r);
  sqlite3_stmt *s = store_stmt(c, id);
  int rc = -EIO;
  if (s) {
    if (hash)
      sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    else
      sqlite3_bind_int64(s, 1, rowid);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
      rc = read_record(c, s, with_embedding, out);
    else
      rc = step == SQLITE_DONE ? -ENOENT : -EIO;
    store_stmt_done(s);
  }
  store_conn_done(st, r, c);
  if (rc) syn_shard_free(out);
  return rc;
}

int syn_store_get(syn_store *st, const char *info_hash, bool with_embedding, syn_shard *out) {
  char ih[65];
  if (syn_info_hash_normalize(info_hash, ih) != 0) {
    memset(out, 0, sizeof *out);
    return -EINVAL;
  }
  return get_record(st, NULL, with_embedding ? ST_GET_HASH_EMB : ST_GET_HASH, ih, 0, with_embedding,
                    out);
}

int syn_store_get_by_id(syn_store *st, int64_t id, bool with_embedding, syn_shard *out) {
  return get_record(st, NULL, with_embedding ? ST_GET_ID_EMB : ST_GET_ID, NULL, id, with_embedding,
                    out);
}
int syn_store_reader_get_by_id(syn_store *st, syn_store_reader *r, int64_t id, bool with_embedding,
                               syn_shard *out) {
  return get_record(st, r, with_embedding ? ST_GET_ID_EMB : ST_GET_ID, NULL, id, with_embedding,
                    out);
}

int64_t syn_store_count(syn_store *st) {
  store_conn *c = store_reader_acquire(st);
  sqlite3_stmt *s = store_stmt(c, ST_COUNT);
  int64_t n = -EIO;
  if (s && sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
  store_stmt_done(s);
  store_reader_release(st, c);
  return n;
}

int syn_store_list_ids(syn_store *st, syn_store_reader *r, int64_t after_id, size_t max,
                       int64_t *ids, size_t *n) {
  *n = 0;
  store_conn *c = store_conn_use(st, r);
  sqlite3_stmt *s = store_stmt(c, ST_LIST_IDS);
  int rc = s ? 0 : -EIO;
  if (s) {
    sqlite3_bind_int64(s, 1, after_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int step = SQLITE_DONE;
    while (*n < max && (step = sqlite3_step(s)) == SQLITE_ROW)
      ids[(*n)++] = sqlite3_column_int64(s, 0);
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = -EIO, *n = 0;
  }
  store_stmt_done(s);
  store_conn_done(st, r, c);
  return rc;
}

int syn_store_collections(syn_store *st, syn_store_collection **out, size_t *n) {
  *out = NULL;
  *n = 0;
  store_conn *c = store_reader_acquire(st);
  sqlite3_stmt *s = store_stmt(c, ST_COLLECTIONS);
  int rc = s ? 0 : -EIO, step = SQLITE_DONE;
  size_t cap = 0;
  while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      syn_store_collection *nc = realloc(*out, ncap * sizeof *nc);
      if (!nc) {
        rc = -ENOMEM;
        break;
      }
      *out = nc, cap = ncap;
    }
    syn_store_collection *col = &(*out)[*n];
    const char *mk = (const char *)sqlite3_column_text(s, 0);
    snprintf(col->model_key, sizeof col->model_key, "%s", mk ? mk : "");
    col->dimension = (uint32_t)sqlite3_column_int64(s, 1);
    col->count = sqlite3_column_int64(s, 2);
    col->id_sum = sqlite3_column_int64(s, 3);
    if (col->dimension > 0 && col->dimension <= SYN_SHARD_MAX_DIM) (*n)++;
  }
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(s);
  store_reader_release(st, c);
  if (rc) {
    free(*out);
    *out = NULL;
    *n = 0;
  }
  return rc;
}

/* Copies a stored embedding (possibly unaligned) into unit and normalises it. false for
 * a malformed row. */
static bool row_unit(const void *blob, size_t bytes, double norm, uint32_t dim, float *unit) {
  if (!blob || bytes != 4 * (size_t)dim || !(norm > 0) || !isfinite(norm)) return false;
  memcpy(unit, blob, bytes);
  float inv = (float)(1.0 / norm);
  for (uint32_t i = 0; i < dim; i++) unit[i] *= inv;
  return true;
}

uint64_t syn_store_corrupt_rows(syn_store *st) { return atomic_load(&st->corrupt); }

int syn_store_scan_vectors(syn_store *st, const char *model_key, uint32_t dim,
                           syn_store_vector_fn fn, void *ctx) {
  float *unit = malloc(4 * (size_t)dim);
  if (!unit) return -ENOMEM;
  store_conn *c = store_reader_acquire(st);
  sqlite3_stmt *s = store_stmt(c, ST_SCAN_VECTORS);
  int rc = s ? 0 : -EIO, step = SQLITE_DONE;
  if (s) {
    sqlite3_bind_text(s, 1, model_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, dim);
  }
  while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(s, 2);
    size_t bytes = (size_t)sqlite3_column_bytes(s, 2);
    if (!row_unit(blob, bytes, sqlite3_column_double(s, 1), dim, unit)) {
      atomic_fetch_add(&st->corrupt, 1);
      continue;
    }
    rc = fn(ctx, sqlite3_column_int64(s, 0), unit);
  }
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(s);
  store_reader_release(st, c);
  free(unit);
  return rc;
}

int syn_store_scan_ids(syn_store *st, const char *model_key, uint32_t dim, syn_store_id_fn fn,
                       void *ctx) {
  store_conn *c = store_reader_acquire(st);
  sqlite3_stmt *s = store_stmt(c, ST_SCAN_IDS);
  int rc = s ? 0 : -EIO, step = SQLITE_DONE;
  if (s) {
    sqlite3_bind_text(s, 1, model_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, dim);
  }
  while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW)
    rc = fn(ctx, sqlite3_column_int64(s, 0));
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(s);
  store_reader_release(st, c);
  return rc;
}

int syn_store_scan_partitions(syn_store *st, syn_store_partition_fn fn, void *ctx) {
  store_conn *c = store_reader_acquire(st);
  sqlite3_stmt *s = store_stmt(c, ST_SCAN_PARTITIONS);
  int rc = s ? 0 : -EIO, step = SQLITE_DONE;
  while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW)
    rc = fn(ctx, sqlite3_column_int64(s, 0), (uint32_t)sqlite3_column_int64(s, 1) / st->buckets);
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(s);
  store_reader_release(st, c);
  return rc;
}

int syn_store_get_vector(syn_store *st, int64_t id, uint32_t dim, float *unit) {
  store_conn *c = store_reader_acquire(st);
  sqlite3_stmt *s = store_stmt(c, ST_GET_VECTOR);
  int rc = -EIO;
  if (s) {
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
      bool ok = (uint32_t)sqlite3_column_int64(s, 0) == dim &&
                row_unit(sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                         sqlite3_column_double(s, 1), dim, unit);
      if (!ok) atomic_fetch_add(&st->corrupt, 1);
      rc = ok ? 0 : -EIO;
    } else {
      rc = step == SQLITE_DONE ? -ENOENT : -EIO;
    }
    store_stmt_done(s);
  }
  store_reader_release(st, c);
  return rc;
}

/* ---- search support -------------------------------------------------------------- */

static float dot(const float *a, const float *b, uint32_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  uint32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

int syn_store_probe_rows(syn_store *st, syn_store_reader *r, const char *tags_json,
                         const float *qunit, uint32_t dim, syn_store_probe *items, size_t n) {
  float *unit = qunit ? malloc(4 * (size_t)dim) : NULL;
  if (qunit && !unit) return -ENOMEM;
  store_conn *c = store_conn_use(st, r);
  sqlite3_stmt *s = store_stmt(c, qunit ? ST_PROBE_EMB : ST_PROBE);
  int rc = s ? 0 : -EIO;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    syn_store_probe *p = &items[i];
    p->exists = p->matches = false;
    p->cosine = -1;
    sqlite3_bind_int64(s, 1, p->id);
    bind_text_or_null(s, 2, tags_json);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
      p->exists = true;
      p->matches = sqlite3_column_int(s, 0) != 0;
      if (qunit) {
        bool ok = (uint32_t)sqlite3_column_int64(s, 1) == dim &&
                  row_unit(sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3),
                           sqlite3_column_double(s, 2), dim, unit);
        if (ok)
          p->cosine = dot(qunit, unit, dim);
        else
          p->exists = false, atomic_fetch_add(&st->corrupt, 1);
      }
    } else if (step != SQLITE_DONE) {
      rc = -EIO;
    }
    sqlite3_reset(s);
  }
  store_stmt_done(s);
  store_conn_done(st, r, c);
  free(unit);
  return rc;
}

int syn_store_count_tagged(syn_store *st, syn_store_reader *r, const char *tags_json, int64_t cap,
                           int64_t *count) {
  store_conn *c = store_conn_use(st, r);
  sqlite3_stmt *s = store_stmt(c, ST_COUNT_TAGGED);
  int rc = -EIO;
  if (s) {
    sqlite3_bind_text(s, 1, tags_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, cap);
    if (sqlite3_step(s) == SQLITE_ROW) {
      *count = sqlite3_column_int64(s, 0);
      rc = 0;
    }
    store_stmt_done(s);
  }
  store_conn_done(st, r, c);
  return rc;
}

/* Bounded min-heap of the best `cap` scored ids: the root is the worst kept. */
typedef struct topk {
  syn_scored *v;
  size_t n, cap;
} topk;

static bool scored_worse(const syn_scored *a, const syn_scored *b) {
  return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void topk_sift_down(topk *h, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && scored_worse(&h->v[l], &h->v[m])) m = l;
    if (r < h->n && scored_worse(&h->v[r], &h->v[m])) m = r;
    if (m == i) return;
    syn_scored t = h->v[i];
    h->v[i] = h->v[m];
    h->v[m] = t;
    i = m;
  }
}

static void topk_push(topk *h, int64_t id, double score) {
  syn_scored x = {id, score};
  if (h->n < h->cap) {
    size_t i = h->n++;
    h->v[i] = x;
    while (i > 0 && scored_worse(&h->v[i], &h->v[(i - 1) / 2])) {
      size_t p = (i - 1) / 2;
      syn_scored t = h->v[i];
      h->v[i] = h->v[p];
      h->v[p] = t;
      i = p;
    }
  } else if (h->cap && scored_worse(&h->v[0], &x)) {
    h->v[0] = x;
    topk_sift_down(h, 0);
  }
}

static int scored_cmp_desc(const void *pa, const void *pb) {
  const syn_scored *a = pa, *b = pb;
  if (scored_worse(a, b)) return 1;
  if (scored_worse(b, a)) return -1;
  return 0;
}

/* Binds PART_FILTER's two parameters, from `first`. */
static void bind_partitions(const syn_store *st, sqlite3_stmt *s, int first, const uint8_t *parts) {
  if (parts)
    sqlite3_bind_blob(s, first, parts, (int)((st->partitions + 7) / 8), SQLITE_STATIC);
  else
    sqlite3_bind_null(s, first);
  sqlite3_bind_int64(s, first + 1, st->buckets);
}

int syn_store_exact_search(syn_store *st, syn_store_reader *r, const char *model_key, uint32_t dim,
                           const char *tags_json, const uint8_t *parts, const float *qunit,
                           double min_cosine, size_t limit, syn_scored *out, size_t *n) {
  *n = 0;
  float *unit = malloc(4 * (size_t)dim);
  if (!unit) return -ENOMEM;
  topk h = {out, 0, limit};
  store_conn *c = store_conn_use(st, r);
  sqlite3_stmt *s = store_stmt(c, tags_json ? ST_EXACT_TAGGED : ST_EXACT_ALL);
  int rc = s ? 0 : -EIO, step = SQLITE_DONE;
  if (s) {
    sqlite3_bind_text(s, 1, model_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, dim);
    if (tags_json) sqlite3_bind_text(s, 3, tags_json, -1, SQLITE_STATIC);
    bind_partitions(st, s, 4, parts);
  }
  while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
    if (!row_unit(sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                  sqlite3_column_double(s, 1), dim, unit)) {
      atomic_fetch_add(&st->corrupt, 1);
      continue;
    }
    double cos = dot(qunit, unit, dim);
    if (cos >= min_cosine) topk_push(&h, sqlite3_column_int64(s, 0), cos);
  }
  if (rc == 0 && step != SQLITE_DONE) rc = -EIO;
  store_stmt_done(s);
  store_conn_done(st, r, c);
  free(unit);
  qsort(out, h.n, sizeof *out, scored_cmp_desc);
  *n = rc == 0 ? h.n : 0;
  return rc;
}

/* ---- full text ------------------------------------------------------------------- */

static bool term_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* Whether the term b[0..n) is among the first `count` kept terms (ASCII case ignored). */
static bool term_seen(const unsigned char *const *tb, const size_t *tn, int count,
                      const unsigned char *b, size_t n) {
  for (int i = 0; i < count; i++)
    if (tn[i] == n && strncasecmp((const char *)tb[i], (const char *)b, n) == 0) return true;
  return false;
}

/* Splits text into at most max terms (start, length), duplicates dropped, stopwords
 * dropped when skip_stop. Returns the count. */
static int fts_terms(const unsigned char *p, bool skip_stop, const unsigned char **tb, size_t *tn,
                     int max) {
  enum { MAX_TERM = 64 };
  int terms = 0;
  while (*p && terms < max) {
    while (*p && !term_byte(*p)) p++;
    const unsigned char *b = p;
    while (*p && term_byte(*p)) p++;
    size_t n = (size_t)(p - b);
    if (n == 0) break;
    if (n > MAX_TERM) { /* cut on a UTF-8 character boundary */
      n = MAX_TERM;
      while (n > 0 && (b[n] & 0xC0) == 0x80) n--;
      if (n == 0) continue;
    }
    if (skip_stop && syn_rank_stopword((const char *)b, n)) continue;
    if (term_seen(tb, tn, terms, b, n)) continue;
    tb[terms] = b;
    tn[terms++] = n;
  }
  return terms;
}

int syn_fts_query(const char *text, char *out, size_t cap) {
  enum { MAX_TERMS = 32 };
  if (!out || cap == 0) return -ENOSPC;
  out[0] = '\0';
  if (!text) return 0;
  const unsigned char *tb[MAX_TERMS];
  size_t tn[MAX_TERMS];
  int terms = fts_terms((const unsigned char *)text, true, tb, tn, MAX_TERMS);
  if (terms == 0) /* only stopwords ("the who"): they are what is asked for */
    terms = fts_terms((const unsigned char *)text, false, tb, tn, MAX_TERMS);
  size_t len = 0;
  for (int i = 0; i < terms; i++) {
    size_t need = (i ? 4 : 0) + tn[i] + 2;
    if (len + need + 1 > cap) return -ENOSPC;
    if (i) memcpy(out + len, " OR ", 4), len += 4;
    out[len++] = '"';
    memcpy(out + len, tb[i], tn[i]), len += tn[i];
    out[len++] = '"';
    out[len] = '\0';
  }
  return terms;
}

int syn_store_text_search(syn_store *st, syn_store_reader *r, const char *fts_query,
                          const char *model_key, const char *tags_json, const uint8_t *parts,
                          size_t limit, syn_scored *out, size_t *n) {
  *n = 0;
  store_conn *c = store_conn_use(st, r);
  sqlite3_stmt *s = store_stmt(c, ST_TEXT);
  int rc = s ? 0 : -EIO, step = SQLITE_DONE;
  if (s) {
    sqlite3_bind_text(s, 1, fts_query, -1, SQLITE_STATIC);
    bind_text_or_null(s, 2, model_key);
    bind_text_or_null(s, 3, tags_json);
    sqlite3_bind_int64(s, 4, (int64_t)limit);
    bind_partitions(st, s, 5, parts);
  }
  while (rc == 0 && *n < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
    out[*n].id = sqlite3_column_int64(s, 0);
    out[*n].score = sqlite3_column_double(s, 1); /* coverage; bm25 only breaks ties */
    (*n)++;
  }
  if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
    rc = sqlite3_errcode(c->db) == SQLITE_ERROR ? -EINVAL : -EIO;
  store_stmt_done(s);
  store_conn_done(st, r, c);
  if (rc) *n = 0;
  return rc;
}
