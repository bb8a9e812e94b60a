/* sched.h — handler coroutines (DESIGN §2): one coroutine per delivery or timer tick,
 * created from the anchor thread, resumed only from here, on the loop. A coroutine may
 * park in a bus call (bus.request, a send from a timer) and is woken later from the loop,
 * never from inside the call that parked it.
 *
 * Provides: running the dispatcher for a job, running a timer's function, parking and
 * waking, the job whose handler is running now, and counters.
 * Uses: lua.h (in sched.c only), pipeline.h for outcomes, bindings/lbus.h for the
 * dispatcher and for reading error values. */
#ifndef MOONBUS_SCHED_H
#define MOONBUS_SCHED_H

struct lua_State;
struct mb_job;
struct mb_runtime;

typedef struct mb_sched mb_sched;
typedef struct mb_thread mb_thread; /* one coroutine the scheduler runs */

/* L is the thread coroutines are created from and referenced in (the main state). */
mb_sched *mb_sched_new(struct lua_State *L, struct mb_runtime *rt);
/* Frees the scheduler. Parked coroutines are cancelled: their cancel hooks run and their
 * jobs fail (the message goes back to its queue). */
void mb_sched_free(mb_sched *s);
/* Sets the thread coroutines are created on while the loop runs inside a Lua call. */
void mb_sched_set_anchor(mb_sched *s, struct lua_State *L);

/* Runs the handlers of job in a new coroutine. Reports through mb_pipeline_finished,
 * possibly before returning. */
void mb_sched_handle(mb_sched *s, struct mb_job *job);
/* Runs the function referenced by fn_ref (in the registry) in a new coroutine; errors are
 * logged with what (e.g. "timer every 5 s at orders.lua:12"). */
void mb_sched_call(mb_sched *s, int fn_ref, const char *what);

/* The scheduler's coroutine L is, while it runs; NULL for the main thread or a coroutine
 * the script made itself (those cannot be parked: nobody here would resume them). */
mb_thread *mb_sched_self(const mb_sched *s, struct lua_State *L);
/* Parks th: the caller returns lua_yieldk(...) at once. cancel(ud) runs if th is cancelled
 * (the bus shuts down) before mb_sched_wake. */
void mb_sched_park(mb_sched *s, mb_thread *th, void (*cancel)(void *ud), void *ud);
/* Time th spent blocked inside a bus call without parking (a transport that commits to
 * disk before it returns): like parked time, it does not count against the time budget. */
void mb_sched_credit(mb_sched *s, mb_thread *th, double seconds);
/* Resumes a parked th (its continuation pushes the results). Call from the loop only. */
void mb_sched_wake(mb_sched *s, mb_thread *th);

/* The job whose handler is running right now, or NULL (timer, top level, CLI). */
struct mb_job *mb_sched_current_job(const mb_sched *s);
/* What the running coroutine is, for messages: "handler of T", "timer ...", or NULL. */
const char *mb_sched_running_what(const mb_sched *s);
/* Coroutines alive now, and how many of them are parked (tests assert both return to 0). */
unsigned mb_sched_live(const mb_sched *s);
unsigned mb_sched_parked(const mb_sched *s);

#endif
