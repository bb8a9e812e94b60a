/* llog.c — bus.log.debug/info/warn/error(text) or (fmt, ...), each with an optional
 * trailing table of fields: one argument is logged as it is, several string.format-style;
 * a table after them becomes fields (key=value, keys sorted). Through the host's log,
 * tagged with the endpoint and, inside a handler, the message id, type and conversation id.
 * Never: buffers or drops lines on its own (mb_log filters, and captures for tests whatever
 * the filter). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lbus.h"
#include "log.h"
#include "pipeline.h"

#define MAX_FIELDS 32
#define MAX_KEY 64
#define MAX_TABLE_JSON 1024 /* a nested table with longer JSON is written as `table` */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Raises "FILE:LINE: bus.log.LEVEL: what", what formatted like lua_pushfstring. */
static int raise(lua_State *L, mb_level level, const char *what) {
  luaL_where(L, 1);
  lua_pushfstring(L, "bus.log.%s: %s", level_names[level], what);
  lua_concat(L, 2);
  return lua_error(L);
}

/* The conversions in a string.format format: each % that is not "%%". */
static int directives(const char *fmt) {
  int n = 0;
  for (const char *p = strchr(fmt, '%'); p; p = strchr(p, '%')) {
    if (p[1] == '%') p += 2;
    else n++, p++;
  }
  return n;
}

/* 1 if the last of the n arguments is a table of fields: a table without __tostring after a
 * message alone, or after a format and more arguments than the format converts. */
static int has_fields(lua_State *L, int n) {
  if (n < 2 || lua_type(L, n) != LUA_TTABLE) return 0;
  if (luaL_getmetafield(L, n, "__tostring") != LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (n == 2 || lua_type(L, 1) != LUA_TSTRING) return 1;
  return n - 1 > directives(lua_tostring(L, 1));
}

/* Pushes the text of arguments 1..n: one as it is (a "100%" stays), several through
 * string.format; a format that fails raises naming bus.log.LEVEL and the caller's line.
 * [-0, +1, e] */
static const char *format_line(lua_State *L, mb_level level, int n, size_t *len) {
  if (n == 1) return luaL_tolstring(L, 1, len);
  luaL_checkstack(L, n + 2, "too many arguments to bus.log");
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "format");
  lua_remove(L, -2);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  if (lua_pcall(L, n, 1, 0) != LUA_OK)
    raise(L, level,
          lua_pushfstring(L,
                          "%s (with several arguments the first is a string.format format: "
                          "write %%%% for a %%, or pass one string, or one string and a "
                          "table of fields)",
                          lua_tostring(L, -1)));
  return lua_tolstring(L, -1, len);
}

/* A key is 1-64 letters, digits, '_', '.' or '-', and not a part every line has. */
static const char *bad_key(const char *key, size_t len) {
  static const char *const taken[] = {"time", "level", "endpoint",        "msg",
                                      "id",   "type",  "conversation_id", "conv"};
  if (len == 0 || len > MAX_KEY) return "a field's key has 1 to 64 characters";
  for (size_t i = 0; i < len; i++)
    if (!(isalnum((unsigned char)key[i]) || key[i] == '_' || key[i] == '.' || key[i] == '-'))
      return "a field's key is letters, digits, '_', '.' and '-'";
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
    if (strcmp(key, taken[i]) == 0)
      return "a field's key may not be time, level, endpoint, msg, id, type, conv or "
             "conversation_id (every line has them): rename it";
  return NULL;
}

/* The JSON of the table at idx through the bus's cjson, pushed; "table" when it cannot be
 * encoded or is too long. [-0, +1, m] */
static const char *table_json(lua_State *L, int idx, size_t *len, int *json) {
  *json = 0;
  if (mb_ljson_fits(L, idx, MAX_TABLE_JSON)) {
    lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_JSON);
    lua_getfield(L, -1, "encode");
    lua_remove(L, -2);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
      *json = 1;
      return lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1);
  }
  lua_pushliteral(L, "table");
  return lua_tolstring(L, -1, len);
}

/* f's value from the value at idx: a string as it is, a finite number, a boolean and a
 * table as JSON, anything else as tostring. Pushes what it makes and returns 1, or 0 for a
 * string. [-0, +(0|1), e] */
static int read_value(lua_State *L, int idx, mb_log_field *f) {
  f->json = 0;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: f->value = lua_tolstring(L, idx, &f->len); return 0;
  case LUA_TTABLE: f->value = table_json(L, idx, &f->len, &f->json); return 1;
  case LUA_TNUMBER:
  case LUA_TBOOLEAN:
    f->json = lua_type(L, idx) == LUA_TBOOLEAN || lua_isinteger(L, idx) ||
              isfinite(lua_tonumber(L, idx));
    f->value = luaL_tolstring(L, idx, &f->len);
    return 1;
  default: f->value = luaL_tolstring(L, idx, &f->len); return 1;
  }
}

static int by_key(const void *a, const void *b) {
  return strcmp(((const mb_log_field *)a)->key, ((const mb_log_field *)b)->key);
}

/* The fields of the table at idx into out (keys sorted); the values it makes stay on the
 * stack (the table holds its own keys and strings). [-0, +k, e] */
static size_t read_fields(lua_State *L, int idx, mb_level level, mb_log_field *out) {
  size_t n = 0;
  luaL_checkstack(L, 2 * MAX_FIELDS + 8, "bus.log fields");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      raise(L, level,
            lua_pushfstring(L, "a field's key must be a string (got %s)", luaL_typename(L, -2)));
    size_t klen;
    const char *key = lua_tolstring(L, -2, &klen);
    const char *why = bad_key(key, klen);
    if (why) raise(L, level, lua_pushfstring(L, "%s (got '%s')", why, key));
    if (n == MAX_FIELDS) raise(L, level, "at most 32 fields");
    out[n].key = key;
    if (read_value(L, lua_gettop(L), &out[n++])) lua_rotate(L, -3, 1); /* made, key, value */
    lua_pop(L, 1);
  }
  qsort(out, n, sizeof *out, by_key);
  return n;
}

static int log_at(lua_State *L, mb_level level) {
  mb_vm *vm = mb_lbus_vm(L);
  int n = lua_gettop(L);
  luaL_checkany(L, 1);
  mb_log_field fields[MAX_FIELDS];
  int with_fields = has_fields(L, n);
  size_t count = with_fields ? read_fields(L, n, level, fields) : 0;
  size_t len; /* formats even when the level is off: a bad call is a bug anyway */
  const char *text = format_line(L, level, with_fields ? n - 1 : n, &len);
  mb_job *job = mb_sched_current_job(mb_vm_sched(vm));
  mb_log_ids none = {NULL, NULL, NULL};
  mb_log_ids ids = job ? mb_envelope_log_ids(&mb_job_delivery(job)->env) : none;
  mb_log_line(level, mb_runtime_endpoint(mb_vm_runtime(vm)), ids, fields, count, text, len);
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
