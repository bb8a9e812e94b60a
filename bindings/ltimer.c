/* ltimer.c — bus.after and bus.every (DESIGN §3): the Lua face of the generation's timers
 * (host/timers.c), whose ticks run as coroutines through the scheduler. A handle lets a
 * script cancel its timer; the timer goes on if the handle is collected.
 * Never: creates or frees the timer set (vm.c owns it), or resumes a coroutine. */
#include <stdio.h>

#include "lbus.h"

typedef struct ltimer_handle {
  mb_timer *timer; /* NULL once the timer ended (timers.c clears it) */
} ltimer_handle;

static int handle_cancel(lua_State *L) {
  ltimer_handle *h = luaL_checkudata(L, 1, MB_TIMER_MT);
  mb_timer *t = h->timer;
  h->timer = NULL;
  if (t) {
    mb_timer_watch(t, NULL);
    mb_timer_cancel(t);
  }
  return 0;
}

static int handle_gc(lua_State *L) {
  ltimer_handle *h = luaL_checkudata(L, 1, MB_TIMER_MT);
  if (h->timer) mb_timer_watch(h->timer, NULL); /* the timer goes on without its handle */
  h->timer = NULL;
  return 0;
}

/* [-0, +1, e] the handle */
static int new_timer(lua_State *L, int repeating) {
  const char *fn = repeating ? "bus.every" : "bus.after";
  lua_Number seconds = luaL_checknumber(L, 1);
  if (!(seconds >= 0) || (repeating && seconds <= 0))
    return luaL_error(L, "%s: seconds must be a number %s 0, got %f", fn,
                      repeating ? ">" : ">=", (double)seconds);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  mb_vm *vm = mb_lbus_vm(L);
  ltimer_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->timer = NULL;
  luaL_setmetatable(L, MB_TIMER_MT);
  char what[160];
  luaL_where(L, 1);
  snprintf(what, sizeof what, "%s(%g) at %s", fn, (double)seconds, lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_pushvalue(L, 2);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  mb_timer *t = mb_timers_add(mb_vm_timers(vm), seconds, repeating ? seconds : 0., ref, what);
  if (t == NULL) return luaL_error(L, "out of memory");
  h->timer = t;
  mb_timer_watch(t, &h->timer);
  return 1;
}

static int l_after(lua_State *L) { return new_timer(L, 0); }
static int l_every(lua_State *L) { return new_timer(L, 1); }

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
