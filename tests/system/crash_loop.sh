#!/usr/bin/env bash
# A message whose handling kills the host every time (kill -9 from inside the handler) is
# counted by the transport's durable delivery count and, past max_deliveries, parked in the
# error queue with a reason that says so, instead of crash-looping forever; the message
# after it is handled normally.
. "$(dirname "$0")/lib.sh"
[ "$TRANSPORT" = sqlite ] && export MOONBUS_TRANSPORT="$MOONBUS_TRANSPORT?lease=1"
mkdir -p "$WORK/fragile"
cat >"$WORK/fragile/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("f.Do", { poison = "boolean" })
bus.endpoint { name = "fragile", max_deliveries = 3, concurrency = 1 }
bus.handle("f.Do", function(d)
  if d.poison then os.execute("kill -9 $PPID") end -- the host dies mid-handler
  bus.log.info("handled a good one")
end)
LUA
export MOONBUS_LOG=info
first_start "$WORK/fragile"
"$MOONBUS" send fragile f.Do '{"poison":true}' >/dev/null
"$MOONBUS" send fragile f.Do '{"poison":false}' >/dev/null
supervise "$WORK/fragile" 8 'grep -q "moved to queue" "$WORK/run$run.log"'
pid=$LAST_PID
deaths=$DEATHS
check "the host died on the poison message and was restarted ($deaths deaths)" test "$deaths" -ge 3
check "it stopped dying after max_deliveries = 3 (died $deaths times)" test "$deaths" -le 3
wait_until 20 'cat "$WORK"/run*.log | grep -q "handled a good one"'
check "the other message was handled" grep -q "handled a good one" "$WORK"/run*.log
p=$(parked)
check "the poison message is in the error queue" test "$(grep -c . <<<"$p")" -eq 1
check "with a reason that says it ends the host" \
  grep -q "delivered 4 times without an outcome: handling it seems to end the host process" <<<"$p"
check "and its body" grep -q '"poison":true' <<<"$p"
kill -TERM "$pid"
wait "$pid"
check "the last host stops cleanly" test $? -eq 0
exit $TAP_FAILED
