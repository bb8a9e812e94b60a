#!/usr/bin/env bash
# RabbitMQ only: amqps:// to the private broker's TLS listener (a CA and server certificate
# made by scripts/rabbitmq.sh). A host runs and the CLI sends over TLS with the CA; a CA
# that did not sign the server's certificate is refused with a clear error that shows no
# password; verify=none connects without a CA.
. "$(dirname "$0")/lib.sh"
TLS=$(bash "$ROOT/scripts/rabbitmq.sh" tls-url)
CA=$(bash "$ROOT/scripts/rabbitmq.sh" tls-ca)
check "the broker has a TLS CA ($CA)" test -s "$CA"
export MOONBUS_TRANSPORT="$TLS/${VHOST}1?cacert=$CA"
mkdir -p "$WORK/tls"
cat >"$WORK/tls/endpoint.lua" <<'LUA'
local bus = require "moonbus"
bus.command("tls.Hello", { name = "string" })
bus.endpoint { name = "tls" }
bus.handle("tls.Hello", function(h) bus.log.info("hello over TLS, %s", h.name) end)
LUA
start_host tls "$WORK/tls"
H=$LAST_PID
wait_for 20 host_ready tls
check "a host runs on amqps:// with the broker's CA" host_ready tls
"$MOONBUS" send tls tls.Hello '{"name":"cli"}' >/dev/null
check "the CLI sends over TLS" test $? -eq 0
wait_for 10 grep -q "hello over TLS, cli" "$WORK/tls.log"
check "and the host handles it" grep -q "hello over TLS, cli" "$WORK/tls.log"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=another CA" \
  -keyout "$WORK/other.key" -out "$WORK/other.pem" 2>/dev/null
out=$(MOONBUS_TRANSPORT="$TLS/${VHOST}1?cacert=$WORK/other.pem" "$MOONBUS" send tls tls.Hello '{"name":"x"}' 2>&1)
rc=$?
echo "# with another CA: $out"
check "a server certificate the CA did not sign is refused (exit $rc)" test $rc -ne 0
check "with an error that names the broker" grep -q "localhost:" <<<"$out"
check "and shows no password" bash -c "! grep -q 'guest:guest' <<<'$out'"
out=$(MOONBUS_TRANSPORT="$TLS/${VHOST}1?verify=none" "$MOONBUS" send tls tls.Hello '{"name":"none"}' 2>&1)
check "verify=none connects without a CA ($out)" test $? -eq 0
wait_for 10 grep -q "hello over TLS, none" "$WORK/tls.log"
check "and what it sent is handled" grep -q "hello over TLS, none" "$WORK/tls.log"
kill -TERM $H
wait $H; rc=$?
check "the host exits 0 ($rc)" test $rc -eq 0
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$WORK/tls.log'"
exit $TAP_FAILED
