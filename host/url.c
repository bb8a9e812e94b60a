/* url.c — which part of a transport URL is a secret, and the URL or an error text made safe
 * to show (see url.h). Owns the rule "user info ends at the last '@'", which the RabbitMQ
 * URL parser uses too, so that what is parsed as a password is exactly what is hidden.
 * Never: allocates, or copies a byte of the user info into its output. */
#include "url.h"

#include <stdio.h>
#include <string.h>

int mb_url_userinfo(const char *url, const char **start, size_t *len) {
  const char *rest = url ? strstr(url, "://") : NULL;
  const char *at = rest ? strrchr(rest + 3, '@') : NULL;
  *start = rest ? rest + 3 : NULL;
  *len = at ? (size_t)(at - (rest + 3)) : 0;
  return at != NULL;
}

int mb_url_scheme(const char *url, char *out, size_t len) {
  size_t n = 0;
  if (len) out[0] = '\0';
  if (url == NULL || !((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z')))
    return 0;
  while (n <= MB_URL_SCHEME_MAX && url[n] &&
         ((url[n] >= 'a' && url[n] <= 'z') || (url[n] >= 'A' && url[n] <= 'Z') ||
          (url[n] >= '0' && url[n] <= '9') || url[n] == '+' || url[n] == '-' || url[n] == '.'))
    n++;
  if (n > MB_URL_SCHEME_MAX || strncmp(url + n, "://", 3) != 0) return 0;
  snprintf(out, len, "%.*s", (int)n, url);
  return 1;
}

static int all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return n >= 1 && n <= 5;
}

/* One node: host, host:port or [v6]:port. A password that lost its '@' ("user:secret")
 * does not pass: its "port" is not digits. */
static int node_looks_right(const char *s, size_t n) {
  const char *end = s + n, *colon;
  if (n > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (close == NULL) return 0;
    if (close + 1 == end) return 1;
    return close[1] == ':' && all_digits(close + 2, (size_t)(end - close - 2));
  }
  colon = memchr(s, ':', n);
  return colon == NULL || all_digits(colon + 1, (size_t)(end - colon - 1));
}

/* hosts[0..n) is empty or host[:port] nodes separated by commas. */
static int hosts_look_right(const char *hosts, size_t n) {
  while (n > 0) {
    const char *comma = memchr(hosts, ',', n);
    size_t len = comma ? (size_t)(comma - hosts) : n;
    if (!node_looks_right(hosts, len)) return 0;
    hosts += len + (comma ? 1 : 0);
    n -= len + (comma ? 1 : 0);
  }
  return 1;
}

/* Where the hosts part of a URL with a scheme begins. */
static const char *hosts_of(const char *url) {
  const char *ui;
  size_t n;
  return mb_url_userinfo(url, &ui, &n) ? ui + n + 1 : ui;
}

void mb_url_redact(const char *url, char *out, size_t len) {
  char scheme[MB_URL_SCHEME_MAX + 1];
  const char *ui;
  size_t n;
  if (len == 0) return;
  if (!mb_url_scheme(url, scheme, sizeof scheme)) {
    snprintf(out, len, "***");
    return;
  }
  const char *hosts = hosts_of(url);
  if (!hosts_look_right(hosts, strcspn(hosts, "/?"))) {
    snprintf(out, len, "%s://***", scheme);
    return;
  }
  if (!mb_url_userinfo(url, &ui, &n)) {
    snprintf(out, len, "%s://%s", scheme, hosts);
    return;
  }
  const char *colon = memchr(ui, ':', n); /* the user name is shown when it stands alone */
  size_t user = colon ? (size_t)(colon - ui) : 0;
  snprintf(out, len, "%s://%.*s%s***@%s", scheme, (int)user, ui, user ? ":" : "", hosts);
}

/* Every copy of needle[0..n) in msg becomes "***" (n > 0). */
static void replace_all(char *msg, size_t len, const char *needle, size_t n) {
  char out[1024];
  size_t o = 0, cap = len < sizeof out ? len : sizeof out;
  if (n == 0 || cap == 0) return;
  for (const char *p = msg; *p && o + 1 < cap;) {
    if (strncmp(p, needle, n) == 0) {
      size_t k = o + 3 < cap ? 3 : cap - 1 - o;
      memcpy(out + o, "***", k);
      o += k;
      p += n;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
  memcpy(msg, out, o + 1);
}

void mb_url_scrub(const char *url, char *msg, size_t len) {
  char scheme[MB_URL_SCHEME_MAX + 1];
  const char *ui;
  size_t n;
  if (url == NULL || msg == NULL) return;
  if (!mb_url_scheme(url, scheme, sizeof scheme)) {
    replace_all(msg, len, url, strlen(url));
    return;
  }
  if (mb_url_userinfo(url, &ui, &n)) replace_all(msg, len, ui, n);
  const char *hosts = hosts_of(url);
  if (!hosts_look_right(hosts, strcspn(hosts, "/?"))) {
    const char *rest = strstr(url, "://") + 3;
    replace_all(msg, len, rest, strlen(rest));
    replace_all(msg, len, rest, strcspn(rest, "/?"));
  }
}
