/* MemoLock section: 64 concurrent callers (threads in several processes) ask for one cold id
 * whose fetch takes 50 ms. The fetch stamps the value with the monotonic time it finished, just
 * before redkit stores and publishes it, so each caller measures publish-to-return latency. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define CALLERS 64
#define MAX_PROCESSES 64
#define MAX_RUNS 15

typedef struct memo_shared {
    atomic_long fetches;
    _Atomic uint32_t returned; /* callers that have returned, in every process */
    int processes;    /* callers are spread over this many processes, CALLERS / processes each */
    atomic_int ready; /* callers set up and waiting for warm_at */
    _Atomic uint64_t warm_at; /* set by the parent once every caller is ready */
    uint64_t start_at, fetch_ns;
    char id[64];
    double latency_ms[CALLERS];
    uint64_t done_at[CALLERS];
    bool winner[CALLERS], ok[CALLERS];
} memo_shared;

typedef struct caller {
    memo_shared *sh;
    rk_memolock *memo;
    int slot;
} caller;

static int fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    caller *c = ud;
    atomic_fetch_add(&c->sh->fetches, 1);
    c->sh->winner[c->slot] = true;
    sleep_ns(c->sh->fetch_ns);
    char stamp[32];
    int n = snprintf(stamp, sizeof stamp, "%" PRIu64, now_ns());
    *ttl_ms = 60000;
    return rk_buf_set(value, stamp, (size_t)n);
}

static int warm_fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    sleep_ns(20000000); /* long enough that every other process waits for it */
    *ttl_ms = 60000;
    return rk_buf_set(value, "warm", 4);
}

static void *caller_main(void *p)
{
    caller *c = p;
    rk_buf out = RK_BUF_INIT;
    /* Callers are a service's long-lived threads: one call first, so that the measured one pays
     * neither for the thread's first allocations (its malloc arena) nor for the first
     * connection of the process's subscriber. The measured id itself is cold. */
    char warm[80];
    snprintf(warm, sizeof warm, "warm-%s", c->sh->id);
    atomic_fetch_add(&c->sh->ready, 1);
    while (!atomic_load(&c->sh->warm_at))
        sleep_ns(1000000); /* set-up, not measured */
    sleep_until_ns(atomic_load(&c->sh->warm_at));
    if (rk_memolock_get(c->memo, NULL, warm, 10000, warm_fetch, NULL, &out) != RK_OK)
        die("warm-up call failed: %s", rk_last_error()->message);
    sleep_until_ns(c->sh->start_at);
    int rc = rk_memolock_get(c->memo, NULL, c->sh->id, 10000, fetch, c, &out);
    uint64_t t = now_ns();
    c->sh->done_at[c->slot] = t;
    if (rc == RK_OK && out.data) {
        c->sh->ok[c->slot] = true;
        c->sh->latency_ms[c->slot] = (double)(t - strtoull(out.data, NULL, 10)) / 1e6;
    }
    rk_buf_free(&out);
    /* Exiting threads unmap stacks (TLB shootdowns on every core): not before the last caller
     * has its figure. A shared futex, so no caller spins or polls meanwhile. */
    uint32_t seen = atomic_fetch_add(&c->sh->returned, 1) + 1;
    if (seen == CALLERS)
        syscall(SYS_futex, &c->sh->returned, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    struct timespec limit = {10, 0};
    while ((seen = atomic_load(&c->sh->returned)) < CALLERS)
        if (syscall(SYS_futex, &c->sh->returned, FUTEX_WAIT, seen, &limit, NULL, 0) != 0 &&
            errno == ETIMEDOUT)
            break;
    return NULL;
}

static int process_main(void *arg, int index)
{
    const bench_target *target = ((void **)arg)[0];
    memo_shared *sh = ((void **)arg)[1];
    rk_config *cfg = bench_config(target, "options.resource_tag", "bench-memo", NULL);
    rk_memolock *m;
    if (rk_memolock_new(&m) != RK_OK || rk_memolock_configure(m, cfg) != RK_OK ||
        rk_memolock_open(m, NULL) != RK_OK)
        die("cannot open a memolock: %s", rk_last_error()->message);
    rk_config_free(cfg);
    int threads = CALLERS / sh->processes;
    pthread_t tid[CALLERS];
    caller callers[CALLERS];
    for (int i = 0; i < threads; i++) {
        callers[i] = (caller){sh, m, index * threads + i};
        pthread_create(&tid[i], NULL, caller_main, &callers[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    rk_memolock_free(m);
    return 0;
}

/* One stampede; waiter latencies are appended to `lat`. Returns the fetch count. */
static long stampede(const bench_opts *o, int processes, int run, double *lat, size_t *nlat,
                     double *total_ms, int *failed)
{
    memo_shared *sh = shared_alloc(sizeof *sh);
    atomic_init(&sh->fetches, 0);
    atomic_init(&sh->returned, 0);
    sh->fetch_ns = (uint64_t)(o->memo_fetch_ms * 1e6);
    sh->processes = processes;
    snprintf(sh->id, sizeof sh->id, "cold-%d-%d-%" PRIu64, (int)getpid(), run, now_ns());
    atomic_init(&sh->ready, 0);
    atomic_init(&sh->warm_at, 0);
    void *arg[2] = {(void *)&o->plain, sh};
    pid_t pids[MAX_PROCESSES];
    for (int i = 0; i < sh->processes; i++)
        pids[i] = spawn(process_main, arg, i);
    /* Everyone waits on the warm-up id together (so every subscriber is connected), then the
     * measured stampede starts on the cold id. */
    for (uint64_t limit = now_ns() + 30000000000u; atomic_load(&sh->ready) < CALLERS;)
        if (now_ns() > limit)
            die("memolock callers did not start within 30 s");
        else
            sleep_ns(1000000);
    sh->start_at = now_ns() + 350000000u;
    atomic_store(&sh->warm_at, sh->start_at - 300000000u);
    for (int i = 0; i < sh->processes; i++)
        if (reap(pids[i]) != 0)
            die("a memolock process failed");
    uint64_t last = sh->start_at;
    for (int i = 0; i < CALLERS; i++) {
        if (!sh->ok[i])
            (*failed)++;
        else if (!sh->winner[i])
            lat[(*nlat)++] = sh->latency_ms[i];
        if (sh->done_at[i] > last)
            last = sh->done_at[i];
    }
    *total_ms = (double)(last - sh->start_at) / 1e6;
    long fetches = atomic_load(&sh->fetches);
    munmap(sh, sizeof *sh);
    return fetches;
}

/* Stampedes with the callers spread over `processes`; the goals are judged on the first mix. */
static void memo_mix(const bench_opts *o, int processes, bool goals)
{
    int runs = o->rounds < MAX_RUNS ? o->rounds : MAX_RUNS, failed = 0;
    static double lat[CALLERS * MAX_RUNS];
    double total[MAX_RUNS];
    size_t nlat = 0;
    long max_fetches = 0, min_fetches = -1;
    progress("memolock: %d callers (%d processes x %d threads), fetch %.0f ms, %d runs", CALLERS,
             processes, CALLERS / processes, o->memo_fetch_ms, runs);
    for (int r = 0; r < runs; r++) {
        long f = stampede(o, processes, r, lat, &nlat, &total[r], &failed);
        if (f > max_fetches)
            max_fetches = f;
        if (min_fetches < 0 || f < min_fetches)
            min_fetches = f;
    }
    sort_doubles(lat, nlat);
    double p50 = percentile(lat, nlat, 0.5), p99 = percentile(lat, nlat, 0.99);
    double max = nlat ? lat[nlat - 1] : 0, tot = median(total, (size_t)runs);
    static const char *keys[] = {"fetches_max",   "fetches_min", "waiter_p50_ms", "waiter_p99_ms",
                                 "waiter_max_ms", "total_ms",    "failed_calls"};
    double v[] = {(double)max_fetches, (double)min_fetches, p50, p99, max, tot, (double)failed};
    char name[96], text[200];
    snprintf(name, sizeof name, "%d callers (%d processes x %d threads), %.0f ms fetch, %d runs",
             CALLERS, processes, CALLERS / processes, o->memo_fetch_ms, runs);
    snprintf(text, sizeof text,
             "fetches per run %ld..%ld; publish-to-return p50 %.2f / p99 %.2f / max %.2f ms; "
             "total %.1f ms; %d failed calls",
             min_fetches, max_fetches, p50, p99, max, tot, failed);
    report_metrics("memolock", name, keys, v, sizeof v / sizeof *v, text);
    if (!goals)
        return;
    report_goal("memolock: fetches per stampede == 1", (double)max_fetches, "==", 1,
                min_fetches == 1 && !failed ? NULL
                                            : "a run fetched less than once or a call failed");
    report_goal("memolock: waiter p99 after publish <= 2 ms", p99, "<=", 2, NULL);
}

void bench_memolock(const bench_opts *o)
{
    memo_mix(o, o->memo_processes, true);
    if (o->memo_processes != CALLERS)
        memo_mix(o, CALLERS, false); /* processes only: one Pub/Sub delivery per caller */
}
