/* vm.h — one Lua generation of an endpoint: the lua_State, its allocator (the memory
 * budget), its scheduler and its timers, created and freed together here and nowhere else.
 * Bindings reach the generation of a state with mb_vm_of (the state's extra space, as
 * OpenResty reaches its request ctx) and never create or free its parts.
 *
 * Provides: opening a generation with the endpoint's script loaded (script resolution,
 * package.path for the endpoint's folder, its parent (shared contracts) and moonbus's
 * modules/, a protected load that reports file, line and message); module mode's adapter
 * (a generation around a state stock lua5.4 or busted made); timers; counters; close.
 * Uses lua.h (in vm.c), bindings/lbus.h. */
#ifndef MOONBUS_VM_H
#define MOONBUS_VM_H

#include <stddef.h>

#include "runtime.h"
#include "sched.h"
#include "status.h"
#include "timers.h"

typedef struct mb_vm mb_vm;
struct lua_State;

/* Told of each Lua file of the endpoint as it is loaded: the script, then every module
 * `require` finds on package.path (moonbus's own modules excepted). */
typedef void (*mb_vm_file_fn)(void *ud, const char *path);

typedef struct mb_vm_load {
  double budget;         /* seconds the script's top level may run (0: the default) */
  mb_vm_file_fn on_file; /* NULL: nobody asks */
  void *file_ud;
} mb_vm_load;

/* A new generation bound to rt with target (a directory holding endpoint.lua, or a file)
 * loaded. how may be NULL. On failure err says which file failed and why. */
mb_vm *mb_vm_open(mb_runtime *rt, const char *target, const mb_vm_load *how, mb_err *err);
/* Module mode: the generation of L, a state its caller made and will close, with a runtime
 * of its own (and its own loop). Closed by the state's close (a __gc the bindings own), or
 * by mb_vm_close, which never closes L. NULL when out of memory. */
mb_vm *mb_vm_adopt(struct lua_State *L);
/* Module mode (a test driver's reset): timers, scheduler and runtime are made anew, the
 * old ones freed (their parked coroutines cancelled). MB_OK or MB_ENOMEM. */
int mb_vm_reset(mb_vm *vm);
/* Stops the timers, cancels the coroutines, closes the state (unless adopted) and frees
 * the generation. Its __gc finalizers run outside any time budget: a close that lasts
 * 2 x time_budget logs why and ends the process (watchdog.h). */
void mb_vm_close(mb_vm *vm);

/* The generation L (any of its threads) belongs to, or NULL. */
mb_vm *mb_vm_of(struct lua_State *L);
/* 1 for a generation that mb_vm_adopt made (module mode), 0 for a host's. */
int mb_vm_adopted(const mb_vm *vm);
mb_runtime *mb_vm_runtime(const mb_vm *vm);
mb_sched *mb_vm_sched(const mb_vm *vm);
mb_timers *mb_vm_timers(const mb_vm *vm);

void mb_vm_start_timers(mb_vm *vm);
void mb_vm_stop_timers(mb_vm *vm);
/* The script the VM loaded ("" in module mode). */
const char *mb_vm_script(const mb_vm *vm);
/* How many of its coroutines are alive (running, parked in bus.request, a timer tick
 * waiting for a confirm). */
unsigned mb_vm_live(const mb_vm *vm);
/* Bytes its Lua state holds now (0 in module mode, whose state is its caller's). */
size_t mb_vm_memory(const mb_vm *vm);
/* Which generation vm is (reload.c counts them), for the log line of its close. */
void mb_vm_set_generation(mb_vm *vm, unsigned generation);

/* Checks that json is one JSON object (lua-cjson decides). MB_OK or MB_EINVAL. */
int mb_vm_check_json(const char *json, mb_err *err);

/* "Lua 5.4.4" */
const char *mb_vm_lua_release(void);

#endif
