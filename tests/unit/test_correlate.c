/* test_correlate.c — pending requests on a real libev loop: a reply reaches its request
 * and no other, a deadline fires once, a late reply is told from a stray one, cancel and
 * free call nothing back, and thousands in flight each get their own reply. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlate.h"
#include "ids.h"
#include "unit.h"

typedef struct waiter {
  int calls;
  int timed_out;
  char got[MB_ID_LEN + 1];  /* id of the reply it received */
  char corr[MB_ID_LEN + 1]; /* and that reply's correlation id */
} waiter;

static void on_reply(void *ud, mb_delivery *reply) {
  waiter *w = ud;
  w->calls++;
  if (reply == NULL) {
    w->timed_out = 1;
    return;
  }
  snprintf(w->got, sizeof w->got, "%s", reply->env.id);
  snprintf(w->corr, sizeof w->corr, "%s", reply->env.correlation_id);
  mb_delivery_free(reply);
}

static mb_delivery *reply_to(const char *correlation_id) {
  mb_delivery *d = calloc(1, sizeof *d);
  mb_envelope_init(&d->env);
  mb_uuidv7(d->env.id);
  mb_envelope_set_correlation_id(&d->env, correlation_id);
  return d;
}

static void reply_reaches_its_request_only(void) {
  struct ev_loop *loop = ev_loop_new(0);
  mb_correlate *c = mb_correlate_new(loop);
  waiter a = {0}, b = {0};
  char ida[MB_ID_LEN + 1], idb[MB_ID_LEN + 1];
  mb_uuidv7(ida);
  mb_uuidv7(idb);
  CHECK(mb_correlate_expect(c, ida, 5, on_reply, &a) == MB_OK);
  CHECK(mb_correlate_expect(c, idb, 5, on_reply, &b) == MB_OK);
  CHECK(mb_correlate_expect(c, ida, 5, on_reply, &a) == MB_EINVAL); /* already pending */
  CHECK(mb_correlate_pending(c) == 2);
  mb_delivery *r = reply_to(idb);
  char rid[MB_ID_LEN + 1];
  strcpy(rid, r->env.id);
  CHECK(mb_correlate_deliver(c, r, NULL) == MB_OK);
  CHECK(b.calls == 1 && strcmp(b.got, rid) == 0);
  CHECK(a.calls == 0);
  CHECK(mb_correlate_pending(c) == 1);
  r = reply_to(idb); /* a second reply to the same request: nobody waits any more */
  long late = 0;
  CHECK(mb_correlate_deliver(c, r, &late) == MB_ENOTFOUND);
  CHECK(late == -1);
  mb_delivery_free(r);
  mb_correlate_free(c); /* a is still pending: dropped without a call */
  CHECK(a.calls == 0);
  ev_loop_destroy(loop);
}

static void timeout_fires_once_and_late_reply_is_known(void) {
  struct ev_loop *loop = ev_loop_new(0);
  mb_correlate *c = mb_correlate_new(loop);
  waiter w = {0};
  char id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  CHECK(mb_correlate_expect(c, id, 0.05, on_reply, &w) == MB_OK);
  ev_run(loop, 0); /* returns when the deadline fired: nothing else is active */
  CHECK(w.calls == 1 && w.timed_out);
  CHECK(mb_correlate_pending(c) == 0);
  mb_delivery *r = reply_to(id);
  long late = -1;
  CHECK(mb_correlate_deliver(c, r, &late) == MB_ENOTFOUND);
  CHECK(late >= 0);
  CHECK(w.calls == 1);
  mb_delivery_free(r);
  r = reply_to(NULL); /* no correlation id at all */
  CHECK(mb_correlate_deliver(c, r, &late) == MB_ENOTFOUND && late == -1);
  mb_delivery_free(r);
  mb_correlate_free(c);
  ev_loop_destroy(loop);
}

static void cancel_calls_nothing(void) {
  struct ev_loop *loop = ev_loop_new(0);
  mb_correlate *c = mb_correlate_new(loop);
  waiter w = {0};
  CHECK(mb_correlate_expect(c, "x", 0.01, on_reply, &w) == MB_OK);
  CHECK(mb_correlate_cancel(c, "x") == 1);
  CHECK(mb_correlate_cancel(c, "x") == 0);
  ev_run(loop, 0);
  CHECK(w.calls == 0);
  CHECK(mb_correlate_expect(c, "y", 0, on_reply, &w) == MB_EINVAL); /* no deadline */
  mb_correlate_free(c);
  ev_loop_destroy(loop);
}

#define MANY 5000

static void thousands_in_flight_get_their_own(void) {
  struct ev_loop *loop = ev_loop_new(0);
  mb_correlate *c = mb_correlate_new(loop);
  static waiter w[MANY];
  static char ids[MANY][MB_ID_LEN + 1];
  memset(w, 0, sizeof w);
  for (int i = 0; i < MANY; i++) {
    mb_uuidv7(ids[i]);
    CHECK(mb_correlate_expect(c, ids[i], 60, on_reply, &w[i]) == MB_OK);
  }
  for (int i = MANY - 1; i >= 0; i--)
    CHECK(mb_correlate_deliver(c, reply_to(ids[i]), NULL) == MB_OK);
  int wrong = 0;
  for (int i = 0; i < MANY; i++)
    wrong += w[i].calls != 1 || w[i].timed_out || strcmp(w[i].corr, ids[i]) != 0;
  CHECK(wrong == 0);
  CHECK(mb_correlate_pending(c) == 0);
  mb_correlate_free(c);
  ev_loop_destroy(loop);
}

int main(void) {
  RUN(reply_reaches_its_request_only);
  RUN(timeout_fires_once_and_late_reply_is_known);
  RUN(cancel_calls_nothing);
  RUN(thousands_in_flight_get_their_own);
  return unit_done();
}
