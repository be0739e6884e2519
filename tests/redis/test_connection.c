/* Connecting: configuration forms, Unix sockets, databases, discovery and credential stores,
 * passwords and ACL users against private servers, and the errors when any of it is wrong. */
#include <pthread.h>
#include <unistd.h>

#include "redis_env.h"

static void roundtrip(rk_cache *c)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_store(c, NULL, "conn-test", "ok", 2, 5000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "conn-test", &b));
    ASSERT_STR_EQ(b.data, "ok");
    rk_buf_free(&b);
}

static void no_connection(void)
{
    rk_cache *c;
    ASSERT_RC(rkt_try_open_cache(rkt_settings("options.timeout=1000"), &c), RK_ENOCONN);
    ASSERT_ERROR(RK_ENOCONN, "NO_CONNECTION", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, "Connection is not configured");
    ASSERT_FALSE(rk_cache_is_open(c));
    rk_cache_free(c);
}

static void server_down(void)
{
    rkt_server s;
    char cfg[256];
    rkt_server_start(&s, NULL);
    int port = s.port;
    rkt_server_stop(&s); /* nothing listens there now */
    snprintf(cfg, sizeof cfg, "connection.host=127.0.0.1;connection.port=%d;options.timeout=2000",
             port);
    rk_cache *c;
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rkt_try_open_cache(rkt_settings(cfg), &c), RK_EIO);
    ASSERT_LT(rkt_now_ms() - t0, 2500);
    char where[32];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    ASSERT_CONTAINS(rk_last_error()->message, where);
    ASSERT_CONTAINS(rk_last_error()->message, "cache open");
    ASSERT_STR_EQ(rk_last_error()->cause, "Connection refused");
    ASSERT_FALSE(rk_cache_is_open(c));
    rk_cache_free(c);
}

static void bad_host(void)
{
    rk_cache *c;
    ASSERT_RC(rkt_try_open_cache(
                  rkt_settings("connection.host=no-such-host.invalid;options.timeout=2000"), &c),
              RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "no-such-host.invalid");
    rk_cache_free(c);
}

static void uri_and_unix_socket(void)
{
    char cfg[512];
    rk_cache *c;
    snprintf(cfg, sizeof cfg, "connection.uri=redis://127.0.0.1:%d/0", rkt_port());
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    roundtrip(c);
    rk_cache_free(c);
    snprintf(cfg, sizeof cfg, "connection.uri=unix://%s", rkt_socket());
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    roundtrip(c);
    rk_cache_free(c);
}

/* Several endpoints of one server (single-node mode): tried in order at connect, the first that
 * answers serves. */
static void first_endpoint_that_answers(void)
{
    char extra[160], dead[32];
    rk_cache *c;
    int port = rkt_free_port();
    snprintf(extra, sizeof extra, "connection.uri=redis://127.0.0.1:%d,127.0.0.1:%d", port,
             rkt_port());
    c = rkt_open_cache(rkt_config(extra));
    roundtrip(c);
    rk_cache_free(c);
    /* none answers: the open fails with the last endpoint tried */
    snprintf(extra, sizeof extra, "connection.uri=redis://127.0.0.1:%d,127.0.0.1:%d", port, port);
    ASSERT_RC(rkt_try_open_cache(rkt_config(extra), &c), RK_EIO);
    snprintf(dead, sizeof dead, "127.0.0.1:%d", port);
    ASSERT_CONTAINS(rk_last_error()->message, dead);
    ASSERT_FALSE(rk_cache_is_open(c));
    rk_cache_free(c);
}

static void database_selection(void)
{
    char cfg[512];
    rk_cache *c;
    snprintf(cfg, sizeof cfg, "connection.host=127.0.0.1;connection.port=%d;options.db_num=5",
             rkt_port());
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    ASSERT_OK(rk_cache_store(c, NULL, "dbtest-5", "five", 4, 5000));
    rk_cache_free(c);
    snprintf(cfg, sizeof cfg, "connection.uri=unix://%s?db=6", rkt_socket());
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    ASSERT_OK(rk_cache_store(c, NULL, "dbtest-6", "six", 3, 5000));
    rk_cache_free(c);
    redisContext *raw = rkt_raw();
    freeReplyObject(rkt_cmd(raw, "SELECT", "5", NULL));
    redisReply *r = rkt_cmd(raw, "GET", "dbtest-5", NULL);
    ASSERT_STR_EQ(r->str, "five");
    freeReplyObject(r);
    freeReplyObject(rkt_cmd(raw, "SELECT", "6", NULL));
    r = rkt_cmd(raw, "GET", "dbtest-6", NULL);
    ASSERT_STR_EQ(r->str, "six");
    freeReplyObject(r);
    freeReplyObject(rkt_cmd(raw, "SELECT", "0", NULL));
    r = rkt_cmd(raw, "EXISTS", "dbtest-5", NULL);
    ASSERT_EQ(r->integer, 0);
    freeReplyObject(r);
    redisFree(raw);
}

static void discovery_and_credential_store(void)
{
    rkt_server s;
    char disc[256];
    rkt_server_start(&s, "--requirepass s3cret");
    snprintf(disc, sizeof disc, "redis-main.host=127.0.0.1;redis-main.port=%d", s.port);
    rk_config *dcfg, *scfg, *cfg;
    ASSERT_OK(rk_config_from_string(&dcfg, disc));
    ASSERT_OK(rk_config_from_string(&scfg, "redis-cred.pass=s3cret"));
    rk_references *refs;
    ASSERT_OK(rk_references_new(&refs));
    ASSERT_OK(rk_references_set_memory_discovery(refs, dcfg));
    ASSERT_OK(rk_references_set_memory_credential_store(refs, scfg));
    ASSERT_OK(rk_config_from_string(&cfg, "connection.discovery_key=redis-main;"
                                          "credential.store_key=redis-cred"));
    rk_cache *c;
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    ASSERT_OK(rk_cache_set_references(c, refs));
    rk_references_free(refs); /* the cache copied them */
    ASSERT_OK(rk_cache_open(c, NULL));
    roundtrip(c);
    rk_cache_free(c);
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    ASSERT_RC(rk_cache_open(c, NULL), RK_EREF); /* no references set */
    ASSERT_ERROR(RK_EREF, "REF_ERROR", "Internal");
    rk_cache_free(c);
    rk_config_free(cfg);
    rk_config_free(dcfg);
    rk_config_free(scfg);
    rkt_server_stop(&s);
}

static void passwords(void)
{
    rkt_server s;
    char cfg[256];
    rk_cache *c;
    rkt_server_start(&s, "--requirepass s3cret:with@odd");
    snprintf(cfg, sizeof cfg, "connection.port=%d;credential.password=wrong-guess", s.port);
    ASSERT_RC(rkt_try_open_cache(rkt_settings(cfg), &c), RK_EAUTH);
    ASSERT_ERROR(RK_EAUTH, "UNAUTHORIZED", "Unauthorized");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "wrong-guess");
    ASSERT_NOT_CONTAINS(rk_last_error()->cause, "wrong-guess");
    rk_cache_free(c);
    snprintf(cfg, sizeof cfg, "connection.port=%d", s.port); /* no password at all */
    ASSERT_RC(rkt_try_open_cache(rkt_settings(cfg), &c), RK_EAUTH);
    ASSERT_CONTAINS(rk_last_error()->cause, "NOAUTH");
    rk_cache_free(c);
    snprintf(cfg, sizeof cfg, "connection.port=%d;credential.password=s3cret:with@odd", s.port);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    roundtrip(c);
    rk_cache_free(c);
    snprintf(cfg, sizeof cfg, "connection.uri=redis://:s3cret%%3Awith%%40odd@127.0.0.1:%d", s.port);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    roundtrip(c);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

static void acl_user(void)
{
    rkt_server s;
    char cfg[256];
    rk_cache *c;
    rkt_server_start(&s, NULL);
    redisContext *raw = rkt_raw_port(s.port);
    redisReply *r =
        rkt_cmd(raw, "ACL", "SETUSER", "app", "on", ">app-pass", "~app:*", "+@all", NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(raw);
    snprintf(cfg, sizeof cfg,
             "connection.port=%d;credential.username=app;"
             "credential.password=app-pass;options.prefix=app:",
             s.port);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    roundtrip(c);
    rk_cache_free(c);
    snprintf(cfg, sizeof cfg, "connection.uri=redis://app:app-pass@127.0.0.1:%d", s.port);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    ASSERT_RC(rk_cache_store(c, NULL, "other:key", "v", 1, 1000), RK_EREPLY);
    ASSERT_ERROR(RK_EREPLY, "NOPERM", "FailedInvocation");
    ASSERT_CONTAINS(rk_last_error()->message, "store 'other:key'");
    rk_cache_free(c);
    snprintf(cfg, sizeof cfg,
             "connection.port=%d;credential.username=app;"
             "credential.password=nope",
             s.port);
    ASSERT_RC(rkt_try_open_cache(rkt_settings(cfg), &c), RK_EAUTH);
    ASSERT_CONTAINS(rk_last_error()->message, "user 'app'");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "nope");
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* A paused server: calls give up with TIMEOUT on their deadline and work again afterwards. */
static void operation_timeout(void)
{
    rkt_server s;
    char cfg[256];
    rk_cache *c;
    rk_buf b = RK_BUF_INIT;
    rkt_server_start(&s, NULL);
    snprintf(cfg, sizeof cfg, "connection.port=%d;options.timeout=300", s.port);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    roundtrip(c);
    redisContext *raw = rkt_raw_port(s.port);
    freeReplyObject(rkt_cmd(raw, "CLIENT", "PAUSE", "1500", "ALL", NULL));
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_cache_retrieve(c, NULL, "conn-test", &b), RK_ETIMEDOUT);
    uint64_t took = rkt_now_ms() - t0;
    ASSERT_ERROR(RK_ETIMEDOUT, "TIMEOUT", "NoResponse");
    ASSERT_GE(took, 250);
    ASSERT_LT(took, 1400);
    freeReplyObject(rkt_cmd(raw, "CLIENT", "UNPAUSE", NULL));
    redisFree(raw);
    roundtrip(c); /* a fresh connection replaces the timed-out one */
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* Killed and restarted server: the next call reconnects by itself. */
static void reconnects_after_restart(void)
{
    rkt_server s;
    char cfg[256];
    rk_cache *c;
    rkt_server_start(&s, NULL);
    snprintf(cfg, sizeof cfg, "connection.port=%d;options.timeout=5000", s.port);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(cfg), &c));
    roundtrip(c);
    rkt_server_restart(&s);
    roundtrip(c);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

RKT_MAIN(RKT_CASE(no_connection), RKT_CASE(server_down), RKT_CASE(bad_host),
         RKT_CASE(uri_and_unix_socket), RKT_CASE(first_endpoint_that_answers),
         RKT_CASE(database_selection), RKT_CASE(discovery_and_credential_store),
         RKT_CASE(passwords), RKT_CASE(acl_user), RKT_CASE(operation_timeout),
         RKT_CASE(reconnects_after_restart))
