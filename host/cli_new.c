/* cli_new.c — `moonbus new DIR [--name NAME]`: writes an endpoint, its contracts, a passing
 * spec and busted's configuration from the templates in moonbus's modules
 * (the .tmpl files of moonbus/templates, found like the modules: paths.h), then prints the next steps;
 * and `moonbus test [DIR]`: runs busted in DIR with moonbus's modules on the paths.
 * Never: overwrites a file (every target is checked before the first is written, and each
 * is created exclusively). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "paths.h"

#define TEMPLATE_MAX (64 * 1024)

typedef struct scaffold {
  const char *dir;  /* as given */
  const char *name; /* the endpoint's name */
} scaffold;

/* The files `new` writes: template -> path under DIR ("%s": the name). */
static const struct {
  const char *tmpl, *path;
} FILES[] = {
    {"endpoint.lua.tmpl", "endpoint.lua"},
    {"contracts.lua.tmpl", "contracts.lua"},
    {"spec.lua.tmpl", "spec/%s_spec.lua"},
    {"busted.tmpl", ".busted"},
};
#define NFILES (sizeof FILES / sizeof FILES[0])

static void target_path(const scaffold *s, size_t i, char *out, size_t size) {
  char rel[512];
  snprintf(rel, sizeof rel, FILES[i].path, s->name);
  snprintf(out, size, "%s/%s", s->dir, rel);
}

/* A name fit for a queue and a type prefix: a letter, then letters, digits, '_' or '-'. */
static int valid_name(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 100 || !((name[0] | 32) >= 'a' && (name[0] | 32) <= 'z')) return 0;
  return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Reads a template into buf (NUL-terminated); 0 or -1 with a complaint. */
static int read_template(const char *file, char *buf, size_t size) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/moonbus/templates/%s", mb_paths_modules(), file);
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "moonbus: cannot read the template %s: %s (is moonbus installed whole?)\n",
            path, strerror(errno));
    return -1;
  }
  size_t n = fread(buf, 1, size - 1, f);
  int bad = ferror(f) || !feof(f);
  fclose(f);
  buf[n] = '\0';
  if (bad) fprintf(stderr, "moonbus: cannot read the template %s (or it is over 64 KiB)\n", path);
  return bad ? -1 : 0;
}

/* The value of placeholder key ("name", "dir", "modules", "cmodules"), or NULL. */
static const char *value_of(const scaffold *s, const char *key, size_t len) {
  if (len == 4 && strncmp(key, "name", 4) == 0) return s->name;
  if (len == 3 && strncmp(key, "dir", 3) == 0) return s->dir;
  if (len == 7 && strncmp(key, "modules", 7) == 0) return mb_paths_modules();
  if (len == 8 && strncmp(key, "cmodules", 8) == 0) return mb_paths_cmodules();
  return NULL;
}

/* Writes text to f with each {{key}} replaced by its value. 0 or -1. */
static int expand(const scaffold *s, const char *text, FILE *f) {
  while (*text) {
    const char *open = strstr(text, "{{");
    const char *close = open ? strstr(open, "}}") : NULL;
    const char *value = close ? value_of(s, open + 2, (size_t)(close - open - 2)) : NULL;
    if (value == NULL) return fputs(text, f) < 0 ? -1 : 0;
    if (fwrite(text, 1, (size_t)(open - text), f) != (size_t)(open - text) || fputs(value, f) < 0)
      return -1;
    text = close + 2;
  }
  return 0;
}

/* Creates path (never over an existing file) from the template. 0 or -1. */
static int write_file(const scaffold *s, const char *tmpl, const char *path) {
  static char text[TEMPLATE_MAX];
  if (read_template(tmpl, text, sizeof text) != 0) return -1;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (f == NULL) {
    fprintf(stderr, "moonbus: cannot create %s: %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  int rc = expand(s, text, f);
  if (fclose(f) != 0) rc = -1;
  if (rc != 0) fprintf(stderr, "moonbus: cannot write %s: %s\n", path, strerror(errno));
  return rc;
}

/* mkdir -p. 0 or -1. */
static int make_dir(const char *path) {
  char buf[PATH_MAX + 8];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1;; p++) {
    char c = *p;
    if (c != '/' && c != '\0') continue;
    *p = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
      fprintf(stderr, "moonbus: cannot create the folder %s: %s\n", buf, strerror(errno));
      return -1;
    }
    *p = c;
    if (c == '\0') return 0;
  }
}

/* 0 if none of the files exists; else names each on stderr and returns -1. */
static int refuse_existing(const scaffold *s) {
  char path[PATH_MAX + 600];
  struct stat st;
  int found = 0;
  for (size_t i = 0; i < NFILES; i++) {
    target_path(s, i, path, sizeof path);
    if (lstat(path, &st) == 0) {
      fprintf(stderr, "moonbus: %s exists: moonbus new never overwrites a file\n", path);
      found = 1;
    }
  }
  return found ? -1 : 0;
}

static void print_next_steps(const scaffold *s) {
  printf(
      "created %s/endpoint.lua, %s/contracts.lua, %s/spec/%s_spec.lua and %s/.busted\n"
      "next:\n"
      "  moonbus run %s          # the endpoint (another terminal); save a change: it reloads\n"
      "  moonbus request %s %s.Greet '{\"name\":\"you\"}'\n"
      "  moonbus test %s         # its spec, with busted\n",
      s->dir, s->dir, s->dir, s->name, s->dir, s->dir, s->name, s->name, s->dir);
}

/* DIR's last component, in buf. */
static const char *base_name(const char *dir, char *buf, size_t size) {
  snprintf(buf, size, "%s", dir);
  for (size_t n = strlen(buf); n > 1 && buf[n - 1] == '/'; n--) buf[n - 1] = '\0';
  const char *slash = strrchr(buf, '/');
  return slash ? slash + 1 : buf;
}

int mb_cli_new(const char *dir, const mb_cli_opts *opts) {
  char base[PATH_MAX], path[PATH_MAX + 600];
  scaffold s = {dir, opts->name ? opts->name : base_name(dir, base, sizeof base)};
  if (!valid_name(s.name)) {
    fprintf(stderr,
            "moonbus: '%s' cannot name an endpoint (a letter, then letters, digits, _ or -): "
            "give --name NAME\n",
            s.name);
    return 2;
  }
  if (refuse_existing(&s) != 0) return 1;
  snprintf(path, sizeof path, "%s/spec", dir);
  if (make_dir(dir) != 0 || make_dir(path) != 0) return 1;
  for (size_t i = 0; i < NFILES; i++) {
    target_path(&s, i, path, sizeof path);
    if (write_file(&s, FILES[i].tmpl, path) != 0) return 1;
  }
  print_next_steps(&s);
  return 0;
}

/* Sets name to prefix followed by the variable's value, or by ";" (Lua's default path). */
static int prepend_env(const char *name, const char *prefix) {
  const char *old = getenv(name);
  char value[2 * PATH_MAX + 8192];
  int n = snprintf(value, sizeof value, "%s%s", prefix, old && *old ? old : ";");
  if (n < 0 || (size_t)n >= sizeof value) return -1;
  return setenv(name, value, 1);
}

int mb_cli_test(const char *dir) {
  char lpath[2 * PATH_MAX + 32], cpath[PATH_MAX + 16];
  const char *mods = mb_paths_modules(), *self = mb_paths_self();
  snprintf(lpath, sizeof lpath, "%s/?.lua;%s/?/init.lua;", mods, mods);
  snprintf(cpath, sizeof cpath, "%s/?.so;", mb_paths_cmodules());
  if (chdir(dir) != 0) {
    fprintf(stderr, "moonbus: cannot enter %s: %s\n", dir, strerror(errno));
    return 1;
  }
  if (prepend_env("LUA_PATH", lpath) != 0 || prepend_env("LUA_CPATH", cpath) != 0 ||
      (self && setenv("MOONBUS", self, 0) != 0) || setenv("MOONBUS_LOG", "warn", 0) != 0) {
    fprintf(stderr, "moonbus: cannot set the environment for busted\n");
    return 1;
  }
  execlp("busted", "busted", "--lua=lua5.4", (char *)NULL);
  fprintf(stderr,
          "moonbus: cannot run busted: %s (install it: apt-get install lua-busted, or "
          "luarocks --lua-version 5.4 install busted)\n",
          strerror(errno));
  return 127;
}
