/* sqlite.h — the embedded SQLite transport (DESIGN §5): one WAL database file shared by
 * every process of one machine. URL:
 *   sqlite://PATH[?synchronous=full|normal&lease=SECONDS&mode=0600|0640|0660]
 * (sqlite:///abs/path or sqlite://./rel/path); mode: of the files it creates (default
 * 0600, folders 0700). */
#ifndef MOONBUS_TRANSPORT_SQLITE_H
#define MOONBUS_TRANSPORT_SQLITE_H

#include "claim.h"
#include "transport.h"

extern const mb_transport_ops mb_sqlite_transport;

/* The claim store in the bus database of url (sqlite://PATH, opened by the transport
 * already): table claims, created when missing (transport/sqlite_claims.c). */
int mb_sqlite_claims_open(mb_claim_store **out, const char *url, mb_err *err);

#endif
