#!/usr/bin/env bash
# run.sh — the browser tests of the ops web UI (tests/browser/ops_ui.mjs), TAP on stdout
# ("ok N - ..." / "not ok N - ..."). Needs `make all` (build/asan/moonbus, build/moonbus.so),
# Debian's /usr/bin/chromium and node; installs playwright-core from package-lock.json with
# `npm ci` when node_modules lacks it (it downloads no browser). Hosts' logs of a failed run
# are kept in build/test-logs/browser/.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
fail() { echo "not ok 1 - $*"; echo "1..1"; exit 1; }
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is installed (apt-get install -y chromium)"
command -v node >/dev/null || fail "node is installed (apt-get install -y nodejs npm)"
[ -x "${MOONBUS:-build/asan/moonbus}" ] && [ -f build/moonbus.so ] || fail "make all has built build/asan/moonbus and build/moonbus.so"
if [ ! -f node_modules/playwright-core/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2 || fail "npm ci installs playwright-core"
fi
exec node tests/browser/ops_ui.mjs "$@"
