/* Redis Sentinel failovers under load from 4 threads: the master SIGKILLed (the write gap,
 * timed), SENTINEL FAILOVER with the old master up, the master paused past the failover and
 * resumed, the sentinel the client listens to killed before a failover, and every sentinel
 * down at open. Each case starts a deployment of its own.
 *
 * What "no write acknowledged by the old master" is checked against: every write is a key of
 * its own, and each thread records when every acknowledged store started and returned. A
 * demoted master resyncs from the new one and throws its data away, and the new master never
 * loses an acknowledged write (nothing fails over again), so an acknowledged key missing on the
 * new master at the end is a write the old master acknowledged after the replica was promoted
 * (or just before, not yet replicated). Those acknowledged before the sentinels announced the
 * switch are the price of asynchronous replication, which no client can avoid, and are only
 * counted; none may start after the announcement. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "sentinel_env.h"

#define NAME "rkt-master"
#define THREADS 4
/* The client hears +switch-master on its own subscription, as this test does on its own: a
 * call that starts within this long after the test heard it may still have been sent on its
 * way by a client that is right. */
#define GRACE_MS 200
#define WAIT_MS 30000
/* A sentinel converts a demoted master that still says master 8 s after it first reports so,
 * and asks it for INFO every 10 s: 10 to 20 s after the switch. */
#define DEMOTE_MS 60000

/* ---- load from 4 threads: a key per store, read back at once ---- */

typedef struct {
    uint32_t seq;
    uint64_t start_ms, ack_ms;
} ack;

typedef struct {
    rk_cache *cache;
    int id;
    atomic_bool *stop;
    ack *acks; /* every acknowledged store; the thread's own until it is joined */
    size_t nacks, cap;
    long ok;           /* store and read back, atomic: load_progress reads it */
    long failed;       /* calls that returned an error */
    long unread;       /* acknowledged stores whose read back found nothing */
    uint64_t worst_ms; /* the longest store + retrieve */
    int first_code;    /* of the first failure */
    char first_message[256];
} loader;

static void key_of(char *buf, size_t n, int id, uint32_t seq)
{
    snprintf(buf, n, "w:%d:%u", id, seq);
}

static void record(loader *l, uint32_t seq, uint64_t t0, uint64_t t1)
{
    if (l->nacks == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->acks = realloc(l->acks, l->cap * sizeof *l->acks);
        ASSERT_TRUE(l->acks != NULL);
    }
    l->acks[l->nacks++] = (ack){seq, t0, t1};
}

static void failure(loader *l, int rc)
{
    if (l->failed++ == 0) {
        l->first_code = rc;
        snprintf(l->first_message, sizeof l->first_message, "%s", rk_last_error()->message);
    }
}

/* A store, and when it is acknowledged the read back (ENOTFOUND: acknowledged by a master that
 * is no longer the one read from). */
static int one_write(loader *l, uint32_t seq)
{
    char key[32], val[16];
    key_of(key, sizeof key, l->id, seq);
    int n = snprintf(val, sizeof val, "%u", seq);
    uint64_t t0 = rkt_now_ms();
    int rc = rk_cache_store(l->cache, NULL, key, val, (size_t)n, 600000);
    if (rc != RK_OK)
        return rc;
    record(l, seq, t0, rkt_now_ms());
    rk_buf out = RK_BUF_INIT;
    rc = rk_cache_retrieve(l->cache, NULL, key, &out);
    if (rc == RK_OK && (out.len != (size_t)n || memcmp(out.data, val, (size_t)n)))
        rkt_fail(__FILE__, __LINE__, "%s read back %.*s, not %s", key, (int)out.len,
                 out.data ? out.data : "", val);
    rk_buf_free(&out);
    l->unread += rc == RK_ENOTFOUND;
    return rc;
}

static void *load(void *arg)
{
    loader *l = arg;
    for (uint32_t seq = 0; !atomic_load(l->stop); seq++) {
        uint64_t t0 = rkt_now_ms();
        int rc = one_write(l, seq);
        uint64_t took = rkt_now_ms() - t0;
        if (took > l->worst_ms)
            l->worst_ms = took;
        if (rc == RK_OK)
            __atomic_fetch_add(&l->ok, 1, __ATOMIC_RELAXED);
        else if (rc != RK_ENOTFOUND) /* counted as unread: the store itself succeeded */
            failure(l, rc);
    }
    return NULL;
}

typedef struct {
    loader l[THREADS];
    pthread_t t[THREADS];
    atomic_bool stop;
    long ok, failed, unread;
    uint64_t worst;
} load_run;

static void load_start(load_run *r, rk_cache *c)
{
    memset(r, 0, sizeof *r);
    atomic_init(&r->stop, false);
    for (int i = 0; i < THREADS; i++) {
        r->l[i] = (loader){.cache = c, .id = i, .stop = &r->stop};
        pthread_create(&r->t[i], NULL, load, &r->l[i]);
    }
}

static void print_failures(const load_run *r)
{
    for (int i = 0; i < THREADS; i++)
        if (r->l[i].failed)
            printf("     thread %d: %ld failed, the first %d: %s\n", i, r->l[i].failed,
                   r->l[i].first_code, r->l[i].first_message);
}

/* Let the load run until every thread has done `more` more successful writes. */
static void load_progress(load_run *r, long more)
{
    long target[THREADS];
    for (int i = 0; i < THREADS; i++)
        target[i] = __atomic_load_n(&r->l[i].ok, __ATOMIC_RELAXED) + more;
    uint64_t t0 = rkt_now_ms();
    for (int i = 0; i < THREADS; i++)
        while (__atomic_load_n(&r->l[i].ok, __ATOMIC_RELAXED) < target[i]) {
            if (rkt_now_ms() - t0 > WAIT_MS) {
                print_failures(r);
                rkt_fail(__FILE__, __LINE__, "thread %d made no progress for %d ms", i, WAIT_MS);
            }
            usleep(1000);
        }
}

static void load_stop(load_run *r)
{
    atomic_store(&r->stop, true);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(r->t[i], NULL);
        r->ok += r->l[i].ok, r->failed += r->l[i].failed, r->unread += r->l[i].unread;
        if (r->l[i].worst_ms > r->worst)
            r->worst = r->l[i].worst_ms;
    }
    print_failures(r);
}

static void load_free(load_run *r)
{
    for (int i = 0; i < THREADS; i++)
        free(r->l[i].acks);
}

/* The first write that started at or after `t` and was acknowledged; UINT64_MAX: none. */
static uint64_t first_ack_after(const load_run *r, uint64_t t)
{
    uint64_t first = UINT64_MAX;
    for (int i = 0; i < THREADS; i++)
        for (size_t j = 0; j < r->l[i].nacks; j++)
            if (r->l[i].acks[j].start_ms >= t && r->l[i].acks[j].ack_ms < first)
                first = r->l[i].acks[j].ack_ms;
    return first;
}

/* ---- the acknowledged writes against the new master ---- */

/* Which acknowledged writes must be on the new master: those started at or after `start_cut`,
 * or acknowledged at or after `ack_cut` (UINT64_MAX: no such condition). */
typedef struct {
    uint64_t start_cut, ack_cut;
    uint64_t switch_ms; /* to print when a missing write ran, relative to the switch */
    long checked, missing, missing_before; /* must be there / not there / the others missing */
} audit;

static bool must_survive(const audit *a, const ack *k)
{
    return k->start_ms >= a->start_cut || k->ack_ms >= a->ack_cut;
}

enum { BATCH = 200 };

/* MGET of one batch of thread `id`'s acknowledged keys; the reply's elements in their order. */
static redisReply *mget(redisContext *c, int id, const ack *acks, size_t n)
{
    static char keys[BATCH][64];
    const char *argv[BATCH + 1] = {"MGET"};
    size_t len[BATCH + 1] = {4};
    for (size_t j = 0; j < n; j++) {
        char key[32];
        key_of(key, sizeof key, id, acks[j].seq);
        len[j + 1] = (size_t)snprintf(keys[j], sizeof keys[j], "%s%s", rkt_prefix(), key);
        argv[j + 1] = keys[j];
    }
    redisReply *r = redisCommandArgv(c, (int)n + 1, argv, len);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n)
        rkt_fail(__FILE__, __LINE__, "MGET on the new master failed: %s",
                 r ? "unexpected reply" : c->errstr);
    return r;
}

static void tally(audit *a, int id, const ack *k, const redisReply *v)
{
    bool there = v->type == REDIS_REPLY_STRING && (uint32_t)atol(v->str) == k->seq;
    bool must = must_survive(a, k);
    a->checked += must;
    if (there)
        return;
    if (!must) {
        a->missing_before++;
        return;
    }
    if (a->missing++ < 5)
        printf("     LOST: thread %d write %u started %+lld ms, acknowledged %+lld ms from the "
               "switch\n",
               id, k->seq, (long long)(k->start_ms - a->switch_ms),
               (long long)(k->ack_ms - a->switch_ms));
}

static void audit_writes(rkt_sentinel *s, int m, const load_run *r, audit *a)
{
    redisContext *c = rkt_sentinel_node_raw(s, m);
    for (int i = 0; i < THREADS; i++)
        for (size_t j = 0; j < r->l[i].nacks; j += BATCH) {
            size_t n = r->l[i].nacks - j < BATCH ? r->l[i].nacks - j : BATCH;
            redisReply *v = mget(c, i, r->l[i].acks + j, n);
            for (size_t k = 0; k < n; k++)
                tally(a, i, &r->l[i].acks[j + k], v->element[k]);
            freeReplyObject(v);
        }
    redisFree(c);
    printf("     %ld acknowledged writes checked on the new master: %ld missing; %ld lost "
           "before the switch was announced\n",
           a->checked, a->missing, a->missing_before);
}

/* One batch read back through the library: each key holds its write's number. */
static void read_batch(rk_cache *cache, char (*keys)[32], const uint32_t *seq, size_t n)
{
    const char *kp[BATCH] = {NULL};
    rk_buf outs[BATCH] = {RK_BUF_INIT}; /* retrieve_many frees what they hold first */
    for (size_t j = 0; j < n; j++)
        kp[j] = keys[j];
    ASSERT_OK(rk_cache_retrieve_many(cache, NULL, kp, n, outs));
    for (size_t j = 0; j < n; j++) {
        char val[16];
        int len = snprintf(val, sizeof val, "%u", seq[j]);
        if (outs[j].len != (size_t)len || memcmp(outs[j].data, val, (size_t)len))
            rkt_fail(__FILE__, __LINE__, "%s does not read back as %s", keys[j], val);
        rk_buf_free(&outs[j]);
    }
}

/* The same writes read back through the library: every one the audit required. */
static void read_back(rk_cache *cache, const load_run *r, const audit *a)
{
    static char keys[BATCH][32];
    uint32_t seq[BATCH];
    size_t n = 0;
    for (int i = 0; i < THREADS; i++)
        for (size_t j = 0; j < r->l[i].nacks; j++) {
            const ack *k = &r->l[i].acks[j];
            if (!must_survive(a, k))
                continue;
            key_of(keys[n], sizeof keys[n], i, k->seq);
            seq[n++] = k->seq;
            if (n == BATCH)
                read_batch(cache, keys, seq, n), n = 0;
        }
    if (n > 0)
        read_batch(cache, keys, seq, n);
}

/* ---- helpers ---- */

static void start(rkt_sentinel *s)
{
    uint64_t t0 = rkt_now_ms();
    rkt_sentinel_start(s, NAME);
    printf("     sentinel fixture started in %llu ms\n", (unsigned long long)(rkt_now_ms() - t0));
}

static rk_cache *open_cache(const rkt_sentinel *s, const char *extra)
{
    return rkt_open_cache(rkt_sentinel_config(s, extra));
}

/* ---- the master SIGKILLed ---- */

/* Writes fail (or wait) until a sentinel promotes the replica, then resume; every write
 * acknowledged from then on is on the new master and reads back. The write gap runs from the
 * kill to the first acknowledged write sent after it. */
static void master_killed_under_load(void)
{
    rkt_sentinel s;
    start(&s);
    rk_cache *c = open_cache(&s, "options.timeout=2000;options.connect_timeout=500");
    load_run r;
    load_start(&r, c);
    load_progress(&r, 50);
    rkt_sentinel_watch w;
    rkt_sentinel_watch_start(&s, &w);
    uint64_t t_kill = rkt_now_ms();
    rkt_server_kill(&s.node[0]);
    uint64_t t_dead = rkt_now_ms();
    uint64_t t_switch = rkt_sentinel_watch_wait(&w, WAIT_MS);
    rkt_sentinel_watch_stop(&w);
    int m = rkt_sentinel_wait_failover(&s, 0, WAIT_MS);
    load_progress(&r, 100); /* resumed */
    load_stop(&r);

    uint64_t resumed = first_ack_after(&r, t_dead);
    ASSERT_TRUE(resumed != UINT64_MAX);
    long long gap = (long long)(resumed - t_kill), lag = (long long)resumed - (long long)t_switch;
    printf("     write gap %lld ms (target %d ms): the switch announced %llu ms after the kill, "
           "the first write acknowledged %lld ms after that; %ld ok, %ld failed, %ld not read "
           "back, longest call %llu ms\n",
           gap, RKT_SENTINEL_DOWN_AFTER_MS + 2500, (unsigned long long)(t_switch - t_kill), lag,
           r.ok, r.failed, r.unread, (unsigned long long)r.worst);
    ASSERT_LT(lag, 1000);                /* the client follows the announcement at once */
    ASSERT_LT(r.worst, 2 * 2000 + 1000); /* store + retrieve, each within options.timeout */
    for (int i = 0; i < THREADS; i++)
        if (r.l[i].failed)
            ASSERT_TRUE(r.l[i].first_code == RK_EIO || r.l[i].first_code == RK_ETIMEDOUT ||
                        r.l[i].first_code == RK_ENOCONN || r.l[i].first_code == RK_EREPLY);

    audit a = {.start_cut = UINT64_MAX, .ack_cut = resumed, .switch_ms = t_switch};
    audit_writes(&s, m, &r, &a);
    ASSERT_EQ(a.missing, 0);
    ASSERT_GE(a.checked, 4 * 100);
    read_back(c, &r, &a);
    load_free(&r);
    rk_cache_free(c);
    rkt_sentinel_stop(&s);
}

/* ---- SENTINEL FAILOVER ---- */

/* A failover with both nodes up, run while the load goes on, until the old master has been
 * converted into a replica (it says master for about 10 s after the switch: a client that
 * stayed would have its writes acknowledged there, then thrown away). */
static void failover_under_load(rkt_sentinel *s, load_run *r, audit *a)
{
    rkt_sentinel_watch w;
    rkt_sentinel_watch_start(s, &w);
    uint64_t t0 = rkt_now_ms();
    rkt_sentinel_failover(s);
    a->switch_ms = rkt_sentinel_watch_wait(&w, WAIT_MS);
    rkt_sentinel_watch_stop(&w);
    a->start_cut = a->switch_ms + GRACE_MS;
    int m = rkt_sentinel_wait_failover(s, 0, WAIT_MS);
    load_progress(r, 50);
    rkt_sentinel_wait_ok(s, DEMOTE_MS); /* the old master is a replica now */
    uint64_t demoted = rkt_now_ms();
    load_progress(r, 50);
    load_stop(r);
    printf("     switch announced %llu ms after SENTINEL FAILOVER, old master demoted %llu ms "
           "after the switch; %ld ok, %ld failed, longest call %llu ms\n",
           (unsigned long long)(a->switch_ms - t0), (unsigned long long)(demoted - a->switch_ms),
           r->ok, r->failed, (unsigned long long)r->worst);
    audit_writes(s, m, r, a);
}

static void sentinel_failover_under_load(void)
{
    rkt_sentinel s;
    start(&s);
    rk_cache *c = open_cache(&s, "options.timeout=2000;options.connect_timeout=500");
    load_run r;
    load_start(&r, c);
    load_progress(&r, 50);
    audit a = {.ack_cut = UINT64_MAX};
    failover_under_load(&s, &r, &a);
    ASSERT_EQ(a.missing, 0); /* zero writes acknowledged by the old master after the switch */
    ASSERT_GE(a.checked, 4 * 100);
    ASSERT_EQ(r.failed, 0); /* a master answered all along */
    read_back(c, &r, &a);
    load_free(&r);
    rk_cache_free(c);
    rkt_sentinel_stop(&s);
}

/* The sentinel holding the client's +switch-master subscription (a TCP client subscribed to
 * something: this test's own subscriptions use the Unix socket) dies; a failover follows, which
 * the client must hear of from another sentinel. */
static int subscribed_sentinel(const rkt_sentinel *s)
{
    for (uint64_t t0 = rkt_now_ms(); rkt_now_ms() - t0 < 5000; usleep(20 * 1000))
        for (int k = 0; k < RKT_SENTINELS; k++) {
            redisContext *c = rkt_sentinel_sentinel_raw(s, k);
            redisReply *r = rkt_cmd(c, "CLIENT", "LIST", NULL);
            bool found = false;
            for (const char *line = r->type == REDIS_REPLY_STRING ? r->str : NULL;
                 line && *line && !found; line = strchr(line, '\n'), line += !!line) {
                const char *end = strchr(line, '\n');
                size_t n = end ? (size_t)(end - line) : strlen(line);
                char buf[1024];
                snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1), line);
                found = strstr(buf, " addr=127.0.0.1:") &&
                        (!strstr(buf, " sub=0 ") || !strstr(buf, " psub=0 "));
            }
            freeReplyObject(r);
            redisFree(c);
            if (found)
                return k;
        }
    rkt_fail(__FILE__, __LINE__, "no sentinel has a subscription from the client");
}

static void subscribed_sentinel_killed_then_failover(void)
{
    rkt_sentinel s;
    start(&s);
    rk_cache *c = open_cache(&s, "options.timeout=2000;options.connect_timeout=500");
    load_run r;
    load_start(&r, c);
    load_progress(&r, 50);
    int k = subscribed_sentinel(&s);
    printf("     the client listens to sentinel %d: killed\n", k);
    rkt_server_kill(&s.sentinel[k]);
    load_progress(&r, 50); /* one sentinel down changes nothing */
    audit a = {.ack_cut = UINT64_MAX};
    failover_under_load(&s, &r, &a);
    ASSERT_EQ(a.missing, 0);
    ASSERT_GE(a.checked, 4 * 100);
    ASSERT_EQ(r.failed, 0);
    read_back(c, &r, &a);
    load_free(&r);
    rk_cache_free(c);
    rkt_sentinel_stop(&s);
}

/* ---- the master paused past the failover ---- */

/* SIGSTOP: calls to the master hang (bounded by options.timeout); the sentinels promote the
 * replica; SIGCONT at once, while calls sent to the old master before the switch are still
 * within their 5 s deadline: on a connection the client kept it would answer them, and it goes
 * on saying master for 10 to 20 s. None of it may count: every write acknowledged after the
 * resumption is on the new master. */
static void paused_master_resumed_after_failover(void)
{
    rkt_sentinel s;
    start(&s);
    rk_cache *c = open_cache(&s, "options.timeout=5000;options.connect_timeout=500");
    load_run r;
    load_start(&r, c);
    load_progress(&r, 50);
    rkt_sentinel_watch w;
    rkt_sentinel_watch_start(&s, &w);
    uint64_t t_stop = rkt_now_ms();
    ASSERT_EQ(kill(s.node[0].pid, SIGSTOP), 0);
    audit a = {.ack_cut = UINT64_MAX};
    a.switch_ms = rkt_sentinel_watch_wait(&w, WAIT_MS);
    rkt_sentinel_watch_stop(&w);
    int m = rkt_sentinel_wait_failover(&s, 0, WAIT_MS);
    a.ack_cut = rkt_now_ms();
    ASSERT_EQ(kill(s.node[0].pid, SIGCONT), 0);
    a.start_cut = a.switch_ms + GRACE_MS;
    load_progress(&r, 50);
    rkt_sentinel_wait_ok(&s, DEMOTE_MS); /* the old master is a replica now */
    load_progress(&r, 50);
    load_stop(&r);
    uint64_t resumed = first_ack_after(&r, t_stop);
    printf("     paused: switch announced %llu ms after SIGSTOP, resumed %llu ms after it, "
           "first write acknowledged %lld ms after the switch; %ld ok, %ld failed, longest "
           "call %llu ms\n",
           (unsigned long long)(a.switch_ms - t_stop), (unsigned long long)(a.ack_cut - t_stop),
           (long long)resumed - (long long)a.switch_ms, r.ok, r.failed,
           (unsigned long long)r.worst);
    audit_writes(&s, m, &r, &a);
    ASSERT_EQ(a.missing, 0); /* no write acknowledged by the old master once demoted */
    ASSERT_GE(a.checked, 4 * 100);
    ASSERT_LT(r.worst, 2 * 5000 + 1000);
    read_back(c, &r, &a);
    load_free(&r);
    rk_cache_free(c);
    rkt_sentinel_stop(&s);
}

/* ---- every sentinel down ---- */

/* The open fails with RK_ENOCONN naming every sentinel, within options.timeout. */
static void open_fails_naming_the_sentinels(const rkt_sentinel *s, const char *how)
{
    enum { TIMEOUT = 3000 };
    char extra[96];
    snprintf(extra, sizeof extra, "options.timeout=%d;options.connect_timeout=300", TIMEOUT);
    rk_cache *c;
    uint64_t t0 = rkt_now_ms();
    int rc = rkt_try_open_cache(rkt_sentinel_config(s, extra), &c);
    uint64_t took = rkt_now_ms() - t0;
    printf("     sentinels %s: the open failed after %llu ms: %s\n", how, (unsigned long long)took,
           rk_last_error()->message);
    ASSERT_RC(rc, RK_ENOCONN);
    for (int k = 0; k < RKT_SENTINELS; k++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", s->sentinel[k].port);
        ASSERT_CONTAINS(rk_last_error()->message, addr);
    }
    ASSERT_LT(took, TIMEOUT + 500);
    rk_cache_free(c);
}

/* Paused, a sentinel accepts a connection (the kernel does) and never answers: each one is
 * bounded by options.connect_timeout. Killed, it refuses at once. */
static void all_sentinels_down_at_open(void)
{
    rkt_sentinel s;
    start(&s);
    for (int k = 0; k < RKT_SENTINELS; k++)
        ASSERT_EQ(kill(s.sentinel[k].pid, SIGSTOP), 0);
    open_fails_naming_the_sentinels(&s, "paused");
    for (int k = 0; k < RKT_SENTINELS; k++)
        rkt_server_kill(&s.sentinel[k]);
    open_fails_naming_the_sentinels(&s, "killed");
    rkt_sentinel_stop(&s);
}

RKT_MAIN(RKT_CASE(all_sentinels_down_at_open), RKT_CASE(master_killed_under_load),
         RKT_CASE(sentinel_failover_under_load), RKT_CASE(subscribed_sentinel_killed_then_failover),
         RKT_CASE(paused_master_resumed_after_failover))
