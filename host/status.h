/* status.h — status codes and error text shared by every unit of the host.
 *
 * Provides: the mb_status codes, mb_strerror, and mb_err, a fixed buffer that a failing
 * call fills with a sentence naming what failed (queue, message id, type).
 * Never: allocates; an error path must not be able to fail itself. */
#ifndef MOONBUS_STATUS_H
#define MOONBUS_STATUS_H

#include <stddef.h>

enum mb_status {
  MB_OK = 0,
  MB_ENOMEM = -1,      /* out of memory */
  MB_EINVAL = -2,      /* bad argument or malformed input */
  MB_EIO = -3,         /* the transport or the OS failed */
  MB_EUNROUTABLE = -4, /* no queue by that name: nothing would receive the message */
  MB_EOWNER = -5,      /* an event type is owned by another endpoint */
  MB_ELOST = -6,       /* the delivery is no longer ours (lease expired, connection lost) */
  MB_EBUSY = -7,       /* try again later */
  MB_ETOOBIG = -8,     /* over a size limit */
  MB_ENOTFOUND = -9,   /* no such message, queue or owner */
  MB_ENOTCONN = -10,   /* the broker cannot be reached (down, or the connection is not back) */
  MB_EREFUSED = -11,   /* the broker refused the message (basic.nack) */
  MB_ESTALE = -12      /* a message older than one already handled for its key (order_by) */
};

const char *mb_strerror(int status);

#define MB_ERRLEN 512
typedef struct mb_err {
  int status;
  char msg[MB_ERRLEN];
} mb_err;

/* Fills err (if not NULL) with status and a printf-formatted sentence; returns status. */
int mb_err_set(mb_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
