/* trace.h — W3C trace context (https://www.w3.org/TR/trace-context/) for the traceparent
 * header (DESIGN §4): every message a handler sends keeps the trace id of the message it
 * handles and gets a span id of its own; a first message starts a new trace.
 *
 * Provides: validation and the traceparent of a child span. Uses: ids.h (random).
 * Never: trusts a header from the wire (an invalid one starts a new trace). */
#ifndef MOONBUS_TRACE_H
#define MOONBUS_TRACE_H

#define MB_TRACEPARENT_LEN 55 /* 00-<32 hex trace id>-<16 hex span id>-<2 hex flags> */

/* 1 if s is a traceparent this host can continue: a version other than ff (version 00 is
 * exactly 55 characters; later versions may append "-..."), lowercase hex ids that are not
 * all zeros, and flags. */
int mb_traceparent_valid(const char *s);
/* The traceparent of a new span: parent's trace id and flags with a new span id, or (parent
 * NULL or invalid) a new trace, sampled. Writes a version 00 header. */
void mb_traceparent_child(const char *parent, char out[MB_TRACEPARENT_LEN + 1]);

#endif
