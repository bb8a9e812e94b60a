/* sqlite_files.c — the SQLite transport's files on disk (see sqlite.c): the folder, the
 * database file (its -wal and -shm take its mode: SQLite creates them so) and the bell.
 * Every message lives in them, so they are created private — folder 0700, files 0600 —
 * whatever the umask, or with the mode of the URL's ?mode=0NNN to share a bus with a group
 * (0660: files 0660, folder 0770). The bell is opened without following a symbolic link
 * (a link planted there must not make the host overwrite another file) and must be a
 * regular file of one link. While a host runs, the database file's identity (device and
 * inode) is checked every few seconds and when its folder changes: a file deleted or
 * replaced under the host is an error in the log, naming the path.
 * Never: changes the mode of a file or folder it did not create (an old, wider one is
 * reported), or follows a link to the bell. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "transport/sqlite_internal.h"

int sq_parse_mode(const char *text, mode_t *out) {
  size_t n = strspn(text, "01234567");
  if (n < 3 || n > 4 || text[n] != '\0') return MB_EINVAL;
  unsigned long mode = strtoul(text, NULL, 8);
  if ((mode & 0600) != 0600 || (mode & ~0666ul) != 0) return MB_EINVAL;
  *out = (mode_t)mode;
  return MB_OK;
}

/* The folder's mode for a file mode: search (x) wherever the file may be read. */
static mode_t dir_mode(mode_t mode) { return mode | ((mode & 0444) >> 2); }

/* Creates the missing folders of dir with mode (exactly: chmod undoes the umask). */
static int mkdir_p(const char *dir, mode_t mode, mb_err *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; p++) {
    char c = *p;
    if (c != '/' && c != '\0') continue;
    *p = '\0';
    if (mkdir(path, mode) == 0) {
      if (chmod(path, mode) != 0)
        return mb_err_set(err, MB_EIO, "cannot set the mode of folder %s: %s", path,
                          strerror(errno));
    } else if (errno != EEXIST) {
      return mb_err_set(err, MB_EIO, "cannot create folder %s: %s", path, strerror(errno));
    }
    *p = c;
    if (c == '\0') return MB_OK;
  }
}

/* Creates path with exactly mode if it does not exist: 1 created, 0 it was there, or an
 * error. Never through a symbolic link. */
static int create_file(const char *path, mode_t mode, mb_err *err) {
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0 && errno == EEXIST) return 0;
  if (fd < 0) return mb_err_set(err, MB_EIO, "cannot create %s: %s", path, strerror(errno));
  int rc = fchmod(fd, mode);
  int e = errno;
  close(fd);
  if (rc != 0) return mb_err_set(err, MB_EIO, "cannot set the mode of %s: %s", path, strerror(e));
  return 1;
}

/* An existing database that others may read than the mode allows (an older moonbus made
 * it 0644): say so once, change nothing. */
static void report_wider(const sqlite_transport *t) {
  struct stat st;
  if (stat(t->path, &st) != 0 || (st.st_mode & 0777 & ~t->mode) == 0) return;
  mb_log(MB_WARN, NULL, NULL, NULL,
         "sqlite %s has mode %04o: users beyond the ?mode= of its URL (%04o) can read the "
         "messages in it; chmod %04o it (and its -wal, -shm and -bell files)",
         t->path, (unsigned)(st.st_mode & 0777), (unsigned)t->mode, (unsigned)t->mode);
}

int sq_prepare_files(sqlite_transport *t, mb_err *err) {
  int rc = mkdir_p(t->dir, dir_mode(t->mode), err);
  if (rc != MB_OK) return rc;
  int created = create_file(t->path, t->mode, err);
  if (created < 0) return created;
  if (!created) report_wider(t);
  return MB_OK;
}

/* Why the opened bell will not do, or NULL; a bell just created gets mode (0: leave it). */
static const char *bell_problem(int fd, mode_t mode) {
  struct stat st;
  if (fstat(fd, &st) != 0) return strerror(errno);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (st.st_nlink != 1) return "a file with other names (hard links)";
  if (mode && fchmod(fd, mode) != 0) return strerror(errno);
  return NULL;
}

int sq_open_bell(sqlite_transport *t, mb_err *err) {
  char bell[PATH_MAX];
  snprintf(bell, sizeof bell, "%s-bell", t->path);
  int flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK; /* a FIFO must not block */
  int fd = open(bell, flags | O_CREAT | O_EXCL, t->mode);
  int created = fd >= 0;
  if (fd < 0 && errno == EEXIST) fd = open(bell, flags);
  if (fd < 0 && errno == ELOOP)
    return mb_err_set(err, MB_EIO,
                      "%s is a symbolic link: moonbus does not write through "
                      "one (remove it; the bus makes its own)",
                      bell);
  if (fd < 0) return mb_err_set(err, MB_EIO, "cannot open %s: %s", bell, strerror(errno));
  const char *why = bell_problem(fd, created ? t->mode : 0);
  if (why) {
    close(fd);
    return mb_err_set(err, MB_EIO, "refusing %s: %s (remove it; the bus makes its own)", bell,
                      why);
  }
  t->bell_fd = fd;
  return MB_OK;
}

void sq_remember_file(sqlite_transport *t) {
  struct stat st;
  if (stat(t->path, &st) != 0) return;
  t->file_dev = st.st_dev;
  t->file_ino = st.st_ino;
  t->file_known = 1;
}

void sq_check_file(sqlite_transport *t) {
  struct stat st;
  if (!t->file_known || t->file_lost) return;
  int gone = stat(t->path, &st) != 0;
  if (!gone && st.st_dev == t->file_dev && st.st_ino == t->file_ino) return;
  t->file_lost = 1;
  mb_log(MB_ERROR, t->queue, NULL, NULL,
         "sqlite %s was %s while this host uses it: this host goes on with the old file, "
         "which no other process sees any more (messages sent or received from now on are "
         "not shared); stop the hosts of this bus and restore the file",
         t->path, gone ? "deleted" : "replaced by another file");
}

void sq_on_file_check(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  sq_check_file(w->data);
}
