/* unit.h — the smallest test harness: CHECK records a result, each test prints one TAP
 * line ("ok - name" / "not ok - name"), unit_done() prints the totals and returns the exit
 * code. scripts/test.sh counts the TAP lines of every unit binary. */
#ifndef MOONBUS_UNIT_H
#define MOONBUS_UNIT_H

#include <stdio.h>

static int unit_passed, unit_failed, unit_current_failed;

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stdout, "#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
      unit_current_failed = 1;                                                                   \
    }                                                                                            \
  } while (0)

#define RUN(test_fn)                                                                             \
  do {                                                                                           \
    unit_current_failed = 0;                                                                     \
    test_fn();                                                                                   \
    if (unit_current_failed) {                                                                   \
      unit_failed++;                                                                             \
      printf("not ok - %s\n", #test_fn);                                                         \
    } else {                                                                                     \
      unit_passed++;                                                                             \
      printf("ok - %s\n", #test_fn);                                                             \
    }                                                                                            \
    fflush(stdout);                                                                              \
  } while (0)

static inline int unit_done(void) {
  printf("# %d passed, %d failed\n", unit_passed, unit_failed);
  return unit_failed ? 1 : 0;
}

#endif
