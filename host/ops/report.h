/* report.h — a moonbus.ops.Report read strictly (DESIGN §11; the shape: README
 * "Monitoring"): every field the monitoring needs, checked for presence, type and range.
 *
 * Provides: mb_ops_report (the values, pointing into the parsed document) and
 * mb_ops_report_parse, which names the first problem of a report it refuses.
 * Uses: json.h, clock.h.
 * Never: trusts the body (it is foreign input: any field missing or of the wrong type is a
 * problem, unknown fields are ignored, buckets of another length only drop the
 * histograms), or keeps a report past mb_ops_report_free. */
#ifndef MOONBUS_OPS_REPORT_H
#define MOONBUS_OPS_REPORT_H

#include <stddef.h>

#include "json.h"

#define MB_OPS_REPORT_TYPE "moonbus.ops.Report"
#define MB_OPS_REPORT_MAX_BYTES (1u << 20) /* a larger body is refused unread */
#define MB_OPS_HIST 19                     /* histogram slots: 18 bounds and +Inf */
#define MB_OPS_NAME_MAX 255                /* bytes of an endpoint, instance or host */

enum { MB_OPS_SUCCESS, MB_OPS_RETRIED, MB_OPS_DELAYED, MB_OPS_ERRORED, MB_OPS_DISCARDED };

typedef struct mb_ops_report {
  mb_json *doc;
  const char *endpoint, *instance, *host, *heartbeat, *started;
  double pid, generation, seq, interval, window;
  double sla; /* seconds; 0: none */
  int stopping;
  double received, outcomes[5], reloads_ok, reloads_refused, reconnects;
  int histograms; /* 0: buckets of another length, the histograms are ignored */
  double processing[MB_OPS_HIST], critical[MB_OPS_HIST];
  double in_flight, requests_pending, lua_memory, shared_memory;
  const mb_jv *queues; /* an object: queue name -> ready messages (-1 unknown) */
} mb_ops_report;

/* Parses body[0..len) into r. MB_OK, or MB_EINVAL with the first problem in problem
 * (r is then already freed). */
int mb_ops_report_parse(const char *body, size_t len, mb_ops_report *r, char *problem,
                        size_t plen);
void mb_ops_report_free(mb_ops_report *r);

/* "success", "retried", "delayed", "error", "discarded" (index MB_OPS_SUCCESS...). */
extern const char *const mb_ops_outcomes[5];

#endif
