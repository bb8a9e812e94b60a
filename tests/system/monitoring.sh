#!/usr/bin/env bash
# Monitoring through ops (DESIGN §11, README "Monitoring"): real hosts report every second
# (bus.endpoint{ report = 1 }); ops shows them live with their figures; a host killed with
# -9 turns its instance dead in the API within 3 report periods and raises exactly one
# HeartbeatStopped; a host stopped cleanly is "stopped", with no alert; a queue held back
# (its consumer stopped while a feeder keeps sending) breaches its endpoint's SLA and raises
# exactly one SlaBreached.
. "$(dirname "$0")/lib.sh"
export MOONBUS_LOG=info
start_ops ops --store "$WORK/ops.db"
api() { curl -s "$OPS_URL$1"; }

cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("mon.Tick", { n = "number" })
LUA
# endpoint NAME EXTRA-OPTIONS HANDLER-BODY
endpoint() {
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/endpoint.lua" <<LUA
package.path = "$WORK/?.lua;" .. package.path
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "$1", report = 1, $2 }
$3
LUA
}
endpoint sales "sla = 30" 'bus.handle("mon.Tick", function() end)'
endpoint slow "sla = 2" 'bus.handle("mon.Tick", function() end)'
endpoint feeder 'routes = { ["mon.Tick"] = "slow" }' '
local n = 0
bus.every(0.1, function() n = n + 1; bus.send("mon.Tick", { n = n }) end)'

start_host sales "$WORK/sales"
SALES=$LAST_PID
start_host slow "$WORK/slow"
SLOW=$LAST_PID
wait_until 30 "host_ready sales && host_ready slow"
start_host feeder "$WORK/feeder"
wait_until 30 "host_ready feeder"

# field ENDPOINT JQ: a value of the endpoint's entry in /api/monitoring.
field() { api "/api/monitoring?minutes=5" | jq -r --arg e "$1" ".endpoints[] | select(.endpoint == \$e) | $2"; }
check "sales is live with one instance alive" \
  wait_until 20 '[ "$(field sales .status)" = live ] && [ "$(field sales "[.instances[] | select(.state == \"alive\")] | length")" = 1 ]'
check "slow handles the feeder's ticks (throughput above 0, processing p95 known)" \
  wait_until 20 '[ "$(field slow ".figures.throughput > 0 and .figures.processing.p95 != null")" = true ]'
check "slow's sla is 2 s and not breached while it keeps up" \
  test "$(field slow '"\(.sla) \(.breached)"')" = "2 false"
check "the instance shows its host and pid" \
  test "$(field sales '.instances[0].pid')" = "$SALES"

# kill -9: no last report; dead 3 report periods after its last report, which came before
# the kill (+0.25 s for ops's check; the poll here is every 0.1 s).
kill -KILL "$SALES"
KILLED=$(date +%s.%N)
wait_until 5 '[ "$(field sales .status)" = dead ]'
DEAD_AFTER=$(awk -v a="$KILLED" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
check "the killed host's instance is dead within 3 report periods ($DEAD_AFTER s)" \
  awk -v d="$DEAD_AFTER" 'BEGIN { exit !(d <= 3.4) }'
stopped_events() { api "/api/events?per_page=500" | jq "[.events[] | select(.type == \"moonbus.ops.$1\") | select(.body.endpoint == \"$2\")] | length"; }
check "one HeartbeatStopped for it" wait_until 5 '[ "$(stopped_events HeartbeatStopped sales)" = 1 ]'
sleep 3
check "still one HeartbeatStopped 3 s later" test "$(stopped_events HeartbeatStopped sales)" = 1

# The queue held back: slow stops cleanly (stopped, no alert); the feeder keeps sending.
stop_host "$SLOW"
check "a cleanly stopped instance is 'stopped'" wait_until 5 '[ "$(field slow .status)" = stopped ]'
check "one SlaBreached for slow" wait_until 20 '[ "$(stopped_events SlaBreached slow)" = 1 ]'
check "slow shows breached, time to breach 0" test "$(field slow '"\(.breached) \(.time_to_breach)"')" = "true 0"
check "slow's queue length is reported by the feeder" test "$(field slow '.figures.queue_length > 0')" = true
sleep 4
check "still one SlaBreached 4 s later" test "$(stopped_events SlaBreached slow)" = 1
check "no HeartbeatStopped for the cleanly stopped host" test "$(stopped_events HeartbeatStopped slow)" = 0
check "ops stops cleanly" stop_host "$OPS_PID"
exit $TAP_FAILED
