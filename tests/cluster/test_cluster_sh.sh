#!/usr/bin/env bash
# tests/support/cluster.sh, as shell tests and the benchmark use it: start, the files it
# writes, a key written through one seed and read through another (redis-cli -c follows
# MOVED), then stop leaves no server behind.
set -euo pipefail
# shellcheck source=../support/server.sh
. "$(dirname "$0")/../support/server.sh"
fixture="$(dirname "$0")/../support/cluster.sh"
state=$(mktemp -d /tmp/redkit-cluster-state.XXXXXX)
trap '"$fixture" stop "$state"; rm -rf "$state"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

t0=$(date +%s%N)
"$fixture" start "$state"
echo "cluster.sh start took $((($(date +%s%N) - t0) / 1000000)) ms"

seeds=$(cat "$state/seeds")
[[ $seeds =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] || fail "seeds: $seeds"
[ "$(wc -l <"$state/pids")" -eq 6 ] || fail "6 pids expected"
mapfile -t ports <"$state/ports"
[ "${#ports[@]}" -eq 6 ] || fail "6 ports expected"

masters=0
for p in "${ports[@]}"; do
    redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' || fail "node $p not ok"
    [ "$(redis-cli -p "$p" role | head -1)" = master ] && masters=$((masters + 1))
done
[ "$masters" -eq 3 ] || fail "3 masters expected, got $masters"
for seed in ${seeds//,/ }; do
    [ "$(redis-cli -p "${seed#*:}" role | head -1)" = master ] || fail "seed $seed is no master"
done
redis-cli -p "${ports[0]}" cluster info | grep -q '^cluster_slots_ok:16384' || fail "slots"

# Keys on all three masters, each read back through another seed.
for key in a b c d e f; do
    redis-cli -c -p "${ports[0]}" set "$key" "v$key" >/dev/null
    [ "$(redis-cli -c -p "${ports[2]}" get "$key")" = "v$key" ] || fail "key $key"
done

mapfile -t pids <"$state/pids"
"$fixture" stop "$state"
for pid in "${pids[@]}"; do rkt_gone "$pid" || fail "server $pid still runs"; done
for p in "${ports[@]}"; do
    ! redis-cli -p "$p" ping >/dev/null 2>&1 || fail "node $p still answers"
done
echo "OK"
