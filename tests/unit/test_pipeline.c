/* test_pipeline.c — the path of one message (pipeline.c), without Lua, SQLite or a broker:
 * a fake runner plays the handlers and the in-memory transport (transport/mem.h) plays the
 * bus, holding confirmations when asked. Checked: the acknowledgement comes only after
 * every outgoing message is confirmed; the audit copy; parking with the failure headers;
 * immediate retries in place (a failed attempt's messages never leave) and the delayed
 * round; the notice to a requester whose request is parked; the back-off of a release; TTL
 * expiry; crash-loop parking; refused outgoing messages as the handler's failure; the
 * job-end hook; cancelling at close; order_by marks (stale messages discarded unhandled,
 * a mark overtaken while its handler ran, the local store of a transport without marks). */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errorq.h"
#include "headers.h"
#include "mark.h"
#include "metrics.h"
#include "pipeline.h"
#include "transport.h"
#include "transport/mem.h"
#include "unit.h"

static struct ev_loop *loop;

/* --- the fake runner: what each attempt does -------------------------------------------- */

typedef enum act { ACT_OK, ACT_FAIL, ACT_POISON, ACT_HOLD } act;

typedef struct fake_runner {
  act script[16]; /* attempt n does script[n - 1]; past the end, the last one */
  int n_script;
  const char *send_to; /* each attempt adds one command to this queue before it ends */
  int runs, cancels, hooks;
  int attempts_seen[16];
  mb_job *held; /* ACT_HOLD: the job whose attempt has not ended */
  int ordered;  /* order_by: the body {"n":N} is version N of key "k" (mb_job_order) */
  int stale;    /* attempts that found their message stale (the handler did not run) */
  int by_body;  /* the body {"fails":F}: attempts 1..F fail, later ones succeed */
} fake_runner;

static void hook(void *ud) { ((fake_runner *)ud)->hooks++; }

static mb_outgoing *command_to(const char *queue) {
  mb_outgoing *m = malloc(sizeof *m);
  mb_outgoing_init(m);
  mb_uuidv7(m->env.id);
  mb_envelope_set_type(&m->env, "billing.Charge");
  mb_headers_set(&m->env.headers, MB_H_KIND, "command");
  mb_envelope_set_body(&m->env, "{}", 2);
  m->route = MB_ROUTE_QUEUE;
  m->dest = strdup(queue);
  return m;
}

/* What ldispatch.c does for a type handled with order_by; 1 if the message is stale. */
static int fake_order(fake_runner *r, mb_job *job) {
  const mb_envelope *env = &mb_job_delivery(job)->env;
  int n = 0;
  if (sscanf(env->body ? env->body : "", "{\"n\":%d}", &n) != 1) return 0;
  mb_mark m = {.endpoint = mb_job_endpoint(job),
               .type = env->type,
               .key = "k",
               .order_by = "version",
               .key_field = "job",
               .kind = MB_MARK_INTEGER,
               .integer = n};
  mb_err err;
  int rc = mb_job_order(job, &m, &err);
  CHECK(rc == MB_OK || rc == MB_ESTALE);
  if (rc == MB_ESTALE) r->stale++;
  return rc == MB_ESTALE;
}

static void fake_run(void *ud, mb_job *job) {
  fake_runner *r = ud;
  if (r->ordered && fake_order(r, job)) {
    mb_pipeline_finished(job, MB_OUTCOME_OK, NULL, NULL);
    return;
  }
  int attempt = mb_job_attempt(job);
  if (r->runs < 16) r->attempts_seen[r->runs] = attempt;
  r->runs++;
  mb_job_on_end(job, hook, r);
  act a = r->script[(attempt <= r->n_script ? attempt : r->n_script) - 1];
  int fails = 0;
  const char *body = mb_job_delivery(job)->env.body;
  if (r->by_body && sscanf(body ? body : "", "{\"fails\":%d}", &fails) == 1)
    a = attempt <= fails ? ACT_FAIL : ACT_OK;
  if (r->send_to) mb_job_add_outgoing(job, command_to(r->send_to));
  if (a == ACT_HOLD) r->held = job;
  else if (a == ACT_OK) mb_pipeline_finished(job, MB_OUTCOME_OK, NULL, NULL);
  else if (a == ACT_POISON) mb_pipeline_finished(job, MB_OUTCOME_POISON, "it is poison", NULL);
  else mb_pipeline_finished(job, MB_OUTCOME_FAILED, "it failed", "trace line 1");
}

static void fake_cancel(void *ud, mb_job *job) {
  fake_runner *r = ud;
  r->cancels++;
  if (r->held == job) {
    r->held = NULL;
    mb_pipeline_finished(job, MB_OUTCOME_STOPPED, "cancelled", NULL);
  }
}

static const mb_runner fake_ops = {fake_run, fake_cancel};

/* --- the fixture: endpoint "orders" on mem://NAME, with queues billing, error, audit ------ */

typedef struct fixture {
  mb_transport *t;
  mb_endpoint_cfg cfg;
  mb_pipeline *p;
  fake_runner r;
} fixture;

static int declare(mb_transport *t, const char *endpoint) {
  mb_topology topo = {.endpoint = endpoint, .error_queue = "error", .audit_queue = "audit"};
  mb_err err;
  return t->ops->declare(t, &topo, &err);
}

static void setup(fixture *f, const char *bus, act first, act then) {
  memset(f, 0, sizeof *f);
  char url[64];
  mb_err err;
  snprintf(url, sizeof url, "mem://%s", bus);
  CHECK(mb_transport_open(&f->t, loop, url, "unit", &err) == MB_OK);
  CHECK(declare(f->t, "billing") == MB_OK && declare(f->t, "orders") == MB_OK);
  CHECK(mb_endpoint_cfg_defaults(&f->cfg) == MB_OK);
  f->cfg.name = strdup("orders");
  f->cfg.immediate_retries = 2; /* 3 attempts a round */
  f->cfg.delayed_retries = 1;   /* 2 rounds */
  f->cfg.retry_delay = 5;
  f->cfg.max_deliveries = 3;
  f->r.script[0] = first;
  f->r.script[1] = then;
  f->r.n_script = 2;
  f->p = mb_pipeline_new(&f->cfg, "testhost");
  mb_pipeline_set_transport(f->p, f->t);
  mb_pipeline_set_runner(f->p, &fake_ops, &f->r);
  CHECK(f->t->ops->consume(f->t, "orders", 8, mb_pipeline_deliver, f->p, &err) == MB_OK);
}

static void teardown(fixture *f) {
  mb_pipeline_free(f->p);
  f->t->ops->close(f->t);
  mb_endpoint_cfg_free(&f->cfg);
}

/* A new orders.Place command (free it with mb_envelope_free). */
static void order(mb_envelope *env) {
  mb_envelope_init(env);
  mb_uuidv7(env->id);
  mb_envelope_set_type(env, "orders.Place");
  mb_headers_set(&env->headers, MB_H_KIND, "command");
  mb_envelope_set_body(env, "{\"n\":1}", 7);
}

/* Puts env on the endpoint's queue, and frees it. */
static void put_env(fixture *f, mb_envelope *env, const mb_mem_raw *raw) {
  mb_err err;
  CHECK(mb_mem_put(f->t, "orders", env, raw, &err) == MB_OK);
  mb_envelope_free(env);
}

/* Puts an order on the endpoint's queue; extra: one more header (or NULL). */
static void put(fixture *f, const char *key, const char *value, const mb_mem_raw *raw) {
  mb_envelope env;
  order(&env);
  if (key) mb_headers_set(&env.headers, key, value);
  put_env(f, &env, raw);
}

static void stop_loop(struct ev_loop *l, ev_timer *w, int revents) {
  (void)revents;
  *(int *)w->data = 1;
  ev_break(l, EVBREAK_ONE);
}

/* Runs the loop for seconds (deliveries, releases and delays happen on it). */
static void spin(double seconds) {
  int over = 0;
  ev_timer t;
  ev_timer_init(&t, stop_loop, seconds, 0.);
  t.data = &over;
  ev_timer_start(loop, &t);
  while (!over) ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &t);
}

static mb_mem_stats stats_of(fixture *f) {
  mb_mem_stats s;
  mb_mem_stats_get(f->t, &s);
  return s;
}

/* The first message of queue (a copy: free it), or NULL. */
static mb_delivery *first_of(fixture *f, const char *queue) {
  mb_delivery *got[1];
  size_t n = 0;
  mb_err err;
  if (mb_transport_browse_first(f->t, queue, 1, got, &n, &err) != MB_OK || n == 0) return NULL;
  return got[0];
}

static int header_is(const mb_delivery *d, const char *key, const char *want) {
  const char *v = d ? mb_headers_get(&d->env.headers, key) : NULL;
  if (v == NULL || (want && strcmp(v, want) != 0)) {
    printf("#   header %s is %s, expected %s\n", key, v ? v : "(absent)", want ? want : "any");
    return 0;
  }
  return 1;
}

/* --- the cases -------------------------------------------------------------------------- */

static void test_ack_only_after_every_outgoing_message_is_confirmed(void) {
  fixture f;
  setup(&f, "p-confirm", ACT_OK, ACT_OK);
  f.r.send_to = "billing";
  mb_mem_manual_confirm(f.t, 1);
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  mb_pipeline_stats ps = mb_pipeline_stats_of(f.p);
  CHECK(f.r.runs == 1);
  CHECK(ps.in_flight == 1 && ps.handled == 0); /* handled, not yet completed */
  CHECK(stats_of(&f).acks == 0 && stats_of(&f).unconfirmed == 1);
  CHECK(mb_mem_count(f.t, "billing") == 0); /* nothing left before the confirm */
  CHECK(mb_mem_confirm_all(f.t) == 1);
  ps = mb_pipeline_stats_of(f.p);
  CHECK(ps.in_flight == 0 && ps.handled == 1);
  CHECK(stats_of(&f).acks == 1);
  CHECK(mb_mem_count(f.t, "billing") == 1 && mb_mem_count(f.t, "orders") == 0);
  CHECK(f.r.hooks == 1); /* the job-end hook ran once the attempt ended */
  teardown(&f);
}

static void test_a_handled_message_gets_its_audit_copy(void) {
  fixture f;
  setup(&f, "p-audit", ACT_OK, ACT_OK);
  put(&f, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", NULL);
  spin(0.05);
  mb_delivery *copy = first_of(&f, "audit");
  CHECK(copy != NULL);
  CHECK(copy && strcmp(copy->env.type, "orders.Place") == 0);
  CHECK(copy && copy->env.body_len == 7 && memcmp(copy->env.body, "{\"n\":1}", 7) == 0);
  CHECK(header_is(copy, MB_H_PROCESSING_ENDPOINT, "orders"));
  CHECK(header_is(copy, MB_H_PROCESSING_HOST, "testhost"));
  CHECK(header_is(copy, MB_H_PROCESSING_STARTED, NULL));
  CHECK(header_is(copy, MB_H_PROCESSING_ENDED, NULL));
  CHECK(header_is(copy, MB_H_TRACEPARENT, NULL)); /* the original's headers stay */
  mb_delivery_free(copy);
  CHECK(mb_mem_count(f.t, "orders") == 0 && mb_mem_count(f.t, "error") == 0);
  teardown(&f);
}

static void test_no_audit_copy_when_audit_is_off(void) {
  fixture f;
  setup(&f, "p-noaudit", ACT_OK, ACT_OK);
  free(f.cfg.audit_queue);
  f.cfg.audit_queue = NULL;
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  CHECK(mb_pipeline_stats_of(f.p).handled == 1 && mb_mem_count(f.t, "audit") == 0);
  teardown(&f);
}

static void test_poison_is_parked_at_once_with_its_failure_headers(void) {
  fixture f;
  setup(&f, "p-poison", ACT_POISON, ACT_POISON);
  f.r.send_to = "billing";
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  CHECK(f.r.runs == 1); /* no retry */
  mb_delivery *copy = first_of(&f, "error");
  CHECK(copy != NULL);
  CHECK(header_is(copy, MB_H_FAILED_QUEUE, "orders"));
  CHECK(header_is(copy, MB_H_EXCEPTION_MESSAGE, "it is poison"));
  CHECK(header_is(copy, MB_H_FAILED_AT, NULL));
  CHECK(header_is(copy, MB_H_RETRIES_IMMEDIATE, "0"));
  CHECK(header_is(copy, MB_H_RETRIES_DELAYED, "0"));
  CHECK(header_is(copy, MB_H_FAILED_DELIVERIES, "1"));
  mb_delivery_free(copy);
  CHECK(mb_mem_count(f.t, "billing") == 0); /* the failed attempt emitted nothing */
  CHECK(mb_pipeline_stats_of(f.p).parked == 1 && mb_mem_count(f.t, "orders") == 0);
  teardown(&f);
}

static void test_a_parked_request_tells_its_requester_at_once(void) {
  fixture f;
  setup(&f, "p-notice", ACT_POISON, ACT_POISON);
  CHECK(declare(f.t, "moonbus.reply.unit-1") == MB_OK); /* the requester's reply address */
  mb_envelope env;
  order(&env);
  mb_envelope_set_correlation_id(&env, "req-7");
  mb_envelope_set_reply_to(&env, "moonbus.reply.unit-1");
  put_env(&f, &env, NULL);
  spin(0.05);
  CHECK(mb_mem_count(f.t, "error") == 1);
  mb_delivery *notice = first_of(&f, "moonbus.reply.unit-1");
  CHECK(notice && strcmp(notice->env.type, MB_TYPE_REQUEST_FAILED) == 0);
  CHECK(notice && notice->env.correlation_id && strcmp(notice->env.correlation_id, "req-7") == 0);
  CHECK(header_is(notice, MB_H_EXCEPTION_MESSAGE, "it is poison"));
  CHECK(header_is(notice, MB_H_ORIGIN_ENDPOINT, "orders"));
  mb_delivery_free(notice);
  teardown(&f);
}

static void test_a_parked_plain_message_tells_nobody(void) {
  fixture f;
  setup(&f, "p-nonotice", ACT_POISON, ACT_POISON);
  put(&f, NULL, NULL, NULL); /* no reply address */
  spin(0.05);
  CHECK(mb_mem_count(f.t, "error") == 1 && mb_mem_count(f.t, "billing") == 0);
  teardown(&f);
}

static void test_immediate_retries_run_in_place_and_emit_only_the_last_attempt(void) {
  fixture f;
  setup(&f, "p-immediate", ACT_FAIL, ACT_OK);
  f.r.script[1] = ACT_FAIL, f.r.script[2] = ACT_OK, f.r.n_script = 3;
  f.r.send_to = "billing";
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  CHECK(f.r.runs == 3);
  CHECK(f.r.attempts_seen[0] == 1 && f.r.attempts_seen[1] == 2 && f.r.attempts_seen[2] == 3);
  CHECK(f.r.hooks == 3); /* each attempt's hook */
  CHECK(mb_mem_count(f.t, "billing") == 1);
  mb_pipeline_stats ps = mb_pipeline_stats_of(f.p);
  CHECK(ps.handled == 1 && ps.failed == 2);
  CHECK(stats_of(&f).delivered == 1); /* in place: never back on the queue */
  teardown(&f);
}

static void test_a_failed_round_becomes_a_delayed_retry(void) {
  fixture f;
  setup(&f, "p-delayed", ACT_FAIL, ACT_FAIL);
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  CHECK(f.r.runs == 3);          /* immediate_retries = 2 */
  CHECK(stats_of(&f).acks == 1); /* the original, acknowledged with its copy */
  long ready = -1, later = -1;
  mb_err err;
  CHECK(f.t->ops->depth(f.t, "orders", &ready, &later, &err) == MB_OK);
  CHECK(ready == 0 && later == 1); /* waits retry_delay x 1 = 5 s */
  CHECK(mb_mem_count(f.t, "error") == 0);
  teardown(&f);
}

static void test_the_last_round_parks_with_the_reason(void) {
  fixture f;
  setup(&f, "p-lastround", ACT_FAIL, ACT_FAIL);
  put(&f, MB_H_RETRIES_DELAYED, "1", NULL); /* the last delayed round already */
  spin(0.05);
  CHECK(f.r.runs == 3);
  mb_delivery *copy = first_of(&f, "error");
  CHECK(header_is(copy, MB_H_EXCEPTION_MESSAGE,
                  "it failed (failed 3 attempts in each of 2 rounds)"));
  CHECK(header_is(copy, MB_H_EXCEPTION_TRACE, "trace line 1"));
  CHECK(header_is(copy, MB_H_RETRIES_IMMEDIATE, "2"));
  CHECK(header_is(copy, MB_H_RETRIES_DELAYED, "1"));
  mb_delivery_free(copy);
  CHECK(mb_pipeline_stats_of(f.p).parked == 1);
  teardown(&f);
}

static void test_a_transport_failure_releases_with_back_off(void) {
  fixture f;
  setup(&f, "p-backoff", ACT_OK, ACT_OK);
  mb_mem_fail_next(f.t, MB_EIO, 1);
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  mb_mem_stats s = stats_of(&f);
  CHECK(s.releases == 1 && s.acks == 0);
  CHECK(s.last_release_delay > 0.09 && s.last_release_delay < 0.11); /* 0.1 s on delivery 1 */
  CHECK(mb_pipeline_backoff(1) == 0.1 && mb_pipeline_backoff(3) == 0.4);
  CHECK(mb_pipeline_backoff(30) == 30); /* capped */
  spin(0.2);                            /* delivered again after the back-off, and handled */
  CHECK(f.r.runs == 2 && stats_of(&f).acks == 1);
  CHECK(mb_mem_count(f.t, "orders") == 0);
  teardown(&f);
}

static void test_an_expired_message_is_discarded_unhandled(void) {
  fixture f;
  setup(&f, "p-ttl", ACT_OK, ACT_OK);
  char past[MB_TIME_LEN + 1];
  mb_time_iso(mb_now_usec() - 1000000, past);
  put(&f, MB_H_EXPIRES_AT, past, NULL);
  spin(0.05);
  CHECK(f.r.runs == 0);
  CHECK(stats_of(&f).acks == 1 && mb_mem_count(f.t, "orders") == 0);
  CHECK(mb_mem_count(f.t, "audit") == 0 && mb_mem_count(f.t, "error") == 0);
  CHECK(mb_pipeline_stats_of(f.p).discarded == 1 && mb_pipeline_stats_of(f.p).handled == 0);
  teardown(&f);
}

static void test_a_crash_loop_is_parked_without_running(void) {
  fixture f;
  setup(&f, "p-crashloop", ACT_OK, ACT_OK);
  mb_mem_raw raw = {.deliveries = 3}; /* max_deliveries = 3: this is delivery 4 */
  put(&f, NULL, NULL, &raw);
  spin(0.05);
  CHECK(f.r.runs == 0);
  mb_delivery *copy = first_of(&f, "error");
  CHECK(copy != NULL);
  const char *why = copy ? mb_headers_get(&copy->env.headers, MB_H_EXCEPTION_MESSAGE) : NULL;
  CHECK(why && strstr(why, "delivered 4 times without an outcome") != NULL);
  CHECK(why && strstr(why, "max_deliveries = 3") != NULL);
  CHECK(header_is(copy, MB_H_FAILED_DELIVERIES, "4"));
  mb_delivery_free(copy);
  teardown(&f);
}

static void test_a_malformed_envelope_is_parked_without_running(void) {
  fixture f;
  setup(&f, "p-malformed", ACT_OK, ACT_OK);
  mb_mem_raw raw = {.problem = "headers are not a JSON object"};
  put(&f, NULL, NULL, &raw);
  spin(0.05);
  CHECK(f.r.runs == 0);
  mb_delivery *copy = first_of(&f, "error");
  const char *why = copy ? mb_headers_get(&copy->env.headers, MB_H_EXCEPTION_MESSAGE) : NULL;
  CHECK(why && strstr(why, "malformed envelope: headers are not a JSON object") != NULL);
  mb_delivery_free(copy);
  teardown(&f);
}

static void test_refused_outgoing_messages_fail_the_handler(void) {
  fixture f;
  setup(&f, "p-refused", ACT_OK, ACT_OK);
  f.r.send_to = "nowhere"; /* no such queue: unroutable, every attempt */
  put(&f, MB_H_RETRIES_DELAYED, "1", NULL);
  spin(0.05);
  CHECK(f.r.runs == 3);
  mb_delivery *copy = first_of(&f, "error");
  const char *why = copy ? mb_headers_get(&copy->env.headers, MB_H_EXCEPTION_MESSAGE) : NULL;
  CHECK(why && strstr(why, "handled, but its messages could not be sent") != NULL);
  CHECK(why && strstr(why, "nowhere") != NULL);
  mb_delivery_free(copy);
  CHECK(mb_pipeline_stats_of(f.p).handled == 0 && mb_pipeline_stats_of(f.p).parked == 1);
  teardown(&f);
}

/* Puts version n of key "k" on the endpoint's queue. */
static void put_version(fixture *f, int n) {
  mb_envelope env;
  order(&env);
  char body[32];
  snprintf(body, sizeof body, "{\"n\":%d}", n);
  mb_envelope_set_body(&env, body, strlen(body));
  put_env(f, &env, NULL);
}

/* The moonbus.discarded header of each audit copy, in order ("" for a handled one). */
static int audit_reasons(fixture *f, const char **want, size_t n) {
  mb_delivery *got[16];
  size_t have = 0;
  mb_err err;
  int ok = mb_transport_browse_first(f->t, "audit", 16, got, &have, &err) == MB_OK && have == n;
  for (size_t i = 0; i < have; i++) {
    const char *why = mb_headers_get(&got[i]->env.headers, MB_H_DISCARDED);
    if (ok && i < n && strcmp(why ? why : "", want[i]) != 0) {
      printf("#   audit copy %zu: moonbus.discarded is '%s', expected '%s'\n", i, why ? why : "",
             want[i]);
      ok = 0;
    }
    mb_delivery_free(got[i]);
  }
  if (have != n) printf("#   %zu audit copies, expected %zu\n", have, n);
  return ok;
}

static void test_a_stale_message_is_discarded_without_running(void) {
  fixture f;
  setup(&f, "p-order", ACT_OK, ACT_OK);
  f.r.ordered = 1;
  f.r.send_to = "billing"; /* a handler that ran sends one command */
  put_version(&f, 2);
  put_version(&f, 1);
  put_version(&f, 2);
  put_version(&f, 3);
  spin(0.05);
  mb_pipeline_stats ps = mb_pipeline_stats_of(f.p);
  CHECK(ps.handled == 2 && ps.discarded == 2 && ps.failed == 0 && ps.in_flight == 0);
  CHECK(f.r.stale == 2);
  CHECK(mb_mem_count(f.t, "billing") == 2); /* versions 2 and 3 only */
  CHECK(stats_of(&f).acks == 4 && mb_mem_count(f.t, "orders") == 0);
  const char *want[] = {"", "stale: version 1 <= 2 already handled for job k",
                        "stale: version 2 <= 2 already handled for job k", ""};
  CHECK(audit_reasons(&f, want, 4));
  teardown(&f);
}

static void test_a_mark_overtaken_while_its_handler_ran_is_discarded(void) {
  fixture f;
  setup(&f, "p-order-race", ACT_OK, ACT_OK);
  f.r.ordered = 1;
  f.r.send_to = "billing";
  mb_mem_manual_confirm(f.t, 1); /* both pass the check before either completes */
  put_version(&f, 6);
  put_version(&f, 5);
  spin(0.05);
  CHECK(f.r.runs == 2 && f.r.stale == 0 && stats_of(&f).unconfirmed == 2);
  CHECK(mb_mem_confirm(f.t, 2) == 2); /* 6 stored; 5 overtaken: its discard waits */
  CHECK(mb_mem_confirm_all(f.t) == 1);
  mb_pipeline_stats ps = mb_pipeline_stats_of(f.p);
  CHECK(ps.handled == 1 && ps.discarded == 1 && ps.in_flight == 0);
  CHECK(mb_mem_count(f.t, "billing") == 1); /* the loser's command never left */
  mb_delivery *last = NULL, *got[2];
  size_t n = 0;
  mb_err err;
  CHECK(mb_transport_browse_first(f.t, "audit", 2, got, &n, &err) == MB_OK && n == 2);
  if (n == 2) last = got[1];
  const char *why = last ? mb_headers_get(&last->env.headers, MB_H_DISCARDED) : NULL;
  CHECK(why && strstr(why, "stale: version was overtaken while it was handled") != NULL);
  for (size_t i = 0; i < n; i++) mb_delivery_free(got[i]);
  teardown(&f);
}

static void test_a_transport_without_marks_uses_the_local_store(void) {
  fixture f;
  setup(&f, "p-order-local", ACT_OK, ACT_OK);
  char dir[] = "/tmp/moonbus-marks-XXXXXX", url[128];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(url, sizeof url, "sqlite://%s/sub/state.db", dir);
  f.cfg.state = strdup(url);
  f.r.ordered = 1;
  put_version(&f, 3);
  put_version(&f, 3);
  put_version(&f, 4);
  put_version(&f, 1);
  mb_transport_ops no_marks = mb_mem_transport; /* a transport with no database (the test */
  no_marks.mark_check = NULL;                   /* controls need the real ops back) */
  no_marks.complete_marked = NULL;
  f.t->ops = &no_marks;
  spin(0.05);
  f.t->ops = &mb_mem_transport;
  mb_pipeline_stats ps = mb_pipeline_stats_of(f.p);
  CHECK(ps.handled == 2 && ps.discarded == 2 && f.r.stale == 2);
  const char *want[] = {"", "stale: version 3 <= 3 already handled for job k", "",
                        "stale: version 1 <= 4 already handled for job k"};
  CHECK(audit_reasons(&f, want, 4));
  teardown(&f);
  /* the marks outlive the pipeline: a new one finds version 4 handled */
  mb_marks *s;
  mb_err err;
  int stale = 0;
  char highest[32] = "";
  mb_mark m = {.endpoint = "orders",
               .type = "orders.Place",
               .key = "k",
               .kind = MB_MARK_INTEGER,
               .integer = 4};
  CHECK(mb_marks_open(&s, url, &err) == MB_OK);
  CHECK(mb_marks_check(s, &m, &stale, highest, sizeof highest, &err) == MB_OK && stale);
  CHECK(strcmp(highest, "4") == 0);
  mb_marks_close(s);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

static void test_marks_compare_numbers_before_strings(void) {
  mb_mark i3 = {.kind = MB_MARK_INTEGER, .integer = 3}, r3 = {.kind = MB_MARK_REAL, .real = 3.0};
  mb_mark r25 = {.kind = MB_MARK_REAL, .real = 2.5},
          ta = {.kind = MB_MARK_TEXT, .text = "a", .len = 1};
  mb_mark tab = {.kind = MB_MARK_TEXT, .text = "ab", .len = 2};
  CHECK(mb_mark_cmp(&i3, &r3) == 0 && mb_mark_cmp(&r25, &i3) < 0 && mb_mark_cmp(&i3, &ta) < 0);
  CHECK(mb_mark_cmp(&ta, &tab) < 0 && mb_mark_cmp(&tab, &ta) > 0 && mb_mark_cmp(&ta, &ta) == 0);
}

static int idle_calls;
static void on_idle(void *ud) {
  (void)ud;
  idle_calls++;
}

static void test_close_cancels_running_attempts_and_gives_messages_back(void) {
  fixture f;
  setup(&f, "p-cancel", ACT_HOLD, ACT_HOLD);
  idle_calls = 0;
  mb_pipeline_on_idle(f.p, on_idle, NULL);
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  CHECK(f.r.runs == 1 && f.r.held != NULL);
  CHECK(mb_pipeline_stats_of(f.p).in_flight == 1 && idle_calls == 0);
  mb_pipeline_free(f.p);
  f.p = NULL;
  CHECK(f.r.cancels == 1 && f.r.held == NULL);
  mb_mem_stats s = stats_of(&f);
  CHECK(s.releases == 1 && s.acks == 0 && s.in_flight == 0);
  CHECK(mb_mem_count(f.t, "orders") == 1); /* back on its queue */
  teardown(&f);
}

static void test_idle_is_told_when_the_last_job_ends(void) {
  fixture f;
  setup(&f, "p-idle", ACT_OK, ACT_OK);
  idle_calls = 0;
  mb_pipeline_on_idle(f.p, on_idle, NULL);
  put(&f, NULL, NULL, NULL);
  put(&f, NULL, NULL, NULL);
  spin(0.05);
  CHECK(mb_pipeline_stats_of(f.p).handled == 2);
  CHECK(idle_calls >= 1 && mb_pipeline_stats_of(f.p).in_flight == 0);
  teardown(&f);
}

/* --- metrics (metrics.h): each outcome counted once, where the stats are ------------------- */

static void put_failing(fixture *f, int fails, int stamped) {
  mb_envelope env;
  char body[32], sent[MB_TIME_LEN + 1];
  order(&env);
  snprintf(body, sizeof body, "{\"fails\":%d}", fails);
  mb_envelope_set_body(&env, body, strlen(body));
  mb_time_iso(mb_now_usec() - 1000000, sent); /* sent a second ago */
  if (stamped) mb_headers_set(&env.headers, MB_H_TIME_SENT, sent);
  put_env(f, &env, NULL);
}

/* The value of the sample line that starts with prefix in text, or -1. */
static double sample(const char *text, const char *prefix) {
  const char *at = strstr(text, prefix);
  return at ? strtod(at + strlen(prefix), NULL) : -1;
}

static void test_metrics_count_each_outcome_once(void) {
  enum { N = 5, M = 3, K = 2 };
  fixture f;
  setup(&f, "p-metrics", ACT_OK, ACT_OK);
  f.cfg.delayed_retries = 0; /* a third failure parks */
  f.r.by_body = 1;
  mb_metrics *m = mb_metrics_new("orders");
  mb_pipeline_set_metrics(f.p, m);
  for (int i = 0; i < N; i++) put_failing(&f, 0, 1);
  for (int i = 0; i < M; i++) put_failing(&f, 2, 0);
  for (int i = 0; i < K; i++) put_failing(&f, 99, 0);
  spin(0.1);
  CHECK(mb_metrics_received_total(m) == N + M + K);
  CHECK(mb_metrics_handled(m, MB_METRIC_SUCCESS) == N + M);
  CHECK(mb_metrics_handled(m, MB_METRIC_RETRIED) == 2 * M + 2 * K);
  CHECK(mb_metrics_handled(m, MB_METRIC_ERROR) == K);
  CHECK(mb_metrics_handled(m, MB_METRIC_DELAYED) == 0);
  CHECK(mb_metrics_handled(m, MB_METRIC_DISCARDED) == 0);
  char *text = NULL;
  size_t len;
  CHECK(mb_metrics_render(m, NULL, &text, &len) == MB_OK);
  const char *series = "{endpoint=\"orders\",type=\"orders.Place\"} ";
  char prefix[128];
  snprintf(prefix, sizeof prefix, "moonbus_processing_seconds_count%s", series);
  CHECK(sample(text, prefix) == N + M + K + 2 * M + 2 * K);
  snprintf(prefix, sizeof prefix, "moonbus_critical_seconds_count%s", series);
  CHECK(sample(text, prefix) == N); /* only those with a time_sent */
  snprintf(prefix, sizeof prefix, "moonbus_critical_seconds_sum%s", series);
  CHECK(sample(text, prefix) >= N * 1.0);
  free(text);
  teardown(&f);
  mb_metrics_free(m);
}

static void test_metrics_count_a_delayed_retry_and_a_screened_message(void) {
  fixture f;
  setup(&f, "p-metrics2", ACT_FAIL, ACT_FAIL);
  mb_metrics *m = mb_metrics_new("orders");
  mb_pipeline_set_metrics(f.p, m);
  put(&f, NULL, NULL, NULL); /* 3 failed attempts: 2 retried, then a delayed round */
  mb_envelope env;
  order(&env);
  mb_envelope_set_type(&env, ""); /* no type: parked before any attempt */
  put_env(&f, &env, NULL);
  spin(0.05);
  CHECK(mb_metrics_received_total(m) == 2);
  CHECK(mb_metrics_handled(m, MB_METRIC_RETRIED) == 2);
  CHECK(mb_metrics_handled(m, MB_METRIC_DELAYED) == 1);
  CHECK(mb_metrics_handled(m, MB_METRIC_ERROR) == 1);
  char *text = NULL;
  size_t len;
  CHECK(mb_metrics_render(m, NULL, &text, &len) == MB_OK);
  CHECK(text && strstr(text, "moonbus_processing_seconds_count{endpoint=\"orders\","
                             "type=\"(none)\"} 1\n"));
  free(text);
  teardown(&f);
  mb_metrics_free(m);
}

int main(void) {
  loop = ev_loop_new(EVFLAG_AUTO);
  RUN(test_ack_only_after_every_outgoing_message_is_confirmed);
  RUN(test_a_handled_message_gets_its_audit_copy);
  RUN(test_no_audit_copy_when_audit_is_off);
  RUN(test_poison_is_parked_at_once_with_its_failure_headers);
  RUN(test_a_parked_request_tells_its_requester_at_once);
  RUN(test_a_parked_plain_message_tells_nobody);
  RUN(test_immediate_retries_run_in_place_and_emit_only_the_last_attempt);
  RUN(test_a_failed_round_becomes_a_delayed_retry);
  RUN(test_the_last_round_parks_with_the_reason);
  RUN(test_a_transport_failure_releases_with_back_off);
  RUN(test_an_expired_message_is_discarded_unhandled);
  RUN(test_a_crash_loop_is_parked_without_running);
  RUN(test_a_malformed_envelope_is_parked_without_running);
  RUN(test_refused_outgoing_messages_fail_the_handler);
  RUN(test_close_cancels_running_attempts_and_gives_messages_back);
  RUN(test_idle_is_told_when_the_last_job_ends);
  RUN(test_a_stale_message_is_discarded_without_running);
  RUN(test_a_mark_overtaken_while_its_handler_ran_is_discarded);
  RUN(test_a_transport_without_marks_uses_the_local_store);
  RUN(test_marks_compare_numbers_before_strings);
  RUN(test_metrics_count_each_outcome_once);
  RUN(test_metrics_count_a_delayed_retry_and_a_screened_message);
  ev_loop_destroy(loop);
  return unit_done();
}
