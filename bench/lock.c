/* Lock sections: uncontended try_acquire/release pairs, and the contended scenario (N processes
 * acquire, hold 1 ms, release, think 1 ms) against its serial ceiling and the peer libraries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define LOCK_KEY "bench:rk-lock"
#define GUARD_KEY "bench:rk-guard"
#define LOCK_TTL_MS 10000
#define LOCK_WAIT_MS 10000
#define MAX_WAITS 40000
#define MAX_WORKERS 8

static rk_lock *open_lock(const bench_target *t)
{
    rk_config *cfg = bench_config(t, NULL);
    rk_lock *l;
    if (rk_lock_new(&l) != RK_OK || rk_lock_configure(l, cfg) != RK_OK ||
        rk_lock_open(l, NULL) != RK_OK)
        die("cannot open a lock on %s: %s", t->url, rk_last_error()->message);
    rk_config_free(cfg);
    return l;
}

void bench_lock(const bench_opts *o)
{
    rk_lock *l = open_lock(&o->plain);
    double r[15];
    int rounds = o->rounds < 15 ? o->rounds : 15;
    progress("lock: uncontended try_acquire + release, %d rounds of %.1f s", rounds, o->secs);
    for (int k = 0; k < rounds; k++) {
        uint64_t start = now_ns(), end = start + (uint64_t)(o->secs * 1e9), t;
        long n = 0;
        do {
            bool got;
            if (rk_lock_try_acquire(l, NULL, LOCK_KEY, LOCK_TTL_MS, &got) != RK_OK || !got ||
                rk_lock_release(l, NULL, LOCK_KEY) != RK_OK)
                die("uncontended lock failed: %s", got ? rk_last_error()->message : "taken");
            n++;
        } while ((t = now_ns()) < end);
        r[k] = (double)n / ((double)(t - start) / 1e9);
    }
    report_value("lock", "try_acquire + release, uncontended", median(r, (size_t)rounds),
                 "pairs/s");
    rk_lock_free(l);
}

/* ---- contended: processes, results in shared memory ---- */

typedef struct contender {
    long count, violations, failures, nwaits;
    double waits_ms[MAX_WAITS];
} contender;

typedef struct contend_run {
    const bench_target *target;
    int hold_ms, think_ms;
    uint64_t start_at, end_at;
    contender *c; /* shared mapping, one per process */
} contend_run;

typedef struct lock_stats {
    double acq_per_s, p50_ms, p99_ms, max_ms, min_max;
    long min_count, max_count, violations, failures;
} lock_stats;

static long guard(redisContext *g, const char *verb)
{
    const char *argv[] = {verb, GUARD_KEY};
    redisReply *r = redisCommandArgv(g, 2, argv, NULL);
    long v = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1000;
    if (r)
        freeReplyObject(r);
    return v;
}

static int contender_main(void *arg, int index)
{
    contend_run *run = arg;
    contender *me = &run->c[index];
    rk_lock *l = open_lock(run->target);
    redisContext *g = bench_hiredis(run->target);
    if (!g)
        return 1;
    sleep_until_ns(run->start_at);
    while (now_ns() < run->end_at) {
        uint64_t t0 = now_ns();
        if (rk_lock_acquire(l, NULL, LOCK_KEY, LOCK_TTL_MS, LOCK_WAIT_MS) != RK_OK) {
            me->failures++;
            continue;
        }
        if (me->nwaits < MAX_WAITS)
            me->waits_ms[me->nwaits++] = (double)(now_ns() - t0) / 1e6;
        if (guard(g, "INCR") != 1)
            me->violations++;
        if (run->hold_ms)
            sleep_ns((uint64_t)run->hold_ms * 1000000u);
        guard(g, "DECR");
        if (rk_lock_release(l, NULL, LOCK_KEY) != RK_OK)
            me->failures++;
        me->count++;
        if (run->think_ms)
            sleep_ns((uint64_t)run->think_ms * 1000000u);
    }
    redisFree(g);
    rk_lock_free(l);
    return 0;
}

static void contend(const bench_opts *o, int workers, int think_ms, lock_stats *st)
{
    size_t size = sizeof(contender) * (size_t)workers;
    contend_run run = {&o->plain, 1, think_ms, 0, 0, shared_alloc(size)};
    redisContext *g = bench_hiredis(&o->plain);
    if (!g)
        die("no connection for the guard counter");
    const char *del[] = {"DEL", GUARD_KEY, LOCK_KEY};
    freeReplyObject(redisCommandArgv(g, 3, del, NULL));
    redisFree(g);
    /* Every process opens its lock first, then all start together. */
    run.start_at = now_ns() + 300000000u;
    run.end_at = run.start_at + (uint64_t)(o->lock_secs * 1e9);
    pid_t pids[MAX_WORKERS];
    for (int i = 0; i < workers; i++)
        pids[i] = spawn(contender_main, &run, i);
    for (int i = 0; i < workers; i++)
        if (reap(pids[i]) != 0)
            die("a lock contender failed");
    size_t total = 0;
    memset(st, 0, sizeof *st);
    st->min_count = -1;
    for (int i = 0; i < workers; i++) {
        contender *c = &run.c[i];
        total += (size_t)c->nwaits;
        st->violations += c->violations;
        st->failures += c->failures;
        if (st->min_count < 0 || c->count < st->min_count)
            st->min_count = c->count;
        if (c->count > st->max_count)
            st->max_count = c->count;
        st->acq_per_s += (double)c->count / o->lock_secs;
    }
    double *all = malloc(total * sizeof *all + 1);
    if (!all)
        die("out of memory");
    size_t k = 0;
    for (int i = 0; i < workers; i++)
        for (long j = 0; j < run.c[i].nwaits; j++)
            all[k++] = run.c[i].waits_ms[j];
    sort_doubles(all, k);
    st->p50_ms = percentile(all, k, 0.5);
    st->p99_ms = percentile(all, k, 0.99);
    st->max_ms = k ? all[k - 1] : 0;
    st->min_max = st->max_count ? (double)st->min_count / (double)st->max_count : 0;
    free(all);
    munmap(run.c, size);
}

static void report_stats(const char *who, int workers, const lock_stats *s)
{
    static const char *keys[] = {"acq_per_s",   "wait_p50_ms", "wait_p99_ms",
                                 "wait_max_ms", "min_count",   "max_count",
                                 "min_max",     "violations",  "failures"};
    double v[] = {s->acq_per_s,
                  s->p50_ms,
                  s->p99_ms,
                  s->max_ms,
                  (double)s->min_count,
                  (double)s->max_count,
                  s->min_max,
                  (double)s->violations,
                  (double)s->failures};
    char name[96], text[200];
    snprintf(name, sizeof name, "%s, %d process%s", who, workers, workers > 1 ? "es" : "");
    snprintf(text, sizeof text,
             "%.0f acq/s; wait p50 %.2f / p99 %.2f / max %.1f ms; per process %ld..%ld (%.2f); "
             "%ld violations%s",
             s->acq_per_s, s->p50_ms, s->p99_ms, s->max_ms, s->min_count, s->max_count, s->min_max,
             s->violations, s->failures ? ", some acquisitions failed" : "");
    report_metrics("contended", name, keys, v, sizeof v / sizeof *v, text);
}

static void report_peer(peer_kind k, int workers, const peer_result *p)
{
    char name[96];
    snprintf(name, sizeof name, "%s, %d processes", peer_name(k), workers);
    if (!p->ok) {
        report_na("contended", name, p->why);
        return;
    }
    lock_stats s = {p->acq_per_s,
                    p->p50_ms,
                    p->p99_ms,
                    p->max_ms,
                    p->max_count ? (double)p->min_count / (double)p->max_count : 0,
                    p->min_count,
                    p->max_count,
                    p->violations,
                    0};
    report_stats(peer_name(k), workers, &s);
}

void bench_contended(const bench_opts *o)
{
    static const int counts[] = {2, 4, 8};
    lock_stats serial, at[3];
    peer_result peers[3][PEER_COUNT];
    progress("contended: serial ceiling (1 process, hold 1 ms, no think), %.1f s", o->lock_secs);
    contend(o, 1, 0, &serial);
    report_stats("redkit serial ceiling (no think)", 1, &serial);
    for (int i = 0; i < 3; i++) {
        progress("contended: %d processes, hold 1 ms, think 1 ms, %.1f s each for redkit and "
                 "the peers",
                 counts[i], o->lock_secs);
        contend(o, counts[i], 1, &at[i]);
        report_stats("redkit", counts[i], &at[i]);
        for (int k = 0; k < PEER_COUNT; k++) {
            peer_run(o, (peer_kind)k, counts[i], o->lock_secs, 1, 1, &peers[i][k]);
            report_peer((peer_kind)k, counts[i], &peers[i][k]);
        }
    }
    const lock_stats *r8 = &at[2];
    double best_acq = NAN, best_p99 = NAN;
    const char *best_acq_name = "", *best_p99_name = "";
    for (int k = 0; k < PEER_COUNT; k++) {
        const peer_result *p = &peers[2][k];
        if (!p->ok)
            continue;
        if (isnan(best_acq) || p->acq_per_s > best_acq)
            best_acq = p->acq_per_s, best_acq_name = peer_name((peer_kind)k);
        if (isnan(best_p99) || p->p99_ms < best_p99)
            best_p99 = p->p99_ms, best_p99_name = peer_name((peer_kind)k);
    }
    char note[160];
    report_goal("8 processes: acq/s >= 0.85 x serial ceiling", r8->acq_per_s / serial.acq_per_s,
                ">=", 0.85, NULL);
    snprintf(note, sizeof note, "best peer: %s", isnan(best_acq) ? "none ran" : best_acq_name);
    report_goal("8 processes: acq/s >= 1.5 x best peer", r8->acq_per_s / best_acq, ">=", 1.5, note);
    snprintf(note, sizeof note, "best peer p99: %s %.1f ms",
             isnan(best_p99) ? "none ran" : best_p99_name, best_p99);
    report_goal("8 processes: p99 wait <= best peer p99 / 10", r8->p99_ms, "<=", best_p99 / 10,
                note);
    report_goal("8 processes: per-process min/max count >= 0.5", r8->min_max, ">=", 0.5, NULL);
    report_goal("8 processes: mutual-exclusion violations == 0", (double)r8->violations, "==", 0,
                NULL);
}
