#!/usr/bin/env bash
# Delayed retries live in the transport, not in the host: 20 000 messages waiting in their
# delayed round leave the (release) host's resident memory within 10 % of what it was idle
# (idle after a warm-up of 2 000 handled messages, so that SQLite's page cache and the
# allocator's arenas have their working size in both figures).
. "$(dirname "$0")/lib.sh"
MOONBUS=$ROOT/build/moonbus # ASan's quarantine would measure itself
N=${DELAYED_N:-20000}
mkdir -p "$WORK/flaky"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("m.Do", { n = "number" })
LUA
cat >"$WORK/flaky/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "flaky", retries = { immediate = 0, delayed = 1, delay = 3600 } }
bus.handle("m.Do", function(d) if d.n > 0 then error("the remote service is down") end end)
LUA
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
MOONBUS_LOG=error start_host flaky "$WORK/flaky"
F=$LAST_PID
wait_for 10 host_ready flaky
send() { send_many flaky m.Do "$1" "$2" >/dev/null; }
send -2000 -1 # warm-up: handled at once
wait_until 60 '[ "$(depth flaky)" -eq 0 ]'
sleep 2
idle=$(rss_kb $F)
send 1 "$N"
check "the sender sent $N commands" test $? -eq 0
wait_until 300 '[ "$(depth flaky)" -eq 0 ]'
check "every command was tried and left for its delayed round" test "$(depth flaky)" -eq 0
delayed() {
  if [ "$TRANSPORT" = sqlite ]; then
    sql "select count(*) from messages where queue='flaky' and visible_at > strftime('%s','now')*1000"
  else # the broker's queue figures lag a few seconds
    bash "$ROOT/scripts/rabbitmq.sh" ctl list_queues -q -p "${VHOST}1" name messages |
      awk '$1 ~ /^moonbus\.delay\./ { s += $2 } END { print s + 0 }'
  fi
}
wait_until 30 '[ "$(delayed)" -eq "$N" ]'
waiting=$(delayed)
check "$N messages wait in the transport's delay ($waiting)" test "$waiting" -eq "$N"
sleep 1
busy=$(rss_kb $F)
echo "# resident memory: idle $idle kB, with $N delayed retries $busy kB"
check "the host's memory stays within 10 % of idle ($idle kB -> $busy kB)" \
  test $((busy * 100)) -le $((idle * 110))
kill -TERM $F
wait $F
check "the host stops cleanly" test $? -eq 0
exit $TAP_FAILED
