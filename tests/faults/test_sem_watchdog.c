/* The semaphore's lease watchdog (rk_semaphore_watch) against private redis-servers: a watched
 * permit outlives its TTL many times over and keeps counting against the limit; a permit removed
 * by hand is reported lost exactly once and in time; release, close and fork end the renewals
 * without a callback and never bring a permit back. The watchdog module itself is covered by
 * test_watchdog.c; this file pins down what the semaphore feeds it. */
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "losses.h"
#include "redis_env.h"

enum { TTL_MS = 600, SLACK_MS = 200 };

/* ---- the server's view: the permits sorted set (src/keys.h) ---- */

static const char *permits(const char *key)
{
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "redkit:sem:{%s%s}", rkt_prefix(), key);
    return buf;
}

static long long raw_int(redisContext *c, const char *cmd, const char *key)
{
    redisReply *r = rkt_cmd(c, cmd, permits(key), NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    freeReplyObject(r);
    return v;
}

/* Remove every permit of `key` by hand, as an operator (or a failover) could: how many. */
static long long remove_permits(redisContext *c, const char *key)
{
    redisReply *r = rkt_cmd(c, "ZREMRANGEBYRANK", permits(key), "0", "-1", NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    freeReplyObject(r);
    return v;
}

/* A semaphore handle on `s` with its lost handler, holding and watching one of the `limit`
 * permits of `key` for `ttl_ms`. */
static rk_semaphore *watched_sem(const rkt_server *s, rkt_losses *g, const char *key,
                                 uint32_t limit, uint64_t ttl_ms)
{
    rk_semaphore *sem = rkt_open_semaphore(rkt_server_config(s, NULL));
    ASSERT_OK(rk_semaphore_set_lost_handler(sem, rkt_on_lost, g));
    ASSERT_OK(rk_semaphore_acquire(sem, NULL, key, limit, ttl_ms, 0));
    ASSERT_OK(rk_semaphore_watch(sem, key));
    return sem;
}

static bool try_acquire(rk_semaphore *sem, const char *key, uint32_t limit, uint64_t ttl_ms)
{
    bool ok = false;
    ASSERT_OK(rk_semaphore_try_acquire(sem, NULL, key, limit, ttl_ms, &ok));
    return ok;
}

/* ---- (1) a watched permit outlives its TTL and still counts ---- */

/* How many events of `type` the handle counted (failed ones, or the others). */
static uint64_t sem_events(rk_semaphore *sem, rk_event_type type, bool failed)
{
    rk_stats *st;
    ASSERT_OK(rk_stats_new(&st));
    ASSERT_OK(rk_semaphore_get_stats(sem, st));
    uint64_t n = rk_stats_events(st, type, failed);
    rk_stats_free(st);
    return n;
}

static void held_for_five_ttls(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    rk_semaphore *a = watched_sem(&s, &g, "long", 1, TTL_MS);
    rk_semaphore *b = rkt_open_semaphore(rkt_server_config(&s, NULL));
    redisContext *c = rkt_server_admin(&s);
    int tries = 0;
    /* Each try runs the script, which drops expired permits first: a failed try means ours
     * was live on the server's clock. */
    for (uint64_t end = rkt_now_ms() + 5 * TTL_MS; rkt_now_ms() < end; tries++) {
        ASSERT_FALSE(try_acquire(b, "long", 1, TTL_MS));
        ASSERT_EQ(raw_int(c, "ZCARD", "long"), 1);
        rkt_sleep_ms(25);
    }
    ASSERT_EQ(rkt_losses_now(&g), 0);
    ASSERT_GE(sem_events(a, RK_EVENT_LOCK_RENEWED, false), 4); /* one a TTL at least, counted */
    printf("     held %d ms with a %d ms TTL: %d tries of another handle at limit 1 failed\n",
           5 * TTL_MS, TTL_MS, tries);
    ASSERT_OK(rk_semaphore_release(a, NULL, "long"));
    ASSERT_TRUE(try_acquire(b, "long", 1, TTL_MS));
    ASSERT_OK(rk_semaphore_release(b, NULL, "long"));
    ASSERT_EQ(rkt_losses_now(&g), 0);
    rk_semaphore_free(b);
    rk_semaphore_free(a);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- (2) a permit removed by hand ---- */

static void removed_permit_reported_once(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    rk_semaphore *sem = watched_sem(&s, &g, "removed", 3, TTL_MS);
    redisContext *c = rkt_server_admin(&s);
    rkt_sleep_ms(TTL_MS / 2); /* a renewal or two first */
    ASSERT_EQ(rkt_losses_now(&g), 0);
    ASSERT_EQ(remove_permits(c, "removed"), 1);
    uint64_t removed_at = rkt_now_ms();
    ASSERT_EQ(rkt_wait_losses(&g, 1, 5 * TTL_MS), 1);
    uint64_t took = g.first_at - removed_at;
    ASSERT_LT(took, TTL_MS / 3 + SLACK_MS);
    ASSERT_STR_EQ(g.key, "removed");
    ASSERT_EQ(g.code, RK_ENOTOWNER);
    ASSERT_CONTAINS(g.why, "removed");
    ASSERT_EQ(rkt_wait_losses(&g, 2, 2 * TTL_MS), 1);        /* once only */
    ASSERT_EQ(sem_events(sem, RK_EVENT_LOCK_LOST, true), 1); /* counted too */
    ASSERT_EQ(raw_int(c, "ZCARD", "removed"), 0);            /* not re-created */
    ASSERT_RC(rk_semaphore_extend(sem, NULL, "removed", TTL_MS), RK_ENOTOWNER);
    ASSERT_OK(rk_semaphore_release(sem, NULL, "removed")); /* a lost permit releases quietly */
    printf("     reported lost %" PRIu64 " ms after the ZREM (ttl/3 = %d ms): %s\n", took,
           TTL_MS / 3, g.why);
    rk_semaphore_free(sem);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- (3) release stops the renewals ---- */

enum { RACE_TTL = 300, RACE_ROUNDS = 20 };

/* Released permits stay gone for `ms`: no renewal in flight at the release brings one back. */
static void stays_gone(redisContext *c, const char *const *keys, int n, unsigned ms)
{
    for (uint64_t end = rkt_now_ms() + ms; rkt_now_ms() < end; rkt_sleep_ms(10))
        for (int i = 0; i < n; i++)
            if (raw_int(c, "ZCARD", keys[i]) != 0)
                rkt_fail(__FILE__, __LINE__, "released permit of %s came back", keys[i]);
}

static void release_stops_renewals(void)
{
    static const char *const keys[] = {"r0", "r1", "r2"};
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    redisContext *c = rkt_server_admin(&s);
    rk_semaphore *sem = rkt_open_semaphore(rkt_server_config(&s, NULL));
    ASSERT_OK(rk_semaphore_set_lost_handler(sem, rkt_on_lost, &g));
    /* Released at every point of the renewal cycle, so some releases meet a renewal. */
    for (int i = 0; i < RACE_ROUNDS; i++) {
        ASSERT_OK(rk_semaphore_acquire(sem, NULL, "race", 2, RACE_TTL, 0));
        ASSERT_OK(rk_semaphore_watch(sem, "race"));
        rkt_sleep_ms((unsigned)(i * 37) % (RACE_TTL / 3 + 20));
        ASSERT_OK(rk_semaphore_release(sem, NULL, "race"));
        ASSERT_EQ(raw_int(c, "ZCARD", "race"), 0);
    }
    /* Several keys at once: each release ends its own watch only. */
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(rk_semaphore_acquire(sem, NULL, keys[i], 2, RACE_TTL, 0));
        ASSERT_OK(rk_semaphore_watch(sem, keys[i]));
    }
    for (int i = 0; i < 2; i++) {
        rkt_sleep_ms(47);
        ASSERT_OK(rk_semaphore_release(sem, NULL, keys[i]));
    }
    static const char *const released[] = {"race", "r0", "r1"};
    stays_gone(c, released, 3, 2 * RACE_TTL);
    ASSERT_EQ(raw_int(c, "ZCARD", "r2"), 1); /* still renewed after two TTLs */
    ASSERT_GE(raw_int(c, "PTTL", "r2"), 1);
    ASSERT_OK(rk_semaphore_release(sem, NULL, "r2"));
    stays_gone(c, keys, 3, 2 * RACE_TTL);
    ASSERT_EQ(rkt_losses_now(&g), 0);
    ASSERT_RC(rk_semaphore_watch(sem, "r0"), RK_ENOTOWNER);
    rk_semaphore_free(sem);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- (4) close with watched permits ---- */

static void close_with_watched_permits(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    redisContext *c = rkt_server_admin(&s);
    rk_semaphore *sem = watched_sem(&s, &g, "c0", 2, TTL_MS);
    ASSERT_OK(rk_semaphore_acquire(sem, NULL, "c1", 2, TTL_MS, 0));
    ASSERT_OK(rk_semaphore_watch(sem, "c1"));
    rkt_sleep_ms(TTL_MS / 2);
    uint64_t t0 = rkt_now_ms();
    ASSERT_OK(rk_semaphore_close(sem, NULL));
    uint64_t took = rkt_now_ms() - t0;
    ASSERT_LT(took, 500);
    /* Not renewed any more: both expire within a TTL (close does not release them), and the
     * sets live as long as their longest permit. */
    uint64_t deadline = rkt_now_ms() + TTL_MS + SLACK_MS;
    while ((raw_int(c, "EXISTS", "c0") || raw_int(c, "EXISTS", "c1")) && rkt_now_ms() < deadline)
        rkt_sleep_ms(10);
    ASSERT_EQ(raw_int(c, "EXISTS", "c0") + raw_int(c, "EXISTS", "c1"), 0);
    ASSERT_EQ(rkt_wait_losses(&g, 1, TTL_MS), 0);
    rk_semaphore_free(sem);
    printf("     close took %" PRIu64 " ms\n", took);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- (5) watching what is not held ---- */

static void watch_not_held(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    rk_semaphore *sem = rkt_open_semaphore(rkt_server_config(&s, NULL));
    ASSERT_OK(rk_semaphore_set_lost_handler(sem, rkt_on_lost, &g));
    ASSERT_RC(rk_semaphore_watch(sem, "never"), RK_ENOTOWNER);
    ASSERT_CONTAINS(rk_last_error()->message, "never");
    ASSERT_OK(rk_semaphore_acquire(sem, NULL, "once", 1, TTL_MS, 0));
    ASSERT_OK(rk_semaphore_release(sem, NULL, "once"));
    ASSERT_RC(rk_semaphore_watch(sem, "once"), RK_ENOTOWNER);
    /* Held by this handle, but its lease ran out: the watch's first renewal finds it lost. */
    ASSERT_OK(rk_semaphore_acquire(sem, NULL, "expired", 1, 50, 0));
    rkt_sleep_ms(120);
    ASSERT_RC(rk_semaphore_watch(sem, "expired"), RK_ENOTOWNER);
    ASSERT_CONTAINS(rk_last_error()->message, "expired");
    ASSERT_RC(rk_semaphore_watch(sem, NULL), RK_EINVAL);
    ASSERT_RC(rk_semaphore_watch(sem, ""), RK_EINVAL);
    ASSERT_RC(rk_semaphore_watch(NULL, "k"), RK_EINVAL);
    ASSERT_RC(rk_semaphore_set_lost_handler(NULL, rkt_on_lost, &g), RK_EINVAL);
    ASSERT_OK(rk_semaphore_acquire(sem, NULL, "closed", 1, TTL_MS, 0));
    ASSERT_OK(rk_semaphore_close(sem, NULL));
    ASSERT_RC(rk_semaphore_watch(sem, "closed"), RK_ENOTOPEN);
    ASSERT_EQ(rkt_losses_now(&g), 0);
    rk_semaphore_free(sem);
    rkt_server_stop(&s);
}

/* ---- (6) fork: the child does not watch the parent's permits ---- */

static void forked_child_watches_nothing(void)
{
    rkt_server s;
    rkt_losses g;
    int status;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    (void)rkt_prefix(); /* shared with the child */
    rk_semaphore *sem = watched_sem(&s, &g, "parent", 1, TTL_MS);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        int rc = rk_semaphore_watch(sem, "parent"); /* the child does not hold it */
        uint64_t t0 = rkt_now_ms();
        rk_semaphore_free(sem); /* no parent's thread to wait for */
        _exit(rc == RK_ENOTOWNER && rkt_now_ms() - t0 < 1000 ? 0 : 1);
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rk_semaphore *other = rkt_open_semaphore(rkt_server_config(&s, NULL));
    rkt_sleep_ms(2 * TTL_MS);
    ASSERT_FALSE(try_acquire(other, "parent", 1, TTL_MS)); /* the parent still renews it */
    ASSERT_EQ(rkt_losses_now(&g), 0);
    ASSERT_OK(rk_semaphore_release(sem, NULL, "parent"));
    ASSERT_TRUE(try_acquire(other, "parent", 1, TTL_MS));
    rk_semaphore_free(other);
    rk_semaphore_free(sem);
    rkt_server_stop(&s);
}

RKT_MAIN(RKT_CASE(held_for_five_ttls), RKT_CASE(removed_permit_reported_once),
         RKT_CASE(release_stops_renewals), RKT_CASE(close_with_watched_permits),
         RKT_CASE(watch_not_held), RKT_CASE(forked_child_watches_nothing))
