/* rabbitmq.c — the RabbitMQ transport (DESIGN §5): rabbitmq-c 0.11 driven by libev, behind
 * the vtable of transport.h. This file holds the vtable: declaring the endpoint's
 * topology (and redeclaring it after a reconnect), sending and completing through
 * rabbitmq_publish.c, consuming with a prefetch of max_in_flight, releasing, lookups and
 * browsing, open and close. Connections live in rabbitmq_session.c.
 * Two connections per open, one to publish and one to consume, so that a blocked publisher
 * never stalls deliveries. A session number stamps every delivery: one from an older
 * session is never acked on a newer one (the broker has already given it back).
 * Never: keeps a timer per delayed message (delays are the broker's, rabbitmq_topology.c). */
#include "transport/rabbitmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/rabbitmq_internal.h"
#include "transport/rabbitmq_wire.h"
#include "url.h"

int rmq_set_has(const string_set *s, const char *v) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->items[i], v) == 0) return 1;
  return 0;
}

int rmq_set_add(string_set *s, const char *v) {
  if (rmq_set_has(s, v)) return MB_OK;
  char **grown = realloc(s->items, (s->n + 1) * sizeof *grown);
  if (grown == NULL) return MB_ENOMEM;
  s->items = grown;
  if ((grown[s->n] = strdup(v)) == NULL) return MB_ENOMEM;
  s->n++;
  return MB_OK;
}

void rmq_set_clear(string_set *s) {
  for (size_t i = 0; i < s->n; i++) free(s->items[i]);
  free(s->items);
  s->items = NULL;
  s->n = 0;
}

mb_amqp_rpc rmq_rpc_on(amqp_link *l, amqp_channel_t channel) {
  mb_amqp_rpc r = {l->conn, channel, 0};
  return r;
}

void rmq_feed_pending(rmq *t, amqp_link *l) {
  if (l->conn && (amqp_frames_enqueued(l->conn) || amqp_data_in_buffer(l->conn)))
    ev_feed_event(t->loop, &l->io, EV_READ);
}

void rmq_after_rpc(rmq *t, amqp_link *l, mb_amqp_rpc *r, const char *what) {
  if (r->dead) rmq_mark_lost(t, "%s: the %s connection failed", what, l->role);
  else rmq_feed_pending(t, l);
}

static int not_connected(rmq *t, mb_err *err) {
  return mb_err_set(err, MB_ENOTCONN, "not connected to RabbitMQ at %s (reconnecting%s%s)",
                    t->shown, t->lost_reason[0] ? " after: " : "", t->lost_reason);
}

static int save_topology(rmq *t, const mb_topology *topo) {
  free(t->endpoint);
  free(t->error_queue);
  free(t->audit_queue);
  rmq_set_clear(&t->subscriptions);
  rmq_set_clear(&t->owned);
  t->endpoint = strdup(topo->endpoint);
  t->error_queue = topo->error_queue ? strdup(topo->error_queue) : NULL;
  t->audit_queue = topo->audit_queue ? strdup(topo->audit_queue) : NULL;
  if (t->endpoint == NULL || (topo->error_queue && t->error_queue == NULL) ||
      (topo->audit_queue && t->audit_queue == NULL))
    return MB_ENOMEM;
  for (size_t i = 0; i < topo->n_subscriptions; i++)
    if (rmq_set_add(&t->subscriptions, topo->subscriptions[i]) != MB_OK) return MB_ENOMEM;
  for (size_t i = 0; i < topo->n_owned; i++)
    if (rmq_set_add(&t->owned, topo->owned[i]) != MB_OK) return MB_ENOMEM;
  t->classic = topo->classic_queue;
  t->max_body = topo->max_body;
  return MB_OK;
}

/* The error queue is shared by endpoints: made once, with the first one's queue type. */
static int ensure_queue(rmq *t, mb_amqp_rpc *r, const char *name, int classic, mb_err *err) {
  long ready;
  int rc = mb_amqp_queue_depth(r, name, &ready, err);
  if (rc == MB_ENOTFOUND) rc = mb_amqp_declare_queue(r, name, classic, err);
  if (rc == MB_OK) rc = rmq_set_add(&t->known_queues, name);
  return rc;
}

static int subscribe_all(rmq *t, mb_amqp_rpc *r, mb_err *err) {
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < t->subscriptions.n; i++) {
    rc = mb_amqp_declare_event(r, t->subscriptions.items[i], err);
    if (rc == MB_OK) rc = mb_amqp_subscribe(r, t->endpoint, t->subscriptions.items[i], 1, err);
  }
  for (size_t i = 0; rc == MB_OK && i < t->bound.n; i++)
    if (!rmq_set_has(&t->subscriptions, t->bound.items[i]))
      rc = mb_amqp_subscribe(r, t->endpoint, t->bound.items[i], 0, err);
  if (rc != MB_OK) return rc;
  rmq_set_clear(&t->bound);
  for (size_t i = 0; rc == MB_OK && i < t->subscriptions.n; i++)
    rc = rmq_set_add(&t->bound, t->subscriptions.items[i]);
  return rc;
}

/* Claims first, so that a refused claim leaves the endpoint's queue and bindings alone. */
int rmq_declare_all(rmq *t, mb_err *err) {
  mb_amqp_rpc r = rmq_rpc_on(&t->pub, CH_RPC);
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < t->owned.n; i++)
    rc = mb_amqp_claim_event(&r, t->owned.items[i], t->endpoint, err);
  if (rc == MB_OK) rc = mb_amqp_declare_queue(&r, t->endpoint, t->classic, err);
  if (rc == MB_OK) rc = rmq_set_add(&t->known_queues, t->endpoint);
  if (rc == MB_OK && t->error_queue) rc = ensure_queue(t, &r, t->error_queue, t->classic, err);
  if (rc == MB_OK && t->audit_queue) rc = ensure_queue(t, &r, t->audit_queue, t->classic, err);
  if (rc == MB_OK) rc = mb_amqp_bind_delayed(&r, t->endpoint, 0, err);
  if (rc == MB_OK) rc = subscribe_all(t, &r, err);
  rmq_after_rpc(t, &t->pub, &r, "declaring the topology");
  return rc;
}

static int rmq_declare(mb_transport *base, const mb_topology *topo, mb_err *err) {
  rmq *t = (rmq *)base;
  if (!t->connected) return not_connected(t, err);
  if (save_topology(t, topo) != MB_OK) return mb_err_set(err, MB_ENOMEM, "out of memory");
  int rc = rmq_declare_all(t, err);
  if (rc == MB_OK) t->declared = 1;
  return rc;
}

static int rmq_dispatch(mb_transport *base, mb_outgoing *const *msgs, size_t n, mb_done_fn done,
                        void *ud, mb_err *err) {
  rmq *t = (rmq *)base;
  if (n == 0) {
    done(ud, MB_OK, NULL);
    return MB_OK;
  }
  batch *b = rmq_batch_new(done, ud, ev_now(t->loop));
  if (b == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  err->status = MB_OK;
  return rmq_send_batch(t, msgs, n, b, err);
}

static int stale(rmq *t, const mb_delivery *d) {
  return !t->connected || t->lost || (uintptr_t)d->transport_data != t->session;
}

static int rmq_complete(mb_transport *base, mb_delivery *d, mb_outgoing *const *outbox, size_t n,
                        mb_done_fn done, void *ud, mb_err *err) {
  rmq *t = (rmq *)base;
  if (stale(t, d))
    return mb_err_set(err, MB_ELOST,
                      "the connection to RabbitMQ was lost while message %s was "
                      "handled; the broker delivers it again",
                      d->env.id);
  batch *b = rmq_batch_new(done, ud, ev_now(t->loop));
  if (b == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  b->acks = 1;
  b->tag = d->tag;
  b->session = t->session;
  if (n == 0) {
    rmq_batch_finish(t, b);
    return MB_OK;
  }
  err->status = MB_OK;
  return rmq_send_batch(t, outbox, n, b, err);
}

static void hold_fired(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  hold *h = (hold *)w;
  rmq *t = h->t;
  if (h->prev) h->prev->next = h->next;
  else t->holds = h->next;
  if (h->next) h->next->prev = h->prev;
  if (h->session == t->session && t->connected && !t->lost &&
      amqp_basic_nack(t->con.conn, CH_WORK, h->tag, 0, 1) != AMQP_STATUS_OK)
    rmq_mark_lost(t, "returning a delivery to its queue failed");
  free(h);
}

/* The message goes back to its queue (quorum queues count it in x-delivery-count) after
 * delay; until then it keeps its place in the prefetch window. The back-off is short and
 * bounded (pipeline.c); delayed retries through the broker are the recoverability issue's. */
static int rmq_release(mb_transport *base, mb_delivery *d, double delay, mb_err *err) {
  rmq *t = (rmq *)base;
  if (stale(t, d)) return MB_OK; /* the broker has it back already */
  if (delay <= 0) {
    if (amqp_basic_nack(t->con.conn, CH_WORK, d->tag, 0, 1) == AMQP_STATUS_OK) return MB_OK;
    rmq_mark_lost(t, "returning message %s to its queue failed", d->env.id);
    return mb_err_set(err, MB_EIO, "returning message %s to its queue failed", d->env.id);
  }
  hold *h = calloc(1, sizeof *h);
  if (h == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  h->t = t;
  h->tag = d->tag;
  h->session = t->session;
  h->next = t->holds;
  if (t->holds) t->holds->prev = h;
  t->holds = h;
  ev_timer_init(&h->w, hold_fired, delay, 0.);
  ev_timer_start(t->loop, &h->w);
  return MB_OK;
}

int rmq_start_consumer(rmq *t, mb_err *err) {
  amqp_connection_state_t c = t->con.conn;
  uint16_t prefetch = t->max_in_flight > 65535 ? 65535 : (uint16_t)t->max_in_flight;
  char what[320];
  snprintf(what, sizeof what, "cannot consume queue '%s'", t->queue);
  amqp_basic_qos(c, CH_WORK, 0, prefetch, 0);
  int rc = mb_amqp_reply_error(amqp_get_rpc_reply(c), what, NULL, err);
  amqp_basic_consume_ok_t *ok = NULL;
  if (rc == MB_OK) {
    ok = amqp_basic_consume(c, CH_WORK, amqp_cstring_bytes(t->queue), amqp_empty_bytes, 0, 0, 0,
                            amqp_empty_table);
    rc = mb_amqp_reply_error(amqp_get_rpc_reply(c), what, NULL, err);
  }
  if (rc == MB_OK && ok)
    snprintf(t->consumer_tag, sizeof t->consumer_tag, "%.*s", (int)ok->consumer_tag.len,
             (const char *)ok->consumer_tag.bytes);
  if (rc != MB_OK) rmq_mark_lost(t, "%s", err->msg);
  else rmq_feed_pending(t, &t->con);
  return rc;
}

/* Direct reply-to: a no-ack consumer of the pseudo-queue on the publishing channel (the
 * broker requires requests to be published on the channel that consumes their replies).
 * replies=queue: an exclusive auto-delete queue of this connection, named after the
 * instance, consumed without acks on a channel of the consume connection. */
int rmq_start_replies(rmq *t, mb_err *err) {
  int direct = !t->reply_queue_mode;
  amqp_link *l = direct ? &t->pub : &t->con;
  amqp_channel_t ch = direct ? CH_WORK : CH_REPLY;
  const char *queue = direct ? MB_AMQP_DIRECT_REPLY_TO : t->reply_address;
  int rc = MB_OK;
  if (!direct) {
    mb_amqp_rpc r = rmq_rpc_on(l, CH_REPLY);
    rc = mb_amqp_declare_reply_queue(&r, queue, err);
  }
  if (rc == MB_OK) {
    amqp_basic_consume(l->conn, ch, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    char what[400];
    snprintf(what, sizeof what, "cannot consume replies from '%s'", queue);
    rc = mb_amqp_reply_error(amqp_get_rpc_reply(l->conn), what, NULL, err);
  }
  if (rc != MB_OK) rmq_mark_lost(t, "%s", err->msg);
  else rmq_feed_pending(t, l);
  return rc;
}

static int rmq_listen_replies(mb_transport *base, mb_deliver_fn fn, void *ud, char *address,
                              size_t len, mb_err *err) {
  rmq *t = (rmq *)base;
  if (t->reply_fn == NULL) {
    if (!t->connected) return not_connected(t, err);
    t->reply_queue_mode = t->url.reply_queue;
    if (t->reply_queue_mode)
      snprintf(t->reply_address, sizeof t->reply_address, MB_REPLY_QUEUE_PREFIX "%.200s",
               t->instance);
    else snprintf(t->reply_address, sizeof t->reply_address, MB_AMQP_DIRECT_REPLY_TO);
    int rc = rmq_start_replies(t, err);
    if (rc != MB_OK) return rc;
  }
  t->reply_fn = fn;
  t->reply_ud = ud;
  snprintf(address, len, "%s", t->reply_address);
  return MB_OK;
}

static int rmq_consume(mb_transport *base, const char *queue, unsigned max_in_flight,
                       mb_deliver_fn fn, void *ud, mb_err *err) {
  rmq *t = (rmq *)base;
  if (!t->connected) return not_connected(t, err);
  free(t->queue);
  if ((t->queue = strdup(queue)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  t->max_in_flight = max_in_flight;
  t->deliver = fn;
  t->deliver_ud = ud;
  t->consuming = 1;
  int rc = rmq_start_consumer(t, err);
  if (rc != MB_OK) t->consuming = 0;
  return rc;
}

static void rmq_stop_consuming(mb_transport *base) {
  rmq *t = (rmq *)base;
  t->consuming = 0;
  if (!t->connected || t->lost || t->consumer_tag[0] == '\0') return;
  amqp_basic_cancel(t->con.conn, CH_WORK, amqp_cstring_bytes(t->consumer_tag));
  mb_err err;
  if (mb_amqp_reply_error(amqp_get_rpc_reply(t->con.conn), "cannot stop consuming", NULL, &err))
    rmq_mark_lost(t, "%s", err.msg);
  t->consumer_tag[0] = '\0';
  rmq_feed_pending(t, &t->con);
}

static int rmq_owner_of(mb_transport *base, const char *type, char *out, size_t len,
                        mb_err *err) {
  rmq *t = (rmq *)base;
  if (!t->connected) return not_connected(t, err);
  mb_amqp_rpc r = rmq_rpc_on(&t->pub, CH_RPC);
  int rc = mb_amqp_event_owner(&r, type, out, len, err);
  rmq_after_rpc(t, &t->pub, &r, "looking up an event's owner");
  return rc;
}

/* Ready messages only: the broker does not say how many are delayed or unacknowledged. */
static int rmq_depth(mb_transport *base, const char *queue, long *ready, long *later,
                     mb_err *err) {
  rmq *t = (rmq *)base;
  if (!t->connected) return not_connected(t, err);
  mb_amqp_rpc r = rmq_rpc_on(&t->pub, CH_RPC);
  int rc = mb_amqp_queue_depth(&r, queue, ready, err);
  rmq_after_rpc(t, &t->pub, &r, "counting messages");
  if (later) *later = 0;
  if (rc == MB_ENOTFOUND) *ready = 0;
  return rc == MB_ENOTFOUND ? MB_OK : rc;
}

/* A named queue through a passive queue.declare (ready messages and consumers; the broker
 * tells neither the delayed ones, which wait in moonbus.delay.*, nor the unacknowledged
 * ones). Without the management plugin RabbitMQ cannot list its queues: name them. */
static int rmq_queues(mb_transport *base, const char *name, mb_queue_fn fn, void *ud,
                      mb_err *err) {
  rmq *t = (rmq *)base;
  if (name == NULL)
    return mb_err_set(err, MB_EINVAL,
                      "RabbitMQ cannot list its queues to a client (that needs the management "
                      "plugin): name them");
  if (!t->connected) return not_connected(t, err);
  mb_queue_info q = {name, 0, -1, -1, 0};
  mb_amqp_rpc r = rmq_rpc_on(&t->pub, CH_RPC);
  int rc = mb_amqp_queue_counts(&r, name, &q.ready, &q.consumers, err);
  rmq_after_rpc(t, &t->pub, &r, "counting messages");
  if (rc == MB_OK) fn(ud, &q);
  return rc;
}

/* One message of a basic.get on CH_BROWSE as a delivery (NULL when the queue is empty);
 * its delivery tag on that channel is in d->tag. */
static int browse_one(rmq *t, const char *queue, mb_delivery **out, mb_err *err) {
  amqp_connection_state_t c = t->pub.conn;
  *out = NULL;
  amqp_rpc_reply_t reply = amqp_basic_get(c, CH_BROWSE, amqp_cstring_bytes(queue), 0);
  int rc = mb_amqp_reply_error(reply, "cannot read a message to browse", NULL, err);
  if (rc != MB_OK || reply.reply.id != AMQP_BASIC_GET_OK_METHOD) return rc;
  const amqp_basic_get_ok_t *ok = reply.reply.decoded;
  int redelivered = ok->redelivered;
  uint64_t tag = ok->delivery_tag;
  amqp_message_t msg;
  reply = amqp_read_message(c, CH_BROWSE, &msg, 0);
  if ((rc = mb_amqp_reply_error(reply, "cannot read a message to browse", NULL, err)) != MB_OK)
    return rc;
  mb_delivery *d = calloc(1, sizeof *d);
  rc = d && (d->queue = strdup(queue)) ? MB_OK : MB_ENOMEM;
  if (d) mb_envelope_init(&d->env);
  if (rc == MB_OK) rc = mb_amqp_delivery_from_props(d, &msg.properties, redelivered);
  if (d) d->tag = tag;
  if (rc == MB_OK) rc = mb_envelope_set_body(&d->env, msg.body.bytes, msg.body.len);
  amqp_destroy_message(&msg);
  if (rc != MB_OK) {
    mb_delivery_free(d);
    return mb_err_set(err, rc, "out of memory");
  }
  *out = d;
  return MB_OK;
}

/* After fn ran (it may have sent messages and run the loop): still the session the walk
 * began on, and its channel still open? */
static int walk_goes_on(rmq *t, unsigned session, const char *queue, mb_err *err) {
  if (t->connected && !t->lost && t->session == session) return MB_OK;
  return mb_err_set(err, MB_EIO, "the connection to RabbitMQ was lost while reading queue '%s'",
                    queue);
}

/* Shows fn every message of queue that was ready when the walk began (basic.get on a
 * channel of its own, without acknowledging, so that none comes twice); a message fn
 * takes is acknowledged (it leaves the queue). Closing the channel puts every other
 * message back. MB_ENOTFOUND when the queue does not exist. */
static int walk_queue(rmq *t, const char *queue, mb_browse_fn fn, void *ud, mb_err *err) {
  long ready = 0;
  int opened = 0, what = MB_BROWSE_NEXT;
  if (!t->connected) return not_connected(t, err);
  unsigned session = t->session;
  mb_amqp_rpc r = rmq_rpc_on(&t->pub, CH_RPC);
  int rc = mb_amqp_queue_depth(&r, queue, &ready, err);
  if (rc == MB_OK) {
    amqp_channel_open(t->pub.conn, CH_BROWSE);
    rc = mb_amqp_reply_error(amqp_get_rpc_reply(t->pub.conn), "cannot open a channel to browse",
                             NULL, err);
    opened = rc == MB_OK;
  }
  for (long seen = 0; rc == MB_OK && seen < ready && !(what & MB_BROWSE_STOP); seen++) {
    mb_delivery *d;
    rc = browse_one(t, queue, &d, err);
    if (rc != MB_OK || d == NULL) break;
    uint64_t tag = d->tag;
    what = fn(ud, d);
    rc = walk_goes_on(t, session, queue, err);
    if (rc != MB_OK) return rc; /* the session is gone, and this walk's channel with it */
    if ((what & MB_BROWSE_TAKE) &&
        amqp_basic_ack(t->pub.conn, CH_BROWSE, tag, 0) != AMQP_STATUS_OK)
      rc = mb_err_set(err, MB_EIO, "cannot remove a message from queue '%s'", queue);
  }
  if (opened) amqp_channel_close(t->pub.conn, CH_BROWSE, AMQP_REPLY_SUCCESS);
  if (rc != MB_OK && rc != MB_ENOTFOUND) r.dead = 1;
  rmq_after_rpc(t, &t->pub, &r, "reading a queue");
  return rc;
}

static int rmq_browse(mb_transport *base, const char *queue, mb_browse_fn fn, void *ud,
                      mb_err *err) {
  int rc = walk_queue((rmq *)base, queue, fn, ud, err);
  return rc == MB_ENOTFOUND ? MB_OK : rc;
}

typedef struct remove_state {
  const char *id;
  int found;
} remove_state;

static int is_the_one(void *ud, mb_delivery *d) {
  remove_state *s = ud;
  s->found = strcmp(d->env.id, s->id) == 0;
  mb_delivery_free(d);
  return s->found ? MB_BROWSE_TAKE | MB_BROWSE_STOP : MB_BROWSE_NEXT;
}

/* Walks the queue until the message (the broker cannot fetch by id): fine for an error
 * queue. */
static int rmq_remove(mb_transport *base, const char *queue, const char *id, mb_err *err) {
  remove_state s = {id, 0};
  int rc = walk_queue((rmq *)base, queue, is_the_one, &s, err);
  if (rc == MB_OK && !s.found)
    rc = mb_err_set(err, MB_ENOTFOUND, "queue '%s' holds no message %s", queue, id);
  return rc;
}

static void rmq_close(mb_transport *base);

static int rmq_open(mb_transport **out, struct ev_loop *loop, const char *url,
                    const char *instance, mb_err *err) {
  rmq *t = calloc(1, sizeof *t);
  if (t == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  int rc = mb_amqp_url_parse(url, &t->url, err);
  if (rc != MB_OK) {
    free(t);
    return rc;
  }
  t->base.ops = &mb_rabbitmq_transport;
  t->loop = loop;
  snprintf(t->instance, sizeof t->instance, "%s", instance ? instance : "moonbus");
  mb_url_redact(url, t->shown, sizeof t->shown);
  t->pub.t = t->con.t = t;
  ev_timer_init(&t->heartbeat, rmq_on_heartbeat, 1., 1.);
  ev_timer_init(&t->teardown, rmq_on_teardown, 0., 0.);
  ev_timer_init(&t->reconnect, rmq_on_reconnect, 1., 0.);
  t->heartbeat.data = t->teardown.data = t->reconnect.data = t;
  ev_async_init(&t->dialed, rmq_on_dialed);
  t->dialed.data = t;
  rc = rmq_session_open(t, err);
  if (rc != MB_OK) {
    rmq_close(&t->base);
    return rc;
  }
  *out = &t->base;
  return MB_OK;
}

/* Unacknowledged deliveries go back to their queues when the consume connection closes. */
static void rmq_close(mb_transport *base) {
  rmq *t = (rmq *)base;
  if (t == NULL) return;
  ev_timer_stop(t->loop, &t->teardown);
  ev_timer_stop(t->loop, &t->reconnect);
  if (t->dialing) { /* let the dialer finish (bounded by connect_timeout), then drop it */
    pthread_join(t->dialer, NULL);
    ev_async_stop(t->loop, &t->dialed);
    if (t->dial.pub) amqp_destroy_connection(t->dial.pub);
    if (t->dial.con) amqp_destroy_connection(t->dial.con);
  }
  rmq_session_close(t, t->connected && !t->lost);
  rmq_free_pending(t);
  rmq_set_clear(&t->subscriptions);
  rmq_set_clear(&t->owned);
  rmq_set_clear(&t->bound);
  free(t->endpoint);
  free(t->error_queue);
  free(t->audit_queue);
  free(t->queue);
  mb_amqp_url_free(&t->url);
  free(t);
}

static unsigned long rmq_reconnects(const mb_transport *base) {
  return ((const rmq *)base)->reconnects;
}

const mb_transport_ops mb_rabbitmq_transport = {
    .open = rmq_open,
    .declare = rmq_declare,
    .dispatch = rmq_dispatch,
    .consume = rmq_consume,
    .stop_consuming = rmq_stop_consuming,
    .complete = rmq_complete,
    .release = rmq_release,
    .owner_of = rmq_owner_of,
    .depth = rmq_depth,
    .queues = rmq_queues,
    .browse = rmq_browse,
    .remove = rmq_remove,
    .listen_replies = rmq_listen_replies,
    .mark_check = NULL,      /* no database: the pipeline keeps order_by marks in a local */
    .complete_marked = NULL, /* store (mark.h), written just before the ack */
    .reconnects = rmq_reconnects,
    .close = rmq_close,
};
