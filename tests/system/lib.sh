# lib.sh — shared by the system tests: TAP output, a scratch directory, host processes
# that are always cleaned up, and bounded waiting. Source it; set MOONBUS to the binary.
set -uo pipefail
MOONBUS=${MOONBUS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/asan/moonbus}
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WORK=$(mktemp -d /tmp/moonbus-system.XXXXXX)
export MOONBUS_TRANSPORT=${MOONBUS_TRANSPORT:-"sqlite://$WORK/bus.db"}
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

# On failure the hosts' logs are kept in build/test-logs/system-NAME.hosts/.
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$TAP_FAILED" -ne 0 ]; then
    local keep
    keep=$ROOT/build/test-logs/system-$(basename "$0" .sh).hosts
    rm -rf "$keep" && mkdir -p "$keep" && cp "$WORK"/*.log "$WORK"/*.out "$keep"/ 2>/dev/null
  fi
  rm -rf "$WORK"
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
queue_exists() { [ "$(sql "select count(*) from queues where name='$1'" 2>/dev/null)" = 1 ]; }
