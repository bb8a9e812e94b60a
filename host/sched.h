/* sched.h — handler coroutines (DESIGN §2): one coroutine per delivery or timer tick,
 * created from the anchor thread, resumed only from here, on the loop. A coroutine may
 * park in a bus call (bus.request, a send from a timer) and is woken later from the loop,
 * never from inside the call that parked it.
 *
 * Provides: running the dispatcher for a job, running a timer's function, parking and
 * waking, the job whose handler is running now, and counters.
 * Uses: lua.h (in sched.c only), pipeline.h (it is the pipeline's runner and reports
 * outcomes to it), and what the bindings give it as function pointers (mb_sched_lua): it
 * never includes bindings/. */
#ifndef MOONBUS_SCHED_H
#define MOONBUS_SCHED_H

#include <stddef.h>

#include "pipeline.h"

struct lua_State;
struct mb_runtime;

typedef struct mb_sched mb_sched;
typedef struct mb_thread mb_thread; /* one coroutine the scheduler runs */

/* What the scheduler needs from the bindings, so that it never includes them. */
typedef struct mb_sched_lua {
  /* The function a handler coroutine starts with; its one argument is the job (light
   * userdata). */
  int (*dispatcher)(struct lua_State *co);
  /* Pushes the message of the error value at idx; *unrecoverable = 1 for one that skips
   * retries. [-0, +1, m] */
  const char *(*error_text)(struct lua_State *L, int idx, int *unrecoverable);
  /* Called from the count hook once what ran past its budget of seconds: raises, and keeps
   * raising at every instruction. [-0, +0, v] */
  int (*over_budget)(struct lua_State *L, const char *what, double seconds);
  /* 1 if the state's allocator refused memory since the last call (*limit: its cap). */
  int (*memory_refused)(struct lua_State *L, size_t *limit);
} mb_sched_lua;

/* L is the thread coroutines are created from and referenced in (the main state); lua must
 * outlive the scheduler. */
mb_sched *mb_sched_new(struct lua_State *L, struct mb_runtime *rt, const mb_sched_lua *lua);
/* Frees the scheduler. Parked coroutines are cancelled: their cancel hooks run and their
 * jobs fail (the message goes back to its queue). */
void mb_sched_free(mb_sched *s);
/* The scheduler as the pipeline's runner (ud: the mb_sched). */
const mb_runner *mb_sched_runner(void);
/* fn(ud) runs each time the last live coroutine ends (a draining generation may close:
 * not from inside fn, which runs inside the scheduler). NULL: nobody asks. */
void mb_sched_on_idle(mb_sched *s, void (*fn)(void *ud), void *ud);
/* Releases a registry reference of the scheduler's state (a timer's function). */
void mb_sched_unref(mb_sched *s, int ref);
/* Sets the thread coroutines are created on while the loop runs inside a Lua call. */
void mb_sched_set_anchor(mb_sched *s, struct lua_State *L);

/* Runs the handlers of job in a new coroutine. Reports through mb_pipeline_finished,
 * possibly before returning. */
void mb_sched_handle(mb_sched *s, mb_job *job);
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
mb_job *mb_sched_current_job(const mb_sched *s);
/* What the running coroutine is, for messages: "handler of T", "timer ...", or NULL. */
const char *mb_sched_running_what(const mb_sched *s);
/* Coroutines alive now, and how many of them are parked (tests assert both return to 0). */
unsigned mb_sched_live(const mb_sched *s);
unsigned mb_sched_parked(const mb_sched *s);

#endif
