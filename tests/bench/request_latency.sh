#!/usr/bin/env bash
# request_latency.sh [N] — request/reply latency of moonbus: a responder endpoint
# (`moonbus run`, release build) and a requester (stock lua5.4 + moonbus.so) that makes N
# sequential bus.request calls from a timer after 100 unmeasured ones, one in flight at a
# time. Prints p50, p90, p99 and max in ms. The transport is $MOONBUS_TRANSPORT (default: a
# fresh SQLite file with synchronous=full); e.g.
#   MOONBUS_TRANSPORT=$(bash scripts/rabbitmq.sh url) bash tests/bench/request_latency.sh 2000
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-2000}
WORK=$(mktemp -d /tmp/moonbus-bench.XXXXXX)
export MOONBUS_TRANSPORT=${MOONBUS_TRANSPORT:-sqlite://$WORK/bus.db}
trap 'kill $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/server"
cat >"$WORK/server/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("bench.Ping", { i = "number" })
bus.message("bench.Pong", { i = "number" })
bus.endpoint { name = "bench_server" }
bus.handle("bench.Ping", function(ping, ctx) ctx:reply("bench.Pong", { i = ping.i }) end)
LUA
MOONBUS_LOG=warn "$ROOT/build/moonbus" run "$WORK/server" 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do grep -q " running " "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
LUA_PATH="$ROOT/modules/?.lua;;" LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=warn lua5.4 - "$N" <<'LUA'
local testing = require "moonbus.testing"
local host = testing.host
local n = tonumber(arg[1])
local bus = testing.fresh(os.getenv("MOONBUS_TRANSPORT"))
bus.command("bench.Ping", { i = "number" })
bus.message("bench.Pong", { i = "number" })
bus.endpoint { name = "bench_client", routes = { ["bench.Ping"] = "bench_server" } }
local ms, done = {}, false
bus.after(0, function()
  for i = 1, 100 do bus.request("bench.Ping", { i = i }, { timeout = 10 }) end
  for i = 1, n do
    local t0 = host.clock()
    local pong = bus.request("bench.Ping", { i = i }, { timeout = 10 })
    ms[i] = (host.clock() - t0) * 1000
    assert(pong.i == i, "crossed reply")
  end
  done = true
end)
local t0 = host.clock()
assert(testing.run_until(function() return done end, 600), "the requests did not finish")
local wall = host.clock() - t0
table.sort(ms)
local function p(q) return ms[math.max(1, math.ceil(q * #ms))] end
print(string.format("%-8s %5d requests  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  (%.0f req/s)",
  (os.getenv("MOONBUS_TRANSPORT"):match("^(%a+)")), n, p(0.5), p(0.9), p(0.99), ms[#ms], (n + 100) / wall))
LUA
