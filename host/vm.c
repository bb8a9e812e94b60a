/* vm.c — one Lua generation (see vm.h): open (or adopt, in module mode), load the
 * endpoint script under a traceback handler, close. Owns the lua_State, its allocator, its
 * scheduler and its timers: the only file that creates or frees them. The generation is
 * in the main thread's extra space, where bindings and the budget hook find it.
 * Never: resumes handler coroutines (sched.c does). */
#include "vm.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "lbus.h"
#include "paths.h"
#include "watchdog.h"

#define LOAD_HOOK_EVERY 1000 /* instructions between two looks at the clock while loading */

struct mb_vm {
  lua_State *L;   /* the main thread */
  int adopted;    /* module mode: L is its caller's, and rt is the generation's own */
  mb_alloc alloc; /* counts and caps the state's memory; outlives lua_close */
  mb_runtime *rt;
  mb_sched *sched;
  mb_timers *timers;
  char script[4096];
  char dir[4096];
  mb_vm_file_fn on_file; /* told of every Lua file the script loads */
  void *file_ud;
  unsigned generation; /* for the log line of a close that does not end */
};

/* Loading runs the script's top level: a budget stops one that never returns. Loads never
 * nest (one loop thread), so one deadline will do. */
static double load_deadline;
static double load_budget_s;

/* An error outside any protected call: nothing can be recovered, say what it was. */
static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "moonbus: unprotected Lua error: %s\n", msg ? msg : "(not a string)");
  return 0; /* Lua aborts */
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static const char *modules_dir(void) { return mb_paths_modules(); }

/* DIR -> DIR/endpoint.lua; FILE -> FILE. Fills vm->script and vm->dir. */
static int resolve(mb_vm *vm, const char *target, mb_err *err) {
  struct stat st;
  if (stat(target, &st) != 0)
    return mb_err_set(err, MB_ENOTFOUND, "no such file or directory: %s", target);
  if (S_ISDIR(st.st_mode)) {
    snprintf(vm->dir, sizeof vm->dir, "%s", target);
    for (size_t n = strlen(vm->dir); n > 1 && vm->dir[n - 1] == '/'; n--) vm->dir[n - 1] = '\0';
    snprintf(vm->script, sizeof vm->script, "%.4000s/endpoint.lua", vm->dir);
    if (stat(vm->script, &st) != 0)
      return mb_err_set(err, MB_ENOTFOUND, "%s has no endpoint.lua", target);
    return MB_OK;
  }
  snprintf(vm->script, sizeof vm->script, "%s", target);
  snprintf(vm->dir, sizeof vm->dir, "%s", target);
  char *slash = strrchr(vm->dir, '/');
  if (slash) *slash = '\0';
  else strcpy(vm->dir, ".");
  return MB_OK;
}

/* package.path: the endpoint's folder, its parent (shared contracts), modules/. The test
 * drivers (moonbus.host, moonbus.testing) are refused by name: they would drive this
 * state's bus from under its own handlers. */
static void set_paths(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  const char *mods = modules_dir();
  lua_pushfstring(L,
                  "%s/?.lua;%s/?/init.lua;%s/../?.lua;%s/../?/init.lua;%s/?.lua;%s/?/init.lua;",
                  dir, dir, dir, dir, mods, mods);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  luaL_getsubtable(L, -1, "preload");
  lua_pushcfunction(L, luaopen_moonbus);
  lua_setfield(L, -2, "moonbus");
  lua_pushcfunction(L, mb_ltesting_refuse);
  lua_setfield(L, -2, "moonbus.host");
  lua_pushcfunction(L, mb_ltesting_refuse);
  lua_setfield(L, -2, "moonbus.testing");
  lua_pop(L, 2);
}

/* The count hook while the top level runs: past the deadline it raises, at every
 * instruction from then on. [-0, +0, v] */
static void load_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (load_deadline == 0) {
    lua_sethook(L, NULL, 0, 0); /* a coroutine made while loading and run later */
    return;
  }
  if (mb_monotonic() > load_deadline) mb_lbus_over_budget(L, "loading the script", load_budget_s);
}

static int load_script(mb_vm *vm, double budget, mb_err *err) {
  lua_State *L = vm->L;
  lua_pushcfunction(L, traceback);
  int status = luaL_loadfile(L, vm->script);
  if (status == LUA_OK) {
    load_budget_s = budget;
    load_deadline = mb_monotonic() + budget;
    lua_sethook(L, load_hook, LUA_MASKCOUNT, LOAD_HOOK_EVERY);
    mb_watchdog_enter(mb_runtime_endpoint(vm->rt), vm->script);
    status = lua_pcall(L, 0, 0, -2);
    mb_watchdog_leave();
    lua_sethook(L, NULL, 0, 0);
    load_deadline = 0;
  }
  if (status != LUA_OK) {
    mb_err_set(err, MB_EINVAL, "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
    return MB_EINVAL;
  }
  lua_pop(L, 1);
  return MB_OK;
}

/* A searcher ahead of Lua's own: tells on_file which file `require` is about to load (the
 * next searcher loads it), so that a reload watches modules as well as the script — even
 * a module that then fails to load, whose fix must trigger the next reload (Lua's own
 * searcher names the file only when it loaded).
 * Returns nothing, so `require` goes on to the next searcher. [-0, +0, e] */
static int file_searcher(lua_State *L) {
  mb_vm *vm = lua_touserdata(L, lua_upvalueindex(1));
  const char *name = luaL_checkstring(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 1);
  const char *path = lua_tostring(L, -1);
  const char *mods = modules_dir();
  if (path && strncmp(path, mods, strlen(mods)) != 0) vm->on_file(vm->file_ud, path);
  return 0;
}

/* package.searchers: file_searcher goes second, before the one for Lua files. [-0, +0, m] */
static void watch_requires(mb_vm *vm) {
  lua_State *L = vm->L;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  for (lua_Integer i = luaL_len(L, -1); i >= 2; i--) {
    lua_geti(L, -1, i);
    lua_seti(L, -2, i + 1);
  }
  lua_pushlightuserdata(L, vm);
  lua_pushcclosure(L, file_searcher, 1);
  lua_seti(L, -2, 2);
  lua_pop(L, 2);
}

/* Opens the bus inside a protected call (luaopen_moonbus may raise). */
static int open_bus(lua_State *L) {
  luaL_requiref(L, "moonbus", luaopen_moonbus, 0);
  return 0;
}

/* What the scheduler needs of the bindings (it never includes them). */
static const mb_sched_lua lua_face = {
    mb_ldispatch,
    mb_lbus_error_text,
    mb_lbus_over_budget,
    mb_alloc_take_refusal,
};

static void set_extraspace(lua_State *L, mb_vm *vm) { *(mb_vm **)lua_getextraspace(L) = vm; }

mb_vm *mb_vm_of(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *main_thread = lua_tothread(L, -1);
  lua_pop(L, 1);
  return main_thread ? *(mb_vm **)lua_getextraspace(main_thread) : NULL;
}

/* The scheduler and the timers of the generation, made together. MB_OK or MB_ENOMEM. */
static int make_parts(mb_vm *vm) {
  vm->sched = mb_sched_new(vm->L, vm->rt, &lua_face);
  if (vm->sched) vm->timers = mb_timers_new(mb_runtime_loop(vm->rt), vm->sched);
  return vm->timers ? MB_OK : MB_ENOMEM;
}

/* Timers first (a tick runs on the scheduler), then the scheduler, whose parked coroutines
 * are cancelled: their jobs go back to their queues. */
static void free_parts(mb_vm *vm) {
  mb_timers_free(vm->timers);
  vm->timers = NULL;
  mb_sched_free(vm->sched);
  vm->sched = NULL;
}

/* A state of our own, with the allocator that keeps the memory budget. */
static int new_state(mb_vm *vm, mb_err *err) {
  mb_alloc_init(&vm->alloc);
  if ((vm->L = lua_newstate(mb_alloc_capped, &vm->alloc)) == NULL)
    return mb_err_set(err, MB_ENOMEM, "cannot create a Lua state");
  set_extraspace(vm->L, vm);
  lua_atpanic(vm->L, panic);
  if (make_parts(vm) != MB_OK) return mb_err_set(err, MB_ENOMEM, "out of memory");
  luaL_openlibs(vm->L);
  mb_lguard_open(vm->L);
  return MB_OK;
}

mb_vm *mb_vm_open(mb_runtime *rt, const char *target, const mb_vm_load *how, mb_err *err) {
  mb_vm *vm = calloc(1, sizeof *vm);
  if (vm == NULL) {
    mb_err_set(err, MB_ENOMEM, "out of memory");
    return NULL;
  }
  vm->rt = rt;
  vm->on_file = how ? how->on_file : NULL;
  vm->file_ud = how ? how->file_ud : NULL;
  if (resolve(vm, target, err) != MB_OK) goto fail;
  if (vm->on_file) vm->on_file(vm->file_ud, vm->script);
  if (new_state(vm, err) != MB_OK) goto fail;
  set_paths(vm->L, vm->dir);
  lua_pushcfunction(vm->L, open_bus);
  if (lua_pcall(vm->L, 0, 0, 0) != LUA_OK) {
    mb_err_set(err, MB_EINVAL, "cannot open moonbus: %s", lua_tostring(vm->L, -1));
    goto fail;
  }
  if (vm->on_file) watch_requires(vm);
  double budget = how && how->budget > 0 ? how->budget : MB_DEFAULT_TIME_BUDGET;
  if (load_script(vm, budget, err) != MB_OK) goto fail;
  return vm;
fail:
  mb_vm_close(vm);
  return NULL;
}

/* A runtime of the generation's own, with its parts, running its handlers. */
static int adopt_parts(mb_vm *vm) {
  if ((vm->rt = mb_runtime_new(NULL, NULL, NULL)) == NULL || make_parts(vm) != MB_OK)
    return MB_ENOMEM;
  mb_runtime_set_runner(vm->rt, mb_sched_runner(), vm->sched);
  return MB_OK;
}

mb_vm *mb_vm_adopt(lua_State *L) {
  mb_vm *vm = calloc(1, sizeof *vm);
  if (vm == NULL) return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  vm->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  vm->adopted = 1;
  if (adopt_parts(vm) != MB_OK) {
    mb_vm_close(vm);
    return NULL;
  }
  set_extraspace(vm->L, vm);
  return vm;
}

int mb_vm_reset(mb_vm *vm) {
  free_parts(vm);
  mb_runtime_free(vm->rt);
  vm->rt = NULL;
  mb_alloc_unwrap(vm->L); /* the next bus.endpoint{} sets its own budget */
  return adopt_parts(vm);
}

int mb_vm_adopted(const mb_vm *vm) { return vm->adopted; }
mb_runtime *mb_vm_runtime(const mb_vm *vm) { return vm->rt; }
mb_sched *mb_vm_sched(const mb_vm *vm) { return vm->sched; }
mb_timers *mb_vm_timers(const mb_vm *vm) { return vm->timers; }
void mb_vm_start_timers(mb_vm *vm) { mb_timers_start(vm->timers); }
void mb_vm_stop_timers(mb_vm *vm) { mb_timers_stop(vm->timers); }
const char *mb_vm_script(const mb_vm *vm) { return vm->script; }
unsigned mb_vm_live(const mb_vm *vm) { return vm->sched ? mb_sched_live(vm->sched) : 0; }
size_t mb_vm_memory(const mb_vm *vm) { return vm->adopted ? 0 : vm->alloc.used; }
void mb_vm_set_generation(mb_vm *vm, unsigned generation) { vm->generation = generation; }

/* lua_close runs the script's __gc finalizers with hooks off: no time budget reaches them,
 * so the close is bounded by the watchdog's last resort (2 x time_budget), at shutdown too. */
static void close_bounded(mb_vm *vm) {
  char what[4200];
  if (vm->generation)
    snprintf(what, sizeof what,
             "closing the Lua state of generation %u (%s; it runs its "
             "__gc finalizers)",
             vm->generation, vm->script);
  else
    snprintf(what, sizeof what,
             "closing the Lua state of %s that did not load (it runs its "
             "__gc finalizers)",
             vm->script);
  double budget = mb_runtime_cfg(vm->rt)->time_budget;
  if (!(budget > 0)) budget = MB_DEFAULT_TIME_BUDGET;
  int bounded = mb_watchdog_bound(2 * budget, mb_runtime_endpoint(vm->rt), what) == 0;
  lua_close(vm->L);
  if (bounded) mb_watchdog_unbound();
}

/* The bus is gone before the state closes: a script's __gc that calls it gets an error. */
void mb_vm_close(mb_vm *vm) {
  if (vm == NULL) return;
  free_parts(vm);
  if (vm->L) set_extraspace(vm->L, NULL);
  if (vm->adopted) {
    if (vm->L) mb_alloc_unwrap(vm->L);
    mb_runtime_free(vm->rt);
  } else if (vm->L) {
    close_bounded(vm);
  }
  free(vm);
}

static int check_json(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "decode");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1))
    return luaL_error(L, "the body must be a JSON object, got %s", luaL_typename(L, -1));
  return 0;
}

int mb_vm_check_json(const char *json, mb_err *err) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return mb_err_set(err, MB_ENOMEM, "cannot create a Lua state");
  luaL_openlibs(L);
  lua_pushcfunction(L, check_json);
  lua_pushstring(L, json);
  int rc = MB_OK;
  if (lua_pcall(L, 1, 0, 0) != LUA_OK)
    rc = mb_err_set(err, MB_EINVAL, "invalid JSON body: %s", lua_tostring(L, -1));
  lua_close(L);
  return rc;
}

const char *mb_vm_lua_release(void) { return LUA_RELEASE; }
