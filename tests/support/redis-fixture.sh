#!/usr/bin/env bash
# The ctest fixture: start a private, throw-away redis-server on a free loopback port and a Unix
# socket in a temp dir, with no persistence; stop it and remove everything afterwards.
#   redis-fixture.sh start STATE_DIR   # writes STATE_DIR/env (REDKIT_TEST_HOST/PORT/SOCKET)
#   redis-fixture.sh stop STATE_DIR
set -euo pipefail

cmd=${1:?start|stop}
state=${2:?state dir}

start() {
    command -v redis-server >/dev/null || { echo "redis-server not found: run scripts/setup.sh" >&2; exit 1; }
    # A repeated start (ctest --repeat) replaces the server it started before, never orphans it.
    if [ -f "$state/env" ]; then (stop); fi
    mkdir -p "$state"
    local dir port pid
    dir=$(mktemp -d /tmp/redkit-test.XXXXXX)
    for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        redis-server --port "$port" --bind 127.0.0.1 --unixsocket "$dir/redis.sock" \
            --unixsocketperm 700 --save '' --appendonly no --dir "$dir" --daemonize no \
            --logfile "$dir/redis.log" --enable-debug-command local >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 500); do
            if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
                cat >"$state/env" <<ENV
REDKIT_TEST_HOST=127.0.0.1
REDKIT_TEST_PORT=$port
REDKIT_TEST_SOCKET=$dir/redis.sock
REDKIT_TEST_DIR=$dir
REDKIT_TEST_PID=$pid
ENV
                echo "redis-server $pid on 127.0.0.1:$port and $dir/redis.sock"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break # port taken: try another
            sleep 0.01
        done
        kill "$pid" 2>/dev/null || true
    done
    echo "could not start redis-server (see $dir/redis.log)" >&2
    exit 1
}

stop() {
    [ -f "$state/env" ] || exit 0
    # shellcheck disable=SC1091
    . "$state/env"
    kill "$REDKIT_TEST_PID" 2>/dev/null || true
    for _ in $(seq 1 500); do
        kill -0 "$REDKIT_TEST_PID" 2>/dev/null || break
        sleep 0.01
    done
    kill -9 "$REDKIT_TEST_PID" 2>/dev/null || true
    rm -rf "$REDKIT_TEST_DIR" "$state/env"
}

"$cmd"
