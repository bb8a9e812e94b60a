#!/usr/bin/env bash
# The claim check for large bodies (claim.h): a 20 MB body goes from `moonbus request`
# through a handler and back in its reply, each leg through the claim store (the bus
# database on SQLite, databus = file:// on RabbitMQ), with the host's peak memory printed
# and bounded; a handler that fails parks the message with the claim headers and an empty
# body (the claim pinned), `moonbus errors retry` sends the reference back and it is
# handled; the audit copy holds the reference, not the body; a claim removed before its
# message is delivered parks the message with the reason.
# The RSS figure comes from the release binary ($ROOT/build/moonbus, else $MOONBUS with
# the bound doubled for ASan). The bound is 7 x body: see README, "Large messages".
. "$(dirname "$0")/lib.sh"
SIZE=${CLAIM_BODY_BYTES:-20000000}
mkdir -p "$WORK/billing" "$WORK/vault"
[ "$TRANSPORT" = rabbitmq ] && export MOONBUS_DATABUS="file://$WORK/databus"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("billing.Echo", { pdf = "string" })
bus.message("billing.Echoed", { size = "number", pdf = "string" })
bus.command("billing.Flaky", { pdf = "string" })
bus.command("vault.Keep", { pdf = "string" })
LUA
cat >"$WORK/billing/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "billing", retries = { immediate = 0, delayed = 0 } }
bus.handle("billing.Echo", function(b, ctx)
  ctx:reply("billing.Echoed", { size = #b.pdf, pdf = b.pdf })
end)
local calls = 0
bus.handle("billing.Flaky", function(b)
  calls = calls + 1
  if calls == 1 then error("the first attempt fails") end
  bus.log.info("flaky handled size=%d", #b.pdf)
end)
LUA
sed 's/name = "billing"/name = "vault"/' "$WORK/billing/endpoint.lua" >"$WORK/vault/endpoint.lua"
cat >>"$WORK/vault/endpoint.lua" <<'LUA'
bus.handle("vault.Keep", function() end)
LUA
python3 -c "import sys; sys.stdout.write('{\"pdf\":\"' + 'A' * ($SIZE - 10) + '\"}')" >"$WORK/body.json"
BYTES=$(stat -c %s "$WORK/body.json")

HOSTBIN=$ROOT/build/moonbus FACTOR=7
[ -x "$HOSTBIN" ] || { HOSTBIN=$MOONBUS; FACTOR=14; }
"$HOSTBIN" run "$WORK/billing" >"$WORK/billing.out" 2>"$WORK/billing.log" &
BILLING=$!
PIDS+=("$BILLING")
wait_for 10 host_ready billing
kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
IDLE=$(kb "$BILLING" VmHWM)

# send -> handler -> reply, 20 MB each way
"$MOONBUS" request billing billing.Echo "@$WORK/body.json" --timeout 120 >"$WORK/reply.json" \
  2>"$WORK/cli.log"; rc=$?
check "request with a $BYTES-byte body gets its reply (exit $rc)" test $rc -eq 0
got=$(stat -c %s "$WORK/reply.json")
check "the reply carries the body back ($got bytes)" test "$got" -gt "$BYTES"
check "the handler saw the whole body" grep -q "\"size\":$((BYTES - 10))" "$WORK/reply.json"

# the audit copy holds the reference and an empty body
audit=$(mb_lua "for _, m in ipairs(host.browse('audit', 10)) do
  print(#m.body, m.headers['moonbus.claim'] ~= nil, m.headers['moonbus.claim.sha256'] ~= nil) end")
check "the audit copy has the claim headers and an empty body ($audit)" \
  test "$(echo "$audit" | head -1)" = "0	true	true"

# a failing handler parks it; errors retry sends the reference back
"$MOONBUS" send billing billing.Flaky "@$WORK/body.json" >"$WORK/flaky.id" 2>>"$WORK/cli.log"
id=$(cat "$WORK/flaky.id")
wait_until 60 '[ -n "$("$MOONBUS" errors list 2>/dev/null | grep "$id")" ]'
"$MOONBUS" errors show "$id" >"$WORK/show.txt" 2>>"$WORK/cli.log"
key=$(awk -F': ' '$1 == "moonbus.claim" { print $2 }' "$WORK/show.txt")
check "the parked copy carries the claim $key" test -n "$key"
check "the parked copy's body is empty" test "$(tail -1 "$WORK/show.txt")" = ""
check "the parked copy is small ($(stat -c %s "$WORK/show.txt") bytes)" \
  test "$(stat -c %s "$WORK/show.txt")" -lt 100000
pins() {
  if [ "$TRANSPORT" = sqlite ]; then sql "select pinned from claims where key = '$1'"
  else ls "$WORK/databus/.pins" 2>/dev/null | grep -c "^$1\." ; fi
}
check "a parked message pins its claim ($(pins "$key"))" test "$(pins "$key")" = 1
"$MOONBUS" errors retry "$id" >>"$WORK/cli.log" 2>&1
wait_for 60 grep -q "flaky handled size=$((BYTES - 10))" "$WORK/billing.log"
check "after errors retry the handler gets the whole body" \
  grep -q "flaky handled size=$((BYTES - 10))" "$WORK/billing.log"
check "errors retry takes the pin off ($(pins "$key"))" test "$(pins "$key")" = 0

HWM=$(kb "$BILLING" VmHWM)
echo "# body $BYTES bytes: host VmHWM $HWM KiB, idle $IDLE KiB, +$(( (HWM - IDLE) / 1024 )) MiB ($(basename "$HOSTBIN"))"
check "host peak memory within idle + $FACTOR x body ($HWM KiB)" \
  test "$HWM" -lt $((IDLE + FACTOR * BYTES / 1024))

# a claim removed before delivery: parked with the reason
first_start "$WORK/vault"
"$MOONBUS" send vault vault.Keep "@$WORK/body.json" >"$WORK/keep.id" 2>>"$WORK/cli.log"
if [ "$TRANSPORT" = sqlite ]; then
  gone=$(sql "select key from claims order by created_at desc limit 1")
  sql "delete from claims where key = '$gone'"
  where="sqlite://$(db_path)"
else
  gone=$(ls -t "$WORK/databus" | head -1)
  rm -f "$WORK/databus/$gone"
  where=$MOONBUS_DATABUS
fi
start_host vault "$WORK/vault"
wait_until 30 '[ -n "$(parked | grep "claim $gone is missing")" ]'
check "a missing claim parks the message: claim $gone is missing from $where" \
  grep -q "claim $gone is missing from $where" <(parked)
exit $TAP_FAILED
