/* sqlite_claims.c — the claim store in the SQLite transport's bus database (see claim.h),
 * the default on that transport: a table claims(key, body, sha256, created_at, pinned) in
 * the same file, reached through a connection of its own (the transport's statements and
 * transactions are not disturbed). Bodies go in and out through incremental blob I/O
 * (zeroblob, then sqlite3_blob_write / sqlite3_blob_read in 1 MiB pieces), so SQLite
 * never builds a second copy of a 64 MiB body in memory. created_at is when retention
 * began (µs); pinned counts the parked copies of its message.
 * Never: touches the messages tables, or opens a database the transport has not created. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/sqlite.h"

#define PIECE (1 << 20)
#define BUSY_MS 10000

typedef struct sqlite_claims {
  mb_claim_store base;
  sqlite3 *db;
} sqlite_claims;

static int db_fail(sqlite_claims *c, mb_err *err, const char *what) {
  return mb_err_set(err, MB_EIO, "%s: %s while %s", c->base.where, sqlite3_errmsg(c->db), what);
}

static int exec(sqlite_claims *c, const char *sql, mb_err *err, const char *what) {
  return sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK ? MB_OK : db_fail(c, err, what);
}

/* Runs sql (one statement) with text/int64 parameters: "t" and "i" in kinds. */
static int run(sqlite_claims *c, const char *sql, const char *kinds, const char *const *texts,
               const int64_t *ints, mb_err *err, const char *what) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(c, err, what);
  int ok = 1;
  for (int i = 0; ok && kinds[i]; i++)
    ok = (kinds[i] == 't' ? sqlite3_bind_text(st, i + 1, texts[i], -1, SQLITE_STATIC)
                          : sqlite3_bind_int64(st, i + 1, ints[i])) == SQLITE_OK;
  int rc = ok && sqlite3_step(st) == SQLITE_DONE ? MB_OK : db_fail(c, err, what);
  sqlite3_finalize(st);
  return rc;
}

static int write_blob(sqlite_claims *c, sqlite3_int64 row, const char *body, size_t len,
                      mb_err *err) {
  sqlite3_blob *b;
  if (sqlite3_blob_open(c->db, "main", "claims", "body", row, 1, &b) != SQLITE_OK)
    return db_fail(c, err, "opening a claim's body");
  int ok = 1;
  for (size_t at = 0; ok && at < len; at += PIECE) {
    int n = (int)(len - at < PIECE ? len - at : PIECE);
    ok = sqlite3_blob_write(b, body + at, n, (int)at) == SQLITE_OK;
  }
  int rc = ok ? MB_OK : db_fail(c, err, "writing a claim's body");
  sqlite3_blob_close(b);
  return rc;
}

static int insert(sqlite_claims *c, const char *key, size_t len, const char *sha256, int64_t at,
                  sqlite3_int64 *row, mb_err *err) {
  sqlite3_stmt *st;
  const char *sql = "INSERT INTO claims(key, body, sha256, created_at, pinned) "
                    "VALUES (?1, zeroblob(?2), ?3, ?4, 0)";
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
    return db_fail(c, err, "storing a claim");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)len);
  sqlite3_bind_text(st, 3, sha256, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, at);
  int rc = sqlite3_step(st) == SQLITE_DONE ? MB_OK : db_fail(c, err, "storing a claim");
  sqlite3_finalize(st);
  *row = sqlite3_last_insert_rowid(c->db);
  return rc;
}

static int sq_put(mb_claim_store *s, const char *key, const char *body, size_t len,
                  const char *sha256, int64_t not_before_usec, mb_err *err) {
  sqlite_claims *c = (sqlite_claims *)s;
  sqlite3_int64 row = 0;
  if (len > INT32_MAX) return mb_err_set(err, MB_ETOOBIG, "a claim holds at most 2 GiB");
  int rc = exec(c, "BEGIN IMMEDIATE", err, "storing a claim");
  if (rc != MB_OK) return rc;
  rc = insert(c, key, len, sha256, not_before_usec, &row, err);
  if (rc == MB_OK && len > 0) rc = write_blob(c, row, body, len, err);
  if (rc == MB_OK) return exec(c, "COMMIT", err, "storing a claim");
  sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

/* The row and size of key's claim: MB_OK, MB_ENOTFOUND or an error. */
static int find(sqlite_claims *c, const char *key, sqlite3_int64 *row, size_t *len, mb_err *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT rowid, length(body) FROM claims WHERE key = ?1", -1, &st,
                         NULL) != SQLITE_OK)
    return db_fail(c, err, "looking up a claim");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int step = sqlite3_step(st), rc = MB_OK;
  if (step == SQLITE_ROW) {
    *row = sqlite3_column_int64(st, 0);
    *len = (size_t)sqlite3_column_int64(st, 1);
  } else if (step == SQLITE_DONE) rc = mb_err_set(err, MB_ENOTFOUND, "no claim %s", key);
  else rc = db_fail(c, err, "looking up a claim");
  sqlite3_finalize(st);
  return rc;
}

static int read_blob(sqlite_claims *c, sqlite3_int64 row, char *buf, size_t len, mb_err *err) {
  sqlite3_blob *b;
  if (sqlite3_blob_open(c->db, "main", "claims", "body", row, 0, &b) != SQLITE_OK)
    return db_fail(c, err, "opening a claim's body");
  int ok = (size_t)sqlite3_blob_bytes(b) == len;
  for (size_t at = 0; ok && at < len; at += PIECE) {
    int n = (int)(len - at < PIECE ? len - at : PIECE);
    ok = sqlite3_blob_read(b, buf + at, n, (int)at) == SQLITE_OK;
  }
  int rc = ok ? MB_OK : db_fail(c, err, "reading a claim's body");
  sqlite3_blob_close(b);
  return rc;
}

static int sq_get(mb_claim_store *s, const char *key, size_t max, char **body, size_t *len,
                  mb_err *err) {
  sqlite_claims *c = (sqlite_claims *)s;
  sqlite3_int64 row = 0;
  size_t n = 0;
  int rc = exec(c, "BEGIN", err, "reading a claim"); /* one snapshot for lookup and read */
  if (rc != MB_OK) return rc;
  rc = find(c, key, &row, &n, err);
  if (rc == MB_OK && n > max) rc = mb_err_set(err, MB_ETOOBIG, "claim %s is %zu bytes", key, n);
  char *buf = rc == MB_OK ? malloc(n + 1) : NULL;
  if (rc == MB_OK && buf == NULL)
    rc = mb_err_set(err, MB_ENOMEM, "out of memory reading %s", key);
  if (rc == MB_OK && n > 0) rc = read_blob(c, row, buf, n, err);
  sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
  if (rc != MB_OK) {
    free(buf);
    return rc;
  }
  buf[n] = '\0';
  *body = buf;
  *len = n;
  return MB_OK;
}

static int sq_pin(mb_claim_store *s, const char *key, int delta, mb_err *err) {
  const char *texts[] = {NULL, key};
  const int64_t ints[] = {delta, 0};
  return run((sqlite_claims *)s, "UPDATE claims SET pinned = max(0, pinned + ?1) WHERE key = ?2",
             "it", texts, ints, err, "pinning a claim");
}

static int sq_touch(mb_claim_store *s, const char *key, int64_t usec, mb_err *err) {
  const char *texts[] = {NULL, key};
  const int64_t ints[] = {usec, 0};
  return run((sqlite_claims *)s, "UPDATE claims SET created_at = ?1 WHERE key = ?2", "it", texts,
             ints, err, "touching a claim");
}

static int sq_sweep(mb_claim_store *s, int64_t before_usec, size_t *removed, mb_err *err) {
  sqlite_claims *c = (sqlite_claims *)s;
  const int64_t ints[] = {before_usec};
  int rc = run(c, "DELETE FROM claims WHERE pinned = 0 AND created_at < ?1", "i", NULL, ints, err,
               "sweeping claims");
  *removed = rc == MB_OK ? (size_t)sqlite3_changes(c->db) : 0;
  return rc;
}

static void sq_close(mb_claim_store *s) {
  sqlite_claims *c = (sqlite_claims *)s;
  if (c->db) sqlite3_close(c->db);
  free(c);
}

static const mb_claim_store_ops sqlite_claim_ops = {sq_put,   sq_get,   sq_pin,
                                                    sq_touch, sq_sweep, sq_close};

static const char *schema = "PRAGMA synchronous=FULL;"
                            "CREATE TABLE IF NOT EXISTS claims ("
                            " key TEXT PRIMARY KEY, body BLOB NOT NULL, sha256 TEXT NOT NULL,"
                            " created_at INTEGER NOT NULL, pinned INTEGER NOT NULL DEFAULT 0);"
                            "CREATE INDEX IF NOT EXISTS claims_by_age ON claims(created_at)";

int mb_sqlite_claims_open(mb_claim_store **out, const char *url, mb_err *err) {
  *out = NULL;
  const char *p = url + strlen("sqlite://");
  size_t n = strcspn(p, "?");
  char path[4096];
  if (strncmp(url, "sqlite://", 9) != 0 || n == 0 || n >= sizeof path)
    return mb_err_set(err, MB_EINVAL, "'%s' is not a sqlite:// URL", url);
  snprintf(path, sizeof path, "%.*s", (int)n, p);
  sqlite_claims *c = calloc(1, sizeof *c);
  if (c == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  c->base.ops = &sqlite_claim_ops;
  snprintf(c->base.where, sizeof c->base.where, "sqlite://%.240s", path);
  int rc = MB_OK;
  if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK)
    rc = db_fail(c, err, "opening the bus database for claims");
  if (rc == MB_OK && sqlite3_busy_timeout(c->db, BUSY_MS) != SQLITE_OK)
    rc = db_fail(c, err, "setting a busy timeout");
  if (rc == MB_OK) rc = exec(c, schema, err, "creating the claims table");
  if (rc != MB_OK) {
    sq_close(&c->base);
    return rc;
  }
  *out = &c->base;
  return MB_OK;
}
