/* cli_errors_ops.c — `moonbus errors … --ops URL`: the operator's commands through the JSON
 * API of `moonbus ops` (DESIGN §10) instead of the error queue, with the queue version's
 * output (cli_errors.c):
 *   list          GET /api/errors?status=unresolved, every page; one line per message
 *   show ID       GET /api/messages/ID: its headers and body
 *   retry ID      POST /api/errors/retry {"ids":[ID]}, then the operation followed to its end
 *   retry --all   POST /api/errors/retry {"all":true}, progress on stderr
 *   delete ID     POST /api/errors/delete {"ids":[ID]}, followed the same way
 * The token comes from --token-file F or $MOONBUS_OPS_TOKEN.
 * Never: prints the token or puts it anywhere but the request's Authorization header,
 * touches a queue, or changes a message it was not asked to. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "headers.h"
#include "httpc.h"
#include "json.h"
#include "log.h"

#define PER_PAGE 500
#define PROGRESS_EVERY 1000
#define POLL_NS (100 * 1000 * 1000) /* an operation's progress is asked for every 100 ms */
#define MAX_TOKEN 4096
#define NO_TOKEN_HINT "pass --token-file or set MOONBUS_OPS_TOKEN"

typedef struct ops {
  const char *base;
  char *token;            /* NULL: none */
  const char *token_from; /* where it came from, for messages (never the token) */
  double timeout;         /* one request */
  double stall;           /* an operation that makes no progress this long is given up */
} ops;

typedef struct op_state {
  long long total, done, failed;
  char error[400]; /* "" unless the operation failed as a whole */
} op_state;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the token ------------------------------------------------------------------------ */

static int read_token_file(ops *o, const char *path, mb_err *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return mb_err_set(err, MB_EIO, "cannot read token file %s: %s", path, strerror(errno));
  char *buf = calloc(1, MAX_TOKEN + 2);
  size_t n = buf ? fread(buf, 1, MAX_TOKEN + 1, f) : 0;
  int bad = buf == NULL || ferror(f);
  fclose(f);
  while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL) buf[--n] = '\0';
  int rc = MB_OK;
  if (bad) rc = mb_err_set(err, MB_EIO, "cannot read token file %s", path);
  else if (n == 0) rc = mb_err_set(err, MB_EINVAL, "token file %s is empty", path);
  else if (n > MAX_TOKEN)
    rc = mb_err_set(err, MB_EINVAL, "token file %s holds more than %d bytes", path, MAX_TOKEN);
  if (rc != MB_OK) {
    free(buf);
    return rc;
  }
  o->token = buf;
  o->token_from = "--token-file";
  return MB_OK;
}

static int find_token(ops *o, const mb_cli_opts *opts, mb_err *err) {
  if (opts->token_file) return read_token_file(o, opts->token_file, err);
  const char *env = getenv("MOONBUS_OPS_TOKEN");
  if (env == NULL || env[0] == '\0') return MB_OK;
  if ((o->token = strdup(env)) == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  o->token_from = "$MOONBUS_OPS_TOKEN";
  return MB_OK;
}

/* --- one call ------------------------------------------------------------------------- */

/* The "error" of an answer's JSON, or its status in words. */
static void answer_error(const mb_jv *root, int status, char *out, size_t cap) {
  const char *e = mb_jv_get_string(root, "error");
  if (e) mb_log_escape(e, strlen(e), out, cap);
  else snprintf(out, cap, "HTTP status %d", status);
}

static int refused(const ops *o, const mb_jv *root, mb_err *err) {
  char why[300];
  answer_error(root, 401, why, sizeof why);
  if (o->token == NULL)
    return mb_err_set(err, MB_EREFUSED, "the ops service needs a token: " NO_TOKEN_HINT);
  return mb_err_set(err, MB_EREFUSED, "the ops service at %s refused the token of %s: %s",
                    o->base, o->token_from, why);
}

/* method path (body: NULL or JSON) against the service; *doc gets the answer's JSON (the
 * caller frees it) when the status is 2xx. MB_ENOTFOUND for a 404 (err not set: the caller
 * says what was not found). */
static int call(const ops *o, const char *method, const char *path, const mb_jbuf *body,
                mb_json **doc, mb_err *err) {
  mb_httpc_response res;
  *doc = NULL;
  int rc = mb_httpc_request(o->base, method, path, o->token, body ? body->data : NULL,
                            body ? body->len : 0, o->timeout, &res, err);
  if (rc == MB_ENOTCONN) {
    char why[MB_ERRLEN];
    snprintf(why, sizeof why, "%s", err->msg);
    return mb_err_set(err, rc, "%s (is moonbus ops running there?)", why);
  }
  if (rc != MB_OK) return rc;
  mb_err perr = {0};
  int parsed = mb_json_parse(res.body, res.len, doc, &perr);
  const mb_jv *root = parsed == MB_OK ? mb_json_root(*doc) : NULL;
  char why[300];
  if (res.status == 401) rc = refused(o, root, err);
  else if (res.status == 404) rc = MB_ENOTFOUND;
  else if (res.status < 200 || res.status > 299) {
    answer_error(root, res.status, why, sizeof why);
    rc = mb_err_set(err, MB_EIO, "the ops service at %s: %s %s: %s", o->base, method, path, why);
  } else if (parsed != MB_OK)
    rc = mb_err_set(err, MB_EIO, "the ops service at %s answered %s %s with what is not JSON: %s",
                    o->base, method, path, perr.msg);
  mb_httpc_response_free(&res);
  if (rc != MB_OK) {
    mb_json_free(*doc);
    *doc = NULL;
  }
  return rc;
}

/* "/api/messages/ID" and the like, ID escaped; 0 when it does not fit. */
static int path_with_id(char *out, size_t cap, const char *prefix, const char *id) {
  snprintf(out, cap, "%s", prefix);
  return mb_httpc_escape(id, out, cap);
}

static int get_message(const ops *o, const char *id, mb_json **doc, mb_err *err) {
  char path[1024];
  if (!path_with_id(path, sizeof path, "/api/messages/", id))
    return mb_err_set(err, MB_EINVAL, "message id too long");
  int rc = call(o, "GET", path, NULL, doc, err);
  if (rc == MB_ENOTFOUND) return mb_err_set(err, rc, "no message %s", id);
  return rc;
}

/* --- list ------------------------------------------------------------------------------ */

/* A string member of item escaped on one line (its first line only when first_only), "?"
 * when it is not a string. */
static void field(const mb_jv *item, const char *key, int first_only, char *out, size_t cap) {
  size_t n;
  const char *s = mb_jv_string(mb_jv_get(item, key), &n);
  if (s == NULL) s = "?", n = 1;
  if (first_only) n = strcspn(s, "\n") < n ? strcspn(s, "\n") : n;
  mb_log_escape(s, n, out, cap);
}

static void list_item(const mb_jv *item) {
  char id[160], type[800], queue[800], at[160], why[200];
  field(item, "id", 0, id, sizeof id);
  field(item, "type", 0, type, sizeof type);
  field(item, "queue", 0, queue, sizeof queue);
  field(item, "failed_at", 0, at, sizeof at);
  field(item, "exception", 1, why, sizeof why);
  printf("%s\t%s\t%s\t%s\t%s\n", id, type, queue, at, why);
}

/* One page: its items printed, *n their count, *total the service's count (-1: none). */
static int list_page(const ops *o, long page, size_t *n, long long *total, long long *seen,
                     mb_err *err) {
  char path[128];
  mb_json *doc;
  snprintf(path, sizeof path, "/api/errors?status=unresolved&per_page=%d&page=%ld", PER_PAGE,
           page);
  int rc = call(o, "GET", path, NULL, &doc, err);
  if (rc == MB_ENOTFOUND) rc = mb_err_set(err, MB_EIO, "the ops service has no /api/errors");
  if (rc != MB_OK) return rc;
  const mb_jv *root = mb_json_root(doc), *items = mb_jv_get(root, "items");
  const mb_jv *t = mb_jv_get(root, "total");
  if (mb_jv_type(items) != MB_JSON_ARRAY) {
    mb_json_free(doc);
    return mb_err_set(err, MB_EIO, "the ops service's %s has no items", path);
  }
  *total = mb_jv_type(t) == MB_JSON_NUMBER ? (long long)mb_jv_number(t) : -1;
  *n = mb_jv_len(items);
  if (page == 1) printf("%s\n", MB_CLI_ERRORS_HEADER); /* once the service answered */
  for (size_t i = 0; i < *n; i++) {
    list_item(mb_jv_at(items, i));
    if (++*seen % PROGRESS_EVERY == 0)
      fprintf(stderr, "moonbus: %lld of %lld failed messages read from %s\n", *seen, *total,
              o->base);
  }
  mb_json_free(doc);
  return MB_OK;
}

static int list(const ops *o, mb_err *err) {
  long long seen = 0, total = -1;
  for (long page = 1;; page++) {
    size_t n = 0;
    int rc = list_page(o, page, &n, &total, &seen, err);
    if (rc != MB_OK) return rc;
    if (n == 0 || (total >= 0 && seen >= total) || (total < 0 && n < PER_PAGE)) return MB_OK;
  }
}

/* --- show ------------------------------------------------------------------------------ */

static void print_if_string(const mb_jv *m, const char *key) {
  const char *s = mb_jv_get_string(m, key);
  if (s) printf("%s: %s\n", key, s);
}

static void print_headers(const mb_jv *h) {
  mb_cli_print_tried(mb_jv_get_string(h, MB_H_RETRIES_IMMEDIATE),
                     mb_jv_get_string(h, MB_H_RETRIES_DELAYED),
                     mb_jv_get_string(h, MB_H_FAILED_DELIVERIES));
  for (size_t i = 0; i < mb_jv_len(h) && mb_jv_type(h) == MB_JSON_OBJECT; i++) {
    const mb_jv *v = mb_jv_at(h, i);
    mb_jbuf text = MB_JBUF_INIT;
    if (mb_jv_type(v) != MB_JSON_STRING) mb_jbuf_value(&text, v);
    const char *s = text.data ? text.data : mb_jv_string(v, NULL);
    printf("%s: %s\n", mb_jv_key_at(h, i), s ? s : "");
    mb_jbuf_free(&text);
  }
}

static int show(const ops *o, const char *id, mb_err *err) {
  mb_json *doc;
  int rc = get_message(o, id, &doc, err);
  if (rc != MB_OK) return rc;
  const mb_jv *m = mb_json_root(doc);
  const char *type = mb_jv_get_string(m, "type");
  printf("id: %s\ntype: %s\n", id, type ? type : "");
  print_if_string(m, "correlation_id");
  print_if_string(m, "reply_to");
  print_if_string(m, "problem");
  print_if_string(m, "status");
  print_headers(mb_jv_get(m, "headers"));
  size_t len = 0;
  const char *body = mb_jv_string(mb_jv_get(m, "body"), &len);
  printf("\n");
  if (body) fwrite(body, 1, len, stdout);
  printf("\n");
  mb_json_free(doc);
  return MB_OK;
}

/* --- operations: retry, delete ---------------------------------------------------------- */

/* POST /api/errors/ACTION with body; opid gets the operation's id. */
static int start(const ops *o, const char *action, const mb_jbuf *body, char *opid, size_t cap,
                 mb_err *err) {
  char path[64];
  mb_json *doc;
  snprintf(path, sizeof path, "/api/errors/%s", action);
  if (body->failed) return mb_err_set(err, MB_ENOMEM, "out of memory");
  int rc = call(o, "POST", path, body, &doc, err);
  if (rc == MB_ENOTFOUND) rc = mb_err_set(err, MB_EIO, "the ops service has no %s", path);
  if (rc != MB_OK) return rc;
  const char *id = mb_jv_get_string(mb_json_root(doc), "operation");
  if (id == NULL || strlen(id) >= cap)
    rc = mb_err_set(err, MB_EIO, "the ops service's answer to %s names no operation", path);
  else snprintf(opid, cap, "%s", id);
  mb_json_free(doc);
  return rc;
}

static long long member_count(const mb_jv *root, const char *key) {
  const mb_jv *v = mb_jv_get(root, key);
  return mb_jv_type(v) == MB_JSON_NUMBER ? (long long)mb_jv_number(v) : 0;
}

/* One look at the operation: 1 when it is done, 0 when it runs, < 0 an error. */
static int look(const ops *o, const char *path, op_state *st, mb_err *err) {
  mb_json *doc;
  int rc = call(o, "GET", path, NULL, &doc, err);
  if (rc == MB_ENOTFOUND) rc = mb_err_set(err, MB_EIO, "the ops service lost %s", path);
  if (rc != MB_OK) return rc;
  const mb_jv *root = mb_json_root(doc);
  const char *state = mb_jv_get_string(root, "state"), *e = mb_jv_get_string(root, "error");
  st->total = member_count(root, "total");
  st->done = member_count(root, "done");
  st->failed = member_count(root, "failed");
  if (e) mb_log_escape(e, strlen(e), st->error, sizeof st->error);
  int done = state != NULL && strcmp(state, "done") == 0;
  mb_json_free(doc);
  return done;
}

/* Asks for the operation's state every 100 ms until it is done; with progress, a line on
 * stderr at most every second while it runs. */
static int follow(const ops *o, const char *opid, int progress, op_state *st, mb_err *err) {
  char path[512];
  if (!path_with_id(path, sizeof path, "/api/operations/", opid))
    return mb_err_set(err, MB_EIO, "operation id too long");
  double moved = now_s(), said = 0;
  long long last_done = -1;
  for (;;) {
    int rc = look(o, path, st, err);
    if (rc < 0) return rc;
    if (rc == 1) return MB_OK;
    double now = now_s();
    if (st->done != last_done) moved = now, last_done = st->done;
    if (now - moved > o->stall)
      return mb_err_set(err, MB_EIO,
                        "operation %s made no progress for %.0f s (%lld of %lld done)", opid,
                        o->stall, st->done, st->total);
    if (progress && now - said >= 1) {
      fprintf(stderr, "moonbus: %lld of %lld done (%lld failed)\n", st->done, st->total,
              st->failed);
      said = now;
    }
    struct timespec pause = {0, POLL_NS};
    nanosleep(&pause, NULL);
  }
}

static void ids_body(mb_jbuf *b, const char *id) {
  mb_jbuf_cstr_raw(b, "{\"ids\":[");
  mb_jbuf_cstr(b, id);
  mb_jbuf_cstr_raw(b, "]}");
}

/* retry ID or delete ID: the message must exist; the operation must end with it done. */
static int act_on_one(const ops *o, const char *action, const char *id, mb_err *err) {
  mb_json *doc;
  int rc = get_message(o, id, &doc, err);
  if (rc != MB_OK) return rc;
  const char *q = mb_jv_get_string(mb_json_root(doc), "queue");
  char queue[800];
  mb_log_escape(q ? q : "?", q ? strlen(q) : 1, queue, sizeof queue);
  mb_json_free(doc);
  mb_jbuf body = MB_JBUF_INIT;
  ids_body(&body, id);
  char opid[256];
  op_state st = {0, 0, 0, ""};
  rc = start(o, action, &body, opid, sizeof opid, err);
  mb_jbuf_free(&body);
  if (rc == MB_OK) rc = follow(o, opid, 0, &st, err);
  if (rc == MB_OK && (st.error[0] || st.failed > 0 || st.done < 1))
    rc = mb_err_set(err, MB_EIO, "%s of %s failed: %s", action, id,
                    st.error[0] ? st.error : "the ops service could not do it");
  if (rc == MB_OK && strcmp(action, "retry") == 0) printf("%s\t-> %s\n", id, queue);
  return rc;
}

static int retry_all(const ops *o, mb_err *err) {
  mb_jbuf body = MB_JBUF_INIT;
  mb_jbuf_cstr_raw(&body, "{\"all\":true}");
  char opid[256];
  op_state st = {0, 0, 0, ""};
  int rc = start(o, "retry", &body, opid, sizeof opid, err);
  mb_jbuf_free(&body);
  if (rc == MB_OK) rc = follow(o, opid, 1, &st, err);
  if (rc != MB_OK) return rc;
  fprintf(stderr, "moonbus: %lld of %lld failed messages sent back\n", st.done - st.failed,
          st.total);
  if (st.error[0] || st.failed > 0)
    return mb_err_set(err, MB_EIO, "%lld of %lld messages were not retried%s%s", st.failed,
                      st.total, st.error[0] ? ": " : "", st.error);
  return MB_OK;
}

int mb_cli_errors_ops(int argc, char **argv, const char *base, const mb_cli_opts *opts) {
  (void)argc;
  const char *what = argv[0], *arg = argv[1];
  ops o = {base, NULL, NULL, opts->timeout > 0 ? opts->timeout : 30,
           opts->timeout > 0 ? opts->timeout : 60};
  mb_err err = {0};
  if (opts->queue)
    fprintf(stderr, "moonbus: --queue is not used with --ops (the ops service reads every "
                    "error queue)\n");
  int rc = find_token(&o, opts, &err);
  if (rc == MB_OK) {
    if (strcmp(what, "list") == 0) rc = list(&o, &err);
    else if (strcmp(what, "show") == 0) rc = show(&o, arg, &err);
    else if (strcmp(what, "retry") == 0 && strcmp(arg, "--all") == 0) rc = retry_all(&o, &err);
    else rc = act_on_one(&o, what, arg, &err);
  }
  if (rc != MB_OK) mb_cli_fail(err.msg);
  if (o.token) {
    memset(o.token, 0, strlen(o.token));
    free(o.token);
  }
  return rc == MB_OK ? 0 : 1;
}
