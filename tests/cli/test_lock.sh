#!/usr/bin/env bash
# redkit lock try/release and lock run: exit status passthrough, --wait timeouts, the lease
# kept alive while CMD runs, and a lost lease.
#   test_lock.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

expect 0 rk lock try job --ttl 60s
token=$out
[[ $token =~ ^[0-9a-f]{32}$ ]] || fail "lock try should print the token, got '$token'"
[ "$(rcli get "${PREFIX}job")" = "$token" ] || fail "the lock key should hold the token"
expect 1 rk lock try job
contains "$err" "held by another owner"
expect 1 rk lock release job --token 0123456789abcdef0123456789abcdef
[ "$(rcli get "${PREFIX}job")" = "$token" ] || fail "a wrong token must not release the lock"
expect 0 rk lock release job --token "$token"
[ "$(rcli exists "${PREFIX}job")" = 0 ] || fail "release --token should delete the lock"
expect 1 rk lock release job --token "$token"
contains "$err" "not held"
expect 0 rk lock try job --ttl 60s
expect 0 rk lock release job --force
expect 0 rk lock try job --ttl 60s
expect 0 rk lock release job --force
ok "lock try prints a token; release --token is owner-checked; release --force"

token=$(rk lock try st --ttl 30s)
expect 0 rk lock status st
[[ $out =~ ^held,\ [0-9]+ms\ left$ ]] || fail "lock status when held: '$out'"
left=${out#held, }
left=${left%ms left}
[ "$left" -gt 20000 ] && [ "$left" -le 30000 ] || fail "lock status after --ttl 30s: '$out'"
expect 0 rk lock status st --token
[ "$out" = "$token" ] || fail "lock status --token: '$out', expected '$token'"
expect 0 rk lock status --json st
[[ $out =~ ^\{\"key\":\"st\",\"held\":true,\"ttl_ms\":[0-9]+,\"token\":\"$token\"\}$ ]] ||
    fail "lock status --json: '$out'"
expect 0 rk lock release st --token "$token"
expect 1 rk lock status st
[ "$out" = free ] || fail "lock status when free: '$out'"
expect 1 rk lock status st --json
[ "$out" = '{"key":"st","held":false}' ] || fail "lock status --json when free: '$out'"
expect 1 rk lock status st --token
[ -z "$out" ] || fail "lock status --token when free should print nothing: '$out'"
expect 64 rk lock status
expect 64 rk lock status st --ttl 5s
ok "lock status: held (time left, --token, --json) exits 0, free exits 1"

expect 0 rk lock run job -- sh -c 'echo "running $0"' under-lock
[ "$out" = "running under-lock" ] || fail "CMD's stdout: '$out'"
[ "$(rcli exists "${PREFIX}job")" = 0 ] || fail "lock run should release the lock"
expect 3 rk lock run job -- sh -c 'exit 3'
expect 0 rk lock run job true
expect 137 rk lock run job -- sh -c 'kill -KILL $$'
expect 127 rk lock run job -- no-such-command-here
contains "$err" "cannot run no-such-command-here"
[ "$(rcli exists "${PREFIX}job")" = 0 ] || fail "every exit path should release the lock"
ok "lock run passes CMD's status through (3, 0, 128+9, 127) and releases the lock"

token=$(rk lock try busy --ttl 60s)
start=$SECONDS
expect 75 rk lock run busy --wait 700ms -- echo never
[ -z "$out" ] || fail "CMD must not run without the lock"
contains "$err" "LOCK_TIMEOUT (Conflict)"
contains "$err" "gave up after 700ms"
[[ $err != *$'\r'* && $err != *$'\e'* ]] || fail "no progress display when stderr is no TTY"
expect 75 rk lock run busy --wait 0s -- echo never
[ $((SECONDS - start)) -lt 20 ] || fail "--wait should bound the wait"
[ "$(rcli llen "redkit:lock-queue:{${PREFIX}busy}")" = 0 ] || fail "a waiter that gave up left its queue place"
ok "a lock that stays taken exits 75 after --wait (0s: one attempt) and leaves the queue"

# On a terminal the wait shows a one-line progress display (script(1) provides the TTY). It
# appears after 0.3s: a 3s wait leaves a loaded machine time to draw it.
if command -v script >/dev/null; then
    TERM=xterm script -qefc "$(printf '%q ' "${RK[@]}" lock run busy --wait 3s -- echo never)" \
        /dev/null >"$TMP/tty" 2>&1 || true
    grep -q "waiting up to 3.0s for the lock on busy" "$TMP/tty" || fail "no progress on a TTY: $(cat -v "$TMP/tty")"
    TERM=dumb script -qefc "$(printf '%q ' "${RK[@]}" lock run busy --wait 1s -- echo never)" \
        /dev/null >"$TMP/tty" 2>&1 || true
    ! grep -q "waiting up to" "$TMP/tty" || fail "TERM=dumb should show no progress: $(cat -v "$TMP/tty")"
    grep -q "gave up after 1.0s" "$TMP/tty" || fail "TERM=dumb: $(cat -v "$TMP/tty")"
    ok "a TTY shows the wait's progress, unless TERM=dumb"
fi

# lock run waits for a release: held by a try, released by token while the run waits.
"${RK[@]}" lock run busy --wait 60s -- echo "got it" >"$TMP/waiter" 2>&1 &
waiter=$!
wait_for 30 queued busy 1
expect 0 rk lock release busy --token "$token"
wait "$waiter" || fail "the waiting lock run failed: $(cat "$TMP/waiter")"
[ "$(cat "$TMP/waiter")" = "got it" ] || fail "waiter: $(cat "$TMP/waiter")"
ok "lock run --wait acquires once the holder releases"

# A 2 s lease outlives CMD's 4.5 s because it is renewed every 0.67 s (exit 0: never lost). The
# lease is long enough that a loaded machine does not lose it by missing a few renewals.
expect 0 rk lock run kept --ttl 2s -- bash -c 'sleep 4.5; "$0" --url "$1" \
    --config "options.prefix=$2" lock try kept; echo "try=$?"' "$REDKIT" "$URL" "$PREFIX"
contains "$out" "try=1"
ok "lock run renews the lease while CMD runs"

# Lost lease, reported: CMD keeps running without --kill-on-loss; redkit exits 76 whatever CMD's
# status. A 3 s lease cannot be lost by a slow start on a busy machine (with --kill-on-loss that
# would kill CMD before it signals "started"); the deletion is seen at the next renewal (1 s),
# and the test waits for the message, not for a time.
"${RK[@]}" lock run lost --ttl 3s -- bash -c 'touch "$0/started"; until [ -e "$0/go" ]; do sleep 0.02; done' \
    "$TMP" 2>"$TMP/lost.err" &
pid=$!
wait_for 30 test -e "$TMP/started"
rcli del "${PREFIX}lost" >/dev/null
wait_for 30 grep -q "lost the lock on lost" "$TMP/lost.err"
touch "$TMP/go"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 76 ] || fail "a lost lease should exit 76 even when CMD exits 0, got $rc"
ok "a lost lease is reported on stderr and exits 76"

# Lost lease with --kill-on-loss: CMD gets SIGTERM.
"${RK[@]}" lock run lost --ttl 3s --kill-on-loss -- bash -c 'touch "$0/started2"; exec sleep 60' \
    "$TMP" 2>"$TMP/kill.err" &
pid=$!
wait_for 30 test -e "$TMP/started2"
rcli set "${PREFIX}lost" someone-else >/dev/null
rc=0
wait "$pid" || rc=$?
[ "$rc" = 76 ] || fail "--kill-on-loss: a lost lease exits 76, got $rc"
contains "$(cat "$TMP/kill.err")" "lost the lock on lost"
contains "$(cat "$TMP/kill.err")" "instead of the command's status 143"
[ "$(rcli get "${PREFIX}lost")" = someone-else ] || fail "the new owner's lock must survive"
ok "--kill-on-loss terminates CMD, and the new owner's lock is left alone"

expect 65 rk lock try ''
ok "an empty key exits 65"

# With options.lock_fencing, CMD gets the lock's fencing token in REDKIT_FENCING_TOKEN, to pass
# to whatever it writes: a positive number that grows with every acquisition of the key. (A
# second --config would replace the first, so the prefix goes in the same one.)
fenced=("$REDKIT" --url "$URL" --config "options.prefix=$PREFIX;options.lock_fencing=true")
expect 0 "${fenced[@]}" lock run fenced -- sh -c 'echo $REDKIT_FENCING_TOKEN'
first=$out
[[ $first =~ ^[1-9][0-9]*$ ]] || fail "REDKIT_FENCING_TOKEN should be a positive integer, got '$first'"
expect 0 "${fenced[@]}" lock run fenced -- sh -c 'echo $REDKIT_FENCING_TOKEN'
[[ $out =~ ^[1-9][0-9]*$ && $out -gt $first ]] ||
    fail "the second run's REDKIT_FENCING_TOKEN should exceed the first's ($first), got '$out'"
ok "lock run with options.lock_fencing gives CMD a growing REDKIT_FENCING_TOKEN ($first, $out)"
