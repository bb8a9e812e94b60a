/* outbound.c — sends outside a handler (see outbound.h). Owns the tickets: one per send
 * the transport has not answered, freed on the next send after its answer came (never
 * inside the transport's callback, which may be walking its own lists), or at free.
 * Never: touches a handled message's outbox or acknowledgement (pipeline.c). */
#include "outbound.h"

#include <ev.h>
#include <stdlib.h>

struct mb_send {
  mb_outbound *owner;
  mb_done_fn fn;
  void *ud;
  int forgotten, answered;
  mb_send *prev, *next;
};

struct mb_outbound {
  struct ev_loop *loop;
  mb_send *sends; /* sends the transport has not answered, or answered and not swept yet */
};

mb_outbound *mb_outbound_new(struct ev_loop *loop) {
  mb_outbound *o = calloc(1, sizeof *o);
  if (o) o->loop = loop;
  return o;
}

void mb_outbound_free(mb_outbound *o) {
  if (o == NULL) return;
  while (o->sends) {
    mb_send *t = o->sends;
    o->sends = t->next;
    free(t);
  }
  free(o);
}

static void send_unlink(mb_send *t) {
  if (t->prev) t->prev->next = t->next;
  else t->owner->sends = t->next;
  if (t->next) t->next->prev = t->prev;
}

static void send_answered(void *ud, int status, const char *error) {
  mb_send *t = ud;
  int call = !t->forgotten;
  t->answered = t->forgotten = 1; /* t may be swept from here on: fn may send again */
  if (call) t->fn(t->ud, status, error);
}

static void sends_sweep(mb_outbound *o) {
  for (mb_send *t = o->sends, *next; t; t = next) {
    next = t->next;
    if (t->answered) {
      send_unlink(t);
      free(t);
    }
  }
}

void mb_send_forget(mb_send *ticket) {
  if (ticket) ticket->forgotten = 1;
}

int mb_outbound_send(mb_outbound *o, mb_transport *t, mb_outgoing **msgs, size_t n, mb_done_fn fn,
                     void *ud, mb_send **ticket, mb_err *err) {
  *ticket = NULL;
  sends_sweep(o);
  int rc = MB_OK;
  mb_send *s = calloc(1, sizeof *s);
  if (s == NULL) rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK) {
    *s = (mb_send){.owner = o, .fn = fn, .ud = ud, .next = o->sends};
    if (o->sends) o->sends->prev = s;
    o->sends = s;
    rc = t->ops->dispatch(t, (mb_outgoing *const *)msgs, n, send_answered, s, err);
    if (rc != MB_OK) s->answered = 1; /* never called back: swept next time */
    else if (!s->answered) *ticket = s;
  }
  for (size_t i = 0; i < n; i++) mb_outgoing_free(msgs[i]);
  return rc;
}

typedef struct dispatch_wait {
  int done, status;
  mb_err *err;
} dispatch_wait;

static void dispatch_done(void *ud, int status, const char *error) {
  dispatch_wait *w = ud;
  w->done = 1;
  w->status = status;
  if (status != MB_OK) mb_err_set(w->err, status, "%s", error ? error : mb_strerror(status));
}

int mb_outbound_dispatch(mb_outbound *o, mb_transport *t, mb_outgoing **msgs, size_t n,
                         mb_err *err) {
  dispatch_wait w = {0, MB_OK, err};
  mb_send *ticket;
  int rc = mb_outbound_send(o, t, msgs, n, dispatch_done, &w, &ticket, err);
  /* A transport that answers later (publisher confirms) is waited for on the loop. */
  while (rc == MB_OK && !w.done) ev_run(o->loop, EVRUN_ONCE);
  return rc != MB_OK ? rc : w.status;
}
