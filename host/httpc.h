/* httpc.h — the HTTP client the CLI speaks to `moonbus ops` with (`moonbus errors --ops
 * URL`): one blocking request at a time, plain http:// only, with a deadline.
 *
 * Provides: mb_httpc_request.
 * Uses: POSIX sockets (getaddrinfo, poll).
 * Never: follows redirects, runs on the loop of a host that handles messages, or shows a
 * token (it goes in an Authorization header and nowhere else). */
#ifndef MOONBUS_HTTPC_H
#define MOONBUS_HTTPC_H

#include <stddef.h>

#include "status.h"

#define MB_HTTPC_MAX_RESPONSE (64u << 20) /* a larger answer is MB_ETOOBIG */

typedef struct mb_httpc_response {
  int status; /* the HTTP status code */
  char *body; /* malloc'd, NUL-terminated (free it) */
  size_t len;
  char content_type[128];
} mb_httpc_response;

/* method path (with its query, already escaped) against base ("http://HOST:PORT" with an
 * optional path prefix); token: NULL, or sent as "Authorization: Bearer TOKEN"; body: NULL
 * or JSON of len bytes. Reads the whole answer (Content-Length or chunked) by timeout
 * seconds. MB_OK with *out filled (any HTTP status), MB_EINVAL for a base that is not
 * http://host[:port], MB_ENOTCONN when nothing answers (naming base), MB_EIO for a broken
 * answer or the deadline, MB_ETOOBIG over MB_HTTPC_MAX_RESPONSE. */
int mb_httpc_request(const char *base, const char *method, const char *path, const char *token,
                     const char *body, size_t len, double timeout, mb_httpc_response *out,
                     mb_err *err);
void mb_httpc_response_free(mb_httpc_response *r);
/* Appends s percent-encoded (RFC 3986 unreserved kept) to out[0..cap); 0 if it did not fit. */
int mb_httpc_escape(const char *s, char *out, size_t cap);

#endif
