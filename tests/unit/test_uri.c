/* connection.uri parsing: every form the README documents, and every way to get it wrong;
 * then the TLS options that complete an endpoint (options.tls*). */
#include <string.h>

#include "endpoint.h"
#include "harness.h"
#include "resolve.h"
#include "tls.h"

static rk__endpoint ep;

static void parse_ok(const char *uri)
{
    rk__endpoint_clear(&ep);
    ASSERT_OK(rk__uri_parse(&ep, uri, "connection.uri"));
}

static void parse_bad(const char *uri, const char *mentions)
{
    rk__endpoint_clear(&ep);
    ASSERT_RC(rk__uri_parse(&ep, uri, "connection.uri"), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connection.uri");
    ASSERT_CONTAINS(rk_last_error()->message, mentions);
    ASSERT_TRUE(ep.host == NULL && ep.password == NULL);
}

static void plain_host(void)
{
    parse_ok("redis://localhost");
    ASSERT_STR_EQ(ep.host, "localhost");
    ASSERT_EQ(ep.port, 6379);
    ASSERT_EQ(ep.db, 0);
    ASSERT_FALSE(ep.tls);
    ASSERT_TRUE(ep.username == NULL && ep.password == NULL && ep.path == NULL);
}

static void user_password_port_db(void)
{
    parse_ok("redis://alice:pa%3Ass@cache.local:6380/2");
    ASSERT_STR_EQ(ep.username, "alice");
    ASSERT_STR_EQ(ep.password, "pa:ss");
    ASSERT_STR_EQ(ep.host, "cache.local");
    ASSERT_EQ(ep.port, 6380);
    ASSERT_EQ(ep.db, 2);
}

static void password_only(void)
{
    parse_ok("redis://:secret@h");
    ASSERT_TRUE(ep.username == NULL);
    ASSERT_STR_EQ(ep.password, "secret");
}

static void password_with_colon_and_at(void)
{
    parse_ok("redis://u:p:a@ss@h:1/0");
    ASSERT_STR_EQ(ep.username, "u");
    ASSERT_STR_EQ(ep.password, "p:a@ss");
    ASSERT_STR_EQ(ep.host, "h");
    ASSERT_EQ(ep.port, 1);
    parse_ok("redis://u:p%40ss@h");
    ASSERT_STR_EQ(ep.password, "p@ss");
}

static void ipv6(void)
{
    parse_ok("redis://[::1]:6390/3");
    ASSERT_STR_EQ(ep.host, "::1");
    ASSERT_EQ(ep.port, 6390);
    ASSERT_EQ(ep.db, 3);
    parse_ok("redis://[fe80::1]");
    ASSERT_EQ(ep.port, 6379);
}

static void tls_scheme(void)
{
    parse_ok("rediss://secure.example:6380");
    ASSERT_TRUE(ep.tls);
    ASSERT_EQ(ep.port, 6380);
    parse_ok("REDIS://h");
    ASSERT_FALSE(ep.tls);
}

static void unix_socket(void)
{
    parse_ok("unix:///tmp/redis.sock?db=4");
    ASSERT_STR_EQ(ep.path, "/tmp/redis.sock");
    ASSERT_TRUE(ep.host == NULL);
    ASSERT_EQ(ep.db, 4);
    parse_ok("unix://:pw@/var/run/my%20redis.sock");
    ASSERT_STR_EQ(ep.password, "pw");
    ASSERT_STR_EQ(ep.path, "/var/run/my redis.sock");
}

/* Parsing into an endpoint that held a rediss:// URI: a unix:// one must not stay TLS. */
static void reparse_resets_tls(void)
{
    parse_ok("rediss://h:1");
    ASSERT_TRUE(ep.tls);
    ASSERT_OK(rk__uri_parse(&ep, "unix:///tmp/r.sock", "connection.uri"));
    ASSERT_FALSE(ep.tls);
    ASSERT_STR_EQ(ep.path, "/tmp/r.sock");
}

static void db_only_when_given(void)
{
    rk__endpoint_clear(&ep);
    ep.db = 7;
    ASSERT_OK(rk__uri_parse(&ep, "redis://h:1", "connection.uri"));
    ASSERT_EQ(ep.db, 7);
    ASSERT_OK(rk__uri_parse(&ep, "redis://h:1/", "connection.uri"));
    ASSERT_EQ(ep.db, 7);
    ASSERT_OK(rk__uri_parse(&ep, "redis://h:1/9", "connection.uri"));
    ASSERT_EQ(ep.db, 9);
}

static void bad_uris(void)
{
    parse_bad("localhost:6379", "scheme");
    parse_bad("http://h", "unknown scheme 'http'");
    parse_bad("redis://h:0", "port '0'");
    parse_bad("redis://h:65536", "port '65536'");
    parse_bad("redis://h:6a", "port is not a number"); /* no '@': it may be a password */
    parse_bad("redis://u:p@h:6a", "port '6a'");        /* after the '@': safe to quote */
    parse_bad("ftp+x://h", "unknown scheme 'ftp+x'");
    parse_bad("u:pw@redis://h", "not a scheme");
    parse_bad("redis://h:", "port ''");
    parse_bad("redis://h/x", "database 'x'");
    parse_bad("redis://%zz@h", "percent-escape");
    parse_bad("redis://u:ab%2@h", "percent-escape");
    parse_bad("redis://u:a%00b@h", "percent-escape");
    parse_bad("redis://h?timeout=5", "unknown query parameter 'timeout'");
    parse_bad("redis://[::1", "']'");
    parse_bad("redis://[::1]x", "IPv6");
    parse_bad("unix://", "no socket path");
    parse_bad("unix://host/path", "absolute path");
    parse_bad("unix:///s?db=x", "database 'x'");
}

static void errors_never_show_the_password(void)
{
    parse_bad("redis://u:supersecret@h:99999", "port");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "supersecret");
    parse_bad("redis://u:supersecret@h/zz", "database");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "supersecret");
    parse_bad("redis://admin:supersecret", "port is not a number (if this is user:password");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "supersecret");
    parse_bad("redis://u:super/secret@h:1", "'@' after the host");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "super");
    parse_bad("redis://u:super?secret@h:1", "must be percent-encoded");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "super");
}

static void endpoint_names(void)
{
    char buf[80];
    parse_ok("redis://[::1]:7");
    ASSERT_STR_EQ(rk__endpoint_name(&ep, buf, sizeof buf), "[::1]:7");
    parse_ok("unix:///a.sock");
    ASSERT_STR_EQ(rk__endpoint_name(&ep, buf, sizeof buf), "unix:/a.sock");
    rk__endpoint_clear(&ep);
}

/* ---- host lists: redis://[user:pass@]h1:p1,h2:p2[/db] ---- */

static rk__endpoint *list;
static size_t nlist;

static void list_ok(const char *uri, size_t n)
{
    rk__seeds_free(list, nlist);
    rk__endpoint tmpl = {.db = 7, .connect_timeout_ms = 123};
    ASSERT_OK(rk__uri_parse_list(&list, &nlist, &tmpl, uri, "connection.uri"));
    ASSERT_EQ(nlist, n);
}

static void list_bad(const char *uri, const char *mentions)
{
    rk__seeds_free(list, nlist);
    rk__endpoint tmpl = {0};
    list = (rk__endpoint *)&tmpl;
    nlist = 9;
    ASSERT_RC(rk__uri_parse_list(&list, &nlist, &tmpl, uri, "connection.uri"), RK_EINVAL);
    ASSERT_TRUE(list == NULL && nlist == 0);
    ASSERT_CONTAINS(rk_last_error()->message, "connection.uri");
    ASSERT_CONTAINS(rk_last_error()->message, mentions);
}

static void assert_host(size_t i, const char *host, unsigned port)
{
    ASSERT_STR_EQ(list[i].host, host);
    ASSERT_EQ(list[i].port, port);
}

static void host_lists(void)
{
    list_ok("redis://alice:p%2Cw@h1:7001,h2,[::1]:7003,[fe80::2]/2", 4);
    assert_host(0, "h1", 7001);
    assert_host(1, "h2", 6379);
    assert_host(2, "::1", 7003);
    assert_host(3, "fe80::2", 6379);
    for (size_t i = 0; i < nlist; i++) { /* the user info and database apply to every host */
        ASSERT_STR_EQ(list[i].username, "alice");
        ASSERT_STR_EQ(list[i].password, "p,w");
        ASSERT_EQ(list[i].db, 2);
        ASSERT_EQ(list[i].connect_timeout_ms, 123);
        ASSERT_FALSE(list[i].tls);
    }
    list_ok("rediss://a:1,b:2", 2); /* TLS for all */
    ASSERT_TRUE(list[0].tls && list[1].tls);
    ASSERT_EQ(list[1].db, 7);         /* the template's, as the URI names none */
    list_ok("redis://u:p,a@ss@h", 1); /* a ',' before the '@' is part of the password */
    ASSERT_STR_EQ(list[0].password, "p,a@ss");
    assert_host(0, "h", 6379);
    list_ok("redis://", 1); /* alone, an empty host is still localhost */
    assert_host(0, "localhost", 6379);
    list_ok("unix:///tmp/r.sock?db=3", 1);
    ASSERT_STR_EQ(list[0].path, "/tmp/r.sock");
    ASSERT_EQ(list[0].db, 3);
}

static void host_list_limit(void)
{
    char uri[1024] = "redis://";
    for (int i = 0; i < RK__URI_MAX_HOSTS; i++)
        snprintf(uri + strlen(uri), sizeof uri - strlen(uri), "%sh%d", i ? "," : "", i);
    list_ok(uri, RK__URI_MAX_HOSTS);
    assert_host(RK__URI_MAX_HOSTS - 1, "h63", 6379);
    strcat(uri, ",h64");
    list_bad(uri, "lists 65 hosts (at most 64)");
}

static void bad_host_lists(void)
{
    list_bad("redis://h1,,h3", "(host 2 of 3): the host is empty");
    list_bad("redis://h1,", "(host 2 of 2): the host is empty");
    list_bad("redis://,h2", "(host 1 of 2): the host is empty");
    list_bad("redis://h1,:6380", "(host 2 of 2): the host is empty");
    list_bad("redis://h1,h2:0", "(host 2 of 2): port '0' is not in 1..65535");
    list_bad("redis://u@h1:70000,h2", "(host 1 of 2): port '70000'");
    list_bad("redis://h1,h2:x", "(host 2 of 2): port is not a number");
    list_bad("redis://h1,[::1", "(host 2 of 2): IPv6 address is missing its ']'");
    list_bad("redis://h1,h%zz", "(host 2 of 2): invalid percent-escape in the host");
    list_bad("redis://h1,h2/x", "database 'x'");
    list_bad("http://h1,h2", "unknown scheme 'http'");
    /* the single-endpoint parser refuses a list rather than resolve "h1,h2" */
    parse_bad("redis://h1,h2", "lists 2 hosts where one is expected");
}

static void list_bad_hides(const char *uri, const char *mentions, const char *secret)
{
    list_bad(uri, mentions);
    ASSERT_NOT_CONTAINS(rk_last_error()->message, secret);
}

static void host_list_errors_never_show_the_password(void)
{
    list_bad_hides("redis://u:supersecret@h1,,h2", "the host is empty", "supersecret");
    list_bad_hides("redis://u:supersecret@h1:99999,h2", "port '99999'", "supersecret");
    list_bad_hides("redis://h1,admin:supersecret", "port is not a number", "supersecret");
    list_bad_hides("redis://u:super/secret@h1,h2", "'@' after the host", "super");
    rk__seeds_free(list, nlist);
    list = NULL;
    nlist = 0;
}

/* ---- options.tls* ---- */

static int options_rc(const char *settings)
{
    rk_config *cfg;
    rk__options o;
    ASSERT_OK(rk_config_from_string(&cfg, settings));
    int rc = rk__options_parse(&o, cfg);
    rk__options_clear(&o);
    rk_config_free(cfg);
    return rc;
}

static int resolve(rk__endpoint *out, const char *settings)
{
    rk_config *cfg;
    rk__options o;
    ASSERT_OK(rk_config_from_string(&cfg, settings));
    ASSERT_OK(rk__options_parse(&o, cfg));
    int rc = rk__resolve_endpoint(out, cfg, NULL, &o, NULL);
    rk__options_clear(&o);
    rk_config_free(cfg);
    return rc;
}

static void tls_option_values(void)
{
    ASSERT_OK(options_rc("options.tls=yes;options.tls_verify=No;options.tls_ca_file=/x"));
    ASSERT_RC(options_rc("options.tls_verify=maybe"), RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_verify: 'maybe' is not a boolean");
    ASSERT_RC(options_rc("options.tls=2"), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls: '2'");
    ASSERT_RC(options_rc("options.TLS_CA_FIEL=/x"), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "unknown TLS option options.TLS_CA_FIEL");
    ASSERT_RC(options_rc("options.tls_cert_file= "), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_cert_file is empty");
    ASSERT_OK(options_rc("options.tlsx=1;options.timeout=5")); /* not a TLS option: ignored */
}

/* The endpoint is plain data; the client builds the TLS context from its options. */
static int tls_ctx_rc(const rk__endpoint *e)
{
    void *ctx;
    int rc = rk__tls_ctx_new(&ctx, &e->tls_opts);
    rk__tls_ctx_free(ctx);
    return rc;
}

static void tls_endpoints(void)
{
    rk__endpoint a, b;
    /* verification is on unless turned off, with the system's CAs when none is named */
    ASSERT_OK(resolve(&a, "connection.uri=rediss://h:1"));
    ASSERT_TRUE(a.tls && !a.tls_opts.insecure && !a.tls_opts.ca_file);
    ASSERT_OK(tls_ctx_rc(&a));
    /* a copy is a deep copy of plain data */
    ASSERT_OK(rk__endpoint_copy(&b, &a));
    ASSERT_TRUE(b.tls && !b.tls_opts.insecure && b.host != a.host);
    ASSERT_STR_EQ(b.host, a.host);
    rk__endpoint_clear(&a);
    rk__endpoint_clear(&b);
    ASSERT_OK(resolve(&a, "connection.host=h;connection.protocol=rediss;options.tls=false;"
                          "options.tls_server_name=redis.internal"));
    ASSERT_TRUE(a.tls); /* options.tls=false does not turn rediss off */
    ASSERT_STR_EQ(a.tls_opts.server_name, "redis.internal");
    rk__endpoint_clear(&a);
    ASSERT_OK(resolve(&a, "connection.uri=redis://h:1;options.tls=on;options.tls_verify=off"));
    ASSERT_TRUE(a.tls && a.tls_opts.insecure);
    ASSERT_OK(tls_ctx_rc(&a));
    rk__endpoint_clear(&a);
    /* TLS options alone do not turn TLS on */
    ASSERT_OK(resolve(&a, "connection.uri=redis://h:1;options.tls_ca_file=/nowhere"));
    ASSERT_TRUE(!a.tls && !a.tls_opts.ca_file);
    rk__endpoint_clear(&a);
    ASSERT_RC(resolve(&a, "connection.uri=unix:///tmp/r.sock;options.tls=1"), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message,
                    "cannot be used with the Unix socket unix:/tmp/r.sock");
    ASSERT_TRUE(a.path == NULL);
    ASSERT_OK(resolve(&a, "connection.uri=rediss://h:1;options.tls_ca_file=/no/ca.pem"));
    ASSERT_RC(tls_ctx_rc(&a), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_ca_file: cannot read '/no/ca.pem'");
    rk__endpoint_clear(&a);
}

RKT_MAIN(RKT_CASE(plain_host), RKT_CASE(user_password_port_db), RKT_CASE(password_only),
         RKT_CASE(password_with_colon_and_at), RKT_CASE(ipv6), RKT_CASE(tls_scheme),
         RKT_CASE(unix_socket), RKT_CASE(reparse_resets_tls), RKT_CASE(db_only_when_given),
         RKT_CASE(bad_uris), RKT_CASE(errors_never_show_the_password), RKT_CASE(endpoint_names),
         RKT_CASE(host_lists), RKT_CASE(host_list_limit), RKT_CASE(bad_host_lists),
         RKT_CASE(host_list_errors_never_show_the_password), RKT_CASE(tls_option_values),
         RKT_CASE(tls_endpoints))
