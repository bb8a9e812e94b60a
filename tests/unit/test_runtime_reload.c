/* test_runtime_reload.c — a reload's declaration in runtime.c, on a real SQLite bus: what
 * a staged script declares stays apart from the running endpoint until adopted; adoption
 * refuses another name, another transport or no endpoint at all (and changes nothing),
 * keeps what cannot change in place, and makes the topology follow the subscriptions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ids.h"
#include "runtime.h"
#include "unit.h"

static char dir[] = "/tmp/moonbus-reload-XXXXXX";
static char url[300];

static int declare_endpoint(mb_runtime *rt, const char *name, unsigned concurrency) {
  mb_endpoint_cfg cfg;
  mb_err err;
  if (mb_endpoint_cfg_defaults(&cfg) != MB_OK) return MB_ENOMEM;
  cfg.name = strdup(name);
  cfg.concurrency = concurrency;
  return mb_runtime_configure(rt, &cfg, &err);
}

/* Publishes an event of type; returns how many messages queue "a" then holds. */
static long publish_and_count(mb_runtime *rt, const char *type) {
  mb_outgoing *m = malloc(sizeof *m);
  mb_outgoing_init(m);
  mb_uuidv7(m->env.id);
  mb_envelope_set_type(&m->env, type);
  mb_headers_set(&m->env.headers, MB_H_KIND, "event");
  mb_envelope_set_body(&m->env, "{}", 2);
  m->route = MB_ROUTE_PUBLISH;
  mb_err err;
  long ready = -1, later = -1;
  if (mb_runtime_dispatch(rt, &m, 1, &err) != MB_OK) printf("#   publish: %s\n", err.msg);
  mb_transport *t = mb_runtime_transport(rt);
  if (t->ops->depth(t, "a", &ready, &later, &err) != MB_OK) return -1;
  return ready;
}

static mb_runtime *running_endpoint(void) {
  mb_runtime *rt = mb_runtime_new(NULL, url, "unit");
  mb_err err;
  CHECK(declare_endpoint(rt, "a", 8) == MB_OK);
  CHECK(mb_runtime_subscribe(rt, "e.One") == MB_OK);
  CHECK(mb_runtime_connect(rt, &err) == MB_OK);
  return rt;
}

static void test_a_staged_declaration_stays_apart_until_adopted(void) {
  mb_runtime *rt = running_endpoint();
  mb_err err;
  CHECK(publish_and_count(rt, "e.One") == 1);
  CHECK(mb_runtime_stage(rt) == MB_OK);
  CHECK(declare_endpoint(rt, "a", 4) == MB_OK);
  CHECK(declare_endpoint(rt, "a", 4) == MB_EINVAL); /* one bus.endpoint{} per script */
  CHECK(mb_runtime_subscribe(rt, "e.Two") == MB_OK);
  CHECK(mb_runtime_n_subscriptions(rt) == 1 &&
        strcmp(mb_runtime_subscription(rt, 0), "e.One") == 0);
  CHECK(mb_runtime_cfg(rt)->concurrency == 8);
  CHECK(mb_runtime_adopt(rt, &err) == MB_OK);
  CHECK(!mb_runtime_staging(rt));
  CHECK(mb_runtime_n_subscriptions(rt) == 1 &&
        strcmp(mb_runtime_subscription(rt, 0), "e.Two") == 0);
  CHECK(mb_runtime_cfg(rt)->concurrency ==
        8); /* the consumer's prefetch cannot change in place */
  CHECK(publish_and_count(rt, "e.Two") == 2);
  CHECK(publish_and_count(rt, "e.One") == 2); /* unsubscribed */
  mb_runtime_free(rt);
}

static void test_another_endpoint_is_refused_and_changes_nothing(void) {
  mb_runtime *rt = running_endpoint();
  mb_err err;
  CHECK(mb_runtime_stage(rt) == MB_OK);
  CHECK(declare_endpoint(rt, "b", 8) == MB_OK);
  CHECK(mb_runtime_subscribe(rt, "e.Two") == MB_OK);
  CHECK(mb_runtime_adopt(rt, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "declares endpoint b, but this host runs a") != NULL);
  CHECK(!mb_runtime_staging(rt) && strcmp(mb_runtime_cfg(rt)->name, "a") == 0);
  CHECK(mb_runtime_n_subscriptions(rt) == 1 &&
        strcmp(mb_runtime_subscription(rt, 0), "e.One") == 0);
  CHECK(mb_runtime_stage(rt) == MB_OK); /* a script that declares nothing */
  CHECK(mb_runtime_adopt(rt, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "declares no endpoint") != NULL);
  CHECK(mb_runtime_stage(rt) == MB_OK);
  mb_endpoint_cfg cfg;
  mb_endpoint_cfg_defaults(&cfg);
  cfg.name = strdup("a");
  cfg.transport = strdup("amqp://elsewhere");
  CHECK(mb_runtime_configure(rt, &cfg, &err) == MB_OK);
  CHECK(mb_runtime_adopt(rt, &err) == MB_EINVAL);
  CHECK(strstr(err.msg, "transport") != NULL);
  CHECK(mb_runtime_cfg(rt)->transport == NULL);
  CHECK(publish_and_count(rt, "e.One") == 1); /* the running topology is untouched */
  mb_runtime_stage(rt);
  mb_runtime_free(rt); /* with a declaration still staged: nothing leaks */
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 1;
  snprintf(url, sizeof url, "sqlite://%s/one.db", dir);
  RUN(test_a_staged_declaration_stays_apart_until_adopted);
  snprintf(url, sizeof url, "sqlite://%s/two.db", dir);
  RUN(test_another_endpoint_is_refused_and_changes_nothing);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  return unit_done();
}
