#!/usr/bin/env bash
# A handler stuck inside a C function (os.execute("sleep 600")) cannot be stopped by the
# time budget's count hook: the watchdog ends the host after 2 x time_budget, the message
# comes back, and after max_deliveries such ends it is parked with a reason that says so.
# A handler that loops in Lua is stopped by the budget itself and the host lives on.
. "$(dirname "$0")/lib.sh"
[ "$TRANSPORT" = sqlite ] && export MOONBUS_TRANSPORT="$MOONBUS_TRANSPORT?lease=1"
mkdir -p "$WORK/slow"
cat >"$WORK/slow/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("s.Do", { how = "string" })
bus.endpoint { name = "slow", time_budget = 1, max_deliveries = 2, concurrency = 1,
  retries = { immediate = 0, delayed = 0 } }
bus.handle("s.Do", function(d)
  if d.how == "c" then os.execute("sleep 600") end
  if d.how == "lua" then while true do end end
  bus.log.info("done %s", d.how)
end)
LUA
export MOONBUS_LOG=info
first_start "$WORK/slow"
"$MOONBUS" send slow s.Do '{"how":"lua"}' >/dev/null
"$MOONBUS" send slow s.Do '{"how":"c"}' >/dev/null
"$MOONBUS" send slow s.Do '{"how":"fine"}' >/dev/null
supervise "$WORK/slow" 6 '[ "$(grep -c "moved to queue" "$WORK/run$run.log")" -ge 1 ] && grep -q "done fine" "$WORK"/run*.log'
pid=$LAST_PID
deaths=$DEATHS
check "the watchdog ended the host while the handler slept in C ($deaths ends)" test "$deaths" -eq 2
check "saying what was stuck" grep -q "watchdog: the handler of s.Do .* has run for 2 s without returning" "$WORK/run1.log"
wait_until 20 '[ "$(parked | grep -c .)" -eq 2 ]'
p=$(parked)
check "the Lua loop was stopped by the time budget" \
  grep -qE '"how":"lua".*ran past its time budget of 1(\.0)? s' <<<"$p"
check "the C sleeper was parked after max_deliveries = 2 ends of the host" \
  grep -q '"how":"c".*delivered 3 times without an outcome' <<<"$p"
check "the good message was handled" grep -q "done fine" "$WORK"/run*.log
kill -TERM "$pid"
wait "$pid"
check "the last host stops cleanly (exit $?)" test $? -eq 0
exit $TAP_FAILED
