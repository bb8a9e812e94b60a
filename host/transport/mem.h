/* mem.h — the in-memory transport: a bus that lives in this process only, for C tests of
 * the pipeline without SQLite, RabbitMQ or Lua. URL: mem://NAME. Transports opened with
 * the same NAME share one bus (a sender and a receiver); the bus is freed when the last
 * of them closes. Semantics follow the SQLite transport (transport.h): a durable delivery
 * count (+1 per delivery, kept by release), release with a delay, complete = outbox and
 * ack together, browse, remove, depth, owners, subscriptions, reply addresses, and the
 * marks of out-of-order protection (kept per bus, moved with the ack of complete_marked).
 * Every delivery is made from an ev watcher of the loop given at open, never from inside
 * the call that caused it; delays use ev_timer. Time is CLOCK_MONOTONIC (mb_monotonic).
 *
 * Below the vtable, the test controls: calls a test makes to play a foreign sender, to
 * hold or fail the transport's confirmations, and to count what the pipeline did. They
 * take a transport opened with mem:// (on any other they do nothing and return 0 or
 * MB_EINVAL). Messages carried by the transport are never expired by it: a message's
 * time to live (moonbus.expires_at) is the receiver's to check. */
#ifndef MOONBUS_TRANSPORT_MEM_H
#define MOONBUS_TRANSPORT_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

extern const mb_transport_ops mb_mem_transport;

/* 1 if t was opened with mem://. */
int mb_mem_is(const mb_transport *t);

/* --- playing a foreign sender ------------------------------------------------------------ */

typedef struct mb_mem_raw {
  const char *problem; /* non-NULL: every delivery and browse copy comes with this problem
                          (as an envelope the transport could not decode) */
  uint32_t deliveries; /* deliveries it already had: its next delivery has count + 1 */
  double delay;        /* seconds before it is visible; 0 = at once */
} mb_mem_raw;

/* Puts a copy of env on queue as it is, checked by nothing (raw may be NULL: no problem, no
 * earlier deliveries, no delay). As on SQLite, what is delivered is decoded then: an id
 * that is not a UUID is replaced (the original in moonbus.foreign_id), headers that break
 * mb_headers_check set the delivery's problem. MB_EUNROUTABLE if queue does not exist. */
int mb_mem_put(mb_transport *t, const char *queue, const mb_envelope *env, const mb_mem_raw *raw,
               mb_err *err);

/* How many messages queue holds: ready, delayed and in flight (0 for no such queue). Their
 * copies: mb_transport_browse_first or t->ops->browse. */
long mb_mem_count(mb_transport *t, const char *queue);

/* --- confirmations ----------------------------------------------------------------------- */

/* on = 1: from now on, complete and dispatch on t change nothing and call no done fn until
 * confirmed: each becomes an unconfirmed operation, applied (outbox stored, delivery
 * acknowledged) when confirmed, in the order they were made, its done fn called then.
 * on = 0: later operations are applied at once again (those held wait for a confirm).
 * Closing t drops unconfirmed operations without calling their done fn (as a lost
 * connection does); their deliveries go back to their queue. */
void mb_mem_manual_confirm(mb_transport *t, int on);
/* Confirms the n oldest unconfirmed operations (fewer if there are fewer); returns how
 * many. Their done fns run inside this call (and must not close t); operations they start
 * wait for a later confirm. An operation whose delivery is no longer held (released
 * meanwhile) ends with MB_ELOST and stores nothing. */
size_t mb_mem_confirm(mb_transport *t, size_t n);
/* Confirms every operation unconfirmed when it is called; returns how many. */
size_t mb_mem_confirm_all(mb_transport *t);

/* The next count completes or dispatches on t (counted when called) fail with status
 * (not MB_OK): nothing of them is stored and their done fn gets status and a sentence
 * naming the transport and the message ("mem://NAME: injected failure ..."), at once or,
 * in manual mode, when confirmed. A failed complete leaves its delivery in flight (the
 * caller releases it), except status MB_ELOST, which puts it back on its queue at once as
 * a lost connection does. count 0 cancels; status MB_OK counts as MB_EIO. */
void mb_mem_fail_next(mb_transport *t, int status, unsigned count);

/* --- counting ---------------------------------------------------------------------------- */

typedef struct mb_mem_stats {
  unsigned long delivered;   /* deliveries handed to the consume fn */
  unsigned long acks;        /* deliveries acknowledged (completes applied with MB_OK) */
  unsigned long releases;    /* releases of a delivery this transport held */
  double last_release_delay; /* the delay of the last of them; -1 before any */
  unsigned in_flight;        /* deliveries neither acknowledged nor released */
  size_t unconfirmed;        /* operations waiting for mb_mem_confirm */
} mb_mem_stats;

/* What t did since it was opened. MB_OK, or MB_EINVAL if t is not a mem:// transport. */
int mb_mem_stats_get(mb_transport *t, mb_mem_stats *out);

#endif
