#!/usr/bin/env bash
# The ctest fixture: start a private, throw-away redis-server on a free loopback port and a Unix
# socket in a temp dir, with no persistence; stop it and remove everything afterwards.
#   redis-fixture.sh start STATE_DIR   # writes STATE_DIR/env (REDKIT_TEST_HOST/PORT/SOCKET)
#   redis-fixture.sh stop STATE_DIR
set -euo pipefail

cmd=${1:?start|stop}
state=${2:?state dir}
# shellcheck source=server.sh
. "$(dirname "$0")/server.sh"

start() {
    command -v redis-server >/dev/null || { echo "redis-server not found: run scripts/setup.sh" >&2; exit 1; }
    # A repeated start (ctest --repeat) replaces the server it started before, never orphans it.
    if [ -f "$state/env" ]; then (stop); fi
    mkdir -p "$state"
    local dir
    dir=$(mktemp -d /tmp/redkit-test.XXXXXX)
    if ! rkt_spawn_redis rkt_answers_tcp --port @PORT@ --bind 127.0.0.1 \
        --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' --appendonly no \
        --dir "$dir" --daemonize no --logfile "$dir/redis.log" --enable-debug-command local; then
        echo "could not start redis-server (see $dir/redis.log)" >&2
        exit 1
    fi
    cat >"$state/env" <<ENV
REDKIT_TEST_HOST=127.0.0.1
REDKIT_TEST_PORT=$SPAWNED_PORT
REDKIT_TEST_SOCKET=$dir/redis.sock
REDKIT_TEST_DIR=$dir
REDKIT_TEST_PID=$SPAWNED_PID
ENV
    echo "redis-server $SPAWNED_PID on 127.0.0.1:$SPAWNED_PORT and $dir/redis.sock"
}

stop() {
    [ -f "$state/env" ] || exit 0
    # shellcheck disable=SC1091
    . "$state/env"
    rkt_stop_pid "$REDKIT_TEST_PID"
    rm -rf "$REDKIT_TEST_DIR" "$state/env"
}

"$cmd"
