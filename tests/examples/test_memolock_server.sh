#!/usr/bin/env bash
# The memolock demo server: however many concurrent requests, one "cache miss" per id, and
# every client gets the same body. Also the external-producer route (redis-cli SET + PUBLISH).
#   test_memolock_server.sh SERVER_BINARY   (run by ctest with the redis fixture's environment)
set -euo pipefail
server=$1
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT

"$server" --url "unix://$REDKIT_TEST_SOCKET" --port 0 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 500); do grep -q Listening "$dir/log" && break; sleep 0.01; done
port=$(sed -n 's/^Listening to 127.0.0.1:\([0-9]*\)$/\1/p' "$dir/log")
[ -n "$port" ] || { cat "$dir/log"; exit 1; }

id="t$$"
for i in $(seq 1 12); do curl -sf "http://127.0.0.1:$port/query/simple/$id" >"$dir/q$i" & done
for i in $(seq 1 4); do curl -sf "http://127.0.0.1:$port/ext/$id" >"$dir/e$i" & done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
for i in $(seq 1 12); do [ "$(cat "$dir/q$i")" = "<query set result $id>" ] || { echo "q$i: $(cat "$dir/q$i")"; exit 1; }; done
for i in $(seq 1 4); do [ "$(cat "$dir/e$i")" = "$(echo "$id" | tr a-z A-Z)" ] || { echo "e$i: $(cat "$dir/e$i")"; exit 1; }; done
misses=$(grep -c "(query/simple/$id) cache miss" "$dir/log")
ext_misses=$(grep -c "(ext/$id) cache miss" "$dir/log")
[ "$misses" = 1 ] || { echo "query computed $misses times"; cat "$dir/log"; exit 1; }
[ "$ext_misses" = 1 ] || { echo "external program started $ext_misses times"; exit 1; }
[ "$(redis-cli -s "$REDKIT_TEST_SOCKET" exists "ext/lock:$id")" = 0 ] || { echo "ext lock left behind"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")" = 404 ]
# /metrics counts what just happened: 12 + 4 calls, one fetch each, the rest served or joined.
curl -sf "http://127.0.0.1:$port/metrics" >"$dir/metrics"
grep -qx 'redkit_calls_total{component="memolock",handle="query",op="get",outcome="ok"} 12' "$dir/metrics" || { cat "$dir/metrics"; exit 1; }
grep -qx 'redkit_events_total{component="memolock",handle="query",event="memo_fetch_done",outcome="ok"} 1' "$dir/metrics" || { cat "$dir/metrics"; exit 1; }
grep -q '^redkit_memolock_wait_seconds_count{component="memolock",handle="ext"} ' "$dir/metrics"
redis-cli -s "$REDKIT_TEST_SOCKET" del "query:$id" "ext:$id" >/dev/null
echo "ok: 12 concurrent queries and 4 external requests, one computation each"
