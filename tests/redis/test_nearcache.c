/* The near cache (options.near_cache_size) against the fixture server: hits without I/O, misses
 * filled with the key's TTL, invalidation by other writers (SET, DEL, expiry), read-your-writes
 * for the handle's own writes, batches, the LRU bounds, a Unix socket, and a staleness run of 4
 * writer and 4 reader processes (each reader with its own near cache and invalidation
 * connection). Cases that FLUSHALL, kill connections or restart the server are in
 * faults/test_nearcache_faults.c, on private servers. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_env.h"

static rk_cache *open_near(const char *extra)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg, "options.near_cache_size=1000%s%s", extra ? ";" : "",
             extra ? extra : "");
    return rkt_open_cache(rkt_config(cfg));
}

static rkt_near stats(rk_cache *c) { return rkt_near_stats(c); }

static void assert_value(rk_cache *c, const char *key, const char *want)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, key, &b));
    ASSERT_EQ(b.len, strlen(want));
    ASSERT_MEM_EQ(b.data, want, b.len);
    ASSERT_EQ(b.data[b.len], '\0');
    rk_buf_free(&b);
}

static void raw_set(const char *key, const char *value, const char *px)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    redisContext *r = rkt_raw();
    redisReply *rep =
        px ? rkt_cmd(r, "SET", full, value, "PX", px, NULL) : rkt_cmd(r, "SET", full, value, NULL);
    freeReplyObject(rep);
    redisFree(r);
}

static void raw_cmd2(const char *cmd, const char *key)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    redisContext *r = rkt_raw();
    freeReplyObject(rkt_cmd(r, cmd, full, NULL));
    redisFree(r);
}

/* Retrieve until `key` reads `want` (NULL: not found), at most `ms`; the invalidation is
 * asynchronous, so this is the event. Returns how long it took. */
static uint64_t until_value(rk_cache *c, const char *key, const char *want, uint64_t ms)
{
    uint64_t start = rkt_now_ms();
    for (;;) {
        rk_buf b = RK_BUF_INIT;
        int rc = rk_cache_retrieve(c, NULL, key, &b);
        bool ok = want ? rc == RK_OK && b.len == strlen(want) && !memcmp(b.data, want, b.len)
                       : rc == RK_ENOTFOUND;
        rk_buf_free(&b);
        if (ok)
            return rkt_now_ms() - start;
        ASSERT_LT(rkt_now_ms() - start, ms);
        usleep(200);
    }
}

/* Read until the value is cached (the invalidation connection is up), or fail. */
static void cached(rk_cache *c, const char *key, const char *want)
{
    uint64_t start = rkt_now_ms();
    for (;;) {
        uint64_t hits = stats(c).hits;
        assert_value(c, key, want);
        assert_value(c, key, want);
        if (stats(c).hits >= hits + 1)
            return;
        ASSERT_LT(rkt_now_ms() - start, 5000);
        usleep(1000);
    }
}

/* The first read misses and fills, the next ones hit; a hit is a copy. */
static void hit_and_miss(void)
{
    rk_cache *c = open_near(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "k", "v1", 2, 60000));
    rkt_near s0 = stats(c);
    assert_value(c, "k", "v1");
    rkt_near s1 = stats(c);
    ASSERT_EQ(s1.misses, s0.misses + 1);
    /* The listener comes up with the first connection: reads are cached once it is. */
    cached(c, "k", "v1");
    rkt_near s2 = stats(c);
    for (int i = 0; i < 10; i++)
        assert_value(c, "k", "v1");
    rkt_near s3 = stats(c);
    ASSERT_EQ(s3.hits, s2.hits + 10);
    ASSERT_EQ(s3.misses, s2.misses);
    ASSERT_EQ(s3.entries, 1);
    ASSERT_EQ(s3.bytes, strlen(rkt_prefix()) + 1 + 2);
    /* A hit hands out a copy: changing it changes nothing cached. */
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "k", &b));
    b.data[0] = 'X';
    rk_buf_free(&b);
    assert_value(c, "k", "v1");
    /* A missing key is not cached. */
    ASSERT_RC(rk_cache_retrieve(c, NULL, "absent", &b), RK_ENOTFOUND);
    ASSERT_RC(rk_cache_retrieve(c, NULL, "absent", &b), RK_ENOTFOUND);
    ASSERT_EQ(stats(c).entries, 1);
    rk_cache_free(c);
}

/* Another client's SET, DEL and expiry reach the near cache. */
static void invalidated_by_others(void)
{
    rk_cache *c = open_near(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "inv", "v1", 2, 60000));
    cached(c, "inv", "v1");
    uint64_t inv = stats(c).invalidations;
    raw_set("inv", "v2", NULL);
    until_value(c, "inv", "v2", 2000);
    ASSERT_GE(stats(c).invalidations, inv + 1);
    cached(c, "inv", "v2");
    raw_cmd2("DEL", "inv");
    until_value(c, "inv", NULL, 2000);
    raw_set("inv", "v3", NULL);
    cached(c, "inv", "v3");
    raw_set("inv", "v3", "50"); /* expires in Redis: its invalidation, or the local TTL */
    cached(c, "inv", "v3");
    until_value(c, "inv", NULL, 2000);
    rk_cache_free(c);
}

/* A local entry never outlives the key's TTL in Redis, even when no invalidation comes. */
static void ttl_bound(void)
{
    rk_cache *c = open_near(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "short", "v", 1, 300));
    cached(c, "short", "v");
    usleep(350 * 1000); /* the TTL itself is under test */
    rk_buf b = RK_BUF_INIT;
    ASSERT_RC(rk_cache_retrieve(c, NULL, "short", &b), RK_ENOTFOUND);
    rk_cache_free(c);
}

/* The handle's own writes are visible to its next read, without waiting for invalidations. */
static void read_your_writes(void)
{
    rk_cache *c = open_near(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "own", "v1", 2, 60000));
    cached(c, "own", "v1");
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i + 2);
        ASSERT_OK(rk_cache_store(c, NULL, "own", v, strlen(v), 60000));
        assert_value(c, "own", v); /* at once */
        assert_value(c, "own", v);
    }
    ASSERT_OK(rk_cache_remove(c, NULL, "own"));
    rk_buf b = RK_BUF_INIT;
    ASSERT_RC(rk_cache_retrieve(c, NULL, "own", &b), RK_ENOTFOUND);
    rk_cache_entry e[2] = {{"m1", "a", 1, 60000}, {"m2", "b", 1, 60000}};
    ASSERT_OK(rk_cache_store_many(c, NULL, e, 2));
    cached(c, "m1", "a");
    cached(c, "m2", "b");
    e[0].value = "A", e[1].value = "B";
    ASSERT_OK(rk_cache_store_many(c, NULL, e, 2));
    assert_value(c, "m1", "A");
    assert_value(c, "m2", "B");
    const char *keys[2] = {"m1", "m2"};
    ASSERT_OK(rk_cache_remove_many(c, NULL, keys, 2));
    ASSERT_RC(rk_cache_retrieve(c, NULL, "m1", &b), RK_ENOTFOUND);
    ASSERT_RC(rk_cache_retrieve(c, NULL, "m2", &b), RK_ENOTFOUND);
    rk_cache_free(c);
}

/* retrieve_many serves hits locally and fills its misses, per key. */
static void batches(void)
{
    rk_cache *c = open_near(NULL);
    rk_cache_entry e[3] = {{"b1", "one", 3, 60000}, {"b2", "two", 3, 60000}, {"b3", "", 0, 60000}};
    ASSERT_OK(rk_cache_store_many(c, NULL, e, 3));
    cached(c, "b1", "one");
    const char *keys[4] = {"b1", "b2", "nope", "b3"};
    rk_buf outs[4] = {RK_BUF_INIT, RK_BUF_INIT, RK_BUF_INIT, RK_BUF_INIT};
    rkt_near s0 = stats(c);
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, keys, 4, outs));
    rkt_near s1 = stats(c);
    ASSERT_EQ(s1.hits, s0.hits + 1);
    ASSERT_EQ(s1.misses, s0.misses + 3);
    ASSERT_TRUE(outs[0].len == 3 && !memcmp(outs[0].data, "one", 3));
    ASSERT_TRUE(outs[1].len == 3 && !memcmp(outs[1].data, "two", 3));
    ASSERT_TRUE(outs[2].data == NULL);
    ASSERT_TRUE(outs[3].data != NULL && outs[3].len == 0);
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, keys, 4, outs));
    rkt_near s2 = stats(c);
    ASSERT_EQ(s2.hits, s1.hits + 3);
    ASSERT_EQ(s2.misses, s1.misses + 1); /* "nope" */
    ASSERT_TRUE(outs[1].len == 3 && !memcmp(outs[1].data, "two", 3));
    ASSERT_TRUE(outs[3].data != NULL && outs[3].len == 0);
    raw_set("b2", "TWO", NULL);
    for (uint64_t start = rkt_now_ms();;) {
        ASSERT_OK(rk_cache_retrieve_many(c, NULL, keys, 4, outs));
        if (outs[1].len == 3 && !memcmp(outs[1].data, "TWO", 3))
            break;
        ASSERT_LT(rkt_now_ms() - start, 2000);
        usleep(200);
    }
    for (int i = 0; i < 4; i++)
        rk_buf_free(&outs[i]);
    rk_cache_free(c);
}

/* Bounded by entries and by bytes: the least recently used go first. */
static void lru_bounds(void)
{
    rk_cache *c = open_near("options.near_cache_size=3");
    char key[16], big[301];
    memset(big, 'x', 300);
    big[300] = '\0';
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "lru%d", i);
        ASSERT_OK(rk_cache_store(c, NULL, key, "v", 1, 60000));
        cached(c, key, "v");
    }
    rkt_near s = stats(c);
    ASSERT_EQ(s.entries, 3);
    ASSERT_GE(s.evictions, 2);
    uint64_t hits = s.hits; /* lru4 is the most recent: still there */
    assert_value(c, "lru4", "v");
    ASSERT_EQ(stats(c).hits, hits + 1);
    rk_cache_free(c);

    c = open_near("options.near_cache_bytes=1024");
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "big%d", i);
        ASSERT_OK(rk_cache_store(c, NULL, key, big, 300, 60000));
        cached(c, key, big);
        s = stats(c);
        ASSERT_TRUE(s.bytes <= 1024);
    }
    ASSERT_EQ(s.entries, 3);
    ASSERT_GE(s.evictions, 3);
    rk_cache_free(c);
}

/* Over the server's Unix socket, as over TCP. */
static void unix_socket(void)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "connection.uri=unix://%s;options.prefix=%s;options.near_cache_size=10", rkt_socket(),
             rkt_prefix());
    rk_cache *c = rkt_open_cache(rkt_settings(cfg));
    ASSERT_OK(rk_cache_store(c, NULL, "sock", "v1", 2, 60000));
    cached(c, "sock", "v1");
    raw_set("sock", "v2", NULL);
    until_value(c, "sock", "v2", 2000);
    rk_cache_free(c);
}

/* ---- staleness: 4 writer and 4 reader processes, 1,000 keys ---- */

#define NKEYS 1000
#define RING 256

typedef struct {
    _Atomic uint64_t acked;       /* the latest acknowledged sequence number */
    _Atomic uint64_t at_us[RING]; /* when sequence s was acknowledged: at_us[s % RING] */
} key_state;

/* In memory shared by the processes (CLOCK_MONOTONIC is one clock for all of them). */
typedef struct {
    key_state keys[NKEYS];
    atomic_bool stop;
    _Atomic uint64_t worst_us, reads, stale_reads, writes;
} run_state;

static run_state *run;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Writer w owns the keys k with k % 4 == w, so a key's order in Redis is its sequence order. */
static void writer(int w)
{
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    unsigned seed = (unsigned)w * 7919u + 1;
    while (!atomic_load(&run->stop)) {
        int k = (int)(rand_r(&seed) % (NKEYS / 4)) * 4 + w;
        key_state *ks = &run->keys[k];
        char key[16], v[24];
        uint64_t seq = atomic_load(&ks->acked) + 1;
        snprintf(key, sizeof key, "s%d", k);
        snprintf(v, sizeof v, "%llu", (unsigned long long)seq);
        ASSERT_OK(rk_cache_store(c, NULL, key, v, strlen(v), 60000));
        atomic_store(&ks->at_us[seq % RING], now_us());
        atomic_store(&ks->acked, seq);
        atomic_fetch_add(&run->writes, 1);
    }
    rk_cache_free(c);
}

static void reader(int r)
{
    rk_cache *c = open_near(NULL);
    unsigned seed = (unsigned)r * 104729u + 3;
    rk_buf b = RK_BUF_INIT;
    while (!atomic_load(&run->stop)) {
        int k = (int)(rand_r(&seed) % NKEYS);
        key_state *ks = &run->keys[k];
        char key[16];
        snprintf(key, sizeof key, "s%d", k);
        uint64_t acked = atomic_load(&ks->acked), start = now_us();
        ASSERT_OK(rk_cache_retrieve(c, NULL, key, &b));
        uint64_t got = strtoull(b.data, NULL, 10);
        atomic_fetch_add(&run->reads, 1);
        /* Stale: older than what was acknowledged before the read began. For how long had
         * the value that replaced it been acknowledged? */
        if (got < acked) {
            ASSERT_TRUE(acked - got < RING);
            uint64_t since = start - atomic_load(&ks->at_us[(got + 1) % RING]);
            atomic_fetch_add(&run->stale_reads, 1);
            for (uint64_t w = atomic_load(&run->worst_us); since > w;)
                if (atomic_compare_exchange_weak(&run->worst_us, &w, since))
                    break;
        }
    }
    rk_buf_free(&b);
    rk_cache_free(c);
}

static void staleness(void)
{
    const char *env = getenv("RKT_NEARCACHE_SECONDS");
    int seconds = env && atoi(env) > 0 ? atoi(env) : 10;
    run = rkt_shared_alloc(sizeof *run);
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    for (int k = 0; k < NKEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", k);
        ASSERT_OK(rk_cache_store(c, NULL, key, "0", 1, 60000));
    }
    rk_cache_free(c); /* no thread of ours is left to fork with */
    pid_t pid[8];
    for (int i = 0; i < 8; i++) {
        if ((pid[i] = fork()) == 0) {
            if (i < 4)
                writer(i);
            else
                reader(i - 4);
            _exit(0);
        }
        ASSERT_TRUE(pid[i] > 0);
    }
    sleep((unsigned)seconds); /* the length of the run */
    atomic_store(&run->stop, true);
    for (int i = 0; i < 8; i++) {
        int status;
        ASSERT_EQ(waitpid(pid[i], &status, 0), pid[i]);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    printf("staleness: %d s, %llu writes, %llu reads, %llu stale, worst %.3f ms\n", seconds,
           (unsigned long long)run->writes, (unsigned long long)run->reads,
           (unsigned long long)run->stale_reads, (double)run->worst_us / 1000.0);
    ASSERT_GE(run->reads, 1000);
    /* The bound is for correctness (a stale entry kept past its invalidation would show as
     * seconds); how small it is goes to bench/ and docs/PERFORMANCE.md. */
    ASSERT_LT(run->worst_us, 1000000);
    munmap(run, sizeof *run);
}

RKT_MAIN(RKT_CASE(hit_and_miss), RKT_CASE(invalidated_by_others), RKT_CASE(ttl_bound),
         RKT_CASE(read_your_writes), RKT_CASE(batches), RKT_CASE(lru_bounds), RKT_CASE(unix_socket),
         RKT_CASE(staleness))
