/* Mutual exclusion across processes: forked workers each take the lock, read a counter with a
 * plain GET and write it back with SET. Any overlap of critical sections loses an update. */
#include <sys/wait.h>
#include <unistd.h>

#include "redis_env.h"

enum { PROCS = 6, ROUNDS = 50 };

static void worker(void)
{
    rk_lock *l = rkt_open_lock(rkt_config("options.retry_timeout=50"));
    rk_cache *c = rkt_open_cache(rkt_config("options.retry_timeout=50"));
    for (int i = 0; i < ROUNDS; i++) {
        rk_buf b = RK_BUF_INIT;
        char next[32];
        ASSERT_OK(rk_lock_acquire(l, NULL, "mutex", 10000, 30000));
        int rc = rk_cache_retrieve(c, NULL, "counter", &b);
        ASSERT_TRUE(rc == RK_OK || rc == RK_ENOTFOUND);
        int n = snprintf(next, sizeof next, "%d", (rc == RK_OK ? atoi(b.data) : 0) + 1);
        ASSERT_OK(rk_cache_store(c, NULL, "counter", next, (size_t)n, RK_TTL_NONE));
        ASSERT_OK(rk_lock_release(l, NULL, "mutex"));
        rk_buf_free(&b);
    }
    rk_lock_free(l);
    rk_cache_free(c);
}

static void processes_lose_no_update(void)
{
    pid_t pids[PROCS];
    (void)rkt_prefix(); /* fix the key prefix before forking: every worker shares it */
    for (int i = 0; i < PROCS; i++) {
        if ((pids[i] = fork()) == 0) {
            worker();
            _exit(0);
        }
    }
    for (int i = 0; i < PROCS; i++) {
        int status;
        ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "counter", &b));
    ASSERT_EQ(atoi(b.data), PROCS * ROUNDS);
    ASSERT_OK(rk_cache_remove(c, NULL, "counter"));
    rk_buf_free(&b);
    rk_cache_free(c);
}

RKT_MAIN(RKT_CASE(processes_lose_no_update))
