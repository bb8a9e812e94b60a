/* rabbitmq_internal.h — what the files of the RabbitMQ transport share, and nothing else
 * includes: the transport's state (rmq), its two connections, outgoing batches, and the
 * functions each file provides to the others.
 *   rabbitmq.c          the vtable: declare, send, consume, release, lookups, open, close
 *   rabbitmq_session.c  connections: reading frames, heartbeats, losing and reconnecting
 *   rabbitmq_publish.c  publishing: batches, the confirm window, returns, delays' routing
 * Never included outside host/transport/rabbitmq*.c. */
#ifndef MOONBUS_TRANSPORT_RABBITMQ_INTERNAL_H
#define MOONBUS_TRANSPORT_RABBITMQ_INTERNAL_H

#include <amqp.h>
#include <ev.h>
#include <pthread.h>
#include <stdint.h>

#include "transport.h"
#include "transport/rabbitmq_conn.h"
#include "transport/rabbitmq_topology.h"

#define CH_RPC 1       /* declares and lookups */
#define CH_WORK 2      /* publishing with confirms; consuming and acks */
#define CH_BROWSE 3    /* basic.get for browsing a queue */
#define CH_REPLY 4     /* replies=queue: the exclusive reply queue's consumer (consume conn.) */
#define WINDOW 512     /* unconfirmed publishes at most */
#define SEND_WAIT 30.0 /* seconds a send outside a handler waits for the broker */
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 10.0
#define STABLE_AFTER 10.0 /* seconds a session must stay up before the back-off resets */

typedef struct batch {
  mb_done_fn done;
  void *ud;
  size_t left; /* messages not yet confirmed */
  int status;
  char error[MB_ERRLEN];
  int acks; /* complete(): ack tag on session after the last confirm */
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
  int event, mandatory, to_requester;
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
  int content; /* 0, AMQP_BASIC_DELIVER_METHOD or AMQP_BASIC_RETURN_METHOD */
  int reply;   /* the delivery is a reply (direct reply-to or CH_REPLY) */
  uint64_t tag;
  int redelivered;
  char returned_key[300], returned_text[300];
  mb_delivery *d;
  char *body;
  uint64_t body_size, body_have; /* as the broker announced it: 64 bits, never trusted */
  int skip;                      /* the body is over the limit (or a return's): not kept */
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
  char shown[256]; /* the URL without its password */
  size_t node;     /* the node of the current session */
  amqp_link pub, con;
  int connected, lost, blocked;
  unsigned long reconnects; /* sessions opened again after one was lost */
  unsigned session;
  char lost_reason[MB_ERRLEN];
  ev_timer heartbeat, teardown, reconnect;
  double backoff;
  ev_tstamp up_since; /* when the current session was installed */
  dial dial;          /* a reconnect in progress on the dialer thread */
  pthread_t dialer;
  int dialing;
  ev_async dialed;
  /* what to redeclare and resume after a reconnect */
  char *endpoint, *error_queue, *audit_queue;
  string_set subscriptions, owned, bound;
  int classic, declared;
  size_t max_body; /* bodies over it are not read (topology; else MB_AMQP_BODY_MAX) */
  char *queue;
  unsigned max_in_flight;
  mb_deliver_fn deliver;
  void *deliver_ud;
  int consuming;
  char consumer_tag[256];
  /* replies to this process's requests (listen_replies) */
  int reply_queue_mode;   /* ?replies=queue: an exclusive queue, not direct reply-to */
  mb_deliver_fn reply_fn; /* NULL until listening */
  void *reply_ud;
  char reply_address[300];
  /* publishing */
  msg_list waiting, unconfirmed;
  uint64_t next_seq;
  string_set known_queues, known_events, delayed_targets;
  int delay_exchanges;
  uint32_t delay_levels;
  hold *holds;
} rmq;

/* rabbitmq.c */
int rmq_set_has(const string_set *s, const char *v);
int rmq_set_add(string_set *s, const char *v);
void rmq_set_clear(string_set *s);
mb_amqp_rpc rmq_rpc_on(amqp_link *l, amqp_channel_t channel);
/* rabbitmq-c may hold frames read during an RPC or a publish: have the loop handle them
 * soon. After an RPC, a failed connection marks the session lost instead. */
void rmq_feed_pending(rmq *t, amqp_link *l);
void rmq_after_rpc(rmq *t, amqp_link *l, mb_amqp_rpc *r, const char *what);
/* Declares the saved topology (again, after a reconnect) and consumes. */
int rmq_declare_all(rmq *t, mb_err *err);
int rmq_start_consumer(rmq *t, mb_err *err);
/* Consumes the reply address (again, after a reconnect: before anything is published). */
int rmq_start_replies(rmq *t, mb_err *err);

/* rabbitmq_session.c */
/* Marks the session lost; the teardown and the reconnect run later, from the loop. */
void rmq_mark_lost(rmq *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first session, waited for (a starting host must know at once). */
int rmq_session_open(rmq *t, mb_err *err);
void rmq_session_close(rmq *t, int graceful);
/* Watcher callbacks, set up by rmq_open. */
void rmq_on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents);
void rmq_on_teardown(struct ev_loop *loop, ev_timer *w, int revents);
void rmq_on_reconnect(struct ev_loop *loop, ev_timer *w, int revents);
void rmq_on_dialed(struct ev_loop *loop, ev_async *w, int revents);

/* rabbitmq_publish.c */
/* Publishes waiting messages while the connection may take them. */
void rmq_pump(rmq *t);
/* basic.ack / basic.nack from the broker; a basic.return of message id. */
void rmq_confirmed(rmq *t, uint64_t tag, int multiple, int ok);
void rmq_returned(rmq *t, const char *id);
/* Queues msgs as batch b (taking b) and publishes what it can; b is freed on error. */
int rmq_send_batch(rmq *t, mb_outgoing *const *msgs, size_t n, batch *b, mb_err *err);
batch *rmq_batch_new(mb_done_fn done, void *ud, ev_tstamp now);
void rmq_batch_finish(rmq *t, batch *b);
/* After a lost session: sends outside handlers wait for the next one (up to SEND_WAIT),
 * handlers' batches fail. */
void rmq_requeue_or_fail(rmq *t);
void rmq_fail_expired(rmq *t);
void rmq_free_pending(rmq *t);

#endif
