/* watchdog.h — the last resort of the handler budgets (DESIGN §6): a thread that ends the
 * process when one resume of a handler or timer lasts far past its time budget. Lua's count
 * hook (sched.c) stops a script that loops in Lua; only this stops one stuck inside a C
 * function (a huge string.rep, os.execute("sleep 1e6"), a blocking read) or in a __gc
 * finalizer (Lua runs finalizers with hooks off). The message it was handling comes back to
 * the queue, and the transport's delivery count parks it once it has done this
 * max_deliveries times.
 * It also bounds the closing of a Lua state (lua_close runs the script's finalizers, out of
 * any budget), at shutdown too, when the thread above is already stopped.
 *
 * Provides: start/stop, the enter/leave marks around lua_resume, and a bounded stretch.
 * Never: touches Lua or the loop from its threads; they read atomics and, when they must,
 * log and end the process. */
#ifndef MOONBUS_WATCHDOG_H
#define MOONBUS_WATCHDOG_H

/* Starts the thread: a resume longer than limit seconds ends the process. 0 or -1. */
int mb_watchdog_start(double limit);
void mb_watchdog_stop(void);
/* A new limit (a reload changed time_budget). */
void mb_watchdog_set_limit(double limit);
/* Around lua_resume (nested calls count once); endpoint (may be NULL) and what name the
 * work for the last log line. */
void mb_watchdog_enter(const char *endpoint, const char *what);
void mb_watchdog_leave(void);

/* Bounds work that no budget reaches (lua_close): past seconds, logs endpoint and what,
 * and ends the process (exit status 70). Works whether or not the thread above runs; not
 * nested. -1 if no thread could be made (the work is then unbounded), else 0. */
int mb_watchdog_bound(double seconds, const char *endpoint, const char *what);
void mb_watchdog_unbound(void);

#endif
