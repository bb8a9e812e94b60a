/* correlate.h — the requests of this process that wait for a reply (DESIGN §2, §6): each
 * is known by its correlation id (the request's message id), has a deadline on an
 * ev_timer, and a callback that receives the reply or the timeout.
 *
 * Provides: expect, cancel, deliver (a reply arrived), the count of pending requests, and
 * whether an unknown reply is a late one (its request timed out a moment ago).
 * Uses: libev, transport.h (mb_delivery). Never: knows Lua or a coroutine; never sends. */
#ifndef MOONBUS_CORRELATE_H
#define MOONBUS_CORRELATE_H

#include <stddef.h>

#include "transport.h"

struct ev_loop;

typedef struct mb_correlate mb_correlate;

/* The reply to a request arrived (ownership of reply passes to the callee), or its
 * timeout ran out (reply == NULL). Called once per expect, never after cancel. */
typedef void (*mb_reply_fn)(void *ud, mb_delivery *reply);

mb_correlate *mb_correlate_new(struct ev_loop *loop);
/* Drops every pending request without calling it back. NULL is fine. */
void mb_correlate_free(mb_correlate *c);

/* Waits up to timeout seconds (> 0) for a reply whose correlation id is id. MB_EINVAL if
 * a request with that id is already pending, MB_ENOMEM. */
int mb_correlate_expect(mb_correlate *c, const char *id, double timeout, mb_reply_fn fn,
                        void *ud);
/* Forgets the request (its callback will not run). 1 if it was pending. */
int mb_correlate_cancel(mb_correlate *c, const char *id);

/* A reply arrived. MB_OK: handed to its request (the callee owns it). MB_ENOTFOUND: no
 * request waits for it; the caller keeps reply, and *late_ms (if not NULL) gets how many
 * ms after its request's timeout it came, or -1 when no recent request had that id. */
int mb_correlate_deliver(mb_correlate *c, mb_delivery *reply, long *late_ms);

/* Requests waiting now (test builds assert this returns to zero). */
size_t mb_correlate_pending(const mb_correlate *c);

#endif
