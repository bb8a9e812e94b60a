/* timers.h — the local timers of one Lua generation (bus.after, bus.every; DESIGN §3):
 * each tick runs the timer's function as a coroutine of the generation's scheduler.
 *
 * Provides: the set (owned by vm.c: created and freed with the generation), adding and
 * cancelling a timer, starting and stopping the whole set, a count.
 * Uses: sched.h (ticks run there; it releases the function's registry reference).
 * Never: includes lua.h, resumes a coroutine itself, or keeps retry state. */
#ifndef MOONBUS_TIMERS_H
#define MOONBUS_TIMERS_H

#include "sched.h"

struct ev_loop;
typedef struct mb_timers mb_timers;
typedef struct mb_timer mb_timer;

mb_timers *mb_timers_new(struct ev_loop *loop, mb_sched *sched);
/* Stops and frees every timer (their references released). */
void mb_timers_free(mb_timers *ts);
/* A timer that runs the function fn_ref refers to (a registry reference it owns from now
 * on) after `after` seconds, then every `every` seconds (0: once); what names it in
 * errors. It starts now if the set is started. NULL when out of memory (fn_ref released). */
mb_timer *mb_timers_add(mb_timers *ts, double after, double every, int fn_ref, const char *what);
/* Ends t (from inside its own tick too: it is freed when the tick returns). */
void mb_timer_cancel(mb_timer *t);
/* *slot (the Lua handle's pointer to t) is set to NULL when t ends; NULL: nobody watches. */
void mb_timer_watch(mb_timer *t, mb_timer **slot);
/* Starts every timer: from now on new ones start at once. */
void mb_timers_start(mb_timers *ts);
/* Stops and forgets every timer (a generation swapped out, shutdown, a test's stop). */
void mb_timers_stop(mb_timers *ts);
int mb_timers_started(const mb_timers *ts);
/* Timers alive (not cancelled). */
int mb_timers_count(const mb_timers *ts);

#endif
