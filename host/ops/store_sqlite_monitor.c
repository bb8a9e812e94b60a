/* store_sqlite_monitor.c — the monitoring in the SQLite ops store (DESIGN §11, see
 * store.h): reports become instances and per-minute rollups inside the ingest's
 * transaction; liveness and alerts (stored in events before the commit, handed to the sink
 * after it); the JSON of /api/monitoring and /api/events.
 * Schema:
 *   instances(instance PK, endpoint, host, pid, generation, seq, started, last_seen (Unix
 *     seconds at ingest), interval, sla, state alive|dead|stopped, last gauges);
 *   rollups(endpoint, minute (Unix minute of ingest)) PK: the sums of every instance's
 *     deltas, buckets p0..p18 (processing) and c0..c18 (critical), queue_length (the max
 *     sample of the queue named like the endpoint, from any report), last gauges;
 *   events(seq, type, at, at_s, body): every alert raised.
 * Never: uses a report that report.c refused (it is kept raw with its problem), counts a
 * redelivered report twice, or puts input into SQL text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "headers.h"
#include "ops/report.h"
#include "ops/store_sqlite_internal.h"

#define KEEP_ROLLUPS_S (14 * 86400) /* rollups and events */
#define KEEP_REPORTS_S 86400        /* raw reports */
#define DEAD_AFTER 3                /* intervals without a report */
#define MAX_QUEUES 64               /* queue samples read from one report */

static const char *const monitor_schema_sql =
    "CREATE TABLE IF NOT EXISTS instances(instance TEXT PRIMARY KEY, endpoint TEXT NOT NULL,"
    " host TEXT, pid INTEGER, generation INTEGER, seq INTEGER, started TEXT,"
    " last_seen REAL NOT NULL, interval REAL NOT NULL, sla REAL, state TEXT NOT NULL,"
    " in_flight INTEGER, requests_pending INTEGER, lua_memory INTEGER,"
    " shared_memory INTEGER);"
    "CREATE INDEX IF NOT EXISTS instances_endpoint ON instances(endpoint);"
    "CREATE INDEX IF NOT EXISTS reports_ingested ON reports(ingested);"
    "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, type TEXT NOT NULL,"
    " at TEXT NOT NULL, at_s INTEGER NOT NULL, body TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_at ON events(at_s);";

/* The counters of a rollup, in the order mb_ops_sums holds them. */
static const char *const counters[] = {"received", "success",         "retried",
                                       "delayed",  "error",           "discarded",
                                       "reloads",  "reloads_refused", "reconnects"};
#define N_COUNTERS 9

/* --- SQL made once from the column names (never from input) ------------------------- */

static void bucket_cols(mb_jbuf *b, const char *fmt) {
  for (int i = 0; i < MB_OPS_HIST; i++) mb_jbuf_printf(b, fmt, 'p', i);
  for (int i = 0; i < MB_OPS_HIST; i++) mb_jbuf_printf(b, fmt, 'c', i);
}

static char *rollups_table_sql(void) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&b, "CREATE TABLE IF NOT EXISTS rollups(endpoint TEXT NOT NULL,"
                       " minute INTEGER NOT NULL");
  for (int i = 0; i < N_COUNTERS; i++)
    mb_jbuf_printf(&b, ", %s INTEGER NOT NULL DEFAULT 0", counters[i]);
  bucket_cols(&b, ", %c%d INTEGER NOT NULL DEFAULT 0");
  mb_jbuf_cstr_raw(&b, ", queue_length INTEGER, in_flight INTEGER, requests_pending INTEGER,"
                       " lua_memory INTEGER, PRIMARY KEY(endpoint, minute)) WITHOUT ROWID;"
                       "CREATE INDEX IF NOT EXISTS rollups_minute ON rollups(minute);");
  return mb_jbuf_take(&b, NULL);
}

/* ?1 endpoint, ?2 minute, ?3.. the counters, then in_flight, requests_pending, lua_memory,
 * then the 38 buckets. */
static char *rollup_sql(void) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&b, "INSERT INTO rollups(endpoint, minute");
  for (int i = 0; i < N_COUNTERS; i++) mb_jbuf_printf(&b, ", %s", counters[i]);
  mb_jbuf_cstr_raw(&b, ", in_flight, requests_pending, lua_memory");
  bucket_cols(&b, ", %c%d");
  mb_jbuf_cstr_raw(&b, ") VALUES(?1, ?2");
  for (int i = 3; i <= 2 + N_COUNTERS + 3 + 2 * MB_OPS_HIST; i++) mb_jbuf_printf(&b, ", ?%d", i);
  mb_jbuf_cstr_raw(&b, ") ON CONFLICT(endpoint, minute) DO UPDATE SET in_flight ="
                       " excluded.in_flight, requests_pending = excluded.requests_pending,"
                       " lua_memory = excluded.lua_memory");
  for (int i = 0; i < N_COUNTERS; i++)
    mb_jbuf_printf(&b, ", %s = %s + excluded.%s", counters[i], counters[i], counters[i]);
  for (int i = 0; i < MB_OPS_HIST; i++) mb_jbuf_printf(&b, ", p%d = p%d + excluded.p%d", i, i, i);
  for (int i = 0; i < MB_OPS_HIST; i++) mb_jbuf_printf(&b, ", c%d = c%d + excluded.c%d", i, i, i);
  return mb_jbuf_take(&b, NULL);
}

/* The columns read into mb_ops_sums (counters, queue length, buckets): summed over a
 * window (?1 endpoint, ?2 first minute, ?3 last) or one row per minute, minute last. */
static char *sums_sql(int summed) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&b, "SELECT ");
  for (int i = 0; i < N_COUNTERS; i++)
    mb_jbuf_printf(&b, summed ? "sum(%s), " : "%s, ", counters[i]);
  mb_jbuf_cstr_raw(&b, summed ? "(SELECT queue_length FROM rollups WHERE endpoint = ?1 AND"
                                " minute BETWEEN ?2 AND ?3 AND queue_length IS NOT NULL ORDER"
                                " BY minute DESC LIMIT 1)"
                              : "queue_length");
  bucket_cols(&b, summed ? ", sum(%c%d)" : ", %c%d");
  mb_jbuf_cstr_raw(&b, summed
                           ? ", 0 FROM rollups WHERE endpoint = ?1 AND minute BETWEEN ?2 AND ?3"
                           : ", minute FROM rollups WHERE endpoint = ?1 AND minute BETWEEN"
                             " ?2 AND ?3 ORDER BY minute");
  return mb_jbuf_take(&b, NULL);
}

static void sums_of_row(sqlite3_stmt *st, mb_ops_sums *u) {
  double *c[N_COUNTERS] = {&u->received,    &u->outcomes[0],     &u->outcomes[1],
                           &u->outcomes[2], &u->outcomes[3],     &u->outcomes[4],
                           &u->reloads,     &u->reloads_refused, &u->reconnects};
  for (int i = 0; i < N_COUNTERS; i++) *c[i] = sqlite3_column_double(st, i);
  u->queue_length = sqlite3_column_type(st, N_COUNTERS) == SQLITE_NULL
                        ? -1
                        : sqlite3_column_double(st, N_COUNTERS);
  for (int i = 0; i < MB_OPS_HIST; i++) {
    u->processing[i] = sqlite3_column_double(st, N_COUNTERS + 1 + i);
    u->critical[i] = sqlite3_column_double(st, N_COUNTERS + 1 + MB_OPS_HIST + i);
  }
}

/* --- schema, statements, retention ------------------------------------------------------ */

static int exec_text(ops_sqlite *s, const char *sql, const char *what, mb_err *err) {
  char *msg = NULL;
  if (sql == NULL) return mb_err_set(err, MB_ENOMEM, "%s: out of memory", what);
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK) return MB_OK;
  int rc = mb_err_set(err, MB_EIO, "%s: %s (ops store %s)", what, msg ? msg : "?", s->path);
  sqlite3_free(msg);
  return rc;
}

int ops_sqlite_monitor_schema(ops_sqlite *s, mb_err *err) {
  sqlite3_stmt *probe = NULL;
  int rc = MB_OK;
  /* a store of schema version 1 has reports without a problem column */
  if (sqlite3_prepare_v2(s->db, "SELECT problem FROM reports", -1, &probe, NULL) != SQLITE_OK)
    rc = exec_text(s, "ALTER TABLE reports ADD COLUMN problem TEXT", "upgrading reports", err);
  sqlite3_finalize(probe);
  char *rollups = rollups_table_sql();
  if (rc == MB_OK) rc = exec_text(s, monitor_schema_sql, "creating the monitoring", err);
  if (rc == MB_OK) rc = exec_text(s, rollups, "creating the rollups", err);
  free(rollups);
  return rc;
}

static const char *const fixed_sql[OPS_STMTS] = {
    [OPS_ST_REPORT] = "INSERT OR IGNORE INTO reports(id, endpoint, instance, host, at, ingested,"
                      " headers, body, problem) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [OPS_ST_INSTANCE_GET] = "SELECT state, last_seen FROM instances WHERE instance = ?1",
    [OPS_ST_INSTANCE_PUT] =
        "INSERT INTO instances(instance, endpoint, host, pid, generation, seq, started,"
        " last_seen, interval, sla, state, in_flight, requests_pending, lua_memory,"
        " shared_memory) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15) ON CONFLICT(instance) DO UPDATE SET endpoint = excluded.endpoint, host ="
        " excluded.host, pid = excluded.pid, generation = excluded.generation, seq ="
        " excluded.seq, started = excluded.started, last_seen = excluded.last_seen, interval ="
        " excluded.interval, sla = excluded.sla, state = excluded.state, in_flight ="
        " excluded.in_flight, requests_pending = excluded.requests_pending, lua_memory ="
        " excluded.lua_memory, shared_memory = excluded.shared_memory",
    [OPS_ST_QUEUE] = "INSERT INTO rollups(endpoint, minute, queue_length) VALUES(?1, ?2, ?3)"
                     " ON CONFLICT(endpoint, minute) DO UPDATE SET queue_length ="
                     " max(coalesce(queue_length, excluded.queue_length), excluded.queue_length)",
    [OPS_ST_EVENT] = "INSERT INTO events(type, at, at_s, body) VALUES(?1, ?2, ?3, ?4)",
    [OPS_ST_ATTEMPTS] = "SELECT attempts FROM messages WHERE source = 'error' AND id = ?1",
};

/* The statement `which`, prepared on first use and kept until close. */
static sqlite3_stmt *stmt(ops_sqlite *s, int which, mb_err *err) {
  if (s->cache[which]) return s->cache[which];
  char *made = which == OPS_ST_ROLLUP ? rollup_sql() : NULL;
  const char *sql = made ? made : fixed_sql[which];
  if (sql == NULL || sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                        &s->cache[which], NULL) != SQLITE_OK) {
    s->cache[which] = NULL;
    if (sql) ops_sqlite_fail(s, MB_EIO, "preparing the monitoring", err);
    else mb_err_set(err, MB_ENOMEM, "out of memory preparing the monitoring");
  }
  free(made);
  return s->cache[which];
}

static int delete_before(ops_sqlite *s, const char *sql, int64_t cutoff, mb_err *err) {
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, sql, &st, "sweeping the monitoring", err);
  if (rc != MB_OK) return rc;
  sqlite3_bind_int64(st, 1, cutoff);
  rc = ops_sqlite_step(s, st, "sweeping the monitoring", err);
  sqlite3_finalize(st);
  return rc;
}

int ops_sqlite_monitor_sweep(ops_sqlite *s, double now, mb_err *err) {
  int64_t t = (int64_t)now;
  int rc = delete_before(s, "DELETE FROM reports WHERE ingested < ?1", t - KEEP_REPORTS_S, err);
  if (rc == MB_OK)
    rc =
        delete_before(s, "DELETE FROM rollups WHERE minute < ?1", (t - KEEP_ROLLUPS_S) / 60, err);
  if (rc == MB_OK)
    rc = delete_before(s, "DELETE FROM events WHERE at_s < ?1", t - KEEP_ROLLUPS_S, err);
  if (rc == MB_OK)
    rc = delete_before(s, "DELETE FROM instances WHERE last_seen < ?1", t - KEEP_ROLLUPS_S, err);
  return rc;
}

void ops_sqlite_monitor_close(ops_sqlite *s) {
  for (int i = 0; i < OPS_STMTS; i++) sqlite3_finalize(s->cache[i]), s->cache[i] = NULL;
  ops_sqlite_alerts_done(s, 0);
  free(s->pending);
  s->pending = NULL;
}

/* --- alerts ------------------------------------------------------------------------------ */

void ops_sqlite_set_alert_sink(mb_ops_store *base, mb_ops_alert_sink fn, void *ud) {
  ops_sqlite *s = (ops_sqlite *)base;
  s->sink = fn, s->sink_ud = ud;
}

/* Adds an alert to the open transaction; takes body (malloc'd). */
static int alert_add(ops_sqlite *s, const char *type, char *body, int64_t now_usec, mb_err *err) {
  if (body && s->n_pending == s->cap_pending) {
    size_t cap = s->cap_pending ? s->cap_pending * 2 : 16;
    ops_alert *p = realloc(s->pending, cap * sizeof *p);
    if (p) s->pending = p, s->cap_pending = cap;
  }
  ops_alert *a = body && s->n_pending < s->cap_pending ? &s->pending[s->n_pending] : NULL;
  if (a == NULL || (a->type = strdup(type)) == NULL) {
    free(body);
    return mb_err_set(err, MB_ENOMEM, "out of memory raising %s", type);
  }
  a->body = body, a->at_s = now_usec / 1000000;
  mb_time_iso(now_usec, a->at);
  s->n_pending++;
  return MB_OK;
}

int ops_sqlite_alerts_store(ops_sqlite *s, mb_err *err) {
  if (s->n_pending == 0) return MB_OK;
  sqlite3_stmt *st = stmt(s, OPS_ST_EVENT, err);
  int rc = st ? MB_OK : err->status;
  for (size_t i = 0; rc == MB_OK && i < s->n_pending; i++) {
    ops_sqlite_bind(st, 1, s->pending[i].type);
    ops_sqlite_bind(st, 2, s->pending[i].at);
    sqlite3_bind_int64(st, 3, s->pending[i].at_s);
    ops_sqlite_bind(st, 4, s->pending[i].body);
    rc = ops_sqlite_step(s, st, "storing an event", err);
  }
  return rc;
}

void ops_sqlite_alerts_done(ops_sqlite *s, int committed) {
  for (size_t i = 0; i < s->n_pending; i++) {
    if (committed && s->sink) s->sink(s->sink_ud, s->pending[i].type, s->pending[i].body);
    free(s->pending[i].type);
    free(s->pending[i].body);
  }
  s->n_pending = 0;
}

/* The start of an alert's body: {"event": type, "at": now. */
static void alert_head(mb_jbuf *b, const char *type, int64_t now_usec) {
  char at[MB_TIME_LEN + 1];
  mb_time_iso(now_usec, at);
  mb_jbuf_cstr_raw(b, "{\"event\":");
  mb_jbuf_cstr(b, type);
  mb_jbuf_printf(b, ",\"at\":\"%s\"", at);
}

static void member(mb_jbuf *b, const char *key, const char *v) {
  mb_jbuf_printf(b, ",\"%s\":", key);
  mb_jbuf_cstr(b, v);
}

static void member_time(mb_jbuf *b, const char *key, double seconds) {
  char at[MB_TIME_LEN + 1];
  mb_time_iso((int64_t)(seconds * 1e6), at);
  member(b, key, at);
}

/* Ends b and adds it as an alert of the open transaction. */
static int alert_take(ops_sqlite *s, mb_jbuf *b, const char *type, int64_t now_usec,
                      mb_err *err) {
  mb_jbuf_cstr_raw(b, "}");
  char *body = mb_jbuf_take(b, NULL);
  return alert_add(s, type, body, now_usec, err);
}

int ops_sqlite_failed(ops_sqlite *s, const mb_delivery *d, const char *queue, const char *at,
                      const char *why, int64_t now_usec, mb_err *err) {
  static const char *const type = "moonbus.ops.MessageFailed";
  sqlite3_stmt *st = stmt(s, OPS_ST_ATTEMPTS, err);
  if (st == NULL) return err->status;
  ops_sqlite_bind(st, 1, d->env.id);
  long long attempts = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
  sqlite3_reset(st);
  mb_jbuf b = MB_JBUF_INIT;
  char now_iso[MB_TIME_LEN + 1];
  mb_time_iso(now_usec, now_iso);
  alert_head(&b, type, now_usec);
  member(&b, "id", d->env.id);
  member(&b, "type", d->env.type);
  member(&b, "endpoint", queue);
  member(&b, "queue", queue);
  member(&b, "exception", why);
  member(&b, "failed_at", at ? at : now_iso);
  mb_jbuf_printf(&b, ",\"attempts\":%lld", attempts);
  member(&b, "conversation_id", mb_headers_get(&d->env.headers, MB_H_CONVERSATION));
  return alert_take(s, &b, type, now_usec, err);
}

/* --- a report ------------------------------------------------------------------------------ */

/* The instance's state before this report ("" when new) and when it was last seen. */
static int previous(ops_sqlite *s, const char *instance, char *state, size_t len,
                    double *last_seen, mb_err *err) {
  sqlite3_stmt *st = stmt(s, OPS_ST_INSTANCE_GET, err);
  if (st == NULL) return err->status;
  ops_sqlite_bind(st, 1, instance);
  int step = sqlite3_step(st);
  const char *v = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  snprintf(state, len, "%s", v ? v : "");
  *last_seen = step == SQLITE_ROW ? sqlite3_column_double(st, 1) : 0;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return step == SQLITE_ROW || step == SQLITE_DONE
             ? MB_OK
             : ops_sqlite_fail(s, MB_EIO, "reading an instance", err);
}

static int put_instance(ops_sqlite *s, const mb_ops_report *r, double now, mb_err *err) {
  sqlite3_stmt *st = stmt(s, OPS_ST_INSTANCE_PUT, err);
  if (st == NULL) return err->status;
  ops_sqlite_bind(st, 1, r->instance);
  ops_sqlite_bind(st, 2, r->endpoint);
  ops_sqlite_bind(st, 3, r->host);
  sqlite3_bind_int64(st, 4, (int64_t)r->pid);
  sqlite3_bind_int64(st, 5, (int64_t)r->generation);
  sqlite3_bind_int64(st, 6, (int64_t)r->seq);
  ops_sqlite_bind(st, 7, r->started);
  sqlite3_bind_double(st, 8, now);
  sqlite3_bind_double(st, 9, r->interval);
  if (r->sla > 0) sqlite3_bind_double(st, 10, r->sla);
  else sqlite3_bind_null(st, 10);
  ops_sqlite_bind(st, 11, r->stopping ? "stopped" : "alive");
  sqlite3_bind_int64(st, 12, (int64_t)r->in_flight);
  sqlite3_bind_int64(st, 13, (int64_t)r->requests_pending);
  sqlite3_bind_int64(st, 14, (int64_t)r->lua_memory);
  sqlite3_bind_int64(st, 15, (int64_t)r->shared_memory);
  return ops_sqlite_step(s, st, "storing an instance", err);
}

static int add_rollup(ops_sqlite *s, const mb_ops_report *r, int64_t minute, mb_err *err) {
  sqlite3_stmt *st = stmt(s, OPS_ST_ROLLUP, err);
  if (st == NULL) return err->status;
  const double c[N_COUNTERS] = {r->received,    r->outcomes[0],     r->outcomes[1],
                                r->outcomes[2], r->outcomes[3],     r->outcomes[4],
                                r->reloads_ok,  r->reloads_refused, r->reconnects};
  int i = 1;
  ops_sqlite_bind(st, i++, r->endpoint);
  sqlite3_bind_int64(st, i++, minute);
  for (int k = 0; k < N_COUNTERS; k++) sqlite3_bind_int64(st, i++, (int64_t)c[k]);
  sqlite3_bind_int64(st, i++, (int64_t)r->in_flight);
  sqlite3_bind_int64(st, i++, (int64_t)r->requests_pending);
  sqlite3_bind_int64(st, i++, (int64_t)r->lua_memory);
  for (int k = 0; k < MB_OPS_HIST; k++)
    sqlite3_bind_int64(st, i++, r->histograms ? (int64_t)r->processing[k] : 0);
  for (int k = 0; k < MB_OPS_HIST; k++)
    sqlite3_bind_int64(st, i++, r->histograms ? (int64_t)r->critical[k] : 0);
  return ops_sqlite_step(s, st, "adding to the rollups", err);
}

/* Each queue sample (>= 0) of the report raises its queue's maximum of the minute. */
static int add_queues(ops_sqlite *s, const mb_ops_report *r, int64_t minute, mb_err *err) {
  sqlite3_stmt *st = stmt(s, OPS_ST_QUEUE, err);
  int rc = st ? MB_OK : err->status;
  for (size_t i = 0; rc == MB_OK && i < mb_jv_len(r->queues) && i < MAX_QUEUES; i++) {
    const char *queue = mb_jv_key_at(r->queues, i);
    double n = mb_jv_number(mb_jv_at(r->queues, i));
    if (queue == NULL || *queue == '\0' || strlen(queue) > MB_OPS_NAME_MAX || !(n >= 0) ||
        n > 9e15)
      continue;
    ops_sqlite_bind(st, 1, queue);
    sqlite3_bind_int64(st, 2, minute);
    sqlite3_bind_int64(st, 3, (int64_t)n);
    rc = ops_sqlite_step(s, st, "storing a queue length", err);
  }
  return rc;
}

static int restored(ops_sqlite *s, const mb_ops_report *r, double down_since, int64_t now_usec,
                    mb_err *err) {
  static const char *const type = "moonbus.ops.HeartbeatRestored";
  mb_jbuf b = MB_JBUF_INIT;
  double now = (double)now_usec / 1e6;
  alert_head(&b, type, now_usec);
  member(&b, "endpoint", r->endpoint);
  member(&b, "instance", r->instance);
  member(&b, "host", r->host);
  member_time(&b, "last_seen", now);
  mb_jbuf_cstr_raw(&b, ",\"down_seconds\":");
  mb_jbuf_num(&b, now - down_since > 0 ? now - down_since : 0);
  return alert_take(s, &b, type, now_usec, err);
}

/* A valid report seen for the first time: its instance, rollup and queue samples. */
static int apply(ops_sqlite *s, const mb_ops_report *r, int64_t now_usec, mb_err *err) {
  char state[16];
  double last_seen, now = (double)now_usec / 1e6;
  int64_t minute = now_usec / 60000000;
  int rc = previous(s, r->instance, state, sizeof state, &last_seen, err);
  if (rc == MB_OK) rc = put_instance(s, r, now, err);
  if (rc == MB_OK) rc = add_rollup(s, r, minute, err);
  if (rc == MB_OK) rc = add_queues(s, r, minute, err);
  if (rc == MB_OK && strcmp(state, "dead") == 0) rc = restored(s, r, last_seen, now_usec, err);
  return rc;
}

/* Reads d as a report: MB_OK, or its problem in problem. */
static int parse(const mb_delivery *d, mb_ops_report *r, char *problem, size_t len) {
  if (d->problem) {
    snprintf(problem, len, "%s", d->problem);
    return MB_EINVAL;
  }
  if (strcmp(d->env.type, MB_OPS_REPORT_TYPE) != 0) {
    snprintf(problem, len, "type '%.100s' is not %s", d->env.type, MB_OPS_REPORT_TYPE);
    return MB_EINVAL;
  }
  return mb_ops_report_parse(d->env.body, d->env.body_len, r, problem, len);
}

int ops_sqlite_report(ops_sqlite *s, const mb_delivery *d, const char *headers, int64_t now_usec,
                      mb_err *err) {
  mb_ops_report r;
  char problem[300], now_iso[MB_TIME_LEN + 1];
  int ok = parse(d, &r, problem, sizeof problem) == MB_OK;
  const char *sent = mb_headers_get(&d->env.headers, MB_H_TIME_SENT);
  sqlite3_stmt *st = stmt(s, OPS_ST_REPORT, err);
  if (st == NULL) {
    if (ok) mb_ops_report_free(&r);
    return err->status;
  }
  mb_time_iso(now_usec, now_iso);
  ops_sqlite_bind(st, 1, d->env.id);
  ops_sqlite_bind(st, 2, ok ? r.endpoint : mb_headers_get(&d->env.headers, MB_H_ORIGIN_ENDPOINT));
  ops_sqlite_bind(st, 3, ok ? r.instance : NULL);
  ops_sqlite_bind(st, 4, ok ? r.host : mb_headers_get(&d->env.headers, MB_H_ORIGIN_HOST));
  ops_sqlite_bind(st, 5, sent ? sent : now_iso);
  sqlite3_bind_int64(st, 6, now_usec / 1000000);
  ops_sqlite_bind(st, 7, headers);
  sqlite3_bind_text(st, 8, d->env.body ? d->env.body : "", (int)d->env.body_len,
                    SQLITE_TRANSIENT);
  ops_sqlite_bind(st, 9, ok ? NULL : problem);
  int rc = ops_sqlite_step(s, st, "storing a report", err);
  if (rc == MB_OK && ok && sqlite3_changes(s->db) > 0) rc = apply(s, &r, now_usec, err);
  if (ok) mb_ops_report_free(&r);
  return rc;
}

/* --- liveness and raising ------------------------------------------------------------------ */

static const char *const dead_sql =
    "UPDATE instances SET state = 'dead' WHERE state = 'alive' AND last_seen + ?2 * interval"
    " < ?1 RETURNING endpoint, instance, host, last_seen, interval";

static int stopped_alert(ops_sqlite *s, sqlite3_stmt *st, int64_t now_usec, mb_err *err) {
  static const char *const type = "moonbus.ops.HeartbeatStopped";
  mb_jbuf b = MB_JBUF_INIT;
  alert_head(&b, type, now_usec);
  member(&b, "endpoint", (const char *)sqlite3_column_text(st, 0));
  member(&b, "instance", (const char *)sqlite3_column_text(st, 1));
  member(&b, "host", (const char *)sqlite3_column_text(st, 2));
  member_time(&b, "last_seen", sqlite3_column_double(st, 3));
  mb_jbuf_cstr_raw(&b, ",\"interval\":");
  mb_jbuf_num(&b, sqlite3_column_double(st, 4));
  return alert_take(s, &b, type, now_usec, err);
}

int ops_sqlite_liveness(mb_ops_store *base, double now, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int64_t now_usec = (int64_t)(now * 1e6);
  int rc = ops_sqlite_prepare(s, dead_sql, &st, "checking liveness", err);
  if (rc != MB_OK) return rc;
  rc = ops_sqlite_begin(s, err);
  if (rc == MB_OK) {
    sqlite3_bind_double(st, 1, now);
    sqlite3_bind_int(st, 2, DEAD_AFTER);
    int step;
    while (rc == MB_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
      rc = stopped_alert(s, st, now_usec, err);
    if (rc == MB_OK && step != SQLITE_DONE) rc = ops_sqlite_fail(s, MB_EIO, "liveness", err);
    sqlite3_reset(st);
    rc = ops_sqlite_end(s, rc, err);
  }
  sqlite3_finalize(st);
  return rc;
}

int ops_sqlite_raise(mb_ops_store *base, const char *type, const char *body, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  char *copy = strdup(body);
  int rc = ops_sqlite_begin(s, err);
  if (rc == MB_OK) rc = alert_add(s, type, copy, mb_now_usec(), err), copy = NULL;
  free(copy);
  return ops_sqlite_end(s, rc, err);
}

/* --- reading ----------------------------------------------------------------------------- */

/* The sums of endpoint's rollups from minute `from` to `to`. */
static int window_sums(ops_sqlite *s, const char *endpoint, int64_t from, int64_t to,
                       mb_ops_sums *u, mb_err *err) {
  char *sql = sums_sql(1);
  sqlite3_stmt *st = NULL;
  int rc = sql ? ops_sqlite_prepare(s, sql, &st, "summing rollups", err)
               : mb_err_set(err, MB_ENOMEM, "out of memory summing rollups");
  free(sql);
  if (rc != MB_OK) return rc;
  ops_sqlite_bind(st, 1, endpoint);
  sqlite3_bind_int64(st, 2, from);
  sqlite3_bind_int64(st, 3, to);
  if (sqlite3_step(st) == SQLITE_ROW) sums_of_row(st, u);
  else rc = ops_sqlite_fail(s, MB_EIO, "summing rollups", err);
  sqlite3_finalize(st);
  return rc;
}

/* Seconds covered by the window of `minutes` minutes ending with now's minute. */
static double window_seconds(long minutes, double now) {
  double into = now - floor(now / 60) * 60;
  return (double)(minutes - 1) * 60 + (into < 1 ? 1 : into);
}

/* The figures of the SLA window (this minute and the one before). With no instance alive
 * nothing consumes the queue: its throughput is 0, so a queue held back breaches. */
static int sla_figures(ops_sqlite *s, const char *endpoint, double sla, int alive, double now,
                       mb_ops_sums *u, mb_ops_figures *f, mb_err *err) {
  int64_t cur = (int64_t)floor(now / 60);
  int rc = window_sums(s, endpoint, cur - MB_OPS_SLA_MINUTES + 1, cur, u, err);
  if (rc == MB_OK && !alive) u->outcomes[MB_OPS_SUCCESS] = 0;
  if (rc == MB_OK) mb_ops_figures_of(u, window_seconds(MB_OPS_SLA_MINUTES, now), sla, f);
  return rc;
}

typedef struct sla_list {
  char **names;
  double *slas;
  int *alive;
  size_t n;
} sla_list;

static const char *const slas_sql =
    "SELECT e.endpoint, (SELECT sla FROM instances WHERE endpoint = e.endpoint ORDER BY"
    " last_seen DESC LIMIT 1), (SELECT count(*) FROM instances WHERE endpoint = e.endpoint AND"
    " state = 'alive') FROM (SELECT DISTINCT endpoint FROM instances) e ORDER BY 1";

static int sla_list_read(ops_sqlite *s, sla_list *l, mb_err *err) {
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, slas_sql, &st, "listing SLAs", err), step;
  size_t cap = 0;
  while (rc == MB_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_type(st, 1) == SQLITE_NULL) continue;
    if (l->n == cap) {
      cap = cap ? cap * 2 : 8;
      char **nn = realloc(l->names, cap * sizeof *nn);
      if (nn) l->names = nn;
      double *ns = nn ? realloc(l->slas, cap * sizeof *ns) : NULL;
      if (ns) l->slas = ns;
      int *na = ns ? realloc(l->alive, cap * sizeof *na) : NULL;
      if (na) l->alive = na;
      if (nn == NULL || ns == NULL || na == NULL)
        rc = mb_err_set(err, MB_ENOMEM, "out of memory");
    }
    const char *name = (const char *)sqlite3_column_text(st, 0);
    if (rc == MB_OK && (l->names[l->n] = strdup(name ? name : "")) == NULL)
      rc = mb_err_set(err, MB_ENOMEM, "out of memory");
    if (rc == MB_OK) l->alive[l->n] = sqlite3_column_int(st, 2);
    if (rc == MB_OK) l->slas[l->n++] = sqlite3_column_double(st, 1);
  }
  if (rc == MB_OK && step != SQLITE_DONE) rc = ops_sqlite_fail(s, MB_EIO, "listing SLAs", err);
  sqlite3_finalize(st);
  return rc;
}

int ops_sqlite_sla_each(mb_ops_store *base, double now, mb_ops_sla_fn fn, void *ud, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sla_list l = {0};
  int rc = sla_list_read(s, &l, err);
  for (size_t i = 0; i < l.n; i++) {
    mb_ops_sums u;
    mb_ops_figures f;
    if (rc == MB_OK) rc = sla_figures(s, l.names[i], l.slas[i], l.alive[i], now, &u, &f, err);
    if (rc == MB_OK) fn(ud, l.names[i], l.slas[i], &u, &f);
    free(l.names[i]);
  }
  free(l.names);
  free(l.slas);
  free(l.alive);
  return rc;
}

/* --- GET /api/monitoring ------------------------------------------------------------------- */

typedef struct endpoint_state {
  int alive, dead, stopped;
  double sla, sla_seen, in_flight, requests_pending, lua_memory;
} endpoint_state;

static const char *const instances_sql =
    "SELECT instance, host, pid, generation, state, last_seen, interval, started, sla,"
    " in_flight, requests_pending, lua_memory FROM instances WHERE endpoint = ?1 ORDER BY"
    " instance";

static void instance_json(mb_jbuf *b, sqlite3_stmt *st, endpoint_state *e, int first) {
  const char *state = (const char *)sqlite3_column_text(st, 4);
  mb_jbuf_cstr_raw(b, first ? "{\"instance\":" : ",{\"instance\":");
  mb_jbuf_cstr(b, (const char *)sqlite3_column_text(st, 0));
  member(b, "host", (const char *)sqlite3_column_text(st, 1));
  mb_jbuf_printf(b, ",\"pid\":%lld,\"generation\":%lld", sqlite3_column_int64(st, 2),
                 sqlite3_column_int64(st, 3));
  member(b, "state", state);
  member_time(b, "last_seen", sqlite3_column_double(st, 5));
  mb_jbuf_cstr_raw(b, ",\"interval\":");
  mb_jbuf_num(b, sqlite3_column_double(st, 6));
  member(b, "started", (const char *)sqlite3_column_text(st, 7));
  mb_jbuf_cstr_raw(b, "}");
  if (sqlite3_column_double(st, 5) >= e->sla_seen) {
    e->sla_seen = sqlite3_column_double(st, 5);
    e->sla = sqlite3_column_type(st, 8) == SQLITE_NULL ? 0 : sqlite3_column_double(st, 8);
  }
  if (state && strcmp(state, "alive") == 0) {
    e->alive++;
    e->in_flight += sqlite3_column_double(st, 9);
    e->requests_pending += sqlite3_column_double(st, 10);
    e->lua_memory += sqlite3_column_double(st, 11);
  } else if (state && strcmp(state, "dead") == 0) e->dead++;
  else e->stopped++;
}

/* "instances": [...] of endpoint; MB_ENOTFOUND when it has none. */
static int instances_json(ops_sqlite *s, mb_jbuf *b, const char *endpoint, endpoint_state *e,
                          mb_err *err) {
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, instances_sql, &st, "listing instances", err), step, n = 0;
  if (rc != MB_OK) return rc;
  ops_sqlite_bind(st, 1, endpoint);
  mb_jbuf_cstr_raw(b, ",\"instances\":[");
  while ((step = sqlite3_step(st)) == SQLITE_ROW) instance_json(b, st, e, n++ == 0);
  mb_jbuf_cstr_raw(b, "]");
  if (step != SQLITE_DONE) rc = ops_sqlite_fail(s, MB_EIO, "listing instances", err);
  else if (n == 0) rc = mb_err_set(err, MB_ENOTFOUND, "no endpoint %s reports", endpoint);
  sqlite3_finalize(st);
  return rc;
}

static const char *status_of(const endpoint_state *e) {
  if (e->alive == 0 && e->dead == 0) return "stopped";
  if (e->dead == 0) return "live";
  return e->alive ? "partial" : "dead";
}

static void minute_iso(int64_t minute, char out[32]) {
  time_t t = (time_t)(minute * 60);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One series: name, then each minute's value (NaN: null). */
static void series_json(mb_jbuf *b, const char *name, const double *v, long n) {
  mb_jbuf_printf(b, ",\"%s\":[", name);
  for (long i = 0; i < n; i++) {
    if (i) mb_jbuf_cstr_raw(b, ",");
    mb_ops_num_or_null(b, v[i]);
  }
  mb_jbuf_cstr_raw(b, "]");
}

enum { S_THROUGHPUT, S_PROCESSING, S_CRITICAL, S_QUEUE, S_RETRIED, S_ERROR, N_SERIES };
static const char *const series_names[N_SERIES] = {
    "throughput", "processing_p95", "critical_p95", "queue_length", "retried", "error"};

/* Fills the series of minutes first..first+n-1 (a minute without a rollup: 0 and null). */
static int series_fill(ops_sqlite *s, const char *endpoint, int64_t first, long n, double now,
                       double *v[N_SERIES], mb_err *err) {
  char *sql = sums_sql(0);
  sqlite3_stmt *st = NULL;
  int rc = sql ? ops_sqlite_prepare(s, sql, &st, "reading rollups", err)
               : mb_err_set(err, MB_ENOMEM, "out of memory reading rollups");
  free(sql);
  for (long i = 0; i < n; i++)
    for (int k = 0; k < N_SERIES; k++)
      v[k][i] = k == S_PROCESSING || k == S_CRITICAL || k == S_QUEUE ? NAN : 0;
  if (rc != MB_OK) return rc;
  ops_sqlite_bind(st, 1, endpoint);
  sqlite3_bind_int64(st, 2, first);
  sqlite3_bind_int64(st, 3, first + n - 1);
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    mb_ops_sums u;
    sums_of_row(st, &u);
    long i = (long)(sqlite3_column_int64(st, N_COUNTERS + 1 + 2 * MB_OPS_HIST) - first);
    if (i < 0 || i >= n) continue;
    v[S_THROUGHPUT][i] = u.outcomes[MB_OPS_SUCCESS] / (i == n - 1 ? window_seconds(1, now) : 60);
    v[S_PROCESSING][i] = mb_ops_percentile(u.processing, 0.95);
    v[S_CRITICAL][i] = mb_ops_percentile(u.critical, 0.95);
    v[S_QUEUE][i] = u.queue_length < 0 ? NAN : u.queue_length;
    v[S_RETRIED][i] = u.outcomes[MB_OPS_RETRIED];
    v[S_ERROR][i] = u.outcomes[MB_OPS_ERRORED];
  }
  if (step != SQLITE_DONE) rc = ops_sqlite_fail(s, MB_EIO, "reading rollups", err);
  sqlite3_finalize(st);
  return rc;
}

static int series(ops_sqlite *s, mb_jbuf *b, const char *endpoint, long minutes, double now,
                  mb_err *err) {
  int64_t first = (int64_t)floor(now / 60) - minutes + 1;
  double *all = malloc((size_t)minutes * N_SERIES * sizeof *all), *v[N_SERIES];
  if (all == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory reading rollups");
  for (int k = 0; k < N_SERIES; k++) v[k] = all + (size_t)k * (size_t)minutes;
  int rc = series_fill(s, endpoint, first, minutes, now, v, err);
  mb_jbuf_cstr_raw(b, ",\"series\":{\"minutes\":[");
  for (long i = 0; i < minutes; i++) {
    char iso[32];
    minute_iso(first + i, iso);
    mb_jbuf_printf(b, i ? ",\"%s\"" : "\"%s\"", iso);
  }
  mb_jbuf_cstr_raw(b, "]");
  for (int k = 0; k < N_SERIES; k++) series_json(b, series_names[k], v[k], minutes);
  mb_jbuf_cstr_raw(b, "}");
  free(all);
  return rc;
}

static int endpoint_json(ops_sqlite *s, mb_jbuf *b, const char *endpoint, long minutes,
                         double now, mb_err *err) {
  endpoint_state e = {0};
  mb_ops_sums u, su;
  mb_ops_figures f, sf;
  int64_t cur = (int64_t)floor(now / 60);
  mb_jbuf_cstr_raw(b, "{\"endpoint\":");
  mb_jbuf_cstr(b, endpoint);
  int rc = instances_json(s, b, endpoint, &e, err);
  if (rc == MB_OK) rc = window_sums(s, endpoint, cur - minutes + 1, cur, &u, err);
  if (rc == MB_OK) rc = sla_figures(s, endpoint, e.sla, e.alive, now, &su, &sf, err);
  if (rc != MB_OK) return rc;
  mb_ops_figures_of(&u, window_seconds(minutes, now), e.sla, &f);
  member(b, "status", status_of(&e));
  mb_jbuf_cstr_raw(b, ",\"sla\":");
  mb_ops_num_or_null(b, e.sla > 0 ? e.sla : NAN);
  mb_jbuf_cstr_raw(b, ",\"figures\":");
  mb_ops_figures_json(b, &u, &f, e.in_flight, e.requests_pending, e.lua_memory);
  mb_jbuf_cstr_raw(b, ",\"time_to_breach\":");
  mb_ops_num_or_null(b, sf.time_to_breach);
  mb_jbuf_printf(b, ",\"breached\":%s", sf.breached ? "true" : "false");
  rc = series(s, b, endpoint, minutes, now, err);
  mb_jbuf_cstr_raw(b, "}");
  return rc;
}

static int all_endpoints_json(ops_sqlite *s, mb_jbuf *b, long minutes, double now, mb_err *err) {
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, "SELECT DISTINCT endpoint FROM instances ORDER BY 1", &st,
                              "listing endpoints", err);
  if (rc != MB_OK) return rc;
  char now_iso[MB_TIME_LEN + 1];
  mb_time_iso((int64_t)(now * 1e6), now_iso);
  mb_jbuf_printf(b, "{\"now\":\"%s\",\"minutes\":%ld,\"endpoints\":[", now_iso, minutes);
  int step, n = 0;
  while (rc == MB_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
    if (n++) mb_jbuf_cstr_raw(b, ",");
    rc = endpoint_json(s, b, (const char *)sqlite3_column_text(st, 0), minutes, now, err);
  }
  if (rc == MB_OK && step != SQLITE_DONE) rc = ops_sqlite_fail(s, MB_EIO, "endpoints", err);
  mb_jbuf_cstr_raw(b, "]}");
  sqlite3_finalize(st);
  return rc;
}

int ops_sqlite_monitoring(mb_ops_store *base, const char *endpoint, long minutes, double now,
                          char **json, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  mb_jbuf b = MB_JBUF_INIT;
  int rc = endpoint ? endpoint_json(s, &b, endpoint, minutes, now, err)
                    : all_endpoints_json(s, &b, minutes, now, err);
  if (rc == MB_OK && b.failed) rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK) *json = mb_jbuf_take(&b, NULL);
  mb_jbuf_free(&b);
  return rc;
}

static const char *const events_sql =
    "SELECT json_object('events', (SELECT json_group_array(json_object('type', type, 'at', at,"
    " 'body', json(body))) FROM (SELECT * FROM events ORDER BY seq DESC LIMIT ?2 OFFSET"
    " (?1 - 1) * ?2)), 'page', ?1, 'per_page', ?2, 'total', (SELECT count(*) FROM events))";

int ops_sqlite_events(mb_ops_store *base, long page, long per_page, char **json, mb_err *err) {
  ops_sqlite *s = (ops_sqlite *)base;
  sqlite3_stmt *st;
  int rc = ops_sqlite_prepare(s, events_sql, &st, "listing events", err);
  if (rc != MB_OK) return rc;
  sqlite3_bind_int64(st, 1, page);
  sqlite3_bind_int64(st, 2, per_page);
  return ops_sqlite_json(s, st, json, "listing events", err);
}
