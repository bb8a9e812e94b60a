/* ingest.c — reads one queue into the ops store (see ingest.h). Deliveries gather in a
 * batch that is stored in one transaction when it is full or 10 ms after its first
 * message; only then is each acknowledged (complete without an outbox). A batch the store
 * refuses is stored again one message at a time, so one message cannot hold back the
 * others; a message that cannot be stored goes back to its queue with a back-off.
 * Never: acknowledges before the commit, or handles a message. */
#include "ops/ingest.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FLUSH_AFTER 0.010 /* seconds a batch waits for more messages */
#define REFUSED_DELAY 5.0 /* seconds before a message the store refused comes back */

struct mb_ops_ingest {
  struct ev_loop *loop;
  mb_transport *t;
  mb_ops_store *store;
  mb_ops_source src;
  char *queue;
  mb_delivery *batch[MB_OPS_BATCH];
  size_t n;
  ev_timer flush;
  unsigned long stored;
};

static void completed(void *ud, int status, const char *error) {
  mb_delivery *d = ud;
  if (status != MB_OK)
    mb_log_msg(MB_WARN, "moonbus.ops", mb_envelope_log_ids(&d->env),
               "stored, but its acknowledgement failed (%s): it will be delivered again and "
               "recognised",
               error);
  mb_delivery_free(d);
}

static void acknowledge(mb_ops_ingest *in, mb_delivery *d) {
  mb_err err;
  if (in->t->ops->complete(in->t, d, NULL, 0, completed, d, &err) != MB_OK)
    completed(d, err.status, err.msg);
}

static void give_back(mb_ops_ingest *in, mb_delivery *d, const char *why) {
  mb_err err;
  mb_log_msg(MB_ERROR, "moonbus.ops", mb_envelope_log_ids(&d->env),
             "cannot store it from queue '%s' (%s): back on the queue in %.0f s", in->queue, why,
             REFUSED_DELAY);
  if (in->t->ops->release(in->t, d, REFUSED_DELAY, &err) != MB_OK)
    mb_log_msg(MB_ERROR, "moonbus.ops", mb_envelope_log_ids(&d->env), "%s", err.msg);
  mb_delivery_free(d);
}

/* Stores the batch (one transaction; one per message if that fails), then acknowledges. */
static void flush(mb_ops_ingest *in) {
  mb_err err;
  ev_timer_stop(in->loop, &in->flush);
  if (in->n == 0) return;
  int whole = in->store->ops->ingest(in->store, in->src, in->batch, in->n, &err) == MB_OK;
  for (size_t i = 0; i < in->n; i++) {
    mb_delivery *d = in->batch[i];
    if (whole || in->store->ops->ingest(in->store, in->src, &d, 1, &err) == MB_OK) {
      in->stored++;
      acknowledge(in, d);
    } else give_back(in, d, err.msg);
  }
  in->n = 0;
}

static void on_flush(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  flush(w->data);
}

static void on_delivery(void *ud, mb_delivery *d) {
  mb_ops_ingest *in = ud;
  in->batch[in->n++] = d;
  if (in->n == MB_OPS_BATCH) flush(in);
  else if (!ev_is_active(&in->flush)) ev_timer_start(in->loop, &in->flush);
}

int mb_ops_ingest_start(mb_ops_ingest **out, struct ev_loop *loop, const char *url,
                        const char *instance, const char *queue, mb_ops_source src,
                        mb_ops_store *store, mb_err *err) {
  mb_ops_ingest *in = calloc(1, sizeof *in);
  if (in == NULL || (in->queue = strdup(queue)) == NULL) {
    free(in);
    return mb_err_set(err, MB_ENOMEM, "out of memory reading queue '%s'", queue);
  }
  in->loop = loop, in->store = store, in->src = src;
  ev_timer_init(&in->flush, on_flush, FLUSH_AFTER, 0.0);
  in->flush.data = in;
  int rc = mb_transport_open(&in->t, loop, url, instance, err);
  if (rc == MB_OK) rc = in->t->ops->consume(in->t, queue, MB_OPS_BATCH, on_delivery, in, err);
  if (rc != MB_OK) {
    mb_ops_ingest_stop(in);
    return rc;
  }
  *out = in;
  return MB_OK;
}

void mb_ops_ingest_stop(mb_ops_ingest *in) {
  if (in == NULL) return;
  if (in->t) in->t->ops->stop_consuming(in->t);
  flush(in);
  if (in->t) in->t->ops->close(in->t);
  free(in->queue);
  free(in);
}

mb_transport *mb_ops_ingest_transport(const mb_ops_ingest *in) { return in->t; }
unsigned long mb_ops_ingest_count(const mb_ops_ingest *in) { return in->stored; }
