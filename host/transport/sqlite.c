/* sqlite.c — the embedded SQLite transport (DESIGN §5): one WAL database that every
 * process of a machine shares, competing for rows. This file holds the vtable, the schema
 * and statements, sending, topology, lookups, open and close; receiving lives in
 * sqlite_consume.c, the reply queue in sqlite_replies.c, the files' modes, the bell and the
 * database file's identity in sqlite_files.c, what a full or failing disk does in
 * sqlite_pause.c.
 *
 * Owns: the schema and its statements, the bell other processes wake up on, sending
 * (dispatch, one transaction per batch), topology and ownership, lookups, open and close.
 * Never: holds a transaction across loop iterations, or knows Lua.
 *
 * Schema (version 1; tests and operators may query it):
 *   queues(name PRIMARY KEY, created_at)
 *   messages(seq PRIMARY KEY AUTOINCREMENT, queue, id, type, correlation_id, reply_to,
 *            headers TEXT (JSON object of strings), body BLOB, visible_at INTEGER (Unix ms),
 *            deliveries INTEGER, lease_owner TEXT)
 *   subscriptions(event_type, queue)  event_owners(event_type PRIMARY KEY, endpoint, since)
 *   reply_queues(queue PRIMARY KEY, host, pid, since): the per-process reply queues
 *     (moonbus.reply.<instance>), deleted at close; one whose process died is swept by the
 *     next process on the same host that opens its own.
 *   marks(endpoint, type, key, value, updated_at): out-of-order protection, created at
 *     first use by sqlite_marks.c. */
#include "transport/sqlite.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "headers_json.h"
#include "ids.h"
#include "log.h"
#include "transport/sqlite_internal.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_USEC 10000000 /* give up waiting for a lock after 10 s */

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS queues(name TEXT PRIMARY KEY, created_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS messages("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, id TEXT NOT NULL,"
    " type TEXT, correlation_id TEXT, reply_to TEXT, headers TEXT NOT NULL DEFAULT '{}',"
    " body BLOB, visible_at INTEGER NOT NULL, deliveries INTEGER NOT NULL DEFAULT 0,"
    " lease_owner TEXT);"
    "CREATE INDEX IF NOT EXISTS messages_ready ON messages(queue, visible_at, seq);"
    "CREATE INDEX IF NOT EXISTS messages_lease ON messages(lease_owner)"
    " WHERE lease_owner IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS subscriptions(event_type TEXT NOT NULL, queue TEXT NOT NULL,"
    " PRIMARY KEY(event_type, queue));"
    "CREATE TABLE IF NOT EXISTS event_owners(event_type TEXT PRIMARY KEY,"
    " endpoint TEXT NOT NULL, since TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS reply_queues(queue TEXT PRIMARY KEY, host TEXT NOT NULL,"
    " pid INTEGER NOT NULL, since TEXT NOT NULL);";

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_QUEUE_EXISTS] = "SELECT 1 FROM queues WHERE name = ?1",
    [S_INSERT] = "INSERT INTO messages(queue, id, type, correlation_id, reply_to, headers,"
                 " body, visible_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_INSERT_SUBS] = "INSERT INTO messages(queue, id, type, correlation_id, reply_to,"
                      " headers, body, visible_at) SELECT queue, ?2, ?3, ?4, ?5, ?6, ?7, ?8"
                      " FROM subscriptions WHERE event_type = ?1 ORDER BY queue",
    [S_ACK] = "DELETE FROM messages WHERE seq = ?1 AND lease_owner = ?2",
    [S_RELEASE] = "UPDATE messages SET lease_owner = NULL, visible_at = ?3"
                  " WHERE seq = ?1 AND lease_owner = ?2",
    [S_NEXT] = "SELECT min(visible_at) FROM messages WHERE queue = ?1",
    [S_LEASE] = "UPDATE messages SET lease_owner = ?2, visible_at = ?3,"
                " deliveries = deliveries + 1 WHERE seq IN (SELECT seq FROM messages"
                " WHERE queue = ?1 AND visible_at <= ?4 ORDER BY visible_at, seq LIMIT ?5)"
                " RETURNING seq, id, type, correlation_id, reply_to, headers, body, deliveries",
    [S_RENEW] = "UPDATE messages SET visible_at = ?2 WHERE lease_owner = ?1",
    [S_RELEASE_ALL] = "UPDATE messages SET lease_owner = NULL, visible_at = ?2"
                      " WHERE lease_owner = ?1",
    [S_DEPTH] = "SELECT count(*) FILTER (WHERE visible_at <= ?2),"
                " count(*) FILTER (WHERE visible_at > ?2) FROM messages WHERE queue = ?1",
    [S_READY] = "SELECT count(*) FROM messages WHERE queue = ?1 AND visible_at <= ?2",
    [S_OWNER] = "SELECT endpoint FROM event_owners WHERE event_type = ?1",
    [S_CLAIM] = "INSERT OR IGNORE INTO event_owners(event_type, endpoint, since)"
                " VALUES(?1, ?2, ?3)",
    [S_ADD_QUEUE] = "INSERT OR IGNORE INTO queues(name, created_at) VALUES(?1, ?2)",
    [S_UNSUB] = "DELETE FROM subscriptions WHERE queue = ?1",
    [S_SUB] = "INSERT OR IGNORE INTO subscriptions(event_type, queue) VALUES(?1, ?2)",
    [S_BROWSE] = "SELECT seq, id, type, correlation_id, reply_to, headers, body, deliveries"
                 " FROM messages WHERE queue = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq"
                 " LIMIT ?4",
    [S_TAKE_REPLIES] = "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages"
                       " WHERE queue = ?1 AND visible_at <= ?2 ORDER BY seq LIMIT ?3)"
                       " RETURNING seq, id, type, correlation_id, reply_to, headers, body,"
                       " deliveries + 1",
    [S_ADD_REPLY_QUEUE] = "INSERT OR REPLACE INTO reply_queues(queue, host, pid, since)"
                          " VALUES(?1, ?2, ?3, ?4)",
    [S_REPLY_QUEUES] = "SELECT queue, pid FROM reply_queues WHERE host = ?1",
    [S_DROP_QUEUE_ROWS] = "DELETE FROM messages WHERE queue = ?1",
    [S_DROP_QUEUE] = "DELETE FROM queues WHERE name = ?1",
    [S_DROP_REPLY_QUEUE] = "DELETE FROM reply_queues WHERE queue = ?1",
    [S_REMOVE] = "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE queue = ?1"
                 " AND id = ?2 AND (?3 = 0 OR seq = ?3) AND lease_owner IS NULL ORDER BY seq"
                 " LIMIT 1)",
    [S_PROBE] = "UPDATE queues SET created_at = created_at WHERE name = ?1",
};

int64_t sq_now_ms(void) { return mb_now_usec() / 1000; }

static void random_u32(unsigned *out) {
  if (getrandom(out, sizeof *out, GRND_NONBLOCK) != (ssize_t)sizeof *out)
    *out = (unsigned)mb_now_usec();
}

/* A process watching the folder learns of a commit from the WAL write, but that write
 * lands before the commit is visible to readers; so after committing, each writer also
 * "rings" a small bell file, whose change arrives when the rows can be seen. */
void sq_ring(sqlite_transport *t) {
  if (t->bell_fd < 0 || pwrite(t->bell_fd, "!", 1, 0) == 1 || t->bell_broken) return;
  t->bell_broken = 1;
  mb_log(MB_WARN, NULL, NULL, NULL,
         "cannot write %s-bell (%s): other processes will see new "
         "messages within %.0f s instead of at once",
         t->path, strerror(errno), SAFETY_POLL);
}

/* --- statements ------------------------------------------------------------------------ */

sqlite3_stmt *sq_stmt(sqlite_transport *t, enum stmt_id id) {
  sqlite3_stmt *s = t->stmt[id];
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return s;
}

/* Every failed statement passes here: a full or failing disk also pauses receiving. */
int sq_db_fail(sqlite_transport *t, mb_err *err, const char *what) {
  int code = sqlite3_errcode(t->db) & 0xff;
  int status = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? MB_EBUSY : MB_EIO;
  mb_err_set(err, status, "sqlite %s: %s while %s", t->path, sqlite3_errmsg(t->db), what);
  if (code == SQLITE_FULL || code == SQLITE_IOERR) sq_pause(t, code);
  return status;
}

/* Runs a statement that returns no rows. */
int sq_exec(sqlite_transport *t, sqlite3_stmt *s, mb_err *err, const char *what) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? MB_OK : sq_db_fail(t, err, what);
}

int sq_begin(sqlite_transport *t, mb_err *err) {
  return sq_exec(t, sq_stmt(t, S_BEGIN), err, "starting a transaction");
}

int sq_commit(sqlite_transport *t, mb_err *err) {
  return sq_exec(t, sq_stmt(t, S_COMMIT), err, "committing");
}

void sq_rollback(sqlite_transport *t) {
  if (sqlite3_get_autocommit(t->db)) return; /* SQLite already rolled back */
  sqlite3_step(sq_stmt(t, S_ROLLBACK));
  sqlite3_reset(t->stmt[S_ROLLBACK]);
}

void sq_bind_text(sqlite3_stmt *s, int i, const char *v) {
  if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(s, i);
}

/* --- sending ----------------------------------------------------------------------------- */

static int queue_exists(sqlite_transport *t, const char *queue, mb_err *err, int *exists) {
  sqlite3_stmt *s = sq_stmt(t, S_QUEUE_EXISTS);
  sq_bind_text(s, 1, queue);
  int rc = sqlite3_step(s);
  *exists = rc == SQLITE_ROW;
  sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? MB_OK : sq_db_fail(t, err, "looking up a queue");
}

static int unroutable(const sqlite_transport *t, const mb_outgoing *m, mb_err *err) {
  return mb_err_set(err, MB_EUNROUTABLE,
                    "no queue named '%s' in sqlite://%s (message %s of type %s): start the %s "
                    "endpoint once so that its queue exists, or fix the route",
                    m->dest, t->abs_path ? t->abs_path : t->path, m->env.id,
                    m->env.type ? m->env.type : "(none)", m->dest);
}

static int insert_one(sqlite_transport *t, const mb_outgoing *m, mb_err *err) {
  int exists = 1, rc = MB_OK;
  if (m->route == MB_ROUTE_QUEUE && (rc = queue_exists(t, m->dest, err, &exists)) != MB_OK)
    return rc;
  if (!exists && m->to_requester) {
    mb_log_msg(MB_WARN, NULL, mb_envelope_log_ids(&m->env),
               "reply dropped: its requester's reply "
               "queue '%s' is gone (the requesting process ended)",
               m->dest);
    return MB_OK;
  }
  if (!exists) return unroutable(t, m, err);
  size_t hlen;
  char *headers = mb_headers_to_json(&m->env.headers, &hlen);
  if (headers == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory encoding headers");
  int publish = m->route == MB_ROUTE_PUBLISH;
  sqlite3_stmt *s = sq_stmt(t, publish ? S_INSERT_SUBS : S_INSERT);
  sq_bind_text(s, 1, publish ? m->env.type : m->dest);
  sq_bind_text(s, 2, m->env.id);
  sq_bind_text(s, 3, m->env.type);
  sq_bind_text(s, 4, m->env.correlation_id);
  sq_bind_text(s, 5, m->env.reply_to);
  sqlite3_bind_text(s, 6, headers, (int)hlen, SQLITE_STATIC);
  sqlite3_bind_blob(s, 7, m->env.body ? m->env.body : "", (int)m->env.body_len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 8, sq_now_ms() + (int64_t)(m->delay * 1000.0));
  rc = sqlite3_step(s);
  sqlite3_reset(s);
  free(headers);
  if (rc != SQLITE_DONE) {
    char what[MB_ID_LEN + 64];
    snprintf(what, sizeof what, "storing message %s", m->env.id);
    return sq_db_fail(t, err, what);
  }
  return MB_OK;
}

int sq_insert_all(sqlite_transport *t, mb_outgoing *const *msgs, size_t n, mb_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (msgs[i]->env.body_len > INT_MAX)
      return mb_err_set(err, MB_ETOOBIG, "message %s is too large for SQLite", msgs[i]->env.id);
    int rc = insert_one(t, msgs[i], err);
    if (rc != MB_OK) return rc;
  }
  return MB_OK;
}

static int sqlite_dispatch(mb_transport *base, mb_outgoing *const *msgs, size_t n,
                           mb_done_fn done, void *ud, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  int rc = sq_begin(t, err);
  if (rc == MB_OK) rc = sq_insert_all(t, msgs, n, err);
  if (rc == MB_OK) rc = sq_commit(t, err);
  if (rc != MB_OK) {
    sq_rollback(t);
    return rc;
  }
  sq_ring(t);
  done(ud, MB_OK, NULL);
  return MB_OK;
}

/* --- topology ---------------------------------------------------------------------------------- */

int sq_add_queue(sqlite_transport *t, const char *name, const char *when, mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_ADD_QUEUE);
  sq_bind_text(s, 1, name);
  sq_bind_text(s, 2, when);
  return sq_exec(t, s, err, "creating a queue");
}

static int owner_lookup(sqlite_transport *t, const char *type, char *out, size_t len,
                        mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_OWNER);
  sq_bind_text(s, 1, type);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) snprintf(out, len, "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_reset(s);
  if (rc == SQLITE_ROW) return MB_OK;
  if (rc == SQLITE_DONE)
    return mb_err_set(err, MB_ENOTFOUND, "no endpoint publishes %s yet", type);
  return sq_db_fail(t, err, "looking up the owner of an event");
}

static int claim(sqlite_transport *t, const char *type, const char *endpoint, const char *when,
                 mb_err *err) {
  char owner[MB_QUEUE_NAME_MAX + 1];
  int rc = owner_lookup(t, type, owner, sizeof owner, err);
  if (rc == MB_OK && strcmp(owner, endpoint) != 0)
    return mb_err_set(err, MB_EOWNER,
                      "%s is published by endpoint %s; an event has one publisher: remove it "
                      "from the publishes list of endpoint %s, or send a command to %s and let "
                      "it publish",
                      type, owner, endpoint, owner);
  if (rc != MB_OK && rc != MB_ENOTFOUND) return rc;
  sqlite3_stmt *s = sq_stmt(t, S_CLAIM);
  sq_bind_text(s, 1, type);
  sq_bind_text(s, 2, endpoint);
  sq_bind_text(s, 3, when);
  return sq_exec(t, s, err, "claiming an event type");
}

static int subscribe_all(sqlite_transport *t, const mb_topology *topo, mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_UNSUB);
  sq_bind_text(s, 1, topo->endpoint);
  int rc = sq_exec(t, s, err, "updating subscriptions");
  for (size_t i = 0; rc == MB_OK && i < topo->n_subscriptions; i++) {
    s = sq_stmt(t, S_SUB);
    sq_bind_text(s, 1, topo->subscriptions[i]);
    sq_bind_text(s, 2, topo->endpoint);
    rc = sq_exec(t, s, err, "subscribing");
  }
  return rc;
}

static int sqlite_declare(mb_transport *base, const mb_topology *topo, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  char when[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), when);
  int rc = sq_begin(t, err);
  if (rc == MB_OK) rc = sq_add_queue(t, topo->endpoint, when, err);
  if (rc == MB_OK && topo->error_queue) rc = sq_add_queue(t, topo->error_queue, when, err);
  if (rc == MB_OK && topo->audit_queue) rc = sq_add_queue(t, topo->audit_queue, when, err);
  for (size_t i = 0; rc == MB_OK && i < topo->n_owned; i++)
    rc = claim(t, topo->owned[i], topo->endpoint, when, err);
  if (rc == MB_OK) rc = subscribe_all(t, topo, err);
  if (rc == MB_OK) rc = sq_commit(t, err);
  if (rc != MB_OK) sq_rollback(t);
  if (rc == MB_OK) sq_audit_sweep_start(t, topo->audit_queue);
  return rc;
}

static int sqlite_owner_of(mb_transport *base, const char *type, char *out, size_t len,
                           mb_err *err) {
  return owner_lookup((sqlite_transport *)base, type, out, len, err);
}

static int sqlite_depth(mb_transport *base, const char *queue, long *ready, long *later,
                        mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite3_stmt *s = sq_stmt(t, later ? S_DEPTH : S_READY); /* S_READY reads the ready ones only */
  sq_bind_text(s, 1, queue);
  sqlite3_bind_int64(s, 2, sq_now_ms());
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *ready = (long)sqlite3_column_int64(s, 0);
    if (later) *later = (long)sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
  return rc == SQLITE_ROW ? MB_OK : sq_db_fail(t, err, "counting messages");
}

#define BROWSE_PAGE 100

/* The highest seq of queue now (0 when it is empty): where a browse stops. */
static int browse_bound(sqlite_transport *t, const char *queue, int64_t *last, mb_err *err) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(t->db, "SELECT coalesce(max(seq), 0) FROM messages WHERE queue = ?1", -1,
                         &s, NULL) != SQLITE_OK)
    return sq_db_fail(t, err, "reading messages");
  sq_bind_text(s, 1, queue);
  int step = sqlite3_step(s);
  *last = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_finalize(s);
  return step == SQLITE_ROW ? MB_OK : sq_db_fail(t, err, "reading messages");
}

/* Up to BROWSE_PAGE messages of queue with after < seq <= last into page (keyset paging:
 * no statement stays open while the callback runs). */
static int browse_page(sqlite_transport *t, const char *queue, int64_t after, int64_t last,
                       mb_delivery **page, size_t *n, mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_BROWSE);
  sq_bind_text(s, 1, queue);
  sqlite3_bind_int64(s, 2, after);
  sqlite3_bind_int64(s, 3, last);
  sqlite3_bind_int(s, 4, BROWSE_PAGE);
  int step, rc = MB_OK;
  *n = 0;
  while ((step = sqlite3_step(s)) == SQLITE_ROW && *n < BROWSE_PAGE) {
    if ((page[*n] = sq_delivery_from_row(s, queue)) == NULL) {
      rc = mb_err_set(err, MB_ENOMEM, "out of memory reading queue '%s'", queue);
      break;
    }
    (*n)++;
  }
  sqlite3_reset(s);
  if (rc == MB_OK && step != SQLITE_ROW && step != SQLITE_DONE)
    rc = sq_db_fail(t, err, "reading messages");
  return rc;
}

/* Removes exactly the row seq (message id) of queue, unless a consumer holds it. */
static int take_row(sqlite_transport *t, const char *queue, const char *id, int64_t seq,
                    mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_REMOVE);
  sq_bind_text(s, 1, queue);
  sq_bind_text(s, 2, id);
  sqlite3_bind_int64(s, 3, seq);
  int rc = sq_exec(t, s, err, "removing a message");
  if (rc == MB_OK && sqlite3_changes(t->db) == 0)
    return mb_err_set(err, MB_ENOTFOUND,
                      "message %s of queue '%s' is being handled: not "
                      "removed",
                      id, queue);
  return rc;
}

/* Hands each message of the page to fn (which owns it), taking those it asks for; *stop
 * once fn asked to stop or a take failed. */
static int show_page(sqlite_transport *t, const char *queue, mb_delivery **page, size_t n,
                     mb_browse_fn fn, void *ud, int *stop, mb_err *err) {
  int rc = MB_OK;
  for (size_t i = 0; i < n; i++) {
    if (rc != MB_OK || *stop) {
      mb_delivery_free(page[i]);
      continue;
    }
    char id[MB_ID_LEN + 1];
    int64_t seq = (int64_t)page[i]->tag;
    snprintf(id, sizeof id, "%s", page[i]->env.id);
    int what = fn(ud, page[i]);
    if (what & MB_BROWSE_TAKE) rc = take_row(t, queue, id, seq, err);
    *stop = (what & MB_BROWSE_STOP) != 0;
  }
  return rc;
}

static int sqlite_browse(mb_transport *base, const char *queue, mb_browse_fn fn, void *ud,
                         mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  mb_delivery *page[BROWSE_PAGE];
  int64_t last, after = 0;
  int stop = 0, rc = browse_bound(t, queue, &last, err);
  while (rc == MB_OK && !stop && after < last) {
    size_t n;
    rc = browse_page(t, queue, after, last, page, &n, err);
    if (rc != MB_OK || n == 0) {
      for (size_t i = 0; i < n; i++) mb_delivery_free(page[i]);
      break;
    }
    after = (int64_t)page[n - 1]->tag;
    rc = show_page(t, queue, page, n, fn, ud, &stop, err);
  }
  return rc;
}

static int sqlite_remove(mb_transport *base, const char *queue, const char *id, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite3_stmt *s = sq_stmt(t, S_REMOVE);
  sq_bind_text(s, 1, queue);
  sq_bind_text(s, 2, id);
  sqlite3_bind_int64(s, 3, 0);
  int rc = sq_exec(t, s, err, "removing a message");
  if (rc == MB_OK && sqlite3_changes(t->db) == 0)
    return mb_err_set(err, MB_ENOTFOUND, "queue '%s' holds no message %s", queue, id);
  return rc;
}

/* --- open and close ---------------------------------------------------------------------------- */

static int parse_option(sqlite_transport *t, const char *opt, int *sync_full, mb_err *err) {
  int secs;
  char extra;
  double days;
  if (strcmp(opt, "synchronous=full") == 0) *sync_full = 1;
  else if (strcmp(opt, "synchronous=normal") == 0) *sync_full = 0;
  else if (sscanf(opt, "lease=%d%c", &secs, &extra) == 1 && secs >= 1 && secs <= 3600)
    t->lease_ms = secs * 1000;
  else if (strncmp(opt, "mode=", 5) == 0 && sq_parse_mode(opt + 5, &t->mode) == MB_OK)
    ;
  else if (sscanf(opt, "audit_retention=%lf%c", &days, &extra) == 1 && days >= 0 && days <= 36500)
    t->audit_days = days;
  else
    return mb_err_set(err, MB_EINVAL,
                      "unknown option '%s' in the sqlite URL: use synchronous=full|normal, "
                      "lease=SECONDS (1-3600), audit_retention=DAYS (0 = keep audit copies) "
                      "or mode=0600|0640|0660 (the files' mode: rw for the owner, read or "
                      "read-write for the group or others)",
                      opt);
  return MB_OK;
}

/* sqlite://PATH[?opt&opt]: fills path, dir, file and the options. */
static int parse_url(sqlite_transport *t, const char *url, int *sync_full, mb_err *err) {
  const char *p = url + strlen("sqlite://");
  size_t plen = strcspn(p, "?");
  if (plen == 0) return mb_err_set(err, MB_EINVAL, "the sqlite URL '%s' names no file", url);
  if ((t->path = strndup(p, plen)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  char *slash = strrchr(t->path, '/');
  t->dir = slash ? strndup(t->path, slash == t->path ? 1 : (size_t)(slash - t->path))
                 : strdup(".");
  t->file = strdup(slash ? slash + 1 : t->path);
  if (t->dir == NULL || t->file == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  if (t->file[0] == '\0')
    return mb_err_set(err, MB_EINVAL, "the sqlite URL '%s' names a folder", url);
  char opts[256];
  snprintf(opts, sizeof opts, "%s", p[plen] == '?' ? p + plen + 1 : "");
  char *save = NULL;
  for (char *o = strtok_r(opts, "&", &save); o; o = strtok_r(NULL, "&", &save)) {
    int rc = parse_option(t, o, sync_full, err);
    if (rc != MB_OK) return rc;
  }
  return MB_OK;
}

static int exec_sql(sqlite_transport *t, const char *sql, mb_err *err, const char *what) {
  char *msg = NULL;
  if (sqlite3_exec(t->db, sql, NULL, NULL, &msg) == SQLITE_OK) return MB_OK;
  mb_err_set(err, MB_EIO, "sqlite %s: %s while %s", t->path, msg ? msg : "error", what);
  sqlite3_free(msg);
  return MB_EIO;
}

static int check_version(sqlite_transport *t, mb_err *err) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(t->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
    return sq_db_fail(t, err, "reading the schema version");
  int version = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
  sqlite3_finalize(s);
  if (version < 0) return sq_db_fail(t, err, "reading the schema version");
  if (version > SCHEMA_VERSION)
    return mb_err_set(err, MB_EINVAL,
                      "sqlite %s has schema version %d, made by a newer moonbus (this one "
                      "knows %d): upgrade moonbus",
                      t->path, version, SCHEMA_VERSION);
  return MB_OK;
}

/* Switching to WAL takes a lock that SQLite does not wait for through the busy handler
 * when another process opens the same new file at the same moment: retry, bounded. */
static int switch_to_wal(sqlite_transport *t, mb_err *err) {
  for (int tries = 0;; tries++) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(t->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
      return sq_db_fail(t, err, "switching to WAL");
    int rc = sqlite3_step(s);
    int wal = rc == SQLITE_ROW &&
              sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (wal) return MB_OK;
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED && rc != SQLITE_ROW) || tries >= 1000)
      return mb_err_set(err, MB_EIO, "sqlite %s: cannot switch to WAL journal mode (%s)", t->path,
                        sqlite3_errmsg(t->db));
    sqlite3_sleep(10);
  }
}

static int setup_schema(sqlite_transport *t, int sync_full, mb_err *err) {
  int rc = switch_to_wal(t, err);
  if (rc == MB_OK)
    rc = exec_sql(t, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err,
                  "setting synchronous");
  if (rc == MB_OK) rc = check_version(t, err);
  if (rc == MB_OK) rc = exec_sql(t, "BEGIN IMMEDIATE", err, "creating the schema");
  if (rc == MB_OK) rc = exec_sql(t, schema_sql, err, "creating the schema");
  if (rc == MB_OK) rc = exec_sql(t, "PRAGMA user_version=1; COMMIT", err, "creating the schema");
  if (rc != MB_OK && !sqlite3_get_autocommit(t->db)) sqlite3_exec(t->db, "ROLLBACK", 0, 0, 0);
  return rc;
}

static int prepare_all(sqlite_transport *t, mb_err *err) {
  for (int i = 0; i < S_COUNT; i++)
    if (sqlite3_prepare_v3(t->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &t->stmt[i],
                           NULL) != SQLITE_OK)
      return sq_db_fail(t, err, "preparing statements");
  return MB_OK;
}

/* SQLite's own busy handler sleeps longer and longer (up to 100 ms), so a process waiting
 * for the write lock loses every race against a busy neighbour that commits in a tight
 * loop and starves. Short random sleeps keep competing consumers fair. */
static int on_busy(void *ud, int count) {
  sqlite_transport *t = ud;
  int64_t now = mb_now_usec();
  if (count == 0) t->busy_since = now;
  if (now - t->busy_since > BUSY_TIMEOUT_USEC) return 0;
  unsigned r;
  random_u32(&r);
  usleep(50 + r % 450);
  return 1;
}

static int open_db(sqlite_transport *t, int sync_full, mb_err *err) {
  int rc = sq_prepare_files(t, err);
  if (rc != MB_OK) return rc;
  if (sqlite3_open_v2(t->path, &t->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    return mb_err_set(err, MB_EIO, "cannot open sqlite database %s: %s", t->path,
                      t->db ? sqlite3_errmsg(t->db) : "out of memory");
  if (sqlite3_busy_handler(t->db, on_busy, t) != SQLITE_OK)
    return sq_db_fail(t, err, "setting the busy handler");
  char dir[PATH_MAX];
  if (realpath(t->dir, dir) != NULL &&
      asprintf(&t->abs_path, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, t->file) < 0)
    t->abs_path = NULL; /* messages show the path as given */
  rc = setup_schema(t, sync_full, err);
  if (rc == MB_OK) rc = prepare_all(t, err);
  if (rc != MB_OK) return rc;
  sq_remember_file(t);
  return sq_open_bell(t, err);
}

static void init_watchers(sqlite_transport *t) {
  ev_timer_init(&t->poll_soon, sq_on_poll_soon, 0., 0.);
  ev_timer_init(&t->wake, sq_on_poll_soon, SAFETY_POLL, 0.);
  double every = (double)t->lease_ms / 3000.0;
  ev_timer_init(&t->renew, sq_renew_leases, every, every);
  ev_timer_init(&t->file_check, sq_on_file_check, SAFETY_POLL, SAFETY_POLL);
  ev_timer_init(&t->unpause, sq_on_unpause, 0., 0.);
  t->poll_soon.data = t->wake.data = t->renew.data = t->file_check.data = t->unpause.data = t;
  t->inotify_fd = -1;
  t->bell_fd = -1;
}

static void sqlite_close(mb_transport *base);

static int sqlite_open(mb_transport **out, struct ev_loop *loop, const char *url,
                       const char *instance, mb_err *err) {
  sqlite_transport *t = calloc(1, sizeof *t);
  if (t == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  snprintf(t->instance, sizeof t->instance, "%s", instance ? instance : "moonbus");
  t->base.ops = &mb_sqlite_transport;
  t->loop = loop;
  t->lease_ms = 30000;
  t->mode = 0600;
  t->audit_days = sq_audit_retention_default();
  mb_uuidv7(t->token);
  int sync_full = 1;
  int rc = parse_url(t, url, &sync_full, err);
  init_watchers(t);
  if (rc == MB_OK) rc = open_db(t, sync_full, err);
  if (rc != MB_OK) {
    sqlite_close(&t->base);
    return rc;
  }
  *out = &t->base;
  return MB_OK;
}

/* Leased rows of this open become visible again at once (those waiting to be given back
 * too): another consumer (or the next start of this one) takes them. Their delivery count
 * is kept. When that fails, the log says which messages wait for their lease to run out. */
static void release_all(sqlite_transport *t) {
  size_t held = 0;
  while (t->leases) {
    lease *l = t->leases;
    t->leases = l->next;
    free(l);
    held++;
  }
  if (t->queue == NULL || t->stmt[S_RELEASE_ALL] == NULL) return;
  sqlite3_stmt *s = sq_stmt(t, S_RELEASE_ALL);
  sq_bind_text(s, 1, t->token);
  sqlite3_bind_int64(s, 2, sq_now_ms());
  mb_err err;
  if (sq_exec(t, s, &err, "giving back the messages this host held") != MB_OK)
    mb_log(MB_ERROR, t->queue, NULL, NULL,
           "could not give back the %zu message(s) this host held in queue '%s' (%s): they "
           "return to the queue when their lease runs out, within %d s",
           held, t->queue, err.msg, t->lease_ms / 1000);
  else if (sqlite3_changes(t->db) > 0) sq_ring(t);
}

static void sqlite_close(mb_transport *base) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite_stop_consuming(base);
  if (t->db) sq_close_replies(t);
  sq_unwatch_changes(t);
  ev_timer_stop(t->loop, &t->renew);
  sq_audit_sweep_stop(t);
  sq_stop_pause(t);
  release_all(t);
  mb_marks_close(t->marks);
  for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(t->stmt[i]);
  if (t->db && sqlite3_close(t->db) != SQLITE_OK)
    mb_log(MB_WARN, NULL, NULL, NULL, "sqlite %s did not close cleanly: %s", t->path,
           sqlite3_errmsg(t->db));
  if (t->bell_fd >= 0) close(t->bell_fd);
  free(t->queue);
  free(t->path);
  free(t->abs_path);
  free(t->dir);
  free(t->file);
  free(t);
}

const mb_transport_ops mb_sqlite_transport = {
    .open = sqlite_open,
    .declare = sqlite_declare,
    .dispatch = sqlite_dispatch,
    .consume = sqlite_consume,
    .stop_consuming = sqlite_stop_consuming,
    .complete = sqlite_complete,
    .release = sqlite_release,
    .owner_of = sqlite_owner_of,
    .depth = sqlite_depth,
    .queues = sqlite_queues,
    .browse = sqlite_browse,
    .remove = sqlite_remove,
    .listen_replies = sqlite_listen_replies,
    .mark_check = sqlite_mark_check,
    .complete_marked = sqlite_complete_marked,
    .close = sqlite_close,
};
