/* web.c — finds a file of the embedded web UI by its URL path (the table is generated from
 * host/ops/web/ by scripts/embed-web.sh).
 * Never: touches the file system; answers anything but an exact match of the table. */
#include <string.h>

#include "web.h"

const mb_web_file *mb_ops_web_find(const char *path) {
  if (!path) return NULL;
  size_t n = strcspn(path, "?");
  if (n == 1 && path[0] == '/') {
    path = "/index.html";
    n = strlen(path);
  }
  for (size_t i = 0; i < mb_ops_web_nfiles; i++) {
    const char *p = mb_ops_web_files[i].path;
    if (strlen(p) == n && memcmp(p, path, n) == 0) return &mb_ops_web_files[i];
  }
  return NULL;
}
