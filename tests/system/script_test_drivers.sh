#!/usr/bin/env bash
# moonbus.host and moonbus.testing drive a bus from busted or a plain lua5.4: inside a host
# (moonbus run) they are refused by name. A handler that requires one fails like any other
# error (its message is parked with the reason) and the host lives on; a script that
# requires one at its top level does not load, and says why.
. "$(dirname "$0")/lib.sh"
echo "# work: $WORK"
mkdir -p "$WORK/td" "$WORK/top"
cat >"$WORK/td/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("td.Do", { module = "string" })
bus.endpoint { name = "td", retries = { immediate = 0, delayed = 0 } }
bus.handle("td.Do", function(d)
  if d.module ~= "" then require(d.module).reset() end
  bus.log.info("done plain")
end)
LUA
cat >"$WORK/top/endpoint.lua" <<'LUA'
local bus = require "moonbus"
local testing = require "moonbus.testing"
bus.endpoint { name = "top" }
LUA
export MOONBUS_LOG=info
first_start "$WORK/td"
"$MOONBUS" send td td.Do '{"module":"moonbus.host"}' >/dev/null
"$MOONBUS" send td td.Do '{"module":"moonbus.testing"}' >/dev/null
"$MOONBUS" send td td.Do '{"module":""}' >/dev/null
start_host td "$WORK/td"
pid=$LAST_PID
wait_until 20 '[ "$(parked | grep -c .)" -ge 2 ] && grep -q "done plain" "$WORK/td.log"'
p=$(parked)
check "the handler that required moonbus.host was parked with a reason naming it" \
  grep -q '"module":"moonbus.host".*moonbus.host is a test driver .*cannot be loaded inside a moonbus host' <<<"$p"
check "the handler that required moonbus.testing was parked with a reason naming it" \
  grep -q '"module":"moonbus.testing".*moonbus.testing is a test driver .*cannot be loaded inside a moonbus host' <<<"$p"
check "the next message was handled" grep -q "done plain" "$WORK/td.log"
check "the host is alive" kill -0 "$pid"
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK/td.log'"
kill -TERM "$pid"
wait "$pid"
check "the host stops cleanly (exit $?)" test $? -eq 0
timeout 20 "$MOONBUS" run "$WORK/top" --no-reload >"$WORK/top.out" 2>"$WORK/top.log"
rc=$?
check "a script that requires moonbus.testing at its top level does not load (exit $rc)" test "$rc" -eq 1
check "and says which module and why" grep -q "moonbus.testing is a test driver" "$WORK/top.log"
exit $TAP_FAILED
