/* audit.h — the audit copy of a handled message (DESIGN §6): the message byte for byte,
 * with when, where and by whom it was processed, for the audit queue.
 *
 * Provides: mb_audit_copy. Uses: transport.h, msgcopy.h. Never: sends it (the pipeline
 * puts it in the outbox, so it leaves with the handler's messages and the ack). */
#ifndef MOONBUS_AUDIT_H
#define MOONBUS_AUDIT_H

#include <stdint.h>

#include "transport.h"

typedef struct mb_audit_info {
  const char *queue;    /* the audit queue */
  const char *endpoint; /* who processed it */
  const char *host;
  int64_t started_usec, ended_usec;
} mb_audit_info;

/* A new audit copy of d, or NULL when out of memory. */
mb_outgoing *mb_audit_copy(const mb_delivery *d, const mb_audit_info *info);

#endif
