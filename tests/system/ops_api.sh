#!/usr/bin/env bash
# ops_api.sh — `moonbus ops` through its JSON API (DESIGN §10, README "Operations
# service"), on the test's transport: failed and processed messages are ingested, grouped,
# shown, searched, drawn as a conversation; retry, archive, restore, delete and
# edit-and-retry change them; bad input gets 4xx, never a crash; a non-loopback change
# without the token is 401.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/shop"
cat >"$WORK/shop/endpoint.lua" <<LUA
local bus = require "moonbus"
bus.command("shop.Fail", { order = "number", ok = "boolean?", note = "string?" })
bus.command("shop.Start", { n = "number" })
bus.command("shop.Step", { n = "number" })
bus.command("shop.Last", { n = "number" })
bus.endpoint { name = "shop", retries = { immediate = 0, delayed = 0 },
  routes = { ["shop.Fail"] = "shop", ["shop.Start"] = "shop", ["shop.Step"] = "shop",
             ["shop.Last"] = "shop" } }
bus.handle("shop.Fail", function(m)
  if not m.ok then error(("card declined for order %d"):format(m.order)) end
end)
bus.handle("shop.Start", function(m) bus.send("shop.Step", { n = m.n }) end)
bus.handle("shop.Step", function(m) bus.send("shop.Last", { n = m.n }) end)
bus.handle("shop.Last", function(m) error("the last step always fails") end)
LUA
start_host shop "$WORK/shop"
SHOP=$LAST_PID
wait_for 20 host_ready shop || not_ok "the shop endpoint starts"

start_ops ops --store "$WORK/ops.db"
OPS=$OPS_PID
BASE=$OPS_URL
check "ops logs the address it serves" test -n "$OPS_PORT"

get() { curl -s "$BASE$1"; }
holds() { jq -e "$@" >/dev/null; } # holds [jq options] FILTER <<<JSON: the filter is true
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
post() { curl -s -H 'Content-Type: application/json' -d "$2" "$BASE$1"; }
wait_op() { # wait_op OPERATION: until its state is done
  wait_until 30 "[ \"\$(get /api/operations/$1 | jq -r .state)\" = done ]"
}

"$MOONBUS" send shop shop.Fail '{"order":41}' >/dev/null 2>&1
"$MOONBUS" send shop shop.Fail '{"order":42}' >/dev/null 2>&1
"$MOONBUS" send shop shop.Fail '{"order":4242,"note":"zebra crossing <script>alert(1)</script>"}' >/dev/null 2>&1
"$MOONBUS" send shop shop.Start '{"n":7}' >/dev/null 2>&1

check "four failed messages are ingested within 15 s" \
  wait_until 15 '[ "$(get /api/errors | jq .total)" = 4 ]'
check "the error queue is emptied into the store" wait_until 10 '[ "$(depth error)" = 0 ]'

groups=$(get '/api/errors/groups?by=exception')
check "three 'card declined' failures make one group, numbers blanked" \
  test "$(jq '[.[] | select(.title | test("card declined for order #$"))] | .[0].count' <<<"$groups")" = 3
GROUP=$(jq -r '[.[] | select(.count == 3)][0].id' <<<"$groups")
check "grouped by type: shop.Fail has 3" \
  test "$(get '/api/errors/groups?by=type' | jq '[.[] | select(.id == "shop.Fail")][0].count')" = 3
check "a group's messages are listed" \
  test "$(get "/api/errors?group=$GROUP" | jq .total)" = 3

ID=$(get "/api/errors?type=shop.Fail&per_page=10" | jq -r '.items[] | select(.id) | .id' | head -1)
msg=$(get "/api/messages/$ID")
check "a message has its headers, body, exception, trace and history" \
  holds '.headers["moonbus.failed.queue"] == "shop" and (.body | test("order")) and
         (.exception | test("card declined")) and (.trace | test("endpoint.lua")) and
         (.history | length) == 1 and .history[0].what == "failed"' <<<"$msg"

check "an unknown id is 404" test "$(status_of "$BASE/api/messages/no-such-id")" = 404
check "a page past the end is empty" \
  holds '.total == 4 and (.items | length) == 0' <<<"$(get '/api/errors?page=99')"
check "a huge per_page is capped at 500" test "$(get '/api/errors?per_page=100000' | jq .per_page)" = 500
check "page=abc is 400" test "$(status_of "$BASE/api/errors?page=abc")" = 400
check "an unknown status is 400" test "$(status_of "$BASE/api/errors?status=bogus")" = 400
check "malformed JSON is 400" \
  test "$(status_of -H 'Content-Type: application/json' -d '{"ids":[' "$BASE/api/errors/retry")" = 400
check "a POST that is not JSON (a cross-site form) is refused" \
  test "$(status_of -d 'ids=1' "$BASE/api/errors/retry")" = 403
check "a POST from another origin is refused" \
  test "$(status_of -H 'Content-Type: application/json' -H 'Origin: http://evil.example' \
    -d '{"all":true}' "$BASE/api/errors/archive")" = 403
check "an unknown call is 404" test "$(status_of "$BASE/api/nothing")" = 404
check "the UI is served" test "$(status_of "$BASE/")" = 200

check "search finds a message by a word of its body" \
  test "$(get '/api/search?q=zebra' | jq '.items | length')" = 1
check "search finds messages by a header value (the exception)" \
  test "$(get '/api/search?q=declined' | jq '[.items[] | select(.source == "error")] | length')" = 3
check "search by id finds the message" test "$(get "/api/search?q=$ID" | jq -r '.items[0].id')" = "$ID"
check "search without q is 400" test "$(status_of "$BASE/api/search")" = 400

LAST=$(get '/api/errors?type=shop.Last' | jq -r '.items[0].id')
CONV=$(get "/api/messages/$LAST" | jq -r .conversation_id)
check "the conversation of a three-hop flow has its three messages in causal order" \
  test "$(get "/api/conversations/$CONV" | jq -r '[.items[].type] | join(",")')" = \
  "shop.Start,shop.Step,shop.Last"
svg=$(get "/api/conversations/$CONV/diagram.svg")
check "the diagram draws three arrows, the failed one red" \
  test "$(grep -o '<g class="msg[^"]*"' <<<"$svg" | tr '\n' ' ')" = \
  '<g class="msg cmd processed" <g class="msg cmd processed" <g class="msg cmd failed" '
check "an unknown conversation is 404" test "$(status_of "$BASE/api/conversations/nope")" = 404

op=$(post /api/errors/retry "{\"ids\":[\"$ID\"]}" | jq -r .operation)
wait_op "$op"
check "a retried message that fails again comes back with 2 attempts" \
  wait_until 15 "[ \"\$(get /api/messages/$ID | jq -r '.status + \" \" + (.attempts|tostring)')\" = 'unresolved 2' ]"
check "its history says failed, retried, failed" \
  test "$(get "/api/messages/$ID" | jq -r '[.history[].what] | join(",")')" = failed,retried,failed

op=$(post /api/errors/archive "{\"group\":\"$GROUP\",\"by\":\"exception\"}" | jq -r .operation)
wait_op "$op"
check "archiving a group takes its 3 messages out of the list" \
  test "$(get /api/errors | jq .total)" = 1
check "... into the archived ones" test "$(get '/api/errors?status=archived' | jq .total)" = 3
op=$(post /api/errors/restore '{"all":true}' | jq -r .operation)
wait_op "$op"
check "restore all brings them back" test "$(get /api/errors | jq .total)" = 4

headers=$(get "/api/messages/$ID" | jq -c '.headers + {"fixed-by": "ops test"}')
check "edit-and-retry refuses a changed moonbus.* header" \
  test "$(status_of -H 'Content-Type: application/json' \
    -d '{"body":"{}","headers":{"moonbus.kind":"event"}}' "$BASE/api/errors/$ID/edit-retry")" = 400
edit=$(post "/api/errors/$ID/edit-retry" "{\"body\":\"{\\\"order\\\":41,\\\"ok\\\":true}\",\"headers\":$headers}")
NEW=$(jq -r .id <<<"$edit")
wait_op "$(jq -r .operation <<<"$edit")"
check "edit-and-retry sends a new message, linked, and the original is resolved" \
  holds --arg new "$NEW" '.status == "resolved" and .edited_to == $new' \
  <<<"$(get "/api/messages/$ID")"
check "the edited message is handled (its audit copy arrives)" \
  wait_until 15 "[ \"\$(get /api/messages/$NEW | jq -r .source)\" = audit ]"
check "... with the header the operator added, and its link to the original" \
  holds --arg id "$ID" '.headers["fixed-by"] == "ops test" and .edited_from == $id' \
  <<<"$(get "/api/messages/$NEW")"
check "edit-and-retry with a body that is not JSON is 400" \
  test "$(status_of -H 'Content-Type: application/json' -d '{"body":"{nope"}' "$BASE/api/errors/$LAST/edit-retry")" = 400

op=$(post /api/errors/delete "{\"ids\":[\"$LAST\"]}" | jq -r .operation)
wait_op "$op"
check "a deleted message is gone" test "$(status_of "$BASE/api/messages/$LAST")" = 404
check "endpoints list the shop with what it processed" \
  holds '[.[] | select(.name == "shop")][0].processed >= 3' <<<"$(get /api/endpoints)"
check "/metrics counts what was ingested" \
  bash -c "curl -s '$BASE/metrics' | grep -q 'moonbus_ops_ingested_total{queue=\"error\"} [1-9]'"

# Foreign input: what a plain client puts in the error or audit queue is stored, never a stop.
inject error "foreign-1" "who.Knows" 'not json at all' broken
inject audit "foreign-2" "who.Else" '{"fine":true}'
inject error "foreign-3" "after.Them" '{}'
check "a message whose headers do not decode is stored raw with its problem" \
  wait_until 15 "get '/api/errors?status=all&per_page=500' | holds '[.items[] | select(.type == \"who.Knows\")] | length == 1'"
FOREIGN=$(get '/api/errors?type=who.Knows' | jq -r '.items[0].id')
check "... and shown with its problem" holds '.problem != null' <<<"$(get "/api/messages/$FOREIGN")"
check "ingestion goes on after it" \
  wait_until 15 "get '/api/errors?type=after.Them' | holds '.total == 1'"
check "a foreign audit copy is stored" \
  wait_until 15 "get '/api/search?q=who.Else' | holds '.total == 1'"

# Off loopback: reading and changing need the token.
IP=$(hostname -I 2>/dev/null | awk '{print $1}')
echo "s3cret-token-for-the-test" >"$WORK/token"
start_ops ops2 --listen 0.0.0.0:0 --store "$WORK/ops2.db" --token-file "$WORK/token"
PORT2=$OPS_PORT
check "off loopback, a change without the token is 401" \
  test "$(status_of -H 'Content-Type: application/json' -d '{"all":true}' "http://$IP:$PORT2/api/errors/archive")" = 401
check "off loopback, a read without the token is 401" \
  test "$(status_of "http://$IP:$PORT2/api/errors")" = 401
check "with the token it is served" \
  test "$(status_of -H 'Authorization: Bearer s3cret-token-for-the-test' "http://$IP:$PORT2/api/errors")" = 200
check "a change from loopback still needs the token when listening off loopback" \
  test "$(status_of -H 'Content-Type: application/json' -d '{"all":true}' "http://127.0.0.1:$PORT2/api/errors/archive")" = 401
check "the token never shows in the log" bash -c "! grep -q s3cret '$WORK/ops2.log'"

kill -TERM "$OPS" "$SHOP"
check "ops stops cleanly on SIGTERM" wait_for 15 bash -c "! kill -0 $OPS 2>/dev/null"
wait "$OPS"
check "... with exit status 0 and no sanitizer report" test $? -eq 0
exit $TAP_FAILED
