/* The near cache when its guarantees are attacked, on a private server: FLUSHALL (an
 * invalidation of every key), the invalidation connection killed (CLIENT KILL ID), a tracked
 * data connection killed (Redis then forgets what it read), and the server restarted. In each
 * case, once the near cache has been flushed no stale value is served, and caching resumes. */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_env.h"

static rkt_server srv;

/* A private server for the case (stopped by its end). */
static rk_cache *open_near(void)
{
    rkt_server_start(&srv, NULL);
    return rkt_open_cache(rkt_server_config(&srv, "options.near_cache_size=100"));
}

static rkt_near stats(rk_cache *c) { return rkt_near_stats(c); }

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Poll until `cond` holds (progress made by other threads), failing after `limit_ms`. */
#define WAIT_FOR(cond, limit_ms, what)                                                             \
    do {                                                                                           \
        uint64_t until_ = rkt_now_ms() + (limit_ms);                                               \
        while (!(cond)) {                                                                          \
            if (rkt_now_ms() > until_)                                                             \
                rkt_fail(__FILE__, __LINE__, "timed out waiting for %s", what);                    \
            pause_ms(1);                                                                           \
        }                                                                                          \
    } while (0)

static bool reads(rk_cache *c, const char *key, const char *want)
{
    rk_buf b = RK_BUF_INIT;
    int rc = rk_cache_retrieve(c, NULL, key, &b);
    bool ok = want ? rc == RK_OK && b.len == strlen(want) && !memcmp(b.data, want, b.len)
                   : rc == RK_ENOTFOUND;
    if (!ok && getenv("RKT_DEBUG"))
        fprintf(stderr, "read %s: rc %d (%s) got '%.*s'\n", key, rc, rk_last_error()->message,
                (int)b.len, b.data ? b.data : "");
    rk_buf_free(&b);
    return ok;
}

/* Read until a read is a hit (the invalidation connection is up and the value cached). */
static void cached(rk_cache *c, const char *key, const char *want)
{
    uint64_t until = rkt_now_ms() + 10000;
    for (;;) {
        uint64_t hits = stats(c).hits;
        ASSERT_TRUE(reads(c, key, want));
        ASSERT_TRUE(reads(c, key, want));
        if (stats(c).hits > hits)
            return;
        ASSERT_LT(rkt_now_ms(), until);
        pause_ms(1);
    }
}

/* `cmd` [key [value]] on the server, the key prefixed as the cache does. */
static void raw(const char *cmd, const char *key, const char *v)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key ? key : "");
    redisContext *r = rkt_server_admin(&srv);
    freeReplyObject(v     ? rkt_cmd(r, cmd, full, v, NULL)
                    : key ? rkt_cmd(r, cmd, full, NULL)
                          : rkt_cmd(r, cmd, NULL));
    redisFree(r);
}

/* The id of the first client whose CLIENT LIST line has `flag` (e.g. "cmd=subscribe"). */
static long long client_with(const char *flag)
{
    redisContext *r = rkt_server_admin(&srv);
    redisReply *rep = rkt_cmd(r, "CLIENT", "LIST", NULL);
    long long id = -1;
    for (char *line = rep->str; line && *line && id < 0;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (strstr(line, flag))
            id = atoll(strstr(line, "id=") + 3);
        line = end ? end + 1 : NULL;
    }
    freeReplyObject(rep);
    redisFree(r);
    return id;
}

static void kill_id(long long id)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", id);
    redisContext *r = rkt_server_admin(&srv);
    freeReplyObject(rkt_cmd(r, "CLIENT", "KILL", "ID", s, NULL));
    redisFree(r);
}

/* FLUSHALL invalidates every key (a nil invalidation): the whole near cache goes. */
static void flushall(void)
{
    rk_cache *c = open_near();
    ASSERT_OK(rk_cache_store(c, NULL, "f1", "v1", 2, 60000));
    ASSERT_OK(rk_cache_store(c, NULL, "f2", "v2", 2, 60000));
    cached(c, "f1", "v1");
    cached(c, "f2", "v2");
    uint64_t flushes = stats(c).flushes;
    raw("FLUSHALL", NULL, NULL);
    WAIT_FOR(stats(c).flushes > flushes, 5000, "the flush");
    ASSERT_EQ(stats(c).entries, 0);
    ASSERT_TRUE(reads(c, "f1", NULL));
    ASSERT_TRUE(reads(c, "f2", NULL));
    raw("SET", "f1", "v3");
    cached(c, "f1", "v3");
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

/* The invalidation connection killed: a write made while it is gone is never announced, so
 * the near cache is flushed, nothing stale is served, and caching resumes on a new listener
 * (the data connection is pointed at its new id). */
static void listener_killed(void)
{
    rk_cache *c = open_near();
    ASSERT_OK(rk_cache_store(c, NULL, "lk", "v1", 2, 60000));
    cached(c, "lk", "v1");
    long long id = client_with("cmd=subscribe");
    ASSERT_GE(id, 1);
    uint64_t flushes = stats(c).flushes;
    kill_id(id);
    raw("SET", "lk", "v2"); /* nobody hears of it */
    WAIT_FOR(stats(c).flushes > flushes, 5000, "the flush");
    ASSERT_TRUE(reads(c, "lk", "v2"));
    WAIT_FOR(client_with("cmd=subscribe") > id, 5000, "a new invalidation connection");
    cached(c, "lk", "v2");
    raw("SET", "lk", "v3");
    WAIT_FOR(reads(c, "lk", "v3"), 2000, "the invalidation through the new listener");
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

/* A tracked data connection killed: Redis no longer invalidates what it read, and a cache
 * serving hits may never use that connection again, so the listener notices on its own. */
static void data_connection_killed(void)
{
    rk_cache *c = open_near();
    ASSERT_OK(rk_cache_store(c, NULL, "dk", "v1", 2, 60000));
    cached(c, "dk", "v1");
    long long id = client_with("cmd=pttl");
    ASSERT_GE(id, 1);
    uint64_t flushes = stats(c).flushes;
    kill_id(id);
    raw("SET", "dk", "v2");
    WAIT_FOR(stats(c).flushes > flushes, 5000, "the flush");
    ASSERT_TRUE(reads(c, "dk", "v2"));
    cached(c, "dk", "v2");
    raw("SET", "dk", "v3");
    WAIT_FOR(reads(c, "dk", "v3"), 2000, "the invalidation after the reconnect");
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

/* The server restarted (its data kept or not): nothing read before is served after. */
static void server_restarted(void)
{
    rk_cache *c = open_near();
    ASSERT_OK(rk_cache_store(c, NULL, "rs", "v1", 2, 60000));
    cached(c, "rs", "v1");
    uint64_t flushes = stats(c).flushes;
    rkt_server_restart(&srv);
    WAIT_FOR(stats(c).flushes > flushes, 5000, "the flush");
    raw("SET", "rs", "v2");
    ASSERT_TRUE(reads(c, "rs", "v2"));
    cached(c, "rs", "v2");
    raw("SET", "rs", "v3");
    WAIT_FOR(reads(c, "rs", "v3"), 2000, "the invalidation after the restart");
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

/* A forked child has no invalidation connection of its own: it reads from Redis, never from
 * what its parent cached. */
static void forked_child(void)
{
    rk_cache *c = open_near();
    ASSERT_OK(rk_cache_store(c, NULL, "fk", "v1", 2, 60000));
    cached(c, "fk", "v1");
    pid_t pid = fork();
    if (pid == 0) {
        redisContext *r = rkt_server_admin(&srv);
        char full[256];
        snprintf(full, sizeof full, "%sfk", rkt_prefix());
        freeReplyObject(rkt_cmd(r, "SET", full, "v2", NULL));
        redisFree(r);
        bool ok = reads(c, "fk", "v2") && reads(c, "fk", "v2") && stats(c).entries == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    WAIT_FOR(reads(c, "fk", "v2"), 2000, "the parent's invalidation");
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

RKT_MAIN(RKT_CASE(flushall), RKT_CASE(listener_killed), RKT_CASE(data_connection_killed),
         RKT_CASE(server_restarted), RKT_CASE(forked_child))
