#!/usr/bin/env bash
# moonbus_pair.sh N [audit] — the moonbus side of tests/bench/throughput.sh, on the broker
# (or vhost) of $MOONBUS_TRANSPORT, which the caller creates and drops: a feeder endpoint
# (`moonbus run`) sends N persistent ~200-byte messages in one handler's outbox on a kick; a
# sink endpoint (moonbus.so in lua5.4, the same C core) handles them with a no-op Lua
# handler, concurrency 32, audit off, or on with `audit` (a copy of each handled message to
# the queue `audit`, which is left full for the caller). Timed until the sink handled all N.
# Prints "moonbus N SECONDS MSG_PER_S CPU_S_PER_1000" (CPU: feeder and sink).
# Never: creates or deletes the vhost, or drains the audit queue.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-20000}
AUDIT=$([ "${2:-}" = audit ] && echo true || echo false)
: "${MOONBUS_TRANSPORT:?moonbus_pair.sh needs MOONBUS_TRANSPORT (the vhost to use)}"
export MOONBUS_TRANSPORT
WORK=$(mktemp -d /tmp/moonbus-bench.XXXXXX)
FEEDER=
trap '[ -n "$FEEDER" ] && kill $FEEDER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/feeder"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("bench.Kick", { n = "number" })
bus.command("bench.Order", { order_id = "string", customer = "string", lines = "table", total = "number" })
LUA
cat >"$WORK/feeder/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "bench_feeder", routes = { ["bench.Order"] = "bench_sink" }, audit = false,
  report = tonumber(os.getenv("BENCH_REPORT")) or false }
local lines = { { sku = "moon-bus-001", qty = 2, price = 12.5 }, { sku = "moon-bus-002", qty = 1, price = 99.9 } }
bus.handle("bench.Kick", function(k)
  for i = 1, k.n do
    bus.send("bench.Order", { order_id = string.format("o-%08d", i), customer = "ada lovelace",
      lines = lines, total = 124.9 })
  end
end)
LUA
MOONBUS_LOG=warn "$ROOT/build/moonbus" run "$WORK/feeder" 2>"$WORK/feeder.log" &
FEEDER=$!
for _ in $(seq 1 100); do grep -q " running " "$WORK/feeder.log" 2>/dev/null && break; sleep 0.1; done
LUA_PATH="$WORK/?.lua;$ROOT/modules/?.lua;;" LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=warn \
  lua5.4 - "$N" "$FEEDER" "$AUDIT" <<'LUA'
local testing = require "moonbus.testing"
local host = testing.host
local n, feeder = tonumber(arg[1]), arg[2]
local audit = arg[3] == "true" and "audit" or false
local function cpu(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local fields = {}
  for x in f:read("a"):gmatch("%S+") do fields[#fields + 1] = x end
  f:close()
  return (tonumber(fields[14]) + tonumber(fields[15])) / 100
end
local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
require "contracts"
bus.endpoint { name = "bench_sink", concurrency = 32, audit = audit,
  routes = { ["bench.Kick"] = "bench_feeder" } }
local got = 0
bus.handle("bench.Order", function() got = got + 1 end)
host.start()
local cpu0, fcpu0 = cpu("self"), cpu(feeder)
local t0 = host.clock()
bus.send("bench.Kick", { n = n })
assert(testing.run_until(function() return got == n end, 600), "only " .. got .. " handled")
local seconds = host.clock() - t0
local used = cpu("self") - cpu0 + cpu(feeder) - fcpu0
testing.run_until_idle(30) -- untimed: the last acknowledgements (and audit copies) settle
print(string.format("moonbus %d %.3f %.0f %.4f", n, seconds, n / seconds, used * 1000 / n))
LUA
