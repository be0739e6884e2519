#!/usr/bin/env bash
# tests/support/sentinel.sh, as shell tests use it: start, the files it writes, the roles, every
# sentinel naming the master, a key written on the master read on the replica, then stop leaves
# no server behind.
set -euo pipefail
# shellcheck source=../support/server.sh
. "$(dirname "$0")/../support/server.sh"
fixture="$(dirname "$0")/../support/sentinel.sh"
state=$(mktemp -d /tmp/redkit-sentinel-state.XXXXXX)
trap '"$fixture" stop "$state"; rm -rf "$state"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

t0=$(date +%s%N)
"$fixture" start "$state" sh-master
echo "sentinel.sh start took $((($(date +%s%N) - t0) / 1000000)) ms"

sentinels=$(cat "$state/sentinels")
[[ $sentinels =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] ||
    fail "sentinels: $sentinels"
[ "$(cat "$state/name")" = sh-master ] || fail "name"
[ "$(wc -l <"$state/pids")" -eq 5 ] || fail "5 pids expected"
mapfile -t ports <"$state/ports"
[ "${#ports[@]}" -eq 5 ] || fail "5 ports expected"
[ "$sentinels" = "127.0.0.1:${ports[2]},127.0.0.1:${ports[3]},127.0.0.1:${ports[4]}" ] ||
    fail "the sentinels are the last three ports"

[ "$(redis-cli -p "${ports[0]}" role | head -1)" = master ] || fail "${ports[0]} is no master"
[ "$(redis-cli -p "${ports[1]}" role | head -1)" = slave ] || fail "${ports[1]} is no replica"
for p in "${ports[@]:2}"; do
    [ "$(redis-cli -p "$p" sentinel get-master-addr-by-name sh-master | tail -1)" = "${ports[0]}" ] ||
        fail "sentinel $p names another master"
    redis-cli -p "$p" sentinel ckquorum sh-master | grep -q '^OK 3 usable' || fail "quorum on $p"
done

redis-cli -p "${ports[0]}" set k v >/dev/null
[ "$(redis-cli -p "${ports[0]}" wait 1 5000)" = 1 ] || fail "the replica did not acknowledge"
[ "$(redis-cli -p "${ports[1]}" get k)" = v ] || fail "k on the replica"

mapfile -t pids <"$state/pids"
"$fixture" stop "$state"
for pid in "${pids[@]}"; do rkt_gone "$pid" || fail "server $pid still runs"; done
for p in "${ports[@]}"; do
    ! redis-cli -p "$p" ping >/dev/null 2>&1 || fail "$p still answers"
done
echo "OK"
