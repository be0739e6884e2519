/* The quorum section: uncontended try_acquire + release with options.lock_mode=quorum over 5
 * independent redis-servers (the bench's own and 4 more) against the same pair on that one server,
 * alternated round by round in the same run. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define NODES 5
#define KEY "bench:rk-quorum"
#define TTL_MS 10000

static rk_lock *open_lock(rk_config *cfg, const char *what)
{
    rk_lock *l;
    if (rk_lock_new(&l) != RK_OK || rk_lock_configure(l, cfg) != RK_OK ||
        rk_lock_open(l, NULL) != RK_OK)
        die("cannot open the %s lock: %s", what, rk_last_error()->message);
    rk_config_free(cfg);
    return l;
}

static bool pair(void *ctx)
{
    rk_lock *l = ctx;
    bool got = false;
    return rk_lock_try_acquire(l, NULL, KEY, TTL_MS, &got) == RK_OK && got &&
           rk_lock_release(l, NULL, KEY) == RK_OK;
}

void bench_quorum(const bench_opts *o)
{
    const bench_target *t = &o->plain;
    if (t->path[0] || t->password[0] || t->tls || !o->own_server) {
        report_na("quorum", "try_acquire + release", "needs the bench's own plain server");
        return;
    }
    bench_target extra[NODES - 1];
    pid_t pids[NODES - 1];
    char uri[512];
    int used = snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", t->port);
    progress("quorum: starting %d more redis-servers", NODES - 1);
    for (int i = 0; i < NODES - 1; i++) {
        pids[i] = server_spawn(o, i + 1, &extra[i]);
        used += snprintf(uri + used, sizeof uri - (size_t)used, ",127.0.0.1:%d", extra[i].port);
    }
    rk_config *qc;
    if (rk_config_from_tuples(&qc, "connection.uri", uri, "options.lock_mode", "quorum", NULL) !=
        RK_OK)
        die("quorum configuration: %s", rk_last_error()->message);
    rk_lock *quorum = open_lock(qc, "quorum"), *single = open_lock(bench_config(t, NULL), "single");
    progress("quorum: %d rounds of %.1f s each side", o->rounds, o->secs);
    double ratio = compare(o, "quorum", "try_acquire + release, uncontended", pair, quorum,
                           "quorum of 5", pair, single, "1 server", 1, "pairs/s");
    report_goal("quorum of 5: uncontended acquire+release >= 0.8 x one server", ratio, ">=", 0.8,
                "5 redis-servers and the client share the machine's cores");
    rk_lock_free(quorum);
    rk_lock_free(single);
    for (int i = 0; i < NODES - 1; i++) {
        kill(pids[i], SIGKILL);
        reap(pids[i]);
    }
}
