#include "endpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "error_int.h"
#include "tls.h"

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src && !(*dst = rk__strdup(src)))
        return RK_ENOMEM;
    return RK_OK;
}

int rk__endpoint_copy(rk__endpoint *dst, const rk__endpoint *src)
{
    const rk__tls_options *t = &src->tls_opts;
    rk__tls_options *d = &dst->tls_opts;
    /* Scalars only: a failed copy must never free strings that still belong to `src`. */
    *dst = (rk__endpoint){.port = src->port,
                          .tls = src->tls,
                          .db = src->db,
                          .readonly = src->readonly,
                          .connect_timeout_ms = src->connect_timeout_ms,
                          .hook = src->hook,
                          .tls_opts = {.insecure = t->insecure, .unused = t->unused}};
    if (dup_opt(&dst->host, src->host) || dup_opt(&dst->path, src->path) ||
        dup_opt(&dst->username, src->username) || dup_opt(&dst->password, src->password) ||
        dup_opt(&d->ca_file, t->ca_file) || dup_opt(&d->ca_dir, t->ca_dir) ||
        dup_opt(&d->cert_file, t->cert_file) || dup_opt(&d->key_file, t->key_file) ||
        dup_opt(&d->server_name, t->server_name)) {
        rk__endpoint_clear(dst);
        return rk__err(RK_ENOMEM, "cannot copy connection settings");
    }
    return RK_OK;
}

void rk__endpoint_clear(rk__endpoint *ep)
{
    rk__free(ep->host);
    rk__free(ep->path);
    rk__free(ep->username);
    rk__free_secret(ep->password);
    rk__free(ep->tls_opts.ca_file);
    rk__free(ep->tls_opts.ca_dir);
    rk__free(ep->tls_opts.cert_file);
    rk__free(ep->tls_opts.key_file);
    rk__free(ep->tls_opts.server_name);
    memset(ep, 0, sizeof *ep);
}

const char *rk__endpoint_name(const rk__endpoint *ep, char *buf, size_t cap)
{
    if (ep->path)
        snprintf(buf, cap, "unix:%s", ep->path);
    else if (ep->host && strchr(ep->host, ':'))
        snprintf(buf, cap, "[%s]:%u", ep->host, ep->port);
    else
        snprintf(buf, cap, "%s:%u", ep->host ? ep->host : "?", ep->port);
    return buf;
}

/* ---- URI parsing ---- */

typedef struct {
    const char *b, *e;
} span;

static int hexval(int c)
{
    if (isdigit(c))
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode into a new string. */
static int decode(char **out, span s, const char *what, const char *part)
{
    char *d = rk__malloc((size_t)(s.e - s.b) + 1), *o = d;
    if (!d)
        return rk__err(RK_ENOMEM, "%s: cannot allocate", what);
    for (const char *p = s.b; p < s.e; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        int hi = p + 2 < s.e ? hexval((unsigned char)p[1]) : -1;
        int lo = p + 2 < s.e ? hexval((unsigned char)p[2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) { /* %00 would cut the C string */
            rk__wipe(d, (size_t)(s.e - s.b) + 1);       /* what was decoded may be a password */
            rk__free(d);
            return rk__err(RK_EINVAL, "%s: invalid percent-escape in the %s", what, part);
        }
        *o++ = (char)(hi * 16 + lo);
        p += 2;
    }
    *o = '\0';
    *out = d;
    return RK_OK;
}

static int parse_uint(const char *b, const char *e, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (b == e || e - b > 10)
        return -1;
    for (const char *p = b; p < e; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_db(rk__endpoint *ep, span s, const char *what)
{
    unsigned long db;
    if (parse_uint(s.b, s.e, 1000000, &db) != 0)
        return rk__err(RK_EINVAL, "%s: database '%.*s' is not a number", what, (int)(s.e - s.b),
                       s.b);
    ep->db = (unsigned)db;
    return RK_OK;
}

static int parse_query(rk__endpoint *ep, span q, const char *what)
{
    while (q.b < q.e) {
        const char *amp = memchr(q.b, '&', (size_t)(q.e - q.b));
        span item = {q.b, amp ? amp : q.e};
        q.b = amp ? amp + 1 : q.e;
        if (item.b == item.e)
            continue;
        if (item.e - item.b >= 3 && !strncasecmp(item.b, "db=", 3)) { /* "db=": not a number */
            int rc = parse_db(ep, (span){item.b + 3, item.e}, what);
            if (rc != RK_OK)
                return rc;
            continue;
        }
        const char *eq = memchr(item.b, '=', (size_t)(item.e - item.b));
        int n = (int)((eq ? eq : item.e) - item.b);
        return rk__err(RK_EINVAL, "%s: unknown query parameter '%.*s' (only db is accepted)", what,
                       n, item.b);
    }
    return RK_OK;
}

static int parse_userinfo(rk__endpoint *ep, span u, const char *what)
{
    const char *colon = memchr(u.b, ':', (size_t)(u.e - u.b));
    span user = {u.b, colon ? colon : u.e};
    int rc = RK_OK;
    if (user.e > user.b)
        rc = decode(&ep->username, user, what, "user name");
    if (rc == RK_OK && colon)
        rc = decode(&ep->password, (span){colon + 1, u.e}, what, "password");
    return rc;
}

static bool all_digits(const char *b, const char *e)
{
    for (const char *p = b; p < e; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

/* Without an '@', "redis://admin:hunter2" reads as host "admin", port "hunter2": a port that is
 * not a number is then more likely a password than a typo, so it is not quoted. */
static int bad_port(const char *b, const char *e, bool had_userinfo, const char *what)
{
    if (!had_userinfo && !all_digits(b, e))
        return rk__err(RK_EINVAL, "%s: port is not a number (if this is user:password, add @host)",
                       what);
    return rk__err(RK_EINVAL, "%s: port '%.*s' is not in 1..65535", what, (int)(e - b), b);
}

static int parse_hostport(rk__endpoint *ep, span h, bool had_userinfo, const char *what)
{
    const char *port = NULL;
    span host = h;
    if (h.b < h.e && *h.b == '[') {
        const char *close = memchr(h.b, ']', (size_t)(h.e - h.b));
        if (!close)
            return rk__err(RK_EINVAL, "%s: IPv6 address is missing its ']'", what);
        host = (span){h.b + 1, close};
        if (close + 1 < h.e) {
            if (close[1] != ':')
                return rk__err(RK_EINVAL, "%s: unexpected text after the IPv6 address", what);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(h.b, ':', (size_t)(h.e - h.b));
        if (colon) {
            host.e = colon;
            port = colon + 1;
        }
    }
    ep->port = 6379;
    if (port) {
        unsigned long p;
        if (parse_uint(port, h.e, 65535, &p) != 0 || p == 0)
            return bad_port(port, h.e, had_userinfo, what);
        ep->port = (uint16_t)p;
    }
    if (host.b == host.e)
        return (ep->host = rk__strdup("localhost")) ? RK_OK : rk__err(RK_ENOMEM, "%s", what);
    return decode(&ep->host, host, what, "host");
}

/* The host list of a URI, parsed after everything else in it. */
typedef struct {
    span hosts;        /* "h1:p1,h2:p2"; empty for unix:// */
    bool had_userinfo; /* an '@': a bad port after it cannot be part of a password */
    bool is_unix;
} authority;

/* Split `scheme://authority/path?query` once the scheme is known, and parse all of it but the
 * hosts into `ep`. */
static int parse_after_scheme(rk__endpoint *ep, span rest, authority *a, const char *what)
{
    const char *end = rest.e, *q = memchr(rest.b, '?', (size_t)(rest.e - rest.b));
    span query = {q ? q + 1 : rest.e, rest.e};
    rest.e = q ? q : rest.e;
    const char *slash = memchr(rest.b, '/', (size_t)(rest.e - rest.b));
    span auth = {rest.b, slash ? slash : rest.e}, path = {slash ? slash : rest.e, rest.e};
    const char *at = NULL;
    for (const char *p = auth.b; p < auth.e; p++)
        if (*p == '@')
            at = p; /* the last '@': raw '@' in passwords still parses */
    /* An '@' past the authority means a raw '/' or '?' cut the user info short: what comes
     * before it is part of a password, so no message below may quote it. */
    if (auth.e < end && memchr(auth.e, '@', (size_t)(end - auth.e)))
        return rk__err(RK_EINVAL,
                       "%s: '@' after the host: a '/' or '?' in the user name or password must "
                       "be percent-encoded (%%2F, %%3F)",
                       what);
    int rc = at ? parse_userinfo(ep, (span){auth.b, at}, what) : RK_OK;
    a->hosts = (span){at ? at + 1 : auth.b, auth.e};
    a->had_userinfo = at != NULL;
    if (rc == RK_OK && a->is_unix) {
        if (a->hosts.b != a->hosts.e)
            return rk__err(RK_EINVAL, "%s: unix URI needs an absolute path (unix:///path)", what);
        if (path.e - path.b < 2)
            return rk__err(RK_EINVAL, "%s: unix URI has no socket path", what);
        rc = decode(&ep->path, path, what, "socket path");
    } else if (rc == RK_OK && path.e - path.b > 1) {
        rc = parse_db(ep, (span){path.b + 1, path.e}, what);
    }
    return rc == RK_OK ? parse_query(ep, query, what) : rc;
}

static void clear_address(rk__endpoint *ep)
{
    rk__free(ep->host);
    rk__free(ep->path);
    rk__free(ep->username);
    rk__free_secret(ep->password);
    ep->host = ep->path = ep->username = ep->password = NULL;
}

/* RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), or empty (quoted as ''). */
static bool is_scheme(span s)
{
    for (const char *p = s.b; p < s.e; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
            return false;
    return true;
}

/* Everything but the hosts, into `ep` (whose address is cleared first). */
static int parse_shared(rk__endpoint *ep, const char *uri, authority *a, const char *what)
{
    clear_address(ep);
    const char *sep = strstr(uri, "://");
    if (!sep)
        return rk__err(RK_EINVAL, "%s: expected scheme://..., e.g. redis://host:6379/0", what);
    span scheme = {uri, sep};
    a->is_unix = false;
    if (sep - uri == 5 && !strncasecmp(uri, "redis", 5))
        ep->tls = false;
    else if (sep - uri == 6 && !strncasecmp(uri, "rediss", 6))
        ep->tls = true;
    else if (sep - uri == 4 && !strncasecmp(uri, "unix", 4))
        a->is_unix = true, ep->tls = false; /* a former rediss:// must not make it TLS */
    else if (!is_scheme(scheme)) /* "admin:hunter2@redis://h": the "scheme" holds a password */
        return rk__err(RK_EINVAL,
                       "%s: the text before '://' is not a scheme (expected redis, "
                       "rediss or unix)",
                       what);
    else
        return rk__err(RK_EINVAL, "%s: unknown scheme '%.*s' (expected redis, rediss or unix)",
                       what, (int)(scheme.e - scheme.b), scheme.b);
    return parse_after_scheme(ep, (span){sep + 3, uri + strlen(uri)}, a, what);
}

static size_t count_hosts(span h)
{
    size_t n = 1;
    for (const char *p = h.b; p < h.e; p++)
        n += *p == ',';
    return n;
}

/* Host `i` of `n` into `ep`. Alone, an empty host is localhost (redis:// as redis-cli reads
 * it); in a list it is a typo, and messages say which host of the list is wrong. */
static int parse_host(rk__endpoint *ep, span item, size_t i, size_t n, const authority *a,
                      const char *what)
{
    char label[300];
    if (n == 1)
        return parse_hostport(ep, item, a->had_userinfo, what);
    snprintf(label, sizeof label, "%s (host %zu of %zu)", what, i + 1, n);
    if (item.b == item.e || *item.b == ':')
        return rk__err(RK_EINVAL, "%s: the host is empty (expected host:port,host:port,...)",
                       label);
    return parse_hostport(ep, item, a->had_userinfo, label);
}

/* One endpoint per host of `a`, each a copy of `shared` with its own host and port. */
static int split_hosts(rk__endpoint *out, size_t n, const rk__endpoint *shared, const authority *a,
                       const char *what)
{
    span rest = a->hosts;
    int rc = RK_OK;
    for (size_t i = 0; rc == RK_OK && i < n; i++) {
        const char *comma = memchr(rest.b, ',', (size_t)(rest.e - rest.b));
        span item = {rest.b, comma ? comma : rest.e};
        rest.b = comma ? comma + 1 : rest.e;
        rc = rk__endpoint_copy(&out[i], shared);
        rc = rc == RK_OK ? parse_host(&out[i], item, i, n, a, what) : rk__err_prefix("%s: ", what);
    }
    return rc;
}

int rk__uri_parse_list(rk__endpoint **eps, size_t *n, const rk__endpoint *tmpl, const char *uri,
                       const char *what)
{
    rk__endpoint shared, *out = NULL;
    authority a = {.is_unix = false};
    size_t count = 0;
    *eps = NULL;
    *n = 0;
    int rc = rk__endpoint_copy(&shared, tmpl) ? rk__err_prefix("%s: ", what) : RK_OK;
    if (rc == RK_OK && (rc = parse_shared(&shared, uri, &a, what)) == RK_OK)
        count = a.is_unix ? 1 : count_hosts(a.hosts);
    if (rc == RK_OK && count > RK__URI_MAX_HOSTS)
        rc = rk__err(RK_EINVAL, "%s lists %zu hosts (at most %d)", what, count, RK__URI_MAX_HOSTS);
    if (rc == RK_OK && !(out = rk__calloc(count, sizeof *out)))
        rc = rk__err(RK_ENOMEM, "%s: cannot allocate %zu endpoints", what, count);
    if (rc == RK_OK && a.is_unix) { /* the socket path is its whole address */
        out[0] = shared;
        shared = (rk__endpoint){.port = 0};
    } else if (rc == RK_OK) {
        rc = split_hosts(out, count, &shared, &a, what);
    }
    rk__endpoint_clear(&shared);
    if (rc != RK_OK) {
        rk__seeds_free(out, count);
        return rc;
    }
    *eps = out;
    *n = count;
    return RK_OK;
}

void rk__seeds_free(rk__endpoint *eps, size_t n)
{
    for (size_t i = 0; eps && i < n; i++)
        rk__endpoint_clear(&eps[i]);
    rk__free(eps);
}

int rk__uri_parse(rk__endpoint *ep, const char *uri, const char *what)
{
    rk__endpoint *eps;
    size_t n;
    int rc = rk__uri_parse_list(&eps, &n, ep, uri, what);
    if (rc == RK_OK && n > 1) {
        rk__seeds_free(eps, n);
        rc = rk__err(RK_EINVAL, "%s lists %zu hosts where one is expected", what, n);
    }
    if (rc != RK_OK) {
        clear_address(ep);
        return rc;
    }
    rk__endpoint_clear(ep);
    *ep = eps[0];
    rk__free(eps);
    return RK_OK;
}
