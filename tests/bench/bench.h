/* bench.h — what the raw baselines of `make bench` share: a monotonic clock and the one
 * result line run.sh reads ("raw N SECONDS MSG_PER_S CPU_S_PER_1000", CPU of the whole
 * process). Header-only: each baseline is one C file. */
#ifndef MOONBUS_BENCH_H
#define MOONBUS_BENCH_H

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_report(long n, double seconds) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  printf("raw %ld %.3f %.0f %.4f\n", n, seconds, (double)n / seconds, cpu * 1000 / (double)n);
}

#endif
