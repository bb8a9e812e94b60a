/* ltimer.c — bus.after and bus.every: local timers whose ticks run as coroutines through
 * the scheduler (DESIGN §3). Each timer owns its ev_timer and the registry reference to its
 * function, and releases both when it ends, is cancelled, or the bus stops.
 * Never: resumes a coroutine itself, or keeps retry state (retries are not timers). */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "lbus.h"

struct mb_ltimer {
  ev_timer w;
  mb_lbus *bus;
  int fn_ref;
  int firing, cancelled;
  struct ltimer_handle *handle; /* the Lua handle, while it lives */
  char what[160];
  mb_ltimer *prev, *next;
};

typedef struct ltimer_handle {
  mb_ltimer *timer; /* NULL once the timer ended */
} ltimer_handle;

static void timer_free(mb_ltimer *t) {
  mb_lbus *bus = t->bus;
  ev_timer_stop(bus->rt->loop, &t->w);
  if (t->prev) t->prev->next = t->next;
  else bus->timers = t->next;
  if (t->next) t->next->prev = t->prev;
  if (t->handle) t->handle->timer = NULL;
  luaL_unref(bus->main, LUA_REGISTRYINDEX, t->fn_ref);
  free(t);
}

static void timer_fired(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mb_ltimer *t = (mb_ltimer *)w;
  t->firing = 1;
  mb_sched_call(t->bus->sched, t->fn_ref, t->what);
  t->firing = 0;
  if (t->cancelled || w->repeat == 0) timer_free(t);
}

static void timer_cancel(mb_ltimer *t) {
  if (t->firing) {
    t->cancelled = 1;
    ev_timer_stop(t->bus->rt->loop, &t->w);
  } else {
    timer_free(t);
  }
}

static int handle_cancel(lua_State *L) {
  ltimer_handle *h = luaL_checkudata(L, 1, MB_TIMER_MT);
  if (h->timer) timer_cancel(h->timer);
  h->timer = NULL;
  return 0;
}

static int handle_gc(lua_State *L) {
  ltimer_handle *h = luaL_checkudata(L, 1, MB_TIMER_MT);
  if (h->timer) h->timer->handle = NULL; /* the timer goes on without its handle */
  return 0;
}

static int new_timer(lua_State *L, int repeating) {
  const char *fn = repeating ? "bus.every" : "bus.after";
  lua_Number seconds = luaL_checknumber(L, 1);
  if (!(seconds >= 0) || (repeating && seconds <= 0))
    return luaL_error(L, "%s: seconds must be a number %s 0, got %f", fn,
                      repeating ? ">" : ">=", (double)seconds);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  mb_lbus *bus = mb_lbus_get(L);
  ltimer_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->timer = NULL;
  luaL_setmetatable(L, MB_TIMER_MT);
  mb_ltimer *t = calloc(1, sizeof *t);
  if (t == NULL) return luaL_error(L, "out of memory");
  luaL_where(L, 1);
  snprintf(t->what, sizeof t->what, "%s(%g) at %s", fn, (double)seconds, lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_pushvalue(L, 2);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->bus = bus;
  t->handle = h;
  h->timer = t;
  ev_timer_init(&t->w, timer_fired, seconds, repeating ? seconds : 0.);
  t->next = bus->timers;
  if (bus->timers) bus->timers->prev = t;
  bus->timers = t;
  if (bus->started) ev_timer_start(bus->rt->loop, &t->w);
  return 1;
}

static int l_after(lua_State *L) { return new_timer(L, 0); }
static int l_every(lua_State *L) { return new_timer(L, 1); }

void mb_ltimer_start_all(mb_lbus *bus) {
  bus->started = 1;
  for (mb_ltimer *t = bus->timers; t; t = t->next)
    if (!ev_is_active(&t->w) && !t->cancelled) ev_timer_start(bus->rt->loop, &t->w);
}

void mb_ltimer_stop_all(mb_lbus *bus) {
  bus->started = 0;
  mb_ltimer *t = bus->timers;
  while (t) {
    mb_ltimer *next = t->next;
    if (t->firing) { /* stopping from inside its own tick: freed when the tick returns */
      t->cancelled = 1;
      ev_timer_stop(bus->rt->loop, &t->w);
    } else {
      timer_free(t);
    }
    t = next;
  }
}

int mb_ltimer_count(const mb_lbus *bus) {
  int n = 0;
  for (const mb_ltimer *t = bus->timers; t; t = t->next) n += !t->cancelled;
  return n;
}

static const luaL_Reg timer_functions[] = {
    {"after", l_after},
    {"every", l_every},
    {NULL, NULL},
};

void mb_ltimer_open(lua_State *L) {
  if (luaL_newmetatable(L, MB_TIMER_MT)) {
    lua_pushcfunction(L, handle_gc);
    lua_setfield(L, -2, "__gc");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, handle_cancel);
    lua_setfield(L, -2, "cancel");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, timer_functions, 0);
}
