#!/usr/bin/env bash
# The TLS ctest fixture: a throw-away certificate authority, server and client certificates made
# with the openssl command, and a private redis-server that speaks only TLS on a free loopback
# port (plain TCP off), plus a plain Unix socket the tests use for administration (hiredis 0.14
# has no TLS). Everything lives in a temp dir removed by `stop`.
#   tls-fixture.sh start STATE_DIR   # writes STATE_DIR/env (REDKIT_TLS_PORT, REDKIT_TLS_CERTS, ...)
#   tls-fixture.sh stop STATE_DIR
#
# Files in $REDKIT_TLS_CERTS:
#   ca.crt                the CA that signed everything below
#   server.crt/.key       CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1
#   client.crt/.key       a client certificate signed by the CA (mutual TLS)
#   other-ca.crt          an unrelated CA, for "unknown CA" tests
#   other-client.crt/.key a client certificate signed by the unrelated CA
#   cadir/                ca.crt in a hashed directory (options.tls_ca_dir)
set -euo pipefail

cmd=${1:?start|stop}
state=${2:?state dir}
# shellcheck source=server.sh
. "$(dirname "$0")/server.sh"

# A key and a certificate signed by CA ($3, $4; self-signed when empty) with extensions $5.
make_cert() {
    local out=$1 subject=$2 ca_crt=$3 ca_key=$4 ext=$5
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out.key" 2>/dev/null
    if [ -z "$ca_crt" ]; then
        openssl req -new -x509 -days 2 -key "$out.key" -subj "$subject" -out "$out.crt" \
            -addext "$ext" 2>/dev/null
    else
        openssl req -new -key "$out.key" -subj "$subject" -out "$out.csr" 2>/dev/null
        openssl x509 -req -days 2 -in "$out.csr" -CA "$ca_crt" -CAkey "$ca_key" \
            -CAcreateserial -out "$out.crt" -extfile <(printf '%s\n' "$ext") 2>/dev/null
        rm -f "$out.csr"
    fi
    chmod 600 "$out.key"
}

make_certs() {
    local d=$1
    make_cert "$d/ca" "/CN=redkit test CA" "" "" "basicConstraints=critical,CA:TRUE"
    make_cert "$d/other-ca" "/CN=redkit unrelated CA" "" "" "basicConstraints=critical,CA:TRUE"
    make_cert "$d/server" "/CN=localhost" "$d/ca.crt" "$d/ca.key" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
    make_cert "$d/client" "/CN=redkit-client" "$d/ca.crt" "$d/ca.key" "extendedKeyUsage=clientAuth"
    make_cert "$d/other-client" "/CN=redkit-stranger" "$d/other-ca.crt" "$d/other-ca.key" \
        "extendedKeyUsage=clientAuth"
    mkdir -p "$d/cadir"
    cp "$d/ca.crt" "$d/cadir/"
    openssl rehash "$d/cadir" >/dev/null 2>&1
}

start() {
    command -v redis-server >/dev/null || { echo "redis-server not found: run scripts/setup.sh" >&2; exit 1; }
    command -v openssl >/dev/null || { echo "openssl not found: run scripts/setup.sh" >&2; exit 1; }
    # A repeated start (ctest --repeat) replaces the server it started before, never orphans it.
    if [ -f "$state/env" ]; then (stop); fi
    mkdir -p "$state"
    local dir
    dir=$(mktemp -d /tmp/redkit-tls.XXXXXX)
    mkdir "$dir/certs"
    make_certs "$dir/certs"
    # The Unix socket and the TLS port are set up together, before the first command.
    answers() { redis-cli -s "$dir/redis.sock" ping 2>/dev/null | grep -q PONG; }
    if rkt_spawn_redis answers --port 0 --tls-port @PORT@ --bind 127.0.0.1 \
        --tls-cert-file "$dir/certs/server.crt" --tls-key-file "$dir/certs/server.key" \
        --tls-ca-cert-file "$dir/certs/ca.crt" --tls-auth-clients optional \
        --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' --appendonly no \
        --dir "$dir" --daemonize no --logfile "$dir/redis.log"; then
        cat >"$state/env" <<ENV
REDKIT_TLS_HOST=127.0.0.1
REDKIT_TLS_PORT=$SPAWNED_PORT
REDKIT_TLS_SOCKET=$dir/redis.sock
REDKIT_TLS_CERTS=$dir/certs
REDKIT_TLS_DIR=$dir
REDKIT_TLS_PID=$SPAWNED_PID
ENV
        echo "TLS redis-server $SPAWNED_PID on 127.0.0.1:$SPAWNED_PORT (admin: $dir/redis.sock)"
        return 0
    fi
    echo "could not start a TLS redis-server (see $dir/redis.log)" >&2
    exit 1
}

stop() {
    [ -f "$state/env" ] || exit 0
    # shellcheck disable=SC1091
    . "$state/env"
    rkt_stop_pid "$REDKIT_TLS_PID"
    rm -rf "$REDKIT_TLS_DIR" "$state/env"
}

"$cmd"
