/* rk_memolock while its server is killed: restarted while a winner computes and waiters wait,
 * or gone for longer than the waiters' deadline. Every caller returns a value or a clear error
 * before its deadline, and the same handles work again afterwards. (A killed subscriber
 * connection and a killed winner process are in tests/redis/test_memolock.c.) */
#include <pthread.h>
#include <stdatomic.h>

#include "redis_env.h"

#define SLACK_MS 400

static rk_memolock *open_memo(const rkt_server *s)
{
    static const char settings[] = "options.resource_tag=restart;options.timeout=1000;"
                                   "options.retries=5;options.lock_timeout=2000;"
                                   "options.retry_timeout=100";
    return rkt_open_memolock(rkt_server_config(s, settings));
}

/* The winner's fetch: announces itself, then computes until the test lets it finish. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool in_fetch, may_finish;
    atomic_int fetches; /* every fetch call, the winner's and any takeover's */
} g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0};

static int fetch_gated(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    atomic_fetch_add(&g.fetches, 1);
    pthread_mutex_lock(&g.mu);
    g.in_fetch = true;
    pthread_cond_broadcast(&g.cv);
    while (!g.may_finish)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    *ttl_ms = 60000;
    return rk_buf_set(value, "from the winner", 15);
}

static int fetch_takeover(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    atomic_fetch_add(&g.fetches, 1);
    *ttl_ms = 60000;
    return rk_buf_set(value, "from a takeover", 15);
}

static void gate(bool in_fetch, bool may_finish)
{
    pthread_mutex_lock(&g.mu);
    g.in_fetch = in_fetch, g.may_finish = may_finish;
    atomic_store(&g.fetches, 0);
    pthread_mutex_unlock(&g.mu);
}

static void open_gate(void)
{
    pthread_mutex_lock(&g.mu);
    g.may_finish = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static void wait_in_fetch(void)
{
    pthread_mutex_lock(&g.mu);
    while (!g.in_fetch)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

typedef struct {
    rk_memolock *m;
    uint64_t timeout_ms;
    rk_memolock_fetch_fn fn;
    int rc;
    rk_buf out;
    uint64_t took_ms;
} call;

static void *get_thread(void *arg)
{
    call *c = arg;
    uint64_t t0 = rkt_now_ms();
    c->rc = rk_memolock_get(c->m, NULL, "id", c->timeout_ms, c->fn, NULL, &c->out);
    c->took_ms = rkt_now_ms() - t0;
    return NULL;
}

/* Block until `n` connections are subscribed to the id's channel. */
static void wait_subscribers(const rkt_server *s, long long n)
{
    char channel[128];
    snprintf(channel, sizeof channel, "%srestart/notif:id", rkt_prefix());
    redisContext *c = rkt_raw_port(s->port);
    rkt_wait_subscribers(c, channel, n);
    redisFree(c);
}

enum { WAITERS = 6 };

/* The winner (handle m[0]) computes; WAITERS callers on two other handles (singleflight inside
 * each) wait for it. The server is killed, then `between()` runs; the winner's fetch finishes
 * then, or only once every waiter has returned (`late_winner`). */
static void run_scenario(rk_memolock *m[3], uint64_t waiter_timeout, void (*between)(rkt_server *),
                         rkt_server *s, bool late_winner, call *winner, call waiters[WAITERS])
{
    pthread_t tw, tv[WAITERS];
    gate(false, false);
    *winner = (call){m[0], 30000, fetch_gated, -1, RK_BUF_INIT, 0};
    pthread_create(&tw, NULL, get_thread, winner);
    wait_in_fetch();
    for (int i = 0; i < WAITERS; i++) {
        waiters[i] = (call){m[1 + i % 2], waiter_timeout, fetch_takeover, -1, RK_BUF_INIT, 0};
        pthread_create(&tv[i], NULL, get_thread, &waiters[i]);
    }
    wait_subscribers(s, 2); /* one subscriber connection per waiting handle */
    rkt_server_kill(s);
    between(s);
    if (!late_winner)
        open_gate();
    for (int i = 0; i < WAITERS; i++)
        pthread_join(tv[i], NULL);
    open_gate();
    pthread_join(tw, NULL);
}

/* What every caller got. The winner always gets the value it computed, even when it cannot
 * store it. A waiter's value is whole, its error RK_EIO or RK_ETIMEDOUT, and no waiter outlives
 * its deadline. Returns how many waiters got a value. */
static int check_calls(const call *winner, const call waiters[WAITERS], const char *when)
{
    int values = 0;
    ASSERT_OK(winner->rc);
    ASSERT_STR_EQ(winner->out.data, "from the winner");
    for (int i = 0; i <= WAITERS; i++) {
        const call *c = i == 0 ? winner : &waiters[i - 1];
        printf("     %s: %-8s %-22s in %5" PRIu64 " ms%s%s\n", when, i ? "waiter" : "winner",
               rk_strerror(c->rc), c->took_ms, c->rc == RK_OK ? ": " : "",
               c->rc == RK_OK ? c->out.data : "");
        if (c->rc == RK_OK) {
            values += i > 0;
            ASSERT_EQ(c->out.len, 15);
            ASSERT_TRUE(!strcmp(c->out.data, "from the winner") ||
                        !strcmp(c->out.data, "from a takeover"));
        } else {
            ASSERT_TRUE(c->rc == RK_EIO || c->rc == RK_ETIMEDOUT);
            ASSERT_TRUE(c->out.data == NULL);
        }
        if (i > 0)
            ASSERT_LT(c->took_ms, c->timeout_ms + SLACK_MS);
    }
    return values;
}

static void restart_now(rkt_server *s) { rkt_server_restart(s); }

/* Restarted at once: the lock and every subscription are gone. The waiters re-check after
 * their subscriber reconnects and all get a value: the winner's, stored after the restart, or
 * (when the winner is slower) that of the one waiter that took over the free lock. */
static void restarted(bool late_winner)
{
    rkt_server s;
    call winner, waiters[WAITERS];
    rkt_server_start(&s, NULL);
    rk_memolock *m[3] = {open_memo(&s), open_memo(&s), open_memo(&s)};
    run_scenario(m, 8000, restart_now, &s, late_winner, &winner, waiters);
    int values = check_calls(&winner, waiters, "restart");
    printf("     %d fetch calls in all\n", atomic_load(&g.fetches));
    ASSERT_EQ(values, WAITERS); /* the server came back well before any deadline */
    if (late_winner) {
        ASSERT_EQ(atomic_load(&g.fetches), 2); /* the winner's and one takeover, not one each */
        for (int i = 0; i < WAITERS; i++)
            ASSERT_STR_EQ(waiters[i].out.data, "from a takeover");
    }
    for (int i = 0; i < WAITERS; i++)
        rk_buf_free(&waiters[i].out);
    rk_buf_free(&winner.out);
    for (int i = 0; i < 3; i++)
        rk_memolock_free(m[i]);
    rkt_server_stop(&s);
}

static void restarted_winner_finishes(void) { restarted(false); }
static void restarted_waiter_takes_over(void) { restarted(true); }

static void stay_down(rkt_server *s) { (void)s; }

/* Down past the waiters' deadline: each waiter returns an error in time (the winner still gets
 * the value it computed); once the server is back the same handles work without being
 * reopened. */
static void server_down_past_deadline(void)
{
    enum { DEADLINE = 1500 };
    rkt_server s;
    call winner, waiters[WAITERS];
    rkt_server_start(&s, NULL);
    rk_memolock *m[3] = {open_memo(&s), open_memo(&s), open_memo(&s)};
    run_scenario(m, DEADLINE, stay_down, &s, true, &winner, waiters);
    int values = check_calls(&winner, waiters, "down");
    ASSERT_EQ(values, 0);
    ASSERT_EQ(atomic_load(&g.fetches), 1); /* nobody could take over */
    rk_buf_free(&winner.out);
    rkt_server_restart(&s);
    for (int i = 0; i < 3; i++) {
        rk_buf out = RK_BUF_INIT;
        ASSERT_OK(rk_memolock_get(m[i], NULL, "id", 5000, fetch_takeover, NULL, &out));
        ASSERT_STR_EQ(out.data, "from a takeover");
        rk_buf_free(&out);
        rk_memolock_free(m[i]);
    }
    rkt_server_stop(&s);
}

RKT_MAIN(RKT_CASE(restarted_winner_finishes), RKT_CASE(restarted_waiter_takes_over),
         RKT_CASE(server_down_past_deadline))
