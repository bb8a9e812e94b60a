/* llog.c — bus.log.debug/info/warn/error(text) or (fmt, ...): one argument logged as it is,
 * several string.format-style, through the host's log, tagged with the endpoint and, inside a handler, the message id and type.
 * Never: buffers or drops lines on its own (mb_log filters, and captures for tests whatever
 * the filter). */
#include "lbus.h"
#include "log.h"
#include "pipeline.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Pushes the line: one argument as it is (a "100%" stays), several through string.format;
 * a format that fails raises naming bus.log.LEVEL and the caller's line. [-0, +1, e] */
static const char *format_line(lua_State *L, mb_level level) {
  int n = lua_gettop(L);
  luaL_checkany(L, 1);
  if (n == 1) return luaL_tolstring(L, 1, NULL);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "format");
  lua_remove(L, -2);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  if (lua_pcall(L, n, 1, 0) != LUA_OK) {
    luaL_where(L, 1);
    lua_pushfstring(L,
                    "bus.log.%s: %s (with several arguments the first is a string.format "
                    "format: write %%%% for a %%, or pass one string)",
                    level_names[level], lua_tostring(L, -2));
    lua_concat(L, 2);
    lua_error(L);
  }
  return lua_tostring(L, -1);
}

static int log_at(lua_State *L, mb_level level) {
  mb_vm *vm = mb_lbus_vm(L);
  const char *line = format_line(L, level); /* formats even when the level is off: a bad
                                               call is a bug anyway */
  mb_job *job = mb_sched_current_job(mb_vm_sched(vm));
  const mb_envelope *env = job ? &mb_job_delivery(job)->env : NULL;
  mb_log(level, mb_runtime_endpoint(mb_vm_runtime(vm)), env ? env->id : NULL,
         env ? env->type : NULL, "%s", line);
  return 0;
}

static int l_debug(lua_State *L) { return log_at(L, MB_DEBUG); }
static int l_info(lua_State *L) { return log_at(L, MB_INFO); }
static int l_warn(lua_State *L) { return log_at(L, MB_WARN); }
static int l_error(lua_State *L) { return log_at(L, MB_ERROR); }

static const luaL_Reg log_functions[] = {
    {"debug", l_debug}, {"info", l_info}, {"warn", l_warn}, {"error", l_error}, {NULL, NULL},
};

void mb_llog_open(lua_State *L) {
  luaL_newlib(L, log_functions);
  lua_setfield(L, -2, "log");
}
