/* test_cli_errors_ops.c — `moonbus errors … --ops URL` (cli_errors_ops.c) against a fake
 * ops service: a child process serves /api/errors, /api/messages, /api/errors/retry and
 * /delete and /api/operations (the contract of DESIGN §10) from 1 203 made-up failed
 * messages, with a token on every POST. Checked: list pages through every message (three
 * pages) with the queue version's line and progress on stderr; show prints the message with
 * its 'tried' line, 404 says "no message ID"; retry ID follows the operation to its end and
 * prints "ID\t-> queue"; a failed retry, delete, retry --all; a missing token (the hint), a
 * refused one (never printed); $MOONBUS_OPS; --transport wins over $MOONBUS_OPS; an empty,
 * https or unreachable service. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "http_helpers.h"
#include "json.h"
#include "log.h"
#include "unit.h"

#define N_MSG 1203
#define TOKEN "T0k3n-s3cr3t"

/* --- the fake service (in the child) ------------------------------------------------- */

static int status_of[N_MSG + 1]; /* 0 unresolved, 1 retrying, 2 deleted; N_MSG: "m-bad" */

typedef struct fake_op {
  int polls;
  long long total, done, failed;
} fake_op;

static fake_op op_list[64];
static int n_ops;

static int index_of(const char *id) {
  if (strcmp(id, "m-bad") == 0) return N_MSG;
  int n = -1;
  if (sscanf(id, "m-%d", &n) != 1 || n < 0 || n >= N_MSG || status_of[n] == 2) return -1;
  return n;
}

static void reply(mb_http_req *req, int status, mb_jbuf *b) {
  mb_http_respond(req, status, "application/json", b->data, b->len, NULL);
  mb_jbuf_free(b);
}

static void fail(mb_http_req *req, int status, const char *why) {
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_printf(&b, "{\"error\":\"%s\"%s}", why,
                 status == 401 ? ",\"token_required\":true" : "");
  reply(req, status, &b);
}

static void item(mb_jbuf *b, int i) {
  mb_jbuf_printf(b,
                 "{\"id\":\"m-%04d\",\"type\":\"billing.Charge\",\"endpoint\":\"billing\","
                 "\"queue\":\"billing\",\"failed_at\":\"2026-12-02T10:00:00.000Z\","
                 "\"exception\":\"card %d declined\",\"status\":\"unresolved\"}",
                 i, i);
}

static void list_errors(mb_http_req *req) {
  const char *page = mb_http_arg(req, "page"), *per = mb_http_arg(req, "per_page");
  const char *status = mb_http_arg(req, "status");
  if (!page || !per || !status || strcmp(status, "unresolved") != 0)
    return fail(req, 400, "bad arguments");
  long p = atol(page), pp = atol(per) > 500 ? 500 : atol(per);
  int total = 0, seen = 0, written = 0;
  mb_jbuf b = MB_JBUF_INIT;
  for (int i = 0; i < N_MSG; i++) total += status_of[i] == 0;
  mb_jbuf_printf(&b, "{\"total\":%d,\"page\":%ld,\"per_page\":%ld,\"items\":[", total, p, pp);
  for (int i = 0; i < N_MSG; i++) {
    if (status_of[i] != 0 || seen++ < (p - 1) * pp || written >= pp) continue;
    if (written++) mb_jbuf_raw(&b, ",", 1);
    item(&b, i);
  }
  mb_jbuf_cstr_raw(&b, "]}");
  reply(req, 200, &b);
}

static void message(mb_http_req *req, const char *id) {
  int i = index_of(id);
  if (i < 0) return fail(req, 404, "no such message");
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_printf(&b,
                 "{\"id\":\"%s\",\"type\":\"billing.Charge\",\"kind\":\"command\","
                 "\"correlation_id\":null,\"reply_to\":\"orders\",\"status\":\"%s\","
                 "\"queue\":\"billing\",\"problem\":null,\"headers\":{"
                 "\"moonbus.retries.immediate\":\"1\",\"moonbus.retries.delayed\":\"2\","
                 "\"moonbus.failed.queue\":\"billing\",\"moonbus.attempt\":3},"
                 "\"body\":\"{\\\"n\\\":%d}\",\"history\":[]}",
                 id, status_of[i] == 0 ? "unresolved" : "retrying", i);
  reply(req, 200, &b);
}

/* POST /api/errors/retry or /delete: an operation over the ids (or all). */
static void operate(mb_http_req *req, int del) {
  const char *auth = mb_http_header(req, "Authorization");
  if (auth == NULL || strcmp(auth, "Bearer " TOKEN) != 0) return fail(req, 401, "token needed");
  size_t len;
  const char *text = mb_http_body(req, &len);
  mb_json *doc;
  if (mb_json_parse(text, len, &doc, NULL) != MB_OK || n_ops == 64)
    return fail(req, 400, "bad body");
  const mb_jv *ids = mb_jv_get(mb_json_root(doc), "ids");
  fake_op *op = &op_list[n_ops];
  for (int i = 0; i <= N_MSG; i++) {
    int wanted = mb_jv_is_true(mb_jv_get(mb_json_root(doc), "all")) && i < N_MSG && !status_of[i];
    for (size_t k = 0; k < mb_jv_len(ids); k++)
      wanted |= index_of(mb_jv_string(mb_jv_at(ids, k), NULL)) == i;
    if (!wanted) continue;
    op->total++;
    op->done++;
    if (i == N_MSG) op->failed++;
    else status_of[i] = del ? 2 : 1;
  }
  mb_json_free(doc);
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_printf(&b, "{\"operation\":\"op/%d\",\"total\":%lld}", n_ops++, op->total);
  reply(req, 202, &b);
}

static void operation(mb_http_req *req, const char *id) {
  int i = -1;
  if (sscanf(id, "op/%d", &i) != 1 || i < 0 || i >= n_ops) return fail(req, 404, "no such op");
  fake_op *op = &op_list[i];
  int running = op->polls++ < 2; /* twice "running", then "done" */
  mb_jbuf b = MB_JBUF_INIT;
  mb_jbuf_printf(
      &b,
      "{\"id\":\"%s\",\"action\":\"retry\",\"total\":%lld,\"done\":%lld,\"failed\":%lld,"
      "\"state\":\"%s\",\"error\":%s}",
      id, op->total, running ? 0 : op->done, running ? 0 : op->failed,
      running ? "running" : "done", op->failed && !running ? "\"cannot send\"" : "null");
  reply(req, 200, &b);
}

static void handle(void *ud, mb_http_req *req) {
  (void)ud;
  const char *path = mb_http_path(req), *method = mb_http_method(req);
  int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
  if (get && strcmp(path, "/api/errors") == 0) list_errors(req);
  else if (get && strncmp(path, "/api/messages/", 14) == 0) message(req, path + 14);
  else if (get && strncmp(path, "/api/operations/", 16) == 0) operation(req, path + 16);
  else if (post && strcmp(path, "/api/errors/retry") == 0) operate(req, 0);
  else if (post && strcmp(path, "/api/errors/delete") == 0) operate(req, 1);
  else fail(req, 404, "no route");
}

/* --- the parent: the CLI ------------------------------------------------------------- */

static pid_t server_pid;
static char base[64];
static char out[1 << 20], err_text[1 << 16];

static void start_server(void) {
  snprintf(base, sizeof base, "http://127.0.0.1:%d",
           http_child_start(handle, 1 << 16, &server_pid));
}

static void slurp(int fd, char *buf, size_t cap) {
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, buf, cap - 1);
  buf[n > 0 ? n : 0] = '\0';
  close(fd);
}

/* moonbus errors ARGS... with opts: exit code; stdout in out, stderr in err_text. */
static int errors_cmd(const mb_cli_opts *opts, const char *a, const char *b) {
  char *argv[] = {(char *)a, (char *)b, NULL};
  char o_name[] = "/tmp/mb_test_ops_outXXXXXX", e_name[] = "/tmp/mb_test_ops_errXXXXXX";
  int ofd = mkstemp(o_name), efd = mkstemp(e_name);
  unlink(o_name);
  unlink(e_name);
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  dup2(ofd, 1);
  dup2(efd, 2);
  int rc = mb_cli_errors(b ? 2 : 1, argv, opts);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  slurp(ofd, out, sizeof out);
  slurp(efd, err_text, sizeof err_text);
  return rc;
}

static size_t lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void list_pages_through_every_message(void) {
  mb_cli_opts opts = {.ops = base};
  CHECK(errors_cmd(&opts, "list", NULL) == 0);
  CHECK(lines(out) == N_MSG + 1); /* and the header row */
  CHECK(strncmp(out, MB_CLI_ERRORS_HEADER "\n", strlen(MB_CLI_ERRORS_HEADER) + 1) == 0);
  CHECK(strstr(out,
               "m-0000\tbilling.Charge\tbilling\t2026-12-02T10:00:00.000Z\tcard 0 declined\n") ==
        out + strlen(MB_CLI_ERRORS_HEADER) + 1);
  CHECK(strstr(out, "m-1202\tbilling.Charge\tbilling\t2026-12-02T10:00:00.000Z\tcard 1202 "
                    "declined\n") != NULL);
  CHECK(strstr(err_text, "1000 of 1203 failed messages read") != NULL);
}

static void show_prints_the_message(void) {
  mb_cli_opts opts = {.ops = base};
  CHECK(errors_cmd(&opts, "show", "m-0007") == 0);
  CHECK(strncmp(out, "id: m-0007\ntype: billing.Charge\n", 32) == 0);
  CHECK(strstr(out, "reply_to: orders\n") != NULL);
  CHECK(strstr(out, "correlation_id") == NULL);
  CHECK(strstr(out, "status: unresolved\n") != NULL);
  CHECK(strstr(out, "tried: 2 attempts in each of 3 rounds (6 in all)\n") != NULL);
  CHECK(strstr(out, "moonbus.failed.queue: billing\n") != NULL);
  CHECK(strstr(out, "moonbus.attempt: 3\n") != NULL);
  CHECK(strstr(out, "\n\n{\"n\":7}\n") != NULL);
  CHECK(errors_cmd(&opts, "show", "m-9999") == 1);
  CHECK(strstr(err_text, "no message m-9999") != NULL);
  CHECK(out[0] == '\0');
}

static void changing_needs_the_token(void) {
  mb_cli_opts opts = {.ops = base};
  unsetenv("MOONBUS_OPS_TOKEN");
  CHECK(errors_cmd(&opts, "retry", "m-0001") == 1);
  CHECK(strstr(err_text, "the ops service needs a token: pass --token-file or set "
                         "MOONBUS_OPS_TOKEN") != NULL);
  setenv("MOONBUS_OPS_TOKEN", "wr0ng-t0ken", 1);
  CHECK(errors_cmd(&opts, "retry", "m-0001") == 1);
  CHECK(strstr(err_text, "refused the token of $MOONBUS_OPS_TOKEN") != NULL);
  CHECK(strstr(err_text, "wr0ng") == NULL);
  char name[] = "/tmp/mb_test_tokenXXXXXX";
  int fd = mkstemp(name);
  CHECK(write(fd, "nope\n", 5) == 5);
  close(fd);
  opts.token_file = name;
  CHECK(errors_cmd(&opts, "delete", "m-0001") == 1);
  CHECK(strstr(err_text, "refused the token of --token-file") != NULL);
  CHECK(strstr(err_text, "nope") == NULL);
  unlink(name);
  opts.token_file = "/nonexistent/token";
  CHECK(errors_cmd(&opts, "delete", "m-0001") == 1);
  CHECK(strstr(err_text, "cannot read token file /nonexistent/token") != NULL);
  unsetenv("MOONBUS_OPS_TOKEN");
}

static void retry_and_delete_follow_their_operation(void) {
  mb_cli_opts opts = {.ops = base};
  setenv("MOONBUS_OPS_TOKEN", TOKEN, 1);
  CHECK(errors_cmd(&opts, "retry", "m-0001") == 0);
  CHECK(strcmp(out, "m-0001\t-> billing\n") == 0);
  CHECK(errors_cmd(&opts, "show", "m-0001") == 0 && strstr(out, "status: retrying\n") != NULL);
  char name[] = "/tmp/mb_test_tokenXXXXXX";
  int fd = mkstemp(name);
  CHECK(write(fd, TOKEN "\n", sizeof TOKEN) == (ssize_t)sizeof TOKEN);
  close(fd);
  unsetenv("MOONBUS_OPS_TOKEN");
  opts.token_file = name;
  CHECK(errors_cmd(&opts, "delete", "m-0002") == 0);
  CHECK(out[0] == '\0');
  CHECK(errors_cmd(&opts, "show", "m-0002") == 1);
  CHECK(errors_cmd(&opts, "delete", "m-0002") == 1 && strstr(err_text, "no message m-0002"));
  CHECK(errors_cmd(&opts, "retry", "m-bad") == 1);
  CHECK(strstr(err_text, "retry of m-bad failed: cannot send") != NULL);
  CHECK(strstr(out, "m-bad") == NULL);
  CHECK(errors_cmd(&opts, "retry", "--all") == 0);
  CHECK(strstr(err_text, "1201 of 1201 failed messages sent back") != NULL);
  CHECK(strstr(err_text, TOKEN) == NULL);
  CHECK(errors_cmd(&opts, "list", NULL) == 0 && strcmp(out, MB_CLI_ERRORS_HEADER "\n") == 0);
  unlink(name);
}

static void where_the_service_is(void) {
  mb_cli_opts opts = {0};
  setenv("MOONBUS_OPS", base, 1);
  CHECK(errors_cmd(&opts, "show", "m-0003") == 0 && strstr(out, "id: m-0003\n") != NULL);
  opts.transport = "sqlite:///nonexistent/bus.db"; /* --transport: the queue, not $MOONBUS_OPS */
  CHECK(errors_cmd(&opts, "show", "m-0003") == 1 && strstr(out, "id: m-0003") == NULL);
  unsetenv("MOONBUS_OPS");
  opts.transport = NULL;
  opts.ops = ""; /* an empty --ops is a mistake, not the queue */
  CHECK(errors_cmd(&opts, "list", NULL) == 1 && strstr(err_text, "only http://") != NULL);
  opts.ops = "https://127.0.0.1:7070";
  CHECK(errors_cmd(&opts, "list", NULL) == 1 && strstr(err_text, "only http://") != NULL);
  opts.ops = "http://127.0.0.1:1";
  CHECK(errors_cmd(&opts, "list", NULL) == 1);
  CHECK(strstr(err_text, "is moonbus ops running there?") != NULL);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  mb_log_set_level(MB_ERROR);
  start_server();
  RUN(list_pages_through_every_message);
  RUN(show_prints_the_message);
  RUN(changing_needs_the_token);
  RUN(retry_and_delete_follow_their_operation);
  RUN(where_the_service_is);
  http_child_check_stop(server_pid);
  return unit_done();
}
