#!/usr/bin/env bash
# moonbus errors: an operator lists the parked messages, reads one, fixes the cause and
# sends them back; they are handled normally. Delete removes one for good; unknown ids and
# bad usage are clear errors.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/billing"
touch "$WORK/db-down"
cat >"$WORK/billing/endpoint.lua" <<LUA
local bus = require "moonbus"
bus.command("billing.Charge", { order = "string" })
bus.endpoint { name = "billing", retries = { immediate = 1, delayed = 0 } }
bus.handle("billing.Charge", function(c, ctx)
  if io.open("$WORK/db-down") then error("the database refuses connections") end
  bus.log.info("charged %s (delayed round %d, attempt %d)", c.order, ctx.delayed_attempt, ctx.attempt)
end)
LUA
export MOONBUS_LOG=info
start_host billing "$WORK/billing"
B=$LAST_PID
wait_for 10 host_ready billing
ids=()
for o in o1 o2 o3 o4; do
  ids+=("$("$MOONBUS" send billing billing.Charge "{\"order\":\"$o\"}")")
done
wait_until 20 '[ "$("$MOONBUS" errors list | wc -l)" -eq 5 ]'
list=$("$MOONBUS" errors list)
check "errors list starts with its header row" test "$(head -1 <<<"$list")" = "$(printf 'ID\tTYPE\tQUEUE\tFAILED_AT\tREASON')"
check "errors list shows the four parked messages under it" test "$(tail -n +2 <<<"$list" | wc -l)" -eq 4
check "each line has id, type, failed queue, time and the first line of the error" \
  grep -qP "^${ids[0]}\tbilling.Charge\tbilling\t20\d\d-\d\d-\d\dT[0-9:.]+Z\t.*the database refuses connections" <<<"$list"
show=$("$MOONBUS" errors show "${ids[1]}")
check "errors show prints the failure headers" grep -q "^moonbus.exception.message: .*the database refuses connections" <<<"$show"
check "and the Lua traceback" grep -q "^moonbus.exception.trace: stack traceback" <<<"$show"
check "and the body as it was sent" grep -qx '{"order":"o2"}' <<<"$show"
rm "$WORK/db-down" # the cause is fixed
"$MOONBUS" errors retry "${ids[0]}" >"$WORK/retry.out"; rc=$?
check "errors retry ID exits 0 (exit $rc)" test $rc -eq 0
check "and says where the message went" grep -qP "^${ids[0]}\t-> billing$" "$WORK/retry.out"
wait_until 10 'grep -q "charged o1" "$WORK/billing.log"'
check "the retried message is handled as a new one (round 0, attempt 1)" \
  grep -q "charged o1 (delayed round 0, attempt 1)" "$WORK/billing.log"
"$MOONBUS" errors delete "${ids[3]}"; rc=$?
check "errors delete ID exits 0 (exit $rc)" test $rc -eq 0
"$MOONBUS" errors retry --all >"$WORK/all.out"; rc=$?
check "errors retry --all exits 0 (exit $rc)" test $rc -eq 0
check "and sent back the two left" test "$(wc -l <"$WORK/all.out")" -eq 2
wait_until 10 'grep -q "charged o2" "$WORK/billing.log" && grep -q "charged o3" "$WORK/billing.log"'
check "they are handled" grep -q "charged o3" "$WORK/billing.log"
check "the deleted one never is" test "$(grep -c "charged o4" "$WORK/billing.log")" -eq 0
check "the error queue is empty (the header row only)" test "$("$MOONBUS" errors list | wc -l)" -eq 1
"$MOONBUS" errors show "${ids[3]}" 2>"$WORK/gone.err"; rc=$?
check "an id the queue does not hold exits 1 (exit $rc)" test $rc -eq 1
check "saying so" grep -q "queue 'error' holds no message ${ids[3]}" "$WORK/gone.err"
"$MOONBUS" errors frobnicate 2>/dev/null; rc=$?
check "an unknown subcommand exits 2 (exit $rc)" test $rc -eq 2
kill -TERM $B
wait $B
check "billing stops cleanly (exit $?)" test $? -eq 0
exit $TAP_FAILED
