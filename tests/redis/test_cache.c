/* rk_cache against the fixture server: the pip-services CacheFixture (enforced), binary and
 * large values, TTL semantics, batches, bad input, lifecycle and sharing across threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "redis_env.h"

static rk_cache *open_cache(const char *extra)
{
    rk_cache *c = rkt_open_cache(rkt_config(extra));
    ASSERT_TRUE(rk_cache_is_open(c));
    return c;
}

static void assert_value(rk_cache *c, const char *key, const void *want, size_t len)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, key, &b));
    ASSERT_EQ(b.len, len);
    ASSERT_MEM_EQ(b.data, want, len);
    ASSERT_EQ(b.data[len], '\0');
    rk_buf_free(&b);
    ASSERT_TRUE(b.data == NULL && b.len == 0);
}

static void assert_missing(rk_cache *c, const char *key)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_RC(rk_cache_retrieve(c, NULL, key, &b), RK_ENOTFOUND);
    ASSERT_ERROR(RK_ENOTFOUND, "NOT_FOUND", "NotFound");
    ASSERT_CONTAINS(rk_last_error()->message, key);
    ASSERT_TRUE(b.data == NULL);
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

/* pip-services CacheFixture.testStoreAndRetrieve: six values (as their JSON text) with ttl 5000. */
static void fixture_store_and_retrieve(void)
{
    static const char *keys[] = {"key1", "key2", "key3", "key4", "key5", "key6"};
    static const char *values[] = {
        "\"value1\"", "{\"val\":\"value2\"}", "\"2026-11-23T10:00:00.000Z\"", "[1,2,3,4]", "12345",
        "null"};
    rk_cache *c = open_cache(NULL);
    for (int i = 0; i < 6; i++)
        ASSERT_OK(rk_cache_store(c, NULL, keys[i], values[i], strlen(values[i]), 5000));
    for (int i = 0; i < 6; i++)
        assert_value(c, keys[i], values[i], strlen(values[i]));
    ASSERT_GE(raw_pttl("key1"), 1);
    ASSERT_TRUE(raw_pttl("key1") <= 5000);
    rk_cache_free(c);
}

/* testRetrieveExpired: the value is gone once its TTL has passed. */
static void fixture_retrieve_expired(void)
{
    rk_cache *c = open_cache(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "expiring", "value1", 6, 100));
    assert_value(c, "expiring", "value1", 6);
    usleep(150 * 1000); /* the TTL itself is what is under test */
    assert_missing(c, "expiring");
    rk_cache_free(c);
}

/* testRemove: removed values are gone; removing an absent key is fine. */
static void fixture_remove(void)
{
    rk_cache *c = open_cache(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "removed", "value1", 6, 1000));
    ASSERT_OK(rk_cache_remove(c, NULL, "removed"));
    assert_missing(c, "removed");
    ASSERT_OK(rk_cache_remove(c, NULL, "removed"));
    rk_cache_free(c);
}

static void binary_values(void)
{
    static const char bin[] = "\0\1\2\r\n$3\r\nNUL\0end\xff";
    rk_cache *c = open_cache(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "bin", bin, sizeof bin, 5000));
    assert_value(c, "bin", bin, sizeof bin);
    ASSERT_OK(rk_cache_store(c, NULL, "empty", NULL, 0, 5000));
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "empty", &b));
    ASSERT_TRUE(b.data != NULL); /* an empty value is a hit, not a miss */
    ASSERT_EQ(b.len, 0);
    rk_buf_free(&b);
    static const char *odd_keys[] = {"with space", "new\nline", "tab\tand\"quote",
                                     "\xc3\xa9t\xc3\xa9", "\xff\xfe invalid utf-8"};
    for (size_t i = 0; i < 5; i++) {
        ASSERT_OK(rk_cache_store(c, NULL, odd_keys[i], odd_keys[i], strlen(odd_keys[i]), 5000));
        assert_value(c, odd_keys[i], odd_keys[i], strlen(odd_keys[i]));
    }
    rk_cache_free(c);
}

static void large_value(void)
{
    size_t n = 16u << 20;
    unsigned char *v = malloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (unsigned char)(i * 2654435761u >> 13);
    rk_cache *c = open_cache(NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "big", v, n, 30000));
    assert_value(c, "big", v, n);
    ASSERT_OK(rk_cache_remove(c, NULL, "big"));
    rk_cache_free(c);
    free(v);
}

static void ttl_semantics(void)
{
    rk_cache *c = open_cache("options.default_ttl=123456");
    ASSERT_OK(rk_cache_store(c, NULL, "default", "v", 1, 0));
    long long pttl = raw_pttl("default");
    ASSERT_TRUE(pttl > 120000 && pttl <= 123456);
    ASSERT_OK(rk_cache_store(c, NULL, "forever", "v", 1, RK_TTL_NONE));
    ASSERT_EQ(raw_pttl("forever"), -1);
    ASSERT_OK(rk_cache_store(c, NULL, "short", "v", 1, 1));
    ASSERT_TRUE(raw_pttl("short") <= 1);
    ASSERT_OK(rk_cache_remove(c, NULL, "forever"));
    rk_cache_free(c);
}

/* rk_cache_ttl reads back what PTTL says: time left, no expiry, or a miss. */
static void ttl_query(void)
{
    rk_cache *c = open_cache(NULL);
    uint64_t left = 1;
    ASSERT_OK(rk_cache_store(c, NULL, "timed", "v", 1, 90000));
    ASSERT_OK(rk_cache_ttl(c, NULL, "timed", &left));
    ASSERT_TRUE(left > 80000 && left <= 90000);
    ASSERT_OK(rk_cache_store(c, NULL, "forever", "v", 1, RK_TTL_NONE));
    ASSERT_OK(rk_cache_ttl(c, NULL, "forever", &left));
    ASSERT_EQ(left, RK_TTL_NONE);
    ASSERT_RC(rk_cache_ttl(c, NULL, "absent", &left), RK_ENOTFOUND);
    ASSERT_ERROR(RK_ENOTFOUND, "NOT_FOUND", "NotFound");
    ASSERT_CONTAINS(rk_last_error()->message, "absent");
    ASSERT_EQ(left, 0);
    ASSERT_RC(rk_cache_ttl(c, NULL, "", &left), RK_EINVAL);
    ASSERT_RC(rk_cache_ttl(c, NULL, "timed", NULL), RK_EINVAL);
    ASSERT_OK(rk_cache_remove_many(c, NULL, (const char *[]){"timed", "forever"}, 2));
    rk_cache_free(c);
}

/* What redkit writes is plain SET bytes under <prefix><key>, readable by any client. */
static void wire_format_and_interop(void)
{
    rk_cache *c = open_cache(NULL);
    char full[64];
    snprintf(full, sizeof full, "%sinterop", rkt_prefix());
    ASSERT_OK(rk_cache_store(c, NULL, "interop", "plain bytes", 11, 5000));
    redisContext *raw = rkt_raw();
    redisReply *r = rkt_cmd(raw, "GET", full, NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    ASSERT_STR_EQ(r->str, "plain bytes");
    freeReplyObject(r);
    freeReplyObject(rkt_cmd(raw, "SET", full, "from another client", NULL));
    assert_value(c, "interop", "from another client", 19);
    freeReplyObject(rkt_cmd(raw, "DEL", full, NULL));
    redisFree(raw);
    rk_cache_free(c);
}

static void batches(void)
{
    enum { N = 100 };
    rk_cache *c = open_cache(NULL);
    rk_cache_entry e[N];
    char keys[N][16], vals[N][16];
    const char *names[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "batch%d", i);
        snprintf(vals[i], sizeof vals[i], "v%d", i * 7);
        e[i] = (rk_cache_entry){keys[i], vals[i], strlen(vals[i]), i % 2 ? 5000 : RK_TTL_NONE};
        names[i] = keys[i];
    }
    names[N] = "batch-missing";
    ASSERT_OK(rk_cache_store_many(c, NULL, e, N));
    rk_buf out[N + 1] = {RK_BUF_INIT};
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, names, N + 1, out));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(out[i].len, strlen(vals[i]));
        ASSERT_STR_EQ(out[i].data, vals[i]);
    }
    ASSERT_TRUE(out[N].data == NULL); /* a miss */
    ASSERT_EQ(raw_pttl("batch0"), -1);
    ASSERT_GE(raw_pttl("batch1"), 1);
    ASSERT_OK(rk_cache_remove_many(c, NULL, names, N + 1));
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, names, N + 1, out)); /* frees the old values */
    for (int i = 0; i <= N; i++)
        ASSERT_TRUE(out[i].data == NULL);
    ASSERT_OK(rk_cache_store_many(c, NULL, NULL, 0));
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, NULL, 0, NULL));
    ASSERT_OK(rk_cache_remove_many(c, NULL, NULL, 0));
    rk_cache_free(c);
}

static void bad_input(void)
{
    rk_cache *c = open_cache(NULL);
    rk_buf b = RK_BUF_INIT;
    ASSERT_RC(rk_cache_store(c, NULL, NULL, "v", 1, 0), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "key is NULL");
    ASSERT_RC(rk_cache_store(c, NULL, "", "v", 1, 0), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "key is empty");
    ASSERT_RC(rk_cache_store(c, NULL, "k", NULL, 5, 0), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "value is NULL");
    ASSERT_RC(rk_cache_retrieve(c, NULL, NULL, &b), RK_EINVAL);
    ASSERT_RC(rk_cache_retrieve(c, NULL, "", &b), RK_EINVAL);
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", NULL), RK_EINVAL);
    ASSERT_RC(rk_cache_remove(c, NULL, NULL), RK_EINVAL);
    ASSERT_RC(rk_cache_remove(c, NULL, ""), RK_EINVAL);
    const char *keys[] = {"ok", ""};
    rk_buf outs[2] = {RK_BUF_INIT, RK_BUF_INIT};
    ASSERT_RC(rk_cache_retrieve_many(c, NULL, keys, 2, outs), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "keys[1]");
    rk_cache_entry e[] = {{"ok", "v", 1, 0}, {NULL, "v", 1, 0}};
    ASSERT_RC(rk_cache_store_many(c, NULL, e, 2), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "entries[1]");
    ASSERT_RC(rk_cache_store(NULL, NULL, "k", "v", 1, 0), RK_EINVAL);
    rk_cache_free(c);
    rk_cache_free(NULL);
}

static void not_opened(void)
{
    rk_cache *c;
    rk_buf b = RK_BUF_INIT;
    rk_context ctx = {"trace-1"};
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_FALSE(rk_cache_is_open(c));
    ASSERT_RC(rk_cache_store(c, &ctx, "k", "v", 1, 0), RK_ENOTOPEN);
    ASSERT_ERROR(RK_ENOTOPEN, "NOT_OPENED", "InvalidState");
    ASSERT_STR_EQ(rk_last_error()->trace_id, "trace-1");
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", &b), RK_ENOTOPEN);
    ASSERT_RC(rk_cache_remove(c, NULL, "k"), RK_ENOTOPEN);
    rk_config *cfg = rkt_config(NULL);
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_config_free(cfg);
    ASSERT_OK(rk_cache_open(c, NULL));
    ASSERT_OK(rk_cache_open(c, NULL)); /* already open: no-op */
    ASSERT_OK(rk_cache_store(c, NULL, "k", "v", 1, 0));
    ASSERT_OK(rk_cache_close(c, NULL));
    ASSERT_FALSE(rk_cache_is_open(c));
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", &b), RK_ENOTOPEN);
    ASSERT_OK(rk_cache_close(c, NULL));
    ASSERT_OK(rk_cache_open(c, NULL)); /* re-open */
    assert_value(c, "k", "v", 1);
    rk_cache_free(c);
}

enum { THREADS = 8, OPS = 300 };
static rk_cache *shared;
static atomic_int stop_flag;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char key[32], val[32];
    for (int i = 0; i < OPS; i++) {
        snprintf(key, sizeof key, "th%d-%d", id, i % 10);
        int len = snprintf(val, sizeof val, "value-%d-%d", id, i);
        ASSERT_OK(rk_cache_store(shared, NULL, key, val, (size_t)len, 5000));
        assert_value(shared, key, val, (size_t)len);
    }
    return NULL;
}

static void threads_share_one_cache(void)
{
    pthread_t t[THREADS];
    shared = open_cache("options.max_connections=4");
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    rk_cache_free(shared);
}

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        int rc = rk_cache_store(shared, NULL, "churn", "v", 1, 5000);
        ASSERT_TRUE(rc == RK_OK || rc == RK_ENOTOPEN);
    }
    return NULL;
}

/* close and open race with operations on other threads: they succeed or get NOT_OPENED. */
static void close_while_in_use(void)
{
    pthread_t t[4];
    shared = open_cache(NULL);
    atomic_store(&stop_flag, 0);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int round = 0; round < 20; round++) {
        ASSERT_OK(rk_cache_close(shared, NULL));
        ASSERT_OK(rk_cache_open(shared, NULL));
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ASSERT_OK(rk_cache_store(shared, NULL, "churn", "after", 5, 5000)); /* still usable */
    assert_value(shared, "churn", "after", 5);
    rk_cache_free(shared);
}

RKT_MAIN(RKT_CASE(fixture_store_and_retrieve), RKT_CASE(fixture_retrieve_expired),
         RKT_CASE(fixture_remove), RKT_CASE(binary_values), RKT_CASE(large_value),
         RKT_CASE(ttl_semantics), RKT_CASE(ttl_query), RKT_CASE(wire_format_and_interop),
         RKT_CASE(batches), RKT_CASE(bad_input), RKT_CASE(not_opened),
         RKT_CASE(threads_share_one_cache), RKT_CASE(close_while_in_use))
