#!/usr/bin/env bash
# Build redkit and show it working against a private redis-server that this script starts on a
# Unix socket in a temp dir (installed from Debian if missing) and stops afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DREDKIT_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

dir=$(mktemp -d /tmp/redkit-demo.XXXXXX)
redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --dir "$dir" --daemonize no --logfile "$dir/redis.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 500); do [ -S "$dir/redis.sock" ] && break; sleep 0.01; done
url="unix://$dir/redis.sock"

if [ -x build/cli/redkit ]; then
    build/cli/redkit --url "$url" demo
else
    build/examples/example_cache "$url"
    build/examples/example_lock "$url"
fi
