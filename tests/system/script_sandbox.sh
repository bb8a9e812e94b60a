#!/usr/bin/env bash
# What a handler may not do to its host: remove the time budget's hook (debug.sethook is
# refused, so a loop after it is still stopped by the budget), end the process (os.exit is
# refused), or hang it in a __gc finalizer — one that loops while a handler runs ends the
# host through the watchdog with a line naming the endpoint, the message and the finalizer;
# one that loops when a state is closed (at shutdown, after a reload) is bounded too.
. "$(dirname "$0")/lib.sh"
echo "# work: $WORK"
mkdir -p "$WORK/sb" "$WORK/gc" "$WORK/fin"
cat >"$WORK/sb/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("sb.Do", { how = "string" })
bus.endpoint { name = "sb", time_budget = 1, retries = { immediate = 0, delayed = 0 } }
bus.handle("sb.Do", function(d)
  if d.how == "sethook" then debug.sethook() end
  if d.how == "pcall_sethook" then pcall(debug.sethook); while true do end end
  if d.how == "coroutine_sethook" then
    coroutine.wrap(function() pcall(debug.sethook, coroutine.running()) end)()
    pcall(debug.sethook); while true do end
  end
  if d.how == "exit" then os.exit(3) end
  bus.log.info("done %s", d.how)
end)
LUA
cat >"$WORK/gc/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("gc.Do")
bus.endpoint { name = "gc", time_budget = 1 }
bus.handle("gc.Do", function()
  setmetatable({}, { __gc = function() while true do end end })
  collectgarbage()
end)
LUA
cat >"$WORK/fin/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.endpoint { name = os.getenv("FIN_NAME"), time_budget = 1 }
STUCK = setmetatable({}, { __gc = function() while true do end end })
LUA
export MOONBUS_LOG=info

# --- debug.sethook and os.exit in handlers ---------------------------------------------
first_start "$WORK/sb"
for how in sethook pcall_sethook coroutine_sethook exit fine; do
  "$MOONBUS" send sb sb.Do "{\"how\":\"$how\"}" >/dev/null
done
start_host sb "$WORK/sb"
pid=$LAST_PID
wait_until 30 '[ "$(parked | grep -c .)" -ge 4 ] && grep -q "done fine" "$WORK/sb.log" || ! kill -0 $pid 2>/dev/null'
p=$(parked)
check "debug.sethook() in a handler is refused, naming it" \
  grep -q '"how":"sethook"}.*debug.sethook is not available in a moonbus host' <<<"$p"
check "a loop after pcall(debug.sethook) is still stopped by the time budget" \
  grep -qE '"how":"pcall_sethook".*ran past its time budget of 1(\.0)? s' <<<"$p"
check "also when a coroutine tried to remove it" \
  grep -qE '"how":"coroutine_sethook".*ran past its time budget of 1(\.0)? s' <<<"$p"
check "os.exit() in a handler is refused, saying what to do instead" \
  grep -q '"how":"exit".*os.exit is not available in a moonbus host.*error(' <<<"$p"
check "the good message was handled" grep -q "done fine" "$WORK/sb.log"
check "the host lived through all of it" kill -0 "$pid"
kill -TERM "$pid"
wait "$pid"
check "and stops cleanly (exit $?)" test $? -eq 0

# --- a finalizer that loops while a handler runs -----------------------------------------
first_start "$WORK/gc"
id=$("$MOONBUS" send gc gc.Do '{}')
start_host gc "$WORK/gc"
pid=$LAST_PID
wait_until 15 "! kill -0 $pid 2>/dev/null"
check "a __gc finalizer that loops ends the host through the watchdog" bash -c "! kill -0 $pid 2>/dev/null"
check "with a line naming the endpoint, the message and the finalizer" \
  grep -qE "error \[gc\] watchdog: the handler of gc.Do \(message $id\) has run for 2 s .*__gc finalizer" "$WORK/gc.log"

# --- a finalizer that loops when the state is closed: at shutdown ------------------------
FIN_NAME=fin start_host fin "$WORK/fin"
pid=$LAST_PID
wait_for 10 host_ready fin
kill -TERM "$pid"
wait_until 15 "! kill -0 $pid 2>/dev/null"
check "a host whose finalizer loops at shutdown still ends" bash -c "! kill -0 $pid 2>/dev/null"
check "saying why" grep -qE "error \[fin\] closing the Lua state of generation 1 .*__gc finalizers.* has run for 2 s" "$WORK/fin.log"

# --- and after a reload -----------------------------------------------------------------
FIN_NAME=rl start_host rl "$WORK/fin" --no-reload
pid=$LAST_PID
wait_for 10 host_ready rl
kill -HUP "$pid"
wait_until 15 "! kill -0 $pid 2>/dev/null"
check "a host whose old generation's finalizer loops after a reload ends instead of hanging" \
  bash -c "! kill -0 $pid 2>/dev/null"
check "saying why" grep -qE "error \[rl\] closing the Lua state of generation 1 .*__gc finalizers.* has run for 2 s" "$WORK/rl.log"
exit $TAP_FAILED
