#!/usr/bin/env bash
# The host as a user meets it: it idles at ~0 CPU (no busy polling), survives a malformed
# message injected by a foreign sender (parked, logged with its id), rejects bad
# CLI input with clear errors, and exits 0 on SIGINT after draining.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/echo"
cat >"$WORK/echo/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("echo.Say", { text = "string" })
bus.endpoint { name = "echo" }
bus.handle("echo.Say", function(say) bus.log.info("said %s", say.text) end)
LUA
start_host echo "$WORK/echo"
H=$LAST_PID
wait_for 10 host_ready echo
check "the host starts and declares its queue" host_ready echo

# idle CPU: utime+stime in clock ticks over 5 seconds
ticks() { awk '{print $14 + $15}' "/proc/$H/stat"; }
t0=$(ticks); sleep 5; t1=$(ticks)
echo "# idle host used $((t1 - t0)) clock ticks in 5 s"
check "an idle host uses ~0 CPU ($((t1 - t0)) ticks in 5 s, limit 5)" test $((t1 - t0)) -le 5

"$MOONBUS" send echo echo.Say '{"text":"hi"}' >/dev/null
wait_for 10 grep -q "said hi" "$WORK/echo.log"
check "a command sent from the CLI is handled" grep -q "said hi" "$WORK/echo.log"

BAD=01900000-0000-7000-8000-00000000bad1
inject echo "$BAD" echo.Say '{not json'
BADH=01900000-0000-7000-8000-00000000bad2
inject echo "$BADH" echo.Say '{}' broken-headers
wait_until 10 '[ "$(parked | wc -l)" -eq 2 ]'
parked >"$WORK/parked.txt"
check "a malformed body is parked in the error queue" grep -q "^$BAD" "$WORK/parked.txt"
check "malformed headers are parked in the error queue" grep -q "^$BADH" "$WORK/parked.txt"
check "the malformed body is logged with its id" grep -q "id=$BAD" "$WORK/echo.log"
check "the parked copy says why" grep -q "^$BAD.*not valid JSON" "$WORK/parked.txt"
check "the parked copy keeps the body byte for byte" \
  test "$(grep "^$BAD" "$WORK/parked.txt" | cut -f2)" = "{not json"
check "the host is still alive" kill -0 $H
"$MOONBUS" send echo echo.Say '{"text":"after"}' >/dev/null
wait_for 10 grep -q "said after" "$WORK/echo.log"
check "and still handles messages" grep -q "said after" "$WORK/echo.log"

out=$("$MOONBUS" send nowhere echo.Say '{"text":"x"}' 2>&1); rc=$?
check "sending to a queue that does not exist fails (exit $rc)" test $rc -ne 0
check "and names the queue" grep -q "no queue named 'nowhere'" <<<"$out"
out=$("$MOONBUS" send echo echo.Say '{broken' 2>&1); rc=$?
check "an invalid JSON body is refused (exit $rc)" test $rc -eq 2
check "with a clear error" grep -qi "invalid JSON" <<<"$out"
out=$("$MOONBUS" bogus 2>&1); rc=$?
check "an unknown command prints usage (exit $rc)" test $rc -eq 2
check "moonbus version prints the version" bash -c "'$MOONBUS' version | grep -q '^moonbus [0-9]'"

kill -INT $H
wait $H; rc=$?
check "SIGINT stops the host with exit 0 ($rc)" test $rc -eq 0
check "the host logs that it stopped" grep -q "stopped:" "$WORK/echo.log"
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK/echo.log'"
exit $TAP_FAILED
