#!/usr/bin/env bash
# A throw-away Redis Cluster for shell tests, CLI tests and the benchmark: 3 masters and 3
# replicas on free loopback ports, no persistence, every node in its own temp dir. The same
# cluster as tests/support/cluster_env.h gives C tests (node timeout 2000 ms), but created with
# `redis-cli --cluster create`, so which replica follows which master is redis-cli's choice.
#   cluster.sh start STATE_DIR   # writes STATE_DIR/seeds, pids, ports and env
#   cluster.sh stop STATE_DIR
# STATE_DIR/seeds is "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3" (the masters), for redis://<seeds>;
# pids and ports have one node a line, the masters first; env has REDKIT_CLUSTER_SEEDS, _PORTS,
# _PIDS and _DIR. The servers outlive this script: a test that starts them traps its exit to
# stop them.
set -euo pipefail

cmd=${1:?start|stop}
state=${2:?state dir}
# shellcheck source=server.sh
. "$(dirname "$0")/server.sh"

nodes=6
timeout_s=30

# The server arguments for node dir $1 in `args`, the port as @PORT@ (as rkt_spawn_redis
# wants it): the same as cluster_env.c gives, for the same reasons. A stopped cluster's data is
# thrown away, so no master waits for its replicas to catch up when told to stop.
node_args() {
    args=(--port @PORT@ --bind 127.0.0.1 --save '' --appendonly no --dir "$1" --daemonize no
        --logfile "$1/redis.log" --cluster-enabled yes --cluster-config-file nodes.conf
        --cluster-node-timeout 2000 --cluster-replica-validity-factor 0
        --repl-diskless-sync-delay 0 --shutdown-timeout 0)
}

# rkt_answers_as PID PORT: the server on PORT is up and it is PID (not another one that had the
# port first).
rkt_answers_as() { redis-cli -p "$2" info server 2>/dev/null | grep -q "^process_id:$1"; }

# All spawned, then waited for one by one: their start-up is what takes time, and six polling
# loops would take the CPU from it. A node that did not come up (its port, or its cluster bus
# port, port + 10000, was taken) starts again elsewhere. Writes each node's "PORT PID" to
# <node dir>/spawned.
spawn_all() {
    local dir=$1 i port pid args
    for i in $(seq 0 $((nodes - 1))); do
        mkdir -p "$dir/n$i"
        node_args "$dir/n$i"
        port=$((20000 + RANDOM % 35000)) # the bus port stays below 65536
        redis-server "${args[@]//@PORT@/$port}" >/dev/null 2>&1 &
        echo "$port $!" >"$dir/n$i/spawned"
    done
    for i in $(seq 0 $((nodes - 1))); do
        read -r port pid <"$dir/n$i/spawned"
        for _ in $(seq 1 500); do
            rkt_answers_as "$pid" "$port" && continue 2
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.01
        done
        kill -9 "$pid" 2>/dev/null || true
        node_args "$dir/n$i"
        rkt_spawn_redis rkt_answers_tcp "${args[@]}" ||
            { echo "could not start cluster node $i (see $dir/n$i/redis.log)" >&2; return 1; }
        echo "$SPAWNED_PORT $SPAWNED_PID" >"$dir/n$i/spawned"
    done
}

# A node's picture of the cluster, comparable between nodes: every node's id, role (no
# "myself"), master and slots, without the migrations only the node itself shows.
picture() {
    redis-cli -p "$1" cluster nodes | awk '{
        f = $3; sub(/myself,/, "", f); line = $1 " " f " " $4
        for (i = 9; i <= NF; i++) if ($i !~ /^\[/) line = line " " $i
        print line }' | sort
}

# Every node says cluster_state:ok, draws the same picture, and every replica's link is up. The
# cheap check first: on a busy machine each redis-cli costs.
settled() {
    local first="" p view
    for p in "$@"; do
        redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
    for p in "$@"; do
        view=$(redis-cli -p "$p" role | head -4 | tr '\n' ' ')
        [[ $view != slave* || $view == *" connected "* ]] || return 1
        view=$(picture "$p") || return 1
        [ -z "$first" ] && first=$view
        [ "$view" = "$first" ] || return 1
    done
}

wait_settled() {
    local deadline=$((SECONDS + timeout_s))
    until settled "$@"; do
        [ $SECONDS -lt $deadline ] || { echo "the cluster did not settle within ${timeout_s} s" >&2; return 1; }
        sleep 0.05
    done
}

start() {
    command -v redis-server >/dev/null || { echo "redis-server not found: run scripts/setup.sh" >&2; exit 1; }
    # A repeated start replaces the cluster it started before, never orphans it.
    if [ -f "$state/env" ]; then (stop); fi
    mkdir -p "$state"
    local dir i port pid ports=() pids=() addrs=()
    dir=$(mktemp -d /tmp/redkit-cluster.XXXXXX)
    spawn_all "$dir" || exit 1
    for i in $(seq 0 $((nodes - 1))); do
        read -r port pid <"$dir/n$i/spawned"
        ports+=("$port") pids+=("$pid") addrs+=("127.0.0.1:$port")
    done
    # Written first, so that `stop` finds the servers even when the rest fails.
    printf '%s\n' "${pids[@]}" >"$state/pids"
    printf 'REDKIT_CLUSTER_PIDS="%s"\nREDKIT_CLUSTER_DIR=%s\n' "${pids[*]}" "$dir" >"$state/env"
    # redis-cli makes the first three given the masters.
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1; then
        echo "redis-cli --cluster create failed:" >&2
        cat "$dir/create.log" >&2
        exit 1
    fi
    wait_settled "${ports[@]}" || exit 1
    local seeds="${addrs[0]},${addrs[1]},${addrs[2]}"
    echo "$seeds" >"$state/seeds"
    printf '%s\n' "${ports[@]}" >"$state/ports"
    cat >>"$state/env" <<ENV
REDKIT_CLUSTER_SEEDS=$seeds
REDKIT_CLUSTER_PORTS="${ports[*]}"
ENV
    echo "redis cluster on $seeds (replicas on ${ports[3]}, ${ports[4]}, ${ports[5]}) in $dir"
}

stop() {
    [ -f "$state/env" ] || exit 0
    # shellcheck disable=SC1091
    . "$state/env"
    local pid
    # shellcheck disable=SC2086
    kill $REDKIT_CLUSTER_PIDS 2>/dev/null || true # all at once, then wait for each
    for pid in $REDKIT_CLUSTER_PIDS; do rkt_stop_pid "$pid"; done
    rm -rf "$REDKIT_CLUSTER_DIR" "$state/env" "$state/seeds" "$state/pids" "$state/ports"
}

"$cmd"
