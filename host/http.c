/* http.c — see http.h. Owns the libmicrohttpd daemon, its listen socket and the two
 * watchers that drive it on the caller's loop: an ev_io on MHD's epoll descriptor and an
 * ev_timer re-armed from MHD_get_timeout after every MHD_run. Handlers run inside MHD_run
 * (MHD's access callback) and queue their one answer there.
 * Never: starts a thread, blocks the loop, or stops the daemon from inside MHD_run (a stop
 * asked for by a handler waits until MHD_run has returned). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define CONNECTION_TIMEOUT_S 30u /* a silent or slow client is dropped after this */
#define CONNECTION_LIMIT 256u
#define PER_IP_LIMIT 64u
#define CONNECTION_MEMORY (64u * 1024u) /* request line and headers must fit in this */
#define IDLE_RUN_S 5.0 /* MHD asks for no timeout: run it now and then all the same */

static const char csp[] = "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                          "script-src 'self'; frame-ancestors 'none'";

struct mb_http {
  struct ev_loop *loop;
  struct MHD_Daemon *d;
  int listen_fd;
  int port;
  int loopback;
  int ipv6; /* the listener's family: MHD wants to be told */
  size_t max_body;
  mb_http_handler fn;
  void *ud;
  ev_io io;
  ev_timer timer;
  int in_run;         /* inside MHD_run: a stop must wait */
  int stop_requested; /* mb_http_stop was called inside MHD_run */
};

struct mb_http_req {
  mb_http *h;
  struct MHD_Connection *conn;
  const char *method, *path; /* MHD's: live as long as the request */
  char *body;                /* collected so far, NUL-terminated */
  size_t len, cap;
  int too_big;   /* the body passed max_body: it is read and dropped, then 413 */
  int responded; /* an answer is queued */
};

/* --- addresses ----------------------------------------------------------------------- */

static int sockaddr_is_loopback(const struct sockaddr *sa) {
  if (sa == NULL) return 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return 1;
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
  }
  return 0;
}

/* Splits "HOST:PORT" or "[V6]:PORT" into host[] and port[]. */
static int split_listen(const char *listen, char *host, size_t hcap, char *port, size_t pcap) {
  const char *colon;
  const char *h = listen;
  size_t hlen;
  if (listen[0] == '[') {
    const char *close = strchr(listen, ']');
    if (close == NULL || close[1] != ':') return -1;
    h = listen + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(listen, ':');
    if (colon == NULL || memchr(listen, ':', (size_t)(colon - listen)) != NULL) return -1;
    hlen = (size_t)(colon - listen);
  }
  const char *p = colon + 1;
  size_t plen = strlen(p);
  if (hlen == 0 || hlen >= hcap || plen == 0 || plen >= pcap || strspn(p, "0123456789") != plen)
    return -1;
  if (strtol(p, NULL, 10) > 65535) return -1;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  memcpy(port, p, plen + 1);
  return 0;
}

static int bind_one(const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return -1;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (ai->ai_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* A listening, non-blocking socket on listen; fills h's port and loopback. */
static int open_listener(mb_http *h, const char *listen, mb_err *err) {
  char host[256], port[8];
  if (listen == NULL || split_listen(listen, host, sizeof host, port, sizeof port) != 0)
    return mb_err_set(err, MB_EINVAL,
                      "listen address '%s' does not parse: expected HOST:PORT or [V6]:PORT",
                      listen ? listen : "(null)");
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0)
    return mb_err_set(err, MB_EINVAL, "listen address '%s': %s", listen, gai_strerror(rc));
  int e = 0;
  for (const struct addrinfo *ai = res; ai != NULL && h->listen_fd < 0; ai = ai->ai_next) {
    h->listen_fd = bind_one(ai);
    if (h->listen_fd < 0) e = errno;
  }
  freeaddrinfo(res);
  if (h->listen_fd < 0)
    return mb_err_set(err, MB_EIO, "cannot listen on %s: %s", listen, strerror(e));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(h->listen_fd, (struct sockaddr *)&ss, &sl) != 0)
    return mb_err_set(err, MB_EIO, "cannot listen on %s: getsockname: %s", listen,
                      strerror(errno));
  h->loopback = sockaddr_is_loopback((struct sockaddr *)&ss);
  h->ipv6 = ss.ss_family == AF_INET6;
  h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
  return MB_OK;
}

/* --- driving MHD from the loop ------------------------------------------------------- */

static void really_stop(mb_http *h);

static void arm_timer(mb_http *h) {
  MHD_UNSIGNED_LONG_LONG ms = 0;
  ev_timer_stop(h->loop, &h->timer);
  double after = IDLE_RUN_S;
  if (MHD_get_timeout(h->d, &ms) == MHD_YES) after = (double)ms / 1000.0;
  ev_timer_set(&h->timer, after, 0.);
  ev_timer_start(h->loop, &h->timer);
}

static void run_mhd(mb_http *h) {
  h->in_run = 1;
  if (MHD_run(h->d) != MHD_YES) mb_log(MB_WARN, NULL, NULL, NULL, "http: MHD_run failed");
  h->in_run = 0;
  if (h->stop_requested) really_stop(h);
  else arm_timer(h);
}

static void on_ready(struct ev_loop *loop, ev_io *io, int revents) {
  (void)loop;
  (void)revents;
  run_mhd(io->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop;
  (void)revents;
  run_mhd(t->data);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  mb_log(MB_WARN, NULL, NULL, NULL, "http: %s", line);
}

/* --- requests ------------------------------------------------------------------------ */

static int respond_error(mb_http_req *r, int status, const char *sentence) {
  char body[256];
  int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", sentence);
  return mb_http_respond(r, status, "application/json", body, (size_t)n, NULL);
}

static enum MHD_Result too_large(mb_http_req *r) {
  char sentence[96];
  snprintf(sentence, sizeof sentence, "the request body is over the limit of %zu bytes",
           r->h->max_body);
  return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE, sentence) == MB_OK ? MHD_YES : MHD_NO;
}

static int append_body(mb_http_req *r, const char *data, size_t n) {
  if (r->too_big || r->len + n > r->h->max_body) {
    r->too_big = 1;
    return 0;
  }
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < r->len + n + 1) cap *= 2;
    char *p = realloc(r->body, cap);
    if (p == NULL) return -1;
    r->body = p;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  r->body[r->len] = '\0';
  return 0;
}

/* The first call for a request: its state, or a 413 at once when its declared length is
 * over max_body (MHD then never reads the body). */
static enum MHD_Result begin(mb_http *h, struct MHD_Connection *conn, const char *method,
                             const char *url, void **req_cls) {
  mb_http_req *r = calloc(1, sizeof *r);
  if (r == NULL) return MHD_NO;
  r->h = h;
  r->conn = conn;
  r->method = method;
  r->path = url;
  *req_cls = r;
  const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
  if (cl != NULL && strtoull(cl, NULL, 10) > h->max_body) {
    r->too_big = 1;
    return too_large(r);
  }
  return MHD_YES;
}

static enum MHD_Result dispatch(mb_http_req *r) {
  if (r->too_big) return too_large(r);
  r->h->fn(r->h->ud, r);
  if (!r->responded) {
    mb_log(MB_ERROR, NULL, NULL, NULL, "http: the handler gave no answer to %s %s: 500",
           r->method, r->path);
    respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the handler gave no answer");
  }
  return r->responded ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **req_cls) {
  (void)version;
  mb_http_req *r = *req_cls;
  if (r == NULL) return begin(cls, conn, method, url, req_cls);
  if (r->responded) { /* 413 queued at once: drop whatever arrives */
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (append_body(r, upload, *upload_size) != 0) return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode why) {
  (void)cls;
  (void)conn;
  (void)why;
  mb_http_req *r = *req_cls;
  if (r == NULL) return;
  free(r->body);
  free(r);
  *req_cls = NULL;
}

/* --- start and stop ------------------------------------------------------------------ */

static int start_daemon(mb_http *h, const char *listen, mb_err *err) {
  h->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_access, h,
                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_LISTEN_SOCKET,
                          (MHD_socket)h->listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
                          CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, PER_IP_LIMIT,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
  if (h->d == NULL) {
    /* some of MHD's failure paths close the socket it was given, others do not: close it
     * only if it is still open (one thread: nothing can have reused the number) */
    if (fcntl(h->listen_fd, F_GETFD) == -1) h->listen_fd = -1;
    return mb_err_set(err, MB_EIO, "cannot start the HTTP server on %s", listen);
  }
  h->listen_fd = -1; /* MHD_stop_daemon closes it */
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
  if (info == NULL || info->epoll_fd < 0)
    return mb_err_set(err, MB_EIO, "the HTTP server on %s has no epoll descriptor", listen);
  ev_io_init(&h->io, on_ready, info->epoll_fd, EV_READ);
  ev_io_start(h->loop, &h->io);
  arm_timer(h);
  return MB_OK;
}

int mb_http_start(mb_http **out, struct ev_loop *loop, const char *listen, size_t max_body,
                  mb_http_handler fn, void *ud, mb_err *err) {
  *out = NULL;
  mb_http *h = calloc(1, sizeof *h);
  if (h == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory starting the HTTP server");
  h->loop = loop;
  h->listen_fd = -1;
  h->max_body = max_body;
  h->fn = fn;
  h->ud = ud;
  ev_init(&h->io, on_ready);
  ev_init(&h->timer, on_timer);
  h->io.data = h;
  h->timer.data = h;
  int rc = open_listener(h, listen, err);
  if (rc == MB_OK) rc = start_daemon(h, listen, err);
  if (rc != MB_OK) {
    really_stop(h);
    return rc;
  }
  *out = h;
  return MB_OK;
}

static void really_stop(mb_http *h) {
  ev_io_stop(h->loop, &h->io);
  ev_timer_stop(h->loop, &h->timer);
  if (h->d != NULL) MHD_stop_daemon(h->d); /* closes every connection and the listener */
  if (h->listen_fd >= 0) close(h->listen_fd);
  free(h);
}

void mb_http_stop(mb_http *h) {
  if (h == NULL) return;
  if (h->in_run) {
    ev_io_stop(h->loop, &h->io);
    ev_timer_stop(h->loop, &h->timer);
    h->stop_requested = 1;
    return;
  }
  really_stop(h);
}

int mb_http_port(const mb_http *h) { return h ? h->port : 0; }

int mb_http_listens_on_loopback(const mb_http *h) { return h ? h->loopback : 0; }

/* --- the request ----------------------------------------------------------------------- */

const char *mb_http_method(const mb_http_req *r) { return r->method; }

const char *mb_http_path(const mb_http_req *r) { return r->path; }

const char *mb_http_arg(const mb_http_req *r, const char *key) {
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *mb_http_header(const mb_http_req *r, const char *name) {
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *mb_http_body(const mb_http_req *r, size_t *len) {
  if (len) *len = r->len;
  return r->body ? r->body : "";
}

int mb_http_peer_is_loopback(const mb_http_req *r) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  return info != NULL && sockaddr_is_loopback(info->client_addr);
}

/* --- the response ---------------------------------------------------------------------- */

static int add_headers(struct MHD_Response *resp, const char *content_type,
                       const char *const *extra) {
  int ok = MHD_add_response_header(resp, "Content-Type", content_type) == MHD_YES &&
           MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") == MHD_YES &&
           MHD_add_response_header(resp, "Cache-Control", "no-store") == MHD_YES;
  if (ok && strncmp(content_type, "text/html", 9) == 0)
    ok = MHD_add_response_header(resp, "Content-Security-Policy", csp) == MHD_YES;
  for (size_t i = 0; ok && extra != NULL && extra[i] != NULL && extra[i + 1] != NULL; i += 2)
    ok = MHD_add_response_header(resp, extra[i], extra[i + 1]) == MHD_YES;
  return ok;
}

static int queue(mb_http_req *r, int status, const char *content_type, const void *data,
                 size_t len, enum MHD_ResponseMemoryMode mode, const char *const *extra) {
  if (r->responded) {
    mb_log(MB_ERROR, NULL, NULL, NULL, "http: a second answer to %s %s ignored", r->method,
           r->path);
    return MB_EINVAL;
  }
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, mode);
  if (resp == NULL) return MB_ENOMEM;
  int rc = MB_OK;
  if (!add_headers(resp, content_type ? content_type : "application/octet-stream", extra))
    rc = MB_ENOMEM;
  else if (MHD_queue_response(r->conn, (unsigned)status, resp) != MHD_YES) rc = MB_EIO;
  MHD_destroy_response(resp);
  if (rc == MB_OK) r->responded = 1;
  else
    mb_log(MB_WARN, NULL, NULL, NULL, "http: cannot answer %s %s: %s", r->method, r->path,
           mb_strerror(rc));
  return rc;
}

int mb_http_respond(mb_http_req *r, int status, const char *content_type, const char *body,
                    size_t len, const char *const *extra) {
  return queue(r, status, content_type, body ? body : "", body ? len : 0, MHD_RESPMEM_MUST_COPY,
               extra);
}

int mb_http_respond_static(mb_http_req *r, int status, const char *content_type, const void *data,
                           size_t len) {
  return queue(r, status, content_type, data ? data : "", data ? len : 0, MHD_RESPMEM_PERSISTENT,
               NULL);
}
