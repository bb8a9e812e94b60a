/* watchdog.c — see watchdog.h. One per process: the host's run command starts it; module
 * mode (busted) never does, and enter/leave then only count. */
#include "watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

static atomic_llong entered_ms; /* monotonic ms of the outermost enter, 0 outside */
static int depth;
static char what_now[200]; /* guarded by what_lock */
static pthread_mutex_t what_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_llong limit_ms; /* a reload may change it while the thread reads it */
static pthread_t thread;
static atomic_int running;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mb_watchdog_enter(const char *what) {
  if (depth++ > 0 || !atomic_load(&running)) return;
  pthread_mutex_lock(&what_lock);
  snprintf(what_now, sizeof what_now, "%s", what ? what : "a handler");
  pthread_mutex_unlock(&what_lock);
  atomic_store(&entered_ms, now_ms());
}

void mb_watchdog_leave(void) {
  if (--depth == 0) atomic_store(&entered_ms, 0);
}

static void *watch(void *arg) {
  (void)arg;
  while (atomic_load(&running)) {
    struct timespec pause = {0, 200 * 1000000};
    nanosleep(&pause, NULL);
    long long since = atomic_load(&entered_ms);
    long long limit = atomic_load(&limit_ms);
    if (since && now_ms() - since > limit) {
      char what[sizeof what_now];
      pthread_mutex_lock(&what_lock);
      snprintf(what, sizeof what, "%s", what_now);
      pthread_mutex_unlock(&what_lock);
      mb_log(MB_ERROR, NULL, NULL, NULL, "watchdog: %s has run for %.0f s without returning "
             "to the loop (stuck inside a C function?): ending the process; its message comes "
             "back and is parked after max_deliveries such ends", what, (double)limit / 1000);
      abort();
    }
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
