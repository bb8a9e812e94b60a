/* transport.c — picks a transport by URL scheme, finds the default bus (the nearest
 * .moonbus/ folder, as git finds .git), and the helpers for the structs that cross the
 * vtable (outgoing messages, deliveries, queue names).
 * Never knows how a transport works inside; adding one is a line in `transports`. */
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/mem.h"
#include "transport/rabbitmq.h"
#include "transport/sqlite.h"
#include "url.h"

void mb_outgoing_init(mb_outgoing *m) {
  memset(m, 0, sizeof *m);
  mb_envelope_init(&m->env);
}

void mb_outgoing_free(mb_outgoing *m) {
  if (m == NULL) return;
  mb_envelope_free(&m->env);
  free(m->dest);
  free(m);
}

void mb_delivery_free(mb_delivery *d) {
  if (d == NULL) return;
  mb_envelope_free(&d->env);
  free(d->queue);
  free(d->problem);
  free(d);
}

const char *mb_queue_name_problem(const char *name) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0) return "a queue name may not be empty";
  if (len > MB_QUEUE_NAME_MAX) return "a queue name may not be longer than 255 bytes";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x21 || c > 0x7e) return "a queue name must be printable ASCII without spaces";
  }
  return NULL;
}

int mb_is_reply_address(const char *queue) {
  return queue && (strncmp(queue, MB_REPLY_QUEUE_PREFIX, strlen(MB_REPLY_QUEUE_PREFIX)) == 0 ||
                   strncmp(queue, MB_AMQP_DIRECT_REPLY_TO, MB_AMQP_DIRECT_REPLY_TO_LEN) == 0);
}

typedef struct first_copies {
  mb_delivery **out;
  size_t n, max;
} first_copies;

static int keep_copy(void *ud, mb_delivery *d) {
  first_copies *c = ud;
  c->out[c->n++] = d;
  return c->n == c->max ? MB_BROWSE_STOP : MB_BROWSE_NEXT;
}

int mb_transport_browse_first(mb_transport *t, const char *queue, size_t max, mb_delivery **out,
                              size_t *n, mb_err *err) {
  first_copies c = {out, 0, max};
  int rc = max ? t->ops->browse(t, queue, keep_copy, &c, err) : MB_OK;
  if (rc != MB_OK) {
    for (size_t i = 0; i < c.n; i++) mb_delivery_free(out[i]);
    c.n = 0;
  }
  *n = c.n;
  return rc;
}

static const struct {
  const char *scheme;
  const mb_transport_ops *ops;
} transports[] = {
    {"sqlite", &mb_sqlite_transport},
    {"amqp", &mb_rabbitmq_transport},
    {"amqps", &mb_rabbitmq_transport},
    {"mem", &mb_mem_transport}, /* in-process, for tests (transport/mem.h) */
};

static int scheme_is(const char *url, const char *scheme) {
  size_t n = strlen(scheme);
  return strncmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
}

int mb_find_moonbus_dir(const char *start, char *out, size_t len) {
  char dir[PATH_MAX];
  struct stat st;
  if (start == NULL || start[0] != '/' || strlen(start) >= sizeof dir) return 0;
  snprintf(dir, sizeof dir, "%s", start);
  for (;;) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
    int fits = snprintf(out, len, "%s%s" MB_PROJECT_DIR, dir, n > 1 ? "/" : "") < (int)len;
    if (fits && stat(out, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
    char *slash = strrchr(dir, '/');
    if (slash == NULL || n == 1) return 0; /* the root was the last to look at */
    slash[slash == dir ? 1 : 0] = '\0';
  }
}

int mb_transport_default_url(char *out, size_t len) {
  char cwd[PATH_MAX], dir[PATH_MAX + sizeof "/" MB_PROJECT_DIR];
  if (getcwd(cwd, sizeof cwd) == NULL) return MB_EIO;
  if (!mb_find_moonbus_dir(cwd, dir, sizeof dir) &&
      snprintf(dir, sizeof dir, "%s%s" MB_PROJECT_DIR, cwd, strcmp(cwd, "/") == 0 ? "" : "/") >=
          (int)sizeof dir)
    return MB_EINVAL;
  if (snprintf(out, len, "sqlite://%s/bus.db", dir) >= (int)len) return MB_EINVAL;
  return MB_OK;
}

void mb_transport_display_url(const char *url, char *out, size_t len) {
  char cwd[PATH_MAX];
  const char *path = url + strlen("sqlite://");
  if (!scheme_is(url, "sqlite") || path[0] == '/' || getcwd(cwd, sizeof cwd) == NULL) {
    mb_url_redact(url, out, len);
    return;
  }
  while (path[0] == '.' && path[1] == '/') path += 2;
  char abs[PATH_MAX + 16];
  snprintf(abs, sizeof abs, "sqlite://%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
  mb_url_redact(abs, out, len);
}

int mb_transport_must_exist(const char *url, mb_err *err) {
  if (url == NULL) url = MB_DEFAULT_TRANSPORT;
  if (!scheme_is(url, "sqlite")) return MB_OK; /* a broker says so itself */
  const char *path = url + strlen("sqlite://");
  char file[PATH_MAX];
  size_t len = strcspn(path, "?");
  if (len == 0 || len >= sizeof file) return MB_OK; /* open says what is wrong with it */
  memcpy(file, path, len);
  file[len] = '\0';
  struct stat st;
  if (stat(file, &st) == 0) return MB_OK;
  if (errno == ENOENT)
    mb_err_set(err, MB_ENOTFOUND,
               "there is no moonbus database at %s: start an endpoint first (moonbus run "
               "DIR creates it), or name the bus with --transport or $MOONBUS_TRANSPORT; this "
               "command never creates one",
               file);
  else
    mb_err_set(err, MB_EIO, "cannot read the moonbus database at %s: %s", file, strerror(errno));
  mb_url_scrub(url, err->msg, sizeof err->msg); /* a "path" may be mistyped credentials */
  return err->status;
}

/* A URL that names no transport: its scheme is shown when it is a well-formed one, and
 * nothing else of it (what follows may be a password). */
static int unknown_scheme(const char *url, mb_err *err) {
  char scheme[MB_URL_SCHEME_MAX + 1];
  if (mb_url_scheme(url, scheme, sizeof scheme))
    return mb_err_set(err, MB_EINVAL,
                      "unknown transport scheme '%s': use sqlite://PATH, "
                      "amqp:// or amqps://",
                      scheme);
  return mb_err_set(err, MB_EINVAL,
                    "the transport URL does not start with a scheme and "
                    "\"://\": use sqlite://PATH, amqp:// or amqps://");
}

int mb_transport_open(mb_transport **out, struct ev_loop *loop, const char *url,
                      const char *instance, mb_err *err) {
  if (url == NULL) url = MB_DEFAULT_TRANSPORT;
  *out = NULL;
  for (size_t i = 0; i < sizeof transports / sizeof *transports; i++) {
    if (!scheme_is(url, transports[i].scheme)) continue;
    int rc = transports[i].ops->open(out, loop, url, instance, err);
    if (rc != MB_OK) mb_url_scrub(url, err->msg, sizeof err->msg); /* whatever it quoted */
    return rc;
  }
  return unknown_scheme(url, err);
}
