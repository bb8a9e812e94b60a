/* status.c — text for mb_status codes and the mb_err helper. Owns nothing else. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *mb_strerror(int status) {
  switch (status) {
  case MB_OK: return "ok";
  case MB_ENOMEM: return "out of memory";
  case MB_EINVAL: return "invalid argument";
  case MB_EIO: return "i/o error";
  case MB_EUNROUTABLE: return "unroutable";
  case MB_EOWNER: return "event owned by another endpoint";
  case MB_ELOST: return "delivery lost";
  case MB_EBUSY: return "busy";
  case MB_ETOOBIG: return "too big";
  case MB_ENOTFOUND: return "not found";
  case MB_ENOTCONN: return "not connected";
  case MB_EREFUSED: return "refused";
  case MB_ESTALE: return "stale";
  default: return "unknown status";
  }
}

int mb_err_set(mb_err *err, int status, const char *fmt, ...) {
  if (err == NULL) return status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->status = status;
  return status;
}
