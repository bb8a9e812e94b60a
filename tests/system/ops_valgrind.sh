#!/usr/bin/env bash
# ops_valgrind.sh — a run/stop cycle of `moonbus ops` (release build) under valgrind:
# failed, processed and foreign messages ingested, every read of the API, a retry, an
# archive and an edit operation, the diagram, a request with a bad body; SIGTERM; no leak
# and no memory error.
source "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/shop"
cat >"$WORK/shop/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("shop.Fail", { order = "number", ok = "boolean?" })
bus.command("shop.Fine", { n = "number" })
bus.endpoint { name = "shop", retries = { immediate = 0, delayed = 0 },
  routes = { ["shop.Fail"] = "shop", ["shop.Fine"] = "shop" } }
bus.handle("shop.Fail", function(m) if not m.ok then error("declined " .. m.order) end end)
bus.handle("shop.Fine", function(m) bus.send("shop.Fail", { order = m.n }) end)
LUA
start_host shop "$WORK/shop"
wait_for 20 host_ready shop || not_ok "the shop endpoint starts"
valgrind --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
  "$ROOT/build/moonbus" ops --listen 127.0.0.1:0 --store "$WORK/ops.db" \
  >"$WORK/ops.out" 2>"$WORK/vg.log" &
V=$!
PIDS+=("$V")
wait_until 60 "grep -qs 'serving http' '$WORK/vg.log'"
BASE=$(grep -o 'serving http://[^/]*' "$WORK/vg.log" | head -1 | sed 's/serving //')
get() { curl -s "$BASE$1"; }
post() { curl -s -H 'Content-Type: application/json' -d "$2" "$BASE$1"; }
for i in 1 2 3; do "$MOONBUS" send shop shop.Fine "{\"n\":$i}" >/dev/null 2>&1; done
inject error "foreign-1" "who.Knows" 'not json' broken
check "ops under valgrind ingests the failures" \
  wait_until 60 '[ "$(get /api/errors | jq .total)" = 4 ]'
ID=$(get '/api/errors?type=shop.Fail' | jq -r '.items[0].id')
CONV=$(get "/api/messages/$ID" | jq -r .conversation_id)
for path in /api/errors/groups "/api/errors/groups?by=type" "/api/messages/$ID" /api/endpoints \
  "/api/search?q=declined" "/api/conversations/$CONV" "/api/conversations/$CONV/diagram.svg" \
  /api/info /metrics /api/messages/nope "/api/errors?page=x" /; do
  get "$path" >/dev/null
done
post /api/errors/retry "{\"ids\":[\"$ID\"]}" >/dev/null
post "/api/errors/$ID/edit-retry" '{"body":"{\"order\":1,\"ok\":true}"}' >/dev/null
post /api/errors/archive '{"all":true}' >/dev/null
post /api/errors/retry '{"ids":[' >/dev/null
check "the edited copy is handled (its audit copy ingested)" \
  wait_until 60 "get '/api/search?q=shop.Fail' | jq -e '[.items[] | select(.source == \"audit\")] | length >= 1' >/dev/null"
kill -TERM "$V"
wait "$V"
rc=$?
check "ops stops with no leak and no memory error under valgrind (exit $rc)" test "$rc" -eq 0
grep -E "definitely lost|indirectly lost|Invalid (read|write)|uninitialised" "$WORK/vg.log" | head -5 | sed 's/^/# /'
exit $TAP_FAILED
