#!/usr/bin/env bash
# redkit --help, per-command help, version, and argument errors (no server needed).
#   test_help.sh REDKIT_BINARY
set -euo pipefail
REDKIT=${1:?usage: $0 path/to/redkit}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

help=$("$REDKIT" --help)
for word in "cache set" "lock run" "memo run" "redkit demo" "--url" "--config" "--password-file" \
    "Exit status" "75" "EX_TEMPFAIL" "REDKIT_URL" "REDIS_URL" "REDKIT_PASSWORD"; do
    case $help in *"$word"*) ;; *) fail "--help does not mention '$word'" ;; esac
done
for cmd in cache lock memo demo; do
    "$REDKIT" "$cmd" --help | grep -q "redkit $cmd" || fail "redkit $cmd --help"
done
for word in --kill-on-loss --quiet --conflict-exit forever "lock status" --json "76"; do
    "$REDKIT" lock --help | grep -q -- "$word" || fail "lock --help does not mention '$word'"
done
"$REDKIT" cache --help | grep -q -- "cache ttl KEY \[--json\]" || fail "cache --help: --json"
"$REDKIT" cache --help | grep -q -- "cache del KEY \[KEY...\]" || fail "cache --help: del KEY..."
"$REDKIT" --version | grep -q '^redkit [0-9]' || fail "--version"
echo "ok - --help, COMMAND --help, --version"

code() {
    local rc=0
    "$REDKIT" "$@" >/dev/null 2>&1 || rc=$?
    echo "$rc"
}
[ "$(code)" = 64 ] || fail "no command should exit 64"
[ "$(code frobnicate)" = 64 ] || fail "unknown command"
[ "$(code --nope cache get k)" = 64 ] || fail "unknown global option"
[ "$(code --url)" = 64 ] || fail "--url without a value"
[ "$(code lock run k)" = 64 ] || fail "lock run without a command"
[ "$(code lock release k)" = 64 ] || fail "lock release without --token or --force"
[ "$(code lock release k --token nothex)" = 64 ] || fail "lock release with a bad token"
[ "$(code lock try k --wait 1s)" = 64 ] || fail "--wait is for lock run"
[ "$(code memo run k)" = 64 ] || fail "memo run without a command"
[ "$(code memo run k --wait soon -- true)" = 64 ] || fail "bad duration"
[ "$(code demo --clients 1)" = 64 ] || fail "demo --clients 1"
msg=$("$REDKIT" frobnicate 2>&1 || true)
case $msg in *"redkit: unknown command 'frobnicate'"*) ;; *) fail "message: $msg" ;; esac
echo "ok - usage errors exit 64 with a message"
