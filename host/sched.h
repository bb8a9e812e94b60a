/* sched.h — handler coroutines (DESIGN §2): one coroutine per delivery or timer tick,
 * created from the anchor thread, resumed only from here, on the loop.
 *
 * Provides: running the dispatcher for a job, running a timer's function, the job whose
 * handler is running now, and counters of live coroutines.
 * Uses: lua.h (in sched.c only), pipeline.h for outcomes, bindings/lbus.h for the
 * dispatcher and for reading error values. */
#ifndef MOONBUS_SCHED_H
#define MOONBUS_SCHED_H

struct lua_State;
struct mb_job;
struct mb_runtime;

typedef struct mb_sched mb_sched;

/* L is the thread coroutines are created from and referenced in (the main state). */
mb_sched *mb_sched_new(struct lua_State *L, struct mb_runtime *rt);
/* Frees the scheduler; live coroutines are released (their jobs must be gone). */
void mb_sched_free(mb_sched *s);
/* Sets the thread coroutines are created on while the loop runs inside a Lua call. */
void mb_sched_set_anchor(mb_sched *s, struct lua_State *L);

/* Runs the handlers of job in a new coroutine. Reports through mb_pipeline_finished,
 * possibly before returning. */
void mb_sched_handle(mb_sched *s, struct mb_job *job);
/* Runs the function referenced by fn_ref (in the registry) in a new coroutine; errors are
 * logged with what (e.g. "timer every 5 s at orders.lua:12"). */
void mb_sched_call(mb_sched *s, int fn_ref, const char *what);

/* The job whose handler is running right now, or NULL (timer, top level, CLI). */
struct mb_job *mb_sched_current_job(const mb_sched *s);
/* 1 while a timer's function runs. */
int mb_sched_in_timer(const mb_sched *s);
/* Coroutines alive now (test builds assert this returns to zero). */
unsigned mb_sched_live(const mb_sched *s);

#endif
