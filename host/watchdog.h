/* watchdog.h — the last resort of the handler budgets (DESIGN §6): a thread that ends the
 * process when one resume of a handler or timer lasts far past its time budget. Lua's count
 * hook (sched.c) stops a script that loops in Lua; only this stops one stuck inside a C
 * function (a huge string.rep, os.execute("sleep 1e6"), a blocking read). The message it
 * was handling comes back to the queue, and the transport's delivery count parks it once
 * it has done this max_deliveries times.
 *
 * Provides: start/stop and the enter/leave marks around lua_resume. Never: touches Lua or
 * the loop from its thread; it reads one atomic and, when it must, logs and aborts. */
#ifndef MOONBUS_WATCHDOG_H
#define MOONBUS_WATCHDOG_H

/* Starts the thread: a resume longer than limit seconds ends the process. 0 or -1. */
int mb_watchdog_start(double limit);
void mb_watchdog_stop(void);
/* A new limit (a reload changed time_budget). */
void mb_watchdog_set_limit(double limit);
/* Around lua_resume (nested calls count once); what names the work for the last log line. */
void mb_watchdog_enter(const char *what);
void mb_watchdog_leave(void);

#endif
