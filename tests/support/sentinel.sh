#!/usr/bin/env bash
# A throw-away Redis Sentinel deployment for shell tests and CLI tests: a master, its replica and
# 3 sentinels on free loopback ports, no persistence, every process in its own temp dir with a
# config file it may rewrite. The same deployment as tests/support/sentinel_env.h gives C tests
# (quorum 2, down-after-milliseconds 1000, failover-timeout 5000).
#   sentinel.sh start STATE_DIR [NAME]   # writes STATE_DIR/sentinels, name, ports, pids and env
#   sentinel.sh stop STATE_DIR
# STATE_DIR/sentinels is "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3", for redis://<sentinels> with
# options.sentinel_master=<name> (STATE_DIR/name, "rkt-master" unless NAME is given); ports and
# pids have one process a line: the master, the replica, then the sentinels. env has
# REDKIT_SENTINEL_SENTINELS, _NAME, _PORTS, _PIDS and _DIR. The servers outlive this script: a
# test that starts them traps its exit to stop them.
set -euo pipefail

cmd=${1:?start|stop}
state=${2:?state dir}
name=${3:-rkt-master}
# shellcheck source=server.sh
. "$(dirname "$0")/server.sh"

timeout_s=30

# The server arguments for process dir $1 in `args`, the port as @PORT@ (as rkt_spawn_redis
# wants it), its config file first (only there is it one): the same as sentinel_env.c gives,
# for the same reasons.
node_args() {
    args=("$1/redis.conf" --port @PORT@ --bind 127.0.0.1 --save '' --appendonly no --dir "$1"
        --daemonize no --logfile "$1/redis.log" --repl-diskless-sync-delay 0 --shutdown-timeout 0)
}
sentinel_args() {
    args=("$1/redis.conf" --sentinel --port @PORT@ --bind 127.0.0.1 --dir "$1" --daemonize no
        --logfile "$1/redis.log")
}

# spawn KIND DIR: start one process, its "PORT PID" appended to $dir/spawned.
spawn() {
    "$1_args" "$2"
    rkt_spawn_redis rkt_answers_tcp "${args[@]}" ||
        { echo "could not start a $1 (see $2/redis.log)" >&2; return 1; }
    echo "$SPAWNED_PORT $SPAWNED_PID" >>"$dir/spawned"
}

# An entry's field in SENTINEL REPLICAS / SENTINELS output, "name<TAB>value" a line.
pairs() { redis-cli -p "$1" sentinel "$2" "$name" | paste - -; }

# Every sentinel names the master, sees the replica healthy (its link up, as the replica's own
# INFO tells it) and knows the other two; the replica's link is up. The cheap check first.
settled() {
    local p out
    [ "$(redis-cli -p "${ports[1]}" role 2>/dev/null | sed -n 4p)" = connected ] || return 1
    for p in "${ports[@]:2}"; do
        [ "$(redis-cli -p "$p" sentinel get-master-addr-by-name "$name" | tail -1)" = "${ports[0]}" ] ||
            return 1
        out=$(pairs "$p" replicas)
        grep -qx $'flags\tslave' <<<"$out" && grep -qx $'master-link-status\tok' <<<"$out" ||
            return 1
        [ "$(pairs "$p" sentinels | grep -c '^runid')" -eq 2 ] || return 1
    done
}

wait_settled() {
    local deadline=$((SECONDS + timeout_s))
    until settled; do
        [ $SECONDS -lt $deadline ] ||
            { echo "the sentinels did not settle within ${timeout_s} s" >&2; return 1; }
        sleep 0.05
    done
}

start() {
    command -v redis-server >/dev/null || { echo "redis-server not found: run scripts/setup.sh" >&2; exit 1; }
    # A repeated start replaces the deployment it started before, never orphans it.
    if [ -f "$state/env" ]; then (stop); fi
    mkdir -p "$state"
    local i port pid pids=() addrs=()
    dir=$(mktemp -d /tmp/redkit-sentinel.XXXXXX)
    ports=()
    mkdir "$dir"/{n0,n1,s0,s1,s2}
    : >"$dir/n0/redis.conf"
    # Written as each starts, so that `stop` finds the servers even when the rest fails.
    printf 'REDKIT_SENTINEL_DIR=%s\n' "$dir" >"$state/env"
    spawn node "$dir/n0" || { stop; exit 1; }
    read -r port _ <"$dir/spawned"
    echo "replicaof 127.0.0.1 $port" >"$dir/n1/redis.conf"
    spawn node "$dir/n1" || { stop; exit 1; }
    for i in 0 1 2; do
        cat >"$dir/s$i/redis.conf" <<CONF
sentinel resolve-hostnames no
sentinel monitor $name 127.0.0.1 $port 2
sentinel down-after-milliseconds $name 1000
sentinel failover-timeout $name 5000
CONF
        spawn sentinel "$dir/s$i" || { stop; exit 1; }
    done
    while read -r port pid; do
        ports+=("$port") pids+=("$pid")
    done <"$dir/spawned"
    addrs=("127.0.0.1:${ports[2]}" "127.0.0.1:${ports[3]}" "127.0.0.1:${ports[4]}")
    wait_settled || { stop; exit 1; }
    local sentinels
    sentinels=$(IFS=,; echo "${addrs[*]}")
    echo "$sentinels" >"$state/sentinels"
    echo "$name" >"$state/name"
    printf '%s\n' "${ports[@]}" >"$state/ports"
    printf '%s\n' "${pids[@]}" >"$state/pids"
    cat >>"$state/env" <<ENV
REDKIT_SENTINEL_SENTINELS=$sentinels
REDKIT_SENTINEL_NAME=$name
REDKIT_SENTINEL_PORTS="${ports[*]}"
ENV
    echo "redis sentinel: master $name on ${ports[0]}, replica on ${ports[1]}, sentinels on $sentinels in $dir"
}

stop() {
    [ -f "$state/env" ] || return 0
    # shellcheck disable=SC1091
    . "$state/env"
    local pid pids=()
    if [ -f "$REDKIT_SENTINEL_DIR/spawned" ]; then
        while read -r _ pid; do pids+=("$pid"); done <"$REDKIT_SENTINEL_DIR/spawned"
    fi
    # A paused process would never see the SIGTERM; all at once, then wait for each.
    kill -CONT "${pids[@]}" 2>/dev/null || true
    kill "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do rkt_stop_pid "$pid"; done
    rm -rf "$REDKIT_SENTINEL_DIR" "$state/env" "$state/sentinels" "$state/name" "$state/pids" \
        "$state/ports"
}

"$cmd"
