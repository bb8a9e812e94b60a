#!/usr/bin/env bash
# Message versions (DESIGN §14, README "Message versions"), across host processes: a v3
# consumer of shop.Order handles what a v1 producer (declares no version: no header) and a
# v2 producer send, upcast step by step (v1 -> v2 -> v3); it asks the v1 producer for a
# price with bus.request and gets the v1 reply upcast to its v2 of shop.Priced; a v4
# producer's orders are parked with the reason. Then the consumer's script is rewritten (hot
# reload) to v4 with the step v3 -> v4: a v4 producer's next orders and a v1 order sent with
# `moonbus send` are handled at v4, and the parked v4 orders, retried, are handled too.
. "$(dirname "$0")/lib.sh"
RECORDS=$WORK/records.txt
export RECORDS MOONBUS_LOG=info
touch "$RECORDS"

# producer NAME VERSION SCHEMA BODY: an endpoint that sends three shop.Order of VERSION
# ("" : declared without one) to the consumer 0.2 s after it starts, with ids
# NAME$BATCH-1..3 (BODY is a Lua expression of the id), and answers shop.Price with a v1
# shop.Priced.
producer() {
  mkdir -p "$WORK/$1"
  local opts=nil
  [ -n "$2" ] && opts="{ version = $2 }"
  cat >"$WORK/$1/endpoint.lua" <<LUA
local bus = require "moonbus"
bus.command("shop.Order", $3, $opts)
bus.command("shop.Price")
bus.message("shop.Priced", { amount = "number" })
bus.endpoint { name = "$1", routes = { ["shop.Order"] = "consumer" } }
bus.handle("shop.Price", function(_, ctx) ctx:reply("shop.Priced", { amount = 9.5 }) end)
bus.after(0.2, function()
  for i = 1, 3 do
    local id = "$1" .. os.getenv("BATCH") .. "-" .. i
    bus.send("shop.Order", $4)
  end
end)
LUA
}
producer p1 "" '{ id = "string", amount = "number" }' '{ id = id, amount = 1.25 * i }'
producer p2 2 '{ id = "string", amount = "number", currency = "string" }' \
  '{ id = id, amount = 2 * i, currency = "USD" }'
producer p4 4 '{ id = "string", cents = "number", currency = "string", channel = "string" }' \
  '{ id = id, cents = 400 * i, currency = "CHF", channel = "app" }'

# consumer GEN VERSION: the consumer at v3 (GEN 1) or v4 (GEN 2, adds channel and the step
# from v3). Each order asks p1 for a price and records
# "id arrived-version cents currency channel price-currency reply-version generation".
consumer() {
  local schema='{ id = "string", cents = "number", currency = "string" }' step=""
  if [ "$2" = 4 ]; then
    schema='{ id = "string", cents = "number", currency = "string", channel = "string" }'
    step='bus.upcast("shop.Order", 3, function(o) o.channel = "shop"; return o end)'
  fi
  cat <<LUA
local bus = require "moonbus"
bus.command("shop.Order", $schema, { version = $2 })
bus.command("shop.Price")
bus.message("shop.Priced", { amount = "number", currency = "string" }, { version = 2 })
bus.upcast("shop.Priced", 1, function(p) p.currency = "EUR"; return p end)
bus.upcast("shop.Order", 1, function(o) o.currency = "EUR"; return o end)
bus.upcast("shop.Order", 2, function(o)
  return { id = o.id, cents = math.floor(o.amount * 100 + 0.5), currency = o.currency }
end)
$step
bus.endpoint { name = "consumer", concurrency = 4, routes = { ["shop.Price"] = "p1" } }
local out = assert(io.open(os.getenv("RECORDS"), "a"))
bus.handle("shop.Order", function(o, ctx)
  local price, rctx = bus.request("shop.Price", {}, { timeout = 10 })
  out:write(string.format("%s v%d %d %s %s %s v%d %d\n", o.id, ctx.version, o.cents, o.currency,
    o.channel or "-", price.currency, rctx.version, $1))
  out:flush()
end)
LUA
}
mkdir -p "$WORK/consumer"
consumer 1 3 >"$WORK/consumer/endpoint.lua"

record() { grep -q "^$1 $2\$" "$RECORDS"; }
start_host consumer "$WORK/consumer"
wait_for 20 host_ready consumer
check "the v3 consumer starts" host_ready consumer
BATCH=a
export BATCH
for p in p1 p2 p4; do
  start_host "$p" "$WORK/$p"
  wait_for 20 host_ready "$p"
done
wait_until 20 "[ \$(lines $RECORDS) -ge 6 ] && [ \$(parked | wc -l) -ge 3 ]"
sed 's/^/# /' "$RECORDS"
check "the v1 orders (no header) are upcast v1 -> v2 -> v3, and the v1 reply to v2" \
  eval 'record p1a-1 "v1 125 EUR - EUR v1 1" && record p1a-2 "v1 250 EUR - EUR v1 1" && record p1a-3 "v1 375 EUR - EUR v1 1"'
check "the v2 orders are upcast v2 -> v3" \
  eval 'record p2a-1 "v2 200 USD - EUR v1 1" && record p2a-2 "v2 400 USD - EUR v1 1" && record p2a-3 "v2 600 USD - EUR v1 1"'
check "the v3 consumer handled no v4 order" test -z "$(grep '^p4a' "$RECORDS")"
parked | cut -f 3 | sed 's/^/# /'
check "the three v4 orders are parked with the reason" \
  test "$(parked | grep -c "v4 of shop.Order is newer than this endpoint's v3: deploy the newer contracts")" -eq 3

# the reload: the consumer's script becomes v4, with the step v3 -> v4
consumer 2 4 >"$WORK/consumer/endpoint.lua.tmp" && mv "$WORK/consumer/endpoint.lua.tmp" "$WORK/consumer/endpoint.lua"
check "the consumer reloads as v4" wait_until 20 "grep -q 'generation 2 swapped' $WORK/consumer.log"
BATCH=b
start_host p4b "$WORK/p4"
wait_for 20 host_ready p4b
"$MOONBUS" send consumer shop.Order '{"id":"cli-1","amount":0.5}' >"$WORK/send.out" 2>&1
wait_until 20 "[ \$(lines $RECORDS) -ge 10 ]"
check "a v4 producer's orders are handled at v4" \
  eval 'record p4b-1 "v4 400 CHF app EUR v1 2" && record p4b-2 "v4 800 CHF app EUR v1 2" && record p4b-3 "v4 1200 CHF app EUR v1 2"'
check "a v1 order (moonbus send, no header) is upcast v1 -> v2 -> v3 -> v4" record cli-1 "v1 50 EUR shop EUR v1 2"
"$MOONBUS" errors retry --all >"$WORK/retry.out" 2>&1
check "the parked v4 orders are retried ($(tail -1 "$WORK/retry.out"))" test "$(parked | wc -l)" -eq 0
wait_until 20 "[ \$(lines $RECORDS) -ge 13 ]"
check "and handled by the v4 consumer" \
  eval 'record p4a-1 "v4 400 CHF app EUR v1 2" && record p4a-2 "v4 800 CHF app EUR v1 2" && record p4a-3 "v4 1200 CHF app EUR v1 2"'
check "every order was handled once (13 records)" test "$(lines "$RECORDS")" -eq 13
grep -E 'reloaded|reload failed' "$WORK/consumer.log" | sed 's/^.*\] /# /'
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
status=0
for p in "${PIDS[@]}"; do wait "$p" || status=$?; done
check "every host stops cleanly (exit $status)" test "$status" -eq 0
exit $TAP_FAILED
