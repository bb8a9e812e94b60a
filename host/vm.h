/* vm.h — one lua_State generation of an endpoint: open it with the endpoint's script
 * loaded, start and stop its timers, close it.
 *
 * Provides: script resolution (DIR/endpoint.lua or FILE), package.path for the endpoint's
 * folder, its parent (shared contracts) and moonbus's modules/, and a protected load that
 * reports file, line and message. Uses lua.h (here only), bindings/lbus.h. */
#ifndef MOONBUS_VM_H
#define MOONBUS_VM_H

#include <stddef.h>

#include "runtime.h"
#include "status.h"

typedef struct mb_vm mb_vm;
struct mb_sched;

/* Told of each Lua file of the endpoint as it is loaded: the script, then every module
 * `require` finds on package.path (moonbus's own modules excepted). */
typedef void (*mb_vm_file_fn)(void *ud, const char *path);

typedef struct mb_vm_load {
  double budget;         /* seconds the script's top level may run (0: the default) */
  mb_vm_file_fn on_file; /* NULL: nobody asks */
  void *file_ud;
} mb_vm_load;

/* A new Lua state bound to rt with target (a directory holding endpoint.lua, or a file)
 * loaded. how may be NULL. On failure err says which file failed and why. */
mb_vm *mb_vm_open(mb_runtime *rt, const char *target, const mb_vm_load *how, mb_err *err);
void mb_vm_start_timers(mb_vm *vm);
void mb_vm_stop_timers(mb_vm *vm);
/* The script the VM loaded. */
const char *mb_vm_script(const mb_vm *vm);
/* The scheduler of the VM's handlers, and how many of its coroutines are alive (running,
 * parked in bus.request, a timer tick waiting for a confirm). */
struct mb_sched *mb_vm_sched(mb_vm *vm);
unsigned mb_vm_live(mb_vm *vm);
/* Which generation vm is (reload.c counts them), for the log line of its close. */
void mb_vm_set_generation(mb_vm *vm, unsigned generation);
/* Closes the state. Its __gc finalizers run outside any time budget: a close that lasts
 * 2 x time_budget logs why and ends the process (watchdog.h). */
void mb_vm_close(mb_vm *vm);

/* Checks that json is one JSON object (lua-cjson decides). MB_OK or MB_EINVAL. */
int mb_vm_check_json(const char *json, mb_err *err);

/* "Lua 5.4.4" */
const char *mb_vm_lua_release(void);

#endif
