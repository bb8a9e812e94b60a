/* sched.c — handler coroutines (see sched.h). The only caller of lua_resume: one
 * coroutine per delivery or timer tick, created on the anchor thread and referenced in the
 * registry until it ends. A coroutine that parks in a bus call stays in the list of
 * threads until mb_sched_wake resumes it from the loop (or shutdown cancels it).
 * Never decides a message's fate (pipeline.c does) and never yields on behalf of a script. */
#include "sched.h"

#include <ev.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "runtime.h"
#include "vm.h"
#include "watchdog.h"

#define BUDGET_HOOK_EVERY 1000 /* instructions between two looks at the clock */
#define SPARE_THREADS 64 /* ended coroutines kept for reuse (make bench: fewer allocations) */

#if LUA_VERSION_RELEASE_NUM >= 50406
#define close_thread(co, from) lua_closethread(co, from)
#else
#define close_thread(co, from) lua_resetthread(co)
#endif

struct mb_thread {
  lua_State *co;
  int ref;           /* the registry reference that keeps co alive */
  mb_job *job;       /* the delivery it handles; NULL for a timer tick */
  char what[160];    /* a timer's description, for its errors */
  int parked, ready; /* waiting for mb_sched_wake; woken, to be resumed from the loop */
  double deadline;   /* monotonic seconds: past it, the budget hook raises */
  double parked_at;  /* when it parked: waiting does not count against the budget */
  int over_budget;
  void (*cancel)(void *ud);
  void *cancel_ud;
  mb_thread *prev, *next;
  mb_thread *ready_next; /* the queue of woken threads */
};

struct mb_sched {
  lua_State *main;
  lua_State *anchor;
  mb_runtime *rt;
  const mb_sched_lua *lua; /* the bindings' side of the seam */
  void (*on_idle)(void *ud);
  void *idle_ud;
  mb_thread *running; /* the coroutine inside lua_resume now */
  mb_thread *threads;
  unsigned live, parked;
  ev_timer resume_soon; /* resumes woken threads at the top of the loop */
  mb_thread *ready_head, *ready_tail;
  lua_State *spare[SPARE_THREADS]; /* reset coroutines, each still referenced by its ref */
  int spare_ref[SPARE_THREADS];
  int n_spare;
};

static void resume_ready(struct ev_loop *loop, ev_timer *w, int revents);

static const char *endpoint_of(const mb_sched *s) { return mb_runtime_endpoint(s->rt); }
static double time_budget(const mb_sched *s) { return mb_runtime_cfg(s->rt)->time_budget; }

/* The time budget (DESIGN §6): every BUDGET_HOOK_EVERY instructions of the running
 * coroutine (and of any coroutine it made, which inherit the hook), a look at the clock.
 * Past the deadline it raises, and from then on at every instruction, so that a script
 * cannot catch its way out with pcall: each catch returns to a shallower frame, which
 * raises again, until the handler itself has unwound. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  mb_vm *vm = mb_vm_of(L);
  mb_sched *s = vm ? mb_vm_sched(vm) : NULL;
  mb_thread *th = s ? s->running : NULL;
  if (th == NULL || th->deadline == 0) return;
  if (!th->over_budget && mb_monotonic() < th->deadline) return;
  th->over_budget = 1;
  s->lua->over_budget(L, th->what, time_budget(s));
}

static void arm_budget(mb_sched *s, mb_thread *th) {
  th->deadline = mb_monotonic() + time_budget(s);
  th->over_budget = 0;
  lua_sethook(th->co, budget_hook, LUA_MASKCOUNT, BUDGET_HOOK_EVERY);
}

mb_sched *mb_sched_new(lua_State *L, mb_runtime *rt, const mb_sched_lua *lua) {
  mb_sched *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->main = s->anchor = L;
  s->rt = rt;
  s->lua = lua;
  ev_timer_init(&s->resume_soon, resume_ready, 0., 0.);
  s->resume_soon.data = s;
  return s;
}

void mb_sched_set_anchor(mb_sched *s, lua_State *L) { s->anchor = L ? L : s->main; }

mb_job *mb_sched_current_job(const mb_sched *s) { return s->running ? s->running->job : NULL; }
unsigned mb_sched_live(const mb_sched *s) { return s->live; }
unsigned mb_sched_parked(const mb_sched *s) { return s->parked; }

const char *mb_sched_running_what(const mb_sched *s) {
  return s->running ? s->running->what : NULL;
}

mb_thread *mb_sched_self(const mb_sched *s, lua_State *L) {
  return s->running && s->running->co == L ? s->running : NULL;
}

/* A coroutine referenced in the registry: a spare one, or a new one. [-0, +0] on the anchor. */
static mb_thread *new_thread(mb_sched *s, mb_job *job) {
  mb_thread *th = calloc(1, sizeof *th);
  if (th == NULL) return NULL;
  if (s->n_spare > 0) {
    s->n_spare--;
    th->co = s->spare[s->n_spare];
    th->ref = s->spare_ref[s->n_spare];
  } else {
    th->co = lua_newthread(s->anchor);
    th->ref = luaL_ref(s->anchor, LUA_REGISTRYINDEX);
  }
  th->job = job;
  th->next = s->threads;
  if (s->threads) s->threads->prev = th;
  s->threads = th;
  s->live++;
  return th;
}

static void unlink_thread(mb_sched *s, mb_thread *th) {
  if (th->prev) th->prev->next = th->next;
  else s->threads = th->next;
  if (th->next) th->next->prev = th->prev;
  s->live--;
}

void mb_sched_on_idle(mb_sched *s, void (*fn)(void *ud), void *ud) {
  s->on_idle = fn;
  s->idle_ud = ud;
}

void mb_sched_unref(mb_sched *s, int ref) { luaL_unref(s->main, LUA_REGISTRYINDEX, ref); }

static void tell_if_idle(mb_sched *s) {
  if (s->live == 0 && s->on_idle) s->on_idle(s->idle_ud);
}

/* Resets the coroutine (its stack, its to-be-closed variables) and, if it ended without an
 * error and there is room, keeps it for the next one. One that failed is dropped: an error
 * raised by a hook leaves hooks disabled in its thread (Lua does not restore allowhook
 * when a resume fails), and the time budget needs them. */
static void end_thread(mb_sched *s, mb_thread *th, int reusable) {
  close_thread(th->co, s->anchor);
  lua_settop(th->co, 0);
  lua_sethook(th->co, NULL, 0, 0);
  if (reusable && s->n_spare < SPARE_THREADS) {
    s->spare[s->n_spare] = th->co;
    s->spare_ref[s->n_spare++] = th->ref;
  } else {
    luaL_unref(s->anchor, LUA_REGISTRYINDEX, th->ref);
  }
  unlink_thread(s, th);
  free(th);
}

typedef struct outcome {
  int ok, unrecoverable;
  char error[MB_ERRLEN];
  char *trace; /* malloc'd, or NULL */
} outcome;

/* Reads the error on top of co and the traceback of co into o. [-0, +0] */
static void read_error(mb_sched *s, lua_State *co, int status, outcome *o) {
  const char *msg = s->lua->error_text(co, -1, &o->unrecoverable);
  size_t limit;
  if (s->lua->memory_refused(co, &limit) && status == LUA_ERRMEM)
    snprintf(o->error, sizeof o->error,
             "it went past the memory budget of %.1f MiB "
             "(memory_budget): %s",
             (double)mb_runtime_cfg(s->rt)->memory_budget / (1 << 20), msg);
  else snprintf(o->error, sizeof o->error, "%s", msg);
  lua_pop(co, 1);
  luaL_traceback(s->anchor, co, NULL, 0);
  const char *trace = lua_tostring(s->anchor, -1);
  o->trace = trace ? strdup(trace) : NULL;
  lua_pop(s->anchor, 1);
}

/* The coroutine ended (or yielded with nobody to resume it): report and forget it. */
static void finish(mb_sched *s, mb_thread *th, outcome *o) {
  mb_job *job = th->job;
  char what[sizeof th->what];
  memcpy(what, th->what, sizeof what);
  end_thread(s, th, o->ok);
  if (job) {
    mb_outcome result = o->ok ? MB_OUTCOME_OK
                              : (o->unrecoverable ? MB_OUTCOME_POISON : MB_OUTCOME_FAILED);
    mb_pipeline_finished(job, result, o->ok ? NULL : o->error, o->trace);
  } else if (!o->ok) {
    const char *endpoint = endpoint_of(s);
    mb_log(MB_ERROR, endpoint, NULL, NULL, "%s failed: %s", what, o->error);
    if (o->trace) mb_log(MB_DEBUG, endpoint, NULL, NULL, "trace: %s", o->trace);
  }
  free(o->trace);
  tell_if_idle(s);
}

/* Resumes th with nargs arguments on its stack, until it ends or parks. */
static void step(mb_sched *s, mb_thread *th, int nargs) {
  mb_thread *outer = s->running;
  s->running = th;
  int nres = 0;
  mb_watchdog_enter(endpoint_of(s), th->what);
  int status = lua_resume(th->co, s->anchor, nargs, &nres);
  mb_watchdog_leave();
  s->running = outer;
  if (status == LUA_YIELD && th->parked) {
    lua_pop(th->co, nres);
    return;
  }
  outcome o;
  memset(&o, 0, sizeof o);
  if (status == LUA_OK) {
    o.ok = 1;
  } else if (status == LUA_YIELD) {
    snprintf(o.error, sizeof o.error,
             "coroutine.yield was called outside a coroutine the script made (a handler or "
             "timer is resumed only by the bus: use bus.request to wait for a reply)");
  } else {
    read_error(s, th->co, status, &o);
  }
  finish(s, th, &o);
}

void mb_sched_park(mb_sched *s, mb_thread *th, void (*cancel)(void *ud), void *ud) {
  s->parked++;
  th->parked_at = mb_monotonic();
  th->parked = 1;
  th->cancel = cancel;
  th->cancel_ud = ud;
}

void mb_sched_credit(mb_sched *s, mb_thread *th, double seconds) {
  (void)s;
  if (th && th->deadline && seconds > 0) th->deadline += seconds;
}

/* A wake comes from inside a transport's or correlate.c's callback, which may be walking
 * its own lists: the coroutine (which may send again at once) is resumed later, from a
 * watcher of its own, never from inside the call that woke it. */
void mb_sched_wake(mb_sched *s, mb_thread *th) {
  if (!th->parked || th->ready) return;
  th->ready = 1;
  th->ready_next = NULL;
  if (s->ready_tail) s->ready_tail->ready_next = th;
  else s->ready_head = th;
  s->ready_tail = th;
  if (!ev_is_active(&s->resume_soon)) ev_timer_start(mb_runtime_loop(s->rt), &s->resume_soon);
}

static void resume_ready(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mb_sched *s = w->data;
  while (s->ready_head) {
    mb_thread *th = s->ready_head;
    s->ready_head = th->ready_next;
    if (s->ready_head == NULL) s->ready_tail = NULL;
    th->ready = th->parked = 0;
    th->cancel = NULL;
    s->parked--;
    if (th->deadline)
      th->deadline += mb_monotonic() - th->parked_at; /* the budget is for running */
    step(s, th, 0);
  }
}

/* The watchdog covers the whole start of a coroutine, not only its resume: making the
 * coroutine allocates, and an allocation may run a script's __gc finalizer. */
static void start_handler(mb_sched *s, mb_job *job, const char *what) {
  mb_thread *th = new_thread(s, job);
  if (th == NULL) {
    mb_pipeline_finished(job, MB_OUTCOME_FAILED, "out of memory for a coroutine", NULL);
    return;
  }
  lua_pushcfunction(th->co, s->lua->dispatcher);
  lua_pushlightuserdata(th->co, job);
  snprintf(th->what, sizeof th->what, "%s", what);
  arm_budget(s, th);
  step(s, th, 1);
}

void mb_sched_handle(mb_sched *s, mb_job *job) {
  char what[sizeof((mb_thread *)0)->what];
  snprintf(what, sizeof what, "the handler of %s (message %s)", mb_job_delivery(job)->env.type,
           mb_job_delivery(job)->env.id);
  mb_watchdog_enter(endpoint_of(s), what);
  start_handler(s, job, what);
  mb_watchdog_leave();
}

static void start_call(mb_sched *s, int fn_ref, const char *what) {
  mb_thread *th = new_thread(s, NULL);
  if (th == NULL) {
    mb_log(MB_ERROR, endpoint_of(s), NULL, NULL, "%s skipped: out of memory", what);
    return;
  }
  snprintf(th->what, sizeof th->what, "%s", what);
  arm_budget(s, th);
  lua_rawgeti(th->co, LUA_REGISTRYINDEX, fn_ref);
  step(s, th, 0);
}

void mb_sched_call(mb_sched *s, int fn_ref, const char *what) {
  mb_watchdog_enter(endpoint_of(s), what);
  start_call(s, fn_ref, what);
  mb_watchdog_leave();
}

#define STOPPED_WHY                                                                              \
  "its Lua state was closed while the handler was waiting (bus.request): the bus stopped, or "   \
  "the code it ran was reloaded and did not finish in time; the message goes back to its "       \
  "queue"

/* Takes th out of the queue of woken threads, if it is there. */
static void unready(mb_sched *s, mb_thread *th) {
  if (!th->ready) return;
  mb_thread **at = &s->ready_head, *prev = NULL;
  while (*at && *at != th) prev = *at, at = &(*at)->ready_next;
  if (*at) *at = th->ready_next;
  if (s->ready_tail == th) s->ready_tail = prev;
  th->ready = 0;
}

/* Forgets a parked coroutine: its cancel hook runs and its job (if any) is stopped. */
static void cancel_thread(mb_sched *s, mb_thread *th, const char *why) {
  mb_job *job = th->job;
  unready(s, th);
  if (th->parked) s->parked--;
  if (th->cancel) th->cancel(th->cancel_ud);
  luaL_unref(s->main, LUA_REGISTRYINDEX, th->ref);
  unlink_thread(s, th);
  free(th);
  if (job) mb_pipeline_finished(job, MB_OUTCOME_STOPPED, why, NULL);
}

static void run_job(void *ud, mb_job *job) { mb_sched_handle(ud, job); }

static void cancel_job(void *ud, mb_job *job) {
  mb_sched *s = ud;
  for (mb_thread *th = s->threads; th; th = th->next)
    if (th->job == job && th != s->running) {
      cancel_thread(s, th,
                    "the bus stopped while its handler was waiting; the message goes "
                    "back to its queue");
      tell_if_idle(s);
      return;
    }
}

static const mb_runner sched_runner = {run_job, cancel_job};
const mb_runner *mb_sched_runner(void) { return &sched_runner; }

void mb_sched_free(mb_sched *s) {
  if (s == NULL) return;
  ev_timer_stop(mb_runtime_loop(s->rt), &s->resume_soon);
  s->on_idle = NULL;
  while (s->n_spare > 0) luaL_unref(s->main, LUA_REGISTRYINDEX, s->spare_ref[--s->n_spare]);
  while (s->threads) cancel_thread(s, s->threads, STOPPED_WHY);
  free(s);
}
