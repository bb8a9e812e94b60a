/* timers.c — the timers of one generation (see timers.h). Each timer owns its ev_timer
 * and the registry reference to its function, and releases both when it ends, is
 * cancelled, or the set stops. Never: resumes a coroutine itself (sched.c does). */
#include "timers.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

struct mb_timer {
  ev_timer w;
  mb_timers *set;
  int fn_ref;
  int firing, cancelled;
  mb_timer **watcher; /* the Lua handle's pointer, while it lives */
  char what[160];
  mb_timer *prev, *next;
};

struct mb_timers {
  struct ev_loop *loop;
  mb_sched *sched;
  mb_timer *list;
  int started;
};

mb_timers *mb_timers_new(struct ev_loop *loop, mb_sched *sched) {
  mb_timers *ts = calloc(1, sizeof *ts);
  if (ts == NULL) return NULL;
  ts->loop = loop;
  ts->sched = sched;
  return ts;
}

void mb_timers_free(mb_timers *ts) {
  if (ts == NULL) return;
  mb_timers_stop(ts);
  free(ts);
}

static void timer_free(mb_timer *t) {
  mb_timers *ts = t->set;
  ev_timer_stop(ts->loop, &t->w);
  if (t->prev) t->prev->next = t->next;
  else ts->list = t->next;
  if (t->next) t->next->prev = t->prev;
  if (t->watcher) *t->watcher = NULL;
  mb_sched_unref(ts->sched, t->fn_ref);
  free(t);
}

static void timer_fired(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mb_timer *t = (mb_timer *)w;
  t->firing = 1;
  mb_sched_call(t->set->sched, t->fn_ref, t->what);
  t->firing = 0;
  if (t->cancelled || w->repeat == 0) timer_free(t);
}

mb_timer *mb_timers_add(mb_timers *ts, double after, double every, int fn_ref, const char *what) {
  mb_timer *t = calloc(1, sizeof *t);
  if (t == NULL) {
    mb_sched_unref(ts->sched, fn_ref);
    return NULL;
  }
  t->set = ts;
  t->fn_ref = fn_ref;
  snprintf(t->what, sizeof t->what, "%s", what);
  ev_timer_init(&t->w, timer_fired, after, every);
  t->next = ts->list;
  if (ts->list) ts->list->prev = t;
  ts->list = t;
  if (ts->started) ev_timer_start(ts->loop, &t->w);
  return t;
}

void mb_timer_cancel(mb_timer *t) {
  if (t->firing) { /* from inside its own tick: freed when the tick returns */
    t->cancelled = 1;
    ev_timer_stop(t->set->loop, &t->w);
  } else {
    timer_free(t);
  }
}

void mb_timer_watch(mb_timer *t, mb_timer **slot) { t->watcher = slot; }

void mb_timers_start(mb_timers *ts) {
  ts->started = 1;
  for (mb_timer *t = ts->list; t; t = t->next)
    if (!ev_is_active(&t->w) && !t->cancelled) ev_timer_start(ts->loop, &t->w);
}

void mb_timers_stop(mb_timers *ts) {
  ts->started = 0;
  for (mb_timer *t = ts->list, *next; t; t = next) {
    next = t->next;
    mb_timer_cancel(t);
  }
}

int mb_timers_started(const mb_timers *ts) { return ts->started; }

int mb_timers_count(const mb_timers *ts) {
  int n = 0;
  for (const mb_timer *t = ts->list; t; t = t->next) n += !t->cancelled;
  return n;
}
