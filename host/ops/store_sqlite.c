/* store_sqlite.c — the ops store in one SQLite file (see store.h): the schema, ingesting
 * batches, the state changes of operations, retention, open and close. The read calls
 * (JSON answers) live in store_sqlite_read.c.
 *
 * Schema (version 2):
 *   messages(seq, id, source 'error'|'audit', endpoint, queue, host, type, kind,
 *            correlation_id, reply_to, conversation_id, related_to, origin, sent_at, at,
 *            exception, trace, group_id, group_title, status, attempts, headers (JSON),
 *            body, problem, edited_from, edited_to, ingested, changed (Unix seconds))
 *     one row per failed message id (unique), one per audit copy and endpoint (unique);
 *   history(message_id, at, what, who, detail): unique on (message_id, what, at), which
 *     is what makes ingesting a redelivered error copy a no-op;
 *   reports(id, endpoint, instance, host, at, ingested, headers, body, problem): moonbus.ops
 *     raw; instances, rollups and events: the monitoring (store_sqlite_monitor.c);
 *   search: FTS5 over messages' id, type, conversation, headers and body (external
 *     content, kept by triggers; the audit copies of a batch are indexed by one statement
 *     at its end: FTS5 writes its pending terms out at every statement that fires a
 *     trigger, which made one index segment per audit copy and half of ingestion's CPU).
 * auto_vacuum=INCREMENTAL, so that retention gives the space back to the file system.
 * Never: holds a transaction across calls, or builds SQL from input (every value is a
 * bound parameter). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "headers_json.h"
#include "ids.h"
#include "json.h"
#include "ops/fingerprint.h"
#include "ops/store_sqlite_internal.h"

#define BUSY_TIMEOUT_MS 10000
#define DEFAULT_PATH "./.moonbus/ops.db"

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS messages(seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
    " source TEXT NOT NULL, endpoint TEXT, queue TEXT, host TEXT, type TEXT, kind TEXT,"
    " correlation_id TEXT, reply_to TEXT, conversation_id TEXT, related_to TEXT, origin TEXT,"
    " sent_at TEXT, at TEXT, exception TEXT, trace TEXT, group_id TEXT, group_title TEXT,"
    " status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, headers TEXT NOT NULL,"
    " body TEXT, problem TEXT, edited_from TEXT, edited_to TEXT, ingested INTEGER NOT NULL,"
    " changed INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS errors_id ON messages(id) WHERE source = 'error';"
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_id ON messages(id, ifnull(endpoint, ''))"
    " WHERE source = 'audit';"
    "CREATE INDEX IF NOT EXISTS messages_status ON messages(source, status, at);"
    "CREATE INDEX IF NOT EXISTS messages_group ON messages(group_id) WHERE source = 'error';"
    "CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id);"
    "CREATE INDEX IF NOT EXISTS messages_ingested ON messages(source, ingested);"
    "CREATE TABLE IF NOT EXISTS history(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
    " at TEXT NOT NULL, what TEXT NOT NULL, who TEXT, detail TEXT,"
    " UNIQUE(message_id, what, at));"
    "CREATE TABLE IF NOT EXISTS reports(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    " endpoint TEXT, instance TEXT, host TEXT, at TEXT, ingested INTEGER NOT NULL,"
    " headers TEXT NOT NULL, body TEXT, problem TEXT);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(id, type, conversation_id, headers,"
    " body, content='messages', content_rowid='seq');"
    "DROP TRIGGER IF EXISTS messages_ai;" /* indexed audit copies too, one at a time */
    "CREATE TRIGGER IF NOT EXISTS messages_ai_error AFTER INSERT ON messages"
    " WHEN new.source <> 'audit' BEGIN"
    " INSERT INTO search(rowid, id, type, conversation_id, headers, body)"
    " VALUES(new.seq, new.id, new.type, new.conversation_id, new.headers, new.body); END;"
    "CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN"
    " INSERT INTO search(search, rowid, id, type, conversation_id, headers, body)"
    " VALUES('delete', old.seq, old.id, old.type, old.conversation_id, old.headers,"
    " old.body); END;"
    "CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE OF id, type, conversation_id,"
    " headers, body ON messages BEGIN"
    " INSERT INTO search(search, rowid, id, type, conversation_id, headers, body)"
    " VALUES('delete', old.seq, old.id, old.type, old.conversation_id, old.headers,"
    " old.body);"
    " INSERT INTO search(rowid, id, type, conversation_id, headers, body)"
    " VALUES(new.seq, new.id, new.type, new.conversation_id, new.headers, new.body); END;";

#define COLUMNS                                                                                  \
  "(id, source, endpoint, queue, host, type, kind, correlation_id, reply_to, conversation_id,"   \
  " related_to, origin, sent_at, at, exception, trace, group_id, group_title, status, headers,"  \
  " body, problem, edited_from, ingested, changed) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"   \
  " ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?24)"

static const char *const insert_error_sql =
    "INSERT INTO messages" COLUMNS " ON CONFLICT(id) WHERE source = 'error' DO UPDATE SET"
    " status = 'unresolved', attempts = attempts + 1, endpoint = excluded.endpoint,"
    " queue = excluded.queue, at = excluded.at, exception = excluded.exception,"
    " trace = excluded.trace, group_id = excluded.group_id,"
    " group_title = excluded.group_title, headers = excluded.headers, body = excluded.body,"
    " problem = excluded.problem, changed = excluded.changed";
static const char *const insert_audit_sql = "INSERT INTO messages" COLUMNS
                                            " ON CONFLICT DO NOTHING";
static const char *const history_sql =
    "INSERT OR IGNORE INTO history(message_id, at, what, who, detail) VALUES(?1, ?2, ?3, ?4, ?5)";
static const char *const resolve_sql =
    "UPDATE messages SET status = 'resolved', changed = ?3 WHERE source = 'error'"
    " AND id = ?1 AND queue = ?2 AND status IN ('unresolved', 'retrying')";
static const char *const max_seq_sql = "SELECT ifnull(max(seq), 0) FROM messages";
static const char *const index_audit_sql =
    "INSERT INTO search(rowid, id, type, conversation_id, headers, body)"
    " SELECT seq, id, type, conversation_id, headers, body FROM messages"
    " WHERE seq > ?1 AND source = 'audit'";

/* --- helpers shared with store_sqlite_read.c ---------------------------------------- */

int ops_sqlite_fail(ops_sqlite *s, int status, const char *what, mb_err *err) {
  return mb_err_set(err, status, "%s: %s (ops store %s)", what, sqlite3_errmsg(s->db), s->path);
}

int ops_sqlite_prepare(ops_sqlite *s, const char *sql, sqlite3_stmt **st, const char *what,
                       mb_err *err) {
  if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) == SQLITE_OK) return MB_OK;
  *st = NULL;
  return ops_sqlite_fail(s, MB_EIO, what, err);
}

int ops_sqlite_bind(sqlite3_stmt *st, int i, const char *v) {
  return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* A copy of text[0..n) in which each byte that is not part of valid UTF-8 (a body or header
 * from a foreign sender) is U+FFFD, so that every answer is valid JSON. */
static char *valid_utf8(const unsigned char *text, size_t n) {
  char *out = malloc(n * 3 + 1), *o = out;
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n;) {
    size_t len = mb_utf8_sequence(text + i, n - i);
    if (len) memcpy(o, text + i, len), o += len, i += len;
    else memcpy(o, "\xEF\xBF\xBD", 3), o += 3, i++;
  }
  *o = '\0';
  return out;
}

int ops_sqlite_json(ops_sqlite *s, sqlite3_stmt *st, char **json, const char *what, mb_err *err) {
  int rc = sqlite3_step(st), status = MB_OK;
  const unsigned char *text = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) status = ops_sqlite_fail(s, MB_EIO, what, err);
  else if (text == NULL) status = mb_err_set(err, MB_ENOTFOUND, "%s: not found", what);
  else if ((*json = valid_utf8(text, (size_t)sqlite3_column_bytes(st, 0))) == NULL)
    status = mb_err_set(err, MB_ENOMEM, "%s: out of memory", what);
  sqlite3_finalize(st);
  return status;
}

static int exec_sql(ops_sqlite *s, const char *sql, const char *what, mb_err *err) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK) return MB_OK;
  int rc = mb_err_set(err, MB_EIO, "%s: %s (ops store %s)", what, msg ? msg : "?", s->path);
  sqlite3_free(msg);
  return rc;
}

int ops_sqlite_step(ops_sqlite *s, sqlite3_stmt *st, const char *what, mb_err *err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? MB_OK : ops_sqlite_fail(s, MB_EIO, what, err);
}

/* --- ingesting ------------------------------------------------------------------------ */

/* The statements of one ingest transaction. */
typedef struct batch {
  sqlite3_stmt *error, *audit, *history, *resolve;
  int64_t now;
  char now_iso[MB_TIME_LEN + 1];
} batch;

static void batch_finalize(batch *b) {
  sqlite3_finalize(b->error);
  sqlite3_finalize(b->audit);
  sqlite3_finalize(b->history);
  sqlite3_finalize(b->resolve);
}

static int batch_prepare(ops_sqlite *s, batch *b, mb_err *err) {
  int rc = ops_sqlite_prepare(s, insert_error_sql, &b->error, "preparing ingest", err);
  if (rc == MB_OK) rc = ops_sqlite_prepare(s, insert_audit_sql, &b->audit, "preparing", err);
  if (rc == MB_OK) rc = ops_sqlite_prepare(s, history_sql, &b->history, "preparing", err);
  if (rc == MB_OK) rc = ops_sqlite_prepare(s, resolve_sql, &b->resolve, "preparing", err);
  b->now = mb_now_usec();
  mb_time_iso(b->now, b->now_iso);
  return rc;
}

static const char *hdr(const mb_delivery *d, const char *key) {
  return mb_headers_get(&d->env.headers, key);
}

/* The first line of text (a short detail for the history), cut to fit out. */
static void first_line(const char *text, char *out, size_t len) {
  snprintf(out, len, "%.*s", (int)(text ? strcspn(text, "\n") : 0), text ? text : "");
}

/* Binds the columns every stored message has (?1, ?6 - ?13, ?20 - ?24). */
static int bind_common(sqlite3_stmt *st, const mb_delivery *d, const char *source,
                       const char *headers, const batch *b) {
  ops_sqlite_bind(st, 1, d->env.id);
  ops_sqlite_bind(st, 2, source);
  ops_sqlite_bind(st, 6, d->env.type);
  ops_sqlite_bind(st, 7, hdr(d, MB_H_KIND));
  ops_sqlite_bind(st, 8, d->env.correlation_id);
  ops_sqlite_bind(st, 9, d->env.reply_to);
  ops_sqlite_bind(st, 10, hdr(d, MB_H_CONVERSATION));
  ops_sqlite_bind(st, 11, hdr(d, MB_H_RELATED_TO));
  ops_sqlite_bind(st, 12, hdr(d, MB_H_ORIGIN_ENDPOINT));
  ops_sqlite_bind(st, 13, hdr(d, MB_H_TIME_SENT));
  ops_sqlite_bind(st, 20, headers);
  sqlite3_bind_text(st, 21, d->env.body ? d->env.body : "", (int)d->env.body_len,
                    SQLITE_TRANSIENT);
  ops_sqlite_bind(st, 22, d->problem);
  ops_sqlite_bind(st, 23, hdr(d, MB_H_EDITED_FROM));
  return sqlite3_bind_int64(st, 24, b->now / 1000000);
}

/* A failed message: its history entry first, which tells a redelivered copy apart. */
static int ingest_error(ops_sqlite *s, batch *b, const mb_delivery *d, const char *headers,
                        mb_err *err) {
  const char *queue = hdr(d, MB_H_FAILED_QUEUE), *at = hdr(d, MB_H_FAILED_AT);
  const char *why = hdr(d, MB_H_EXCEPTION_MESSAGE);
  char detail[300], gid[MB_FINGERPRINT_ID_LEN + 1], title[MB_FINGERPRINT_TITLE_MAX];
  if (why == NULL) why = d->problem;
  first_line(why, detail, sizeof detail);
  ops_sqlite_bind(b->history, 1, d->env.id);
  ops_sqlite_bind(b->history, 2, at ? at : b->now_iso);
  ops_sqlite_bind(b->history, 3, "failed");
  ops_sqlite_bind(b->history, 4, queue);
  ops_sqlite_bind(b->history, 5, detail);
  int rc = ops_sqlite_step(s, b->history, "storing a failure", err);
  if (rc != MB_OK || sqlite3_changes(s->db) == 0) return rc; /* seen before */
  mb_fingerprint(why, gid, title);
  bind_common(b->error, d, "error", headers, b);
  ops_sqlite_bind(b->error, 3, queue);
  ops_sqlite_bind(b->error, 4, queue);
  ops_sqlite_bind(b->error, 14, at ? at : b->now_iso);
  ops_sqlite_bind(b->error, 15, why);
  ops_sqlite_bind(b->error, 16, hdr(d, MB_H_EXCEPTION_TRACE));
  ops_sqlite_bind(b->error, 17, gid);
  ops_sqlite_bind(b->error, 18, title);
  ops_sqlite_bind(b->error, 19, "unresolved");
  rc = ops_sqlite_step(s, b->error, "storing a failed message", err);
  return rc == MB_OK ? ops_sqlite_failed(s, d, queue, at, why, b->now, err) : rc;
}

/* A processed message; it resolves a failure of the same message in the same queue. */
static int ingest_audit(ops_sqlite *s, batch *b, const mb_delivery *d, const char *headers,
                        mb_err *err) {
  const char *endpoint = hdr(d, MB_H_PROCESSING_ENDPOINT), *at = hdr(d, MB_H_PROCESSING_ENDED);
  bind_common(b->audit, d, "audit", headers, b);
  ops_sqlite_bind(b->audit, 3, endpoint);
  ops_sqlite_bind(b->audit, 4, endpoint);
  ops_sqlite_bind(b->audit, 5, hdr(d, MB_H_PROCESSING_HOST));
  ops_sqlite_bind(b->audit, 14, at ? at : b->now_iso);
  ops_sqlite_bind(b->audit, 19, "processed");
  int rc = ops_sqlite_step(s, b->audit, "storing an audit copy", err);
  if (rc != MB_OK || sqlite3_changes(s->db) == 0 || endpoint == NULL) return rc;
  ops_sqlite_bind(b->resolve, 1, d->env.id);
  ops_sqlite_bind(b->resolve, 2, endpoint);
  sqlite3_bind_int64(b->resolve, 3, b->now / 1000000);
  rc = ops_sqlite_step(s, b->resolve, "resolving a failed message", err);
  if (rc != MB_OK || sqlite3_changes(s->db) == 0) return rc;
  ops_sqlite_bind(b->history, 1, d->env.id);
  ops_sqlite_bind(b->history, 2, at ? at : b->now_iso);
  ops_sqlite_bind(b->history, 3, "resolved");
  ops_sqlite_bind(b->history, 4, endpoint);
  ops_sqlite_bind(b->history, 5, "handled");
  return ops_sqlite_step(s, b->history, "storing a resolution", err);
}

static int ingest_one(ops_sqlite *s, batch *b, mb_ops_source src, const mb_delivery *d,
                      mb_err *err) {
  char *headers = mb_headers_to_json(&d->env.headers, NULL);
  if (headers == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory storing %s", d->env.id);
  int rc = src == MB_OPS_ERROR   ? ingest_error(s, b, d, headers, err)
           : src == MB_OPS_AUDIT ? ingest_audit(s, b, d, headers, err)
                                 : ops_sqlite_report(s, d, headers, b->now, err);
  free(headers);
  return rc;
}

int ops_sqlite_begin(ops_sqlite *s, mb_err *err) {
  return exec_sql(s, "BEGIN IMMEDIATE", "starting a transaction", err);
}

int ops_sqlite_end(ops_sqlite *s, int rc, mb_err *err) {
  if (rc == MB_OK) rc = ops_sqlite_alerts_store(s, err);
  if (rc == MB_OK) rc = exec_sql(s, "COMMIT", "committing", err);
  if (rc != MB_OK) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  ops_sqlite_alerts_done(s, rc == MB_OK);
  return rc;
}

/* The last seq stored (0 when none) into *seq. */
static int max_seq(ops_sqlite *s, int64_t *seq, mb_err *err) {
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, max_seq_sql, &st, "reading the last row", err);
  if (rc != MB_OK) return rc;
  if (sqlite3_step(st) == SQLITE_ROW) *seq = sqlite3_column_int64(st, 0);
  else rc = ops_sqlite_fail(s, MB_EIO, "reading the last row", err);
  sqlite3_finalize(st);
  return rc;
}

/* Adds the audit copies stored after seq (this transaction's) to the search index. */
static int index_audit(ops_sqlite *s, int64_t seq, mb_err *err) {
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, index_audit_sql, &st, "indexing audit copies", err);
  if (rc != MB_OK) return rc;
  sqlite3_bind_int64(st, 1, seq);
  rc = ops_sqlite_step(s, st, "indexing audit copies", err);
  sqlite3_finalize(st);
  return rc;
}

static int store_ingest(mb_ops_store *base, mb_ops_source src, mb_delivery *const *ds, size_t n,
                        mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  batch b = {0};
  int64_t seq = 0;
  int rc = batch_prepare(s, &b, err);
  if (rc == MB_OK) rc = ops_sqlite_begin(s, err);
  else {
    batch_finalize(&b);
    return rc;
  }
  if (rc == MB_OK && src == MB_OPS_AUDIT) rc = max_seq(s, &seq, err);
  for (size_t i = 0; rc == MB_OK && i < n; i++) rc = ingest_one(s, &b, src, ds[i], err);
  if (rc == MB_OK && src == MB_OPS_AUDIT) rc = index_audit(s, seq, err);
  batch_finalize(&b);
  return ops_sqlite_end(s, rc, err);
}

/* --- operations ---------------------------------------------------------------------- */

const char *mb_ops_action_name(mb_ops_action a) {
  static const char *const names[] = {"retry", "archive", "restore", "delete"};
  return names[a];
}

/* The state an action moves a failed message out of, and into (NULL: deleted). */
static const char *acts_on(mb_ops_action a) {
  return a == MB_OPS_RESTORE ? "archived" : "unresolved";
}

static const char *const mark_sql[] = {
    [MB_OPS_RETRY] = "UPDATE messages SET status = 'retrying', changed = ?2 WHERE source ="
                     " 'error' AND id = ?1 AND status IN ('unresolved', 'retrying') AND at < ?3",
    [MB_OPS_ARCHIVE] = "UPDATE messages SET status = 'archived', changed = ?2 WHERE source ="
                       " 'error' AND id = ?1 AND status = 'unresolved'",
    [MB_OPS_RESTORE] = "UPDATE messages SET status = 'unresolved', changed = ?2 WHERE source ="
                       " 'error' AND id = ?1 AND status = 'archived'",
    [MB_OPS_DELETE] = "DELETE FROM messages WHERE source = 'error' AND id = ?1 AND ?2 = ?2"};
static const char *const history_what[] = {"retried", "archived", "restored", "deleted"};

static int mark_one(ops_sqlite *s, sqlite3_stmt *st, sqlite3_stmt *h, mb_ops_action a,
                    const char *id, const char *who, const char *now_iso, mb_err *err) {
  ops_sqlite_bind(st, 1, id);
  sqlite3_bind_int64(st, 2, mb_now_usec() / 1000000);
  if (a == MB_OPS_RETRY) ops_sqlite_bind(st, 3, now_iso);
  int rc = ops_sqlite_step(s, st, "changing a failed message", err);
  if (rc != MB_OK || sqlite3_changes(s->db) == 0) return rc;
  ops_sqlite_bind(h, 1, id);
  if (a == MB_OPS_DELETE) return ops_sqlite_step(s, h, "deleting a history", err);
  ops_sqlite_bind(h, 2, now_iso);
  ops_sqlite_bind(h, 3, history_what[a]);
  ops_sqlite_bind(h, 4, who);
  ops_sqlite_bind(h, 5, NULL);
  return ops_sqlite_step(s, h, "storing a history entry", err);
}

static int store_mark(mb_ops_store *base, mb_ops_action a, const char *const *ids, size_t n,
                      const char *who, const char *at, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st = NULL, *h = NULL;
  char now_iso[MB_TIME_LEN + 1];
  if (at) snprintf(now_iso, sizeof now_iso, "%s", at);
  else mb_time_iso(mb_now_usec(), now_iso);
  int rc = ops_sqlite_prepare(s, mark_sql[a], &st, "preparing an operation", err);
  /* h: the history entry the action adds, or for a delete the history it removes */
  const char *h_sql = a == MB_OPS_DELETE ? "DELETE FROM history WHERE message_id = ?1"
                                         : history_sql;
  if (rc == MB_OK) rc = ops_sqlite_prepare(s, h_sql, &h, "preparing an operation", err);
  if (rc == MB_OK) rc = ops_sqlite_begin(s, err);
  if (rc == MB_OK) {
    for (size_t i = 0; rc == MB_OK && i < n; i++)
      rc = mark_one(s, st, h, a, ids[i], who, now_iso, err);
    rc = ops_sqlite_end(s, rc, err);
  }
  sqlite3_finalize(st);
  sqlite3_finalize(h);
  return rc;
}

/* Appends one id to the block being built (pointers first, strings after them). */
typedef struct id_list {
  char **ids;
  size_t n, cap, bytes;
} id_list;

static int id_list_collect(ops_sqlite *s, sqlite3_stmt *st, id_list *l, mb_err *err) {
  char **tmp = NULL;
  size_t n = 0, cap = 0, bytes = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      char **g = realloc(tmp, ncap * sizeof *g);
      if (g == NULL) break;
      tmp = g, cap = ncap;
    }
    if ((tmp[n] = strdup(id ? id : "")) == NULL) break;
    bytes += strlen(tmp[n++]) + 1;
  }
  int status = rc == SQLITE_DONE  ? MB_OK
               : rc == SQLITE_ROW ? mb_err_set(err, MB_ENOMEM, "out of memory selecting")
                                  : ops_sqlite_fail(s, MB_EIO, "selecting messages", err);
  char **block = status == MB_OK ? malloc(n * sizeof *block + bytes + 1) : NULL;
  if (status == MB_OK && block == NULL) status = mb_err_set(err, MB_ENOMEM, "out of memory");
  char *p = block ? (char *)(block + n) : NULL;
  for (size_t i = 0; i < n; i++) {
    if (block) block[i] = strcpy(p, tmp[i]), p += strlen(tmp[i]) + 1;
    free(tmp[i]);
  }
  free(tmp);
  l->ids = block, l->n = n;
  return status;
}

static const char *const select_sql =
    "SELECT id FROM messages WHERE source = 'error' AND status = ?1 AND (?2 OR " OPS_GROUP_OF(
        "?3") " = ?4) ORDER BY at, seq";
static const char *const select_ids_sql =
    "SELECT m.id FROM json_each(?1) j JOIN messages m ON m.source = 'error' AND m.id ="
    " j.value WHERE ?2 IS NULL OR m.status = ?2 ORDER BY j.key";

/* The ids as a JSON array (ids are UUIDs, checked by the caller; quoted anyway). */
static char *ids_json(const char *const *ids, size_t n) {
  size_t len = 3;
  for (size_t i = 0; i < n; i++) len += strlen(ids[i]) * 2 + 4;
  char *out = malloc(len), *p = out;
  if (out == NULL) return NULL;
  *p++ = '[';
  for (size_t i = 0; i < n; i++) {
    if (i) *p++ = ',';
    *p++ = '"';
    for (const char *c = ids[i]; *c; c++)
      if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) *p++ = *c;
    *p++ = '"';
  }
  *p++ = ']', *p = '\0';
  return out;
}

static int store_select(mb_ops_store *base, mb_ops_action a, const mb_ops_selection *sel,
                        char ***ids, size_t *n, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  char *list = NULL;
  int rc = ops_sqlite_prepare(s, sel->ids ? select_ids_sql : select_sql, &st, "selecting", err);
  if (rc != MB_OK) return rc;
  if (sel->ids) {
    if ((list = ids_json(sel->ids, sel->n_ids)) == NULL) rc = MB_ENOMEM;
    ops_sqlite_bind(st, 1, list);
    ops_sqlite_bind(st, 2, sel->status ? sel->status : (a == MB_OPS_DELETE ? NULL : acts_on(a)));
  } else {
    ops_sqlite_bind(st, 1, sel->status ? sel->status : acts_on(a));
    sqlite3_bind_int(st, 2, sel->all);
    ops_sqlite_bind(st, 3, sel->by ? sel->by : "exception");
    ops_sqlite_bind(st, 4, sel->group ? sel->group : "");
  }
  id_list l = {0};
  if (rc == MB_OK) rc = id_list_collect(s, st, &l, err);
  else mb_err_set(err, rc, "out of memory selecting messages");
  sqlite3_finalize(st);
  free(list);
  *ids = l.ids, *n = l.n;
  return rc;
}

static int store_envelope(mb_ops_store *base, const char *id, mb_envelope *env, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s,
                              "SELECT type, correlation_id, reply_to, headers, body FROM"
                              " messages WHERE source = 'error' AND id = ?1",
                              &st, "reading a failed message", err);
  if (rc != MB_OK) return rc;
  ops_sqlite_bind(st, 1, id);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    mb_envelope_free(env);
    mb_envelope_init(env);
    snprintf(env->id, sizeof env->id, "%s", id);
    const char *type = (const char *)sqlite3_column_text(st, 0);
    const char *headers = (const char *)sqlite3_column_text(st, 3);
    const char *body = (const char *)sqlite3_column_text(st, 4);
    rc = mb_envelope_set_type(env, type ? type : "");
    if (rc == MB_OK)
      rc = mb_envelope_set_correlation_id(env, (const char *)sqlite3_column_text(st, 1));
    if (rc == MB_OK) rc = mb_envelope_set_reply_to(env, (const char *)sqlite3_column_text(st, 2));
    if (rc == MB_OK)
      rc = mb_envelope_set_body(env, body ? body : "", (size_t)sqlite3_column_bytes(st, 4));
    if (rc == MB_OK)
      rc = mb_headers_from_json(headers ? headers : "{}", (size_t)sqlite3_column_bytes(st, 3),
                                &env->headers, err);
    else mb_err_set(err, rc, "out of memory reading message %s", id);
  } else if (step == SQLITE_DONE) rc = mb_err_set(err, MB_ENOTFOUND, "no failed message %s", id);
  else rc = ops_sqlite_fail(s, MB_EIO, "reading a failed message", err);
  sqlite3_finalize(st);
  return rc;
}

static int store_edited(mb_ops_store *base, const char *id, const char *new_id, const char *who,
                        mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st = NULL, *h = NULL;
  char now_iso[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), now_iso);
  int rc = ops_sqlite_prepare(s,
                              "UPDATE messages SET status = 'resolved', edited_to = ?2,"
                              " changed = ?3 WHERE source = 'error' AND id = ?1",
                              &st, "linking an edit", err);
  if (rc == MB_OK) rc = ops_sqlite_prepare(s, history_sql, &h, "linking an edit", err);
  if (rc == MB_OK) rc = ops_sqlite_begin(s, err);
  if (rc == MB_OK) {
    ops_sqlite_bind(st, 1, id);
    ops_sqlite_bind(st, 2, new_id);
    sqlite3_bind_int64(st, 3, mb_now_usec() / 1000000);
    rc = ops_sqlite_step(s, st, "linking an edit", err);
    ops_sqlite_bind(h, 1, id);
    ops_sqlite_bind(h, 2, now_iso);
    ops_sqlite_bind(h, 3, "edited");
    ops_sqlite_bind(h, 4, who);
    ops_sqlite_bind(h, 5, new_id);
    if (rc == MB_OK) rc = ops_sqlite_step(s, h, "storing a history entry", err);
    rc = ops_sqlite_end(s, rc, err);
  }
  sqlite3_finalize(st);
  sqlite3_finalize(h);
  return rc;
}

/* --- retention ------------------------------------------------------------------------- */

static int bind_exec(ops_sqlite *s, const char *sql, int64_t cutoff, mb_err *err) {
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, sql, &st, "sweeping", err);
  if (rc != MB_OK) return rc;
  sqlite3_bind_int64(st, 1, cutoff);
  rc = ops_sqlite_step(s, st, "sweeping old messages", err);
  sqlite3_finalize(st);
  return rc;
}

/* The start of the UTC day `days` before now, in Unix seconds: retention drops whole days. */
static int64_t day_cutoff(double now, double days) {
  int64_t t = (int64_t)(now - days * 86400.0);
  return t - (t % 86400);
}

static int store_sweep(mb_ops_store *base, double now, double audit_days, double error_days,
                       mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  int rc = ops_sqlite_begin(s, err);
  if (rc != MB_OK) return rc;
  rc = bind_exec(s, "DELETE FROM messages WHERE source = 'audit' AND ingested < ?1",
                 day_cutoff(now, audit_days), err);
  /* the index keeps what it deleted until its segments merge: a day of audit copies gone
   * rewrites it (batched ingestion leaves few, large segments that seldom merge alone) */
  if (rc == MB_OK && sqlite3_changes(s->db) > 0)
    rc =
        exec_sql(s, "INSERT INTO search(search) VALUES('optimize')", "compacting the index", err);
  if (rc == MB_OK)
    rc = bind_exec(s,
                   "DELETE FROM messages WHERE source = 'error' AND status IN ('archived',"
                   " 'resolved') AND changed < ?1",
                   day_cutoff(now, error_days), err);
  if (rc == MB_OK) rc = ops_sqlite_monitor_sweep(s, now, err);
  if (rc == MB_OK)
    rc = exec_sql(s,
                  "DELETE FROM history WHERE message_id NOT IN (SELECT id FROM messages WHERE"
                  " source = 'error')",
                  "sweeping histories", err);
  rc = ops_sqlite_end(s, rc, err);
  if (rc == MB_OK) rc = exec_sql(s, "PRAGMA incremental_vacuum", "freeing space", err);
  if (rc == MB_OK) rc = exec_sql(s, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing", err);
  return rc;
}

/* --- open and close -------------------------------------------------------------------- */

static void store_close(mb_ops_store *base) {
  ops_sqlite *s = (ops_sqlite *)base;
  if (s == NULL) return;
  ops_sqlite_monitor_close(s);
  sqlite3_close_v2(s->db);
  free(s->path);
  free(s);
}

static const mb_ops_store_ops sqlite_ops = {
    .ingest = store_ingest,
    .errors = ops_sqlite_errors,
    .groups = ops_sqlite_groups,
    .message = ops_sqlite_message,
    .search = ops_sqlite_search,
    .conversation = ops_sqlite_conversation,
    .endpoints = ops_sqlite_endpoints,
    .oldest_unresolved = ops_sqlite_oldest_unresolved,
    .select = store_select,
    .envelope = store_envelope,
    .mark = store_mark,
    .edited = store_edited,
    .sweep = store_sweep,
    .set_alert_sink = ops_sqlite_set_alert_sink,
    .liveness = ops_sqlite_liveness,
    .sla_each = ops_sqlite_sla_each,
    .raise = ops_sqlite_raise,
    .monitoring = ops_sqlite_monitoring,
    .events = ops_sqlite_events,
    .close = store_close,
};

/* Creates the directory the default store lives in (./.moonbus), like the transport. */
static void make_parent(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir) return;
  *slash = '\0';
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return;
}

static int schema(ops_sqlite *s, mb_err *err) {
  sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
  int rc = exec_sql(s,
                    "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL;"
                    " PRAGMA synchronous=NORMAL",
                    "configuring", err);
  if (rc == MB_OK) rc = ops_sqlite_begin(s, err);
  if (rc == MB_OK)
    rc = ops_sqlite_end(s, exec_sql(s, schema_sql, "creating the schema", err), err);
  if (rc == MB_OK) rc = ops_sqlite_monitor_schema(s, err);
  if (rc == MB_OK) rc = exec_sql(s, "PRAGMA user_version=2", "versioning the schema", err);
  return rc;
}

int mb_ops_store_open(mb_ops_store **out, const char *url, mb_err *err) {
  const char *path = url ? url : DEFAULT_PATH;
  if (strncmp(path, "sqlite://", 9) == 0) path += 9;
  else if (strstr(path, "://"))
    return mb_err_set(err, MB_EINVAL,
                      "the ops store must be a file path or sqlite://PATH (PostgreSQL is "
                      "not supported yet)");
  ops_sqlite *s = calloc(1, sizeof *s);
  if (s == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    return mb_err_set(err, MB_ENOMEM, "out of memory opening the ops store");
  }
  s->base.ops = &sqlite_ops;
  if (url == NULL) make_parent(path);
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    int rc = ops_sqlite_fail(s, MB_EIO, "cannot open the ops store", err);
    store_close(&s->base);
    return rc;
  }
  int rc = schema(s, err);
  if (rc != MB_OK) {
    store_close(&s->base);
    return rc;
  }
  *out = &s->base;
  return MB_OK;
}
