/* Bad and extreme input against a real server, beyond test_cache.c's bad_input: NULL and empty
 * keys on every operation, NUL-free binary / blank / invalid UTF-8 keys for the lock, 512 KiB
 * keys, 64 MiB values, TTLs and timeouts at 0 and at their limits, and passwords full of
 * separators. Each call gets its documented result or RK_EINVAL naming the bad argument. */
#include <pthread.h>

#include "redis_env.h"

#define BIG_KEY (512u << 10)
#define BIG_VALUE (64u << 20)

static void assert_einval(int rc, const char *what)
{
    ASSERT_RC(rc, RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, what);
}

static void null_and_empty_keys(void)
{
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    rk_buf outs[2] = {RK_BUF_INIT, RK_BUF_INIT};
    const char *keys[] = {"a", NULL};
    assert_einval(rk_cache_remove_many(c, NULL, keys, 2), "keys[1]: key is NULL");
    assert_einval(rk_cache_remove_many(c, NULL, NULL, 1), "keys[0]: key is NULL");
    assert_einval(rk_cache_retrieve_many(c, NULL, NULL, 1, outs), "keys[0]: key is NULL");
    assert_einval(rk_cache_retrieve_many(c, NULL, keys, 1, NULL), "outs is NULL");
    assert_einval(rk_cache_store_many(c, NULL, NULL, 1), "entries is NULL");
    assert_einval(rk_lock_acquire(l, NULL, NULL, 1000, 0), "key is NULL");
    assert_einval(rk_lock_acquire(l, NULL, "", 1000, 1000), "key is empty");
    assert_einval(rk_lock_release(l, NULL, ""), "key is empty");
    assert_einval(rk_lock_extend(l, NULL, NULL, 1000), "key is NULL");
    assert_einval(rk_lock_extend(l, NULL, "", 1000), "key is empty");
    ASSERT_TRUE(outs[0].data == NULL && outs[1].data == NULL);
    rk_lock_free(l);
    rk_cache_free(c);
}

/* Every byte but NUL, once, as a key. */
static const char *binary_key(void)
{
    static char key[256];
    for (int i = 1; i < 256; i++)
        key[i - 1] = (char)i;
    return key;
}

static void odd_lock_keys(void)
{
    const char *keys[] = {binary_key(), "with space", "new\nline\r\n", "\xff\xfe not utf-8",
                          "*3\r\n$3\r\nDEL\r\n"};
    rk_lock *a = rkt_open_lock(rkt_config(NULL)), *b = rkt_open_lock(rkt_config(NULL));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        bool ok;
        ASSERT_OK(rk_lock_acquire(a, NULL, keys[i], 5000, 0));
        ASSERT_OK(rk_lock_try_acquire(b, NULL, keys[i], 5000, &ok));
        ASSERT_FALSE(ok);
        ASSERT_OK(rk_lock_extend(a, NULL, keys[i], 5000));
        ASSERT_OK(rk_lock_release(a, NULL, keys[i]));
        ASSERT_OK(rk_lock_try_acquire(b, NULL, keys[i], 5000, &ok));
        ASSERT_TRUE(ok);
        ASSERT_OK(rk_lock_release(b, NULL, keys[i]));
    }
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    const char *many[] = {binary_key(), "plain"};
    rk_buf outs[2] = {RK_BUF_INIT, RK_BUF_INIT};
    ASSERT_OK(rk_cache_store(c, NULL, binary_key(), "bin", 3, 5000));
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, many, 2, outs));
    ASSERT_STR_EQ(outs[0].data, "bin");
    ASSERT_TRUE(outs[1].data == NULL);
    ASSERT_OK(rk_cache_remove_many(c, NULL, many, 2));
    rk_buf_free(&outs[0]);
    rk_cache_free(c);
    rk_lock_free(a);
    rk_lock_free(b);
}

/* 512 KiB keys, with and without a prefix (the prefixed key is built on the heap). */
static void huge_keys(void)
{
    char *key = malloc(BIG_KEY + 1);
    for (size_t i = 0; i < BIG_KEY; i++)
        key[i] = (char)('a' + i % 26);
    key[BIG_KEY] = '\0';
    const char *configs[] = {NULL, "options.prefix="};
    for (int round = 0; round < 2; round++) {
        rk_cache *c = rkt_open_cache(rkt_config(configs[round]));
        rk_lock *l = rkt_open_lock(rkt_config(configs[round]));
        rk_buf b = RK_BUF_INIT, outs[1] = {RK_BUF_INIT};
        ASSERT_OK(rk_cache_store(c, NULL, key, "v", 1, 5000));
        ASSERT_OK(rk_cache_retrieve(c, NULL, key, &b));
        ASSERT_STR_EQ(b.data, "v");
        ASSERT_OK(rk_cache_retrieve_many(c, NULL, (const char *const *)&key, 1, outs));
        ASSERT_STR_EQ(outs[0].data, "v");
        ASSERT_OK(rk_cache_remove(c, NULL, key));
        ASSERT_RC(rk_cache_retrieve(c, NULL, key, &b), RK_ENOTFOUND);
        ASSERT_LT(strlen(rk_last_error()->message), 512); /* names the key, cut to fit */
        ASSERT_CONTAINS(rk_last_error()->message, "retrieve 'abcdef");
        ASSERT_OK(rk_lock_acquire(l, NULL, key, 5000, 1000));
        ASSERT_OK(rk_lock_extend(l, NULL, key, 5000));
        ASSERT_OK(rk_lock_release(l, NULL, key));
        rk_buf_free(&b);
        rk_buf_free(&outs[0]);
        rk_cache_free(c);
        rk_lock_free(l);
    }
    free(key);
}

/* 64 MiB values through store/retrieve and the batch calls. */
static void huge_values(void)
{
    unsigned char *v = malloc(BIG_VALUE);
    for (size_t i = 0; i < BIG_VALUE; i++)
        v[i] = (unsigned char)(i * 2654435761u >> 11);
    rk_cache *c = rkt_open_cache(rkt_config("options.timeout=120000"));
    rk_buf b = RK_BUF_INIT, outs[2] = {RK_BUF_INIT, RK_BUF_INIT};
    ASSERT_OK(rk_cache_store(c, NULL, "huge", v, BIG_VALUE, 60000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "huge", &b));
    ASSERT_EQ(b.len, BIG_VALUE);
    ASSERT_MEM_EQ(b.data, v, BIG_VALUE);
    ASSERT_EQ(b.data[BIG_VALUE], '\0');
    rk_buf_free(&b);
    rk_cache_entry e[2] = {{"huge2", v + 1, BIG_VALUE - 1, 60000}, {"small", "s", 1, 60000}};
    ASSERT_OK(rk_cache_store_many(c, NULL, e, 2));
    const char *keys[2] = {"huge2", "small"};
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, keys, 2, outs));
    ASSERT_EQ(outs[0].len, BIG_VALUE - 1);
    ASSERT_MEM_EQ(outs[0].data, v + 1, BIG_VALUE - 1);
    ASSERT_STR_EQ(outs[1].data, "s");
    const char *all[3] = {"huge", "huge2", "small"};
    ASSERT_OK(rk_cache_remove_many(c, NULL, all, 3));
    rk_buf_free(&outs[0]);
    rk_buf_free(&outs[1]);
    rk_cache_free(c);
    free(v);
}

static long long raw_pttl(const char *key)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    redisContext *r = rkt_raw();
    redisReply *rep = rkt_cmd(r, "PTTL", full, NULL);
    long long v = rep->integer;
    freeReplyObject(rep);
    redisFree(r);
    return v;
}

#define MAX_TTL ((uint64_t)INT64_MAX / 2)

static void ttl_limits(void)
{
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "ttl-max", "v", 1, MAX_TTL));
    ASSERT_GE(raw_pttl("ttl-max"), (long long)(MAX_TTL - 60000));
    assert_einval(rk_cache_store(c, NULL, "ttl-over", "v", 1, MAX_TTL + 1), "ttl_ms");
    ASSERT_CONTAINS(rk_last_error()->message, "store 'ttl-over'");
    assert_einval(rk_cache_store(c, NULL, "ttl-over", "v", 1, RK_TTL_NONE - 1), "too large");
    rk_cache_entry e[2] = {{"ok", "v", 1, 1000}, {"bad", "v", 1, UINT64_MAX - 1}};
    assert_einval(rk_cache_store_many(c, NULL, e, 2), "entries[1] ('bad'): ttl_ms");
    ASSERT_EQ(raw_pttl("ok"), -2); /* validated before anything is sent */
    ASSERT_OK(rk_cache_remove(c, NULL, "ttl-max"));
    ASSERT_OK(rk_lock_acquire(l, NULL, "ttl-max", MAX_TTL, 0));
    ASSERT_GE(raw_pttl("ttl-max"), (long long)(MAX_TTL - 60000));
    ASSERT_OK(rk_lock_release(l, NULL, "ttl-max"));
    assert_einval(rk_lock_acquire(l, NULL, "ttl-over", MAX_TTL + 1, 0), "ttl_ms");
    assert_einval(rk_lock_try_acquire(l, NULL, "ttl-over", UINT64_MAX, &(bool){0}), "ttl_ms");
    ASSERT_OK(rk_lock_acquire(l, NULL, "ttl-ext", 1000, 0));
    assert_einval(rk_lock_extend(l, NULL, "ttl-ext", 0), "ttl_ms");
    assert_einval(rk_lock_extend(l, NULL, "ttl-ext", UINT64_MAX), "ttl_ms");
    ASSERT_OK(rk_lock_release(l, NULL, "ttl-ext"));
    rk_lock_free(l);
    rk_cache_free(c);
}

typedef struct {
    rk_lock *lock;
    int rc;
} waiter;

static void *wait_forever(void *arg)
{
    waiter *w = arg;
    w->rc = rk_lock_acquire(w->lock, NULL, "forever", 5000, UINT64_MAX);
    return NULL;
}

/* A wait with no end (UINT64_MAX ms) still wakes up when the holder's lease runs out. */
static void unbounded_wait(void)
{
    rk_lock *holder = rkt_open_lock(rkt_config(NULL));
    waiter w = {rkt_open_lock(rkt_config("options.retry_timeout=20")), -1};
    pthread_t t;
    ASSERT_OK(rk_lock_acquire(holder, NULL, "forever", 300, 0));
    uint64_t t0 = rkt_now_ms();
    pthread_create(&t, NULL, wait_forever, &w);
    pthread_join(t, NULL);
    ASSERT_OK(w.rc);
    ASSERT_LT(rkt_now_ms() - t0, 5000);
    ASSERT_OK(rk_lock_release(w.lock, NULL, "forever"));
    rk_lock_free(holder);
    rk_lock_free(w.lock);
}

static int fetch_value(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    *ttl_ms = 5000;
    return rk_buf_set(value, "computed", 8);
}

/* timeout_ms 0 is one look: a hit or a free lock completes (the fetch runs inline), a lock held
 * elsewhere times out at once. Binary ids work as they do for cache keys. */
static void memolock_zero_timeout_and_odd_ids(void)
{
    rk_memolock *m = rkt_open_memolock(rkt_config("options.resource_tag=bad"));
    rk_buf out = RK_BUF_INIT;
    char lock[512];
    ASSERT_OK(rk_memolock_get(m, NULL, "zero", 0, fetch_value, NULL, &out));
    ASSERT_STR_EQ(out.data, "computed");
    rk_buf_free(&out);
    snprintf(lock, sizeof lock, "%sbad/lock:held", rkt_prefix());
    redisContext *r = rkt_raw();
    freeReplyObject(rkt_cmd(r, "SET", lock, "someone", "PX", "10000", NULL));
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_memolock_get(m, NULL, "held", 0, fetch_value, NULL, &out), RK_ETIMEDOUT);
    ASSERT_LT(rkt_now_ms() - t0, 1000);
    ASSERT_TRUE(out.data == NULL);
    freeReplyObject(rkt_cmd(r, "DEL", lock, NULL));
    redisFree(r);
    const char *ids[] = {binary_key(), "with space", "new\nline\r\n", "\xff\xfe not utf-8"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        ASSERT_OK(rk_memolock_get(m, NULL, ids[i], 5000, fetch_value, NULL, &out));
        ASSERT_STR_EQ(out.data, "computed");
    }
    assert_einval(rk_memolock_get(m, NULL, "", 1000, fetch_value, NULL, &out), "id is empty");
    assert_einval(rk_memolock_get(m, NULL, NULL, 1000, fetch_value, NULL, &out), "id is NULL");
    rk_buf_free(&out);
    rk_memolock_free(m);
}

static int open_with_password(int port, const char *password, const char *uri)
{
    char p[16];
    rk_config *cfg;
    rk_cache *c;
    snprintf(p, sizeof p, "%d", port);
    if (uri)
        ASSERT_OK(rk_config_from_tuples(&cfg, "connection.uri", uri, NULL));
    else
        ASSERT_OK(rk_config_from_tuples(&cfg, "connection.host", "127.0.0.1", "connection.port", p,
                                        "credential.password", password, NULL));
    int rc = rkt_try_open_cache(cfg, &c);
    if (rc == RK_OK)
        ASSERT_OK(rk_cache_store(c, NULL, "pw", "ok", 2, 1000));
    rk_cache_free(c);
    return rc;
}

/* Passwords are bytes: separators of the configuration string and of URIs included. */
static void passwords_with_separators(void)
{
    static const char pw[] = "p:a@s;s= w%rd\"'\\/?#";
    rkt_server s;
    char uri[256];
    rkt_server_start(&s, NULL);
    redisContext *raw = rkt_raw_port(s.port);
    freeReplyObject(rkt_cmd(raw, "CONFIG", "SET", "requirepass", pw, NULL));
    redisFree(raw);
    ASSERT_OK(open_with_password(s.port, pw, NULL));
    snprintf(uri, sizeof uri,
             "redis://:p%%3Aa%%40s%%3Bs%%3D%%20w%%25rd%%22'%%5C%%2F%%3F%%23@127.0.0.1:%d", s.port);
    ASSERT_OK(open_with_password(s.port, NULL, uri));
    ASSERT_RC(open_with_password(s.port, "p:a@s;s= w%rd", NULL), RK_EAUTH);
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "w%rd");
    rkt_server_stop(&s);
}

RKT_MAIN(RKT_CASE(null_and_empty_keys), RKT_CASE(odd_lock_keys), RKT_CASE(huge_keys),
         RKT_CASE(huge_values), RKT_CASE(ttl_limits), RKT_CASE(unbounded_wait),
         RKT_CASE(memolock_zero_timeout_and_odd_ids), RKT_CASE(passwords_with_separators))
