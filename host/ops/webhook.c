/* webhook.c — the alert webhook (see webhook.h): a queue of alerts and a small HTTP/1.1
 * client on libev that POSTs the oldest one, reads the status line and closes.
 * One attempt: a non-blocking connect to each resolved address in turn, the request written
 * as the socket takes it, the answer read up to the end of its status line; a 5 s deadline
 * over all of it. A 2xx is delivered; anything else (another status, a refused connection,
 * the deadline, a broken answer) is retried after 1, 2, then 4 s, then counted as a failure.
 * Never: blocks (no getaddrinfo after start, no blocking socket call), shows the URL's user
 * info, or holds more than the queue bound. */
#include "ops/webhook.h"

#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "url.h"

#define MAX_ADDRS 8
#define ANSWER_MAX 512 /* enough for any status line we accept */
#define WHO "moonbus.ops"

typedef struct alert {
  struct alert *next;
  char *type, *body;
  int attempts; /* made so far */
} alert;

typedef struct addr {
  struct sockaddr_storage sa;
  socklen_t len;
  int family;
} addr;

struct mb_webhook {
  struct ev_loop *loop;
  char shown[512];
  char host_header[300], path[2048], auth[512]; /* auth: "" or "Basic ..." */
  addr addrs[MAX_ADDRS];
  size_t n_addrs;
  alert *head, *tail;
  size_t queued, max_queue;
  double timeout, first_backoff;
  unsigned long failures, delivered;
  /* the attempt in flight (head is its alert) */
  int fd, busy;
  size_t next_addr;
  char *request;
  size_t request_len, sent;
  char answer[ANSWER_MAX];
  size_t answer_len;
  char last_error[256];
  ev_io io;
  ev_timer deadline, backoff;
};

static void attempt(mb_webhook *w);

/* --- the URL ---------------------------------------------------------------------------- */

static void base64(const char *in, size_t n, char *out, size_t cap) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < cap; i += 3) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < n) v |= (unsigned char)in[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)in[i + 2];
    out[o++] = t[(v >> 18) & 63];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = '\0';
}

/* host and port of the authority a[0..n) (no user info): "h", "h:p", "[v6]", "[v6]:p". */
static int split_host(const char *a, size_t n, char *host, size_t hcap, char *port, size_t pcap) {
  const char *h = a, *after;
  size_t hlen;
  if (n > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', n);
    if (close == NULL) return -1;
    h = a + 1, hlen = (size_t)(close - h), after = close + 1;
  } else {
    const char *colon = memchr(a, ':', n);
    hlen = colon ? (size_t)(colon - a) : n;
    after = a + hlen;
  }
  size_t rest = n - (size_t)(after - a);
  if (hlen == 0 || hlen >= hcap || (rest > 0 && after[0] != ':')) return -1;
  snprintf(host, hcap, "%.*s", (int)hlen, h);
  if (rest == 0) return snprintf(port, pcap, "80") < 0 ? -1 : 0;
  size_t plen = rest - 1;
  if (plen == 0 || plen >= pcap || strspn(after + 1, "0123456789") < plen) return -1;
  snprintf(port, pcap, "%.*s", (int)plen, after + 1);
  return atoi(port) > 0 && atoi(port) <= 65535 ? 0 : -1;
}

static int bad_url(mb_webhook *w, mb_err *err, const char *why) {
  return mb_err_set(err, MB_EINVAL, "--alert-webhook %s: %s", w->shown, why);
}

/* Splits url into the Host header, the path (with its query), the Basic credentials. */
static int parse_url(mb_webhook *w, const char *url, char *host, size_t hcap, char *port,
                     size_t pcap, mb_err *err) {
  if (strncasecmp(url, "https://", 8) == 0)
    return bad_url(w, err,
                   "https:// is not supported: the webhook speaks plain http:// only (put a "
                   "TLS-terminating proxy on this machine in front of the receiver)");
  if (strncasecmp(url, "http://", 7) != 0)
    return bad_url(w, err, "only http://HOST[:PORT][/PATH] is supported");
  const char *a = url + 7;
  size_t n = strcspn(a, "/?#");
  const char *at = memchr(a, '@', n);
  if (at) {
    base64(a, (size_t)(at - a), w->auth + 6, sizeof w->auth - 6);
    memcpy(w->auth, "Basic ", 6);
    n -= (size_t)(at + 1 - a);
    a = at + 1;
  }
  if (split_host(a, n, host, hcap, port, pcap) != 0 || n >= sizeof w->host_header)
    return bad_url(w, err, "not http://HOST[:PORT][/PATH]");
  snprintf(w->host_header, sizeof w->host_header, "%.*s", (int)n, a);
  const char *path = a + n;
  size_t plen = strcspn(path, "#");
  if (plen + 2 > sizeof w->path || strpbrk(path, " \r\n") != NULL)
    return bad_url(w, err, "the path is too long or has a space or a line break");
  snprintf(w->path, sizeof w->path, "%s%.*s", path[0] == '/' ? "" : "/", (int)plen, path);
  return MB_OK;
}

/* Resolves host once (getaddrinfo blocks: this runs at start, before the loop). */
static int resolve(mb_webhook *w, const char *host, const char *port, mb_err *err) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    char why[300];
    snprintf(why, sizeof why, "cannot resolve %s: %s", host, gai_strerror(rc));
    return bad_url(w, err, why);
  }
  for (struct addrinfo *ai = res; ai && w->n_addrs < MAX_ADDRS; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof w->addrs[0].sa) continue;
    addr *d = &w->addrs[w->n_addrs++];
    memcpy(&d->sa, ai->ai_addr, ai->ai_addrlen);
    d->len = ai->ai_addrlen;
    d->family = ai->ai_family;
  }
  freeaddrinfo(res);
  return w->n_addrs > 0 ? MB_OK : bad_url(w, err, "the host has no address");
}

/* --- the queue -------------------------------------------------------------------------- */

static void alert_free(alert *a) {
  if (a == NULL) return;
  free(a->type);
  free(a->body);
  free(a);
}

static alert *pop(mb_webhook *w) {
  alert *a = w->head;
  if (a == NULL) return NULL;
  w->head = a->next;
  if (w->head == NULL) w->tail = NULL;
  w->queued--;
  return a;
}

/* The oldest alert not in flight goes, so that the queue holds max_queue at most. */
static void drop_oldest(mb_webhook *w) {
  alert **slot = w->busy || ev_is_active(&w->backoff) ? &w->head->next : &w->head;
  alert *a = *slot;
  if (a == NULL) return;
  *slot = a->next;
  if (w->tail == a) w->tail = slot == &w->head ? NULL : w->head;
  w->queued--;
  w->failures++;
  mb_log(MB_WARN, WHO, NULL, a->type,
         "alert webhook %s: queue full (%zu alerts), the oldest waiting alert is dropped",
         w->shown, w->max_queue);
  alert_free(a);
}

static int valid_type(const char *type) {
  if (type == NULL || *type == '\0' || strlen(type) > 255) return 0;
  for (const char *c = type; *c; c++)
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) return 0;
  return 1;
}

/* --- one attempt ------------------------------------------------------------------------ */

static void close_conn(mb_webhook *w) {
  ev_io_stop(w->loop, &w->io);
  ev_timer_stop(w->loop, &w->deadline);
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  free(w->request);
  w->request = NULL;
  w->busy = 0;
}

/* The head alert's attempt ended: status is the HTTP status, or 0 with w->last_error. */
static void finished(mb_webhook *w, int status) {
  close_conn(w);
  alert *a = w->head;
  if (status >= 200 && status < 300) {
    w->delivered++;
    alert_free(pop(w));
    attempt(w);
    return;
  }
  char why[300];
  if (status) snprintf(why, sizeof why, "answered %d", status);
  else snprintf(why, sizeof why, "%s", w->last_error);
  if (a->attempts <= MB_WEBHOOK_RETRIES) {
    double wait = w->first_backoff * (double)(1 << (a->attempts - 1));
    mb_log(MB_WARN, WHO, NULL, a->type, "alert webhook %s %s: trying again in %g s", w->shown,
           why, wait);
    ev_timer_set(&w->backoff, wait, 0.0);
    ev_timer_start(w->loop, &w->backoff);
    return;
  }
  w->failures++;
  mb_log(MB_ERROR, WHO, NULL, a->type, "alert webhook %s %s: given up after %d attempts",
         w->shown, why, a->attempts);
  alert_free(pop(w));
  attempt(w);
}

static void fail_attempt(mb_webhook *w, const char *what, int e) {
  snprintf(w->last_error, sizeof w->last_error, "%s%s%s", what, e ? ": " : "",
           e ? strerror(e) : "");
  finished(w, 0);
}

/* The status of "HTTP/1.x NNN ..." once its line is in, -1 if not yet, 0 if malformed. */
static int status_line(const mb_webhook *w) {
  const char *end = memchr(w->answer, '\n', w->answer_len);
  if (end == NULL) return w->answer_len >= sizeof w->answer - 1 ? 0 : -1;
  int code = 0;
  char ver[4];
  if (sscanf(w->answer, "HTTP/1.%1[01] %3d", ver, &code) != 2 || code < 100 || code > 599)
    return 0;
  return code;
}

static void on_read(mb_webhook *w) {
  ssize_t n = recv(w->fd, w->answer + w->answer_len, sizeof w->answer - 1 - w->answer_len, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n < 0) return fail_attempt(w, "reading the answer", errno);
  w->answer_len += (size_t)n;
  w->answer[w->answer_len] = '\0';
  int code = status_line(w);
  if (code > 0) return finished(w, code);
  if (code == 0) return fail_attempt(w, "answered with no HTTP status line", 0);
  if (n == 0) return fail_attempt(w, "closed the connection without an answer", 0);
}

static void on_write(mb_webhook *w) {
  ssize_t n = send(w->fd, w->request + w->sent, w->request_len - w->sent, MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n < 0) return fail_attempt(w, "sending the alert", errno);
  w->sent += (size_t)n;
  if (w->sent < w->request_len) return;
  ev_io_stop(w->loop, &w->io);
  ev_io_set(&w->io, w->fd, EV_READ);
  ev_io_start(w->loop, &w->io);
}

static void connect_next(mb_webhook *w, int e);

static void on_io(struct ev_loop *loop, ev_io *io, int revents) {
  (void)loop, (void)revents;
  mb_webhook *w = io->data;
  if (w->sent == 0 && w->answer_len == 0 && (io->events & EV_WRITE)) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
    if (soerr != 0) return connect_next(w, soerr);
  }
  if (io->events & EV_WRITE) on_write(w);
  else on_read(w);
}

/* Connects to the next address (the previous failed with e), or fails the attempt. */
static void connect_next(mb_webhook *w, int e) {
  ev_io_stop(w->loop, &w->io);
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  while (w->next_addr < w->n_addrs) {
    const addr *d = &w->addrs[w->next_addr++];
    int fd = socket(d->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      e = errno;
      continue;
    }
    if (connect(fd, (const struct sockaddr *)&d->sa, d->len) != 0 && errno != EINPROGRESS) {
      e = errno;
      close(fd);
      continue;
    }
    w->fd = fd;
    ev_io_set(&w->io, fd, EV_WRITE);
    ev_io_start(w->loop, &w->io);
    return;
  }
  fail_attempt(w, "cannot connect", e);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop, (void)revents;
  mb_webhook *w = t->data;
  char what[64];
  snprintf(what, sizeof what, "did not answer within %g s", w->timeout);
  fail_attempt(w, what, 0);
}

static void on_backoff(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop, (void)revents;
  attempt(t->data);
}

static char *build_request(const mb_webhook *w, const alert *a, size_t *len) {
  const char *fmt = "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: moonbus-ops\r\n"
                    "Content-Type: application/json\r\nX-Moonbus-Event: %s\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n";
  size_t blen = strlen(a->body);
  const char *ah = w->auth[0] ? "Authorization: " : "", *crlf = w->auth[0] ? "\r\n" : "";
  int head = snprintf(NULL, 0, fmt, w->path, w->host_header, a->type, blen, ah, w->auth, crlf);
  char *r = head < 0 ? NULL : malloc((size_t)head + blen + 1);
  if (r == NULL) return NULL;
  snprintf(r, (size_t)head + 1, fmt, w->path, w->host_header, a->type, blen, ah, w->auth, crlf);
  memcpy(r + head, a->body, blen + 1);
  *len = (size_t)head + blen;
  return r;
}

/* Starts an attempt for the head alert, unless one runs or waits for its back-off. */
static void attempt(mb_webhook *w) {
  if (w->busy || ev_is_active(&w->backoff) || w->head == NULL) return;
  alert *a = w->head;
  w->request = build_request(w, a, &w->request_len);
  if (w->request == NULL) {
    w->failures++;
    mb_log(MB_ERROR, WHO, NULL, a->type, "alert webhook %s: out of memory, alert dropped",
           w->shown);
    alert_free(pop(w));
    attempt(w);
    return;
  }
  a->attempts++;
  w->busy = 1;
  w->sent = w->answer_len = 0;
  w->next_addr = 0;
  ev_timer_set(&w->deadline, w->timeout, 0.0);
  ev_timer_start(w->loop, &w->deadline);
  connect_next(w, 0);
}

/* --- the interface ---------------------------------------------------------------------- */

int mb_webhook_new(mb_webhook **out, struct ev_loop *loop, const char *url, mb_err *err) {
  *out = NULL;
  mb_webhook *w = calloc(1, sizeof *w);
  if (w == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  w->loop = loop;
  w->fd = -1;
  w->timeout = MB_WEBHOOK_TIMEOUT;
  w->first_backoff = 1.0;
  w->max_queue = MB_WEBHOOK_QUEUE_MAX;
  mb_url_redact(url, w->shown, sizeof w->shown);
  char host[256], port[8];
  int rc = parse_url(w, url, host, sizeof host, port, sizeof port, err);
  if (rc == MB_OK) rc = resolve(w, host, port, err);
  if (rc != MB_OK) {
    free(w);
    return rc;
  }
  ev_init(&w->io, on_io);
  ev_init(&w->deadline, on_deadline);
  ev_init(&w->backoff, on_backoff);
  w->io.data = w->deadline.data = w->backoff.data = w;
  *out = w;
  return MB_OK;
}

int mb_webhook_post(mb_webhook *w, const char *type, const char *body) {
  if (!valid_type(type) || body == NULL) return MB_EINVAL;
  alert *a = calloc(1, sizeof *a);
  if (a == NULL || (a->type = strdup(type)) == NULL || (a->body = strdup(body)) == NULL) {
    alert_free(a);
    return MB_ENOMEM;
  }
  if (w->tail) w->tail->next = a;
  else w->head = a;
  w->tail = a;
  w->queued++;
  if (w->queued > w->max_queue) drop_oldest(w);
  attempt(w);
  return MB_OK;
}

unsigned long mb_webhook_failures(const mb_webhook *w) { return w ? w->failures : 0; }
unsigned long mb_webhook_delivered(const mb_webhook *w) { return w ? w->delivered : 0; }
size_t mb_webhook_pending(const mb_webhook *w) { return w ? w->queued : 0; }
const char *mb_webhook_shown(const mb_webhook *w) { return w->shown; }

void mb_webhook_set_timing(mb_webhook *w, double timeout, double first_backoff,
                           size_t max_queue) {
  w->timeout = timeout;
  w->first_backoff = first_backoff;
  w->max_queue = max_queue > 0 ? max_queue : 1;
}

void mb_webhook_free(mb_webhook *w) {
  if (w == NULL) return;
  close_conn(w);
  ev_timer_stop(w->loop, &w->backoff);
  if (w->queued > 0)
    mb_log(MB_WARN, WHO, NULL, NULL, "alert webhook %s: %zu alerts not sent (stopping)", w->shown,
           w->queued);
  while (w->head) alert_free(pop(w));
  free(w);
}
