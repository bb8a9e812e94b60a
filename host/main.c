/* main.c — argv and signals to a command (cli.c); nothing else. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage:\n"
          "  moonbus run DIR|FILE [--transport URL] [--instance ID] [--no-reload] [--drain S] "
          "[--metrics HOST:PORT]\n"
          "      --drain: seconds handlers in flight get to finish at SIGTERM (default 10)\n"
          "  moonbus send ENDPOINT TYPE JSON [--transport URL]\n"
          "  moonbus publish ENDPOINT|- TYPE JSON [--transport URL]\n"
          "  moonbus request ENDPOINT TYPE JSON [--timeout S] [--transport URL]\n"
          "      prints the reply's body; exit 3 when no reply came within S s (default 30)\n"
          "      JSON may be @FILE; a body over 256 KiB goes to the claim store: --databus\n"
          "      file:///dir (else $MOONBUS_DATABUS, else a sqlite:// bus's own database)\n"
          "  moonbus errors list | show ID | retry ID | retry --all | delete ID [--queue NAME]\n"
          "      [--ops URL [--token-file F]]: through moonbus ops (else $MOONBUS_OPS, when no\n"
          "      --transport is given; its token else $MOONBUS_OPS_TOKEN)\n"
          "  moonbus queues [NAME...] [--transport URL]\n"
          "      per queue: messages ready, delayed, in flight, and its consumers\n"
          "  moonbus trace CONVERSATION_ID [--queue NAME] [--audit-queue NAME]\n"
          "      the conversation's messages (audit and error queues) as a causal tree\n"
          "  moonbus ops [--listen HOST:PORT] [--store PATH] [--token-file F] [--transport URL]\n"
          "      [--audit-retention DAYS] [--error-retention DAYS] [--queue NAME] [--audit-queue "
          "NAME]\n"
          "      [--alert-webhook http://HOST[:PORT]/PATH]\n"
          "      the operations service: failed and processed messages, web UI and API\n"
          "      (default 127.0.0.1:7070, store .moonbus/ops.db, retention 7 and 30 days)\n"
          "  moonbus new DIR [--name NAME]    an endpoint, its contracts, a spec, a .busted\n"
          "  moonbus test [DIR]               runs DIR's specs with busted (default .)\n"
          "  moonbus version\n"
          "The transport is --transport, else $MOONBUS_TRANSPORT, else the endpoint's own,\n"
          "else sqlite://DIR/.moonbus/bus.db for the nearest DIR at or above the current\n"
          "directory that holds .moonbus/ (else the current one). Logs go to stderr "
          "(MOONBUS_LOG=debug|info|warn|error).\n");
}

/* A number of seconds (--timeout: more than 0), or a complaint on stderr and -1. */
static int seconds_arg(const char *option, const char *v, double *out) {
  char *end;
  double s = strtod(v, &end);
  int zero_ok = strcmp(option, "--timeout") != 0;
  if (*v == '\0' || *end != '\0' || !(s > 0 || (zero_ok && s == 0)) || s > 86400) {
    fprintf(stderr, "moonbus: %s needs a number of seconds (0-86400), got '%s'\n", option, v);
    return -1;
  }
  *out = s;
  return 0;
}

/* Where a string-valued option of `moonbus ops` goes, or NULL for another option. */
static const char **string_option(const char *a, mb_cli_opts *opts) {
  return strcmp(a, "--listen") == 0          ? &opts->listen
         : strcmp(a, "--store") == 0         ? &opts->store
         : strcmp(a, "--token-file") == 0    ? &opts->token_file
         : strcmp(a, "--ops") == 0           ? &opts->ops
         : strcmp(a, "--databus") == 0       ? &opts->databus
         : strcmp(a, "--audit-queue") == 0   ? &opts->audit_queue
         : strcmp(a, "--alert-webhook") == 0 ? &opts->alert_webhook
         : strcmp(a, "--name") == 0          ? &opts->name
         : strcmp(a, "--metrics") == 0       ? &opts->metrics
                                             : NULL;
}

/* --audit-retention / --error-retention: a number of days above 0. */
static int days_arg(const char *option, const char *v, mb_cli_opts *opts) {
  char *end;
  double d = strtod(v, &end);
  if (*v == '\0' || *end != '\0' || !(d > 0) || d > 36500 ||
      (strcmp(option, "--audit-retention") != 0 && strcmp(option, "--error-retention") != 0)) {
    fprintf(stderr, "moonbus: %s needs a number of days above 0, got '%s'\n", option, v);
    return -1;
  }
  *(strcmp(option, "--audit-retention") == 0 ? &opts->audit_retention : &opts->error_retention) =
      d;
  return 0;
}

/* Moves options out of argv into opts; positional arguments stay, in order. */
static int parse_options(int *argc, char **argv, mb_cli_opts *opts) {
  int kept = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--queue") == 0 && i + 1 < *argc) {
      opts->queue = argv[++i];
    } else if (string_option(a, opts) && i + 1 < *argc) {
      *string_option(a, opts) = argv[++i];
    } else if (strstr(a, "-retention") && i + 1 < *argc) {
      if (days_arg(a, argv[++i], opts) != 0) return -1;
    } else if (strcmp(a, "--all") == 0) {
      argv[kept++] = argv[i]; /* `errors retry --all`: an argument, not an option */
    } else if ((strcmp(a, "--transport") == 0 || strcmp(a, "--instance") == 0 ||
                strcmp(a, "--drain") == 0 || strcmp(a, "--timeout") == 0) &&
               i + 1 < *argc) {
      const char *v = argv[++i];
      if (strcmp(a, "--transport") == 0) opts->transport = v;
      else if (strcmp(a, "--instance") == 0) opts->instance = v;
      else if (seconds_arg(
                   a, v, strcmp(a, "--drain") == 0 ? &opts->drain_seconds : &opts->timeout) != 0)
        return -1;
    } else if (strcmp(a, "--no-reload") == 0) {
      opts->no_reload = 1;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "--version") == 0) {
      argv[kept++] = argv[i]; /* commands spelled as options */
    } else if (strncmp(a, "--", 2) == 0 && strcmp(a, "--") != 0) {
      fprintf(stderr, "moonbus: unknown or incomplete option %s\n", a);
      return -1;
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  return 0;
}

int main(int argc, char **argv) {
  mb_cli_opts opts = {.drain_seconds = 10, .audit_retention = 7, .error_retention = 30};
  signal(SIGPIPE, SIG_IGN);
  mb_log_init();
  if (parse_options(&argc, argv, &opts) != 0) return 2;
  const char *cmd = argc > 1 ? argv[1] : "";
  if (strcmp(cmd, "run") == 0 && argc == 3) return mb_cli_run(argv[2], &opts);
  if (strcmp(cmd, "send") == 0 && argc == 5)
    return mb_cli_send(argv[2], argv[3], argv[4], &opts, 0);
  if (strcmp(cmd, "publish") == 0 && argc == 5)
    return mb_cli_send(argv[2], argv[3], argv[4], &opts, 1);
  if (strcmp(cmd, "request") == 0 && argc == 5)
    return mb_cli_request(argv[2], argv[3], argv[4], &opts);
  if (strcmp(cmd, "errors") == 0) return mb_cli_errors(argc - 2, argv + 2, &opts);
  if (strcmp(cmd, "ops") == 0 && argc == 2) return mb_cli_ops(&opts);
  if (strcmp(cmd, "queues") == 0) return mb_cli_queues(argc - 2, argv + 2, &opts);
  if (strcmp(cmd, "trace") == 0 && argc == 3) return mb_cli_trace(argv[2], &opts);
  if (strcmp(cmd, "new") == 0 && argc == 3) return mb_cli_new(argv[2], &opts);
  if (strcmp(cmd, "test") == 0 && argc <= 3) return mb_cli_test(argc == 3 ? argv[2] : ".");
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return mb_cli_version();
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  usage(stderr);
  return 2;
}
