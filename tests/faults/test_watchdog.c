/* The lease watchdog (rk_lock_watch) against private redis-servers: a watched lock outlives its
 * TTL many times over; a key deleted by hand, or a server stopped (SIGSTOP) for longer than the
 * TTL, is reported lost exactly once and in time; release, close and fork end the renewals
 * without a callback and never bring a key back. The last cases drive the watchdog module
 * itself with a renewal the test holds in flight, to pin down the unwatch-vs-renewal race. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error_int.h"
#include "losses.h"
#include "redis_env.h"
#include "watchdog.h"

enum { TTL_MS = 600, SLACK_MS = 200 };

/* ---- the server's view ---- */

static const char *full(const char *key)
{
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "%s%s", rkt_prefix(), key);
    return buf;
}

static long long raw_int(redisContext *c, const char *cmd, const char *key)
{
    redisReply *r = rkt_cmd(c, cmd, full(key), NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    freeReplyObject(r);
    return v;
}

/* A lock handle on `s` with its lost handler, holding and watching `key` for `ttl_ms`. */
static rk_lock *watched_lock(const rkt_server *s, rkt_losses *g, const char *key, uint64_t ttl_ms)
{
    rk_lock *l = rkt_open_lock(rkt_server_config(s, NULL));
    ASSERT_OK(rk_lock_set_lost_handler(l, rkt_on_lost, g));
    ASSERT_OK(rk_lock_acquire(l, NULL, key, ttl_ms, 0));
    ASSERT_OK(rk_lock_watch(l, key));
    return l;
}

/* Messages the library logs (a failed renewal is a warning). */
static atomic_int warnings;

static void count_warnings(void *ud, int level, const char *message)
{
    (void)ud;
    if (level <= RK_LOG_WARN && strstr(message, "could not renew"))
        atomic_fetch_add(&warnings, 1);
}

/* ---- (1) a watched lock outlives its TTL ---- */

static void held_for_five_ttls(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    rk_lock *l = watched_lock(&s, &g, "long", TTL_MS);
    redisContext *c = rkt_server_admin(&s);
    long long min = TTL_MS;
    int samples = 0;
    for (uint64_t end = rkt_now_ms() + 5 * TTL_MS; rkt_now_ms() < end; samples++) {
        long long pttl = raw_int(c, "PTTL", "long");
        ASSERT_GE(pttl, 1); /* -2: gone */
        min = pttl < min ? pttl : min;
        rkt_sleep_ms(10);
    }
    ASSERT_EQ(rkt_losses_now(&g), 0);
    printf("     held %d ms with a %d ms TTL: %d PTTL samples, lowest %lld ms\n", 5 * TTL_MS,
           TTL_MS, samples, min);
    ASSERT_OK(rk_lock_release(l, NULL, "long"));
    ASSERT_EQ(raw_int(c, "EXISTS", "long"), 0);
    rk_lock_free(l);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- (2) a key deleted by hand ---- */

static void deleted_key_reported_once(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    rk_lock *l = watched_lock(&s, &g, "deleted", TTL_MS);
    redisContext *c = rkt_server_admin(&s);
    rkt_sleep_ms(TTL_MS / 2); /* a renewal or two first */
    ASSERT_EQ(raw_int(c, "DEL", "deleted"), 1);
    uint64_t deleted_at = rkt_now_ms();
    ASSERT_EQ(rkt_wait_losses(&g, 1, 5 * TTL_MS), 1);
    uint64_t took = g.first_at - deleted_at;
    ASSERT_LT(took, TTL_MS / 3 + SLACK_MS);
    ASSERT_STR_EQ(g.key, "deleted");
    ASSERT_EQ(g.code, RK_ENOTOWNER);
    ASSERT_CONTAINS(g.why, "deleted");
    ASSERT_EQ(rkt_wait_losses(&g, 2, 2 * TTL_MS), 1); /* once only */
    ASSERT_EQ(raw_int(c, "EXISTS", "deleted"), 0);
    ASSERT_RC(rk_lock_extend(l, NULL, "deleted", TTL_MS), RK_ENOTOWNER);
    ASSERT_OK(rk_lock_release(l, NULL, "deleted")); /* a lost lock releases quietly */
    printf("     reported lost %" PRIu64 " ms after the DEL (ttl/3 = %d ms): %s\n", took,
           TTL_MS / 3, g.why);
    rk_lock_free(l);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- (3) release stops the renewals ---- */

enum { RACE_TTL = 300, RACE_ROUNDS = 25 };

/* Released keys stay gone for `ms`: no renewal in flight at the release brings one back. */
static void stays_gone(redisContext *c, const char *const *keys, int n, unsigned ms)
{
    for (uint64_t end = rkt_now_ms() + ms; rkt_now_ms() < end; rkt_sleep_ms(10))
        for (int i = 0; i < n; i++)
            if (raw_int(c, "EXISTS", keys[i]) != 0)
                rkt_fail(__FILE__, __LINE__, "released key %s came back", keys[i]);
}

static void release_stops_renewals(void)
{
    static const char *const keys[] = {"r0", "r1", "r2", "r3", "r4"};
    rkt_server s;
    rkt_losses g;
    char token[RK_LOCK_TOKEN_SIZE];
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    redisContext *c = rkt_server_admin(&s);
    rk_lock *l = rkt_open_lock(rkt_server_config(&s, NULL));
    ASSERT_OK(rk_lock_set_lost_handler(l, rkt_on_lost, &g));
    /* Released at every point of the renewal cycle, so some releases meet a renewal. */
    for (int i = 0; i < RACE_ROUNDS; i++) {
        ASSERT_OK(rk_lock_acquire(l, NULL, "race", RACE_TTL, 0));
        ASSERT_OK(rk_lock_watch(l, "race"));
        rkt_sleep_ms((unsigned)(i * 37) % (RACE_TTL / 3 + 20));
        if (i % 2) {
            ASSERT_OK(rk_lock_release(l, NULL, "race"));
        } else {
            ASSERT_OK(rk_lock_token(l, "race", token));
            ASSERT_OK(rk_lock_release_token(l, NULL, "race", token));
        }
        ASSERT_EQ(raw_int(c, "EXISTS", "race"), 0);
    }
    /* Several keys at once, one schedule: each release ends its own watch only. A release by
     * another token does not end the watch of ours. */
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(rk_lock_acquire(l, NULL, keys[i], RACE_TTL, 0));
        ASSERT_OK(rk_lock_watch(l, keys[i]));
    }
    ASSERT_RC(rk_lock_release_token(l, NULL, "r4", "0123456789abcdef0123456789abcdef"),
              RK_ENOTOWNER);
    for (int i = 0; i < 4; i++) {
        rkt_sleep_ms(47);
        ASSERT_OK(rk_lock_release(l, NULL, keys[i]));
    }
    static const char *const released[] = {"race", "r0", "r1", "r2", "r3"};
    stays_gone(c, released, 5, 2 * RACE_TTL);
    ASSERT_GE(raw_int(c, "PTTL", "r4"), 1); /* still renewed */
    ASSERT_OK(rk_lock_release(l, NULL, "r4"));
    stays_gone(c, keys, 5, 2 * RACE_TTL);
    ASSERT_EQ(rkt_losses_now(&g), 0);
    ASSERT_RC(rk_lock_watch(l, "r0"), RK_ENOTOWNER);
    rk_lock_free(l);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- (4) close with watched keys ---- */

static void close_with_watched_keys(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    redisContext *c = rkt_server_admin(&s);
    rk_lock *l = watched_lock(&s, &g, "c0", TTL_MS);
    ASSERT_OK(rk_lock_acquire(l, NULL, "c1", TTL_MS, 0));
    ASSERT_OK(rk_lock_watch(l, "c1"));
    rkt_sleep_ms(TTL_MS / 2);
    uint64_t t0 = rkt_now_ms();
    ASSERT_OK(rk_lock_close(l, NULL));
    uint64_t took = rkt_now_ms() - t0;
    ASSERT_LT(took, 500);
    /* Not renewed any more: both expire within a TTL (close does not release them). */
    uint64_t deadline = rkt_now_ms() + TTL_MS + SLACK_MS;
    while ((raw_int(c, "EXISTS", "c0") || raw_int(c, "EXISTS", "c1")) && rkt_now_ms() < deadline)
        rkt_sleep_ms(10);
    ASSERT_EQ(raw_int(c, "EXISTS", "c0") + raw_int(c, "EXISTS", "c1"), 0);
    ASSERT_EQ(rkt_wait_losses(&g, 1, TTL_MS), 0);
    rk_lock_free(l);
    printf("     close took %" PRIu64 " ms\n", took);
    redisFree(c);
    rkt_server_stop(&s);
}

/* A renewal in flight to a stopped server, with seconds of lease left to wait for: close ends it
 * at once, and reports nothing. */
static void close_during_stalled_renewal(void)
{
    enum { LONG_TTL = 6000 };
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    rk_lock *l = watched_lock(&s, &g, "stalled", LONG_TTL);
    ASSERT_EQ(kill(s.pid, SIGSTOP), 0);
    while (rkt_server_unanswered(&s) < 1) /* the renewal due at ttl/3 */
        rkt_sleep_ms(5);
    uint64_t t0 = rkt_now_ms();
    ASSERT_OK(rk_lock_close(l, NULL));
    uint64_t took = rkt_now_ms() - t0;
    ASSERT_LT(took, 1500); /* left alone the renewal waits ~4 s */
    rk_lock_free(l);
    ASSERT_EQ(rkt_losses_now(&g), 0);
    ASSERT_EQ(kill(s.pid, SIGCONT), 0);
    printf("     close with a renewal stalled in flight took %" PRIu64 " ms\n", took);
    rkt_server_stop(&s);
}

/* ---- (5) watching what is not held ---- */

static void watch_not_held(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    rk_lock *l = rkt_open_lock(rkt_server_config(&s, NULL));
    ASSERT_RC(rk_lock_watch(l, "never"), RK_ENOTOWNER);
    ASSERT_CONTAINS(rk_last_error()->message, "never");
    ASSERT_OK(rk_lock_acquire(l, NULL, "once", TTL_MS, 0));
    ASSERT_OK(rk_lock_release(l, NULL, "once"));
    ASSERT_RC(rk_lock_watch(l, "once"), RK_ENOTOWNER);
    /* Held by this handle, but its lease ran out: the watch's first renewal finds it lost. */
    ASSERT_OK(rk_lock_acquire(l, NULL, "expired", 50, 0));
    rkt_sleep_ms(120);
    ASSERT_RC(rk_lock_watch(l, "expired"), RK_ENOTOWNER);
    ASSERT_CONTAINS(rk_last_error()->message, "expired");
    ASSERT_RC(rk_lock_watch(l, NULL), RK_EINVAL);
    ASSERT_RC(rk_lock_watch(l, ""), RK_EINVAL);
    ASSERT_RC(rk_lock_watch(NULL, "k"), RK_EINVAL);
    ASSERT_RC(rk_lock_set_lost_handler(NULL, rkt_on_lost, &g), RK_EINVAL);
    ASSERT_OK(rk_lock_acquire(l, NULL, "closed", TTL_MS, 0));
    ASSERT_OK(rk_lock_close(l, NULL));
    ASSERT_RC(rk_lock_watch(l, "closed"), RK_ENOTOPEN);
    ASSERT_EQ(rkt_losses_now(&g), 0);
    rk_lock_free(l);
    rkt_server_stop(&s);
}

/* ---- (6) a server stopped for longer than the TTL ---- */

static void server_stopped_past_ttl(void)
{
    rkt_server s;
    rkt_losses g;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    atomic_store(&warnings, 0);
    rk_set_log_handler(count_warnings, NULL);
    rk_lock *l = watched_lock(&s, &g, "paused", TTL_MS);
    redisContext *c = rkt_server_admin(&s);
    rkt_sleep_ms(TTL_MS); /* renewed a few times */
    uint64_t before = rkt_now_ms();
    long long pttl = raw_int(c, "PTTL", "paused");
    ASSERT_GE(pttl, 1);
    uint64_t expires = before + (uint64_t)pttl; /* in Redis, unless renewed after this */
    uint64_t stopped_at = rkt_now_ms();
    ASSERT_EQ(kill(s.pid, SIGSTOP), 0);
    ASSERT_EQ(rkt_wait_losses(&g, 1, 5 * TTL_MS), 1);
    /* The last renewal that got through came at most ttl/3 before the stop; then the lease is
     * lost a TTL later, and not before Redis would have expired it. */
    uint64_t after_stop = g.first_at - stopped_at;
    ASSERT_LT(after_stop, TTL_MS + SLACK_MS);
    ASSERT_GE(g.first_at + 50, expires);
    ASSERT_EQ(g.code, RK_ETIMEDOUT);
    ASSERT_CONTAINS(g.why, "not renewed within its TTL");
    ASSERT_EQ(kill(s.pid, SIGCONT), 0);
    ASSERT_EQ(rkt_wait_losses(&g, 2, 2 * TTL_MS), 1); /* once only, the server back or not */
    ASSERT_EQ(raw_int(c, "EXISTS", "paused"), 0);
    ASSERT_LT(atomic_load(&warnings), 2); /* the first failure in a row only */
    printf("     reported lost %" PRIu64 " ms after SIGSTOP (ttl %d ms): %s\n", after_stop, TTL_MS,
           g.why);
    rk_set_log_handler(NULL, NULL);
    rk_lock_free(l);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- fork: the child does not watch the parent's keys ---- */

static void forked_child_watches_nothing(void)
{
    rkt_server s;
    rkt_losses g;
    int status;
    rkt_server_start(&s, NULL);
    rkt_losses_init(&g);
    (void)rkt_prefix(); /* shared with the child */
    rk_lock *l = watched_lock(&s, &g, "parent", TTL_MS);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        int rc = rk_lock_watch(l, "parent"); /* the child does not hold it */
        uint64_t t0 = rkt_now_ms();
        rk_lock_free(l); /* no parent's thread to wait for */
        _exit(rc == RK_ENOTOWNER && rkt_now_ms() - t0 < 1000 ? 0 : 1);
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    redisContext *c = rkt_server_admin(&s);
    rkt_sleep_ms(2 * TTL_MS);
    ASSERT_GE(raw_int(c, "PTTL", "parent"), 1); /* the parent still renews it */
    ASSERT_EQ(rkt_losses_now(&g), 0);
    ASSERT_OK(rk_lock_release(l, NULL, "parent"));
    rk_lock_free(l);
    redisFree(c);
    rkt_server_stop(&s);
}

/* ---- the module: a renewal held in flight by the test ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered;
    bool go;
    rk__lease answer;
    char lease[16];
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, RK__LEASE_RENEWED, ""};

static rk__lease gated_renew(void *ud, const char *key, const char *lease, uint64_t ttl_ms,
                             uint64_t timeout_ms)
{
    (void)ud, (void)key, (void)ttl_ms;
    ASSERT_TRUE(timeout_ms <= ttl_ms);
    pthread_mutex_lock(&gate.mu);
    gate.entered++;
    snprintf(gate.lease, sizeof gate.lease, "%s", lease);
    pthread_cond_broadcast(&gate.cv);
    while (!gate.go)
        pthread_cond_wait(&gate.cv, &gate.mu);
    gate.go = false;
    rk__lease r = gate.answer;
    pthread_mutex_unlock(&gate.mu);
    return r;
}

static void wait_entered(int n)
{
    pthread_mutex_lock(&gate.mu);
    while (gate.entered < n)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

static void let_go(rk__lease answer)
{
    pthread_mutex_lock(&gate.mu);
    gate.answer = answer;
    gate.go = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

/* A `since` that makes the first renewal due at once (ttl 300). */
static uint64_t due_now(void) { return rk__now_ms() - 100; }

/* A renewal in flight answers "lost" after its key was unwatched, or watched again with another
 * lease: neither is reported. A lease that is not the watched one does not unwatch the key. */
static void unwatched_during_renewal(void)
{
    rkt_losses g;
    rk__watchdog *w;
    rkt_losses_init(&g);
    ASSERT_OK(rk__watchdog_new(&w, gated_renew, NULL, NULL));
    rk__watchdog_set_lost(w, rkt_on_lost, &g);
    ASSERT_OK(rk__watchdog_watch(w, "k", "lease-1", 300, due_now()));
    wait_entered(1);
    rk__watchdog_unwatch(w, "k", NULL);
    let_go(RK__LEASE_LOST);
    ASSERT_EQ(rkt_wait_losses(&g, 1, 100), 0);

    ASSERT_OK(rk__watchdog_watch(w, "k", "lease-2", 300, due_now()));
    wait_entered(2);
    ASSERT_STR_EQ(gate.lease, "lease-2");
    rk__watchdog_unwatch(w, "k", "lease-1"); /* not the watched lease: no effect */
    ASSERT_OK(rk__watchdog_watch(w, "k", "lease-3", 300, rk__now_ms()));
    let_go(RK__LEASE_LOST); /* lease-2's answer */
    ASSERT_EQ(rkt_wait_losses(&g, 1, 50), 0);
    wait_entered(3); /* lease-3, due ttl/3 later */
    ASSERT_STR_EQ(gate.lease, "lease-3");
    rk__watchdog_stop(w);
    let_go(RK__LEASE_LOST);
    rk__watchdog_join(w);
    ASSERT_EQ(rkt_losses_now(&g), 0);

    /* After a stop, a watch starts a thread again, and its loss is reported as usual. */
    ASSERT_OK(rk__watchdog_watch(w, "k", "lease-4", 300, due_now()));
    wait_entered(4);
    let_go(RK__LEASE_LOST);
    ASSERT_EQ(rkt_wait_losses(&g, 1, 5000), 1);
    ASSERT_STR_EQ(g.key, "k");
    rk__watchdog_free(w);
    ASSERT_EQ(rkt_losses_now(&g), 1);
}

/* Failed renewals are retried every ttl/3 until the lease has had its TTL, then reported once;
 * each renewal is given only the time the lease has left. */
static atomic_int fails;
static _Atomic uint64_t last_timeout;

static rk__lease failing_renew(void *ud, const char *key, const char *lease, uint64_t ttl_ms,
                               uint64_t timeout_ms)
{
    (void)ud, (void)key, (void)lease, (void)ttl_ms;
    atomic_fetch_add(&fails, 1);
    atomic_store(&last_timeout, timeout_ms);
    rk__err(RK_EIO, "no answer");
    return RK__LEASE_FAILED;
}

static void failures_until_ttl(void)
{
    rkt_losses g;
    rk__watchdog *w;
    rkt_losses_init(&g);
    atomic_store(&warnings, 0);
    rk_set_log_handler(count_warnings, NULL);
    ASSERT_OK(rk__watchdog_new(&w, failing_renew, NULL, NULL));
    rk__watchdog_set_lost(w, rkt_on_lost, &g);
    uint64_t since = rk__now_ms();
    ASSERT_OK(rk__watchdog_watch(w, "f", "lease", 300, since));
    ASSERT_EQ(rkt_wait_losses(&g, 1, 5000), 1);
    uint64_t at = g.first_at - since;
    ASSERT_GE(at, 300);
    ASSERT_LT(at, 300 + SLACK_MS);
    ASSERT_GE(atomic_load(&fails), 1); /* at ttl/3 and 2 ttl/3, unless the thread ran late */
    ASSERT_LT(atomic_load(&fails), 3);
    ASSERT_LT(atomic_load(&last_timeout), 101);
    ASSERT_EQ(g.code, RK_ETIMEDOUT);
    ASSERT_CONTAINS(g.why, "no answer");
    ASSERT_EQ(rkt_wait_losses(&g, 2, 400), 1);
    ASSERT_EQ(atomic_load(&warnings), 1); /* the first failure in a row */
    rk_set_log_handler(NULL, NULL);
    rk__watchdog_free(w);
}

RKT_MAIN(RKT_CASE(held_for_five_ttls), RKT_CASE(deleted_key_reported_once),
         RKT_CASE(release_stops_renewals), RKT_CASE(close_with_watched_keys),
         RKT_CASE(close_during_stalled_renewal), RKT_CASE(watch_not_held),
         RKT_CASE(server_stopped_past_ttl), RKT_CASE(forked_child_watches_nothing),
         RKT_CASE(unwatched_during_renewal), RKT_CASE(failures_until_ttl))
