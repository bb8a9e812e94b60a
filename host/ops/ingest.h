/* ingest.h — one queue read into the ops store (DESIGN §10): the error queue, the audit
 * queue or moonbus.ops, each on a transport of its own.
 *
 * Provides: start/stop an ingester and its figures.
 * Uses: the transport (consume, complete, release), the store (ingest).
 * Never: acknowledges a message before the store committed it, or stops on one it cannot
 * parse (that one is stored raw with its problem). */
#ifndef MOONBUS_OPS_INGEST_H
#define MOONBUS_OPS_INGEST_H

#include "ops/store.h"
#include "transport.h"

struct ev_loop;

#define MB_OPS_BATCH 256 /* messages stored in one transaction, at most */

typedef struct mb_ops_ingest mb_ops_ingest;

/* Opens url on loop as instance, and consumes queue (which must exist) into store as src. */
int mb_ops_ingest_start(mb_ops_ingest **out, struct ev_loop *loop, const char *url,
                        const char *instance, const char *queue, mb_ops_source src,
                        mb_ops_store *store, mb_err *err);
/* Stops consuming, stores what is buffered, closes the transport, frees in (NULL fine). */
void mb_ops_ingest_stop(mb_ops_ingest *in);
/* The transport it reads with (operations send retried messages through it). */
mb_transport *mb_ops_ingest_transport(const mb_ops_ingest *in);
/* Messages stored since start. */
unsigned long mb_ops_ingest_count(const mb_ops_ingest *in);

#endif
