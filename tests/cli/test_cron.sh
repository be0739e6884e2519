#!/usr/bin/env bash
# lock run for cron, as flock(1): -q/--quiet, -w/--wait (0, forever), -E/--conflict-exit, short
# options and "--", and exit 76 when the lease is lost while CMD runs.
#   test_cron.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

token=$(rk lock try busy --ttl 60s)
expect 75 rk lock run -q -w 0 busy -- echo never
[ -z "$out$err" ] || fail "--quiet should print nothing when the lock is taken: '$out' / '$err'"
expect 75 rk lock run busy --quiet --wait=0s -- echo never
[ -z "$out$err" ] || fail "--quiet: '$out' / '$err'"
expect 0 rk lock run -qw0 -E 0 busy -- echo never
[ -z "$out$err" ] || fail "-qw0 -E 0: '$out' / '$err'"
expect 3 rk lock run busy -w 0 --conflict-exit 3 -- echo never
contains "$err" "held by another owner"
[ -z "$out" ] || fail "CMD must not run without the lock"
expect 1 rk lock try -q busy
[ -z "$out$err" ] || fail "lock try --quiet: '$out' / '$err'"
expect 64 rk lock run busy -E 256 -- true
contains "$err" "not an exit status"
expect 64 rk lock run busy -E x -- true
expect 64 rk lock try busy -E 3
expect 64 rk lock release busy -q --force
ok "a taken lock: -q is silent, -E/--conflict-exit N chooses the status (default 75)"

# --wait forever waits until the holder lets go.
"${RK[@]}" lock run busy --wait forever -- echo "got it" >"$TMP/forever" 2>&1 &
pid=$!
_pids+=("$pid")
wait_for 60 queued busy 1
expect 0 rk lock release busy --token "$token"
wait "$pid" || fail "lock run --wait forever failed: $(cat "$TMP/forever")"
[ "$(cat "$TMP/forever")" = "got it" ] || fail "waiter: $(cat "$TMP/forever")"
expect 64 rk lock run busy --wait sometime -- true
ok "--wait forever acquires once the holder releases"

# Short options, and "--" before a key that starts with '-'.
expect 0 rk lock run -t 20s -w 1s -- -dash-key sh -c \
    'redis-cli -h "$0" -p "$1" pttl "$2"' "$REDKIT_TEST_HOST" "$REDKIT_TEST_PORT" "${PREFIX}-dash-key"
[ "$out" -gt 10000 ] && [ "$out" -le 20000 ] || fail "-t 20s gave a PTTL of '$out'"
expect 0 rk lock run --ttl=20s -- --dashdash-key true
[ "$(rcli exists "${PREFIX}--dashdash-key")" = 0 ] || fail "the lock should be released"
ok "-t/-w short forms, --ttl=VALUE, and '--' before a key starting with '-'"

# A lease lost while CMD runs ends with 76 even though CMD then exits 0.
"${RK[@]}" lock run lost --ttl 3s -- bash -c 'touch "$0/started"
    until [ -e "$0/go" ]; do sleep 0.02; done; exit 0' "$TMP" 2>"$TMP/lost.err" &
pid=$!
_pids+=("$pid")
wait_for 60 test -e "$TMP/started"
rcli del "${PREFIX}lost" >/dev/null
wait_for 60 grep -q "lost the lock on lost" "$TMP/lost.err"
touch "$TMP/go"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 76 ] || fail "a lost lease should exit 76, got $rc: $(cat "$TMP/lost.err")"
contains "$(cat "$TMP/lost.err")" "exiting 76 instead of the command's status 0"
ok "a lease lost while CMD runs exits 76 (CMD exited 0)"
