#!/usr/bin/env bash
# RabbitMQ only: 20 000 commands flow from a producer endpoint to a consumer endpoint while
# the broker closes every connection three times (rabbitmqctl close_all_connections) and
# its application is restarted once (stop_app / start_app). Every command is handled at
# least once, none is lost; duplicates (at-least-once after a lost connection) are counted
# and reported. Both hosts live through it and log each reconnect.
. "$(dirname "$0")/lib.sh"
N=${N:-20000}
CHUNK=500
ctl() { bash "$ROOT/scripts/rabbitmq.sh" ctl "$@" >/dev/null 2>&1; }
mkdir -p "$WORK/producer" "$WORK/consumer"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("chaos.Produce", { from = "number", to = "number" })
bus.command("chaos.Item", { n = "number" })
LUA
cat >"$WORK/producer/endpoint.lua" <<'LUA'
local bus = require "moonbus"
package.path = os.getenv("WORK") .. "/?.lua;" .. package.path
require "contracts"
bus.endpoint { name = "producer", routes = { ["chaos.Item"] = "consumer" }, concurrency = 2 }
bus.handle("chaos.Produce", function(p)
  for n = p.from, p.to do bus.send("chaos.Item", { n = n }) end
end)
LUA
cat >"$WORK/consumer/endpoint.lua" <<'LUA'
local bus = require "moonbus"
package.path = os.getenv("WORK") .. "/?.lua;" .. package.path
require "contracts"
bus.endpoint { name = "consumer", concurrency = 32 }
local out = assert(io.open(os.getenv("OUT"), "a"))
bus.handle("chaos.Item", function(item)
  local t = os.clock() + 0.001
  while os.clock() < t do end -- a little work, so that the flow outlasts the chaos
  out:write(item.n, "\n")
  out:flush()
end)
LUA
export WORK MOONBUS_LOG=info
OUT=$WORK/handled.txt start_host consumer "$WORK/consumer"
C=$LAST_PID
start_host producer "$WORK/producer"
P=$LAST_PID
wait_for 20 host_ready consumer
wait_for 20 host_ready producer
for from in $(seq 1 $CHUNK "$N"); do
  to=$((from + CHUNK - 1))
  "$MOONBUS" send producer chaos.Produce "{\"from\": $from, \"to\": $to}" >/dev/null ||
    not_ok "sending chaos.Produce $from..$to"
done
distinct() { sort -un "$WORK/handled.txt" 2>/dev/null | wc -l; }
handled() { lines "$WORK/handled.txt"; }

for round in 1 2 3; do
  target=$((round * N / 8))
  wait_until 120 '[ "$(handled)" -ge "$target" ]'
  echo "# round $round: closing every connection at $(distinct) handled"
  ctl close_all_connections -p "${VHOST}1" "moonbus chaos test, round $round"
done
wait_until 120 '[ "$(handled)" -ge "$((N / 2))" ]'
echo "# restarting the broker application at $(distinct) handled"
ctl stop_app
sleep 2
ctl start_app
wait_until 300 '[ "$(distinct)" -ge "$N" ]'
sleep 2

check "every command 1..$N handled at least once ($(distinct) distinct)" test "$(distinct)" -eq "$N"
dups=$(( $(handled) - $(distinct) ))
echo "# $dups duplicates among $(handled) handlings (at-least-once across lost connections)"
check "nothing is handled that was not sent" test "$(sort -un "$WORK/handled.txt" | tail -1)" -eq "$N"
check "the consumer queue is empty" test "$(depth consumer)" -eq 0
check "the producer queue is empty" test "$(depth producer)" -eq 0
reconnects_c=$(grep -c "reconnected to RabbitMQ" "$WORK/consumer.log")
reconnects_p=$(grep -c "reconnected to RabbitMQ" "$WORK/producer.log")
check "the consumer reconnected after each of the 4 losses ($reconnects_c)" test "$reconnects_c" -ge 4
check "the producer reconnected after each of the 4 losses ($reconnects_p)" test "$reconnects_p" -ge 4
check "the log says why a connection was lost" grep -q "lost RabbitMQ at .*CONNECTION_FORCED" "$WORK/consumer.log"
check "no credentials in the logs" bash -c "! grep -q 'guest:guest' '$WORK/consumer.log' '$WORK/producer.log'"
kill -TERM $C $P
wait $C; rc=$?
wait $P; rp=$?
check "both hosts exit 0 on SIGTERM ($rc, $rp)" test $rc -eq 0 -a $rp -eq 0
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK/consumer.log' '$WORK/producer.log'"
exit $TAP_FAILED
