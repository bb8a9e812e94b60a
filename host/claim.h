/* claim.h — the claim check for large bodies (DESIGN §14): a body over an endpoint's
 * claim_check bytes is stored in a claim store and the message carries an empty body and
 * the headers moonbus.claim (the key) and moonbus.claim.sha256 (hex of the body); the
 * receiving pipeline fetches and verifies it before the handler runs.
 *
 * Provides: the store vtable (put, get, pin, touch, sweep, close) that every data store
 * implements, the directory store (databus = "file:///dir", claim_file.c), SHA-256 in hex,
 * and the two steps a message takes: stow (sender) and fetch (receiver).
 * Implementations: claim_file.c (file://), transport/sqlite_claims.c (the bus database of
 * the SQLite transport); the persistence store (PostgreSQL) comes later behind the same
 * vtable.
 * Retention: a claim lives claim_retention days from the moment its message became
 * deliverable (put, or touch when a delayed retry sends the reference again); a pinned
 * claim (its message lies in an error queue) is never swept; pins count (one per parked
 * copy: an event's fan-out may park the same claim twice).
 * Uses: envelope.h (headers, body), status.h. Never: sends a message, knows Lua, or
 * decides a message's fate (pipeline.c parks it with the reason fetch gives). */
#ifndef MOONBUS_CLAIM_H
#define MOONBUS_CLAIM_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "status.h"

#define MB_H_CLAIM "moonbus.claim"
#define MB_H_CLAIM_SHA256 "moonbus.claim.sha256"
#define MB_CLAIM_SHA256_HEX 64
#define MB_CLAIM_KEY_MAX 64

typedef struct mb_claim_store mb_claim_store;

typedef struct mb_claim_store_ops {
  /* Stores body (len bytes) under key, atomically (a reader sees all of it or nothing);
   * its retention counts from not_before_usec (when the message becomes deliverable). */
  int (*put)(mb_claim_store *s, const char *key, const char *body, size_t len, const char *sha256,
             int64_t not_before_usec, mb_err *err);
  /* The body stored under key in a new buffer (NUL-terminated; free it), at most max bytes:
   * MB_ENOTFOUND when there is none, MB_ETOOBIG when it is larger than max. */
  int (*get)(mb_claim_store *s, const char *key, size_t max, char **body, size_t *len,
             mb_err *err);
  /* delta +1: a copy of its message was parked; -1: an operator took one (retry, delete).
   * A claim that is gone is no error (MB_OK: there is nothing left to keep). */
  int (*pin)(mb_claim_store *s, const char *key, int delta, mb_err *err);
  /* Its retention counts from usec from now on (a delayed retry sends the reference again). */
  int (*touch)(mb_claim_store *s, const char *key, int64_t usec, mb_err *err);
  /* Removes every claim not pinned whose retention began before before_usec; *removed gets
   * how many. */
  int (*sweep)(mb_claim_store *s, int64_t before_usec, size_t *removed, mb_err *err);
  void (*close)(mb_claim_store *s);
} mb_claim_store_ops;

struct mb_claim_store {
  const mb_claim_store_ops *ops;
  char where[256]; /* for reasons and logs: "file:///dir", "sqlite:///path" (no secrets) */
};

/* Opens the directory store of url (file:///abs/dir or file://./rel/dir), creating the
 * directory (0700) when it is missing. */
int mb_claim_file_open(mb_claim_store **out, const char *url, mb_err *err);
/* NULL is fine. */
void mb_claim_close(mb_claim_store *s);
/* The claim store of a bus: the directory of databus (file://...) when given, else the
 * bus database itself when transport_url is sqlite://, else none (*out NULL, MB_OK). */
int mb_claim_open(mb_claim_store **out, const char *databus, const char *transport_url,
                  mb_err *err);

/* out gets the lowercase hex SHA-256 of data (libcrypto's EVP_Digest). MB_OK or MB_EIO. */
int mb_claim_sha256(const void *data, size_t len, char out[MB_CLAIM_SHA256_HEX + 1]);

/* The claim key e carries, or NULL. */
const char *mb_claim_key(const mb_headers *h);

/* Sender: stores body in s under a new key (a UUIDv7), then sets e's claim headers and
 * empties its body (""). delay: seconds before the message may be delivered (retention
 * counts from then). */
int mb_claim_stow(mb_claim_store *s, mb_envelope *e, const char *body, size_t len, double delay,
                  mb_err *err);

/* Receiver: the claimed body of h's claim (at most max bytes), verified against its
 * sha256; *body is a new buffer (free it). On failure err says why in a sentence fit to
 * park the message with: "claim KEY is missing from file:///dir", "claim KEY does not
 * match its sha256", ... s NULL: this endpoint has no claim store. */
int mb_claim_fetch(mb_claim_store *s, const mb_headers *h, size_t max, char **body, size_t *len,
                   mb_err *err);

#endif
