/* ltesting.c — require "moonbus.host": drives the runtime from a plain Lua interpreter
 * (busted specs, tools): start consuming, run the loop until idle, a predicate or a
 * deadline, stop, reset, and read counters. The host binary drives the same runtime from
 * main.c; this is the module-mode twin, not a mock.
 * It is a test driver: it refuses to load inside a host's Lua states (moonbus run), and
 * its driving functions refuse to run from the bus's own coroutines (a handler or timer),
 * where a reset would free the scheduler inside its own lua_resume.
 * Never: changes how a message is handled. */
#include <ev.h>
#include <string.h>
#include <time.h>

#include "correlate.h"
#include "lbus.h"
#include "log.h"

/* Raises unless fn may drive the bus now: not from a coroutine the bus is running (a
 * handler, a timer tick, or a coroutine one of them made). [-0, +0, v] */
static mb_vm *driver(lua_State *L, const char *fn) {
  mb_vm *vm = mb_lbus_vm(L);
  const char *running = mb_sched_running_what(mb_vm_sched(vm));
  if (running != NULL)
    luaL_error(L,
               "moonbus.host.%s cannot be called from a handler or timer (%s): moonbus.host "
               "is a test driver that runs the bus from outside it (the top level of a spec or "
               "a tool)",
               fn, running);
  return vm;
}

/* Starts consuming (a transport may deliver at once: coroutines are made on L). */
static void start(lua_State *L, mb_vm *vm) {
  mb_err err;
  mb_sched_set_anchor(mb_vm_sched(vm), L);
  int rc = mb_runtime_start(mb_vm_runtime(vm), &err);
  mb_sched_set_anchor(mb_vm_sched(vm), NULL);
  if (rc != MB_OK) luaL_error(L, "%s", err.msg);
  if (!mb_timers_started(mb_vm_timers(vm))) mb_vm_start_timers(vm);
}

static int l_start(lua_State *L) {
  start(L, driver(L, "start"));
  return 0;
}

static int l_stop(lua_State *L) {
  mb_vm *vm = driver(L, "stop");
  mb_runtime_stop_consuming(mb_vm_runtime(vm));
  mb_vm_stop_timers(vm);
  return 0;
}

static void deadline_reached(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  *(int *)w->data = 1;
  ev_break(loop, EVBREAK_ONE);
}

static int is_idle(mb_runtime *rt, mb_err *err) {
  if (mb_runtime_stats(rt).in_flight > 0) return 0;
  long ready = 0, later = 0;
  mb_transport *t = mb_runtime_transport(rt);
  if (t->ops->depth(t, mb_runtime_cfg(rt)->name, &ready, &later, err) != MB_OK) return -1;
  return ready == 0;
}

/* Calls the predicate at idx: 1 ends the run, 0 goes on, -1 raised (message pushed). */
static int predicate_true(lua_State *L, int idx) {
  if (lua_isnil(L, idx)) return 0;
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) return -1;
  int yes = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return yes;
}

#define SETTLE 0.1 /* seconds a bus must stay idle: a message may be on its way to us */

static void wake(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
}

/* One iteration of the loop; 1 when the run is over, -1 on an error (message pushed).
 * Idle means nothing ready or in flight for SETTLE seconds in a row: a broker may have
 * handed a message to our socket that no count shows yet. */
static int step(lua_State *L, mb_runtime *rt, int pred, int until_idle, ev_tstamp *idle_since) {
  int done = predicate_true(L, pred); /* a predicate true already ends the run at once */
  if (done == 0) {
    ev_run(mb_runtime_loop(rt), EVRUN_ONCE);
    done = predicate_true(L, pred);
  }
  if (done == 0 && until_idle) {
    mb_err err;
    int idle = is_idle(rt, &err);
    if (idle < 0) {
      lua_pushstring(L, err.msg);
      return -1;
    }
    ev_tstamp now = ev_now(mb_runtime_loop(rt));
    if (!idle) *idle_since = 0;
    else if (*idle_since == 0) *idle_since = now;
    done = idle && now - *idle_since >= SETTLE;
  }
  return done;
}

/* host.run{ seconds = 5, until_idle = true, until = function() ... end }
 * -> true if idle/predicate ended the run, false if the deadline did. */
static int l_run(lua_State *L) {
  mb_vm *vm = driver(L, "run");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "seconds");
  double seconds = luaL_optnumber(L, -1, 10);
  lua_getfield(L, 1, "until_idle");
  int until_idle = lua_toboolean(L, -1);
  lua_getfield(L, 1, "until");
  int pred = lua_gettop(L);
  start(L, vm);
  mb_runtime *rt = mb_vm_runtime(vm);
  struct ev_loop *loop = mb_runtime_loop(rt);
  mb_sched_set_anchor(mb_vm_sched(vm), L);
  int expired = 0, done = 0;
  ev_timer deadline;
  ev_timer_init(&deadline, deadline_reached, seconds, 0.);
  deadline.data = &expired;
  ev_timer_start(loop, &deadline);
  ev_timer tick; /* wakes the loop while waiting for the bus to settle, and polls a predicate
                   on state outside the bus (a file, a clock) while the bus is idle */
  ev_timer_init(&tick, wake, SETTLE / 2, SETTLE / 2);
  if (until_idle || !lua_isnil(L, pred)) ev_timer_start(loop, &tick);
  ev_tstamp idle_since = 0;
  while (!expired && done == 0) done = step(L, rt, pred, until_idle, &idle_since);
  ev_timer_stop(loop, &tick);
  ev_timer_stop(loop, &deadline);
  mb_sched_set_anchor(mb_vm_sched(vm), NULL);
  if (done < 0) return lua_error(L);
  lua_pushboolean(L, done);
  return 1;
}

static int l_reset(lua_State *L) {
  driver(L, "reset");
  const char *url = NULL;
  if (lua_istable(L, 1) && lua_getfield(L, 1, "transport") != LUA_TNIL)
    url = luaL_checkstring(L, -1);
  mb_lbus_reset(L);
  if (url && mb_runtime_set_url_override(mb_lbus_runtime(L), url) != MB_OK)
    return luaL_error(L, "out of memory");
  return 0;
}

static void set_count(lua_State *L, const char *key, lua_Integer n) {
  lua_pushinteger(L, n);
  lua_setfield(L, -2, key);
}

/* host.counters() -> { coroutines, waiting, requests, in_flight, handled, failed, parked,
 * discarded, timers } */
static int l_counters(lua_State *L) {
  mb_vm *vm = mb_lbus_vm(L);
  mb_runtime *rt = mb_vm_runtime(vm);
  mb_pipeline_stats stats = mb_runtime_stats(rt);
  lua_createtable(L, 0, 9);
  set_count(L, "waiting", mb_sched_parked(mb_vm_sched(vm)));
  set_count(L, "requests", (lua_Integer)mb_correlate_pending(mb_runtime_correlate(rt)));
  set_count(L, "coroutines", mb_sched_live(mb_vm_sched(vm)));
  set_count(L, "in_flight", stats.in_flight);
  set_count(L, "handled", (lua_Integer)stats.handled);
  set_count(L, "failed", (lua_Integer)stats.failed);
  set_count(L, "parked", (lua_Integer)stats.parked);
  set_count(L, "discarded", (lua_Integer)stats.discarded);
  set_count(L, "timers", mb_timers_count(mb_vm_timers(vm)));
  return 1;
}

/* The bus's transport, opened (and the topology declared) if it is not yet. */
static mb_transport *connected_transport(lua_State *L) {
  mb_runtime *rt = mb_lbus_runtime(L);
  mb_err err;
  if (mb_runtime_transport(rt) == NULL && mb_runtime_connect(rt, &err) != MB_OK)
    luaL_error(L, "%s", err.msg);
  return mb_runtime_transport(rt);
}

/* host.depth(queue) -> ready, later */
static int l_depth(lua_State *L) {
  const char *queue = luaL_checkstring(L, 1);
  mb_transport *t = connected_transport(L);
  mb_err err;
  long ready = 0, later = 0;
  if (t->ops->depth(t, queue, &ready, &later, &err) != MB_OK) return luaL_error(L, "%s", err.msg);
  lua_pushinteger(L, ready);
  lua_pushinteger(L, later);
  return 2;
}

/* Pushes d as { id, type, correlation_id, reply_to, body, headers, delivery_count,
 * problem }. [-0, +1, m] */
static void push_message(lua_State *L, const mb_delivery *d) {
  lua_createtable(L, 0, 9);
  lua_pushstring(L, d->env.id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, d->env.type);
  lua_setfield(L, -2, "type");
  lua_pushstring(L, d->env.correlation_id);
  lua_setfield(L, -2, "correlation_id");
  lua_pushstring(L, d->env.reply_to);
  lua_setfield(L, -2, "reply_to");
  lua_pushlstring(L, d->env.body ? d->env.body : "", d->env.body_len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, d->problem);
  lua_setfield(L, -2, "problem");
  lua_pushinteger(L, d->delivery_count);
  lua_setfield(L, -2, "delivery_count");
  lua_createtable(L, 0, (int)d->env.headers.len);
  for (size_t i = 0; i < d->env.headers.len; i++) {
    lua_pushstring(L, d->env.headers.items[i].value);
    lua_setfield(L, -2, d->env.headers.items[i].key);
  }
  lua_setfield(L, -2, "headers");
}

#define BROWSE_MAX 1000

/* host.browse(queue [, max]) -> { message, ... } oldest first, left in the queue */
static int l_browse(lua_State *L) {
  const char *queue = luaL_checkstring(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 100);
  luaL_argcheck(L, max >= 1 && max <= BROWSE_MAX, 2, "must be 1-1000");
  mb_transport *t = connected_transport(L);
  mb_delivery *got[BROWSE_MAX];
  size_t n = 0;
  mb_err err;
  if (mb_transport_browse_first(t, queue, (size_t)max, got, &n, &err) != MB_OK)
    return luaL_error(L, "%s", err.msg);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    push_message(L, got[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
    mb_delivery_free(got[i]);
  }
  return 1;
}

/* host.owner(event_type) -> the owning endpoint's name, or nil */
static int l_owner(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  mb_transport *t = connected_transport(L);
  char owner[256];
  mb_err err;
  int rc = t->ops->owner_of(t, type, owner, sizeof owner, &err);
  if (rc == MB_ENOTFOUND) lua_pushnil(L);
  else if (rc != MB_OK) return luaL_error(L, "%s", err.msg);
  else lua_pushstring(L, owner);
  return 1;
}

/* host.capture_log(level | false): keeps the log lines at level or above from now on */
static int l_capture_log(lua_State *L) {
  if (!lua_toboolean(L, 1)) {
    mb_log_capture(0, MB_ERROR);
    return 0;
  }
  int level = mb_log_level_parse(luaL_checkstring(L, 1));
  luaL_argcheck(L, level >= 0, 1, "must be debug, info, warn or error");
  mb_log_capture(1, (mb_level)level);
  return 0;
}

/* host.captured_log() -> the lines kept since capture_log began */
static int l_captured_log(lua_State *L) {
  size_t len;
  const char *text = mb_log_captured(&len);
  lua_pushlstring(L, text, len);
  return 1;
}

/* host.endpoint() -> the name of the endpoint the bus declared, or nil */
static int l_endpoint(lua_State *L) {
  mb_runtime *rt = mb_lbus_runtime(L);
  if (mb_runtime_configured(rt)) lua_pushstring(L, mb_runtime_endpoint(rt));
  else lua_pushnil(L);
  return 1;
}

/* host.clock() -> seconds of a monotonic clock, for tools that measure latency */
static int l_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static const luaL_Reg host_functions[] = {
    {"clock", l_clock},
    {"capture_log", l_capture_log},
    {"captured_log", l_captured_log},
    {"start", l_start},
    {"stop", l_stop},
    {"run", l_run},
    {"reset", l_reset},
    {"counters", l_counters},
    {"depth", l_depth},
    {"browse", l_browse},
    {"owner", l_owner},
    {"endpoint", l_endpoint},
    {NULL, NULL},
};

int mb_ltesting_refuse(lua_State *L) {
  return luaL_error(L,
                    "%s is a test driver (for specs and tools that run moonbus from a plain "
                    "lua5.4 or busted): it cannot be loaded inside a moonbus host (moonbus run), "
                    "whose bus it would drive from under its own handlers",
                    luaL_optstring(L, 1, "moonbus.host"));
}

int luaopen_moonbus_host(lua_State *L) {
  mb_vm *vm = mb_vm_of(L);
  if (vm && !mb_vm_adopted(vm)) {
    lua_pushliteral(L, "moonbus.host");
    return mb_ltesting_refuse(L);
  }
  luaL_requiref(L, "moonbus", luaopen_moonbus, 0);
  lua_pop(L, 1);
  luaL_newlib(L, host_functions);
  return 1;
}
