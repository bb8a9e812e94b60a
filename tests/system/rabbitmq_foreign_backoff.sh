#!/usr/bin/env bash
# RabbitMQ only: a connection that is lost soon after it is made (what a message that
# broke the connection on every delivery did, before such messages were parked) must not
# make the host reconnect in a tight loop. The reconnect back-off starts over only after a
# session stayed up for 10 s. The host talks to the broker through a loopback proxy that
# drops every connection 0.5 s after it is made, for 10 s; then the proxy lets connections
# live and the host handles messages again.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/bo"
cat >"$WORK/bo/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("bo.Job", { n = "number" })
bus.endpoint { name = "bo" }
bus.handle("bo.Job", function(p) bus.log.info("job %d", p.n) end)
LUA
cat >"$WORK/proxy.py" <<'PY'
import os, socket, sys, threading, time
listen, upstream, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data: break
            b.sendall(data)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def serve(c):
    u = socket.create_connection(("127.0.0.1", upstream))
    for a, b in ((c, u), (u, c)): threading.Thread(target=pipe, args=(a, b), daemon=True).start()
    while True: # calm (flag file present): live; else dropped 0.5 s later
        while os.path.exists(flag): time.sleep(0.1)
        time.sleep(0.5)
        if not os.path.exists(flag): break
    for s in (c, u):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen)); srv.listen(16)
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
export MOONBUS_LOG=info
REAL=$MOONBUS_TRANSPORT
hostport=${REAL#*@}; hostport=${hostport%%/*}; UP=${hostport#*:}
PORT=$((20000 + $$ % 20000))
python3 "$WORK/proxy.py" $PORT "$UP" "$WORK/calm" >"$WORK/proxy.out" 2>&1 &
PIDS+=($!)
wait_for 10 grep -q ready "$WORK/proxy.out"
touch "$WORK/calm" # the first session stays up: the host starts as usual (and stays up >10 s)
MOONBUS_TRANSPORT=${REAL/@$hostport/@127.0.0.1:$PORT} start_host bo "$WORK/bo"
H=$LAST_PID
wait_for 20 host_ready bo
sleep 10 # a session that stayed up: the first loss reconnects at once, as it should
rm -f "$WORK/calm"
sleep 10
made=$(grep -c "reconnected to RabbitMQ" "$WORK/bo.log")
echo "# 10 s of connections dropped 0.5 s after they are made: $made reconnects"
touch "$WORK/calm"
check "the host backs off instead of reconnecting in a loop ($made reconnects in 10 s)" test "$made" -le 8
check "the host lives on" kill -0 $H
"$ROOT/build/tools/amqp_inject" "$REAL" bo 01900000-0000-7000-8000-000000010001 bo.Job '{"n":1}' moonbus.kind=command
wait_for 30 grep -q "job 1" "$WORK/bo.log"
check "it comes back and handles messages" grep -q "job 1" "$WORK/bo.log"
kill -TERM $H
wait $H
exit $TAP_FAILED
