/* rk_lock against the fixture server: the pip-services LockFixture (enforced), the wire format
 * shared with the other ports, owner safety, notification wake-ups and the polling fallback. */
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_env.h"

static const char *full(const char *key)
{
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "%s%s", rkt_prefix(), key);
    return buf;
}

static redisReply *raw(const char *cmd, const char *key, const char *arg)
{
    redisContext *c = rkt_raw();
    redisReply *r = arg ? rkt_cmd(c, cmd, full(key), arg, NULL) : rkt_cmd(c, cmd, full(key), NULL);
    redisFree(c);
    return r;
}

static void fixture_try_acquire(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    bool ok;
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "lock_1", 3000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "lock_1", 3000, &ok));
    ASSERT_FALSE(ok);
    ASSERT_OK(rk_lock_release(l, NULL, "lock_1"));
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "lock_1", 3000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_lock_release(l, NULL, "lock_1"));
    rk_lock_free(l);
}

static void fixture_acquire(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    rk_context ctx = {"t-acq"};
    ASSERT_OK(rk_lock_acquire(l, NULL, "lock_2", 3000, 1000));
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_lock_acquire(l, &ctx, "lock_2", 3000, 1000), RK_ETIMEDOUT);
    uint64_t waited = rkt_now_ms() - t0;
    ASSERT_ERROR(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict");
    ASSERT_STR_EQ(rk_last_error()->message, "Acquiring lock lock_2 failed on timeout");
    ASSERT_STR_EQ(rk_last_error()->trace_id, "t-acq");
    ASSERT_GE(waited, 1000);
    ASSERT_LT(waited, 3000); /* failed on its own deadline, not when the holder's TTL ran out */
    ASSERT_OK(rk_lock_release(l, NULL, "lock_2"));
    ASSERT_OK(rk_lock_acquire(l, NULL, "lock_2", 3000, 1000));
    ASSERT_OK(rk_lock_release(l, NULL, "lock_2"));
    rk_lock_free(l);
}

static void fixture_release_twice(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    bool ok;
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "lock_3", 3000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_lock_release(l, NULL, "lock_3"));
    ASSERT_OK(rk_lock_release(l, NULL, "lock_3"));
    ASSERT_OK(rk_lock_release(l, NULL, "never-held"));
    rk_lock_free(l);
}

static void assert_token(const char *s)
{
    ASSERT_EQ(strlen(s), 32);
    for (int i = 0; i < 32; i++)
        ASSERT_TRUE(isxdigit((unsigned char)s[i]) && !isupper((unsigned char)s[i]));
}

/* SET <key> <32 hex> NX PX <ttl>, a fresh token for every acquisition. */
static void wire_format(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    bool ok;
    char first[33];
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "wire", 5000, &ok));
    redisReply *r = raw("GET", "wire", NULL);
    assert_token(r->str);
    snprintf(first, sizeof first, "%s", r->str);
    freeReplyObject(r);
    r = raw("PTTL", "wire", NULL);
    ASSERT_TRUE(r->integer > 0 && r->integer <= 5000);
    freeReplyObject(r);
    ASSERT_OK(rk_lock_release(l, NULL, "wire"));
    r = raw("EXISTS", "wire", NULL);
    ASSERT_EQ(r->integer, 0);
    freeReplyObject(r);
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "wire", 5000, &ok));
    r = raw("GET", "wire", NULL);
    assert_token(r->str);
    ASSERT_TRUE(strcmp(first, r->str) != 0);
    freeReplyObject(r);
    ASSERT_OK(rk_lock_release(l, NULL, "wire"));
    rk_lock_free(l);
}

/* After our lease ran out and someone else took the key, release must leave theirs alone. */
static void release_never_deletes_another_owner(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    bool ok;
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "owned", 5000, &ok));
    freeReplyObject(raw("DEL", "owned", NULL)); /* our lease "expires" */
    freeReplyObject(raw("SET", "owned", "0123456789abcdef0123456789abcdef"));
    ASSERT_OK(rk_lock_release(l, NULL, "owned"));
    redisReply *r = raw("GET", "owned", NULL);
    ASSERT_STR_EQ(r->str, "0123456789abcdef0123456789abcdef");
    freeReplyObject(r);
    ASSERT_RC(rk_lock_extend(l, NULL, "owned", 5000), RK_ENOTOWNER);
    ASSERT_ERROR(RK_ENOTOWNER, "NOT_OWNER", "Conflict");
    freeReplyObject(raw("DEL", "owned", NULL));
    rk_lock_free(l);
}

/* A pip-services port (any language) holds the key with plain SET NX PX and never publishes. */
static void excludes_and_is_excluded_by_pip_services(void)
{
    rk_lock *l = rkt_open_lock(rkt_config("options.retry_timeout=20"));
    bool ok;
    redisContext *c = rkt_raw();
    redisReply *r = rkt_cmd(c, "SET", full("shared"), "ffffffffffffffffffffffffffffffff", "NX",
                            "PX", "10000", NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "shared", 3000, &ok));
    ASSERT_FALSE(ok);
    ASSERT_RC(rk_lock_acquire(l, NULL, "shared", 3000, 100), RK_ETIMEDOUT);
    freeReplyObject(rkt_cmd(c, "DEL", full("shared"), NULL));
    ASSERT_OK(rk_lock_acquire(l, NULL, "shared", 3000, 5000));
    r = rkt_cmd(c, "SET", full("shared"), "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "NX", "PX", "10000",
                NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_NIL); /* the other port is excluded by us */
    freeReplyObject(r);
    ASSERT_OK(rk_lock_release(l, NULL, "shared"));
    redisFree(c);
    rk_lock_free(l);
}

typedef struct {
    rk_lock *lock;
    const char *key;
    uint64_t timeout_ms;
    int rc;
    uint64_t elapsed_ms;
} acquire_job;

static void *acquire_thread(void *arg)
{
    acquire_job *j = arg;
    uint64_t t0 = rkt_now_ms();
    j->rc = rk_lock_acquire(j->lock, NULL, j->key, 5000, j->timeout_ms);
    j->elapsed_ms = rkt_now_ms() - t0;
    return NULL;
}

static void wait_queue_length(const char *key, long long n);

/* Block until `n` waiters wait for the key: a waiter subscribes to its handle's inbox before it
 * queues, so a queued waiter hears its hand-off. */
static void wait_subscribers(const char *key, long long n) { wait_queue_length(key, n); }

/* The waiter's polling interval is a minute, so only the release notification can wake it. */
static void waiter_wakes_on_release(void)
{
    rk_lock *holder = rkt_open_lock(rkt_config(NULL)),
            *waiter = rkt_open_lock(rkt_config("options.retry_timeout=60000"));
    pthread_t t;
    acquire_job j = {waiter, "notify", 30000, -1, 0};
    ASSERT_OK(rk_lock_acquire(holder, NULL, "notify", 30000, 0));
    pthread_create(&t, NULL, acquire_thread, &j);
    wait_subscribers("notify", 1);
    ASSERT_OK(rk_lock_release(holder, NULL, "notify"));
    pthread_join(t, NULL);
    ASSERT_OK(j.rc);
    ASSERT_LT(j.elapsed_ms, 30000);
    ASSERT_OK(rk_lock_release(waiter, NULL, "notify"));
    rk_lock_free(holder);
    rk_lock_free(waiter);
}

/* Without a notification (foreign holder deletes the key) the waiter still gets it by polling. */
static void polling_fallback(void)
{
    rk_lock *waiter = rkt_open_lock(rkt_config("options.retry_timeout=50"));
    pthread_t t;
    acquire_job j = {waiter, "poll", 30000, -1, 0};
    freeReplyObject(raw("SET", "poll", "dddddddddddddddddddddddddddddddd"));
    pthread_create(&t, NULL, acquire_thread, &j);
    wait_subscribers("poll", 1);
    freeReplyObject(raw("DEL", "poll", NULL));
    pthread_join(t, NULL);
    ASSERT_OK(j.rc);
    ASSERT_OK(rk_lock_release(waiter, NULL, "poll"));
    rk_lock_free(waiter);
}

static void extend(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    bool ok;
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "ext", 200, &ok));
    ASSERT_OK(rk_lock_extend(l, NULL, "ext", 60000));
    redisReply *r = raw("PTTL", "ext", NULL);
    ASSERT_GE(r->integer, 50000);
    freeReplyObject(r);
    ASSERT_OK(rk_lock_release(l, NULL, "ext"));
    ASSERT_RC(rk_lock_extend(l, NULL, "ext", 1000), RK_ENOTOWNER);
    rk_lock_free(l);
}

static void bad_input(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL)), *closed;
    bool ok = true;
    ASSERT_RC(rk_lock_try_acquire(l, NULL, "k", 0, &ok), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "ttl_ms");
    ASSERT_FALSE(ok);
    ASSERT_RC(rk_lock_acquire(l, NULL, "k", 0, 10), RK_EINVAL);
    ASSERT_RC(rk_lock_try_acquire(l, NULL, NULL, 10, &ok), RK_EINVAL);
    ASSERT_RC(rk_lock_try_acquire(l, NULL, "", 10, &ok), RK_EINVAL);
    ASSERT_RC(rk_lock_try_acquire(l, NULL, "k", 10, NULL), RK_EINVAL);
    ASSERT_RC(rk_lock_release(l, NULL, NULL), RK_EINVAL);
    ASSERT_RC(rk_lock_acquire(NULL, NULL, "k", 10, 10), RK_EINVAL);
    ASSERT_OK(rk_lock_new(&closed));
    ASSERT_RC(rk_lock_acquire(closed, NULL, "k", 10, 10), RK_ENOTOPEN);
    ASSERT_ERROR(RK_ENOTOPEN, "NOT_OPENED", "InvalidState");
    ASSERT_RC(rk_lock_release(closed, NULL, "k"), RK_ENOTOPEN);
    rk_lock_free(closed);
    ASSERT_OK(rk_lock_acquire(l, NULL, "zero", 1000, 0));
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_lock_acquire(l, NULL, "zero", 1000, 0), RK_ETIMEDOUT); /* one attempt only */
    ASSERT_LT(rkt_now_ms() - t0, 1000);
    ASSERT_OK(rk_lock_release(l, NULL, "zero"));
    rk_lock_free(l);
}

/* Threads sharing one handle still exclude each other: a read-modify-write of a plain
 * counter inside the critical section loses no update. */
enum { THREADS = 6, ROUNDS = 40 };
static rk_lock *shared;
static atomic_int counter;

static void *contender(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_OK(rk_lock_acquire(shared, NULL, "threads", 10000, 20000));
        int v = atomic_load(&counter);
        usleep(100);
        atomic_store(&counter, v + 1);
        ASSERT_OK(rk_lock_release(shared, NULL, "threads"));
    }
    return NULL;
}

static void threads_share_one_lock(void)
{
    pthread_t t[THREADS];
    shared = rkt_open_lock(rkt_config(NULL));
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, contender, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&counter), THREADS * ROUNDS);
    rk_lock_free(shared);
}

static long long queue_length(const char *key);
static void wait_queue_length(const char *key, long long n);

/* close() with a waiter queued: the waiter returns NOT_OPENED, nothing hangs, and it left the
 * queue, so the holder's release frees the lock instead of handing it to nobody. */
static void close_wakes_waiters(void)
{
    rk_lock *holder = rkt_open_lock(rkt_config(NULL)),
            *waiter = rkt_open_lock(rkt_config("options.retry_timeout=60000"));
    pthread_t t;
    acquire_job j = {waiter, "closing", 60000, -1, 0};
    ASSERT_OK(rk_lock_acquire(holder, NULL, "closing", 30000, 0));
    pthread_create(&t, NULL, acquire_thread, &j);
    wait_queue_length("closing", 1);
    ASSERT_OK(rk_lock_close(waiter, NULL));
    pthread_join(t, NULL);
    ASSERT_EQ(j.rc, RK_ENOTOPEN);
    ASSERT_LT(j.elapsed_ms, 60000);
    ASSERT_EQ(queue_length("closing"), 0);
    ASSERT_OK(rk_lock_release(holder, NULL, "closing"));
    redisReply *r = raw("EXISTS", "closing", NULL);
    ASSERT_EQ(r->integer, 0);
    freeReplyObject(r);
    rk_lock_free(holder);
    rk_lock_free(waiter);
}

static long long queue_length(const char *key)
{
    char queue[160];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%s}", full(key));
    redisContext *c = rkt_raw();
    redisReply *r = rkt_cmd(c, "LLEN", queue, NULL);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static void wait_queue_length(const char *key, long long n)
{
    while (queue_length(key) < n)
        usleep(1000);
}

/* Waiters get the lock in the order they asked for it, each handed it by the previous owner
 * (their polling interval is a minute, so only the hand-off can serve them). */
enum { FIFO_N = 4 };
static int fifo_order[FIFO_N];
static atomic_int fifo_next;

typedef struct {
    rk_lock *lock;
    int index;
} fifo_job;

static void *fifo_waiter(void *arg)
{
    fifo_job *j = arg;
    ASSERT_OK(rk_lock_acquire(j->lock, NULL, "fifo", 30000, 30000));
    fifo_order[atomic_fetch_add(&fifo_next, 1)] = j->index;
    ASSERT_OK(rk_lock_release(j->lock, NULL, "fifo"));
    return NULL;
}

static void waiters_are_served_in_order(void)
{
    rk_lock *holder = rkt_open_lock(rkt_config(NULL));
    fifo_job jobs[FIFO_N];
    pthread_t t[FIFO_N];
    ASSERT_OK(rk_lock_acquire(holder, NULL, "fifo", 30000, 0));
    for (int i = 0; i < FIFO_N; i++) {
        jobs[i] = (fifo_job){rkt_open_lock(rkt_config("options.retry_timeout=60000")), i};
        pthread_create(&t[i], NULL, fifo_waiter, &jobs[i]);
        wait_queue_length("fifo", i + 1); /* queued before the next one starts */
    }
    ASSERT_OK(rk_lock_release(holder, NULL, "fifo"));
    for (int i = 0; i < FIFO_N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < FIFO_N; i++) {
        ASSERT_EQ(fifo_order[i], i);
        rk_lock_free(jobs[i].lock);
    }
    ASSERT_EQ(queue_length("fifo"), 0);
    rk_lock_free(holder);
}

/* A waiter killed while queued must not stall the queue: once it misses its polls the next
 * live waiter is served, long before the dead one's lease would have expired. */
static void dead_waiter_is_skipped(void)
{
    rk_lock *holder = rkt_open_lock(rkt_config("options.retry_timeout=50"));
    ASSERT_OK(rk_lock_acquire(holder, NULL, "deadq", 30000, 0));
    (void)rkt_prefix();
    pid_t pid = fork();
    if (pid == 0) {
        rk_lock *l = rkt_open_lock(rkt_config("options.retry_timeout=50"));
        rk_lock_acquire(l, NULL, "deadq", 60000, 60000); /* queues, then is killed */
        _exit(1);
    }
    wait_queue_length("deadq", 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    rk_lock *live = rkt_open_lock(rkt_config("options.retry_timeout=50"));
    pthread_t t;
    acquire_job j = {live, "deadq", 20000, -1, 0};
    pthread_create(&t, NULL, acquire_thread, &j);
    wait_queue_length("deadq", 2);
    usleep((3 * 50 + 500 + 100) * 1000); /* the dead waiter's heartbeat window runs out */
    ASSERT_OK(rk_lock_release(holder, NULL, "deadq"));
    pthread_join(t, NULL);
    ASSERT_OK(j.rc);
    ASSERT_LT(j.elapsed_ms, 20000);
    redisReply *r = raw("PTTL", "deadq", NULL);
    ASSERT_TRUE(r->integer > 0 && r->integer <= 5000); /* the live waiter's own lease */
    freeReplyObject(r);
    ASSERT_OK(rk_lock_release(live, NULL, "deadq"));
    rk_lock_free(live);
    rk_lock_free(holder);
}

/* A lease handed to another process by token (what `redkit lock try` / `lock release` do). */
static void release_by_token(void)
{
    rk_lock *a = rkt_open_lock(rkt_config(NULL)), *b = rkt_open_lock(rkt_config(NULL));
    char token[RK_LOCK_TOKEN_SIZE], other[RK_LOCK_TOKEN_SIZE];
    ASSERT_RC(rk_lock_token(a, "handoff", token), RK_ENOTOWNER);
    ASSERT_OK(rk_lock_acquire(a, NULL, "handoff", 30000, 0));
    ASSERT_OK(rk_lock_token(a, "handoff", token));
    assert_token(token);
    redisReply *r = raw("GET", "handoff", NULL);
    ASSERT_STR_EQ(r->str, token);
    freeReplyObject(r);
    snprintf(other, sizeof other, "%s", token);
    other[0] = other[0] == '0' ? '1' : '0';
    ASSERT_RC(rk_lock_release_token(b, NULL, "handoff", other), RK_ENOTOWNER);
    ASSERT_RC(rk_lock_release_token(b, NULL, "handoff", "not-a-token"), RK_EINVAL);
    ASSERT_RC(rk_lock_release_token(b, NULL, "handoff", NULL), RK_EINVAL);
    ASSERT_OK(rk_lock_release_token(b, NULL, "handoff", token));
    r = raw("EXISTS", "handoff", NULL);
    ASSERT_EQ(r->integer, 0);
    freeReplyObject(r);
    ASSERT_RC(rk_lock_release_token(b, NULL, "handoff", token), RK_ENOTOWNER);
    ASSERT_OK(rk_lock_release(a, NULL, "handoff")); /* a's lease is gone: nothing to do */
    rk_lock_free(a);
    rk_lock_free(b);
}

RKT_MAIN(RKT_CASE(fixture_try_acquire), RKT_CASE(fixture_acquire), RKT_CASE(fixture_release_twice),
         RKT_CASE(wire_format), RKT_CASE(release_never_deletes_another_owner),
         RKT_CASE(excludes_and_is_excluded_by_pip_services), RKT_CASE(waiter_wakes_on_release),
         RKT_CASE(polling_fallback), RKT_CASE(extend), RKT_CASE(bad_input),
         RKT_CASE(threads_share_one_lock), RKT_CASE(close_wakes_waiters),
         RKT_CASE(waiters_are_served_in_order), RKT_CASE(dead_waiter_is_skipped),
         RKT_CASE(release_by_token))
