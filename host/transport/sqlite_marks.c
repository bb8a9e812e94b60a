/* sqlite_marks.c — the marks of out-of-order protection in SQLite (mark.h): the table
 *   marks(endpoint, type, key, value, updated_at, PRIMARY KEY(endpoint, type, key))
 * where value is stored as given (integer, real or text; SQLite orders numbers before
 * strings and compares strings byte-wise, as mb_mark_cmp does). Two users: the SQLite
 * transport keeps the table in the bus database (attached to its connection, so that
 * complete_marked moves the mark inside the transaction of the ack), and the local store
 * of a transport without a database (a file of its own, default ./.moonbus/state.db).
 *
 * Owns: the table, its statements, the local store's connection. Never: begins or ends a
 * transaction of the bus database (the transport does), or decides a message's fate. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "transport/sqlite_internal.h"

struct mb_marks {
  sqlite3 *db;
  int owns_db; /* the local store's own file; else the bus database's connection */
  sqlite3_stmt *get, *put;
  char *url, *path;
};

static const char *const marks_sql =
    "CREATE TABLE IF NOT EXISTS marks(endpoint TEXT NOT NULL, type TEXT NOT NULL,"
    " key TEXT NOT NULL, value NOT NULL, updated_at TEXT NOT NULL,"
    " PRIMARY KEY(endpoint, type, key)) WITHOUT ROWID";
static const char *const get_sql =
    "SELECT value FROM marks WHERE endpoint = ?1 AND type = ?2 AND key = ?3";
static const char *const put_sql =
    "INSERT INTO marks(endpoint, type, key, value, updated_at) VALUES(?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT(endpoint, type, key) DO UPDATE SET value = excluded.value,"
    " updated_at = excluded.updated_at WHERE marks.value < excluded.value";

static int fail(mb_marks *s, mb_err *err, const char *what) {
  int code = sqlite3_errcode(s->db) & 0xff;
  int status = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? MB_EBUSY : MB_EIO;
  return mb_err_set(err, status, "sqlite %s: %s while %s", s->path, sqlite3_errmsg(s->db), what);
}

static int prepare(mb_marks *s, mb_err *err) {
  if (sqlite3_exec(s->db, marks_sql, NULL, NULL, NULL) != SQLITE_OK)
    return fail(s, err, "creating the marks table");
  if (sqlite3_prepare_v3(s->db, get_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->get, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v3(s->db, put_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->put, NULL) !=
          SQLITE_OK)
    return fail(s, err, "preparing the marks statements");
  return MB_OK;
}

static void bind_scope(sqlite3_stmt *st, const mb_mark *m) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  sqlite3_bind_text(st, 1, m->endpoint, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, m->type, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, m->key, -1, SQLITE_STATIC);
}

/* The stored value in column 0 of st as a mark (its text points into st). */
static void column_mark(sqlite3_stmt *st, mb_mark *out) {
  memset(out, 0, sizeof *out);
  int type = sqlite3_column_type(st, 0);
  if (type == SQLITE_INTEGER) {
    out->kind = MB_MARK_INTEGER;
    out->integer = sqlite3_column_int64(st, 0);
  } else if (type == SQLITE_FLOAT) {
    out->kind = MB_MARK_REAL;
    out->real = sqlite3_column_double(st, 0);
  } else {
    out->kind = MB_MARK_TEXT;
    out->text = (const char *)sqlite3_column_text(st, 0);
    out->len = (size_t)sqlite3_column_bytes(st, 0);
    if (out->text == NULL) out->text = "";
  }
}

int mb_marks_check(mb_marks *s, const mb_mark *m, int *stale, char *highest, size_t len,
                   mb_err *err) {
  bind_scope(s->get, m);
  int rc = sqlite3_step(s->get);
  *stale = 0;
  if (rc == SQLITE_ROW) {
    mb_mark stored;
    column_mark(s->get, &stored);
    *stale = mb_mark_cmp(m, &stored) <= 0;
    mb_mark_format(&stored, highest, len);
  }
  sqlite3_reset(s->get);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? MB_OK : fail(s, err, "reading a mark");
}

int mb_marks_advance(mb_marks *s, const mb_mark *m, int *advanced, mb_err *err) {
  sqlite3_stmt *st = s->put;
  char when[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), when);
  bind_scope(st, m);
  if (m->kind == MB_MARK_INTEGER) sqlite3_bind_int64(st, 4, m->integer);
  else if (m->kind == MB_MARK_REAL) sqlite3_bind_double(st, 4, m->real);
  else sqlite3_bind_text(st, 4, m->text, (int)m->len, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, when, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return fail(s, err, "storing a mark");
  *advanced = sqlite3_changes(s->db) > 0;
  return MB_OK;
}

const char *mb_marks_url(const mb_marks *s) { return s->url; }

void mb_marks_close(mb_marks *s) {
  if (s == NULL) return;
  sqlite3_finalize(s->get);
  sqlite3_finalize(s->put);
  if (s->owns_db) sqlite3_close(s->db);
  free(s->url);
  free(s->path);
  free(s);
}

int sq_marks_attach(sqlite3 *db, const char *path, mb_marks **out, mb_err *err) {
  mb_marks *s = calloc(1, sizeof *s);
  if (s == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  }
  s->db = db;
  int rc = prepare(s, err);
  if (rc != MB_OK) {
    mb_marks_close(s);
    return rc;
  }
  *out = s;
  return MB_OK;
}

/* --- the local store ----------------------------------------------------------------------- */

/* mkdir -p for the folders of path (not its last part). */
static int make_folders(const char *path, mb_err *err) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) return mb_err_set(err, MB_EINVAL, "path too long: %s", path);
  strcpy(buf, path);
  for (char *p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
    *p = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return mb_err_set(err, MB_EIO, "cannot create folder %s for the state store: %s", buf,
                        strerror(errno));
    *p = '/';
  }
  return MB_OK;
}

/* The file is created private (0600, as the bus database: keys are business data); SQLite
 * gives its -wal and -shm the same mode. */
static int open_file(mb_marks *s, mb_err *err) {
  int rc = make_folders(s->path, err);
  if (rc != MB_OK) return rc;
  int fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return mb_err_set(err, MB_EIO, "cannot open the state store %s: %s", s->path,
                      strerror(errno));
  close(fd);
  if (sqlite3_open_v2(s->path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    return mb_err_set(err, MB_EIO, "cannot open the state store %s: %s", s->path,
                      s->db ? sqlite3_errmsg(s->db) : "out of memory");
  if (sqlite3_busy_timeout(s->db, 10000) != SQLITE_OK ||
      sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", NULL, NULL, NULL) !=
          SQLITE_OK)
    return fail(s, err, "setting up the state store");
  return prepare(s, err);
}

int mb_marks_open(mb_marks **out, const char *url, mb_err *err) {
  const char *scheme = "sqlite://";
  if (url == NULL) url = MB_DEFAULT_STATE;
  if (strncmp(url, scheme, strlen(scheme)) != 0 || url[strlen(scheme)] == '\0' ||
      strchr(url, '?'))
    return mb_err_set(err, MB_EINVAL, "the state store '%s' is not a sqlite://PATH URL", url);
  mb_marks *s = calloc(1, sizeof *s);
  if (s == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  s->owns_db = 1;
  s->url = strdup(url);
  s->path = strdup(url + strlen(scheme));
  int rc = s->url && s->path ? open_file(s, err) : mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc != MB_OK) {
    mb_marks_close(s);
    return rc;
  }
  *out = s;
  return MB_OK;
}

/* --- the SQLite transport's marks: in the bus database ------------------------------------- */

int sq_marks_of(sqlite_transport *t, mb_marks **out, mb_err *err) {
  if (t->marks == NULL) {
    int rc = sq_marks_attach(t->db, t->path, &t->marks, err);
    if (rc != MB_OK) return rc;
  }
  *out = t->marks;
  return MB_OK;
}

int sqlite_mark_check(mb_transport *base, const mb_mark *m, int *stale, char *highest, size_t len,
                      mb_err *err) {
  mb_marks *s;
  int rc = sq_marks_of((sqlite_transport *)base, &s, err);
  return rc == MB_OK ? mb_marks_check(s, m, stale, highest, len, err) : rc;
}
