#!/usr/bin/env bash
# One event, one log line: a foreign sender puts a newline, an escape sequence and invalid
# UTF-8 into a message's type, id and error text; the host logs each on a line of its own
# with those characters escaped, and no line that the message forged appears.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/orders"
cat >"$WORK/orders/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("orders.Place", { order = "string" })
bus.endpoint { name = "orders", retries = { immediate = 0, delayed = 0 } }
bus.handle("orders.Place", function(c)
  error("cannot place " .. c.order)
end)
LUA
export MOONBUS_LOG=info
start_host orders "$WORK/orders"
H=$LAST_PID
wait_for 10 host_ready orders
forged=$'2026-12-01T00:00:00.000000Z info  [orders] forged'
inject orders "f00-$RANDOM" $'x\n'"$forged" '{}'
inject orders $'id\r\e[2K'"$RANDOM" $'orders.Unknown\x7f\xff' '{}'
"$MOONBUS" send orders orders.Place "{\"order\":\"o1\\n$forged by an exception\"}" >/dev/null
wait_until 20 '[ "$(grep -ac "moved to queue" "$WORK/orders.log")" -ge 3 ]'
check "the three messages are parked and logged" test "$(grep -ac "moved to queue" "$WORK/orders.log")" -ge 3
check "no line was forged by a type or an exception message" \
  test "$(grep -ac '^2026-12-01T00:00:00' "$WORK/orders.log")" -eq 0
check "the newline in the type is written \\n, on the line that parks it" \
  grep -aqF "type=x\\n$forged" "$WORK/orders.log"
check "the newline in the exception message too" \
  grep -aqF "cannot place o1\\n$forged by an exception" "$WORK/orders.log"
check "an id with a carriage return and an escape sequence is replaced by a moonbus id" \
  grep -aqE 'id=[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12} type=orders\.Unknown' "$WORK/orders.log"
check "DEL and an invalid UTF-8 byte in a type are escaped" \
  grep -aqF 'type=orders.Unknown\x7f\xff' "$WORK/orders.log"
check "the log holds no control character but the line ends" \
  test "$(LC_ALL=C tr -d '\n' <"$WORK/orders.log" | LC_ALL=C tr -d '[:print:]' | LC_ALL=C tr -d '\200-\377' | wc -c)" -eq 0
"$MOONBUS" errors list >"$WORK/list.out" 2>"$WORK/list.err"
check "errors list prints a header row and one line per parked message" test "$(wc -l <"$WORK/list.out")" -eq 4
check "each of five tab-separated columns" \
  test "$(awk -F'\t' 'NF != 5' "$WORK/list.out" | wc -l)" -eq 0
check "the forged type escaped whole in its column" \
  grep -aqF "$(printf '\tx\\n%s\t' "$forged")" "$WORK/list.out"
"$MOONBUS" errors show $'no\nsuch' 2>"$WORK/show.err"
check "an error that quotes an id from the command line stays on one line" \
  eval '[ "$(wc -l <"$WORK/show.err")" -eq 1 ] && grep -qF "holds no message no\\nsuch" "$WORK/show.err"'
kill -TERM $H
wait $H
check "the host stops cleanly (exit $?)" test $? -eq 0
exit $TAP_FAILED
