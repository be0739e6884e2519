/* Fencing tokens against the fixture server: with options.lock_fencing=true every grant of a
 * key (try_acquire, acquire, a release handing the lock to a waiter) takes the next number of
 * a counter kept per key, and rk_lock_fencing_token() gives the holder's number, so that a
 * store can refuse writes from a holder whose lease has ended (tests/faults/test_lock_scale.c,
 * fencing_rejects_stale_holder, shows that across processes). */
#include <pthread.h>
#include <unistd.h>

#include "redis_env.h"

enum { STATE_WAIT_MS = 5000 };

static const char *full(const char *key)
{
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "%s%s", rkt_prefix(), key);
    return buf;
}

static rk_lock *open_fenced(const char *extra)
{
    char settings[256];
    snprintf(settings, sizeof settings, "options.lock_fencing=true;%s", extra ? extra : "");
    return rkt_open_lock(rkt_config(settings));
}

/* The holder's number, or the test fails. */
static uint64_t fence(rk_lock *l, const char *key)
{
    uint64_t n = 0;
    ASSERT_OK(rk_lock_fencing_token(l, key, &n));
    return n;
}

static void must_try_acquire(rk_lock *l, const char *key)
{
    bool ok = false;
    ASSERT_OK(rk_lock_try_acquire(l, NULL, key, 5000, &ok));
    ASSERT_TRUE(ok);
}

/* Every way of being granted the lock takes a new number, whichever handle asks. */
static void numbers_increase_across_handles(void)
{
    rk_lock *a = open_fenced(NULL), *b = open_fenced(NULL);
    uint64_t n[4];
    must_try_acquire(a, "seq");
    n[0] = fence(a, "seq");
    ASSERT_EQ(fence(a, "seq"), n[0]); /* reading the number does not take another */
    ASSERT_OK(rk_lock_release(a, NULL, "seq"));
    ASSERT_OK(rk_lock_acquire(b, NULL, "seq", 5000, 1000));
    n[1] = fence(b, "seq");
    ASSERT_OK(rk_lock_release(b, NULL, "seq"));
    ASSERT_OK(rk_lock_acquire(a, NULL, "seq", 5000, 1000));
    n[2] = fence(a, "seq");
    ASSERT_OK(rk_lock_release(a, NULL, "seq"));
    must_try_acquire(b, "seq");
    n[3] = fence(b, "seq");
    ASSERT_OK(rk_lock_release(b, NULL, "seq"));
    /* 0 is never a holder's number: a store that starts from 0 accepts the first holder. */
    ASSERT_GE(n[0], 1);
    for (int i = 1; i < 4; i++)
        ASSERT_LT(n[i - 1], n[i]);
    printf("     numbers: %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 "\n", n[0], n[1], n[2],
           n[3]);
    rk_lock_free(a);
    rk_lock_free(b);
}

typedef struct {
    rk_lock *lock;
    const char *key;
    int rc;
} waiter_job;

static void *waiter(void *arg)
{
    waiter_job *j = arg;
    j->rc = rk_lock_acquire(j->lock, NULL, j->key, 5000, 10000);
    return NULL;
}

/* Poll until `n` waiters are queued for `key` (docs/wire-format.md: the lock queue). */
static void wait_queued(const char *key, long long n)
{
    char queue[160];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%s}", full(key));
    redisContext *c = rkt_raw();
    uint64_t deadline = rkt_now_ms() + STATE_WAIT_MS;
    for (;;) {
        redisReply *r = rkt_cmd(c, "LLEN", queue, NULL);
        long long have = r->integer;
        freeReplyObject(r);
        if (have == n)
            break;
        if (rkt_now_ms() >= deadline)
            rkt_fail(__FILE__, __LINE__, "%s holds %lld waiters after %d ms, expected %lld", queue,
                     have, STATE_WAIT_MS, n);
        usleep(1000);
    }
    redisFree(c);
}

/* B is queued when A releases, so the release itself hands B the lock (docs/wire-format.md);
 * that grant takes a number too. B polls once a minute: only the release can give it the lock
 * within its 10 s. */
static void hand_off_takes_the_next_number(void)
{
    rk_lock *a = open_fenced(NULL), *b = open_fenced("options.retry_timeout=60000");
    waiter_job j = {b, "handoff", -1};
    pthread_t t;
    ASSERT_OK(rk_lock_acquire(a, NULL, "handoff", 5000, 0));
    uint64_t first = fence(a, "handoff");
    ASSERT_EQ(pthread_create(&t, NULL, waiter, &j), 0);
    wait_queued("handoff", 1);
    ASSERT_OK(rk_lock_release(a, NULL, "handoff"));
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_OK(j.rc);
    uint64_t second = fence(b, "handoff");
    ASSERT_LT(first, second);
    ASSERT_OK(rk_lock_release(b, NULL, "handoff"));
    rk_lock_free(a);
    rk_lock_free(b);
}

static void errors(void)
{
    rk_lock *plain = rkt_open_lock(rkt_config(NULL)), *fenced = open_fenced(NULL);
    uint64_t n = 0;
    /* Held, but without the option there is no number to give. */
    must_try_acquire(plain, "plain");
    ASSERT_RC(rk_lock_fencing_token(plain, "plain", &n), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.lock_fencing");
    ASSERT_OK(rk_lock_release(plain, NULL, "plain"));
    /* With the option, a key this handle does not hold: never held, or released. */
    ASSERT_RC(rk_lock_fencing_token(fenced, "never-held", &n), RK_ENOTOWNER);
    ASSERT_ERROR(RK_ENOTOWNER, "NOT_OWNER", "Conflict");
    must_try_acquire(fenced, "released");
    ASSERT_OK(rk_lock_release(fenced, NULL, "released"));
    ASSERT_RC(rk_lock_fencing_token(fenced, "released", &n), RK_ENOTOWNER);
    rk_lock_free(plain);
    rk_lock_free(fenced);
}

RKT_MAIN(RKT_CASE(numbers_increase_across_handles), RKT_CASE(hand_off_takes_the_next_number),
         RKT_CASE(errors))
