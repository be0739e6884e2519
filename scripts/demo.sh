#!/usr/bin/env bash
# Build redkit and run `redkit demo` against a private redis-server that this script starts on a
# Unix socket in a temp dir (installed from Debian if missing) and stops afterwards. It never
# touches a Redis of yours.
#   scripts/demo.sh [DEMO OPTIONS...]     e.g. scripts/demo.sh --clients 16
# REDKIT_BUILD_DIR chooses the build directory (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${REDKIT_BUILD_DIR:-build}

scripts/setup.sh
echo "Building redkit in $build/ ..."
cmake -S . -B "$build" -DREDKIT_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

dir=$(mktemp -d /tmp/redkit-demo.XXXXXX)
sock="$dir/redis.sock"
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save '' --appendonly no \
    --dir "$dir" --daemonize no --logfile "$dir/redis.log" &
server=$!
stop() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$dir"
}
trap stop EXIT
for _ in $(seq 1 500); do
    [ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ] && break
    kill -0 "$server" 2>/dev/null || { cat "$dir/redis.log" >&2; exit 1; }
    sleep 0.01
done
echo "Started a private $(redis-server --version | cut -d' ' -f1-3) on unix://$sock"

status=0
"$build/cli/redkit" --url "unix://$sock" demo "$@" || status=$?
stop
trap - EXIT
echo "Stopped the private redis-server and removed $dir."
exit "$status"
