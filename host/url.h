/* url.h — the one place that decides which part of a transport URL is a secret, and makes
 * a URL (or an error message that quotes one) safe to show. Every transport, the CLI and
 * the logs go through it; nothing else prints a URL.
 *
 * The user info of scheme://[userinfo@]hosts[/path][?options] is everything between
 * "://" and the LAST '@' of the URL; the password is what follows its first ':'. So a
 * password may hold '@', '/', ':' or '?' unescaped and still never shows (an '@' in a
 * vhost or an option must be written %40). A URL whose hosts part is not host[:port],...
 * (a password that lost its '@') shows nothing past "scheme://"; a string that does not
 * start with a well-formed scheme and "://" shows nothing at all.
 *
 * Provides: mb_url_userinfo, mb_url_scheme, mb_url_redact, mb_url_scrub.
 * Never: allocates, or writes a password (or user info without a ':') into its output. */
#ifndef MOONBUS_URL_H
#define MOONBUS_URL_H

#include <stddef.h>

#define MB_URL_SCHEME_MAX 16

/* Where the user info of url starts and how long it is; 0 (and *len 0) when url has no
 * "://" or no '@' after it. */
int mb_url_userinfo(const char *url, const char **start, size_t *len);
/* 1 and the scheme in out when url starts with 1-16 letters, digits, '+', '-' or '.' (a
 * letter first) and "://"; else 0 and "" (nothing of url may then be shown). */
int mb_url_scheme(const char *url, char *out, size_t len);
/* url as it may be shown, cut to len - 1 bytes: the scheme, "://", then "user:***@" for
 * user info with a ':' (the user name is what precedes the first one) or "***@" for user
 * info without one, then the hosts, vhost and options. Only the scheme, "://" and "***"
 * when the hosts part is not host[:port],...; only "***" when url does not start with a
 * scheme. */
void mb_url_redact(const char *url, char *out, size_t len);
/* Replaces in msg (a NUL-terminated buffer of len bytes, at most 1024 kept) every copy of
 * url's secrets with "***": its user info, and for a URL whose hosts part is not
 * host[:port],..., everything after "://" and its hosts part; for a string that is not a
 * URL, all of it. For error texts that quoted the URL raw. */
void mb_url_scrub(const char *url, char *msg, size_t len);

#endif
