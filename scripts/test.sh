#!/usr/bin/env bash
# test.sh — runs moonbus's tests and prints one closing line "N passed, N failed".
#   scripts/test.sh            every suite: unit (C, ASan+UBSan), spec (busted), system
#   scripts/test.sh unit|spec|system
# Each suite speaks TAP ("ok ..." / "not ok ..."); a binary or script that dies without
# reporting counts as one failure. Output of each suite is kept in build/test-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"
suites=${1:-"unit spec system"}
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

run_unit() {
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

run_spec() {
  local log=$LOGS/spec.log
  echo "## spec (busted, transport: ${MOONBUS_TEST_TRANSPORT:-sqlite})"
  LUA_PATH="$ROOT/modules/?.lua;$ROOT/modules/?/init.lua;$ROOT/tests/spec/?.lua;;" \
  LUA_CPATH="$ROOT/build/?.so;;" MOONBUS_LOG=${MOONBUS_LOG:-error} \
    busted --lua=lua5.4 -o TAP tests/spec >"$log" 2>&1
  local rc=$?
  grep -E '^not ok' -A8 "$log" | head -80 || true
  count "$log" spec $rc
}

run_system() {
  for t in tests/system/*.sh; do
    [ -f "$t" ] && [ "$(basename "$t")" != lib.sh ] || continue
    local name log
    name=$(basename "$t" .sh)
    log=$LOGS/system-$name.log
    echo "## system $name"
    MOONBUS="$ROOT/build/asan/moonbus" ROOT="$ROOT" timeout 600 bash "$t" >"$log" 2>&1
    local rc=$?
    grep -E '^(not ok|# )' "$log" | head -40 || true
    count "$log" "system/$name" $rc
  done
}

for s in $suites; do "run_$s"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
