#!/usr/bin/env bash
# The single-publisher rule holds across processes: a second endpoint that lists another
# endpoint's event in publishes is refused at start with an error naming both, and the
# CLI cannot publish an owned event as someone else.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/sales" "$WORK/rogue"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.event("sales.OrderPlaced", { order_id = "string" })
LUA
cat >"$WORK/sales/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "sales", publishes = { "sales.OrderPlaced" } }
LUA
cat >"$WORK/rogue/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "rogue", publishes = { "sales.OrderPlaced" } }
bus.handle("sales.OrderPlaced", function() end)
LUA
start_host sales "$WORK/sales"
S=$LAST_PID
wait_for 10 host_ready sales
out=$("$MOONBUS" run "$WORK/rogue" 2>&1); rc=$?
check "a second publisher of an event does not start (exit $rc)" test $rc -eq 1
check "the error names the event, its owner and the rogue endpoint" \
  grep -q "sales.OrderPlaced is published by endpoint sales; an event has one publisher.*rogue" <<<"$out"
subscriptions_of_rogue() {
  if [ "$TRANSPORT" = sqlite ]; then
    sql "select count(*) from subscriptions where queue='rogue'"
  else
    bash "$ROOT/scripts/rabbitmq.sh" ctl list_bindings -q -p "${VHOST}1" destination_name |
      grep -cx rogue
  fi
}
check "the rogue endpoint left no subscription behind" test "$(subscriptions_of_rogue)" -eq 0
out=$("$MOONBUS" publish rogue sales.OrderPlaced '{"order_id":"1"}' 2>&1); rc=$?
check "the CLI cannot publish an owned event as another endpoint (exit $rc)" test $rc -eq 1
check "and says who owns it" grep -q "published by endpoint sales" <<<"$out"
"$MOONBUS" publish - sales.OrderPlaced '{"order_id":"1"}' >/dev/null
check "the CLI publishes as the owner with -" test $? -eq 0
kill -TERM $S
wait $S
check "sales exits 0" test $? -eq 0
exit $TAP_FAILED
