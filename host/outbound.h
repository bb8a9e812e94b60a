/* outbound.h — messages sent outside a handler (a timer, the CLI, top-level code): the
 * tickets of sends the transport has not answered yet, and dispatch-and-wait for callers
 * that cannot yield.
 *
 * Provides: send with a ticket (the sender may go away: forget the ticket and the answer
 * is dropped), dispatch that runs the loop until the transport answers.
 * Uses: transport.h. Never: decides anything about a handled message (pipeline.c) and
 * never frees a ticket inside the transport's callback. */
#ifndef MOONBUS_OUTBOUND_H
#define MOONBUS_OUTBOUND_H

#include <stddef.h>

#include "status.h"
#include "transport.h"

struct ev_loop;
typedef struct mb_outbound mb_outbound;
typedef struct mb_send mb_send;

mb_outbound *mb_outbound_new(struct ev_loop *loop);
/* Frees the tickets: call after the transport is closed (no answer comes any more). */
void mb_outbound_free(mb_outbound *o);

/* Sends through t without waiting: fn(ud, status, error) runs when the transport answers,
 * possibly before this returns (then *ticket is NULL), unless mb_send_forget(*ticket) came
 * first. On an error return fn never runs. Takes ownership of the messages. */
int mb_outbound_send(mb_outbound *o, mb_transport *t, mb_outgoing **msgs, size_t n, mb_done_fn fn,
                     void *ud, mb_send **ticket, mb_err *err);
/* Sends and waits for the transport's answer by running the loop. Takes ownership. */
int mb_outbound_dispatch(mb_outbound *o, mb_transport *t, mb_outgoing **msgs, size_t n,
                         mb_err *err);
/* The sender is gone: the transport's answer will be dropped. NULL is fine. */
void mb_send_forget(mb_send *ticket);

#endif
