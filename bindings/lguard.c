/* lguard.c — what a script in a host's Lua state may not do to the host (DESIGN §6: the
 * budget cannot be removed by the script). The host's states get two functions of the
 * standard library replaced by ones that refuse, naming themselves and saying what to do:
 * - os.exit: it would end the process with every handler in flight, without a log line;
 *   a handler fails its message with error(...) or parks it with bus.unrecoverable(...).
 * - debug.sethook: the time budget is the count hook of the handler's coroutine; a script
 *   that replaced or removed it would run unbounded until the watchdog ended the host.
 *   (debug.gethook stays: it only reads.)
 * Module mode (lua5.4 or busted with moonbus.so) keeps its libraries as they are: the
 * interpreter and its hooks belong to the test run there.
 * Never: hides a library wholesale, or changes what a refused function would have done. */
#include "lbus.h"

/* os.exit(...) in a host. [-0, +0, v] */
static int refuse_exit(lua_State *L) {
  return luaL_error(L, "os.exit is not available in a moonbus host: it would end the process "
                       "with every handler in flight; to fail this message raise an error "
                       "(error(...)), or error(bus.unrecoverable(...)) to park it at once");
}

/* debug.sethook(...) in a host. [-0, +0, v] */
static int refuse_sethook(lua_State *L) {
  return luaL_error(L, "debug.sethook is not available in a moonbus host: the time budget "
                       "(time_budget) runs in the debug hook, and a script cannot replace or "
                       "remove it; debug or profile the script with lua5.4 and moonbus.so");
}

/* Replaces lib[name] with fn, if lib is loaded. [-0, +0, m] */
static void replace(lua_State *L, const char *lib, const char *name, lua_CFunction fn) {
  if (lua_getglobal(L, lib) == LUA_TTABLE) {
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
}

void mb_lguard_open(lua_State *L) {
  replace(L, "os", "exit", refuse_exit);
  replace(L, "debug", "sethook", refuse_sethook);
}
