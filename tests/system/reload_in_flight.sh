#!/usr/bin/env bash
# What a reload does to work in flight and to the topology (DESIGN §7): a handler waiting
# in bus.request when its script is reloaded still gets its reply and completes on the old
# code, while new messages run the new code; the old state is closed once it has finished.
# An event handler added by a reload receives the next published event; one removed by a
# reload no longer does (its subscription goes with it, so nothing is parked for it).
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/asker" "$WORK/answerer" "$WORK/pub" "$WORK/sub" "$WORK/hasty"
RECORDS=$WORK/records.txt
export RECORDS
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("r.Start")
bus.command("r.Ask")
bus.message("r.Answer", { v = "string" })
bus.command("r.Announce", { n = "number" })
bus.event("r.Happened", { n = "number" })
bus.command("r.Ping")
LUA
cat >"$WORK/answerer/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "answerer" }
bus.handle("r.Ask", function(_, ctx) ctx:reply("r.Answer", { v = "answered" }) end)
LUA
# asker GEN [NAME]: requests answerer for each r.Start, records "start ID GEN ANSWER"
asker() {
  cat <<LUA
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "${2:-asker}" }
local out = assert(io.open(os.getenv("RECORDS"), "a"))
bus.handle("r.Start", function(_, ctx)
  local answer = bus.request("r.Ask", {}, { to = "answerer", timeout = 30 })
  out:write("start ", ctx.id, " ", $1, " ", answer.v, "\n")
  out:flush()
end)
LUA
}
cat >"$WORK/pub/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "pub", publishes = { "r.Happened" } }
bus.handle("r.Announce", function(a) bus.publish("r.Happened", { n = a.n }) end)
LUA
# sub GEN HANDLES: the subscriber, with a handler for r.Happened if HANDLES is "yes"
sub() {
  cat <<LUA
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "sub" }
local out = assert(io.open(os.getenv("RECORDS"), "a"))
bus.handle("r.Ping", function() out:write("ping ", $1, "\n"); out:flush() end)
if "$2" == "yes" then
  bus.handle("r.Happened", function(e) out:write("event ", e.n, " ", $1, "\n"); out:flush() end)
end
LUA
}
record() { grep -q "$1" "$RECORDS" 2>/dev/null; }

# --- a handler waiting in bus.request across a reload -------------------------------------
first_start "$WORK/answerer" # its queue exists; nobody answers yet
asker 1 >"$WORK/asker/endpoint.lua"
start_host asker "$WORK/asker"
wait_for 10 host_ready asker
first=$("$MOONBUS" send asker r.Start '{}' 2>>"$WORK/cli.log")
check "the first request waits for the answerer" wait_until 20 '[ "$(depth answerer)" = 1 ]'
asker 2 >"$WORK/asker/endpoint.lua"
check "the reload leaves generation 1 finishing its waiting handler" wait_until 20 \
  "grep -q 'generation 2 swapped in .* generation 1 finishes its 1 handlers in flight' $WORK/asker.log"
second=$("$MOONBUS" send asker r.Start '{}' 2>>"$WORK/cli.log")
check "the second request waits too" wait_until 20 '[ "$(depth answerer)" = 2 ]'
asker 3 >"$WORK/asker/endpoint.lua"
check "a save while generation 1 drains waits for it (at most two states)" wait_until 20 \
  "grep -q 'reload waits until generation 1 has finished its 1 handlers' $WORK/asker.log"
check "and has not loaded yet" test "$(grep -c 'swapped in' "$WORK/asker.log")" -eq 1
start_host answerer "$WORK/answerer"
check "both handlers get their replies" wait_until 20 '[ "$(grep -c ^start "$RECORDS")" = 2 ]'
check "the handler that waited across the reload completed on the old code" \
  record "start $first 1 answered"
check "the message after the reload ran the new code" record "start $second 2 answered"
check "generation 1 is closed once its handler has finished" wait_until 10 \
  "grep -q 'generation 1 finished its handlers: closed' $WORK/asker.log"
check "then the save that waited is loaded as generation 3" wait_until 10 \
  "grep -q 'generation 3 swapped in' $WORK/asker.log"
third=$("$MOONBUS" send asker r.Start '{}' 2>>"$WORK/cli.log")
check "and runs the next message" wait_until 20 'record "start $third 3 answered"'
grep -E 'reloaded|reload waits|finished its' "$WORK/asker.log" | sed 's/^.*\] /# /' 
check "nothing is left in the asker's queue" test "$(depth asker)" = 0

# --- a drain that outlasts its deadline: the message goes back and runs the new code -------
kill -TERM "$LAST_PID" # the answerer
wait "$LAST_PID"
first_start "$WORK/answerer"
asker 1 hasty >"$WORK/hasty/endpoint.lua"
MOONBUS_RELOAD_DRAIN=1 start_host hasty "$WORK/hasty"
HASTY=$LAST_PID
wait_for 10 host_ready hasty
late=$("$MOONBUS" send hasty r.Start '{}' 2>>"$WORK/cli.log")
wait_until 20 '[ "$(depth answerer)" = 1 ]'
asker 2 hasty >"$WORK/hasty/endpoint.lua"
check "past the drain deadline the old state is closed and its message given back" wait_until 20 \
  "grep -q 'generation 1 still had 1 handlers in flight after 1 s: closed; their messages go back' $WORK/hasty.log"
start_host answerer "$WORK/answerer"
ANSWERER=$LAST_PID
check "the message given back is handled by the new code" wait_until 20 'record "start $late 2 answered"'
sleep 0.5
check "and only once" test "$(grep -c "start $late" "$RECORDS")" -eq 1
check "nothing is left in its queue" test "$(depth hasty)" = 0

# --- subscriptions follow the handlers ----------------------------------------------------
sub 1 no >"$WORK/sub/endpoint.lua"
start_host pub "$WORK/pub"
start_host sub "$WORK/sub"
wait_for 10 host_ready pub
wait_for 10 host_ready sub
"$MOONBUS" send pub r.Announce '{"n":1}' >/dev/null 2>>"$WORK/cli.log"
wait_until 10 "[ \$(grep -c 'handled in' $WORK/pub.log) -ge 1 ]"
sub 2 yes >"$WORK/sub/endpoint.lua"
check "the reload subscribes the new handler's event" wait_until 20 \
  "grep -q 'now subscribed to r.Happened' $WORK/sub.log"
"$MOONBUS" send pub r.Announce '{"n":2}' >/dev/null 2>>"$WORK/cli.log"
check "the next published event reaches the handler the reload added" wait_until 20 \
  'record "event 2 2"'
check "the event published before it was handled did not" test -z "$(grep '^event 1' "$RECORDS")"
sub 3 no >"$WORK/sub/endpoint.lua"
check "a reload without the handler unsubscribes its event" wait_until 20 \
  "grep -q 'no longer subscribed to r.Happened' $WORK/sub.log"
"$MOONBUS" send pub r.Announce '{"n":3}' >/dev/null 2>>"$WORK/cli.log"
"$MOONBUS" send sub r.Ping '{}' >/dev/null 2>>"$WORK/cli.log"
check "generation 3 handles the endpoint's commands" wait_until 20 'record "ping 3"'
wait_until 10 "[ \$(grep -c 'handled in' $WORK/pub.log) -ge 3 ]"
sleep 0.5
check "the event published after the unsubscribe did not reach the endpoint" \
  test -z "$(grep '^event 3' "$RECORDS")"
check "and was not parked as unhandled" test -z "$(parked)"
check "the subscriber's queue is empty" test "$(depth sub)" = 0

# --- SIGHUP while the host drains at shutdown is ignored, not fatal -----------------------
kill -TERM "$ANSWERER"
wait "$ANSWERER"
last=$("$MOONBUS" send hasty r.Start '{}' 2>>"$WORK/cli.log")
wait_until 20 '[ "$(depth answerer)" = 1 ]'
kill -TERM "$HASTY"
wait_until 10 "grep -q 'stopping (1 in flight)' $WORK/hasty.log"
kill -HUP "$HASTY"
check "a SIGHUP during the shutdown drain is logged and ignored" wait_until 10 \
  "grep -q 'not reloading (SIGHUP): the host is stopping' $WORK/hasty.log"
check "the draining host is still alive" kill -0 "$HASTY"
start_host answerer "$WORK/answerer"
check "its waiting handler completes" wait_until 20 'record "start $last 2 answered"'
wait "$HASTY"
check "and the host exits cleanly (exit $?)" test $? -eq 0
exit $TAP_FAILED
