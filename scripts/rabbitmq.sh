#!/usr/bin/env bash
# rabbitmq.sh start|stop|status|url|vhosts|ctl — a private RabbitMQ node for tests and `make run`,
# from Debian's rabbitmq-server, bound to 127.0.0.1.
#
# The node has its own name, port, data, logs and Erlang cookie under one folder
# ($MOONBUS_RABBITMQ_DIR, default /tmp/moonbus-rabbitmq-PORT), so it never collides with a
# system broker or another test run. PORT is $MOONBUS_RABBITMQ_PORT (default 5682, so a
# system broker on 5672 is left alone); the
# distribution port is PORT + 20000. `start` waits until the broker accepts AMQP and prints
# nothing else on success; `url` prints the amqp:// URL to use (`tls-url` the amqps:// one
# on PORT + 1, whose server certificate is signed by the CA at `tls-ca`); `vhosts PREFIX N` creates
# the virtual hosts PREFIX1..PREFIXN (guest may use them) in one call, so that every test
# can have a broker of its own (`drop-vhosts PREFIX N` deletes them); `ctl ARGS` runs rabbitmqctl against the node.
set -euo pipefail
PORT=${MOONBUS_RABBITMQ_PORT:-5682}
DIR=${MOONBUS_RABBITMQ_DIR:-/tmp/moonbus-rabbitmq-$PORT}
BIN=/usr/lib/rabbitmq/bin
NODE=moonbus$PORT@localhost
TLS_PORT=$((PORT + 1)) # amqps://, with a CA and server certificate made in $DIR/tls

node_env() {
  export HOME=$DIR # the Erlang cookie lives here, private to this node
  export RABBITMQ_NODENAME=$NODE
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$PORT
  export RABBITMQ_DIST_PORT=$((PORT + 20000))
  export RABBITMQ_MNESIA_BASE=$DIR/mnesia
  export RABBITMQ_LOG_BASE=$DIR/log
  export RABBITMQ_PID_FILE=$DIR/rabbitmq.pid
  export RABBITMQ_CONFIG_FILE=$DIR/rabbitmq # .conf is appended
  export RABBITMQ_ADVANCED_CONFIG_FILE=$DIR/advanced.config
  export RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_CRASH_DUMP=$DIR/erl_crash.dump # never in the caller's folder
}

ctl() { "$BIN/rabbitmqctl" -n "$NODE" "$@"; }

is_running() { [ -d "$DIR" ] && ctl status >/dev/null 2>&1; }

# A private CA and a server certificate for 127.0.0.1 and localhost (tests of amqps://).
write_tls() {
  local d=$DIR/tls
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=moonbus test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
  chmod 644 "$d"/*
}

write_config() {
  mkdir -p "$DIR/mnesia" "$DIR/log"
  write_tls
  cat >"$DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$PORT
listeners.ssl.1 = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $DIR/tls/ca.pem
ssl_options.certfile = $DIR/tls/server.pem
ssl_options.keyfile = $DIR/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
loopback_users = none
# tests fill and drain queues fast; do not block publishers on this small VM's disk
disk_free_limit.absolute = 50MB
vm_memory_high_watermark.relative = 0.6
log.file.level = warning
log.console = false
EOF
  echo "[]." >"$DIR/advanced.config"
  echo "[]." >"$DIR/enabled_plugins"
}

start() {
  node_env
  if is_running; then return 0; fi
  mkdir -p "$DIR"
  if ! [ -x "$BIN/rabbitmq-server" ]; then
    echo "rabbitmq.sh: rabbitmq-server is not installed: run scripts/install-deps.sh as root" >&2
    exit 1
  fi
  write_config
  "$BIN/rabbitmq-server" >"$DIR/log/startup.out" 2>&1 &
  local pid=$!
  echo "$pid" >"$DIR/server.pid"
  # `wait` returns once the node runs the rabbit application (or fails when it dies).
  if ! timeout 120 "$BIN/rabbitmqctl" -n "$NODE" wait --pid "$pid" --timeout 110 >/dev/null 2>&1; then
    echo "rabbitmq.sh: the broker did not start; its output:" >&2
    tail -30 "$DIR/log/startup.out" >&2 || true
    exit 1
  fi
}

stop() {
  node_env
  if is_running; then ctl stop >/dev/null 2>&1 || true; fi
  if [ -f "$DIR/server.pid" ]; then
    local pid
    pid=$(cat "$DIR/server.pid")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}

status() {
  node_env
  if is_running; then
    echo "running: $NODE on 127.0.0.1:$PORT (data in $DIR)"
  else
    echo "not running: $NODE"
    return 1
  fi
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
url) echo "amqp://guest:guest@127.0.0.1:$PORT" ;;
tls-url) echo "amqps://guest:guest@localhost:$TLS_PORT" ;; # rabbitmq-c 0.11 matches DNS names only
tls-ca) echo "$DIR/tls/ca.pem" ;;
vhosts)
  node_env
  prefix=${2:?usage: rabbitmq.sh vhosts PREFIX N} n=${3:?usage: rabbitmq.sh vhosts PREFIX N}
  [[ $prefix =~ ^[A-Za-z0-9_-]+$ && $n =~ ^[0-9]+$ ]] || { echo "rabbitmq.sh: bad vhosts arguments" >&2; exit 2; }
  ctl eval "[begin V = list_to_binary(\"$prefix\" ++ integer_to_list(N)),
    ok = rabbit_vhost:add(V, <<\"moonbus\">>),
    rabbit_auth_backend_internal:set_permissions(<<\"guest\">>, V, <<\".*\">>, <<\".*\">>,
      <<\".*\">>, <<\"moonbus\">>) end || N <- lists:seq(1, $n)], ok." >/dev/null
  ;;
beam-pid) # the Erlang VM of the node, for tests that stall the broker with SIGSTOP
  pgrep -f -- "beam.smp.* -home $DIR( |$)" | head -1
  ;;
drop-vhosts)
  node_env
  prefix=${2:?usage: rabbitmq.sh drop-vhosts PREFIX N} n=${3:?usage: rabbitmq.sh drop-vhosts PREFIX N}
  [[ $prefix =~ ^[A-Za-z0-9_-]+$ && $n =~ ^[0-9]+$ ]] || { echo "rabbitmq.sh: bad vhosts arguments" >&2; exit 2; }
  ctl eval "[rabbit_vhost:delete(list_to_binary(\"$prefix\" ++ integer_to_list(N)), <<\"moonbus\">>)
    || N <- lists:seq(1, $n)], ok." >/dev/null
  ;;
ctl)
  shift
  node_env
  [ -d "$DIR" ] || { echo "rabbitmq.sh: no broker in $DIR (start it first)" >&2; exit 1; }
  ctl "$@"
  ;;
*)
  echo "usage: scripts/rabbitmq.sh start|stop|status|url|tls-url|tls-ca|beam-pid|vhosts|drop-vhosts PREFIX N|ctl ARGS..." >&2
  exit 2
  ;;
esac
