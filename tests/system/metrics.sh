#!/usr/bin/env bash
# Metrics (DESIGN §11, README "Monitoring"): a host run with --metrics after a known run —
# N commands that succeed, M that succeed on their 3rd attempt, K that always fail (parked
# after 3 attempts) — serves /metrics with exactly N+M successes, 2M+2K immediate retries,
# K errors, N+M+K received, histograms whose counts add up to the outcomes and whose
# critical time is never below the processing time; the text passes `promtool check
# metrics`. Without an ops service the host says once that its reports are dropped.
. "$(dirname "$0")/lib.sh"
N=40 M=10 K=5
export MOONBUS_LOG=info

cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("count.Job", { n = "number" })
LUA
mkdir -p "$WORK/counted"
cat >"$WORK/counted/endpoint.lua" <<LUA
package.path = "$WORK/?.lua;" .. package.path
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "counted", retries = { immediate = 2, delayed = 0 }, report = 1 }
bus.handle("count.Job", function(job, ctx)
  if job.n > $N + $M then error("job " .. job.n .. " always fails") end
  if job.n > $N and ctx.attempt < 3 then error("job " .. job.n .. " fails on attempt " .. ctx.attempt) end
end)
LUA

start_host counted "$WORK/counted" --metrics 127.0.0.1:0
HOST=$LAST_PID
wait_until 30 "host_ready counted"
PORT=$(grep -o 'metrics at http://[^ ]* (port [0-9]*' "$WORK/counted.log" | grep -o '[0-9]*$')
check "the host says where its metrics are" test -n "$PORT"
scrape() { curl -s "http://127.0.0.1:$PORT/metrics"; }

check "sent $((N + M + K)) jobs" test "$(send_many counted count.Job 1 $((N + M + K)))" = $((N + M + K))
# value SERIES: the sample of one series (name and labels exactly as rendered), or 0.
value() { scrape | awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'; }
L='endpoint="counted",type="count.Job"'
wait_until 60 "[ \"\$(value 'moonbus_messages_handled_total{$L,outcome=\"error\"}')\" = $K ] &&
  [ \"\$(value 'moonbus_messages_handled_total{$L,outcome=\"success\"}')\" = $((N + M)) ]"
scrape >"$WORK/metrics.txt"
val() { awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }' "$WORK/metrics.txt"; }
check "received N+M+K = $((N + M + K))" test "$(val "moonbus_messages_received_total{$L}")" = $((N + M + K))
check "successes N+M = $((N + M))" test "$(val "moonbus_messages_handled_total{$L,outcome=\"success\"}")" = $((N + M))
check "immediate retries 2M+2K = $((2 * M + 2 * K))" \
  test "$(val "moonbus_messages_handled_total{$L,outcome=\"retried\"}")" = $((2 * M + 2 * K))
check "errors K = $K" test "$(val "moonbus_messages_handled_total{$L,outcome=\"error\"}")" = $K
check "no delayed retry, nothing discarded" \
  test "$(val "moonbus_messages_handled_total{$L,outcome=\"delayed\"}")$(val "moonbus_messages_handled_total{$L,outcome=\"discarded\"}")" = 00
OUTCOMES=$((N + M + 2 * M + 2 * K + K))
check "processing histogram counts every outcome ($OUTCOMES)" \
  test "$(val "moonbus_processing_seconds_count{$L}")" = $OUTCOMES
check "its +Inf bucket is its count" \
  test "$(val "moonbus_processing_seconds_bucket{$L,le=\"+Inf\"}")" = $OUTCOMES
check "critical histogram counts every outcome too" \
  test "$(val "moonbus_critical_seconds_count{$L}")" = $OUTCOMES
# Critical time >= processing time for every message: at every bound, no more messages had
# a critical time under it than a processing time under it.
below() { grep "^moonbus_$1_seconds_bucket{$L" "$WORK/metrics.txt" | awk '{ print $2 }' | tr '\n' ' '; }
critical_not_below() {
  local -a p c
  read -ra p <<<"$(below processing)"
  read -ra c <<<"$(below critical)"
  [ "${#p[@]}" -ge 10 ] && [ "${#p[@]}" = "${#c[@]}" ] || return 1
  for i in "${!p[@]}"; do [ "${c[$i]}" -le "${p[$i]}" ] || return 1; done
}
check "at every bucket bound, critical time counts no more messages than processing time" critical_not_below
check "buckets are cumulative (never decrease)" bash -c "grep '^moonbus_processing_seconds_bucket{$L' '$WORK/metrics.txt' |
  awk '{ if (\$2 < last) exit 1; last = \$2 }'"
check "gauges: in flight 0, Lua memory above 0" \
  bash -c "grep -q '^moonbus_handlers_in_flight{endpoint=\"counted\"} 0$' '$WORK/metrics.txt' &&
    awk '/^moonbus_lua_memory_bytes\{endpoint=\"counted\"\}/ { exit !(\$2 > 0) }' '$WORK/metrics.txt'"
check "queue lengths sampled (its own queue, error queue $K)" \
  bash -c "grep -q '^moonbus_queue_length{queue=\"counted\"} ' '$WORK/metrics.txt' &&
    wait_q() { curl -s http://127.0.0.1:$PORT/metrics | grep -q '^moonbus_queue_length{queue=\"error\"} $K$'; };
    for i in \$(seq 1 40); do wait_q && exit 0; sleep 0.25; done; exit 1"
if command -v promtool >/dev/null; then
  check "promtool check metrics accepts the text" bash -c "promtool check metrics <'$WORK/metrics.txt'"
else
  not_ok "promtool is missing: run scripts/install-deps.sh (Debian package prometheus)"
fi
check "another path is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")" = 404
check "a POST is 405" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/metrics")" = 405
check "without an ops service, the host said once that reports are dropped" \
  test "$(grep -c 'no queue moonbus.ops' "$WORK/counted.log")" = 1
check "the host stops cleanly" stop_host "$HOST"
exit $TAP_FAILED
