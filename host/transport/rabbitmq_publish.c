/* rabbitmq_publish.c — publishing on the RabbitMQ transport: outgoing batches (a handler's
 * outbox, or a send outside a handler), publisher confirms with a bounded window, commands
 * with `mandatory` whose basic.return fails their batch, events to their fanout exchange,
 * delayed messages into the broker's delay levels, and what a lost session does to each.
 * Never: calls amqp_basic_publish on a blocked connection, one past its heartbeat deadline,
 * or beyond the window; acks the incoming message before its batch is confirmed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "transport/rabbitmq_internal.h"
#include "transport/rabbitmq_wire.h"

static int ensure_route(rmq *t, const wire_msg *m, mb_err *err);

static void list_push(msg_list *l, wire_msg *m) {
  m->next = NULL;
  if (l->tail) l->tail->next = m;
  else l->head = m;
  l->tail = m;
  l->n++;
}

static wire_msg *list_pop(msg_list *l) {
  wire_msg *m = l->head;
  if (m == NULL) return NULL;
  l->head = m->next;
  if (l->head == NULL) l->tail = NULL;
  l->n--;
  m->next = NULL;
  return m;
}

static void msg_free(wire_msg *m) {
  mb_envelope_free(&m->env);
  free(m);
}

static void remove_batch_msgs(msg_list *l, batch *b) {
  wire_msg **pp = &l->head, *prev = NULL;
  while (*pp) {
    wire_msg *m = *pp;
    if (m->b == b) {
      *pp = m->next;
      l->n--;
      msg_free(m);
    } else {
      prev = m;
      pp = &m->next;
    }
  }
  l->tail = prev;
}

void rmq_batch_finish(rmq *t, batch *b) {
  if (b->status == MB_OK && b->acks) {
    if (b->session != t->session || !t->connected) b->status = MB_ELOST;
    else if (amqp_basic_ack(t->con.conn, CH_WORK, b->tag, 0) != AMQP_STATUS_OK) {
      b->status = MB_ELOST;
      rmq_mark_lost(t, "acknowledging a delivery failed");
    }
    if (b->status == MB_ELOST)
      snprintf(b->error, sizeof b->error,
               "the connection to RabbitMQ was lost before the "
               "message was acknowledged; the broker delivers it again");
  }
  b->done(b->ud, b->status, b->status == MB_OK ? NULL : b->error);
  free(b);
}

/* Fails b at once: its messages are dropped from both lists. */
static void batch_fail(rmq *t, batch *b, int status, const char *error) {
  remove_batch_msgs(&t->waiting, b);
  remove_batch_msgs(&t->unconfirmed, b);
  b->status = status;
  snprintf(b->error, sizeof b->error, "%s", error);
  b->acks = 0;
  rmq_batch_finish(t, b);
}

static void msg_settled(rmq *t, wire_msg *m, int status, const char *error) {
  batch *b = m->b;
  if (status != MB_OK && b->status == MB_OK) {
    b->status = status;
    snprintf(b->error, sizeof b->error, "%s", error);
  }
  msg_free(m);
  if (--b->left == 0) rmq_batch_finish(t, b);
}

static int can_publish(rmq *t) {
  if (!t->connected || t->lost || t->blocked || t->unconfirmed.n >= WINDOW) return 0;
  double hb = t->url.heartbeat;
  if (hb > 0 && ev_now(t->loop) - t->pub.last_read > 2 * hb + 1) {
    rmq_mark_lost(t, "no heartbeat from the broker for %.0f s on the publish connection", 2 * hb);
    return 0;
  }
  return 1;
}

static int publish_one(rmq *t, wire_msg *m) {
  mb_amqp_props props;
  mb_err err;
  if ((m->event || m->delay > 0) && ensure_route(t, m, &err) != MB_OK) {
    if (t->lost) {
      list_push(&t->unconfirmed, m); /* teardown gives it back or fails its batch */
      return MB_EIO;
    }
    msg_settled(t, m, err.status, err.msg);
    return MB_OK;
  }
  if (mb_amqp_props_build(&props, &m->env, m->expires_ms, &err) != MB_OK) {
    msg_settled(t, m, err.status, err.msg);
    return MB_OK;
  }
  amqp_bytes_t body = {m->env.body_len, m->env.body};
  int rc = amqp_basic_publish(t->pub.conn, CH_WORK, amqp_cstring_bytes(m->exchange),
                              amqp_cstring_bytes(m->key), m->mandatory, 0, &props.p, body);
  mb_amqp_props_free(&props);
  if (rc != AMQP_STATUS_OK) {
    list_push(&t->unconfirmed, m); /* teardown gives it back or fails its batch */
    rmq_mark_lost(t, "publishing message %s failed: %s", m->env.id, amqp_error_string2(rc));
    return rc;
  }
  m->seq = ++t->next_seq;
  list_push(&t->unconfirmed, m);
  return MB_OK;
}

void rmq_pump(rmq *t) {
  while (t->waiting.head && can_publish(t))
    if (publish_one(t, list_pop(&t->waiting)) != MB_OK) return;
  rmq_feed_pending(t, &t->pub); /* a publish may have read confirms into rabbitmq-c */
}

void rmq_confirmed(rmq *t, uint64_t tag, int multiple, int ok) {
  wire_msg **pp = &t->unconfirmed.head, *prev = NULL;
  while (*pp) {
    wire_msg *m = *pp;
    if (m->seq == tag || (multiple && m->seq < tag)) {
      *pp = m->next;
      t->unconfirmed.n--;
      char why[MB_ERRLEN];
      snprintf(why, sizeof why, "RabbitMQ refused message %s of type %s (basic.nack)", m->env.id,
               m->env.type ? m->env.type : "(none)");
      msg_settled(t, m, ok ? MB_OK : MB_EREFUSED, why);
      if (!multiple) break;
    } else {
      prev = m;
      pp = &m->next;
    }
  }
  t->unconfirmed.tail = prev;
  for (wire_msg *m = t->unconfirmed.head; m; m = m->next) t->unconfirmed.tail = m;
}

static void unroutable_text(char *out, size_t len, const char *queue, const mb_envelope *env) {
  snprintf(out, len,
           "no queue named '%.120s' (message %s of type %.80s): start the %.120s "
           "endpoint once so that its queue exists, or fix the route",
           queue, env->id, env->type ? env->type : "(none)", queue);
}

/* A mandatory message no queue took: its batch fails when the broker confirms it. */
void rmq_returned(rmq *t, const char *id) {
  for (wire_msg *m = t->unconfirmed.head; m; m = m->next) {
    if (strcmp(m->env.id, id) != 0 || m->b->status != MB_OK) continue;
    if (m->to_requester) {
      mb_log_msg(MB_WARN, t->endpoint, mb_envelope_log_ids(&m->env),
                 "reply dropped: its requester's "
                 "reply address '%.120s' is gone (the requesting process ended)",
                 t->pub.returned_key);
      return;
    }
    m->b->status = MB_EUNROUTABLE;
    unroutable_text(m->b->error, sizeof m->b->error, t->pub.returned_key, &m->env);
    return;
  }
}

/* What a message needs on the broker before it is published: its event exchange, or the
 * delay levels it passes and the binding that delivers it at the end. Cached per session. */
static int ensure_route(rmq *t, const wire_msg *m, mb_err *err) {
  long delay = m->delay;
  int event = m->event;
  const char *target = m->target;
  mb_amqp_rpc r = rmq_rpc_on(&t->pub, CH_RPC);
  int rc = MB_OK;
  if (event && !rmq_set_has(&t->known_events, m->env.type)) {
    rc = mb_amqp_declare_event(&r, m->env.type, err);
    if (rc == MB_OK) rc = rmq_set_add(&t->known_events, m->env.type);
  }
  if (rc == MB_OK && delay > 0 && !t->delay_exchanges) {
    rc = mb_amqp_declare_delay_exchanges(&r, err);
    t->delay_exchanges = rc == MB_OK;
  }
  for (int level = 0; rc == MB_OK && delay > 0 && level < MB_AMQP_DELAY_LEVELS; level++) {
    if (!((delay >> level) & 1) || (t->delay_levels & (1u << level))) continue;
    rc = mb_amqp_declare_delay_level(&r, level, err);
    if (rc == MB_OK) t->delay_levels |= 1u << level;
  }
  if (rc == MB_OK && delay > 0 && !rmq_set_has(&t->delayed_targets, target)) {
    rc = mb_amqp_bind_delayed(&r, event ? m->env.type : target, event, err);
    if (rc == MB_OK) rc = rmq_set_add(&t->delayed_targets, target);
  }
  rmq_after_rpc(t, &t->pub, &r, "declaring what a message needs");
  return rc;
}

static long delay_seconds(const mb_outgoing *o) {
  if (o->delay <= 0) return 0;
  long s = (long)o->delay;
  return (double)s < o->delay ? s + 1 : s; /* the broker's delays are whole seconds */
}

/* Milliseconds until moonbus.expires_at, or -1 (no expiration on the broker). */
static long expires_in_ms(const mb_outgoing *o) {
  const char *at = mb_headers_get(&o->env.headers, MB_H_EXPIRES_AT);
  int64_t usec;
  if (at == NULL || mb_time_parse(at, &usec) != MB_OK) return -1;
  int64_t ms = (usec - mb_now_usec()) / 1000;
  return ms > 0 ? (long)ms : 0;
}

/* The wire form of o; o's envelope moves into it (transport.h allows it), so that a
 * message's headers and body are not copied once more on their way out. */
static wire_msg *wire_new(mb_outgoing *o, batch *b, mb_err *err) {
  wire_msg *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  mb_envelope_init(&m->env);
  m->b = b;
  m->expires_ms = -1;
  m->to_requester = o->to_requester;
  long delay = m->delay = delay_seconds(o);
  int event = m->event = o->route == MB_ROUTE_PUBLISH;
  char *target = m->target;
  if (event) snprintf(target, sizeof m->target, MB_AMQP_EVENT_PREFIX "%s", o->env.type);
  else snprintf(target, sizeof m->target, "%s", o->dest);
  int rc = MB_OK;
  if (delay > 0) {
    rc = mb_amqp_delay_route(delay, target, m->exchange, sizeof m->exchange, m->key,
                             sizeof m->key, err);
    m->mandatory = 1;
  } else if (rc == MB_OK) {
    snprintf(m->exchange, sizeof m->exchange, "%s", event ? target : "");
    snprintf(m->key, sizeof m->key, "%s", event ? "" : target);
    /* RabbitMQ returns every mandatory message to a direct reply-to address, delivered or
     * not (3.10): such a reply goes without, and is dropped unseen if its requester left */
    m->mandatory = !event && !(o->to_requester && strncmp(target, MB_AMQP_DIRECT_REPLY_TO,
                                                          MB_AMQP_DIRECT_REPLY_TO_LEN) == 0);
    m->expires_ms = o->archive ? -1 : expires_in_ms(o);
  }
  if (rc == MB_OK) {
    m->env = o->env;
    mb_envelope_init(&o->env);
  }
  if (rc != MB_OK) {
    if (rc == MB_ENOMEM) mb_err_set(err, rc, "out of memory");
    msg_free(m);
    return NULL;
  }
  return m;
}

/* A queue that does not exist fails the whole batch before anything is published (the
 * broker would return the message, but only after the others were sent). A queue that is
 * exclusive to another connection exists (a plain AMQP client's server-named reply queue):
 * it is a destination like any other, `mandatory` and basic.return decide. */
static int check_routable(rmq *t, const mb_outgoing *o, mb_err *err) {
  if (o->route != MB_ROUTE_QUEUE || o->to_requester || !t->connected ||
      rmq_set_has(&t->known_queues, o->dest))
    return MB_OK; /* a reply address is the requester's to keep: see rmq_returned */
  mb_amqp_rpc r = rmq_rpc_on(&t->pub, CH_RPC);
  long ready;
  int rc = mb_amqp_queue_depth(&r, o->dest, &ready, err);
  rmq_after_rpc(t, &t->pub, &r, "looking up a queue");
  if (rc == MB_ENOTFOUND) {
    char why[MB_ERRLEN];
    unroutable_text(why, sizeof why, o->dest, &o->env);
    return mb_err_set(err, MB_EUNROUTABLE, "%s", why);
  }
  if (rc == MB_EBUSY) return MB_OK; /* not cached: it lives as long as its owner's connection */
  return rc == MB_OK ? rmq_set_add(&t->known_queues, o->dest) : rc;
}

int rmq_send_batch(rmq *t, mb_outgoing *const *msgs, size_t n, batch *b, mb_err *err) {
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < n; i++) rc = check_routable(t, msgs[i], err);
  msg_list built = {0};
  for (size_t i = 0; rc == MB_OK && i < n; i++) {
    wire_msg *m = wire_new(msgs[i], b, err);
    if (m == NULL) rc = err->status ? err->status : MB_ENOMEM;
    else list_push(&built, m);
  }
  if (rc != MB_OK) {
    while (built.head) msg_free(list_pop(&built));
    free(b);
    return rc;
  }
  b->left = n;
  while (built.head) list_push(&t->waiting, list_pop(&built));
  rmq_pump(t);
  return MB_OK;
}

batch *rmq_batch_new(mb_done_fn done, void *ud, ev_tstamp now) {
  batch *b = calloc(1, sizeof *b);
  if (b == NULL) return NULL;
  b->done = done;
  b->ud = ud;
  b->deadline = now + SEND_WAIT;
  return b;
}

/* Unconfirmed messages of a send outside a handler are published again after the
 * reconnect (at-least-once); a handler's batch fails, its delivery comes back anyway. */
void rmq_requeue_or_fail(rmq *t) {
  msg_list all = {0};
  wire_msg *m;
  while ((m = list_pop(&t->unconfirmed))) list_push(&all, m);
  while ((m = list_pop(&t->waiting))) list_push(&all, m);
  t->waiting = all;
  for (;;) {
    for (m = t->waiting.head; m && !m->b->acks; m = m->next) {}
    if (m == NULL) return;
    batch_fail(t, m->b, MB_ELOST,
               "the connection to RabbitMQ was lost while the handler's "
               "messages were being sent; the broker delivers the message again");
  }
}

/* Sends outside a handler wait at most SEND_WAIT for the broker to come back. */
void rmq_fail_expired(rmq *t) {
  char why[MB_ERRLEN];
  snprintf(why, sizeof why, "RabbitMQ at %.120s was unreachable for %.0f s: %.300s", t->shown,
           SEND_WAIT, t->lost_reason);
  for (;;) {
    wire_msg *m = t->waiting.head;
    while (m && m->b->deadline > ev_now(t->loop)) m = m->next;
    if (m == NULL) return;
    batch_fail(t, m->b, MB_ENOTCONN, why);
  }
}

void rmq_free_pending(rmq *t) {
  wire_msg *m;
  while ((m = t->waiting.head ? t->waiting.head : t->unconfirmed.head)) {
    batch *b = m->b;
    remove_batch_msgs(&t->waiting, b);
    remove_batch_msgs(&t->unconfirmed, b);
    free(b);
  }
}
