#!/usr/bin/env bash
# The redkit tool on a Redis Cluster, given only a multi-host URL (options.cluster=auto finds
# the cluster): cache set/get/del of keys on every shard, a lock run, a memo run.
#   test_cli_cluster.sh REDKIT_BINARY
set -euo pipefail
REDKIT=${1:?usage: $0 path/to/redkit}
fixture="$(dirname "$0")/../support/cluster.sh"
state=$(mktemp -d /tmp/redkit-cli-cluster.XXXXXX)
trap '"$fixture" stop "$state"; rm -rf "$state"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$fixture" start "$state"
url="redis://$(cat "$state/seeds")"
mapfile -t ports <"$state/ports"
rk() { "$REDKIT" --url "$url" "$@"; }

for key in a b c d e f g h; do # eight keys: all three masters serve some
    rk cache set "$key" "value-$key"
done
for key in a b c d e f g h; do
    [ "$(rk cache get "$key")" = "value-$key" ] || fail "get $key"
    # the value really is in the cluster: redis-cli -c follows the redirects
    [ "$(redis-cli -c -p "${ports[0]}" get "$key")" = "value-$key" ] || fail "raw get $key"
done
rk cache del a b c d e f g h
for key in a b c d e f g h; do
    if rk cache get "$key" >/dev/null; then fail "$key still there"; fi
done
echo "ok - cache set/get/del over every shard"

out=$(rk lock run orders:42 --ttl 5s --wait 5s -- echo held)
[ "$out" = held ] || fail "lock run printed '$out'"
[ "$(redis-cli -c -p "${ports[0]}" exists orders:42)" = 0 ] || fail "the lock was not released"
echo "ok - lock run"

out=$(rk memo run id-1 --tag report -- echo computed)
[ "$out" = computed ] || fail "memo run printed '$out'"
[ "$(redis-cli -c -p "${ports[1]}" get report:id-1)" = computed ] || fail "memo value stored"
echo "ok - memo run"
