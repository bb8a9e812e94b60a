/* filewatch.c — see filewatch.h. One inotify descriptor on the loop; one watch per
 * directory holding a watched file (the kernel gives the same watch descriptor for a
 * directory added twice). An event names a directory and a file in it: it is reported
 * when that pair is one of ours.
 * Never: debounces (the caller decides what a burst of writes means). */
#include "filewatch.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR)

typedef struct watched {
  char *path;       /* as added */
  const char *base; /* its last component, inside path */
  int wd;           /* the directory's watch, -1 until watched */
} watched;

struct mb_filewatch {
  struct ev_loop *loop;
  mb_filewatch_fn fn;
  void *ud;
  int fd; /* inotify, -1 when stopped */
  ev_io io;
  watched *files;
  size_t n, cap;
};

static void on_events(struct ev_loop *loop, ev_io *io, int revents);

mb_filewatch *mb_filewatch_new(struct ev_loop *loop, mb_filewatch_fn fn, void *ud) {
  mb_filewatch *w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  w->loop = loop;
  w->fn = fn;
  w->ud = ud;
  w->fd = -1;
  ev_init(&w->io, on_events);
  w->io.data = w;
  return w;
}

/* The directory of f, watched. */
static int watch_dir(mb_filewatch *w, watched *f, mb_err *err) {
  char dir[4096];
  size_t len = (size_t)(f->base - f->path);
  if (len == 0) strcpy(dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", (int)(len > 1 ? len - 1 : 1), f->path);
  f->wd = inotify_add_watch(w->fd, dir, WATCH_EVENTS);
  if (f->wd < 0)
    return mb_err_set(err, MB_EIO, "cannot watch directory %s for changes to %s: %s", dir,
                      f->path, strerror(errno));
  return MB_OK;
}

int mb_filewatch_add(mb_filewatch *w, const char *path, mb_err *err) {
  for (size_t i = 0; i < w->n; i++)
    if (strcmp(w->files[i].path, path) == 0) return MB_OK;
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 8;
    watched *grown = realloc(w->files, cap * sizeof *grown);
    if (grown == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
    w->files = grown;
    w->cap = cap;
  }
  watched *f = &w->files[w->n];
  if ((f->path = strdup(path)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  const char *slash = strrchr(f->path, '/');
  f->base = slash ? slash + 1 : f->path;
  f->wd = -1;
  w->n++;
  return w->fd >= 0 ? watch_dir(w, f, err) : MB_OK;
}

int mb_filewatch_start(mb_filewatch *w, mb_err *err) {
  if (w->fd >= 0) return MB_OK;
  w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->fd < 0) return mb_err_set(err, MB_EIO, "inotify: %s", strerror(errno));
  int rc = MB_OK;
  for (size_t i = 0; i < w->n && rc == MB_OK; i++) rc = watch_dir(w, &w->files[i], err);
  if (rc != MB_OK) {
    mb_filewatch_stop(w);
    return rc;
  }
  ev_io_set(&w->io, w->fd, EV_READ);
  ev_io_start(w->loop, &w->io);
  return MB_OK;
}

void mb_filewatch_stop(mb_filewatch *w) {
  if (w == NULL || w->fd < 0) return;
  ev_io_stop(w->loop, &w->io);
  close(w->fd); /* drops every watch */
  w->fd = -1;
  for (size_t i = 0; i < w->n; i++) w->files[i].wd = -1;
}

void mb_filewatch_free(mb_filewatch *w) {
  if (w == NULL) return;
  mb_filewatch_stop(w);
  for (size_t i = 0; i < w->n; i++) free(w->files[i].path);
  free(w->files);
  free(w);
}

unsigned mb_filewatch_count(const mb_filewatch *w) { return (unsigned)w->n; }

static void report(mb_filewatch *w, const struct inotify_event *e) {
  if (e->mask & IN_Q_OVERFLOW) {
    w->fn(w->ud, NULL);
    return;
  }
  if (e->len == 0) return;
  for (size_t i = 0; i < w->n; i++)
    if (w->files[i].wd == e->wd && strcmp(w->files[i].base, e->name) == 0)
      w->fn(w->ud, w->files[i].path);
}

static void on_events(struct ev_loop *loop, ev_io *io, int revents) {
  (void)loop, (void)revents;
  mb_filewatch *w = io->data;
  _Alignas(struct inotify_event) char buf[8192];
  ssize_t n;
  while ((n = read(w->fd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *e = (const struct inotify_event *)p;
      report(w, e);
      p += sizeof *e + e->len;
    }
  }
}
