/* connection.uri parsing: every form the README documents, and every way to get it wrong. */
#include "endpoint.h"
#include "harness.h"

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
    parse_bad("redis://h:6a", "port '6a'");
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

RKT_MAIN(RKT_CASE(plain_host), RKT_CASE(user_password_port_db), RKT_CASE(password_only),
         RKT_CASE(password_with_colon_and_at), RKT_CASE(ipv6), RKT_CASE(tls_scheme),
         RKT_CASE(unix_socket), RKT_CASE(db_only_when_given), RKT_CASE(bad_uris),
         RKT_CASE(errors_never_show_the_password), RKT_CASE(endpoint_names))
