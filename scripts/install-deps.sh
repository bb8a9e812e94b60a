#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages moonbus builds, runs and tests with.
# Idempotent: does nothing when every package is already installed. Needs root to
# install; otherwise prints the exact command to run and exits non-zero.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  liblua5.4-dev lua5.4 lua-cjson
  libev-dev
  libsqlite3-dev sqlite3
  librabbitmq-dev amqp-tools rabbitmq-server openssl
  lua-busted luarocks
  valgrind
  cppcheck clang-format
  libmicrohttpd-dev curl jq
  postgresql libpq-dev
  prometheus
  nodejs chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "moonbus needs these Debian packages: ${missing[*]}" >&2
  echo "run as root:  $cmd" >&2
  exit 1
fi

echo "installing: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
