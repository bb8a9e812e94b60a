#!/usr/bin/env bash
# What bit a newcomer in the first hour (issue 23, bugs 1, 3, 4 and 5): a log line with a %
# in it, a reply to a message that has no reply address (moonbus send sets none: parked at once
# with a hint, not retried 24 times), a request its endpoint parks (the requester learns at
# once, not at its timeout), how often a parked copy was tried, in plain words, and
# `moonbus --help`.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/lib"
cat >"$WORK/lib/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("lib.Lend", { who = "string" })
bus.command("lib.Shelve", {})
bus.message("lib.Lent")
bus.command("lib.Ask", {})
bus.endpoint { name = "lib", retries = { immediate = 2, delayed = 3, delay = 30 } }
bus.handle("lib.Lend", function(b, ctx)
  bus.log.info("discount 100% sure for " .. b.who)
  bus.log.info("lent to %s", b.who)
  ctx:reply("lib.Lent", {})
end)
bus.handle("lib.Ask", function() error(bus.unrecoverable("no such book")) end)
LUA
mkdir -p "$WORK/shelf"
cat >"$WORK/shelf/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("lib.Shelve", {})
bus.endpoint { name = "shelf", retries = { immediate = 0, delayed = 0 } }
bus.handle("lib.Shelve", function() error("the shelf is full") end)
LUA
mkdir -p "$WORK/stack"
cat >"$WORK/stack/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("lib.Stack", {})
bus.endpoint { name = "stack", retries = { immediate = 1, delayed = 1, delay = 0.1 } }
bus.handle("lib.Stack", function() error("the stack is locked") end)
LUA
export MOONBUS_LOG=info
start_host lib "$WORK/lib"
L=$LAST_PID
start_host shelf "$WORK/shelf"
S=$LAST_PID
start_host stack "$WORK/stack"
K=$LAST_PID
wait_for 10 host_ready lib
wait_for 10 host_ready shelf
wait_for 10 host_ready stack

id=$("$MOONBUS" send lib lib.Lend '{"who":"ada"}')
wait_until 10 '"$MOONBUS" errors list | grep -q "$id"'
check "a log line with a % in it is logged as written" grep -q "discount 100% sure for ada" "$WORK/lib.log"
check "and a format with arguments still formats" grep -q "lent to ada" "$WORK/lib.log"
show=$("$MOONBUS" errors show "$id")
check "a reply to a message without a reply address is parked at once" \
  grep -q "^moonbus.retries.immediate: 0$" <<<"$show"
check "not retried (one attempt, no delayed round)" test "$(grep -c "lent to ada" "$WORK/lib.log")" -eq 1
check "saying why and what to use instead" \
  grep -q "^moonbus.exception.message: .*has no reply address.*moonbus send.*sets none: use .moonbus request" <<<"$show"

sid=$("$MOONBUS" send shelf lib.Shelve '{}')
wait_until 10 '"$MOONBUS" errors list | grep -q "$sid"'
sshow=$("$MOONBUS" errors show "$sid")
check "a message parked after its only attempt says 1 attempt in 1 round" \
  grep -q "^moonbus.exception.message: .*the shelf is full (failed 1 attempt in 1 round)$" <<<"$sshow"
check "errors show says how often it was tried, in words" grep -qx "tried: 1 attempt in 1 round" <<<"$sshow"
kid=$("$MOONBUS" send stack lib.Stack '{}')
wait_until 20 '"$MOONBUS" errors list | grep -q "$kid"'
check "and for 2 attempts in each of 2 rounds, the total" \
  grep -qx "tried: 2 attempts in each of 2 rounds (4 in all)" <<<"$("$MOONBUS" errors show "$kid")"

"$MOONBUS" request lib lib.Ask '{}' --timeout 8 >"$WORK/ask.out" 2>"$WORK/ask.err"; rc=$?
check "moonbus request learns at once that its request was parked (exit $rc, not 3)" test $rc -eq 1
check "and why" grep -q "moonbus: request .* (lib.Ask to lib) was parked in the error queue: .*no such book" "$WORK/ask.err"

"$MOONBUS" --help >"$WORK/help.out" 2>"$WORK/help.err"; rc=$?
check "moonbus --help exits 0 (exit $rc)" test $rc -eq 0
check "and prints the usage, --drain included" grep -q -- "--drain S" "$WORK/help.out"
"$MOONBUS" --version >"$WORK/version.out"; rc=$?
check "moonbus --version exits 0 (exit $rc)" grep -q "^moonbus " "$WORK/version.out"
kill -TERM $L $S $K
wait $L; rl=$?
wait $S; rs=$?
wait $K; rk=$?
check "the hosts stop cleanly (exit $rl, $rs, $rk)" test $rl -eq 0 -a $rs -eq 0 -a $rk -eq 0
exit $TAP_FAILED
