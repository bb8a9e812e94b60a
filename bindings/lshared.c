/* lshared.c — bus.shared(name): the Lua face of the runtime's store (host/shared.h), the
 * state a script keeps across hot reloads. A handle is a userdata holding the dictionary's
 * name only: each call finds the store through the state's runtime, so a handle never
 * points at memory a reset (module mode) has freed. Tables are stored as the JSON text the
 * bus's own lua-cjson makes of them (as message bodies are); a value read is a copy.
 * Misuse raises naming shared:METHOD; the store saying no (over its bound, a missing key for
 * incr) is returned as nil and an error value (lerror.c).
 * Never: keeps a Lua value or reference in the store, or a pointer into the store in Lua. */
#include <string.h>

#include "lbus.h"
#include "shared.h"

#define MB_SHARED_MT "moonbus.Shared"
#define KEYS_DEFAULT 1024 /* keys() without max, as ngx.shared.DICT:get_keys */

typedef struct handle {
  char name[MB_SHARED_NAME_MAX + 1];
} handle;

/* Raises "bad argument #n to 'shared:fn' (why)" with the caller's position. [-0, +0, v] */
static int arg_error(lua_State *L, int n, const char *fn, const char *why) {
  return luaL_error(L, "bad argument #%d to 'shared:%s' (%s)", n, fn, why);
}

/* The dictionary's name of the handle a method was called on. [-0, +0, v] */
static const char *self(lua_State *L, const char *fn) {
  handle *h = luaL_testudata(L, 1, MB_SHARED_MT);
  if (h == NULL)
    luaL_error(L,
               "shared:%s: call it with a colon on a handle from bus.shared(name), as in "
               "shelf:%s(...), not with a dot",
               fn, fn);
  return h->name;
}

static mb_shared *store(lua_State *L) { return mb_runtime_shared(mb_lbus_runtime(L)); }

/* The key at argument 2 (the caller's #1): a string of 1-65535 bytes. [-0, +0, v] */
static const char *key_arg(lua_State *L, const char *fn, size_t *klen) {
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, klen) : NULL;
  if (key == NULL || *klen == 0 || *klen > MB_SHARED_KEY_MAX)
    arg_error(L, 1, fn,
              lua_pushfstring(L, "the key must be a string of 1-%d bytes, got %s",
                              MB_SHARED_KEY_MAX,
                              key ? "an empty or longer one" : luaL_typename(L, 2)));
  return key;
}

/* A number argument as a store value. [-0, +0, v] */
static mb_shared_value number_arg(lua_State *L, int idx, const char *fn, const char *what) {
  mb_shared_value v = {0};
  if (lua_type(L, idx) != LUA_TNUMBER)
    arg_error(L, idx - 1, fn,
              lua_pushfstring(L, "%s must be a number, got %s", what, luaL_typename(L, idx)));
  if (lua_isinteger(L, idx)) {
    v.type = MB_SHARED_INTEGER;
    v.integer = lua_tointeger(L, idx);
  } else {
    v.type = MB_SHARED_NUMBER;
    v.number = lua_tonumber(L, idx);
  }
  return v;
}

/* The JSON text of the table at idx, pushed; raises naming the key if it has none (a
 * function, a userdata, a cycle, a sparse array...). [-0, +1, e] */
static const char *json_of(lua_State *L, int idx, const char *key, size_t klen, size_t *len) {
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_JSON);
  lua_getfield(L, -1, "encode");
  lua_remove(L, -2);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    luaL_error(L, "shared:set: the table for key '%s' cannot be stored as JSON: %s",
               mb_lbus_head(key, klen), lua_tostring(L, -1));
  return lua_tolstring(L, -1, len);
}

/* The value at argument 3 as a store value (a table's JSON text pushed). [-0, +(0|1), e] */
static mb_shared_value value_arg(lua_State *L, const char *key, size_t klen) {
  mb_shared_value v = {0};
  switch (lua_type(L, 3)) {
  case LUA_TNONE:
  case LUA_TNIL: v.type = MB_SHARED_NIL; break;
  case LUA_TBOOLEAN:
    v.type = MB_SHARED_BOOLEAN;
    v.boolean = lua_toboolean(L, 3);
    break;
  case LUA_TNUMBER: v = number_arg(L, 3, "set", "the value"); break;
  case LUA_TSTRING:
    v.type = MB_SHARED_STRING;
    v.bytes = lua_tolstring(L, 3, &v.len);
    break;
  case LUA_TTABLE:
    v.type = MB_SHARED_JSON;
    v.bytes = json_of(L, 3, key, klen, &v.len);
    break;
  default:
    arg_error(L, 2, "set",
              lua_pushfstring(L,
                              "the value must be a string, number, boolean, table or nil, "
                              "got %s",
                              luaL_typename(L, 3)));
  }
  return v;
}

/* Pushes a value read from the store (a table decoded anew). [-0, +1, e] */
static void push_value(lua_State *L, const mb_shared_value *v) {
  switch (v->type) {
  case MB_SHARED_BOOLEAN: lua_pushboolean(L, v->boolean); break;
  case MB_SHARED_INTEGER: lua_pushinteger(L, (lua_Integer)v->integer); break;
  case MB_SHARED_NUMBER: lua_pushnumber(L, (lua_Number)v->number); break;
  case MB_SHARED_STRING: lua_pushlstring(L, v->bytes, v->len); break;
  case MB_SHARED_JSON:
    lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_JSON);
    lua_getfield(L, -1, "decode");
    lua_remove(L, -2);
    lua_pushlstring(L, v->bytes, v->len);
    lua_call(L, 1, 1);
    break;
  default: lua_pushnil(L);
  }
}

/* nil and an error value of the status's kind: the store said no. [-0, +2, m] */
static int refused(lua_State *L, int status, const char *fn, const mb_err *err) {
  lua_pushnil(L);
  mb_lerror_push(L, mb_lerror_kind_of_status(status), "shared:%s: %s", fn, err->msg);
  return 2;
}

/* shelf:get(key) -> the value, or nil */
static int l_get(lua_State *L) {
  const char *name = self(L, "get");
  size_t klen;
  const char *key = key_arg(L, "get", &klen);
  mb_shared_value v;
  if (mb_shared_get(store(L), name, key, klen, &v) != MB_OK) lua_pushnil(L);
  else push_value(L, &v);
  return 1;
}

/* shelf:set(key, value) -> true, or nil and a too_large error value. A nil value deletes. */
static int l_set(lua_State *L) {
  const char *name = self(L, "set");
  size_t klen;
  const char *key = key_arg(L, "set", &klen);
  mb_shared_value v = value_arg(L, key, klen);
  mb_err err;
  int rc = mb_shared_set(store(L), name, key, klen, &v, &err);
  if (rc != MB_OK) return refused(L, rc, "set", &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* shelf:incr(key, n [, init]) -> the new value; a missing key starts at init, or gives nil
 * and a not_found error value. */
static int l_incr(lua_State *L) {
  const char *name = self(L, "incr");
  size_t klen;
  const char *key = key_arg(L, "incr", &klen);
  mb_shared_value by = number_arg(L, 3, "incr", "n"), init = {0}, out;
  int has_init = !lua_isnoneornil(L, 4);
  if (has_init) init = number_arg(L, 4, "incr", "init");
  mb_err err;
  int rc = mb_shared_incr(store(L), name, key, klen, &by, has_init ? &init : NULL, &out, &err);
  if (rc == MB_EINVAL) return luaL_error(L, "shared:incr: %s", err.msg);
  if (rc != MB_OK) return refused(L, rc, "incr", &err);
  push_value(L, &out);
  return 1;
}

/* shelf:delete(key) */
static int l_delete(lua_State *L) {
  const char *name = self(L, "delete");
  size_t klen;
  const char *key = key_arg(L, "delete", &klen);
  mb_shared_delete(store(L), name, key, klen);
  return 0;
}

typedef struct key_list {
  lua_State *L; /* the table on top */
  lua_Integer n;
} key_list;

static void add_key(void *ud, const char *key, size_t klen) {
  key_list *list = ud;
  lua_pushlstring(list->L, key, klen);
  lua_rawseti(list->L, -2, ++list->n);
}

/* shelf:keys([max]) -> { key, ... } in no particular order; at most max (default 1024;
 * 0: all) */
static int l_keys(lua_State *L) {
  const char *name = self(L, "keys");
  lua_Integer max = KEYS_DEFAULT;
  if (!lua_isnoneornil(L, 2)) {
    int ok;
    max = lua_tointegerx(L, 2, &ok);
    if (!ok || max < 0) arg_error(L, 1, "keys", "max must be a whole number >= 0 (0: all)");
  }
  mb_shared *s = store(L);
  size_t n = mb_shared_count(s, name);
  lua_createtable(L, (int)(max > 0 && (size_t)max < n ? (size_t)max : n), 0);
  key_list list = {L, 0};
  mb_shared_keys(s, name, (size_t)max, add_key, &list);
  return 1;
}

/* shelf:count() -> how many keys the dictionary holds */
static int l_count(lua_State *L) {
  const char *name = self(L, "count");
  lua_pushinteger(L, (lua_Integer)mb_shared_count(store(L), name));
  return 1;
}

/* shelf:flush_all(): removes every key of the dictionary */
static int l_flush_all(lua_State *L) {
  const char *name = self(L, "flush_all");
  mb_shared_flush(store(L), name);
  return 0;
}

static int l_tostring(lua_State *L) {
  lua_pushfstring(L, "moonbus.shared(\"%s\")", self(L, "__tostring"));
  return 1;
}

/* bus.shared(name) -> the handle of the named dictionary (made on first use) */
static int l_shared(lua_State *L) {
  size_t len;
  const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  if (name == NULL || len == 0 || len > MB_SHARED_NAME_MAX || strlen(name) != len)
    return luaL_error(L,
                      "bad argument #1 to 'bus.shared' (a dictionary's name: a string of 1-%d "
                      "bytes without NUL, got %s)",
                      MB_SHARED_NAME_MAX, name ? "another string" : luaL_typename(L, 1));
  if (!lua_isnone(L, 2))
    return luaL_error(L, "bus.shared takes one argument, the name: the bound of every "
                         "dictionary together is bus.endpoint{ shared_memory = BYTES }");
  store(L); /* raises if the bus is not open */
  handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  memcpy(h->name, name, len + 1);
  luaL_setmetatable(L, MB_SHARED_MT);
  return 1;
}

static const luaL_Reg methods[] = {
    {"get", l_get},   {"set", l_set},     {"incr", l_incr},           {"delete", l_delete},
    {"keys", l_keys}, {"count", l_count}, {"flush_all", l_flush_all}, {NULL, NULL},
};

void mb_lshared_open(lua_State *L) {
  if (luaL_newmetatable(L, MB_SHARED_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_shared);
  lua_setfield(L, -2, "shared");
}
