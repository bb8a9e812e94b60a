/* test_sqlite.c — the SQLite transport through its vtable, on a real database file in a
 * fresh folder: topology and ownership, dispatch and unroutable sends, leases, complete
 * with outbox, release with delay, lost leases, malformed rows, close giving leased
 * messages back, and order_by marks (checked, moved in the ack's transaction, or refused
 * as stale with everything rolled back). */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "transport.h"
#include "transport/sqlite_internal.h"
#include "transport_helpers.h"
#include "unit.h"

static char dir[] = "/tmp/moonbus-unit-XXXXXX";
static char url[256];
static struct ev_loop *loop;

static mb_transport *open_fresh(const char *name, const char *options) {
  snprintf(url, sizeof url, "sqlite://%s/%s.db%s", dir, name, options);
  mb_transport *t = NULL;
  mb_err err;
  int rc = mb_transport_open(&t, loop, url, "unit", &err);
  if (rc != MB_OK) printf("#   open %s: %s\n", url, err.msg);
  return t;
}

static mb_transport *reopen(void) {
  mb_transport *t = NULL;
  mb_err err;
  return mb_transport_open(&t, loop, url, "unit", &err) == MB_OK ? t : NULL;
}

static int declare(mb_transport *t, const char *endpoint, const char *sub, const char *owned,
                   mb_err *err) {
  return declare_with(t, endpoint, NULL, sub, owned, err);
}

/* Runs the loop until in has n deliveries or a second passes. */
static void run_until(inbox *in, int n) {
  for (int i = 0; i < 100 && in->n < n; i++) {
    ev_run(loop, EVRUN_NOWAIT);
    if (in->n < n) usleep(10000);
  }
}

static long depth_ready(mb_transport *t, const char *queue) {
  long ready = -1, later = -1;
  mb_err err;
  t->ops->depth(t, queue, &ready, &later, &err);
  return ready;
}

static mb_mark version_of(const char *key, int64_t v) {
  mb_mark m = {.endpoint = "a",
               .type = "a.Do",
               .key = key,
               .order_by = "version",
               .key_field = "job",
               .kind = MB_MARK_INTEGER,
               .integer = v};
  return m;
}

static void test_marks_move_with_the_ack_or_not_at_all(void) {
  mb_transport *t = open_fresh("marks", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 3; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 3);
  CHECK(in.n == 3);
  if (in.n != 3) return;
  mb_mark v6 = version_of("k", 6), v5 = version_of("k", 5), t1 = version_of("k", 0);
  t1.kind = MB_MARK_TEXT; /* every string is above every number */
  t1.text = "1";
  t1.len = 1;
  int stale = -1;
  char highest[64] = "";
  CHECK(t->ops->mark_check(t, &v5, &stale, highest, sizeof highest, &err) == MB_OK && !stale);
  done_calls = 0;
  mb_outgoing *out = message("a.Next", "a", "{}");
  CHECK(t->ops->complete_marked(t, in.got[0], &v6, &out, 1, on_done, NULL, &err) == MB_OK);
  CHECK(done_calls == 1 && done_status == MB_OK);
  CHECK(t->ops->mark_check(t, &v5, &stale, highest, sizeof highest, &err) == MB_OK && stale);
  CHECK(strcmp(highest, "6") == 0);
  /* v5 passed its check before v6 was stored: its ack is refused, its outbox not sent */
  CHECK(t->ops->complete_marked(t, in.got[1], &v5, &out, 1, on_done, NULL, &err) == MB_ESTALE);
  CHECK(strstr(err.msg, "stale: version 5 was overtaken") != NULL && done_calls == 1);
  mb_outgoing_free(out);
  CHECK(depth_ready(t, "a") == 1); /* a.Next of v6 only; v5 is still leased to us */
  CHECK(t->ops->complete(t, in.got[1], NULL, 0, on_done, NULL, &err) == MB_OK);
  CHECK(t->ops->complete_marked(t, in.got[2], &t1, NULL, 0, on_done, NULL, &err) == MB_OK);
  CHECK(t->ops->mark_check(t, &v6, &stale, highest, sizeof highest, &err) == MB_OK && stale);
  CHECK(strcmp(highest, "\"1\"") == 0);
  inbox_free(&in);
  t->ops->close(t);
}

static void test_dispatch_and_receive_roundtrip(void) {
  mb_transport *t = open_fresh("roundtrip", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  mb_outgoing *m = message("a.Do", "a", "{\"x\":1}");
  char id[MB_ID_LEN + 1];
  strcpy(id, m->env.id);
  mb_headers_set(&m->env.headers, "x-user", "value \"quoted\"");
  mb_envelope_set_correlation_id(&m->env, "corr-1");
  mb_envelope_set_reply_to(&m->env, "b");
  CHECK(send_one(t, m, &err) == MB_OK && done_calls == 1 && done_status == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1);
  CHECK(in.n == 1);
  if (in.n == 1) {
    mb_delivery *d = in.got[0];
    CHECK(strcmp(d->env.id, id) == 0);
    CHECK(strcmp(d->env.type, "a.Do") == 0);
    CHECK(strcmp(d->env.body, "{\"x\":1}") == 0 && d->env.body_len == 7);
    CHECK(strcmp(d->env.correlation_id, "corr-1") == 0);
    CHECK(strcmp(d->env.reply_to, "b") == 0);
    CHECK(strcmp(mb_headers_get(&d->env.headers, "x-user"), "value \"quoted\"") == 0);
    CHECK(d->delivery_count == 1 && d->problem == NULL && strcmp(d->queue, "a") == 0);
    done_calls = 0;
    CHECK(t->ops->complete(t, d, NULL, 0, on_done, NULL, &err) == MB_OK && done_calls == 1);
    mb_delivery_free(d);
  }
  CHECK(depth_ready(t, "a") == 0);
  t->ops->close(t);
}

static void test_unroutable_send_names_the_queue_and_sends_nothing(void) {
  mb_transport *t = open_fresh("unroutable", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  mb_outgoing *batch[2] = {message("a.Do", "a", "{}"), message("b.Do", "nowhere", "{}")};
  done_calls = 0;
  int rc = t->ops->dispatch(t, batch, 2, on_done, NULL, &err);
  CHECK(rc == MB_EUNROUTABLE && done_calls == 0);
  CHECK(strstr(err.msg, "no queue named 'nowhere'") != NULL);
  CHECK(strstr(err.msg, batch[1]->env.id) != NULL);
  CHECK(depth_ready(t, "a") == 0); /* the whole batch or nothing */
  mb_outgoing_free(batch[0]);
  mb_outgoing_free(batch[1]);
  t->ops->close(t);
}

static void test_publish_reaches_every_subscriber(void) {
  mb_transport *t = open_fresh("publish", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "sales", NULL, "sales.Placed", &err) == MB_OK);
  CHECK(declare(t, "billing", "sales.Placed", NULL, &err) == MB_OK);
  CHECK(declare(t, "shipping", "sales.Placed", NULL, &err) == MB_OK);
  CHECK(send_one(t, message("sales.Placed", NULL, "{}"), &err) == MB_OK);
  CHECK(depth_ready(t, "billing") == 1 && depth_ready(t, "shipping") == 1);
  CHECK(depth_ready(t, "sales") == 0);
  /* declaring again without the subscription drops it */
  CHECK(declare(t, "shipping", NULL, NULL, &err) == MB_OK);
  CHECK(send_one(t, message("sales.Placed", NULL, "{}"), &err) == MB_OK);
  CHECK(depth_ready(t, "billing") == 2 && depth_ready(t, "shipping") == 1);
  t->ops->close(t);
}

static void test_second_publisher_is_refused_with_the_owner(void) {
  mb_transport *t = open_fresh("owner", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "sales", NULL, "sales.Placed", &err) == MB_OK);
  CHECK(declare(t, "sales", NULL, "sales.Placed", &err) == MB_OK); /* idempotent */
  int rc = declare(t, "billing", NULL, "sales.Placed", &err);
  CHECK(rc == MB_EOWNER);
  CHECK(strstr(err.msg, "sales.Placed is published by endpoint sales") != NULL);
  CHECK(strstr(err.msg, "billing") != NULL);
  char owner[64];
  CHECK(t->ops->owner_of(t, "sales.Placed", owner, sizeof owner, &err) == MB_OK);
  CHECK(strcmp(owner, "sales") == 0);
  CHECK(t->ops->owner_of(t, "nobody.Owns", owner, sizeof owner, &err) == MB_ENOTFOUND);
  /* the refused declare changed nothing: billing's queue was not created */
  mb_err e2;
  CHECK(send_one(t, message("x.Do", "billing", "{}"), &e2) == MB_EUNROUTABLE);
  t->ops->close(t);
}

static void test_release_with_delay_and_count_kept(void) {
  mb_transport *t = open_fresh("release", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1);
  CHECK(in.n == 1);
  if (in.n != 1) return;
  CHECK(t->ops->release(t, in.got[0], 0.3, &err) == MB_OK);
  mb_delivery_free(in.got[0]);
  long ready = -1, later = -1;
  t->ops->depth(t, "a", &ready, &later, &err);
  CHECK(ready == 0 && later == 1);
  in.n = 0;
  run_until(&in, 1);
  CHECK(in.n == 1);
  if (in.n == 1) {
    CHECK(in.got[0]->delivery_count == 2);
    CHECK(t->ops->complete(t, in.got[0], NULL, 0, on_done, NULL, &err) == MB_OK);
    mb_delivery_free(in.got[0]);
  }
  t->ops->close(t);
}

static void test_complete_sends_outbox_atomically(void) {
  mb_transport *t = open_fresh("outbox", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  CHECK(declare(t, "b", NULL, NULL, &err) == MB_OK);
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1);
  if (in.n != 1) {
    CHECK(in.n == 1);
    return;
  }
  mb_outgoing *bad[2] = {message("b.Do", "b", "{}"), message("c.Do", "nowhere", "{}")};
  CHECK(t->ops->complete(t, in.got[0], bad, 2, on_done, NULL, &err) == MB_EUNROUTABLE);
  CHECK(depth_ready(t, "b") == 0); /* nothing of a failed outbox leaves */
  mb_outgoing *good[1] = {bad[0]};
  done_calls = 0;
  CHECK(t->ops->complete(t, in.got[0], good, 1, on_done, NULL, &err) == MB_OK);
  CHECK(done_calls == 1 && depth_ready(t, "b") == 1);
  long ready, later;
  t->ops->depth(t, "a", &ready, &later, &err);
  CHECK(ready == 0 && later == 0);
  mb_outgoing_free(bad[0]);
  mb_outgoing_free(bad[1]);
  mb_delivery_free(in.got[0]);
  t->ops->close(t);
}

/* t1 leases a message and then hangs (its loop stops, so its lease is not renewed);
 * after the lease runs out t2 takes the message, and t1's late ack is refused. */
static void test_expired_lease_is_lost_to_another_consumer(void) {
  mb_transport *t1 = open_fresh("lease", "?synchronous=normal&lease=1");
  struct ev_loop *main_loop = loop;
  loop = ev_loop_new(EVFLAG_AUTO);
  mb_transport *t2 = reopen();
  mb_err err;
  CHECK(t1 && t2 && declare(t1, "a", NULL, NULL, &err) == MB_OK);
  CHECK(send_one(t1, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in1 = {0}, in2 = {0};
  struct ev_loop *loop2 = loop;
  loop = main_loop;
  CHECK(t1->ops->consume(t1, "a", 8, on_delivery, &in1, &err) == MB_OK);
  run_until(&in1, 1);
  CHECK(in1.n == 1);
  usleep(1200000);
  loop = loop2;
  CHECK(t2->ops->consume(t2, "a", 8, on_delivery, &in2, &err) == MB_OK);
  run_until(&in2, 1);
  CHECK(in2.n == 1);
  if (in1.n == 1 && in2.n == 1) {
    CHECK(in2.got[0]->delivery_count == 2);
    int rc = t1->ops->complete(t1, in1.got[0], NULL, 0, on_done, NULL, &err);
    CHECK(rc == MB_ELOST && strstr(err.msg, in1.got[0]->env.id) && strstr(err.msg, "'a'"));
    CHECK(t2->ops->complete(t2, in2.got[0], NULL, 0, on_done, NULL, &err) == MB_OK);
  }
  for (int i = 0; i < in1.n; i++) mb_delivery_free(in1.got[i]);
  for (int i = 0; i < in2.n; i++) mb_delivery_free(in2.got[i]);
  t2->ops->close(t2);
  ev_loop_destroy(loop2);
  loop = main_loop;
  t1->ops->close(t1);
}

static void test_close_gives_leased_messages_back(void) {
  mb_transport *t = open_fresh("close", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 3; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 2, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 2);
  CHECK(in.n == 2); /* max_in_flight holds back the third */
  for (int i = 0; i < in.n; i++) mb_delivery_free(in.got[i]);
  t->ops->close(t);
  t = reopen();
  CHECK(t && depth_ready(t, "a") == 3);
  if (t) t->ops->close(t);
}

static const char *problem_of(const mb_delivery *d) { return d->problem ? d->problem : ""; }
static const char *foreign_id(const mb_delivery *d) {
  const char *v = mb_headers_get(&d->env.headers, MB_H_FOREIGN_ID);
  return v ? v : "(no header)";
}

static void test_malformed_headers_are_delivered_as_a_problem(void) {
  mb_transport *t = open_fresh("malformed", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "sqlite3 %s/malformed.db \"insert into messages(queue,id,type,headers,body,"
           "visible_at) values('a','bad-id','a.Do','{\\\"k\\\":{\\\"n\\\":1}}','{}',0)\"",
           dir);
  CHECK(system(cmd) == 0);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1);
  CHECK(in.n == 1);
  if (in.n == 1) {
    CHECK(in.got[0]->problem != NULL && strstr(in.got[0]->problem, "malformed headers"));
    CHECK(mb_id_valid(in.got[0]->env.id)); /* a new id, the original beside it */
    CHECK(strcmp(foreign_id(in.got[0]), "bad-id") == 0);
    CHECK(t->ops->complete(t, in.got[0], NULL, 0, on_done, NULL, &err) == MB_OK);
    mb_delivery_free(in.got[0]);
  }
  t->ops->close(t);
}

/* A row as a foreign writer leaves it, through a connection of its own; text arguments
 * are bound with their full length (len < 0: strlen), NULL as SQL NULL. */
static int raw_row(const char *db, const char *id, const char *type, int type_len,
                   const char *headers, const char *body) {
  sqlite3 *h;
  sqlite3_stmt *s;
  if (sqlite3_open(db, &h) != SQLITE_OK) return 0;
  sqlite3_busy_timeout(h, 5000);
  int ok = sqlite3_prepare_v2(h,
                              "INSERT INTO messages(queue, id, type, headers, body, "
                              "visible_at) VALUES('a', ?1, ?2, ?3, ?4, 0)",
                              -1, &s, NULL) == SQLITE_OK;
  if (ok) {
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, type, type_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, headers, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, body, -1, SQLITE_STATIC);
    ok = sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
  }
  sqlite3_close(h);
  return ok;
}

/* Issue 15 item 1: rows with an empty or foreign id, no type, a type with a NUL byte,
 * headers that break the header rules: each is delivered whole (a UUID, the original id
 * beside it, the reason in problem), none stops the ones behind it. */
static void test_foreign_rows_are_delivered_whole(void) {
  mb_transport *t = open_fresh("foreign", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  char db[300];
  snprintf(db, sizeof db, "%s/foreign.db", dir);
  const char *kind = "{\"moonbus.kind\":\"command\"}";
  char many[300 * 16] = "{";
  for (int i = 0; i < 300; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"k%d\":\"v\"", i ? "," : "", i);
  strcat(many, "}");
  CHECK(raw_row(db, "", NULL, 0, kind, "{}"));                        /* 0 */
  CHECK(raw_row(db, "order-17", "a.Do", -1, kind, NULL));             /* 1 */
  CHECK(raw_row(db, "x", "a.Do", -1, "{\"has space\":\"v\"}", "{}")); /* 2 */
  CHECK(raw_row(db, "x", "a.Do", -1, many, "{}"));                    /* 3 */
  CHECK(raw_row(db, "x", "a.D\0o", 5, kind, "{}"));                   /* 4 */
  CHECK(raw_row(db, "x", "a.Do", -1, "not json", "{}"));              /* 5 */
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 6);
  CHECK(in.n == 6);
  if (in.n != 6) return;
  mb_delivery **d = in.got;
  for (int i = 0; i < 6; i++) CHECK(mb_id_valid(d[i]->env.id));
  CHECK(strcmp(foreign_id(d[0]), "") == 0);
  CHECK(d[0]->env.type == NULL && d[0]->problem == NULL);
  CHECK(strcmp(foreign_id(d[1]), "order-17") == 0);
  CHECK(d[1]->problem == NULL && d[1]->env.body_len == 0 && d[1]->env.body[0] == '\0');
  CHECK(strstr(problem_of(d[2]), "header 'has space'") != NULL);
  CHECK(strstr(problem_of(d[3]), "300 headers, over the limit of 256") != NULL);
  CHECK(strstr(problem_of(d[4]), "NUL byte") != NULL);
  CHECK(strstr(problem_of(d[5]), "malformed headers") != NULL);
  for (int i = 0; i < 6; i++) {
    CHECK(t->ops->complete(t, d[i], NULL, 0, on_done, NULL, &err) == MB_OK);
    mb_delivery_free(d[i]);
  }
  CHECK(depth_ready(t, "a") == 0);
  t->ops->close(t);
}

/* Issue 15 item 7: a 60 000-key row stalled every process for seconds while the lease
 * transaction decoded it; now it is leased at once and comes with its reason. */
static void test_a_row_of_60000_headers_is_leased_at_once_with_its_reason(void) {
  mb_transport *t = open_fresh("manykeys", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  size_t cap = 60000 * 20 + 64, at = 0;
  char *json = malloc(cap);
  json[at++] = '{';
  for (int i = 0; i < 60000; i++)
    at += (size_t)snprintf(json + at, cap - at, "%s\"k%d\":\"v\"", i ? "," : "", i);
  json[at++] = '}';
  json[at] = '\0';
  char db[300];
  snprintf(db, sizeof db, "%s/manykeys.db", dir);
  CHECK(raw_row(db, "x", "a.Do", -1, json, "{}"));
  free(json);
  inbox in = {0};
  double start = mb_monotonic();
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1);
  double took = mb_monotonic() - start;
  printf("#   a row of 60 000 headers leased and decoded in %.3f s\n", took);
  CHECK(in.n == 1 && took < 1.5);
  if (in.n == 1) {
    CHECK(strstr(problem_of(in.got[0]), "60000 headers, over the limit of 256") != NULL);
    CHECK(t->ops->complete(t, in.got[0], NULL, 0, on_done, NULL, &err) == MB_OK);
    mb_delivery_free(in.got[0]);
  }
  t->ops->close(t);
}

/* The decoder on columns no schema lets through (a NULL id, NULL headers, numbers). */
static void test_a_row_of_nulls_decodes(void) {
  sqlite3 *h;
  sqlite3_stmt *s;
  CHECK(sqlite3_open(":memory:", &h) == SQLITE_OK);
  CHECK(sqlite3_prepare_v2(h,
                           "SELECT 7, NULL, NULL, NULL, NULL, NULL, NULL, -3 UNION ALL "
                           "SELECT 8, 42, 17, 1, 2, 3, 4, 1e12",
                           -1, &s, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(s) == SQLITE_ROW);
  mb_delivery *d = sq_delivery_from_row(s, "q");
  CHECK(d && d->tag == 7 && mb_id_valid(d->env.id) && d->problem == NULL);
  CHECK(d && d->env.type == NULL && d->env.correlation_id == NULL && d->env.reply_to == NULL);
  CHECK(d && d->env.body && d->env.body_len == 0 && d->delivery_count == 1);
  CHECK(d && d->env.headers.len == 1 && strcmp(foreign_id(d), "") == 0);
  mb_delivery_free(d);
  CHECK(sqlite3_step(s) == SQLITE_ROW);
  d = sq_delivery_from_row(s, "q");
  CHECK(d && strcmp(foreign_id(d), "42") == 0);
  CHECK(d && d->env.type && strcmp(d->env.type, "17") == 0 && strcmp(d->env.body, "4") == 0);
  CHECK(d && d->problem && strstr(d->problem, "malformed headers"));
  CHECK(d && d->delivery_count == UINT32_MAX);
  mb_delivery_free(d);
  sqlite3_finalize(s);
  sqlite3_close(h);
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void on_break(struct ev_loop *l, ev_timer *w, int revents) {
  (void)w;
  (void)revents;
  ev_break(l, EVBREAK_ONE);
}

/* Runs the loop for secs and returns the CPU seconds this process used meanwhile. */
static double cpu_while_running(double secs) {
  ev_timer stop;
  ev_timer_init(&stop, on_break, secs, 0.);
  ev_timer_start(loop, &stop);
  double before = cpu_seconds();
  ev_run(loop, 0);
  ev_timer_stop(loop, &stop);
  return cpu_seconds() - before;
}

/* A row whose visible_at is not a number looks ready to min() but no lease takes it: the
 * consumer must not poll for it in a tight loop, and the messages behind it still come. */
static void test_a_row_that_cannot_be_leased_does_not_spin(void) {
  mb_transport *t = open_fresh("spin", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "sqlite3 %s/spin.db \"insert into messages(queue,id,type,headers,body,visible_at)"
           " values('a','x','a.Do','{}','{}','soon')\"",
           dir);
  CHECK(system(cmd) == 0);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  double cpu = cpu_while_running(1.0);
  printf("#   %.3f s of CPU in 1 s beside an unleasable row\n", cpu);
  CHECK(cpu < 0.2 && in.n == 0);
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  run_until(&in, 1);
  CHECK(in.n == 1);
  for (int i = 0; i < in.n; i++) {
    t->ops->complete(t, in.got[i], NULL, 0, on_done, NULL, &err);
    mb_delivery_free(in.got[i]);
  }
  t->ops->close(t);
}

static unsigned mode_of(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 01000000;
}

/* Opens sqlite://DIR/SUB/bus.db OPTIONS under umask mask, sends one message (the -wal and
 * -shm files appear), and checks the modes of the folders and files. */
static void check_modes(const char *sub, const char *options, mode_t mask, unsigned file,
                        unsigned folder) {
  char base[200], path[300];
  snprintf(base, sizeof base, "%s/%s", dir, sub);
  snprintf(url, sizeof url, "sqlite://%s/inner/bus.db%s", base, options);
  mode_t old = umask(mask);
  mb_transport *t = NULL;
  mb_err err;
  CHECK(mb_transport_open(&t, loop, url, "unit", &err) == MB_OK);
  umask(old);
  if (t == NULL) return;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  const char *suffixes[] = {"", "-wal", "-shm", "-bell"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/inner/bus.db%s", base, suffixes[i]);
    if (mode_of(path) != file) printf("#   %s: %04o, not %04o\n", path, mode_of(path), file);
    CHECK(mode_of(path) == file);
  }
  snprintf(path, sizeof path, "%s/inner", base);
  CHECK(mode_of(base) == folder && mode_of(path) == folder);
  t->ops->close(t);
}

/* Issue 15 item 10: any local user could read every message (0644 files, 0775 folders). */
static void test_files_are_private_whatever_the_umask(void) {
  check_modes("private0", "", 0, 0600, 0700);
  check_modes("private22", "?synchronous=normal", 022, 0600, 0700);
  check_modes("group", "?mode=0660", 0, 0660, 0770);
  check_modes("group77", "?mode=0640&synchronous=normal", 077, 0640, 0750);
  mb_transport *t = NULL;
  mb_err err;
  const char *bad[] = {"?mode=0777", "?mode=0400", "?mode=660x", "?mode=", "?mode=06600"};
  for (int i = 0; i < 5; i++) {
    snprintf(url, sizeof url, "sqlite://%s/badmode/bus.db%s", dir, bad[i]);
    CHECK(mb_transport_open(&t, loop, url, "unit", &err) == MB_EINVAL &&
          strstr(err.msg, "mode="));
  }
}

static int file_holds(const char *path, const char *text) {
  char got[64] = "";
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(got, 1, sizeof got - 1, f);
  fclose(f);
  got[n] = '\0';
  return strcmp(got, text) == 0;
}

/* Issue 15 item 10: a symbolic link planted as the bell made the host overwrite the first
 * byte of the file it points to. */
static void test_a_symlinked_bell_is_refused(void) {
  char victim[300], bell[300];
  snprintf(victim, sizeof victim, "%s/precious.txt", dir);
  snprintf(bell, sizeof bell, "%s/linked.db-bell", dir);
  FILE *f = fopen(victim, "w");
  fputs("precious", f);
  fclose(f);
  CHECK(symlink(victim, bell) == 0);
  mb_transport *t = NULL;
  mb_err err;
  snprintf(url, sizeof url, "sqlite://%s/linked.db", dir);
  CHECK(mb_transport_open(&t, loop, url, "unit", &err) == MB_EIO);
  CHECK(strstr(err.msg, bell) && strstr(err.msg, "symbolic link"));
  CHECK(file_holds(victim, "precious"));
  /* nor a hard link to it */
  CHECK(unlink(bell) == 0 && link(victim, bell) == 0);
  CHECK(mb_transport_open(&t, loop, url, "unit", &err) == MB_EIO);
  CHECK(strstr(err.msg, "hard links") != NULL);
  CHECK(file_holds(victim, "precious"));
  CHECK(unlink(bell) == 0);
  CHECK(mb_transport_open(&t, loop, url, "unit", &err) == MB_OK);
  if (t) t->ops->close(t);
}

/* Issue 15 item 10: a database file deleted (or replaced) under a running host is an
 * error in the log naming the file. */
static void test_a_deleted_database_is_reported(void) {
  const char *how[] = {"deleted", "replaced"};
  for (int i = 0; i < 2; i++) {
    char name[32], path[300];
    snprintf(name, sizeof name, "gone%d", i);
    mb_transport *t = open_fresh(name, "?synchronous=normal");
    mb_err err;
    CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
    inbox in = {0};
    CHECK(t && t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
    mb_log_capture(1, MB_ERROR);
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    if (i == 0) {
      CHECK(unlink(path) == 0);
    } else {
      char other[310];
      snprintf(other, sizeof other, "%s.new", path);
      FILE *f = fopen(other, "w");
      fclose(f);
      CHECK(rename(other, path) == 0);
    }
    cpu_while_running(0.3);
    size_t len;
    const char *log = mb_log_captured(&len);
    if (!strstr(log, how[i])) printf("#   log: %s\n", log);
    CHECK(strstr(log, path) && strstr(log, how[i]) && strstr(log, " error "));
    mb_log_capture(0, MB_ERROR);
    if (t) t->ops->close(t);
  }
}

/* --- a disk that fills up: a VFS that forwards to the default one and fails writes on
 * demand (the WAL, the database), so that every commit fails as on a full disk -------- */

static int fail_writes; /* 0, or the code every xWrite returns */
static sqlite3_vfs *real_vfs, faulty_vfs;

typedef struct shim_file {
  sqlite3_file base;
  sqlite3_file *real;
} shim_file;
#define REAL(f) (((shim_file *)(f))->real)
#define M(f) REAL(f)->pMethods

static int s_close(sqlite3_file *f) {
  int rc = M(f)->xClose(REAL(f));
  sqlite3_free(REAL(f));
  return rc;
}
static int s_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
  return M(f)->xRead(REAL(f), b, n, o);
}
static int s_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
  return fail_writes ? fail_writes : M(f)->xWrite(REAL(f), b, n, o);
}
static int s_truncate(sqlite3_file *f, sqlite3_int64 n) { return M(f)->xTruncate(REAL(f), n); }
static int s_sync(sqlite3_file *f, int flags) { return M(f)->xSync(REAL(f), flags); }
static int s_size(sqlite3_file *f, sqlite3_int64 *n) { return M(f)->xFileSize(REAL(f), n); }
static int s_lock(sqlite3_file *f, int l) { return M(f)->xLock(REAL(f), l); }
static int s_unlock(sqlite3_file *f, int l) { return M(f)->xUnlock(REAL(f), l); }
static int s_check(sqlite3_file *f, int *out) { return M(f)->xCheckReservedLock(REAL(f), out); }
static int s_fcntl(sqlite3_file *f, int op, void *arg) {
  return M(f)->xFileControl(REAL(f), op, arg);
}
static int s_sector(sqlite3_file *f) { return M(f)->xSectorSize(REAL(f)); }
static int s_devchar(sqlite3_file *f) { return M(f)->xDeviceCharacteristics(REAL(f)); }
static int s_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp) {
  return M(f)->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int s_shm_lock(sqlite3_file *f, int off, int n, int flags) {
  return M(f)->xShmLock(REAL(f), off, n, flags);
}
static void s_shm_barrier(sqlite3_file *f) { M(f)->xShmBarrier(REAL(f)); }
static int s_shm_unmap(sqlite3_file *f, int del) { return M(f)->xShmUnmap(REAL(f), del); }
static int s_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp) {
  return M(f)->xFetch(REAL(f), o, n, pp);
}
static int s_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
  return M(f)->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods shim_methods = {
    3,          s_close,       s_read,      s_write, s_truncate, s_sync,    s_size,
    s_lock,     s_unlock,      s_check,     s_fcntl, s_sector,   s_devchar, s_shm_map,
    s_shm_lock, s_shm_barrier, s_shm_unmap, s_fetch, s_unfetch};

static int s_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out) {
  (void)vfs;
  shim_file *sf = (shim_file *)f;
  sf->base.pMethods = NULL;
  if ((sf->real = sqlite3_malloc(real_vfs->szOsFile)) == NULL) return SQLITE_NOMEM;
  memset(sf->real, 0, (size_t)real_vfs->szOsFile);
  int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
  if (sf->real->pMethods) sf->base.pMethods = &shim_methods;
  else sqlite3_free(sf->real);
  return rc;
}

/* From now on, connections opened with the default VFS can be made to fail writes. */
static void faulty_disk_on(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  faulty_vfs = *real_vfs;
  faulty_vfs.zName = "faulty";
  faulty_vfs.szOsFile = (int)sizeof(shim_file);
  faulty_vfs.xOpen = s_open;
  faulty_vfs.pNext = NULL;
  sqlite3_vfs_register(&faulty_vfs, 1);
}

static void faulty_disk_off(void) {
  sqlite3_vfs_unregister(&faulty_vfs);
  sqlite3_vfs_register(real_vfs, 1);
}

static const char *captured(void) {
  size_t len;
  return mb_log_captured(&len);
}

static int count_of(const char *haystack, const char *needle) {
  int n = 0;
  for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

/* The row's lease_owner is set (read through a connection of its own). */
static int row_leased(const char *db, uint64_t seq) {
  sqlite3 *h;
  sqlite3_stmt *s;
  int leased = -1;
  if (sqlite3_open(db, &h) != SQLITE_OK) return -1;
  if (sqlite3_prepare_v2(h, "SELECT lease_owner IS NOT NULL FROM messages WHERE seq = ?1", -1, &s,
                         NULL) == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
    if (sqlite3_step(s) == SQLITE_ROW) leased = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
  }
  sqlite3_close(h);
  return leased;
}

/* Issue 15 item 6: on a full disk the host spun at 96 % CPU writing a log line per try, a
 * failed release dropped the lease bookkeeping (the message came back only when its lease
 * ran out) and shutdown could leave rows leased without a word. */
static void test_a_full_disk_pauses_once_and_resumes_by_itself(void) {
  faulty_disk_on();
  mb_transport *t = open_fresh("full", "?synchronous=normal");
  mb_err err;
  char db[300];
  snprintf(db, sizeof db, "%s/full.db", dir);
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK &&
        declare(t, "b", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 3; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t && t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 3);
  CHECK(in.n == 3);
  if (in.n != 3) goto out;
  mb_log_capture(1, MB_WARN);
  fail_writes = SQLITE_FULL;
  mb_outgoing *reply = message("b.Do", "b", "{}");
  CHECK(t->ops->complete(t, in.got[0], &reply, 1, on_done, NULL, &err) == MB_EIO);
  CHECK(strstr(err.msg, "full") != NULL);
  mb_outgoing_free(reply);
  CHECK(t->ops->release(t, in.got[0], 0.0, &err) == MB_EIO); /* as the pipeline does */
  uint64_t seq = in.got[0]->tag;
  mb_delivery_free(in.got[0]);
  in.got[0] = in.got[2];
  in.n = 2;
  double cpu = cpu_while_running(1.5);
  printf("#   %.3f s of CPU in 1.5 s on a full disk\n", cpu);
  CHECK(cpu < 0.2);
  CHECK(row_leased(db, seq) == 1); /* still ours, not left to expire */
  const char *log = captured();
  CHECK(count_of(log, "disk full: paused") == 1 && strstr(log, db) && !strstr(log, "resumed"));
  fail_writes = 0;
  for (int i = 0; i < 60 && !strstr(captured(), "resumed"); i++) cpu_while_running(0.1);
  run_until(&in, 3);
  log = captured();
  if (count_of(log, "paused") != 1) printf("#   log: %s\n", log);
  CHECK(count_of(log, "disk full: paused") == 1 && count_of(log, "disk full: resumed") == 1);
  CHECK(in.n == 3 && in.got[in.n - 1]->tag == seq && in.got[in.n - 1]->delivery_count == 2);
  for (int i = 0; i < in.n; i++) {
    CHECK(t->ops->complete(t, in.got[i], NULL, 0, on_done, NULL, &err) == MB_OK);
    mb_delivery_free(in.got[i]);
  }
  CHECK(depth_ready(t, "a") == 0);
  mb_log_capture(0, MB_WARN);
out:
  if (t) t->ops->close(t);
  faulty_disk_off();
}

/* A host that stops while the disk is full cannot give its leases back: it says so. */
static void test_a_failed_give_back_at_close_is_reported(void) {
  faulty_disk_on();
  mb_transport *t = open_fresh("fullclose", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  CHECK(t && send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t && t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1);
  CHECK(in.n == 1);
  mb_log_capture(1, MB_WARN);
  fail_writes = SQLITE_IOERR_WRITE;
  for (int i = 0; i < in.n; i++) {
    CHECK(t->ops->release(t, in.got[i], 0.0, &err) == MB_EIO);
    mb_delivery_free(in.got[i]);
  }
  if (t) t->ops->close(t);
  fail_writes = 0;
  const char *log = captured();
  CHECK(strstr(log, "disk I/O error: paused") != NULL);
  CHECK(strstr(log, "could not give back the 1 message(s) this host held in queue 'a'"));
  mb_log_capture(0, MB_WARN);
  t = reopen();
  long ready = -1, later = -1;
  if (t) t->ops->depth(t, "a", &ready, &later, &err);
  CHECK(ready == 0 && later == 1); /* leased until its lease runs out */
  if (t) t->ops->close(t);
  faulty_disk_off();
}

static void test_bad_urls_are_refused_with_the_reason(void) {
  mb_transport *t = NULL;
  mb_err err;
  CHECK(mb_transport_open(&t, loop, "sqlite://", "u", &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "names no file") != NULL);
  CHECK(mb_transport_open(&t, loop, "sqlite:///tmp/x.db?lease=0", "u", &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "lease=0") != NULL);
  CHECK(mb_transport_open(&t, loop, "sqlite:///tmp/x.db?bogus=1", "u", &err) == MB_EINVAL);
  CHECK(mb_transport_open(&t, loop, "amqp://guest:secret@127.0.0.1:1/", "u", &err) ==
        MB_ENOTCONN);
  CHECK(strstr(err.msg, "127.0.0.1:1") != NULL && strstr(err.msg, "secret") == NULL);
  CHECK(mb_transport_open(&t, loop, "amqp://guest:secret@h/?bogus=1", "u", &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "guest:***@h") != NULL && strstr(err.msg, "secret") == NULL);
  CHECK(mb_transport_open(&t, loop, "redis://x", "u", &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "unknown transport scheme 'redis'") != NULL);
  CHECK(t == NULL);
}

static void test_queue_names_are_checked(void) {
  CHECK(mb_queue_name_problem("sales") == NULL);
  CHECK(mb_queue_name_problem("") != NULL);
  CHECK(mb_queue_name_problem("has space") != NULL);
  char long_name[300];
  memset(long_name, 'q', 256);
  long_name[256] = '\0';
  CHECK(mb_queue_name_problem(long_name) != NULL);
}

/* The default bus: the nearest .moonbus/ at or above a folder, as git finds .git. */
static void test_the_nearest_moonbus_folder_is_found_upward(void) {
  char root[100], deep[200], found[600], want[600], cwd[4096], url2[4200];
  snprintf(root, sizeof root, "%s/project", dir);
  snprintf(deep, sizeof deep, "%s/a/b/c", root);
  char mk[600];
  snprintf(mk, sizeof mk, "mkdir -p %s %s/.moonbus", deep, root);
  CHECK(system(mk) == 0);
  snprintf(want, sizeof want, "%s/.moonbus", root);
  CHECK(mb_find_moonbus_dir(deep, found, sizeof found) == 1 && strcmp(found, want) == 0);
  CHECK(mb_find_moonbus_dir(root, found, sizeof found) == 1 && strcmp(found, want) == 0);
  snprintf(mk, sizeof mk, "%s/", deep); /* a trailing slash */
  CHECK(mb_find_moonbus_dir(mk, found, sizeof found) == 1 && strcmp(found, want) == 0);
  snprintf(mk, sizeof mk, "mkdir -p %s/a/.moonbus", root); /* a nearer one wins */
  CHECK(system(mk) == 0);
  snprintf(want, sizeof want, "%s/a/.moonbus", root);
  CHECK(mb_find_moonbus_dir(deep, found, sizeof found) == 1 && strcmp(found, want) == 0);
  snprintf(mk, sizeof mk, "%s/a/b/.moonbus", root); /* a file of that name is not the folder */
  FILE *f = fopen(mk, "w");
  CHECK(f != NULL && fclose(f) == 0);
  CHECK(mb_find_moonbus_dir(deep, found, sizeof found) == 1 && strcmp(found, want) == 0);
  CHECK(mb_find_moonbus_dir("relative/path", found, sizeof found) == 0);
  CHECK(mb_find_moonbus_dir(deep, found, 8) == 0); /* does not fit: not found */
  /* the URL from the current directory: found, or the current one's own */
  CHECK(getcwd(cwd, sizeof cwd) != NULL && chdir(deep) == 0);
  CHECK(mb_transport_default_url(url2, sizeof url2) == MB_OK);
  snprintf(want, sizeof want, "sqlite://%s/a/.moonbus/bus.db", root);
  CHECK(strcmp(url2, want) == 0);
  if (access("/tmp/.moonbus", F_OK) != 0 && access("/.moonbus", F_OK) != 0) {
    CHECK(chdir(dir) == 0);
    CHECK(mb_transport_default_url(url2, sizeof url2) == MB_OK);
    snprintf(want, sizeof want, "sqlite://%s/.moonbus/bus.db", dir);
    CHECK(strcmp(url2, want) == 0);
  }
  CHECK(chdir(cwd) == 0);
  mb_err err;
  snprintf(url2, sizeof url2, "sqlite://%s/none/bus.db?synchronous=normal", dir);
  CHECK(mb_transport_must_exist(url2, &err) == MB_ENOTFOUND);
  CHECK(strstr(err.msg, "start an endpoint first") != NULL && strstr(err.msg, "/none/bus.db:"));
}

/* Backdates every row of queue by days (visible_at is when a row was queued). */
static void backdate(const char *queue, double days) {
  sqlite3 *db;
  char sql[300];
  snprintf(sql, sizeof sql,
           "UPDATE messages SET visible_at = visible_at - %lld WHERE queue = '%s'",
           (long long)(days * 86400e3), queue);
  char path[300];
  snprintf(path, sizeof path, "%.*s", (int)strcspn(url + 9, "?"), url + 9); /* no options */
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
}

static void count_queue(void *ud, const mb_queue_info *q) { *(mb_queue_info *)ud = *q; }

/* The audit sweep takes the old copies of the audit queue, and nothing else. */
static void test_the_audit_sweep_takes_old_copies_only(void) {
  mb_transport *t = open_fresh("sweep", "?synchronous=normal&audit_retention=7");
  mb_err err;
  CHECK(t && declare_with(t, "a", "audit", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 1205; i++)
    CHECK(send_one(t, message("a.Do", "audit", "{}"), &err) == MB_OK);
  backdate("audit", 8);
  for (int i = 0; i < 2; i++) CHECK(send_one(t, message("a.Do", "audit", "{}"), &err) == MB_OK);
  for (int i = 0; i < 3; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  backdate("a", 8);
  sqlite_transport *st = (sqlite_transport *)t;
  CHECK(st->audit_days == 7 && st->audit_queue && strcmp(st->audit_queue, "audit") == 0);
  CHECK(ev_is_active(&st->audit_sweep)); /* started by the declare */
  long removed = -1;
  CHECK(sq_sweep_queue(st, st->audit_queue, sq_now_ms() - (int64_t)(7 * 86400e3), &removed,
                       &err) == MB_OK);
  CHECK(removed == 1205); /* in batches of 1000 */
  CHECK(depth_ready(t, "audit") == 2);
  CHECK(depth_ready(t, "a") == 3);
  mb_queue_info q = {0};
  CHECK(t->ops->queues(t, "audit", count_queue, &q, &err) == MB_OK);
  CHECK(q.ready == 2 && q.delayed == 0 && q.in_flight == 0 && q.consumers == 0);
  CHECK(t->ops->queues(t, "nope", count_queue, &q, &err) == MB_ENOTFOUND);
  CHECK(strstr(err.msg, "no queue named 'nope' in sqlite:///") != NULL);
  t->ops->close(t);
  t = open_fresh("sweep-off", "?audit_retention=0");
  CHECK(t && declare_with(t, "a", "audit", NULL, NULL, &err) == MB_OK);
  CHECK(!ev_is_active(&((sqlite_transport *)t)->audit_sweep)); /* 0: off */
  t->ops->close(t);
  CHECK(open_fresh("sweep-bad", "?audit_retention=-1") == NULL);
}

/* queues: ready, delayed (released with a delay), in flight (leased) and its consumers. */
static void test_queues_counts_ready_delayed_in_flight(void) {
  mb_transport *t = open_fresh("queues", "?synchronous=normal");
  mb_err err;
  CHECK(t && declare(t, "a", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 4; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 2, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 2);
  CHECK(in.n == 2);
  CHECK(t->ops->release(t, in.got[0], 600, &err) == MB_OK);
  mb_queue_info q = {0};
  CHECK(t->ops->queues(t, "a", count_queue, &q, &err) == MB_OK);
  CHECK(q.ready == 2 && q.delayed == 1 && q.in_flight == 1 && q.consumers == 1);
  inbox_free(&in);
  t->ops->close(t);
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 2;
  loop = ev_loop_new(EVFLAG_AUTO);
  RUN(test_dispatch_and_receive_roundtrip);
  RUN(test_unroutable_send_names_the_queue_and_sends_nothing);
  RUN(test_publish_reaches_every_subscriber);
  RUN(test_second_publisher_is_refused_with_the_owner);
  RUN(test_release_with_delay_and_count_kept);
  RUN(test_complete_sends_outbox_atomically);
  RUN(test_expired_lease_is_lost_to_another_consumer);
  RUN(test_close_gives_leased_messages_back);
  RUN(test_malformed_headers_are_delivered_as_a_problem);
  RUN(test_foreign_rows_are_delivered_whole);
  RUN(test_a_row_of_60000_headers_is_leased_at_once_with_its_reason);
  RUN(test_a_row_of_nulls_decodes);
  RUN(test_a_row_that_cannot_be_leased_does_not_spin);
  RUN(test_files_are_private_whatever_the_umask);
  RUN(test_a_symlinked_bell_is_refused);
  RUN(test_a_deleted_database_is_reported);
  RUN(test_a_full_disk_pauses_once_and_resumes_by_itself);
  RUN(test_a_failed_give_back_at_close_is_reported);
  RUN(test_bad_urls_are_refused_with_the_reason);
  RUN(test_queue_names_are_checked);
  RUN(test_marks_move_with_the_ack_or_not_at_all);
  RUN(test_the_nearest_moonbus_folder_is_found_upward);
  RUN(test_the_audit_sweep_takes_old_copies_only);
  RUN(test_queues_counts_ready_delayed_in_flight);
  ev_loop_destroy(loop);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  return unit_done();
}
