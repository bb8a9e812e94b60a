/* cli.h — the moonbus commands (DESIGN §8): run, send, publish, version.
 * Each returns the process exit code. main.c parses argv and calls one. */
#ifndef MOONBUS_CLI_H
#define MOONBUS_CLI_H

typedef struct mb_cli_opts {
  const char *transport; /* --transport URL */
  const char *instance;  /* --instance ID */
  int no_reload;         /* --no-reload */
  double drain_seconds;  /* how long shutdown waits for handlers in flight */
} mb_cli_opts;

int mb_cli_run(const char *target, const mb_cli_opts *opts);
/* send: endpoint is the destination queue. publish: endpoint publishes the event
 * ("-": as its registered owner). */
int mb_cli_send(const char *endpoint, const char *type, const char *json,
                const mb_cli_opts *opts, int publish);
int mb_cli_version(void);

#endif
