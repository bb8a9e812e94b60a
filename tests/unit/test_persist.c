/* test_persist.c — the inbox and outbox of host/persist.c against a real server: the private
 * cluster of scripts/postgres.sh, whose URL scripts/test.sh puts in MOONBUS_TEST_PG (without
 * it the test fails and says how to start one). Each run works in a PostgreSQL schema of
 * its own (options=-csearch_path=... in the URL), dropped at the end: the schema made twice
 * and by two connections at once, a handled message's outbox stored and read back byte for
 * byte then dispatched, a rolled-back store, two consumers storing the same message, the
 * sweep, a database made by a newer moonbus. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "persist.h"
#include "pg_helpers.h"
#include "unit.h"

static const char *base_url;
static char ns[64];    /* this run's PostgreSQL schema */
static char url[2048]; /* base_url with search_path = ns */
static const char *EP = "orders";

#define STR_(x) #x
#define STR(x) STR_(x)

/* --- the pool ----------------------------------------------------------------------------- */

static mb_pg_pool *pool_at(const char *at, unsigned size) {
  mb_pg_pool *p = NULL;
  mb_err err = {0, ""};
  if (mb_pg_pool_open(&p, loop, at, size, &err) != MB_OK) printf("#   %s\n", err.msg);
  return p;
}

static query_box query(mb_pg_conn *c, const char *sql, int n, const char *const *params) {
  query_box q = quiet_query(c, sql, n, params);
  if (q.failed) printf("#   %s: %s (%s)\n", sql, q.error.msg, q.error.sqlstate);
  return q;
}

/* 1 when c is outside any transaction (a SAVEPOINT is refused there: 25P01). */
static int outside_transaction(mb_pg_conn *c) {
  query_box q = quiet_query(c, "SAVEPOINT probe", 0, NULL);
  return q.failed && strcmp(q.error.sqlstate, "25P01") == 0;
}

static int ok(mb_pg_conn *c, const char *sql) {
  query_box q = query(c, sql, 0, NULL);
  return q.done && !q.failed;
}

/* The first value of the first row of sql with one or two parameters, "ERROR" on failure. */
static const char *value_of(mb_pg_conn *c, const char *sql, const char *a, const char *b) {
  static char out[128];
  const char *params[] = {a, b};
  query_box q = query(c, sql, b ? 2 : a ? 1 : 0, params);
  snprintf(out, sizeof out, "%s", q.done && !q.failed ? q.first : "ERROR");
  return out;
}

/* --- persist's calls, waited for -------------------------------------------------------- */

typedef struct done_box {
  int done, failed;
  mb_pg_error error;
  mb_inbox_state state;
  mb_outgoing **out;
  size_t n;
} done_box;

static void on_done(void *ud, const mb_pg_error *e) {
  done_box *b = ud;
  b->done = 1;
  if (e) {
    b->failed = 1;
    b->error = *e;
  }
}

static void on_inbox(void *ud, mb_inbox_state state, const mb_pg_error *e) {
  done_box *b = ud;
  b->state = state;
  on_done(ud, e);
}

static void on_outbox(void *ud, mb_outgoing **out, size_t n, const mb_pg_error *e) {
  done_box *b = ud;
  b->out = out;
  b->n = n;
  on_done(ud, e);
}

static done_box *wait_box(done_box *b) {
  if (!run_until(&b->done, 30)) printf("#   no answer\n");
  if (b->failed) printf("#   %s (%s)\n", b->error.msg, b->error.sqlstate);
  return b;
}

static int schema(mb_pg_conn *c) {
  done_box b = {0};
  mb_persist_schema(c, on_done, &b);
  return wait_box(&b)->done && !b.failed;
}

/* The inbox state of id, or -1 when it could not be read. */
static int inbox(mb_pg_conn *c, const char *id) {
  done_box b = {0};
  mb_persist_inbox(c, EP, id, on_inbox, &b);
  return wait_box(&b)->done && !b.failed ? (int)b.state : -1;
}

static int store(mb_pg_conn *c, const char *id, mb_outgoing *const *out, size_t n) {
  done_box b = {0};
  mb_persist_store(c, EP, id, out, n, on_done, &b);
  return wait_box(&b)->done && !b.failed;
}

static int dispatched(mb_pg_conn *c, const char *id) {
  done_box b = {0};
  mb_persist_dispatched(c, EP, id, on_done, &b);
  return wait_box(&b)->done && !b.failed;
}

static void outbox_free(mb_outgoing **out, size_t n) {
  for (size_t i = 0; out && i < n; i++) mb_outgoing_free(out[i]);
  free(out);
}

/* The number of stored outgoing messages of id, -1 when they could not be read. */
static long outbox_count(mb_pg_conn *c, const char *id) {
  done_box b = {0};
  mb_persist_outbox(c, EP, id, on_outbox, &b);
  if (!wait_box(&b)->done || b.failed) return -1;
  outbox_free(b.out, b.n);
  return (long)b.n;
}

/* --- messages --------------------------------------------------------------------------- */

static mb_outgoing *message(const char *type, mb_route route, const char *dest, double delay,
                            const char *body, size_t body_len) {
  mb_outgoing *m = malloc(sizeof *m);
  if (!m) return NULL;
  mb_outgoing_init(m);
  mb_uuidv7(m->env.id);
  m->route = route;
  m->delay = delay;
  m->dest = dest ? strdup(dest) : NULL;
  if (mb_envelope_set_type(&m->env, type) != MB_OK ||
      mb_envelope_set_body(&m->env, body, body_len) != MB_OK || (dest && !m->dest)) {
    mb_outgoing_free(m);
    return NULL;
  }
  return m;
}

/* A command (delayed), an event, and a foreign reply: invalid UTF-8 in its type,
 * correlation id and headers, NUL in its body, 100 headers. */
static int make_outbox(mb_outgoing **out) {
  static const char odd_body[] = "{\"a\":\"\0\xff\xfe\xc0\x80\"}\0\x01";
  char key[16], value[64];
  int rc = MB_OK;
  out[0] = message("billing.Charge", MB_ROUTE_QUEUE, "billing", 2.5, "{\"amount\":10}", 13);
  out[1] = message("sales.OrderPlaced", MB_ROUTE_PUBLISH, NULL, 0, "{}", 2);
  out[2] = message("weird.\xff\xfeType", MB_ROUTE_QUEUE, "moonbus.reply.h1.\xe9", 1.0 / 3.0,
                   odd_body, sizeof odd_body - 1);
  if (!out[0] || !out[1] || !out[2]) return MB_ENOMEM;
  rc = mb_headers_set(&out[0]->env.headers, MB_H_KIND, "command");
  if (rc == MB_OK) rc = mb_headers_set(&out[0]->env.headers, MB_H_CONVERSATION, "c-1");
  if (rc == MB_OK) rc = mb_headers_set(&out[1]->env.headers, MB_H_KIND, "event");
  if (rc == MB_OK) rc = mb_envelope_set_correlation_id(&out[2]->env, "corr-\xc3\x28");
  if (rc == MB_OK) rc = mb_envelope_set_reply_to(&out[2]->env, "amq.rabbitmq.reply-to.x\"y");
  for (int i = 0; i < 100 && rc == MB_OK; i++) {
    snprintf(key, sizeof key, "h%03d", i);
    snprintf(value, sizeof value, "v%d \"q\" \\ \x01\t\xfe\xc3\xa9 \x7f", i);
    rc = mb_headers_set(&out[2]->env.headers, key, value);
  }
  out[2]->to_requester = 1;
  out[2]->archive = 1;
  return rc;
}

static int same_string(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const mb_outgoing *a, const mb_outgoing *b) {
  CHECK(strcmp(a->env.id, b->env.id) == 0);
  CHECK(same_string(a->env.type, b->env.type));
  CHECK(same_string(a->env.correlation_id, b->env.correlation_id));
  CHECK(same_string(a->env.reply_to, b->env.reply_to));
  CHECK(same_string(a->dest, b->dest));
  CHECK(a->route == b->route && a->delay == b->delay);
  CHECK(a->to_requester == b->to_requester && a->archive == b->archive);
  CHECK((a->env.body == NULL) == (b->env.body == NULL) && a->env.body_len == b->env.body_len);
  CHECK(a->env.body_len == b->env.body_len &&
        memcmp(a->env.body, b->env.body, a->env.body_len) == 0);
  CHECK(b->env.body && b->env.body[b->env.body_len] == '\0');
  CHECK(a->env.headers.len == b->env.headers.len);
  for (size_t i = 0; i < a->env.headers.len && i < b->env.headers.len; i++) {
    CHECK(strcmp(a->env.headers.items[i].key, b->env.headers.items[i].key) == 0);
    CHECK(strcmp(a->env.headers.items[i].value, b->env.headers.items[i].value) == 0);
  }
}

/* --- the tests ------------------------------------------------------------------------- */

static void test_schema_made_by_two_connections_at_once(void) {
  mb_pg_pool *p = pool_at(url, 2);
  mb_pg_conn *a = lease(p), *b = lease(p);
  done_box da = {0}, db = {0};
  CHECK(a != NULL && b != NULL);
  if (!a || !b) goto done;
  mb_persist_schema(a, on_done, &da);
  mb_persist_schema(b, on_done, &db);
  CHECK(wait_box(&da)->done && !da.failed);
  CHECK(wait_box(&db)->done && !db.failed);
  CHECK(strcmp(value_of(a, "SELECT count(*) FROM moonbus_schema", NULL, NULL), "1") == 0);
  CHECK(strcmp(value_of(a, "SELECT max(version) FROM moonbus_schema", NULL, NULL), "1") == 0);
  CHECK(strcmp(value_of(a, "SELECT to_regclass('moonbus_outbox') IS NOT NULL", NULL, NULL),
               "t") == 0);
done:
  mb_pg_release(a);
  mb_pg_release(b);
  mb_pg_pool_close(p);
}

static void test_schema_twice_is_idempotent(void) {
  mb_pg_pool *p = pool_at(url, 1);
  mb_pg_conn *c = lease(p);
  CHECK(c != NULL);
  if (!c) goto done;
  CHECK(schema(c));
  CHECK(schema(c));
  CHECK(strcmp(value_of(c, "SELECT count(*) FROM moonbus_schema", NULL, NULL), "1") == 0);
  CHECK(outside_transaction(c));
done:
  mb_pg_release(c);
  mb_pg_pool_close(p);
}

static void check_read_back(mb_pg_conn *c, const char *id, mb_outgoing *const *sent) {
  done_box b = {0};
  mb_persist_outbox(c, EP, id, on_outbox, &b);
  CHECK(wait_box(&b)->done && !b.failed && b.n == 3 && b.out != NULL);
  for (size_t i = 0; i < 3 && i < b.n && b.out; i++) check_same(sent[i], b.out[i]);
  outbox_free(b.out, b.n);
}

static void test_store_read_back_and_dispatch(void) {
  mb_pg_pool *p = pool_at(url, 2);
  mb_pg_conn *c = lease(p), *other = lease(p);
  mb_outgoing *out[3] = {NULL, NULL, NULL};
  char id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  CHECK(c != NULL && other != NULL && make_outbox(out) == MB_OK);
  if (!c || !other || !out[2]) goto done;
  CHECK(ok(c, "BEGIN"));
  CHECK(inbox(c, id) == MB_INBOX_NEW);
  CHECK(store(c, id, out, 3));
  CHECK(inbox(c, id) == MB_INBOX_HANDLED);
  CHECK(inbox(other, id) == MB_INBOX_NEW); /* not committed yet */
  CHECK(ok(c, "COMMIT"));
  CHECK(inbox(other, id) == MB_INBOX_HANDLED);
  check_read_back(other, id, out);
  CHECK(dispatched(other, id));
  CHECK(inbox(c, id) == MB_INBOX_DISPATCHED);
  CHECK(outbox_count(c, id) == 0);
  CHECK(strcmp(value_of(c, "SELECT count(*) FROM moonbus_outbox WHERE message_id = $1", id, NULL),
               "0") == 0);
  CHECK(strcmp(value_of(c,
                        "SELECT dispatched_at IS NOT NULL FROM moonbus_inbox WHERE "
                        "message_id = $1",
                        id, NULL),
               "t") == 0);
done:
  for (int i = 0; i < 3; i++) mb_outgoing_free(out[i]);
  mb_pg_release(c);
  mb_pg_release(other);
  mb_pg_pool_close(p);
}

static void test_rolled_back_store_leaves_the_message_new(void) {
  mb_pg_pool *p = pool_at(url, 1);
  mb_pg_conn *c = lease(p);
  mb_outgoing *out[3] = {NULL, NULL, NULL};
  char id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  CHECK(c != NULL && make_outbox(out) == MB_OK);
  if (!c || !out[2]) goto done;
  CHECK(ok(c, "BEGIN"));
  CHECK(store(c, id, out, 3));
  CHECK(ok(c, "ROLLBACK"));
  CHECK(inbox(c, id) == MB_INBOX_NEW);
  CHECK(outbox_count(c, id) == 0);
done:
  for (int i = 0; i < 3; i++) mb_outgoing_free(out[i]);
  mb_pg_release(c);
  mb_pg_pool_close(p);
}

static void test_a_second_store_of_the_same_id_is_a_unique_violation(void) {
  mb_pg_pool *p = pool_at(url, 2);
  mb_pg_conn *a = lease(p), *b = lease(p);
  mb_outgoing *out[3] = {NULL, NULL, NULL};
  done_box second = {0};
  char id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  CHECK(a != NULL && b != NULL && make_outbox(out) == MB_OK);
  if (!a || !b || !out[2]) goto done;
  CHECK(ok(a, "BEGIN") && ok(b, "BEGIN"));
  CHECK(inbox(a, id) == MB_INBOX_NEW && inbox(b, id) == MB_INBOX_NEW);
  CHECK(store(a, id, out, 1));
  mb_persist_store(b, EP, id, out + 1, 2, on_done, &second);
  CHECK(!run_until(&second.done, 0.5)); /* waits for a's transaction */
  CHECK(ok(a, "COMMIT"));
  CHECK(run_until(&second.done, 10) && second.failed);
  CHECK(second.error.kind == MB_PG_STATEMENT && strcmp(second.error.sqlstate, "23505") == 0);
  CHECK(strstr(second.error.msg, id) != NULL && strstr(second.error.msg, EP) != NULL);
  printf("#   the second store: %s\n", second.error.msg);
  CHECK(ok(b, "ROLLBACK"));
  CHECK(inbox(b, id) == MB_INBOX_HANDLED);
  CHECK(outbox_count(b, id) == 1); /* the winner's */
done:
  for (int i = 0; i < 3; i++) mb_outgoing_free(out[i]);
  mb_pg_release(a);
  mb_pg_release(b);
  mb_pg_pool_close(p);
}

/* More messages than one INSERT takes (STORE_BATCH in persist.c), and none at all. */
static void test_store_many_and_none(void) {
  enum { MANY = 150 };
  mb_pg_pool *p = pool_at(url, 1);
  mb_pg_conn *c = lease(p);
  mb_outgoing *out[MANY] = {NULL};
  done_box b = {0};
  char id[MB_ID_LEN + 1], none[MB_ID_LEN + 1], body[32];
  int made = 1;
  mb_uuidv7(id);
  mb_uuidv7(none);
  for (int i = 0; i < MANY; i++) {
    snprintf(body, sizeof body, "{\"n\":%d}", i);
    out[i] = message("m.Step", MB_ROUTE_QUEUE, "next", i * 0.001, body, strlen(body));
    made = made && out[i] != NULL;
  }
  CHECK(c != NULL && made);
  if (!c || !made) goto done;
  CHECK(ok(c, "BEGIN") && store(c, id, out, MANY) && store(c, none, NULL, 0) && ok(c, "COMMIT"));
  mb_persist_outbox(c, EP, id, on_outbox, &b);
  CHECK(wait_box(&b)->done && !b.failed && b.n == MANY);
  for (size_t i = 0; i < MANY && i < b.n; i++) check_same(out[i], b.out[i]);
  outbox_free(b.out, b.n);
  CHECK(inbox(c, none) == MB_INBOX_HANDLED && outbox_count(c, none) == 0);
  CHECK(dispatched(c, id) && dispatched(c, none) && inbox(c, none) == MB_INBOX_DISPATCHED);
  CHECK(outbox_count(c, id) == 0);
done:
  for (int i = 0; i < MANY; i++) mb_outgoing_free(out[i]);
  mb_pg_release(c);
  mb_pg_pool_close(p);
}

static int sweep(mb_pg_conn *c, const char *endpoint, double days_ago) {
  done_box b = {0};
  int64_t before = (int64_t)((ev_time() - days_ago * 86400) * 1e6);
  mb_persist_sweep(c, endpoint, before, on_done, &b);
  return wait_box(&b)->done && !b.failed;
}

static long inbox_rows(mb_pg_conn *c, const char *endpoint) {
  return strtol(
      value_of(c, "SELECT count(*) FROM moonbus_inbox WHERE endpoint = $1", endpoint, NULL), NULL,
      10);
}

/* Inbox rows of endpoint processed days ago: how many, named prefix-1.. */
static int old_rows(mb_pg_conn *c, const char *endpoint, const char *prefix, const char *count) {
  const char *params[] = {endpoint, prefix, count};
  query_box q = query(c,
                      "INSERT INTO moonbus_inbox (endpoint, message_id, state, processed_at) "
                      "SELECT $1::text, $2::text || g, 2, now() - interval '30 days' "
                      "FROM generate_series(1, $3::int) g",
                      3, params);
  return q.done && !q.failed;
}

static void test_sweep_deletes_old_rows_only(void) {
  mb_pg_pool *p = pool_at(url, 2);
  mb_pg_conn *c = lease(p), *holder = lease(p);
  mb_outgoing *out[3] = {NULL, NULL, NULL};
  CHECK(c != NULL && holder != NULL && make_outbox(out) == MB_OK);
  if (!c || !holder || !out[2]) goto done;
  CHECK(ok(c, "DELETE FROM moonbus_inbox") && ok(c, "DELETE FROM moonbus_outbox"));
  CHECK(store(c, "old-stored", out, 3) && store(c, "new-stored", out, 1));
  CHECK(strcmp(value_of(c,
                        "UPDATE moonbus_inbox SET processed_at = now() - interval '8 days' "
                        "WHERE message_id = $1 RETURNING 1",
                        "old-stored", NULL),
               "1") == 0);
  CHECK(old_rows(c, EP, "bulk-", "10050")); /* more than a slice */
  CHECK(old_rows(c, "other", "other-", "3"));
  CHECK(inbox_rows(c, EP) == 10052);
  CHECK(sweep(c, EP, 7));
  CHECK(inbox_rows(c, EP) == 1 && inbox(c, "new-stored") == MB_INBOX_HANDLED);
  CHECK(outbox_count(c, "old-stored") == 0 && outbox_count(c, "new-stored") == 1);
  CHECK(inbox_rows(c, "other") == 3);
  /* while another host holds the endpoint's sweep lock, a sweep skips */
  CHECK(ok(holder, "BEGIN"));
  CHECK(strcmp(value_of(holder,
                        "SELECT pg_try_advisory_xact_lock(" STR(
                            MB_PERSIST_LOCK_SWEEP) ", hashtext($1::text))",
                        EP, NULL),
               "t") == 0);
  CHECK(old_rows(c, EP, "late-", "2"));
  CHECK(sweep(c, EP, 7));
  CHECK(inbox_rows(c, EP) == 3);
  CHECK(ok(holder, "ROLLBACK"));
  CHECK(sweep(c, EP, 7));
  CHECK(inbox_rows(c, EP) == 1);
  CHECK(outside_transaction(c));
done:
  for (int i = 0; i < 3; i++) mb_outgoing_free(out[i]);
  mb_pg_release(c);
  mb_pg_release(holder);
  mb_pg_pool_close(p);
}

static void test_dispatched_without_an_inbox_row_is_an_error(void) {
  mb_pg_pool *p = pool_at(url, 1);
  mb_pg_conn *c = lease(p);
  done_box b = {0};
  CHECK(c != NULL);
  if (!c) goto done;
  mb_persist_dispatched(c, EP, "never-stored", on_done, &b);
  CHECK(wait_box(&b)->failed && b.error.kind == MB_PG_STATEMENT);
  CHECK(strstr(b.error.msg, "never-stored") != NULL && strstr(b.error.msg, "no inbox row"));
  memset(&b, 0, sizeof b);
  mb_persist_inbox(c, NULL, "x", on_inbox, &b); /* an error at once, with a message */
  CHECK(b.done && b.failed && b.error.msg[0] != '\0');
done:
  mb_pg_release(c);
  mb_pg_pool_close(p);
}

static void test_a_newer_schema_is_an_error(void) {
  mb_pg_pool *p = pool_at(url, 1);
  mb_pg_conn *c = lease(p);
  done_box b = {0};
  CHECK(c != NULL);
  if (!c) goto done;
  CHECK(ok(c, "UPDATE moonbus_schema SET version = 2"));
  mb_persist_schema(c, on_done, &b);
  CHECK(run_until(&b.done, 30) && b.failed && b.error.kind == MB_PG_STATEMENT);
  CHECK(strstr(b.error.msg, "newer moonbus") != NULL);
  printf("#   %s\n", b.error.msg);
  /* the schema's transaction was rolled back: the connection is outside any */
  CHECK(outside_transaction(c));
  CHECK(ok(c, "UPDATE moonbus_schema SET version = 1"));
  CHECK(schema(c));
done:
  mb_pg_release(c);
  mb_pg_pool_close(p);
}

/* --- this run's PostgreSQL schema ------------------------------------------------------- */

static int private_schema(const char *verb) {
  char sql[128];
  mb_pg_pool *p = pool_at(base_url, 1);
  mb_pg_conn *c = lease(p);
  int done = 0;
  if (c && snprintf(sql, sizeof sql, "%s SCHEMA %s%s", verb, ns,
                    strcmp(verb, "DROP") == 0 ? " CASCADE" : "") > 0)
    done = ok(c, sql);
  mb_pg_release(c);
  mb_pg_pool_close(p);
  return done;
}

int main(void) {
  base_url = getenv("MOONBUS_TEST_PG");
  if (!base_url || !*base_url) {
    printf("not ok - MOONBUS_TEST_PG is not set: run scripts/postgres.sh start and "
           "MOONBUS_TEST_PG=$(bash scripts/postgres.sh url) (scripts/test.sh unit does both)\n");
    return 1;
  }
  loop = ev_loop_new(EVFLAG_AUTO);
  if (!loop) return 1;
  snprintf(ns, sizeof ns, "mb_persist_test_%ld", (long)getpid());
  snprintf(url, sizeof url, "%s%soptions=-csearch_path%%3D%s", base_url,
           strchr(base_url, '?') ? "&" : "?", ns);
  if (!private_schema("CREATE")) {
    printf("not ok - could not create the PostgreSQL schema %s at MOONBUS_TEST_PG\n", ns);
    return 1;
  }
  RUN(test_schema_made_by_two_connections_at_once);
  RUN(test_schema_twice_is_idempotent);
  RUN(test_store_read_back_and_dispatch);
  RUN(test_rolled_back_store_leaves_the_message_new);
  RUN(test_a_second_store_of_the_same_id_is_a_unique_violation);
  RUN(test_store_many_and_none);
  RUN(test_sweep_deletes_old_rows_only);
  RUN(test_dispatched_without_an_inbox_row_is_an_error);
  RUN(test_a_newer_schema_is_an_error);
  if (!private_schema("DROP")) printf("#   could not drop the PostgreSQL schema %s\n", ns);
  ev_loop_destroy(loop);
  return unit_done();
}
