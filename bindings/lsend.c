/* lsend.c — bus.send, bus.publish, bus.request and ctx:reply: the opinions (commands are
 * sent, events published by their one owner, replies are messages), options, schema
 * checks, JSON encoding. Inside a handler a message joins the job's outbox (it leaves only
 * if the handler succeeds); from a timer it is sent at once and the timer's coroutine
 * parks until the transport confirms it; at the top level it is sent and waited for. A
 * request is always sent at once and parks its coroutine until the reply (lwait.c).
 * Never: writes an envelope header itself (compose.c does). */
#include <string.h>

#include "claim.h"
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
  double delay, ttl, timeout;
  const mb_headers *headers; /* owned by a userdata on the stack; NULL: none */
} send_opts;

#define MB_DEFAULT_REQUEST_TIMEOUT 30.0

static int headers_gc(lua_State *L) {
  mb_headers_free(lua_touserdata(L, 1));
  return 0;
}

/* The caller's headers, copied into a userdata that frees them if an error unwinds (no
 * headers: nil, and NULL). [-0, +1, e] */
static mb_headers *read_headers(lua_State *L, int idx, const char *fn) {
  if (lua_isnil(L, idx)) {
    lua_pushnil(L);
    return NULL;
  }
  mb_headers *h = mb_lbus_new_guarded(L, sizeof *h, headers_gc);
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

static int is_option(const char *k, int request) {
  return k && (strcmp(k, "to") == 0 || strcmp(k, "delay") == 0 || strcmp(k, "ttl") == 0 ||
               strcmp(k, "headers") == 0 || (request && strcmp(k, "timeout") == 0));
}

/* Reads the options table at idx (timeout only for a request). Leaves the headers
 * userdata on the stack. */
static void read_opts(lua_State *L, int idx, const char *fn, send_opts *o, int request) {
  memset(o, 0, sizeof *o);
  if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
    luaL_error(L, "%s: options must be a table, got %s", fn, luaL_typename(L, idx));
  int top = lua_gettop(L);
  if (lua_istable(L, idx)) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (!is_option(lua_tostring(L, -2), request))
        luaL_error(L, "%s: unknown option '%s' (known: to, delay, ttl, headers%s)", fn,
                   luaL_tolstring(L, -2, NULL), request ? ", timeout" : "");
      lua_pop(L, 1);
    }
    lua_getfield(L, idx, "to");
    lua_getfield(L, idx, "delay");
    lua_getfield(L, idx, "ttl");
    lua_getfield(L, idx, "timeout");
    lua_getfield(L, idx, "headers");
  } else {
    for (int i = 0; i < 5; i++) lua_pushnil(L);
  }
  if (!lua_isnil(L, top + 1) && lua_type(L, top + 1) != LUA_TSTRING)
    luaL_error(L, "%s: to must be a queue name (string)", fn);
  o->to = lua_tostring(L, top + 1);
  o->delay = seconds_opt(L, top + 2, fn, "delay");
  o->ttl = seconds_opt(L, top + 3, fn, "ttl");
  o->timeout = seconds_opt(L, top + 4, fn, "timeout");
  if (!lua_isnil(L, top + 4) && o->timeout <= 0)
    luaL_error(L, "%s: timeout must be a number of seconds > 0", fn);
  o->headers = read_headers(L, top + 5, fn);
  lua_replace(L, top + 1); /* keep only the headers userdata */
  lua_settop(L, top + 1);
}

typedef struct outgoing_spec {
  const char *fn, *type;
  mb_kind kind;
  mb_route route;
  const char *dest, *correlation_id, *reply_to;
  int body_idx, opts_idx;
} outgoing_spec;

/* Checks and encodes the body and composes the message. [-0, +0, e] */
static mb_outgoing *build(lua_State *L, const outgoing_spec *spec, const send_opts *o) {
  mb_vm *vm = mb_lbus_vm(L);
  mb_runtime *rt = mb_vm_runtime(vm);
  int top = lua_gettop(L);
  mb_lcontract_push(L, spec->type, spec->fn);
  if (lua_isnoneornil(L, spec->body_idx)) {
    lua_newtable(L);
    lua_replace(L, spec->body_idx);
  }
  if (!mb_lcontract_check(L, -1, spec->body_idx, spec->type))
    luaL_error(L, "%s: schema violation: %s", spec->fn, lua_tostring(L, -1));
  lua_getfield(L, top + 1, "version"); /* declared with { version = N }: stamped */
  long long version = (long long)lua_tointeger(L, -1);
  size_t len, max_body = mb_runtime_max_body(rt);
  if (!mb_ljson_fits(L, spec->body_idx, max_body)) /* before cjson's unbudgeted buffer */
    mb_lerror_raise(L, "too_large",
                    "%s: the body of %s would encode to more than %d bytes of "
                    "JSON, over the limit of %d bytes (max_body of endpoint %s): refused before "
                    "encoding it",
                    spec->fn, spec->type, (int)max_body, (int)max_body, mb_runtime_origin(rt));
  const char *json = mb_ljson_encode(L, spec->body_idx, &len);
  mb_job *job = mb_sched_current_job(mb_vm_sched(vm));
  mb_compose_req req = {
      .type = spec->type,
      .kind = spec->kind,
      .body = json,
      .body_len = len,
      .headers = o->headers,
      .delay = o->delay,
      .ttl = o->ttl,
      .route = spec->route,
      .dest = spec->dest,
      .correlation_id = spec->correlation_id,
      .reply_to = spec->reply_to,
      .version = version,
  };
  mb_outgoing *m;
  mb_err err;
  int rc = mb_compose(rt, job ? mb_job_delivery(job) : NULL, &req, &m, &err);
  if (rc != MB_OK) mb_lerror_raise_status(L, rc, "%s: %s", spec->fn, err.msg);
  lua_settop(L, top);
  if (mb_headers_get(&m->env.headers, MB_H_CLAIM)) lua_gc(L, LUA_GCCOLLECT); /* its JSON text */
  return m;
}

/* Composes the message and adds it to the handler's outbox, or sends it now: parked
 * until confirmed in a timer, waited for on the loop where a yield is impossible. */
static int emit(lua_State *L, const outgoing_spec *spec, const send_opts *o) {
  mb_vm *vm = mb_lbus_vm(L);
  mb_outgoing *m = build(L, spec, o);
  m->to_requester = spec->route == MB_ROUTE_QUEUE && mb_is_reply_address(spec->dest);
  mb_job *job = mb_sched_current_job(mb_vm_sched(vm));
  mb_thread *self = mb_sched_self(mb_vm_sched(vm), L);
  mb_err err = {0};
  int rc;
  if (job) {
    if (mb_job_add_outgoing(job, m) != MB_OK) return luaL_error(L, "out of memory");
  } else if (self && lua_isyieldable(L)) {
    return mb_lwait_send(L, self, m, spec->fn);
  } else if ((rc = mb_runtime_dispatch(mb_vm_runtime(vm), &m, 1, &err)) != MB_OK) {
    return mb_lerror_raise_status(L, rc, "%s: %s", spec->fn, err.msg);
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

/* The kind of type, raising with advice if it is an event. */
static mb_kind not_an_event(lua_State *L, const char *fn, const char *type, const char *advice) {
  mb_kind kind = kind_of(L, fn, type);
  if (kind == MB_KIND_EVENT) luaL_error(L, "%s: %s is an event: %s", fn, type, advice);
  return kind;
}

/* opts.to, else the endpoint's route for type, else raises saying how to add one. */
static const char *destination(lua_State *L, mb_runtime *rt, const char *fn, const char *type,
                               const send_opts *o) {
  const char *dest = o->to ? o->to : mb_endpoint_route(mb_runtime_cfg(rt), type);
  if (dest == NULL)
    luaL_error(L,
               "%s: no route for %s: add routes = { [\"%s\"] = \"<endpoint>\" } to "
               "bus.endpoint{}, or pass { to = \"<endpoint>\" }",
               fn, type, type);
  return dest;
}

/* bus.send(type, body [, opts]) */
static int l_send(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  mb_kind kind = not_an_event(L, "bus.send", type,
                              "publish it with bus.publish (an event goes "
                              "to every subscriber; a command goes to the one endpoint that "
                              "handles it)");
  send_opts o;
  read_opts(L, 3, "bus.send", &o, 0);
  const char *dest = destination(L, mb_lbus_runtime(L), "bus.send", type, &o);
  outgoing_spec spec = {"bus.send", type, kind, MB_ROUTE_QUEUE, dest, NULL, NULL, 2, 3};
  return emit(L, &spec, &o);
}

/* bus.publish(type, body [, opts]) */
static int l_publish(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  mb_kind kind = kind_of(L, "bus.publish", type);
  if (kind == MB_KIND_COMMAND)
    return luaL_error(L,
                      "bus.publish: %s is a command: send it with bus.send to the endpoint "
                      "that handles it (only events are published)",
                      type);
  if (kind == MB_KIND_MESSAGE)
    return luaL_error(L,
                      "bus.publish: %s is a message: only events are published; declare it "
                      "with bus.event, or send it with bus.send",
                      type);
  mb_runtime *rt = mb_lbus_runtime(L);
  if (!mb_runtime_configured(rt))
    return luaL_error(L,
                      "bus.publish: no endpoint is declared to publish %s: call "
                      "bus.endpoint{ name = ..., publishes = { \"%s\" } } first",
                      type, type);
  if (!mb_endpoint_publishes(mb_runtime_cfg(rt), type))
    return luaL_error(L,
                      "bus.publish: endpoint %s does not publish %s: add it to publishes in "
                      "bus.endpoint{} (an event has one publishing endpoint)",
                      mb_runtime_cfg(rt)->name, type);
  send_opts o;
  read_opts(L, 3, "bus.publish", &o, 0);
  if (o.to)
    return luaL_error(L,
                      "bus.publish: %s is an event and goes to every subscriber; 'to' is "
                      "for commands (bus.send)",
                      type);
  outgoing_spec spec = {"bus.publish", type, kind, MB_ROUTE_PUBLISH, NULL, NULL, NULL, 2, 3};
  return emit(L, &spec, &o);
}

/* ctx:reply(type, body [, opts]): stack is ctx, type, body, opts. */
int mb_lsend_reply(lua_State *L, mb_job *job) {
  const char *type = luaL_checkstring(L, 2);
  mb_kind kind = kind_of(L, "ctx:reply", type);
  if (kind != MB_KIND_MESSAGE)
    return luaL_error(L,
                      "ctx:reply: %s is a %s: a reply is a message (declare it with "
                      "bus.message); send commands with bus.send, publish events with "
                      "bus.publish",
                      type, mb_kind_name(kind));
  const mb_envelope *in = &mb_job_delivery(job)->env;
  if (in->reply_to == NULL)
    return mb_lbus_unrecoverable(L,
                                 "ctx:reply: message %s (%s) has no reply address, so no "
                                 "reply can ever reach its sender: it was sent without reply_to "
                                 "(`moonbus send` sets none: use `moonbus request`, or "
                                 "bus.request, to ask for a reply)",
                                 in->id, in->type);
  send_opts o;
  read_opts(L, 4, "ctx:reply", &o, 0);
  const char *dest = o.to ? o.to : in->reply_to;
  /* A requester's reply address is no real queue on RabbitMQ (direct reply-to cannot be
   * reached through the delay exchanges) and is not watched for later rows on SQLite; and
   * the requester waits for the reply with a timeout of its own. */
  if (o.delay > 0 && mb_is_reply_address(dest))
    return luaL_error(L,
                      "ctx:reply: the reply %s goes to a requester waiting in bus.request, "
                      "so it cannot be delayed: reply without 'delay'",
                      type);
  const char *corr = mb_compose_reply_correlation(in);
  outgoing_spec spec = {"ctx:reply", type, kind, MB_ROUTE_QUEUE, dest, corr, NULL, 3, 4};
  return emit(L, &spec, &o);
}

/* Where bus.request may wait, or raises saying where it may be used. */
static mb_thread *request_thread(lua_State *L, const char *type) {
  mb_thread *self = mb_sched_self(mb_lbus_sched(L), L);
  if (self == NULL)
    luaL_error(L,
               "bus.request(%s): a request waits for its reply, so it may be used only "
               "inside a handler (bus.handle) or a timer (bus.after, bus.every), not at the top "
               "level of a script or in a coroutine the script made",
               type);
  if (!lua_isyieldable(L))
    luaL_error(L,
               "bus.request(%s): cannot wait for a reply here: it is called from a C "
               "function that cannot yield (a table.sort comparator, a string.gsub callback, a "
               "__gc metamethod...); call it directly from the handler",
               type);
  return self;
}

/* bus.request(type, body [, opts]) -> reply body, reply ctx */
static int l_request(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  mb_kind kind = not_an_event(L, "bus.request", type,
                              "events are published to every "
                              "subscriber and nobody replies to them; request with a command");
  mb_runtime *rt = mb_lbus_runtime(L);
  mb_thread *self = request_thread(L, type);
  send_opts o;
  read_opts(L, 3, "bus.request", &o, 1);
  const char *dest = destination(L, rt, "bus.request", type, &o);
  const char *reply_to;
  mb_err err;
  int rc = mb_runtime_reply_address(rt, &reply_to, &err);
  if (rc != MB_OK) return mb_lerror_raise_status(L, rc, "bus.request: %s", err.msg);
  double timeout = o.timeout > 0 ? o.timeout : MB_DEFAULT_REQUEST_TIMEOUT;
  if (o.ttl <= 0) o.ttl = timeout; /* nobody waits for the reply after that */
  outgoing_spec spec = {"bus.request", type, kind, MB_ROUTE_QUEUE, dest, NULL, reply_to, 2, 3};
  mb_outgoing *m = build(L, &spec, &o);
  if (mb_envelope_set_correlation_id(&m->env, m->env.id) != MB_OK) {
    mb_outgoing_free(m);
    return luaL_error(L, "out of memory");
  }
  return mb_lwait_request(L, self, m, timeout);
}

static const luaL_Reg send_functions[] = {
    {"request", l_request},
    {"send", l_send},
    {"publish", l_publish},
    {NULL, NULL},
};

void mb_lsend_open(lua_State *L) { luaL_setfuncs(L, send_functions, 0); }
