/* paths.c — where moonbus finds its own files (see paths.h): looks next to the running
 * binary first (an installed tree), then at the build tree compiled in. Each answer is
 * worked out once and kept in a static buffer. Never: allocates or opens a file. */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MOONBUS_MODULES_DIR
#define MOONBUS_MODULES_DIR "modules"
#endif
#ifndef MOONBUS_CMODULE_DIR
#define MOONBUS_CMODULE_DIR "build"
#endif

const char *mb_paths_self(void) {
  static char self[PATH_MAX];
  if (self[0] == '\0') {
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = '\0';
  }
  return self;
}

/* If the binary's folder + rel + probe exists, its canonical folder (binary's folder + rel)
 * in out, and 1; else 0. */
static int near_self(const char *rel, const char *probe, char *out, size_t size) {
  const char *self = mb_paths_self();
  char dir[PATH_MAX], candidate[PATH_MAX + 64], real[PATH_MAX];
  struct stat st;
  if (self == NULL) return 0;
  snprintf(dir, sizeof dir, "%s", self);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) return 0;
  *slash = '\0';
  int n = snprintf(candidate, sizeof candidate, "%s/%s/%s", dir, rel, probe);
  if (n < 0 || (size_t)n >= sizeof candidate || stat(candidate, &st) != 0) return 0;
  snprintf(candidate, sizeof candidate, "%s/%s", dir, rel);
  if (realpath(candidate, real) == NULL) return 0;
  snprintf(out, size, "%s", real);
  return 1;
}

const char *mb_paths_modules(void) {
  static char dir[PATH_MAX];
  const char *env = getenv("MOONBUS_MODULES");
  if (env && *env) return env;
  if (dir[0] == '\0' && !near_self("../share/lua/5.4", "moonbus/testing.lua", dir, sizeof dir))
    snprintf(dir, sizeof dir, "%s", MOONBUS_MODULES_DIR);
  return dir;
}

const char *mb_paths_cmodules(void) {
  static char dir[PATH_MAX];
  if (dir[0] == '\0' && !near_self("../lib/lua/5.4", "moonbus.so", dir, sizeof dir) &&
      !near_self(".", "moonbus.so", dir, sizeof dir))
    snprintf(dir, sizeof dir, "%s", MOONBUS_CMODULE_DIR);
  return dir;
}
