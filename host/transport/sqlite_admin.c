/* sqlite_admin.c — what an operator asks of the SQLite transport (see sqlite.c): the
 * queues with their counts (`moonbus queues`), and the audit retention sweep that keeps
 * the audit queue of the embedded bus from growing without bound when no `moonbus ops`
 * ingests it.
 *
 * Counts: a row whose visible_at has passed is ready (an expired lease included: the next
 * poll takes it again); a later one is in flight when a consumer holds its lease, delayed
 * otherwise. Consumers are the distinct lease owners of the rows in flight: the processes
 * handling a message of the queue right now (an idle consumer is not seen: SQLite keeps
 * no list of who polls).
 * The sweep: every host that declared an audit queue deletes, every hour (the first after a
 * minute), the copies of that queue queued more than MOONBUS_AUDIT_RETENTION days ago
 * (default 7; `?audit_retention=DAYS` in the URL beats it; 0 = off), in batches of
 * SWEEP_BATCH rows so that no transaction holds the write lock long. Several hosts
 * sweeping at once delete each row once.
 * Never: deletes a row a consumer holds, or a message of any other queue. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "transport/sqlite_internal.h"

#define SWEEP_EVERY 3600.0 /* seconds between sweeps ($MOONBUS_AUDIT_SWEEP for tests) */
#define SWEEP_FIRST 60.0
#define SWEEP_BATCH 1000
#define DEFAULT_RETENTION_DAYS 7.0

static const char *const queues_sql =
    "SELECT q.name,"
    " (SELECT count(*) FROM messages m WHERE m.queue = q.name AND m.visible_at <= ?1),"
    " (SELECT count(*) FROM messages m WHERE m.queue = q.name AND m.visible_at > ?1"
    "  AND m.lease_owner IS NULL),"
    " (SELECT count(*) FROM messages m WHERE m.queue = q.name AND m.visible_at > ?1"
    "  AND m.lease_owner IS NOT NULL),"
    " (SELECT count(DISTINCT m.lease_owner) FROM messages m WHERE m.queue = q.name"
    "  AND m.visible_at > ?1 AND m.lease_owner IS NOT NULL)"
    " FROM queues q WHERE (?2 IS NULL AND substr(q.name, 1, 14) <> 'moonbus.reply.')"
    " OR q.name = ?2 ORDER BY q.name";

static int queue_rows(sqlite_transport *t, sqlite3_stmt *s, const char *name, mb_queue_fn fn,
                      void *ud, mb_err *err) {
  int step, seen = 0;
  while ((step = sqlite3_step(s)) == SQLITE_ROW) {
    mb_queue_info q = {(const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
                       sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
                       sqlite3_column_int64(s, 4)};
    if (q.name == NULL) continue;
    fn(ud, &q);
    seen++;
  }
  if (step != SQLITE_DONE) return sq_db_fail(t, err, "counting the messages of each queue");
  if (name && !seen)
    return mb_err_set(err, MB_ENOTFOUND, "no queue named '%s' in sqlite://%s", name,
                      t->abs_path ? t->abs_path : t->path);
  return MB_OK;
}

int sqlite_queues(mb_transport *base, const char *name, mb_queue_fn fn, void *ud, mb_err *err) {
  sqlite_transport *t = (sqlite_transport *)base;
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(t->db, queues_sql, -1, &s, NULL) != SQLITE_OK)
    return sq_db_fail(t, err, "counting the messages of each queue");
  sqlite3_bind_int64(s, 1, sq_now_ms());
  sq_bind_text(s, 2, name);
  int rc = queue_rows(t, s, name, fn, ud, err);
  sqlite3_finalize(s);
  return rc;
}

/* --- the audit retention sweep ------------------------------------------------------------ */

int sq_sweep_queue(sqlite_transport *t, const char *queue, int64_t before_ms, long *removed,
                   mb_err *err) {
  sqlite3_stmt *s;
  *removed = 0;
  if (sqlite3_prepare_v2(t->db,
                         "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE"
                         " queue = ?1 AND visible_at < ?2 AND lease_owner IS NULL LIMIT ?3)",
                         -1, &s, NULL) != SQLITE_OK)
    return sq_db_fail(t, err, "sweeping old audit copies");
  int rc = MB_OK, changed;
  do {
    sqlite3_reset(s);
    sq_bind_text(s, 1, queue);
    sqlite3_bind_int64(s, 2, before_ms);
    sqlite3_bind_int(s, 3, SWEEP_BATCH);
    rc = sq_exec(t, s, err, "sweeping old audit copies");
    changed = rc == MB_OK ? sqlite3_changes(t->db) : 0;
    *removed += changed;
  } while (rc == MB_OK && changed == SWEEP_BATCH);
  sqlite3_finalize(s);
  return rc;
}

static void on_audit_sweep(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  sqlite_transport *t = w->data;
  long removed;
  mb_err err;
  int64_t before = sq_now_ms() - (int64_t)(t->audit_days * 86400e3);
  if (sq_sweep_queue(t, t->audit_queue, before, &removed, &err) != MB_OK)
    mb_log(MB_WARN, NULL, NULL, NULL, "the audit queue '%s' could not be swept: %s",
           t->audit_queue, err.msg);
  else if (removed)
    mb_log(MB_INFO, NULL, NULL, NULL,
           "%ld audit copies older than %g days removed from queue '%s' "
           "(MOONBUS_AUDIT_RETENTION; 0 turns it off)",
           removed, t->audit_days, t->audit_queue);
}

double sq_audit_retention_default(void) {
  const char *env = getenv("MOONBUS_AUDIT_RETENTION");
  char *end;
  double d = env && *env ? strtod(env, &end) : DEFAULT_RETENTION_DAYS;
  if (env && *env && (*end != '\0' || d < 0 || d > 36500)) {
    mb_log(MB_WARN, NULL, NULL, NULL,
           "MOONBUS_AUDIT_RETENTION=%s is not a number of days (0-36500): using %g", env,
           DEFAULT_RETENTION_DAYS);
    d = DEFAULT_RETENTION_DAYS;
  }
  return d;
}

void sq_audit_sweep_start(sqlite_transport *t, const char *audit_queue) {
  if (audit_queue == NULL || !(t->audit_days > 0) || t->loop == NULL) return;
  if (t->audit_queue && strcmp(t->audit_queue, audit_queue) == 0) return;
  char *copy = strdup(audit_queue);
  if (copy == NULL) return; /* no sweep this time; the next declare tries again */
  free(t->audit_queue);
  t->audit_queue = copy;
  if (ev_is_active(&t->audit_sweep)) return;
  const char *env = getenv("MOONBUS_AUDIT_SWEEP");
  double every = env && atof(env) > 0 ? atof(env) : SWEEP_EVERY;
  ev_timer_init(&t->audit_sweep, on_audit_sweep, every < SWEEP_FIRST ? every : SWEEP_FIRST,
                every);
  t->audit_sweep.data = t;
  ev_timer_start(t->loop, &t->audit_sweep);
  ev_unref(t->loop); /* the sweep alone does not keep a loop running */
}

void sq_audit_sweep_stop(sqlite_transport *t) {
  if (t->loop && ev_is_active(&t->audit_sweep)) {
    ev_ref(t->loop); /* it was unref'd when started */
    ev_timer_stop(t->loop, &t->audit_sweep);
  }
  free(t->audit_queue);
  t->audit_queue = NULL;
}
