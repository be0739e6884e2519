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
    rk_config *cfg = bench_config(t, "options.max_connections", max_connections, NULL);
    rk_cache *c;
    if (rk_cache_new(&c) != RK_OK || rk_cache_configure(c, cfg) != RK_OK ||
        rk_cache_open(c, NULL) != RK_OK)
        die("cannot open a cache on %s: %s", t->url, rk_last_error()->message);
    rk_config_free(cfg);
    return c;
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

typedef struct thread_run {
    rk_cache *cache;
    pthread_barrier_t *start;
    atomic_bool *stop;
    long ops;
    bool failed;
} thread_run;

static void *thread_main(void *p)
{
    thread_run *t = p;
    rk_buf buf = RK_BUF_INIT;
    pthread_barrier_wait(t->start);
    while (!atomic_load_explicit(t->stop, memory_order_relaxed)) {
        for (int i = 0; i < 8; i++) {
            if (rk_cache_retrieve(t->cache, NULL, KEY, &buf) != RK_OK)
                t->failed = true;
            t->ops++;
        }
    }
    rk_buf_free(&buf);
    return NULL;
}

static double threads_rate(rk_cache *c, int n, double secs)
{
    pthread_t tid[8];
    thread_run runs[8];
    pthread_barrier_t start;
    atomic_bool stop = false;
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        runs[i] = (thread_run){c, &start, &stop, 0, false};
        pthread_create(&tid[i], NULL, thread_main, &runs[i]);
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = now_ns();
    sleep_ns((uint64_t)(secs * 1e9));
    atomic_store(&stop, true);
    long total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
        total += runs[i].ops;
        if (runs[i].failed)
            die("a retrieve failed with %d threads", n);
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    pthread_barrier_destroy(&start);
    return (double)total / elapsed;
}

void bench_threads(const bench_opts *o)
{
    static const int counts[] = {1, 2, 4, 8};
    double r[4][MAX_ROUNDS], ratio[MAX_ROUNDS];
    int rounds = o->rounds < MAX_ROUNDS ? o->rounds : MAX_ROUNDS;
    init_value();
    rk_cache *c = open_cache(&o->plain, "8");
    if (rk_cache_store(c, NULL, KEY, value, VALUE_LEN, 0) != RK_OK)
        die("store failed: %s", rk_last_error()->message);
    progress("threads: 1, 2, 4, 8 threads on one rk_cache, %d rounds of %.1f s", rounds, o->secs);
    for (int k = 0; k < rounds; k++) {
        for (int i = 0; i < 4; i++)
            r[i][k] = threads_rate(c, counts[i], o->secs);
        ratio[k] = r[3][k] / r[0][k];
    }
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "retrieve, %d thread%s, one rk_cache", counts[i],
                 counts[i] > 1 ? "s" : "");
        report_value("threads", name, median(r[i], (size_t)rounds), "ops/s");
        plot_point(CHART_THREADS, "redkit, one rk_cache", counts[i], median(r[i], (size_t)rounds));
    }
    double m = median(ratio, (size_t)rounds);
    report_value("threads", "ratio 8 threads / 1 thread", m, "");
    /* What the server and the machine allow without any client library in the way. */
    double one = redis_benchmark(o, "threads", 1, 1, "get");
    double eight = redis_benchmark(o, "threads", 8, 1, "get");
    plot_point(CHART_THREADS, "redis-benchmark GET, -c threads", 1, one);
    plot_point(CHART_THREADS, "redis-benchmark GET, -c threads", 8, eight);
    report_value("threads", "ratio redis-benchmark -c 8 / -c 1 GET", eight / one, "");
    report_value("threads", "ratio redkit 8 threads / redis-benchmark -c 8 GET",
                 median(r[3], (size_t)rounds) / eight, "");
    char note[96];
    snprintf(note, sizeof note, "redis-benchmark itself scales %.2fx from 1 to 8 clients here",
             eight / one);
    report_goal("8 threads on one rk_cache >= 2 x one thread", m, ">=", 2, note);
    rk_cache_free(c);
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
