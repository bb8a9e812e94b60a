/* lerror.c — the error values moonbus raises into scripts when the world says no (a
 * transport refuses or fails a send, a size limit, a request's timeout, a reply that breaks
 * its contract): a table { kind = ..., message = ..., [more fields] } whose metatable
 * moonbus.Error gives tostring (and ..) the message, so logs, the error queue's exception
 * header and text matching see exactly the message. Owns the metatable, the kinds (one per
 * host status, see mb_lerror_kind_of_status), bus.error_kind and bus.is_timeout.
 * Never: decides what is misuse (a script's wrong argument stays a plain string error,
 * raised by the binding that finds it) and never parses a message to find a kind. */
#include <stdarg.h>
#include <string.h>

#include "lbus.h"

const char *mb_lerror_kind_of_status(int status) {
  switch (status) {
  case MB_ENOMEM: return "out_of_memory";
  case MB_EINVAL: return "invalid";
  case MB_EIO: return "io_error";
  case MB_EUNROUTABLE: return "unroutable";
  case MB_EOWNER: return "not_owner";
  case MB_ELOST: return "not_connected";
  case MB_EBUSY: return "busy";
  case MB_ETOOBIG: return "too_large";
  case MB_ENOTFOUND: return "not_found";
  case MB_ENOTCONN: return "not_connected";
  case MB_EREFUSED: return "refused";
  default: return "io_error"; /* a status this table does not know yet: the world failed */
  }
}

/* __tostring: the message (never a non-string, which tostring would refuse). */
static int error_tostring(lua_State *L) {
  lua_pushliteral(L, "message");
  if (lua_rawget(L, 1) != LUA_TSTRING) {
    lua_pushliteral(L, "kind");
    int named = lua_rawget(L, 1) == LUA_TSTRING;
    lua_pushfstring(L, "moonbus error (%s)", named ? lua_tostring(L, -1) : "?");
  }
  return 1;
}

/* __concat: "text" .. err and err .. "text" join the message, as with a string error. */
static int error_concat(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  luaL_tolstring(L, 2, NULL);
  lua_concat(L, 2);
  return 1;
}

/* Pushes the metatable of error values, creating it on first use. [-0, +1, m] */
static void push_metatable(lua_State *L) {
  if (luaL_newmetatable(L, MB_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, error_concat);
    lua_setfield(L, -2, "__concat");
  }
}

/* Pushes { kind = kind, message = <where><fmt...> } with the error metatable; where is
 * luaL_where(L, level) when level > 0, as luaL_error adds it. [-0, +1, m] */
static void push_value(lua_State *L, const char *kind, int level, const char *fmt, va_list ap) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (level > 0) luaL_where(L, level);
  else lua_pushliteral(L, "");
  lua_pushvfstring(L, fmt, ap);
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  push_metatable(L);
  lua_setmetatable(L, -2);
}

void mb_lerror_push(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_value(L, kind, 0, fmt, ap);
  va_end(ap);
}

int mb_lerror_raise(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_value(L, kind, 1, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

int mb_lerror_raise_status(lua_State *L, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_value(L, mb_lerror_kind_of_status(status), 1, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

const char *mb_lerror_kind(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (mb_lbus_has_metatable(L, idx, MB_UNRECOVERABLE_MT)) return "unrecoverable";
  if (!mb_lbus_has_metatable(L, idx, MB_ERROR_MT)) return NULL;
  lua_pushliteral(L, "kind");
  lua_rawget(L, idx);
  const char *kind = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the table still holds the string */
  return kind;
}

/* bus.error_kind(err) -> the kind of an error moonbus raised ("timeout", "unroutable",
 * ..., "unrecoverable" for bus.unrecoverable values), or nil for any other value. */
static int l_error_kind(lua_State *L) {
  const char *kind = mb_lerror_kind(L, 1);
  if (kind) lua_pushstring(L, kind);
  else luaL_pushfail(L);
  return 1;
}

/* bus.is_timeout(err) -> true for the error bus.request raises when no reply came */
static int l_is_timeout(lua_State *L) {
  const char *kind = mb_lerror_kind(L, 1);
  lua_pushboolean(L, kind && strcmp(kind, "timeout") == 0);
  return 1;
}

static const luaL_Reg error_functions[] = {
    {"error_kind", l_error_kind},
    {"is_timeout", l_is_timeout},
    {NULL, NULL},
};

void mb_lerror_open(lua_State *L) {
  push_metatable(L);
  lua_pop(L, 1);
  luaL_setfuncs(L, error_functions, 0);
}
