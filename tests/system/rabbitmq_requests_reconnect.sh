#!/usr/bin/env bash
# Requests across a broker that drops every connection: a requester asks a responder in a
# loop while RabbitMQ closes all connections twice. Requests caught by the drop fail with a
# timeout (an error bus.is_timeout knows, never a crash or a hang), the requester's host
# reconnects and its next requests are answered again; no coroutine or pending request is
# left behind.
. "$(dirname "$0")/lib.sh"
ctl() { bash "$ROOT/scripts/rabbitmq.sh" ctl "$@" >/dev/null 2>&1; }
mkdir -p "$WORK/asker" "$WORK/answerer"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("a.Ask", { n = "number" })
bus.message("a.Answer", { n = "number" })
LUA
cat >"$WORK/answerer/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "answerer" }
bus.handle("a.Ask", function(q, ctx) ctx:reply("a.Answer", { n = q.n }) end)
LUA
cat >"$WORK/asker/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "asker", routes = { ["a.Ask"] = "answerer" } }
local n, answered, timeouts, other = 0, 0, 0, 0
bus.every(0.05, function()
  n = n + 1
  local ok, r = pcall(bus.request, "a.Ask", { n = n }, { timeout = 2 })
  if ok and r.n == n then answered = answered + 1
  elseif not ok and bus.is_timeout(r) then timeouts = timeouts + 1
  elseif not ok then other = other + 1; bus.log.warn("request failed: %s", tostring(r)) end
  bus.log.info("tally answered=%d timeouts=%d other=%d", answered, timeouts, other)
end)
LUA
start_host answerer "$WORK/answerer"
wait_for 10 host_ready answerer
MOONBUS_LOG=info start_host asker "$WORK/asker"
A=$LAST_PID
wait_for 10 host_ready asker
answered() { grep -o "tally answered=[0-9]*" "$WORK/asker.log" | tail -1 | cut -d= -f2; }
wait_until 20 '[ "$(answered)" -ge 20 ]'
before=$(answered)
for round in 1 2; do
  ctl close_all_connections -p "${VHOST}1" "moonbus request test, round $round"
  sleep 2
done
wait_until 30 '[ "$(answered)" -ge $((before + 40)) ]'
check "requests are answered again after the broker dropped every connection twice ($before before, $(answered) now)" \
  test "$(answered)" -ge $((before + 40))
check "the asker reconnected" grep -q "reconnected to RabbitMQ" "$WORK/asker.log"
other=$(grep -o "other=[0-9]*" "$WORK/asker.log" | tail -1 | cut -d= -f2)
check "every request either got its answer or timed out with a timeout error ($other other errors)" \
  test "${other:-1}" -eq 0
grep -o "tally .*" "$WORK/asker.log" | tail -1 | sed 's/^/# /'
kill -TERM $A
wait $A
check "the asker stops cleanly under ASan (exit $?)" test $? -eq 0
exit $TAP_FAILED
