/* sqlite.c — the embedded SQLite transport (DESIGN §5): one WAL database that every
 * process of a machine shares, competing for rows.
 *
 * Owns: the schema, leases (a leased row has lease_owner = this open's token and a
 * visible_at in the future, renewed while its handler runs), the durable delivery count,
 * ack + outbox in one transaction, delays as visible_at, and wake-ups without busy
 * polling: inotify on the database's folder tells us another process committed, and one
 * ev_timer waits for the earliest row that is not yet visible.
 * Never: calls a delivery callback from inside complete/release (polls are always
 * scheduled on the loop), holds a transaction across loop iterations, or knows Lua.
 *
 * Schema (version 1; tests and operators may query it):
 *   queues(name PRIMARY KEY, created_at)
 *   messages(seq PRIMARY KEY AUTOINCREMENT, queue, id, type, correlation_id, reply_to,
 *            headers TEXT (JSON object of strings), body BLOB, visible_at INTEGER (Unix ms),
 *            deliveries INTEGER, lease_owner TEXT)
 *   subscriptions(event_type, queue)  event_owners(event_type PRIMARY KEY, endpoint, since)
 *   reply_queues(queue PRIMARY KEY, host, pid, since): the per-process reply queues
 *     (moonbus.reply.<instance>), deleted at close; one whose process died is swept by the
 *     next process on the same host that opens its own. */
#include "transport/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define SCHEMA_VERSION 1
#define LEASE_BATCH 64
#define BUSY_TIMEOUT_USEC 10000000 /* give up waiting for a lock after 10 s */
#define SAFETY_POLL 5.0 /* seconds: a slow read in case a file change went unseen */

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

enum stmt_id {
  S_BEGIN, S_COMMIT, S_ROLLBACK, S_QUEUE_EXISTS, S_INSERT, S_INSERT_SUBS, S_ACK, S_RELEASE,
  S_NEXT, S_LEASE, S_RENEW, S_RELEASE_ALL, S_DEPTH, S_OWNER, S_CLAIM, S_ADD_QUEUE, S_UNSUB,
  S_SUB, S_BROWSE, S_TAKE_REPLIES, S_ADD_REPLY_QUEUE, S_REPLY_QUEUES, S_DROP_QUEUE_ROWS,
  S_DROP_QUEUE, S_DROP_REPLY_QUEUE, S_REMOVE, S_COUNT
};

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
    [S_OWNER] = "SELECT endpoint FROM event_owners WHERE event_type = ?1",
    [S_CLAIM] = "INSERT OR IGNORE INTO event_owners(event_type, endpoint, since)"
                " VALUES(?1, ?2, ?3)",
    [S_ADD_QUEUE] = "INSERT OR IGNORE INTO queues(name, created_at) VALUES(?1, ?2)",
    [S_UNSUB] = "DELETE FROM subscriptions WHERE queue = ?1",
    [S_SUB] = "INSERT OR IGNORE INTO subscriptions(event_type, queue) VALUES(?1, ?2)",
    [S_BROWSE] = "SELECT seq, id, type, correlation_id, reply_to, headers, body, deliveries"
                 " FROM messages WHERE queue = ?1 ORDER BY seq LIMIT ?2",
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
                 " AND id = ?2 AND lease_owner IS NULL ORDER BY seq LIMIT 1)",
};

typedef struct lease {
  int64_t seq;
  struct lease *prev, *next;
} lease;

typedef struct sqlite_transport {
  mb_transport base;
  struct ev_loop *loop;
  sqlite3 *db;
  sqlite3_stmt *stmt[S_COUNT];
  char *path, *dir, *file; /* database path, its folder, its file name */
  char token[MB_ID_LEN + 1]; /* lease_owner of this open */
  int lease_ms;
  /* consuming */
  char *queue;
  unsigned max_in_flight, in_flight;
  mb_deliver_fn deliver;
  void *deliver_ud;
  int consuming;
  lease *leases;
  ev_timer poll_soon, wake, renew;
  ev_io changes;
  int inotify_fd;
  int64_t busy_since; /* when the current wait for a lock began (usec) */
  int bell_fd;        /* PATH-bell: written after each commit that others should see */
  int bell_broken;    /* a failed ring was logged once */
  /* replies to this process's requests */
  char *reply_queue;
  mb_deliver_fn reply_fn;
  void *reply_ud;
  char instance[128];
} sqlite_transport;

static int64_t now_ms(void) { return mb_now_usec() / 1000; }

static void random_u32(unsigned *out) {
  if (getrandom(out, sizeof *out, GRND_NONBLOCK) != (ssize_t)sizeof *out)
    *out = (unsigned)mb_now_usec();
}

/* A process watching the folder learns of a commit from the WAL write, but that write
 * lands before the commit is visible to readers; so after committing, each writer also
 * "rings" a small bell file, whose change arrives when the rows can be seen. */
static void ring(sqlite_transport *t) {
  if (t->bell_fd < 0 || pwrite(t->bell_fd, "!", 1, 0) == 1 || t->bell_broken) return;
  t->bell_broken = 1;
  mb_log(MB_WARN, NULL, NULL, NULL, "cannot write %s-bell (%s): other processes will see new "
         "messages within %.0f s instead of at once", t->path, strerror(errno), SAFETY_POLL);
}

/* --- statements ------------------------------------------------------------------------ */

static sqlite3_stmt *stmt(sqlite_transport *t, enum stmt_id id) {
  sqlite3_stmt *s = t->stmt[id];
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return s;
}

static int db_fail(sqlite_transport *t, mb_err *err, const char *what) {
  int code = sqlite3_errcode(t->db);
  int status = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? MB_EBUSY : MB_EIO;
  return mb_err_set(err, status, "sqlite %s: %s while %s", t->path, sqlite3_errmsg(t->db), what);
}

/* Runs a statement that returns no rows. */
static int exec_stmt(sqlite_transport *t, sqlite3_stmt *s, mb_err *err, const char *what) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? MB_OK : db_fail(t, err, what);
}

static int begin(sqlite_transport *t, mb_err *err) {
  return exec_stmt(t, stmt(t, S_BEGIN), err, "starting a transaction");
}

static int commit(sqlite_transport *t, mb_err *err) {
  return exec_stmt(t, stmt(t, S_COMMIT), err, "committing");
}

static void rollback(sqlite_transport *t) {
  if (sqlite3_get_autocommit(t->db)) return; /* SQLite already rolled back */
  sqlite3_step(stmt(t, S_ROLLBACK));
  sqlite3_reset(t->stmt[S_ROLLBACK]);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
  if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(s, i);
}

/* --- sending ----------------------------------------------------------------------------- */

static int queue_exists(sqlite_transport *t, const char *queue, mb_err *err, int *exists) {
  sqlite3_stmt *s = stmt(t, S_QUEUE_EXISTS);
  bind_text(s, 1, queue);
  int rc = sqlite3_step(s);
  *exists = rc == SQLITE_ROW;
  sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? MB_OK : db_fail(t, err, "looking up a queue");
}

static int unroutable(const mb_outgoing *m, mb_err *err) {
  return mb_err_set(err, MB_EUNROUTABLE,
                    "no queue named '%s' (message %s of type %s): start the %s endpoint once "
                    "so that its queue exists, or fix the route",
                    m->dest, m->env.id, m->env.type, m->dest);
}

static int insert_one(sqlite_transport *t, const mb_outgoing *m, mb_err *err) {
  int exists = 1, rc = MB_OK;
  if (m->route == MB_ROUTE_QUEUE && (rc = queue_exists(t, m->dest, err, &exists)) != MB_OK)
    return rc;
  if (!exists && m->to_requester) {
    mb_log(MB_WARN, NULL, m->env.id, m->env.type, "reply dropped: its requester's reply "
           "queue '%s' is gone (the requesting process ended)", m->dest);
    return MB_OK;
  }
  if (!exists) return unroutable(m, err);
  size_t hlen;
  char *headers = mb_headers_to_json(&m->env.headers, &hlen);
  if (headers == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory encoding headers");
  int publish = m->route == MB_ROUTE_PUBLISH;
  sqlite3_stmt *s = stmt(t, publish ? S_INSERT_SUBS : S_INSERT);
  bind_text(s, 1, publish ? m->env.type : m->dest);
  bind_text(s, 2, m->env.id);
  bind_text(s, 3, m->env.type);
  bind_text(s, 4, m->env.correlation_id);
  bind_text(s, 5, m->env.reply_to);
  sqlite3_bind_text(s, 6, headers, (int)hlen, SQLITE_STATIC);
  sqlite3_bind_blob(s, 7, m->env.body ? m->env.body : "", (int)m->env.body_len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 8, now_ms() + (int64_t)(m->delay * 1000.0));
  rc = sqlite3_step(s);
  sqlite3_reset(s);
  free(headers);
  if (rc != SQLITE_DONE) {
    char what[MB_ID_LEN + 64];
    snprintf(what, sizeof what, "storing message %s", m->env.id);
    return db_fail(t, err, what);
  }
  return MB_OK;
}

static int insert_all(sqlite_transport *t, mb_outgoing *const *msgs, size_t n, mb_err *err) {
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
  int rc = begin(t, err);
  if (rc == MB_OK) rc = insert_all(t, msgs, n, err);
  if (rc == MB_OK) rc = commit(t, err);
  if (rc != MB_OK) {
    rollback(t);
    return rc;
  }
  ring(t);
  done(ud, MB_OK, NULL);
  return MB_OK;
}

/* --- leases -------------------------------------------------------------------------------- */

static void schedule_poll(sqlite_transport *t);

static void lease_add(sqlite_transport *t, lease *l) {
  l->prev = NULL;
  l->next = t->leases;
  if (t->leases) t->leases->prev = l;
  t->leases = l;
  t->in_flight++;
  if (!ev_is_active(&t->renew)) ev_timer_again(t->loop, &t->renew);
}

static void lease_drop(sqlite_transport *t, mb_delivery *d) {
  lease *l = d->transport_data;
  if (l == NULL) return;
  if (l->prev) l->prev->next = l->next;
  else t->leases = l->next;
  if (l->next) l->next->prev = l->prev;
  free(l);
  d->transport_data = NULL;
  t->in_flight--;
  if (t->leases == NULL) ev_timer_stop(t->loop, &t->renew);
  schedule_poll(t);
}

static void renew_leases(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  sqlite_transport *t = w->data;
  sqlite3_stmt *s = stmt(t, S_RENEW);
  bind_text(s, 1, t->token);
  sqlite3_bind_int64(s, 2, now_ms() + t->lease_ms);
  mb_err err;
  if (exec_stmt(t, s, &err, "renewing leases") != MB_OK)
    mb_log(MB_WARN, NULL, NULL, NULL, "%s (will try again)", err.msg);
}

static int ack_row(sqlite_transport *t, mb_delivery *d, mb_err *err) {
  sqlite3_stmt *s = stmt(t, S_ACK);
  sqlite3_bind_int64(s, 1, (sqlite3_int64)d->tag);
  bind_text(s, 2, t->token);
  if (exec_stmt(t, s, err, "acknowledging") != MB_OK) return err->status;
  if (sqlite3_changes(t->db) == 0)
    return mb_err_set(err, MB_ELOST,
                      "message %s in queue '%s' is no longer ours: its lease expired and "
                      "another consumer took it",
                      d->env.id, d->queue);
  return MB_OK;
}

static int sqlite_complete(mb_transport *base, mb_delivery *d, mb_outgoing *const *outbox,
                           size_t n, mb_done_fn done, void *ud, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  int rc = begin(t, err);
  if (rc == MB_OK) rc = ack_row(t, d, err);
  if (rc == MB_OK) rc = insert_all(t, outbox, n, err);
  if (rc == MB_OK) rc = commit(t, err);
  if (rc != MB_OK) rollback(t);
  if (rc == MB_ELOST) lease_drop(t, d); /* nothing more to do with it */
  if (rc != MB_OK) return rc;
  if (n) ring(t);
  lease_drop(t, d);
  done(ud, MB_OK, NULL);
  return MB_OK;
}

static int sqlite_release(mb_transport *base, mb_delivery *d, double delay, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite3_stmt *s = stmt(t, S_RELEASE);
  sqlite3_bind_int64(s, 1, (sqlite3_int64)d->tag);
  bind_text(s, 2, t->token);
  sqlite3_bind_int64(s, 3, now_ms() + (int64_t)(delay * 1000.0));
  int rc = exec_stmt(t, s, err, "releasing a message");
  if (rc == MB_OK) ring(t);
  lease_drop(t, d);
  return rc;
}

/* --- receiving ------------------------------------------------------------------------------- */

static char *column_text(sqlite3_stmt *s, int i) {
  const unsigned char *v = sqlite3_column_text(s, i);
  return v ? strdup((const char *)v) : NULL;
}

/* A row of S_LEASE or S_BROWSE as a delivery from queue; a row whose headers do not decode
 * still becomes one, with d->problem set, so that the pipeline parks it instead of losing
 * it. NULL when out of memory. */
static mb_delivery *delivery_from_row(sqlite3_stmt *s, const char *queue) {
  mb_delivery *d = calloc(1, sizeof *d);
  if (d == NULL || (d->queue = strdup(queue)) == NULL) goto fail;
  mb_envelope_init(&d->env);
  d->tag = (uint64_t)sqlite3_column_int64(s, 0);
  const char *id = (const char *)sqlite3_column_text(s, 1);
  snprintf(d->env.id, sizeof d->env.id, "%s", id ? id : "");
  d->env.type = column_text(s, 2);
  d->env.correlation_id = column_text(s, 3);
  d->env.reply_to = column_text(s, 4);
  const char *headers = (const char *)sqlite3_column_text(s, 5);
  mb_err err;
  if (mb_headers_from_json(headers, headers ? (size_t)sqlite3_column_bytes(s, 5) : 0,
                           &d->env.headers, &err) != MB_OK)
    d->problem = strdup(err.msg);
  const void *body = sqlite3_column_blob(s, 6);
  if (mb_envelope_set_body(&d->env, body, body ? (size_t)sqlite3_column_bytes(s, 6) : 0) != MB_OK)
    goto fail;
  d->delivery_count = (uint32_t)sqlite3_column_int64(s, 7);
  return d;
fail:
  mb_delivery_free(d);
  return NULL;
}

/* A leased row as a delivery that carries its lease. */
static mb_delivery *leased_from_row(sqlite_transport *t, sqlite3_stmt *s) {
  mb_delivery *d = delivery_from_row(s, t->queue);
  lease *l = d ? calloc(1, sizeof *l) : NULL;
  if (l == NULL) {
    mb_delivery_free(d);
    return NULL;
  }
  l->seq = (int64_t)d->tag;
  d->transport_data = l;
  return d;
}

static int cmp_seq(const void *a, const void *b) {
  uint64_t x = (*(mb_delivery *const *)a)->tag, y = (*(mb_delivery *const *)b)->tag;
  return x < y ? -1 : x > y;
}

/* Leases up to max ready rows in one transaction; *n gets how many. Rows that could not
 * be turned into deliveries (out of memory) stay leased and come back when it expires. */
static int lease_rows(sqlite_transport *t, mb_delivery **out, unsigned max, size_t *n,
                      mb_err *err) {
  *n = 0;
  int rc = begin(t, err);
  if (rc != MB_OK) return rc;
  int64_t now = now_ms();
  sqlite3_stmt *s = stmt(t, S_LEASE);
  bind_text(s, 1, t->queue);
  bind_text(s, 2, t->token);
  sqlite3_bind_int64(s, 3, now + t->lease_ms);
  sqlite3_bind_int64(s, 4, now);
  sqlite3_bind_int(s, 5, (int)max);
  int step;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    mb_delivery *d = leased_from_row(t, s);
    if (d) out[(*n)++] = d;
  }
  sqlite3_reset(s);
  if (step != SQLITE_DONE || commit(t, err) != MB_OK) {
    if (step != SQLITE_DONE) db_fail(t, err, "leasing messages");
    rollback(t);
    for (size_t i = 0; i < *n; i++) {
      free(out[i]->transport_data);
      mb_delivery_free(out[i]);
    }
    *n = 0;
    return err->status;
  }
  qsort(out, *n, sizeof *out, cmp_seq);
  return MB_OK;
}

/* The earliest visible_at of the queue (leased rows included: their lease end), or -1. */
static int next_visible(sqlite_transport *t, int64_t *at, mb_err *err) {
  sqlite3_stmt *s = stmt(t, S_NEXT);
  bind_text(s, 1, t->queue);
  int rc = sqlite3_step(s);
  *at = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL ? sqlite3_column_int64(s, 0)
                                                                       : -1;
  sqlite3_reset(s);
  return rc == SQLITE_ROW ? MB_OK : db_fail(t, err, "looking for ready messages");
}

static void arm_wake(sqlite_transport *t, int64_t at) {
  double in = at < 0 ? SAFETY_POLL : (double)(at - now_ms() + 1) / 1000.0;
  if (in > SAFETY_POLL) in = SAFETY_POLL;
  if (in < 0.001) in = 0.001;
  ev_timer_stop(t->loop, &t->wake);
  ev_timer_set(&t->wake, in, 0.);
  ev_timer_start(t->loop, &t->wake);
}

static void hand_out(sqlite_transport *t, mb_delivery **batch, size_t n) {
  for (size_t i = 0; i < n; i++) lease_add(t, batch[i]->transport_data);
  for (size_t i = 0; i < n; i++) t->deliver(t->deliver_ud, batch[i]);
}

/* One round: lease what is ready (up to the free capacity), then arm the wake timer for
 * what is not. Deliveries are handed out last, so a callback that completes at once
 * finds the transport in a consistent state. */
static void poll_queue(sqlite_transport *t) {
  mb_err err = {MB_OK, ""};
  for (int round = 0; round < 4 && t->consuming; round++) {
    if (t->in_flight >= t->max_in_flight) return; /* complete/release poll again */
    int64_t at;
    if (next_visible(t, &at, &err) != MB_OK) break;
    if (at < 0 || at > now_ms()) {
      arm_wake(t, at);
      return;
    }
    unsigned room = t->max_in_flight - t->in_flight;
    mb_delivery *batch[LEASE_BATCH];
    size_t n;
    if (lease_rows(t, batch, room < LEASE_BATCH ? room : LEASE_BATCH, &n, &err) != MB_OK) break;
    hand_out(t, batch, n);
  }
  if (!t->consuming) return;
  if (err.status == MB_OK) {
    schedule_poll(t); /* still more ready: go on after other watchers had their turn */
    return;
  }
  mb_log(MB_WARN, t->queue, NULL, NULL, "%s; looking again shortly", err.msg);
  arm_wake(t, now_ms() + 100);
}

static void poll_replies(sqlite_transport *t);

static void on_poll_soon(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  poll_replies(w->data);
  poll_queue(w->data);
}

static void schedule_poll(sqlite_transport *t) {
  if ((t->consuming || t->reply_queue) && !ev_is_active(&t->poll_soon)) {
    ev_timer_set(&t->poll_soon, 0., 0.);
    ev_timer_start(t->loop, &t->poll_soon);
  }
}

/* inotify: another process (or we) wrote the database or its WAL. */
static void on_changes(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  sqlite_transport *t = w->data;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  size_t flen = strlen(t->file);
  int relevant = 0;
  ssize_t n;
  while ((n = read(t->inotify_fd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      if (e->len && strncmp(e->name, t->file, flen) == 0) relevant = 1;
      p += sizeof *e + e->len;
    }
  }
  if (relevant) schedule_poll(t);
}

static int watch_changes(sqlite_transport *t, mb_err *err) {
  t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (t->inotify_fd < 0 ||
      inotify_add_watch(t->inotify_fd, t->dir, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    int e = errno;
    if (t->inotify_fd >= 0) close(t->inotify_fd);
    t->inotify_fd = -1;
    return mb_err_set(err, MB_EIO, "cannot watch %s for new messages: %s", t->dir, strerror(e));
  }
  ev_io_init(&t->changes, on_changes, t->inotify_fd, EV_READ);
  t->changes.data = t;
  ev_io_start(t->loop, &t->changes);
  return MB_OK;
}

static int sqlite_consume(mb_transport *base, const char *queue, unsigned max_in_flight,
                          mb_deliver_fn fn, void *ud, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  if (t->consuming) return mb_err_set(err, MB_EINVAL, "already consuming queue '%s'", t->queue);
  char *copy = strdup(queue);
  if (copy == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  free(t->queue);
  t->queue = copy;
  t->max_in_flight = max_in_flight ? max_in_flight : 1;
  t->deliver = fn;
  t->deliver_ud = ud;
  if (t->inotify_fd < 0) {
    int rc = watch_changes(t, err);
    if (rc != MB_OK) return rc;
  }
  t->consuming = 1;
  schedule_poll(t);
  return MB_OK;
}

static void unwatch_changes(sqlite_transport *t) {
  ev_timer_stop(t->loop, &t->poll_soon);
  if (t->inotify_fd >= 0) {
    ev_io_stop(t->loop, &t->changes);
    close(t->inotify_fd);
    t->inotify_fd = -1;
  }
}

static void sqlite_stop_consuming(mb_transport *base) {
  sqlite_transport *t = (sqlite_transport *)base;
  t->consuming = 0;
  ev_timer_stop(t->loop, &t->wake);
  if (t->reply_queue == NULL) unwatch_changes(t); /* replies keep the watch */
}

static int add_queue(sqlite_transport *t, const char *name, const char *when, mb_err *err);

/* --- replies ----------------------------------------------------------------------------------- */

/* Takes every reply in this process's reply queue, LEASE_BATCH per DELETE ... RETURNING
 * (SQLite deletes every row at the first step, so each statement is read to its end), and
 * hands them out after the statement is done. */
static void poll_replies(sqlite_transport *t) {
  if (t->reply_queue == NULL) return;
  mb_delivery *got[LEASE_BATCH];
  size_t n;
  do {
    n = 0;
    sqlite3_stmt *s = stmt(t, S_TAKE_REPLIES);
    bind_text(s, 1, t->reply_queue);
    sqlite3_bind_int64(s, 2, now_ms());
    sqlite3_bind_int(s, 3, LEASE_BATCH);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
      mb_delivery *d = n < LEASE_BATCH ? delivery_from_row(s, t->reply_queue) : NULL;
      if (d) got[n++] = d;
    }
    if (step != SQLITE_DONE) {
      mb_err err;
      db_fail(t, &err, "taking replies");
      mb_log(MB_WARN, t->reply_queue, NULL, NULL, "%s; looking again shortly", err.msg);
    }
    sqlite3_reset(s);
    for (size_t i = 0; i < n; i++) t->reply_fn(t->reply_ud, got[i]);
  } while (n == LEASE_BATCH && t->reply_queue);
}

static int drop_queue(sqlite_transport *t, const char *queue, mb_err *err) {
  enum stmt_id steps[] = {S_DROP_QUEUE_ROWS, S_DROP_QUEUE, S_DROP_REPLY_QUEUE};
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < sizeof steps / sizeof *steps; i++) {
    sqlite3_stmt *s = stmt(t, steps[i]);
    bind_text(s, 1, queue);
    rc = exec_stmt(t, s, err, "dropping a reply queue");
  }
  return rc;
}

/* Drops the reply queues of processes of this host that are gone (crashed, killed). */
static int sweep_reply_queues(sqlite_transport *t, const char *host, mb_err *err) {
  char dead[16][MB_QUEUE_NAME_MAX + 1];
  size_t n = 0;
  sqlite3_stmt *s = stmt(t, S_REPLY_QUEUES);
  bind_text(s, 1, host);
  while (n < 16 && sqlite3_step(s) == SQLITE_ROW) {
    pid_t pid = (pid_t)sqlite3_column_int64(s, 1);
    if (kill(pid, 0) != 0 && errno == ESRCH)
      snprintf(dead[n++], sizeof dead[0], "%s", (const char *)sqlite3_column_text(s, 0));
  }
  sqlite3_reset(s);
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < n; i++) rc = drop_queue(t, dead[i], err);
  return rc;
}

static int add_reply_queue(sqlite_transport *t, const char *queue, mb_err *err) {
  char when[MB_TIME_LEN + 1], host[256] = "localhost";
  mb_time_iso(mb_now_usec(), when);
  gethostname(host, sizeof host - 1);
  int rc = begin(t, err);
  if (rc == MB_OK) rc = sweep_reply_queues(t, host, err);
  if (rc == MB_OK) rc = add_queue(t, queue, when, err);
  if (rc == MB_OK) {
    sqlite3_stmt *s = stmt(t, S_ADD_REPLY_QUEUE);
    bind_text(s, 1, queue);
    bind_text(s, 2, host);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)getpid());
    bind_text(s, 4, when);
    rc = exec_stmt(t, s, err, "adding a reply queue");
  }
  if (rc == MB_OK) rc = commit(t, err);
  if (rc != MB_OK) rollback(t);
  return rc;
}

static int sqlite_listen_replies(mb_transport *base, mb_deliver_fn fn, void *ud, char *address,
                                 size_t len, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  if (t->reply_queue == NULL) {
    char queue[MB_QUEUE_NAME_MAX + 1];
    snprintf(queue, sizeof queue, MB_REPLY_QUEUE_PREFIX "%.200s", t->instance);
    int rc = add_reply_queue(t, queue, err);
    if (rc == MB_OK && t->inotify_fd < 0) rc = watch_changes(t, err);
    if (rc == MB_OK && (t->reply_queue = strdup(queue)) == NULL)
      rc = mb_err_set(err, MB_ENOMEM, "out of memory");
    if (rc != MB_OK) return rc;
  }
  t->reply_fn = fn;
  t->reply_ud = ud;
  snprintf(address, len, "%s", t->reply_queue);
  schedule_poll(t);
  return MB_OK;
}

static void close_replies(sqlite_transport *t) {
  if (t->reply_queue == NULL) return;
  mb_err err;
  int rc = begin(t, &err);
  if (rc == MB_OK) rc = drop_queue(t, t->reply_queue, &err);
  if (rc == MB_OK) rc = commit(t, &err);
  if (rc != MB_OK) {
    rollback(t);
    mb_log(MB_WARN, t->reply_queue, NULL, NULL, "%s: the next process on this host sweeps it",
           err.msg);
  }
  free(t->reply_queue);
  t->reply_queue = NULL;
}

/* --- topology ---------------------------------------------------------------------------------- */

static int add_queue(sqlite_transport *t, const char *name, const char *when, mb_err *err) {
  sqlite3_stmt *s = stmt(t, S_ADD_QUEUE);
  bind_text(s, 1, name);
  bind_text(s, 2, when);
  return exec_stmt(t, s, err, "creating a queue");
}

static int owner_lookup(sqlite_transport *t, const char *type, char *out, size_t len,
                        mb_err *err) {
  sqlite3_stmt *s = stmt(t, S_OWNER);
  bind_text(s, 1, type);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) snprintf(out, len, "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_reset(s);
  if (rc == SQLITE_ROW) return MB_OK;
  if (rc == SQLITE_DONE)
    return mb_err_set(err, MB_ENOTFOUND, "no endpoint publishes %s yet", type);
  return db_fail(t, err, "looking up the owner of an event");
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
  sqlite3_stmt *s = stmt(t, S_CLAIM);
  bind_text(s, 1, type);
  bind_text(s, 2, endpoint);
  bind_text(s, 3, when);
  return exec_stmt(t, s, err, "claiming an event type");
}

static int subscribe_all(sqlite_transport *t, const mb_topology *topo, mb_err *err) {
  sqlite3_stmt *s = stmt(t, S_UNSUB);
  bind_text(s, 1, topo->endpoint);
  int rc = exec_stmt(t, s, err, "updating subscriptions");
  for (size_t i = 0; rc == MB_OK && i < topo->n_subscriptions; i++) {
    s = stmt(t, S_SUB);
    bind_text(s, 1, topo->subscriptions[i]);
    bind_text(s, 2, topo->endpoint);
    rc = exec_stmt(t, s, err, "subscribing");
  }
  return rc;
}

static int sqlite_declare(mb_transport *base, const mb_topology *topo, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  char when[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec(), when);
  int rc = begin(t, err);
  if (rc == MB_OK) rc = add_queue(t, topo->endpoint, when, err);
  if (rc == MB_OK && topo->error_queue) rc = add_queue(t, topo->error_queue, when, err);
  if (rc == MB_OK && topo->audit_queue) rc = add_queue(t, topo->audit_queue, when, err);
  for (size_t i = 0; rc == MB_OK && i < topo->n_owned; i++)
    rc = claim(t, topo->owned[i], topo->endpoint, when, err);
  if (rc == MB_OK) rc = subscribe_all(t, topo, err);
  if (rc == MB_OK) rc = commit(t, err);
  if (rc != MB_OK) rollback(t);
  return rc;
}

static int sqlite_owner_of(mb_transport *base, const char *type, char *out, size_t len,
                           mb_err *err) {
  return owner_lookup((sqlite_transport *)base, type, out, len, err);
}

static int sqlite_depth(mb_transport *base, const char *queue, long *ready, long *later,
                        mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite3_stmt *s = stmt(t, S_DEPTH);
  bind_text(s, 1, queue);
  sqlite3_bind_int64(s, 2, now_ms());
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *ready = (long)sqlite3_column_int64(s, 0);
    *later = (long)sqlite3_column_int64(s, 1);
  }
  sqlite3_reset(s);
  return rc == SQLITE_ROW ? MB_OK : db_fail(t, err, "counting messages");
}

static int sqlite_browse(mb_transport *base, const char *queue, size_t max, mb_delivery **out,
                         size_t *n, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite3_stmt *s = stmt(t, S_BROWSE);
  bind_text(s, 1, queue);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
  int step;
  *n = 0;
  while ((step = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
    mb_delivery *d = delivery_from_row(s, queue);
    if (d == NULL) break;
    out[(*n)++] = d;
  }
  sqlite3_reset(s);
  if (step == SQLITE_ROW || step == SQLITE_DONE) return MB_OK;
  for (size_t i = 0; i < *n; i++) mb_delivery_free(out[i]);
  *n = 0;
  return db_fail(t, err, "reading messages");
}

static int sqlite_remove(mb_transport *base, const char *queue, const char *id, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite3_stmt *s = stmt(t, S_REMOVE);
  bind_text(s, 1, queue);
  bind_text(s, 2, id);
  int rc = exec_stmt(t, s, err, "removing a message");
  if (rc == MB_OK && sqlite3_changes(t->db) == 0)
    return mb_err_set(err, MB_ENOTFOUND, "queue '%s' holds no message %s", queue, id);
  return rc;
}

/* --- open and close ---------------------------------------------------------------------------- */

static int parse_option(sqlite_transport *t, const char *opt, int *sync_full, mb_err *err) {
  int secs;
  char extra;
  if (strcmp(opt, "synchronous=full") == 0) *sync_full = 1;
  else if (strcmp(opt, "synchronous=normal") == 0) *sync_full = 0;
  else if (sscanf(opt, "lease=%d%c", &secs, &extra) == 1 && secs >= 1 && secs <= 3600)
    t->lease_ms = secs * 1000;
  else
    return mb_err_set(err, MB_EINVAL,
                      "unknown option '%s' in the sqlite URL: use synchronous=full|normal or "
                      "lease=SECONDS (1-3600)",
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
  if (t->file[0] == '\0') return mb_err_set(err, MB_EINVAL, "the sqlite URL '%s' names a folder", url);
  char opts[256];
  snprintf(opts, sizeof opts, "%s", p[plen] == '?' ? p + plen + 1 : "");
  char *save = NULL;
  for (char *o = strtok_r(opts, "&", &save); o; o = strtok_r(NULL, "&", &save)) {
    int rc = parse_option(t, o, sync_full, err);
    if (rc != MB_OK) return rc;
  }
  return MB_OK;
}

static int mkdir_p(const char *dir, mb_err *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; p++) {
    char c = *p;
    if (c != '/' && c != '\0') continue;
    *p = '\0';
    if (mkdir(path, 0775) != 0 && errno != EEXIST)
      return mb_err_set(err, MB_EIO, "cannot create folder %s: %s", path, strerror(errno));
    *p = c;
    if (c == '\0') return MB_OK;
  }
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
    return db_fail(t, err, "reading the schema version");
  int version = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
  sqlite3_finalize(s);
  if (version < 0) return db_fail(t, err, "reading the schema version");
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
      return db_fail(t, err, "switching to WAL");
    int rc = sqlite3_step(s);
    int wal = rc == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (wal) return MB_OK;
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED && rc != SQLITE_ROW) || tries >= 1000)
      return mb_err_set(err, MB_EIO, "sqlite %s: cannot switch to WAL journal mode (%s)",
                        t->path, sqlite3_errmsg(t->db));
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
      return db_fail(t, err, "preparing statements");
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
  int rc = mkdir_p(t->dir, err);
  if (rc != MB_OK) return rc;
  if (sqlite3_open_v2(t->path, &t->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    return mb_err_set(err, MB_EIO, "cannot open sqlite database %s: %s", t->path,
                      t->db ? sqlite3_errmsg(t->db) : "out of memory");
  if (sqlite3_busy_handler(t->db, on_busy, t) != SQLITE_OK)
    return db_fail(t, err, "setting the busy handler");
  rc = setup_schema(t, sync_full, err);
  if (rc == MB_OK) rc = prepare_all(t, err);
  if (rc != MB_OK) return rc;
  char bell[PATH_MAX];
  snprintf(bell, sizeof bell, "%s-bell", t->path);
  if ((t->bell_fd = open(bell, O_WRONLY | O_CREAT | O_CLOEXEC, 0664)) < 0)
    return mb_err_set(err, MB_EIO, "cannot open %s: %s", bell, strerror(errno));
  return MB_OK;
}

static void init_watchers(sqlite_transport *t) {
  ev_timer_init(&t->poll_soon, on_poll_soon, 0., 0.);
  ev_timer_init(&t->wake, on_poll_soon, SAFETY_POLL, 0.);
  double every = (double)t->lease_ms / 3000.0;
  ev_timer_init(&t->renew, renew_leases, every, every);
  t->poll_soon.data = t->wake.data = t->renew.data = t;
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

/* Leased rows of this open become visible again at once: another consumer (or the next
 * start of this one) takes them. Their delivery count is kept. */
static void release_all(sqlite_transport *t) {
  if (t->leases == NULL || t->stmt[S_RELEASE_ALL] == NULL) return;
  sqlite3_stmt *s = stmt(t, S_RELEASE_ALL);
  bind_text(s, 1, t->token);
  sqlite3_bind_int64(s, 2, now_ms());
  mb_err err;
  if (exec_stmt(t, s, &err, "releasing in-flight messages") != MB_OK)
    mb_log(MB_WARN, t->queue, NULL, NULL, "%s: their leases will expire instead", err.msg);
  else ring(t);
  while (t->leases) {
    lease *l = t->leases;
    t->leases = l->next;
    free(l);
  }
}

static void sqlite_close(mb_transport *base) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite_stop_consuming(base);
  if (t->db) close_replies(t);
  unwatch_changes(t);
  ev_timer_stop(t->loop, &t->renew);
  release_all(t);
  for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(t->stmt[i]);
  if (t->db && sqlite3_close(t->db) != SQLITE_OK)
    mb_log(MB_WARN, NULL, NULL, NULL, "sqlite %s did not close cleanly: %s", t->path,
           sqlite3_errmsg(t->db));
  if (t->bell_fd >= 0) close(t->bell_fd);
  free(t->queue);
  free(t->path);
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
    .browse = sqlite_browse,
    .remove = sqlite_remove,
    .listen_replies = sqlite_listen_replies,
    .close = sqlite_close,
};
