/* sched.c — handler coroutines (see sched.h). The only caller of lua_resume: one
 * coroutine per delivery or timer tick, created on the anchor thread and referenced in the
 * registry until it ends. Never decides a message's fate (pipeline.c does) and never
 * yields on behalf of a script. */
#include "sched.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbus.h"
#include "log.h"
#include "pipeline.h"

#if LUA_VERSION_RELEASE_NUM >= 50406
#define close_thread(co, from) lua_closethread(co, from)
#else
#define close_thread(co, from) lua_resetthread(co)
#endif

struct mb_sched {
  lua_State *main;
  lua_State *anchor;
  mb_runtime *rt;
  mb_job *current;
  int in_timer;
  unsigned live;
};

mb_sched *mb_sched_new(lua_State *L, mb_runtime *rt) {
  mb_sched *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->main = s->anchor = L;
  s->rt = rt;
  return s;
}

void mb_sched_free(mb_sched *s) { free(s); }

void mb_sched_set_anchor(mb_sched *s, lua_State *L) { s->anchor = L ? L : s->main; }

mb_job *mb_sched_current_job(const mb_sched *s) { return s->current; }
int mb_sched_in_timer(const mb_sched *s) { return s->in_timer; }
unsigned mb_sched_live(const mb_sched *s) { return s->live; }

/* A new coroutine, referenced in the registry: *ref owns it. [-0, +0] on the anchor. */
static lua_State *new_coroutine(mb_sched *s, int *ref) {
  lua_State *co = lua_newthread(s->anchor);
  *ref = luaL_ref(s->anchor, LUA_REGISTRYINDEX);
  s->live++;
  return co;
}

static void end_coroutine(mb_sched *s, lua_State *co, int ref) {
  close_thread(co, s->anchor);
  luaL_unref(s->anchor, LUA_REGISTRYINDEX, ref);
  s->live--;
}

typedef struct outcome {
  int ok, unrecoverable;
  char error[MB_ERRLEN];
  char *trace; /* malloc'd, or NULL */
} outcome;

/* Reads the error on top of co and the traceback of co into o. [-0, +0] */
static void read_error(mb_sched *s, lua_State *co, outcome *o) {
  const char *msg = mb_lbus_error_text(co, -1, &o->unrecoverable);
  snprintf(o->error, sizeof o->error, "%s", msg);
  lua_pop(co, 1);
  luaL_traceback(s->anchor, co, NULL, 0);
  const char *trace = lua_tostring(s->anchor, -1);
  o->trace = trace ? strdup(trace) : NULL;
  lua_pop(s->anchor, 1);
}

/* Resumes co with nargs arguments until it ends; fills o. */
static void run(mb_sched *s, lua_State *co, int nargs, mb_job *job, outcome *o) {
  mb_job *outer = s->current;
  s->current = job;
  int nres = 0;
  int status = lua_resume(co, s->anchor, nargs, &nres);
  s->current = outer;
  memset(o, 0, sizeof *o);
  if (status == LUA_OK) {
    o->ok = 1;
  } else if (status == LUA_YIELD) {
    snprintf(o->error, sizeof o->error,
             "the handler yielded outside a bus call (coroutine.yield at the top of a "
             "handler or timer has no one to resume it)");
  } else {
    read_error(s, co, o);
  }
}

void mb_sched_handle(mb_sched *s, mb_job *job) {
  int ref;
  lua_State *co = new_coroutine(s, &ref);
  mb_lbus_push_dispatcher(co);
  lua_pushlightuserdata(co, job);
  outcome o;
  run(s, co, 1, job, &o);
  end_coroutine(s, co, ref);
  mb_outcome result = o.ok ? MB_OUTCOME_OK
                           : (o.unrecoverable ? MB_OUTCOME_POISON : MB_OUTCOME_FAILED);
  mb_pipeline_finished(job, result, o.ok ? NULL : o.error, o.trace);
  free(o.trace);
}

void mb_sched_call(mb_sched *s, int fn_ref, const char *what) {
  int ref;
  lua_State *co = new_coroutine(s, &ref);
  lua_rawgeti(co, LUA_REGISTRYINDEX, fn_ref);
  outcome o;
  s->in_timer++;
  run(s, co, 0, NULL, &o);
  s->in_timer--;
  end_coroutine(s, co, ref);
  if (!o.ok) {
    mb_log(MB_ERROR, s->rt->configured ? s->rt->cfg.name : NULL, NULL, NULL, "%s failed: %s",
           what, o.error);
    if (o.trace) mb_log(MB_DEBUG, s->rt->cfg.name, NULL, NULL, "trace: %s", o.trace);
  }
  free(o.trace);
}
