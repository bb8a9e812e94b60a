/* http.h — a small HTTP/1.1 server on the host's libev loop (DESIGN §10, §11): the ops
 * service's API and UI, and later `moonbus run --metrics`.
 *
 * Provides: start/stop a listener, the request a handler sees (method, path, query
 * arguments, headers, body, whether the peer is on loopback) and the one response it gives.
 * Uses: libmicrohttpd in external-select mode (its epoll fd under an ev_io, MHD_get_timeout
 * on an ev_timer): one thread, the loop's.
 * Never: blocks the loop, answers a request twice, or lets a handler see a body larger than
 * max_body (that is 413 before the handler runs). */
#ifndef MOONBUS_HTTP_H
#define MOONBUS_HTTP_H

#include <stddef.h>

#include "status.h"

struct ev_loop;

typedef struct mb_http mb_http;
typedef struct mb_http_req mb_http_req;

/* Called once per complete request, on the loop; it must call mb_http_respond (or
 * mb_http_respond_static) exactly once before it returns. */
typedef void (*mb_http_handler)(void *ud, mb_http_req *req);

/* Listens on listen ("HOST:PORT", "127.0.0.1:7070", "[::1]:7070", "0.0.0.0:0" for any free
 * port) and hands every request to fn. MB_EINVAL for an address that does not parse,
 * MB_EIO (naming the address and errno's text) when it cannot bind. */
int mb_http_start(mb_http **out, struct ev_loop *loop, const char *listen, size_t max_body,
                  mb_http_handler fn, void *ud, mb_err *err);
/* Stops listening, drops open connections and frees h (NULL is fine). */
void mb_http_stop(mb_http *h);
/* The port actually bound (the one asked for, or the one the OS chose for port 0). */
int mb_http_port(const mb_http *h);
/* 1 if the listen address is a loopback one (127.0.0.0/8, ::1, "localhost"). */
int mb_http_listens_on_loopback(const mb_http *h);

/* --- the request ------------------------------------------------------------------- */
const char *mb_http_method(const mb_http_req *r); /* "GET", "POST", ... */
const char *mb_http_path(const mb_http_req *r);   /* percent-decoded, without the query */
/* A query argument, percent-decoded, or NULL when absent. */
const char *mb_http_arg(const mb_http_req *r, const char *key);
/* A request header (case-insensitive name), or NULL. */
const char *mb_http_header(const mb_http_req *r, const char *name);
/* The request body (NUL-terminated; "" when none) and its length. */
const char *mb_http_body(const mb_http_req *r, size_t *len);
/* 1 if the peer's address is a loopback one. */
int mb_http_peer_is_loopback(const mb_http_req *r);

/* --- the response ------------------------------------------------------------------ */
/* Answers with status, content_type and a copy of body[0..len). Every answer carries
 * X-Content-Type-Options: nosniff and Cache-Control: no-store; an HTML answer also a
 * Content-Security-Policy that allows only the service's own scripts and styles.
 * extra: NULL or NULL-terminated name, value pairs of further headers.
 * MB_OK, or MB_ENOMEM/MB_EIO when the answer could not be queued (the connection is then
 * closed). */
int mb_http_respond(mb_http_req *r, int status, const char *content_type, const char *body,
                    size_t len, const char *const *extra);
/* As mb_http_respond for data that lives as long as the process (compiled-in files): not
 * copied. */
int mb_http_respond_static(mb_http_req *r, int status, const char *content_type, const void *data,
                           size_t len);

#endif
