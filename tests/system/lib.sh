# lib.sh — shared by the system tests: TAP output, a scratch directory, host processes
# that are always cleaned up, bounded waiting, and a look into the transport that works on
# both (queue depth, parked messages, a raw foreign message). Source it; set MOONBUS to the
# binary. With MOONBUS_TEST_TRANSPORT=amqp://host:port the test runs on a virtual host of
# its own on that broker; otherwise on a new SQLite file.
set -uo pipefail
MOONBUS=${MOONBUS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/asan/moonbus}
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WORK=$(mktemp -d /tmp/moonbus-system.XXXXXX)
case ${MOONBUS_TEST_TRANSPORT:-} in
amqp://* | amqps://*)
  TRANSPORT=rabbitmq
  VHOST="sys$$-"
  bash "$ROOT/scripts/rabbitmq.sh" vhosts "$VHOST" 1 || { echo "not ok - a vhost for the test"; exit 1; }
  export MOONBUS_TRANSPORT="${MOONBUS_TEST_TRANSPORT%/}/${VHOST}1"
  ;;
*)
  TRANSPORT=sqlite
  export MOONBUS_TRANSPORT=${MOONBUS_TRANSPORT:-"sqlite://$WORK/bus.db"}
  ;;
esac
echo "# transport: $TRANSPORT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
PIDS=()
TAP_FAILED=0

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; TAP_FAILED=1; }
check() { # check "description" command...
  local what=$1
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# On failure the hosts' logs are kept in build/test-logs/system-NAME-TRANSPORT.hosts/.
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$TAP_FAILED" -ne 0 ]; then
    local keep
    keep=$ROOT/build/test-logs/system-$(basename "$0" .sh)-$TRANSPORT.hosts
    rm -rf "$keep" && mkdir -p "$keep" && cp "$WORK"/*.log "$WORK"/*.out "$keep"/ 2>/dev/null
  fi
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
  [ "$TRANSPORT" = rabbitmq ] && bash "$ROOT/scripts/rabbitmq.sh" drop-vhosts "$VHOST" 1
}
trap cleanup EXIT

# start_host NAME DIR [args...]: runs a host in the background, logging to $WORK/NAME.log;
# its pid is in $LAST_PID.
start_host() {
  local name=$1
  shift
  "$MOONBUS" run "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# wait_for SECONDS command...: polls every 0.1 s until the command succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  while [ $SECONDS -lt $deadline ]; do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

# wait_until SECONDS 'shell condition': like wait_for, but the condition is a string
# evaluated afresh on each try (so "$(...)" inside it is re-run every time).
wait_until() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    eval "$2" && return 0
    sleep 0.1
  done
  eval "$2"
}

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
db_path() { local u=${MOONBUS_TRANSPORT#sqlite://}; echo "${u%%\?*}"; }
sql() { sqlite3 -cmd '.timeout 10000' "$(db_path)" "$@"; }

# host_ready NAME: the host has declared its topology and consumes (it logged "running").
host_ready() { grep -q " running " "$WORK/$1.log" 2>/dev/null; }

# mb_lua CODE: runs Lua with moonbus.host opened on $MOONBUS_TRANSPORT as `host`.
mb_lua() {
  LUA_PATH="$ROOT/modules/?.lua;;" LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=error lua5.4 -e "
    local host = require 'moonbus.host'
    host.reset { transport = os.getenv('MOONBUS_TRANSPORT') }
    $1"
}
# send_many DEST TYPE FROM TO: sends commands TYPE { n = FROM..TO } to DEST (the contracts
# in $WORK/contracts.lua) and prints how many were sent.
send_many() {
  LUA_PATH="$WORK/?.lua;$ROOT/modules/?.lua;;" LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=error \
    lua5.4 "$ROOT/tests/tools/send_many.lua" "$@"
}
# depth QUEUE: messages ready in QUEUE.
depth() { mb_lua "print((host.depth('$1')))"; }
# parked [QUEUE]: one line per message of the error queue: id, body, exception message.
parked() {
  mb_lua "for _, m in ipairs(host.browse('${1:-error}', 1000)) do
    print(m.id .. '\t' .. m.body .. '\t' .. (m.headers['moonbus.exception.message'] or ''))
  end"
}
# inject QUEUE ID TYPE BODY [broken-headers]: a raw message as a foreign sender writes it,
# with the header moonbus.kind = command, or with malformed headers if asked.
inject() {
  if [ "$TRANSPORT" = sqlite ]; then
    local headers='{"moonbus.kind":"command"}'
    [ -n "${5:-}" ] && headers='{"moonbus.kind":'
    sql "insert into messages(queue,id,type,headers,body,visible_at) values('$1','$2','$3','$headers','$4',0)"
  elif [ -n "${5:-}" ]; then
    "$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" "$1" "$2" "$3" "$4" --nest moonbus.kind
  else
    "$ROOT/build/tools/amqp_inject" "$MOONBUS_TRANSPORT" "$1" "$2" "$3" "$4" moonbus.kind=command
  fi
}

# first_start DIR: runs a host on DIR until it has declared its queue and topology, then stops
# it (messages sent afterwards wait for the next host).
first_start() {
  start_host first "$1"
  wait_for 10 host_ready first
  kill -TERM "$LAST_PID"
  wait "$LAST_PID"
}

# supervise DIR MAX 'condition': like a process supervisor, starts a host on DIR (logging to
# run1.log, run2.log, ...) again each time it dies, at most MAX times, until a host is alive
# once the condition holds (it may use $run, the number of the current start). Sets DEATHS
# and LAST_PID (the host left running).
supervise() {
  local dir=$1 max=$2 cond=$3 pid
  DEATHS=0
  for run in $(seq 1 "$max"); do
    start_host "run$run" "$dir"
    pid=$LAST_PID
    wait_until 20 "$cond || ! kill -0 $pid 2>/dev/null"
    kill -0 "$pid" 2>/dev/null && return 0
    wait "$pid" 2>/dev/null
    DEATHS=$((DEATHS + 1))
  done
}

# feeder_and_worker: writes $WORK/feeder (command work.Kick { n } sends work.Item 1..n to
# worker) and $WORK/worker (concurrency 16; each item takes ~2 ms of CPU, then its n is
# appended to $OUT), so that a kill or a full disk lands mid-stream. Starts neither.
feeder_and_worker() {
  mkdir -p "$WORK/feeder" "$WORK/worker"
  cat >"$WORK/feeder/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("work.Kick", { n = "number" })
bus.command("work.Item", { n = "number" })
bus.endpoint { name = "feeder", routes = { ["work.Item"] = "worker" } }
bus.handle("work.Kick", function(kick)
  for i = 1, kick.n do bus.send("work.Item", { n = i }) end
end)
LUA
  cat >"$WORK/worker/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("work.Item", { n = "number" })
bus.endpoint { name = "worker", concurrency = 16 }
local out = assert(io.open(os.getenv("OUT"), "a"))
bus.handle("work.Item", function(item)
  local t = os.clock() + 0.002
  while os.clock() < t do end -- a little work per item
  out:write(item.n, "\n")
  out:flush()
end)
LUA
}

# hostile_endpoint MAX_BODY CONCURRENCY: starts endpoint h, which declares command h.Do
# { n = number }, retries nothing and appends "n id" of each message it handles to
# $HANDLED ($WORK/handled.txt); sets H to its pid and checks it started.
hostile_endpoint() {
  mkdir -p "$WORK/h"
  cat >"$WORK/h/endpoint.lua" <<LUA
local bus = require "moonbus"
bus.command("h.Do", { n = "number" })
bus.endpoint { name = "h", max_body = $1, concurrency = $2,
  retries = { immediate = 0, delayed = 0 } }
local out = assert(io.open(os.getenv("HANDLED"), "a"))
bus.handle("h.Do", function(d, ctx)
  out:write(d.n, " ", ctx.id, "\n")
  out:flush()
end)
LUA
  export MOONBUS_LOG=info HANDLED=$WORK/handled.txt
  touch "$HANDLED"
  start_host h "$WORK/h"
  H=$LAST_PID
  wait_for 20 host_ready h
  check "the endpoint starts" host_ready h
}

# --- hostile foreign senders (tests/tools/amqp_random.c, tests/tools/sqlite_random.lua) ---
# hostile QUEUE CASE N TYPE MAX_BODY: one message of a named hostile kind (bare, typed,
# oversize, frame, dup, wrongtyped, nonutf8, nonjson, array, newline) written by a foreign
# sender straight into QUEUE; its body, where it is good JSON, is {"n":N}.
hostile() {
  if [ "$TRANSPORT" = sqlite ]; then
    lua5.4 "$ROOT/tests/tools/sqlite_random.lua" case "$2" "$3" "$1" "$4" "$5" | sql
  else
    "$ROOT/build/tools/amqp_random" "$MOONBUS_TRANSPORT" "$1" case "$2" "$3" "$4" "$5" >/dev/null
  fi
}
# hostile_random QUEUE SEED COUNT TYPE MAX_BODY GOOD_FILE: COUNT random foreign messages;
# prints "sent S good G" (the n of each message that must be handled goes to GOOD_FILE).
hostile_random() {
  if [ "$TRANSPORT" = sqlite ]; then
    lua5.4 "$ROOT/tests/tools/sqlite_random.lua" random "$2" "$3" "$1" "$4" "$5" "$6" | sql || return 1
    echo "sent $3 good $(lines "$6")"
  else
    "$ROOT/build/tools/amqp_random" "$MOONBUS_TRANSPORT" "$1" random "$2" "$3" "$4" "$5" "$6" | tail -1
  fi
}
# depth_all QUEUE: messages in QUEUE, ready and not (delayed or leased).
depth_all() { mb_lua "local r, l = host.depth('$1') print(r + l)"; }
# foreign_log_lines FILE: the lines of a host's log that do not start like a moonbus log
# line ("2026-12-01T23:45:52.738247Z info  [endpoint] ...").
foreign_log_lines() {
  grep -avE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z (debug|info |warn |error) \[[^]]*\] ' "$1"
}
# stop_host PID [SECONDS]: SIGTERM, then waits at most SECONDS (default 20) for the host to
# exit; returns its exit status, or 124 (after SIGKILL) if it did not stop in time.
stop_host() {
  local pid=$1 deadline=$((SECONDS + ${2:-20}))
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid"
}

# start_ops NAME [args...]: runs `moonbus ops --listen 127.0.0.1:0` (args may add another
# --listen, a --store, a --token-file...) logging to $WORK/NAME.log, and waits until it
# serves; $OPS_PID is its pid, $OPS_URL its address (http://127.0.0.1:PORT) and $OPS_PORT
# its port.
start_ops() {
  local name=$1
  shift
  "$MOONBUS" ops --listen 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  OPS_PID=$!
  PIDS+=("$OPS_PID")
  wait_until 20 "grep -qs 'serving http' '$WORK/$name.log'"
  OPS_PORT=$(grep -o 'serving http://[^/]*' "$WORK/$name.log" | head -1 | sed 's/.*://')
  OPS_URL="http://127.0.0.1:$OPS_PORT"
}
