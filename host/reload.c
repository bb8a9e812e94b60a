/* reload.c — hot reload (see reload.h). Owns the running Lua state and, while it drains,
 * the one before it; the file watch (filewatch.c) and its debounce; SIGHUP. A reload is
 * load (a fresh state, the script's top level under the time budget), adopt (the runtime
 * checks the declaration and declares the topology), switch (new messages and timers go
 * to the new state), drain (the old state closes when its last coroutine ends).
 * Never: reopens a connection, or touches a message: jobs in flight belong to the pipeline,
 * whichever state runs their handlers. */
#include "reload.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "filewatch.h"
#include "log.h"
#include "metrics.h"
#include "watchdog.h"

#define DEBOUNCE_SECONDS 0.1 /* quiet time after the last write before reloading */

struct mb_reload {
  mb_runtime *rt;
  char target[4096];
  mb_vm *current, *draining;
  unsigned generation;
  mb_filewatch *files;      /* every Lua file a generation loaded */
  ev_timer debounce, drain; /* drain: the deadline of the draining generation */
  ev_timer drained;         /* its last coroutine ended: close it from the loop */
  ev_signal sighup;
  double drain_seconds;
  char changed[512]; /* what changed since the last reload, for its log line */
  int started, stopped, loading, pending;
};

static void on_change(void *ud, const char *path);
static void on_debounced(struct ev_loop *loop, ev_timer *w, int revents);
static void on_drain_over(struct ev_loop *loop, ev_timer *w, int revents);
static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents);

static const char *endpoint_of(const mb_reload *r) { return mb_runtime_endpoint(r->rt); }
static struct ev_loop *loop_of(const mb_reload *r) { return mb_runtime_loop(r->rt); }

/* A generation loaded a file: watch it from now on. */
static void watch_file(void *ud, const char *path) {
  mb_reload *r = ud;
  mb_err err;
  if (mb_filewatch_add(r->files, path, &err) != MB_OK)
    mb_log(MB_WARN, endpoint_of(r), NULL, NULL, "%s: a change will need SIGHUP to reload",
           err.msg);
}

static mb_vm *load(mb_reload *r, mb_err *err) {
  mb_vm_load how = {mb_runtime_cfg(r->rt)->time_budget, watch_file, r};
  r->loading = 1;
  mb_vm *vm = mb_vm_open(r->rt, r->target, &how, err);
  r->loading = 0;
  return vm;
}

mb_reload *mb_reload_open(mb_runtime *rt, const char *target, mb_err *err) {
  mb_reload *r = calloc(1, sizeof *r);
  if (r == NULL || (r->files = mb_filewatch_new(mb_runtime_loop(rt), on_change, r)) == NULL) {
    free(r);
    mb_err_set(err, MB_ENOMEM, "out of memory");
    return NULL;
  }
  r->rt = rt;
  snprintf(r->target, sizeof r->target, "%s", target);
  ev_init(&r->debounce, on_debounced);
  ev_init(&r->drain, on_drain_over);
  ev_init(&r->drained, on_drain_over);
  ev_signal_init(&r->sighup, on_sighup, SIGHUP);
  r->debounce.data = r->drain.data = r->drained.data = r->sighup.data = r;
  if ((r->current = load(r, err)) == NULL) {
    mb_reload_free(r);
    return NULL;
  }
  mb_runtime_set_runner(rt, mb_sched_runner(), mb_vm_sched(r->current));
  r->generation = 1;
  mb_vm_set_generation(r->current, 1);
  return r;
}

void mb_reload_start(mb_reload *r, int watch_files, double drain_seconds) {
  r->started = 1;
  r->drain_seconds = drain_seconds;
  mb_vm_start_timers(r->current);
  ev_signal_start(loop_of(r), &r->sighup);
  mb_err err;
  if (watch_files && mb_filewatch_start(r->files, &err) != MB_OK)
    mb_log(MB_WARN, endpoint_of(r), NULL, NULL,
           "cannot watch the scripts (%s): reload with "
           "SIGHUP",
           err.msg);
}

/* Adds what to the list of changes the next reload's log line names. */
static void note_change(mb_reload *r, const char *what) {
  if (strstr(r->changed, what)) return;
  size_t len = strlen(r->changed);
  snprintf(r->changed + len, sizeof r->changed - len, "%s%s", len ? ", " : "", what);
}

/* (Re)starts the quiet time after which the changes noted are reloaded. */
static void debounce(mb_reload *r) {
  ev_timer_stop(loop_of(r), &r->debounce);
  ev_timer_set(&r->debounce, DEBOUNCE_SECONDS, 0.);
  ev_timer_start(loop_of(r), &r->debounce);
}

static void on_change(void *ud, const char *path) {
  mb_reload *r = ud;
  note_change(r, path ? path : "(file events were lost)");
  debounce(r);
}

static void on_debounced(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mb_reload_now(w->data, NULL);
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)loop, (void)revents;
  mb_reload_now(w->data, "SIGHUP");
}

/* A Lua error on one line: its message (a require's "error loading module ... from file
 * ...:" is followed by the real one on the next line), then its trace at debug level. */
static void report_failure(mb_reload *r, const char *changed, const mb_err *err) {
  char msg[MB_ERRLEN];
  const char *trace = strstr(err->msg, "\nstack traceback:");
  size_t len = trace ? (size_t)(trace - err->msg) : strlen(err->msg);
  snprintf(msg, sizeof msg, "%.*s", (int)len, err->msg);
  for (char *c = msg; *c; c++)
    if (*c == '\n' || *c == '\t') *c = ' ';
  mb_log(MB_ERROR, endpoint_of(r), NULL, NULL,
         "reload failed (changed: %s): %s; generation "
         "%u keeps running",
         changed, msg, r->generation);
  if (trace) mb_log(MB_DEBUG, endpoint_of(r), NULL, NULL, "reload failure%s", trace);
}

static void close_draining(mb_reload *r) {
  ev_timer_stop(loop_of(r), &r->drain);
  ev_timer_stop(loop_of(r), &r->drained);
  mb_vm_close(r->draining);
  r->draining = NULL;
}

/* The draining generation's last coroutine ended (its scheduler's idle callback, which
 * runs inside that scheduler): it is closed from the loop, not from inside. */
static void last_coroutine_ended(void *ud) {
  mb_reload *r = ud;
  ev_timer_set(&r->drained, 0., 0.);
  ev_timer_start(loop_of(r), &r->drained);
}

/* New messages and timers go to vm from now on; the running state drains. */
static void switch_to(mb_reload *r, mb_vm *vm, const char *changed, double started_at) {
  mb_vm *old = r->current;
  mb_vm_stop_timers(old);
  mb_runtime_set_runner(r->rt, mb_sched_runner(), mb_vm_sched(vm));
  r->current = vm;
  r->generation++;
  mb_vm_set_generation(vm, r->generation);
  if (r->started) mb_vm_start_timers(vm);
  mb_watchdog_set_limit(2 * mb_runtime_cfg(r->rt)->time_budget);
  unsigned live = mb_vm_live(old);
  mb_log(MB_INFO, endpoint_of(r), NULL, NULL,
         "reloaded %s (changed: %s): generation %u "
         "swapped in %.2f ms; generation %u %s %u handlers in flight",
         mb_vm_script(vm), changed, r->generation, (mb_monotonic() - started_at) * 1000.0,
         r->generation - 1, live ? "finishes its" : "closed with", live);
  r->draining = old;
  if (live == 0) {
    close_draining(r);
    return;
  }
  mb_sched_on_idle(mb_vm_sched(old), last_coroutine_ended, r);
  ev_timer_set(&r->drain, r->drain_seconds, 0.);
  ev_timer_start(loop_of(r), &r->drain);
}

/* moonbus_reloads_total{result} (metrics.h). */
static void count_reload(mb_reload *r, int ok) {
  mb_metrics *m = mb_runtime_metrics(r->rt);
  if (m) mb_metrics_reload(m, ok);
}

/* A reload asked for while another was loading or a state was draining. */
static void run_pending(mb_reload *r) {
  if (!r->pending || r->stopped) return;
  r->pending = 0;
  debounce(r);
}

void mb_reload_now(mb_reload *r, const char *why) {
  if (r->stopped) {
    mb_log(MB_INFO, endpoint_of(r), NULL, NULL, "not reloading (%s): the host is stopping",
           why ? why : "a change");
    return;
  }
  if (why) note_change(r, why);
  if (r->loading || r->draining) {
    r->pending = 1;
    if (r->draining)
      mb_log(MB_INFO, endpoint_of(r), NULL, NULL,
             "reload waits until generation %u has "
             "finished its %u handlers in flight",
             r->generation - 1, mb_vm_live(r->draining));
    return;
  }
  ev_timer_stop(loop_of(r), &r->debounce);
  double started_at = mb_monotonic();
  char changed[sizeof r->changed];
  snprintf(changed, sizeof changed, "%s", r->changed[0] ? r->changed : "nothing");
  r->changed[0] = '\0'; /* changes from here on are for the next reload */
  mb_err err;
  mb_vm *vm = NULL;
  if (mb_runtime_stage(r->rt) != MB_OK) mb_err_set(&err, MB_ENOMEM, "out of memory");
  else if ((vm = load(r, &err)) == NULL) mb_runtime_unstage(r->rt);
  else if (mb_runtime_adopt(r->rt, &err) != MB_OK) {
    mb_vm_close(vm);
    vm = NULL;
  }
  if (vm) switch_to(r, vm, changed, started_at);
  else report_failure(r, changed, &err);
  count_reload(r, vm != NULL);
  if (r->draining == NULL) run_pending(r);
}

/* The draining generation closes: its coroutines ended, or its time ran out. */
static void drain_done(mb_reload *r) {
  unsigned live = mb_vm_live(r->draining);
  if (live)
    mb_log(MB_WARN, endpoint_of(r), NULL, NULL,
           "generation %u still had %u handlers in flight "
           "after %.0f s: closed; their messages go back to the queue",
           r->generation - 1, live, r->drain_seconds);
  else
    mb_log(MB_INFO, endpoint_of(r), NULL, NULL, "generation %u finished its handlers: closed",
           r->generation - 1);
  close_draining(r);
  run_pending(r);
}

/* r->drained (its last coroutine ended) or r->drain (its deadline) fired. */
static void on_drain_over(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  drain_done(w->data);
}

void mb_reload_stop(mb_reload *r) {
  if (r == NULL) return;
  r->stopped = 1;
  mb_filewatch_stop(r->files);
  ev_timer_stop(loop_of(r), &r->debounce);
  /* SIGHUP stays caught (and ignored) while the host drains: its default ends the process */
  if (r->current) mb_vm_stop_timers(r->current); /* a draining state's stopped at the swap */
}

void mb_reload_free(mb_reload *r) {
  if (r == NULL) return;
  mb_reload_stop(r);
  ev_signal_stop(loop_of(r), &r->sighup);
  if (r->draining) close_draining(r);
  mb_vm_close(r->current);
  mb_filewatch_free(r->files);
  free(r);
}

mb_vm *mb_reload_current(const mb_reload *r) { return r->current; }
unsigned mb_reload_generation(const mb_reload *r) { return r->generation; }
