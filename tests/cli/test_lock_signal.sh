#!/usr/bin/env bash
# Signals: SIGTERM to `lock run` reaches CMD and the lock is released on the way out; SIGINT
# cuts a lock wait short.
#   test_lock_signal.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

"${RK[@]}" lock run held --ttl 60s -- bash -c 'sleep 60 >/dev/null 2>&1 & s=$!
    trap "echo TERM >\"\$0/term\"; kill \$s; exit 143" TERM; touch "$0/started"; wait $s' "$TMP" &
pid=$!
_pids+=("$pid")
wait_for 30 test -e "$TMP/started"
[ "$(rcli exists "${PREFIX}held")" = 1 ] || fail "the lock should be held"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 143 ] || fail "expected CMD's status 143, got $rc"
[ "$(cat "$TMP/term")" = TERM ] || fail "CMD did not receive SIGTERM"
[ "$(rcli exists "${PREFIX}held")" = 0 ] || fail "SIGTERM should release the lock (TTL was 60s)"
expect 0 rk lock try held --ttl 1s
ok "SIGTERM is forwarded to CMD and the lock is released"

# SIGINT while waiting for a lock: redkit gives up at once with 128+2. Job control keeps
# SIGINT from being ignored in the background job.
token=$(rk lock try busy --ttl 60s)
set -m
"${RK[@]}" lock run busy --wait 60s -- echo never >"$TMP/out2" 2>"$TMP/err2" &
pid=$!
set +m
_pids+=("$pid")
wait_for 30 queued busy 1
start=$SECONDS
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || fail "SIGINT during the wait should exit 130, got $rc: $(cat "$TMP/err2")"
[ $((SECONDS - start)) -lt 20 ] || fail "SIGINT should end the wait promptly"
[ ! -s "$TMP/out2" ] || fail "CMD must not run"
contains "$(cat "$TMP/err2")" "interrupted by SIGINT"
[ "$(rcli get "${PREFIX}busy")" = "$token" ] || fail "the holder's lock must be untouched"
[ "$(rcli llen "redkit:lock-queue:{${PREFIX}busy}")" = 0 ] || fail "the waiter kept its queue place"
ok "SIGINT interrupts a lock wait (exit 130) and leaves the queue"

# SIGTERM while waiting, with a second waiter queued behind: the first leaves the queue, so the
# holder's release goes straight to the second one.
"${RK[@]}" lock run busy --wait 60s -- echo never >"$TMP/out3" 2>"$TMP/err3" &
first=$!
_pids+=("$first")
wait_for 30 queued busy 1
"${RK[@]}" lock run busy --wait 60s -- echo second >"$TMP/out4" 2>"$TMP/err4" &
second=$!
_pids+=("$second")
wait_for 30 queued busy 2
kill -TERM "$first"
rc=0
wait "$first" || rc=$?
[ "$rc" = 143 ] || fail "SIGTERM during the wait should exit 143, got $rc: $(cat "$TMP/err3")"
[ ! -s "$TMP/out3" ] || fail "CMD must not run"
# The second waiter steps out of the queue for a moment between its wait slices, so it may be
# missing from a sample; the first one, had it stayed, would show in every sample.
for _ in $(seq 1 20); do
    [ "$(rcli llen "redkit:lock-queue:{${PREFIX}busy}")" -le 1 ] || fail "SIGTERM should leave the queue"
done
expect 0 rk lock release busy --token "$token"
wait "$second" || fail "the second waiter failed: $(cat "$TMP/err4")"
[ "$(cat "$TMP/out4")" = second ] || fail "the second waiter should have run"
[ "$(rcli exists "${PREFIX}busy")" = 0 ] || fail "the lock should be released"
[ "$(rcli llen "redkit:lock-queue:{${PREFIX}busy}")" = 0 ] || fail "the queue should be empty"
ok "SIGTERM ends a lock wait (exit 143), leaves the queue, and the next waiter gets the lock"
