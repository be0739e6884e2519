#include "resolve.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config_int.h"
#include "error_int.h"
#include "log.h"
#include "references_int.h"

#define DAY_MS 86400000u

static int dup_value(char **dst, const char *v)
{
    *dst = NULL;
    if (v && !(*dst = rk__strdup(v)))
        return rk__err(RK_ENOMEM, "cannot copy an option value");
    return RK_OK;
}

/* ---- TLS: options.tls and options.tls_* ---- */

static const char *const tls_paths[] = {"options.tls_ca_file", "options.tls_ca_dir",
                                        "options.tls_cert_file", "options.tls_key_file",
                                        "options.tls_server_name"};

static bool is_tls_path(const char *key)
{
    for (size_t i = 0; i < sizeof tls_paths / sizeof tls_paths[0]; i++)
        if (!strcasecmp(key, tls_paths[i]))
            return true;
    return false;
}

/* A misspelt TLS option would silently weaken or break verification, so the options.tls_*
 * family is closed: unknown names and bad values are refused at configure time. */
static int tls_options_check(const rk_config *cfg)
{
    const char *k, *v;
    bool b;
    int rc;
    if ((rc = rk__config_bool(cfg, "options.tls", false, &b)) ||
        (rc = rk__config_bool(cfg, "options.tls_verify", true, &b)))
        return rc;
    for (size_t i = 0; rk_config_entry(cfg, i, &k, &v); i++) {
        if (strncasecmp(k, "options.tls_", 12) || !strcasecmp(k, "options.tls_verify"))
            continue;
        if (!is_tls_path(k))
            return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                                 "unknown TLS option %s (expected options.tls, tls_verify, "
                                 "tls_ca_file, tls_ca_dir, tls_cert_file, tls_key_file or "
                                 "tls_server_name)",
                                 k);
        if (!*v)
            return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                                 "option %s is empty", k);
    }
    return RK_OK;
}

/* The first options.tls_* (other than options.tls) set, by its canonical name, or NULL. */
static const char *first_tls_option(const rk_config *cfg)
{
    for (size_t i = 0; i < sizeof tls_paths / sizeof tls_paths[0]; i++)
        if (rk_config_get(cfg, tls_paths[i]))
            return tls_paths[i];
    return rk_config_get(cfg, "options.tls_verify") ? "options.tls_verify" : NULL;
}

/* Copy the TLS options into the endpoint; the client builds the TLS context from them. */
static int apply_tls(rk__endpoint *ep, const rk_config *cfg)
{
    rk__tls_options *t = &ep->tls_opts;
    bool on, verify;
    /* Values were checked by rk__options_parse; options.tls=false never turns rediss:// off. */
    int rc = rk__config_bool(cfg, "options.tls", false, &on);
    if (rc == RK_OK)
        rc = rk__config_bool(cfg, "options.tls_verify", true, &verify);
    if (rc != RK_OK)
        return rc;
    ep->tls = ep->tls || on;
    if (!ep->tls) {
        t->unused = first_tls_option(cfg);
        return RK_OK;
    }
    if (ep->path) {
        char peer[80];
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "TLS (rediss://, connection.protocol=rediss or options.tls) cannot "
                             "be used with the Unix socket %s",
                             rk__endpoint_name(ep, peer, sizeof peer));
    }
    char **dst[] = {/* as tls_paths */ &t->ca_file, &t->ca_dir, &t->cert_file, &t->key_file,
                    &t->server_name};
    for (size_t i = 0; rc == RK_OK && i < sizeof dst / sizeof dst[0]; i++)
        rc = dup_value(dst[i], rk_config_get(cfg, tls_paths[i]));
    t->insecure = !verify;
    return rc;
}

static const rk__config_word cluster_words[] = {
    {"auto", RK__CLUSTER_AUTO}, {"true", RK__CLUSTER_ON},
    {"yes", RK__CLUSTER_ON},    {"on", RK__CLUSTER_ON},
    {"1", RK__CLUSTER_ON},      {"false", RK__CLUSTER_OFF},
    {"no", RK__CLUSTER_OFF},    {"off", RK__CLUSTER_OFF},
    {"0", RK__CLUSTER_OFF},     {NULL, 0}};
static const rk__config_word read_from_words[] = {{"master", 0}, {"replica", 1}, {NULL, 0}};

/* options.cluster, options.max_redirects, options.topology_refresh and options.read_from. */
static int cluster_options_parse(rk__options *o, const rk_config *cfg)
{
    int mode = RK__CLUSTER_AUTO, replicas = 0;
    int rc = rk__config_enum(cfg, "options.cluster", cluster_words, RK__CLUSTER_AUTO,
                             "auto, true or false (or yes/no, on/off, 1/0)", &mode);
    if (rc == RK_OK)
        rc = rk__config_enum(cfg, "options.read_from", read_from_words, 0, "master or replica",
                             &replicas);
    if (rc == RK_OK)
        rc = rk__config_u64(cfg, "options.max_redirects", 5, 0, 100, &o->max_redirects);
    if (rc == RK_OK)
        rc = rk__config_u64(cfg, "options.topology_refresh", 60000, 1, DAY_MS,
                            &o->topology_refresh_ms);
    o->cluster = (rk__cluster_mode)mode;
    o->read_replicas = replicas;
    /* With auto, a database is fine until a cluster answers: the cluster client refuses it then. */
    if (rc == RK_OK && o->cluster == RK__CLUSTER_ON && o->db != 0)
        rc = rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                           "options.cluster=true cannot be used with options.db_num=%llu: a "
                           "Redis Cluster has database 0 only",
                           (unsigned long long)o->db);
    return rc;
}

/* A string option: absent is NULL, empty is refused (it would silently mean "not set"). The
 * value is never quoted here: a password may sit in any of them. */
static int string_option(char **dst, const rk_config *cfg, const char *key, const char *what)
{
    const char *v = rk_config_get(cfg, key);
    if (v && !*v)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "%s is empty (set %s, or leave the option out)", key, what);
    return dup_value(dst, v);
}

/* A master name goes into SENTINEL commands and into messages: one that looks like a URI or
 * user:password pasted into the wrong key is refused without being shown. */
static int check_master_name(const char *name)
{
    for (const char *p = name; *p; p++)
        if (*p == '@' || *p == '/' || (unsigned char)*p <= ' ' || *p == 0x7f)
            return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                                 "options.sentinel_master is not a master name: it has '@', '/', "
                                 "a blank or a control character (not shown; the sentinels' "
                                 "addresses go in connection.* or connections.*)");
    return RK_OK;
}

/* options.sentinel_*: the seeds are sentinels, which name the master. Sentinel serves one
 * master, so it excludes a Redis Cluster; with options.cluster=auto no cluster is looked for. */
static int sentinel_options_parse(rk__options *o, const rk_config *cfg)
{
    int rc = string_option(&o->sentinel_master, cfg, "options.sentinel_master",
                           "the name of the master the sentinels monitor");
    if (rc == RK_OK)
        rc = string_option(&o->sentinel_username, cfg, "options.sentinel_username",
                           "the user the sentinels know");
    if (rc == RK_OK)
        rc = string_option(&o->sentinel_password, cfg, "options.sentinel_password",
                           "the sentinels' password");
    if (rc == RK_OK && o->sentinel_master)
        rc = check_master_name(o->sentinel_master);
    if (rc == RK_OK && o->sentinel_master && o->cluster == RK__CLUSTER_ON)
        rc = rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                           "options.sentinel_master and options.cluster=true cannot be used "
                           "together: Sentinel serves one master, not a Redis Cluster");
    if (rc == RK_OK && !o->sentinel_master && (o->sentinel_username || o->sentinel_password))
        rc = rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                           "%s is set but options.sentinel_master is not: without Sentinel "
                           "there is no sentinel to authenticate with",
                           o->sentinel_username ? "options.sentinel_username"
                                                : "options.sentinel_password");
    return rc;
}

/* options.lock_replicas and options.lock_replicas_timeout (the lock's WAIT after acquire). */
static int replica_options_parse(rk__options *o, const rk_config *cfg)
{
    int rc = rk__config_u64(cfg, "options.lock_replicas", 0, 0, 16, &o->lock_replicas);
    if (rc == RK_OK)
        rc = rk__config_u64(cfg, "options.lock_replicas_timeout", 100, 1, 60000,
                            &o->lock_replicas_timeout_ms);
    return rc;
}

static const rk__config_word lock_mode_words[] = {
    {"single", RK__LOCK_SINGLE}, {"quorum", RK__LOCK_QUORUM}, {NULL, 0}};

/* options.lock_mode and options.quorum_node_timeout. In quorum mode every endpoint is an
 * independent master: no Cluster, no Sentinel, and neither fencing (a counter is not monotonic
 * across different majorities), replica acknowledgements nor yielding to pollers (the queue they
 * belong to is per server) apply. */
static int quorum_options_parse(rk__options *o, const rk_config *cfg)
{
    int mode = RK__LOCK_SINGLE;
    int rc = rk__config_enum(cfg, "options.lock_mode", lock_mode_words, RK__LOCK_SINGLE,
                             "single or quorum", &mode);
    if (rc == RK_OK)
        rc = rk__config_u64(cfg, "options.quorum_node_timeout", 50, 1, DAY_MS,
                            &o->quorum_node_timeout_ms);
    o->lock_mode = (rk__lock_mode)mode;
    if (rc != RK_OK || o->lock_mode != RK__LOCK_QUORUM)
        return rc;
    const char *bad = o->lock_fencing                ? "options.lock_fencing"
                      : o->lock_replicas             ? "options.lock_replicas"
                      : o->lock_yield_ms             ? "options.lock_yield_to_pollers"
                      : o->sentinel_master           ? "options.sentinel_master"
                      : o->cluster == RK__CLUSTER_ON ? "options.cluster=true"
                                                     : NULL;
    if (bad)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "options.lock_mode=quorum cannot be used with %s: quorum locks run "
                             "over independent masters, without the FIFO queue, fencing tokens, "
                             "replicas or a Cluster (see the README, quorum mode)",
                             bad);
    o->cluster = RK__CLUSTER_OFF; /* the endpoints are independent masters */
    return RK_OK;
}

int rk__options_parse(rk__options *o, const rk_config *cfg)
{
    memset(o, 0, sizeof *o);
    int rc;
    if ((rc = tls_options_check(cfg)) ||
        (rc = rk__config_u64(cfg, "options.connect_timeout", 5000, 1, DAY_MS,
                             &o->connect_timeout_ms)) ||
        (rc = rk__config_u64(cfg, "options.timeout", 30000, 1, DAY_MS, &o->timeout_ms)) ||
        (rc = rk__config_u64(cfg, "options.retries", 3, 0, 1000, &o->retries)) ||
        (rc = rk__config_u64(cfg, "options.db_num", 0, 0, 1000000, &o->db)) ||
        (rc = rk__config_u64(cfg, "options.retry_timeout", 100, 1, DAY_MS, &o->retry_timeout_ms)) ||
        (rc = rk__config_u64(cfg, "options.max_connections", 8, 1, 1024, &o->max_connections)) ||
        (rc = rk__config_bool(cfg, "options.auto_pipeline", true, &o->auto_pipeline)) ||
        (rc = rk__config_u64(cfg, "options.default_ttl", 60000, 1, INT64_MAX / 2, /* as ttl_ms */
                             &o->default_ttl_ms)) ||
        (rc = rk__config_u64(cfg, "options.lock_timeout", 5000, 1, DAY_MS, &o->lock_timeout_ms)) ||
        (rc = rk__config_bool(cfg, "options.lock_fencing", false, &o->lock_fencing)) ||
        (rc = rk__config_u64(cfg, "options.lock_yield_to_pollers", 0, 0, DAY_MS,
                             &o->lock_yield_ms)) ||
        (rc = cluster_options_parse(o, cfg)) || (rc = sentinel_options_parse(o, cfg)) ||
        (rc = replica_options_parse(o, cfg)) || (rc = quorum_options_parse(o, cfg)) ||
        (rc = rk__config_u64(cfg, "options.near_cache_size", 0, 0, 100000000,
                             &o->near_cache_size)) ||
        (rc = rk__config_u64(cfg, "options.near_cache_bytes", 67108864, 1024, (uint64_t)1 << 40,
                             &o->near_cache_bytes)) ||
        (rc = dup_value(&o->prefix, rk_config_get(cfg, "options.prefix"))) ||
        (rc = dup_value(&o->resource_tag, rk_config_get(cfg, "options.resource_tag")))) {
        rk__options_clear(o);
        return rc;
    }
    o->prefix_len = o->prefix ? strlen(o->prefix) : 0;
    return RK_OK;
}

int rk__options_copy(rk__options *dst, const rk__options *src)
{
    *dst = *src;
    dst->prefix = dst->resource_tag = NULL;
    dst->sentinel_master = dst->sentinel_username = dst->sentinel_password = NULL;
    if (dup_value(&dst->prefix, src->prefix) || dup_value(&dst->resource_tag, src->resource_tag) ||
        dup_value(&dst->sentinel_master, src->sentinel_master) ||
        dup_value(&dst->sentinel_username, src->sentinel_username) ||
        dup_value(&dst->sentinel_password, src->sentinel_password)) {
        rk__options_clear(dst);
        return RK_ENOMEM;
    }
    return RK_OK;
}

void rk__options_clear(rk__options *o)
{
    rk__free(o->prefix);
    rk__free(o->resource_tag);
    rk__free(o->sentinel_master);
    rk__free(o->sentinel_username);
    rk__free_secret(o->sentinel_password);
    memset(o, 0, sizeof *o);
}

/* ---- sections: "connections.<name>.*" wins over "connection.*", as in pip-services ---- */

typedef struct {
    rk_config *cfg;
    char label[256]; /* "connections.<name>" or "connection": the key prefix, for messages too */
} section;

typedef struct {
    section *items;
    size_t count;
} section_list;

static void sections_free(section_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        rk_config_free(l->items[i].cfg);
    rk__free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int sections_get(section_list *l, const rk_config *cfg, const char *many, const char *one)
{
    char *names;
    size_t n;
    l->items = NULL;
    l->count = 0;
    int rc = rk__config_subsections(&names, &n, cfg, many);
    if (rc != RK_OK)
        return rc;
    size_t want = n ? n : 1;
    if (!(l->items = rk__calloc(want, sizeof *l->items))) {
        rk__free(names);
        return rk__err(RK_ENOMEM, "cannot list %s", many);
    }
    const char *name = names;
    for (size_t i = 0; rc == RK_OK && i < n; i++, name += strlen(name) + 1) {
        section *s = &l->items[l->count];
        snprintf(s->label, sizeof s->label, "%s.%s", many, name);
        if ((rc = rk__config_section(&s->cfg, cfg, s->label)) == RK_OK)
            l->count++;
    }
    rk__free(names);
    section *s = &l->items[0];
    if (rc == RK_OK && n == 0 && (rc = rk__config_section(&s->cfg, cfg, one)) == RK_OK) {
        snprintf(s->label, sizeof s->label, "%s", one);
        if (rk_config_count(s->cfg) > 0)
            l->count = 1;
        else
            rk_config_free(s->cfg);
    }
    if (rc != RK_OK)
        sections_free(l);
    return rc;
}

/* Configured values first, discovered (or stored) values on top of them. */
static int merge(rk_config **out, const rk_config *base, const rk_config *top)
{
    int rc = rk__config_copy(out, base);
    const char *k, *v;
    for (size_t i = 0; rc == RK_OK && rk_config_entry(top, i, &k, &v); i++)
        rc = rk_config_set(*out, k, v);
    if (rc != RK_OK) {
        rk_config_free(*out);
        *out = NULL;
    }
    return rc;
}

typedef int (*lookup_fn)(const rk_references *, const rk_context *, const char *, rk_config **);

/* A section as configured, or what `lookup` finds for its `via_key` (merged over the
 * configured values when `merge_found`). `*out` stays NULL when the lookup finds nothing. */
static int section_resolve(rk_config **out, const rk_config *sec, const char *via_key,
                           lookup_fn lookup, const rk_references *refs, const rk_context *ctx,
                           bool merge_found)
{
    const char *key = rk_config_get(sec, via_key);
    rk_config *found;
    *out = NULL;
    if (!key)
        return rk__config_copy(out, sec);
    int rc = lookup(refs, ctx, key, &found);
    if (rc != RK_OK || !found || !merge_found) {
        *out = found;
        return rc;
    }
    rc = merge(out, sec, found);
    rk_config_free(found);
    return rc;
}

static const char *either(const rk_config *c, const char *a, const char *b)
{
    const char *v = rk_config_get(c, a);
    return v ? v : rk_config_get(c, b);
}

/* ---- connections: every one is a seed ---- */

typedef struct {
    rk__endpoint *items;
    size_t count, cap;
} seed_list;

/* Room for `n` more seeds. */
static int seeds_reserve(seed_list *s, size_t n)
{
    if (s->count + n <= s->cap)
        return RK_OK;
    size_t cap = s->cap * 2 > s->count + n ? s->cap * 2 : s->count + n;
    rk__endpoint *items = rk__realloc(s->items, cap * sizeof *items);
    if (!items)
        return rk__err(RK_ENOMEM, "cannot list the connections");
    s->items = items;
    s->cap = cap;
    return RK_OK;
}

/* Append `eps` (taking them over, array included). */
static int seeds_take(seed_list *s, rk__endpoint *eps, size_t n)
{
    int rc = seeds_reserve(s, n);
    if (rc != RK_OK) {
        rk__seeds_free(eps, n);
        return rc;
    }
    memcpy(s->items + s->count, eps, n * sizeof *eps);
    s->count += n;
    rk__free(eps);
    return RK_OK;
}

/* A Redis Cluster has database 0 only. options.db_num was checked at configure; a URI (which
 * discovery may supply) can only be checked here. */
static int cluster_db_check(const rk__endpoint *ep, const rk__options *o, const char *what)
{
    if (o->cluster != RK__CLUSTER_ON || ep->db == 0)
        return RK_OK;
    return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                         "options.cluster=true cannot be used with database %u of %s: a Redis "
                         "Cluster has database 0 only",
                         ep->db, what);
}

static int apply_uri(seed_list *s, const char *uri, const char *label, const rk__options *o)
{
    char what[264];
    rk__endpoint tmpl = {.db = (unsigned)o->db, .connect_timeout_ms = o->connect_timeout_ms}, *eps;
    size_t n;
    snprintf(what, sizeof what, "%s.uri", label);
    int rc = rk__uri_parse_list(&eps, &n, &tmpl, uri, what);
    if (rc != RK_OK)
        return rc;
    if ((rc = cluster_db_check(&eps[0], o, what)) != RK_OK) { /* the hosts share the db */
        rk__seeds_free(eps, n);
        return rc;
    }
    return seeds_take(s, eps, n);
}

static int check_protocol(const char *protocol, const char *label)
{
    if (!protocol || !strcmp(protocol, "redis") || !strcmp(protocol, "rediss"))
        return RK_OK;
    if (rk__config_may_quote("protocol", protocol))
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "%s.protocol: '%s' is not redis or rediss", label, protocol);
    return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                         "%s.protocol is not redis or rediss (not shown: it looks like a URI; a "
                         "URI goes in %s.uri)",
                         label, label);
}

/* host (or ip), port and protocol: one endpoint. */
static int host_port(rk__endpoint *ep, const rk_config *conn, const char *label,
                     const rk__options *o)
{
    const char *protocol = rk_config_get(conn, "protocol"), *host = either(conn, "host", "ip");
    uint64_t port;
    int rc = rk__config_u64(conn, "port", 6379, 1, 65535, &port);
    if (rc != RK_OK)
        return rk__err_prefix("%s.port: ", label);
    if ((rc = check_protocol(protocol, label)) != RK_OK)
        return rc;
    /* "admin:hunter2@h" or "redis://..." as a host would reach DNS and every message naming the
     * host, password included. */
    if (host && strpbrk(host, "@/"))
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "%s.host is not a host name: it has '@' or '/' (not shown; a URI "
                             "goes in %s.uri)",
                             label, label);
    *ep = (rk__endpoint){.port = (uint16_t)port,
                         .tls = protocol && !strcmp(protocol, "rediss"),
                         .db = (unsigned)o->db,
                         .connect_timeout_ms = o->connect_timeout_ms};
    ep->host = rk__strdup(host && *host ? host : "localhost");
    return ep->host ? RK_OK : rk__err(RK_ENOMEM, "cannot copy the host name");
}

static int apply_connection(seed_list *s, const rk_config *conn, const char *label,
                            const rk__options *o)
{
    const char *uri = rk_config_get(conn, "uri");
    if (uri)
        return apply_uri(s, uri, label, o);
    int rc = seeds_reserve(s, 1);
    if (rc == RK_OK && (rc = host_port(&s->items[s->count], conn, label, o)) == RK_OK)
        s->count++;
    return rc;
}

/* A discovery_key the discovery does not know: another connection may do, so this one is only
 * noted. Returns the first such key, for the error when none is left. */
static const char *skipped(const section_list *l, size_t i, const char *first)
{
    const char *key = rk_config_get(l->items[i].cfg, "discovery_key");
    if (l->count > 1) /* alone, the error says it */
        rk__log(RK_LOG_WARN, "%s.discovery_key '%s' was not found: that connection is skipped",
                l->items[i].label, key);
    return first ? first : key;
}

static int resolve_connections(seed_list *s, const rk_config *cfg, const rk_references *refs,
                               const rk__options *o, const rk_context *ctx)
{
    section_list l;
    const char *missing = NULL;
    int rc = sections_get(&l, cfg, "connections", "connection");
    if (rc == RK_OK && l.count == 0)
        rc = rk__err(RK_ENOCONN, "Connection is not configured (set connection.host, "
                                 "connection.uri or connection.discovery_key)");
    for (size_t i = 0; rc == RK_OK && i < l.count; i++) {
        rk_config *conn;
        rc = section_resolve(&conn, l.items[i].cfg, "discovery_key", rk__references_discover, refs,
                             ctx, true);
        if (rc == RK_OK && conn)
            rc = apply_connection(s, conn, l.items[i].label, o);
        else if (rc == RK_OK) /* as pip-services' resolveAll: skipped */
            missing = skipped(&l, i, missing);
        rk_config_free(conn);
    }
    if (rc == RK_OK && s->count == 0)
        rc = rk__err(RK_ENOCONN, "Connection is not configured: discovery_key '%s' was not found",
                     missing);
    sections_free(&l);
    return rc;
}

/* ---- the credential: one, applied to every seed ---- */

static int apply_credential(rk__endpoint *ep, const rk_config *cred)
{
    const char *user = either(cred, "username", "user"), *pass = either(cred, "password", "pass");
    if (user) {
        rk__free(ep->username);
        if (!(ep->username = rk__strdup(user)))
            return rk__err(RK_ENOMEM, "cannot copy the user name");
    }
    if (pass) {
        rk__free_secret(ep->password);
        if (!(ep->password = rk__strdup(pass)))
            return rk__err(RK_ENOMEM, "cannot copy the password");
    }
    return RK_OK;
}

/* The first section without store_key, else the first one the credential store knows. */
static int pick_credential(rk_config **out, const section_list *l, const rk_references *refs,
                           const rk_context *ctx)
{
    *out = NULL;
    for (size_t i = 0; i < l->count; i++)
        if (!rk_config_get(l->items[i].cfg, "store_key"))
            return rk__config_copy(out, l->items[i].cfg);
    int rc = RK_OK;
    for (size_t i = 0; rc == RK_OK && !*out && i < l->count; i++)
        rc = section_resolve(out, l->items[i].cfg, "store_key", rk__references_credential, refs,
                             ctx, false);
    return rc;
}

static int resolve_credential(seed_list *s, const rk_config *cfg, const rk_references *refs,
                              const rk_context *ctx)
{
    section_list l;
    rk_config *cred = NULL;
    int rc = sections_get(&l, cfg, "credentials", "credential");
    if (rc == RK_OK && l.count)
        rc = pick_credential(&cred, &l, refs, ctx);
    if (rc == RK_OK && l.count && !cred)
        rc = rk__err_named(RK_EINVAL, "MISSING_CREDENTIALS", "Misconfiguration", NULL,
                           "credential.store_key was not found in the credential store (its "
                           "value is not shown, as no credential.* value is)");
    for (size_t i = 0; rc == RK_OK && cred && i < s->count; i++)
        rc = apply_credential(&s->items[i], cred);
    rk_config_free(cred);
    sections_free(&l);
    return rc;
}

/* ---- TLS: the same options for every seed ---- */

/* A plaintext seed among TLS ones would send the password in the clear, and one TLS context
 * serves them all: a mix is refused rather than guessed at. */
static int same_tls(const seed_list *s)
{
    char a[80], b[80];
    for (size_t i = 1; i < s->count; i++)
        if (s->items[i].tls != s->items[0].tls)
            return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                                 "the connections mix TLS and plaintext: %s is %s but %s is not "
                                 "(use rediss:// or connection.protocol=rediss for all, or "
                                 "options.tls=true)",
                                 rk__endpoint_name(&s->items[0], a, sizeof a),
                                 s->items[0].tls ? "TLS" : "plaintext",
                                 rk__endpoint_name(&s->items[i], b, sizeof b));
    return RK_OK;
}

static int apply_tls_all(seed_list *s, const rk_config *cfg)
{
    int rc = RK_OK;
    for (size_t i = 0; rc == RK_OK && i < s->count; i++)
        rc = apply_tls(&s->items[i], cfg);
    return rc == RK_OK ? same_tls(s) : rc;
}

int rk__resolve_seeds(rk__endpoint **eps, size_t *n, const rk_config *cfg,
                      const rk_references *refs, const rk__options *o, const rk_context *ctx)
{
    seed_list s = {NULL, 0, 0};
    int rc = resolve_connections(&s, cfg, refs, o, ctx);
    if (rc == RK_OK)
        rc = resolve_credential(&s, cfg, refs, ctx);
    if (rc == RK_OK)
        rc = apply_tls_all(&s, cfg);
    if (rc != RK_OK) {
        rk__seeds_free(s.items, s.count);
        s = (seed_list){NULL, 0, 0};
    }
    *eps = s.items;
    *n = s.count;
    return rc;
}

int rk__resolve_endpoint(rk__endpoint *ep, const rk_config *cfg, const rk_references *refs,
                         const rk__options *o, const rk_context *ctx)
{
    rk__endpoint *eps;
    size_t n;
    memset(ep, 0, sizeof *ep);
    int rc = rk__resolve_seeds(&eps, &n, cfg, refs, o, ctx);
    if (rc != RK_OK)
        return rc;
    *ep = eps[0];
    memset(&eps[0], 0, sizeof eps[0]); /* moved out */
    rk__seeds_free(eps, n);
    return RK_OK;
}
