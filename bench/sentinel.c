/* Sentinel section: redkit through Redis Sentinel, on a private deployment started with the
 * source tree's tests/support/sentinel.sh (a master, its replica, 3 sentinels; quorum 2,
 * down-after-milliseconds 1000, failover-timeout 5000). Three measurements:
 *
 * - what options.lock_replicas=1 costs: uncontended lock pairs with it against the same pairs
 *   without it, alternating round by round in the same run (WAIT 1 after every grant);
 * - the write gap after the master is SIGKILLed under load from 4 threads: from the kill to the
 *   first store sent after it that is acknowledged, and how many calls failed meanwhile;
 * - SENTINEL FAILOVER under the same load, the old master staying up until a sentinel converts
 *   it into a replica: how many acknowledged writes are missing on the new master.
 *
 * Every write is a key of its own and each thread records when every acknowledged store started
 * and returned. A demoted master resyncs from the new one and throws its data away, so an
 * acknowledged key missing on the new master was acknowledged by the old one and never
 * replicated. Before the first +switch-master that is Sentinel's own window: the replica is
 * promoted about a second before the leader announces it, and the old master goes on taking
 * writes meanwhile. Between the leader's announcement and that of the sentinel redkit listens
 * to, redkit cannot know yet (the failover is asked of another sentinel, so that this window
 * is measured). After that it would be redkit writing to a master the sentinels gave up. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define NAME "bench-master"
#define SENTINELS 3
#define NODES (2 + SENTINELS) /* master, replica, sentinels: the order of ports and pids */
#define DOWN_AFTER_MS 1000    /* what sentinel.sh configures */
#define GAP_TARGET_MS (DOWN_AFTER_MS + 2500)
#define LOCK_KEY "bench:sentinel:lock"
#define LOCK_TTL_MS 10000
#define LOCK_WAIT_MS 1000
#define THREADS 4
#define STORE_TIMEOUT "3000" /* options.timeout of the loaded cache: longer than a failover */
#define VALUE_TTL_MS 600000
#define MAX_FAILS 256   /* failed calls remembered per thread (all are counted) */
#define PROGRESS 200    /* stores per thread that show the load runs (again) */
#define WAIT_MS 30000   /* for a switch, or for writes to resume */
#define DEMOTE_MS 60000 /* a sentinel converts a demoted master 10 to 20 s after the switch */
#define GRACE_MS 200    /* the client hears the switch on its own subscription, not ours */
#define MS 1000000ull   /* ns */
#define WATCH_NAME "redkit-bench-watch" /* the bench's own subscriptions to the sentinels */
#define BATCH 200                       /* keys per MGET of the audit */

/* ---- a private deployment (tests/support/sentinel.sh) ---- */

typedef struct deployment {
    char url[512]; /* redis://<the sentinels> for redkit */
    bench_target sentinel[SENTINELS];
    int port[NODES]; /* as started: master, replica, sentinels */
    pid_t pid[NODES];
} deployment;

static char script[512], state_dir[400];
static int stop_id = -1; /* the cleanup's `sentinel.sh stop`, while a deployment may be up */

/* The script's servers outlive it: stopped here, or by the cleanup on a failure or a signal. */
static void stop_deployment(void)
{
    if (stop_id < 0)
        return;
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "'%s' stop '%s' >/dev/null 2>&1", script, state_dir);
    if (system(cmd) != 0)
        progress("sentinel: '%s' failed", cmd);
    untrack_command(stop_id);
    stop_id = -1;
}

/* The last line of `path` (the script's reason for failing) into `why`. */
static void last_line(const char *path, char *why, size_t cap)
{
    char line[256];
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '\n')
            snprintf(why, cap, "%.*s", (int)strcspn(line, "\n"), line);
    if (f)
        fclose(f);
}

/* `n` numbers, one a line, from the state file `name`. */
static bool read_numbers(const char *name, long *v, size_t n)
{
    char path[450];
    snprintf(path, sizeof path, "%s/%s", state_dir, name);
    FILE *f = fopen(path, "r");
    size_t got = 0;
    while (f && got < n && fscanf(f, "%ld", &v[got]) == 1)
        got++;
    if (f)
        fclose(f);
    return got == n;
}

static bool read_state(deployment *d)
{
    char path[450], sentinels[300];
    long ports[NODES], pids[NODES];
    snprintf(path, sizeof path, "%s/sentinels", state_dir);
    FILE *f = fopen(path, "r");
    bool ok = f && fscanf(f, "%299s", sentinels) == 1;
    if (f)
        fclose(f);
    if (!ok || !read_numbers("ports", ports, NODES) || !read_numbers("pids", pids, NODES))
        return false;
    snprintf(d->url, sizeof d->url, "redis://%s", sentinels);
    for (int i = 0; i < NODES; i++)
        d->port[i] = (int)ports[i], d->pid[i] = (pid_t)pids[i];
    for (int k = 0; k < SENTINELS; k++) {
        char url[64];
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", d->port[2 + k]);
        if (bench_target_parse(&d->sentinel[k], url) != 0)
            return false;
    }
    return true;
}

/* Start (or replace: the script stops what it started before) a deployment; false with the
 * reason in `why`. */
static bool start_deployment(const bench_opts *o, deployment *d, char *why, size_t whycap)
{
    char log[450], cmd[1400];
    snprintf(script, sizeof script, "%s/tests/support/sentinel.sh", REDKIT_SOURCE_DIR);
    if (access(script, X_OK) != 0) {
        snprintf(why, whycap, "no tests/support/sentinel.sh in the source tree");
        return false;
    }
    snprintf(state_dir, sizeof state_dir, "%s/sentinel", o->tmpdir);
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
        die("cannot create %s: %s", state_dir, strerror(errno));
    snprintf(log, sizeof log, "%s/start.log", state_dir);
    if (stop_id < 0) {
        track_path(state_dir);
        track_path(log);
        /* Before the start: the script records its servers first, so a half-started
         * deployment is stopped too. */
        stop_id = track_command((const char *const[]){script, "stop", state_dir, NULL});
    }
    snprintf(cmd, sizeof cmd, "'%s' start '%s' '%s' >'%s' 2>&1", script, state_dir, NAME, log);
    if (system(cmd) != 0 || !read_state(d)) {
        snprintf(why, whycap, "sentinel.sh start failed");
        last_line(log, why, whycap);
        stop_deployment();
        return false;
    }
    return true;
}

/* ---- asking the servers, with raw hiredis ---- */

static redisContext *node(int port)
{
    bench_target t;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    if (bench_target_parse(&t, url) != 0)
        die("bad port %d", port);
    return bench_hiredis(&t);
}

/* The port of the master the first sentinel that answers names; -1 when none does. */
static int master_port(const deployment *d)
{
    for (int k = 0; k < SENTINELS; k++) {
        redisContext *c = bench_hiredis(&d->sentinel[k]);
        redisReply *r = c ? redisCommand(c, "SENTINEL get-master-addr-by-name %s", NAME) : NULL;
        int port = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                           r->element[1]->type == REDIS_REPLY_STRING
                       ? atoi(r->element[1]->str)
                       : -1;
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (port > 0)
            return port;
    }
    return -1;
}

static pid_t pid_of_port(const deployment *d, int port)
{
    for (int i = 0; i < 2; i++)
        if (d->port[i] == port)
            return d->pid[i];
    die("the sentinels name port %d, which is no data node of the deployment", port);
}

/* The node's ROLE says it is a replica (a demoted master says so once a sentinel has
 * converted it). */
static bool is_replica(int port)
{
    redisContext *c = node(port);
    redisReply *r = c ? redisCommand(c, "ROLE") : NULL;
    bool yes = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
               r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "slave");
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return yes;
}

/* Whether sentinel k has a subscribed client other than the bench's own watch (redkit names
 * no connection): the one redkit follows switches on. */
static bool has_client_subscription(const bench_target *t)
{
    redisContext *c = bench_hiredis(t);
    redisReply *r = c ? redisCommand(c, "CLIENT LIST") : NULL;
    bool found = false;
    for (const char *line = r && r->type == REDIS_REPLY_STRING ? r->str : NULL; line && *line;) {
        size_t n = strcspn(line, "\n");
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1), line);
        found = found || (strstr(buf, " sub=0 ") == NULL && strstr(buf, " sub=") &&
                          !strstr(buf, " name=" WATCH_NAME " "));
        line += n + (line[n] == '\n');
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return found;
}

/* The index of the sentinel redkit listens to; -1 when none shows its subscription within
 * 5 s. */
static int client_sentinel(const deployment *d)
{
    for (uint64_t end = now_ns() + 5000 * MS; now_ns() < end; sleep_ns(20 * MS))
        for (int k = 0; k < SENTINELS; k++)
            if (has_client_subscription(&d->sentinel[k]))
                return k;
    return -1;
}

/* ---- the +switch-master announcements, heard on every sentinel ---- */

typedef struct watch {
    redisContext *sub[SENTINELS];
    uint64_t at[SENTINELS]; /* now_ns() when read; 0: not yet */
    int to_port[SENTINELS];
} watch;

static void watch_start(const deployment *d, watch *w)
{
    memset(w, 0, sizeof *w);
    for (int k = 0; k < SENTINELS; k++) {
        if (!(w->sub[k] = bench_hiredis(&d->sentinel[k])))
            die("sentinel %d does not answer", k);
        /* Named, to tell it from the client's own subscription (client_sentinel). */
        redisReply *r = redisCommand(w->sub[k], "CLIENT SETNAME " WATCH_NAME);
        if (r)
            freeReplyObject(r);
        r = redisCommand(w->sub[k], "SUBSCRIBE +switch-master");
        if (!r)
            die("SUBSCRIBE on sentinel %d failed", k);
        freeReplyObject(r); /* the confirmation: the subscription is in place */
    }
}

/* ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"] */
static void heard(watch *w, int k, redisReply *r)
{
    char name[64];
    int to;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_STRING &&
        sscanf(r->element[2]->str, "%63s %*s %*d %*s %d", name, &to) == 2 && !strcmp(name, NAME))
        w->at[k] = now_ns(), w->to_port[k] = to;
    freeReplyObject(r);
}

/* What sentinel k sent: what hiredis holds already, else one read when poll said so (a read
 * on a blocking context must not wait past the deadline). */
static void watch_read(watch *w, int k, bool readable)
{
    void *r = NULL;
    if (redisGetReplyFromReader(w->sub[k], &r) == REDIS_OK && !r && readable &&
        redisBufferRead(w->sub[k]) == REDIS_OK)
        redisGetReplyFromReader(w->sub[k], &r);
    if (w->sub[k]->err)
        die("sentinel %d's subscription broke: %s", k, w->sub[k]->errstr);
    if (r)
        heard(w, k, r);
}

static bool all_heard(const watch *w)
{
    for (int k = 0; k < SENTINELS; k++)
        if (!w->at[k])
            return false;
    return true;
}

/* Wait until every sentinel has announced a switch; false after `timeout_ms`. */
static bool watch_wait(watch *w, uint64_t timeout_ms)
{
    uint64_t end = now_ns() + timeout_ms * MS;
    while (!all_heard(w)) {
        uint64_t t = now_ns();
        if (t >= end)
            return false;
        struct pollfd p[SENTINELS];
        for (int k = 0; k < SENTINELS; k++) {
            if (!w->at[k])
                watch_read(w, k, false);
            p[k] = (struct pollfd){.fd = w->at[k] ? -1 : w->sub[k]->fd, .events = POLLIN};
        }
        if (poll(p, SENTINELS, (int)((end - t) / MS) + 1) > 0)
            for (int k = 0; k < SENTINELS; k++)
                if (p[k].revents && !w->at[k])
                    watch_read(w, k, true);
    }
    return true;
}

/* The first and the last announcement. */
static void watch_times(const watch *w, uint64_t *first, uint64_t *last)
{
    *first = UINT64_MAX, *last = 0;
    for (int k = 0; k < SENTINELS; k++) {
        *first = w->at[k] < *first ? w->at[k] : *first;
        *last = w->at[k] > *last ? w->at[k] : *last;
    }
}

static void watch_stop(watch *w)
{
    for (int k = 0; k < SENTINELS; k++)
        redisFree(w->sub[k]);
    memset(w->sub, 0, sizeof w->sub);
}

/* ---- the cost of options.lock_replicas ---- */

typedef struct lock_side {
    rk_lock *lock;
    long not_replicated; /* try_acquire grants WAIT did not confirm in time (released) */
} lock_side;

static void lock_side_open(lock_side *x, const char *url, const char *replicas)
{
    bench_target t;
    if (bench_target_parse(&t, url) != 0)
        die("bad sentinel URL %s", url);
    rk_config *cfg =
        bench_config(&t, "options.sentinel_master", NAME, "options.lock_replicas", replicas, NULL);
    *x = (lock_side){0};
    if (rk_lock_new(&x->lock) != RK_OK || rk_lock_configure(x->lock, cfg) != RK_OK ||
        rk_lock_open(x->lock, NULL) != RK_OK)
        die("cannot open a lock through %s: %s", url, rk_last_error()->message);
    rk_config_free(cfg);
}

/* A grant WAIT did not confirm is a measured attempt too (it costs its WAIT timeout): counted,
 * not fatal. */
static bool try_pair(void *p)
{
    lock_side *x = p;
    bool got = false;
    int rc = rk_lock_try_acquire(x->lock, NULL, LOCK_KEY, LOCK_TTL_MS, &got);
    if (rc == RK_EIO && !strcmp(rk_last_error()->name, "LOCK_NOT_REPLICATED")) {
        x->not_replicated++;
        return true;
    }
    return rc == RK_OK && got && rk_lock_release(x->lock, NULL, LOCK_KEY) == RK_OK;
}

/* rk_lock_acquire retries a grant that did not replicate itself, until its timeout. */
static bool acquire_pair(void *p)
{
    lock_side *x = p;
    return rk_lock_acquire(x->lock, NULL, LOCK_KEY, LOCK_TTL_MS, LOCK_WAIT_MS) == RK_OK &&
           rk_lock_release(x->lock, NULL, LOCK_KEY) == RK_OK;
}

static void measure_lock_replicas(const bench_opts *o, const deployment *d)
{
    lock_side with, without;
    lock_side_open(&with, d->url, "1");
    lock_side_open(&without, d->url, "0");
    progress("sentinel: lock_replicas=1 against 0, %d rounds of %.1f s", o->rounds, o->secs);
    compare(o, "sentinel", "try_acquire + release", try_pair, &with, "lock_replicas=1", try_pair,
            &without, "lock_replicas=0", 1, "pairs/s");
    compare(o, "sentinel", "acquire(1 s) + release", acquire_pair, &with, "lock_replicas=1",
            acquire_pair, &without, "lock_replicas=0", 1, "pairs/s");
    report_value("sentinel", "try_acquire with lock_replicas=1: grants not replicated in time",
                 (double)with.not_replicated, "");
    rk_lock_free(with.lock);
    rk_lock_free(without.lock);
}

static double ms_between(uint64_t from, uint64_t to)
{
    return to == UINT64_MAX || from == UINT64_MAX ? NAN : ((double)to - (double)from) / 1e6;
}

/* ---- load: 4 threads storing a key per write ---- */

typedef struct ack {
    uint32_t seq;
    uint64_t start, end; /* now_ns() around the store */
} ack;

typedef struct loader {
    rk_cache *cache;
    int id;
    atomic_bool *stop;
    atomic_long ok; /* read by load_progress */
    ack *acks;      /* every acknowledged store; the thread's own until it is joined */
    size_t nacks, cap;
    ack fails[MAX_FAILS]; /* the first failed calls' times (seq unused) */
    long failed;
    char first_message[200];
} loader;

typedef struct load_run {
    loader l[THREADS];
    pthread_t t[THREADS];
    atomic_bool stop;
} load_run;

static void key_of(char *buf, size_t n, int id, uint32_t seq)
{
    snprintf(buf, n, "bench:sentinel:%d:%u", id, seq);
}

static void record(loader *l, uint32_t seq, uint64_t t0, uint64_t t1)
{
    if (l->nacks == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16384;
        if (!(l->acks = realloc(l->acks, l->cap * sizeof *l->acks)))
            die("out of memory");
    }
    l->acks[l->nacks++] = (ack){seq, t0, t1};
}

static void failure(loader *l, uint64_t t0, uint64_t t1)
{
    if (l->failed < MAX_FAILS)
        l->fails[l->failed] = (ack){0, t0, t1};
    if (l->failed++ == 0)
        snprintf(l->first_message, sizeof l->first_message, "%s", rk_last_error()->message);
}

static void *load(void *arg)
{
    loader *l = arg;
    for (uint32_t seq = 0; !atomic_load_explicit(l->stop, memory_order_relaxed); seq++) {
        char key[48], val[16];
        key_of(key, sizeof key, l->id, seq);
        int n = snprintf(val, sizeof val, "%u", seq);
        uint64_t t0 = now_ns();
        int rc = rk_cache_store(l->cache, NULL, key, val, (size_t)n, VALUE_TTL_MS);
        uint64_t t1 = now_ns();
        if (rc != RK_OK) {
            failure(l, t0, t1);
            continue;
        }
        record(l, seq, t0, t1);
        atomic_fetch_add_explicit(&l->ok, 1, memory_order_relaxed);
    }
    return NULL;
}

static rk_cache *open_cache(const deployment *d)
{
    bench_target t;
    if (bench_target_parse(&t, d->url) != 0)
        die("bad sentinel URL %s", d->url);
    rk_config *cfg =
        bench_config(&t, "options.sentinel_master", NAME, "options.timeout", STORE_TIMEOUT,
                     "options.connect_timeout", "500", "options.max_connections", "8", NULL);
    rk_cache *c;
    if (rk_cache_new(&c) != RK_OK || rk_cache_configure(c, cfg) != RK_OK ||
        rk_cache_open(c, NULL) != RK_OK)
        die("cannot open a cache through %s: %s", d->url, rk_last_error()->message);
    rk_config_free(cfg);
    return c;
}

static void load_start(load_run *r, rk_cache *c)
{
    memset(r, 0, sizeof *r);
    atomic_init(&r->stop, false);
    for (int i = 0; i < THREADS; i++) {
        r->l[i].cache = c, r->l[i].id = i, r->l[i].stop = &r->stop;
        atomic_init(&r->l[i].ok, 0);
        if (pthread_create(&r->t[i], NULL, load, &r->l[i]) != 0)
            die("cannot start a load thread");
    }
}

/* Wait until every thread has made `more` more writes; false after WAIT_MS. */
static bool load_progress(load_run *r, long more)
{
    long target[THREADS];
    for (int i = 0; i < THREADS; i++)
        target[i] = atomic_load(&r->l[i].ok) + more;
    uint64_t end = now_ns() + WAIT_MS * MS;
    for (int i = 0; i < THREADS; i++)
        while (atomic_load(&r->l[i].ok) < target[i]) {
            if (now_ns() > end)
                return false;
            sleep_ns(MS);
        }
    return true;
}

static void load_stop(load_run *r)
{
    atomic_store(&r->stop, true);
    for (int i = 0; i < THREADS; i++)
        pthread_join(r->t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        if (r->l[i].failed)
            progress("sentinel: thread %d: %ld calls failed, the first: %s", i, r->l[i].failed,
                     r->l[i].first_message);
}

static void load_free(load_run *r)
{
    for (int i = 0; i < THREADS; i++)
        free(r->l[i].acks);
}

/* The first acknowledgement of a store started at or after `t`; UINT64_MAX: none. */
static uint64_t first_ack_after(const load_run *r, uint64_t t)
{
    uint64_t first = UINT64_MAX;
    for (int i = 0; i < THREADS; i++)
        for (size_t j = 0; j < r->l[i].nacks; j++)
            if (r->l[i].acks[j].start >= t && r->l[i].acks[j].end < first)
                first = r->l[i].acks[j].end;
    return first;
}

/* Calls that failed while they overlapped [from, to). */
static long failed_between(const load_run *r, uint64_t from, uint64_t to)
{
    long n = 0;
    for (int i = 0; i < THREADS; i++) {
        long known = r->l[i].failed < MAX_FAILS ? r->l[i].failed : MAX_FAILS;
        for (long j = 0; j < known; j++)
            n += r->l[i].fails[j].end >= from && r->l[i].fails[j].start < to;
        n += r->l[i].failed - known; /* past what was remembered: counted as in it */
    }
    return n;
}

/* The shortest and longest of the failed calls remembered, in ms (NAN: none). */
static void failed_spans(const load_run *r, double *lo, double *hi)
{
    *lo = NAN, *hi = NAN;
    for (int i = 0; i < THREADS; i++)
        for (long j = 0; j < r->l[i].failed && j < MAX_FAILS; j++) {
            double ms = ms_between(r->l[i].fails[j].start, r->l[i].fails[j].end);
            *lo = isnan(*lo) || ms < *lo ? ms : *lo;
            *hi = isnan(*hi) || ms > *hi ? ms : *hi;
        }
}

static long failed_total(const load_run *r)
{
    long n = 0;
    for (int i = 0; i < THREADS; i++)
        n += r->l[i].failed;
    return n;
}

static const char *first_failure(const load_run *r)
{
    for (int i = 0; i < THREADS; i++)
        if (r->l[i].failed)
            return r->l[i].first_message;
    return "none";
}

/* ---- the acknowledged writes against the new master ---- */

/* Acknowledged writes in three periods of their acknowledgement: before edge[0], between the
 * edges, from edge[1] on; how many of each are missing on the new master. */
typedef struct audit {
    uint64_t edge[2];
    long acked[3], missing[3];
} audit;

static int period(const audit *a, uint64_t t)
{
    return t < a->edge[0] ? 0 : t < a->edge[1] ? 1 : 2;
}

/* MGET of `n` of thread `id`'s acknowledged keys; the reply's elements in their order. */
static redisReply *mget(redisContext *c, int id, const ack *acks, size_t n)
{
    static char keys[BATCH][48];
    const char *argv[BATCH + 1] = {"MGET"};
    size_t len[BATCH + 1] = {4};
    for (size_t j = 0; j < n; j++) {
        key_of(keys[j], sizeof keys[j], id, acks[j].seq);
        argv[j + 1] = keys[j], len[j + 1] = strlen(keys[j]);
    }
    redisReply *r = redisCommandArgv(c, (int)n + 1, argv, len);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n)
        die("MGET on the new master failed: %s", r ? "unexpected reply" : c->errstr);
    return r;
}

static void tally(audit *a, const ack *k, const redisReply *v)
{
    int p = period(a, k->end);
    a->acked[p]++;
    a->missing[p] += !(v->type == REDIS_REPLY_STRING && (uint32_t)atol(v->str) == k->seq);
}

static void audit_writes(int new_master, const load_run *r, audit *a)
{
    redisContext *c = node(new_master);
    if (!c)
        die("the new master (port %d) does not answer", new_master);
    for (int i = 0; i < THREADS; i++)
        for (size_t j = 0; j < r->l[i].nacks; j += BATCH) {
            size_t n = r->l[i].nacks - j < BATCH ? r->l[i].nacks - j : BATCH;
            redisReply *v = mget(c, i, r->l[i].acks + j, n);
            for (size_t k = 0; k < n; k++)
                tally(a, &r->l[i].acks[j + k], v->element[k]);
            freeReplyObject(v);
        }
    redisFree(c);
}

/* ---- the master SIGKILLed ---- */

static void report_kill_missing(const char *why)
{
    report_na("sentinel", "master SIGKILL: write gap", why);
    report_goal("sentinel write gap after a master SIGKILL <= down-after + 2.5 s", NAN,
                "<=", GAP_TARGET_MS, why);
}

/* The kill, under load: the switch heard, then writes resumed. False when either did not
 * happen in time. */
static bool kill_master(const deployment *d, load_run *r, uint64_t *t_kill, watch *w)
{
    int port = master_port(d);
    if (port < 0)
        die("no sentinel names the master");
    pid_t pid = pid_of_port(d, port);
    watch_start(d, w);
    *t_kill = now_ns();
    if (kill(pid, SIGKILL) != 0)
        die("cannot SIGKILL the master (pid %d): %s", (int)pid, strerror(errno));
    progress("sentinel: master on port %d SIGKILLed", port);
    bool ok = watch_wait(w, WAIT_MS) && load_progress(r, PROGRESS);
    watch_stop(w);
    return ok;
}

static void report_kill(const load_run *r, const watch *w, uint64_t t_kill, const audit *a)
{
    uint64_t first, last, resumed = first_ack_after(r, t_kill);
    watch_times(w, &first, &last);
    double gap = ms_between(t_kill, resumed);
    report_value("sentinel", "master SIGKILL: write gap (kill to first write acknowledged)", gap,
                 "ms");
    report_value("sentinel", "master SIGKILL: +switch-master after the kill (first sentinel)",
                 ms_between(t_kill, first), "ms");
    report_value("sentinel", "master SIGKILL: +switch-master, first to last sentinel",
                 ms_between(first, last), "ms");
    report_value("sentinel", "master SIGKILL: first write after the first +switch-master",
                 ms_between(first, resumed), "ms");
    report_value("sentinel", "master SIGKILL: calls failed during the gap",
                 (double)failed_between(r, t_kill, resumed), "calls");
    /* Acknowledged before the first write sent after the kill: by the old master, or by the
     * new one for a call that was under way at the kill and retried. */
    report_value("sentinel", "master SIGKILL: acknowledged before the gap ended, lost",
                 (double)(a->missing[0] + a->missing[1]), "writes");
    report_value("sentinel", "master SIGKILL: acknowledged after the gap, missing",
                 (double)a->missing[2], "writes");
    double lo, hi;
    char failed[400] = "";
    failed_spans(r, &lo, &hi);
    if (failed_total(r))
        snprintf(failed, sizeof failed, " (each after %.0f to %.0f ms), the first: %s", lo, hi,
                 first_failure(r));
    report_note("sentinel: SIGKILL: %ld writes acknowledged before the gap ended, %ld after it "
                "(checked on the new master); %ld calls failed in all%s",
                a->acked[0] + a->acked[1], a->acked[2], failed_total(r), failed);
    report_goal("sentinel write gap after a master SIGKILL <= down-after + 2.5 s", gap,
                "<=", GAP_TARGET_MS, NULL);
}

static void measure_kill(const deployment *d)
{
    rk_cache *c = open_cache(d);
    load_run r;
    load_start(&r, c);
    uint64_t t_kill = 0;
    watch w;
    bool ok = load_progress(&r, PROGRESS) && kill_master(d, &r, &t_kill, &w);
    load_stop(&r);
    if (!ok) {
        report_kill_missing("no switch, or writes did not resume, within 30 s");
    } else {
        audit a = {.edge = {t_kill, first_ack_after(&r, t_kill)}};
        audit_writes(w.to_port[0], &r, &a);
        report_kill(&r, &w, t_kill, &a);
    }
    load_free(&r);
    rk_cache_free(c);
}

/* ---- SENTINEL FAILOVER ---- */

#define FAILOVER_GOAL "sentinel writes acknowledged by the old master after the switch"

static void report_failover_missing(const char *why)
{
    report_na("sentinel", "SENTINEL FAILOVER: acknowledged after the switch, missing", why);
    report_goal(FAILOVER_GOAL, NAN, "==", 0, why);
}

/* SENTINEL FAILOVER on sentinel k, which runs the failover itself. */
static void failover(const deployment *d, int k)
{
    redisContext *c = bench_hiredis(&d->sentinel[k]);
    redisReply *r = c ? redisCommand(c, "SENTINEL FAILOVER %s", NAME) : NULL;
    if (!r || r->type != REDIS_REPLY_STATUS)
        die("SENTINEL FAILOVER %s on sentinel %d: %s", NAME, k,
            r && r->type == REDIS_REPLY_ERROR ? r->str : "no or an unexpected reply");
    freeReplyObject(r);
    redisFree(c);
}

/* Poll the old master's ROLE until a sentinel has converted it; now_ns() then, or 0 after
 * DEMOTE_MS. */
static uint64_t wait_demoted(int port)
{
    uint64_t end = now_ns() + DEMOTE_MS * MS;
    while (!is_replica(port)) {
        if (now_ns() > end)
            return 0;
        sleep_ns(50 * MS);
    }
    return now_ns();
}

typedef struct failover_times {
    int client;     /* the sentinel redkit listens to, -1: not found */
    int leader;     /* the one asked to fail over */
    uint64_t asked; /* now_ns() */
    uint64_t first; /* the first +switch-master */
    uint64_t heard; /* the client's sentinel's (the last one's when not found) */
    uint64_t demoted;
    int old_master, new_master;
} failover_times;

/* Asked of a sentinel redkit does not listen to, the failover is announced to redkit last:
 * the other sentinels learn of it from the leader's hello messages. */
static void failover_start(const deployment *d, failover_times *f, watch *w)
{
    f->client = client_sentinel(d);
    f->leader = (f->client + 1) % SENTINELS;
    f->old_master = master_port(d);
    watch_start(d, w);
    f->asked = now_ns();
    failover(d, f->leader);
}

/* The failover under load, until the old master has been converted and more writes went
 * through: a client that kept writing to it would have them acknowledged there, then thrown
 * away. False when the switch or the load stalled. */
static bool failover_under_load(const deployment *d, load_run *r, failover_times *f)
{
    watch w;
    failover_start(d, f, &w);
    bool ok = watch_wait(&w, WAIT_MS);
    watch_stop(&w);
    if (!ok)
        return false;
    uint64_t last;
    watch_times(&w, &f->first, &last);
    f->heard = f->client >= 0 ? w.at[f->client] : last;
    f->new_master = w.to_port[f->leader];
    progress("sentinel: switch from port %d to %d; waiting for the old master's demotion "
             "(10 to 20 s)",
             f->old_master, f->new_master);
    return load_progress(r, PROGRESS) && (f->demoted = wait_demoted(f->old_master)) &&
           load_progress(r, PROGRESS);
}

static void report_failover(const load_run *r, const failover_times *f, const audit *a)
{
    report_value("sentinel", "SENTINEL FAILOVER: +switch-master after the command (leader)",
                 ms_between(f->asked, f->first), "ms");
    report_value("sentinel", "SENTINEL FAILOVER: +switch-master, leader to redkit's sentinel",
                 ms_between(f->first, f->heard), "ms");
    report_value("sentinel", "SENTINEL FAILOVER: old master demoted after the switch",
                 ms_between(f->first, f->demoted), "ms");
    report_value("sentinel", "SENTINEL FAILOVER: calls failed", (double)failed_total(r), "calls");
    report_value("sentinel", "SENTINEL FAILOVER: acknowledged before the leader's switch, lost",
                 (double)a->missing[0], "writes");
    report_value("sentinel", "SENTINEL FAILOVER: acknowledged until redkit's sentinel's, lost",
                 (double)a->missing[1], "writes");
    report_value("sentinel", "SENTINEL FAILOVER: acknowledged after the switch, missing",
                 (double)a->missing[2], "writes");
    report_note("sentinel: FAILOVER asked of sentinel %d, redkit listens to sentinel %d; %ld "
                "writes acknowledged before the leader's +switch-master, %ld until %d ms after "
                "redkit's sentinel's, %ld after that (until the old master's demotion and %d "
                "more each), checked on the new master",
                f->leader, f->client, a->acked[0], a->acked[1], GRACE_MS, a->acked[2], PROGRESS);
    report_goal(FAILOVER_GOAL, (double)a->missing[2], "==", 0, NULL);
}

static void measure_failover(const deployment *d)
{
    rk_cache *c = open_cache(d);
    load_run r;
    load_start(&r, c);
    failover_times f = {0};
    bool ok = load_progress(&r, PROGRESS) && failover_under_load(d, &r, &f);
    load_stop(&r);
    if (!ok) {
        report_failover_missing("no switch, no demotion, or the load stalled, within the waits");
    } else {
        audit a = {.edge = {f.first, f.heard + GRACE_MS * MS}};
        audit_writes(f.new_master, &r, &a);
        report_failover(&r, &f, &a);
    }
    load_free(&r);
    rk_cache_free(c);
}

/* ---- the section ---- */

static void report_missing(const char *why)
{
    report_na("sentinel", "try_acquire + release, lock_replicas=1 / 0", why);
    report_kill_missing(why);
    report_failover_missing(why);
}

void bench_sentinel(const bench_opts *o)
{
    deployment d;
    char why[200];
    progress("sentinel: starting a private deployment (master, replica, 3 sentinels)");
    if (!start_deployment(o, &d, why, sizeof why)) {
        report_missing(why);
        return;
    }
    report_note("sentinel: private deployment %s, master %s (1 replica), down-after-milliseconds "
                "%d, failover-timeout 5000, quorum 2; load: %d threads, options.timeout %s",
                d.url, NAME, DOWN_AFTER_MS, THREADS, STORE_TIMEOUT);
    measure_lock_replicas(o, &d);
    measure_kill(&d);
    /* A fresh deployment: the killed master is gone, and the failover needs both nodes up. */
    progress("sentinel: a fresh deployment for SENTINEL FAILOVER");
    if (!start_deployment(o, &d, why, sizeof why)) {
        report_failover_missing(why);
        return;
    }
    measure_failover(&d);
    stop_deployment();
}
