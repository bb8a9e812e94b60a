/* test_mem_transport.c — the in-memory transport (transport/mem.h) through its vtable and
 * its test controls: routing and unroutable sends, complete with an outbox, release with a
 * delay and the delivery count, held confirmations, injected failures, browse/remove/depth,
 * subscribers, owners, delayed sends, reply addresses, and close with deliveries in flight.
 * Leaks are LeakSanitizer's to find (the unit build). */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"
#include "transport/mem.h"
#include "transport_helpers.h"
#include "unit.h"

static struct ev_loop *loop;

static mb_transport *open_bus(const char *name) {
  char url[128];
  snprintf(url, sizeof url, "mem://%s", name);
  mb_transport *t = NULL;
  mb_err err;
  if (mb_transport_open(&t, loop, url, "unit", &err) != MB_OK) printf("#   open: %s\n", err.msg);
  return t;
}

static int declare(mb_transport *t, const char *endpoint, const char *sub, const char *owned,
                   mb_err *err) {
  return declare_with(t, endpoint, "audit", sub, owned, err);
}

/* Runs the loop until in has n deliveries or about max_ms passed. */
static void run_until(inbox *in, int n, int max_ms) {
  for (int i = 0; i < max_ms / 5 && in->n < n; i++) {
    ev_run(loop, EVRUN_NOWAIT);
    if (in->n < n) usleep(5000);
  }
}

/* Sends one a.Do to queue "a" (declared) and consumes it, one in flight: 1 once in holds it. */
static int deliver_one(mb_transport *t, inbox *in) {
  mb_err err;
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  CHECK(t->ops->consume(t, "a", 1, on_delivery, in, &err) == MB_OK);
  run_until(in, 1, 500);
  return in->n == 1;
}

static void run_for(int ms) {
  for (int i = 0; i < ms / 5; i++) {
    ev_run(loop, EVRUN_NOWAIT);
    usleep(5000);
  }
}

static long depth(mb_transport *t, const char *queue, long *later) {
  long ready = -1, l = -1;
  mb_err err;
  t->ops->depth(t, queue, &ready, &l, &err);
  if (later) *later = l;
  return ready;
}

static mb_mem_stats stats(mb_transport *t) {
  mb_mem_stats s;
  memset(&s, 0, sizeof s);
  mb_mem_stats_get(t, &s);
  return s;
}

static void test_open_needs_a_name_and_shares_the_bus(void) {
  mb_transport *t = NULL;
  mb_err err;
  CHECK(mb_transport_open(&t, loop, "mem://", "unit", &err) == MB_EINVAL && t == NULL);
  mb_transport *a = open_bus("shared"), *b = open_bus("shared"), *c = open_bus("other");
  CHECK(a && b && c && mb_mem_is(a) && !mb_mem_is(NULL));
  CHECK(declare(a, "q", NULL, NULL, &err) == MB_OK);
  CHECK(send_one(b, message("q.Do", "q", "{}"), &err) == MB_OK && done_calls == 1);
  CHECK(mb_mem_count(a, "q") == 1 && mb_mem_count(c, "q") == 0);
  a->ops->close(a);
  b->ops->close(b);
  b = open_bus("shared"); /* the last close freed the bus: a fresh one */
  CHECK(b && mb_mem_count(b, "q") == 0);
  b->ops->close(b);
  c->ops->close(c);
}

static void test_dispatch_to_a_missing_queue_is_unroutable(void) {
  mb_transport *t = open_bus("unroutable");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  mb_outgoing *batch[2] = {message("a.Do", "a", "{}"), message("b.Do", "nowhere", "{}")};
  done_calls = 0;
  CHECK(t->ops->dispatch(t, batch, 2, on_done, NULL, &err) == MB_EUNROUTABLE);
  CHECK(done_calls == 0 && strstr(err.msg, "'nowhere'") && strstr(err.msg, batch[1]->env.id));
  CHECK(mb_mem_count(t, "a") == 0); /* nothing of the batch */
  mb_outgoing_free(batch[0]);
  mb_outgoing_free(batch[1]);
  /* a reply to a requester that is gone is dropped, not an error */
  mb_outgoing *reply = message("a.Reply", "moonbus.reply.gone", "{}");
  reply->to_requester = 1;
  CHECK(send_one(t, reply, &err) == MB_OK && done_calls == 1 && done_status == MB_OK);
  t->ops->close(t);
}

static void test_complete_stores_the_outbox_and_acks(void) {
  mb_transport *t = open_bus("complete");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK && declare(t, "b", NULL, NULL, &err) == MB_OK);
  mb_outgoing *m = message("a.Do", "a", "{\"x\":1}");
  char id[MB_ID_LEN + 1];
  strcpy(id, m->env.id);
  mb_envelope_set_correlation_id(&m->env, "corr");
  CHECK(send_one(t, m, &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 4, on_delivery, &in, &err) == MB_OK);
  CHECK(in.n == 0); /* never from inside consume */
  run_until(&in, 1, 500);
  CHECK(in.n == 1);
  if (in.n == 1) {
    mb_delivery *d = in.got[0];
    CHECK(strcmp(d->env.id, id) == 0 && strcmp(d->env.type, "a.Do") == 0);
    CHECK(strcmp(d->env.body, "{\"x\":1}") == 0 && strcmp(d->env.correlation_id, "corr") == 0);
    CHECK(d->delivery_count == 1 && d->problem == NULL && strcmp(d->queue, "a") == 0);
    CHECK(stats(t).in_flight == 1 && stats(t).delivered == 1);
    long later;
    CHECK(depth(t, "a", &later) == 0 && later == 1); /* in flight counts as later */
    mb_outgoing *out[2] = {message("b.Do", "b", "{}"), message("a.Audit", "audit", "{}")};
    out[1]->archive = 1;
    done_calls = 0;
    CHECK(t->ops->complete(t, d, out, 2, on_done, NULL, &err) == MB_OK);
    CHECK(done_calls == 1 && done_status == MB_OK);
    mb_outgoing_free(out[0]);
    mb_outgoing_free(out[1]);
    CHECK(mb_mem_count(t, "a") == 0 && mb_mem_count(t, "b") == 1 &&
          mb_mem_count(t, "audit") == 1);
    CHECK(stats(t).acks == 1 && stats(t).in_flight == 0);
    /* a second complete of the same delivery: it is no longer ours */
    CHECK(t->ops->complete(t, d, NULL, 0, on_done, NULL, &err) == MB_ELOST);
  }
  inbox_free(&in);
  t->ops->close(t);
}

static void test_complete_with_an_unroutable_outbox_keeps_the_delivery(void) {
  mb_transport *t = open_bus("complete-unroutable");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  inbox in = {0};
  CHECK(deliver_one(t, &in));
  if (in.n == 1) {
    mb_outgoing *out = message("x.Do", "nowhere", "{}");
    done_calls = 0;
    CHECK(t->ops->complete(t, in.got[0], &out, 1, on_done, NULL, &err) == MB_EUNROUTABLE);
    CHECK(done_calls == 0 && stats(t).in_flight == 1 && stats(t).acks == 0);
    mb_outgoing_free(out);
    CHECK(t->ops->release(t, in.got[0], 0, &err) == MB_OK);
  }
  inbox_free(&in);
  run_until(&in, 1, 500); /* back on the queue, delivered again */
  CHECK(in.n == 1 && in.got[0]->delivery_count == 2);
  inbox_free(&in);
  t->ops->close(t);
}

static void test_release_with_delay_redelivers_with_count_plus_one(void) {
  mb_transport *t = open_bus("release");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  inbox in = {0};
  CHECK(deliver_one(t, &in));
  if (in.n != 1) goto out;
  CHECK(t->ops->release(t, in.got[0], 0.2, &err) == MB_OK);
  CHECK(stats(t).releases == 1 && stats(t).last_release_delay == 0.2);
  CHECK(stats(t).in_flight == 0);
  inbox_free(&in);
  long later;
  CHECK(depth(t, "a", &later) == 0 && later == 1);
  run_for(100);
  CHECK(in.n == 0); /* not before its delay */
  run_until(&in, 1, 1000);
  CHECK(in.n == 1 && in.got[0]->delivery_count == 2);
  if (in.n == 1) CHECK(t->ops->release(t, in.got[0], 0, &err) == MB_OK);
  inbox_free(&in);
  run_until(&in, 1, 500);
  CHECK(in.n == 1 && in.got[0]->delivery_count == 3);
out:
  inbox_free(&in);
  t->ops->close(t);
}

static void test_max_in_flight_bounds_deliveries(void) {
  mb_transport *t = open_bus("in-flight");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 5; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 2, on_delivery, &in, &err) == MB_OK);
  run_for(50);
  CHECK(in.n == 2);
  if (in.n == 2) CHECK(t->ops->complete(t, in.got[0], NULL, 0, on_done, NULL, &err) == MB_OK);
  run_for(50);
  CHECK(in.n == 3 && stats(t).in_flight == 2);
  inbox_free(&in);
  t->ops->close(t);
}

/* A completion that delivers to the consumed queue must not call the deliver fn inside. */
static void test_deliveries_never_come_from_inside_a_call(void) {
  mb_transport *t = open_bus("reentrant");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK && in.n == 0);
  run_until(&in, 1, 500);
  CHECK(in.n == 1);
  if (in.n == 1) {
    mb_outgoing *out = message("a.Again", "a", "{}");
    CHECK(t->ops->complete(t, in.got[0], &out, 1, on_done, NULL, &err) == MB_OK);
    CHECK(in.n == 1);
    mb_outgoing_free(out);
  }
  run_until(&in, 2, 500);
  CHECK(in.n == 2);
  inbox_free(&in);
  t->ops->close(t);
}

static void test_manual_confirm_holds_the_done_callback(void) {
  mb_transport *t = open_bus("manual");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK && declare(t, "b", NULL, NULL, &err) == MB_OK);
  inbox in = {0};
  CHECK(deliver_one(t, &in));
  if (in.n != 1) goto out;
  mb_mem_manual_confirm(t, 1);
  mb_outgoing *o = message("b.Do", "b", "{}");
  done_calls = 0;
  CHECK(t->ops->complete(t, in.got[0], &o, 1, on_done, NULL, &err) == MB_OK);
  mb_outgoing_free(o);
  CHECK(done_calls == 0 && stats(t).acks == 0 && stats(t).unconfirmed == 1);
  CHECK(mb_mem_count(t, "a") == 1 && mb_mem_count(t, "b") == 0); /* nothing applied yet */
  CHECK(send_one(t, message("b.Other", "b", "{}"), &err) == MB_OK && done_calls == 0);
  CHECK(stats(t).unconfirmed == 2);
  run_for(30);
  CHECK(done_calls == 0); /* the loop does not confirm */
  CHECK(mb_mem_confirm(t, 1) == 1);
  CHECK(done_calls == 1 && done_status == MB_OK && stats(t).acks == 1);
  CHECK(mb_mem_count(t, "a") == 0 && mb_mem_count(t, "b") == 1);
  CHECK(mb_mem_confirm_all(t) == 1 && done_calls == 2 && mb_mem_count(t, "b") == 2);
  CHECK(mb_mem_confirm_all(t) == 0 && stats(t).unconfirmed == 0);
out:
  inbox_free(&in);
  t->ops->close(t);
}

static void test_fail_next_fails_through_done(void) {
  mb_transport *t = open_bus("fail");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK && declare(t, "b", NULL, NULL, &err) == MB_OK);
  mb_mem_fail_next(t, MB_EIO, 2);
  mb_outgoing *first = message("b.Do", "b", "{}");
  char id[MB_ID_LEN + 1];
  strcpy(id, first->env.id);
  CHECK(send_one(t, first, &err) == MB_OK);
  CHECK(done_calls == 1 && done_status == MB_EIO && strstr(done_error, "injected failure"));
  CHECK(strstr(done_error, "mem://fail") && strstr(done_error, id));
  CHECK(mb_mem_count(t, "b") == 0);
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK && done_status == MB_EIO);
  CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK && done_status == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 1, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1, 500);
  CHECK(in.n == 1);
  if (in.n != 1) goto out;
  /* a failed complete: nothing stored, the delivery still ours to release */
  mb_mem_fail_next(t, MB_EIO, 1);
  mb_outgoing *o = message("b.Do", "b", "{}");
  done_calls = 0;
  CHECK(t->ops->complete(t, in.got[0], &o, 1, on_done, NULL, &err) == MB_OK);
  CHECK(done_calls == 1 && done_status == MB_EIO && mb_mem_count(t, "b") == 0);
  CHECK(strstr(done_error, in.got[0]->env.id) != NULL);
  CHECK(stats(t).in_flight == 1 && stats(t).acks == 0 && mb_mem_count(t, "a") == 1);
  /* MB_ELOST puts it back at once, as a lost connection does; in manual mode at confirm */
  mb_mem_manual_confirm(t, 1);
  mb_mem_fail_next(t, MB_ELOST, 1);
  done_calls = 0;
  CHECK(t->ops->complete(t, in.got[0], &o, 1, on_done, NULL, &err) == MB_OK && done_calls == 0);
  mb_outgoing_free(o);
  CHECK(mb_mem_confirm_all(t) == 1 && done_calls == 1 && done_status == MB_ELOST);
  CHECK(stats(t).in_flight == 0 && stats(t).releases == 0);
  inbox_free(&in);
  run_until(&in, 1, 500);
  CHECK(in.n == 1 && in.got[0]->delivery_count == 2);
out:
  inbox_free(&in);
  t->ops->close(t);
}

typedef struct walk {
  char ids[8][MB_ID_LEN + 1];
  int n, take_index, stop_after;
} walk;

static int on_browse(void *ud, mb_delivery *d) {
  walk *w = ud;
  int i = w->n++;
  if (i < 8) snprintf(w->ids[i], sizeof w->ids[i], "%s", d->env.id);
  mb_delivery_free(d);
  int what = i == w->take_index ? MB_BROWSE_TAKE : MB_BROWSE_NEXT;
  return w->n == w->stop_after ? what | MB_BROWSE_STOP : what;
}

static void test_browse_remove_and_depth(void) {
  mb_transport *t = open_bus("browse");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  char ids[4][MB_ID_LEN + 1];
  for (int i = 0; i < 4; i++) {
    mb_outgoing *m = message("a.Do", "a", "{}");
    strcpy(ids[i], m->env.id);
    CHECK(send_one(t, m, &err) == MB_OK);
  }
  long later;
  CHECK(depth(t, "a", &later) == 4 && later == 0 && depth(t, "nowhere", &later) == 0);
  walk w = {.take_index = 1, .stop_after = 0};
  CHECK(t->ops->browse(t, "a", on_browse, &w, &err) == MB_OK);
  CHECK(w.n == 4 && strcmp(w.ids[0], ids[0]) == 0 && strcmp(w.ids[3], ids[3]) == 0);
  CHECK(mb_mem_count(t, "a") == 3); /* the second was taken */
  walk stop = {.take_index = -1, .stop_after = 2};
  CHECK(t->ops->browse(t, "a", on_browse, &stop, &err) == MB_OK && stop.n == 2);
  CHECK(strcmp(stop.ids[1], ids[2]) == 0);
  CHECK(t->ops->remove(t, "a", ids[0], &err) == MB_OK);
  CHECK(t->ops->remove(t, "a", ids[0], &err) == MB_ENOTFOUND && strstr(err.msg, ids[0]));
  mb_delivery *copies[4];
  size_t n = 0;
  CHECK(mb_transport_browse_first(t, "a", 4, copies, &n, &err) == MB_OK && n == 2);
  for (size_t i = 0; i < n; i++) mb_delivery_free(copies[i]);
  /* a message in flight is neither removed nor taken */
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 1, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 1, 500);
  CHECK(in.n == 1 && strcmp(in.got[0]->env.id, ids[2]) == 0);
  CHECK(t->ops->remove(t, "a", ids[2], &err) == MB_ENOTFOUND);
  walk take = {.take_index = 0};
  CHECK(t->ops->browse(t, "a", on_browse, &take, &err) == MB_ENOTFOUND && take.n == 1);
  CHECK(mb_mem_count(t, "a") == 2);
  inbox_free(&in);
  t->ops->close(t);
}

static void test_publish_reaches_every_subscriber(void) {
  mb_transport *t = open_bus("publish");
  mb_err err;
  CHECK(declare(t, "sales", NULL, "sales.Placed", &err) == MB_OK);
  CHECK(declare(t, "billing", "sales.Placed", NULL, &err) == MB_OK);
  CHECK(declare(t, "shipping", "sales.Placed", NULL, &err) == MB_OK);
  CHECK(send_one(t, message("sales.Placed", NULL, "{}"), &err) == MB_OK && done_calls == 1);
  CHECK(mb_mem_count(t, "billing") == 1 && mb_mem_count(t, "shipping") == 1);
  CHECK(mb_mem_count(t, "sales") == 0);
  /* declaring again without the subscription drops it */
  CHECK(declare(t, "shipping", NULL, NULL, &err) == MB_OK);
  CHECK(send_one(t, message("sales.Placed", NULL, "{}"), &err) == MB_OK);
  CHECK(mb_mem_count(t, "billing") == 2 && mb_mem_count(t, "shipping") == 1);
  t->ops->close(t);
}

static void test_a_second_owner_is_refused(void) {
  mb_transport *t = open_bus("owners");
  mb_err err;
  char owner[64] = "";
  CHECK(t->ops->owner_of(t, "sales.Placed", owner, sizeof owner, &err) == MB_ENOTFOUND);
  CHECK(declare(t, "sales", NULL, "sales.Placed", &err) == MB_OK);
  CHECK(declare(t, "sales", NULL, "sales.Placed", &err) == MB_OK); /* again: fine */
  CHECK(declare(t, "rogue", "x.Y", "sales.Placed", &err) == MB_EOWNER);
  CHECK(strstr(err.msg, "sales.Placed") && strstr(err.msg, "sales"));
  CHECK(t->ops->owner_of(t, "sales.Placed", owner, sizeof owner, &err) == MB_OK);
  CHECK(strcmp(owner, "sales") == 0);
  /* the refused declare changed nothing: no queue, no subscription */
  mb_outgoing *m = message("x.Do", "rogue", "{}");
  CHECK(send_one(t, m, &err) == MB_EUNROUTABLE);
  t->ops->close(t);
}

static void test_delayed_dispatch_is_visible_after_its_delay(void) {
  mb_transport *t = open_bus("delayed");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  mb_outgoing *m = message("a.Later", "a", "{}");
  m->delay = 0.2;
  CHECK(send_one(t, m, &err) == MB_OK && done_calls == 1);
  long later;
  CHECK(depth(t, "a", &later) == 0 && later == 1);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 1, on_delivery, &in, &err) == MB_OK);
  run_for(100);
  CHECK(in.n == 0);
  run_until(&in, 1, 1000);
  CHECK(in.n == 1 && in.got[0]->delivery_count == 1);
  inbox_free(&in);
  t->ops->close(t);
}

static void test_put_plays_a_foreign_sender(void) {
  mb_transport *t = open_bus("put");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  mb_envelope env;
  mb_envelope_init(&env);
  strcpy(env.id, "not-a-uuid");
  mb_headers_set(&env.headers, "bad key", "v"); /* breaks the header rules */
  CHECK(mb_mem_put(t, "nowhere", &env, NULL, &err) == MB_EUNROUTABLE);
  CHECK(mb_mem_put(t, "a", &env, NULL, &err) == MB_OK);
  mb_envelope_free(&env);
  mb_envelope_init(&env);
  mb_uuidv7(env.id);
  mb_envelope_set_type(&env, "a.Do");
  mb_mem_raw raw = {.problem = NULL, .deliveries = 7};
  CHECK(mb_mem_put(t, "a", &env, &raw, &err) == MB_OK);
  raw = (mb_mem_raw){.problem = "cannot decode"};
  CHECK(mb_mem_put(t, "a", &env, &raw, &err) == MB_OK);
  mb_envelope_free(&env);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 8, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 3, 500);
  CHECK(in.n == 3);
  if (in.n == 3) {
    CHECK(mb_id_valid(in.got[0]->env.id) && in.got[0]->problem != NULL);
    const char *foreign = mb_headers_get(&in.got[0]->env.headers, MB_H_FOREIGN_ID);
    CHECK(foreign && strcmp(foreign, "not-a-uuid") == 0);
    CHECK(in.got[1]->problem == NULL && in.got[1]->delivery_count == 8); /* a crash loop */
    CHECK(in.got[2]->problem && strcmp(in.got[2]->problem, "cannot decode") == 0);
  }
  inbox_free(&in);
  t->ops->close(t);
}

static inbox replies;
static void on_reply(void *ud, mb_delivery *d) { on_delivery(ud, d); }

static void test_replies_are_taken_and_their_queue_goes_at_close(void) {
  mb_transport *a = open_bus("replies"), *b = open_bus("replies");
  mb_err err;
  char address[MB_QUEUE_NAME_MAX + 1];
  CHECK(a->ops->listen_replies(a, on_reply, &replies, address, sizeof address, &err) == MB_OK);
  CHECK(mb_is_reply_address(address));
  mb_outgoing *r = message("x.Reply", address, "{}");
  r->to_requester = 1;
  CHECK(send_one(b, r, &err) == MB_OK && replies.n == 0);
  run_until(&replies, 1, 500);
  CHECK(replies.n == 1 && mb_mem_count(a, address) == 0);
  inbox_free(&replies);
  a->ops->close(a);
  r = message("x.Reply", address, "{}");
  r->to_requester = 1;
  CHECK(send_one(b, r, &err) == MB_OK && done_status == MB_OK); /* dropped */
  CHECK(send_one(b, message("x.Reply", address, "{}"), &err) == MB_EUNROUTABLE);
  b->ops->close(b);
}

/* Under LeakSanitizer: whatever is in flight, held or queued is freed by the last close. */
static void test_close_with_deliveries_in_flight_frees_everything(void) {
  mb_transport *t = open_bus("close"), *other = open_bus("close");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK && declare(t, "b", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 3; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  mb_outgoing *later = message("a.Later", "a", "{}");
  later->delay = 60;
  CHECK(send_one(t, later, &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 2, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 2, 500);
  CHECK(in.n == 2);
  mb_mem_manual_confirm(t, 1);
  mb_outgoing *o = message("b.Do", "b", "{}");
  if (in.n == 2) CHECK(t->ops->complete(t, in.got[0], &o, 1, on_done, NULL, &err) == MB_OK);
  mb_outgoing_free(o);
  done_calls = 0;
  t->ops->close(t); /* one held, one unconfirmed: both go back, done is never called */
  CHECK(done_calls == 0);
  inbox_free(&in);
  long wait;
  CHECK(depth(other, "a", &wait) == 3 && wait == 1 && mb_mem_count(other, "b") == 0);
  inbox again = {0};
  CHECK(other->ops->consume(other, "a", 8, on_delivery, &again, &err) == MB_OK);
  run_until(&again, 3, 500);
  CHECK(again.n == 3);
  int twice = 0;
  for (int i = 0; i < again.n; i++) twice += again.got[i]->delivery_count == 2;
  CHECK(twice == 2);
  other->ops->close(other); /* with three in flight and one delayed */
  inbox_free(&again);
  ev_run(loop, EVRUN_NOWAIT);
}

static void keep_info(void *ud, const mb_queue_info *q) {
  mb_queue_info *list = ud;
  for (int i = 0; i < 8; i++)
    if (list[i].name == NULL || strcmp(list[i].name, q->name) == 0) {
      list[i] = *q;
      list[i].name = strcmp(q->name, "a") == 0       ? "a"
                     : strcmp(q->name, "audit") == 0 ? "audit"
                                                     : "other";
      return;
    }
}

/* queues: every queue (or one by name) with ready, delayed, in flight and its consumers. */
static void test_queues_counts_each_queue(void) {
  mb_transport *t = open_bus("queues");
  mb_err err;
  CHECK(declare(t, "a", NULL, NULL, &err) == MB_OK);
  for (int i = 0; i < 3; i++) CHECK(send_one(t, message("a.Do", "a", "{}"), &err) == MB_OK);
  inbox in = {0};
  CHECK(t->ops->consume(t, "a", 2, on_delivery, &in, &err) == MB_OK);
  run_until(&in, 2, 500);
  CHECK(in.n == 2);
  if (in.n == 2) CHECK(t->ops->release(t, in.got[0], 60, &err) == MB_OK);
  mb_queue_info all[8] = {{0}};
  CHECK(t->ops->queues(t, NULL, keep_info, all, &err) == MB_OK);
  int a = 0;
  while (a < 7 && all[a].name && strcmp(all[a].name, "a") != 0) a++;
  CHECK(all[a].ready == 1 && all[a].delayed == 1 && all[a].in_flight == 1 &&
        all[a].consumers == 1);
  mb_queue_info one[8] = {{0}};
  CHECK(t->ops->queues(t, "audit", keep_info, one, &err) == MB_OK);
  CHECK(one[0].name && strcmp(one[0].name, "audit") == 0 && one[0].ready == 0 &&
        one[0].consumers == 0 && one[1].name == NULL);
  CHECK(t->ops->queues(t, "nope", keep_info, one, &err) == MB_ENOTFOUND);
  CHECK(strstr(err.msg, "no queue named 'nope'") != NULL);
  inbox_free(&in);
  t->ops->close(t);
}

int main(void) {
  loop = ev_loop_new(EVFLAG_AUTO);
  RUN(test_open_needs_a_name_and_shares_the_bus);
  RUN(test_dispatch_to_a_missing_queue_is_unroutable);
  RUN(test_complete_stores_the_outbox_and_acks);
  RUN(test_complete_with_an_unroutable_outbox_keeps_the_delivery);
  RUN(test_release_with_delay_redelivers_with_count_plus_one);
  RUN(test_max_in_flight_bounds_deliveries);
  RUN(test_deliveries_never_come_from_inside_a_call);
  RUN(test_manual_confirm_holds_the_done_callback);
  RUN(test_fail_next_fails_through_done);
  RUN(test_browse_remove_and_depth);
  RUN(test_queues_counts_each_queue);
  RUN(test_publish_reaches_every_subscriber);
  RUN(test_a_second_owner_is_refused);
  RUN(test_delayed_dispatch_is_visible_after_its_delay);
  RUN(test_put_plays_a_foreign_sender);
  RUN(test_replies_are_taken_and_their_queue_goes_at_close);
  RUN(test_close_with_deliveries_in_flight_frees_everything);
  ev_loop_destroy(loop);
  return unit_done();
}
