/* Bad input that needs no server: NULL arguments to every entry point, configuration strings
 * and values at and past their limits, unknown options, and URIs broken in ways test_uri.c
 * does not already cover, each through the public API. Every rejection is RK_EINVAL naming the
 * argument, key or option at fault; everything else gets its documented result. */
#include "redis_env.h"

static rk_config *parse(const char *s)
{
    rk_config *cfg = NULL;
    ASSERT_OK(rk_config_from_string(&cfg, s));
    return cfg;
}

/* The last error is RK_EINVAL and its message names `what`. */
static void assert_einval(int rc, const char *what)
{
    ASSERT_RC(rc, RK_EINVAL);
    ASSERT_EQ(rk_last_error()->code, RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, what);
}

static void null_arguments(void)
{
    rk_config *cfg = parse("connection.host=h");
    rk_cache *c;
    rk_lock *l;
    rk_memolock *m;
    rk_buf b = RK_BUF_INIT;
    bool ok;
    assert_einval(rk_config_new(NULL), "out");
    assert_einval(rk_config_from_tuples(NULL, "a", "1", NULL), "out");
    assert_einval(rk_config_set(NULL, "a", "1"), "cfg");
    assert_einval(rk_config_set(cfg, NULL, "1"), "key");
    ASSERT_TRUE(rk_config_get(NULL, "a") == NULL && rk_config_get(cfg, NULL) == NULL);
    ASSERT_EQ(rk_config_count(NULL), 0);
    ASSERT_FALSE(rk_config_entry(NULL, 0, NULL, NULL));
    assert_einval(rk_references_new(NULL), "out");
    assert_einval(rk_references_set_discovery(NULL, NULL, NULL), "refs");
    assert_einval(rk_references_set_memory_credential_store(NULL, cfg), "refs");
    assert_einval(rk_buf_set(NULL, "x", 1), "buf");
    assert_einval(rk_buf_set(&b, NULL, 3), "data is NULL");
    ASSERT_OK(rk_buf_set(&b, NULL, 0)); /* an empty value is fine */
    ASSERT_TRUE(b.data != NULL && b.len == 0);
    rk_buf_free(&b);
    assert_einval(rk_set_allocator(&(rk_allocator){NULL, NULL, NULL, NULL}), "malloc_fn");
    assert_einval(rk_cache_new(NULL), "out");
    assert_einval(rk_lock_new(NULL), "out");
    assert_einval(rk_memolock_new(NULL), "out");
    assert_einval(rk_cache_configure(NULL, cfg), "cache is NULL");
    assert_einval(rk_lock_configure(NULL, cfg), "lock is NULL");
    assert_einval(rk_memolock_configure(NULL, cfg), "memolock is NULL");
    assert_einval(rk_cache_open(NULL, NULL), "cache is NULL");
    assert_einval(rk_lock_open(NULL, NULL), "lock is NULL");
    assert_einval(rk_memolock_open(NULL, NULL), "memolock is NULL");
    assert_einval(rk_cache_retrieve(NULL, NULL, "k", &b), "cache is NULL");
    assert_einval(rk_lock_try_acquire(NULL, NULL, "k", 10, &ok), "lock is NULL");
    assert_einval(rk_lock_extend(NULL, NULL, "k", 10), "lock is NULL");
    ASSERT_FALSE(rk_cache_is_open(NULL) || rk_lock_is_open(NULL) || rk_memolock_is_open(NULL));
    rk_cache_free(NULL), rk_lock_free(NULL), rk_memolock_free(NULL);
    rk_config_free(NULL), rk_references_free(NULL), rk_buf_free(NULL);
    /* A NULL configuration is an empty one: nothing to connect to. */
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, NULL));
    ASSERT_RC(rk_cache_open(c, NULL), RK_ENOCONN);
    rk_cache_free(c);
    /* Not opened: every operation says so, whatever its arguments. */
    ASSERT_OK(rk_lock_new(&l));
    ASSERT_RC(rk_lock_extend(l, NULL, "k", 10), RK_ENOTOPEN);
    ASSERT_RC(rk_lock_try_acquire(l, NULL, "k", 10, &ok), RK_ENOTOPEN);
    rk_lock_free(l);
    ASSERT_OK(rk_memolock_new(&m));
    rk_memolock_free(m);
    rk_config_free(cfg);
}

static void config_strings(void)
{
    rk_config *cfg = (rk_config *)1;
    /* A lone word is not quoted: it is more likely a value that lost its key. */
    assert_einval(rk_config_from_string(&cfg, "a=1;b"), "entry 2 (not shown");
    ASSERT_TRUE(cfg == NULL);
    assert_einval(rk_config_from_string(&cfg, ";;;\n x \t;;"), "entry 4 (not shown");
    assert_einval(rk_config_from_string(&cfg, "a=1;c.d"), "'c.d' has no '='");
    assert_einval(rk_config_from_string(&cfg, "a=1; \t = 2"), "empty key");
    assert_einval(rk_config_from_tuples(&cfg, "", "v", NULL), "configuration key is empty");
    /* Blank entries are skipped; bytes are kept as they are, valid UTF-8 or not. */
    cfg = parse(" ; a=1 ;\t;\xff\xfe=\x80\x81 ;key with spaces = value with spaces");
    ASSERT_EQ(rk_config_count(cfg), 3);
    ASSERT_STR_EQ(rk_config_get(cfg, "\xff\xfe"), "\x80\x81");
    ASSERT_STR_EQ(rk_config_get(cfg, "KEY WITH SPACES"), "value with spaces");
    rk_config_free(cfg);
    /* A long value parses; a long bad entry is named, cut to fit the message. */
    size_t n = 1u << 20;
    char *big = malloc(n + 16);
    memcpy(big, "k=", 2);
    memset(big + 2, 'v', n);
    big[n + 2] = '\0';
    cfg = parse(big);
    ASSERT_EQ(strlen(rk_config_get(cfg, "k")), n);
    rk_config_free(cfg);
    big[1] = '.';
    assert_einval(rk_config_from_string(&cfg, big), "configuration entry 'k.vvv");
    ASSERT_LT(strlen(rk_last_error()->message), 512);
    free(big);
}

/* Through rk_cache_configure, as a service would hit them. */
static void configure_fails(const char *config, const char *what)
{
    rk_cache *c;
    rk_config *cfg = parse(config);
    ASSERT_OK(rk_cache_new(&c));
    assert_einval(rk_cache_configure(c, cfg), what);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    rk_cache_free(c);
    rk_config_free(cfg);
}

static void option_limits(void)
{
    configure_fails("options.timeout=0", "options.timeout");
    configure_fails("options.connect_timeout=0", "options.connect_timeout");
    configure_fails("options.retry_timeout=0", "options.retry_timeout");
    configure_fails("options.lock_timeout=0", "options.lock_timeout");
    configure_fails("options.timeout=86400001", "options.timeout");
    configure_fails("options.default_ttl=0", "options.default_ttl");
    configure_fails("options.default_ttl=4611686018427387904", "options.default_ttl");
    configure_fails("options.default_ttl=18446744073709551615", "options.default_ttl");
    configure_fails("options.max_connections=1025", "options.max_connections");
    configure_fails("options.db_num=-1", "options.db_num");
    configure_fails("options.retries=+3", "options.retries");
    configure_fails("options.timeout=0x10", "options.timeout");
    configure_fails("options.timeout=\xff", "options.timeout");
    rk_cache *c;
    rk_config *cfg = parse("options.default_ttl=4611686018427387903;options.timeout=86400000;"
                           "options.retries=0;options.max_connections=1024");
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_cache_free(c);
    rk_config_free(cfg);
}

/* Keys nobody reads are ignored by every component, whatever their values. */
static void unknown_options(void)
{
    rk_config *cfg = parse("connection.host=h;options.resource_tag=t;options.max_size=abc;"
                           "options.bogus=;bogus=1;connection.bogus=\xff;credential.what=?;"
                           "connections=x;credentials=;options=1;.=.");
    rkt_trio t;
    rkt_trio_new(&t, cfg);
    rkt_trio_free(&t);
    rk_config_free(cfg);
}

/* Opening resolves the URI before any connection attempt, so these fail without a server. */
static void open_fails(const char *uri, const char *what)
{
    rk_cache *c;
    rk_config *cfg;
    ASSERT_OK(rk_config_from_tuples(&cfg, "connection.uri", uri, NULL));
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    assert_einval(rk_cache_open(c, NULL), "connection.uri");
    ASSERT_CONTAINS(rk_last_error()->message, what);
    ASSERT_CONTAINS(rk_last_error()->message, "cache open");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "hunter2");
    ASSERT_FALSE(rk_cache_is_open(c));
    rk_cache_free(c);
    rk_config_free(cfg);
}

static void bad_uris(void)
{
    open_fails("", "expected scheme://");
    open_fails("redis:/h", "expected scheme://");
    open_fails("://h", "unknown scheme ''");
    open_fails("redis+tls://h", "unknown scheme 'redis+tls'");
    /* Without an '@' a port that is not a number may be a password: not quoted. */
    open_fails("redis://h:-1", "port is not a number");
    open_fails("redis://h: 1", "port is not a number");
    open_fails("redis://h:1.5", "port is not a number");
    open_fails("redis://u@h:0x10", "port '0x10'");
    open_fails("redis://h:99999999999", "port '99999999999'");
    open_fails("redis://u:hunter2@h:1:2", "port '1:2'");
    open_fails("redis://h/1/2", "database '1/2'");
    open_fails("redis://h/-1", "database '-1'");
    open_fails("redis://h/1000001", "database '1000001'");
    open_fails("redis://u:hunter2@h?db=", "database '' is not a number");
    open_fails("redis://h?db=1&timeout=5", "unknown query parameter 'timeout'");
    open_fails("redis://%", "percent-escape in the host");
    open_fails("redis://h%4", "percent-escape in the host");
    open_fails("redis://u%g1:hunter2@h", "percent-escape in the user name");
    open_fails("redis://u:hunter2%@h", "percent-escape in the password");
    open_fails("unix:///s%zz.sock", "percent-escape in the socket path");
    open_fails("unix:///", "no socket path");
    /* Well-formed but nothing there: the open fails to connect, naming the socket. */
    rk_cache *c;
    rk_config *cfg;
    ASSERT_OK(rk_config_from_tuples(&cfg, "connection.uri", "unix:///nonexistent/redis.sock",
                                    "options.timeout", "500", NULL));
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    ASSERT_RC(rk_cache_open(c, NULL), RK_EIO);
    ASSERT_CONTAINS(rk_last_error()->message, "unix:/nonexistent/redis.sock");
    rk_cache_free(c);
    rk_config_free(cfg);
}

RKT_MAIN(RKT_CASE(null_arguments), RKT_CASE(config_strings), RKT_CASE(option_limits),
         RKT_CASE(unknown_options), RKT_CASE(bad_uris))
