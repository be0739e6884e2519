/* The three components through Redis Sentinel (a master, its replica, 3 sentinels), without a
 * failover: what they store lives on the master the sentinels name; the lock's hand-off and the
 * memolock's single fetch, which ride on Pub/Sub; options.lock_replicas with the replica
 * running and paused, and its cost; one sentinel down at open; passwords for the master and
 * for the sentinels; and the configurations Sentinel mode refuses. One deployment serves the
 * cases that leave it as they found it; each case uses keys of its own. The failovers are in
 * test_sentinel_faults.c. */
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sentinel_env.h"

static rkt_sentinel sentinel;

static rk_config *cfg(const char *extra) { return rkt_sentinel_config(&sentinel, extra); }

/* The reply to GET <prefix><key> on the master the sentinels name now (NULL for nil). */
static redisReply *master_get(const char *key)
{
    int m = rkt_sentinel_master(&sentinel);
    ASSERT_GE(m, 0);
    char full[256];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    redisContext *c = rkt_sentinel_node_raw(&sentinel, m);
    redisReply *r = rkt_cmd(c, "GET", full, NULL);
    redisFree(c);
    return r;
}

static void expect_on_master(const char *key, const void *value, size_t len)
{
    redisReply *r = master_get(key);
    if (r->type != REDIS_REPLY_STRING || r->len != len || memcmp(r->str, value, len))
        rkt_fail(__FILE__, __LINE__, "%s%s is not on the master as stored", rkt_prefix(), key);
    freeReplyObject(r);
}

static void expect_not_on_master(const char *key)
{
    redisReply *r = master_get(key);
    if (r->type != REDIS_REPLY_NIL)
        rkt_fail(__FILE__, __LINE__, "%s%s is still on the master", rkt_prefix(), key);
    freeReplyObject(r);
}

/* ---- every component ---- */

static void cache_through_sentinel(void)
{
    rk_cache *c = rkt_open_cache(cfg(NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "one", "v\0x", 3, 60000));
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "one", &out));
    ASSERT_EQ(out.len, 3u);
    ASSERT_MEM_EQ(out.data, "v\0x", 3);
    rk_buf_free(&out);
    expect_on_master("one", "v\0x", 3); /* not on a sentinel, not on the replica only */
    uint64_t ttl = 0;
    ASSERT_OK(rk_cache_ttl(c, NULL, "one", &ttl));
    ASSERT_TRUE(ttl > 0 && ttl <= 60000);
    ASSERT_OK(rk_cache_remove(c, NULL, "one"));
    ASSERT_RC(rk_cache_retrieve(c, NULL, "one", &out), RK_ENOTFOUND);
    expect_not_on_master("one");

    static char keys[100][16];
    static const char *kp[100];
    rk_cache_entry e[100];
    rk_buf outs[100] = {RK_BUF_INIT}; /* retrieve_many frees what they hold first */
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof keys[i], "batch:%d", i);
        kp[i] = keys[i];
        e[i] = (rk_cache_entry){keys[i], keys[i], strlen(keys[i]), 60000};
    }
    ASSERT_OK(rk_cache_store_many(c, NULL, e, 100));
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, kp, 100, outs));
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(outs[i].len, strlen(keys[i]));
        ASSERT_MEM_EQ(outs[i].data, keys[i], outs[i].len);
        rk_buf_free(&outs[i]);
    }
    expect_on_master("batch:99", "batch:99", 8);
    ASSERT_OK(rk_cache_remove_many(c, NULL, kp, 100));
    rk_cache_free(c);
}

/* Two handles contend for one key: the hand-off to a queued waiter is announced on Pub/Sub,
 * which must reach it through the master too. */
typedef struct {
    rk_lock *lock;
    atomic_int *inside;
    atomic_int overlaps;
} contender;

static void *contend(void *arg)
{
    contender *c = arg;
    for (int i = 0; i < 20; i++) {
        ASSERT_OK(rk_lock_acquire(c->lock, NULL, "contended", 5000, 10000));
        if (atomic_fetch_add(c->inside, 1) != 0)
            atomic_fetch_add(&c->overlaps, 1);
        usleep(500);
        atomic_fetch_sub(c->inside, 1);
        ASSERT_OK(rk_lock_release(c->lock, NULL, "contended"));
    }
    return NULL;
}

static void lock_through_sentinel(void)
{
    rk_lock *a = rkt_open_lock(cfg("options.lock_fencing=true"));
    rk_lock *b = rkt_open_lock(cfg("options.lock_fencing=true"));
    ASSERT_OK(rk_lock_acquire(a, NULL, "held", 5000, 1000));
    char token[RK_LOCK_TOKEN_SIZE];
    ASSERT_OK(rk_lock_token(a, "held", token));
    expect_on_master("held", token, strlen(token)); /* the lock is on the master */
    bool got = true;
    ASSERT_OK(rk_lock_try_acquire(b, NULL, "held", 5000, &got));
    ASSERT_FALSE(got);
    ASSERT_OK(rk_lock_release(a, NULL, "held"));
    expect_not_on_master("held");
    ASSERT_OK(rk_lock_acquire(b, NULL, "held", 5000, 1000));
    ASSERT_OK(rk_lock_release(b, NULL, "held"));

    atomic_int inside = 0;
    contender ca = {a, &inside, 0}, cb = {b, &inside, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, contend, &ca);
    pthread_create(&tb, NULL, contend, &cb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ASSERT_EQ(atomic_load(&ca.overlaps) + atomic_load(&cb.overlaps), 0);
    ASSERT_OK(rk_lock_try_acquire(a, NULL, "contended", 1000, &got));
    ASSERT_TRUE(got);
    uint64_t fence;
    ASSERT_OK(rk_lock_fencing_token(a, "contended", &fence));
    ASSERT_GE(fence, 41u); /* 40 grants above, then this one */
    ASSERT_OK(rk_lock_release(a, NULL, "contended"));
    rk_lock_free(a);
    rk_lock_free(b);
}

typedef struct {
    rk_memolock *m;
    const char *id;
    atomic_int *fetches;
    rk_buf out;
} memo_caller;

static int slow_fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    memo_caller *c = ud;
    atomic_fetch_add(c->fetches, 1);
    usleep(200 * 1000); /* long enough for the others to wait on the value's channel */
    *ttl_ms = 60000;
    return rk_buf_set(value, "computed", 8);
}

static void *memo_call(void *arg)
{
    memo_caller *c = arg;
    ASSERT_OK(rk_memolock_get(c->m, NULL, c->id, 5000, slow_fetch, c, &c->out));
    return NULL;
}

/* Four handles (four "processes"), eight callers, one id: one fetch, the others told the value
 * on Pub/Sub. */
static void memolock_through_sentinel(void)
{
    rk_memolock *m[4];
    for (int i = 0; i < 4; i++)
        m[i] = rkt_open_memolock(cfg("options.resource_tag=report"));
    atomic_int fetches = 0;
    memo_caller c[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (memo_caller){m[i % 4], "id-1", &fetches, RK_BUF_INIT};
        pthread_create(&t[i], NULL, memo_call, &c[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ASSERT_EQ(c[i].out.len, 8u);
        ASSERT_MEM_EQ(c[i].out.data, "computed", 8);
        rk_buf_free(&c[i].out);
    }
    ASSERT_EQ(atomic_load(&fetches), 1);
    expect_on_master("report:id-1", "computed", 8);
    for (int i = 0; i < 4; i++)
        rk_memolock_free(m[i]);
}

/* ---- options.lock_replicas ---- */

/* `msg` has `n` as a number of its own (a run of digits), as "0 of 1" has 0 and 1. */
static bool has_number(const char *msg, long n)
{
    for (const char *p = msg; p && *p; p++)
        if (isdigit((unsigned char)*p) && (p == msg || !isdigit((unsigned char)p[-1])) &&
            strtol(p, NULL, 10) == n)
            return true;
    return false;
}

static void replica_signal(int sig)
{
    int m = rkt_sentinel_master(&sentinel);
    ASSERT_GE(m, 0);
    ASSERT_EQ(kill(sentinel.node[1 - m].pid, sig), 0);
}

/* A grant the replica did not acknowledge is given back: try_acquire fails with
 * LOCK_NOT_REPLICATED, naming the acknowledgements it got (0) and asked for (1), and leaves no
 * lock behind; acquire keeps trying until its timeout. */
static void unreplicated_grants_fail(rk_lock *l, rk_lock *plain)
{
    bool got = false;
    ASSERT_RC(rk_lock_try_acquire(l, NULL, "rep:try", 5000, &got), RK_EIO);
    const rk_error *e = rk_last_error();
    ASSERT_STR_EQ(e->name, "LOCK_NOT_REPLICATED");
    if (!has_number(e->message, 0) || !has_number(e->message, 1))
        rkt_fail(__FILE__, __LINE__,
                 "the message names neither 0 acknowledgements nor 1 asked "
                 "for: %s",
                 e->message);
    expect_not_on_master("rep:try");
    ASSERT_OK(rk_lock_try_acquire(plain, NULL, "rep:try", 5000, &got)); /* free at once */
    ASSERT_TRUE(got);
    ASSERT_OK(rk_lock_release(plain, NULL, "rep:try"));

    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_lock_acquire(l, NULL, "rep:wait", 5000, 600), RK_ETIMEDOUT);
    uint64_t took = rkt_now_ms() - t0;
    e = rk_last_error();
    ASSERT_STR_EQ(e->name, "LOCK_TIMEOUT");
    ASSERT_TRUE(e->cause != NULL);
    if (!has_number(e->cause, 0) || !has_number(e->cause, 1))
        rkt_fail(__FILE__, __LINE__, "the cause is not the last attempt's: %s", e->cause);
    ASSERT_GE(took, 600);
    ASSERT_LT(took, 600 + 1000);
    expect_not_on_master("rep:wait");
}

/* `n` grants and releases on `l`, in ms. */
static uint64_t grant_cost(rk_lock *l, int n)
{
    uint64_t t0 = rkt_now_ms();
    for (int i = 0; i < n; i++) {
        bool got = false;
        ASSERT_OK(rk_lock_try_acquire(l, NULL, "rep:cost", 5000, &got));
        ASSERT_TRUE(got);
        ASSERT_OK(rk_lock_release(l, NULL, "rep:cost"));
    }
    return rkt_now_ms() - t0;
}

static void lock_replicas_needs_the_replica(void)
{
    rk_lock *l = rkt_open_lock(cfg("options.lock_replicas=1"));
    rk_lock *plain = rkt_open_lock(cfg(NULL));
    bool got = false;
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "rep:a", 5000, &got)); /* the replica runs */
    ASSERT_TRUE(got);
    ASSERT_OK(rk_lock_release(l, NULL, "rep:a"));
    ASSERT_OK(rk_lock_acquire(l, NULL, "rep:b", 5000, 1000));
    ASSERT_OK(rk_lock_release(l, NULL, "rep:b"));

    replica_signal(SIGSTOP);
    unreplicated_grants_fail(l, plain);
    ASSERT_OK(rk_lock_acquire(plain, NULL, "rep:c", 5000, 1000)); /* the default does not wait */
    ASSERT_OK(rk_lock_release(plain, NULL, "rep:c"));
    replica_signal(SIGCONT);

    ASSERT_OK(rk_lock_acquire(l, NULL, "rep:b", 5000, 5000)); /* once it has caught up */
    ASSERT_OK(rk_lock_release(l, NULL, "rep:b"));
    uint64_t base = grant_cost(plain, 200), replicated = grant_cost(l, 200);
    printf("     200 grants + releases: %llu ms plain, %llu ms with lock_replicas=1 (x%.2f)\n",
           (unsigned long long)base, (unsigned long long)replicated,
           base ? (double)replicated / (double)base : 0.0);
    rk_lock_free(l);
    rk_lock_free(plain);
    rkt_sentinel_wait_ok(&sentinel, 30000); /* the sentinels saw the replica down a while */
}

/* ---- sentinels down ---- */

/* The first sentinel listed is dead: the others answer, at once (a refused connection). */
static void one_sentinel_down_at_open(void)
{
    rkt_server_kill(&sentinel.sentinel[0]);
    uint64_t t0 = rkt_now_ms();
    rkt_trio t;
    rk_config *c =
        cfg("options.timeout=2000;options.connect_timeout=500;options.resource_tag=down");
    rkt_trio_new(&t, c);
    rk_config_free(c);
    ASSERT_OK(rk_cache_open(t.cache, NULL));
    ASSERT_OK(rk_lock_open(t.lock, NULL));
    ASSERT_OK(rk_memolock_open(t.memo, NULL));
    uint64_t took = rkt_now_ms() - t0;
    printf("     three opens with the first sentinel down: %llu ms\n", (unsigned long long)took);
    ASSERT_LT(took, 2000);
    ASSERT_OK(rk_cache_store(t.cache, NULL, "down:1", "1", 1, 60000));
    expect_on_master("down:1", "1", 1);
    ASSERT_OK(rk_lock_acquire(t.lock, NULL, "down:lock", 5000, 1000));
    ASSERT_OK(rk_lock_release(t.lock, NULL, "down:lock"));
    atomic_int fetches = 0;
    memo_caller mc = {t.memo, "down:id", &fetches, RK_BUF_INIT};
    memo_call(&mc);
    rk_buf_free(&mc.out);
    rkt_trio_free(&t);
    rkt_server_restart(&sentinel.sentinel[0]);
    rkt_sentinel_wait_ok(&sentinel, 30000);
}

/* ---- passwords ---- */

static bool contains_ci(const char *hay, const char *needle)
{
    for (size_t n = strlen(needle); hay && *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return true;
    return false;
}

/* credential.* (or the URI's user:password) is the master's; options.sentinel_password the
 * sentinels'. */
static void passwords_for_master_and_sentinels(void)
{
    rkt_sentinel s;
    rkt_sentinel_start_auth(&s, "auth-master", "master-secret", "sentinel-secret");
    rk_cache *c = rkt_open_cache(rkt_sentinel_config(
        &s, "credential.password=master-secret;options.sentinel_password=sentinel-secret"));
    ASSERT_OK(rk_cache_store(c, NULL, "auth:1", "1", 1, 60000));
    rk_cache_free(c);

    char uri[400];
    snprintf(uri, sizeof uri,
             "connection.uri=redis://:master-secret@%s;"
             "options.sentinel_password=sentinel-secret",
             s.sentinels);
    c = rkt_open_cache(rkt_sentinel_config(&s, uri));
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "auth:1", &out));
    ASSERT_MEM_EQ(out.data, "1", 1);
    rk_buf_free(&out);
    rk_cache_free(c);

    /* The sentinels' password missing: refused by them, and said so. */
    ASSERT_RC(rkt_try_open_cache(rkt_sentinel_config(&s, "credential.password=master-secret"), &c),
              RK_EAUTH);
    if (!contains_ci(rk_last_error()->message, "sentinel"))
        rkt_fail(__FILE__, __LINE__, "the error does not say a sentinel refused: %s",
                 rk_last_error()->message);
    rk_cache_free(c);
    /* The master's missing: refused by the master. */
    ASSERT_RC(rkt_try_open_cache(rkt_sentinel_config(&s, "options.sentinel_password=sentinel-"
                                                         "secret"),
                                 &c),
              RK_EAUTH);
    rk_cache_free(c);
    rkt_sentinel_stop(&s);
}

/* ---- configuration ---- */

/* Sentinel mode and cluster mode exclude each other, refused when configured. */
static void sentinel_with_cluster_true(void)
{
    rk_cache *c;
    ASSERT_OK(rk_cache_new(&c));
    rk_config *conf = cfg("options.cluster=true");
    ASSERT_RC(rk_cache_configure(c, conf), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.sentinel_master");
    ASSERT_CONTAINS(rk_last_error()->message, "options.cluster");
    rk_config_free(conf);
    rk_cache_free(c);
}

/* The child of a fork gets its own watcher and connections: it works, and closes at once.
 * (Here, not under ASan: clang 14's ASan allocator is not fork-safe, so a child forked while
 * the watcher thread allocates can deadlock inside ASan itself.) */
static void usable_after_fork(void)
{
    rk_cache *c = rkt_open_cache(cfg(NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "fork", "parent", 6, 60000));
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20); /* a hung child fails the test */
        rk_buf out = RK_BUF_INIT;
        bool ok = rk_cache_retrieve(c, NULL, "fork", &out) == RK_OK && out.len == 6 &&
                  rk_cache_store(c, NULL, "fork", "child", 5, 60000) == RK_OK;
        rk_buf_free(&out);
        uint64_t t0 = rkt_now_ms();
        rk_cache_free(c); /* stops the child's watcher */
        _exit(ok && rkt_now_ms() - t0 < 1000 ? 0 : 1);
    }
    ASSERT_TRUE(pid > 0);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        printf("     the child died of signal %d\n", WTERMSIG(status));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "fork", &out));
    ASSERT_EQ(out.len, 5); /* the child's value */
    rk_buf_free(&out);
    rk_cache_free(c);
}

int main(int argc, char **argv)
{
    static const rkt_case cases[] = {
        RKT_CASE(cache_through_sentinel),     RKT_CASE(lock_through_sentinel),
        RKT_CASE(memolock_through_sentinel),  RKT_CASE(lock_replicas_needs_the_replica),
        RKT_CASE(one_sentinel_down_at_open),  RKT_CASE(passwords_for_master_and_sentinels),
        RKT_CASE(sentinel_with_cluster_true), RKT_CASE(usable_after_fork),
    };
    uint64_t t0 = rkt_now_ms();
    rkt_sentinel_start(&sentinel, "rkt-master");
    printf("sentinel fixture started in %llu ms\n", (unsigned long long)(rkt_now_ms() - t0));
    int rc = rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    rkt_sentinel_stop(&sentinel);
    return rc;
}
