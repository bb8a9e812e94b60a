#!/usr/bin/env bash
# Hostile input from a foreign sender (DESIGN §14, issue 15 "What must be shown"): between
# good commands sent with the CLI, a foreign sender writes straight into the endpoint's
# queue a bare message (no id, no type, no headers), a property-less one with a known type,
# an oversize body, ~120 KiB of headers, a duplicate header key, headers that are numbers
# and tables, a non-UTF-8 body, a non-JSON body, a JSON array and a type with a newline
# (and a forged log line after it). The endpoint never exits; every message ends handled
# or parked with a reason; the good ones are all handled; nothing is left in the queue; the
# log holds only moonbus log lines (nothing forged).
. "$(dirname "$0")/lib.sh"
MAX_BODY=65536
CASES=${HOSTILE_CASES:-"bare typed oversize frame dup wrongtyped nonutf8 nonjson array newline"}
hostile_endpoint $MAX_BODY 4 # audit on: copies of big messages

good=0
hostile_n=0
send_good() {
  good=$((good + 1))
  "$MOONBUS" send h h.Do "{\"n\":$good}" >/dev/null 2>>"$WORK/cli.log" ||
    echo "# the CLI could not send good command $good"
}
n=1000
send_good
for c in $CASES; do
  n=$((n + 1))
  hostile h "$c" "$n" h.Do "$MAX_BODY" 2>>"$WORK/cli.log" || echo "# the foreign sender failed on $c"
  hostile_n=$((hostile_n + 1))
  echo "# case $c is message n=$n"
  send_good
done
if [ "$TRANSPORT" = rabbitmq ] && [ -z "${HOSTILE_CASES:-}" ]; then # amqp-tools, as a user would try it: no properties at all
  amqp-publish -u "$MOONBUS_TRANSPORT" -r h -b '{"n":1100}' 2>>"$WORK/cli.log" ||
    echo "# amqp-publish failed"
  hostile_n=$((hostile_n + 1))
  echo "# case amqp-publish is message n=1100"
  send_good
fi
total=$((good + hostile_n))

handled() { lines "$HANDLED"; }
parked_n() { depth error 2>/dev/null || echo 0; }
settled() { [ $(( $(handled) + $(parked_n) )) -ge "$total" ] || ! kill -0 "$H" 2>/dev/null; }
wait_until 60 settled
sleep 1 # anything handled or parked twice shows up now

check "the endpoint never exited" kill -0 "$H"
missing=""
for i in $(seq 1 "$good"); do grep -q "^$i " "$HANDLED" || missing="$missing $i"; done
check "every good command was handled ($good sent; missing:${missing:- none})" test -z "$missing"
hostile_handled=$(awk '$1 > 1000' "$HANDLED" | wc -l)
parked=$(parked_n)
echo "# $hostile_n hostile messages: $hostile_handled handled, $parked parked"
check "every hostile message ended handled or parked ($hostile_handled + $parked of $hostile_n)" \
  test $((hostile_handled + parked)) -eq "$hostile_n"
check "nothing was handled twice" test "$(awk '{ print $1 }' "$HANDLED" | sort | uniq -d | wc -l)" -eq 0

"$MOONBUS" errors list 2>>"$WORK/cli.log" | tail -n +2 >"$WORK/errors.txt" # no header row
check "moonbus errors list shows one line per parked message ($(lines "$WORK/errors.txt") lines, $parked parked)" \
  test "$(lines "$WORK/errors.txt")" -eq "$parked"
no_reason=$(awk -F'\t' '$5 == "" { print $1 }' "$WORK/errors.txt" | tr '\n' ' ')
check "each with a reason (none without: ${no_reason:-ok})" test -z "$no_reason"
shown=0
while IFS=$'\t' read -r id _ _ _ why; do
  [[ $id =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] || continue
  "$MOONBUS" errors show "$id" >"$WORK/show.txt" 2>>"$WORK/cli.log" &&
    grep -q '^moonbus.exception.message: .' "$WORK/show.txt" && shown=$((shown + 1))
  echo "# parked $id: $why"
done <"$WORK/errors.txt"
check "moonbus errors show gives each one's moonbus.exception.message ($shown of $parked)" \
  test "$shown" -eq "$parked"
no_id=$(grep -cvE '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'$'\t' "$WORK/errors.txt")
check "every parked message has a moonbus id, generated if it came without ($no_id without)" \
  test "$no_id" -eq 0

check "nothing is left in the input queue ($(depth_all h 2>/dev/null))" test "$(depth_all h 2>/dev/null)" = 0
forged=$(foreign_log_lines "$WORK/h.log" | head -5)
check "every log line is a moonbus log line (found: ${forged:-none})" test -z "$forged"
check "no message forged a log line of its own" \
  bash -c "! grep -aq '^2020-01-01T00:00:00.000000Z' '$WORK/h.log'"
if [[ " $CASES " == *" newline "* ]]; then
  check "the type with a newline is logged within one line (escaped)" \
    bash -c "grep -a 'FORGED by a message type' '$WORK/h.log' | grep -aq 'type=h.Do'"
fi

stop_host "$H" 20
check "the endpoint stops cleanly within 20 s (exit $?)" test $? -eq 0
check "no sanitizer report" bash -c "! grep -aq 'Sanitizer' '$WORK/h.log'"
exit $TAP_FAILED
