#!/usr/bin/env bash
# Build redkit and run the whole test suite against private redis-server processes it starts
# and stops itself. Installs missing Debian packages first.
#   scripts/test.sh                          gcc, -Werror, every test
#   scripts/test.sh --sanitize address,undefined   (or thread) with clang
#   scripts/test.sh --valgrind               unit and redis tests under valgrind memcheck
#   scripts/test.sh -- -L unit               extra arguments for ctest
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize="" valgrind=0 ctest_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --sanitize) sanitize=$2; shift 2 ;;
    --valgrind) valgrind=1; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

if [ -n "$sanitize" ] || [ $valgrind -eq 1 ]; then scripts/setup.sh --dev; else scripts/setup.sh; fi

build=build
cmake_args=(-DREDKIT_WERROR=ON)
if [ -n "$sanitize" ]; then
    build="build-${sanitize//,/-}"
    cmake_args+=(-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug "-DREDKIT_SANITIZE=$sanitize")
elif [ $valgrind -eq 1 ]; then
    build=build-valgrind
    cmake_args+=(-DCMAKE_BUILD_TYPE=Debug)
fi

cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"

if [ $valgrind -eq 1 ]; then
    export REDKIT_TEST_WRAPPER="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --track-fds=no"
    ctest_args=(-L "unit|redis" --timeout 900 "${ctest_args[@]}")
fi
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$build"
ctest --output-on-failure -j"$(nproc)" "${ctest_args[@]}"
