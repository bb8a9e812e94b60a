/* claim_file.c — the directory claim store (databus = "file:///dir"; see claim.h): one
 * file per claim, named by its key. A put writes ".tmp-KEY", fsyncs it, sets its time,
 * renames it to KEY and fsyncs the directory: a reader sees the whole body or no file.
 * The file's mtime is when its retention began (put, touch). A pin is a hard link
 * ".pins/KEY.UUID" to it, so the link count is the pin count, kept by the file system
 * across every host that shares the directory; unpin removes one link. The sweep removes
 * files with one link whose time is older than the cutoff (and stale ".tmp-" files).
 * Never: reads a file whole into memory it does not hand to the caller; follows a key
 * that is not a plain name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "claim.h"
#include "ids.h"

#define PINS ".pins"
#define TMP_PREFIX ".tmp-"

typedef struct file_store {
  mb_claim_store base;
  char *dir;
  int dirfd;
} file_store;

/* A key is a plain file name: letters, digits, '-' (a UUID), never "." or a path. */
static int bad_key(const char *key) {
  size_t n = strlen(key);
  return n == 0 || n > MB_CLAIM_KEY_MAX || strspn(key, "0123456789abcdefABCDEF-") != n;
}

static int io_error(const file_store *f, const char *what, const char *key, mb_err *err) {
  int e = errno;
  return mb_err_set(err, e == ENOENT ? MB_ENOTFOUND : MB_EIO, "%s: %s %s: %s", f->base.where,
                    what, key, strerror(e));
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n > (1u << 20) ? (1u << 20) : n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int set_time(int fd, int64_t usec) {
  struct timespec ts[2];
  ts[0].tv_sec = (time_t)(usec / 1000000);
  ts[0].tv_nsec = (long)(usec % 1000000) * 1000;
  ts[1] = ts[0];
  return futimens(fd, ts);
}

static int file_put(mb_claim_store *s, const char *key, const char *body, size_t len,
                    const char *sha256, int64_t not_before_usec, mb_err *err) {
  file_store *f = (file_store *)s;
  (void)sha256; /* the message carries it; the file is the body alone */
  char tmp[MB_CLAIM_KEY_MAX + sizeof TMP_PREFIX];
  if (bad_key(key)) return mb_err_set(err, MB_EINVAL, "claim key '%s' is not a plain name", key);
  snprintf(tmp, sizeof tmp, TMP_PREFIX "%s", key);
  int fd = openat(f->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return io_error(f, "cannot create", tmp, err);
  int ok = write_all(fd, body, len) == 0 && fsync(fd) == 0 && set_time(fd, not_before_usec) == 0;
  int rc = ok ? MB_OK : io_error(f, "cannot write", tmp, err);
  if (close(fd) != 0 && rc == MB_OK) rc = io_error(f, "cannot write", tmp, err);
  if (rc == MB_OK && renameat(f->dirfd, tmp, f->dirfd, key) != 0)
    rc = io_error(f, "cannot rename", tmp, err);
  if (rc == MB_OK && fsync(f->dirfd) != 0)
    rc = io_error(f, "cannot sync the folder for", key, err);
  if (rc != MB_OK) (void)unlinkat(f->dirfd, tmp, 0);
  return rc;
}

static int read_all(int fd, char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n > (1u << 20) ? (1u << 20) : n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int file_get(mb_claim_store *s, const char *key, size_t max, char **body, size_t *len,
                    mb_err *err) {
  file_store *f = (file_store *)s;
  struct stat st;
  if (bad_key(key)) return mb_err_set(err, MB_ENOTFOUND, "no claim '%s'", key);
  int fd = openat(f->dirfd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return io_error(f, "cannot open", key, err);
  int rc = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? MB_OK
                                                      : io_error(f, "cannot stat", key, err);
  if (rc == MB_OK && (size_t)st.st_size > max)
    rc = mb_err_set(err, MB_ETOOBIG, "claim %s is %lld bytes", key, (long long)st.st_size);
  char *buf = rc == MB_OK ? malloc((size_t)st.st_size + 1) : NULL;
  if (rc == MB_OK && buf == NULL)
    rc = mb_err_set(err, MB_ENOMEM, "out of memory reading %s", key);
  if (rc == MB_OK && read_all(fd, buf, (size_t)st.st_size) != 0)
    rc = io_error(f, "cannot read", key, err);
  close(fd);
  if (rc != MB_OK) {
    free(buf);
    return rc;
  }
  buf[st.st_size] = '\0';
  *body = buf;
  *len = (size_t)st.st_size;
  return MB_OK;
}

/* Removes one pin link of key; MB_OK if there was none. */
static int unpin_one(file_store *f, const char *key, mb_err *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/" PINS, f->dir);
  DIR *d = opendir(path);
  if (d == NULL) return errno == ENOENT ? MB_OK : io_error(f, "cannot open", PINS, err);
  size_t n = strlen(key);
  int rc = MB_OK;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strncmp(e->d_name, key, n) != 0 || e->d_name[n] != '.') continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0 || errno == ENOENT) break;
    rc = io_error(f, "cannot remove the pin", e->d_name, err);
    break;
  }
  closedir(d);
  return rc;
}

static int file_pin(mb_claim_store *s, const char *key, int delta, mb_err *err) {
  file_store *f = (file_store *)s;
  if (bad_key(key)) return MB_OK;
  if (delta < 0) return unpin_one(f, key, err);
  char link[MB_CLAIM_KEY_MAX + MB_ID_LEN + sizeof PINS + 4], id[MB_ID_LEN + 1];
  mb_uuidv7(id);
  snprintf(link, sizeof link, PINS "/%s.%s", key, id);
  if (mkdirat(f->dirfd, PINS, 0700) != 0 && errno != EEXIST)
    return io_error(f, "cannot create", PINS, err);
  if (linkat(f->dirfd, key, f->dirfd, link, 0) != 0)
    return errno == ENOENT ? MB_OK : io_error(f, "cannot pin", key, err);
  return MB_OK;
}

static int file_touch(mb_claim_store *s, const char *key, int64_t usec, mb_err *err) {
  file_store *f = (file_store *)s;
  if (bad_key(key)) return MB_OK;
  struct timespec ts[2] = {{(time_t)(usec / 1000000), (long)(usec % 1000000) * 1000}};
  ts[1] = ts[0];
  if (utimensat(f->dirfd, key, ts, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT)
    return io_error(f, "cannot touch", key, err);
  return MB_OK;
}

/* 1 if the entry name (a claim, or a writer's leftover) is one the sweep may remove. */
static int sweepable(const char *name, const struct stat *st, int64_t before_usec) {
  int tmp = strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
  if ((!tmp && bad_key(name)) || !S_ISREG(st->st_mode) || (!tmp && st->st_nlink > 1)) return 0;
  int64_t at = (int64_t)st->st_mtim.tv_sec * 1000000 + st->st_mtim.tv_nsec / 1000;
  return at < before_usec;
}

static int file_sweep(mb_claim_store *s, int64_t before_usec, size_t *removed, mb_err *err) {
  file_store *f = (file_store *)s;
  *removed = 0;
  DIR *d = opendir(f->dir);
  if (d == NULL) return io_error(f, "cannot open", "the folder", err);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (sweepable(e->d_name, &st, before_usec) && unlinkat(dirfd(d), e->d_name, 0) == 0)
      (*removed)++;
  }
  closedir(d);
  return MB_OK;
}

static void file_close(mb_claim_store *s) {
  file_store *f = (file_store *)s;
  if (f->dirfd >= 0) close(f->dirfd);
  free(f->dir);
  free(f);
}

static const mb_claim_store_ops file_ops = {file_put,   file_get,   file_pin,
                                            file_touch, file_sweep, file_close};

int mb_claim_file_open(mb_claim_store **out, const char *url, mb_err *err) {
  *out = NULL;
  if (strncmp(url, "file://", 7) != 0 || url[7] == '\0')
    return mb_err_set(err, MB_EINVAL, "databus '%s' is not a file:///dir URL", url);
  file_store *f = calloc(1, sizeof *f);
  if (f == NULL || (f->dir = strdup(url + 7)) == NULL) {
    free(f);
    return mb_err_set(err, MB_ENOMEM, "out of memory");
  }
  f->base.ops = &file_ops;
  snprintf(f->base.where, sizeof f->base.where, "%.250s", url);
  if (mkdir(f->dir, 0700) != 0 && errno != EEXIST) f->dirfd = -1;
  else f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (f->dirfd < 0) {
    int rc = mb_err_set(err, MB_EIO, "databus %s: cannot open the folder %s: %s", url, f->dir,
                        strerror(errno));
    file_close(&f->base);
    return rc;
  }
  *out = &f->base;
  return MB_OK;
}
