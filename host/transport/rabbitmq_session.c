/* rabbitmq_session.c — the two connections of the RabbitMQ transport (DESIGN §5): each
 * socket under an ev_io, read with amqp_simple_wait_frame_noblock until rabbitmq-c holds no
 * more frames; heartbeats on an ev_timer; deliveries and returned messages assembled from
 * their frames; connection.blocked noted; any failure tearing the session down and a
 * reconnect with back-off and jitter (starting over only once a session stayed up
 * STABLE_AFTER seconds), dialled on a thread of its own.
 * Never: frees a connection while its frames are being read (teardown is deferred to the
 * loop), blocks the loop on a reconnect, acks a delivery of an older session, or allocates
 * a body before checking the size the broker announced against max_body. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ids.h"
#include "log.h"
#include "transport/rabbitmq_internal.h"
#include "transport/rabbitmq_wire.h"

static void drain(amqp_link *l);

static void delivery_ready(rmq *t, amqp_link *l) {
  mb_delivery *d = l->d;
  l->d = NULL;
  if (l->skip) { /* not read: the delivery goes on with an empty body and its problem */
    d->env.body = l->body ? l->body : strdup("");
    d->env.body_len = 0;
  } else {
    d->env.body = l->body;
    d->env.body_len = (size_t)l->body_size;
  }
  l->body = NULL;
  if (d->env.body == NULL) { /* out of memory for "": the broker gives it back */
    mb_delivery_free(d);
    rmq_mark_lost(t, "out of memory for a delivery on the %s connection", l->role);
    return;
  }
  if (l->reply) { /* taken without an ack: hand it over, or drop it */
    l->reply = 0;
    if (t->reply_fn) t->reply_fn(t->reply_ud, d);
    else mb_delivery_free(d);
    return;
  }
  if (!t->consuming) {
    amqp_basic_nack(l->conn, CH_WORK, d->tag, 0, 1);
    mb_delivery_free(d);
    return;
  }
  t->deliver(t->deliver_ud, d);
}

static void content_done(rmq *t, amqp_link *l) {
  if (l->content == AMQP_BASIC_DELIVER_METHOD && l->d) delivery_ready(t, l);
  free(l->body);
  l->body = NULL;
  l->content = 0;
  l->reply = 0;
  l->skip = 0;
}

static int new_delivery(rmq *t, amqp_link *l, const amqp_basic_properties_t *p) {
  mb_delivery *d = calloc(1, sizeof *d);
  const char *queue = l->reply ? t->reply_address : t->queue;
  if (d == NULL || (d->queue = strdup(queue ? queue : "?")) == NULL) {
    free(d);
    return MB_ENOMEM;
  }
  mb_envelope_init(&d->env);
  d->transport_data = (void *)(uintptr_t)t->session; /* a number, not owned memory */
  d->tag = l->tag;
  l->d = d;
  return mb_amqp_delivery_from_props(d, p, l->redelivered);
}

/* A body over the limit is never held: its frames are counted and dropped, and the
 * delivery says why (the pipeline parks it). The limit is checked on the size the content
 * header announces, before anything is allocated for the body. */
static int refuse_body(amqp_link *l, uint64_t limit) {
  mb_delivery *d = l->d;
  char why[200];
  snprintf(why, sizeof why,
           "body is %llu bytes, over the limit of %llu bytes (max_body): it "
           "was not read, and the parked copy has no body",
           (unsigned long long)l->body_size, (unsigned long long)limit);
  if (d == NULL || d->problem) return MB_OK; /* the first problem is the one told */
  return (d->problem = strdup(why)) ? MB_OK : MB_ENOMEM;
}

static uint64_t body_limit(const rmq *t) {
  return t->max_body ? (uint64_t)t->max_body : MB_AMQP_BODY_MAX;
}

static void on_header(rmq *t, amqp_link *l, const amqp_frame_t *f) {
  const amqp_basic_properties_t *p = f->payload.properties.decoded;
  int returned = l->content == AMQP_BASIC_RETURN_METHOD;
  l->body_size = f->payload.properties.body_size;
  l->body_have = 0;
  l->skip = returned || l->body_size > body_limit(t); /* a return needs its id only */
  l->body = l->skip ? NULL : malloc((size_t)l->body_size + 1);
  int rc = l->skip || l->body ? MB_OK : MB_ENOMEM;
  if (l->body) l->body[l->body_size] = '\0';
  if (rc == MB_OK && l->content == AMQP_BASIC_DELIVER_METHOD) rc = new_delivery(t, l, p);
  if (rc == MB_OK && !returned && l->skip) rc = refuse_body(l, body_limit(t));
  if (rc == MB_OK && returned && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
    char id[MB_ID_LEN + 1];
    snprintf(id, sizeof id, "%.*s", (int)p->message_id.len, (const char *)p->message_id.bytes);
    rmq_returned(t, id);
  }
  if (rc != MB_OK) {
    rmq_mark_lost(t, "out of memory for a %llu-byte message", (unsigned long long)l->body_size);
    return;
  }
  if (l->body_size == 0) content_done(t, l);
}

static void on_body(rmq *t, amqp_link *l, const amqp_frame_t *f) {
  amqp_bytes_t b = f->payload.body_fragment;
  if (l->content == 0 || (l->body == NULL && !l->skip) || b.len > l->body_size - l->body_have) {
    rmq_mark_lost(t, "a body frame the broker did not announce on the %s connection", l->role);
    return;
  }
  if (!l->skip) memcpy(l->body + l->body_have, b.bytes, b.len);
  l->body_have += b.len;
  /* the frame is copied (or dropped): rabbitmq-c may reuse its memory now, so that a body
   * never sits in its buffers twice */
  amqp_maybe_release_buffers_on_channel(l->conn, f->channel);
  if (l->body_have == l->body_size) content_done(t, l);
}

static void on_connection_method(rmq *t, amqp_link *l, const amqp_method_t *m) {
  if (m->id == AMQP_CONNECTION_BLOCKED_METHOD) {
    const amqp_connection_blocked_t *b = m->decoded;
    t->blocked = 1;
    mb_log(MB_WARN, t->endpoint, NULL, NULL, "RabbitMQ blocks publishing (%.*s): sends wait",
           (int)b->reason.len, (const char *)b->reason.bytes);
  } else if (m->id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
    t->blocked = 0;
    mb_log(MB_INFO, t->endpoint, NULL, NULL, "RabbitMQ accepts publishing again");
    rmq_pump(t);
  } else if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
    const amqp_connection_close_t *c = m->decoded;
    rmq_mark_lost(t, "the broker closed the %s connection: %u %.*s", l->role, c->reply_code,
                  (int)c->reply_text.len, (const char *)c->reply_text.bytes);
  }
}

static void on_method(rmq *t, amqp_link *l, const amqp_frame_t *f) {
  const amqp_method_t *m = &f->payload.method;
  switch (m->id) {
  case AMQP_BASIC_ACK_METHOD: {
    const amqp_basic_ack_t *a = m->decoded;
    rmq_confirmed(t, a->delivery_tag, a->multiple, 1);
    rmq_pump(t);
    break;
  }
  case AMQP_BASIC_NACK_METHOD: {
    const amqp_basic_nack_t *n = m->decoded;
    rmq_confirmed(t, n->delivery_tag, n->multiple, 0);
    rmq_pump(t);
    break;
  }
  case AMQP_BASIC_DELIVER_METHOD: {
    const amqp_basic_deliver_t *d = m->decoded;
    l->content = AMQP_BASIC_DELIVER_METHOD;
    l->reply = l == &t->pub || f->channel == CH_REPLY;
    l->tag = d->delivery_tag;
    l->redelivered = d->redelivered;
    break;
  }
  case AMQP_BASIC_RETURN_METHOD: {
    const amqp_basic_return_t *r = m->decoded;
    l->content = AMQP_BASIC_RETURN_METHOD;
    snprintf(l->returned_key, sizeof l->returned_key, "%.*s", (int)r->routing_key.len,
             (const char *)r->routing_key.bytes);
    snprintf(l->returned_text, sizeof l->returned_text, "%.*s", (int)r->reply_text.len,
             (const char *)r->reply_text.bytes);
    break;
  }
  case AMQP_BASIC_CANCEL_METHOD:
    rmq_mark_lost(t,
                  "the broker cancelled the consumer of queue '%s' (deleted, or its leader "
                  "moved)",
                  t->queue ? t->queue : "?");
    break;
  case AMQP_CHANNEL_CLOSE_METHOD: {
    const amqp_channel_close_t *c = m->decoded;
    rmq_mark_lost(t, "the broker closed channel %u of the %s connection: %u %.*s", f->channel,
                  l->role, c->reply_code, (int)c->reply_text.len,
                  (const char *)c->reply_text.bytes);
    break;
  }
  default: on_connection_method(t, l, m);
  }
}

static void on_frame(rmq *t, amqp_link *l, const amqp_frame_t *f) {
  if (f->frame_type == AMQP_FRAME_METHOD) on_method(t, l, f);
  else if (f->frame_type == AMQP_FRAME_HEADER && l->content) on_header(t, l, f);
  else if (f->frame_type == AMQP_FRAME_BODY) on_body(t, l, f);
}

/* Reads every frame rabbitmq-c can give without blocking. Not re-entered: a callback
 * that makes an RPC leaves its stray frames queued for the loop below. */
static void drain(amqp_link *l) {
  rmq *t = l->t;
  if (l->draining) {
    l->again = 1;
    return;
  }
  l->draining = 1;
  do {
    l->again = 0;
    while (!t->lost && l->conn) {
      amqp_frame_t f;
      struct timeval zero = {0, 0};
      int rc = amqp_simple_wait_frame_noblock(l->conn, &f, &zero);
      if (rc == AMQP_STATUS_TIMEOUT) break;
      if (rc != AMQP_STATUS_OK) {
        rmq_mark_lost(t, "reading from the %s connection: %s", l->role, amqp_error_string2(rc));
        break;
      }
      on_frame(t, l, &f);
    }
  } while (l->again && !t->lost);
  if (!t->lost && l->conn && l->content == 0) amqp_maybe_release_buffers(l->conn);
  l->draining = 0;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  amqp_link *l = w->data;
  l->last_read = ev_now(loop);
  drain(l);
}

/* Sends heartbeats that are due (rabbitmq-c sends them while waiting for a frame) and
 * declares a connection dead that has been silent for two intervals. */
void rmq_on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  rmq *t = w->data;
  amqp_link *links[] = {&t->pub, &t->con};
  for (int i = 0; i < 2 && t->connected && !t->lost; i++) {
    if (ev_now(loop) - links[i]->last_read > 2.0 * t->url.heartbeat + 1)
      rmq_mark_lost(t, "no heartbeat from the broker for %d s on the %s connection",
                    2 * t->url.heartbeat, links[i]->role);
    else drain(links[i]);
  }
}

void rmq_mark_lost(rmq *t, const char *fmt, ...) {
  if (t->lost || !t->connected) return;
  t->lost = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->lost_reason, sizeof t->lost_reason, fmt, ap);
  va_end(ap);
  ev_timer_set(&t->teardown, 0., 0.);
  ev_timer_start(t->loop, &t->teardown);
}

static int open_channel(amqp_connection_state_t c, const char *role, amqp_channel_t ch,
                        mb_err *err) {
  amqp_channel_open(c, ch);
  char what[64];
  snprintf(what, sizeof what, "cannot open channel %u on the %s connection", ch, role);
  return mb_amqp_reply_error(amqp_get_rpc_reply(c), what, NULL, err);
}

/* The broker does not split a content header: a delivery whose headers fit frame_max when
 * it was published can exceed it once the broker adds x-delivery-count or x-death, and
 * rabbitmq-c refuses such a frame ("invalid AMQP data"), which would cost the connection
 * on every redelivery. The consume connection, which never publishes content, reads
 * frames up to MB_AMQP_FRAME_MAX_IN, so that such a delivery is read and parked. */
static int accept_large_frames(amqp_connection_state_t c, mb_err *err) {
  if (amqp_tune_connection(c, amqp_get_channel_max(c), MB_AMQP_FRAME_MAX_IN,
                           amqp_get_heartbeat(c)) == AMQP_STATUS_OK)
    return MB_OK;
  return mb_err_set(err, MB_ENOMEM, "out of memory for the consume connection's frames");
}

/* One logged-in connection with its channels open, or NULL and err. */
static amqp_connection_state_t open_conn(const dial *d, size_t node, const char *role,
                                         mb_err *err) {
  char name[200];
  amqp_connection_state_t c;
  snprintf(name, sizeof name, "moonbus %s (%s)", d->instance, role);
  int rc = mb_amqp_connect(d->url, node, name, &c, err);
  if (rc == MB_OK && strcmp(role, "consume") == 0) rc = accept_large_frames(c, err);
  if (rc == MB_OK) rc = open_channel(c, role, CH_RPC, err);
  if (rc == MB_OK) rc = open_channel(c, role, CH_WORK, err);
  if (rc == MB_OK && strcmp(role, "consume") == 0) rc = open_channel(c, role, CH_REPLY, err);
  if (rc == MB_OK && strcmp(role, "publish") == 0) {
    amqp_confirm_select(c, CH_WORK);
    rc = mb_amqp_reply_error(amqp_get_rpc_reply(c), "cannot turn on publisher confirms", NULL,
                             err);
  }
  if (rc == MB_OK) return c;
  if (c) amqp_destroy_connection(c);
  return NULL;
}

/* The blocking half of a session: both connections, tried node by node. It touches no
 * loop and no transport state, so that a reconnect can run it on a thread of its own. */
static void dial_run(dial *d) {
  d->rc = MB_EIO;
  for (size_t i = 0; i < d->url->n_nodes && d->rc != MB_OK; i++) {
    size_t node = (d->first_node + i) % d->url->n_nodes;
    d->pub = open_conn(d, node, "publish", &d->err);
    d->con = d->pub ? open_conn(d, node, "consume", &d->err) : NULL;
    if (d->con) {
      d->node = node;
      d->rc = MB_OK;
    } else if (d->pub) {
      amqp_destroy_connection(d->pub);
      d->pub = NULL;
    }
  }
  if (d->rc != MB_OK && d->err.status != MB_OK) d->rc = d->err.status; /* the last node's */
}

static void link_install(rmq *t, amqp_link *l, amqp_connection_state_t c, const char *role) {
  l->conn = c;
  l->role = role;
  ev_io_init(&l->io, on_readable, amqp_get_sockfd(c), EV_READ);
  l->io.data = l;
  ev_io_start(t->loop, &l->io);
  l->last_read = ev_now(t->loop);
}

static void link_close(rmq *t, amqp_link *l, int graceful) {
  if (l->conn == NULL) return;
  ev_io_stop(t->loop, &l->io);
  if (graceful) mb_amqp_disconnect(l->conn);
  else amqp_destroy_connection(l->conn);
  l->conn = NULL;
  free(l->body);
  l->body = NULL;
  mb_delivery_free(l->d);
  l->d = NULL;
  l->content = 0;
}

static void holds_clear(rmq *t) {
  while (t->holds) {
    hold *h = t->holds;
    t->holds = h->next;
    ev_timer_stop(t->loop, &h->w);
    free(h);
  }
}

void rmq_session_close(rmq *t, int graceful) {
  link_close(t, &t->con, graceful);
  link_close(t, &t->pub, graceful);
  ev_timer_stop(t->loop, &t->heartbeat);
  holds_clear(t);
  t->connected = t->blocked = 0;
  t->consumer_tag[0] = '\0';
  rmq_set_clear(&t->known_queues);
  rmq_set_clear(&t->known_events);
  rmq_set_clear(&t->delayed_targets);
  t->delay_exchanges = 0;
  t->delay_levels = 0;
}

/* A new session on the connections d dialed. */
static void session_install(rmq *t, dial *d) {
  link_install(t, &t->pub, d->pub, "publish");
  link_install(t, &t->con, d->con, "consume");
  d->pub = d->con = NULL;
  t->node = d->node;
  t->next_seq = 0;
  t->session++;
  t->connected = 1;
  t->lost = 0;
  t->up_since = ev_now(t->loop);
  if (t->url.heartbeat > 0) {
    ev_timer_set(&t->heartbeat, t->url.heartbeat / 2.0, t->url.heartbeat / 2.0);
    ev_timer_start(t->loop, &t->heartbeat);
  }
}

/* Opens a session, waiting for it (the first one: a host must know at once). */
int rmq_session_open(rmq *t, mb_err *err) {
  dial d = {.url = &t->url, .instance = t->instance, .first_node = t->node};
  dial_run(&d);
  if (d.rc != MB_OK) {
    *err = d.err;
    return d.rc;
  }
  session_install(t, &d);
  return MB_OK;
}

static void schedule_reconnect(rmq *t) {
  unsigned r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = 0;
  t->backoff = t->backoff < BACKOFF_MIN ? BACKOFF_MIN : t->backoff * 2;
  if (t->backoff > BACKOFF_MAX) t->backoff = BACKOFF_MAX;
  double delay = t->backoff * (0.5 + (r % 1000) / 1000.0); /* jitter: 50-150 % */
  ev_timer_stop(t->loop, &t->reconnect);
  ev_timer_set(&t->reconnect, delay, 0.);
  ev_timer_start(t->loop, &t->reconnect);
}

/* The back-off starts over only after a session that stayed up STABLE_AFTER seconds: one
 * that is lost at once (a message that breaks it, a broker that drops every connection)
 * keeps backing off instead of reconnecting in a tight loop. */
static void settle_backoff(rmq *t) {
  if (t->up_since > 0 && ev_now(t->loop) - t->up_since >= STABLE_AFTER) t->backoff = 0;
  t->up_since = 0;
}

void rmq_on_teardown(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  rmq *t = w->data;
  settle_backoff(t);
  mb_log(MB_WARN, t->endpoint, NULL, NULL, "lost RabbitMQ at %s: %s; reconnecting", t->shown,
         t->lost_reason);
  rmq_session_close(t, 0);
  t->lost = 0;
  rmq_requeue_or_fail(t);
  schedule_reconnect(t);
}

static void *dial_thread(void *arg) {
  rmq *t = arg;
  dial_run(&t->dial);
  ev_async_send(t->loop, &t->dialed);
  return NULL;
}

/* Reconnecting dials on a thread, so that a broker that accepts TCP but never answers
 * (stalled, overloaded) cannot freeze the loop for the connect and login timeouts. */
void rmq_on_reconnect(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  rmq *t = w->data;
  rmq_fail_expired(t);
  if (t->dialing) return;
  t->dial = (dial){.url = &t->url, .instance = t->instance, .first_node = t->node};
  ev_async_start(t->loop, &t->dialed);
  t->dialing = pthread_create(&t->dialer, NULL, dial_thread, t) == 0;
  if (!t->dialing) {
    ev_async_stop(t->loop, &t->dialed);
    mb_log(MB_WARN, t->endpoint, NULL, NULL, "cannot start a thread to reconnect; trying again");
    schedule_reconnect(t);
  }
}

static void reconnect_failed(rmq *t, const char *why) {
  mb_log(MB_WARN, t->endpoint, NULL, NULL, "reconnecting to RabbitMQ failed: %s", why);
  ev_timer_stop(t->loop, &t->teardown); /* a failed step may have asked for one */
  t->up_since = 0;
  t->lost = 0;
  rmq_session_close(t, 0);
  schedule_reconnect(t);
}

void rmq_on_dialed(struct ev_loop *loop, ev_async *w, int revents) {
  (void)revents;
  rmq *t = w->data;
  ev_async_stop(loop, w);
  pthread_join(t->dialer, NULL);
  t->dialing = 0;
  if (t->dial.rc != MB_OK) {
    reconnect_failed(t, t->dial.err.msg);
    return;
  }
  session_install(t, &t->dial);
  mb_err err;
  int rc = t->declared ? rmq_declare_all(t, &err) : MB_OK;
  if (rc == MB_OK && t->reply_fn) rc = rmq_start_replies(t, &err);
  if (rc == MB_OK && t->consuming) rc = rmq_start_consumer(t, &err);
  if (rc != MB_OK) {
    reconnect_failed(t, err.msg);
    return;
  }
  t->reconnects++;
  t->lost_reason[0] = '\0';
  mb_log(MB_INFO, t->endpoint, NULL, NULL, "reconnected to RabbitMQ at %s:%d",
         t->url.nodes[t->node].host, t->url.nodes[t->node].port);
  rmq_pump(t);
}
