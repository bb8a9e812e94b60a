#!/usr/bin/env bash
# run.sh [NAME...] — the browser tests of the ops web UI, TAP on stdout ("ok N - ..." /
# "not ok N - ..."): tests/browser/NAME.mjs for each NAME given, else ops_ui.mjs (failed
# messages, search, conversations) and monitoring.mjs (the monitoring pages), one after the
# other, each on a bus of its own. Needs `make all` (build/asan/moonbus, build/moonbus.so),
# Debian's /usr/bin/chromium and node; installs playwright-core from package-lock.json with
# `npm ci` when node_modules lacks it (it downloads no browser). Hosts' logs of a failed run
# are kept in build/test-logs/browser*/. With MOONBUS_TEST_TRANSPORT=amqp://... each script's
# bus is a new vhost of that broker, else a new SQLite file.
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
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(ops_ui monitoring)
for name in "${names[@]}"; do
  [ -f "tests/browser/${name%.mjs}.mjs" ] || fail "tests/browser/${name%.mjs}.mjs exists"
done
# On RabbitMQ (MOONBUS_TEST_TRANSPORT=amqp://...) each script gets a virtual host of its own.
AMQP=""
case ${MOONBUS_TEST_TRANSPORT:-} in
amqp://* | amqps://*)
  VHOST="browser$$-"
  AMQP=${MOONBUS_TEST_TRANSPORT%/}
  bash scripts/rabbitmq.sh vhosts "$VHOST" ${#names[@]} >/dev/null || fail "vhosts for the browser tests"
  trap 'bash scripts/rabbitmq.sh drop-vhosts "$VHOST" ${#names[@]} >/dev/null 2>&1' EXIT
  echo "# transport: rabbitmq"
  ;;
*) echo "# transport: sqlite" ;;
esac
rc=0
i=0
for name in "${names[@]}"; do
  i=$((i + 1))
  echo "# tests/browser/${name%.mjs}.mjs"
  if [ -n "$AMQP" ]; then export MOONBUS_BROWSER_TRANSPORT="$AMQP/$VHOST$i"; fi
  node "tests/browser/${name%.mjs}.mjs" || rc=1
done
exit $rc
