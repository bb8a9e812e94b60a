/* claim.c — the two steps of the claim check (see claim.h): stow a large body in a store
 * and leave its reference in the headers, fetch and verify it on arrival; and SHA-256.
 * SHA-256 is libcrypto's (EVP_Digest): OpenSSL is installed for amqps already, it is
 * audited, and it uses the CPU's SHA instructions (a 64 MiB body hashes in ~40 ms).
 * Never: decides what happens to a message whose claim cannot be fetched (pipeline.c). */
#include "claim.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ids.h"
#include "transport/sqlite.h"

void mb_claim_close(mb_claim_store *s) {
  if (s) s->ops->close(s);
}

int mb_claim_sha256(const void *data, size_t len, char out[MB_CLAIM_SHA256_HEX + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  out[0] = '\0';
  if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) return MB_EIO;
  for (unsigned i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  return MB_OK;
}

const char *mb_claim_key(const mb_headers *h) { return mb_headers_get(h, MB_H_CLAIM); }

int mb_claim_stow(mb_claim_store *s, mb_envelope *e, const char *body, size_t len, double delay,
                  mb_err *err) {
  char key[MB_ID_LEN + 1], sha[MB_CLAIM_SHA256_HEX + 1];
  mb_uuidv7(key);
  if (mb_claim_sha256(body, len, sha) != MB_OK)
    return mb_err_set(err, MB_EIO, "cannot hash the body of %s (libcrypto)", e->type);
  int64_t from = mb_now_usec() + (delay > 0 ? (int64_t)(delay * 1e6) : 0);
  int rc = s->ops->put(s, key, body, len, sha, from, err);
  if (rc != MB_OK) return rc;
  rc = mb_headers_set(&e->headers, MB_H_CLAIM, key);
  if (rc == MB_OK) rc = mb_headers_set(&e->headers, MB_H_CLAIM_SHA256, sha);
  if (rc == MB_OK) rc = mb_envelope_set_body(e, "", 0);
  if (rc != MB_OK) return mb_err_set(err, rc, "out of memory claiming the body of %s", e->type);
  return MB_OK;
}

/* The reason a fetched claim cannot be used, or MB_OK. */
static int verify(const mb_claim_store *s, const char *key, const char *want, const char *body,
                  size_t len, mb_err *err) {
  char got[MB_CLAIM_SHA256_HEX + 1];
  if (mb_claim_sha256(body, len, got) != MB_OK)
    return mb_err_set(err, MB_EIO, "claim %s from %s cannot be hashed (libcrypto)", key,
                      s->where);
  if (want == NULL || strcmp(got, want) != 0)
    return mb_err_set(err, MB_EINVAL, "claim %s does not match its sha256", key);
  return MB_OK;
}

int mb_claim_fetch(mb_claim_store *s, const mb_headers *h, size_t max, char **body, size_t *len,
                   mb_err *err) {
  const char *key = mb_claim_key(h);
  *body = NULL;
  *len = 0;
  if (key == NULL) return mb_err_set(err, MB_EINVAL, "the message carries no %s", MB_H_CLAIM);
  if (s == NULL)
    return mb_err_set(err, MB_EINVAL,
                      "claim %s cannot be fetched: this endpoint has no claim store (set "
                      "databus = \"file:///dir\" in bus.endpoint{})",
                      key);
  mb_err why;
  int rc = s->ops->get(s, key, max, body, len, &why);
  if (rc == MB_ENOTFOUND)
    return mb_err_set(err, rc, "claim %s is missing from %s", key, s->where);
  if (rc == MB_ETOOBIG)
    return mb_err_set(err, rc, "claim %s is over the limit of %zu bytes (max_body)", key, max);
  if (rc != MB_OK) return mb_err_set(err, rc, "claim %s cannot be read: %s", key, why.msg);
  rc = verify(s, key, mb_headers_get(h, MB_H_CLAIM_SHA256), *body, *len, err);
  if (rc != MB_OK) {
    free(*body);
    *body = NULL;
    *len = 0;
  }
  return rc;
}

int mb_claim_open(mb_claim_store **out, const char *databus, const char *transport_url,
                  mb_err *err) {
  *out = NULL;
  if (databus && *databus) return mb_claim_file_open(out, databus, err);
  if (transport_url && strncmp(transport_url, "sqlite://", 9) == 0)
    return mb_sqlite_claims_open(out, transport_url, err);
  return MB_OK;
}
