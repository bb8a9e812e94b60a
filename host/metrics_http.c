/* metrics_http.c — GET /metrics of a running host (see metrics_http.h): renders the
 * endpoint's figures with the gauges of now on every scrape.
 * Never: keeps a rendering between two scrapes or answers anything but /metrics. */
#include "metrics_http.h"

#include <stdlib.h>
#include <string.h>

#include "http.h"

#define PROMETHEUS_TEXT "text/plain; version=0.0.4; charset=utf-8"

struct mb_metrics_http {
  mb_http *http;
  mb_runtime *rt;
  const mb_reporter *reporter;
};

static void text(mb_http_req *req, int status, const char *body) {
  mb_http_respond(req, status, "text/plain; charset=utf-8", body, strlen(body), NULL);
}

static void serve(void *ud, mb_http_req *req) {
  mb_metrics_http *h = ud;
  const char *method = mb_http_method(req);
  char *body = NULL;
  size_t len = 0;
  mb_metrics_gauges g = mb_reporter_gauges(h->reporter);
  const mb_metrics *m = mb_runtime_metrics(h->rt);
  if (strcmp(mb_http_path(req), "/metrics") != 0)
    text(req, 404, "not found: this listener serves /metrics only\n");
  else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    text(req, 405, "method not allowed: GET /metrics\n");
  else if (m == NULL) text(req, 503, "the endpoint is not configured yet\n");
  else if (mb_metrics_render(m, &g, &body, &len) != MB_OK) text(req, 500, "out of memory\n");
  else mb_http_respond(req, 200, PROMETHEUS_TEXT, body, len, NULL);
  free(body);
}

int mb_metrics_http_start(mb_metrics_http **out, const char *listen, mb_runtime *rt,
                          const mb_reporter *reporter, mb_err *err) {
  mb_metrics_http *h = calloc(1, sizeof *h);
  *out = NULL;
  if (h == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  h->rt = rt;
  h->reporter = reporter;
  int rc = mb_http_start(&h->http, mb_runtime_loop(rt), listen, 0, serve, h, err);
  if (rc != MB_OK) {
    free(h);
    return rc;
  }
  *out = h;
  return MB_OK;
}

int mb_metrics_http_port(const mb_metrics_http *h) { return mb_http_port(h->http); }

void mb_metrics_http_stop(mb_metrics_http *h) {
  if (h == NULL) return;
  mb_http_stop(h->http);
  free(h);
}
