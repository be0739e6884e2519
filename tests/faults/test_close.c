/* Close is prompt: closing a handle while another thread waits in it (a queued lock acquire, a
 * memolock waiter, a cache retrieve the server does not answer) returns within seconds, and the
 * waiting call returns RK_ENOTOPEN within seconds of the close, whether the server answers or is
 * stopped (SIGSTOP: connections stay up, nothing is answered). Left alone the calls would wait
 * 20 s (their timeout_ms; options.timeout=20000 for the cache), so only the close can end them
 * this soon. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "redis_env.h"

enum { PROMPT_MS = 3000, WAIT_MS = 20000, JOIN_LIMIT_S = 45 };

#define FAST_FAIL "options.connect_timeout=1000"

/* One call running in its own thread until the handle is closed under it. */
typedef struct job {
    int (*call)(struct job *);
    rk_lock *lock;
    rk_memolock *memo;
    rk_cache *cache;
    rk_buf out;
    int rc;
    _Atomic uint64_t returned_at;
} job;

static void *job_thread(void *arg)
{
    job *j = arg;
    j->rc = j->call(j);
    atomic_store(&j->returned_at, rkt_now_ms());
    return NULL;
}

static int call_acquire(job *j) { return rk_lock_acquire(j->lock, NULL, "held", 10000, WAIT_MS); }

static int fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    *ttl_ms = 60000;
    return rk_buf_set(value, "fetched", 7);
}

static int call_get(job *j)
{
    return rk_memolock_get(j->memo, NULL, "held", WAIT_MS, fetch, NULL, &j->out);
}

static int call_retrieve(job *j) { return rk_cache_retrieve(j->cache, NULL, "key", &j->out); }

static void stop_server(const rkt_server *s) { ASSERT_EQ(kill(s->pid, SIGSTOP), 0); }

/* Once the waiting call has sent the stopped server a request (a lock waiter's heartbeat, a
 * memolock waiter's re-check, the cache's GET), it is blocked on a server that will not answer:
 * the case a close must not wait out. */
static void wait_unanswered(const rkt_server *s)
{
    while (rkt_server_unanswered(s) < 1)
        usleep(1000);
}

/* SIGCONT is harmless to a running server. */
static void resume_and_stop_server(rkt_server *s)
{
    ASSERT_EQ(kill(s->pid, SIGCONT), 0);
    rkt_server_stop(s);
}

/* Join, but turn a waiter that never returns into a failure rather than a stuck test. */
static void join_bounded(pthread_t t, const char *what)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += JOIN_LIMIT_S;
    int rc = pthread_timedjoin_np(t, NULL, &until);
    if (rc == ETIMEDOUT)
        rkt_fail(__FILE__, __LINE__, "%s: the waiter still waits %d s after the close", what,
                 JOIN_LIMIT_S);
    ASSERT_EQ(rc, 0);
}

/* Close under the waiting job (through `do_close`), then check both sides were prompt. */
static void close_and_check(const char *what, job *j, pthread_t t, int (*do_close)(job *))
{
    ASSERT_EQ(atomic_load(&j->returned_at), 0); /* it was still waiting when we closed */
    uint64_t closed_at = rkt_now_ms();
    int close_rc = do_close(j);
    uint64_t close_ms = rkt_now_ms() - closed_at;
    printf("     %s: close returned %d after %" PRIu64 " ms\n", what, close_rc, close_ms);
    join_bounded(t, what);
    uint64_t waiter_ms = atomic_load(&j->returned_at) - closed_at;
    printf("     %s: the waiter returned %s (%d) %" PRIu64 " ms after the close began\n", what,
           rk_strerror(j->rc), j->rc, waiter_ms);
    ASSERT_LT(close_ms, PROMPT_MS);
    ASSERT_EQ(j->rc, RK_ENOTOPEN);
    ASSERT_LT(waiter_ms, PROMPT_MS);
}

/* ---- lock: a waiter queued behind another handle's lock ---- */

static long long queue_length(const rkt_server *s, const char *key)
{
    char queue[256];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%s%s}", rkt_prefix(), key);
    redisContext *c = rkt_raw_port(s->port);
    redisReply *r = rkt_cmd(c, "LLEN", queue, NULL);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static int close_lock(job *j) { return rk_lock_close(j->lock, NULL); }

static void lock_waiter(bool stopped)
{
    rkt_server s;
    pthread_t t;
    rkt_server_start(&s, NULL);
    rk_lock *holder = rkt_open_lock(rkt_server_config(&s, FAST_FAIL));
    job j = {.call = call_acquire, .lock = rkt_open_lock(rkt_server_config(&s, FAST_FAIL))};
    ASSERT_OK(rk_lock_acquire(holder, NULL, "held", 30000, 0));
    pthread_create(&t, NULL, job_thread, &j);
    while (queue_length(&s, "held") < 1) /* queued: it subscribed and joined the queue */
        usleep(1000);
    if (stopped) {
        stop_server(&s);
        wait_unanswered(&s);
    }
    close_and_check(stopped ? "lock, server stopped" : "lock, server running", &j, t, close_lock);
    if (!stopped)
        ASSERT_EQ(queue_length(&s, "held"), 0); /* it left the queue first (README) */
    resume_and_stop_server(&s);
    rk_lock_free(j.lock);
    rk_lock_free(holder);
}

static void lock_close_server_stopped(void) { lock_waiter(true); }
static void lock_close_server_running(void) { lock_waiter(false); }

/* ---- memolock: a waiter behind a lock held by hand (a winner still computing) ---- */

static int close_memo(job *j) { return rk_memolock_close(j->memo, NULL); }

static void memolock_waiter(bool stopped)
{
    rkt_server s;
    pthread_t t;
    char lock[256], channel[256];
    rkt_server_start(&s, NULL);
    snprintf(lock, sizeof lock, "%scl/lock:held", rkt_prefix());
    snprintf(channel, sizeof channel, "%scl/notif:held", rkt_prefix());
    redisContext *c = rkt_raw_port(s.port);
    freeReplyObject(rkt_cmd(c, "SET", lock, "someone-else", "PX", "60000", NULL));
    rk_config *cfg = rkt_server_config(&s, FAST_FAIL ";options.resource_tag=cl");
    job j = {.call = call_get, .memo = rkt_open_memolock(cfg)};
    pthread_create(&t, NULL, job_thread, &j);
    rkt_wait_subscribers(c, channel, 1); /* it waits for the value */
    redisFree(c);
    if (stopped) {
        stop_server(&s);
        wait_unanswered(&s);
    }
    close_and_check(stopped ? "memolock, server stopped" : "memolock, server running", &j, t,
                    close_memo);
    resume_and_stop_server(&s);
    rk_buf_free(&j.out);
    rk_memolock_free(j.memo);
}

static void memolock_close_server_stopped(void) { memolock_waiter(true); }
static void memolock_close_server_running(void) { memolock_waiter(false); }

/* ---- cache: a retrieve the stopped server never answers ---- */

static int close_cache(job *j) { return rk_cache_close(j->cache, NULL); }

static void cache_close_server_stopped(void)
{
    rkt_server s;
    pthread_t t;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, FAST_FAIL ";options.timeout=20000"));
    job j = {.call = call_retrieve, .cache = c};
    stop_server(&s);
    pthread_create(&t, NULL, job_thread, &j);
    wait_unanswered(&s);
    close_and_check("cache retrieve, server stopped", &j, t, close_cache);
    resume_and_stop_server(&s);
    rk_buf_free(&j.out);
    rk_cache_free(c);
}

RKT_MAIN(RKT_CASE(lock_close_server_stopped), RKT_CASE(lock_close_server_running),
         RKT_CASE(memolock_close_server_stopped), RKT_CASE(memolock_close_server_running),
         RKT_CASE(cache_close_server_stopped))
