/* rabbitmq.c — the RabbitMQ transport (DESIGN §5): rabbitmq-c 0.11 driven by libev.
 *
 * Owns: two connections per open (one publishes, one consumes, so a blocked publisher
 * never stalls deliveries), each socket under an ev_io and read without blocking until
 * rabbitmq-c holds no more frames; heartbeats on an ev_timer; publisher confirms with a
 * bounded window of unconfirmed messages; mandatory commands whose basic.return fails
 * the batch; acks sent only after every outgoing message of the handler is confirmed;
 * reconnecting with back-off and jitter (and redeclaring, and consuming again) after any
 * connection or channel failure. A session number stamps every delivery: a delivery from
 * an older session is never acked on a newer one (the broker has already redelivered it).
 * Never: calls amqp_basic_publish on a blocked connection, one past its heartbeat
 * deadline, or beyond the window; frees a connection while its frames are being read
 * (teardown is deferred to the loop); keeps a timer per delayed message (delays are the
 * broker's, rabbitmq_topology.c). */
#include "transport/rabbitmq.h"

#include <ev.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "transport/rabbitmq_conn.h"
#include "transport/rabbitmq_topology.h"
#include "transport/rabbitmq_wire.h"

#define CH_RPC 1       /* declares and lookups */
#define CH_WORK 2      /* publishing with confirms; consuming and acks */
#define CH_BROWSE 3    /* basic.get for browsing a queue */
#define WINDOW 512     /* unconfirmed publishes at most */
#define SEND_WAIT 30.0 /* seconds a send outside a handler waits for the broker */
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 10.0

typedef struct batch {
  mb_done_fn done;
  void *ud;
  size_t left;     /* messages not yet confirmed */
  int status;
  char error[MB_ERRLEN];
  int acks;        /* complete(): ack tag on session after the last confirm */
  uint64_t tag;
  unsigned session;
  ev_tstamp deadline;
} batch;

typedef struct wire_msg {
  struct wire_msg *next;
  batch *b;
  mb_envelope env;
  char exchange[300], key[300];
  char target[300]; /* the queue, or the event exchange, it ends up in */
  long delay;       /* whole seconds in the delay infrastructure first */
  int event, mandatory;
  long expires_ms; /* -1: none */
  uint64_t seq;    /* publish sequence number once published */
} wire_msg;

typedef struct msg_list {
  wire_msg *head, *tail;
  size_t n;
} msg_list;

typedef struct hold {
  ev_timer w;
  struct rmq *t;
  uint64_t tag;
  unsigned session;
  struct hold *prev, *next;
} hold;

typedef struct amqp_link {
  struct rmq *t;
  const char *role;
  amqp_connection_state_t conn;
  ev_io io;
  ev_tstamp last_read;
  int draining, again;
  /* the content (header + body frames) that follows a basic.deliver or basic.return */
  int content;             /* 0, AMQP_BASIC_DELIVER_METHOD or AMQP_BASIC_RETURN_METHOD */
  uint64_t tag;
  int redelivered;
  char returned_key[300], returned_text[300];
  mb_delivery *d;
  char *body;
  size_t body_size, body_have;
} amqp_link;

typedef struct dial {
  const mb_amqp_url *url;
  const char *instance;
  size_t first_node;
  amqp_connection_state_t pub, con; /* the result: both, or neither */
  size_t node;
  int rc;
  mb_err err;
} dial;

typedef struct string_set {
  char **items;
  size_t n;
} string_set;

typedef struct rmq {
  mb_transport base;
  struct ev_loop *loop;
  mb_amqp_url url;
  char instance[128];
  char shown[256];           /* the URL without its password */
  size_t node;               /* the node of the current session */
  amqp_link pub, con;
  int connected, lost, blocked;
  unsigned session;
  char lost_reason[MB_ERRLEN];
  ev_timer heartbeat, teardown, reconnect;
  double backoff;
  dial dial;                 /* a reconnect in progress on the dialer thread */
  pthread_t dialer;
  int dialing;
  ev_async dialed;
  /* what to redeclare and resume after a reconnect */
  char *endpoint, *error_queue;
  string_set subscriptions, owned, bound;
  int classic, declared;
  char *queue;
  unsigned max_in_flight;
  mb_deliver_fn deliver;
  void *deliver_ud;
  int consuming;
  char consumer_tag[256];
  /* publishing */
  msg_list waiting, unconfirmed;
  uint64_t next_seq;
  string_set known_queues, known_events, delayed_targets;
  int delay_exchanges;
  uint32_t delay_levels;
  hold *holds;
} rmq;

static void mark_lost(rmq *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pump(rmq *t);
static void drain(amqp_link *l);

/* --- small helpers ------------------------------------------------------------------- */

static int set_has(const string_set *s, const char *v) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->items[i], v) == 0) return 1;
  return 0;
}

static int set_add(string_set *s, const char *v) {
  if (set_has(s, v)) return MB_OK;
  char **grown = realloc(s->items, (s->n + 1) * sizeof *grown);
  if (grown == NULL) return MB_ENOMEM;
  s->items = grown;
  if ((grown[s->n] = strdup(v)) == NULL) return MB_ENOMEM;
  s->n++;
  return MB_OK;
}

static void set_clear(string_set *s) {
  for (size_t i = 0; i < s->n; i++) free(s->items[i]);
  free(s->items);
  s->items = NULL;
  s->n = 0;
}

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

static mb_amqp_rpc rpc_on(amqp_link *l, amqp_channel_t channel) {
  mb_amqp_rpc r = {l->conn, channel, 0};
  return r;
}

/* An RPC may have read frames meant for the loop: have them handled soon. */
static void after_rpc(rmq *t, amqp_link *l, mb_amqp_rpc *r, const char *what) {
  if (r->dead) mark_lost(t, "%s: the %s connection failed", what, l->role);
  else if (l->conn && (amqp_frames_enqueued(l->conn) || amqp_data_in_buffer(l->conn)))
    ev_feed_event(t->loop, &l->io, EV_READ);
}

static int not_connected(rmq *t, mb_err *err) {
  return mb_err_set(err, MB_EIO, "not connected to RabbitMQ at %s (reconnecting%s%s)", t->shown,
                    t->lost_reason[0] ? " after: " : "", t->lost_reason);
}

/* --- batches ----------------------------------------------------------------------------- */

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

static void batch_finish(rmq *t, batch *b) {
  if (b->status == MB_OK && b->acks) {
    if (b->session != t->session || !t->connected)
      b->status = MB_ELOST;
    else if (amqp_basic_ack(t->con.conn, CH_WORK, b->tag, 0) != AMQP_STATUS_OK) {
      b->status = MB_ELOST;
      mark_lost(t, "acknowledging a delivery failed");
    }
    if (b->status == MB_ELOST)
      snprintf(b->error, sizeof b->error, "the connection to RabbitMQ was lost before the "
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
  batch_finish(t, b);
}

static void msg_settled(rmq *t, wire_msg *m, int status, const char *error) {
  batch *b = m->b;
  if (status != MB_OK && b->status == MB_OK) {
    b->status = status;
    snprintf(b->error, sizeof b->error, "%s", error);
  }
  msg_free(m);
  if (--b->left == 0) batch_finish(t, b);
}

/* --- publishing ------------------------------------------------------------------------ */

static int can_publish(rmq *t) {
  if (!t->connected || t->lost || t->blocked || t->unconfirmed.n >= WINDOW) return 0;
  double hb = t->url.heartbeat;
  if (hb > 0 && ev_now(t->loop) - t->pub.last_read > 2 * hb + 1) {
    mark_lost(t, "no heartbeat from the broker for %.0f s on the publish connection", 2 * hb);
    return 0;
  }
  return 1;
}

static int ensure_route(rmq *t, const wire_msg *m, mb_err *err);

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
    mark_lost(t, "publishing message %s failed: %s", m->env.id, amqp_error_string2(rc));
    return rc;
  }
  m->seq = ++t->next_seq;
  list_push(&t->unconfirmed, m);
  return MB_OK;
}

static void pump(rmq *t) {
  while (t->waiting.head && can_publish(t))
    if (publish_one(t, list_pop(&t->waiting)) != MB_OK) return;
  after_rpc(t, &t->pub, &(mb_amqp_rpc){t->pub.conn, CH_WORK, 0}, "publishing");
}

static void confirmed(rmq *t, uint64_t tag, int multiple, int ok) {
  wire_msg **pp = &t->unconfirmed.head, *prev = NULL;
  while (*pp) {
    wire_msg *m = *pp;
    if (m->seq == tag || (multiple && m->seq < tag)) {
      *pp = m->next;
      t->unconfirmed.n--;
      char why[MB_ERRLEN];
      snprintf(why, sizeof why, "RabbitMQ refused message %s of type %s (basic.nack)",
               m->env.id, m->env.type);
      msg_settled(t, m, ok ? MB_OK : MB_EIO, why);
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
  snprintf(out, len, "no queue named '%.120s' (message %s of type %.80s): start the %.120s "
           "endpoint once so that its queue exists, or fix the route", queue, env->id, env->type,
           queue);
}

/* A mandatory message no queue took: its batch fails when the broker confirms it. */
static void returned(rmq *t, const char *id) {
  for (wire_msg *m = t->unconfirmed.head; m; m = m->next) {
    if (strcmp(m->env.id, id) != 0 || m->b->status != MB_OK) continue;
    m->b->status = MB_EUNROUTABLE;
    unroutable_text(m->b->error, sizeof m->b->error, t->pub.returned_key, &m->env);
    return;
  }
}

/* --- reading frames ------------------------------------------------------------------------ */

static void delivery_ready(rmq *t, amqp_link *l) {
  mb_delivery *d = l->d;
  l->d = NULL;
  d->env.body = l->body;
  d->env.body_len = l->body_size;
  l->body = NULL;
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
}

static int new_delivery(rmq *t, amqp_link *l, const amqp_basic_properties_t *p) {
  mb_delivery *d = calloc(1, sizeof *d);
  if (d == NULL || (d->queue = strdup(t->queue)) == NULL) {
    free(d);
    return MB_ENOMEM;
  }
  mb_envelope_init(&d->env);
  d->transport_data = (void *)(uintptr_t)t->session; /* a number, not owned memory */
  d->tag = l->tag;
  l->d = d;
  return mb_amqp_delivery_from_props(d, p, l->redelivered);
}

static void on_header(rmq *t, amqp_link *l, const amqp_frame_t *f) {
  const amqp_basic_properties_t *p = f->payload.properties.decoded;
  l->body_size = (size_t)f->payload.properties.body_size;
  l->body_have = 0;
  l->body = malloc(l->body_size + 1);
  int rc = l->body ? MB_OK : MB_ENOMEM;
  if (rc == MB_OK) l->body[l->body_size] = '\0';
  if (rc == MB_OK && l->content == AMQP_BASIC_DELIVER_METHOD) rc = new_delivery(t, l, p);
  if (rc == MB_OK && l->content == AMQP_BASIC_RETURN_METHOD &&
      (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
    char id[MB_ID_LEN + 1];
    snprintf(id, sizeof id, "%.*s", (int)p->message_id.len, (const char *)p->message_id.bytes);
    returned(t, id);
  }
  if (rc != MB_OK) {
    mark_lost(t, "out of memory for a %zu-byte message", l->body_size);
    return;
  }
  if (l->body_size == 0) content_done(t, l);
}

static void on_body(rmq *t, amqp_link *l, const amqp_frame_t *f) {
  amqp_bytes_t b = f->payload.body_fragment;
  if (l->content == 0 || l->body == NULL || b.len > l->body_size - l->body_have) {
    mark_lost(t, "a body frame the broker did not announce on the %s connection", l->role);
    return;
  }
  memcpy(l->body + l->body_have, b.bytes, b.len);
  l->body_have += b.len;
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
    pump(t);
  } else if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
    const amqp_connection_close_t *c = m->decoded;
    mark_lost(t, "the broker closed the %s connection: %u %.*s", l->role, c->reply_code,
              (int)c->reply_text.len, (const char *)c->reply_text.bytes);
  }
}

static void on_method(rmq *t, amqp_link *l, const amqp_frame_t *f) {
  const amqp_method_t *m = &f->payload.method;
  switch (m->id) {
  case AMQP_BASIC_ACK_METHOD: {
    const amqp_basic_ack_t *a = m->decoded;
    confirmed(t, a->delivery_tag, a->multiple, 1);
    pump(t);
    break;
  }
  case AMQP_BASIC_NACK_METHOD: {
    const amqp_basic_nack_t *n = m->decoded;
    confirmed(t, n->delivery_tag, n->multiple, 0);
    pump(t);
    break;
  }
  case AMQP_BASIC_DELIVER_METHOD: {
    const amqp_basic_deliver_t *d = m->decoded;
    l->content = AMQP_BASIC_DELIVER_METHOD;
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
    mark_lost(t, "the broker cancelled the consumer of queue '%s' (deleted, or its leader "
              "moved)", t->queue ? t->queue : "?");
    break;
  case AMQP_CHANNEL_CLOSE_METHOD: {
    const amqp_channel_close_t *c = m->decoded;
    mark_lost(t, "the broker closed channel %u of the %s connection: %u %.*s", f->channel,
              l->role, c->reply_code, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    break;
  }
  default:
    on_connection_method(t, l, m);
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
        mark_lost(t, "reading from the %s connection: %s", l->role, amqp_error_string2(rc));
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
static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  rmq *t = w->data;
  amqp_link *links[] = {&t->pub, &t->con};
  for (int i = 0; i < 2 && t->connected && !t->lost; i++) {
    if (ev_now(loop) - links[i]->last_read > 2.0 * t->url.heartbeat + 1)
      mark_lost(t, "no heartbeat from the broker for %d s on the %s connection",
                2 * t->url.heartbeat, links[i]->role);
    else drain(links[i]);
  }
}

/* --- sessions: connect, lose, reconnect -------------------------------------------------- */

static void mark_lost(rmq *t, const char *fmt, ...) {
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

/* One logged-in connection with its channels open, or NULL and err. */
static amqp_connection_state_t open_conn(const dial *d, size_t node, const char *role,
                                         mb_err *err) {
  char name[200];
  amqp_connection_state_t c;
  snprintf(name, sizeof name, "moonbus %s (%s)", d->instance, role);
  int rc = mb_amqp_connect(d->url, node, name, &c, err);
  if (rc == MB_OK) rc = open_channel(c, role, CH_RPC, err);
  if (rc == MB_OK) rc = open_channel(c, role, CH_WORK, err);
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

static void session_close(rmq *t, int graceful) {
  link_close(t, &t->con, graceful);
  link_close(t, &t->pub, graceful);
  ev_timer_stop(t->loop, &t->heartbeat);
  holds_clear(t);
  t->connected = t->blocked = 0;
  t->consumer_tag[0] = '\0';
  set_clear(&t->known_queues);
  set_clear(&t->known_events);
  set_clear(&t->delayed_targets);
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
  if (t->url.heartbeat > 0) {
    ev_timer_set(&t->heartbeat, t->url.heartbeat / 2.0, t->url.heartbeat / 2.0);
    ev_timer_start(t->loop, &t->heartbeat);
  }
}

/* Opens a session, waiting for it (the first one: a host must know at once). */
static int session_open(rmq *t, mb_err *err) {
  dial d = {.url = &t->url, .instance = t->instance, .first_node = t->node};
  dial_run(&d);
  if (d.rc != MB_OK) {
    *err = d.err;
    return d.rc;
  }
  session_install(t, &d);
  return MB_OK;
}

/* Unconfirmed messages of a send outside a handler are published again after the
 * reconnect (at-least-once); a handler's batch fails, its delivery comes back anyway. */
static void requeue_or_fail(rmq *t) {
  msg_list all = {0};
  wire_msg *m;
  while ((m = list_pop(&t->unconfirmed))) list_push(&all, m);
  while ((m = list_pop(&t->waiting))) list_push(&all, m);
  t->waiting = all;
  for (;;) {
    for (m = t->waiting.head; m && !m->b->acks; m = m->next) {}
    if (m == NULL) return;
    batch_fail(t, m->b, MB_ELOST, "the connection to RabbitMQ was lost while the handler's "
               "messages were being sent; the broker delivers the message again");
  }
}

/* Sends outside a handler wait at most SEND_WAIT for the broker to come back. */
static void fail_expired(rmq *t) {
  char why[MB_ERRLEN];
  snprintf(why, sizeof why, "RabbitMQ at %.120s was unreachable for %.0f s: %.300s", t->shown,
           SEND_WAIT, t->lost_reason);
  for (;;) {
    wire_msg *m = t->waiting.head;
    while (m && m->b->deadline > ev_now(t->loop)) m = m->next;
    if (m == NULL) return;
    batch_fail(t, m->b, MB_EIO, why);
  }
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

static void on_teardown(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  rmq *t = w->data;
  mb_log(MB_WARN, t->endpoint, NULL, NULL, "lost RabbitMQ at %s: %s; reconnecting", t->shown,
         t->lost_reason);
  session_close(t, 0);
  t->lost = 0;
  requeue_or_fail(t);
  schedule_reconnect(t);
}

static int declare_all(rmq *t, mb_err *err);
static int start_consumer(rmq *t, mb_err *err);

static void *dial_thread(void *arg) {
  rmq *t = arg;
  dial_run(&t->dial);
  ev_async_send(t->loop, &t->dialed);
  return NULL;
}

/* Reconnecting dials on a thread, so that a broker that accepts TCP but never answers
 * (stalled, overloaded) cannot freeze the loop for the connect and login timeouts. */
static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  rmq *t = w->data;
  fail_expired(t);
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
  t->lost = 0;
  session_close(t, 0);
  schedule_reconnect(t);
}

static void on_dialed(struct ev_loop *loop, ev_async *w, int revents) {
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
  int rc = t->declared ? declare_all(t, &err) : MB_OK;
  if (rc == MB_OK && t->consuming) rc = start_consumer(t, &err);
  if (rc != MB_OK) {
    reconnect_failed(t, err.msg);
    return;
  }
  t->backoff = 0;
  t->lost_reason[0] = '\0';
  mb_log(MB_INFO, t->endpoint, NULL, NULL, "reconnected to RabbitMQ at %s:%d",
         t->url.nodes[t->node].host, t->url.nodes[t->node].port);
  pump(t);
}

/* --- topology ------------------------------------------------------------------------------ */

static int save_topology(rmq *t, const mb_topology *topo) {
  free(t->endpoint);
  free(t->error_queue);
  set_clear(&t->subscriptions);
  set_clear(&t->owned);
  t->endpoint = strdup(topo->endpoint);
  t->error_queue = topo->error_queue ? strdup(topo->error_queue) : NULL;
  if (t->endpoint == NULL || (topo->error_queue && t->error_queue == NULL)) return MB_ENOMEM;
  for (size_t i = 0; i < topo->n_subscriptions; i++)
    if (set_add(&t->subscriptions, topo->subscriptions[i]) != MB_OK) return MB_ENOMEM;
  for (size_t i = 0; i < topo->n_owned; i++)
    if (set_add(&t->owned, topo->owned[i]) != MB_OK) return MB_ENOMEM;
  t->classic = topo->classic_queue;
  return MB_OK;
}

/* The error queue is shared by endpoints: made once, with the first one's queue type. */
static int ensure_queue(rmq *t, mb_amqp_rpc *r, const char *name, int classic, mb_err *err) {
  long ready;
  int rc = mb_amqp_queue_depth(r, name, &ready, err);
  if (rc == MB_ENOTFOUND) rc = mb_amqp_declare_queue(r, name, classic, err);
  if (rc == MB_OK) rc = set_add(&t->known_queues, name);
  return rc;
}

static int subscribe_all(rmq *t, mb_amqp_rpc *r, mb_err *err) {
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < t->subscriptions.n; i++) {
    rc = mb_amqp_declare_event(r, t->subscriptions.items[i], err);
    if (rc == MB_OK) rc = mb_amqp_subscribe(r, t->endpoint, t->subscriptions.items[i], 1, err);
  }
  for (size_t i = 0; rc == MB_OK && i < t->bound.n; i++)
    if (!set_has(&t->subscriptions, t->bound.items[i]))
      rc = mb_amqp_subscribe(r, t->endpoint, t->bound.items[i], 0, err);
  if (rc != MB_OK) return rc;
  set_clear(&t->bound);
  for (size_t i = 0; rc == MB_OK && i < t->subscriptions.n; i++)
    rc = set_add(&t->bound, t->subscriptions.items[i]);
  return rc;
}

/* Claims first, so that a refused claim leaves the endpoint's queue and bindings alone. */
static int declare_all(rmq *t, mb_err *err) {
  mb_amqp_rpc r = rpc_on(&t->pub, CH_RPC);
  int rc = MB_OK;
  for (size_t i = 0; rc == MB_OK && i < t->owned.n; i++)
    rc = mb_amqp_claim_event(&r, t->owned.items[i], t->endpoint, err);
  if (rc == MB_OK) rc = mb_amqp_declare_queue(&r, t->endpoint, t->classic, err);
  if (rc == MB_OK) rc = set_add(&t->known_queues, t->endpoint);
  if (rc == MB_OK && t->error_queue) rc = ensure_queue(t, &r, t->error_queue, t->classic, err);
  if (rc == MB_OK) rc = mb_amqp_bind_delayed(&r, t->endpoint, 0, err);
  if (rc == MB_OK) rc = subscribe_all(t, &r, err);
  after_rpc(t, &t->pub, &r, "declaring the topology");
  return rc;
}

static int rmq_declare(mb_transport *base, const mb_topology *topo, mb_err *err) {
  rmq *t = (rmq *)base;
  if (!t->connected) return not_connected(t, err);
  if (save_topology(t, topo) != MB_OK) return mb_err_set(err, MB_ENOMEM, "out of memory");
  int rc = declare_all(t, err);
  if (rc == MB_OK) t->declared = 1;
  return rc;
}

/* What a message needs on the broker before it is published: its event exchange, or the
 * delay levels it passes and the binding that delivers it at the end. Cached per session. */
static int ensure_route(rmq *t, const wire_msg *m, mb_err *err) {
  long delay = m->delay;
  int event = m->event;
  const char *target = m->target;
  mb_amqp_rpc r = rpc_on(&t->pub, CH_RPC);
  int rc = MB_OK;
  if (event && !set_has(&t->known_events, m->env.type)) {
    rc = mb_amqp_declare_event(&r, m->env.type, err);
    if (rc == MB_OK) rc = set_add(&t->known_events, m->env.type);
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
  if (rc == MB_OK && delay > 0 && !set_has(&t->delayed_targets, target)) {
    rc = mb_amqp_bind_delayed(&r, event ? m->env.type : target, event, err);
    if (rc == MB_OK) rc = set_add(&t->delayed_targets, target);
  }
  after_rpc(t, &t->pub, &r, "declaring what a message needs");
  return rc;
}

/* --- sending ------------------------------------------------------------------------------ */

static long delay_seconds(const mb_outgoing *o) {
  if (o->delay <= 0) return 0;
  long s = (long)o->delay;
  return (double)s < o->delay ? s + 1 : s; /* the broker's delays are whole seconds */
}

/* Milliseconds until moonbus.expires_at, or -1 (no expiration on the broker). */
static long expires_in_ms(const mb_outgoing *o) {
  const char *at = mb_headers_get(&o->env.headers, "moonbus.expires_at");
  int64_t usec;
  if (at == NULL || mb_time_parse(at, &usec) != MB_OK) return -1;
  int64_t ms = (usec - mb_now_usec()) / 1000;
  return ms > 0 ? (long)ms : 0;
}

static wire_msg *wire_new(const mb_outgoing *o, batch *b, mb_err *err) {
  wire_msg *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  mb_envelope_init(&m->env);
  m->b = b;
  m->expires_ms = -1;
  long delay = m->delay = delay_seconds(o);
  int event = m->event = o->route == MB_ROUTE_PUBLISH;
  char *target = m->target;
  if (event) snprintf(target, sizeof m->target, MB_AMQP_EVENT_PREFIX "%s", o->env.type);
  else snprintf(target, sizeof m->target, "%s", o->dest);
  int rc = mb_envelope_copy(&m->env, &o->env);
  if (rc == MB_OK && delay > 0) {
    rc = mb_amqp_delay_route(delay, target, m->exchange, sizeof m->exchange, m->key,
                             sizeof m->key, err);
    m->mandatory = 1;
  } else if (rc == MB_OK) {
    snprintf(m->exchange, sizeof m->exchange, "%s", event ? target : "");
    snprintf(m->key, sizeof m->key, "%s", event ? "" : target);
    m->mandatory = !event;
    m->expires_ms = expires_in_ms(o);
  }
  if (rc != MB_OK) {
    if (rc == MB_ENOMEM) mb_err_set(err, rc, "out of memory");
    msg_free(m);
    return NULL;
  }
  return m;
}

/* A queue that does not exist fails the whole batch before anything is published (the
 * broker would return the message, but only after the others were sent). */
static int check_routable(rmq *t, const mb_outgoing *o, mb_err *err) {
  if (o->route != MB_ROUTE_QUEUE || !t->connected || set_has(&t->known_queues, o->dest))
    return MB_OK;
  mb_amqp_rpc r = rpc_on(&t->pub, CH_RPC);
  long ready;
  int rc = mb_amqp_queue_depth(&r, o->dest, &ready, err);
  after_rpc(t, &t->pub, &r, "looking up a queue");
  if (rc == MB_ENOTFOUND) {
    char why[MB_ERRLEN];
    unroutable_text(why, sizeof why, o->dest, &o->env);
    return mb_err_set(err, MB_EUNROUTABLE, "%s", why);
  }
  return rc == MB_OK ? set_add(&t->known_queues, o->dest) : rc;
}

static int send_batch(rmq *t, mb_outgoing *const *msgs, size_t n, batch *b, mb_err *err) {
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
  pump(t);
  return MB_OK;
}

static batch *batch_new(mb_done_fn done, void *ud, ev_tstamp now) {
  batch *b = calloc(1, sizeof *b);
  if (b == NULL) return NULL;
  b->done = done;
  b->ud = ud;
  b->deadline = now + SEND_WAIT;
  return b;
}

static int rmq_dispatch(mb_transport *base, mb_outgoing *const *msgs, size_t n, mb_done_fn done,
                        void *ud, mb_err *err) {
  rmq *t = (rmq *)base;
  if (n == 0) {
    done(ud, MB_OK, NULL);
    return MB_OK;
  }
  batch *b = batch_new(done, ud, ev_now(t->loop));
  if (b == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  err->status = MB_OK;
  return send_batch(t, msgs, n, b, err);
}

static int stale(rmq *t, const mb_delivery *d) {
  return !t->connected || t->lost || (uintptr_t)d->transport_data != t->session;
}

static int rmq_complete(mb_transport *base, mb_delivery *d, mb_outgoing *const *outbox, size_t n,
                        mb_done_fn done, void *ud, mb_err *err) {
  rmq *t = (rmq *)base;
  if (stale(t, d))
    return mb_err_set(err, MB_ELOST, "the connection to RabbitMQ was lost while message %s was "
                      "handled; the broker delivers it again", d->env.id);
  batch *b = batch_new(done, ud, ev_now(t->loop));
  if (b == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  b->acks = 1;
  b->tag = d->tag;
  b->session = t->session;
  if (n == 0) {
    batch_finish(t, b);
    return MB_OK;
  }
  err->status = MB_OK;
  return send_batch(t, outbox, n, b, err);
}

/* --- receiving ---------------------------------------------------------------------------- */

static void hold_fired(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  hold *h = (hold *)w;
  rmq *t = h->t;
  if (h->prev) h->prev->next = h->next;
  else t->holds = h->next;
  if (h->next) h->next->prev = h->prev;
  if (h->session == t->session && t->connected && !t->lost &&
      amqp_basic_nack(t->con.conn, CH_WORK, h->tag, 0, 1) != AMQP_STATUS_OK)
    mark_lost(t, "returning a delivery to its queue failed");
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
    mark_lost(t, "returning message %s to its queue failed", d->env.id);
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

static int start_consumer(rmq *t, mb_err *err) {
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
  if (rc != MB_OK) mark_lost(t, "%s", err->msg);
  else if (amqp_frames_enqueued(c) || amqp_data_in_buffer(c)) ev_feed_event(t->loop, &t->con.io, EV_READ);
  return rc;
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
  int rc = start_consumer(t, err);
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
    mark_lost(t, "%s", err.msg);
  t->consumer_tag[0] = '\0';
  if (t->con.conn && (amqp_frames_enqueued(t->con.conn) || amqp_data_in_buffer(t->con.conn)))
    ev_feed_event(t->loop, &t->con.io, EV_READ);
}

/* --- lookups -------------------------------------------------------------------------------- */

static int rmq_owner_of(mb_transport *base, const char *type, char *out, size_t len,
                        mb_err *err) {
  rmq *t = (rmq *)base;
  if (!t->connected) return not_connected(t, err);
  mb_amqp_rpc r = rpc_on(&t->pub, CH_RPC);
  int rc = mb_amqp_event_owner(&r, type, out, len, err);
  after_rpc(t, &t->pub, &r, "looking up an event's owner");
  return rc;
}

/* Ready messages only: the broker does not say how many are delayed or unacknowledged. */
static int rmq_depth(mb_transport *base, const char *queue, long *ready, long *later,
                     mb_err *err) {
  rmq *t = (rmq *)base;
  if (!t->connected) return not_connected(t, err);
  mb_amqp_rpc r = rpc_on(&t->pub, CH_RPC);
  int rc = mb_amqp_queue_depth(&r, queue, ready, err);
  after_rpc(t, &t->pub, &r, "counting messages");
  *later = 0;
  if (rc == MB_ENOTFOUND) *ready = 0;
  return rc == MB_ENOTFOUND ? MB_OK : rc;
}

/* One message of a basic.get on CH_BROWSE as a delivery (NULL when the queue is empty). */
static int browse_one(rmq *t, const char *queue, mb_delivery **out, mb_err *err) {
  amqp_connection_state_t c = t->pub.conn;
  *out = NULL;
  amqp_rpc_reply_t reply = amqp_basic_get(c, CH_BROWSE, amqp_cstring_bytes(queue), 0);
  int rc = mb_amqp_reply_error(reply, "cannot read a message to browse", NULL, err);
  if (rc != MB_OK || reply.reply.id != AMQP_BASIC_GET_OK_METHOD) return rc;
  const amqp_basic_get_ok_t *ok = reply.reply.decoded;
  int redelivered = ok->redelivered;
  amqp_message_t msg;
  reply = amqp_read_message(c, CH_BROWSE, &msg, 0);
  if ((rc = mb_amqp_reply_error(reply, "cannot read a message to browse", NULL, err)) != MB_OK)
    return rc;
  mb_delivery *d = calloc(1, sizeof *d);
  rc = d && (d->queue = strdup(queue)) ? MB_OK : MB_ENOMEM;
  if (d) mb_envelope_init(&d->env);
  if (rc == MB_OK) rc = mb_amqp_delivery_from_props(d, &msg.properties, redelivered);
  if (rc == MB_OK) rc = mb_envelope_set_body(&d->env, msg.body.bytes, msg.body.len);
  amqp_destroy_message(&msg);
  if (rc != MB_OK) {
    mb_delivery_free(d);
    return mb_err_set(err, rc, "out of memory");
  }
  *out = d;
  return MB_OK;
}

/* basic.get without acks on a channel of its own; closing it puts every message back. */
static int rmq_browse(mb_transport *base, const char *queue, size_t max, mb_delivery **out,
                      size_t *n, mb_err *err) {
  rmq *t = (rmq *)base;
  long ready = 0;
  int opened = 0;
  *n = 0;
  if (!t->connected) return not_connected(t, err);
  mb_amqp_rpc r = rpc_on(&t->pub, CH_RPC);
  int rc = mb_amqp_queue_depth(&r, queue, &ready, err);
  if (rc == MB_OK) {
    amqp_channel_open(t->pub.conn, CH_BROWSE);
    rc = mb_amqp_reply_error(amqp_get_rpc_reply(t->pub.conn), "cannot open a channel to browse",
                             NULL, err);
    opened = rc == MB_OK;
  }
  while (rc == MB_OK && *n < max) {
    mb_delivery *d;
    rc = browse_one(t, queue, &d, err);
    if (rc != MB_OK || d == NULL) break;
    out[(*n)++] = d;
  }
  if (opened) amqp_channel_close(t->pub.conn, CH_BROWSE, AMQP_REPLY_SUCCESS);
  if (rc != MB_OK && rc != MB_ENOTFOUND) r.dead = 1;
  after_rpc(t, &t->pub, &r, "browsing a queue");
  if (rc == MB_ENOTFOUND) return MB_OK;
  if (rc != MB_OK) {
    for (size_t i = 0; i < *n; i++) mb_delivery_free(out[i]);
    *n = 0;
  }
  return rc;
}

/* --- open and close -------------------------------------------------------------------------- */

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
  mb_amqp_redact(url, t->shown, sizeof t->shown);
  t->pub.t = t->con.t = t;
  ev_timer_init(&t->heartbeat, on_heartbeat, 1., 1.);
  ev_timer_init(&t->teardown, on_teardown, 0., 0.);
  ev_timer_init(&t->reconnect, on_reconnect, 1., 0.);
  t->heartbeat.data = t->teardown.data = t->reconnect.data = t;
  ev_async_init(&t->dialed, on_dialed);
  t->dialed.data = t;
  rc = session_open(t, err);
  if (rc != MB_OK) {
    rmq_close(&t->base);
    return rc;
  }
  *out = &t->base;
  return MB_OK;
}

static void free_pending(rmq *t) {
  wire_msg *m;
  while ((m = t->waiting.head ? t->waiting.head : t->unconfirmed.head)) {
    batch *b = m->b;
    remove_batch_msgs(&t->waiting, b);
    remove_batch_msgs(&t->unconfirmed, b);
    free(b);
  }
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
  session_close(t, t->connected && !t->lost);
  free_pending(t);
  set_clear(&t->subscriptions);
  set_clear(&t->owned);
  set_clear(&t->bound);
  free(t->endpoint);
  free(t->error_queue);
  free(t->queue);
  mb_amqp_url_free(&t->url);
  free(t);
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
    .browse = rmq_browse,
    .close = rmq_close,
};
