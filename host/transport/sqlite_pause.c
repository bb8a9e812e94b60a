/* sqlite_pause.c — what the SQLite transport does when its disk is full or failing (see
 * sqlite.c). A write that fails with SQLITE_FULL or SQLITE_IOERR pauses receiving: no
 * lease, no reply is taken, and the wake-ups that a failed commit itself causes (inotify
 * sees the WAL written) find nothing to do, so the host sleeps instead of retrying in a
 * tight loop. One line is logged when the pause begins, one when it ends. Every 0.5 s,
 * doubling up to 5 s, the transport looks again: for a full disk, first whether the
 * database's file system has room (RESUME_FREE_BYTES, so that a commit that happens to fit
 * in the reused WAL does not resume a bus that fails on the next one); then it gives back
 * the messages whose release failed meanwhile and writes one row; when that works it
 * resumes by itself.
 * Never: drops a lease it could not give back (sqlite_consume.c keeps it, renewed, until it
 * can), or logs a line per failed attempt. */
#include <sys/statvfs.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "transport/sqlite_internal.h"

#define PAUSE_FIRST 0.5 /* seconds before the first look after a failed write */
#define PAUSE_MAX 5.0   /* the looks' interval doubles up to this */
#define PAUSE_CALM 30.0 /* a pause this soon after a resume keeps its longer interval */
#define RESUME_FREE_BYTES (1u << 20)

static const char *trouble(const sqlite_transport *t) {
  return t->pause_code == SQLITE_FULL ? "disk full" : "disk I/O error";
}

static const char *paused_queue(const sqlite_transport *t) {
  return t->queue ? t->queue : t->reply_queue ? t->reply_queue : "";
}

void sq_pause(sqlite_transport *t, int code) {
  if (t->paused || !(t->consuming || t->reply_queue)) return;
  double now = mb_monotonic();
  t->paused = 1;
  t->pause_code = code;
  t->paused_since = now;
  if (t->backoff < PAUSE_FIRST || now - t->resumed_at > PAUSE_CALM) t->backoff = PAUSE_FIRST;
  ev_timer_stop(t->loop, &t->wake);
  ev_timer_stop(t->loop, &t->poll_soon);
  mb_log(MB_ERROR, t->queue, NULL, NULL,
         "%s: paused receiving from queue '%s' (sqlite %s: %s); trying again in %.1f s, "
         "then at most every %.0f s",
         trouble(t), paused_queue(t), t->path, sqlite3_errmsg(t->db), t->backoff, PAUSE_MAX);
  ev_timer_set(&t->unpause, t->backoff, 0.);
  ev_timer_start(t->loop, &t->unpause);
}

/* Room on the database's file system (root may use the reserved blocks). */
static int has_room(const sqlite_transport *t) {
  struct statvfs vfs;
  if (statvfs(t->dir, &vfs) != 0) return 1; /* cannot tell: the probe write decides */
  unsigned long long blocks = geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail;
  return blocks * vfs.f_frsize >= RESUME_FREE_BYTES;
}

/* One real write: a row of the queues table rewritten as it is. */
static int probe_write(sqlite_transport *t, mb_err *err) {
  sqlite3_stmt *s = sq_stmt(t, S_PROBE);
  sq_bind_text(s, 1, paused_queue(t));
  return sq_exec(t, s, err, "checking that the database can be written");
}

void sq_on_unpause(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  sqlite_transport *t = w->data;
  mb_err err;
  int ok = (t->pause_code != SQLITE_FULL || has_room(t)) && sq_retry_releases(t, &err) == MB_OK &&
           probe_write(t, &err) == MB_OK;
  if (!ok) {
    t->backoff = t->backoff * 2 < PAUSE_MAX ? t->backoff * 2 : PAUSE_MAX;
    ev_timer_set(&t->unpause, t->backoff, 0.);
    ev_timer_start(t->loop, &t->unpause);
    return;
  }
  t->paused = 0;
  t->resumed_at = mb_monotonic();
  mb_log(MB_WARN, t->queue, NULL, NULL, /* as visible as the pause it ends */
         "%s: resumed receiving from queue '%s' after %.1f s (sqlite %s can be written again)",
         trouble(t), paused_queue(t), t->resumed_at - t->paused_since, t->path);
  sq_schedule_poll(t);
}

void sq_stop_pause(sqlite_transport *t) {
  ev_timer_stop(t->loop, &t->unpause);
  t->paused = 0;
}
