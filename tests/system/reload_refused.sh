#!/usr/bin/env bash
# A broken edit cannot take the endpoint down (DESIGN §7): an error at load, another
# endpoint name, a script that declares no endpoint, a top level that never returns, and
# an event claimed by another endpoint are each reported and refused, and the running code
# goes on handling; the next good save reloads. With --no-reload a save changes nothing
# until SIGHUP.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/solo" "$WORK/quiet" "$WORK/owner"
RECORDS=$WORK/records.txt
export RECORDS
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("r.Ping", { n = "number" })
bus.event("r.Claimed")
LUA
cat >"$WORK/owner/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "owner", publishes = { "r.Claimed" } }
LUA
# endpoint NAME GEN [EXTRA]: an endpoint recording "NAME n GEN" per r.Ping; EXTRA is Lua
# placed after the handler
endpoint() {
  cat <<LUA
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "$1", time_budget = 2 }
local out = assert(io.open(os.getenv("RECORDS"), "a"))
bus.handle("r.Ping", function(p) out:write("$1 ", p.n, " ", $2, "\n"); out:flush() end)
${3:-}
LUA
}
record() { grep -q "^$1\$" "$RECORDS" 2>/dev/null; }
ping() { "$MOONBUS" send "$1" r.Ping "{\"n\":$2}" >/dev/null 2>>"$WORK/cli.log"; }
failures() { grep -c 'reload failed' "$WORK/$1.log"; }

first_start "$WORK/owner" # r.Claimed belongs to owner
endpoint solo 1 >"$WORK/solo/endpoint.lua"
start_host solo "$WORK/solo"
wait_for 10 host_ready solo
SOLO=$LAST_PID
n=0
# refuse 'what' 'expected log text' SCRIPT: saves SCRIPT, expects its refusal, then checks
# that generation 1 still handles
refuse() {
  local what=$1 expect=$2 before
  before=$(failures solo)
  printf '%s\n' "$3" >"$WORK/solo/endpoint.lua"
  check "$what is refused: $expect" wait_until 20 \
    "[ \$(failures solo) -gt $before ] && grep 'reload failed' $WORK/solo.log | tail -1 | grep -q \"$expect\""
  grep 'reload failed' "$WORK/solo.log" | tail -1 | sed 's/^.*\] /# /'
  n=$((n + 1))
  ping solo "$n"
  check "and generation 1 goes on handling" wait_until 20 "record 'solo $n 1'"
}
refuse "an error at load" "endpoint.lua:6: boom at load" "$(endpoint solo 2 'error("boom at load")')"
refuse "another endpoint name" "declares endpoint other, but this host runs solo" \
  "$(endpoint other 2)"
refuse "a script without bus.endpoint" "declares no endpoint" \
  "$(endpoint solo 2 | grep -v 'bus.endpoint')"
refuse "a top level that never returns" "endpoint.lua:6: loading the script ran past its time budget" \
  "$(endpoint solo 2 'while true do end')"
refuse "claiming an event another endpoint owns" "owner" \
  "$(endpoint solo 2 | sed 's/time_budget = 2/time_budget = 2, publishes = { "r.Claimed" }/')"
endpoint solo 2 >"$WORK/solo/endpoint.lua"
check "the next good save reloads" wait_until 20 "grep -q 'generation 2 swapped' $WORK/solo.log"
ping solo 100
check "and runs the new code" wait_until 20 "record 'solo 100 2'"
check "the host survived every refused reload" kill -0 $SOLO

# --- --no-reload: saves are ignored until SIGHUP ------------------------------------------
endpoint quiet 1 >"$WORK/quiet/endpoint.lua"
start_host quiet "$WORK/quiet" --no-reload
wait_for 10 host_ready quiet
QUIET=$LAST_PID
endpoint quiet 2 >"$WORK/quiet/endpoint.lua"
sleep 1
ping quiet 1
check "with --no-reload a save is not loaded" wait_until 20 "record 'quiet 1 1'"
kill -HUP $QUIET
check "SIGHUP reloads it" wait_until 20 "grep -q 'generation 2 swapped in' $WORK/quiet.log"
grep 'reloaded' "$WORK/quiet.log" | sed 's/^.*\] /# /'
ping quiet 2
check "and the new code runs" wait_until 20 "record 'quiet 2 2'"
kill -TERM $SOLO $QUIET
wait $SOLO
rc1=$?
wait $QUIET
check "both hosts stop cleanly (exit $rc1, $?)" test $rc1 -eq 0 -a $? -eq 0
exit $TAP_FAILED
