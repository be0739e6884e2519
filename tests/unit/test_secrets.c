/* Secrets never reach an error: realistic typos around the password "hunter2" (alone, or around
 * a '/', '?', '#', '@', '%', ';', ':', a blank or a non-ASCII letter) through
 * rk_config_from_string, rk_config_from_tuples, configure and open of the three components,
 * connection.uri, connection.* and credential.* keys. After each failure, neither the message
 * nor the cause contains the password (every password here contains "hunter2" on each side of its
 * odd character, so a quoted fragment is caught too), and the message still names what was wrong.
 * Opens go to 127.0.0.1:1, where nobody listens, or an unresolvable host: only messages count. */
#include "redis_env.h"

#define NOBODY "127.0.0.1:1"

/* The last error is a failure whose message names `what` and shows no `secret`. */
static void assert_hidden(const char *secret, const char *what)
{
    const rk_error *e = rk_last_error();
    ASSERT_TRUE(e->code != RK_OK);
    ASSERT_NOT_CONTAINS(e->message, "hunter2");
    ASSERT_NOT_CONTAINS(e->cause, "hunter2");
    ASSERT_NOT_CONTAINS(e->message, secret);
    ASSERT_NOT_CONTAINS(e->cause, secret);
    ASSERT_CONTAINS(e->message, what);
}

static void from_string_fails(const char *s, const char *what)
{
    rk_config *cfg = (rk_config *)1;
    ASSERT_RC(rk_config_from_string(&cfg, s), RK_EINVAL);
    ASSERT_TRUE(cfg == NULL);
    assert_hidden("hunter2", what);
}

static void config_strings(void)
{
    from_string_fails("credential.password: hunter2", "'credential.password' has no '='");
    from_string_fails("connection.host=h;credential.password hunter2", "'credential.password'");
    from_string_fails("credential.passwordhunter2", "'credential.password' has no '='");
    from_string_fails("CREDENTIAL.PASS:hunter2", "'CREDENTIAL.PASS' has no '='");
    from_string_fails("options.redis_password -> hunter2", "'options.redis_password'");
    from_string_fails("credential.username=app;credential.password=hunter2;hunter2",
                      "entry 3 (after 'credential.password')");
    from_string_fails("connection.uri=redis://u:hunter2;hunter2@h", "after 'connection.uri'");
    from_string_fails("connection.host=h;hunter2", "entry 2 (not shown");
    from_string_fails("connection.host=h; =hunter2", "entry 2 has an empty key");
    from_string_fails("connection.host=h;hunter2 hunter2", "entry 2");
}

static void config_tuples(void)
{
    rk_config *cfg;
    /* The "credential.password" key forgotten: the password sits where a key goes. */
    ASSERT_RC(rk_config_from_tuples(&cfg, "connection.host", "h", "hunter2", NULL), RK_EINVAL);
    assert_hidden("hunter2", "tuple 2 (not shown");
    ASSERT_RC(rk_config_from_tuples(&cfg, "credential.username", "app", "hunter2", NULL),
              RK_EINVAL);
    assert_hidden("hunter2", "after 'credential.username'");
    ASSERT_RC(rk_config_from_tuples(&cfg, "credential.password=hunter2", NULL), RK_EINVAL);
    assert_hidden("hunter2", "'credential.password' has no value");
    ASSERT_RC(rk_config_from_tuples(&cfg, "connection.host", "h", "credential.pass", NULL),
              RK_EINVAL);
    assert_hidden("hunter2", "'credential.pass' has no value");
}

/* A configuration of NULL-terminated key/value pairs (values may hold ';'), with short
 * timeouts and no reconnects. */
static rk_config *settings(const char *const *kv)
{
    rk_config *cfg;
    ASSERT_OK(rk_config_from_tuples(&cfg, "options.connect_timeout", "500", "options.timeout",
                                    "1000", "options.retries", "0", "options.resource_tag", "t",
                                    NULL));
    for (; kv[0]; kv += 2)
        ASSERT_OK(rk_config_set(cfg, kv[0], kv[1]));
    return cfg;
}

/* Configure and open a cache, a lock and a memolock: each fails (at configure or at open) with
 * `what` named and `secret` nowhere. */
static void open_fails(const char *secret, const char *what, const char *const *kv)
{
    rk_config *cfg = settings(kv);
    rkt_trio t;
    rkt_trio_new(&t, NULL); /* configured below: configure may be what fails */
    int rc = rk_cache_configure(t.cache, cfg);
    ASSERT_TRUE(rc != RK_OK || rk_cache_open(t.cache, NULL) != RK_OK);
    assert_hidden(secret, what);
    rc = rk_lock_configure(t.lock, cfg);
    ASSERT_TRUE(rc != RK_OK || rk_lock_open(t.lock, NULL) != RK_OK);
    assert_hidden(secret, what);
    rc = rk_memolock_configure(t.memo, cfg);
    ASSERT_TRUE(rc != RK_OK || rk_memolock_open(t.memo, NULL) != RK_OK);
    assert_hidden(secret, what);
    rkt_trio_free(&t);
    rk_config_free(cfg);
}

static void uri_fails(const char *secret, const char *uri, const char *what)
{
    open_fails(secret, what, (const char *const[]){"connection.uri", uri, NULL});
}

static void connection_uri(void)
{
    /* The host forgotten: user:password reads as host:port. */
    uri_fails("hunter2", "redis://admin:hunter2", "port is not a number");
    uri_fails("hunter2", "rediss://admin:hunter2/0", "if this is user:password, add @host");
    uri_fails("hunter2", "redis://:hunter2", "port is not a number");
    uri_fails("hunter2", "redis://admin:hunter2:6379", "port is not a number");
    /* A raw '/' or '?' cuts the user info short. */
    uri_fails("hunter2/hunter2", "redis://u:hunter2/hunter2@h:1", "'@' after the host");
    uri_fails("hunter2?hunter2", "redis://u:hunter2?hunter2@h:1", "must be percent-encoded");
    uri_fails("hunter2/hunter2", "redis://u:hunter2/hunter2@h:1/0", "'@' after the host");
    uri_fails("hunter2%hunter2", "redis://u:hunter2%hunter2@h:1", "percent-escape in the password");
    uri_fails("hunter2", "redis://u:hunter2%@h:1", "percent-escape in the password");
    uri_fails("hunter2", "u:hunter2@redis://h:1", "not a scheme");
    uri_fails("hunter2", "redis//u:hunter2@h:1", "expected scheme://");
    uri_fails("hunter2", "redis:/u:hunter2@h:1", "expected scheme://");
    /* Well-formed: the connection fails, naming the server but not the password. */
    uri_fails("hunter2#hunter2", "redis://u:hunter2#hunter2@" NOBODY, NOBODY);
    uri_fails("hunter2@hunter2", "redis://u:hunter2@hunter2@" NOBODY, NOBODY);
    uri_fails("hunter2 hunter2", "redis://u:hunter2 hunter2@" NOBODY, NOBODY);
    uri_fails("h\xc3\xbcnter2", "redis://u:h\xc3\xbcnter2@" NOBODY, NOBODY);
    uri_fails("hunter2", "redis://u:hunter2@" NOBODY "/3", NOBODY);
    uri_fails("hunter2", "redis://u:hunter2@nonexistent.invalid:6379", "nonexistent.invalid");
    open_fails("hunter2", "port is not a number",
               (const char *const[]){"connections.main.uri", "redis://admin:hunter2", NULL});
}

static void connection_keys(void)
{
    open_fails("hunter2", "connection.host is not a host name",
               (const char *const[]){"connection.host", "admin:hunter2@127.0.0.1", NULL});
    open_fails("hunter2", "connection.host is not a host name",
               (const char *const[]){"connection.host", "redis://u:hunter2@h", NULL});
    open_fails(
        "hunter2", "connection.port",
        (const char *const[]){"connection.host", "h", "connection.port", "6379:hunter2", NULL});
    open_fails("hunter2", "connection.protocol",
               (const char *const[]){"connection.host", "h", "connection.protocol",
                                     "redis://u:hunter2@h", NULL});
    /* The wrong section: not a key redkit reads, so the open fails without AUTH. */
    open_fails("hunter2", NOBODY,
               (const char *const[]){"connection.uri", "redis://" NOBODY, "connection.password",
                                     "hunter2", NULL});
}

static void credential_keys(void)
{
    const char *odd[] = {"hunter2",         "hunter2/hunter2", "hunter2?hunter2",
                         "hunter2#hunter2", "hunter2@hunter2", "hunter2%hunter2",
                         "hunter2 hunter2", "hunter2;hunter2", "h\xc3\xbcnter2"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        open_fails(odd[i], NOBODY,
                   (const char *const[]){"connection.uri", "redis://" NOBODY, "credential.username",
                                         "app", "credential.password", odd[i], NULL});
    open_fails("hunter2", NOBODY,
               (const char *const[]){"connection.uri", "redis://" NOBODY, "credential.pass",
                                     "hunter2", NULL});
    open_fails("hunter2", NOBODY,
               (const char *const[]){"connection.uri", "redis://" NOBODY,
                                     "credentials.main.password", "hunter2", NULL});
    /* The password typed as the store key: no references, so the store is missing. */
    open_fails(
        "hunter2", "credential store",
        (const char *const[]){"connection.host", "h", "credential.store_key", "hunter2", NULL});
}

/* A store key (the password typed there) that the memory store does not know. */
static void credential_store_key(void)
{
    rk_config *store = rkt_settings("app.password=s3cret"), *cfg;
    ASSERT_OK(rk_config_from_tuples(&cfg, "connection.host", "h", "credential.store_key", "hunter2",
                                    NULL));
    rk_references *refs;
    rk_cache *c;
    ASSERT_OK(rk_references_new(&refs));
    ASSERT_OK(rk_references_set_memory_credential_store(refs, store));
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    ASSERT_OK(rk_cache_set_references(c, refs));
    ASSERT_RC(rk_cache_open(c, NULL), RK_EINVAL);
    assert_hidden("hunter2", "credential.store_key was not found");
    rk_cache_free(c);
    rk_references_free(refs);
    rk_config_free(cfg);
    rk_config_free(store);
}

RKT_MAIN(RKT_CASE(config_strings), RKT_CASE(config_tuples), RKT_CASE(connection_uri),
         RKT_CASE(connection_keys), RKT_CASE(credential_keys), RKT_CASE(credential_store_key))
