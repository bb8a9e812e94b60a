/* lversion.c — message versions (DESIGN §14): bus.upcast registers the step that turns the
 * body of one version of a type into the next, and mb_lversion_upcast runs the chain from
 * the version a message arrived with (its moonbus.version header; none: 1) to the version
 * this endpoint declares, before the schema check: ldispatch.c for handled messages, lwait.c
 * for replies to bus.request. The steps live in the contract tables of the Lua state, so
 * they reload with the script.
 * Never: sends anything, or decides what becomes of a message that cannot be upcast (its
 * callers park it, fail the attempt, or raise bad_reply). */
#include "lbus.h"

lua_Integer mb_lversion_declared(lua_State *L, int contract_idx) {
  lua_getfield(L, contract_idx, "version");
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v > 0 ? v : 1;
}

int mb_lversion_parse(const char *text, lua_Integer *v) {
  *v = 1;
  if (text == NULL) return 1;
  if (*text < '1' || *text > '9') return 0;
  lua_Integer n = 0;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9' || n > (LUA_MAXINTEGER - 9) / 10) return 0;
    n = n * 10 + (*p - '0');
  }
  *v = n;
  return 1;
}

/* The table of steps of the contract at contract_idx (from_version -> fn), made if it has
 * none. [-0, +1, m] */
static void push_steps(lua_State *L, int contract_idx) {
  if (lua_getfield(L, contract_idx, "upcast") == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, contract_idx, "upcast");
}

/* bus.upcast(type, from_version, function(body) return body_of_the_next_version end) */
static int l_upcast(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  lua_settop(L, 3);
  mb_lcontract_push(L, type, "bus.upcast"); /* 4 */
  int whole;
  lua_Integer from = lua_tointegerx(L, 2, &whole);
  if (lua_type(L, 2) != LUA_TNUMBER || !whole || from < 1)
    return luaL_error(L, "bus.upcast(\"%s\"): from_version must be a whole number >= 1, got %s",
                      type, luaL_tolstring(L, 2, NULL));
  if (!lua_isfunction(L, 3))
    return luaL_error(L,
                      "bus.upcast(\"%s\", %I): the step must be a function(body) that "
                      "returns the v%I body, got %s",
                      type, from, from + 1, luaL_typename(L, 3));
  lua_Integer declared = mb_lversion_declared(L, 4);
  if (from >= declared)
    return luaL_error(L,
                      "bus.upcast(\"%s\", %I): %s is declared as v%I here, so there is no "
                      "step from v%I: declare it with { version = %I } to upcast to v%I",
                      type, from, type, declared, from, from + 1, from + 1);
  push_steps(L, 4);
  if (lua_geti(L, -1, from) != LUA_TNIL)
    return luaL_error(L,
                      "bus.upcast(\"%s\", %I): the step from v%I to v%I is already "
                      "registered (one function per step)",
                      type, from, from, from + 1);
  lua_pop(L, 1);
  lua_pushvalue(L, 3);
  lua_seti(L, -2, from);
  return 0;
}

/* Replaces the error on top (the stack was top + 1 before it) with what a failed step
 * says. [-1, +1, m] */
static int step_failed(lua_State *L, int top, const char *type, lua_Integer from) {
  int unrecoverable;
  const char *why = mb_lbus_error_text(L, -1, &unrecoverable);
  lua_pushfstring(L, "the upcaster from v%I of %s to v%I failed: %s", from, type, from + 1, why);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return unrecoverable ? MB_UPCAST_UNRECOVERABLE : MB_UPCAST_FAILED;
}

/* Runs the step from version `from` on the body at body_idx, which becomes what it
 * returns; else pushes why it could not. [-0, +(0|1), e] */
static int run_step(lua_State *L, int contract_idx, int body_idx, const char *type,
                    lua_Integer from) {
  int top = lua_gettop(L);
  if (lua_getfield(L, contract_idx, "upcast") != LUA_TTABLE ||
      lua_geti(L, -1, from) != LUA_TFUNCTION) {
    lua_settop(L, top);
    lua_pushfstring(L, "no upcaster from v%I of %s to v%I: declare bus.upcast(\"%s\", %I, fn)",
                    from, type, from + 1, type, from);
    return MB_UPCAST_MISSING;
  }
  lua_pushvalue(L, body_idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return step_failed(L, top, type, from);
  if (!lua_istable(L, -1)) {
    const char *got = luaL_typename(L, -1);
    lua_settop(L, top);
    lua_pushfstring(L,
                    "the upcaster from v%I of %s to v%I returned %s, not a table: it must "
                    "return the v%I body",
                    from, type, from + 1, got, from + 1);
    return MB_UPCAST_FAILED;
  }
  lua_replace(L, body_idx);
  lua_settop(L, top);
  return MB_UPCAST_OK;
}

int mb_lversion_upcast(lua_State *L, int contract_idx, int body_idx, const char *type,
                       const char *header) {
  contract_idx = lua_absindex(L, contract_idx);
  body_idx = lua_absindex(L, body_idx);
  lua_Integer v, declared = mb_lversion_declared(L, contract_idx);
  if (!mb_lversion_parse(header, &v)) {
    lua_pushfstring(L, "%s: %s '%s' is not a version (a whole number >= 1)", type, MB_H_VERSION,
                    mb_lbus_head(header, 40));
    return MB_UPCAST_BAD_VERSION;
  }
  if (v > declared) {
    lua_pushfstring(L, "v%I of %s is newer than this endpoint's v%I: deploy the newer contracts",
                    v, type, declared);
    return MB_UPCAST_NEWER;
  }
  for (; v < declared; v++) {
    int rc = run_step(L, contract_idx, body_idx, type, v);
    if (rc != MB_UPCAST_OK) return rc;
  }
  return MB_UPCAST_OK;
}

static const luaL_Reg version_functions[] = {
    {"upcast", l_upcast},
    {NULL, NULL},
};

void mb_lversion_open(lua_State *L) { luaL_setfuncs(L, version_functions, 0); }
