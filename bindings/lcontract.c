/* lcontract.c — bus.command, bus.event, bus.message: every type is declared once with its
 * kind, an optional schema and an optional version (DESIGN §3, §14), and checked on send
 * and on receive. The steps between versions are lversion.c's.
 * Owns the registry table of types. Never sends or receives anything. */
#include <string.h>

#include "lbus.h"

static const char *const field_types[] = {"string", "number", "boolean", "table", NULL};

/* The Lua type a schema spec names, and whether it is optional; -1 if the spec is bad. */
static int parse_spec(const char *spec, int *optional) {
  size_t len = strlen(spec);
  *optional = len > 0 && spec[len - 1] == '?';
  if (*optional) len--;
  static const int lua_types[] = {LUA_TSTRING, LUA_TNUMBER, LUA_TBOOLEAN, LUA_TTABLE};
  for (int i = 0; field_types[i]; i++)
    if (strlen(field_types[i]) == len && strncmp(spec, field_types[i], len) == 0)
      return lua_types[i];
  return -1;
}

static void check_type_name(lua_State *L, const char *fn, const char *name, mb_kind kind) {
  size_t len = strlen(name);
  if (len == 0 || len > MB_TYPE_NAME_MAX)
    luaL_error(L, "%s: a type name has 1 to %d characters, got %d", fn, MB_TYPE_NAME_MAX,
               (int)len);
  if (kind == MB_KIND_EVENT && len > MB_EVENT_NAME_MAX)
    luaL_error(L,
               "%s: event type '%s...' is %d bytes; an event type has at most %d, so "
               "that its exchanges (moonbus.event.<type>, moonbus.owner.<type>) fit the "
               "broker's 255-byte names",
               fn, mb_lbus_head(name, 40), (int)len, MB_EVENT_NAME_MAX);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
      luaL_error(L, "%s: type name '%s' has a space or a byte that is not printable ASCII", fn,
                 name);
}

/* Raises unless the table at idx is a valid schema. */
static void check_schema(lua_State *L, const char *fn, const char *type, int idx) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int optional;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: schema of %s: field names must be strings", fn, type);
    if (lua_type(L, -1) != LUA_TSTRING || parse_spec(lua_tostring(L, -1), &optional) < 0) {
      const char *given = luaL_tolstring(L, -1, NULL); /* pushes: the key is now at -3 */
      luaL_error(L,
                 "%s: schema of %s: field '%s' has type '%s'; use \"string\", \"number\", "
                 "\"boolean\" or \"table\", with a ? suffix when optional",
                 fn, type, lua_tostring(L, -3), given);
    }
    lua_pop(L, 1);
  }
}

/* The version the options table at idx declares (opts.version), or 0 if it names none.
 * [-0, +0, e] */
static lua_Integer declared_version(lua_State *L, int idx, const char *fn, const char *type) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx))
    luaL_error(L, "%s: options of %s must be a table { version = N }, got %s", fn, type,
               luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "version") != 0)
      luaL_error(L, "%s: options of %s: unknown option '%s' (known: version)", fn, type,
                 luaL_tolstring(L, -2, NULL));
    lua_pop(L, 1);
  }
  if (lua_getfield(L, idx, "version") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  int whole;
  lua_Integer v = lua_tointegerx(L, -1, &whole);
  if (!whole || lua_type(L, -1) != LUA_TNUMBER || v < 1)
    luaL_error(L, "%s: version of %s must be a whole number >= 1, got %s", fn, type,
               luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return v;
}

/* Records version (> 0) in the contract on top, raising if it declared another. */
static void set_version(lua_State *L, const char *fn, const char *type, lua_Integer version) {
  if (version == 0) return;
  lua_getfield(L, -1, "version");
  lua_Integer had = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (had != 0 && had != version)
    luaL_error(L, "%s: %s is already declared as v%I; a type has one version per endpoint", fn,
               type, had);
  lua_pushinteger(L, version);
  lua_setfield(L, -2, "version");
}

/* bus.command/event/message(type [, schema [, { version = N }]]) */
static int declare(lua_State *L, mb_kind kind, const char *fn) {
  const char *type = luaL_checkstring(L, 1);
  check_type_name(L, fn, type, kind);
  int has_schema = !lua_isnoneornil(L, 2);
  if (has_schema) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_schema(L, fn, type, 2);
  }
  lua_Integer version = declared_version(L, 3, fn, type);
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_TYPES);
  if (lua_getfield(L, -1, type) == LUA_TTABLE) {
    mb_kind had = mb_lcontract_kind(L, -1);
    if (had != kind)
      return luaL_error(L, "%s: %s is already declared as a %s; a type has one kind", fn, type,
                        mb_kind_name(had));
  } else {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, mb_kind_name(kind));
    lua_setfield(L, -2, "kind");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, type);
  }
  set_version(L, fn, type, version);
  if (has_schema) {
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "schema");
  }
  lua_pushvalue(L, 1);
  return 1;
}

static int l_command(lua_State *L) { return declare(L, MB_KIND_COMMAND, "bus.command"); }
static int l_event(lua_State *L) { return declare(L, MB_KIND_EVENT, "bus.event"); }
static int l_message(lua_State *L) { return declare(L, MB_KIND_MESSAGE, "bus.message"); }

void mb_lcontract_push(lua_State *L, const char *type, const char *who) {
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_TYPES);
  int found = lua_getfield(L, -1, type) == LUA_TTABLE;
  lua_remove(L, -2);
  if (!found)
    luaL_error(L,
               "%s: %s is not declared; declare it with bus.command, bus.event or "
               "bus.message (usually in a contracts module the endpoints share)",
               who, type);
}

mb_kind mb_lcontract_kind(lua_State *L, int idx) {
  lua_getfield(L, idx, "kind");
  mb_kind kind = MB_KIND_MESSAGE;
  mb_kind_parse(lua_tostring(L, -1), &kind);
  lua_pop(L, 1);
  return kind;
}

/* Checks one field; pushes a message and returns 0 on a violation. */
static int check_field(lua_State *L, const char *type, const char *field, const char *spec) {
  int optional, want = parse_spec(spec, &optional);
  int got = lua_type(L, -1);
  if (got == LUA_TNIL || got == LUA_TLIGHTUSERDATA) { /* absent, or JSON null */
    if (optional) return 1;
    lua_pushfstring(L, "%s: field '%s' is missing (expected %s)", type, field, spec);
    return 0;
  }
  if (got == want) return 1;
  lua_pushfstring(L, "%s: field '%s' must be a %s, got %s", type, field, lua_typename(L, want),
                  lua_typename(L, got));
  return 0;
}

int mb_lcontract_check(lua_State *L, int contract_idx, int value_idx, const char *type) {
  contract_idx = lua_absindex(L, contract_idx);
  value_idx = lua_absindex(L, value_idx);
  if (!lua_istable(L, value_idx)) {
    lua_pushfstring(L, "%s: the body must be a table (a JSON object), got %s", type,
                    luaL_typename(L, value_idx));
    return 0;
  }
  if (lua_getfield(L, contract_idx, "schema") != LUA_TTABLE) {
    lua_pop(L, 1);
    return 1;
  }
  int schema = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, schema)) {
    const char *field = lua_tostring(L, -2), *spec = lua_tostring(L, -1);
    lua_getfield(L, value_idx, field);
    if (!check_field(L, type, field, spec)) {
      lua_replace(L, schema); /* keep the message where the schema was */
      lua_settop(L, schema);
      return 0;
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg contract_functions[] = {
    {"command", l_command},
    {"event", l_event},
    {"message", l_message},
    {NULL, NULL},
};

void mb_lcontract_open(lua_State *L) { luaL_setfuncs(L, contract_functions, 0); }
