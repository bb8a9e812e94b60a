/* lsend.c — bus.send, bus.publish and ctx:reply: the opinions (commands are sent, events
 * published by their one owner, replies are messages), options, schema checks, JSON
 * encoding. Inside a handler a message joins the job's outbox (it leaves only if the
 * handler succeeds); elsewhere it is dispatched at once.
 * Never: writes an envelope header itself (compose.c does). */
#include <string.h>

#include "compose.h"
#include "lbus.h"
#include "pipeline.h"

const char *mb_ljson_encode(lua_State *L, int idx, size_t *len) {
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, MB_REG_JSON);
  lua_getfield(L, -1, "encode");
  lua_remove(L, -2);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    luaL_error(L, "the body cannot be encoded as JSON: %s", lua_tostring(L, -1));
  return lua_tolstring(L, -1, len);
}

typedef struct send_opts {
  const char *to;
  double delay, ttl;
  const mb_headers *headers; /* owned by a userdata on the stack */
} send_opts;

static int headers_gc(lua_State *L) {
  mb_headers_free(lua_touserdata(L, 1));
  return 0;
}

/* The caller's headers, copied into a userdata that frees them if an error unwinds.
 * [-0, +1, e] */
static mb_headers *read_headers(lua_State *L, int idx, const char *fn) {
  mb_headers *h = mb_lbus_new_guarded(L, sizeof *h, headers_gc);
  if (lua_isnil(L, idx)) return h;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: headers must be a table of strings", fn);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: headers must map strings to strings (header %s)", fn,
                 luaL_tolstring(L, -2, NULL));
    if (mb_headers_set(h, lua_tostring(L, -2), lua_tostring(L, -1)) != MB_OK)
      luaL_error(L, "out of memory");
    lua_pop(L, 1);
  }
  return h;
}

static double seconds_opt(lua_State *L, int idx, const char *fn, const char *key) {
  if (lua_isnil(L, idx)) return 0;
  if (!lua_isnumber(L, idx) || lua_tonumber(L, idx) < 0)
    luaL_error(L, "%s: %s must be a number of seconds >= 0, got %s", fn, key,
               luaL_tolstring(L, idx, NULL));
  return lua_tonumber(L, idx);
}

/* Reads the options table at idx. Leaves the headers userdata on the stack. */
static void read_opts(lua_State *L, int idx, const char *fn, send_opts *o) {
  memset(o, 0, sizeof *o);
  if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
    luaL_error(L, "%s: options must be a table, got %s", fn, luaL_typename(L, idx));
  int top = lua_gettop(L);
  if (lua_istable(L, idx)) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      const char *k = lua_tostring(L, -2);
      if (k == NULL || (strcmp(k, "to") && strcmp(k, "delay") && strcmp(k, "ttl") &&
                        strcmp(k, "headers")))
        luaL_error(L, "%s: unknown option '%s' (known: to, delay, ttl, headers)", fn,
                   luaL_tolstring(L, -2, NULL));
      lua_pop(L, 1);
    }
    lua_getfield(L, idx, "to");
    lua_getfield(L, idx, "delay");
    lua_getfield(L, idx, "ttl");
    lua_getfield(L, idx, "headers");
  } else {
    for (int i = 0; i < 4; i++) lua_pushnil(L);
  }
  if (!lua_isnil(L, top + 1) && lua_type(L, top + 1) != LUA_TSTRING)
    luaL_error(L, "%s: to must be a queue name (string)", fn);
  o->to = lua_tostring(L, top + 1);
  o->delay = seconds_opt(L, top + 2, fn, "delay");
  o->ttl = seconds_opt(L, top + 3, fn, "ttl");
  o->headers = read_headers(L, top + 4, fn);
}

typedef struct outgoing_spec {
  const char *fn, *type;
  mb_kind kind;
  mb_route route;
  const char *dest, *correlation_id;
  int body_idx, opts_idx;
} outgoing_spec;

/* Checks and encodes the body, composes the message and sends it or adds it to the
 * outbox. [-0, +0, e] */
static int emit(lua_State *L, const outgoing_spec *spec, const send_opts *o) {
  mb_lbus *bus = mb_lbus_get(L);
  int top = lua_gettop(L);
  mb_lcontract_push(L, spec->type, spec->fn);
  if (lua_isnoneornil(L, spec->body_idx)) {
    lua_newtable(L);
    lua_replace(L, spec->body_idx);
  }
  if (!mb_lcontract_check(L, -1, spec->body_idx, spec->type))
    return luaL_error(L, "%s: schema violation: %s", spec->fn, lua_tostring(L, -1));
  size_t len;
  const char *json = mb_ljson_encode(L, spec->body_idx, &len);
  mb_job *job = mb_sched_current_job(bus->sched);
  mb_compose_req req = {
      .type = spec->type, .kind = spec->kind, .body = json, .body_len = len,
      .headers = o->headers, .delay = o->delay, .ttl = o->ttl, .route = spec->route,
      .dest = spec->dest, .correlation_id = spec->correlation_id,
  };
  mb_outgoing *m;
  mb_err err;
  if (mb_compose(bus->rt, job ? job->d : NULL, &req, &m, &err) != MB_OK)
    return luaL_error(L, "%s: %s", spec->fn, err.msg);
  lua_settop(L, top);
  if (job) {
    if (mb_job_add_outgoing(job, m) != MB_OK) return luaL_error(L, "out of memory");
  } else if (mb_runtime_dispatch(bus->rt, &m, 1, &err) != MB_OK) {
    return luaL_error(L, "%s: %s", spec->fn, err.msg);
  }
  return 0;
}

/* The contract's kind, raising (with the opinion's advice) unless it is allowed. */
static mb_kind kind_of(lua_State *L, const char *fn, const char *type) {
  mb_lcontract_push(L, type, fn);
  mb_kind kind = mb_lcontract_kind(L, -1);
  lua_pop(L, 1);
  return kind;
}

/* bus.send(type, body [, opts]) */
static int l_send(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  mb_kind kind = kind_of(L, "bus.send", type);
  if (kind == MB_KIND_EVENT)
    return luaL_error(L, "bus.send: %s is an event: publish it with bus.publish (an event goes "
                      "to every subscriber; a command goes to the one endpoint that handles it)",
                      type);
  send_opts o;
  read_opts(L, 3, "bus.send", &o);
  mb_lbus *bus = mb_lbus_get(L);
  const char *dest = o.to ? o.to : mb_endpoint_route(&bus->rt->cfg, type);
  if (dest == NULL)
    return luaL_error(L, "bus.send: no route for %s: add routes = { [\"%s\"] = \"<endpoint>\" } "
                      "to bus.endpoint{}, or pass { to = \"<endpoint>\" }", type, type);
  outgoing_spec spec = {"bus.send", type, kind, MB_ROUTE_QUEUE, dest, NULL, 2, 3};
  return emit(L, &spec, &o);
}

/* bus.publish(type, body [, opts]) */
static int l_publish(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  mb_kind kind = kind_of(L, "bus.publish", type);
  if (kind == MB_KIND_COMMAND)
    return luaL_error(L, "bus.publish: %s is a command: send it with bus.send to the endpoint "
                      "that handles it (only events are published)", type);
  if (kind == MB_KIND_MESSAGE)
    return luaL_error(L, "bus.publish: %s is a message: only events are published; declare it "
                      "with bus.event, or send it with bus.send", type);
  mb_lbus *bus = mb_lbus_get(L);
  if (!bus->rt->configured)
    return luaL_error(L, "bus.publish: no endpoint is declared to publish %s: call "
                      "bus.endpoint{ name = ..., publishes = { \"%s\" } } first", type, type);
  if (!mb_endpoint_publishes(&bus->rt->cfg, type))
    return luaL_error(L, "bus.publish: endpoint %s does not publish %s: add it to publishes in "
                      "bus.endpoint{} (an event has one publishing endpoint)",
                      bus->rt->cfg.name, type);
  send_opts o;
  read_opts(L, 3, "bus.publish", &o);
  if (o.to)
    return luaL_error(L, "bus.publish: %s is an event and goes to every subscriber; 'to' is "
                      "for commands (bus.send)", type);
  outgoing_spec spec = {"bus.publish", type, kind, MB_ROUTE_PUBLISH, NULL, NULL, 2, 3};
  return emit(L, &spec, &o);
}

/* ctx:reply(type, body [, opts]): stack is ctx, type, body, opts. */
int mb_lsend_reply(lua_State *L, mb_job *job) {
  const char *type = luaL_checkstring(L, 2);
  mb_kind kind = kind_of(L, "ctx:reply", type);
  if (kind != MB_KIND_MESSAGE)
    return luaL_error(L, "ctx:reply: %s is a %s: a reply is a message (declare it with "
                      "bus.message); send commands with bus.send, publish events with "
                      "bus.publish", type, mb_kind_name(kind));
  const mb_envelope *in = &job->d->env;
  if (in->reply_to == NULL)
    return luaL_error(L, "ctx:reply: message %s (%s) has no reply address", in->id, in->type);
  send_opts o;
  read_opts(L, 4, "ctx:reply", &o);
  const char *dest = o.to ? o.to : in->reply_to;
  const char *corr = in->correlation_id ? in->correlation_id : in->id;
  outgoing_spec spec = {"ctx:reply", type, kind, MB_ROUTE_QUEUE, dest, corr, 3, 4};
  return emit(L, &spec, &o);
}

static const luaL_Reg send_functions[] = {
    {"send", l_send},
    {"publish", l_publish},
    {NULL, NULL},
};

void mb_lsend_open(lua_State *L) { luaL_setfuncs(L, send_functions, 0); }
