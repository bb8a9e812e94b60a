#!/usr/bin/env bash
# A mis-encoded transport URL never shows its password: `moonbus run`, `send`, `request`
# and `errors list` with a password holding '/' or '@' unescaped, one that lost its '@',
# an unknown or malformed scheme, given by --transport or $MOONBUS_TRANSPORT, fail with a
# clear error whose text (and the whole of stderr and stdout) holds no part of the secret.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/orders"
cat >"$WORK/orders/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("orders.Place", { order = "string" })
bus.endpoint { name = "orders" }
bus.handle("orders.Place", function() end)
LUA
urls=(
  'amqp://admin:S3cr3t/Pa55@127.0.0.1:1/x'
  'amqp://admin:p@ssw0rdS3cr3t@127.0.0.1:1/'
  'amqp://admin:S3cr3t/Pa55'
  'amqp://admin:S3cr3t@127.0.0.1:99999/'
  'amqps://admin:S3cr3t?x@127.0.0.1:1/vh'
  'amqp:/admin:S3cr3t@127.0.0.1:1/'
  'admin:S3cr3t@127.0.0.1:1'
  'redis://admin:S3cr3t@127.0.0.1:1/'
  'S3cr3tPa55S3cr3tPa55://h'
  'sqlite://admin:S3cr3t@127.0.0.1:1/'
)
leaked=0
n=0
for url in "${urls[@]}"; do
  for how in run send errors env; do
    n=$((n + 1))
    out=$WORK/out.$n
    case $how in
    run) timeout 20 "$MOONBUS" run --no-reload --transport "$url" "$WORK/orders" >"$out" 2>&1 ;;
    send) timeout 20 "$MOONBUS" send orders orders.Place '{"order":"o1"}' --transport "$url" >"$out" 2>&1 ;;
    errors) timeout 20 "$MOONBUS" errors list --transport "$url" >"$out" 2>&1 ;;
    env) MOONBUS_TRANSPORT=$url timeout 20 "$MOONBUS" request orders orders.Place '{"order":"o1"}' --timeout 1 >"$out" 2>&1 ;;
    esac
    rc=$?
    if grep -aqE 'S3cr3t|Pa55|3cr3|ssw0rd' "$out"; then
      leaked=$((leaked + 1))
      echo "# $how $url (exit $rc): $(head -c 300 "$out")"
    fi
    [ $rc -ne 0 ] || { leaked=$((leaked + 1)); echo "# $how $url exited 0"; }
  done
done
check "none of $n failed commands shows any part of the password" test $leaked -eq 0
timeout 20 "$MOONBUS" run --no-reload --transport 'redis://admin:S3cr3t@127.0.0.1:1/' "$WORK/orders" 2>"$WORK/redis.err"
check "an unknown scheme is named, and nothing after it" \
  grep -q "unknown transport scheme 'redis': use sqlite://PATH, amqp:// or amqps://" "$WORK/redis.err"
timeout 20 "$MOONBUS" run --no-reload --transport 'amqp://admin:S3cr3t/Pa55@127.0.0.1:1/x' "$WORK/orders" 2>"$WORK/slash.err"
check "a password holding '/' is taken as a password: the error names the node" \
  grep -q "cannot connect to RabbitMQ at 127.0.0.1:1" "$WORK/slash.err"
exit $TAP_FAILED
