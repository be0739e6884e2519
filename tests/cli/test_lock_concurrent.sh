#!/usr/bin/env bash
# Six concurrent `redkit lock run` on one key: their commands never overlap.
#   test_lock_concurrent.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

log="$TMP/intervals"
pids=()
for i in $(seq 1 6); do
    "${RK[@]}" lock run shared --ttl 30s --wait 60s -- bash -c \
        'echo "start $(date +%s%6N) $1" >>"$0"; sleep 0.05; echo "end $(date +%s%6N) $1" >>"$0"' \
        "$log" "$i" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a lock run failed"; done

[ "$(grep -c '^start' "$log")" = 6 ] || fail "expected 6 runs: $(cat "$log")"
# Appends land in time order: every start must follow the previous run's end.
awk '
    $1 == "start" { if (open) { print "overlap at line " NR; bad = 1 } ; if ($2 < last) bad = 1; open = $3 }
    $1 == "end"   { if (open != $3) { print "unexpected end at line " NR; bad = 1 } ; open = ""; last = $2 }
    END { exit bad }' "$log" || fail "intervals overlap: $(cat "$log")"
[ "$(rcli exists "${PREFIX}shared")" = 0 ] || fail "the lock should be released"
ok "6 concurrent lock runs never overlapped"
