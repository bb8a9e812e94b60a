#!/usr/bin/env bash
# postgres.sh start|stop|status|url — a private PostgreSQL 15 cluster for tests and examples
# (DESIGN §12), from Debian's postgresql-15, listening on 127.0.0.1 only.
#
# The cluster has its own port and data directory ($MOONBUS_POSTGRES_DIR, default
# /tmp/moonbus-postgres-PORT, which also holds its unix socket and its log), so it never
# collides with a system instance (Debian's `main` cluster on 5432 is left alone: no
# pg_ctlcluster, no /etc/postgresql). PORT is $MOONBUS_POSTGRES_PORT (default 5442).
# initdb and pg_ctl run as the `postgres` OS user when this script runs as root (CI), else
# as the caller. The role and database `moonbus` (password `moonbus`, scram-sha-256 over
# TCP) are made on first start; `url` prints the postgresql:// URL to use. `start` waits
# until the server accepts connections and is idempotent (already running: says so, exit
# 0); `stop` stops it and removes the folder; `status` exits 0 when it runs, 1 when not.
set -euo pipefail
PORT=${MOONBUS_POSTGRES_PORT:-5442}
DIR=${MOONBUS_POSTGRES_DIR:-/tmp/moonbus-postgres-$PORT}
BIN=/usr/lib/postgresql/15/bin
ROLE=moonbus
PASSWORD=moonbus

as_pg() { # runs a command as the cluster's OS user
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_ctl() { as_pg "$BIN/pg_ctl" -D "$DIR" "$@"; }

is_running() { [ -f "$DIR/PG_VERSION" ] && pg_ctl status >/dev/null 2>&1; }

# psql as the cluster's superuser over the unix socket in $DIR (trust, the folder is 0700).
psql_super() { as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }

init_cluster() {
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chmod 0700 "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
  as_pg "$BIN/initdb" -D "$DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$DIR.initdb.log" 2>&1 || {
    echo "postgres.sh: initdb failed; its output:" >&2
    tail -20 "$DIR.initdb.log" >&2
    exit 1
  }
  rm -f "$DIR.initdb.log"
  cat >>"$DIR/postgresql.conf" <<EOF
# moonbus's private test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
password_encryption = 'scram-sha-256'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
}

make_role() {
  psql_super -d postgres -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" &&
    psql_super -d postgres -c "CREATE DATABASE $ROLE OWNER $ROLE"
}

start() {
  if is_running; then
    echo "postgres.sh: already running on 127.0.0.1:$PORT (data in $DIR)"
    return 0
  fi
  if ! [ -x "$BIN/initdb" ]; then
    echo "postgres.sh: PostgreSQL 15 is not installed: run scripts/install-deps.sh as root" >&2
    exit 1
  fi
  local fresh=0
  if ! [ -f "$DIR/PG_VERSION" ]; then init_cluster; fresh=1; fi
  if ! pg_ctl -l "$DIR/server.log" -w -t 60 start >/dev/null 2>&1; then
    echo "postgres.sh: the server did not start; its log:" >&2
    tail -30 "$DIR/server.log" >&2 || true
    exit 1
  fi
  if [ "$fresh" -eq 1 ] && ! make_role; then
    echo "postgres.sh: could not create the role and database $ROLE" >&2
    exit 1
  fi
}

stop() {
  if is_running; then pg_ctl -m fast -w -t 60 stop >/dev/null 2>&1 || true; fi
  if is_running; then
    echo "postgres.sh: the server in $DIR did not stop" >&2
    exit 1
  fi
  rm -rf "$DIR"
}

status() {
  if is_running; then
    echo "running: PostgreSQL 15 on 127.0.0.1:$PORT (data in $DIR)"
  else
    echo "not running: PostgreSQL on 127.0.0.1:$PORT"
    return 1
  fi
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
url) echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$ROLE" ;;
*)
  echo "usage: scripts/postgres.sh start|stop|status|url" >&2
  exit 2
  ;;
esac
