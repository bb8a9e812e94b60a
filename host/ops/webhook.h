/* webhook.h — the alert webhook of `moonbus ops` (DESIGN §10, contract E): POSTs each alert's
 * JSON to one http:// URL, in order, one request at a time, on the loop.
 *
 * Provides: mb_webhook (a bounded queue of alerts and the one request in flight), its
 * counters, and the timing a test may shorten.
 * Uses: libev (ev_io on a non-blocking socket, ev_timer for the deadline and the back-off),
 * getaddrinfo once, when the webhook is made (it blocks: the name is resolved at start and
 * the addresses kept; a DNS change needs a restart).
 * Never: blocks the loop, follows a redirect, speaks TLS, or shows the URL's user info (sent
 * as HTTP Basic authentication, and nowhere else). */
#ifndef MOONBUS_OPS_WEBHOOK_H
#define MOONBUS_OPS_WEBHOOK_H

#include <stddef.h>

#include "status.h"

struct ev_loop;

#define MB_WEBHOOK_QUEUE_MAX 1000 /* alerts waiting; one more drops the oldest */
#define MB_WEBHOOK_TIMEOUT 5.0    /* seconds for one attempt: connect, send, status line */
#define MB_WEBHOOK_RETRIES 3      /* attempts after the first, waiting 1, 2, 4 s */

typedef struct mb_webhook mb_webhook;

/* A webhook for url: http://[user:pass@]host[:port][/path][?query]. MB_EINVAL saying why
 * for another scheme (https:// included), a malformed URL or a host that does not resolve
 * (the message shows the URL without its user info). */
int mb_webhook_new(mb_webhook **out, struct ev_loop *loop, const char *url, mb_err *err);
/* Queues an alert: type goes in X-Moonbus-Event, body (JSON, copied) is the request's body.
 * A full queue drops its oldest alert (logged, counted as a failure). Never blocks.
 * MB_OK, MB_EINVAL for a type that cannot be a header value, or MB_ENOMEM. */
int mb_webhook_post(mb_webhook *w, const char *type, const char *body);
/* Alerts given up (after all retries, or dropped from a full queue). */
unsigned long mb_webhook_failures(const mb_webhook *w);
/* Alerts answered with a 2xx status. */
unsigned long mb_webhook_delivered(const mb_webhook *w);
/* Alerts queued or in flight. */
size_t mb_webhook_pending(const mb_webhook *w);
/* The URL as it may be shown (user info redacted). */
const char *mb_webhook_shown(const mb_webhook *w);
/* Tests: timeout of an attempt, the first back-off (doubled at each retry), queue bound. */
void mb_webhook_set_timing(mb_webhook *w, double timeout, double first_backoff, size_t max_queue);
/* Closes the request in flight and drops what is queued (NULL is fine). */
void mb_webhook_free(mb_webhook *w);

#endif
