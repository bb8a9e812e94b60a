/* mem.c — the in-memory transport (mem.h): buses keyed by name in this process, their
 * queues, subscriptions and owners, and the test controls (held confirmations, injected
 * failures, counters).
 *
 * Owns: every bus and what it holds; a message is one mem_msg in one queue, found by its
 * seq (a delivery's tag), so a delivery never points into the bus (transport_data stays
 * NULL). Sending is staged first (routed and copied, nothing stored), then applied at once
 * or, in manual confirm mode, when the test confirms.
 * Never: calls a deliver fn from inside a call other than its own poll watcher, expires a
 * message, or knows Lua. Single-threaded: every call happens on the loop thread. */
#include "transport/mem.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define MEM_BATCH 64 /* deliveries handed out per poll round */

typedef struct mem_transport mem_transport;

typedef struct mem_msg {
  mb_envelope env; /* as it was sent or put: decoded on its way out (make_delivery) */
  char *problem;   /* mb_mem_put's raw problem, or NULL */
  uint64_t seq;
  double visible_at; /* mb_monotonic() */
  uint32_t deliveries;
  mem_transport *holder; /* in flight to this transport, or NULL */
  struct mem_msg *next;
} mem_msg;

typedef struct mem_queue {
  char *name;
  mem_msg *head, *tail;
  struct mem_queue *next;
} mem_queue;

typedef struct mem_pair { /* a subscription (type, queue) or an owner (type, endpoint) */
  char *type, *name;
  struct mem_pair *next;
} mem_pair;

typedef struct mem_mark { /* the highest value handled for one (endpoint, type, key) */
  mb_mark *m;
  struct mem_mark *next;
} mem_mark;

typedef struct mem_bus {
  char *name;
  unsigned refs;
  uint64_t seq, reply_seq;
  mem_queue *queues;
  mem_pair *subs, *owners;
  mem_mark *marks;
  mem_transport *members;
  struct mem_bus *next;
} mem_bus;

typedef struct staged { /* a message routed to its queue, not stored yet */
  char *queue;
  int to_requester;
  mem_msg *msg;
} staged;

typedef struct mem_op { /* a complete or dispatch waiting to be applied */
  uint64_t ack_seq;     /* complete: the delivery to acknowledge (0: a dispatch) */
  char *ack_queue;
  staged *msgs;
  size_t n;
  mb_mark *mark; /* complete_marked: becomes its key's highest with the ack */
  int status;    /* an injected failure, or MB_OK */
  char error[MB_ERRLEN];
  mb_done_fn done;
  void *ud;
  struct mem_op *next;
} mem_op;

struct mem_transport {
  mb_transport base;
  struct ev_loop *loop;
  mem_bus *bus;
  mem_transport *next_member;
  char instance[128];
  /* consuming */
  char *queue;
  unsigned max_in_flight;
  mb_deliver_fn deliver;
  void *deliver_ud;
  int consuming;
  ev_timer poll_soon, wake;
  /* replies */
  char *reply_queue;
  mb_deliver_fn reply_fn;
  void *reply_ud;
  /* test controls */
  int manual;
  mem_op *ops_head, *ops_tail;
  int fail_status;
  unsigned fail_count;
  mb_mem_stats stats;
};

static mem_bus *buses; /* every open bus of the process */

/* --- messages and queues ----------------------------------------------------------------- */

static void msg_free(mem_msg *m) {
  if (m == NULL) return;
  mb_envelope_free(&m->env);
  free(m->problem);
  free(m);
}

static mem_msg *msg_copy(const mb_envelope *env, double delay) {
  mem_msg *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  mb_envelope_init(&m->env);
  if (mb_envelope_copy(&m->env, env) != MB_OK) {
    msg_free(m);
    return NULL;
  }
  m->visible_at = mb_monotonic() + (delay > 0 ? delay : 0);
  return m;
}

static mem_queue *queue_find(mem_bus *b, const char *name) {
  for (mem_queue *q = b->queues; q; q = q->next)
    if (name && strcmp(q->name, name) == 0) return q;
  return NULL;
}

static int queue_add(mem_bus *b, const char *name, mb_err *err) {
  const char *problem = mb_queue_name_problem(name);
  if (problem) return mb_err_set(err, MB_EINVAL, "queue '%.255s': %s", name ? name : "", problem);
  if (queue_find(b, name)) return MB_OK;
  mem_queue *q = calloc(1, sizeof *q);
  if (q == NULL || (q->name = strdup(name)) == NULL) {
    free(q);
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  }
  q->next = b->queues;
  b->queues = q;
  return MB_OK;
}

static void queue_free(mem_queue *q) {
  for (mem_msg *m = q->head, *next; m; m = next) {
    next = m->next;
    msg_free(m);
  }
  free(q->name);
  free(q);
}

static void queue_drop(mem_bus *b, const char *name) {
  for (mem_queue **p = &b->queues; *p; p = &(*p)->next) {
    if (strcmp((*p)->name, name) != 0) continue;
    mem_queue *q = *p;
    *p = q->next;
    queue_free(q);
    return;
  }
}

static mem_msg *msg_find(mem_queue *q, uint64_t seq) {
  for (mem_msg *m = q ? q->head : NULL; m; m = m->next)
    if (m->seq == seq) return m;
  return NULL;
}

static void msg_unlink(mem_queue *q, mem_msg *gone) {
  mem_msg *prev = NULL;
  for (mem_msg *m = q->head; m; prev = m, m = m->next) {
    if (m != gone) continue;
    if (prev) prev->next = m->next;
    else q->head = m->next;
    if (q->tail == m) q->tail = prev;
    return;
  }
}

static void schedule_poll(mem_transport *t);

/* Wakes every transport of the bus that receives from queue. */
static void wake_receivers(mem_bus *b, const char *queue) {
  for (mem_transport *t = b->members; t; t = t->next_member)
    if ((t->consuming && strcmp(t->queue, queue) == 0) ||
        (t->reply_queue && strcmp(t->reply_queue, queue) == 0))
      schedule_poll(t);
}

static void msg_append(mem_bus *b, mem_queue *q, mem_msg *m) {
  m->seq = ++b->seq;
  m->next = NULL;
  if (q->tail) q->tail->next = m;
  else q->head = m;
  q->tail = m;
  wake_receivers(b, q->name);
}

/* --- deliveries ---------------------------------------------------------------------------- */

/* A copy of m as a delivery from queue, decoded as SQLite decodes a row: a non-UUID id is
 * replaced, headers that break the rules set the problem. NULL when out of memory. */
static mb_delivery *make_delivery(const mem_msg *m, const char *queue) {
  mb_delivery *d = calloc(1, sizeof *d);
  if (d == NULL) return NULL;
  mb_envelope_init(&d->env);
  mb_err err;
  if ((d->queue = strdup(queue)) == NULL || mb_envelope_copy(&d->env, &m->env) != MB_OK ||
      mb_envelope_take_id(&d->env, m->env.id, strlen(m->env.id)) != MB_OK)
    goto fail;
  if (m->problem) d->problem = strdup(m->problem);
  else if (mb_headers_check(&d->env.headers, 1, &err) != MB_OK) d->problem = strdup(err.msg);
  if ((m->problem || d->problem) && d->problem == NULL) goto fail;
  d->delivery_count = m->deliveries < 1 ? 1 : m->deliveries;
  d->tag = m->seq;
  return d;
fail:
  mb_delivery_free(d);
  return NULL;
}

static void arm_wake(mem_transport *t, double at) {
  ev_timer_stop(t->loop, &t->wake);
  if (at < 0) return;
  ev_now_update(t->loop);
  double in = at - mb_monotonic();
  ev_timer_set(&t->wake, in < 0.001 ? 0.001 : in, 0.);
  ev_timer_start(t->loop, &t->wake);
}

/* Marks up to room ready messages of q held by t (delivery count + 1) and copies them into
 * batch; *next gets the earliest time a message not yet visible becomes so (-1: none). */
static size_t take_ready(mem_transport *t, mem_queue *q, unsigned room, mb_delivery **batch,
                         double *next) {
  double now = mb_monotonic();
  size_t n = 0;
  *next = -1;
  for (mem_msg *m = q->head; m; m = m->next) {
    if (m->holder) continue;
    if (m->visible_at > now) {
      if (*next < 0 || m->visible_at < *next) *next = m->visible_at;
      continue;
    }
    if (n >= room) continue;
    mb_delivery *d = make_delivery(m, q->name);
    if (d == NULL) continue; /* out of memory: it stays where it is for the next poll */
    m->holder = t;
    m->deliveries++;
    d->delivery_count = m->deliveries;
    batch[n++] = d;
  }
  return n;
}

static unsigned in_flight_room(const mem_transport *t) {
  return t->stats.in_flight >= t->max_in_flight ? 0 : t->max_in_flight - t->stats.in_flight;
}

/* Hands out what is ready within the free capacity, then arms the wake timer for what is
 * not; more than one batch waits for the next turn of the loop. */
static void poll_queue(mem_transport *t) {
  mem_queue *q = queue_find(t->bus, t->queue);
  if (!t->consuming || q == NULL) return;
  unsigned room = in_flight_room(t);
  mb_delivery *batch[MEM_BATCH];
  double next;
  size_t n = take_ready(t, q, room < MEM_BATCH ? room : MEM_BATCH, batch, &next);
  arm_wake(t, next);
  t->stats.in_flight += (unsigned)n;
  t->stats.delivered += n;
  if (n == MEM_BATCH) schedule_poll(t);
  for (size_t i = 0; i < n; i++) t->deliver(t->deliver_ud, batch[i]);
}

/* Replies are taken: removed from the reply queue as they are handed out. */
static void poll_replies(mem_transport *t) {
  mem_queue *q = t->reply_queue ? queue_find(t->bus, t->reply_queue) : NULL;
  mb_delivery *got[MEM_BATCH];
  size_t n = 0;
  double now = mb_monotonic();
  for (mem_msg *m = q ? q->head : NULL, *next; m && n < MEM_BATCH; m = next) {
    next = m->next;
    if (m->visible_at > now) continue;
    m->deliveries++;
    if ((got[n] = make_delivery(m, q->name)) == NULL) continue;
    n++;
    msg_unlink(q, m);
    msg_free(m);
  }
  if (n == MEM_BATCH) schedule_poll(t);
  for (size_t i = 0; i < n; i++) t->reply_fn(t->reply_ud, got[i]);
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  mem_transport *t = w->data;
  poll_replies(t);
  poll_queue(t);
}

static void schedule_poll(mem_transport *t) {
  if ((t->consuming || t->reply_queue) && !ev_is_active(&t->poll_soon)) {
    ev_timer_set(&t->poll_soon, 0., 0.);
    ev_timer_start(t->loop, &t->poll_soon);
  }
}

/* --- staging and applying what is sent ----------------------------------------------------- */

static void staged_free(staged *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(s[i].queue);
    msg_free(s[i].msg);
  }
  free(s);
}

static int stage_one(staged **s, size_t *n, size_t *cap, const mb_outgoing *o,
                     const char *queue) {
  if (*n == *cap) {
    size_t grown = *cap ? *cap * 2 : 8;
    staged *more = realloc(*s, grown * sizeof **s);
    if (more == NULL) return MB_ENOMEM;
    *s = more;
    *cap = grown;
  }
  staged *e = &(*s)[*n];
  e->to_requester = o->to_requester;
  e->queue = strdup(queue);
  e->msg = e->queue ? msg_copy(&o->env, o->delay) : NULL;
  if (e->msg == NULL) {
    free(e->queue);
    return MB_ENOMEM;
  }
  (*n)++;
  return MB_OK;
}

static int unroutable(const mb_outgoing *o, mb_err *err) {
  return mb_err_set(err, MB_EUNROUTABLE,
                    "no queue named '%.255s' (message %s of type %.200s): start the %.255s "
                    "endpoint once so that its queue exists, or fix the route",
                    o->dest ? o->dest : "", o->env.id, o->env.type ? o->env.type : "(none)",
                    o->dest ? o->dest : "");
}

/* Routes one message: to its queue, or a copy to each queue subscribed to its type. */
static int route_one(mem_bus *b, const mb_outgoing *o, staged **s, size_t *n, size_t *cap,
                     mb_err *err) {
  int rc = MB_OK;
  if (o->route == MB_ROUTE_PUBLISH) {
    for (mem_pair *p = b->subs; rc == MB_OK && p; p = p->next)
      if (o->env.type && strcmp(p->type, o->env.type) == 0) rc = stage_one(s, n, cap, o, p->name);
  } else if (queue_find(b, o->dest)) {
    rc = stage_one(s, n, cap, o, o->dest);
  } else if (o->to_requester) {
    mb_log_msg(MB_WARN, NULL, mb_envelope_log_ids(&o->env),
               "reply dropped: its requester's reply "
               "queue '%.255s' is gone (the requesting process ended)",
               o->dest ? o->dest : "");
  } else {
    return unroutable(o, err);
  }
  return rc == MB_OK ? MB_OK : mb_err_set(err, MB_ENOMEM, "out of memory");
}

/* Routes and copies every message (the caller keeps its own); nothing is stored yet. */
static int stage_all(mem_bus *b, mb_outgoing *const *msgs, size_t n, mem_op *op, mb_err *err) {
  size_t cap = 0;
  for (size_t i = 0; i < n; i++) {
    int rc = route_one(b, msgs[i], &op->msgs, &op->n, &cap, err);
    if (rc != MB_OK) return rc;
  }
  return MB_OK;
}

static void op_free(mem_op *op) {
  if (op == NULL) return;
  staged_free(op->msgs, op->n);
  free(op->ack_queue);
  free(op->mark);
  free(op);
}

static mem_msg *held_by(mem_transport *t, const char *queue, uint64_t seq) {
  mem_msg *m = msg_find(queue_find(t->bus, queue), seq);
  return m && m->holder == t ? m : NULL;
}

/* A delivery leaves t: acknowledged (freed) or back on its queue after delay. */
static void unhold(mem_transport *t, mem_queue *q, mem_msg *m, int ack, double delay) {
  t->stats.in_flight--;
  schedule_poll(t);
  if (ack) {
    msg_unlink(q, m);
    msg_free(m);
    t->stats.acks++;
    return;
  }
  m->holder = NULL;
  m->visible_at = mb_monotonic() + (delay > 0 ? delay : 0);
  wake_receivers(t->bus, q->name);
}

/* --- marks --------------------------------------------------------------------------------- */

static mem_mark *mark_find(mem_bus *b, const mb_mark *m) {
  for (mem_mark *k = b->marks; k; k = k->next)
    if (strcmp(k->m->endpoint, m->endpoint) == 0 && strcmp(k->m->type, m->type) == 0 &&
        strcmp(k->m->key, m->key) == 0)
      return k;
  return NULL;
}

/* Stores the copy m as its key's highest (taking it). */
static int mark_store(mem_bus *b, mb_mark *m) {
  mem_mark *k = mark_find(b, m);
  if (k == NULL && (k = calloc(1, sizeof *k)) != NULL) {
    k->next = b->marks;
    b->marks = k;
  }
  if (k == NULL) {
    free(m);
    return MB_ENOMEM;
  }
  free(k->m);
  k->m = m;
  return MB_OK;
}

static void marks_free(mem_mark *k) {
  for (mem_mark *next; k; k = next) {
    next = k->next;
    free(k->m);
    free(k);
  }
}

static int mem_mark_check(mb_transport *base, const mb_mark *m, int *stale, char *highest,
                          size_t len, mb_err *err) {
  (void)err;
  mem_mark *k = mark_find(((mem_transport *)base)->bus, m);
  *stale = k && mb_mark_cmp(m, k->m) <= 0;
  if (k) mb_mark_format(k->m, highest, len);
  return MB_OK;
}

/* The status op ends with if applied now; a queue gone since staging (a reply queue whose
 * process closed) drops a reply and fails anything else. */
static int op_check(mem_transport *t, mem_op *op) {
  if (op->status != MB_OK) return op->status;
  mem_mark *k = op->mark ? mark_find(t->bus, op->mark) : NULL;
  if (k && mb_mark_cmp(op->mark, k->m) <= 0) {
    snprintf(op->error, sizeof op->error,
             "stale: %s was overtaken while it was handled (mem://%s, %s %.128s)",
             op->mark->order_by, t->bus->name, op->mark->key_field, op->mark->key);
    return op->status = MB_ESTALE;
  }
  if (op->ack_queue && held_by(t, op->ack_queue, op->ack_seq) == NULL) {
    snprintf(op->error, sizeof op->error,
             "mem://%s: the delivery %llu of queue '%.255s' is "
             "no longer ours",
             t->bus->name, (unsigned long long)op->ack_seq, op->ack_queue);
    return op->status = MB_ELOST;
  }
  for (size_t i = 0; i < op->n; i++) {
    if (queue_find(t->bus, op->msgs[i].queue) || op->msgs[i].to_requester) continue;
    snprintf(op->error, sizeof op->error, "mem://%s: queue '%.255s' is gone (message %s)",
             t->bus->name, op->msgs[i].queue, op->msgs[i].msg->env.id);
    return op->status = MB_EUNROUTABLE;
  }
  return MB_OK;
}

/* Stores the outbox and acknowledges, or fails as op says; then calls its done fn. */
static void op_apply(mem_transport *t, mem_op *op) {
  int status = op_check(t, op);
  mem_queue *aq = op->ack_queue ? queue_find(t->bus, op->ack_queue) : NULL;
  if (status == MB_OK) {
    for (size_t i = 0; i < op->n; i++) {
      mem_queue *q = queue_find(t->bus, op->msgs[i].queue);
      if (q) msg_append(t->bus, q, op->msgs[i].msg);
      else msg_free(op->msgs[i].msg);
      op->msgs[i].msg = NULL;
    }
    if (aq) unhold(t, aq, msg_find(aq, op->ack_seq), 1, 0);
    if (op->mark && mark_store(t->bus, op->mark) != MB_OK)
      mb_log(MB_ERROR, NULL, NULL, NULL, "mem://%s: out of memory storing a mark", t->bus->name);
    op->mark = NULL;
  } else if (status == MB_ELOST && aq) {
    mem_msg *m = held_by(t, op->ack_queue, op->ack_seq);
    if (m) unhold(t, aq, m, 0, 0);
  }
  mb_done_fn done = op->done;
  void *ud = op->ud;
  char error[MB_ERRLEN];
  snprintf(error, sizeof error, "%s", op->error);
  op_free(op);
  done(ud, status, status == MB_OK ? NULL : error);
}

/* Applies op now, or keeps it for mb_mem_confirm in manual mode; id names the message
 * (the delivery of a complete, the first of a dispatch) in an injected failure. */
static void op_submit(mem_transport *t, mem_op *op, const char *id) {
  if (t->fail_count > 0) {
    t->fail_count--;
    op->status = t->fail_status;
    snprintf(op->error, sizeof op->error,
             "mem://%s: injected failure (%s) of the %s of message %s", t->bus->name,
             mb_strerror(op->status), op->ack_queue ? "complete" : "dispatch", id);
  }
  if (!t->manual) {
    op_apply(t, op);
    return;
  }
  if (t->ops_tail) t->ops_tail->next = op;
  else t->ops_head = op;
  t->ops_tail = op;
  t->stats.unconfirmed++;
}

static int op_start(mem_transport *t, mb_outgoing *const *msgs, size_t n, mb_done_fn done,
                    void *ud, mem_op **out, mb_err *err) {
  mem_op *op = calloc(1, sizeof *op);
  if (op == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  op->done = done;
  op->ud = ud;
  int rc = stage_all(t->bus, msgs, n, op, err);
  if (rc != MB_OK) {
    op_free(op);
    return rc;
  }
  *out = op;
  return MB_OK;
}

/* --- the vtable: sending and receiving ----------------------------------------------------- */

static int mem_dispatch(mb_transport *base, mb_outgoing *const *msgs, size_t n, mb_done_fn done,
                        void *ud, mb_err *err) {
  mem_transport *t = (mem_transport *)base;
  mem_op *op = NULL;
  int rc = op_start(t, msgs, n, done, ud, &op, err);
  if (rc == MB_OK) op_submit(t, op, n ? msgs[0]->env.id : "(none)");
  return rc;
}

static int mem_complete(mb_transport *base, mb_delivery *d, mb_outgoing *const *outbox, size_t n,
                        mb_done_fn done, void *ud, mb_err *err) {
  mem_transport *t = (mem_transport *)base;
  if (held_by(t, d->queue, d->tag) == NULL)
    return mb_err_set(err, MB_ELOST, "message %s in queue '%.255s' is no longer ours", d->env.id,
                      d->queue);
  mem_op *op = NULL;
  int rc = op_start(t, outbox, n, done, ud, &op, err);
  if (rc != MB_OK) return rc;
  op->ack_seq = d->tag;
  if ((op->ack_queue = strdup(d->queue)) == NULL) {
    op_free(op);
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  }
  op_submit(t, op, d->env.id);
  return MB_OK;
}

static int mem_complete_marked(mb_transport *base, mb_delivery *d, const mb_mark *m,
                               mb_outgoing *const *outbox, size_t n, mb_done_fn done, void *ud,
                               mb_err *err) {
  mem_transport *t = (mem_transport *)base;
  mb_mark *copy = mb_mark_copy(m);
  if (copy == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  mem_op *op = NULL;
  int rc = held_by(t, d->queue, d->tag) ? op_start(t, outbox, n, done, ud, &op, err)
                                        : mb_err_set(err, MB_ELOST,
                                                     "message %s in queue '%.255s' is no "
                                                     "longer ours",
                                                     d->env.id, d->queue);
  if (rc == MB_OK && (op->ack_queue = strdup(d->queue)) == NULL)
    rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc != MB_OK) {
    free(copy);
    op_free(op);
    return rc;
  }
  op->ack_seq = d->tag;
  op->mark = copy;
  op_submit(t, op, d->env.id);
  return MB_OK;
}

static int mem_release(mb_transport *base, mb_delivery *d, double delay, mb_err *err) {
  (void)err;
  mem_transport *t = (mem_transport *)base;
  mem_msg *m = held_by(t, d->queue, d->tag);
  if (m == NULL) return MB_OK; /* back on its queue already */
  t->stats.releases++;
  t->stats.last_release_delay = delay;
  unhold(t, queue_find(t->bus, d->queue), m, 0, delay);
  return MB_OK;
}

static int mem_consume(mb_transport *base, const char *queue, unsigned max_in_flight,
                       mb_deliver_fn fn, void *ud, mb_err *err) {
  mem_transport *t = (mem_transport *)base;
  if (t->consuming) return mb_err_set(err, MB_EINVAL, "already consuming queue '%s'", t->queue);
  char *copy = strdup(queue);
  if (copy == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  free(t->queue);
  t->queue = copy;
  t->max_in_flight = max_in_flight ? max_in_flight : 1;
  t->deliver = fn;
  t->deliver_ud = ud;
  t->consuming = 1;
  schedule_poll(t);
  return MB_OK;
}

static void mem_stop_consuming(mb_transport *base) {
  mem_transport *t = (mem_transport *)base;
  t->consuming = 0;
  ev_timer_stop(t->loop, &t->wake);
  if (t->reply_queue == NULL) ev_timer_stop(t->loop, &t->poll_soon);
}

static int mem_listen_replies(mb_transport *base, mb_deliver_fn fn, void *ud, char *address,
                              size_t len, mb_err *err) {
  mem_transport *t = (mem_transport *)base;
  if (t->reply_queue == NULL) {
    char queue[MB_QUEUE_NAME_MAX + 1];
    snprintf(queue, sizeof queue, MB_REPLY_QUEUE_PREFIX "%.200s.%llu", t->instance,
             (unsigned long long)++t->bus->reply_seq);
    int rc = queue_add(t->bus, queue, err);
    if (rc != MB_OK) return rc;
    if ((t->reply_queue = strdup(queue)) == NULL) {
      queue_drop(t->bus, queue);
      return mb_err_set(err, MB_ENOMEM, "out of memory");
    }
  }
  t->reply_fn = fn;
  t->reply_ud = ud;
  snprintf(address, len, "%s", t->reply_queue);
  schedule_poll(t);
  return MB_OK;
}

/* --- the vtable: topology and lookups ------------------------------------------------------ */

static mem_pair *pair_find(mem_pair *list, const char *type) {
  for (mem_pair *p = list; p; p = p->next)
    if (strcmp(p->type, type) == 0) return p;
  return NULL;
}

static int pair_add(mem_pair **list, const char *type, const char *name) {
  mem_pair *p = calloc(1, sizeof *p);
  if (p == NULL || (p->type = strdup(type)) == NULL || (p->name = strdup(name)) == NULL) {
    if (p) free(p->type);
    free(p);
    return MB_ENOMEM;
  }
  p->next = *list;
  *list = p;
  return MB_OK;
}

static void pairs_free(mem_pair *p) {
  for (mem_pair *next; p; p = next) {
    next = p->next;
    free(p->type);
    free(p->name);
    free(p);
  }
}

static int owner_conflict(mem_bus *b, const mb_topology *topo, mb_err *err) {
  for (size_t i = 0; i < topo->n_owned; i++) {
    const mem_pair *p = pair_find(b->owners, topo->owned[i]);
    if (p && strcmp(p->name, topo->endpoint) != 0)
      return mb_err_set(err, MB_EOWNER,
                        "%.200s is published by endpoint %.255s; an event has one publisher: "
                        "remove it from the publishes list of endpoint %.255s, or send a "
                        "command to %.255s and let it publish",
                        topo->owned[i], p->name, topo->endpoint, p->name);
  }
  return MB_OK;
}

/* The endpoint's subscriptions become exactly topo's. */
static int subscribe_all(mem_bus *b, const mb_topology *topo) {
  for (mem_pair **p = &b->subs; *p;) {
    if (strcmp((*p)->name, topo->endpoint) != 0) {
      p = &(*p)->next;
      continue;
    }
    mem_pair *gone = *p;
    *p = gone->next;
    gone->next = NULL;
    pairs_free(gone);
  }
  for (size_t i = 0; i < topo->n_subscriptions; i++)
    if (pair_add(&b->subs, topo->subscriptions[i], topo->endpoint) != MB_OK) return MB_ENOMEM;
  return MB_OK;
}

static int mem_declare(mb_transport *base, const mb_topology *topo, mb_err *err) {
  mem_bus *b = ((mem_transport *)base)->bus;
  int rc = owner_conflict(b, topo, err);
  if (rc == MB_OK) rc = queue_add(b, topo->endpoint, err);
  if (rc == MB_OK && topo->error_queue) rc = queue_add(b, topo->error_queue, err);
  if (rc == MB_OK && topo->audit_queue) rc = queue_add(b, topo->audit_queue, err);
  for (size_t i = 0; rc == MB_OK && i < topo->n_owned; i++)
    if (pair_find(b->owners, topo->owned[i]) == NULL &&
        pair_add(&b->owners, topo->owned[i], topo->endpoint) != MB_OK)
      rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  if (rc == MB_OK && subscribe_all(b, topo) != MB_OK)
    rc = mb_err_set(err, MB_ENOMEM, "out of memory");
  return rc;
}

static int mem_owner_of(mb_transport *base, const char *type, char *out, size_t len,
                        mb_err *err) {
  const mem_pair *p = pair_find(((mem_transport *)base)->bus->owners, type);
  if (p == NULL) return mb_err_set(err, MB_ENOTFOUND, "no endpoint publishes %.200s yet", type);
  snprintf(out, len, "%s", p->name);
  return MB_OK;
}

static int mem_depth(mb_transport *base, const char *queue, long *ready, long *later,
                     mb_err *err) {
  (void)err;
  mem_queue *q = queue_find(((mem_transport *)base)->bus, queue);
  double now = mb_monotonic();
  long waiting = 0;
  *ready = 0;
  for (mem_msg *m = q ? q->head : NULL; m; m = m->next) {
    if (m->holder == NULL && m->visible_at <= now) (*ready)++;
    else waiting++;
  }
  if (later) *later = waiting;
  return MB_OK;
}

static void mem_describe(mem_bus *b, mem_queue *q, mb_queue_fn fn, void *ud) {
  mb_queue_info info = {q->name, 0, 0, 0, 0};
  double now = mb_monotonic();
  for (mem_msg *m = q->head; m; m = m->next) {
    if (m->holder) info.in_flight++;
    else if (m->visible_at <= now) info.ready++;
    else info.delayed++;
  }
  for (mem_transport *t = b->members; t; t = t->next_member)
    if (t->consuming && strcmp(t->queue, q->name) == 0) info.consumers++;
  fn(ud, &info);
}

/* Every queue in the order they were made, or the named one. */
static int mem_queues(mb_transport *base, const char *name, mb_queue_fn fn, void *ud,
                      mb_err *err) {
  mem_bus *b = ((mem_transport *)base)->bus;
  if (name == NULL) {
    for (mem_queue *q = b->queues; q; q = q->next) mem_describe(b, q, fn, ud);
    return MB_OK;
  }
  mem_queue *q = queue_find(b, name);
  if (q == NULL)
    return mb_err_set(err, MB_ENOTFOUND, "no queue named '%.255s' on mem://%s", name, b->name);
  mem_describe(b, q, fn, ud);
  return MB_OK;
}

/* The oldest message of q with after < seq <= last, or NULL. */
static mem_msg *browse_next(mem_queue *q, uint64_t after, uint64_t last) {
  for (mem_msg *m = q ? q->head : NULL; m; m = m->next)
    if (m->seq > after && m->seq <= last) return m;
  return NULL;
}

static int take(mem_bus *b, const char *queue, uint64_t seq, const char *id, mb_err *err) {
  mem_queue *q = queue_find(b, queue);
  mem_msg *m = msg_find(q, seq);
  if (m && m->holder == NULL) {
    msg_unlink(q, m);
    msg_free(m);
    return MB_OK;
  }
  return mb_err_set(err, MB_ENOTFOUND,
                    "message %s of queue '%.255s' is being handled: not "
                    "removed",
                    id, queue);
}

/* Looks the queue up again for every message: fn may send, take or close meanwhile. */
static int mem_browse(mb_transport *base, const char *queue, mb_browse_fn fn, void *ud,
                      mb_err *err) {
  mem_bus *b = ((mem_transport *)base)->bus;
  mem_queue *q = queue_find(b, queue);
  uint64_t after = 0, last = q && q->tail ? q->tail->seq : 0;
  mem_msg *m;
  while ((m = browse_next(queue_find(b, queue), after, last)) != NULL) {
    mb_delivery *d = make_delivery(m, queue);
    if (d == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory reading queue '%s'", queue);
    char id[MB_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", d->env.id);
    after = m->seq;
    int what = fn(ud, d);
    if (what & MB_BROWSE_TAKE) {
      int rc = take(b, queue, after, id, err);
      if (rc != MB_OK) return rc;
    }
    if (what & MB_BROWSE_STOP) break;
  }
  return MB_OK;
}

static int mem_remove(mb_transport *base, const char *queue, const char *id, mb_err *err) {
  mem_queue *q = queue_find(((mem_transport *)base)->bus, queue);
  for (mem_msg *m = q ? q->head : NULL; m; m = m->next) {
    if (m->holder || strcmp(m->env.id, id) != 0) continue;
    msg_unlink(q, m);
    msg_free(m);
    return MB_OK;
  }
  return mb_err_set(err, MB_ENOTFOUND, "queue '%.255s' holds no message %.64s", queue, id);
}

/* --- open and close ------------------------------------------------------------------------ */

static mem_bus *bus_get(const char *name) {
  for (mem_bus *b = buses; b; b = b->next)
    if (strcmp(b->name, name) == 0) return b;
  mem_bus *b = calloc(1, sizeof *b);
  if (b == NULL || (b->name = strdup(name)) == NULL) {
    free(b);
    return NULL;
  }
  b->next = buses;
  buses = b;
  return b;
}

static void bus_put(mem_bus *b) {
  if (--b->refs > 0) return;
  for (mem_bus **p = &buses; *p; p = &(*p)->next)
    if (*p == b) {
      *p = b->next;
      break;
    }
  for (mem_queue *q = b->queues, *next; q; q = next) {
    next = q->next;
    queue_free(q);
  }
  pairs_free(b->subs);
  pairs_free(b->owners);
  marks_free(b->marks);
  free(b->name);
  free(b);
}

static int mem_open(mb_transport **out, struct ev_loop *loop, const char *url,
                    const char *instance, mb_err *err) {
  const char *name = url + strlen("mem://");
  if (name[0] == '\0' || strlen(name) > 200 || strpbrk(name, "?/ "))
    return mb_err_set(err, MB_EINVAL,
                      "the mem URL '%.300s' needs a bus name: mem://NAME "
                      "(1-200 characters, no '/', '?' or space)",
                      url);
  mem_transport *t = calloc(1, sizeof *t);
  mem_bus *b = t ? bus_get(name) : NULL;
  if (b == NULL) {
    free(t);
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  }
  b->refs++;
  t->base.ops = &mb_mem_transport;
  t->loop = loop;
  t->bus = b;
  t->next_member = b->members;
  b->members = t;
  t->stats.last_release_delay = -1;
  snprintf(t->instance, sizeof t->instance, "%s", instance ? instance : "moonbus");
  ev_timer_init(&t->poll_soon, on_poll, 0., 0.);
  ev_timer_init(&t->wake, on_poll, 0., 0.);
  t->poll_soon.data = t->wake.data = t;
  *out = &t->base;
  return MB_OK;
}

/* Every delivery t holds goes back to its queue at once, its count kept. */
static void give_back_all(mem_transport *t) {
  double now = mb_monotonic();
  for (mem_queue *q = t->bus->queues; q; q = q->next) {
    int any = 0;
    for (mem_msg *m = q->head; m; m = m->next)
      if (m->holder == t) {
        m->holder = NULL;
        m->visible_at = now;
        any = 1;
      }
    if (any) wake_receivers(t->bus, q->name);
  }
}

static void mem_close(mb_transport *base) {
  mem_transport *t = (mem_transport *)base;
  if (t == NULL) return;
  ev_timer_stop(t->loop, &t->poll_soon);
  ev_timer_stop(t->loop, &t->wake);
  t->consuming = 0;
  for (mem_op *op = t->ops_head, *next; op; op = next) {
    next = op->next;
    op_free(op);
  }
  for (mem_transport **p = &t->bus->members; *p; p = &(*p)->next_member)
    if (*p == t) {
      *p = t->next_member;
      break;
    }
  give_back_all(t);
  if (t->reply_queue) queue_drop(t->bus, t->reply_queue);
  bus_put(t->bus);
  free(t->reply_queue);
  free(t->queue);
  free(t);
}

const mb_transport_ops mb_mem_transport = {
    .open = mem_open,
    .declare = mem_declare,
    .dispatch = mem_dispatch,
    .consume = mem_consume,
    .stop_consuming = mem_stop_consuming,
    .complete = mem_complete,
    .release = mem_release,
    .owner_of = mem_owner_of,
    .depth = mem_depth,
    .queues = mem_queues,
    .browse = mem_browse,
    .remove = mem_remove,
    .listen_replies = mem_listen_replies,
    .mark_check = mem_mark_check,
    .complete_marked = mem_complete_marked,
    .close = mem_close,
};

/* --- test controls ------------------------------------------------------------------------- */

int mb_mem_is(const mb_transport *t) { return t && t->ops == &mb_mem_transport; }

int mb_mem_put(mb_transport *base, const char *queue, const mb_envelope *env,
               const mb_mem_raw *raw, mb_err *err) {
  if (!mb_mem_is(base)) return mb_err_set(err, MB_EINVAL, "mb_mem_put: not a mem:// transport");
  mem_transport *t = (mem_transport *)base;
  mem_queue *q = queue_find(t->bus, queue);
  if (q == NULL)
    return mb_err_set(err, MB_EUNROUTABLE, "no queue named '%.255s' on mem://%s",
                      queue ? queue : "", t->bus->name);
  mem_msg *m = msg_copy(env, raw ? raw->delay : 0);
  if (m && raw && raw->problem && (m->problem = strdup(raw->problem)) == NULL) {
    msg_free(m);
    m = NULL;
  }
  if (m == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  m->deliveries = raw ? raw->deliveries : 0;
  msg_append(t->bus, q, m);
  return MB_OK;
}

long mb_mem_count(mb_transport *base, const char *queue) {
  if (!mb_mem_is(base)) return 0;
  mem_queue *q = queue_find(((mem_transport *)base)->bus, queue);
  long n = 0;
  for (mem_msg *m = q ? q->head : NULL; m; m = m->next) n++;
  return n;
}

void mb_mem_manual_confirm(mb_transport *base, int on) {
  if (mb_mem_is(base)) ((mem_transport *)base)->manual = on != 0;
}

size_t mb_mem_confirm(mb_transport *base, size_t n) {
  if (!mb_mem_is(base)) return 0;
  mem_transport *t = (mem_transport *)base;
  size_t done = 0;
  while (done < n && t->ops_head) {
    mem_op *op = t->ops_head;
    t->ops_head = op->next;
    if (t->ops_head == NULL) t->ops_tail = NULL;
    op->next = NULL;
    t->stats.unconfirmed--;
    done++;
    op_apply(t, op);
  }
  return done;
}

size_t mb_mem_confirm_all(mb_transport *base) {
  if (!mb_mem_is(base)) return 0;
  return mb_mem_confirm(base, ((mem_transport *)base)->stats.unconfirmed);
}

void mb_mem_fail_next(mb_transport *base, int status, unsigned count) {
  if (!mb_mem_is(base)) return;
  mem_transport *t = (mem_transport *)base;
  t->fail_status = status == MB_OK ? MB_EIO : status;
  t->fail_count = count;
}

int mb_mem_stats_get(mb_transport *base, mb_mem_stats *out) {
  if (!mb_mem_is(base)) return MB_EINVAL;
  *out = ((mem_transport *)base)->stats;
  return MB_OK;
}
