/* Redis ACL users over TLS: AUTH user password from the configuration, the URI or a credential
 * store; a key outside the user's patterns is a NOPERM error; wrong credentials are
 * UNAUTHORIZED and the password never shows in rk_last_error() or on stderr. Each case creates
 * its user on the TLS fixture (through the admin socket) and deletes it at the end. */
#include <unistd.h>

#include "tls_env.h"

static char user[64], password[64], wrong[64];

/* Create the user (only keys under "<prefix>allowed:") or delete it. */
static void acl(bool create)
{
    redisContext *admin = rkt_tls_admin();
    char keys[128], pass[80];
    snprintf(keys, sizeof keys, "~%sallowed:*", rkt_prefix());
    snprintf(pass, sizeof pass, ">%s", password);
    redisReply *r =
        create ? rkt_cmd(admin, "ACL", "SETUSER", user, "reset", "on", pass, keys, "+@all", NULL)
               : rkt_cmd(admin, "ACL", "DELUSER", user, NULL);
    ASSERT_TRUE(r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(admin);
}

static void setup(void)
{
    snprintf(user, sizeof user, "rkt-acl-%d", (int)getpid());
    snprintf(password, sizeof password, "Pw-%d-s3cret", (int)getpid());
    snprintf(wrong, sizeof wrong, "Wr0ng-%d-guess", (int)getpid());
    acl(true);
}

static void teardown(void) { acl(false); }

static const char *as_user(const char *pass, const char *extra)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "credential.username=%s;credential.password=%s;%s", user, pass,
             extra ? extra : "");
    return rkt_tls_settings(0, buf);
}

/* No field of the last error holds either password. */
static void assert_no_password(void)
{
    const rk_error *e = rk_last_error();
    const char *fields[] = {e->name, e->category, e->message, e->cause, e->trace_id};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        ASSERT_NOT_CONTAINS(fields[i], password);
        ASSERT_NOT_CONTAINS(fields[i], wrong);
    }
}

static void limited_key_patterns(void)
{
    setup();
    rk_cache *c;
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rkt_try_open_cache(rkt_settings(as_user(password, NULL)), &c));
    ASSERT_OK(rk_cache_store(c, NULL, "allowed:k", "v", 1, 5000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "allowed:k", &b));
    ASSERT_STR_EQ(b.data, "v");
    ASSERT_RC(rk_cache_store(c, NULL, "forbidden:k", "v", 1, 5000), RK_EREPLY);
    ASSERT_ERROR(RK_EREPLY, "NOPERM", "FailedInvocation");
    ASSERT_CONTAINS(rk_last_error()->message, "store 'forbidden:k'");
    ASSERT_CONTAINS(rk_last_error()->cause, "NOPERM");
    assert_no_password();
    ASSERT_RC(rk_cache_retrieve(c, NULL, "forbidden:k", &b), RK_EREPLY);
    ASSERT_ERROR(RK_EREPLY, "NOPERM", "FailedInvocation");
    ASSERT_OK(rk_cache_remove(c, NULL, "allowed:k"));
    rk_buf_free(&b);
    rk_cache_free(c);
    teardown();
}

static void user_in_the_uri(void)
{
    setup();
    char s[1024];
    rk_cache *c;
    snprintf(s, sizeof s,
             "connection.uri=rediss://%s:%s@localhost:%d;options.tls_ca_file=%s;"
             "options.prefix=%sallowed:",
             user, password, rkt_tls_port(), rkt_tls_file("ca.crt"), rkt_prefix());
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    snprintf(s, sizeof s, "connection.uri=rediss://%s:%s@localhost:%d;options.tls_ca_file=%s", user,
             wrong, rkt_tls_port(), rkt_tls_file("ca.crt"));
    ASSERT_RC(rkt_try_open_cache(rkt_settings(s), &c), RK_EAUTH);
    assert_no_password();
    rk_cache_free(c);
    teardown();
}

static void password_from_credential_store(void)
{
    setup();
    rk_config *store, *cfg;
    rk_references *refs;
    rk_cache *c;
    ASSERT_OK(rk_config_from_tuples(&store, "app.username", user, "app.password", password, NULL));
    ASSERT_OK(rk_references_new(&refs));
    ASSERT_OK(rk_references_set_memory_credential_store(refs, store));
    char extra[128];
    snprintf(extra, sizeof extra,
             "credential.store_key=app;options.prefix=%sallowed:", rkt_prefix());
    ASSERT_OK(rk_config_from_string(&cfg, rkt_tls_settings(0, extra)));
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    ASSERT_OK(rk_cache_set_references(c, refs));
    ASSERT_OK(rk_cache_open(c, NULL));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    rk_config_free(cfg);
    rk_references_free(refs);
    rk_config_free(store);
    teardown();
}

static void open_wrong(void *arg)
{
    rk_cache *c;
    rk_context ctx = {"trace-acl"};
    char s[1024];
    snprintf(s, sizeof s, "%s", as_user(wrong, "options.tls_verify=false"));
    rk_config *cfg;
    ASSERT_OK(rk_config_from_string(&cfg, s));
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_config_free(cfg);
    *(int *)arg = rk_cache_open(c, &ctx);
    rk_cache_free(c);
}

/* Wrong password: UNAUTHORIZED, naming the user and the server but neither password, in the
 * error and in the one line redkit writes to stderr (the insecure-TLS warning). */
static void wrong_password(void)
{
    setup();
    int rc;
    const char *err = rkt_capture_stderr(open_wrong, &rc);
    ASSERT_RC(rc, RK_EAUTH);
    ASSERT_ERROR(RK_EAUTH, "UNAUTHORIZED", "Unauthorized");
    ASSERT_STR_EQ(rk_last_error()->trace_id, "trace-acl");
    ASSERT_CONTAINS(rk_last_error()->message, "Unauthorized");
    ASSERT_CONTAINS(rk_last_error()->message, user);
    char peer[64];
    snprintf(peer, sizeof peer, "localhost:%d", rkt_tls_port());
    ASSERT_CONTAINS(rk_last_error()->message, peer);
    assert_no_password();
    ASSERT_CONTAINS(err, "options.tls_verify=false");
    ASSERT_NOT_CONTAINS(err, wrong);
    ASSERT_NOT_CONTAINS(err, password);
    /* an unknown user fails the same way */
    rk_cache *c;
    char s[1024];
    snprintf(s, sizeof s, "%s", rkt_tls_settings(0, "credential.username=nobody-here;"));
    snprintf(s + strlen(s), sizeof s - strlen(s), "credential.password=%s", password);
    ASSERT_RC(rkt_try_open_cache(rkt_settings(s), &c), RK_EAUTH);
    ASSERT_CONTAINS(rk_last_error()->message, "nobody-here");
    assert_no_password();
    rk_cache_free(c);
    teardown();
}

RKT_MAIN(RKT_CASE(limited_key_patterns), RKT_CASE(user_in_the_uri),
         RKT_CASE(password_from_credential_store), RKT_CASE(wrong_password))
