#!/usr/bin/env bash
# The CLI refuses what would mislead an operator: `errors list|show` on a sqlite:// path
# that does not exist (a typo) is an error naming the path, and creates nothing; `send`,
# `publish` and `request` refuse a body that is not a JSON object and an empty or
# malformed type, and send nothing.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/orders"
cat >"$WORK/orders/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("orders.Place", { order = "string" })
bus.endpoint { name = "orders" }
bus.handle("orders.Place", function() end)
LUA
first_start "$WORK/orders"
typo=$WORK/typo/bsu.db
for cmd in "list" "show 0190c4b6-8ad4-7c2e-9a3e-7a1f0c2b9d11"; do
  # shellcheck disable=SC2086
  "$MOONBUS" errors $cmd --transport "sqlite://$typo" >"$WORK/typo.out" 2>"$WORK/typo.err"; rc=$?
  check "errors $cmd on a database that does not exist exits 1 (exit $rc)" test $rc -eq 1
  check "saying so, with the path" grep -qF "there is no moonbus database at $typo" "$WORK/typo.err"
  check "and creates nothing" test ! -e "$WORK/typo"
done
MOONBUS_TRANSPORT="sqlite://$typo?synchronous=normal" "$MOONBUS" errors list 2>"$WORK/typo.err"; rc=$?
check "the same from \$MOONBUS_TRANSPORT, options and all (exit $rc)" \
  eval 'test $rc -eq 1 && grep -qF "no moonbus database at $typo:" "$WORK/typo.err" && test ! -e "$WORK/typo"'
"$MOONBUS" errors list >/dev/null 2>"$WORK/list.err"; rc=$?
check "errors list on the real bus still works (exit $rc)" test $rc -eq 0
refused() { # refused WHAT EXPECTED-TEXT command...
  local what=$1 text=$2
  shift 2
  "$@" >"$WORK/refused.out" 2>"$WORK/refused.err"
  local rc=$?
  check "$what is refused with exit 2 (exit $rc)" test $rc -eq 2
  check "saying: $text" grep -qF "$text" "$WORK/refused.err"
}
refused "send with a JSON array body" "the body must be a JSON object ({...}), got an array" \
  "$MOONBUS" send orders orders.Place '[{"order":"o1"}]'
refused "send with a JSON string body" "the body must be a JSON object" "$MOONBUS" send orders orders.Place '"o1"'
refused "send with a number body" "the body must be a JSON object" "$MOONBUS" send orders orders.Place ' 42'
refused "send with an empty type" "a message type has 1 to 255 characters, got 0" \
  "$MOONBUS" send orders '' '{"order":"o1"}'
refused "send with a type holding a space" "the message type has a space" \
  "$MOONBUS" send orders 'orders Place' '{"order":"o1"}'
refused "publish with a JSON array body" "must be a JSON object" \
  "$MOONBUS" publish - orders.Placed '[]'
refused "request with an empty type" "got 0" "$MOONBUS" request orders '' '{}' --timeout 1
check "nothing was sent" test "$(depth orders)" -eq 0
"$MOONBUS" send orders orders.Place ' {"order":"o1"}' >/dev/null; rc=$?
check "a JSON object body with a declared type is sent (exit $rc)" test $rc -eq 0
check "and only that one" test "$(depth orders)" -eq 1
exit $TAP_FAILED
