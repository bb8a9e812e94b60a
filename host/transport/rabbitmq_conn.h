/* rabbitmq_conn.h — AMQP connection set-up for the RabbitMQ transport: URLs with several
 * cluster nodes, credentials that never reach a log, TLS options, and a login that asks
 * for the capabilities rabbitmq-c 0.11 leaves out (DESIGN §5).
 *
 * Provides: mb_amqp_url (parse, free; url.h shows one), mb_amqp_connect, mb_amqp_reply_error.
 * Uses: rabbitmq-c (only the transport/rabbitmq*.c files include amqp.h).
 * Never: writes a password into an error or log line. */
#ifndef MOONBUS_TRANSPORT_RABBITMQ_CONN_H
#define MOONBUS_TRANSPORT_RABBITMQ_CONN_H

#include <amqp.h>

#include "status.h"

#define MB_AMQP_MAX_NODES 8
#define MB_AMQP_FRAME_MAX 131072     /* negotiated with the broker: what we send */
#define MB_AMQP_FRAME_MAX_IN 1048576 /* what the consume connection accepts (x-death grows) */

typedef struct mb_amqp_node {
  char *host;
  int port;
} mb_amqp_node;

typedef struct mb_amqp_url {
  int tls;                               /* amqps:// */
  char *user, *password, *vhost;         /* percent-decoded; vhost default "/" */
  mb_amqp_node nodes[MB_AMQP_MAX_NODES]; /* tried in turn */
  size_t n_nodes;
  int heartbeat;             /* seconds, ?heartbeat= (default 30; 0 = off) */
  double connect_timeout;    /* seconds, ?connect_timeout= (default 5) */
  char *cacert, *cert, *key; /* ?cacert= ?cert= ?key= (PEM files) */
  int verify;                /* ?verify=peer (default) | none */
  int reply_queue;           /* ?replies=queue (an exclusive queue per process)
                                             | direct (RabbitMQ's direct reply-to, default) */
} mb_amqp_url;

/* amqp[s]://[user[:password]@]host[:port][,host[:port]...][/vhost][?options]. Defaults:
 * guest/guest, port 5672 (5671 for amqps), vhost "/". The user info ends at the last '@'
 * (mb_url_userinfo: a password may hold '@' or '/' unescaped; an '@' in the vhost or an
 * option must be %40). MB_EINVAL with a reason that shows the URL redacted. */
int mb_amqp_url_parse(const char *url, mb_amqp_url *out, mb_err *err);
void mb_amqp_url_free(mb_amqp_url *u);

/* Opens one connection to node i of u and logs in with the capabilities
 * consumer_cancel_notify, connection.blocked, publisher_confirms and basic.nack, and
 * connection_name = name. Socket, handshake and RPC waits are bounded by
 * connect_timeout. MB_ENOTCONN if the node cannot be reached, else MB_EIO (login
 * refused...); err names the node (never the password) and the reason. */
int mb_amqp_connect(const mb_amqp_url *u, size_t i, const char *name,
                    amqp_connection_state_t *out, mb_err *err);
/* Closes and destroys a connection (NULL is fine). */
void mb_amqp_disconnect(amqp_connection_state_t conn);

/* Turns a failed RPC reply into a status and a sentence starting with what. A channel or
 * connection close from the broker keeps its code (e.g. "406 PRECONDITION_FAILED - ...");
 * *code (if not NULL) gets the AMQP reply code, or 0. */
int mb_amqp_reply_error(amqp_rpc_reply_t reply, const char *what, int *code, mb_err *err);

#endif
