      if ! read -r rc seconds 2>/dev/null <"$log.rc"; then
        echo "not ok - the  lane did not run it" >>"$log"
        rc=1 seconds=0
      fi
#!/usr/bin/env bash
# test.sh — runs moonbus's tests and prints one closing line "N passed, N failed".
#   scripts/test.sh            every suite: style (make lint, make fmt-check, layers.sh), unit (C,
#                              ASan+UBSan), spec (busted), system, browser (the ops UI)
#   scripts/test.sh style|unit|spec|system|browser
# Each suite speaks TAP ("ok ..." / "not ok ..."); a binary or script that dies without
# reporting counts as one failure. Output of each suite is kept in build/test-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"
suites=${1:-"style unit spec system browser"}
passed=0
failed=0

count() { # count FILE LABEL EXIT_CODE
  local p f
  p=$(grep -cE '^ok ' "$1" || true)
  f=$(grep -cE '^not ok ' "$1" || true)
  if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "not ok - $2 exited with status $3 without reporting a failure" | tee -a "$1"
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  echo "# $2: $p passed, $f failed"
}

# A private service for the tests that need one: need_service SCRIPT VAR LABEL — $VAR if
# given, else the one scripts/SCRIPT.sh runs (started if it does not run, and then stopped
# again at the end of this run), its URL exported in VAR.
STARTED_SERVICES=""
need_service() {
  local script=scripts/$1.sh var=$2
  [ -n "${!var:-}" ] && return 0
  if ! bash "$script" status >/dev/null 2>&1; then
    echo "## starting a private $3 ($script)"
    bash "$script" start || return 1
    STARTED_SERVICES="$STARTED_SERVICES $1"
  fi
  printf -v "$var" '%s' "$(bash "$script" url)"
  export "${var?}"
}
# A RabbitMQ broker ($MOONBUS_TEST_AMQP) and a PostgreSQL (DESIGN §12, $MOONBUS_TEST_PG).
need_rabbitmq() { need_service rabbitmq MOONBUS_TEST_AMQP RabbitMQ; }
need_postgres() { need_service postgres MOONBUS_TEST_PG PostgreSQL; }
stop_services() {
  local s
  for s in $STARTED_SERVICES; do bash "scripts/$s.sh" stop; done
}
trap stop_services EXIT

# One make target as one test: style_check TARGET. A failure names the offending files
# (with their count of complaints) and the first complaints; the whole output is in the log.
style_check() {
  local log=$LOGS/style-$1.log
  echo "## style: make $1"
  MAKEFLAGS= make --no-print-directory -s "$1" >"$log" 2>&1
  local rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "ok - make $1" >>"$log"
  else
    local where files
    where=$(grep -E '^[^ :]+:[0-9]+:[0-9]+: (error|warning|style|performance|portability)' "$log")
    files=$(cut -d: -f1 <<<"$where" | sort | uniq -c | awk 'NF == 2 {printf "#   %s (%d)\n", $2, $1}')
    {
      echo "not ok - make $1 failed (exit $rc); offending files:"
      echo "${files:-#   (none named; the output ends with:)}"
      if [ -n "$where" ]; then head -10 <<<"$where" | sed 's/^/#   /'; else tail -5 "$log" | sed 's/^/#   /'; fi
      [ "$1" = fmt-check ] && echo "#   (make fmt rewrites them in the style of .clang-format)"
    } >"$log.summary"
    cat "$log.summary" >>"$log"
    cat "$log.summary"
    rm -f "$log.summary"
  fi
  count "$log" "style/$1" 0
}

# The tree keeps one style: cppcheck finds nothing and clang-format would change nothing.
run_style() {
  style_check lint
  style_check fmt-check
  echo "## style: layers (the include graph and struct ownership, scripts/layers.sh)"
  bash scripts/layers.sh >"$LOGS/style-layers.log" 2>&1
  local rc=$?
  grep -E '^(not ok|#   )' "$LOGS/style-layers.log" || true
  count "$LOGS/style-layers.log" "style/layers" $rc
}

run_unit() {
  if ls build/asan/tests/*rabbitmq* >/dev/null 2>&1; then
    need_rabbitmq || echo "not ok - a RabbitMQ broker for the unit tests could not be started" | tee "$LOGS/rabbitmq.log"
    [ -f "$LOGS/rabbitmq.log" ] && count "$LOGS/rabbitmq.log" rabbitmq 1 && rm -f "$LOGS/rabbitmq.log"
  fi
  if [ -x build/asan/tests/test_pg ]; then
    need_postgres || echo "not ok - a PostgreSQL for the unit tests could not be started" | tee "$LOGS/postgres.log"
    [ -f "$LOGS/postgres.log" ] && count "$LOGS/postgres.log" postgres 1 && rm -f "$LOGS/postgres.log"
  fi
  for t in build/asan/tests/test_* build/asan/tests/fuzz_*; do
    [ -x "$t" ] || continue
    local name log
    name=$(basename "$t")
    log=$LOGS/unit-$name.log
    echo "## unit $name"
    ASAN_OPTIONS=detect_leaks=1 "$t" >"$log" 2>&1
    local rc=$?
    grep -E '^(not ok|#   )' "$log" || true
    count "$log" "unit/$name" $rc
  done
}

# busted on one transport: spec_on LABEL TRANSPORT_URL (empty: SQLite files).
spec_on() {
  local log=$LOGS/spec-$1.log
  echo "## spec on $1 (busted)"
  MOONBUS_TEST_TRANSPORT=$2 MOONBUS_ROOT=$ROOT \
  LUA_PATH="$ROOT/modules/?.lua;$ROOT/modules/?/init.lua;$ROOT/tests/spec/?.lua;;" \
  LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=${MOONBUS_LOG:-error} \
    busted --lua=lua5.4 -o TAP tests/spec >"$log" 2>&1
  local rc=$?
  grep -E '^not ok' -A8 "$log" | head -80 || true
  count "$log" "spec[$1]" $rc
}

# Every spec runs on both transports. On RabbitMQ each bus a spec makes gets a virtual
# host of its own from a pool made in one call (see testing.url in modules/moonbus/testing.lua).
run_spec() {
  spec_on sqlite ""
  if ! need_rabbitmq; then
    echo "not ok - spec[rabbitmq]: no RabbitMQ broker could be started" | tee "$LOGS/spec-rabbitmq.log"
    count "$LOGS/spec-rabbitmq.log" "spec[rabbitmq]" 1
    return
  fi
  local prefix="spec$$-"
  bash scripts/rabbitmq.sh vhosts "$prefix" 300
  rm -f "$LOGS/vhost-next"
  MOONBUS_TEST_VHOSTS="$prefix 300 $LOGS/vhost-next" spec_on rabbitmq "$MOONBUS_TEST_AMQP"
  bash scripts/rabbitmq.sh drop-vhosts "$prefix" 300
}

# Every system test runs on both transports (rabbitmq_*.sh test the broker itself, so on
# RabbitMQ only; sqlite_*.sh SQLite only); on RabbitMQ each gets a virtual host. The two
# transports are two lanes run side by side (each test of a lane after the other: most of
# their time is waiting for processes), and reported in order when both are done.
system_transports() { # system_transports NAME: the lanes test NAME runs in
  case $1 in
  rabbitmq_*) echo rabbitmq ;;
  sqlite_*) echo sqlite ;;
  *) echo "sqlite rabbitmq" ;;
  esac
}

system_tests() {
  for t in tests/system/*.sh; do
    [ -f "$t" ] && [ "$(basename "$t")" != lib.sh ] && echo "$t"
  done
}

# system_lane TRANSPORT AMQP: every test of the lane into its log, with "EXIT SECONDS" in
# LOG.rc.
system_lane() {
  local transport=$1 amqp=$2 t name log rc began
  for t in $(system_tests); do
    name=$(basename "$t" .sh)
    [[ " $(system_transports "$name") " == *" $transport "* ]] || continue
    log=$LOGS/system-$name-$transport.log
    began=$SECONDS
    if [ "$transport" = rabbitmq ] && [ -z "$amqp" ]; then
      echo "not ok - no RabbitMQ broker could be started" >"$log"
      rc=1
    else
      MOONBUS_TEST_TRANSPORT=$([ "$transport" = rabbitmq ] && echo "$amqp") \
        MOONBUS="$ROOT/build/asan/moonbus" ROOT="$ROOT" timeout 600 bash "$t" >"$log" 2>&1
      rc=$?
    fi
    echo "$rc $((SECONDS - began))" >"$log.rc"
  done
}

run_system() {
  local amqp="" t name transport log rc seconds began=$SECONDS
  need_rabbitmq && amqp=$MOONBUS_TEST_AMQP
  echo "## system tests: the sqlite and rabbitmq lanes side by side"
  system_lane sqlite "" &
  local sqlite_lane=$!
  system_lane rabbitmq "$amqp" &
  wait "$sqlite_lane" $!
  for t in $(system_tests); do
    name=$(basename "$t" .sh)
    for transport in $(system_transports "$name"); do
      log=$LOGS/system-$name-$transport.log
      echo "## system $name on $transport"
      if ! read -r rc seconds 2>/dev/null <"$log.rc"; then
        echo "not ok - the $transport lane did not run it" >>"$log"
        rc=1 seconds=0
      fi
      grep -E '^(not ok|# )' "$log" | head -40 || true
      count "$log" "system[$transport]/$name ($seconds s)" "$rc"
    done
  done
  echo "# system tests: $((SECONDS - began)) s"
}

# The ops web UI in a real browser (Debian's chromium driven by playwright-core), on both
# transports.
run_browser() {
  local amqp="" transport log rc began
  need_rabbitmq && amqp=$MOONBUS_TEST_AMQP
  for transport in sqlite rabbitmq; do
    log=$LOGS/browser-$transport.log
    echo "## browser tests of the ops UI on $transport"
    began=$SECONDS
    MOONBUS_TEST_TRANSPORT=$([ "$transport" = rabbitmq ] && echo "$amqp") \
      timeout 600 bash tests/browser/run.sh >"$log" 2>&1
    rc=$?
    grep -E '^(not ok|# )' "$log" | head -40 || true
    count "$log" "browser[$transport] ($((SECONDS - began)) s)" $rc
  done
}

for s in $suites; do "run_$s"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
