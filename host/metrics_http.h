/* metrics_http.h — `moonbus run --metrics HOST:PORT` (DESIGN §11): the endpoint's figures
 * at GET /metrics in the Prometheus text format, for a scraper.
 *
 * Provides: start and stop of the listener.
 * Uses: http.h (the server on the loop), metrics.h (the rendering), reporter.h (the gauges).
 * Never: changes anything (GET and HEAD only), or serves anything but /metrics. */
#ifndef MOONBUS_METRICS_HTTP_H
#define MOONBUS_METRICS_HTTP_H

#include "reporter.h"
#include "runtime.h"

typedef struct mb_metrics_http mb_metrics_http;

/* Listens on listen for rt's endpoint; the gauges come from reporter. MB_EINVAL for an
 * address that does not parse, MB_EIO when it cannot bind (err names the address). */
int mb_metrics_http_start(mb_metrics_http **out, const char *listen, mb_runtime *rt,
                          const mb_reporter *reporter, mb_err *err);
/* The port it listens on (the OS's choice for port 0). */
int mb_metrics_http_port(const mb_metrics_http *h);
void mb_metrics_http_stop(mb_metrics_http *h);

#endif
