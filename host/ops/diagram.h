/* diagram.h — the sequence diagram of a conversation, drawn by the server as SVG (DESIGN
 * §10): a lifeline per endpoint, an arrow per message, ordered by causality.
 *
 * Provides: mb_diagram_svg.
 * Uses: json.h (its input is the item list of GET /api/conversations/ID, its output an
 * mb_jbuf).
 * Never: puts a byte of a message (type, endpoint, id) into the SVG unescaped, or orders
 * by clock what causality orders. */
#ifndef MOONBUS_OPS_DIAGRAM_H
#define MOONBUS_OPS_DIAGRAM_H

#include "json.h"

/* Draws items (a JSON array of objects, as GET /api/conversations/ID returns in "items":
 *   id, type, kind ("command"|"event"|"message"|"reply"), related_to (id or null),
 *   from (sending endpoint or null), to (receiving endpoint or queue),
 *   at (ISO-8601 time or null), status ("processed"|"failed"|"retrying"|...))
 * into out as a standalone <svg xmlns=...> document:
 *   - one lifeline per endpoint (a labelled box on top, a vertical line), in order of
 *     first appearance; a message with no sender starts at a lifeline named "(outside)";
 *   - one arrow per message, top to bottom in causal order: a message comes after the
 *     message it is related_to; among messages whose order causality does not fix, by
 *     `at`, then id; a related_to that is not in the list (or a cycle) does not hide a
 *     message;
 *   - arrow style: class "cmd" solid for command/message, "evt" dashed (stroke-dasharray)
 *     for event, "reply" dotted for reply; status class "failed" red (#d0312d), "retrying"
 *     amber (#e8a317), else dark grey; a message sent to its own endpoint is a loop;
 *   - each arrow is a <g class="msg KIND STATUS" data-id="ID"> holding a <line>/<path>, an
 *     arrowhead and a <text> label with the type, and a <title> with type, id, status and
 *     time; lifeline boxes are <g class="lifeline" data-endpoint="NAME">;
 *   - the arrows first .. first + max_arrows - 1 of that order (a page; the lifelines are
 *     those of the page's messages), and a final <text class="more">N more
 *     messages</text> saying how many come after the page: the caller pages.
 * Items that are not objects are skipped. An empty list (or a page past the end) draws an
 * SVG with the text "no messages". */
void mb_diagram_svg(const mb_jv *items, size_t first, size_t max_arrows, mb_jbuf *out);

#endif
