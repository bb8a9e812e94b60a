/* operations.h — the background work of `moonbus ops` (DESIGN §10): retry, archive,
 * restore or delete of many failed messages, and edit-and-retry of one, run in slices on
 * the loop so that the HTTP API stays responsive, with progress anyone can ask for.
 *
 * Provides: start an operation, its progress as JSON (GET /api/operations/ID).
 * Uses: the store (select, envelope, mark, edited), a transport to send retried messages
 * (dispatch), errorq.h (a parked copy as it was before it failed).
 * Never: marks a message retried before the transport confirmed its copy went back: at
 * worst a message is both sent back and still listed, never lost. */
#ifndef MOONBUS_OPS_OPERATIONS_H
#define MOONBUS_OPS_OPERATIONS_H

#include <stddef.h>

#include "claim.h"
#include "ops/store.h"

struct ev_loop;

#define MB_OPS_OPERATION_ID_MAX 24

typedef struct mb_ops_work mb_ops_work;

/* claims: the bus's claim store (claim.h), or NULL: a retried, deleted or edited message
 * takes its pin off its claim (a retry also restarts the claim's retention). */
int mb_ops_work_new(mb_ops_work **out, struct ev_loop *loop, mb_ops_store *store, mb_transport *t,
                    mb_claim_store *claims);
/* Abandons operations still running (what they did stays done) and frees w. */
void mb_ops_work_free(mb_ops_work *w);
/* Starts action on ids (one block as the store's select gives it; w takes it) on behalf
 * of who; id gets the operation's id. */
int mb_ops_work_start(mb_ops_work *w, mb_ops_action action, char **ids, size_t n, const char *who,
                      char id[MB_OPS_OPERATION_ID_MAX], mb_err *err);
/* Sends edited (the new message; w takes it) in place of failed message original, which
 * is then resolved and linked to it; claim: the original's claim key (its pin is taken off
 * once the edit is sent), or NULL. */
int mb_ops_work_edit(mb_ops_work *w, const char *original, const char *claim, mb_outgoing *edited,
                     const char *who, char id[MB_OPS_OPERATION_ID_MAX], mb_err *err);
/* {id, action, total, done, failed, state: running|done, error} or MB_ENOTFOUND. */
int mb_ops_work_json(mb_ops_work *w, const char *id, char **json, mb_err *err);

#endif
