/* test_pg.c — the PostgreSQL pool of host/pg.c against a real server: the private cluster
 * of scripts/postgres.sh, whose URL scripts/test.sh puts in MOONBUS_TEST_PG (without it
 * the test fails and says how to start one). Parameters and results of several types, leases
 * queued in order, errors by kind (STATEMENT, RETRY, TRANSIENT), a killed backend made
 * again, a password never shown, a transaction left open rolled back on release. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg.h"
#include "pg_helpers.h"
#include "unit.h"

static const char *url;
static char table[64]; /* a table of this run's own */

/* Runs sql on c and waits for its outcome; a failure other than the statement's own is
 * printed. */
static query_box query(mb_pg_conn *c, const char *sql, int n, const char *const *params) {
  query_box q = quiet_query(c, sql, n, params);
  if (q.failed && q.error.kind != MB_PG_STATEMENT)
    printf("#   %s: %s (%s)\n", sql, q.error.msg, q.error.sqlstate);
  return q;
}

static int ok(mb_pg_conn *c, const char *sql) {
  query_box q = query(c, sql, 0, NULL);
  if (q.failed) printf("#   %s failed: %s\n", sql, q.error.msg);
  return q.done && !q.failed;
}

static mb_pg_pool *pool(unsigned size) {
  mb_pg_pool *p = NULL;
  mb_err err = {0, ""};
  if (mb_pg_pool_open(&p, loop, url, size, &err) != MB_OK) printf("#   %s\n", err.msg);
  return p;
}

/* --- the tests ------------------------------------------------------------------------- */

typedef struct types_box {
  int done, ok;
} types_box;

static void on_types(void *ud, const mb_pg_result *r, const mb_pg_error *e) {
  types_box *b = ud;
  size_t len = 0;
  b->done = 1;
  if (e) {
    printf("#   %s\n", e->msg);
    return;
  }
  CHECK(mb_pg_rows(r) == 1 && mb_pg_cols(r) == 6);
  CHECK(mb_pg_col_type(r, 0) == 23 && mb_pg_col_type(r, 1) == 25 && mb_pg_col_type(r, 2) == 16);
  CHECK(mb_pg_col_type(r, 3) == 25 && mb_pg_col_type(r, 4) == 23 && mb_pg_col_type(r, 5) == 25);
  CHECK(strcmp(mb_pg_col_name(r, 0), "i") == 0 && strcmp(mb_pg_col_name(r, 5), "big") == 0);
  CHECK(strcmp(mb_pg_value(r, 0, 0, &len), "-42") == 0 && len == 3);
  CHECK(strcmp(mb_pg_value(r, 0, 1, NULL), "h\xc3\xa9llo 'x'") == 0);
  CHECK(strcmp(mb_pg_value(r, 0, 2, NULL), "t") == 0);
  CHECK(mb_pg_value(r, 0, 3, &len) == NULL && len == 0);
  CHECK(strcmp(mb_pg_value(r, 0, 4, NULL), "1048576") == 0);
  const char *big = mb_pg_value(r, 0, 5, &len);
  CHECK(big && len == 1048576 && big[0] == 'a' && big[len - 1] == 'z');
  CHECK(mb_pg_value(r, 1, 0, NULL) == NULL && mb_pg_value(r, 0, 6, NULL) == NULL);
  CHECK(mb_pg_changed(r) == 0);
  b->ok = 1;
}

static void test_select_with_parameters_of_several_types(void) {
  mb_pg_pool *p = pool(2);
  mb_pg_conn *c = p ? lease(p) : NULL;
  char *big = malloc(1048577);
  CHECK(c != NULL && big != NULL);
  if (!c || !big) goto done;
  memset(big, 'm', 1048576);
  big[0] = 'a';
  big[1048575] = 'z';
  big[1048576] = '\0';
  const char *params[] = {"-42", "h\xc3\xa9llo 'x'", "true", NULL, big};
  types_box b = {0};
  mb_err err;
  CHECK(mb_pg_query(c,
                    "SELECT $1::int4 AS i, $2::text AS t, $3::bool AS b, $4::text AS n, "
                    "length($5::text) AS len, $5::text AS big",
                    5, params, on_types, &b, &err) == MB_OK);
  CHECK(mb_pg_query(c, "SELECT 1", 0, NULL, on_types, &b, &err) == MB_EBUSY);
  CHECK(run_until(&b.done, 30) && b.ok);
  CHECK(mb_pg_pool_open_connections(p) == 1);
  /* 16 MB is more than the socket takes at once: PQflush says 1, the rest goes when writable */
  char *huge = realloc(big, 16u << 20);
  CHECK(huge != NULL);
  if (!huge) goto done;
  big = huge;
  memset(big, 'q', (16u << 20) - 1);
  big[(16u << 20) - 1] = '\0';
  const char *one[] = {big};
  query_box q = query(c, "SELECT length($1::text)", 1, one);
  CHECK(!q.failed && strcmp(q.first, "16777215") == 0);
  mb_pg_release(c);
done:
  free(big);
  mb_pg_pool_close(p);
}

typedef struct order_box {
  mb_pg_conn *conns[6];
  int order[6], served, held, max_held, released, finished;
} order_box;

typedef struct order_lease {
  order_box *box;
  int index;
} order_lease;

static void on_order_result(void *ud, const mb_pg_result *r, const mb_pg_error *e) {
  order_lease *l = ud;
  CHECK(e == NULL && r != NULL && strcmp(mb_pg_value(r, 0, 1, NULL), "x") == 0);
  l->box->held--;
  l->box->finished = ++l->box->released == 6;
  mb_pg_release(l->box->conns[l->index]);
}

static void on_order_lease(void *ud, mb_pg_conn *c, const mb_pg_error *e) {
  order_lease *l = ud;
  order_box *b = l->box;
  mb_err err;
  const char *params[] = {"x"};
  CHECK(c != NULL && e == NULL);
  if (!c) return;
  b->conns[l->index] = c;
  b->order[b->served++] = l->index;
  if (++b->held > b->max_held) b->max_held = b->held;
  CHECK(mb_pg_query(c, "SELECT pg_sleep(0.05), $1::text", 1, params, on_order_result, l, &err) ==
        MB_OK);
}

static void test_more_leases_than_connections_queue_in_order(void) {
  mb_pg_pool *p = pool(2);
  order_box b = {0};
  order_lease leases[6];
  CHECK(p != NULL);
  if (!p) return;
  for (int i = 0; i < 6; i++) {
    leases[i] = (order_lease){&b, i};
    mb_pg_lease(p, on_order_lease, &leases[i]);
  }
  CHECK(b.served == 0); /* nothing is connected yet */
  CHECK(run_until(&b.finished, 20));
  CHECK(b.released == 6 && b.served == 6 && b.max_held == 2);
  for (int i = 0; i < 6; i++) CHECK(b.order[i] == i);
  CHECK(mb_pg_pool_open_connections(p) == 2 && mb_pg_pool_reconnects(p) == 0);
  mb_pg_pool_close(p);
}

static void test_statement_errors_leave_the_connection_usable(void) {
  mb_pg_pool *p = pool(1);
  mb_pg_conn *c = p ? lease(p) : NULL;
  CHECK(c != NULL);
  if (!c) goto done;
  query_box q = query(c, "SELEC 1", 0, NULL);
  CHECK(q.failed && q.error.kind == MB_PG_STATEMENT && strcmp(q.error.sqlstate, "42601") == 0);
  CHECK(strstr(q.error.msg, "syntax error") != NULL);
  CHECK(ok(c, "CREATE TEMP TABLE u (k int PRIMARY KEY)"));
  CHECK(ok(c, "INSERT INTO u VALUES (1)"));
  const char *one[] = {"1"};
  q = query(c, "INSERT INTO u VALUES ($1)", 1, one);
  CHECK(q.failed && q.error.kind == MB_PG_STATEMENT && strcmp(q.error.sqlstate, "23505") == 0);
  CHECK(strstr(q.error.msg, "duplicate key") != NULL);
  mb_pg_release(c);
  c = lease(p);
  CHECK(c != NULL);
  if (!c) goto done;
  q = query(c, "SELECT count(*) FROM u", 0, NULL);
  CHECK(!q.failed && strcmp(q.first, "1") == 0); /* the same session, still usable */
  mb_pg_release(c);
  CHECK(mb_pg_pool_reconnects(p) == 0);
done:
  mb_pg_pool_close(p);
}

static void test_serialization_failure_is_retry(void) {
  mb_pg_pool *p = pool(2);
  mb_pg_conn *a = p ? lease(p) : NULL, *b = p ? lease(p) : NULL;
  char sql[256];
  CHECK(a != NULL && b != NULL);
  if (!a || !b) goto done;
  snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, v int)", table);
  CHECK(ok(a, sql));
  snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1, 0)", table);
  CHECK(ok(a, sql));
  CHECK(ok(a, "BEGIN ISOLATION LEVEL SERIALIZABLE"));
  snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 1", table);
  CHECK(ok(a, sql));
  CHECK(ok(b, "BEGIN ISOLATION LEVEL SERIALIZABLE"));
  snprintf(sql, sizeof sql, "UPDATE %s SET v = v + 1 WHERE id = 1", table);
  CHECK(ok(b, sql));
  CHECK(ok(b, "COMMIT"));
  query_box q = query(a, sql, 0, NULL);
  CHECK(q.failed && q.error.kind == MB_PG_RETRY && strcmp(q.error.sqlstate, "40001") == 0);
  CHECK(ok(a, "ROLLBACK"));
  snprintf(sql, sizeof sql, "DROP TABLE %s", table);
  CHECK(ok(a, sql));
done:
  mb_pg_release(a);
  mb_pg_release(b);
  mb_pg_pool_close(p);
}

static void test_killed_backend_is_transient_and_made_again(void) {
  mb_pg_pool *p = pool(1), *killer = pool(1);
  mb_pg_conn *c = p ? lease(p) : NULL, *k = killer ? lease(killer) : NULL;
  CHECK(c != NULL && k != NULL);
  if (!c || !k) goto done;
  query_box pid = query(c, "SELECT pg_backend_pid()", 0, NULL);
  query_box sleeping = {0};
  mb_err err;
  CHECK(mb_pg_query(c, "SELECT pg_sleep(30)", 0, NULL, on_result, &sleeping, &err) == MB_OK);
  const char *params[] = {pid.first};
  query_box kill = query(k, "SELECT pg_terminate_backend($1::int)", 1, params);
  CHECK(!kill.failed && strcmp(kill.first, "t") == 0);
  CHECK(run_until(&sleeping.done, 10));
  CHECK(sleeping.failed && sleeping.error.kind == MB_PG_TRANSIENT);
  printf("#   the killed statement: %s (%s)\n", sleeping.error.msg, sleeping.error.sqlstate);
  CHECK(mb_pg_query(c, "SELECT 1", 0, NULL, on_result, &sleeping, &err) == MB_ENOTCONN);
  mb_pg_release(c);
  CHECK(mb_pg_pool_open_connections(p) == 0);
  c = lease(p);
  CHECK(c != NULL);
  if (!c) goto done;
  query_box again = query(c, "SELECT pg_backend_pid()", 0, NULL);
  CHECK(!again.failed && strcmp(again.first, pid.first) != 0);
  CHECK(mb_pg_pool_reconnects(p) == 1 && mb_pg_pool_open_connections(p) == 1);
  mb_pg_release(c);
done:
  mb_pg_release(k);
  mb_pg_pool_close(p);
  mb_pg_pool_close(killer);
}

static void test_wrong_password_is_never_shown(void) {
  const char *at = strrchr(url, '@'), *scheme_end = strstr(url, "://");
  char bad[512];
  CHECK(at && scheme_end);
  if (!at || !scheme_end) return;
  snprintf(bad, sizeof bad, "postgresql://moonbus:Wr0ng-Secret-pw%s", at);
  mb_pg_pool *p = NULL;
  mb_err err = {0, ""};
  CHECK(mb_pg_pool_open(&p, loop, bad, 1, &err) == MB_OK);
  if (!p) return;
  mb_pg_pool_set_lease_wait(p, 0.5);
  lease_box b = {0};
  mb_pg_lease(p, on_lease, &b);
  CHECK(run_until(&b.done, 10) && b.conn == NULL);
  CHECK(b.error.kind == MB_PG_TRANSIENT && strstr(b.error.msg, "password authentication failed"));
  CHECK(strstr(b.error.msg, "Wr0ng-Secret-pw") == NULL);
  printf("#   %s\n", b.error.msg);
  mb_pg_pool_close(p);
  /* a URL libpq cannot parse, its password in an option */
  p = NULL;
  CHECK(mb_pg_pool_open(&p, loop, "postgresql://u:Wr0ng-Secret-pw@h/db?bogus=1", 1, &err) ==
        MB_EINVAL);
  CHECK(p == NULL && strstr(err.msg, "Wr0ng-Secret-pw") == NULL && strstr(err.msg, "bogus"));
  CHECK(mb_pg_pool_open(&p, loop, "postgresql://h/db?password=Wr0ng-Secret-pw&bogus=1", 1,
                        &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "Wr0ng-Secret-pw") == NULL);
  CHECK(mb_pg_pool_open(&p, loop, "postgresql://u:Wr0ng%zzSecret-pw@h/db", 1, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "Secret-pw") == NULL);
  printf("#   %s\n", err.msg);
  CHECK(mb_pg_pool_open(&p, loop, "mysql://u:Wr0ng-Secret-pw@h/db", 1, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "Wr0ng-Secret-pw") == NULL);
}

static void test_release_inside_a_transaction_rolls_back(void) {
  mb_pg_pool *p = pool(1);
  mb_pg_conn *c = p ? lease(p) : NULL;
  char sql[256];
  CHECK(c != NULL);
  if (!c) goto done;
  snprintf(sql, sizeof sql, "CREATE TABLE %s_rb (k int)", table);
  CHECK(ok(c, sql));
  CHECK(ok(c, "BEGIN"));
  snprintf(sql, sizeof sql, "INSERT INTO %s_rb VALUES (7)", table);
  query_box q = query(c, sql, 0, NULL);
  CHECK(!q.failed && q.changed == 1 && q.rows == 0);
  mb_pg_release(c); /* no COMMIT */
  c = lease(p);
  CHECK(c != NULL);
  if (!c) goto done;
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s_rb", table);
  q = query(c, sql, 0, NULL);
  CHECK(!q.failed && strcmp(q.first, "0") == 0);
  CHECK(mb_pg_pool_reconnects(p) == 0 && mb_pg_pool_open_connections(p) == 1);
  snprintf(sql, sizeof sql, "DROP TABLE %s_rb", table);
  CHECK(ok(c, sql));
  mb_pg_release(c);
done:
  mb_pg_pool_close(p);
}

static void test_no_server_is_transient_and_close_ends_waiting_leases(void) {
  mb_pg_pool *p = NULL;
  mb_err err = {0, ""};
  CHECK(mb_pg_pool_open(&p, loop, "postgresql://moonbus:Wr0ng-Secret-pw@127.0.0.1:1/moonbus", 1,
                        &err) == MB_OK);
  if (!p) return;
  mb_pg_pool_set_lease_wait(p, 0.7);
  lease_box b = {0}, waiting = {0};
  double began = ev_time();
  mb_pg_lease(p, on_lease, &b);
  CHECK(run_until(&b.done, 10) && b.conn == NULL && b.error.kind == MB_PG_TRANSIENT);
  CHECK(ev_time() - began >= 0.6 && ev_time() - began < 3);
  CHECK(strstr(b.error.msg, "refused") != NULL && strstr(b.error.msg, "Wr0ng") == NULL);
  CHECK(mb_pg_pool_open_connections(p) == 0);
  mb_pg_lease(p, on_lease, &waiting);
  mb_pg_pool_close(p);
  CHECK(waiting.done && waiting.conn == NULL && waiting.error.kind == MB_PG_TRANSIENT);
  CHECK(strstr(waiting.error.msg, "closed") != NULL);
}

static void never(void *ud, const mb_pg_result *r, const mb_pg_error *e) {
  (void)r;
  (void)e;
  *(int *)ud = 1;
}

static void test_release_with_a_statement_in_flight(void) {
  mb_pg_pool *p = pool(1);
  mb_pg_conn *c = p ? lease(p) : NULL;
  int called = 0;
  mb_err err;
  CHECK(c != NULL);
  if (!c) goto done;
  CHECK(ok(c, "BEGIN"));
  CHECK(ok(c, "SELECT set_config('moonbus.t', 'inside', true)")); /* until the transaction ends */
  CHECK(mb_pg_query(c, "SELECT pg_sleep(0.2)", 0, NULL, never, &called, &err) == MB_OK);
  mb_pg_release(c); /* its callback must not run; the transaction is rolled back */
  c = lease(p);
  CHECK(c != NULL && !called);
  if (!c) goto done;
  query_box q = query(c, "SELECT current_setting('moonbus.t', true)", 0, NULL);
  CHECK(!q.failed && strcmp(q.first, "inside") != 0); /* not inside the old transaction */
  CHECK(mb_pg_pool_reconnects(p) == 0 && mb_pg_pool_open_connections(p) == 1);
  mb_pg_release(c);
done:
  mb_pg_pool_close(p);
}

int main(void) {
  url = getenv("MOONBUS_TEST_PG");
  if (!url || !*url) {
    printf("not ok - MOONBUS_TEST_PG is not set: run scripts/postgres.sh start and "
           "MOONBUS_TEST_PG=$(bash scripts/postgres.sh url) (scripts/test.sh unit does both)\n");
    return 1;
  }
  loop = ev_loop_new(EVFLAG_AUTO);
  if (!loop) return 1;
  snprintf(table, sizeof table, "mb_pg_test_%ld", (long)getpid());
  RUN(test_select_with_parameters_of_several_types);
  RUN(test_more_leases_than_connections_queue_in_order);
  RUN(test_statement_errors_leave_the_connection_usable);
  RUN(test_serialization_failure_is_retry);
  RUN(test_killed_backend_is_transient_and_made_again);
  RUN(test_wrong_password_is_never_shown);
  RUN(test_release_inside_a_transaction_rolls_back);
  RUN(test_no_server_is_transient_and_close_ends_waiting_leases);
  RUN(test_release_with_a_statement_in_flight);
  ev_loop_destroy(loop);
  return unit_done();
}
