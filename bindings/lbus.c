/* lbus.c — luaopen_moonbus: the moonbus table, the per-state bus, bus.endpoint,
 * bus.handle and error values (bus.unrecoverable). Sending lives in lsend.c, contracts in
 * lcontract.c (their versions in lversion.c), ctx in lctx.c, timers in ltimer.c, logging in llog.c.
 * Never: runs a handler (sched.c does) or decides a message's fate (pipeline.c). */
#include "lbus.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One metatable per gc function, kept in the registry under the function itself. */
void *mb_lbus_new_guarded(lua_State *L, size_t size, lua_CFunction gc) {
  void *p = lua_newuserdatauv(L, size, 0);
  memset(p, 0, size);
  lua_pushcfunction(L, gc);
  if (lua_rawget(L, LUA_REGISTRYINDEX) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_setmetatable(L, -2);
  return p;
}

const char *mb_lbus_head(const char *s, size_t n) {
  static char head[64];
  if (n >= sizeof head) n = sizeof head - 1;
  snprintf(head, sizeof head, "%.*s", (int)n, s);
  return head;
}

mb_vm *mb_lbus_vm(lua_State *L) {
  mb_vm *vm = mb_vm_of(L);
  if (vm == NULL || mb_vm_runtime(vm) == NULL)
    luaL_error(L, "moonbus is not initialised in this state");
  return vm;
}

mb_runtime *mb_lbus_runtime(lua_State *L) { return mb_vm_runtime(mb_lbus_vm(L)); }
mb_sched *mb_lbus_sched(lua_State *L) { return mb_vm_sched(mb_lbus_vm(L)); }

/* --- error values ------------------------------------------------------------------ */

static int unrecoverable_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "unrecoverable: %s", luaL_optstring(L, -1, "?"));
  return 1;
}

/* bus.unrecoverable(message) -> an error value that skips retries. */
static int l_unrecoverable(lua_State *L) {
  const char *msg = luaL_checkstring(L, 1);
  lua_createtable(L, 0, 1);
  luaL_where(L, 1);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, MB_UNRECOVERABLE_MT);
  return 1;
}

int mb_lbus_has_metatable(lua_State *L, int idx, const char *name) {
  int yes = 0;
  if (lua_istable(L, idx) && lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, name);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  return yes;
}

static int is_unrecoverable(lua_State *L, int idx) {
  return mb_lbus_has_metatable(L, idx, MB_UNRECOVERABLE_MT);
}

/* bus.is_unrecoverable(err) -> true for a value made by bus.unrecoverable */
static int l_is_unrecoverable(lua_State *L) {
  lua_pushboolean(L, is_unrecoverable(L, 1));
  return 1;
}

int mb_lbus_over_budget(lua_State *L, const char *what, double seconds) {
  lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
  luaL_where(L, 0); /* the function the hook interrupted */
  lua_pushfstring(L, "%s ran past its time budget of %f s (time_budget)", what,
                  (lua_Number)seconds);
  lua_concat(L, 2);
  return lua_error(L);
}

int mb_lbus_unrecoverable(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_createtable(L, 0, 1);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, MB_UNRECOVERABLE_MT);
  return lua_error(L);
}

const char *mb_lbus_error_text(lua_State *L, int idx, int *unrecoverable) {
  idx = lua_absindex(L, idx);
  *unrecoverable = is_unrecoverable(L, idx);
  if (*unrecoverable) {
    lua_getfield(L, idx, "message");
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "unrecoverable");
    }
    return lua_tostring(L, -1);
  }
  if (lua_type(L, idx) == LUA_TNIL) return lua_pushliteral(L, "error with no message (nil)");
  return luaL_tolstring(L, idx, NULL);
}

/* --- bus.endpoint -------------------------------------------------------------------- */

static char *dup_or_raise(lua_State *L, const char *s) {
  char *copy = strdup(s);
  if (copy == NULL) luaL_error(L, "out of memory");
  return copy;
}

/* Replaces *slot with a copy of the queue name at idx. [-0, +0, e] */
static void queue_option(lua_State *L, int idx, const char *key, char **slot) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "bus.endpoint: %s must be a queue name (string), got %s", key,
               luaL_typename(L, idx));
  const char *why = mb_queue_name_problem(lua_tostring(L, idx));
  if (why) luaL_error(L, "bus.endpoint: %s '%s': %s", key, lua_tostring(L, idx), why);
  free(*slot);
  *slot = dup_or_raise(L, lua_tostring(L, idx));
}

static lua_Integer int_option(lua_State *L, int idx, const char *key, lua_Integer lo,
                              lua_Integer hi) {
  int ok;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok || v < lo || v > hi)
    luaL_error(L, "bus.endpoint: %s must be a whole number from %I to %I", key, lo, hi);
  return v;
}

static void expect_table(lua_State *L, int idx, const char *key, const char *shape) {
  if (!lua_istable(L, idx))
    luaL_error(L, "bus.endpoint: %s must be %s, got %s", key, shape, luaL_typename(L, idx));
}

static void parse_routes(lua_State *L, int idx, mb_endpoint_cfg *cfg) {
  expect_table(L, idx, "routes", "a table { [type] = queue }");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bus.endpoint: routes keys must be message type names");
    const char *type = lua_tostring(L, -2);
    mb_route_entry *grown = realloc(cfg->routes, (cfg->n_routes + 1) * sizeof *grown);
    if (grown == NULL) luaL_error(L, "out of memory");
    cfg->routes = grown;
    mb_route_entry *r = &cfg->routes[cfg->n_routes++];
    r->type = dup_or_raise(L, type);
    r->queue = NULL;
    queue_option(L, lua_gettop(L), "routes", &r->queue);
    lua_pop(L, 1);
  }
}

static void parse_publishes(lua_State *L, int idx, mb_endpoint_cfg *cfg) {
  expect_table(L, idx, "publishes", "a list of event types");
  lua_Integer n = luaL_len(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bus.endpoint: publishes[%I] must be an event type name", i);
    const char *type = lua_tostring(L, -1);
    mb_lcontract_push(L, type, "bus.endpoint: publishes");
    if (mb_lcontract_kind(L, -1) != MB_KIND_EVENT)
      luaL_error(L,
                 "bus.endpoint: publishes lists %s, which is a %s: only events are "
                 "published; commands are sent with bus.send",
                 type, mb_kind_name(mb_lcontract_kind(L, -1)));
    char **grown = realloc(cfg->publishes, (cfg->n_publishes + 1) * sizeof *grown);
    if (grown == NULL) luaL_error(L, "out of memory");
    cfg->publishes = grown;
    cfg->publishes[cfg->n_publishes++] = dup_or_raise(L, type);
    lua_pop(L, 2);
  }
}

static void parse_retries(lua_State *L, int idx, mb_endpoint_cfg *cfg) {
  expect_table(L, idx, "retries", "a table { immediate =, delayed =, delay = }");
  if (lua_getfield(L, idx, "immediate") != LUA_TNIL)
    cfg->immediate_retries = (int)int_option(L, -1, "retries.immediate", 0, 1000);
  if (lua_getfield(L, idx, "delayed") != LUA_TNIL)
    cfg->delayed_retries = (int)int_option(L, -1, "retries.delayed", 0, 1000);
  if (lua_getfield(L, idx, "delay") != LUA_TNIL) {
    if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) <= 0)
      luaL_error(L, "bus.endpoint: retries.delay must be a positive number of seconds");
    cfg->retry_delay = lua_tonumber(L, -1);
  }
  lua_pop(L, 3);
}

/* The endpoint's name: a queue name short enough for the names derived from it. */
static void name_option(lua_State *L, int idx, mb_endpoint_cfg *cfg) {
  queue_option(L, idx, "name", &cfg->name);
  size_t len = strlen(cfg->name);
  if (len > MB_ENDPOINT_NAME_MAX)
    luaL_error(L,
               "bus.endpoint: name '%s...' is %d bytes; an endpoint name has at most %d, "
               "so that the names derived from it (moonbus.publisher.<name>, the routing key "
               "of its delayed retries) fit the broker's 255-byte names",
               mb_lbus_head(cfg->name, 40), (int)len, MB_ENDPOINT_NAME_MAX);
}

/* state = "sqlite:///path/state.db": where order_by marks live on a transport without a
 * database (RabbitMQ). [-0, +0, e] */
static void state_option(lua_State *L, int idx, mb_endpoint_cfg *cfg) {
  const char *url = lua_tostring(L, idx);
  if (lua_type(L, idx) != LUA_TSTRING || strncmp(url, "sqlite://", 9) != 0 || url[9] == '\0' ||
      strchr(url, '?'))
    luaL_error(L,
               "bus.endpoint: state must be a sqlite://PATH URL (where order_by marks are kept "
               "on a transport without a database), got %s",
               lua_type(L, idx) == LUA_TSTRING ? url : luaL_typename(L, idx));
  free(cfg->state);
  cfg->state = dup_or_raise(L, url);
}

/* claim_check = BYTES | false, databus = "file:///dir", claim_retention = DAYS. */
static int claim_option(lua_State *L, const char *key, int v, mb_endpoint_cfg *cfg) {
  if (strcmp(key, "claim_check") == 0 && lua_isboolean(L, v) && !lua_toboolean(L, v))
    cfg->claim_check = 0;
  else if (strcmp(key, "claim_check") == 0)
    cfg->claim_check = (size_t)int_option(L, v, "claim_check (bytes, or false)", 1, 1 << 30);
  else if (strcmp(key, "databus") == 0) {
    const char *url = lua_tostring(L, v);
    if (lua_type(L, v) != LUA_TSTRING || strncmp(url, "file://", 7) != 0 || url[7] == '\0')
      luaL_error(L, "bus.endpoint: databus must be a \"file:///dir\" URL");
    free(cfg->databus);
    cfg->databus = dup_or_raise(L, url);
  } else if (strcmp(key, "claim_retention") == 0) {
    if (!lua_isnumber(L, v) || !(lua_tonumber(L, v) > 0) || lua_tonumber(L, v) > 36500)
      luaL_error(L, "bus.endpoint: claim_retention must be a number of days (0-36500]");
    cfg->claim_retention = lua_tonumber(L, v);
  } else return 0;
  return 1;
}

/* report = SECONDS | false, sla = SECONDS (DESIGN §11). [-0, +0, e] */
static int monitoring_option(lua_State *L, const char *key, int v, mb_endpoint_cfg *cfg) {
  if (strcmp(key, "report") == 0 && lua_isboolean(L, v) && !lua_toboolean(L, v)) cfg->report = 0;
  else if (strcmp(key, "report") == 0) {
    if (!lua_isnumber(L, v) || !(lua_tonumber(L, v) >= 0.1) || lua_tonumber(L, v) > 3600)
      luaL_error(L, "bus.endpoint: report must be a number of seconds from 0.1 to 3600, or "
                    "false for no moonbus.ops.Report");
    cfg->report = lua_tonumber(L, v);
  } else if (strcmp(key, "sla") == 0) {
    if (!lua_isnumber(L, v) || !(lua_tonumber(L, v) > 0) || lua_tonumber(L, v) > 31536000)
      luaL_error(L, "bus.endpoint: sla must be a number of seconds above 0 (the critical time "
                    "the endpoint promises: time sent to handled)");
    cfg->sla = lua_tonumber(L, v);
  } else return 0;
  return 1;
}

static void parse_option(lua_State *L, const char *key, int v, mb_endpoint_cfg *cfg) {
  if (strcmp(key, "name") == 0) name_option(L, v, cfg);
  else if (strcmp(key, "routes") == 0) parse_routes(L, v, cfg);
  else if (strcmp(key, "publishes") == 0) parse_publishes(L, v, cfg);
  else if (strcmp(key, "concurrency") == 0)
    cfg->concurrency = (unsigned)int_option(L, v, "concurrency", 1, 10000);
  else if (strcmp(key, "retries") == 0) parse_retries(L, v, cfg);
  else if (strcmp(key, "errors") == 0) queue_option(L, v, "errors", &cfg->error_queue);
  else if (strcmp(key, "audit") == 0 && lua_isboolean(L, v) && !lua_toboolean(L, v)) {
    free(cfg->audit_queue);
    cfg->audit_queue = NULL;
  } else if (strcmp(key, "audit") == 0) queue_option(L, v, "audit", &cfg->audit_queue);
  else if (strcmp(key, "transport") == 0)
    cfg->transport = dup_or_raise(L, luaL_checkstring(L, v));
  else if (strcmp(key, "state") == 0) state_option(L, v, cfg);
  else if (strcmp(key, "time_budget") == 0) {
    if (!lua_isnumber(L, v) || !(lua_tonumber(L, v) > 0) || lua_tonumber(L, v) > 86400)
      luaL_error(L, "bus.endpoint: time_budget must be a number of seconds (0-86400]");
    cfg->time_budget = lua_tonumber(L, v);
  } else if (strcmp(key, "memory_budget") == 0)
    cfg->memory_budget = (size_t)int_option(L, v, "memory_budget", 1 << 20, (lua_Integer)1 << 40);
  else if (strcmp(key, "shared_memory") == 0)
    cfg->shared_memory = (size_t)int_option(L, v, "shared_memory", 1024, (lua_Integer)1 << 40);
  else if (strcmp(key, "max_deliveries") == 0)
    cfg->max_deliveries = (int)int_option(L, v, "max_deliveries", 1, 1000);
  else if (strcmp(key, "max_body") == 0) {
    cfg->max_body = (size_t)int_option(L, v, "max_body", 1, (lua_Integer)1 << 30);
    cfg->max_body_set = 1;
  } else if (claim_option(L, key, v, cfg)) {
    /* done */
  } else if (monitoring_option(L, key, v, cfg)) {
    /* done */
  } else if (strcmp(key, "queue_type") == 0) {
    const char *qt = lua_tostring(L, v);
    if (qt == NULL || (strcmp(qt, "quorum") != 0 && strcmp(qt, "classic") != 0))
      luaL_error(L, "bus.endpoint: queue_type must be \"quorum\" or \"classic\"");
    cfg->classic_queue = strcmp(qt, "classic") == 0;
  } else
    luaL_error(L,
               "bus.endpoint: unknown option '%s' (known: name, routes, publishes, "
               "concurrency, retries, errors, audit, transport, state, max_body, "
               "max_deliveries, time_budget, memory_budget, shared_memory, queue_type, "
               "claim_check, databus, "
               "claim_retention, report, sla)",
               key);
}

static int cfg_gc(lua_State *L) {
  mb_endpoint_cfg_free(lua_touserdata(L, 1));
  return 0;
}

/* bus.endpoint{ name = ..., ... } */
static int l_endpoint(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  mb_runtime *rt = mb_lbus_runtime(L);
  /* the config lives in a userdata while parsing, so a raised error frees it */
  mb_endpoint_cfg *cfg = lua_newuserdatauv(L, sizeof *cfg, 0);
  if (mb_endpoint_cfg_defaults(cfg) != MB_OK) return luaL_error(L, "out of memory");
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, cfg_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "bus.endpoint: option names are strings");
    parse_option(L, lua_tostring(L, -2), lua_gettop(L), cfg);
    lua_pop(L, 1);
  }
  if (cfg->name == NULL) return luaL_error(L, "bus.endpoint: name is required (its input queue)");
  mb_err err;
  size_t memory = cfg->memory_budget;
  if (mb_runtime_configure(rt, cfg, &err) != MB_OK) return luaL_error(L, "%s", err.msg);
  if (mb_alloc_set_limit(L, memory) != MB_OK) return luaL_error(L, "out of memory");
  return 0;
}

/* --- bus.handle ---------------------------------------------------------------------- */

/* Raises "bad argument #3 to 'moonbus.handle' (...)" with a formatted reason. [-0, +0, v] */
static int opts_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *why = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return luaL_argerror(L, 3, why);
}

/* A field name for order_by or key: "field" or a dotted path "a.b". [-0, +0, e] */
static const char *field_option(lua_State *L, int idx, const char *key) {
  if (lua_type(L, idx) != LUA_TSTRING)
    opts_error(L, "%s must be the name of a body field, got %s", key, luaL_typename(L, idx));
  size_t len;
  const char *name = lua_tolstring(L, idx, &len);
  if (len == 0 || len > 255 || strlen(name) != len || name[0] == '.' || name[len - 1] == '.' ||
      strstr(name, ".."))
    opts_error(L,
               "%s '%s' is not a field name: a top-level body field, or a dotted path such "
               "as \"a.b\"",
               key, mb_lbus_head(name, len));
  return name;
}

/* The order spec { order_by =, key = } of opts at idx (a table or nil), pushed, or nil.
 * [-0, +1, e] */
static void push_order_spec(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) {
    lua_pushnil(L);
    return;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    if (strcmp(k, "order_by") != 0 && strcmp(k, "key") != 0)
      opts_error(L, "unknown option '%s'; known: order_by, key",
                 lua_type(L, -2) == LUA_TSTRING ? k : luaL_typename(L, -2));
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "order_by");
  lua_getfield(L, idx, "key");
  if (lua_isnil(L, -1) != lua_isnil(L, -2))
    opts_error(L, "order_by and key go together: the order is kept per key");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 2);
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 2);
  lua_pushstring(L, field_option(L, -3, "order_by"));
  lua_setfield(L, -2, "order_by");
  lua_pushstring(L, field_option(L, -2, "key"));
  lua_setfield(L, -2, "key");
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static const char *spec_text(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_isnil(L, idx)) return lua_pushliteral(L, "no order_by");
  lua_getfield(L, idx, "order_by");
  lua_getfield(L, idx, "key");
  lua_pushfstring(L, "order_by = \"%s\", key = \"%s\"", lua_tostring(L, -2), lua_tostring(L, -1));
  lua_replace(L, -3);
  lua_pop(L, 1);
  return lua_tostring(L, -1);
}

static int same_spec(lua_State *L, int a, int b) {
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_isnil(L, a) || lua_isnil(L, b)) return lua_isnil(L, a) && lua_isnil(L, b);
  lua_getfield(L, a, "order_by");
  lua_getfield(L, b, "order_by");
  lua_getfield(L, a, "key");
  lua_getfield(L, b, "key");
  int same = lua_rawequal(L, -4, -3) && lua_rawequal(L, -2, -1);
  lua_pop(L, 4);
  return same;
}

/* Records type's order spec (the value on top, popped), which must agree with the one of
 * the type's earlier handlers. first: no handler of type yet. [-1, +0, e] */
static void set_order(lua_State *L, const char *type, int first) {
  int spec = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_ORDER);
  lua_getfield(L, -1, type);
  int earlier = lua_gettop(L);
  if (!first && !same_spec(L, spec, earlier)) {
    const char *had = spec_text(L, earlier), *has = spec_text(L, spec);
    luaL_error(L,
               "bus.handle: the handlers of %s must agree on its order: an earlier one has "
               "%s, this one %s (one order_by per type per endpoint)",
               type, had, has);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, spec);
  lua_setfield(L, -2, type);
  lua_pop(L, 2);
}

/* bus.handle(type, function(body, ctx) ... end [, { order_by = "field", key = "field" }]) */
static int l_handle(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  mb_runtime *rt = mb_lbus_runtime(L);
  push_order_spec(L, 3);
  int spec = lua_gettop(L);
  mb_lcontract_push(L, type, "bus.handle");
  mb_kind kind = mb_lcontract_kind(L, -1);
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_HANDLERS);
  int first = lua_getfield(L, -1, type) == LUA_TNIL;
  lua_pop(L, 2);
  lua_pushvalue(L, spec);
  set_order(L, type, first);
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_HANDLERS);
  if (lua_getfield(L, -1, type) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, type);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  if (kind == MB_KIND_EVENT && mb_runtime_subscribe(rt, type) != MB_OK)
    return luaL_error(L, "out of memory");
  return 0;
}

/* --- the state --------------------------------------------------------------------- */

/* Module mode: the state's close closes the generation adopted around it. */
static int guard_gc(lua_State *L) {
  mb_vm **slot = lua_touserdata(L, 1);
  mb_vm_close(*slot);
  *slot = NULL;
  return 0;
}

/* A private lua-cjson instance, so a script's cjson settings never change the bus's. */
static void open_json(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode_max_depth");
  lua_pushinteger(L, 64);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "encode_max_depth");
  lua_pushinteger(L, 64);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "encode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_setfield(L, LUA_REGISTRYINDEX, MB_REG_JSON);
  lua_pop(L, 1);
}

static void open_metatables(lua_State *L) {
  luaL_newmetatable(L, MB_UNRECOVERABLE_MT);
  lua_pushcfunction(L, unrecoverable_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  mb_lctx_open(L);
}

/* The tables of contracts and handlers, empty. [-0, +0, m] */
static void open_tables(lua_State *L) {
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, MB_REG_TYPES);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, MB_REG_HANDLERS);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, MB_REG_ORDER);
}

/* Module mode: a generation around the caller's state, closed by the guard's __gc (made
 * first, so that a raised error cannot leak the generation). [-0, +0, e] */
static void adopt(lua_State *L) {
  mb_vm **slot = mb_lbus_new_guarded(L, sizeof *slot, guard_gc);
  if ((*slot = mb_vm_adopt(L)) == NULL) luaL_error(L, "out of memory opening moonbus");
  lua_setfield(L, LUA_REGISTRYINDEX, MB_REG_STATE);
}

/* Opens this state's bus once: a host's generation exists already (vm.c), a plain
 * interpreter's is adopted. [-0, +0, e] */
static void open_state(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_TYPES) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  open_json(L);
  open_metatables(L);
  if (mb_vm_of(L) == NULL) adopt(L);
  open_tables(L);
}

void mb_lbus_reset(lua_State *L) {
  mb_vm *vm = mb_lbus_vm(L);
  if (!mb_vm_adopted(vm)) luaL_error(L, "a host's bus cannot be reset");
  if (mb_vm_reset(vm) != MB_OK) luaL_error(L, "out of memory resetting moonbus");
  open_tables(L);
}

static const luaL_Reg bus_functions[] = {
    {"endpoint", l_endpoint},
    {"handle", l_handle},
    {"unrecoverable", l_unrecoverable},
    {"is_unrecoverable", l_is_unrecoverable},
    {NULL, NULL},
};

int luaopen_moonbus(lua_State *L) {
  mb_log_init();
  open_state(L);
  luaL_newlib(L, bus_functions);
  mb_lcontract_open(L);
  mb_lversion_open(L);
  mb_lsend_open(L);
  mb_ltimer_open(L);
  mb_lerror_open(L);
  mb_llog_open(L);
  mb_lshared_open(L);
  lua_pushliteral(L, MOONBUS_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
