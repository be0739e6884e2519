#!/usr/bin/env bash
# The redkit tool through Redis Sentinel, given the sentinels' URL and the master's name:
# cache set/get lands on the master; after SENTINEL FAILOVER (the old master still up, and still
# saying master for about 10 s) a new run finds the new master; a lock run and a memo run.
#   test_cli_sentinel.sh REDKIT_BINARY
set -euo pipefail
REDKIT=${1:?usage: $0 path/to/redkit}
fixture="$(dirname "$0")/../support/sentinel.sh"
state=$(mktemp -d /tmp/redkit-cli-sentinel.XXXXXX)
trap '"$fixture" stop "$state"; rm -rf "$state"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$fixture" start "$state"
url="redis://$(cat "$state/sentinels")"
name=$(cat "$state/name")
mapfile -t ports <"$state/ports" # master, replica, then the sentinels
rk() { "$REDKIT" --url "$url" --config "options.sentinel_master=$name" "$@"; }

rk cache set k v
[ "$(rk cache get k)" = v ] || fail "get k"
[ "$(redis-cli -p "${ports[0]}" get k)" = v ] || fail "k is not on the master"
echo "ok - cache set/get through the sentinels"

# The replica has k before it is promoted.
[ "$(redis-cli -p "${ports[0]}" wait 1 5000)" = 1 ] || fail "the replica did not acknowledge"
redis-cli -p "${ports[2]}" sentinel failover "$name" | grep -qx OK || fail "SENTINEL FAILOVER"
named() { redis-cli -p "$1" sentinel get-master-addr-by-name "$name" | tail -1; }
deadline=$((SECONDS + 30))
until [ "$(named "${ports[2]}")" = "${ports[1]}" ] && [ "$(named "${ports[3]}")" = "${ports[1]}" ] &&
    [ "$(named "${ports[4]}")" = "${ports[1]}" ] &&
    [ "$(redis-cli -p "${ports[1]}" role | head -1)" = master ]; do
    [ $SECONDS -lt $deadline ] || fail "no failover within 30 s"
    sleep 0.05
done
rk cache set k2 v2
[ "$(redis-cli -p "${ports[1]}" get k2)" = v2 ] || fail "k2 is not on the new master"
[ -z "$(redis-cli -p "${ports[0]}" get k2)" ] || fail "k2 went to the old master"
[ "$(rk cache get k)" = v ] || fail "k after the failover"
echo "ok - a new run follows SENTINEL FAILOVER"

out=$(rk lock run orders:42 --ttl 5s --wait 5s -- echo held)
[ "$out" = held ] || fail "lock run printed '$out'"
[ "$(redis-cli -p "${ports[1]}" exists orders:42)" = 0 ] || fail "the lock was not released"
echo "ok - lock run"

out=$(rk memo run id-1 --tag report -- echo computed)
[ "$out" = computed ] || fail "memo run printed '$out'"
[ "$(redis-cli -p "${ports[1]}" get report:id-1)" = computed ] || fail "memo value stored"
echo "ok - memo run"
