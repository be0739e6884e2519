#!/usr/bin/env bash
# redkit memo run: six concurrent callers run CMD once and print identical bytes; later callers
# get the stored output; a failing CMD is not stored and its status passes through; --wait.
#   test_memo.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

tag=redkit-memo
runs="$TMP/runs"
# CMD counts its runs, waits for the test's go-ahead, then prints bytes unique to this run.
cmd=(bash -c 'echo run >>"$0/runs"; until [ -e "$0/go" ]; do sleep 0.02; done
    printf "report %s-%s\n\0binary\377" "$$" "$RANDOM"' "$TMP")
pids=()
for i in $(seq 1 6); do
    "${RK[@]}" memo run report --ttl 60s --wait 60s -- "${cmd[@]}" >"$TMP/out$i" 2>"$TMP/err$i" &
    pids+=($!)
done
# Go once one caller runs CMD and the five others wait on the value's channel.
wait_for 30 test -s "$runs"
wait_for 30 numsub_ge "${PREFIX}$tag/notif:report" 5
touch "$TMP/go"
for i in $(seq 1 6); do wait "${pids[$((i - 1))]}" || fail "caller $i failed: $(cat "$TMP/err$i")"; done

[ "$(wc -l <"$runs")" = 1 ] || fail "CMD ran $(wc -l <"$runs") times"
for i in $(seq 2 6); do cmp "$TMP/out1" "$TMP/out$i" || fail "caller $i printed other bytes"; done
grep -q '^report ' "$TMP/out1" || fail "output: $(cat "$TMP/out1")"
[ "$(wc -c <"$TMP/out1")" -gt 16 ] || fail "the binary tail is missing"
ok "6 concurrent memo runs: CMD ran once, all printed identical bytes"

expect 0 rk memo run report -- "${cmd[@]}"
cmp "$TMP/out" "$TMP/out1" || fail "a later caller should print the stored output"
[ "$(wc -l <"$runs")" = 1 ] || fail "a later caller must not run CMD"
pttl=$(rcli pttl "${PREFIX}$tag:report")
[ "$pttl" -gt 50000 ] && [ "$pttl" -le 60000 ] || fail "--ttl 60s gave a PTTL of $pttl"
expect 0 rk memo run report --tag other -- echo fresh
[ "$out" = fresh ] || fail "--tag should select another namespace"
ok "later callers get the stored output; --ttl and --tag"

expect 4 rk memo run flaky -- bash -c 'echo "attempt" >>"$0/flaky"; echo partial; exit 4' "$TMP"
[ "$out" = partial ] || fail "a failing CMD's output should pass through"
expect 4 rk memo run flaky -- bash -c 'echo "attempt" >>"$0/flaky"; echo partial; exit 4' "$TMP"
[ "$(wc -l <"$TMP/flaky")" = 2 ] || fail "a failing CMD must not be stored"
[ "$(rcli exists "${PREFIX}$tag:flaky")" = 0 ] || fail "nothing should be stored"
[ "$(rcli exists "${PREFIX}$tag/lock:flaky")" = 0 ] || fail "the memo lock should be released"
expect 137 rk memo run killed -- sh -c 'kill -KILL $$'
expect 127 rk memo run missing -- no-such-command-here
ok "a failing CMD is not stored and its status passes through"

# The lease is renewed while CMD runs longer than options.lock_timeout: more than two 2 s leases.
# (A 300 ms lease renewed every 100 ms expired on a loaded machine: one late renewal lost it.)
expect 0 rk --config "options.prefix=$PREFIX;options.lock_timeout=2000" memo run slow -- \
    bash -c 'sleep 4.5; redis-cli -h "$0" -p "$1" exists "$2"' "$REDKIT_TEST_HOST" \
    "$REDKIT_TEST_PORT" "${PREFIX}$tag/lock:slow"
[ "$out" = 1 ] || fail "the memo lease should still be held after 4.5s on a 2s lease"
ok "the memo lease is renewed while CMD runs"

# Someone else computes and never finishes within --wait.
rcli set "${PREFIX}$tag/lock:stuck" 0123456789abcdef0123456789abcdef px 60000 >/dev/null
start=$SECONDS
expect 75 rk memo run stuck --wait 300ms -- echo never
[ -z "$out" ] || fail "CMD must not run while another caller holds the lock"
contains "$err" "TIMEOUT"
[ $((SECONDS - start)) -lt 20 ] || fail "--wait should bound the wait"
ok "memo run exits 75 when no output arrives within --wait"

# On a terminal the wait shows a one-line progress display (script(1) provides the TTY). It
# appears after 0.3s: a 3s wait leaves a loaded machine time to draw it.
if command -v script >/dev/null; then
    TERM=xterm script -qefc "$(printf '%q ' "${RK[@]}" memo run stuck --wait 3s -- echo never)" /dev/null \
        >"$TMP/tty" 2>&1 || true
    grep -q "waiting up to 3.0s for the output of stuck" "$TMP/tty" ||
        fail "no progress on a TTY: $(cat -v "$TMP/tty")"
    ok "a TTY shows the wait's progress"
fi

# SIGTERM while waiting: exit 143 at once, unsubscribed, nothing run.
"${RK[@]}" memo run stuck --wait 60s -- echo never >"$TMP/sig.out" 2>"$TMP/sig.err" &
pid=$!
_pids+=("$pid")
wait_for 30 numsub_ge "${PREFIX}$tag/notif:stuck" 1
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 143 ] || fail "SIGTERM during the wait should exit 143, got $rc: $(cat "$TMP/sig.err")"
[ ! -s "$TMP/sig.out" ] || fail "CMD must not run"
contains "$(cat "$TMP/sig.err")" "interrupted by SIGTERM"
[ "$(rcli get "${PREFIX}$tag/lock:stuck")" = 0123456789abcdef0123456789abcdef ] ||
    fail "the other caller's lock must be untouched"
ok "SIGTERM ends a memo wait (exit 143)"

# SIGTERM while CMD runs: passed on to CMD, whose status comes back; nothing is stored.
"${RK[@]}" memo run termed -- bash -c 'trap "exit 143" TERM; touch "$0/memo-started"
    while :; do sleep 0.02; done' "$TMP" >/dev/null 2>"$TMP/t.err" &
pid=$!
_pids+=("$pid")
wait_for 30 test -e "$TMP/memo-started"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 143 ] || fail "CMD's status after SIGTERM should be 143, got $rc: $(cat "$TMP/t.err")"
[ "$(rcli exists "${PREFIX}$tag:termed")" = 0 ] || fail "nothing should be stored"
[ "$(rcli exists "${PREFIX}$tag/lock:termed")" = 0 ] || fail "the memo lock should be released"
ok "SIGTERM reaches a running CMD; nothing stored, lock released"
