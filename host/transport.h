/* transport.h — the one interface every transport implements (DESIGN §5).
 *
 * Provides: the vtable (open, declare, dispatch, consume, complete, release, close) and
 * the structs that cross it: outgoing messages, deliveries, the topology of an endpoint,
 * marks (mark.h: out-of-order protection, two optional ops, why they are here: mark.h).
 * The pipeline never knows which transport it runs on; a transport never knows Lua.
 * Every call happens on the loop thread. A completion callback may run before the call
 * that takes it returns (SQLite commits at once) or later from the loop (RabbitMQ waits
 * for publisher confirms); callers must handle both.
 *
 * Implementations: transport/sqlite.c (sqlite://PATH, the embedded default),
 * transport/rabbitmq.c (amqp:// and amqps://). */
#ifndef MOONBUS_TRANSPORT_H
#define MOONBUS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "mark.h"
#include "status.h"

struct ev_loop;

#define MB_DEFAULT_TRANSPORT "sqlite://./.moonbus/bus.db"
#define MB_QUEUE_NAME_MAX 255

typedef enum mb_route {
  MB_ROUTE_QUEUE,  /* to the queue named by dest: commands, replies, error and audit copies */
  MB_ROUTE_PUBLISH /* to every queue subscribed to env.type: events */
} mb_route;

typedef struct mb_outgoing {
  mb_envelope env;
  mb_route route;
  char *dest;       /* queue name for MB_ROUTE_QUEUE; NULL for MB_ROUTE_PUBLISH */
  double delay;     /* seconds before it may be delivered; 0 = at once */
  int to_requester; /* a reply to a request's reply address: if that address is gone (its
                       process ended), the reply is dropped with a warning, not an error */
  int archive;      /* an error-queue or audit copy: its time to live does not apply */
} mb_outgoing;

/* Outgoing messages live on the heap: init zeroes one, free releases its envelope, dest
 * and the struct itself (NULL is fine). */
void mb_outgoing_init(mb_outgoing *m);
void mb_outgoing_free(mb_outgoing *m);

typedef struct mb_delivery {
  mb_envelope env;
  char *queue;             /* the queue it was received from */
  uint32_t delivery_count; /* durable count of deliveries, this one included (>= 1) */
  char *problem;           /* non-NULL when the transport could not decode the envelope
                              (e.g. malformed headers): the pipeline parks it as poison */
  uint64_t tag;            /* the transport's handle (SQLite: the row's seq) */
  void *transport_data;    /* owned by the transport; freed by complete/release */
} mb_delivery;

/* Frees the envelope, queue and problem (not transport_data) and the struct itself. */
void mb_delivery_free(mb_delivery *d);

typedef struct mb_topology {
  const char *endpoint;             /* the endpoint's input queue */
  const char *error_queue;          /* declared so that poison can always be parked */
  const char *audit_queue;          /* declared for audit copies; NULL: audit is off */
  const char *const *subscriptions; /* event types the endpoint handles */
  size_t n_subscriptions;
  const char *const *owned; /* event types the endpoint publishes */
  size_t n_owned;
  int classic_queue; /* RabbitMQ: a classic endpoint queue, not quorum */
  size_t max_body;   /* a delivery whose body is larger comes without it,
                                         its problem set (0: the transport's own cap) */
} mb_topology;

/* A delivery arrives; ownership of d passes to the callee, which must later call
 * complete or release on it exactly once and then mb_delivery_free it. */
typedef void (*mb_deliver_fn)(void *ud, mb_delivery *d);
/* Outcome of dispatch/complete: MB_OK, or a status and a sentence naming the culprit. */
typedef void (*mb_done_fn)(void *ud, int status, const char *error);

/* What a browse callback wants done with the message it was shown: go on (0), or any of
 * MB_BROWSE_TAKE (remove it from the queue) and MB_BROWSE_STOP (end the walk). */
#define MB_BROWSE_NEXT 0
#define MB_BROWSE_TAKE 1
#define MB_BROWSE_STOP 2
/* Shown one copy of a message: the callee owns d and frees it with mb_delivery_free. */
typedef int (*mb_browse_fn)(void *ud, mb_delivery *d);

/* One queue as `moonbus queues` shows it; a count of -1: the transport cannot tell. */
typedef struct mb_queue_info {
  const char *name;
  long ready;     /* deliverable now */
  long delayed;   /* not deliverable yet: sent with a delay, or waiting for a retry */
  long in_flight; /* delivered to a consumer and not yet acknowledged */
  long consumers; /* consumers of the queue (SQLite: processes holding a lease on it) */
} mb_queue_info;
typedef void (*mb_queue_fn)(void *ud, const mb_queue_info *q);

typedef struct mb_transport mb_transport;

typedef struct mb_transport_ops {
  /* Opens the transport named by url on loop. instance names this process in logs;
   * a transport that leases messages makes its own lease token unique per open. */
  int (*open)(mb_transport **out, struct ev_loop *loop, const char *url, const char *instance,
              mb_err *err);
  /* Creates the endpoint queue and the error queue, makes the endpoint's subscription
   * set exactly topo->subscriptions, and claims topo->owned. An owned type claimed by
   * another endpoint fails the whole declare with MB_EOWNER and changes nothing. */
  int (*declare)(mb_transport *t, const mb_topology *topo, mb_err *err);
  /* Ownership of the messages of dispatch and complete stays with the caller, who frees
   * them when the call returns; the transport may move their envelopes out (leaving them
   * empty) instead of copying what it must keep until the broker confirms.
   * Sends messages now (outside a handler). MB_ROUTE_QUEUE to a queue that does not
   * exist is MB_EUNROUTABLE naming the queue; nothing of the batch is sent then.
   * done is called exactly once, unless dispatch itself returns an error. */
  int (*dispatch)(mb_transport *t, mb_outgoing *const *msgs, size_t n, mb_done_fn done, void *ud,
                  mb_err *err);
  /* Starts delivering messages of queue to fn, at most max_in_flight not yet
   * completed/released at once. */
  int (*consume)(mb_transport *t, const char *queue, unsigned max_in_flight, mb_deliver_fn fn,
                 void *ud, mb_err *err);
  /* Stops new deliveries; in-flight ones may still be completed or released. */
  void (*stop_consuming)(mb_transport *t);
  /* A handler succeeded: sends outbox and acknowledges d, atomically where the transport
   * can (SQLite: one transaction). MB_ELOST if d is no longer ours (its lease expired and
   * another consumer took it): then nothing of the outbox is sent. done is called exactly
   * once, unless complete itself returns an error. */
  int (*complete)(mb_transport *t, mb_delivery *d, mb_outgoing *const *outbox, size_t n,
                  mb_done_fn done, void *ud, mb_err *err);
  /* A handler failed: d goes back to its queue, deliverable again after delay seconds;
   * its delivery count is kept. */
  int (*release)(mb_transport *t, mb_delivery *d, double delay, mb_err *err);
  /* The endpoint that owns event type (out gets its name), or MB_ENOTFOUND. */
  int (*owner_of)(mb_transport *t, const char *type, char *out, size_t outlen, mb_err *err);
  /* Counts the messages of queue: ready now, and not yet visible (delayed or leased); later
   * may be NULL when only the ready ones are wanted (cheaper: a metrics sample). */
  int (*depth)(mb_transport *t, const char *queue, long *ready, long *later, mb_err *err);
  /* Describes queue name to fn, or (name NULL) every queue the transport knows, by name.
   * A named queue that does not exist is MB_ENOTFOUND naming it; a transport that cannot
   * list its queues (RabbitMQ without the management plugin) answers NULL with MB_EINVAL
   * saying so. Optional: NULL on a transport that cannot tell. */
  int (*queues)(mb_transport *t, const char *name, mb_queue_fn fn, void *ud, mb_err *err);
  /* Shows fn a copy of every message of queue, oldest first, one at a time (tools and
   * tests read the error queue this way): the whole queue, however long, bounded by the
   * messages it held when the walk began (one that arrives meanwhile is not shown; none
   * is shown twice). A message stays where it is unless fn takes it. A message whose
   * envelope does not decode comes with its problem set. A queue that does not exist is
   * an empty one. A message fn takes that can no longer be removed (a consumer holds it)
   * ends the walk with MB_ENOTFOUND naming it. */
  int (*browse)(mb_transport *t, const char *queue, mb_browse_fn fn, void *ud, mb_err *err);
  /* Removes the message whose id is id from queue (tools: deleting or retrying a parked
   * message). MB_ENOTFOUND if the queue holds no message with that id (a message being
   * handled right now is not removed). */
  int (*remove)(mb_transport *t, const char *queue, const char *id, mb_err *err);
  /* Opens this process's reply address, where replies to its requests come back (DESIGN
   * §5), and hands every reply that arrives there to fn. Replies are taken without an
   * acknowledgement (a reply is worth nothing once its requester is gone, so none is
   * delivered twice); the callee owns each and frees it with mb_delivery_free. address
   * gets the value for reply_to. It lives until close: stop_consuming leaves it open, so
   * that handlers draining at shutdown still get their replies. */
  int (*listen_replies)(mb_transport *t, mb_deliver_fn fn, void *ud, char *address, size_t len,
                        mb_err *err);
  /* Out-of-order protection (DESIGN §14, mark.h). Optional: both NULL on a transport with
   * no database of its own (the pipeline then keeps marks in a local store).
   * mark_check: *stale = 1 if a value higher than or equal to m's was handled for m's key;
   * highest gets that value as text (mb_mark_format).
   * complete_marked: complete, and in the same transaction m's value becomes its key's
   * highest, provided it is still higher than the stored one; if another consumer stored
   * a higher or equal one since mark_check, nothing is done (no ack, no outbox) and it
   * ends with MB_ESTALE (returned, or through done as any other failure), so the caller
   * can still discard the message. */
  int (*mark_check)(mb_transport *t, const mb_mark *m, int *stale, char *highest, size_t len,
                    mb_err *err);
  int (*complete_marked)(mb_transport *t, mb_delivery *d, const mb_mark *m,
                         mb_outgoing *const *outbox, size_t n, mb_done_fn done, void *ud,
                         mb_err *err);
  /* How many times the transport connected again after losing its connection (metrics).
   * Optional: NULL on a transport without a connection to lose. */
  unsigned long (*reconnects)(const mb_transport *t);
  /* Closes everything; leased in-flight deliveries become visible again at once. */
  void (*close)(mb_transport *t);
} mb_transport_ops;

struct mb_transport {
  const mb_transport_ops *ops;
};

/* Opens the transport for url (NULL: MB_DEFAULT_TRANSPORT), chosen by its scheme. */
int mb_transport_open(mb_transport **out, struct ev_loop *loop, const char *url,
                      const char *instance, mb_err *err);
/* The project folder that holds the embedded bus (bus.db) and the ops store. */
#define MB_PROJECT_DIR ".moonbus"
/* The folder search of the default bus: out gets START/.moonbus for the nearest of the
 * absolute path start and its parents (up to /) that holds a .moonbus folder, as git
 * finds .git. 1 when found, else 0. */
int mb_find_moonbus_dir(const char *start, char *out, size_t len);
/* The bus used when --transport, $MOONBUS_TRANSPORT and the endpoint name none:
 * sqlite://DIR/bus.db with DIR the .moonbus folder mb_find_moonbus_dir finds from the
 * current directory, else the current directory's own (created when a host opens it).
 * DIR is absolute. MB_OK, or MB_EIO/MB_EINVAL (no current directory, a path too long). */
int mb_transport_default_url(char *out, size_t len);
/* url for a log line or a message: credentials redacted (url.h) and a relative sqlite://
 * path made absolute, so that the line says which file it is. */
void mb_transport_display_url(const char *url, char *out, size_t len);
/* MB_OK unless url names a store that does not exist yet, which opening would create: a
 * sqlite:// file that is not there is MB_ENOTFOUND naming its path. For commands that only
 * read a bus (a mistyped path must not look like an empty bus). */
int mb_transport_must_exist(const char *url, mb_err *err);
/* Copies of the first max messages of queue, oldest first, left where they are (browse
 * stopped after max); *n gets how many. Free each with mb_delivery_free. */
int mb_transport_browse_first(mb_transport *t, const char *queue, size_t max, mb_delivery **out,
                              size_t *n, mb_err *err);
/* 1 if queue is a per-process reply address (moonbus.reply.* or RabbitMQ's direct
 * reply-to): replies sent there are marked to_requester. */
int mb_is_reply_address(const char *queue);
#define MB_REPLY_QUEUE_PREFIX "moonbus.reply."
/* RabbitMQ's direct reply-to pseudo-queue; the address a requester hands out is this name
 * with a suffix ("amq.rabbitmq.reply-to.g1h2..."), so it is matched as a prefix. */
#define MB_AMQP_DIRECT_REPLY_TO "amq.rabbitmq.reply-to"
#define MB_AMQP_DIRECT_REPLY_TO_LEN (sizeof MB_AMQP_DIRECT_REPLY_TO - 1)
/* Why a queue name is refused, or NULL: 1-255 bytes of printable ASCII, no spaces. */
const char *mb_queue_name_problem(const char *name);

#endif
