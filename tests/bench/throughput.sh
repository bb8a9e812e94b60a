#!/usr/bin/env bash
# throughput.sh N — one round of end-to-end throughput on RabbitMQ, raw against moonbus,
# on a fresh vhost each: N persistent ~200-byte messages to a quorum queue with publisher
# confirms (window 512) and a consumer with manual acks and prefetch 32.
#   raw:     build/bench/raw_amqp (one process, a publisher thread and a consumer)
#   moonbus: a feeder endpoint (`moonbus run`) sends N in one handler's outbox on a kick; a
#            sink endpoint (moonbus.so in lua5.4, the same C core) handles them with a no-op
#            Lua handler, concurrency 32, audit off (the raw side keeps no audit either).
# Prints two lines "raw|moonbus N SECONDS MSG_PER_S CPU_S_PER_1000" (CPU: every process).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-20000}
AMQP=${MOONBUS_BENCH_AMQP:-$(bash "$ROOT/scripts/rabbitmq.sh" url)}
WORK=$(mktemp -d /tmp/moonbus-bench.XXXXXX)
PREFIX="bench$$-"
bash "$ROOT/scripts/rabbitmq.sh" vhosts "$PREFIX" 2 >/dev/null
trap 'kill $FEEDER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; bash "$ROOT/scripts/rabbitmq.sh" drop-vhosts "$PREFIX" 2 >/dev/null 2>&1' EXIT
FEEDER=

"$ROOT/build/bench/raw_amqp" "$AMQP/${PREFIX}1" bench.raw "$N"

export MOONBUS_TRANSPORT="$AMQP/${PREFIX}2"
mkdir -p "$WORK/feeder"
cat >"$WORK/contracts.lua" <<'LUA'
local bus = require "moonbus"
bus.command("bench.Kick", { n = "number" })
bus.command("bench.Order", { order_id = "string", customer = "string", lines = "table", total = "number" })
LUA
cat >"$WORK/feeder/endpoint.lua" <<'LUA'
local bus = require "moonbus"
require "contracts"
bus.endpoint { name = "bench_feeder", routes = { ["bench.Order"] = "bench_sink" }, audit = false }
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
  lua5.4 - "$N" "$FEEDER" <<'LUA'
local testing = require "moonbus.testing"
local host = testing.host
local n, feeder = tonumber(arg[1]), arg[2]
local function cpu(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local fields = {}
  for x in f:read("a"):gmatch("%S+") do fields[#fields + 1] = x end
  f:close()
  return (tonumber(fields[14]) + tonumber(fields[15])) / 100
end
local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
require "contracts"
bus.endpoint { name = "bench_sink", concurrency = 32, audit = false,
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
print(string.format("moonbus %d %.3f %.0f %.4f", n, seconds, n / seconds, used * 1000 / n))
LUA
