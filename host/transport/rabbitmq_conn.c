/* rabbitmq_conn.c — parses amqp:// URLs, opens and logs in AMQP connections, and turns
 * rabbitmq-c's replies into moonbus errors. Owns nothing once a connection is handed out.
 * Never puts a password in an error message (url.c's mb_url_redact is the only way a URL
 * is printed, and its rule for where the user info ends is the one parsed here). */
#include "transport/rabbitmq_conn.h"

#include "url.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* --- URLs -------------------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A percent-decoded copy of s[0..len), or NULL on a bad escape or an escaped NUL. */
static char *decode(const char *s, size_t len) {
  char *out = malloc(len + 1), *o = out;
  if (out == NULL) return NULL;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '%') {
      *o++ = s[i];
      continue;
    }
    int hi = i + 2 < len ? hexval(s[i + 1]) : -1, lo = i + 2 < len ? hexval(s[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi | lo) == 0) {
      free(out);
      return NULL;
    }
    *o++ = (char)(hi * 16 + lo);
    i += 2;
  }
  *o = '\0';
  return out;
}

static int bad_url(const char *url, const char *why, mb_err *err) {
  char shown[256];
  mb_url_redact(url, shown, sizeof shown);
  return mb_err_set(err, MB_EINVAL, "bad RabbitMQ URL '%s': %s", shown, why);
}

static int parse_nodes(mb_amqp_url *u, const char *s, size_t len, int default_port) {
  while (len > 0) {
    if (u->n_nodes == MB_AMQP_MAX_NODES) return -1;
    const char *comma = memchr(s, ',', len);
    size_t n = comma ? (size_t)(comma - s) : len;
    const char *colon = memchr(s, ':', n);
    size_t hlen = colon ? (size_t)(colon - s) : n;
    int port = default_port;
    if (colon) {
      char digits[8] = {0}, *end;
      size_t plen = n - hlen - 1;
      if (plen == 0 || plen >= sizeof digits) return -1;
      memcpy(digits, colon + 1, plen);
      long p = strtol(digits, &end, 10);
      if (*end || p < 1 || p > 65535) return -1;
      port = (int)p;
    }
    if (hlen == 0) return -1;
    mb_amqp_node *node = &u->nodes[u->n_nodes++];
    if ((node->host = strndup(s, hlen)) == NULL) return -1;
    node->port = port;
    s += n + (comma ? 1 : 0);
    len -= n + (comma ? 1 : 0);
    if (comma && len == 0) return -1;
  }
  return u->n_nodes ? 0 : -1;
}

static int set_string(char **field, const char *v) {
  free(*field);
  return (*field = strdup(v)) ? 0 : -1;
}

/* One name=value option; returns a reason or NULL. */
static const char *parse_option(mb_amqp_url *u, char *opt) {
  char *eq = strchr(opt, '='), *end;
  if (eq == NULL) return "an option must be name=value";
  *eq = '\0';
  const char *name = opt, *value = eq + 1;
  if (strcmp(name, "heartbeat") == 0) {
    long v = strtol(value, &end, 10);
    if (*end || v < 0 || v > 600) return "heartbeat must be 0-600 seconds";
    u->heartbeat = (int)v;
  } else if (strcmp(name, "connect_timeout") == 0) {
    double v = strtod(value, &end);
    if (*end || v <= 0 || v > 300) return "connect_timeout must be 0-300 seconds";
    u->connect_timeout = v;
  } else if (strcmp(name, "verify") == 0) {
    if (strcmp(value, "peer") && strcmp(value, "none")) return "verify must be peer or none";
    u->verify = strcmp(value, "peer") == 0;
  } else if (strcmp(name, "cacert") == 0) {
    if (set_string(&u->cacert, value)) return "out of memory";
  } else if (strcmp(name, "cert") == 0) {
    if (set_string(&u->cert, value)) return "out of memory";
  } else if (strcmp(name, "key") == 0) {
    if (set_string(&u->key, value)) return "out of memory";
  } else if (strcmp(name, "replies") == 0) {
    if (strcmp(value, "direct") && strcmp(value, "queue"))
      return "replies must be direct or queue";
    u->reply_queue = strcmp(value, "queue") == 0;
  } else {
    return "unknown option (use heartbeat, connect_timeout, cacert, cert, key, verify, replies)";
  }
  return NULL;
}

static const char *parse_options(mb_amqp_url *u, const char *query) {
  char opts[1024];
  if (strlen(query) >= sizeof opts) return "options are too long";
  snprintf(opts, sizeof opts, "%s", query);
  char *save = NULL;
  for (char *o = strtok_r(opts, "&", &save); o; o = strtok_r(NULL, "&", &save)) {
    const char *why = parse_option(u, o);
    if (why) return why;
  }
  return NULL;
}

static const char *parse_userinfo(mb_amqp_url *u, const char *s, size_t len) {
  const char *colon = memchr(s, ':', len);
  size_t ulen = colon ? (size_t)(colon - s) : len;
  u->user = decode(s, ulen);
  u->password = colon ? decode(colon + 1, len - ulen - 1) : strdup("guest");
  if (u->user == NULL || u->password == NULL) return "bad %-escape in user or password";
  if (u->user[0] == '\0') return "the user name is empty";
  return NULL;
}

int mb_amqp_url_parse(const char *url, mb_amqp_url *u, mb_err *err) {
  memset(u, 0, sizeof *u);
  u->heartbeat = 30;
  u->connect_timeout = 5;
  u->verify = 1;
  const char *why = NULL, *rest;
  if (strncmp(url, "amqp://", 7) == 0) rest = url + 7;
  else if (strncmp(url, "amqps://", 8) == 0) rest = url + 8, u->tls = 1;
  else return bad_url(url, "it must start with amqp:// or amqps://", err);
  const char *userinfo;
  size_t ulen;
  int has_userinfo = mb_url_userinfo(url, &userinfo, &ulen);
  if (has_userinfo) why = parse_userinfo(u, userinfo, ulen);
  else if ((u->user = strdup("guest")) == NULL || (u->password = strdup("guest")) == NULL)
    why = "out of memory";
  const char *hosts = has_userinfo ? userinfo + ulen + 1 : rest;
  size_t hosts_len = strcspn(hosts, "/?");
  if (!why && parse_nodes(u, hosts, hosts_len, u->tls ? 5671 : 5672))
    why = "it must name host[:port] nodes separated by commas (at most 8)";
  const char *path = hosts + hosts_len;
  if (!why && *path == '/') {
    size_t vlen = strcspn(path + 1, "?");
    u->vhost = vlen ? decode(path + 1, vlen) : strdup("/");
    if (u->vhost == NULL) why = "bad %-escape in the vhost";
    path += 1 + vlen;
  } else if (!why && (u->vhost = strdup("/")) == NULL) {
    why = "out of memory";
  }
  if (!why && *path == '?') why = parse_options(u, path + 1);
  if (!why && (u->cert != NULL) != (u->key != NULL)) why = "cert and key go together";
  if (!why && !u->tls && (u->cacert || u->cert)) why = "TLS options need amqps://";
  if (why) {
    mb_amqp_url_free(u);
    return bad_url(url, why, err);
  }
  return MB_OK;
}

void mb_amqp_url_free(mb_amqp_url *u) {
  for (size_t i = 0; i < u->n_nodes; i++) free(u->nodes[i].host);
  free(u->user);
  free(u->password);
  free(u->vhost);
  free(u->cacert);
  free(u->cert);
  free(u->key);
  memset(u, 0, sizeof *u);
}

/* --- replies ---------------------------------------------------------------------------- */

static void close_text(const amqp_rpc_reply_t *r, int *code, char *buf, size_t len) {
  amqp_bytes_t text = {0, NULL};
  *code = 0;
  if (r->reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const amqp_channel_close_t *m = r->reply.decoded;
    *code = m->reply_code;
    text = m->reply_text;
  } else if (r->reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const amqp_connection_close_t *m = r->reply.decoded;
    *code = m->reply_code;
    text = m->reply_text;
  }
  if (text.bytes) snprintf(buf, len, "%.*s", (int)text.len, (const char *)text.bytes);
  else snprintf(buf, len, "unexpected method 0x%08x from the broker", r->reply.id);
}

int mb_amqp_reply_error(amqp_rpc_reply_t r, const char *what, int *code, mb_err *err) {
  int ignored;
  if (code == NULL) code = &ignored;
  *code = 0;
  switch (r.reply_type) {
  case AMQP_RESPONSE_NORMAL: return MB_OK;
  case AMQP_RESPONSE_NONE: return mb_err_set(err, MB_EIO, "%s: the broker did not answer", what);
  case AMQP_RESPONSE_LIBRARY_EXCEPTION:
    return mb_err_set(err, MB_EIO, "%s: %s", what, amqp_error_string2(r.library_error));
  case AMQP_RESPONSE_SERVER_EXCEPTION: {
    char text[300];
    close_text(&r, code, text, sizeof text);
    return mb_err_set(err, MB_EIO, "%s: %s", what, text);
  }
  }
  return mb_err_set(err, MB_EIO, "%s: unknown reply", what);
}

/* --- connections ------------------------------------------------------------------------- */

static struct timeval seconds(double s) {
  struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
  return tv;
}

static amqp_socket_t *new_socket(amqp_connection_state_t conn, const mb_amqp_url *u,
                                 mb_err *err) {
  if (!u->tls) {
    amqp_socket_t *s = amqp_tcp_socket_new(conn);
    if (s == NULL) mb_err_set(err, MB_ENOMEM, "cannot create a socket");
    return s;
  }
  amqp_socket_t *s = amqp_ssl_socket_new(conn);
  if (s == NULL) {
    mb_err_set(err, MB_ENOMEM, "cannot create a TLS socket");
    return NULL;
  }
  int rc = amqp_ssl_socket_set_ssl_versions(s, AMQP_TLSv1_2, AMQP_TLSvLATEST);
  amqp_ssl_socket_set_verify_peer(s, u->verify);
  amqp_ssl_socket_set_verify_hostname(s, u->verify);
  if (rc == AMQP_STATUS_OK && u->cacert) rc = amqp_ssl_socket_set_cacert(s, u->cacert);
  if (rc == AMQP_STATUS_OK && u->cert) rc = amqp_ssl_socket_set_key(s, u->cert, u->key);
  if (rc != AMQP_STATUS_OK) {
    mb_err_set(err, MB_EINVAL, "TLS set-up failed (cacert, cert, key): %s",
               amqp_error_string2(rc));
    return NULL;
  }
  return s;
}

static amqp_table_entry_t bool_entry(const char *key) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e.value.value.boolean = 1;
  return e;
}

static amqp_rpc_reply_t login(amqp_connection_state_t conn, const mb_amqp_url *u,
                              const char *name) {
  amqp_table_entry_t caps[] = {bool_entry("consumer_cancel_notify"),
                               bool_entry("connection.blocked"), bool_entry("publisher_confirms"),
                               bool_entry("basic.nack")};
  amqp_table_entry_t props[2];
  props[0].key = amqp_cstring_bytes("capabilities");
  props[0].value.kind = AMQP_FIELD_KIND_TABLE;
  props[0].value.value.table.num_entries = 4;
  props[0].value.value.table.entries = caps;
  props[1].key = amqp_cstring_bytes("connection_name");
  props[1].value.kind = AMQP_FIELD_KIND_UTF8;
  props[1].value.value.bytes = amqp_cstring_bytes(name);
  amqp_table_t table = {2, props};
  return amqp_login_with_properties(conn, u->vhost, 0, MB_AMQP_FRAME_MAX, u->heartbeat, &table,
                                    AMQP_SASL_METHOD_PLAIN, u->user, u->password);
}

int mb_amqp_connect(const mb_amqp_url *u, size_t i, const char *name,
                    amqp_connection_state_t *out, mb_err *err) {
  const mb_amqp_node *node = &u->nodes[i % u->n_nodes];
  struct timeval tv = seconds(u->connect_timeout);
  amqp_connection_state_t conn = amqp_new_connection();
  *out = NULL;
  if (conn == NULL) return mb_err_set(err, MB_ENOMEM, "out of memory");
  amqp_socket_t *sock = new_socket(conn, u, err);
  int rc = sock ? amqp_socket_open_noblock(sock, node->host, node->port, &tv) : AMQP_STATUS_OK;
  if (sock && rc != AMQP_STATUS_OK)
    mb_err_set(err, MB_ENOTCONN, "cannot connect to RabbitMQ at %s:%d: %s", node->host,
               node->port, amqp_error_string2(rc));
  if (sock == NULL || rc != AMQP_STATUS_OK) {
    amqp_destroy_connection(conn);
    return err->status;
  }
  if (amqp_set_handshake_timeout(conn, &tv) != AMQP_STATUS_OK ||
      amqp_set_rpc_timeout(conn, &tv) != AMQP_STATUS_OK) {
    amqp_destroy_connection(conn);
    return mb_err_set(err, MB_EIO, "cannot set AMQP timeouts");
  }
  char what[300];
  snprintf(what, sizeof what, "cannot log in to RabbitMQ at %s:%d vhost '%s' as '%s'", node->host,
           node->port, u->vhost, u->user);
  if (mb_amqp_reply_error(login(conn, u, name), what, NULL, err) != MB_OK) {
    amqp_destroy_connection(conn);
    return err->status;
  }
  *out = conn;
  return MB_OK;
}

void mb_amqp_disconnect(amqp_connection_state_t conn) {
  if (conn == NULL) return;
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS); /* best effort: the socket may be gone */
  amqp_destroy_connection(conn);
}
