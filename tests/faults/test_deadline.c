/* The caller's deadline bounds every call, whatever the server does: a server that stops
 * answering (SIGSTOP, so connections stay established and connects still complete in the
 * kernel) must not hold a call past its own timeout_ms (or options.timeout for the cache), even
 * though options.timeout (30 s by default) would allow much longer. And the memolock take-over
 * rule: a waiter takes over a dead winner's lock only when its deadline leaves room for a whole
 * lease (options.lock_timeout); otherwise it times out at its deadline and leaves the lock alone.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "redis_env.h"

/* The bound on a whole call with a 500 ms timeout: at most one connect attempt
 * (options.connect_timeout=1000) and some slack past it, far below options.timeout. */
enum { BOUND_MS = 2000, CALL_TIMEOUT_MS = 500 };

#define FAST_FAIL "options.connect_timeout=1000"

/* SIGSTOP rather than kill: the sockets stay open and unanswered, the worst case for a client
 * that trusts its per-operation timeout. */
static void stop_server(const rkt_server *s) { ASSERT_EQ(kill(s->pid, SIGSTOP), 0); }

static void resume_and_stop_server(rkt_server *s)
{
    ASSERT_EQ(kill(s->pid, SIGCONT), 0);
    rkt_server_stop(s);
}

static void report(const char *what, int rc, uint64_t took)
{
    printf("     %s: %s (%d) after %" PRIu64 " ms\n", what, rk_strerror(rc), rc, took);
}

/* "<prefix><name>": a key as the server sees it. */
static const char *full(const char *name)
{
    static _Thread_local char buf[2][256];
    static _Thread_local int next;
    char *b = buf[next++ % 2];
    snprintf(b, 256, "%s%s", rkt_prefix(), name);
    return b;
}

/* ---- lock ---- */

typedef struct {
    rk_lock *lock;
    const char *key;
    int rc;
    uint64_t took_ms;
    atomic_bool returned;
} acquire_job;

static void *acquire_thread(void *arg)
{
    acquire_job *j = arg;
    uint64_t t0 = rkt_now_ms();
    j->rc = rk_lock_acquire(j->lock, NULL, j->key, 10000, CALL_TIMEOUT_MS);
    j->took_ms = rkt_now_ms() - t0;
    atomic_store(&j->returned, true);
    return NULL;
}

/* Poll the waiters' queue (docs/wire-format.md) until the acquire has queued itself. */
static void wait_queued(const rkt_server *s, const char *key)
{
    char queue[256];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%s}", full(key));
    redisContext *c = rkt_raw_port(s->port);
    for (;;) {
        redisReply *r = rkt_cmd(c, "LLEN", queue, NULL);
        long long n = r->integer;
        freeReplyObject(r);
        if (n >= 1)
            break;
        usleep(1000);
    }
    redisFree(c);
}

/* A waiter queued behind another handle's lock when the server stops answering. */
static void lock_waiter_server_stops(void)
{
    rkt_server s;
    pthread_t t;
    rkt_server_start(&s, NULL);
    rk_lock *holder = rkt_open_lock(rkt_server_config(&s, FAST_FAIL));
    rk_lock *waiter = rkt_open_lock(rkt_server_config(&s, FAST_FAIL));
    ASSERT_OK(rk_lock_acquire(holder, NULL, "queued", 30000, 0));
    acquire_job j = {waiter, "queued", -1, 0, false};
    pthread_create(&t, NULL, acquire_thread, &j);
    wait_queued(&s, "queued");
    stop_server(&s);
    ASSERT_FALSE(atomic_load(&j.returned)); /* the server stopped while the caller waited */
    pthread_join(t, NULL);
    report("queued acquire, timeout 500 ms, server stopped", j.rc, j.took_ms);
    ASSERT_EQ(j.rc, RK_ETIMEDOUT);
    ASSERT_LT(j.took_ms, BOUND_MS);
    resume_and_stop_server(&s);
    rk_lock_free(holder);
    rk_lock_free(waiter);
}

/* The first attempt itself gets no answer. */
static void lock_free_key_server_stopped(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_lock *l = rkt_open_lock(rkt_server_config(&s, FAST_FAIL));
    stop_server(&s);
    uint64_t t0 = rkt_now_ms();
    int rc = rk_lock_acquire(l, NULL, "free", 10000, CALL_TIMEOUT_MS);
    uint64_t took = rkt_now_ms() - t0;
    report("acquire of a free key, timeout 500 ms, server stopped", rc, took);
    ASSERT_EQ(rc, RK_ETIMEDOUT);
    ASSERT_LT(took, BOUND_MS);
    resume_and_stop_server(&s);
    rk_lock_free(l);
}

/* ---- memolock ---- */

static atomic_int fetches;

static int fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    atomic_fetch_add(&fetches, 1);
    *ttl_ms = 60000;
    return rk_buf_set(value, "fetched", 7);
}

/* Start a private server and open a memolock on it (FAST_FAIL, tag "dl", then `extra`), the
 * fetch count reset. */
static rk_memolock *start_memo(rkt_server *s, const char *extra)
{
    char buf[256];
    rkt_server_start(s, NULL);
    snprintf(buf, sizeof buf, FAST_FAIL ";options.resource_tag=dl;%s", extra ? extra : "");
    atomic_store(&fetches, 0);
    return rkt_open_memolock(rkt_server_config(s, buf));
}

static void memolock_server_stopped(void)
{
    rkt_server s;
    rk_buf out = RK_BUF_INIT;
    rk_memolock *m = start_memo(&s, NULL);
    stop_server(&s);
    uint64_t t0 = rkt_now_ms();
    int rc = rk_memolock_get(m, NULL, "stopped", CALL_TIMEOUT_MS, fetch, NULL, &out);
    uint64_t took = rkt_now_ms() - t0;
    report("memolock get, timeout 500 ms, server stopped", rc, took);
    ASSERT_EQ(rc, RK_ETIMEDOUT);
    ASSERT_LT(took, BOUND_MS);
    ASSERT_EQ(atomic_load(&fetches), 0); /* it never learnt that the lock was free */
    resume_and_stop_server(&s);
    rk_buf_free(&out);
    rk_memolock_free(m);
}

/* ---- cache: its deadline is options.timeout ---- */

static void cache_server_stopped(void)
{
    rkt_server s;
    rk_buf out = RK_BUF_INIT;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, FAST_FAIL ";options.timeout=500"));
    stop_server(&s);
    uint64_t t0 = rkt_now_ms();
    int rc = rk_cache_retrieve(c, NULL, "stopped", &out);
    uint64_t took = rkt_now_ms() - t0;
    report("cache retrieve, options.timeout 500 ms, server stopped", rc, took);
    ASSERT_EQ(rc, RK_ETIMEDOUT);
    ASSERT_LT(took, BOUND_MS);
    resume_and_stop_server(&s);
    rk_cache_free(c);
}

/* ---- memolock take-over rule (server running) ---- */

enum { LEASE_MS = 5000, DEAD_LOCK_PX = 300 };

/* A winner that died holding the lock: its lease runs out DEAD_LOCK_PX ms from now. Returns when
 * the lock was set. */
static uint64_t plant_dead_lock(const rkt_server *s, const char *id)
{
    char lock[256], px[16];
    snprintf(lock, sizeof lock, "%sdl/lock:%s", rkt_prefix(), id);
    snprintf(px, sizeof px, "%d", DEAD_LOCK_PX);
    redisContext *c = rkt_raw_port(s->port);
    uint64_t t0 = rkt_now_ms();
    freeReplyObject(rkt_cmd(c, "SET", lock, "x", "PX", px, NULL));
    redisFree(c);
    return t0;
}

/* 1500 ms leave no room for a 5 s lease: the waiter does not run the fetch after the dead lock
 * expires, but waits for a value until its deadline, and leaves the lock free. */
static void memolock_short_deadline_does_not_take_over(void)
{
    rkt_server s;
    rk_buf out = RK_BUF_INIT;
    rk_memolock *m = start_memo(&s, "options.lock_timeout=5000");
    plant_dead_lock(&s, "short");
    uint64_t t0 = rkt_now_ms();
    int rc = rk_memolock_get(m, NULL, "short", 1500, fetch, NULL, &out);
    uint64_t took = rkt_now_ms() - t0;
    report("memolock get, timeout 1500 ms, dead lock (300 ms), lock_timeout 5000", rc, took);
    printf("     fetch ran %d times\n", atomic_load(&fetches));
    ASSERT_EQ(rc, RK_ETIMEDOUT);
    ASSERT_EQ(atomic_load(&fetches), 0);
    ASSERT_GE(took, 1500 - 10); /* at its deadline, not when it decided not to take over */
    ASSERT_LT(took, 2500);
    char lock[256];
    snprintf(lock, sizeof lock, "%sdl/lock:short", rkt_prefix());
    ASSERT_EQ(rkt_server_int(&s, "EXISTS", lock), 0); /* free for the next caller */
    rkt_server_stop(&s);
    rk_memolock_free(m);
}

/* 8000 ms leave room for a whole lease once the dead lock expires: the waiter takes over. */
static void memolock_long_deadline_takes_over(void)
{
    rkt_server s;
    rk_buf out = RK_BUF_INIT;
    rk_memolock *m = start_memo(&s, "options.lock_timeout=5000");
    uint64_t planted = plant_dead_lock(&s, "long");
    int rc = rk_memolock_get(m, NULL, "long", 8000, fetch, NULL, &out);
    uint64_t took = rkt_now_ms() - planted;
    report("memolock get, timeout 8000 ms, dead lock (300 ms), lock_timeout 5000", rc, took);
    ASSERT_EQ(rc, RK_OK);
    ASSERT_STR_EQ(out.data, "fetched");
    ASSERT_EQ(atomic_load(&fetches), 1);
    ASSERT_GE(took, DEAD_LOCK_PX); /* not before the dead winner's lease ran out */
    ASSERT_LT(took, 8000);
    rkt_server_stop(&s);
    rk_buf_free(&out);
    rk_memolock_free(m);
}

/* The other half of the rule: a first check that finds the lock free runs the fetch, even with
 * a deadline shorter than a lease. */
static void memolock_free_lock_always_fetches(void)
{
    rkt_server s;
    rk_buf out = RK_BUF_INIT;
    rk_memolock *m = start_memo(&s, "options.lock_timeout=5000");
    ASSERT_OK(rk_memolock_get(m, NULL, "free", 1000, fetch, NULL, &out));
    ASSERT_STR_EQ(out.data, "fetched");
    ASSERT_EQ(atomic_load(&fetches), 1);
    rkt_server_stop(&s);
    rk_buf_free(&out);
    rk_memolock_free(m);
}

RKT_MAIN(RKT_CASE(lock_waiter_server_stops), RKT_CASE(lock_free_key_server_stopped),
         RKT_CASE(memolock_server_stopped), RKT_CASE(cache_server_stopped),
         RKT_CASE(memolock_short_deadline_does_not_take_over),
         RKT_CASE(memolock_long_deadline_takes_over), RKT_CASE(memolock_free_lock_always_fetches))
