# Shared by the CLI tests (tests/cli/test_*.sh REDKIT_BINARY), which ctest runs with the redis
# fixture's environment. Every test uses its own key prefix: tests run in parallel against the
# shared server.
set -euo pipefail
# shellcheck source=../support/server.sh
. "$(dirname "${BASH_SOURCE[0]}")/../support/server.sh"

REDKIT=${1:?usage: $0 path/to/redkit}
: "${REDKIT_TEST_HOST:?run this test through ctest (it needs the redis fixture)}"
URL="redis://$REDKIT_TEST_HOST:$REDKIT_TEST_PORT"
PREFIX="cli$$-$RANDOM:"
TMP=$(mktemp -d /tmp/redkit-cli-test.XXXXXX)
unset REDKIT_URL
_pids=()

_cleanup() {
    local pid
    for pid in "${_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rcli --scan --pattern "$PREFIX*" | xargs -r redis-cli -h "$REDKIT_TEST_HOST" \
        -p "$REDKIT_TEST_PORT" del >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap _cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok - $*"; }

# redkit against the fixture, under this test's prefix. Start background runs with "${RK[@]}"
# rather than rk, so that $! is redkit's own pid.
RK=("$REDKIT" --url "$URL" --config "options.prefix=$PREFIX")
rk() { "${RK[@]}" "$@"; }

# redis-cli against the fixture.
rcli() { redis-cli -h "$REDKIT_TEST_HOST" -p "$REDKIT_TEST_PORT" "$@"; }

# expect CODE CMD...: run CMD, fail unless it exits with CODE. Its stdout and stderr are left in
# $TMP/out and $TMP/err, and in $out and $err (without trailing newlines).
expect() {
    local want=$1 got=0
    shift
    "$@" >"$TMP/out" 2>"$TMP/err" || got=$?
    out=$(cat "$TMP/out")
    err=$(cat "$TMP/err")
    [ "$got" = "$want" ] || fail "expected exit $want, got $got from: $* (stderr: $err)"
}

# contains TEXT NEEDLE
contains() { case $1 in *"$2"*) ;; *) fail "expected '$2' in: $1" ;; esac; }

# wait_for SECONDS CMD...: poll a condition until it holds; fail after SECONDS. CMD runs anew on
# every poll, so a condition that reads state must be a command (such as the predicates below),
# not a "$(...)" expanded once at the call.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for: $*"
        sleep 0.02
    done
}

# Number of subscribers of a channel on the fixture.
numsub() { rcli pubsub numsub "$1" | sed -n 2p; }

# Predicates for wait_for: at least N subscribers on CHANNEL; N waiters queued for lock KEY.
numsub_ge() { [ "$(numsub "$1")" -ge "$2" ]; }
queued() { [ "$(rcli llen "redkit:lock-queue:{$PREFIX$1}")" = "$2" ]; }

# start_server ARGS...: a private redis-server on a free loopback port, killed at exit. Sets
# SERVER_PORT and SERVER_PID.
start_server() {
    rkt_spawn_redis rkt_answers_tcp --port @PORT@ --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP" --daemonize no --logfile "$TMP/redis-@PORT@.log" "$@" ||
        fail "could not start a private redis-server"
    SERVER_PORT=$SPAWNED_PORT SERVER_PID=$SPAWNED_PID
    _pids+=("$SPAWNED_PID")
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
