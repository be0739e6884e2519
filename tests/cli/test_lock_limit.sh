#!/usr/bin/env bash
# `redkit lock run KEY --limit N`: six concurrent runs on a limit of 2 never have more than 2
# commands running at once (counted in Redis), all of them run, and the semaphore lives apart
# from the lock of the same key. The permit is renewed while CMD runs, and one removed on the
# server is reported lost (exit 76).
#   test_lock_limit.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

counter="${PREFIX}running"
log="$TMP/counts"
pids=()
for i in $(seq 1 6); do
    "${RK[@]}" lock run shared --limit 2 --ttl 30s --wait 60s -- bash -c '
        rc() { redis-cli -h "$REDKIT_TEST_HOST" -p "$REDKIT_TEST_PORT" "$@"; }
        echo "$(rc incr "$1")" >>"$2"; sleep 0.2; rc decr "$1" >/dev/null' _ "$counter" "$log" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a lock run --limit failed"; done

[ "$(wc -l <"$log")" = 6 ] || fail "expected 6 runs: $(cat "$log")"
max=$(sort -n "$log" | tail -1)
[ "$max" -le 2 ] || fail "more than 2 commands ran at once: $(tr '\n' ' ' <"$log")"
[ "$(rcli zcard "redkit:sem:{${PREFIX}shared}")" = 0 ] || fail "every permit should be released"
ok "6 concurrent lock runs --limit 2: at most $max at once"

# The lock and the semaphore of one key do not exclude each other.
"${RK[@]}" lock run both --ttl 30s --wait 0s -- \
    "$REDKIT" --url "$URL" --config "options.prefix=$PREFIX" lock run both --limit 1 --wait 0s -- true \
    || fail "lock run K and lock run K --limit 1 should not exclude each other"
ok "lock run K and lock run K --limit 1 run side by side"

# A full semaphore: --wait 0s gives up with the conflict status.
"${RK[@]}" lock run full --limit 1 --ttl 30s -- sleep 2 &
pids=($!)
until [ "$(rcli zcard "redkit:sem:{${PREFIX}full}")" = 1 ]; do sleep 0.02; done
expect 75 rk lock run full --limit 1 --wait 0s -- true
expect 64 rk lock run full --limit 0 -- true
wait "${pids[0]}" || fail "the holder failed"
ok "a full semaphore exits 75; --limit 0 is a usage error"

# A 2 s permit outlives CMD's 4.5 s because the library's watchdog renews it every 0.67 s: a
# second run at limit 1 finds it still held (75), and the first exits 0 (never lost).
expect 0 rk lock run kept --limit 1 --ttl 2s -- bash -c 'sleep 4.5; "$0" --url "$1" \
    --config "options.prefix=$2" lock run kept --limit 1 --wait 0s -- true; echo "run=$?"' \
    "$REDKIT" "$URL" "$PREFIX"
contains "$out" "run=75"
[ "$(rcli zcard "redkit:sem:{${PREFIX}kept}")" = 0 ] || fail "the kept permit should be released"
ok "lock run --limit renews the permit while CMD runs"

# A permit removed on the server is lost: reported at the next renewal (1 s), CMD keeps running
# without --kill-on-loss, and redkit exits 76 whatever CMD's status. The test waits for the
# message, not for a time.
"${RK[@]}" lock run lost --limit 1 --ttl 3s -- \
    bash -c 'touch "$0/started"; until [ -e "$0/go" ]; do sleep 0.02; done' \
    "$TMP" 2>"$TMP/lost.err" &
pid=$!
wait_for 30 test -e "$TMP/started"
rcli del "redkit:sem:{${PREFIX}lost}" >/dev/null
wait_for 30 grep -q "lost the permit of lost" "$TMP/lost.err"
touch "$TMP/go"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 76 ] || fail "a lost permit should exit 76 even when CMD exits 0, got $rc"
[ "$(rcli exists "redkit:sem:{${PREFIX}lost}")" = 0 ] || fail "a lost permit must not come back"
ok "a lost permit is reported on stderr and exits 76"
