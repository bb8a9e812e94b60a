/* store_sqlite_internal.h — what the two files of the SQLite ops store share: the handle
 * and its helpers. Not a public surface: only store_sqlite*.c include it. */
#ifndef MOONBUS_OPS_STORE_SQLITE_INTERNAL_H
#define MOONBUS_OPS_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "ops/store.h"

/* The statements the monitoring keeps prepared (store_sqlite_monitor.c). */
enum {
  OPS_ST_REPORT,
  OPS_ST_INSTANCE_GET,
  OPS_ST_INSTANCE_PUT,
  OPS_ST_ROLLUP,
  OPS_ST_QUEUE,
  OPS_ST_EVENT,
  OPS_ST_ATTEMPTS,
  OPS_STMTS
};

/* An alert raised in the open transaction: stored in events before the commit, handed to
 * the sink after it. */
typedef struct ops_alert {
  char *type, *body;
  char at[32];
  int64_t at_s;
} ops_alert;

typedef struct ops_sqlite {
  mb_ops_store base;
  sqlite3 *db;
  char *path;
  sqlite3_stmt *cache[OPS_STMTS];
  ops_alert *pending;
  size_t n_pending, cap_pending;
  mb_ops_alert_sink sink;
  void *sink_ud;
} ops_sqlite;

/* err = status and "what: SQLite's message (path)"; returns status. */
int ops_sqlite_fail(ops_sqlite *s, int status, const char *what, mb_err *err);
/* Prepares sql or fills err naming what. */
int ops_sqlite_prepare(ops_sqlite *s, const char *sql, sqlite3_stmt **st, const char *what,
                       mb_err *err);
/* Binds text or NULL (s NULL) at i. */
int ops_sqlite_bind(sqlite3_stmt *st, int i, const char *s);
/* Runs a statement that answers one row with one JSON text column: *json gets a malloc'd
 * copy. MB_ENOTFOUND when the row or its value is NULL. Finalizes st. */
int ops_sqlite_json(ops_sqlite *s, sqlite3_stmt *st, char **json, const char *what, mb_err *err);

/* BEGIN IMMEDIATE. */
int ops_sqlite_begin(ops_sqlite *s, mb_err *err);
/* Stores the pending alerts and commits when rc is MB_OK, else rolls back; then hands the
 * alerts to the sink (committed) or drops them. Returns the outcome. */
int ops_sqlite_end(ops_sqlite *s, int rc, mb_err *err);
/* Steps a statement that answers no row, then resets it and clears its bindings. */
int ops_sqlite_step(ops_sqlite *s, sqlite3_stmt *st, const char *what, mb_err *err);

/* The group a failed message belongs to when grouped by the value of parameter `by`
 * ("exception", "type", "endpoint", "queue"); SQL text for a statement's column list. */
#define OPS_GROUP_OF(by)                                                                         \
  "(CASE " by " WHEN 'type' THEN type WHEN 'endpoint' THEN endpoint WHEN 'queue' THEN queue"     \
  " ELSE group_id END)"

/* The read calls (store_sqlite_read.c). */
int ops_sqlite_errors(mb_ops_store *base, const mb_ops_query *q, char **json, mb_err *err);
int ops_sqlite_groups(mb_ops_store *base, const char *by, const char *status, char **json,
                      mb_err *err);
int ops_sqlite_message(mb_ops_store *base, const char *id, char **json, mb_err *err);
int ops_sqlite_search(mb_ops_store *base, const char *q, long page, long per_page, char **json,
                      mb_err *err);
int ops_sqlite_conversation(mb_ops_store *base, const char *id, char **json, mb_err *err);
int ops_sqlite_endpoints(mb_ops_store *base, char **json, mb_err *err);
int ops_sqlite_oldest_unresolved(mb_ops_store *base, double *age_s, mb_err *err);

/* The monitoring (store_sqlite_monitor.c). */
int ops_sqlite_monitor_schema(ops_sqlite *s, mb_err *err);
/* A delivery of queue moonbus.ops: stored raw (with its problem if it is not a valid
 * report); a report not seen before updates its instance and its minute's rollups. */
int ops_sqlite_report(ops_sqlite *s, const mb_delivery *d, const char *headers, int64_t now_usec,
                      mb_err *err);
/* A failure newly stored: its MessageFailed alert. */
int ops_sqlite_failed(ops_sqlite *s, const mb_delivery *d, const char *queue, const char *at,
                      const char *why, int64_t now_usec, mb_err *err);
int ops_sqlite_alerts_store(ops_sqlite *s, mb_err *err);
void ops_sqlite_alerts_done(ops_sqlite *s, int committed);
/* Retention of the monitoring's tables, inside the sweep's transaction. */
int ops_sqlite_monitor_sweep(ops_sqlite *s, double now, mb_err *err);
void ops_sqlite_monitor_close(ops_sqlite *s);
void ops_sqlite_set_alert_sink(mb_ops_store *base, mb_ops_alert_sink fn, void *ud);
int ops_sqlite_liveness(mb_ops_store *base, double now, mb_err *err);
int ops_sqlite_sla_each(mb_ops_store *base, double now, mb_ops_sla_fn fn, void *ud, mb_err *err);
int ops_sqlite_raise(mb_ops_store *base, const char *type, const char *body, mb_err *err);
int ops_sqlite_monitoring(mb_ops_store *base, const char *endpoint, long minutes, double now,
                          char **json, mb_err *err);
int ops_sqlite_events(mb_ops_store *base, long page, long per_page, char **json, mb_err *err);

#endif
