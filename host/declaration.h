/* declaration.h — what an endpoint's script declares (bus.endpoint{}, the events it
 * handles) and, while a reload loads a new script, the new declaration kept apart from the
 * running one until it is adopted (DESIGN §7).
 *
 * Provides: configure and subscribe (into the staged declaration while one is staged),
 * stage / adopt / revert / unstage, the topology the transport must declare, and reads of
 * the running configuration. The configuration's address never changes: readers may keep
 * a pointer to it across reloads.
 * Uses: endpoint.h, transport.h (the topology struct). Never: talks to a transport or
 * includes lua.h. */
#ifndef MOONBUS_DECLARATION_H
#define MOONBUS_DECLARATION_H

#include <stddef.h>

#include "endpoint.h"
#include "status.h"
#include "transport.h"

typedef struct mb_declaration mb_declaration;

mb_declaration *mb_declaration_new(void);
void mb_declaration_free(mb_declaration *d);

/* Takes ownership of cfg's contents. MB_EINVAL if an endpoint was declared already. */
int mb_declaration_configure(mb_declaration *d, mb_endpoint_cfg *cfg, mb_err *err);
/* The endpoint handles event type. MB_OK or MB_ENOMEM. */
int mb_declaration_subscribe(mb_declaration *d, const char *type);

/* The running declaration. */
const mb_endpoint_cfg *mb_declaration_cfg(const mb_declaration *d);
int mb_declaration_configured(const mb_declaration *d);
size_t mb_declaration_n_subscriptions(const mb_declaration *d);
const char *mb_declaration_subscription(const mb_declaration *d, size_t i);
/* The topology of the running declaration (pointers into it: valid until it changes). */
void mb_declaration_topology(const mb_declaration *d, mb_topology *out);
/* The topology changed since mb_declaration_declared (a configure, a subscribe, an adopt
 * that changed it). */
int mb_declaration_dirty(const mb_declaration *d);
void mb_declaration_declared(mb_declaration *d);

/* From stage until adopt or unstage, configure and subscribe go to a new declaration.
 * MB_OK or MB_ENOMEM. */
int mb_declaration_stage(mb_declaration *d);
int mb_declaration_staging(const mb_declaration *d);
/* Makes the staged declaration the running one, keeping what cannot change in place
 * (concurrency, queue type: logged). Refuses (MB_EINVAL, a sentence why, nothing changed)
 * a script that declares no endpoint, another name or another transport. The one it
 * replaced stays staged until unstage, so that revert can put it back. */
int mb_declaration_adopt(mb_declaration *d, mb_err *err);
/* After an adopt: the declaration before it runs again (its topology to be declared). */
void mb_declaration_revert(mb_declaration *d);
/* After an adopt: logs the events handled now that were not before, and the reverse. */
void mb_declaration_log_changes(const mb_declaration *d);
void mb_declaration_unstage(mb_declaration *d);

#endif
