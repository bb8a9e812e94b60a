/* test_web.c — the embedded web UI (web.h, the table scripts/embed-web.sh generates from
 * host/ops/web/): "/" and the files the page loads are found with their content types, the
 * bytes end in a NUL, and a path that is not in the table (unknown, "..", empty, NULL) is not. */
#include <string.h>

#include "ops/web.h"
#include "unit.h"

static int starts(const char *s, const char *prefix) {
  return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int contains(const mb_web_file *f, const char *needle) {
  return f && strstr((const char *)f->data, needle) != NULL;
}

static void test_root_is_index_html(void) {
  const mb_web_file *root = mb_ops_web_find("/");
  const mb_web_file *index = mb_ops_web_find("/index.html");
  CHECK(root != NULL);
  CHECK(root == index);
  CHECK(root && starts(root->content_type, "text/html"));
  CHECK(contains(root, "<!DOCTYPE html>"));
  CHECK(contains(root, "app.js"));
  CHECK(root && root->data[root->len] == '\0' && strlen((const char *)root->data) == root->len);
}

static void test_app_js_and_style_css(void) {
  const mb_web_file *js = mb_ops_web_find("/app.js");
  const mb_web_file *css = mb_ops_web_find("/style.css");
  CHECK(js && starts(js->content_type, "text/javascript"));
  CHECK(contains(js, "DOMContentLoaded"));
  CHECK(css && starts(css->content_type, "text/css"));
  CHECK(mb_ops_web_find("/app.js?v=2") == js);
}

static void test_unknown_paths_are_null(void) {
  CHECK(mb_ops_web_find("/nope.js") == NULL);
  CHECK(mb_ops_web_find("/../Makefile") == NULL);
  CHECK(mb_ops_web_find("app.js") == NULL);
  CHECK(mb_ops_web_find("/app.js/") == NULL);
  CHECK(mb_ops_web_find("") == NULL);
  CHECK(mb_ops_web_find(NULL) == NULL);
}

static void test_the_table_is_whole(void) {
  CHECK(mb_ops_web_nfiles >= 3);
  for (size_t i = 0; i < mb_ops_web_nfiles; i++) {
    const mb_web_file *f = &mb_ops_web_files[i];
    CHECK(f->path[0] == '/' && f->content_type && f->len > 0);
    CHECK(mb_ops_web_find(f->path) == f);
  }
}

int main(void) {
  RUN(test_root_is_index_html);
  RUN(test_app_js_and_style_css);
  RUN(test_unknown_paths_are_null);
  RUN(test_the_table_is_whole);
  return unit_done();
}
