#!/usr/bin/env bash
# redkit-bench --quick --plot: a smoke run of the bench's charts (its numbers mean nothing here).
# Every chart of the sections run is a non-empty PNG, and its data file has every series.
#   test_plot.sh BENCH_BINARY
set -euo pipefail
bench=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bench" --quick --no-peers --plot "$dir/plots" contended threads >"$dir/log" 2>&1 ||
    { tail -20 "$dir/log"; exit 1; }
for chart in lock_rate lock_p99 lock_wait_cdf cache_threads; do
    png="$dir/plots/$chart.png"
    [ -s "$png" ] || { echo "$chart.png missing or empty"; ls -l "$dir/plots"; exit 1; }
    [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
        { echo "$chart.png is not a PNG"; exit 1; }
done
grep -q '^# 8 processes$' "$dir/plots/lock_wait_cdf.dat"
grep -q '^# 64 processes$' "$dir/plots/lock_wait_cdf.dat"
[ "$(grep -cv '^#\|^$' "$dir/plots/lock_rate.dat")" = 4 ] # redkit at 2, 8, 32 and 64 processes
echo "ok: 4 charts drawn"
