#!/usr/bin/env bash
# MOONBUS_LOG_FORMAT=json: two hosts handle a conversation (orders sends to billing, billing
# fails once and is retried), a timer logs, a foreign sender forges a line in a message's
# type and body; every line either host writes on stderr is one JSON object (jq parses each
# line alone), the lines of both handlers and the hosts' own lines about those messages
# carry the conversation id, a script's fields are members, and the timer's line carries
# no message. An unknown format is a warning, then text.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/orders" "$WORK/billing"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("orders.Place", { order = "string" })
bus.command("billing.Charge", { order = "string" })
LUA
cat >"$WORK/orders/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "orders", routes = { ["billing.Charge"] = "billing" },
               retries = { immediate = 0, delayed = 0 } }
bus.handle("orders.Place", function(o)
  bus.log.info("placing", { order = o.order, lines = { 1, 2 }, note = "a \"quoted\"\nnote" })
  bus.send("billing.Charge", { order = o.order })
end)
bus.after(0, function() bus.log.info("timer ran", { n = 1 }) end)
LUA
cat >"$WORK/billing/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "billing", retries = { immediate = 1, delayed = 0 } }
local tries = 0
bus.handle("billing.Charge", function(c, ctx)
  tries = tries + 1
  if tries == 1 then error("card declined\n{\"level\":\"forged\"}") end
  bus.log.warn("charged %s after %d tries", c.order, ctx.attempt, { amount = 12.5 })
end)
LUA
export MOONBUS_LOG=debug MOONBUS_LOG_FORMAT=json
start_host billing "$WORK/billing"
B=$LAST_PID
start_host orders "$WORK/orders"
O=$LAST_PID
running() { grep -q '"msg":"running ' "$WORK/$1.log" 2>/dev/null; }
wait_for 10 running orders
wait_for 10 running billing
ID=$("$MOONBUS" send orders orders.Place '{"order":"o-42"}')
forged='{"level":"error","msg":"forged"}'
inject orders "f00-$RANDOM" $'x\n'"$forged"$'\xff' '{}'
wait_until 20 'grep -q "charged o-42" "$WORK/billing.log"'
wait_until 20 '[ "$(grep -c "moved to queue" "$WORK/orders.log")" -ge 1 ]'
kill -TERM $O $B
wait $O
wait $B
for h in orders billing; do
  log=$WORK/$h.log
  check "$h: every stderr line is a JSON object of its own ($(wc -l <"$log") lines)" \
    test "$(jq -R 'fromjson | select(type == "object" and .time and .level and .endpoint and .msg) | 1' "$log" | wc -l)" -eq "$(wc -l <"$log")"
  check "$h: no line was forged" \
    test "$(jq -R -c 'fromjson | select(.msg == "forged" or .level == "forged")' "$log" | wc -l)" -eq 0
done
on() { jq -R -c --arg id "$ID" "fromjson | select($1)" "$WORK/$2.log"; }
check "the orders handler's line has its fields and the conversation id" \
  test "$(on '.msg == "placing" and .conversation_id == $id and .id == $id and .order == "o-42"
              and .lines == [1,2] and .note == "a \"quoted\"\nnote" and .type == "orders.Place"' orders | wc -l)" -eq 1
check "the host's own line about that message carries it too" \
  test "$(on '(.msg | startswith("handled in")) and .conversation_id == $id and .id == $id' orders | wc -l)" -eq 1
check "billing's lines (its failure, the retry, bus.log) carry the conversation of the command" \
  eval 'on "(.msg | test(\"card declined\")) and .conversation_id == \$id" billing | grep -q . &&
        on ".msg == \"charged o-42 after 2 tries\" and .amount == 12.5 and .conversation_id == \$id" billing | grep -q .'
check "the exception's newline stays inside its message" \
  test "$(on '.msg | test("card declined\n\\{\"level\":\"forged\"\\}")' billing | wc -l)" -ge 1
check "the timer's line is about no message" \
  test "$(on '.msg == "timer ran" and .n == 1 and (has("id") | not) and (has("conversation_id") | not)' orders | wc -l)" -eq 1
check "the forged type is one value, its invalid byte replaced" \
  test "$(jq -R -c --arg t $'x\n'"$forged"$'\xef\xbf\xbd' 'fromjson | select(.type == $t)' "$WORK/orders.log" | wc -l)" -ge 1
MOONBUS_LOG_FORMAT=yaml "$MOONBUS" run "$WORK/orders" --no-reload >/dev/null 2>"$WORK/yaml.log" &
Y=$!
PIDS+=("$Y")
wait_for 10 host_ready yaml
kill -TERM $Y
wait $Y
check "an unknown format is a warning, then text" \
  eval 'grep -q "warn  \[moonbus\] MOONBUS_LOG_FORMAT=yaml is neither text nor json: logging text" "$WORK/yaml.log" &&
        grep -q "^20[0-9-]*T[0-9:.]*Z info  \[orders\] timer ran n=1$" "$WORK/yaml.log"'
exit $TAP_FAILED
