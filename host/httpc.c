/* httpc.c — see httpc.h. One request per connection (Connection: close): connect with a
 * deadline, write the request, read the status line, the headers and the body (by
 * Content-Length, chunked, or up to the end) through a small buffered reader that polls
 * against the same deadline.
 * Never: writes the token anywhere but the Authorization header (no error text names it),
 * follows a redirect, or reads past MB_HTTPC_MAX_RESPONSE. */
#include "httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE 8192          /* a status, header or chunk-size line */
#define MAX_HEADER_BYTES 65536 /* all the header lines of one answer */

typedef struct target {
  char host[256]; /* without brackets */
  char port[8];
  char authority[300]; /* as written in the base, for the Host header */
  char prefix[1024];   /* the base's path, without a trailing '/' */
} target;

typedef struct conn {
  int fd;
  double deadline; /* monotonic seconds */
  char buf[16384];
  size_t start, end; /* unread bytes are buf[start..end) */
  int eof;
} conn;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the base URL ----------------------------------------------------------------------- */

/* host and port of an authority a[0..n): "HOST", "HOST:PORT", "[V6]" or "[V6]:PORT". */
static int split_authority(const char *a, size_t n, target *t) {
  const char *h = a, *after;
  size_t hlen;
  if (n > 0 && a[0] == '[') {
    const char *close = memchr(a, ']', n);
    if (close == NULL) return -1;
    h = a + 1;
    hlen = (size_t)(close - h);
    after = close + 1;
  } else {
    const char *colon = memchr(a, ':', n);
    hlen = colon ? (size_t)(colon - a) : n;
    after = a + hlen;
  }
  size_t rest = n - (size_t)(after - a);
  if (hlen == 0 || hlen >= sizeof t->host || (rest > 0 && after[0] != ':')) return -1;
  memcpy(t->host, h, hlen);
  t->host[hlen] = '\0';
  if (rest == 0) {
    strcpy(t->port, "80");
    return 0;
  }
  size_t plen = rest - 1;
  if (plen == 0 || plen >= sizeof t->port) return -1;
  memcpy(t->port, after + 1, plen);
  t->port[plen] = '\0';
  return strspn(t->port, "0123456789") == plen && atoi(t->port) <= 65535 ? 0 : -1;
}

static int parse_base(const char *base, target *t, mb_err *err) {
  static const char scheme[] = "http://";
  if (base == NULL || strncasecmp(base, scheme, sizeof scheme - 1) != 0)
    return mb_err_set(err, MB_EINVAL, "ops URL '%s': only http:// is supported",
                      base ? base : "(null)");
  const char *a = base + sizeof scheme - 1;
  size_t n = strcspn(a, "/?#");
  if (n >= sizeof t->authority || memchr(a, '@', n) != NULL || split_authority(a, n, t) != 0)
    return mb_err_set(err, MB_EINVAL, "ops URL '%s' is not http://HOST[:PORT][/PATH]", base);
  memcpy(t->authority, a, n);
  t->authority[n] = '\0';
  const char *path = a + n;
  size_t plen = strcspn(path, "?#");
  while (plen > 0 && path[plen - 1] == '/') plen--;
  if (plen >= sizeof t->prefix || path[strcspn(path, "?#")] != '\0')
    return mb_err_set(err, MB_EINVAL, "ops URL '%s' is not http://HOST[:PORT][/PATH]", base);
  memcpy(t->prefix, path, plen);
  t->prefix[plen] = '\0';
  return MB_OK;
}

/* --- connecting ------------------------------------------------------------------------- */

static int wait_fd(int fd, short events, double deadline) {
  for (;;) {
    double left = deadline - now_s();
    if (left <= 0) return -1;
    struct pollfd p = {fd, events, 0};
    int rc = poll(&p, 1, (int)(left * 1000) + 1);
    if (rc > 0) return 0;
    if (rc < 0 && errno != EINTR) return -1;
  }
}

static int connect_one(const struct addrinfo *ai, double deadline) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return -1;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    int e = errno, soerr = 0;
    socklen_t sl = sizeof soerr;
    if (e != EINPROGRESS) goto fail;
    e = ETIMEDOUT;
    if (wait_fd(fd, POLLOUT, deadline) != 0) goto fail;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) e = errno;
    else if (soerr == 0) return fd;
    else e = soerr;
  fail:
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static int open_conn(const target *t, const char *base, conn *c, mb_err *err) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int rc = getaddrinfo(t->host, t->port, &hints, &res);
  if (rc != 0)
    return mb_err_set(err, MB_ENOTCONN, "nothing answers at %s: %s", base, gai_strerror(rc));
  int e = 0;
  c->fd = -1;
  for (const struct addrinfo *ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next) {
    c->fd = connect_one(ai, c->deadline);
    if (c->fd < 0) e = errno;
  }
  freeaddrinfo(res);
  if (c->fd < 0)
    return mb_err_set(err, MB_ENOTCONN, "nothing answers at %s: %s", base, strerror(e));
  return MB_OK;
}

/* --- writing ---------------------------------------------------------------------------- */

static int send_all(conn *c, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EINTR) continue;
    else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_fd(c->fd, POLLOUT, c->deadline) != 0) return -1;
    } else return -1;
  }
  return 0;
}

/* Refuses a line break or other control byte where it would end a header. */
static int header_safe(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
  return 1;
}

static int send_request(conn *c, const target *t, const char *method, const char *path,
                        const char *token, const char *body, size_t len) {
  size_t cap = strlen(method) + strlen(t->prefix) + strlen(path) + strlen(t->authority) +
               (token ? strlen(token) : 0) + 256;
  char *head = malloc(cap);
  if (head == NULL) return MB_ENOMEM;
  int n = snprintf(head, cap, "%s %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method,
                   t->prefix, path, t->authority);
  if (token) n += snprintf(head + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", token);
  if (body)
    n += snprintf(head + n, cap - (size_t)n,
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n", len);
  else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
    n += snprintf(head + n, cap - (size_t)n, "Content-Length: 0\r\n");
  n += snprintf(head + n, cap - (size_t)n, "Accept: application/json\r\n\r\n");
  int rc = send_all(c, head, (size_t)n) == 0 && (!body || send_all(c, body, len) == 0);
  memset(head, 0, cap); /* the token */
  free(head);
  return rc ? MB_OK : MB_EIO;
}

/* --- reading ---------------------------------------------------------------------------- */

/* More bytes into the buffer: 0, or -1 on the deadline or a socket error (eof is set on
 * the end of the stream). */
static int fill(conn *c) {
  if (c->start > 0) {
    memmove(c->buf, c->buf + c->start, c->end - c->start);
    c->end -= c->start;
    c->start = 0;
  }
  if (c->end == sizeof c->buf) return -1;
  for (;;) {
    ssize_t r = recv(c->fd, c->buf + c->end, sizeof c->buf - c->end, 0);
    if (r > 0) {
      c->end += (size_t)r;
      return 0;
    }
    if (r == 0) {
      c->eof = 1;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (wait_fd(c->fd, POLLIN, c->deadline) != 0) return -1;
  }
}

/* One line without its CRLF (or LF) into line[0..MAX_LINE); -1 when none comes. */
static int read_line(conn *c, char *line) {
  for (;;) {
    char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);
    if (nl != NULL) {
      size_t n = (size_t)(nl - (c->buf + c->start));
      if (n >= MAX_LINE) return -1;
      memcpy(line, c->buf + c->start, n);
      if (n > 0 && line[n - 1] == '\r') n--;
      line[n] = '\0';
      c->start += (size_t)(nl - (c->buf + c->start)) + 1;
      return (int)n;
    }
    if (c->end - c->start >= MAX_LINE || c->eof || fill(c) != 0) return -1;
  }
}

/* Exactly n bytes into dst (NULL: up to the end of the stream, *got counts them). */
static int read_bytes(conn *c, char *dst, size_t n) {
  while (n > 0) {
    if (c->start == c->end) {
      if (c->eof || fill(c) != 0 || c->start == c->end) return -1;
    }
    size_t k = c->end - c->start < n ? c->end - c->start : n;
    memcpy(dst, c->buf + c->start, k);
    c->start += k;
    dst += k;
    n -= k;
  }
  return 0;
}

typedef struct head {
  int status;
  int chunked;
  long long length; /* -1 when not given */
} head;

static int parse_status(const char *line, head *h) {
  if (strlen(line) < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ') return -1;
  if (strspn(line + 9, "0123456789") != 3) return -1;
  h->status = atoi(line + 9);
  return h->status >= 100 ? 0 : -1;
}

static int parse_header(const char *line, head *h, mb_httpc_response *out) {
  const char *colon = strchr(line, ':');
  if (colon == NULL || colon == line) return -1;
  size_t nlen = (size_t)(colon - line);
  const char *v = colon + 1 + strspn(colon + 1, " \t");
  if (nlen == 12 && strncasecmp(line, "Content-Type", nlen) == 0)
    snprintf(out->content_type, sizeof out->content_type, "%s", v);
  else if (nlen == 14 && strncasecmp(line, "Content-Length", nlen) == 0) {
    size_t digits = strspn(v, "0123456789");
    if (digits == 0 || digits > 18 || v[digits + strspn(v + digits, " \t")] != '\0') return -1;
    h->length = atoll(v);
  } else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", nlen) == 0)
    h->chunked = strcasestr(v, "chunked") != NULL;
  return 0;
}

/* The status line and headers of the final answer (1xx ones are skipped). */
static int read_head(conn *c, head *h, mb_httpc_response *out) {
  char line[MAX_LINE];
  do {
    h->chunked = 0;
    h->length = -1;
    out->content_type[0] = '\0';
    if (read_line(c, line) < 0 || parse_status(line, h) != 0) return -1;
    size_t total = 0;
    int n;
    while ((n = read_line(c, line)) > 0) {
      total += (size_t)n;
      if (total > MAX_HEADER_BYTES || parse_header(line, h, out) != 0) return -1;
    }
    if (n < 0) return -1;
  } while (h->status < 200);
  return 0;
}

typedef struct rbody {
  char *p;
  size_t len, cap;
} rbody;

static int body_reserve(rbody *b, size_t more) {
  if (b->len + more + 1 > MB_HTTPC_MAX_RESPONSE + 1) return MB_ETOOBIG;
  if (b->len + more + 1 <= b->cap) return MB_OK;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (p == NULL) return MB_ENOMEM;
  b->p = p;
  b->cap = cap;
  return MB_OK;
}

static int read_chunked(conn *c, rbody *b) {
  char line[MAX_LINE];
  for (;;) {
    if (read_line(c, line) < 0) return MB_EIO;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(line, &end, 16);
    if (end == line || errno != 0 || (*end != '\0' && *end != ';' && *end != ' ')) return MB_EIO;
    if (n == 0) break;
    if (n > MB_HTTPC_MAX_RESPONSE) return MB_ETOOBIG;
    int rc = body_reserve(b, (size_t)n);
    if (rc != MB_OK) return rc;
    if (read_bytes(c, b->p + b->len, (size_t)n) != 0 || read_line(c, line) != 0) return MB_EIO;
    b->len += (size_t)n;
  }
  int n; /* trailers, up to the empty line */
  size_t total = 0;
  while ((n = read_line(c, line)) > 0)
    if ((total += (size_t)n) > MAX_HEADER_BYTES) return MB_EIO;
  return n == 0 ? MB_OK : MB_EIO;
}

static int read_to_end(conn *c, rbody *b) {
  for (;;) {
    size_t k = c->end - c->start;
    int rc = body_reserve(b, k);
    if (rc != MB_OK) return rc;
    memcpy(b->p + b->len, c->buf + c->start, k);
    b->len += k;
    c->start = c->end;
    if (c->eof) return MB_OK;
    if (fill(c) != 0) return MB_EIO;
  }
}

static int read_body(conn *c, const head *h, const char *method, rbody *b) {
  int rc = body_reserve(b, 0);
  if (rc != MB_OK) return rc;
  if (strcmp(method, "HEAD") == 0 || h->status == 204 || h->status == 304) rc = MB_OK;
  else if (h->chunked) rc = read_chunked(c, b);
  else if (h->length >= 0) {
    if ((unsigned long long)h->length > MB_HTTPC_MAX_RESPONSE) return MB_ETOOBIG;
    rc = body_reserve(b, (size_t)h->length);
    if (rc == MB_OK && read_bytes(c, b->p, (size_t)h->length) != 0) rc = MB_EIO;
    if (rc == MB_OK) b->len = (size_t)h->length;
  } else rc = read_to_end(c, b);
  if (b->p) b->p[b->len] = '\0';
  return rc;
}

/* --- the request ------------------------------------------------------------------------ */

static int exchange(conn *c, const target *t, const char *base, const char *method,
                    const char *path, const char *token, const char *body_text, size_t len,
                    mb_httpc_response *out, mb_err *err) {
  /* a server may answer (413) and close before it read the whole body: its answer is
   * then still worth reading */
  int sent = send_request(c, t, method, path, token, body_text, len);
  if (sent == MB_ENOMEM)
    return mb_err_set(err, sent, "%s %s at %s: out of memory", method, path, base);
  head h = {0, 0, -1};
  if (read_head(c, &h, out) != 0)
    return mb_err_set(err, MB_EIO, "%s %s at %s: %s", method, path, base,
                      sent != MB_OK            ? "cannot send the request"
                      : now_s() >= c->deadline ? "no answer in time"
                                               : "no valid answer");
  int rc;
  rbody b = {NULL, 0, 0};
  rc = read_body(c, &h, method, &b);
  if (rc != MB_OK) {
    free(b.p);
    return mb_err_set(err, rc, "%s %s at %s: %s", method, path, base,
                      rc == MB_ETOOBIG  ? "the answer is over the size limit"
                      : rc == MB_ENOMEM ? "out of memory"
                                        : "the answer's body broke off");
  }
  out->status = h.status;
  out->body = b.p;
  out->len = b.len;
  return MB_OK;
}

int mb_httpc_request(const char *base, const char *method, const char *path, const char *token,
                     const char *body, size_t len, double timeout, mb_httpc_response *out,
                     mb_err *err) {
  memset(out, 0, sizeof *out);
  target t;
  int rc = parse_base(base, &t, err);
  if (rc != MB_OK) return rc;
  if (method == NULL || path == NULL || path[0] != '/' || !header_safe(method) ||
      !header_safe(path) || strchr(path, ' ') != NULL || strchr(method, ' ') != NULL)
    return mb_err_set(err, MB_EINVAL, "bad request line for %s", base);
  if (token != NULL && !header_safe(token))
    return mb_err_set(err, MB_EINVAL, "the token holds a control character (a line break?)");
  conn *c = calloc(1, sizeof *c);
  if (c == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  c->deadline = now_s() + (timeout > 0 ? timeout : 30);
  rc = open_conn(&t, base, c, err);
  if (rc == MB_OK) {
    rc = exchange(c, &t, base, method, path, token, body, len, out, err);
    close(c->fd);
  }
  free(c);
  return rc;
}

void mb_httpc_response_free(mb_httpc_response *r) {
  if (r == NULL) return;
  free(r->body);
  r->body = NULL;
  r->len = 0;
}

int mb_httpc_escape(const char *s, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strnlen(out, cap);
  if (n == cap) return 0;
  size_t start = n;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    int keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '.' || ch == '_' || ch == '~';
    size_t need = keep ? 1 : 3;
    if (n + need >= cap) {
      out[start] = '\0';
      return 0;
    }
    if (keep) out[n++] = (char)ch;
    else {
      out[n++] = '%';
      out[n++] = hex[ch >> 4];
      out[n++] = hex[ch & 15];
    }
  }
  out[n] = '\0';
  return 1;
}
