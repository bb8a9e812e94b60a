/* sqlite_replies.c — this process's reply queue on the SQLite transport (DESIGN §5):
 * moonbus.reply.<instance>, registered in reply_queues with host and pid, read without
 * acknowledgements, dropped at close; a queue whose process died is swept by the next
 * process of the same host that opens one. Never: leases a reply (a reply is taken). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "transport/sqlite_internal.h"

/* --- replies ----------------------------------------------------------------------------------- */

/* Takes every reply in this process's reply queue, LEASE_BATCH per DELETE ... RETURNING
 * (SQLite deletes every row at the first step, so each statement is read to its end), and
 * hands them out after the statement is done. */
/* A read first, so that of the processes woken by a commit only those with a reply take
 * the write lock (forty requesters each deleting nothing on every commit of the machine
 * starved the writers they waited for). On a failed read the take below reports it. */
static int replies_ready(sqlite_transport *t) {
  sqlite3_stmt *s = sq_stmt(t, S_NEXT);
  sq_bind_text(s, 1, t->reply_queue);
  int step = sqlite3_step(s);
  int ready = step != SQLITE_ROW || (sqlite3_column_type(s, 0) != SQLITE_NULL &&
                                     sqlite3_column_int64(s, 0) <= sq_now_ms());
  sqlite3_reset(s);
  return ready;
}

void sq_poll_replies(sqlite_transport *t) {
  if (t->reply_queue == NULL || !replies_ready(t)) return;
  mb_delivery *got[LEASE_BATCH];
  size_t n;
  do {
    n = 0;
    sqlite3_stmt *s = sq_stmt(t, S_TAKE_REPLIES);
    sq_bind_text(s, 1, t->reply_queue);
    sqlite3_bind_int64(s, 2, sq_now_ms());
    sqlite3_bind_int(s, 3, LEASE_BATCH);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
      mb_delivery *d = n < LEASE_BATCH ? sq_delivery_from_row(s, t->reply_queue) : NULL;
      if (d) got[n++] = d;
    }
    if (step != SQLITE_DONE) {
      mb_err err;
      sq_db_fail(t, &err, "taking replies");
      if (!t->paused)
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
    sqlite3_stmt *s = sq_stmt(t, steps[i]);
    sq_bind_text(s, 1, queue);
    rc = sq_exec(t, s, err, "dropping a reply queue");
  }
  return rc;
}

/* Drops the reply queues of processes of this host that are gone (crashed, killed). */
static int sweep_reply_queues(sqlite_transport *t, const char *host, mb_err *err) {
  char dead[16][MB_QUEUE_NAME_MAX + 1];
  size_t n = 0;
  sqlite3_stmt *s = sq_stmt(t, S_REPLY_QUEUES);
  sq_bind_text(s, 1, host);
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
  int rc = sq_begin(t, err);
  if (rc == MB_OK) rc = sweep_reply_queues(t, host, err);
  if (rc == MB_OK) rc = sq_add_queue(t, queue, when, err);
  if (rc == MB_OK) {
    sqlite3_stmt *s = sq_stmt(t, S_ADD_REPLY_QUEUE);
    sq_bind_text(s, 1, queue);
    sq_bind_text(s, 2, host);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)getpid());
    sq_bind_text(s, 4, when);
    rc = sq_exec(t, s, err, "adding a reply queue");
  }
  if (rc == MB_OK) rc = sq_commit(t, err);
  if (rc != MB_OK) sq_rollback(t);
  return rc;
}

int sqlite_listen_replies(mb_transport *base, mb_deliver_fn fn, void *ud, char *address,
                          size_t len, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  if (t->reply_queue == NULL) {
    char queue[MB_QUEUE_NAME_MAX + 1];
    snprintf(queue, sizeof queue, MB_REPLY_QUEUE_PREFIX "%.200s", t->instance);
    int rc = add_reply_queue(t, queue, err);
    if (rc == MB_OK && t->inotify_fd < 0) rc = sq_watch_changes(t, err);
    if (rc == MB_OK && (t->reply_queue = strdup(queue)) == NULL)
      rc = mb_err_set(err, MB_ENOMEM, "out of memory");
    if (rc != MB_OK) return rc;
  }
  t->reply_fn = fn;
  t->reply_ud = ud;
  snprintf(address, len, "%s", t->reply_queue);
  sq_schedule_poll(t);
  return MB_OK;
}

void sq_close_replies(sqlite_transport *t) {
  if (t->reply_queue == NULL) return;
  mb_err err;
  int rc = sq_begin(t, &err);
  if (rc == MB_OK) rc = drop_queue(t, t->reply_queue, &err);
  if (rc == MB_OK) rc = sq_commit(t, &err);
  if (rc != MB_OK) {
    sq_rollback(t);
    mb_log(MB_WARN, t->reply_queue, NULL, NULL, "%s: the next process on this host sweeps it",
           err.msg);
  }
  free(t->reply_queue);
  t->reply_queue = NULL;
}
