/* test_rabbitmq_conn.c — amqp:// URL parsing (redaction: test_url.c), and logging in to the real
 * local broker (scripts/test.sh starts one and sets MOONBUS_TEST_AMQP): the capabilities
 * rabbitmq-c 0.11 leaves out are asked for, and failures never show the password. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/rabbitmq_conn.h"
#include "unit.h"

static void test_url_defaults(void) {
  mb_amqp_url u;
  mb_err err;
  CHECK(mb_amqp_url_parse("amqp://localhost", &u, &err) == MB_OK);
  CHECK(u.n_nodes == 1 && strcmp(u.nodes[0].host, "localhost") == 0 && u.nodes[0].port == 5672);
  CHECK(strcmp(u.user, "guest") == 0 && strcmp(u.password, "guest") == 0);
  CHECK(strcmp(u.vhost, "/") == 0 && u.heartbeat == 30 && !u.tls && u.verify);
  mb_amqp_url_free(&u);
  CHECK(mb_amqp_url_parse("amqps://h", &u, &err) == MB_OK && u.tls && u.nodes[0].port == 5671);
  mb_amqp_url_free(&u);
}

static void test_url_cluster_credentials_vhost_options(void) {
  mb_amqp_url u;
  mb_err err;
  CHECK(mb_amqp_url_parse("amqp://us%40er:p%3Ass@h1:5673,h2,h3:5675/my%2fvhost?heartbeat=10", &u,
                          &err) == MB_OK);
  CHECK(strcmp(u.user, "us@er") == 0 && strcmp(u.password, "p:ss") == 0);
  CHECK(u.n_nodes == 3 && u.nodes[0].port == 5673 && u.nodes[1].port == 5672);
  CHECK(strcmp(u.nodes[2].host, "h3") == 0 && u.nodes[2].port == 5675);
  CHECK(strcmp(u.vhost, "my/vhost") == 0 && u.heartbeat == 10);
  mb_amqp_url_free(&u);
  CHECK(mb_amqp_url_parse("amqps://h/?cacert=/ca.pem&cert=/c.pem&key=/k.pem&verify=none", &u,
                          &err) == MB_OK);
  CHECK(strcmp(u.cacert, "/ca.pem") == 0 && strcmp(u.key, "/k.pem") == 0 && !u.verify);
  mb_amqp_url_free(&u);
}

static void test_bad_urls_say_why_and_hide_the_password(void) {
  const char *bad[] = {"http://h",
                       "amqp://",
                       "amqp://u:secret@h:99999",
                       "amqp://u:secret@h:",
                       "amqp://u:secret@h1,",
                       "amqp://u:secret@h?bogus=1",
                       "amqp://u:secret@h?heartbeat=-1",
                       "amqp://u:sec%zzret@h",
                       "amqp://u:secret@h?cacert=/x",
                       "amqps://u:secret@h?cert=/c.pem",
                       "amqp://u:secret@h/%00"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    mb_amqp_url u;
    mb_err err = {0, ""};
    int rc = mb_amqp_url_parse(bad[i], &u, &err);
    if (rc != MB_EINVAL) printf("#   accepted: %s\n", bad[i]);
    CHECK(rc == MB_EINVAL && strstr(err.msg, "bad RabbitMQ URL"));
    CHECK(strstr(err.msg, "secret") == NULL);
  }
}

static const char *broker(void) {
  const char *url = getenv("MOONBUS_TEST_AMQP");
  if (url == NULL || *url == '\0')
    printf("#   MOONBUS_TEST_AMQP is not set: run via scripts/test.sh\n");
  return url;
}

/* What `rabbitmqctl list_connections` says of the connection called name. */
static int broker_shows(const char *name, const char *needle) {
  char cmd[256], line[8192];
  snprintf(cmd, sizeof cmd,
           "bash scripts/rabbitmq.sh ctl list_connections -q name client_properties 2>/dev/null");
  FILE *p = popen(cmd, "r");
  int found = 0;
  while (p && fgets(line, sizeof line, p))
    if (strstr(line, name) && strstr(line, needle)) found = 1;
  if (p) pclose(p);
  return found;
}

static void test_login_asks_for_the_missing_capabilities(void) {
  const char *url = broker();
  CHECK(url != NULL);
  if (url == NULL) return;
  mb_amqp_url u;
  mb_err err;
  amqp_connection_state_t conn = NULL;
  CHECK(mb_amqp_url_parse(url, &u, &err) == MB_OK);
  CHECK(mb_amqp_connect(&u, 0, "moonbus-unit-caps", &conn, &err) == MB_OK);
  CHECK(conn && amqp_get_frame_max(conn) == MB_AMQP_FRAME_MAX);
  CHECK(conn && amqp_get_heartbeat(conn) == 30);
  int shown = 0;
  for (int i = 0; i < 50 && !shown; i++) { /* the management view lags a little */
    shown = broker_shows("moonbus-unit-caps", "consumer_cancel_notify") &&
            broker_shows("moonbus-unit-caps", "connection.blocked");
    if (!shown) usleep(100000);
  }
  CHECK(shown);
  mb_amqp_disconnect(conn);
  mb_amqp_url_free(&u);
}

static void test_login_failures_name_the_node_not_the_password(void) {
  const char *url = broker();
  CHECK(url != NULL);
  if (url == NULL) return;
  mb_amqp_url good, u;
  mb_err err;
  amqp_connection_state_t conn = NULL;
  CHECK(mb_amqp_url_parse(url, &good, &err) == MB_OK);
  char bad[256];
  snprintf(bad, sizeof bad, "amqp://guest:wrongsecret@%s:%d", good.nodes[0].host,
           good.nodes[0].port);
  CHECK(mb_amqp_url_parse(bad, &u, &err) == MB_OK);
  CHECK(mb_amqp_connect(&u, 0, "moonbus-unit-bad", &conn, &err) == MB_EIO && conn == NULL);
  CHECK(strstr(err.msg, "cannot log in") && strstr(err.msg, "'guest'"));
  CHECK(strstr(err.msg, "wrongsecret") == NULL);
  mb_amqp_url_free(&u);
  CHECK(mb_amqp_url_parse("amqp://guest:guest@127.0.0.1:1?connect_timeout=1", &u, &err) == MB_OK);
  CHECK(mb_amqp_connect(&u, 0, "moonbus-unit-refused", &conn, &err) == MB_ENOTCONN);
  CHECK(strstr(err.msg, "127.0.0.1:1") != NULL);
  mb_amqp_url_free(&u);
  snprintf(bad, sizeof bad, "amqp://guest:guest@%s:%d/no-such-vhost", good.nodes[0].host,
           good.nodes[0].port);
  CHECK(mb_amqp_url_parse(bad, &u, &err) == MB_OK);
  CHECK(mb_amqp_connect(&u, 0, "moonbus-unit-vhost", &conn, &err) == MB_EIO);
  CHECK(strstr(err.msg, "no-such-vhost") != NULL);
  mb_amqp_url_free(&u);
  mb_amqp_url_free(&good);
}

int main(void) {
  RUN(test_url_defaults);
  RUN(test_url_cluster_credentials_vhost_options);
  RUN(test_bad_urls_say_why_and_hide_the_password);
  RUN(test_login_asks_for_the_missing_capabilities);
  RUN(test_login_failures_name_the_node_not_the_password);
  return unit_done();
}
