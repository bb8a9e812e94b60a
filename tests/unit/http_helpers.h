/* http_helpers.h — what the HTTP unit tests (test_http.c, test_cli_errors_ops.c) share: a
 * server (http.c) in a child process with its own libev loop, so that the parent can ask
 * it with the blocking client. The child ends on SIGTERM after mb_http_stop; its exit status
 * is 0 only when it stopped cleanly and LeakSanitizer found nothing. The including file
 * defines nothing of these names. */
#ifndef MOONBUS_HTTP_HELPERS_H
#define MOONBUS_HTTP_HELPERS_H

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "unit.h"

static void child_on_term(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)w;
  (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

/* The child: serves fn on 127.0.0.1:0, writes the port to port_pipe, runs until SIGTERM. */
static void child_serve(mb_http_handler fn, size_t max_body, int port_pipe) {
  struct ev_loop *loop = ev_default_loop(0);
  mb_http *h = NULL;
  mb_err err = {0};
  mb_log_set_level(MB_ERROR);
  if (mb_http_start(&h, loop, "127.0.0.1:0", max_body, fn, NULL, &err) != MB_OK) {
    fprintf(stderr, "server: %s\n", err.msg);
    _exit(2);
  }
  int port = mb_http_port(h);
  if (write(port_pipe, &port, sizeof port) != sizeof port) _exit(2);
  close(port_pipe);
  ev_signal term;
  ev_signal_init(&term, child_on_term, SIGTERM);
  ev_signal_start(loop, &term);
  ev_run(loop, 0);
  ev_signal_stop(loop, &term);
  mb_http_stop(h);
  ev_loop_destroy(loop);
  exit(0);
}

/* Starts the child; its port, and *pid for http_child_stop. */
static int http_child_start(mb_http_handler fn, size_t max_body, pid_t *pid) {
  int fds[2], port = 0;
  if (pipe(fds) != 0) abort();
  fflush(stdout);
  *pid = fork();
  if (*pid == 0) {
    close(fds[0]);
    child_serve(fn, max_body, fds[1]);
  }
  close(fds[1]);
  if (read(fds[0], &port, sizeof port) != sizeof port) abort();
  close(fds[0]);
  return port;
}

/* Ends the child: its exit status (0: stopped cleanly, no leaks), 128 + a signal. */
static int http_child_stop(pid_t pid) {
  int status = 0;
  kill(pid, SIGTERM);
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* One TAP line for it, counted like a test. */
static void http_child_check_stop(pid_t pid) {
  int status = http_child_stop(pid);
  printf("# server exit status %d\n", status);
  unit_passed += status == 0;
  unit_failed += status != 0;
  printf("%s - the server stops cleanly, without leaks\n", status == 0 ? "ok" : "not ok");
}

#endif
