/* cli_queues.c — `moonbus queues [NAME...]`: one row per queue, with a header row (as
 * `docker ps` has one): its name, the messages ready now, delayed (not visible yet: a delay
 * or a retry's back-off), in flight (delivered, not acknowledged) and its consumers, from
 * the transport's queues op. SQLite lists every queue of the bus (the per-process reply
 * queues left out); RabbitMQ cannot list its queues to a client, so without names it shows
 * the error and audit queues and says so, and "-" stands for the counts the broker does not
 * give (delayed, in flight).
 * Also the runtime of every command that only reads the bus (mb_cli_reader).
 * Never: creates a bus, changes a queue or takes a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "endpoint.h"
#include "log.h"
#include "runtime.h"

mb_runtime *mb_cli_reader(const mb_cli_opts *opts) {
  mb_err err;
  mb_runtime *rt = mb_runtime_new(NULL, opts->transport, opts->instance);
  if (rt == NULL) {
    fprintf(stderr, "moonbus: out of memory\n");
    return NULL;
  }
  int rc = mb_transport_must_exist(mb_runtime_transport_url(rt), &err);
  if (rc == MB_OK) rc = mb_runtime_connect(rt, &err);
  if (rc == MB_OK) return rt;
  mb_cli_fail(err.msg);
  mb_runtime_free(rt);
  return NULL;
}

static void count(long n) {
  if (n < 0) printf("\t-");
  else printf("\t%ld", n);
}

static void print_queue(void *ud, const mb_queue_info *q) {
  char name[4 * MB_QUEUE_NAME_MAX + 1];
  (void)ud;
  mb_log_escape(q->name, strlen(q->name), name, sizeof name);
  printf("%s", name);
  count(q->ready);
  count(q->delayed);
  count(q->in_flight);
  count(q->consumers);
  printf("\n");
}

/* The error and audit queues, when the transport cannot list its queues (RabbitMQ). */
static int well_known(mb_transport *t) {
  static const char *const names[] = {MB_DEFAULT_ERROR_QUEUE, MB_DEFAULT_AUDIT_QUEUE};
  mb_err err;
  fprintf(stderr, "moonbus: this transport cannot list its queues (RabbitMQ without the "
                  "management plugin): showing the error and audit queues; name others "
                  "(moonbus queues NAME...)\n");
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (t->ops->queues(t, names[i], print_queue, NULL, &err) != MB_OK &&
        err.status != MB_ENOTFOUND) {
      mb_cli_fail(err.msg);
      return 1;
    }
  return 0;
}

int mb_cli_queues(int argc, char **argv, const mb_cli_opts *opts) {
  mb_runtime *rt = mb_cli_reader(opts);
  if (rt == NULL) return 1;
  mb_transport *t = mb_runtime_transport(rt);
  int code = 0;
  mb_err err;
  if (t->ops->queues == NULL) {
    mb_cli_fail("this transport cannot describe its queues");
    mb_runtime_free(rt);
    return 1;
  }
  printf("QUEUE\tREADY\tDELAYED\tIN_FLIGHT\tCONSUMERS\n");
  if (argc == 0 && t->ops->queues(t, NULL, print_queue, NULL, &err) != MB_OK)
    code = err.status == MB_EINVAL ? well_known(t) : (mb_cli_fail(err.msg), 1);
  for (int i = 0; i < argc; i++)
    if (t->ops->queues(t, argv[i], print_queue, NULL, &err) != MB_OK) {
      mb_cli_fail(err.msg);
      code = 1;
    }
  fflush(stdout);
  mb_runtime_free(rt);
  return code;
}
