/* The semaphore section: 8 processes on a limit of 3, each acquiring, holding 1 ms, releasing
 * and thinking 1 ms, against redis-semaphore's Semaphore doing the same in the same run. A guard
 * counter (INCR after the grant, DECR before the release) checks that no more than 3 hold at
 * once. */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define SEM_KEY "bench:rk-sem"
#define GUARD_KEY "bench:rk-sem-guard"
#define WORKERS 8
#define LIMIT 3
#define TTL_MS 10000
#define WAIT_MS 10000
#define MAX_WAITS 40000
#define START_DELAY_MS 1500 /* time for every worker to open and warm up before the window */

typedef struct sem_worker {
    long count, violations, failures, nwaits;
    double waits_ms[MAX_WAITS];
} sem_worker;

typedef struct sem_shared {
    uint64_t start, end; /* the timed window, set before the fork */
    sem_worker w[WORKERS];
} sem_shared;

typedef struct sem_run {
    const bench_target *target;
    sem_shared *sh;
} sem_run;

static rk_semaphore *open_sem(const bench_target *t)
{
    rk_semaphore *s;
    rk_config *cfg = bench_config(t, NULL);
    if (rk_semaphore_new(&s) != RK_OK || rk_semaphore_configure(s, cfg) != RK_OK ||
        rk_semaphore_open(s, NULL) != RK_OK)
        die("semaphore open failed: %s", rk_last_error()->message);
    rk_config_free(cfg);
    return s;
}

static void once(sem_worker *me, rk_semaphore *s, redisContext *g, uint64_t end)
{
    uint64_t asked = now_ns();
    if (rk_semaphore_acquire(s, NULL, SEM_KEY, LIMIT, TTL_MS, WAIT_MS) != RK_OK) {
        me->failures++;
        return;
    }
    uint64_t granted = now_ns();
    if (granted < end) {
        me->count++;
        if (me->nwaits < MAX_WAITS)
            me->waits_ms[me->nwaits++] = (double)(granted - asked) / 1e6;
    }
    if (bench_counter(g, "INCR", GUARD_KEY) > LIMIT)
        me->violations++;
    sleep_ns(1000000u);
    bench_counter(g, "DECR", GUARD_KEY);
    if (rk_semaphore_release(s, NULL, SEM_KEY) != RK_OK)
        me->failures++;
    sleep_ns(1000000u);
}

static int worker_main(void *arg, int index)
{
    sem_run *run = arg;
    sem_worker *me = &run->sh->w[index];
    rk_semaphore *s = open_sem(run->target);
    redisContext *g = bench_hiredis(run->target);
    if (!g)
        return 1;
    /* Connect the subscriber before the window: one short wait on a key the parent fills. */
    int rc = rk_semaphore_acquire(s, NULL, "bench:rk-sem-warm", 1, TTL_MS, 20);
    if (rc == RK_OK)
        rk_semaphore_release(s, NULL, "bench:rk-sem-warm");
    sleep_until_ns(run->sh->start);
    while (now_ns() < run->sh->end)
        once(me, s, g, run->sh->end);
    redisFree(g);
    rk_semaphore_free(s);
    return 0;
}

static void command(redisContext *g, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(g, argc, argv, NULL);
    if (!r)
        die("%s failed: %s", argv[0], g->errstr);
    freeReplyObject(r);
}

static void run_redkit(const bench_opts *o, peer_result *out)
{
    sem_run run = {&o->plain, shared_alloc(sizeof(sem_shared))};
    redisContext *g = bench_hiredis(&o->plain);
    if (!g)
        die("no connection for the guard counter");
    const char *del[] = {"DEL", GUARD_KEY, "redkit:sem:{" SEM_KEY "}",
                         "redkit:sem:{bench:rk-sem-warm}"};
    const char *fill[] = {"ZADD", "redkit:sem:{bench:rk-sem-warm}", "1e15", "the-bench"};
    command(g, 4, del);
    command(g, 4, fill); /* a permit that never ends while the bench runs: warm-ups wait */
    run.sh->start = now_ns() + (uint64_t)START_DELAY_MS * 1000000u;
    run.sh->end = run.sh->start + (uint64_t)(o->lock_secs * 1e9);
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pids[i] = spawn(worker_main, &run, i);
    for (int i = 0; i < WORKERS; i++)
        if (reap(pids[i]) != 0)
            die("a semaphore worker failed");
    command(g, 2, (const char *[]){"DEL", "redkit:sem:{bench:rk-sem-warm}"});
    redisFree(g);
    size_t total = 0, k = 0;
    memset(out, 0, sizeof *out);
    out->min_count = -1;
    for (int i = 0; i < WORKERS; i++) {
        const sem_worker *w = &run.sh->w[i];
        total += (size_t)w->nwaits;
        out->violations += w->violations + w->failures;
        if (out->min_count < 0 || w->count < out->min_count)
            out->min_count = w->count;
        if (w->count > out->max_count)
            out->max_count = w->count;
        out->acq_per_s += (double)w->count / o->lock_secs;
    }
    double *all = malloc(total * sizeof *all + 1);
    if (!all)
        die("out of memory");
    for (int i = 0; i < WORKERS; i++)
        for (long j = 0; j < run.sh->w[i].nwaits; j++)
            all[k++] = run.sh->w[i].waits_ms[j];
    sort_doubles(all, k);
    out->p50_ms = percentile(all, k, 0.5);
    out->p99_ms = percentile(all, k, 0.99);
    out->max_ms = k ? all[k - 1] : 0;
    out->ok = true;
    free(all);
    munmap(run.sh, sizeof(sem_shared));
}

static void report(const char *who, const peer_result *r)
{
    char name[96], text[200];
    snprintf(name, sizeof name, "%s, %d processes, limit %d", who, WORKERS, LIMIT);
    if (!r->ok) {
        report_na("semaphore", name, r->why);
        return;
    }
    snprintf(text, sizeof text,
             "%.0f acq/s, wait p50 %.2f ms, p99 %.2f ms, max %.1f ms, per-process %ld..%ld, "
             "violations %ld",
             r->acq_per_s, r->p50_ms, r->p99_ms, r->max_ms, r->min_count, r->max_count,
             r->violations);
    const char *keys[] = {"acq_per_s", "p50_ms", "p99_ms", "max_ms", "violations"};
    double v[] = {r->acq_per_s, r->p50_ms, r->p99_ms, r->max_ms, (double)r->violations};
    report_metrics("semaphore", name, keys, v, 5, text);
}

void bench_semaphore(const bench_opts *o)
{
    peer_result rk, peer;
    progress("semaphore: redkit, %d processes, limit %d", WORKERS, LIMIT);
    run_redkit(o, &rk);
    progress("semaphore: %s", peer_name(PEER_SEMAPHORE_N));
    peer_run(o, PEER_SEMAPHORE_N, WORKERS, o->lock_secs, 1, 1, &peer);
    report("redkit rk_semaphore", &rk);
    report(peer_name(PEER_SEMAPHORE_N), &peer);
    report_goal("semaphore, 8 processes, limit 3: violations == 0", (double)rk.violations, "==", 0,
                NULL);
    double ratio = peer.ok ? rk.acq_per_s / peer.acq_per_s : NAN;
    double p99 = peer.ok ? rk.p99_ms / peer.p99_ms : NAN;
    report_goal("semaphore, 8 processes, limit 3: acq/s >= 1.5 x redis-semaphore", ratio, ">=", 1.5,
                peer.ok ? NULL : peer.why);
    report_goal("semaphore, 8 processes, limit 3: p99 wait / redis-semaphore's < 1", p99,
                "<=", 0.99, peer.ok ? NULL : peer.why);
}
