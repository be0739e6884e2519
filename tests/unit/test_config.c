/* ConfigParams semantics (pip-services fromString/fromTuples), options validation, and the
 * connection/credential resolution that needs no server. */
#include <string.h>

#include "alloc.h"
#include "config_int.h"
#include "harness.h"
#include "resolve.h"

static rk_config *parse(const char *s)
{
    rk_config *cfg = NULL;
    ASSERT_OK(rk_config_from_string(&cfg, s));
    return cfg;
}

static void from_string(void)
{
    rk_config *cfg = parse(" connection.host = redis.local ;connection.port=6380;;"
                           "credential.password=a=b=c; empty= ");
    ASSERT_EQ(rk_config_count(cfg), 4);
    ASSERT_STR_EQ(rk_config_get(cfg, "connection.host"), "redis.local");
    ASSERT_STR_EQ(rk_config_get(cfg, "connection.port"), "6380");
    ASSERT_STR_EQ(rk_config_get(cfg, "credential.password"), "a=b=c"); /* first '=' splits */
    ASSERT_STR_EQ(rk_config_get(cfg, "empty"), "");
    ASSERT_TRUE(rk_config_get(cfg, "missing") == NULL);
    rk_config_free(cfg);
    cfg = parse("");
    ASSERT_EQ(rk_config_count(cfg), 0);
    rk_config_free(cfg);
    ASSERT_OK(rk_config_from_string(&cfg, NULL));
    ASSERT_EQ(rk_config_count(cfg), 0);
    rk_config_free(cfg);
}

static void from_string_errors(void)
{
    rk_config *cfg = (rk_config *)1;
    ASSERT_RC(rk_config_from_string(&cfg, "a=1;connection.host localhost;b=2"), RK_EINVAL);
    ASSERT_TRUE(cfg == NULL);
    /* The key is named, the value after the blank is not. */
    ASSERT_CONTAINS(rk_last_error()->message, "'connection.host' has no '='");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "localhost");
    ASSERT_RC(rk_config_from_string(&cfg, "=value"), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "empty key");
    ASSERT_RC(rk_config_from_string(NULL, "a=1"), RK_EINVAL);
}

static void duplicates_and_case(void)
{
    rk_config *cfg = parse("a.b=1;c=2;A.B=3");
    ASSERT_EQ(rk_config_count(cfg), 2); /* later value replaces, keeps the first position */
    ASSERT_STR_EQ(rk_config_get(cfg, "a.b"), "3");
    const char *k, *v;
    ASSERT_TRUE(rk_config_entry(cfg, 0, &k, &v));
    ASSERT_STR_EQ(k, "a.b");
    ASSERT_TRUE(rk_config_entry(cfg, 1, &k, &v));
    ASSERT_STR_EQ(k, "c");
    ASSERT_FALSE(rk_config_entry(cfg, 2, &k, &v));
    ASSERT_OK(rk_config_set(cfg, "C", NULL));
    ASSERT_EQ(rk_config_count(cfg), 1);
    rk_config_free(cfg);
}

static void from_tuples(void)
{
    rk_config *cfg;
    ASSERT_OK(rk_config_from_tuples(&cfg, "connection.host", "h", "connection.port", "1", NULL));
    ASSERT_STR_EQ(rk_config_get(cfg, "connection.port"), "1");
    rk_config_free(cfg);
    ASSERT_RC(rk_config_from_tuples(&cfg, "connection.host", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "'connection.host' has no value");
    ASSERT_TRUE(cfg == NULL);
}

static void option_defaults(void)
{
    rk__options o;
    ASSERT_OK(rk__options_parse(&o, NULL));
    ASSERT_EQ(o.connect_timeout_ms, 5000);
    ASSERT_EQ(o.timeout_ms, 30000);
    ASSERT_EQ(o.retries, 3);
    ASSERT_EQ(o.db, 0);
    ASSERT_EQ(o.retry_timeout_ms, 100);
    ASSERT_EQ(o.max_connections, 8);
    ASSERT_EQ(o.default_ttl_ms, 60000);
    ASSERT_EQ(o.lock_timeout_ms, 5000);
    ASSERT_TRUE(o.prefix == NULL && o.resource_tag == NULL);
    ASSERT_EQ(o.cluster, RK__CLUSTER_AUTO);
    ASSERT_EQ(o.max_redirects, 5);
    ASSERT_EQ(o.topology_refresh_ms, 60000);
    ASSERT_FALSE(o.read_replicas);
    ASSERT_TRUE(!o.sentinel_master && !o.sentinel_username && !o.sentinel_password);
    ASSERT_EQ(o.lock_replicas, 0);
    ASSERT_EQ(o.lock_replicas_timeout_ms, 100);
    ASSERT_EQ(o.near_cache_size, 0);
    ASSERT_EQ(o.near_cache_bytes, 67108864);
    rk__options_clear(&o);
}

static void bad_option(const char *s, const char *key)
{
    rk__options o;
    rk_config *cfg = parse(s);
    ASSERT_RC(rk__options_parse(&o, cfg), RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, key);
    rk_config_free(cfg);
}

static void option_errors(void)
{
    bad_option("options.timeout=abc", "options.timeout");
    bad_option("options.timeout=-5", "options.timeout");
    bad_option("options.timeout=0", "options.timeout");
    bad_option("options.retries=1e3", "options.retries");
    bad_option("options.max_connections=0", "options.max_connections");
    bad_option("options.connect_timeout=99999999999999999999999", "options.connect_timeout");
    bad_option("options.retry_timeout= ", "options.retry_timeout");
}

static rk__options options(const char *s)
{
    rk__options o;
    rk_config *cfg = parse(s);
    ASSERT_OK(rk__options_parse(&o, cfg));
    rk_config_free(cfg);
    return o; /* nothing to clear: no prefix or resource_tag in these tests */
}

static void cluster_options(void)
{
    static const char *on[] = {"true", "TRUE", "yes", "on", "1"},
                      *off[] = {"false", "No", "off", "0"};
    char s[64];
    ASSERT_EQ(options("options.cluster=auto").cluster, RK__CLUSTER_AUTO);
    ASSERT_EQ(options("options.cluster=AUTO").cluster, RK__CLUSTER_AUTO);
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        snprintf(s, sizeof s, "options.cluster=%s", on[i]);
        ASSERT_EQ(options(s).cluster, RK__CLUSTER_ON);
    }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        snprintf(s, sizeof s, "options.cluster=%s", off[i]);
        ASSERT_EQ(options(s).cluster, RK__CLUSTER_OFF);
    }
    rk__options o = options("options.max_redirects=0;options.topology_refresh=1;"
                            "options.read_from=REPLICA");
    ASSERT_EQ(o.max_redirects, 0);
    ASSERT_EQ(o.topology_refresh_ms, 1);
    ASSERT_TRUE(o.read_replicas);
    o = options("options.max_redirects=100;options.topology_refresh=86400000;"
                "options.read_from=master");
    ASSERT_EQ(o.max_redirects, 100);
    ASSERT_EQ(o.topology_refresh_ms, 86400000);
    ASSERT_FALSE(o.read_replicas);
}

static void cluster_option_errors(void)
{
    bad_option("options.cluster=maybe", "options.cluster: 'maybe' is not one of auto, true or "
                                        "false (or yes/no, on/off, 1/0)");
    bad_option("options.cluster=", "options.cluster: '' is not one of auto");
    bad_option("options.cluster=a:b@c", "options.cluster: the value is not one of auto");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "a:b@c");
    bad_option("options.read_from=slave", "options.read_from: 'slave' is not one of master or "
                                          "replica");
    bad_option("options.max_redirects=101", "options.max_redirects: 101 is outside [0, 100]");
    bad_option("options.max_redirects=-1", "options.max_redirects");
    bad_option("options.topology_refresh=0", "options.topology_refresh: 0 is outside");
    bad_option("options.topology_refresh=86400001", "options.topology_refresh");
}

/* A Redis Cluster has database 0 only: refused at configure when the cluster is certain, left
 * to the cluster client at open with auto (it may find a single server). */
static void cluster_and_database(void)
{
    bad_option("options.cluster=true;options.db_num=3",
               "options.cluster=true cannot be used with options.db_num=3");
    ASSERT_EQ(options("options.cluster=true;options.db_num=0").db, 0);
    ASSERT_EQ(options("options.cluster=auto;options.db_num=3").db, 3);
    ASSERT_EQ(options("options.db_num=3").db, 3);
    ASSERT_EQ(options("options.cluster=off;options.db_num=3").db, 3);
}

/* Sentinel mode: the seeds are sentinels; the options name the master and the sentinels' own
 * credentials. They survive a copy (the client keeps one per open). */
static void sentinel_options(void)
{
    rk__options o, copy;
    rk_config *cfg = parse("options.sentinel_master=mymaster;options.sentinel_username=sentry;"
                           "options.sentinel_password=s3cret;options.cluster=auto");
    ASSERT_OK(rk__options_parse(&o, cfg));
    rk_config_free(cfg);
    ASSERT_STR_EQ(o.sentinel_master, "mymaster");
    ASSERT_STR_EQ(o.sentinel_username, "sentry");
    ASSERT_STR_EQ(o.sentinel_password, "s3cret");
    ASSERT_EQ(o.cluster, RK__CLUSTER_AUTO); /* auto: Sentinel mode looks for no cluster */
    ASSERT_OK(rk__options_copy(&copy, &o));
    rk__options_clear(&o);
    ASSERT_STR_EQ(copy.sentinel_master, "mymaster");
    ASSERT_STR_EQ(copy.sentinel_password, "s3cret");
    rk__options_clear(&copy);
    ASSERT_TRUE(copy.sentinel_master == NULL && copy.sentinel_password == NULL);
    cfg = parse("options.sentinel_master=m;options.cluster=false");
    ASSERT_OK(rk__options_parse(&o, cfg));
    rk_config_free(cfg);
    ASSERT_STR_EQ(o.sentinel_master, "m");
    ASSERT_TRUE(o.sentinel_username == NULL && o.sentinel_password == NULL); /* no AUTH */
    rk__options_clear(&o);
}

static void sentinel_option_errors(void)
{
    bad_option("options.sentinel_master=", "options.sentinel_master is empty");
    bad_option("options.sentinel_master=m;options.cluster=true",
               "options.sentinel_master and options.cluster=true cannot be used together");
    bad_option("options.sentinel_master=m;options.cluster=on", "options.cluster=true");
    /* what looks like a URI or a password typed into the wrong key is not shown */
    bad_option("options.sentinel_master=redis://u:hunter2@s1:26379",
               "options.sentinel_master is not a master name");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "hunter2");
    bad_option("options.sentinel_master=my master", "options.sentinel_master is not a master name");
    bad_option("options.sentinel_master=m;options.sentinel_username=", "options.sentinel_username "
                                                                       "is empty");
    bad_option("options.sentinel_master=m;options.sentinel_password=",
               "options.sentinel_password is empty");
    /* credentials for sentinels without Sentinel mode would silently go unused */
    bad_option("options.sentinel_password=hunter2", "options.sentinel_password is set but "
                                                    "options.sentinel_master is not");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "hunter2");
    bad_option("options.sentinel_username=u", "options.sentinel_username is set");
}

static void lock_replicas_options(void)
{
    rk__options o = options("options.lock_replicas=16;options.lock_replicas_timeout=60000");
    ASSERT_EQ(o.lock_replicas, 16);
    ASSERT_EQ(o.lock_replicas_timeout_ms, 60000);
    o = options("options.lock_replicas=1;options.lock_replicas_timeout=1");
    ASSERT_EQ(o.lock_replicas, 1);
    ASSERT_EQ(o.lock_replicas_timeout_ms, 1);
    bad_option("options.lock_replicas=17", "options.lock_replicas: 17 is outside [0, 16]");
    bad_option("options.lock_replicas=-1", "options.lock_replicas");
    bad_option("options.lock_replicas_timeout=0", "options.lock_replicas_timeout: 0 is outside "
                                                  "[1, 60000]");
    bad_option("options.lock_replicas_timeout=60001", "options.lock_replicas_timeout");
}

/* options.lock_mode=quorum: its node timeout, the cluster forced off, and what it refuses. */
static void quorum_options(void)
{
    rk__options o = options("options.retries=3");
    ASSERT_EQ(o.lock_mode, RK__LOCK_SINGLE);
    ASSERT_EQ(o.quorum_node_timeout_ms, 50);
    o = options("options.lock_mode=quorum;options.quorum_node_timeout=200");
    ASSERT_EQ(o.lock_mode, RK__LOCK_QUORUM);
    ASSERT_EQ(o.quorum_node_timeout_ms, 200);
    ASSERT_EQ(o.cluster, RK__CLUSTER_OFF); /* independent masters */
    bad_option("options.lock_mode=redlock", "options.lock_mode");
    bad_option("options.quorum_node_timeout=0", "options.quorum_node_timeout");
    bad_option("options.lock_mode=quorum;options.lock_fencing=true", "options.lock_fencing");
    bad_option("options.lock_mode=quorum;options.lock_replicas=1", "options.lock_replicas");
    bad_option("options.lock_mode=quorum;options.lock_yield_to_pollers=100",
               "options.lock_yield_to_pollers");
    bad_option("options.lock_mode=quorum;options.cluster=true", "options.cluster=true");
    bad_option("options.lock_mode=quorum;options.sentinel_master=m", "options.sentinel_master");
}

static void near_cache_options(void)
{
    rk__options o = options("options.near_cache_size=100;options.near_cache_bytes=1024");
    ASSERT_EQ(o.near_cache_size, 100);
    ASSERT_EQ(o.near_cache_bytes, 1024);
    bad_option("options.near_cache_size=-1", "options.near_cache_size");
    bad_option("options.near_cache_size=100000001", "options.near_cache_size");
    bad_option("options.near_cache_bytes=1023", "options.near_cache_bytes: 1023 is outside");
}

static void unknown_options_are_ignored(void)
{
    rk__options o;
    rk_config *cfg = parse("options.max_size=1000;options.bogus=x;other.thing=1");
    ASSERT_OK(rk__options_parse(&o, cfg));
    rk__options_clear(&o);
    rk_config_free(cfg);
    rk_cache *c;
    ASSERT_OK(rk_cache_new(&c));
    cfg = parse("connection.host=h;options.bogus=1");
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_config_free(cfg);
    rk_cache_free(c);
}

static void sections(void)
{
    rk_config *cfg = parse("connections.b.host=hb;connections.a.host=ha;connections.b.port=2;"
                           "connection.host=ignored;x=1"),
              *sec;
    char *names;
    size_t n;
    ASSERT_OK(rk__config_subsections(&names, &n, cfg, "connections"));
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(names, "b");
    ASSERT_STR_EQ(names + 2, "a");
    rk__free(names);
    ASSERT_OK(rk__config_section(&sec, cfg, "connections.b"));
    ASSERT_EQ(rk_config_count(sec), 2);
    ASSERT_STR_EQ(rk_config_get(sec, "port"), "2");
    rk_config_free(sec);
    rk_config_free(cfg);
}

static rk__endpoint resolved(const char *s, const rk_references *refs)
{
    rk__options o;
    rk__endpoint ep;
    rk_config *cfg = parse(s);
    ASSERT_OK(rk__options_parse(&o, cfg));
    ASSERT_OK(rk__resolve_endpoint(&ep, cfg, refs, &o, NULL));
    rk__options_clear(&o);
    rk_config_free(cfg);
    return ep;
}

static int resolve_fails(const char *s, const rk_references *refs)
{
    rk__options o;
    rk__endpoint ep;
    rk_config *cfg = parse(s);
    ASSERT_OK(rk__options_parse(&o, cfg));
    int rc = rk__resolve_endpoint(&ep, cfg, refs, &o, NULL);
    ASSERT_TRUE(rc != RK_OK);
    ASSERT_TRUE(ep.host == NULL && ep.password == NULL);
    rk__options_clear(&o);
    rk_config_free(cfg);
    return rc;
}

static void resolve_host_port(void)
{
    rk__endpoint ep = resolved("connection.host=cache;connection.port=7000;options.db_num=3;"
                               "credential.username=app;credential.password=pw",
                               NULL);
    ASSERT_STR_EQ(ep.host, "cache");
    ASSERT_EQ(ep.port, 7000);
    ASSERT_EQ(ep.db, 3);
    ASSERT_STR_EQ(ep.username, "app");
    ASSERT_STR_EQ(ep.password, "pw");
    rk__endpoint_clear(&ep);
    ep = resolved("connection.ip=10.0.0.1", NULL); /* pip-services falls back to "ip" */
    ASSERT_STR_EQ(ep.host, "10.0.0.1");
    ASSERT_EQ(ep.port, 6379);
    rk__endpoint_clear(&ep);
}

static void resolve_uri_and_credential_precedence(void)
{
    rk__endpoint ep = resolved("connection.uri=redis://u1:p1@h:1/5;connection.host=other;"
                               "credential.password=p2",
                               NULL);
    ASSERT_STR_EQ(ep.host, "h");
    ASSERT_EQ(ep.db, 5);
    ASSERT_STR_EQ(ep.username, "u1");
    ASSERT_STR_EQ(ep.password, "p2"); /* credential.* wins over the URI */
    rk__endpoint_clear(&ep);
}

/* As pip-services' resolveAll: every connection is a seed, discovered ones included, in
 * configuration order; connection.* is ignored when connections.* is there. */
static void resolve_connections_first_seed(void)
{
    rk__endpoint ep = resolved("connections.b.host=hb;connections.b.port=2;"
                               "connections.a.host=ha;connection.host=ignored",
                               NULL);
    ASSERT_STR_EQ(ep.host, "hb");
    ASSERT_EQ(ep.port, 2);
    rk__endpoint_clear(&ep);
}

static rk__endpoint *seeds(const char *s, const rk_references *refs, size_t *n)
{
    rk__options o;
    rk__endpoint *eps;
    rk_config *cfg = parse(s);
    ASSERT_OK(rk__options_parse(&o, cfg));
    ASSERT_OK(rk__resolve_seeds(&eps, n, cfg, refs, &o, NULL));
    ASSERT_TRUE(*n >= 1);
    rk__options_clear(&o);
    rk_config_free(cfg);
    return eps;
}

static int seeds_fail(const char *s, const rk_references *refs)
{
    rk__options o;
    rk__endpoint *eps = (rk__endpoint *)&eps;
    size_t n = 7;
    rk_config *cfg = parse(s);
    ASSERT_OK(rk__options_parse(&o, cfg));
    int rc = rk__resolve_seeds(&eps, &n, cfg, refs, &o, NULL);
    ASSERT_TRUE(rc != RK_OK && eps == NULL && n == 0);
    rk__options_clear(&o);
    rk_config_free(cfg);
    return rc;
}

/* The seeds by name, in order: "h1:7001 h2:6379". */
static void assert_seeds(const rk__endpoint *eps, size_t n, const char *names)
{
    char all[512] = "", buf[80];
    for (size_t i = 0; i < n; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? " " : "",
                 rk__endpoint_name(&eps[i], buf, sizeof buf));
    ASSERT_STR_EQ(all, names);
}

/* Each host of the URI is a seed with the URI's user info and database; credential.* and the
 * connect timeout apply to all. */
static void seeds_from_a_uri(void)
{
    size_t n;
    rk__endpoint *eps = seeds("connection.uri=redis://app:pw@h1:7001,h2,[::1]:7003/2;"
                              "credential.password=stored;options.connect_timeout=900",
                              NULL, &n);
    assert_seeds(eps, n, "h1:7001 h2:6379 [::1]:7003");
    for (size_t i = 0; i < n; i++) {
        ASSERT_STR_EQ(eps[i].username, "app");
        ASSERT_STR_EQ(eps[i].password, "stored"); /* credential.* wins over the URI */
        ASSERT_EQ(eps[i].db, 2);
        ASSERT_EQ(eps[i].connect_timeout_ms, 900);
        ASSERT_FALSE(eps[i].tls);
    }
    rk__seeds_free(eps, n);
    eps = seeds("connection.uri=redis://:pw@h1,h2;options.db_num=4", NULL, &n);
    ASSERT_EQ(n, 2);
    ASSERT_TRUE(eps[1].username == NULL);
    ASSERT_STR_EQ(eps[1].password, "pw");
    ASSERT_EQ(eps[1].db, 4); /* options.db_num when the URI names none */
    rk__seeds_free(eps, n);
}

static void seeds_from_connections(void)
{
    size_t n;
    rk__endpoint *eps = seeds("connections.a.uri=redis://a1:1,a2:2;connections.b.host=b;"
                              "connections.c.ip=10.0.0.3;connections.c.port=3;"
                              "connection.host=ignored;credential.username=u;"
                              "credential.password=p",
                              NULL, &n);
    assert_seeds(eps, n, "a1:1 a2:2 b:6379 10.0.0.3:3");
    for (size_t i = 0; i < n; i++) {
        ASSERT_STR_EQ(eps[i].username, "u");
        ASSERT_STR_EQ(eps[i].password, "p");
    }
    rk__seeds_free(eps, n);
    eps = seeds("connection.host=h;connection.port=5", NULL, &n);
    assert_seeds(eps, n, "h:5");
    rk__seeds_free(eps, n);
}

/* Discovered connections are seeds in their place; a key the discovery does not know is
 * skipped, and only when nothing is left is it an error. */
static void seeds_through_discovery(void)
{
    rk_references *refs;
    rk_config *disc = parse("one.uri=redis://d1:1,d2:2;two.host=d3");
    ASSERT_OK(rk_references_new(&refs));
    ASSERT_OK(rk_references_set_memory_discovery(refs, disc));
    rk_config_free(disc);
    size_t n;
    rk__endpoint *eps = seeds("connections.x.discovery_key=one;connections.y.host=s;"
                              "connections.z.discovery_key=nope;"
                              "connections.w.discovery_key=two;connections.w.port=9",
                              refs, &n);
    assert_seeds(eps, n, "d1:1 d2:2 s:6379 d3:9"); /* discovered values over configured ones */
    rk__seeds_free(eps, n);
    ASSERT_EQ(seeds_fail("connections.x.discovery_key=nope;connections.y.discovery_key=nix", refs),
              RK_ENOCONN);
    ASSERT_CONTAINS(rk_last_error()->message, "discovery_key 'nope' was not found");
    /* a discovery_key with no discovery at all is a missing reference, as before */
    ASSERT_EQ(seeds_fail("connections.x.discovery_key=one;connections.y.host=s", NULL), RK_EREF);
    rk_references_free(refs);
}

static void seeds_share_the_tls_options(void)
{
    size_t n;
    rk__endpoint *eps = seeds("connections.a.uri=rediss://h1,h2;connections.b.host=h3;"
                              "options.tls=true;options.tls_server_name=redis.internal;"
                              "options.tls_verify=false",
                              NULL, &n);
    ASSERT_EQ(n, 3);
    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(eps[i].tls && eps[i].tls_opts.insecure);
        ASSERT_STR_EQ(eps[i].tls_opts.server_name, "redis.internal");
    }
    rk__seeds_free(eps, n);
    /* a plaintext seed among TLS ones would send the password in the clear */
    ASSERT_EQ(seeds_fail("connections.a.uri=rediss://:pw@h1;connections.b.host=h2", NULL),
              RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, "mix TLS and plaintext: h1:6379 is TLS but "
                                              "h2:6379 is not");
    ASSERT_EQ(seeds_fail("connections.a.uri=redis://h1,h2;connections.u.uri=unix:///tmp/r.sock;"
                         "options.tls=1",
                         NULL),
              RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "Unix socket");
}

/* Errors name the key of the connection at fault, never a password. */
static void seed_errors(void)
{
    ASSERT_EQ(seeds_fail("connections.a.host=h;connections.b.port=0", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connections.b.port");
    ASSERT_EQ(seeds_fail("connections.a.host=h;connections.b.protocol=http", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connections.b.protocol: 'http'");
    ASSERT_EQ(seeds_fail("connections.b.host=u:secret@h", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connections.b.host is not a host name");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "secret");
    ASSERT_EQ(seeds_fail("connections.a.uri=redis://u:secret@h1,,h3", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connections.a.uri (host 2 of 3): the host is "
                                              "empty");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "secret");
    ASSERT_EQ(seeds_fail("connection.uri=redis://u:secret@h1,h2:99999", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connection.uri (host 2 of 2): port '99999'");
    ASSERT_NOT_CONTAINS(rk_last_error()->message, "secret");
}

/* options.db_num is checked at configure; a URI's database (which discovery may supply) when
 * the seeds are resolved. */
static void seeds_cluster_database(void)
{
    ASSERT_EQ(seeds_fail("connection.uri=redis://h1,h2/3;options.cluster=true", NULL), RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message,
                    "options.cluster=true cannot be used with database 3 of connection.uri");
    ASSERT_EQ(seeds_fail("connections.a.uri=unix:///s?db=1;options.cluster=on", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "database 1 of connections.a.uri");
    size_t n;
    rk__endpoint *eps = seeds("connection.uri=redis://h1,h2/3", NULL, &n); /* auto */
    ASSERT_EQ(eps[1].db, 3);
    rk__seeds_free(eps, n);
    eps = seeds("connection.uri=redis://h1/0;options.cluster=true", NULL, &n);
    ASSERT_EQ(eps[0].db, 0);
    rk__seeds_free(eps, n);
}

/* In Sentinel mode the seeds are the sentinels, with the credential as configured (the
 * master's: the sentinel topology puts the sentinels' own in its copies). */
static void seeds_are_sentinels(void)
{
    size_t n;
    rk__endpoint *eps = seeds("connection.uri=redis://:pw@s1:26379,s2:26380/2;"
                              "options.sentinel_master=m;options.sentinel_password=spw",
                              NULL, &n);
    assert_seeds(eps, n, "s1:26379 s2:26380");
    ASSERT_STR_EQ(eps[1].password, "pw");
    ASSERT_EQ(eps[1].db, 2);
    rk__seeds_free(eps, n);
}

static void resolve_errors(void)
{
    ASSERT_EQ(resolve_fails("options.timeout=5", NULL), RK_ENOCONN);
    ASSERT_ERROR(RK_ENOCONN, "NO_CONNECTION", "Misconfiguration");
    ASSERT_EQ(resolve_fails("connection.port=0", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connection.port");
    ASSERT_EQ(resolve_fails("connection.port=65536", NULL), RK_EINVAL);
    ASSERT_EQ(resolve_fails("connection.port=http", NULL), RK_EINVAL);
    ASSERT_EQ(resolve_fails("connection.uri=memcached://h", NULL), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "connection.uri");
    ASSERT_EQ(resolve_fails("connection.protocol=http;connection.host=h", NULL), RK_EINVAL);
    ASSERT_EQ(resolve_fails("connection.discovery_key=k", NULL), RK_EREF);
    ASSERT_ERROR(RK_EREF, "REF_ERROR", "Internal");
    ASSERT_CONTAINS(rk_last_error()->message, "discovery");
    ASSERT_EQ(resolve_fails("connection.host=h;credential.store_key=s", NULL), RK_EREF);
    ASSERT_CONTAINS(rk_last_error()->message, "credential store");
}

static void resolve_memory_references(void)
{
    rk_references *refs;
    rk_config *disc = parse("main.host=discovered;main.port=6390"),
              *store = parse("app.user=jdoe;app.pass=pass123");
    ASSERT_OK(rk_references_new(&refs));
    ASSERT_OK(rk_references_set_memory_discovery(refs, disc));
    ASSERT_OK(rk_references_set_memory_credential_store(refs, store));
    rk_config_free(disc); /* the references keep copies */
    rk_config_free(store);
    rk__endpoint ep = resolved("connection.discovery_key=main;connection.port=1;"
                               "credential.store_key=app",
                               refs);
    ASSERT_STR_EQ(ep.host, "discovered");
    ASSERT_EQ(ep.port, 6390); /* discovered values win over configured ones */
    ASSERT_STR_EQ(ep.username, "jdoe");
    ASSERT_STR_EQ(ep.password, "pass123");
    rk__endpoint_clear(&ep);
    ASSERT_EQ(resolve_fails("connection.discovery_key=nope", refs), RK_ENOCONN);
    ASSERT_CONTAINS(rk_last_error()->message, "'nope' was not found");
    ASSERT_EQ(resolve_fails("connection.host=h;credential.store_key=nope", refs), RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "MISSING_CREDENTIALS", "Misconfiguration");
    rk_references_free(refs);
}

static int failing_discovery(void *ud, const rk_context *ctx, const char *key, rk_config **out)
{
    (void)ud, (void)ctx, (void)key, (void)out;
    return 7; /* a positive code is normalised to RK_ERROR */
}

static void resolve_callback_failure(void)
{
    rk_references *refs;
    ASSERT_OK(rk_references_new(&refs));
    ASSERT_OK(rk_references_set_discovery(refs, failing_discovery, NULL));
    ASSERT_EQ(resolve_fails("connection.discovery_key=x", refs), RK_ERROR);
    ASSERT_CONTAINS(rk_last_error()->message, "discovery lookup of 'x' failed");
    rk_references_free(refs);
}

RKT_MAIN(RKT_CASE(from_string), RKT_CASE(from_string_errors), RKT_CASE(duplicates_and_case),
         RKT_CASE(from_tuples), RKT_CASE(option_defaults), RKT_CASE(option_errors),
         RKT_CASE(cluster_options), RKT_CASE(cluster_option_errors), RKT_CASE(cluster_and_database),
         RKT_CASE(near_cache_options), RKT_CASE(sentinel_options), RKT_CASE(sentinel_option_errors),
         RKT_CASE(lock_replicas_options), RKT_CASE(quorum_options), RKT_CASE(seeds_are_sentinels),
         RKT_CASE(unknown_options_are_ignored), RKT_CASE(sections), RKT_CASE(resolve_host_port),
         RKT_CASE(resolve_uri_and_credential_precedence), RKT_CASE(resolve_connections_first_seed),
         RKT_CASE(seeds_from_a_uri), RKT_CASE(seeds_from_connections),
         RKT_CASE(seeds_through_discovery), RKT_CASE(seeds_share_the_tls_options),
         RKT_CASE(seed_errors), RKT_CASE(seeds_cluster_database), RKT_CASE(resolve_errors),
         RKT_CASE(resolve_memory_references), RKT_CASE(resolve_callback_failure))
