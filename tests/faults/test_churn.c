/* Close and open racing calls: many threads use one handle while another closes and re-opens it
 * over and over. Every call must end with a result it documents (a close in the middle of a
 * call is RK_ENOTOPEN, never a crash, a hang or a freed client in use), and the handle must
 * work normally once the churn stops. Runs under ThreadSanitizer in CI. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "redis_env.h"

enum { THREADS = 16, CYCLES = 30 };

typedef struct {
    rk_cache *cache;
    rk_lock *lock;
    atomic_bool stop;
    atomic_int calls, ok, not_open, bad;
} churn;

static void count(churn *c, int rc, bool miss_ok)
{
    atomic_fetch_add(&c->calls, 1);
    if (rc == RK_OK || rc == RK_ENOTFOUND)
        atomic_fetch_add(&c->ok, 1);
    if (rc == RK_ENOTOPEN)
        atomic_fetch_add(&c->not_open, 1);
    else if (rc != RK_OK && !(miss_ok && rc == RK_ENOTFOUND)) {
        fprintf(stderr, "     unexpected: %s (%s)\n", rk_strerror(rc), rk_last_error()->message);
        atomic_fetch_add(&c->bad, 1);
    }
}

static void *worker(void *arg)
{
    churn *c = arg;
    char key[32];
    snprintf(key, sizeof key, "churn:%p", (void *)&key);
    rk_buf v = RK_BUF_INIT;
    while (!atomic_load(&c->stop)) {
        count(c, rk_cache_store(c->cache, NULL, key, "v", 1, 10000), false);
        count(c, rk_cache_retrieve(c->cache, NULL, key, &v), true);
        int rc = rk_lock_acquire(c->lock, NULL, "churn-lock", 5000, 200);
        count(c, rc == RK_ETIMEDOUT ? RK_OK : rc, false);
        if (rc == RK_OK)
            count(c, rk_lock_release(c->lock, NULL, "churn-lock"), false);
        if (rc == RK_ENOTOPEN)
            sched_yield(); /* closed: let the closing thread have the CPU */
    }
    rk_buf_free(&v);
    return NULL;
}

static void close_and_open_under_load(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    churn c = {.cache = rkt_open_cache(rkt_server_config(&s, NULL)),
               .lock = rkt_open_lock(rkt_server_config(&s, "options.retry_timeout=20"))};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, worker, &c), 0);
    for (int i = 0; i < CYCLES; i++) {
        /* Close only once the workers are busy on the open handles again. */
        for (int ok0 = atomic_load(&c.ok); atomic_load(&c.ok) < ok0 + 2 * THREADS;)
            sched_yield();
        ASSERT_OK(rk_cache_close(c.cache, NULL));
        ASSERT_OK(rk_lock_close(c.lock, NULL));
        ASSERT_OK(rk_cache_open(c.cache, NULL));
        ASSERT_OK(rk_lock_open(c.lock, NULL));
    }
    atomic_store(&c.stop, true);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("     %d calls during %d close/open cycles: %d succeeded, %d RK_ENOTOPEN, %d "
           "unexpected\n",
           atomic_load(&c.calls), CYCLES, atomic_load(&c.ok), atomic_load(&c.not_open),
           atomic_load(&c.bad));
    ASSERT_EQ(atomic_load(&c.bad), 0);
    /* After the churn: everything works, and no lock is left held or queued. */
    rk_buf v = RK_BUF_INIT;
    ASSERT_OK(rk_cache_store(c.cache, NULL, "after", "ok", 2, 10000));
    ASSERT_OK(rk_cache_retrieve(c.cache, NULL, "after", &v));
    ASSERT_STR_EQ(v.data, "ok");
    rk_buf_free(&v);
    ASSERT_OK(rk_lock_acquire(c.lock, NULL, "churn-lock", 5000, 6000));
    ASSERT_OK(rk_lock_release(c.lock, NULL, "churn-lock"));
    rk_cache_free(c.cache);
    rk_lock_free(c.lock);
    rkt_server_stop(&s);
}

RKT_MAIN(RKT_CASE(close_and_open_under_load))
