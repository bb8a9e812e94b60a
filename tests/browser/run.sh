#!/usr/bin/env bash
# run.sh — the browser tests of the ops web UI (tests/browser/ops_ui.mjs), TAP on stdout
# ("ok N - ..." / "not ok N - ..."). Needs `make all` (build/asan/moonbus, build/moonbus.so),
# Debian's /usr/bin/chromium and node; installs playwright-core from package-lock.json with
# `npm ci` when node_modules lacks it (it downloads no browser). Hosts' logs of a failed run
# are kept in build/test-logs/browser/. With MOONBUS_TEST_TRANSPORT=amqp://... the bus is a
# new vhost of that broker, else a new SQLite file.
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
# On RabbitMQ (MOONBUS_TEST_TRANSPORT=amqp://...) the run gets a virtual host of its own.
case ${MOONBUS_TEST_TRANSPORT:-} in
amqp://* | amqps://*)
  VHOST="browser$$-"
  bash scripts/rabbitmq.sh vhosts "$VHOST" 1 >/dev/null || fail "a vhost for the browser tests"
  trap 'bash scripts/rabbitmq.sh drop-vhosts "$VHOST" 1 >/dev/null 2>&1' EXIT
  export MOONBUS_BROWSER_TRANSPORT="${MOONBUS_TEST_TRANSPORT%/}/${VHOST}1"
  echo "# transport: rabbitmq"
  ;;
*) echo "# transport: sqlite" ;;
esac
node tests/browser/ops_ui.mjs "$@"
