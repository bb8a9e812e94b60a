/* test_webhook.c — the alert webhook (host/ops/webhook.c) against listeners on the same
 * libev loop: an HTTP server (http.c) that records what it was sent and answers a chosen
 * status, a socket that accepts connections and never answers, and a port nothing listens
 * on. Checked: one alert delivered once with its headers (Content-Type, X-Moonbus-Event,
 * User-Agent, Basic credentials from the URL) and its body, alerts in order, a 500 tried
 * 1 + 3 times then counted as a failure, a silent listener timing out, a refused
 * connection, the queue bound dropping the oldest, posting never blocking, bad URLs
 * refused (https:// with its reason; the URL's password never in a message), and nothing
 * leaked (LeakSanitizer) when the webhook is freed with alerts pending. */
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "ops/webhook.h"
#include "unit.h"

#define MAX_SEEN 16

static struct ev_loop *loop;

/* --- the recording server ------------------------------------------------------------- */

typedef struct seen {
  char method[8], path[128], type[128], ctype[64], agent[64], auth[128], body[256];
} seen;

static struct {
  mb_http *http;
  int port, status, n;
  seen req[MAX_SEEN];
} srv;

static void copy(char *out, size_t cap, const char *s) { snprintf(out, cap, "%s", s ? s : ""); }

static void record(void *ud, mb_http_req *r) {
  (void)ud;
  if (srv.n < MAX_SEEN) {
    seen *s = &srv.req[srv.n];
    size_t len;
    copy(s->method, sizeof s->method, mb_http_method(r));
    copy(s->path, sizeof s->path, mb_http_path(r));
    copy(s->type, sizeof s->type, mb_http_header(r, "X-Moonbus-Event"));
    copy(s->ctype, sizeof s->ctype, mb_http_header(r, "Content-Type"));
    copy(s->agent, sizeof s->agent, mb_http_header(r, "User-Agent"));
    copy(s->auth, sizeof s->auth, mb_http_header(r, "Authorization"));
    copy(s->body, sizeof s->body, mb_http_body(r, &len));
  }
  srv.n++;
  mb_http_respond(r, srv.status, "text/plain", "", 0, NULL);
}

static void server_start(int status) {
  mb_err err;
  srv.n = 0;
  srv.status = status;
  if (srv.http == NULL) {
    CHECK(mb_http_start(&srv.http, loop, "127.0.0.1:0", 4096, record, NULL, &err) == MB_OK);
    srv.port = mb_http_port(srv.http);
  }
}

/* --- helpers ---------------------------------------------------------------------------- */

static void on_timeout(struct ev_loop *l, ev_timer *t, int revents) {
  (void)l, (void)t, (void)revents;
}

/* Runs the loop until cond(w) holds or seconds pass; 1 if it held. */
static int run_until(int (*cond)(const mb_webhook *), const mb_webhook *w, double seconds) {
  double end = (double)mb_now_usec() / 1e6 + seconds;
  ev_timer tick;
  ev_timer_init(&tick, on_timeout, 0.01, 0.01);
  ev_timer_start(loop, &tick);
  while (!cond(w) && (double)mb_now_usec() / 1e6 < end) ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &tick);
  return cond(w);
}

static int one_delivered(const mb_webhook *w) { return mb_webhook_delivered(w) >= 1; }
static int three_delivered(const mb_webhook *w) { return mb_webhook_delivered(w) >= 3; }
static int one_failed(const mb_webhook *w) { return mb_webhook_failures(w) >= 1; }
static int idle(const mb_webhook *w) { return mb_webhook_pending(w) == 0; }

static mb_webhook *hook(const char *fmt, int port) {
  char url[256];
  snprintf(url, sizeof url, fmt, port);
  mb_webhook *w = NULL;
  mb_err err;
  int rc = mb_webhook_new(&w, loop, url, &err);
  if (rc != MB_OK) printf("#   %s\n", err.msg);
  CHECK(rc == MB_OK);
  return w;
}

/* A listening socket that never accepts: connections complete, nothing is ever answered. */
static int silent_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(listen(fd, 64) == 0);
  CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* A port nothing listens on (bound, then closed). */
static int free_port(void) {
  int port, fd = silent_listener(&port);
  close(fd);
  return port;
}

/* --- the tests -------------------------------------------------------------------------- */

static void delivered_once_with_headers_and_body(void) {
  server_start(204);
  mb_webhook *w = hook("http://ops:s3cret@127.0.0.1:%d/hook?src=ops", srv.port);
  const char *body = "{\"event\":\"moonbus.ops.MessageFailed\",\"at\":\"now\",\"id\":\"m-1\"}";
  CHECK(mb_webhook_post(w, "moonbus.ops.MessageFailed", body) == MB_OK);
  CHECK(run_until(one_delivered, w, 5));
  CHECK(run_until(idle, w, 1));
  ev_run(loop, EVRUN_NOWAIT);
  CHECK(srv.n == 1);
  CHECK(strcmp(srv.req[0].method, "POST") == 0);
  CHECK(strcmp(srv.req[0].path, "/hook") == 0);
  CHECK(strcmp(srv.req[0].type, "moonbus.ops.MessageFailed") == 0);
  CHECK(strcmp(srv.req[0].ctype, "application/json") == 0);
  CHECK(strcmp(srv.req[0].agent, "moonbus-ops") == 0);
  CHECK(strcmp(srv.req[0].auth, "Basic b3BzOnMzY3JldA==") == 0); /* ops:s3cret */
  CHECK(strcmp(srv.req[0].body, body) == 0);
  CHECK(mb_webhook_failures(w) == 0);
  CHECK(strstr(mb_webhook_shown(w), "s3cret") == NULL);
  mb_webhook_free(w);
}

static void alerts_go_in_order(void) {
  server_start(200);
  mb_webhook *w = hook("http://localhost:%d", srv.port); /* ::1 first, maybe: then 127.0.0.1 */
  CHECK(mb_webhook_post(w, "t.A", "{\"n\":1}") == MB_OK);
  CHECK(mb_webhook_post(w, "t.B", "{\"n\":2}") == MB_OK);
  CHECK(mb_webhook_post(w, "t.C", "{\"n\":3}") == MB_OK);
  CHECK(run_until(three_delivered, w, 5));
  CHECK(srv.n == 3);
  CHECK(strcmp(srv.req[0].type, "t.A") == 0 && strcmp(srv.req[0].body, "{\"n\":1}") == 0);
  CHECK(strcmp(srv.req[1].type, "t.B") == 0 && strcmp(srv.req[2].type, "t.C") == 0);
  CHECK(strcmp(srv.req[0].path, "/") == 0 && srv.req[0].auth[0] == '\0');
  mb_webhook_free(w);
}

static void error_status_retried_three_times_then_failed(void) {
  server_start(500);
  mb_webhook *w = hook("http://127.0.0.1:%d/h", srv.port);
  mb_webhook_set_timing(w, 2.0, 0.05, 10);
  CHECK(mb_webhook_post(w, "t.A", "{}") == MB_OK);
  CHECK(run_until(one_failed, w, 5));
  CHECK(srv.n == 1 + MB_WEBHOOK_RETRIES);
  CHECK(mb_webhook_delivered(w) == 0 && mb_webhook_pending(w) == 0);
  mb_webhook_free(w);
}

static void silent_listener_times_out(void) {
  int port, fd = silent_listener(&port);
  mb_webhook *w = hook("http://127.0.0.1:%d/", port);
  mb_webhook_set_timing(w, 0.2, 0.01, 10);
  double t0 = (double)mb_now_usec() / 1e6;
  CHECK(mb_webhook_post(w, "t.A", "{}") == MB_OK);
  CHECK((double)mb_now_usec() / 1e6 - t0 < 0.1); /* posting does not wait */
  CHECK(mb_webhook_failures(w) == 0);
  CHECK(run_until(one_failed, w, 5));
  double took = (double)mb_now_usec() / 1e6 - t0;
  CHECK(took >= 4 * 0.2 && took < 3.0); /* four attempts, each cut at its deadline */
  mb_webhook_free(w);
  close(fd);
}

static void refused_connection_fails(void) {
  mb_webhook *w = hook("http://127.0.0.1:%d/", free_port());
  mb_webhook_set_timing(w, 1.0, 0.01, 10);
  CHECK(mb_webhook_post(w, "t.A", "{}") == MB_OK);
  CHECK(run_until(one_failed, w, 3));
  CHECK(mb_webhook_delivered(w) == 0 && mb_webhook_pending(w) == 0);
  mb_webhook_free(w);
}

static void full_queue_drops_the_oldest(void) {
  int port, fd = silent_listener(&port);
  mb_webhook *w = hook("http://127.0.0.1:%d/", port);
  mb_webhook_set_timing(w, 30.0, 1.0, 3);
  for (int i = 0; i < 10; i++) CHECK(mb_webhook_post(w, "t.A", "{}") == MB_OK);
  CHECK(mb_webhook_pending(w) == 3); /* the one in flight and the two newest */
  CHECK(mb_webhook_failures(w) == 7);
  mb_webhook_free(w); /* frees the pending ones: LeakSanitizer checks */
  close(fd);
}

static void bad_urls_refused(void) {
  static const char *const bad[] = {"https://user:hunter2@example.com/hook",
                                    "ftp://example.com/",
                                    "http://",
                                    "http://user:hunter2@/x",
                                    "http://127.0.0.1:99999/",
                                    "http://127.0.0.1/a b",
                                    "example.com/hook",
                                    "http://no-such-host.invalid/"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    mb_webhook *w = (mb_webhook *)1;
    mb_err err = {0};
    CHECK(mb_webhook_new(&w, loop, bad[i], &err) == MB_EINVAL);
    CHECK(w == NULL);
    CHECK(strstr(err.msg, "hunter2") == NULL);
    CHECK(strstr(err.msg, "--alert-webhook") != NULL);
    if (i == 0) CHECK(strstr(err.msg, "https:// is not supported") != NULL);
  }
  mb_webhook *w = hook("http://127.0.0.1:%d/", 80);
  CHECK(mb_webhook_post(w, "bad type", "{}") == MB_EINVAL);
  CHECK(mb_webhook_post(w, "t.A\r\nX: y", "{}") == MB_EINVAL);
  mb_webhook_free(w);
}

int main(void) {
  mb_log_set_level(MB_ERROR + 1);
  loop = ev_loop_new(EVFLAG_AUTO);
  RUN(delivered_once_with_headers_and_body);
  RUN(alerts_go_in_order);
  RUN(error_status_retried_three_times_then_failed);
  RUN(silent_listener_times_out);
  RUN(refused_connection_fails);
  RUN(full_queue_drops_the_oldest);
  RUN(bad_urls_refused);
  mb_http_stop(srv.http);
  ev_loop_destroy(loop);
  return unit_done();
}
