/* ldispatch.c — the function every handler coroutine starts with: binds ctx, decodes the
 * body, upcasts it to the version this endpoint declares (lversion.c), checks it against
 * the contract, and calls the endpoint's handlers for the type in order (with
 * continuations, so a bus call inside a handler may yield); for a type handled with
 * order_by, first reads the order and key fields and asks the pipeline whether the message
 * is stale (mb_job_order), in which case no handler runs. What can never succeed is raised
 * as unrecoverable, so the pipeline parks it instead of retrying.
 * Never: acknowledges, sends or retries anything. */
#include <stdio.h>
#include <string.h>

#include "claim.h"
#include "lbus.h"
#include "pipeline.h"

enum { ARG_JOB = 1, ARG_CTX, ARG_BODY, ARG_CONTRACT, ARG_HANDLERS, ARG_COUNT };

/* Pushes the decoded body of job, or raises unrecoverable. */
static void decode_body(lua_State *L, mb_job *job) {
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_JSON);
  lua_getfield(L, -1, "decode");
  lua_remove(L, -2);
  const mb_envelope *env = &mb_job_delivery(job)->env;
  int claimed = mb_headers_get(&env->headers, MB_H_CLAIM) != NULL;
  lua_pushlstring(L, env->body, env->body_len);
  mb_job_body_taken(job); /* a claimed body: Lua has its copy, the fetched one goes */
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    mb_lbus_unrecoverable(L, "the body is not valid JSON: %s", lua_tostring(L, -1));
  if (claimed) lua_gc(L, LUA_GCCOLLECT); /* the JSON text of a large body: gone now */
  if (!lua_istable(L, -1))
    mb_lbus_unrecoverable(L, "the body must be a JSON object, got %s", luaL_typename(L, -1));
}

/* Pushes this endpoint's contract for the message's type, checking its kind. */
static void push_contract(lua_State *L, mb_job *job) {
  mb_envelope *env = &mb_job_delivery(job)->env;
  const char *type = env->type;
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_TYPES);
  if (lua_getfield(L, -1, type) != LUA_TTABLE)
    mb_lbus_unrecoverable(L,
                          "endpoint %s does not know type %s (it is not declared in its "
                          "contracts)",
                          mb_job_endpoint(job), type);
  lua_remove(L, -2);
  mb_kind declared = mb_lcontract_kind(L, -1), sent;
  if (mb_headers_get(&env->headers, MB_H_KIND) == NULL) { /* a foreign sender's */
    if (mb_headers_set(&env->headers, MB_H_KIND, mb_kind_name(declared)) != MB_OK)
      luaL_error(L, "out of memory");
  } else if (mb_envelope_kind(env, &sent) == MB_OK && sent != declared)
    mb_lbus_unrecoverable(L, "%s arrived as a %s but is declared as a %s", type,
                          mb_kind_name(sent), mb_kind_name(declared));
}

/* Brings the body to the version this endpoint declares (lversion.c). A step that failed
 * fails the attempt (retries apply: a reload may fix it); a version that is newer, or not
 * a version, or a step that is missing can never succeed here. */
static void upcast(lua_State *L, mb_job *job) {
  const mb_envelope *env = &mb_job_delivery(job)->env;
  int rc = mb_lversion_upcast(L, ARG_CONTRACT, ARG_BODY, env->type,
                              mb_headers_get(&env->headers, MB_H_VERSION));
  if (rc == MB_UPCAST_OK) return;
  if (rc == MB_UPCAST_FAILED) lua_error(L);
  mb_lbus_unrecoverable(L, "%s", lua_tostring(L, -1));
}

static void check_schema(lua_State *L, mb_job *job) {
  if (!mb_lcontract_check(L, ARG_CONTRACT, ARG_BODY, mb_job_delivery(job)->env.type))
    mb_lbus_unrecoverable(L, "schema violation: %s", lua_tostring(L, -1));
}

static void push_handlers(lua_State *L, mb_job *job) {
  const char *type = mb_job_delivery(job)->env.type;
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_HANDLERS);
  if (lua_getfield(L, -1, type) != LUA_TTABLE || luaL_len(L, -1) == 0)
    mb_lbus_unrecoverable(L, "endpoint %s has no handler for %s", mb_job_endpoint(job), type);
  lua_remove(L, -2);
  lua_pushinteger(L, luaL_len(L, -1));
}

/* Pushes the body field named by path ("a.b": nested), or nil. [-0, +1, e] */
static void push_field(lua_State *L, const char *path) {
  lua_pushvalue(L, ARG_BODY);
  while (*path) {
    size_t n = strcspn(path, ".");
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_pushnil(L);
      return;
    }
    lua_pushlstring(L, path, n);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    path += n + (path[n] == '.');
  }
}

/* The number at the top as a mark value (an integral float becomes an integer). */
static void number_value(lua_State *L, mb_mark *m) {
  lua_Number x = lua_tonumber(L, -1);
  if (lua_isinteger(L, -1)) {
    m->kind = MB_MARK_INTEGER;
    m->integer = (int64_t)lua_tointeger(L, -1);
  } else if (x >= -9007199254740992.0 && x <= 9007199254740992.0 && x == (lua_Number)(int64_t)x) {
    m->kind = MB_MARK_INTEGER;
    m->integer = (int64_t)x;
  } else {
    m->kind = MB_MARK_REAL;
    m->real = (double)x;
  }
}

/* Reads the order_by field (left on the stack) into m, or raises unrecoverable. */
static void order_value(lua_State *L, mb_job *job, const char *field, mb_mark *m) {
  push_field(L, field);
  int t = lua_type(L, -1);
  if (t == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))
    mb_lbus_unrecoverable(L, "the order_by field '%s' of %s is not a number (NaN)", field,
                          mb_job_delivery(job)->env.type);
  if (t == LUA_TNUMBER) number_value(L, m);
  else if (t == LUA_TSTRING) {
    m->kind = MB_MARK_TEXT;
    m->text = lua_tolstring(L, -1, &m->len);
  } else
    mb_lbus_unrecoverable(L, "the order_by field '%s' of %s must be a number or a string, got %s",
                          field, mb_job_delivery(job)->env.type,
                          t == LUA_TNIL ? "nothing (it is missing)" : lua_typename(L, t));
}

/* Reads the key field (its text left on the stack) into m, or raises unrecoverable. */
static void key_value(lua_State *L, mb_job *job, const char *field, mb_mark *m) {
  push_field(L, field);
  int t = lua_type(L, -1);
  if (t == LUA_TNUMBER) {
    mb_mark n = {0};
    number_value(L, &n);
    char text[64];
    if (n.kind == MB_MARK_INTEGER) snprintf(text, sizeof text, "%lld", (long long)n.integer);
    else snprintf(text, sizeof text, "%.17g", n.real);
    lua_pop(L, 1);
    lua_pushstring(L, text);
  } else if (t != LUA_TSTRING)
    mb_lbus_unrecoverable(L, "the key field '%s' of %s must be a string or a number, got %s",
                          field, mb_job_delivery(job)->env.type,
                          t == LUA_TNIL ? "nothing (it is missing)" : lua_typename(L, t));
  size_t len;
  m->key = lua_tolstring(L, -1, &len);
  if (strlen(m->key) != len)
    mb_lbus_unrecoverable(L, "the key field '%s' of %s holds a NUL byte", field,
                          mb_job_delivery(job)->env.type);
}

/* 1 if the type is handled with order_by and the message is stale (no handler may run).
 * [-0, +0, e] */
static int is_stale(lua_State *L, mb_job *job) {
  int top = lua_gettop(L);
  const char *type = mb_job_delivery(job)->env.type;
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_ORDER);
  if (lua_getfield(L, -1, type) != LUA_TTABLE) {
    lua_settop(L, top);
    return 0;
  }
  lua_getfield(L, -1, "order_by");
  lua_getfield(L, -2, "key");
  mb_mark m = {.endpoint = mb_job_endpoint(job), .type = type};
  m.order_by = lua_tostring(L, -2);
  m.key_field = lua_tostring(L, -1);
  order_value(L, job, m.order_by, &m);
  key_value(L, job, m.key_field, &m);
  mb_err err;
  int rc = mb_job_order(job, &m, &err);
  lua_settop(L, top);
  if (rc != MB_OK && rc != MB_ESTALE) return luaL_error(L, "%s", err.msg);
  return rc == MB_ESTALE;
}

static int run_from(lua_State *L, lua_Integer i);

static int resume_after_handler(lua_State *L, int status, lua_KContext k) {
  (void)status;
  return run_from(L, (lua_Integer)k + 1);
}

/* Calls handlers i..n with (body, ctx). */
static int run_from(lua_State *L, lua_Integer i) {
  lua_Integer n = lua_tointeger(L, ARG_COUNT);
  for (; i <= n; i++) {
    lua_geti(L, ARG_HANDLERS, i);
    lua_pushvalue(L, ARG_BODY);
    lua_pushvalue(L, ARG_CTX);
    lua_callk(L, 2, 0, (lua_KContext)i, resume_after_handler);
  }
  return 0;
}

int mb_ldispatch(lua_State *L) {
  mb_job *job = lua_touserdata(L, ARG_JOB);
  lua_settop(L, ARG_JOB);
  mb_lctx_push(L, job);
  decode_body(L, job);
  push_contract(L, job);
  upcast(L, job);
  check_schema(L, job);
  push_handlers(L, job);
  if (is_stale(L, job)) return 0; /* the pipeline discards it */
  return run_from(L, 1);
}
