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

/* A new Lua state bound to rt with target (a directory holding endpoint.lua, or a file)
 * loaded. On failure err says which file failed and why. */
mb_vm *mb_vm_open(mb_runtime *rt, const char *target, mb_err *err);
void mb_vm_start_timers(mb_vm *vm);
void mb_vm_stop_timers(mb_vm *vm);
/* The script the VM loaded. */
const char *mb_vm_script(const mb_vm *vm);
void mb_vm_close(mb_vm *vm);

/* Checks that json is one JSON object (lua-cjson decides). MB_OK or MB_EINVAL. */
int mb_vm_check_json(const char *json, mb_err *err);

/* "Lua 5.4.4" */
const char *mb_vm_lua_release(void);

#endif
