#!/usr/bin/env bash
# A newcomer's first hour (issue 23), on the transport under test: `moonbus new` scaffolds an
# endpoint (and refuses to overwrite it), `moonbus run` runs it, `moonbus request` gets its
# reply; a save that makes the handler fail is reloaded and the request is parked (and the
# requester told so at once); `moonbus errors show` says why; the fix is saved and reloaded;
# `moonbus errors retry` has the parked request handled; the generated spec passes under
# `moonbus test`, and fails (exit non-zero) once the endpoint's logic is flipped.
. "$(dirname "$0")/lib.sh"
export MOONBUS_LOG=info
EP=$WORK/shelf
# (in a subshell: the test's own folder stays the same, so its cleanup never runs in $WORK)
(cd "$WORK" && "$MOONBUS" new shelf) >"$WORK/new.out" 2>"$WORK/new.err"
check "moonbus new writes the endpoint, its contracts, a spec and a .busted (exit $?)" \
  test -f "$EP/endpoint.lua" -a -f "$EP/contracts.lua" -a -f "$EP/spec/shelf_spec.lua" -a -f "$EP/.busted"
check "and prints the next steps" grep -q "moonbus request shelf shelf.Greet" "$WORK/new.out"
sed 's/^/# /' "$WORK/new.out"
echo "-- mine" >>"$EP/contracts.lua"
(cd "$WORK" && "$MOONBUS" new shelf) >/dev/null 2>"$WORK/new2.err"
rc=$?
check "a second moonbus new refuses to overwrite (exit $rc) and names the files" \
  grep -q "shelf/endpoint.lua exists" "$WORK/new2.err"
check "and left the edited file as it was" test "$(tail -1 "$EP/contracts.lua")" = "-- mine"
"$MOONBUS" new "$WORK/other" --name '9 bad' >/dev/null 2>&1
check "moonbus new --name checks the name (exit $?)" test $? = 2 -a ! -e "$WORK/other"

start_host shelf "$EP"
HOST=$LAST_PID
wait_for 20 host_ready shelf
check "moonbus run runs the new endpoint" host_ready shelf
out=$("$MOONBUS" request shelf shelf.Greet '{"name":"ann"}' --timeout 20 2>"$WORK/req1.err")
check "moonbus request gets its reply: $out" test "$out" = '{"greeting":"hello, ann"}'

# A save that breaks the handler (no delayed rounds, so it is parked in a second).
sed -e 's/^bus.handle("shelf.Greet", function(greet, ctx)$/&\n  error("no shelf for " .. greet.name)/' \
  -e 's/^  name = "shelf",.*/&\n  retries = { immediate = 1, delayed = 0 },/' "$EP/endpoint.lua" >"$WORK/broken.lua"
cp "$EP/endpoint.lua" "$WORK/good.lua"
cp "$WORK/broken.lua" "$EP/endpoint.lua"
check "the failing handler is reloaded" wait_until 20 "grep -q 'generation 2 swapped' $WORK/shelf.log"
"$MOONBUS" request shelf shelf.Greet '{"name":"bob"}' --timeout 20 >"$WORK/req2.out" 2>"$WORK/req2.err"
rc=$?
check "moonbus request of the failing handler exits 1 at once, saying why (exit $rc)" \
  eval "[ $rc = 1 ] && grep -q 'no shelf for bob' '$WORK/req2.err'"
sed 's/^/# /' "$WORK/req2.err"
id=$("$MOONBUS" errors list 2>/dev/null | grep -o '[0-9a-f]\{8\}-[0-9a-f-]\{27\}' | head -1)
check "moonbus errors list shows the parked request" test -n "$id"
"$MOONBUS" errors show "$id" >"$WORK/show.out" 2>&1
check "moonbus errors show says why it failed" grep -q "no shelf for bob" "$WORK/show.out"
check "and shows its body" grep -q '"name":"bob"' "$WORK/show.out"

cp "$WORK/good.lua" "$EP/endpoint.lua" # the fix, saved
check "the fix is reloaded" wait_until 20 "grep -q 'generation 3 swapped' $WORK/shelf.log"
"$MOONBUS" errors retry "$id" >"$WORK/retry.out" 2>&1
check "moonbus errors retry sends it back" test $? = 0
check "the fixed handler handles it" wait_until 20 "grep -q 'greeting bob' $WORK/shelf.log"
check "the error queue is empty" wait_until 10 "[ -z \"\$(parked)\" ]"
stop_host "$HOST"
check "the host stops cleanly (exit $?)" test $? = 0

# The generated spec, on a bus of its own (SQLite).
MOONBUS_TEST_TRANSPORT='' "$MOONBUS" test "$EP" >"$WORK/test1.out" 2>&1
rc=$?
check "moonbus test runs the generated spec, which passes (exit $rc)" \
  eval "[ $rc = 0 ] && grep -q '1 success / 0 failures' '$WORK/test1.out'"
sed -i 's/"hello, "/"goodbye, "/' "$EP/endpoint.lua" # the logic, flipped
MOONBUS_TEST_TRANSPORT='' "$MOONBUS" test "$EP" >"$WORK/test2.out" 2>&1
rc=$?
check "with the logic flipped the spec fails (exit $rc)" \
  eval "[ $rc != 0 ] && grep -q '0 successes / 1 failure' '$WORK/test2.out'"
grep -m2 -E 'Expected|goodbye' "$WORK/test2.out" | sed 's/^/# /'
exit $TAP_FAILED
