#!/usr/bin/env bash
# redkit demo against the fixture: every step succeeds and it cleans up after itself.
#   test_demo.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

expect 0 "$REDKIT" --url "unix://$REDKIT_TEST_SOCKET" demo --clients 6
for text in "1. Cache" "ms left" "miss: NOT_FOUND" "2. Lock" "LOCK_TIMEOUT (Conflict)" "3. Memolock" \
    "1 computation for 6 concurrent requests: exactly once" "0 new computations" "All done"; do
    contains "$out" "$text"
done
prefix=$(sed -n 's/.*keys under the prefix \([^)]*\)).*/\1/p' <<<"$out")
[ -n "$prefix" ] || fail "the demo should name its key prefix"
[ -z "$(rcli --scan --pattern "$prefix*")" ] || fail "the demo left keys behind"
ok "redkit demo walks through cache, lock and memolock and cleans up"
