#!/usr/bin/env bash
# moonbus errors sees the whole error queue, not its first 1 000: with 1 005 parked
# messages, list prints 1 005 lines (with progress on stderr), show and delete reach the
# last one, and retry --all sends every one back.
. "$(dirname "$0")/lib.sh"
N=1005
mkdir -p "$WORK/billing"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("billing.Charge", { n = "number" })
LUA
cat >"$WORK/billing/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "billing", retries = { immediate = 0, delayed = 0 }, audit = false }
bus.handle("billing.Charge", function(c) error(string.format("card %d declined", c.n)) end)
LUA
MOONBUS_LOG=warn start_host billing "$WORK/billing"
B=$LAST_PID
wait_for 10 host_ready billing
check "the sender sent $N commands" test "$(send_many billing billing.Charge 1 $N)" = $N
wait_until 120 '[ "$(depth billing)" -eq 0 ] && [ "$(depth error)" -ge $N ]'
kill -TERM $B
wait $B
check "billing parked them all and stopped cleanly (exit $?)" test $? -eq 0
"$MOONBUS" errors list >"$WORK/list.out" 2>"$WORK/list.err"; rc=$?
check "errors list exits 0 (exit $rc)" test $rc -eq 0
check "and prints a header row and all $N parked messages ($(wc -l <"$WORK/list.out") lines)" test "$(wc -l <"$WORK/list.out")" -eq $((N + 1))
check "each once" test "$(tail -n +2 "$WORK/list.out" | cut -f1 | sort -u | wc -l)" -eq $N
check "with progress on stderr" grep -q "1000 of $N messages of queue 'error' read" "$WORK/list.err"
last=$(grep -P 'card 1005 declined' "$WORK/list.out" | cut -f1)
check "the last one sent is listed" test -n "$last"
"$MOONBUS" errors show "$last" >"$WORK/show.out" 2>"$WORK/show.err"; rc=$?
check "errors show finds the last one (exit $rc)" test $rc -eq 0
check "and prints its body" grep -q '"n":1005' "$WORK/show.out"
"$MOONBUS" errors delete "$last" 2>"$WORK/delete.err"; rc=$?
check "errors delete removes the last one (exit $rc)" test $rc -eq 0
"$MOONBUS" errors show "$last" 2>/dev/null >/dev/null; rc=$?
check "it is gone (show exits $rc)" test $rc -eq 1
"$MOONBUS" errors retry --all >"$WORK/all.out" 2>"$WORK/all.err"; rc=$?
check "errors retry --all exits 0 (exit $rc)" test $rc -eq 0
check "and retried all $((N - 1)) left ($(wc -l <"$WORK/all.out"))" test "$(wc -l <"$WORK/all.out")" -eq $((N - 1))
check "the error queue is empty (the header row only)" test "$("$MOONBUS" errors list 2>/dev/null | wc -l)" -eq 1
wait_until 10 '[ "$(depth billing)" -eq $((N - 1)) ]'
check "billing's queue holds the $((N - 1)) retried messages" test "$(depth billing)" -eq $((N - 1))
exit $TAP_FAILED
