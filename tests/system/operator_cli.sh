#!/usr/bin/env bash
# The operator's CLI: `moonbus queues` (a header row, ready and delayed counts), `moonbus
# trace` (a three-hop conversation as a causal tree, the failed message marked), the header
# row of `errors list`; and where the bus is: `moonbus send` from a subfolder of a project
# finds ../.moonbus, a command that only reads or sends never creates a bus, the startup
# line names the database by its absolute path, and the audit queue is swept on SQLite.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/shop" "$WORK/billing" "$WORK/ship" "$WORK/idle"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("shop.Order", { n = "number" })
bus.command("shop.Fill", { n = "number" })
bus.command("billing.Charge", { n = "number" })
bus.event("billing.Charged", { n = "number" })
bus.command("idle.Job", { n = "number" })
LUA
cat >"$WORK/shop/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "shop", routes = { ["billing.Charge"] = "billing", ["idle.Job"] = "idle" } }
bus.handle("shop.Order", function(o) bus.send("billing.Charge", { n = o.n }) end)
bus.handle("shop.Fill", function(f)
  for i = 1, 3 do bus.send("idle.Job", { n = i }) end
  for i = 4, 5 do bus.send("idle.Job", { n = i }, { delay = 600 }) end
end)
LUA
cat >"$WORK/billing/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "billing", publishes = { "billing.Charged" } }
bus.handle("billing.Charge", function(c) bus.publish("billing.Charged", { n = c.n }) end)
LUA
cat >"$WORK/ship/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "ship" }
bus.handle("billing.Charged", function(c) error(bus.unrecoverable("no truck for order " .. c.n)) end)
LUA
cat >"$WORK/idle/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "idle" }
bus.handle("idle.Job", function() end)
LUA
export MOONBUS_LOG=info
first_start "$WORK/idle"
for e in ship billing shop; do
  start_host "$e" "$WORK/$e"
  wait_for 10 host_ready "$e"
done
HEADER=$(printf 'QUEUE\tREADY\tDELAYED\tIN_FLIGHT\tCONSUMERS')

# --- queues ----------------------------------------------------------------------------
"$MOONBUS" send shop shop.Fill '{"n":0}' >/dev/null
if [ "$TRANSPORT" = sqlite ]; then
  wait_until 10 '"$MOONBUS" queues 2>/dev/null | grep -qP "^idle\t3\t2\t"'
  "$MOONBUS" queues >"$WORK/queues.out" 2>"$WORK/queues.err"; rc=$?
  check "queues exits 0 (exit $rc)" test $rc -eq 0
  check "its first line is the header row" test "$(head -1 "$WORK/queues.out")" = "$HEADER"
  check "idle has 3 ready and 2 delayed, none in flight, no consumer" \
    grep -qP "^idle\t3\t2\t0\t0$" "$WORK/queues.out"
  check "every endpoint queue is listed, and error and audit" \
    eval 'for q in shop billing ship idle error audit; do grep -qP "^$q\t" "$WORK/queues.out" || exit 1; done'
  check "per-process reply queues are left out" test "$(grep -c '^moonbus\.reply\.' "$WORK/queues.out")" -eq 0
else
  wait_until 10 '"$MOONBUS" queues idle 2>/dev/null | grep -qP "^idle\t3\t"'
  "$MOONBUS" queues >"$WORK/queues.out" 2>"$WORK/queues.err"; rc=$?
  check "queues without names exits 0 on RabbitMQ (exit $rc)" test $rc -eq 0
  check "saying that RabbitMQ cannot list its queues" grep -q "cannot list its queues" "$WORK/queues.err"
  check "and showing the error and audit queues under the header row" \
    eval 'test "$(head -1 "$WORK/queues.out")" = "$HEADER" && grep -qP "^error\t" "$WORK/queues.out" && grep -qP "^audit\t" "$WORK/queues.out"'
  "$MOONBUS" queues idle ship >"$WORK/queues.out" 2>"$WORK/queues.err"; rc=$?
  check "queues NAME... exits 0 (exit $rc)" test $rc -eq 0
  check "idle has 3 ready; delayed and in flight are unknown; no consumer" \
    grep -qP "^idle\t3\t-\t-\t0$" "$WORK/queues.out"
  check "ship has its consumer" grep -qP "^ship\t\d+\t-\t-\t1$" "$WORK/queues.out"
fi
"$MOONBUS" queues nosuchqueue >"$WORK/noq.out" 2>"$WORK/noq.err"; rc=$?
check "a queue that does not exist exits 1 (exit $rc)" test $rc -eq 1
check "saying so" grep -q "no queue named 'nosuchqueue'" "$WORK/noq.err"

# --- trace ---------------------------------------------------------------------------------
CONV=$("$MOONBUS" send shop shop.Order '{"n":7}')
wait_until 20 '"$MOONBUS" errors list 2>/dev/null | grep -q "no truck for order 7"'
"$MOONBUS" trace "$CONV" >"$WORK/trace.out" 2>"$WORK/trace.err"; rc=$?
sed 's/^/# /' "$WORK/trace.out"
check "trace exits 0 (exit $rc)" test $rc -eq 0
check "three messages, one a line" test "$(wc -l <"$WORK/trace.out")" -eq 3
check "the order at the top: cli -> shop" grep -qP "^shop\.Order  command  cli -> shop  \S+  $CONV$" "$WORK/trace.out"
check "the charge under it" test "$(sed -n 2p "$WORK/trace.out" | grep -cP '^  billing\.Charge  command  shop -> billing ')" -eq 1
check "the event under the charge, marked failed with its reason" \
  test "$(sed -n 3p "$WORK/trace.out" | grep -cP '^    billing\.Charged  event  billing -> ship .*FAILED: .*no truck for order 7')" -eq 1
"$MOONBUS" trace 01a2365d-0000-7000-8000-000000000000 >/dev/null 2>"$WORK/trace.err"; rc=$?
check "an unknown conversation exits 1 (exit $rc)" test $rc -eq 1
check "saying where it looked" grep -q "in queues 'audit' and 'error'" "$WORK/trace.err"

# --- errors list ---------------------------------------------------------------------------
"$MOONBUS" errors list >"$WORK/errors.out"
check "errors list starts with its header row" \
  test "$(head -1 "$WORK/errors.out")" = "$(printf 'ID\tTYPE\tQUEUE\tFAILED_AT\tREASON')"
check "then the parked event" test "$(tail -n +2 "$WORK/errors.out" | grep -c 'no truck for order 7')" -eq 1

# --- where is the database (SQLite, whatever the test's transport) -------------------------
(
  unset MOONBUS_TRANSPORT
  P=$WORK/project
  mkdir -p "$P/svc" "$P/deep/er" "$WORK/empty/sub"
  cat >"$P/svc/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("svc.Do", { n = "number" })
bus.endpoint { name = "svc" }
bus.handle("svc.Do", function(d) bus.log.info("did %d", d.n) end)
LUA
  cd "$WORK/empty/sub" || exit 1
  if [ -e /tmp/.moonbus ] || [ -e /.moonbus ] || [ -e "$WORK/.moonbus" ]; then
    echo "ok - # SKIP a .moonbus folder above $WORK: the no-bus checks cannot run here"
  else
    "$MOONBUS" send svc svc.Do '{"n":1}' >/dev/null 2>"$WORK/nobus.err"; rc=$?
    check "send with no .moonbus anywhere up the tree exits 1 (exit $rc)" test $rc -eq 1
    check "naming the path it looked for and saying to start an endpoint" \
      grep -qF "there is no moonbus database at $WORK/empty/sub/.moonbus/bus.db: start an endpoint first" "$WORK/nobus.err"
    "$MOONBUS" errors list >/dev/null 2>"$WORK/nobus2.err"; rc=$?
    check "errors list the same (exit $rc)" eval 'test $rc -eq 1 && grep -qF "$WORK/empty/sub/.moonbus/bus.db" "$WORK/nobus2.err"'
    "$MOONBUS" queues >/dev/null 2>&1; rc1=$?
    "$MOONBUS" trace x >/dev/null 2>&1; rc2=$?
    "$MOONBUS" publish - svc.Done '{"n":1}' >/dev/null 2>&1; rc3=$?
    check "queues, trace and publish the same ($rc1 $rc2 $rc3)" test "$rc1$rc2$rc3" = 111
    check "and none of them created a folder or a file" \
      test -z "$(find "$WORK/empty" -mindepth 1 -not -path "$WORK/empty/sub")"
  fi
  cd "$P" || exit 1
  MOONBUS_AUDIT_RETENTION=0.00001 MOONBUS_AUDIT_SWEEP=1 "$MOONBUS" run svc >"$WORK/svc.out" 2>"$WORK/svc.log" &
  SVC=$!
  wait_for 10 host_ready svc
  check "run with no .moonbus up the tree makes ./.moonbus" test -f "$P/.moonbus/bus.db"
  check "the startup line names the database by its absolute path" \
    grep -qF "on sqlite://$P/.moonbus/bus.db (" "$WORK/svc.log"
  cd "$P/deep/er" || exit 1
  "$MOONBUS" send svc svc.Do '{"n":42}' >"$WORK/sub.out" 2>"$WORK/sub.err"; rc=$?
  check "send from a subfolder of the project finds ../../.moonbus (exit $rc)" test $rc -eq 0
  wait_until 10 'grep -q "did 42" "$WORK/svc.log"'
  check "and the endpoint handles it" grep -q "did 42" "$WORK/svc.log"
  "$MOONBUS" send nope svc.Do '{"n":1}' >/dev/null 2>"$WORK/noqueue.err"
  check "no queue named ... names the database by its absolute path" \
    grep -qF "no queue named 'nope' in sqlite://$P/.moonbus/bus.db" "$WORK/noqueue.err"
  check "nothing was made in the subfolder" test ! -e "$P/deep/er/.moonbus"
  wait_until 10 '"$MOONBUS" queues audit 2>/dev/null | grep -qP "^audit\t0\t0\t"'
  check "the audit copy is swept once older than MOONBUS_AUDIT_RETENTION" \
    eval '"$MOONBUS" queues audit 2>/dev/null | grep -qP "^audit\t0\t0\t"'
  check "and the host says so" grep -q "audit copies older than 1e-05 days removed from queue 'audit'" "$WORK/svc.log"
  kill -TERM $SVC
  wait $SVC
  check "the project's host stops cleanly (exit $?)" test $? -eq 0
  exit $TAP_FAILED
) || TAP_FAILED=1
exit $TAP_FAILED
