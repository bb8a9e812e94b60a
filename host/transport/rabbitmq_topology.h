/* rabbitmq_topology.h — the broker-side objects of the RabbitMQ transport (DESIGN §5),
 * declared through synchronous RPCs on one channel of one connection: durable endpoint
 * queues (quorum by default), event fanout exchanges and their bindings, the owner marker
 * exchange that enforces one publisher per event, and the delay infrastructure (one TTL
 * queue per bit of the delay in seconds, chained by dead-letter exchanges).
 *
 * Provides: one call per object, each MB_OK or a status and a sentence naming the queue,
 * exchange or event at fault. A channel error (404, 406) reopens the channel and is
 * reported; a connection error sets rpc->dead so the caller reconnects.
 * Uses: rabbitmq-c, rabbitmq_conn.h, rabbitmq_wire.h. Never: publishes or consumes. */
#ifndef MOONBUS_TRANSPORT_RABBITMQ_TOPOLOGY_H
#define MOONBUS_TRANSPORT_RABBITMQ_TOPOLOGY_H

#include <amqp.h>

#include "status.h"

typedef struct mb_amqp_rpc {
  amqp_connection_state_t conn;
  amqp_channel_t channel;
  int dead; /* set when the connection itself failed: reconnect */
} mb_amqp_rpc;

/* A durable queue: quorum unless classic. MB_EINVAL when it exists with other settings. */
int mb_amqp_declare_queue(mb_amqp_rpc *r, const char *name, int classic, mb_err *err);
/* A reply queue for this connection only: exclusive, auto-delete, not durable. */
int mb_amqp_declare_reply_queue(mb_amqp_rpc *r, const char *name, mb_err *err);
/* Ready messages of an existing queue: MB_ENOTFOUND when there is none, MB_EBUSY when it
 * exists but is exclusive to another connection (RESOURCE_LOCKED: a foreign client's
 * server-named reply queue), so that nobody else may look at it. */
int mb_amqp_queue_depth(mb_amqp_rpc *r, const char *name, long *ready, mb_err *err);
/* The same passive queue.declare: its ready messages and its consumers. */
int mb_amqp_queue_counts(mb_amqp_rpc *r, const char *name, long *ready, long *consumers,
                         mb_err *err);
/* A durable exchange of type ("fanout", "topic"). */
int mb_amqp_declare_exchange(mb_amqp_rpc *r, const char *name, const char *type, mb_err *err);
/* The fanout exchange of event type (moonbus.event.<type>). */
int mb_amqp_declare_event(mb_amqp_rpc *r, const char *type, mb_err *err);
/* Binds (bind = 1) or unbinds queue to event type's exchange. */
int mb_amqp_subscribe(mb_amqp_rpc *r, const char *queue, const char *type, int bind, mb_err *err);
/* Claims event type for endpoint through its owner marker. MB_EOWNER naming the owner. */
int mb_amqp_claim_event(mb_amqp_rpc *r, const char *type, const char *endpoint, mb_err *err);
/* The endpoint that owns event type (into out), or MB_ENOTFOUND. */
int mb_amqp_event_owner(mb_amqp_rpc *r, const char *type, char *out, size_t len, mb_err *err);

/* The delay exchanges of every level and the final delivery exchange. */
int mb_amqp_declare_delay_exchanges(mb_amqp_rpc *r, mb_err *err);
/* Level's TTL queue, bound to its exchange (the exchanges must exist). */
int mb_amqp_declare_delay_level(mb_amqp_rpc *r, int level, mb_err *err);
/* Lets messages delayed for dest (a queue, or an event exchange when event) reach it. */
int mb_amqp_bind_delayed(mb_amqp_rpc *r, const char *dest, int event, mb_err *err);

#endif
