/* errorq.h — the error-queue copy of a message that cannot be handled (DESIGN §6): the
 * message byte for byte with the failure headers (where it failed, when, why, the trace,
 * the retries it had, the deliveries counted).
 *
 * Provides: mb_errorq_copy, the notice to a requester, mb_errorq_unpark. Uses: transport.h, msgcopy.h. Never: sends it, or decides that
 * a message is parked (pipeline.c and retry.c do). */
#ifndef MOONBUS_ERRORQ_H
#define MOONBUS_ERRORQ_H

#include "transport.h"

#define MB_EXCEPTION_MAX 8192 /* bytes of an exception message or trace kept on a copy */

typedef struct mb_failure {
  const char *queue;  /* the error queue */
  const char *reason; /* the exception message */
  const char *trace;  /* NULL: none */
  int immediate;      /* immediate retries made in the last round */
  int round;          /* the delayed round it failed in */
} mb_failure;

/* A new error-queue copy of d, or NULL when out of memory. */
mb_outgoing *mb_errorq_copy(const mb_delivery *d, const mb_failure *f);

/* The type of the notice a requester gets when its request is parked: a message to its
 * reply address, correlated like a reply, empty body, the reason in
 * moonbus.exception.message and the endpoint that parked it in moonbus.origin.endpoint.
 * bus.request raises it as an error of kind "request_failed"; `moonbus request` prints it. */
#define MB_TYPE_REQUEST_FAILED "moonbus.RequestFailed"

/* 1 if d waits for a reply at a requester's reply address (bus.request, moonbus request). */
int mb_errorq_is_request(const mb_delivery *d);
/* The notice to d's requester that d was parked for reason by endpoint (on host), or NULL
 * when out of memory. It goes to the requester only: dropped if its address is gone. */
mb_outgoing *mb_errorq_notice(const mb_delivery *d, const char *reason, const char *endpoint,
                              const char *host);

/* The parked copy env as it was before it failed, addressed to the queue it failed in
 * (moonbus.failed.queue): the failure, exception and retry headers, deliver_at and
 * expires_at removed, the id kept. For retrying a parked message (`moonbus errors retry`,
 * `moonbus ops`). MB_EINVAL (naming the id) when it has no failed queue, MB_ENOMEM. */
int mb_errorq_unpark(const mb_envelope *env, mb_outgoing **out, mb_err *err);

#endif
