#!/usr/bin/env bash
# Connection settings and their failures: --url (redis://, unix://), REDKIT_URL, --config with
# pip-services keys, --password-file; bad URL, server down, wrong or missing password.
#   test_connection.sh REDKIT_BINARY
. "$(dirname "$0")/lib.sh"

expect 0 "$REDKIT" --url "unix://$REDKIT_TEST_SOCKET" --config "options.prefix=$PREFIX" \
    cache set via-socket 1
[ "$(rcli get "${PREFIX}via-socket")" = 1 ] || fail "unix:// URL"
expect 0 env REDKIT_URL="$URL" "$REDKIT" --config "options.prefix=$PREFIX" cache get via-socket
expect 0 "$REDKIT" --config "options.prefix=$PREFIX" cache get via-socket --url "$URL"
ok "--url unix://..., REDKIT_URL, and global options after the command"

# connection.* keys in --config win over REDKIT_URL (which points nowhere here).
expect 0 env REDKIT_URL=redis://127.0.0.1:1 "$REDKIT" \
    --config "connection.host=$REDKIT_TEST_HOST;connection.port=$REDKIT_TEST_PORT;options.prefix=$PREFIX" \
    cache get via-socket
ok "--config connection.host/port"

expect 78 rk --url "foo://nowhere" cache get k
contains "$err" "INVALID_ARGUMENT (BadRequest)"
contains "$err" "unknown scheme 'foo'"
expect 78 "$REDKIT" --url "redis://127.0.0.1:99999" cache get k
expect 78 "$REDKIT" --config "not a pair" cache get k
expect 64 "$REDKIT" --url "" cache get k
ok "a bad URL or configuration exits 78"

start_server
down=$SERVER_PORT
stop_server
expect 69 "$REDKIT" --url "redis://127.0.0.1:$down" cache get k
contains "$err" "CONNECTION_FAILED (NoResponse)"
contains "$err" "cause: Connection refused"
expect 69 "$REDKIT" --url "redis://127.0.0.1:$down" lock try k
expect 69 "$REDKIT" --url "redis://127.0.0.1:$down" lock run k -- true
expect 69 "$REDKIT" --url "redis://127.0.0.1:$down" memo run k -- true
ok "a server that is down exits 69 with the cause"

start_server --requirepass 's3cret pass'
auth="redis://127.0.0.1:$SERVER_PORT"
expect 77 "$REDKIT" --url "redis://:wrong@127.0.0.1:$SERVER_PORT" cache get k
contains "$err" "UNAUTHORIZED (Unauthorized)"
[[ $err != *wrong* ]] || fail "the password leaked into the message: $err"
expect 77 "$REDKIT" --url "$auth" cache get k
printf 's3cret pass\n' >"$TMP/pw"
expect 0 "$REDKIT" --url "$auth" --password-file "$TMP/pw" cache set k v
expect 0 "$REDKIT" --url "$auth" --password-file "$TMP/pw" cache get k
[ "$out" = v ] || fail "get with --password-file"
expect 0 "$REDKIT" --config "connection.host=127.0.0.1;connection.port=$SERVER_PORT;credential.password=s3cret pass" \
    cache get k
expect 0 "$REDKIT" --url "redis://:s3cret%20pass@127.0.0.1:$SERVER_PORT" cache get k
expect 66 "$REDKIT" --url "$auth" --password-file "$TMP/no-such-file" cache get k
ok "wrong or missing password exits 77; --password-file, credential.password, URL password"

# An ACL user without the rights to GET: NOPERM is a permission problem too.
redis-cli -p "$SERVER_PORT" -a 's3cret pass' --no-auth-warning \
    acl setuser reader on '>r' '~*' '+ping' '+auth' >/dev/null
expect 77 "$REDKIT" --url "redis://reader:r@127.0.0.1:$SERVER_PORT" cache get k
contains "$err" "NOPERM"
ok "an ACL NOPERM exits 77"

# Secrets: the password file is read one bounded line at a time; '-' is stdin.
# A 1 GB address-space limit makes reading all of /dev/zero fail at once; AddressSanitizer's
# shadow memory alone needs more address space than that, so a sanitized build is held to the
# same bound by its memory report instead (the run must stay far below 1 GB resident).
start=$SECONDS
if grep -q __asan_init "$REDKIT"; then
    expect 66 /usr/bin/time -f "%M" -o "$TMP/rss" "$REDKIT" --url "$auth" \
        --password-file /dev/zero cache get k
    rss=$(tail -n 1 "$TMP/rss") # after time's own "exited with non-zero status" line
    [ "$rss" -lt 1000000 ] || fail "/dev/zero as a password file used $rss KiB"
else
    expect 66 bash -c 'ulimit -v 1000000; exec "$@"' _ "$REDKIT" --url "$auth" \
        --password-file /dev/zero cache get k
fi
contains "$err" "/dev/zero: the first line is longer than 4096 bytes"
[ $((SECONDS - start)) -lt 20 ] || fail "/dev/zero as a password file should fail fast"
head -c 5000 /dev/urandom | base64 -w0 >"$TMP/long-pw"
expect 66 "$REDKIT" --url "$auth" --password-file "$TMP/long-pw" cache get k
contains "$err" "long-pw: the first line is longer than 4096 bytes"
expect 0 bash -c 'printf "s3cret pass\n" | "$@"' _ "$REDKIT" --url "$auth" --password-file - cache get k
[ "$out" = v ] || fail "--password-file - should read stdin"
expect 0 bash -c 'printf "s3cret pass\nfrom-stdin" | "$@"' _ "$REDKIT" --url "$auth" --password-file - \
    cache set k2
expect 0 env REDKIT_PASSWORD='s3cret pass' "$REDKIT" --url "$auth" cache get k2
[ "$out" = from-stdin ] || fail "stdin after the password line should be the value, got '$out'"
ok "--password-file reads one bounded line (/dev/zero: exit 66), '-' is stdin; REDKIT_PASSWORD"

# $cmdline: what /proc shows of a 'lock run KEY' started with these global options, read while
# its command runs.
running_cmdline() {
    local key=$1 pid
    shift
    "$REDKIT" "$@" lock run "$key" -- bash -c 'touch "$0/$1-started"; exec sleep 60' "$TMP" "$key" \
        2>/dev/null &
    pid=$!
    _pids+=("$pid")
    wait_for 30 test -e "$TMP/$key-started"
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    kill -TERM "$pid"
    wait "$pid" || true
}

expect 0 "$REDKIT" --url "redis://:s3cret%20pass@127.0.0.1:$SERVER_PORT" cache get k
contains "$err" "warning: a password in --url can be seen by other users"
[[ $err != *s3cret* ]] || fail "the warning should not show the password: $err"
running_cmdline argv-k --url "redis://:s3cret%20pass@127.0.0.1:$SERVER_PORT"
contains "$cmdline" "lock run argv-k"
[[ $cmdline != *s3cret* ]] || fail "the --url password is visible in /proc/PID/cmdline: $cmdline"
ok "a password in --url is warned about and scrubbed from /proc/PID/cmdline"

expect 0 "$REDKIT" --url "$auth" --config "credential.password=s3cret pass" cache get k
contains "$err" "warning: a password in --config can be seen by other users"
[[ $err != *s3cret* ]] || fail "the warning should not show the password: $err"
expect 0 "$REDKIT" --config "connection.uri=redis://:s3cret%20pass@127.0.0.1:$SERVER_PORT" cache get k
contains "$err" "warning: a password in --config can be seen by other users"
expect 0 "$REDKIT" --url "$auth" --config "options.timeout=5000" --password-file - cache get k \
    <<<"s3cret pass"
[[ $err != *warning* ]] || fail "--config without a password should not warn: $err"
running_cmdline cfg-k --url "$auth" --config "options.timeout=5000;credential.password=s3cret pass"
contains "$cmdline" "options.timeout=5000;credential.password=xxxx"
[[ $cmdline != *s3cret* ]] || fail "the --config password is visible in /proc/PID/cmdline: $cmdline"
ok "a password in --config (credential.password, a URI's) is warned about and scrubbed from /proc/PID/cmdline"

# CMD gets the lock, not the credentials.
for var in REDKIT_URL REDIS_URL; do
    expect 0 env "$var=$auth" REDKIT_PASSWORD='s3cret pass' "$REDKIT" lock run env-k -- sh -c env
    contains "$out" "PATH="
    [[ $out != *REDKIT_URL=* && $out != *REDIS_URL=* && $out != *REDKIT_PASSWORD=* ]] ||
        fail "lock run passed a secret to CMD: $out"
    expect 0 env "$var=$auth" REDKIT_PASSWORD='s3cret pass' "$REDKIT" memo run "env-$var" -- sh -c env
    [[ $out != *REDKIT_URL=* && $out != *REDIS_URL=* && $out != *REDKIT_PASSWORD=* ]] ||
        fail "memo run passed a secret to CMD: $out"
done
ok "REDIS_URL is honoured; lock run and memo run keep REDKIT_URL, REDIS_URL, REDKIT_PASSWORD from CMD"
