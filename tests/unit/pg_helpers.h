/* pg_helpers.h — what the tests of the PostgreSQL parts (test_pg.c, test_persist.c) share:
 * the loop run until something happened, a lease waited for, and one statement run and
 * waited for with its outcome in a query_box. Include once, after pg.h; it defines the
 * test's `loop`. */
#ifndef MOONBUS_TEST_PG_HELPERS_H
#define MOONBUS_TEST_PG_HELPERS_H

#include <ev.h>
#include <stdio.h>

#include "pg.h"

static struct ev_loop *loop;

static void stop_cb(struct ev_loop *l, ev_timer *t, int revents) {
  (void)t;
  (void)revents;
  ev_break(l, EVBREAK_ALL);
}

/* Runs the loop until *flag or seconds passed; returns *flag. */
static int run_until(const int *flag, double seconds) {
  ev_timer t;
  double end = ev_time() + seconds;
  while (!*flag && ev_time() < end) {
    ev_timer_init(&t, stop_cb, 0.02, 0.);
    ev_timer_start(loop, &t);
    ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
  }
  return *flag;
}

typedef struct lease_box {
  int done;
  mb_pg_conn *conn;
  mb_pg_error error;
} lease_box;

static void on_lease(void *ud, mb_pg_conn *conn, const mb_pg_error *e) {
  lease_box *b = ud;
  b->done = 1;
  b->conn = conn;
  if (e) b->error = *e;
}

/* A connection of p (NULL: none, said why), waited for up to 10 s. */
static mb_pg_conn *lease(mb_pg_pool *p) {
  lease_box b = {0};
  if (!p) return NULL;
  mb_pg_lease(p, on_lease, &b);
  if (!run_until(&b.done, 10)) return NULL;
  if (!b.conn) printf("#   lease failed: %s\n", b.error.msg);
  return b.conn;
}

typedef struct query_box {
  int done, failed, rows, cols;
  long changed;
  mb_pg_error error;
  char first[128]; /* the first value of the first row ("NULL" for SQL NULL) */
} query_box;

static void on_result(void *ud, const mb_pg_result *r, const mb_pg_error *e) {
  query_box *q = ud;
  q->done = 1;
  if (e) {
    q->failed = 1;
    q->error = *e;
    return;
  }
  q->rows = mb_pg_rows(r);
  q->cols = mb_pg_cols(r);
  q->changed = mb_pg_changed(r);
  const char *v = mb_pg_value(r, 0, 0, NULL);
  snprintf(q->first, sizeof q->first, "%s", q->rows > 0 && q->cols > 0 && v ? v : "NULL");
}

/* Runs sql on c and waits up to 30 s for its outcome (a statement that could not be sent
 * fails TRANSIENT with the reason); prints nothing of a failure. */
static query_box quiet_query(mb_pg_conn *c, const char *sql, int n, const char *const *params) {
  query_box q = {0};
  mb_err err = {0, ""};
  if (mb_pg_query(c, sql, n, params, on_result, &q, &err) != MB_OK) {
    q.done = q.failed = 1;
    q.error.kind = MB_PG_TRANSIENT;
    snprintf(q.error.msg, sizeof q.error.msg, "%s", err.msg);
    return q;
  }
  if (!run_until(&q.done, 30)) printf("#   no answer to: %s\n", sql);
  return q;
}

#endif
