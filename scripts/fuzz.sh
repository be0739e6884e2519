#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) and fuzz each one for a while, starting from
# its seed corpus in tests/fuzz/corpus/<target>/. New inputs go to a scratch copy, never into the
# repository; a crash leaves its input in the work directory and fails the script.
#   scripts/fuzz.sh              60 s per target
#   scripts/fuzz.sh 300 uri      300 s, the uri target only
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config uri reply)

scripts/setup.sh --dev

build=${REDKIT_FUZZ_BUILD:-build-fuzz}
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DREDKIT_BUILD_FUZZERS=ON -DREDKIT_SANITIZE=address,undefined -DREDKIT_WERROR=ON \
    -DREDKIT_BUILD_CLI=OFF -DREDKIT_BUILD_EXAMPLES=OFF -DREDKIT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

work=$(mktemp -d /tmp/redkit-fuzz.XXXXXX)
echo "fuzzing ${targets[*]} for ${seconds}s each in $work"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t/corpus"
    cp tests/fuzz/corpus/"$t"/* "$work/$t/corpus/"
    # -rss_limit_mb: the reply target's own allocator refuses anything over 64 MiB, so more
    # than this is a leak or runaway growth somewhere else.
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$work/$t/" \
        "$work/$t/corpus" >"$work/$t/log" 2>&1; then
        status=1
        echo "FAIL fuzz_$t: see $work/$t/log; crashing input(s):" >&2
        ls "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* "$work/$t"/oom-* 2>/dev/null >&2 || true
        tail -40 "$work/$t/log" >&2
        continue
    fi
    echo "ok   fuzz_$t: $(grep -E 'stat::number_of_executed_units' "$work/$t/log" | awk '{print $2}') runs," \
        "corpus $(ls "$work/$t/corpus" | wc -l) inputs"
done
[ $status -eq 0 ] && rm -rf "$work"
exit $status
