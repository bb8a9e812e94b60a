/* test_filewatch.c — filewatch.c on real files in a fresh folder: a write in place, a save
 * by rename (a new inode), a file added after the start, an unwatched neighbour, and
 * stop/free. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filewatch.h"
#include "unit.h"

static char dir[] = "/tmp/moonbus-watch-XXXXXX";
static struct ev_loop *loop;
static char seen[8][512];
static int n_seen;

static void on_change(void *ud, const char *path) {
  (void)ud;
  if (n_seen < 8) snprintf(seen[n_seen++], sizeof seen[0], "%s", path ? path : "(overflow)");
}

static void path_of(char *out, size_t len, const char *name) {
  snprintf(out, len, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text) {
  char path[256];
  path_of(path, sizeof path, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

/* Writes name.tmp and renames it over name, as editors save. */
static void save_by_rename(const char *name, const char *text) {
  char tmp[256], path[256], tmp_name[128];
  snprintf(tmp_name, sizeof tmp_name, "%s.tmp", name);
  write_file(tmp_name, text);
  path_of(tmp, sizeof tmp, tmp_name);
  path_of(path, sizeof path, name);
  rename(tmp, path);
}

/* Runs the loop until a change is reported or 2 s pass. */
static void settle(void) {
  for (int i = 0; i < 200 && n_seen == 0; i++) {
    ev_run(loop, EVRUN_NOWAIT);
    usleep(10000);
  }
  ev_run(loop, EVRUN_NOWAIT);
}

static int saw(const char *name) {
  char path[256];
  path_of(path, sizeof path, name);
  for (int i = 0; i < n_seen; i++)
    if (strcmp(seen[i], path) == 0) return 1;
  return 0;
}

static void test_writes_and_renames_are_reported(void) {
  mb_err err;
  char a[256], b[256];
  write_file("a.lua", "return 1\n");
  write_file("b.lua", "return 2\n");
  path_of(a, sizeof a, "a.lua");
  path_of(b, sizeof b, "b.lua");
  mb_filewatch *w = mb_filewatch_new(loop, on_change, NULL);
  CHECK(mb_filewatch_add(w, a, &err) == MB_OK);
  CHECK(mb_filewatch_add(w, a, &err) == MB_OK); /* twice: once */
  CHECK(mb_filewatch_count(w) == 1);
  CHECK(mb_filewatch_start(w, &err) == MB_OK);
  n_seen = 0;
  write_file("a.lua", "return 3\n");
  settle();
  CHECK(n_seen >= 1 && saw("a.lua"));
  n_seen = 0;
  save_by_rename("a.lua", "return 4\n");
  settle();
  CHECK(n_seen >= 1 && saw("a.lua"));
  n_seen = 0;
  write_file("b.lua", "return 5\n"); /* a neighbour that is not watched */
  write_file("notes.txt", "x\n");
  settle();
  CHECK(n_seen == 0);
  CHECK(mb_filewatch_add(w, b, &err) == MB_OK); /* added while watching */
  save_by_rename("b.lua", "return 6\n");
  settle();
  CHECK(saw("b.lua") && !saw("a.lua"));
  mb_filewatch_stop(w);
  n_seen = 0;
  write_file("a.lua", "return 7\n");
  settle();
  CHECK(n_seen == 0);
  mb_filewatch_free(w);
}

static void test_a_missing_directory_is_an_error_that_names_it(void) {
  mb_err err;
  mb_filewatch *w = mb_filewatch_new(loop, on_change, NULL);
  CHECK(mb_filewatch_start(w, &err) == MB_OK);
  CHECK(mb_filewatch_add(w, "/nonexistent-moonbus/endpoint.lua", &err) == MB_EIO);
  CHECK(strstr(err.msg, "/nonexistent-moonbus") != NULL);
  mb_filewatch_free(w);
}

int main(void) {
  loop = ev_loop_new(EVFLAG_AUTO);
  if (mkdtemp(dir) == NULL) return 1;
  RUN(test_writes_and_renames_are_reported);
  RUN(test_a_missing_directory_is_an_error_that_names_it);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  ev_loop_destroy(loop);
  return unit_done();
}
