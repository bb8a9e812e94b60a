/* cli.h — the moonbus commands (DESIGN §8): run, send, publish, request, version.
 * Each returns the process exit code. main.c parses argv and calls one. */
#ifndef MOONBUS_CLI_H
#define MOONBUS_CLI_H

typedef struct mb_cli_opts {
  const char *transport; /* --transport URL */
  const char *instance;  /* --instance ID */
  int no_reload;         /* --no-reload */
  double drain_seconds;  /* how long shutdown waits for handlers in flight */
  double timeout;        /* --timeout S: how long `request` waits for its reply */
  const char *queue;     /* --queue NAME: the error queue `errors` and `ops` work on */
  const char *ops;       /* --ops URL: `errors` asks the ops service instead of the queue */
  const char *databus;   /* --databus file:///dir: the claim store (else $MOONBUS_DATABUS) */
  const char *name;      /* --name NAME: the endpoint `new` scaffolds (else DIR's name) */
  const char *metrics;   /* --metrics HOST:PORT: `run` serves /metrics there (DESIGN §11) */
  /* moonbus ops */
  const char *listen;        /* --listen HOST:PORT */
  const char *store;         /* --store PATH|sqlite://PATH */
  const char *token_file;    /* --token-file F: the ops service's token (`errors --ops`: else
                              $MOONBUS_OPS_TOKEN) */
  const char *audit_queue;   /* --audit-queue NAME */
  double audit_retention;    /* --audit-retention DAYS */
  double error_retention;    /* --error-retention DAYS */
  const char *alert_webhook; /* --alert-webhook URL: alerts are POSTed there (http:// only) */
} mb_cli_opts;

#define MB_CLI_EXIT_TIMEOUT 3 /* `request` got no reply in time */

int mb_cli_run(const char *target, const mb_cli_opts *opts);
/* send: endpoint is the destination queue. publish: endpoint publishes the event
 * ("-": as its registered owner). The body (send, publish, request) is JSON text or @FILE;
 * one over claim_check (256 KiB) goes to the claim store (claim.h). */
int mb_cli_send(const char *endpoint, const char *type, const char *json, const mb_cli_opts *opts,
                int publish);
/* request: sends a command to endpoint, waits up to opts->timeout for the reply and prints
 * its body on stdout. 0, 1 (error), 2 (bad input) or MB_CLI_EXIT_TIMEOUT. */
int mb_cli_request(const char *endpoint, const char *type, const char *json,
                   const mb_cli_opts *opts);
/* errors list | show ID | retry ID | retry --all | delete ID (cli_errors.c); argv[0] is
 * the subcommand. With --ops URL (or $MOONBUS_OPS when no --transport is given) it is
 * mb_cli_errors_ops. */
int mb_cli_errors(int argc, char **argv, const mb_cli_opts *opts);
/* The first line of `errors list` (both variants), tab-separated like the rows below it. */
#define MB_CLI_ERRORS_HEADER "ID\tTYPE\tQUEUE\tFAILED_AT\tREASON"
/* queues [NAME...] (cli_queues.c): a header row, then per queue its name, ready, delayed, in
 * flight and consumers ("-" where the transport cannot tell). */
int mb_cli_queues(int argc, char **argv, const mb_cli_opts *opts);
/* trace CONVERSATION_ID (cli_trace.c): the conversation's messages from the audit and error
 * queues, as a tree by moonbus.related_to. */
int mb_cli_trace(const char *conversation, const mb_cli_opts *opts);
/* A runtime on the bus of opts for a command that only reads it (queues, trace, errors):
 * connected, or NULL after saying why on stderr (a sqlite:// database that does not exist
 * is refused, not created). */
struct mb_runtime *mb_cli_reader(const mb_cli_opts *opts);
/* The same commands and output through the JSON API of `moonbus ops` at base
 * (cli_errors_ops.c); argc and argv already checked by mb_cli_errors. */
int mb_cli_errors_ops(int argc, char **argv, const char *base, const mb_cli_opts *opts);
/* The line "tried: 2 attempts in each of 3 rounds (6 in all)" from the values of a parked
 * copy's retry headers (immediate, delayed, failed.deliveries; each may be NULL): nothing
 * without immediate. */
void mb_cli_print_tried(const char *immediate, const char *delayed, const char *deliveries);
int mb_cli_version(void);
/* new: writes DIR/endpoint.lua, contracts.lua, spec/NAME_spec.lua and .busted from the
 * templates (cli_new.c), refusing to overwrite any file; prints the next steps. */
int mb_cli_new(const char *dir, const mb_cli_opts *opts);
/* test: runs busted (lua5.4) in dir with moonbus's modules on LUA_PATH and LUA_CPATH and
 * $MOONBUS naming this binary (for testing.spawn); returns only when busted cannot run. */
int mb_cli_test(const char *dir);
/* ops: the operations service (host/ops/ops.c) until SIGINT or SIGTERM. */
int mb_cli_ops(const mb_cli_opts *opts);
/* "moonbus: msg" on stderr, on one line (msg may quote what a message carried: escaped as
 * in the log). */
void mb_cli_fail(const char *msg);

#endif
