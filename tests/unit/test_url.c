/* test_url.c — a transport URL's password never shows: hostile and mis-encoded URLs
 * (a password with '@', '/', ':' or '?' unescaped, one that lost its '@', an unknown or
 * malformed scheme) go through the redactor, the RabbitMQ URL parser, mb_transport_open
 * and the log, and the secret appears in none of their texts; the parser splits the user
 * info at the last '@', so that what it takes as the password is what is hidden. */
#include <ev.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "transport.h"
#include "transport/rabbitmq_conn.h"
#include "unit.h"
#include "url.h"

/* Every URL holds the secret "S3cr3t" (or a part of it that must not show). Port 1 on the
 * loopback refuses at once, so opening one never waits. */
static const char *const hostile[] = {
    "amqp://admin:S3cr3t/Pa55@127.0.0.1:1/x",
    "amqp://admin:S3cr3t/Pa55@127.0.0.1:1",
    "amqp://admin:p@S3cr3t@127.0.0.1:1/",
    "amqp://admin:S3cr3t@@127.0.0.1:1/",
    "amqp://admin:S3cr3t?x@127.0.0.1:1/vh",
    "amqp://admin:S3cr3t:more@127.0.0.1:1/vh",
    "amqp://admin:S3cr3t#frag@127.0.0.1:1/vh",
    "amqp://admin:S3cr3t",
    "amqp://admin:S3cr3t/",
    "amqp://admin:S3cr3t/Pa55",
    "amqp://admin:S3cr3t/Pa55/vh",
    "amqp://admin:S3cr3t,h2/vh",
    "amqp://admin:S3cr3t@",
    "amqp://admin:S3cr3t@/vh",
    "amqp://admin:S3cr3t@127.0.0.1:99999/vh",
    "amqp://admin:S3cr3t@127.0.0.1:1/vh?heartbeat=oops",
    "amqp://admin:S3c%zzr3t@127.0.0.1:1/vh",
    "amqps://admin:S3cr3t/x@127.0.0.1:1/vh?cacert=/nonexistent",
    "amqp:/admin:S3cr3t@127.0.0.1:1/",
    "amqp:admin:S3cr3t@127.0.0.1:1/",
    "admin:S3cr3t@127.0.0.1:1",
    "S3cr3t",
    "redis://admin:S3cr3t@127.0.0.1:1/",
    "rediss://S3cr3t/Pa55@127.0.0.1:1/",
    "S3cr3tS3cr3tS3cr3tS3cr3t://h",
    "x y://admin:S3cr3t@h",
    "sqlite://admin:S3cr3t@/",
    "sqlite://admin:S3cr3t@127.0.0.1:1/",
    "AMQP://admin:S3cr3t@127.0.0.1:1/",
    "amqp://S3cr3t@127.0.0.1:1/",
    "amqp://S3cr3t/Pa55@127.0.0.1:1/",
};

/* No part of the secret that would identify it. */
static int leaks(const char *text) {
  return strstr(text, "S3cr3t") || strstr(text, "Pa55") || strstr(text, "3cr3") ||
         strstr(text, "p@S3");
}

static void redact_hides_the_secret_of_every_hostile_url(void) {
  for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
    char out[256];
    mb_url_redact(hostile[i], out, sizeof out);
    if (leaks(out)) printf("#   %s -> %s\n", hostile[i], out);
    CHECK(!leaks(out));
  }
}

static void redact_keeps_what_helps(void) {
  char out[256];
  mb_url_redact("amqp://user:secret@h1:5672,h2/v?heartbeat=5", out, sizeof out);
  CHECK(strcmp(out, "amqp://user:***@h1:5672,h2/v?heartbeat=5") == 0);
  mb_url_redact("amqp://h/v", out, sizeof out);
  CHECK(strcmp(out, "amqp://h/v") == 0);
  mb_url_redact("amqp://admin:S3cr3t/Pa55@127.0.0.1:1/x", out, sizeof out);
  CHECK(strcmp(out, "amqp://admin:***@127.0.0.1:1/x") == 0);
  mb_url_redact("amqp://admin:p@ssw0rd@127.0.0.1/", out, sizeof out);
  CHECK(strcmp(out, "amqp://admin:***@127.0.0.1/") == 0);
  mb_url_redact("amqp://S3cr3t@h/", out, sizeof out); /* no ':': no user name alone */
  CHECK(strcmp(out, "amqp://***@h/") == 0);
  mb_url_redact("amqp://admin:S3cr3t/Pa55", out, sizeof out);
  CHECK(strcmp(out, "amqp://***") == 0);
  mb_url_redact("amqps://[::1]:5671/v", out, sizeof out);
  CHECK(strcmp(out, "amqps://[::1]:5671/v") == 0);
  mb_url_redact("sqlite:///var/lib/bus.db?synchronous=normal", out, sizeof out);
  CHECK(strcmp(out, "sqlite:///var/lib/bus.db?synchronous=normal") == 0);
  mb_url_redact("sqlite://./.moonbus/bus.db", out, sizeof out);
  CHECK(strcmp(out, "sqlite://./.moonbus/bus.db") == 0);
  mb_url_redact("admin:S3cr3t@h", out, sizeof out);
  CHECK(strcmp(out, "***") == 0);
  mb_url_redact(NULL, out, sizeof out);
  CHECK(strcmp(out, "***") == 0);
}

static void scheme_is_shown_only_when_well_formed(void) {
  char s[MB_URL_SCHEME_MAX + 1];
  CHECK(mb_url_scheme("redis://x", s, sizeof s) && strcmp(s, "redis") == 0);
  CHECK(mb_url_scheme("svc+tcp.v-2://x", s, sizeof s) && strcmp(s, "svc+tcp.v-2") == 0);
  CHECK(!mb_url_scheme("admin:S3cr3t@h", s, sizeof s) && s[0] == '\0');
  CHECK(!mb_url_scheme("S3cr3tS3cr3tS3cr3tS3cr3t://h", s, sizeof s));
  CHECK(!mb_url_scheme("1amqp://h", s, sizeof s));
  CHECK(!mb_url_scheme("x y://h", s, sizeof s));
  CHECK(!mb_url_scheme("amqp:/h", s, sizeof s));
}

static void scrub_removes_a_quoted_url(void) {
  char msg[MB_ERRLEN];
  snprintf(msg, sizeof msg, "the sqlite URL 'sqlite://admin:S3cr3t@/' names a folder");
  mb_url_scrub("sqlite://admin:S3cr3t@/", msg, sizeof msg);
  CHECK(strcmp(msg, "the sqlite URL 'sqlite://***@/' names a folder") == 0); /* all of it */
  snprintf(msg, sizeof msg, "cannot open admin:S3cr3t/Pa55 here");
  mb_url_scrub("amqp://admin:S3cr3t/Pa55", msg, sizeof msg);
  CHECK(!leaks(msg));
}

static void parser_splits_user_info_at_the_last_at(void) {
  mb_amqp_url u;
  mb_err err;
  CHECK(mb_amqp_url_parse("amqp://admin:p@ssw0rd@127.0.0.1/", &u, &err) == MB_OK);
  CHECK(strcmp(u.user, "admin") == 0 && strcmp(u.password, "p@ssw0rd") == 0);
  CHECK(u.n_nodes == 1 && strcmp(u.nodes[0].host, "127.0.0.1") == 0 && strcmp(u.vhost, "/") == 0);
  mb_amqp_url_free(&u);
  CHECK(mb_amqp_url_parse("amqp://admin:S3cr3t/Pa55@h:5673/vh", &u, &err) == MB_OK);
  CHECK(strcmp(u.password, "S3cr3t/Pa55") == 0 && strcmp(u.nodes[0].host, "h") == 0);
  CHECK(u.nodes[0].port == 5673 && strcmp(u.vhost, "vh") == 0);
  mb_amqp_url_free(&u);
  CHECK(mb_amqp_url_parse("amqp://u:a?b@h/v%40x?heartbeat=0", &u, &err) == MB_OK);
  CHECK(strcmp(u.password, "a?b") == 0 && strcmp(u.vhost, "v@x") == 0 && u.heartbeat == 0);
  mb_amqp_url_free(&u);
}

static void parse_errors_never_show_the_secret(void) {
  for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
    mb_amqp_url u;
    mb_err err = {0, ""};
    if (mb_amqp_url_parse(hostile[i], &u, &err) == MB_OK) {
      mb_amqp_url_free(&u);
      continue;
    }
    if (leaks(err.msg)) printf("#   %s -> %s\n", hostile[i], err.msg);
    CHECK(!leaks(err.msg));
  }
}

/* The whole way a CLI command goes: the transport is opened (parse, connect to a closed
 * port), and neither its error nor anything logged shows the secret. */
static void opening_never_shows_the_secret(void) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
    mb_transport *t = NULL;
    mb_err err = {0, ""};
    size_t n;
    mb_log_capture(1, MB_DEBUG);
    int rc = mb_transport_open(&t, loop, hostile[i], "test-url", &err);
    if (t) t->ops->close(t);
    const char *logged = mb_log_captured(&n);
    char copy[4096];
    snprintf(copy, sizeof copy, "%.*s", (int)(n < sizeof copy ? n : sizeof copy - 1), logged);
    mb_log_capture(0, MB_DEBUG);
    CHECK(rc != MB_OK);
    if (leaks(err.msg) || leaks(copy)) printf("#   %s -> %s | %s\n", hostile[i], err.msg, copy);
    CHECK(!leaks(err.msg) && !leaks(copy));
  }
  ev_loop_destroy(loop);
}

static void unknown_schemes_show_only_their_name(void) {
  mb_transport *t = NULL;
  mb_err err;
  CHECK(mb_transport_open(&t, NULL, "redis://admin:S3cr3t@h/", "x", &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "unknown transport scheme 'redis'") != NULL);
  CHECK(mb_transport_open(&t, NULL, "admin:S3cr3t@127.0.0.1", "x", &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "does not start with a scheme") != NULL && !leaks(err.msg));
}

int main(void) {
  if (freopen("/dev/null", "w", stderr) == NULL) return 1; /* the log is read captured */
  RUN(redact_hides_the_secret_of_every_hostile_url);
  RUN(redact_keeps_what_helps);
  RUN(scheme_is_shown_only_when_well_formed);
  RUN(scrub_removes_a_quoted_url);
  RUN(parser_splits_user_info_at_the_last_at);
  RUN(parse_errors_never_show_the_secret);
  RUN(opening_never_shows_the_secret);
  RUN(unknown_schemes_show_only_their_name);
  return unit_done();
}
