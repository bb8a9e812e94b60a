/* msgcopy.h — a delivered message copied, byte for byte, to another queue: the audit copy,
 * the error-queue copy, the copy a delayed retry sends back to its own queue.
 *
 * Provides: mb_msgcopy, which also makes the copy deliverable whatever the original's
 * headers were. Uses: transport.h. Never: sends anything. */
#ifndef MOONBUS_MSGCOPY_H
#define MOONBUS_MSGCOPY_H

#include "transport.h"

/* A new outgoing copy of d to queue (headers added by the caller), or NULL when out of
 * memory. When d's headers break the header rules (a foreign sender's 120 KiB of them),
 * the copy keeps only the bus's own short ones and says what went in MB_H_HEADERS_REMOVED. */
mb_outgoing *mb_msgcopy(const mb_delivery *d, const char *queue);
/* Sets key to the decimal text of n. MB_OK or MB_ENOMEM. */
int mb_msgcopy_set_number(mb_headers *h, const char *key, long n);

#endif
