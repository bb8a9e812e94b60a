/* errorq.h — the error-queue copy of a message that cannot be handled (DESIGN §6): the
 * message byte for byte with the failure headers (where it failed, when, why, the trace,
 * the retries it had, the deliveries counted).
 *
 * Provides: mb_errorq_copy. Uses: transport.h, msgcopy.h. Never: sends it, or decides that
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

#endif
