/* reload.h — hot reload (DESIGN §7): the generations of an endpoint's Lua state.
 *
 * Provides: the first load, then on a change of any Lua file the endpoint loaded (or
 * SIGHUP, or a call) a new state loaded next to the running one; only if it loads and the
 * runtime adopts its declaration do new messages go to it. The old state finishes its
 * handlers in flight — bus.request waits included — and is closed when none is left, or
 * at the drain deadline (their messages then go back to the queue). At most two states
 * live at once: a reload asked for while one drains runs when it has drained.
 * Uses: vm.h, runtime.h, filewatch.h. Never: decides a message's fate. */
#ifndef MOONBUS_RELOAD_H
#define MOONBUS_RELOAD_H

#include "runtime.h"
#include "status.h"
#include "vm.h"

typedef struct mb_reload mb_reload;

/* Loads generation 1 of target (a directory with endpoint.lua, or a file) into rt. */
mb_reload *mb_reload_open(mb_runtime *rt, const char *target, mb_err *err);
/* Starts the running state's timers; from now on SIGHUP reloads, and so does a change to
 * a loaded file if watch_files. drain_seconds bounds how long an old state may drain. A
 * file watch that cannot be set up is logged; SIGHUP still works. */
void mb_reload_start(mb_reload *r, int watch_files, double drain_seconds);
/* Reloads now; why names the cause in the log line (a file, "SIGHUP"). */
void mb_reload_now(mb_reload *r, const char *why);
/* Shutdown: stops watching and every generation's timers (SIGHUP is still caught, and
 * ignored); handlers in flight go on. */
void mb_reload_stop(mb_reload *r);
/* Closes the states (a draining one first) and frees r. */
void mb_reload_free(mb_reload *r);

mb_vm *mb_reload_current(const mb_reload *r);
unsigned mb_reload_generation(const mb_reload *r);

#endif
