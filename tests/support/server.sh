# Shell helpers shared by the test fixtures (redis-fixture.sh, tls-fixture.sh) and the CLI tests
# (cli/lib.sh): start a throw-away redis-server on a free loopback port, and stop one. Source it.

# rkt_spawn_redis ANSWERS ARGS...: start `redis-server ARGS...` on a random loopback port, every
# argument "@PORT@" replaced by the port; trying another port when it is taken. ANSWERS names a
# function called with the port that succeeds once the server answers. Sets SPAWNED_PORT and
# SPAWNED_PID; returns 1 after 20 ports.
rkt_spawn_redis() {
    local answers=$1 port pid
    shift
    for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        redis-server "${@//@PORT@/$port}" >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 500); do
            if "$answers" "$port"; then
                SPAWNED_PORT=$port SPAWNED_PID=$pid
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break # port taken: try another
            sleep 0.01
        done
        kill "$pid" 2>/dev/null || true
    done
    return 1
}

# rkt_answers_tcp PORT: the server on PORT answers (NOAUTH counts: it is up, it wants AUTH).
rkt_answers_tcp() { redis-cli -p "$1" ping 2>&1 | grep -q -e PONG -e NOAUTH; }

# rkt_gone PID: the process has exited. A zombie has: a server started by a script that has
# since exited waits for init to reap it, which can take seconds.
rkt_gone() {
    local state
    # /proc/PID/stat is "PID (COMM) STATE ...", and a redis-server's COMM has no blank.
    read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null || return 0
    [ "$state" = Z ]
}

# rkt_stop_pid PID: SIGTERM, up to 5 s for it to go, then SIGKILL.
rkt_stop_pid() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 500); do
        rkt_gone "$1" && break
        sleep 0.01
    done
    kill -9 "$1" 2>/dev/null || true
}
