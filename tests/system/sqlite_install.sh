#!/usr/bin/env bash
# Install (SQLite only: what is tested is the installed tree, not the transport):
# `make install DESTDIR=... PREFIX=/usr/local` stages the binary, the Lua module, moonbus's
# modules, the templates, the LuaLS definitions and the systemd unit; the staged binary finds
# its modules next to itself (not in the build tree): it runs an endpoint, `moonbus new`
# works from there, and `moonbus test` runs the new spec with the installed module;
# `make uninstall` removes it all. The rockspec installs the module with `luarocks make
# --tree`, and lua5.4 requires it from that tree. The systemd unit passes
# `systemd-analyze verify` (or, without systemd-analyze, has the lines it must have).
. "$(dirname "$0")/lib.sh"
export MOONBUS_LOG=info
STAGE=$WORK/stage
P=$STAGE/usr/local
BIN=$P/bin/moonbus

make -s -C "$ROOT" install DESTDIR="$STAGE" PREFIX=/usr/local >"$WORK/install.log" 2>&1
check "make install DESTDIR PREFIX=/usr/local succeeds (exit $?)" test $? = 0
for f in bin/moonbus lib/lua/5.4/moonbus.so share/lua/5.4/moonbus/testing.lua \
  share/lua/5.4/moonbus/templates/endpoint.lua.tmpl share/moonbus/types/moonbus.lua \
  share/moonbus/types/moonbus_testing.lua lib/systemd/system/moonbus@.service; do
  check "it installed \$PREFIX/$f" test -s "$P/$f"
done
check "the binary is executable" test -x "$BIN"
check "the unit runs \$PREFIX/bin/moonbus" grep -qx 'ExecStart=/usr/local/bin/moonbus run /etc/moonbus/%i --drain 10' \
  "$P/lib/systemd/system/moonbus@.service"

# The staged binary, its modules found relative to it (not from the build tree).
"$BIN" new "$WORK/app/hello" >"$WORK/new.out" 2>&1
check "the installed moonbus new scaffolds an endpoint (exit $?)" test -f "$WORK/app/hello/endpoint.lua"
check "its .busted points at the installed modules" grep -q "\"$P/share/lua/5.4/?.lua" "$WORK/app/hello/.busted"
check "and at the installed C module" grep -q "\"$P/lib/lua/5.4/?.so\"" "$WORK/app/hello/.busted"
MOONBUS=$BIN start_host hello "$WORK/app/hello"
HOST=$LAST_PID
wait_for 20 host_ready hello
check "the installed binary runs the endpoint" host_ready hello
out=$("$BIN" request hello hello.Greet '{"name":"installed"}' --timeout 20 2>"$WORK/req.err")
check "and answers a request: $out" test "$out" = '{"greeting":"hello, installed"}'
stop_host "$HOST"
check "and stops cleanly (exit $?)" test $? = 0
env -u LUA_PATH -u LUA_CPATH MOONBUS_TEST_TRANSPORT='' "$BIN" test "$WORK/app/hello" >"$WORK/test.out" 2>&1
check "the installed moonbus test runs the new spec, which passes (exit $?)" \
  grep -q '1 success / 0 failures' "$WORK/test.out"

make -s -C "$ROOT" uninstall DESTDIR="$STAGE" PREFIX=/usr/local >>"$WORK/install.log" 2>&1
left=$(find "$STAGE" -type f | sed "s|^$STAGE||")
check "make uninstall removes every file it installed${left:+: left }$(echo $left)" test -z "$left"

# The rockspec: the module in a LuaRocks tree (lua-cjson comes from the system: --deps-mode none).
if command -v luarocks >/dev/null; then
  (cd "$ROOT" && luarocks --lua-version 5.4 make --deps-mode none --tree "$WORK/rocks" \
    moonbus-0.1.0-1.rockspec) >"$WORK/rocks.log" 2>&1
  check "luarocks make --tree installs the rock (exit $?)" test -f "$WORK/rocks/lib/lua/5.4/moonbus.so"
  got=$(cd "$WORK" && MOONBUS_LOG=error lua5.4 -e "
    package.path = '$WORK/rocks/share/lua/5.4/?.lua;' .. package.path
    package.cpath = '$WORK/rocks/lib/lua/5.4/?.so;' .. package.cpath
    local bus = require 'moonbus'
    local testing = require 'moonbus.testing'
    testing.fresh()
    print(type(bus.handle), package.searchpath('moonbus', package.cpath),
      package.searchpath('moonbus.testing', package.path))" 2>&1)
  check "lua5.4 requires moonbus and moonbus.testing from the tree: $got" \
    test "$got" = "function	$WORK/rocks/lib/lua/5.4/moonbus.so	$WORK/rocks/share/lua/5.4/moonbus/testing.lua"
else
  echo "# luarocks is not installed (scripts/install-deps.sh installs it): rockspec not tested"
fi

# The systemd unit.
UNIT=$ROOT/contrib/systemd/moonbus@.service
mkdir -p "$WORK/units"
sed "s|^ExecStart=/usr/local/bin/moonbus |ExecStart=$ROOT/build/moonbus |" "$UNIT" >"$WORK/units/moonbus@test.service"
if command -v systemd-analyze >/dev/null; then
  (cd "$WORK/units" && systemd-analyze verify ./moonbus@test.service) >"$WORK/verify.log" 2>&1
  check "systemd-analyze verify accepts the unit (exit $?)" test $? = 0
  sed 's/^/# /' "$WORK/verify.log"
fi
for line in 'ExecStart=/usr/local/bin/moonbus run /etc/moonbus/%i --drain 10' \
  'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' 'KillSignal=SIGTERM' \
  'TimeoutStopSec=15' 'User=moonbus'; do
  check "the unit says $line" grep -qxF "$line" "$UNIT"
done
check "it stops later than the drain it gives handlers" \
  test "$(sed -n 's/^TimeoutStopSec=//p' "$UNIT")" -gt "$(sed -n 's/^ExecStart=.*--drain \([0-9]*\).*/\1/p' "$UNIT")"
exit $TAP_FAILED
