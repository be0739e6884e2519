/* Auto-pipelining (options.auto_pipeline, src/pipeline.h): many threads on one rk_cache share
 * a connection, and every reply still reaches its own caller, through connection kills, a
 * server restart, a stalled server and close. Values carry their key, thread and round, so a
 * reply handed to the wrong caller cannot go unnoticed. Each case runs its own server. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_env.h"
#include "redkit/memolock.h"

enum { THREADS = 64, STALL_TIMEOUT_MS = 500, BOUND_MS = 2000 };

typedef struct worker {
    rk_cache *cache;
    int id;
    int rounds; /* 0: until `stop` */
    atomic_bool *stop;
    bool faults; /* failures are expected (kills, restarts): count them, check the rest */
    long ok, failed;
    int bad_rc;         /* a failure other than the expected ones, or 0 */
    char mismatch[256]; /* the first reply that was not this caller's, or "" */
} worker;

static void value_of(char *buf, size_t cap, const char *key, int id, int round)
{
    snprintf(buf, cap, "key=%s;thread=%d;round=%d", key, id, round);
}

/* A failure is expected only under faults, and only of the kinds a fault explains. */
static bool tolerated(worker *w, int rc)
{
    if (rc == RK_OK)
        return true;
    w->failed++;
    /* A restart loses what was stored: a miss is explained too. */
    if (w->faults && (rc == RK_EIO || rc == RK_ENOCONN || rc == RK_ETIMEDOUT || rc == RK_ENOTFOUND))
        return false;
    if (!w->bad_rc)
        w->bad_rc = rc;
    return false;
}

/* A store that failed may or may not have been applied (its reply was lost): the value is
 * then any of this caller's for that key, and the check is only that it is not another's. */
static bool own_earlier(const rk_buf *b, const char *want, bool stored)
{
    const char *round = strstr(want, ";round=");
    return !stored && b->data && round && strncmp(b->data, want, (size_t)(round - want)) == 0;
}

static void expect_value(worker *w, const rk_buf *b, const char *want, bool stored)
{
    if (w->faults && !b->data) /* lost in a restart */
        return;
    if (!w->mismatch[0] && (!b->data || strcmp(b->data, want) != 0) &&
        !own_earlier(b, want, stored))
        snprintf(w->mismatch, sizeof w->mismatch, "wanted '%s', got '%s'", want,
                 b->data ? b->data : "(miss)");
}

/* One round: store, retrieve, a batch stored and read back, remove, and a miss. */
static void round_of(worker *w, int round)
{
    char key[3][48], val[3][192];
    for (int i = 0; i < 3; i++) {
        snprintf(key[i], sizeof key[i], "t%d:k%d", w->id, (round + i) % 5);
        value_of(val[i], sizeof val[i], key[i], w->id, round);
    }
    rk_buf b = RK_BUF_INIT, many[3] = {RK_BUF_INIT, RK_BUF_INIT, RK_BUF_INIT};
    bool stored =
        tolerated(w, rk_cache_store(w->cache, NULL, key[0], val[0], strlen(val[0]), 60000));
    if (stored && tolerated(w, rk_cache_retrieve(w->cache, NULL, key[0], &b)))
        expect_value(w, &b, val[0], true), w->ok++;
    rk_cache_entry e[2] = {{key[1], val[1], strlen(val[1]), 60000},
                           {key[2], val[2], strlen(val[2]), 60000}};
    const char *keys[3] = {key[1], key[2], key[0]};
    if (tolerated(w, rk_cache_store_many(w->cache, NULL, e, 2)) &&
        tolerated(w, rk_cache_retrieve_many(w->cache, NULL, keys, 3, many))) {
        expect_value(w, &many[0], val[1], true);
        expect_value(w, &many[1], val[2], true);
        expect_value(w, &many[2], val[0], stored);
        w->ok++;
    }
    int rc = rk_cache_remove(w->cache, NULL, key[0]);
    if (tolerated(w, rc)) {
        rc = rk_cache_retrieve(w->cache, NULL, key[0], &b);
        if (rc == RK_ENOTFOUND)
            w->ok++;
        else if (tolerated(w, rc) && !w->mismatch[0])
            snprintf(w->mismatch, sizeof w->mismatch, "'%s' removed, then found '%s'", key[0],
                     b.data);
    }
    rk_buf_free(&b);
    for (int i = 0; i < 3; i++)
        rk_buf_free(&many[i]);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int r = 0; w->rounds ? r < w->rounds : !atomic_load(w->stop); r++)
        round_of(w, r);
    return NULL;
}

typedef struct crew {
    pthread_t tid[THREADS];
    worker w[THREADS];
    int n;
    atomic_bool stop;
} crew;

static void crew_start(crew *c, rk_cache *cache, int n, int rounds, bool faults)
{
    c->n = n;
    atomic_init(&c->stop, false);
    for (int i = 0; i < n; i++) {
        c->w[i] = (worker){cache, i, rounds, &c->stop, faults, 0, 0, 0, ""};
        ASSERT_EQ(pthread_create(&c->tid[i], NULL, worker_main, &c->w[i]), 0);
    }
}

/* Join, and check that no caller ever got another's reply or an unexplained failure. */
static long crew_join(crew *c)
{
    long ok = 0, failed = 0;
    atomic_store(&c->stop, true);
    for (int i = 0; i < c->n; i++)
        ASSERT_EQ(pthread_join(c->tid[i], NULL), 0);
    for (int i = 0; i < c->n; i++) {
        if (c->w[i].mismatch[0])
            rkt_fail(__FILE__, __LINE__, "thread %d: %s", i, c->w[i].mismatch);
        ASSERT_EQ(c->w[i].bad_rc, 0);
        ok += c->w[i].ok, failed += c->w[i].failed;
    }
    printf("     %d threads: %ld rounds' checks passed, %ld calls failed\n", c->n, ok, failed);
    return ok;
}

static long long info_field(rkt_server *s, const char *field)
{
    redisContext *a = rkt_server_admin(s);
    redisReply *r = rkt_cmd(a, "INFO", "all", NULL);
    const char *at = strstr(r->str, field);
    long long v = at ? atoll(at + strlen(field) + 1) : -1;
    freeReplyObject(r);
    redisFree(a);
    return v;
}

/* Every call of every thread gets its own reply, and the cache stays within
 * options.max_connections: with 1, every call shares that connection; with 8, a call takes a
 * free connection first and shares when all are busy. */
static void replies_matched_with(int max)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    char opt[48];
    snprintf(opt, sizeof opt, "options.max_connections=%d", max);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, opt));
    long long before = info_field(&s, "total_connections_received");
    crew cr;
    crew_start(&cr, c, THREADS, 40, false);
    ASSERT_EQ(crew_join(&cr), THREADS * 40 * 3);
    long long opened = info_field(&s, "total_connections_received") - before;
    printf("     connections opened by the cache while %d threads ran: %lld (at most %d)\n",
           THREADS, opened, max);
    ASSERT_GE(max, opened);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

static void mixed_threads_replies_matched(void)
{
    replies_matched_with(1);
    replies_matched_with(8);
}

/* The same with auto_pipeline off: the classic borrowed connections, for comparison. */
static void mixed_threads_without_pipelining(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, "options.auto_pipeline=false"));
    crew cr;
    crew_start(&cr, c, 16, 20, false);
    ASSERT_EQ(crew_join(&cr), 16 * 20 * 3);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

static void bad_option_is_named(void)
{
    rk_cache *c;
    ASSERT_OK(rk_cache_new(&c));
    rk_config *cfg =
        rkt_settings("connection.uri=redis://127.0.0.1:1;options.auto_pipeline=sometimes");
    ASSERT_RC(rk_cache_configure(c, cfg), RK_EINVAL);
    ASSERT_TRUE(strstr(rk_last_error()->message, "options.auto_pipeline") != NULL);
    rk_config_free(cfg);
    rk_cache_free(c);
}

/* Wait until the server has served `n` more GETs than `from` (an event, not a sleep). */
static long long gets(rkt_server *s) { return info_field(s, "cmdstat_get:calls"); }

static void wait_commands(rkt_server *s, long long from, long long n)
{
    while (gets(s) < from + n)
        usleep(2000);
}

/* CLIENT KILL of the shared connection, again and again: the calls written on it fail (or are
 * retried on a new one), the others carry on, and no reply goes astray. */
static void connection_kills_mid_stream(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, "options.retries=1"));
    crew cr;
    crew_start(&cr, c, 16, 0, true);
    redisContext *a = rkt_server_admin(&s);
    for (int k = 0; k < 20; k++) {
        wait_commands(&s, gets(&s), 200);
        freeReplyObject(rkt_cmd(a, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes", NULL));
    }
    redisFree(a);
    ASSERT_GE(crew_join(&cr), 16);
    crew_start(&cr, c, 16, 5, false); /* and all is well afterwards */
    ASSERT_EQ(crew_join(&cr), 16 * 5 * 3);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* SIGKILL and restart of the server while 16 threads call. */
static void server_restart_mid_stream(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, "options.connect_timeout=1000"));
    crew cr;
    crew_start(&cr, c, 16, 0, true);
    wait_commands(&s, 0, 2000);
    rkt_server_restart(&s);
    wait_commands(&s, 0, 2000);
    crew_join(&cr);
    crew_start(&cr, c, 16, 5, false);
    ASSERT_EQ(crew_join(&cr), 16 * 5 * 3);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

typedef struct stalled_call {
    rk_cache *cache;
    int id;
    int rc;
    uint64_t took_ms;
} stalled_call;

static void *stalled_main(void *arg)
{
    stalled_call *j = arg;
    char key[32];
    rk_buf b = RK_BUF_INIT;
    snprintf(key, sizeof key, "stalled%d", j->id);
    uint64_t t0 = rkt_now_ms();
    j->rc = rk_cache_retrieve(j->cache, NULL, key, &b);
    j->took_ms = rkt_now_ms() - t0;
    rk_buf_free(&b);
    return NULL;
}

static void run_stalled(rk_cache *c, stalled_call *j, pthread_t *tid, int n)
{
    for (int i = 0; i < n; i++) {
        j[i] = (stalled_call){c, i, -1, 0};
        ASSERT_EQ(pthread_create(&tid[i], NULL, stalled_main, &j[i]), 0);
    }
}

/* A stalled server (SIGSTOP): every queued caller leaves at its own deadline; when the server
 * wakes up, the late replies are dropped and later calls get their own. */
static void deadline_with_stalled_server(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, "options.timeout=500"));
    crew cr;
    crew_start(&cr, c, 8, 3, false); /* the shared connection is open and warm */
    crew_join(&cr);
    ASSERT_EQ(kill(s.pid, SIGSTOP), 0);
    stalled_call j[16];
    pthread_t tid[16];
    run_stalled(c, j, tid, 16);
    for (int i = 0; i < 16; i++) {
        ASSERT_EQ(pthread_join(tid[i], NULL), 0);
        ASSERT_RC(j[i].rc, RK_ETIMEDOUT);
        ASSERT_LT(j[i].took_ms, BOUND_MS);
    }
    ASSERT_EQ(kill(s.pid, SIGCONT), 0);
    crew_start(&cr, c, 16, 5, false);
    ASSERT_EQ(crew_join(&cr), 16 * 5 * 3);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* Close while calls wait on a stalled server: each fails with RK_ENOTOPEN at once. */
static void close_fails_calls_in_flight(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, "options.timeout=20000"));
    crew cr;
    crew_start(&cr, c, 4, 2, false);
    crew_join(&cr);
    ASSERT_EQ(kill(s.pid, SIGSTOP), 0);
    stalled_call j[16];
    pthread_t tid[16];
    run_stalled(c, j, tid, 16);
    while (rkt_server_unanswered(&s) < 1)
        usleep(1000);
    uint64_t t0 = rkt_now_ms();
    ASSERT_OK(rk_cache_close(c, NULL));
    for (int i = 0; i < 16; i++) {
        ASSERT_EQ(pthread_join(tid[i], NULL), 0);
        ASSERT_RC(j[i].rc, RK_ENOTOPEN);
    }
    ASSERT_LT(rkt_now_ms() - t0, BOUND_MS);
    ASSERT_EQ(kill(s.pid, SIGCONT), 0);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

typedef struct parent_call {
    rk_cache *cache;
    int rc;
    rk_buf value;
} parent_call;

static void *parent_main(void *arg)
{
    parent_call *j = arg;
    j->rc = rk_cache_retrieve(j->cache, NULL, "forked", &j->value);
    return NULL;
}

/* fork() while a thread's call waits on the shared connection (the server stopped): the child
 * uses a connection of its own and never reads the parent's reply; the parent's call gets it. */
static void fork_while_a_call_waits(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, "options.timeout=10000"));
    ASSERT_OK(rk_cache_store(c, NULL, "forked", "parent", 6, 60000));
    ASSERT_EQ(kill(s.pid, SIGSTOP), 0);
    parent_call j = {c, -1, RK_BUF_INIT};
    pthread_t tid;
    ASSERT_EQ(pthread_create(&tid, NULL, parent_main, &j), 0);
    while (rkt_server_unanswered(&s) < 1)
        usleep(1000);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) { /* no assertion here: _exit, so the child never stops the parent's server */
        rk_buf b = RK_BUF_INIT;
        int ok = rk_cache_store(c, NULL, "child", "child", 5, 60000) == RK_OK &&
                 rk_cache_retrieve(c, NULL, "child", &b) == RK_OK && strcmp(b.data, "child") == 0;
        _exit(ok ? 0 : 1);
    }
    ASSERT_EQ(kill(s.pid, SIGCONT), 0);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_EQ(pthread_join(tid, NULL), 0);
    ASSERT_OK(j.rc);
    ASSERT_STR_EQ(j.value.data, "parent");
    rk_buf_free(&j.value);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* Large values are read straight into the reply (conn.c): sizes around the threshold and
 * past it, alone and behind other replies, from several threads, byte for byte. */
typedef struct big_job {
    rk_cache *cache;
    int id;
    char bad[128];
} big_job;

static void fill_pattern(char *v, size_t len, int id)
{
    for (size_t i = 0; i < len; i++)
        v[i] = (char)('A' + (i * 7 + (size_t)id) % 61);
}

static void *big_main(void *arg)
{
    big_job *j = arg;
    static const size_t sizes[] = {65535, 65536, 65537, 1 << 20, (3 << 20) + 7, 10};
    char key[32];
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes && !j->bad[0]; k++) {
        size_t len = sizes[k];
        char *v = malloc(len);
        fill_pattern(v, len, j->id + (int)k);
        snprintf(key, sizeof key, "big%d", j->id);
        rk_buf b = RK_BUF_INIT;
        int rc = rk_cache_store(j->cache, NULL, key, v, len, 60000);
        if (rc == RK_OK)
            rc = rk_cache_retrieve(j->cache, NULL, key, &b);
        if (rc != RK_OK)
            snprintf(j->bad, sizeof j->bad, "%zu bytes: rc %d", len, rc);
        else if (b.len != len || memcmp(b.data, v, len) != 0 || b.data[len] != '\0')
            snprintf(j->bad, sizeof j->bad, "%zu bytes: got %zu, not the value stored", len, b.len);
        rk_buf_free(&b);
        free(v);
    }
    return NULL;
}

static void large_values_intact(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, NULL));
    big_job j[8];
    pthread_t tid[8];
    for (int i = 0; i < 8; i++) {
        j[i] = (big_job){c, i, ""};
        ASSERT_EQ(pthread_create(&tid[i], NULL, big_main, &j[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(pthread_join(tid[i], NULL), 0);
        if (j[i].bad[0])
            rkt_fail(__FILE__, __LINE__, "thread %d: %s", i, j[i].bad);
    }
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* ---- a call that cannot share still gets a connection ---- */

typedef struct reader {
    rk_memolock *memo;
    atomic_bool *stop;
    atomic_long *reads;
    int bad_rc;
} reader;

static int fetch_hot(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    *ttl_ms = 60000;
    return rk_buf_set(value, "hot", 3);
}

static int fetch_cold(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    *ttl_ms = 60000;
    return rk_buf_set(value, ud, strlen(ud));
}

/* A memolock read of a cached value is one GET: it may share or take a free connection. */
static void *reader_main(void *arg)
{
    reader *r = arg;
    rk_buf b = RK_BUF_INIT;
    while (!atomic_load(r->stop)) {
        int rc = rk_memolock_get(r->memo, NULL, "hot", 5000, fetch_hot, NULL, &b);
        if (rc != RK_OK && !r->bad_rc)
            r->bad_rc = rc;
        atomic_fetch_add(r->reads, 1);
    }
    rk_buf_free(&b);
    return NULL;
}

/* 32 threads keep the connections busy with plain reads while misses, whose lock script needs
 * a connection of its own, keep coming: each must still get one within its deadline. (Plain
 * reads that find a caller waiting for a connection join the shared one rather than take the
 * next free connection.) */
static void script_gets_a_connection(int max)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    char opt[128];
    snprintf(opt, sizeof opt,
             "options.resource_tag=starve;options.max_connections=%d;options.timeout=3000", max);
    rk_memolock *m = rkt_open_memolock(rkt_server_config(&s, opt));
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get(m, NULL, "hot", 5000, fetch_hot, NULL, &b));
    atomic_bool stop = false;
    atomic_long reads = 0;
    reader r[32];
    pthread_t tid[32];
    for (int i = 0; i < 32; i++) {
        r[i] = (reader){m, &stop, &reads, 0};
        ASSERT_EQ(pthread_create(&tid[i], NULL, reader_main, &r[i]), 0);
    }
    while (atomic_load(&reads) < 500) /* the readers are at it */
        usleep(1000);
    long before = atomic_load(&reads), during = 0;
    uint64_t worst = 0, t0 = rkt_now_ms();
    int misses = 0;
    /* Misses until the reads have gone on through many of them (under valgrind the readers
     * are slow), within a bound. */
    while (misses < 50 || (during < 100 && rkt_now_ms() - t0 < 30000)) {
        char id[32], want[48];
        snprintf(id, sizeof id, "cold%d", misses++);
        snprintf(want, sizeof want, "value of %s", id);
        uint64_t t1 = rkt_now_ms();
        ASSERT_OK(rk_memolock_get(m, NULL, id, 5000, fetch_cold, want, &b));
        ASSERT_STR_EQ(b.data, want);
        if (rkt_now_ms() - t1 > worst)
            worst = rkt_now_ms() - t1;
        during = atomic_load(&reads) - before;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 32; i++) {
        ASSERT_EQ(pthread_join(tid[i], NULL), 0);
        ASSERT_EQ(r[i].bad_rc, 0);
    }
    printf("     max_connections %d: %d misses (slowest %llu ms) during %ld reads\n", max, misses,
           (unsigned long long)worst, during);
    ASSERT_GE(during, 100); /* the reads did keep the connections busy meanwhile */
    rk_buf_free(&b);
    rk_memolock_free(m);
    rkt_server_stop(&s);
}

static void script_not_starved_by_shared_calls(void)
{
    script_gets_a_connection(1);
    script_gets_a_connection(2);
}

RKT_MAIN(RKT_CASE(large_values_intact), RKT_CASE(bad_option_is_named),
         RKT_CASE(mixed_threads_replies_matched), RKT_CASE(mixed_threads_without_pipelining),
         RKT_CASE(connection_kills_mid_stream), RKT_CASE(server_restart_mid_stream),
         RKT_CASE(deadline_with_stalled_server), RKT_CASE(close_fails_calls_in_flight),
         RKT_CASE(fork_while_a_call_waits), RKT_CASE(script_not_starved_by_shared_calls))
