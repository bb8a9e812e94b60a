/* watchdog.c — see watchdog.h. One per process: the host's run command starts it; module
 * mode (busted) never does, and enter/leave then only count. A bounded stretch has a thread
 * of its own for its duration (closing a state is rare: a reload, the shutdown). */
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define BOUND_EXIT 70 /* EX_SOFTWARE: the process ended itself, stuck in a script */

static atomic_llong entered_ms; /* monotonic ms of the outermost enter, 0 outside */
static int depth;
static char what_now[200]; /* guarded by what_lock */
static char endpoint_now[256];
static pthread_mutex_t what_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_llong limit_ms; /* a reload may change it while the thread reads it */
static pthread_t thread;
static atomic_int running;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mb_watchdog_enter(const char *endpoint, const char *what) {
  if (depth++ > 0 || !atomic_load(&running)) return;
  pthread_mutex_lock(&what_lock);
  snprintf(what_now, sizeof what_now, "%s", what ? what : "a handler");
  snprintf(endpoint_now, sizeof endpoint_now, "%s", endpoint ? endpoint : "");
  pthread_mutex_unlock(&what_lock);
  atomic_store(&entered_ms, now_ms());
}

void mb_watchdog_leave(void) {
  if (--depth == 0) atomic_store(&entered_ms, 0);
}

static void fire(long long limit) {
  char what[sizeof what_now], endpoint[sizeof endpoint_now];
  pthread_mutex_lock(&what_lock);
  snprintf(what, sizeof what, "%s", what_now);
  snprintf(endpoint, sizeof endpoint, "%s", endpoint_now);
  pthread_mutex_unlock(&what_lock);
  mb_log(MB_ERROR, endpoint[0] ? endpoint : NULL, NULL, NULL,
         "watchdog: %s has run for %.0f s without returning to the loop: it is stuck inside "
         "a C function (os.execute, a blocking read) or a __gc finalizer, which the time "
         "budget cannot interrupt: ending the process; its message comes back and is parked "
         "after max_deliveries such ends",
         what, (double)limit / 1000);
  abort();
}

static void *watch(void *arg) {
  (void)arg;
  while (atomic_load(&running)) {
    struct timespec pause = {0, 200 * 1000000};
    nanosleep(&pause, NULL);
    long long since = atomic_load(&entered_ms);
    long long limit = atomic_load(&limit_ms);
    if (since && now_ms() - since > limit) fire(limit);
  }
  return NULL;
}

int mb_watchdog_start(double limit) {
  if (limit <= 0 || atomic_load(&running)) return 0;
  mb_watchdog_set_limit(limit);
  atomic_store(&running, 1);
  if (pthread_create(&thread, NULL, watch, NULL) != 0) {
    atomic_store(&running, 0);
    return -1;
  }
  return 0;
}

void mb_watchdog_set_limit(double limit) {
  if (limit > 0) atomic_store(&limit_ms, (long long)(limit * 1000));
}

void mb_watchdog_stop(void) {
  if (!atomic_exchange(&running, 0)) return;
  pthread_join(thread, NULL);
}

/* --- a bounded stretch ------------------------------------------------------------- */

static struct {
  pthread_mutex_t lock;
  pthread_cond_t done_cond;
  pthread_t thread;
  int active, done;
  double seconds;
  struct timespec deadline; /* CLOCK_MONOTONIC */
  char endpoint[256], what[300];
} bound = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *guard(void *arg) {
  (void)arg;
  pthread_mutex_lock(&bound.lock);
  int rc = 0;
  while (!bound.done && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&bound.done_cond, &bound.lock, &bound.deadline);
  int expired = !bound.done;
  pthread_mutex_unlock(&bound.lock);
  if (!expired) return NULL;
  mb_log(MB_ERROR, bound.endpoint[0] ? bound.endpoint : NULL, NULL, NULL,
         "%s has run for %.0f s: a __gc finalizer of the script runs outside the time budget "
         "and does not end: ending the process",
         bound.what, bound.seconds);
  _exit(BOUND_EXIT);
}

static int init_cond(void) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0) return -1;
  int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(&bound.done_cond, &attr);
  pthread_condattr_destroy(&attr);
  return rc == 0 ? 0 : -1;
}

int mb_watchdog_bound(double seconds, const char *endpoint, const char *what) {
  if (bound.active || init_cond() != 0) return -1;
  snprintf(bound.endpoint, sizeof bound.endpoint, "%s", endpoint ? endpoint : "");
  snprintf(bound.what, sizeof bound.what, "%s", what);
  bound.seconds = seconds;
  bound.done = 0;
  clock_gettime(CLOCK_MONOTONIC, &bound.deadline);
  bound.deadline.tv_sec += (time_t)seconds;
  bound.deadline.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
  if (bound.deadline.tv_nsec >= 1000000000L) {
    bound.deadline.tv_sec++;
    bound.deadline.tv_nsec -= 1000000000L;
  }
  if (pthread_create(&bound.thread, NULL, guard, NULL) != 0) {
    pthread_cond_destroy(&bound.done_cond);
    return -1;
  }
  bound.active = 1;
  return 0;
}

void mb_watchdog_unbound(void) {
  if (!bound.active) return;
  pthread_mutex_lock(&bound.lock);
  bound.done = 1;
  pthread_cond_signal(&bound.done_cond);
  pthread_mutex_unlock(&bound.lock);
  pthread_join(bound.thread, NULL);
  pthread_cond_destroy(&bound.done_cond);
  bound.active = 0;
}
