/* Cache sections: single operations and batches against a plain hiredis loop doing the same
 * commands, redis-benchmark for reference, threads sharing one object, TLS against plain TCP,
 * and client instructions per operation under callgrind. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "plot.h"

#define VALUE_LEN 100
#define BATCH 100
#define KEY "bench:cache:k"
#define TTL_ARG "60000" /* what redkit sends for ttl 0 (options.default_ttl) */

static char value[VALUE_LEN];

static void init_value(void)
{
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (char)('a' + i % 26);
}

/* ---- one operation of each kind; false on failure ---- */

typedef struct rk_ctx {
    rk_cache *cache;
    rk_buf buf;
    rk_buf outs[BATCH];
    const char *keys[BATCH];
    rk_cache_entry entries[BATCH];
} rk_ctx;

typedef struct hi_ctx {
    redisContext *c;
    const char *argv[2 * BATCH + 1];
    size_t lens[2 * BATCH + 1];
    const char *keys[BATCH];
} hi_ctx;

static char batch_keys[BATCH][32];

static bool rk_get(void *p)
{
    rk_ctx *x = p;
    return rk_cache_retrieve(x->cache, NULL, KEY, &x->buf) == RK_OK && x->buf.len == VALUE_LEN;
}

static bool rk_set(void *p)
{
    rk_ctx *x = p;
    return rk_cache_store(x->cache, NULL, KEY, value, VALUE_LEN, 0) == RK_OK;
}

static bool rk_mget(void *p)
{
    rk_ctx *x = p;
    return rk_cache_retrieve_many(x->cache, NULL, x->keys, BATCH, x->outs) == RK_OK &&
           x->outs[BATCH - 1].len == VALUE_LEN;
}

static bool rk_mset(void *p)
{
    rk_ctx *x = p;
    return rk_cache_store_many(x->cache, NULL, x->entries, BATCH) == RK_OK;
}

static bool hi_reply(redisReply *r, int type)
{
    bool ok = r && r->type == type;
    if (r)
        freeReplyObject(r);
    return ok;
}

static bool hi_get(void *p)
{
    hi_ctx *x = p;
    const char *argv[] = {"GET", KEY};
    size_t lens[] = {3, sizeof KEY - 1};
    return hi_reply(redisCommandArgv(x->c, 2, argv, lens), REDIS_REPLY_STRING);
}

static bool hi_set(void *p)
{
    hi_ctx *x = p;
    const char *argv[] = {"SET", KEY, value, "PX", TTL_ARG};
    size_t lens[] = {3, sizeof KEY - 1, VALUE_LEN, 2, sizeof TTL_ARG - 1};
    return hi_reply(redisCommandArgv(x->c, 5, argv, lens), REDIS_REPLY_STATUS);
}

static bool hi_mget(void *p)
{
    hi_ctx *x = p;
    x->argv[0] = "MGET", x->lens[0] = 4;
    for (int i = 0; i < BATCH; i++)
        x->argv[i + 1] = x->keys[i], x->lens[i + 1] = strlen(x->keys[i]);
    return hi_reply(redisCommandArgv(x->c, BATCH + 1, x->argv, x->lens), REDIS_REPLY_ARRAY);
}

static bool hi_mset(void *p)
{
    hi_ctx *x = p;
    for (int i = 0; i < BATCH; i++) {
        const char *argv[] = {"SET", x->keys[i], value, "PX", TTL_ARG};
        size_t lens[] = {3, strlen(x->keys[i]), VALUE_LEN, 2, sizeof TTL_ARG - 1};
        if (redisAppendCommandArgv(x->c, 5, argv, lens) != REDIS_OK)
            return false;
    }
    bool ok = true;
    for (int i = 0; i < BATCH; i++) {
        void *r = NULL;
        if (redisGetReply(x->c, &r) != REDIS_OK)
            return false;
        ok = hi_reply(r, REDIS_REPLY_STATUS) && ok;
    }
    return ok;
}

/* ---- set-up ---- */

static rk_cache *open_cache(const bench_target *t, const char *max_connections)
{
    return bench_open_cache(t, bench_config(t, "options.max_connections", max_connections, NULL));
}

static void rk_ctx_init(rk_ctx *x, rk_cache *c)
{
    memset(x, 0, sizeof *x);
    x->cache = c;
    for (int i = 0; i < BATCH; i++) {
        snprintf(batch_keys[i], sizeof batch_keys[i], "bench:batch:%03d", i);
        x->keys[i] = batch_keys[i];
        x->entries[i] = (rk_cache_entry){batch_keys[i], value, VALUE_LEN, 0};
    }
}

static void rk_ctx_clear(rk_ctx *x)
{
    rk_buf_free(&x->buf);
    for (int i = 0; i < BATCH; i++)
        rk_buf_free(&x->outs[i]);
}

static void hi_ctx_init(hi_ctx *x, redisContext *c)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    for (int i = 0; i < BATCH; i++)
        x->keys[i] = batch_keys[i];
}

/* Operations per second of `op` over `secs` (after a short warm-up). */
static double rate(op_fn op, void *ctx, double secs)
{
    for (int i = 0; i < 50; i++)
        if (!op(ctx))
            die("warm-up operation failed: %s", rk_last_error()->message);
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), t;
    long n = 0;
    do {
        for (int i = 0; i < 16; i++, n++)
            if (!op(ctx))
                die("operation failed during the measurement: %s", rk_last_error()->message);
    } while ((t = now_ns()) < end);
    return (double)n / ((double)(t - start) / 1e9);
}

#define MAX_ROUNDS 15

/* The ratio is the median of paired ratios, so that load drifting during the run hits both
 * sides alike. */
double compare(const bench_opts *o, const char *section, const char *what, op_fn a, void *actx,
               const char *aname, op_fn b, void *bctx, const char *bname, double scale,
               const char *unit)
{
    double ra[MAX_ROUNDS], rb[MAX_ROUNDS], ratio[MAX_ROUNDS];
    int rounds = o->rounds < MAX_ROUNDS ? o->rounds : MAX_ROUNDS;
    for (int r = 0; r < rounds; r++) {
        ra[r] = rate(a, actx, o->secs) * scale;
        rb[r] = rate(b, bctx, o->secs) * scale;
        ratio[r] = ra[r] / rb[r];
    }
    char name[96];
    snprintf(name, sizeof name, "%s: %s", what, aname);
    report_value(section, name, median(ra, (size_t)rounds), unit);
    snprintf(name, sizeof name, "%s: %s", what, bname);
    report_value(section, name, median(rb, (size_t)rounds), unit);
    double m = median(ratio, (size_t)rounds);
    snprintf(name, sizeof name, "%s: ratio %s / %s", what, aname, bname);
    report_value(section, name, m, "");
    return m;
}

/* ---- redis-benchmark for reference ---- */

/* Run redis-benchmark with `clients` connections and `pipeline` commands in flight on each; one
 * row per test. Returns the GET rate (NAN when it did not run). */
static double redis_benchmark(const bench_opts *o, const char *section, int clients, int pipeline,
                              const char *tests)
{
    const bench_target *t = &o->plain;
    char cmd[1024], line[512], name[96], flags[32] = "";
    long n = (long)(o->secs * (pipeline > 1 ? 400000 : 25000 * (clients > 1 ? 2 : 1)));
    int len = snprintf(cmd, sizeof cmd, "redis-benchmark -c %d -n %ld -d %d -P %d -t %s --csv",
                       clients, n, VALUE_LEN, pipeline, tests);
    if (t->path[0])
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " -s '%s'", t->path);
    else
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " -h '%s' -p %d", t->host, t->port);
    if (t->password[0])
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " -a '%s' --no-auth-warning",
                        t->password);
    if (t->db)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " --dbnum %d", t->db);
    snprintf(cmd + len, sizeof cmd - (size_t)len, " 2>/dev/null");
    if (pipeline > 1)
        snprintf(flags, sizeof flags, " -P %d", pipeline);
    FILE *f = popen(cmd, "r");
    double get = NAN;
    while (f && fgets(line, sizeof line, f)) {
        char test[16];
        double rps;
        if (sscanf(line, "\"%15[A-Z]\",\"%lf\"", test, &rps) == 2) {
            snprintf(name, sizeof name, "redis-benchmark -c %d%s %s", clients, flags, test);
            report_value(section, name, rps, "ops/s");
            if (!strcmp(test, "GET"))
                get = rps;
        }
    }
    if (f)
        pclose(f);
    if (isnan(get)) {
        snprintf(name, sizeof name, "redis-benchmark -c %d%s", clients, flags);
        report_na(section, name, "redis-benchmark not found or failed");
    }
    return get;
}

/* ---- sections ---- */

void bench_cache(const bench_opts *o)
{
    init_value();
    rk_ctx rk;
    hi_ctx hi;
    rk_ctx_init(&rk, open_cache(&o->plain, "8"));
    redisContext *c = bench_hiredis(&o->plain);
    if (!c)
        die("no hiredis baseline");
    hi_ctx_init(&hi, c);
    progress("cache: single operations, %d rounds of %.1f s", o->rounds, o->secs);
    rk_set(&rk);
    double get = compare(o, "cache", "retrieve 100 B", rk_get, &rk, "redkit", hi_get, &hi,
                         "hiredis loop", 1, "ops/s");
    double set = compare(o, "cache", "store 100 B", rk_set, &rk, "redkit", hi_set, &hi,
                         "hiredis loop", 1, "ops/s");
    redis_benchmark(o, "cache", 1, 1, "get,set");
    report_goal("cache retrieve >= 0.95 x hiredis loop", get, ">=", 0.95, NULL);
    report_goal("cache store >= 0.95 x hiredis loop", set, ">=", 0.95, NULL);
    rk_cache_free(rk.cache);
    rk_ctx_clear(&rk);
    redisFree(c);
}

void bench_batch(const bench_opts *o)
{
    init_value();
    rk_ctx rk;
    hi_ctx hi;
    rk_ctx_init(&rk, open_cache(&o->plain, "8"));
    redisContext *c = bench_hiredis(&o->plain);
    if (!c)
        die("no hiredis baseline");
    hi_ctx_init(&hi, c);
    progress("batch: %d keys, %d rounds of %.1f s", BATCH, o->rounds, o->secs);
    if (!rk_mset(&rk))
        die("store_many failed: %s", rk_last_error()->message);
    double get = compare(o, "batch", "retrieve_many 100 (MGET)", rk_mget, &rk, "redkit", hi_mget,
                         &hi, "hiredis", BATCH, "keys/s");
    double set = compare(o, "batch", "store_many 100 (pipelined SET)", rk_mset, &rk, "redkit",
                         hi_mset, &hi, "hiredis pipeline", BATCH, "keys/s");
    redis_benchmark(o, "batch", 1, BATCH, "get,set");
    report_goal("retrieve_many of 100 >= 0.8 x hiredis", get, ">=", 0.8, NULL);
    report_goal("store_many of 100 >= 0.8 x hiredis pipeline", set, ">=", 0.8, NULL);
    rk_cache_free(rk.cache);
    rk_ctx_clear(&rk);
    redisFree(c);
}

/* ---- threads sharing one cache ---- */

#define MAX_THREADS 64
#define LAT_SAMPLES 4096 /* per thread: the latest calls' latencies, for the p99 */
#define BIG_LEN (1024 * 1024)
#define BIG_KEY "bench:cache:big"

typedef struct thread_run {
    rk_cache *cache;
    const char *key;
    pthread_barrier_t *start;
    atomic_bool *stop;
    long ops;
    bool failed;
    double *lat_us; /* LAT_SAMPLES, or NULL: not sampled */
} thread_run;

static void *thread_main(void *p)
{
    thread_run *t = p;
    rk_buf buf = RK_BUF_INIT;
    pthread_barrier_wait(t->start);
    while (!atomic_load_explicit(t->stop, memory_order_relaxed)) {
        for (int i = 0; i < 8; i++) {
            uint64_t t0 = t->lat_us ? now_ns() : 0;
            if (rk_cache_retrieve(t->cache, NULL, t->key, &buf) != RK_OK)
                t->failed = true;
            if (t->lat_us)
                t->lat_us[t->ops % LAT_SAMPLES] = (double)(now_ns() - t0) / 1e3;
            t->ops++;
        }
    }
    rk_buf_free(&buf);
    return NULL;
}

/* Retrieves per second of `n` threads on one cache; with `p99_us`, their 99th percentile
 * latency too. */
static double threads_rate(rk_cache *c, const char *key, int n, double secs, double *p99_us)
{
    pthread_t tid[MAX_THREADS];
    thread_run runs[MAX_THREADS];
    pthread_barrier_t start;
    atomic_bool stop = false;
    double *lat = p99_us ? malloc((size_t)n * LAT_SAMPLES * sizeof *lat) : NULL;
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        runs[i] = (thread_run){c, key, &start, &stop, 0, false, lat ? lat + i * LAT_SAMPLES : NULL};
        pthread_create(&tid[i], NULL, thread_main, &runs[i]);
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = now_ns();
    sleep_ns((uint64_t)(secs * 1e9));
    atomic_store(&stop, true);
    long total = 0;
    size_t samples = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
        total += runs[i].ops;
        if (runs[i].failed)
            die("a retrieve failed with %d threads", n);
        if (lat) { /* pack each thread's samples */
            size_t k = runs[i].ops < LAT_SAMPLES ? (size_t)runs[i].ops : LAT_SAMPLES;
            memmove(lat + samples, lat + i * LAT_SAMPLES, k * sizeof *lat);
            samples += k;
        }
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    pthread_barrier_destroy(&start);
    if (lat) {
        sort_doubles(lat, samples);
        *p99_us = percentile(lat, samples, 0.99);
        free(lat);
    }
    return (double)total / elapsed;
}

static rk_cache *open_threads_cache(const bench_target *t, const char *pipelined)
{
    return bench_open_cache(t, bench_config(t, "options.max_connections", "8",
                                            "options.auto_pipeline", pipelined, NULL));
}

/* One thread retrieving a 1 MiB value: the large-reply read path. */
static double big_rate(rk_cache *c, double secs)
{
    char *big = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (char)('a' + i % 26);
    if (rk_cache_store(c, NULL, BIG_KEY, big, BIG_LEN, 0) != RK_OK)
        die("store of 1 MiB failed: %s", rk_last_error()->message);
    free(big);
    return threads_rate(c, BIG_KEY, 1, secs, NULL);
}

void bench_threads(const bench_opts *o)
{
    enum { COUNTS = 3 };
    static const int counts[COUNTS] = {1, 8, 64};
    double ap[COUNTS][MAX_ROUNDS], cl[COUNTS][MAX_ROUNDS], one[MAX_ROUNDS], eight[MAX_ROUNDS];
    double p99[MAX_ROUNDS], big[MAX_ROUNDS];
    int rounds = o->rounds < MAX_ROUNDS ? o->rounds : MAX_ROUNDS;
    init_value();
    /* The same library both ways in one run: options.auto_pipeline on (the default) and off
     * (a connection borrowed per call, as before auto-pipelining). */
    rk_cache *pc = open_threads_cache(&o->plain, "true");
    rk_cache *cc = open_threads_cache(&o->plain, "false");
    if (rk_cache_store(pc, NULL, KEY, value, VALUE_LEN, 0) != RK_OK)
        die("store failed: %s", rk_last_error()->message);
    progress("threads: 1, 8, 64 threads on one rk_cache, auto_pipeline on and off, %d rounds of "
             "%.1f s",
             rounds, o->secs);
    for (int k = 0; k < rounds; k++) {
        for (int i = 0; i < COUNTS; i++) {
            ap[i][k] = threads_rate(pc, KEY, counts[i], o->secs, i == 2 ? &p99[k] : NULL);
            cl[i][k] = threads_rate(cc, KEY, counts[i], o->secs, NULL);
        }
        one[k] = ap[0][k] / cl[0][k];
        eight[k] = ap[1][k] / ap[0][k];
        big[k] = big_rate(pc, o->secs);
    }
    for (int i = 0; i < COUNTS; i++) {
        char name[96];
        snprintf(name, sizeof name, "retrieve, %d thread%s, one rk_cache", counts[i],
                 counts[i] > 1 ? "s" : "");
        report_value("threads", name, median(ap[i], (size_t)rounds), "ops/s");
        plot_point(CHART_THREADS, "redkit, one rk_cache", counts[i], median(ap[i], (size_t)rounds));
        snprintf(name, sizeof name, "retrieve, %d thread%s, auto_pipeline=false", counts[i],
                 counts[i] > 1 ? "s" : "");
        report_value("threads", name, median(cl[i], (size_t)rounds), "ops/s");
        plot_point(CHART_THREADS, "redkit, auto_pipeline=false", counts[i],
                   median(cl[i], (size_t)rounds));
    }
    double m1 = median(one, (size_t)rounds), m8 = median(eight, (size_t)rounds);
    double r8 = median(ap[1], (size_t)rounds), r64 = median(ap[2], (size_t)rounds);
    report_value("threads", "ratio 1 thread auto_pipeline on / off", m1, "");
    report_value("threads", "ratio 8 threads / 1 thread", m8, "");
    report_value("threads", "ratio 64 threads / 8 threads", r64 / r8, "");
    report_value("threads", "p99 retrieve latency, 64 threads", median(p99, (size_t)rounds), "us");
    report_value("threads", "retrieve 1 MiB, 1 thread", median(big, (size_t)rounds), "ops/s");
    /* What the server and the machine allow without any client library in the way. */
    double rb1 = redis_benchmark(o, "threads", 1, 1, "get");
    double rb64 = redis_benchmark(o, "threads", 64, 1, "get");
    plot_point(CHART_THREADS, "redis-benchmark GET, -c threads", 1, rb1);
    plot_point(CHART_THREADS, "redis-benchmark GET, -c threads", 64, rb64);
    report_value("threads", "ratio redis-benchmark -c 64 / -c 1 GET", rb64 / rb1, "");
    report_value("threads", "ratio redkit 64 threads / redis-benchmark -c 64 GET", r64 / rb64, "");
    report_goal("1 thread, auto_pipeline on >= 0.97 x off", m1, ">=", 0.97, NULL);
    report_goal("8 threads on one rk_cache >= 3 x one thread", m8, ">=", 3, NULL);
    report_goal("64 threads >= 4 x redis-benchmark -c 64 GET", r64 / rb64, ">=", 4, NULL);
    report_goal("64 threads >= 8 threads", r64 / r8, ">=", 1, NULL);
    rk_cache_free(pc);
    rk_cache_free(cc);
}

/* ---- TLS against plain TCP (redkit on both sides: hiredis 0.14 has no TLS) ---- */

void bench_tls(const bench_opts *o)
{
    if (!o->tls.url[0]) {
        report_na("tls", "retrieve 100 B over rediss://", o->tls_missing);
        report_na("tls", "retrieve_many 100 over rediss://", o->tls_missing);
        return;
    }
    init_value();
    rk_ctx tls, tcp;
    rk_ctx_init(&tls, open_cache(&o->tls, "8"));
    rk_ctx_init(&tcp, open_cache(&o->plain, "8"));
    if (!rk_set(&tls) || !rk_mset(&tls) || !rk_set(&tcp) || !rk_mset(&tcp))
        die("cannot store the TLS test keys: %s", rk_last_error()->message);
    progress("tls: rediss:// against redis://, %d rounds of %.1f s", o->rounds, o->secs);
    compare(o, "tls", "retrieve 100 B", rk_get, &tls, "rediss://", rk_get, &tcp, "redis://", 1,
            "ops/s");
    compare(o, "tls", "store 100 B", rk_set, &tls, "rediss://", rk_set, &tcp, "redis://", 1,
            "ops/s");
    compare(o, "tls", "retrieve_many 100", rk_mget, &tls, "rediss://", rk_mget, &tcp, "redis://",
            BATCH, "keys/s");
    compare(o, "tls", "store_many 100", rk_mset, &tls, "rediss://", rk_mset, &tcp, "redis://",
            BATCH, "keys/s");
    rk_cache_free(tls.cache);
    rk_cache_free(tcp.cache);
    rk_ctx_clear(&tls);
    rk_ctx_clear(&tcp);
}

/* ---- client instructions per retrieve, under callgrind ---- */

/* The measured loops: callgrind collects only inside these (--toggle-collect). */
__attribute__((noinline)) long bench_cg_loop_redkit(rk_ctx *x, int n);
__attribute__((noinline)) long bench_cg_loop_hiredis(hi_ctx *x, int n);

__attribute__((noinline)) long bench_cg_loop_redkit(rk_ctx *x, int n)
{
    long ok = 0;
    for (int i = 0; i < n; i++)
        ok += rk_get(x);
    return ok;
}

__attribute__((noinline)) long bench_cg_loop_hiredis(hi_ctx *x, int n)
{
    long ok = 0;
    for (int i = 0; i < n; i++)
        ok += hi_get(x);
    return ok;
}

int bench_cg_child(const char *kind, int n, const char *url)
{
    bench_target t;
    memset(&t, 0, sizeof t);
    if (bench_target_parse(&t, url) != 0)
        die("bad url %s", url);
    init_value();
    long ok;
    if (!strcmp(kind, "redkit")) {
        rk_ctx x;
        rk_ctx_init(&x, open_cache(&t, "8"));
        rk_set(&x);
        bench_cg_loop_redkit(&x, 100); /* warm: scripts, pool, allocator */
        ok = bench_cg_loop_redkit(&x, n);
        rk_cache_free(x.cache);
        rk_ctx_clear(&x);
    } else {
        hi_ctx x;
        redisContext *c = bench_hiredis(&t);
        if (!c)
            return 1;
        hi_ctx_init(&x, c);
        hi_set(&x);
        bench_cg_loop_hiredis(&x, 100);
        ok = bench_cg_loop_hiredis(&x, n);
        redisFree(c);
    }
    return ok == n ? 0 : 1;
}

/* Instructions counted by callgrind inside the measured loop, per operation; NAN on failure. */
static double cg_instructions(const bench_opts *o, const char *kind, char *why, size_t cap)
{
    char out[200], log[200], cmd[2048], line[512];
    snprintf(out, sizeof out, "%s/callgrind.%s.out", o->tmpdir, kind);
    snprintf(log, sizeof log, "%s/callgrind.%s.log", o->tmpdir, kind);
    track_path(out);
    track_path(log);
    snprintf(cmd, sizeof cmd,
             "valgrind --tool=callgrind --collect-atstart=no "
             "--toggle-collect='bench_cg_loop_%s' --callgrind-out-file='%s' '%s' --cg-loop %s %d "
             "'%s' > '%s' 2>&1",
             kind, out, o->self, kind, o->cg_ops, o->plain.url, log);
    if (system(cmd) != 0) {
        snprintf(why, cap, "valgrind failed or missing (see %s)", log);
        return NAN;
    }
    FILE *f = fopen(out, "r");
    double total = NAN;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "summary: %llu", &v) == 1 || sscanf(line, "totals: %llu", &v) == 1)
            total = (double)v;
    }
    if (f)
        fclose(f);
    if (isnan(total))
        snprintf(why, cap, "no totals in %s", out);
    return total / o->cg_ops;
}

void bench_cpu(const bench_opts *o)
{
    char why[256] = "";
    progress("cpu: %d retrieves under callgrind for redkit and for hiredis", o->cg_ops);
    double rk = cg_instructions(o, "redkit", why, sizeof why);
    double hi = isnan(rk) ? NAN : cg_instructions(o, "hiredis", why, sizeof why);
    if (isnan(rk) || isnan(hi)) {
        report_na("cpu", "instructions per retrieve", why);
        report_goal("client instructions per retrieve <= 1.3 x hiredis", NAN, "<=", 1.3, why);
        return;
    }
    report_value("cpu", "instructions per retrieve: redkit", rk, "Ir");
    report_value("cpu", "instructions per retrieve: hiredis loop", hi, "Ir");
    report_value("cpu", "ratio redkit / hiredis", rk / hi, "");
    report_goal("client instructions per retrieve <= 1.3 x hiredis", rk / hi, "<=", 1.3, NULL);
}
