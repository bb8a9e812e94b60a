#!/usr/bin/env bash
# ops_monitoring.sh — the monitoring of `moonbus ops` (DESIGN §11, issue 18 contract C-E)
# on the test's transport, with hand-made moonbus.ops.Report messages put on queue
# moonbus.ops as a foreign sender would: two instances summed, a malformed report kept
# and ingestion going on, an instance dead after 3 intervals and back (one event each), an
# SLA breached once, bad parameters 400, an unknown endpoint 404.
source "$(dirname "$0")/lib.sh"

start_ops ops --store "$WORK/ops.db"
BASE=$OPS_URL
check "ops serves" test -n "$OPS_PORT"

get() { curl -s "$BASE$1"; }
holds() { jq -e "$@" >/dev/null; }
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
uuid() { cat /proc/sys/kernel/random/uuid; }
SEQ=0
# report ENDPOINT INSTANCE SUCCESS CRITICAL_BUCKET INTERVAL SLA STOPPING QUEUES: one report
report() {
  SEQ=$((SEQ + 1))
  local p c i
  p=$(for i in $(seq 0 18); do [ "$i" = 3 ] && printf '%s' "$3" || printf 0; [ "$i" -lt 18 ] && printf ,; done)
  c=$(for i in $(seq 0 18); do [ "$i" = "$4" ] && printf '%s' "$3" || printf 0; [ "$i" -lt 18 ] && printf ,; done)
  inject moonbus.ops "$(uuid)" moonbus.ops.Report \
    "{\"version\":1,\"endpoint\":\"$1\",\"instance\":\"$2\",\"host\":\"box1\",\"pid\":4$SEQ,
     \"generation\":1,\"seq\":$SEQ,\"heartbeat\":\"2026-12-02T12:00:00.123Z\",
     \"started\":\"2026-12-02T11:00:00.000Z\",\"interval\":$5,\"sla\":$6,\"stopping\":$7,
     \"window\":10,\"received\":$3,\"outcomes\":{\"success\":$3,\"retried\":1,\"delayed\":0,
     \"error\":0,\"discarded\":0},\"processing\":{\"count\":$3,\"sum\":0.1,\"buckets\":[$p]},
     \"critical\":{\"count\":$3,\"sum\":0.1,\"buckets\":[$c]},\"reloads\":{\"ok\":0,\"refused\":0},
     \"reconnects\":0,\"in_flight\":1,\"requests_pending\":0,\"lua_memory_bytes\":1000,
     \"shared_memory_bytes\":0,\"queues\":$8,\"types\":{}}"
}
sales() { get /api/monitoring/sales; }

report sales sales-1 10 3 10 null false '{"sales":4}'
report sales sales-2 30 3 10 null false '{"sales":9}'
check "two instances of sales appear, their successes summed" \
  wait_until 15 '[ "$(sales | jq ".figures.success")" = 40 ]'
m=$(sales)
check "the endpoint object has the contract's shape" \
  holds '.status == "live" and (.instances | length) == 2 and .sla == null and
         .time_to_breach == null and .breached == false and .figures.queue_length == 9 and
         .figures.processing.p50 > 0.0005 and .figures.processing.p50 <= 0.001 and
         (.series.minutes | length) == 60 and (.series.throughput | length) == 60' <<<"$m"
check "GET /api/monitoring lists it with now and minutes" \
  holds '.minutes == 5 and (.now | test("Z$")) and (.endpoints | map(.endpoint)) == ["sales"]' \
  <<<"$(get /api/monitoring)"

inject moonbus.ops "$(uuid)" moonbus.ops.Report '{"version":1,"endpoint":"sales","pid":"x"}'
inject moonbus.ops "$(uuid)" moonbus.ops.Report 'not json at all'
report sales sales-1 5 3 10 null false '{}'
check "a malformed report does not stop ingestion" \
  wait_until 15 '[ "$(sales | jq ".figures.success")" = 45 ]'
check "ops is still running" kill -0 "$OPS_PID"

# an instance reporting every second is dead 3 s after its last report, alive on the next
report pay pay-1 1 3 1 null false '{}'
check "an instance without reports for 3 intervals is dead (HeartbeatStopped)" \
  wait_until 15 '[ "$(get /api/events | jq "[.events[] | select(.type == \"moonbus.ops.HeartbeatStopped\")] | length")" = 1 ]'
check "its endpoint is dead" test "$(get /api/monitoring/pay | jq -r .status)" = dead
report pay pay-1 1 3 1 null false '{}'
check "a report brings it back (HeartbeatRestored)" \
  wait_until 15 '[ "$(get /api/events | jq "[.events[] | select(.type == \"moonbus.ops.HeartbeatRestored\")] | length")" = 1 ]'
report pay pay-1 1 3 1 null true '{}'
check "a stopping report makes it stopped" \
  wait_until 15 '[ "$(get /api/monitoring/pay | jq -r .status)" = stopped ]'
sleep 4
check "a stopped instance does not die" \
  test "$(get /api/events | jq '[.events[] | select(.type == "moonbus.ops.HeartbeatStopped")] | length')" = 1

# critical time in (1 s, 2.5 s] against an SLA of 1 s
report slow slow-1 10 13 10 1 false '{}'
check "an SLA crossed is raised once (SlaBreached)" \
  wait_until 15 '[ "$(get /api/events | jq "[.events[] | select(.type == \"moonbus.ops.SlaBreached\")] | length")" = 1 ]'
sleep 2
ev=$(get /api/events)
check "... and only once" \
  holds '[.events[] | select(.type == "moonbus.ops.SlaBreached")] | length == 1' <<<"$ev"
check "the event log has the contract's shape, newest first" \
  holds '.page == 1 and .per_page == 50 and .total == 3 and .events[0].type == "moonbus.ops.SlaBreached" and
         .events[0].body.event == "moonbus.ops.SlaBreached" and .events[0].body.endpoint == "slow" and
         .events[0].body.sla == 1 and .events[0].body.time_to_breach == 0' <<<"$ev"
check "the endpoint shows it breached" \
  holds '.breached == true and .time_to_breach == 0 and .sla == 1' <<<"$(get /api/monitoring/slow)"
check "events page" holds '(.events | length) == 1 and .total == 3' \
  <<<"$(get '/api/events?page=2&per_page=2')"

for bad in 0 abc 100000 -1; do
  check "minutes=$bad is 400" test "$(status_of "$BASE/api/monitoring?minutes=$bad")" = 400
done
check "a 400 answers a JSON error" holds '.error | test("minutes")' <<<"$(get '/api/monitoring?minutes=0')"
check "minutes=1440 is fine" test "$(status_of "$BASE/api/monitoring/sales?minutes=1440")" = 200
check "an unknown endpoint is 404" test "$(status_of "$BASE/api/monitoring/nobody")" = 404
check "events per_page=abc is 400" test "$(status_of "$BASE/api/events?per_page=abc")" = 400

kill -TERM "$OPS_PID"
wait "$OPS_PID"
check "ops stops cleanly (no sanitizer report)" test $? = 0
check "no sanitizer report in the log" bash -c "! grep -q 'ERROR: AddressSanitizer\|runtime error' '$WORK/ops.log'"
exit $TAP_FAILED
