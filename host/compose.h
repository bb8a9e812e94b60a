/* compose.h — builds the envelope of a message this endpoint sends (DESIGN §4): a new
 * UUIDv7, the kind, the conversation it belongs to, what caused it, who sent it, when,
 * and where it goes.
 *
 * Provides: mb_compose, the one place outgoing headers are written for every transport.
 * Never: includes lua.h; validates only what the caller cannot (sizes, the header rules of
 * mb_headers_check on the script's headers and on the whole composed list). */
#ifndef MOONBUS_COMPOSE_H
#define MOONBUS_COMPOSE_H

#include <stddef.h>

#include "envelope.h"
#include "runtime.h"
#include "transport.h"

typedef struct mb_compose_req {
  const char *type;
  mb_kind kind;
  const char *body; /* JSON text */
  size_t body_len;
  const mb_headers *headers; /* the caller's own headers (keys checked here), or NULL */
  double delay;              /* seconds, >= 0 */
  double ttl;                /* seconds; 0 = none */
  mb_route route;
  const char *dest;           /* queue for MB_ROUTE_QUEUE */
  const char *correlation_id; /* NULL: none */
  const char *reply_to;       /* NULL: the endpoint's own queue, if it has one */
  const char *origin;         /* NULL: the runtime's endpoint (the CLI names its own) */
  long long version;          /* > 0: stamped as moonbus.version; 0: no version header */
} mb_compose_req;

/* The correlation id a reply to `in` carries: its correlation id, else the message id its
 * sender gave it (a foreign one kept in moonbus.foreign_id), else its id. Plain AMQP RPC
 * clients match replies this way. */
const char *mb_compose_reply_correlation(const mb_envelope *in);

/* The headers a message the bus makes itself (without mb_compose: errorq.c's notice to a
 * requester) carries about its cause and sender, as every composed message does:
 * conversation, related_to, origin endpoint and host, time sent, traceparent. e->id must be
 * set. MB_OK or MB_ENOMEM. */
int mb_compose_lineage(mb_envelope *e, const mb_delivery *cause, const char *origin,
                       const char *host);

/* A new outgoing message for req; cause is the delivery being handled (NULL outside a
 * handler): its conversation is inherited and its id becomes related_to. */
int mb_compose(const mb_runtime *rt, const mb_delivery *cause, const mb_compose_req *req,
               mb_outgoing **out, mb_err *err);

#endif
