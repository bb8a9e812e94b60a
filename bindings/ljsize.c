/* ljsize.c — how long the JSON of a Lua value will be, counted before lua-cjson encodes
 * it. Debian's lua-cjson (2.1.0) builds its output in a buffer of its own (malloc, doubled
 * as it grows), outside the Lua allocator: the memory budget cannot see it, and it has no
 * size limit. A body of 200 references to one 1 MiB string is 200 MiB of JSON from 1 MiB
 * of Lua memory. So a send counts first, with cjson's rules (its escapes, %.14g numbers,
 * arrays with holes as null), and stops counting once past the limit: the count costs at
 * most about `limit` steps, whatever the value's shape, and a body that passes it needs a
 * buffer of at most twice max_body.
 * Never: encodes, or decides what is an error (a value cjson refuses counts as small and
 * cjson raises its own error). */
#include <math.h>
#include <stdio.h>

#include "lbus.h"

#define MAX_DEPTH 64 /* the private cjson's encode_max_depth (lbus.c) */
#define SPARSE_RATIO 2
#define SPARSE_SAFE 10 /* cjson's defaults: sparser arrays are an error */

typedef struct jsize {
  size_t n, limit;
} jsize;

static int over(const jsize *z) { return z->n > z->limit; }

/* Bytes of s as a JSON string, quotes included (cjson escapes ", \, / and control bytes;
 * \b \t \n \f \r take 2 bytes, the other control bytes and DEL 6). */
static size_t string_len(const char *s, size_t len) {
  size_t n = len + 2;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\' || c == '/' || c == '\b' || c == '\t' || c == '\n' || c == '\f' ||
        c == '\r')
      n += 1;
    else if (c < 0x20 || c == 0x7f) n += 5;
  }
  return n;
}

/* Bytes of the number at idx as cjson writes it ("%.14g"). [-0, +0] */
static size_t number_len(lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    if (i > -100000000000000 && i < 100000000000000) { /* up to 14 digits: printed whole */
      size_t n = i < 0 ? 2 : 1;
      for (i = i < 0 ? -(i / 10) : i / 10; i > 0; i /= 10) n++;
      return n;
    }
  }
  char buf[40];
  int n = snprintf(buf, sizeof buf, "%.14g", (double)lua_tonumber(L, idx));
  return n > 0 ? (size_t)n : 0;
}

/* Bytes of the key at idx inside an object: "key": (a number key is quoted). [-0, +0] */
static size_t key_len(lua_State *L, int idx) {
  size_t len;
  if (lua_type(L, idx) == LUA_TNUMBER) return number_len(L, idx) + 3;
  if (lua_type(L, idx) != LUA_TSTRING) return 0; /* cjson raises */
  const char *s = lua_tolstring(L, idx, &len);
  return string_len(s, len) + 1;
}

static void value_size(lua_State *L, int idx, jsize *z, int depth);

/* 1 if the key at idx is what makes an array of a table (a whole number >= 1); *max grows. */
static int array_key(lua_State *L, int idx, lua_Number *max) {
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
  lua_Number k = lua_tonumber(L, idx);
  if (!(k >= 1) || floor(k) != k) return 0;
  if (k > *max) *max = k;
  return 1;
}

/* Adds the table at idx: an array (holes are null) or an object; stops once over. */
static void table_size(lua_State *L, int idx, jsize *z, int depth) {
  if (depth > MAX_DEPTH || !lua_checkstack(L, 3)) return; /* cjson raises */
  size_t items = 0, keys = 0;
  lua_Number max = 0;
  int array = 1;
  z->n += 2;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    array = array && array_key(L, -2, &max);
    keys += key_len(L, -2);
    z->n += items++ > 0;
    value_size(L, lua_gettop(L), z, depth + 1);
    lua_pop(L, 1);
    if (over(z)) {
      lua_pop(L, 1);
      return;
    }
  }
  if (!array || items == 0) z->n += keys;
  else if (!(max > (lua_Number)items * SPARSE_RATIO && max > SPARSE_SAFE))
    z->n += (size_t)(max - (lua_Number)items) * 5; /* null, */
}

static void value_size(lua_State *L, int idx, jsize *z, int depth) {
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    z->n += len + 2 > z->limit ? len + 2 : string_len(s, len);
    break;
  case LUA_TNUMBER: z->n += number_len(L, idx); break;
  case LUA_TBOOLEAN: z->n += lua_toboolean(L, idx) ? 4 : 5; break;
  case LUA_TLIGHTUSERDATA: z->n += 4; break; /* cjson.null */
  case LUA_TTABLE: table_size(L, idx, z, depth); break;
  default: break; /* functions, userdata, threads: cjson raises */
  }
}

int mb_ljson_fits(lua_State *L, int idx, size_t limit) {
  jsize z = {0, limit};
  value_size(L, lua_absindex(L, idx), &z, 1);
  return !over(&z);
}
