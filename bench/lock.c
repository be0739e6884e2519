/* Lock sections: uncontended try_acquire/release pairs, and the contended scenario (N processes
 * acquire, hold 1 ms, release, think 1 ms) against its serial ceiling and the peer libraries. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "plot.h"

#define LOCK_KEY "bench:rk-lock"
#define GUARD_KEY "bench:rk-guard"
#define LOCK_TTL_MS 10000
#define LOCK_WAIT_MS 10000
#define MAX_WAITS 40000

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

/* ---- contended: processes released together from one barrier, results in shared memory ---- */

#define COUNTS 4
#define MAX_WORKERS 64
#define WARM_KEY "bench:rk-warm"
#define WARM_WAIT_MS 20
#define READY_TIMEOUT_MS 60000

static const int counts[COUNTS] = {2, 8, 32, 64};

typedef struct contender {
    long count;   /* acquisitions granted inside the timed window */
    long drained; /* granted after it, while the queue empties: they count only toward CPU */
    long violations, failures, nwaits;
    uint64_t first_grant, last_grant; /* inside the window: the grant-to-grant cycle */
    double cpu_s; /* user + sys of the whole process (every thread), barrier to last cycle */
    double waits_ms[MAX_WAITS];
} contender;

typedef struct contend_shared {
    _Atomic uint64_t end_at; /* written by the parent before it opens the barrier */
    contender c[];
} contend_shared;

/* Copied into every worker by fork(); only `sh` is shared. */
typedef struct contend_run {
    const bench_target *target;
    int hold_ms, think_ms;
    int ready[2]; /* each worker writes one byte once its handle is open and warm */
    int go[2];    /* and blocks reading this one; the parent's close releases all at once */
    contend_shared *sh;
} contend_run;

typedef struct lock_stats {
    double acq_per_s, p50_ms, p99_ms, max_ms, min_max;
    long min_count, max_count, violations, failures;
    double cycle_ms;           /* mean grant-to-grant time inside the window */
    double client_cpu_ms;      /* per acquisition, timed window (and the queue draining after) */
    double client_cpu_life_ms; /* per acquisition, RUSAGE_CHILDREN: start-up and exit included */
    double server_cpu_ms;      /* per acquisition, INFO cpu over the timed window */
    double window_s;           /* the timed window; for a peer, its whole run (not barriered) */
} lock_stats;

static void command(redisContext *g, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(g, argc, argv, NULL);
    if (!r)
        die("%s failed: %s", argv[0], g->errstr);
    freeReplyObject(r);
}

static double rusage_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* used_cpu_sys + used_cpu_user of the server (INFO cpu), or NAN. On an external server (--url)
 * this includes whatever its other clients do. */
static double server_cpu_s(redisContext *g)
{
    const char *argv[] = {"INFO", "cpu"};
    redisReply *r = redisCommandArgv(g, 2, argv, NULL);
    const char *sys = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "used_cpu_sys:") : NULL;
    const char *user = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "used_cpu_user:") : NULL;
    double s, u, v = NAN;
    if (sys && user && sscanf(sys, "used_cpu_sys:%lf", &s) == 1 &&
        sscanf(user, "used_cpu_user:%lf", &u) == 1)
        v = s + u;
    if (r)
        freeReplyObject(r);
    return v;
}

/* The handle's subscriber connects on its first wait: wait once, briefly, on a key the parent
 * holds, so that connecting is start-up and stays out of the timed window. */
static void warm_up(rk_lock *l)
{
    int rc = rk_lock_acquire(l, NULL, WARM_KEY, LOCK_TTL_MS, WARM_WAIT_MS);
    if (rc == RK_OK)
        rc = rk_lock_release(l, NULL, WARM_KEY);
    if (rc != RK_OK && rc != RK_ETIMEDOUT)
        die("lock warm-up failed: %s", rk_last_error()->message);
}

/* Tell the parent we are ready, then block until it opens the barrier; returns the window's end. */
static uint64_t wait_for_start(contend_run *run)
{
    char c = 'r';
    if (write(run->ready[1], &c, 1) != 1)
        die("a contender cannot report ready: %s", strerror(errno));
    /* Closed now, so that the parent sees EOF rather than hanging if another worker dies. */
    close(run->ready[1]);
    while (read(run->go[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(run->go[0]);
    return atomic_load(&run->sh->end_at);
}

static void count_grant(contender *me, uint64_t asked, uint64_t granted)
{
    if (!me->count)
        me->first_grant = granted;
    me->last_grant = granted;
    me->count++;
    if (me->nwaits < MAX_WAITS)
        me->waits_ms[me->nwaits++] = (double)(granted - asked) / 1e6;
}

/* Acquire, INCR the guard (anything but 1 is a violation), hold, DECR, release, think. */
static void contend_once(const contend_run *run, contender *me, rk_lock *l, redisContext *g,
                         uint64_t end)
{
    uint64_t asked = now_ns();
    if (rk_lock_acquire(l, NULL, LOCK_KEY, LOCK_TTL_MS, LOCK_WAIT_MS) != RK_OK) {
        me->failures++;
        return;
    }
    uint64_t granted = now_ns();
    if (granted < end)
        count_grant(me, asked, granted);
    else
        me->drained++; /* queued before the end: the rate counts the window only */
    if (bench_counter(g, "INCR", GUARD_KEY) != 1)
        me->violations++;
    if (run->hold_ms)
        sleep_ns((uint64_t)run->hold_ms * 1000000u);
    bench_counter(g, "DECR", GUARD_KEY);
    if (rk_lock_release(l, NULL, LOCK_KEY) != RK_OK)
        me->failures++;
    if (run->think_ms)
        sleep_ns((uint64_t)run->think_ms * 1000000u);
}

static int contender_main(void *arg, int index)
{
    contend_run *run = arg;
    contender *me = &run->sh->c[index];
    close(run->ready[0]);
    close(run->go[1]); /* the barrier opens on EOF: every copy of the write end must go */
    rk_lock *l = open_lock(run->target);
    redisContext *g = bench_hiredis(run->target);
    if (!g)
        return 1;
    warm_up(l);
    uint64_t end = wait_for_start(run);
    double cpu0 = rusage_s(RUSAGE_SELF);
    while (now_ns() < end)
        contend_once(run, me, l, g, end);
    me->cpu_s = rusage_s(RUSAGE_SELF) - cpu0;
    redisFree(g);
    rk_lock_free(l);
    return 0;
}

/* Wait for one byte per worker; EOF first means a worker died while starting. */
static void await_ready(int fd, int workers)
{
    for (int got = 0; got < workers;) {
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, READY_TIMEOUT_MS);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            die("lock contenders were not ready within %d s", READY_TIMEOUT_MS / 1000);
        char buf[MAX_WORKERS];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            die("a lock contender failed while starting");
        if (n > 0)
            got += (int)n;
    }
    close(fd);
}

static void sum_counts(const contender *c, int workers, lock_stats *st, long *cpu_acqs,
                       double *cpu_s)
{
    long total = 0;
    uint64_t first = 0, last = 0;
    st->min_count = -1;
    for (int i = 0; i < workers; i++) {
        total += c[i].count;
        *cpu_acqs += c[i].count + c[i].drained;
        *cpu_s += c[i].cpu_s;
        st->violations += c[i].violations;
        st->failures += c[i].failures;
        if (st->min_count < 0 || c[i].count < st->min_count)
            st->min_count = c[i].count;
        if (c[i].count > st->max_count)
            st->max_count = c[i].count;
        if (c[i].count && (!first || c[i].first_grant < first))
            first = c[i].first_grant;
        if (c[i].count && c[i].last_grant > last)
            last = c[i].last_grant;
    }
    st->acq_per_s = (double)total / st->window_s;
    st->min_max = st->max_count ? (double)st->min_count / (double)st->max_count : 0;
    st->cycle_ms = total > 1 ? (double)(last - first) / 1e6 / (double)(total - 1) : NAN;
}

static void wait_percentiles(const contender *c, int workers, lock_stats *st)
{
    size_t total = 0, k = 0;
    for (int i = 0; i < workers; i++)
        total += (size_t)c[i].nwaits;
    double *all = malloc(total * sizeof *all + 1);
    if (!all)
        die("out of memory");
    for (int i = 0; i < workers; i++)
        for (long j = 0; j < c[i].nwaits; j++)
            all[k++] = c[i].waits_ms[j];
    sort_doubles(all, k);
    if (workers == 8 || workers == 64) {
        char series[32];
        snprintf(series, sizeof series, "%d processes", workers);
        plot_cdf(CHART_LOCK_WAIT_CDF, series, all, k);
    }
    st->p50_ms = percentile(all, k, 0.5);
    st->p99_ms = percentile(all, k, 0.99);
    st->max_ms = k ? all[k - 1] : 0;
    free(all);
}

static void summarize(const contender *c, int workers, double server_s, double life_s,
                      lock_stats *st)
{
    long cpu_acqs = 0;
    double cpu_s = 0;
    sum_counts(c, workers, st, &cpu_acqs, &cpu_s);
    wait_percentiles(c, workers, st);
    double in_window = st->acq_per_s * st->window_s;
    st->client_cpu_ms = cpu_acqs ? cpu_s * 1e3 / (double)cpu_acqs : NAN;
    st->client_cpu_life_ms = cpu_acqs ? life_s * 1e3 / (double)cpu_acqs : NAN;
    st->server_cpu_ms = in_window > 0 ? server_s * 1e3 / in_window : NAN;
}

/* A fresh guard and lock key, and the warm-up key held (by nobody's handle) for the run. */
static redisContext *reset_keys(const bench_target *t)
{
    redisContext *g = bench_hiredis(t);
    if (!g)
        die("no connection for the guard counter");
    const char *del[] = {"DEL", GUARD_KEY, LOCK_KEY, WARM_KEY};
    const char *warm[] = {"SET", WARM_KEY, "held-by-the-bench", "PX", "600000"};
    command(g, 4, del);
    command(g, 5, warm);
    return g;
}

static void spawn_all(contend_run *run, int workers, pid_t *pids)
{
    if (pipe2(run->ready, O_CLOEXEC) != 0 || pipe2(run->go, O_CLOEXEC) != 0)
        die("pipe failed: %s", strerror(errno));
    for (int i = 0; i < workers; i++)
        pids[i] = spawn(contender_main, run, i);
    close(run->ready[1]);
    close(run->go[0]);
}

/* One row: `workers` processes open their handles, then all start together when the parent
 * closes the barrier pipe; the rate, waits and CPU figures cover the timed window that follows,
 * not fork, connect or open. */
static void contend(const bench_opts *o, int workers, int think_ms, lock_stats *st)
{
    size_t size = sizeof(contend_shared) + sizeof(contender) * (size_t)workers;
    contend_run run = {&o->plain, 1, think_ms, {-1, -1}, {-1, -1}, shared_alloc(size)};
    redisContext *g = reset_keys(&o->plain);
    double life0 = rusage_s(RUSAGE_CHILDREN);
    pid_t pids[MAX_WORKERS];
    spawn_all(&run, workers, pids);
    await_ready(run.ready[0], workers);
    double server0 = server_cpu_s(g);
    uint64_t start = now_ns(), end = start + (uint64_t)(o->lock_secs * 1e9);
    atomic_store(&run.sh->end_at, end);
    close(run.go[1]); /* every worker's read() returns 0 */
    sleep_until_ns(end);
    double server_s = server_cpu_s(g) - server0;
    for (int i = 0; i < workers; i++)
        if (reap(pids[i]) != 0)
            die("a lock contender failed");
    double life_s = rusage_s(RUSAGE_CHILDREN) - life0;
    const char *del[] = {"DEL", WARM_KEY};
    command(g, 2, del);
    redisFree(g);
    memset(st, 0, sizeof *st);
    st->window_s = (double)(end - start) / 1e9;
    summarize(run.sh->c, workers, server_s, life_s, st);
    munmap(run.sh, size);
}

static void appendf(char *text, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void appendf(char *text, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(text);
    va_list ap;
    va_start(ap, fmt);
    if (used + 1 < cap)
        vsnprintf(text + used, cap - used, fmt, ap);
    va_end(ap);
}

/* The table text: the figures every row has, then the CPU ones the row measured. */
static void stats_text(char *text, size_t cap, const lock_stats *s, bool peer)
{
    snprintf(text, cap,
             "%.0f acq/s; wait p50 %.2f / p99 %.2f / max %.1f ms; per process %ld..%ld (%.2f); "
             "%ld violations%s",
             s->acq_per_s, s->p50_ms, s->p99_ms, s->max_ms, s->min_count, s->max_count, s->min_max,
             s->violations, s->failures ? ", some acquisitions failed" : "");
    if (!isnan(s->client_cpu_ms))
        appendf(text, cap, "; CPU per acq: client %.3f ms (%.3f with start-up)", s->client_cpu_ms,
                s->client_cpu_life_ms);
    if (!isnan(s->server_cpu_ms))
        appendf(text, cap, "%s server %.3f ms", isnan(s->client_cpu_ms) ? "; CPU per acq:" : ",",
                s->server_cpu_ms);
    if (peer)
        appendf(text, cap, "; not barriered: run took %.1f s", s->window_s);
}

static void report_stats(const char *who, int workers, const lock_stats *s, bool peer)
{
    const char *keys[] = {"acq_per_s",
                          "wait_p50_ms",
                          "wait_p99_ms",
                          "wait_max_ms",
                          "min_count",
                          "max_count",
                          "min_max",
                          "violations",
                          "failures",
                          "cycle_ms",
                          "client_cpu_ms_per_acq",
                          "client_cpu_all_ms_per_acq",
                          "server_cpu_ms_per_acq",
                          peer ? "run_wall_s" : "window_s"};
    double v[] = {s->acq_per_s,
                  s->p50_ms,
                  s->p99_ms,
                  s->max_ms,
                  (double)s->min_count,
                  (double)s->max_count,
                  s->min_max,
                  (double)s->violations,
                  (double)s->failures,
                  s->cycle_ms,
                  s->client_cpu_ms,
                  s->client_cpu_life_ms,
                  s->server_cpu_ms,
                  s->window_s};
    char name[96], text[320];
    snprintf(name, sizeof name, "%s, %d process%s", who, workers, workers > 1 ? "es" : "");
    stats_text(text, sizeof text, s, peer);
    report_metrics("contended", name, keys, v, sizeof v / sizeof *v, text);
    if (workers > 1) {
        plot_point(CHART_LOCK_RATE, who, workers, s->acq_per_s);
        plot_point(CHART_LOCK_P99, who, workers, s->p99_ms);
    }
}

/* The peers' scripts take PORT WORKERS SECONDS HOLD THINK and nothing else: every worker times
 * its own SECONDS from when it is up, so they cannot be started from the bench's barrier. Their
 * start-up is not in their rate's denominator, but their windows overlap only partly; the run's
 * wall time shows by how much at most. Their server CPU covers the whole run. */
static void run_peer(const bench_opts *o, peer_kind k, int workers, peer_result *p)
{
    redisContext *g = o->no_peers ? NULL : bench_hiredis(&o->plain);
    double server0 = g ? server_cpu_s(g) : NAN;
    uint64_t t0 = now_ns();
    peer_run(o, k, workers, o->lock_secs, 1, 1, p);
    double wall_s = (double)(now_ns() - t0) / 1e9;
    double server_s = g ? server_cpu_s(g) - server0 : NAN;
    if (g)
        redisFree(g);
    char name[96];
    snprintf(name, sizeof name, "%s, %d processes", peer_name(k), workers);
    if (!p->ok) {
        report_na("contended", name, p->why);
        return;
    }
    double acqs = p->acq_per_s * o->lock_secs;
    lock_stats s = {p->acq_per_s,
                    p->p50_ms,
                    p->p99_ms,
                    p->max_ms,
                    p->max_count ? (double)p->min_count / (double)p->max_count : 0,
                    p->min_count,
                    p->max_count,
                    p->violations,
                    0,
                    NAN,
                    NAN,
                    NAN,
                    acqs > 0 ? server_s * 1e3 / acqs : NAN,
                    wall_s};
    report_stats(peer_name(k), workers, &s, true);
}

/* A FIFO queue of 64 serves a waiter after at most the 63 others ahead of it, one hand-off
 * cycle each; 1.5x leaves room for scheduling noise. The cycle is measured at 2 processes,
 * where the lock is never idle (think 1 ms < hold) and no herd of waiters slows the hand-off. */
static double fifo_bound_ms(const lock_stats *at2) { return 1.5 * 63 * at2->cycle_ms; }

static void report_cycle(const lock_stats *serial, const lock_stats *at2)
{
    report_value("contended", "redkit serial ceiling cycle (1 / its rate)", 1e3 / serial->acq_per_s,
                 "ms");
    report_value("contended", "redkit hand-off cycle at 2 processes (grant to grant)",
                 at2->cycle_ms, "ms");
    report_value("contended", "FIFO bound for p99 wait at 64 (1.5 x 63 x cycle at 2)",
                 fifo_bound_ms(at2), "ms");
}

static void goals_scale(const lock_stats *serial, const lock_stats at[COUNTS],
                        const peer_result *py64)
{
    const lock_stats *r2 = &at[0], *r8 = &at[1], *r64 = &at[3];
    char note[sizeof py64->why + 16];
    report_goal("64 processes: acq/s >= 0.8 x acq/s at 2 processes", r64->acq_per_s / r2->acq_per_s,
                ">=", 0.8, NULL);
    if (py64->ok)
        snprintf(note, sizeof note, "redis-py Lock: %.0f acq/s", py64->acq_per_s);
    else
        snprintf(note, sizeof note, "redis-py Lock: %s", py64->why);
    report_goal("64 processes: acq/s >= 2 x redis-py Lock at 64",
                py64->ok ? r64->acq_per_s / py64->acq_per_s : NAN, ">=", 2, note);
    report_goal("8 processes: acq/s >= 0.95 x serial ceiling", r8->acq_per_s / serial->acq_per_s,
                ">=", 0.95, NULL);
    snprintf(note, sizeof note, "cycle at 2 processes %.3f ms", r2->cycle_ms);
    report_goal("64 processes: p99 wait <= 1.5 x 63 x cycle at 2 processes", r64->p99_ms,
                "<=", fifo_bound_ms(r2), note);
    snprintf(note, sizeof note, "%.3f ms at 64, %.3f ms at 2", r64->client_cpu_ms,
             r2->client_cpu_ms);
    report_goal("64 processes: client CPU per acquisition <= 2 x at 2 processes",
                r64->client_cpu_ms / r2->client_cpu_ms, "<=", 2, note);
}

static void goals_safety(const lock_stats *serial, const lock_stats at[COUNTS])
{
    long violations = serial->violations, failures = serial->failures;
    double worst = INFINITY;
    char note[160];
    int used = snprintf(note, sizeof note, "min/max by count:");
    for (int i = 0; i < COUNTS; i++) {
        violations += at[i].violations;
        failures += at[i].failures;
        if (at[i].min_max < worst)
            worst = at[i].min_max;
        if (used > 0 && (size_t)used < sizeof note)
            used += snprintf(note + used, sizeof note - (size_t)used, " %d: %.2f", counts[i],
                             at[i].min_max);
    }
    report_goal("every count: per-process min/max count >= 0.9", worst, ">=", 0.9, note);
    snprintf(note, sizeof note, "%ld failed acquisitions", failures);
    report_goal("every redkit row: mutual-exclusion violations == 0", (double)violations, "==", 0,
                failures ? note : NULL);
}

void bench_contended(const bench_opts *o)
{
    lock_stats serial, at[COUNTS];
    peer_result peers[PEER_COUNT];
    bool any_peer = false;
    progress("contended: serial ceiling (1 process, hold 1 ms, no think), %.1f s", o->lock_secs);
    contend(o, 1, 0, &serial);
    report_stats("redkit serial ceiling (no think)", 1, &serial, false);
    for (int i = 0; i < COUNTS; i++) {
        progress("contended: %d processes, hold 1 ms, think 1 ms, %.1f s each for redkit and "
                 "the peers",
                 counts[i], o->lock_secs);
        contend(o, counts[i], 1, &at[i]);
        report_stats("redkit", counts[i], &at[i], false);
        for (int k = 0; k < PEER_COUNT; k++) {
            run_peer(o, (peer_kind)k, counts[i], &peers[k]);
            any_peer |= peers[k].ok;
        }
    }
    report_cycle(&serial, &at[0]);
    if (any_peer)
        report_note("contended: the peers are not barriered. Their scripts take only PORT WORKERS "
                    "SECONDS HOLD THINK and each worker times its own SECONDS from when it is "
                    "up, so their start is staggered by at most (run took - SECONDS): fewer "
                    "workers contend at the start and the end, and acq/s (acquisitions / "
                    "SECONDS) can be overstated by up to that over SECONDS. Their server CPU "
                    "covers the whole run, start-up included.");
    goals_scale(&serial, at, &peers[PEER_REDIS_PY]);
    goals_safety(&serial, at);
}
