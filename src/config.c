#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config_int.h"
#include "error_int.h"

typedef struct {
    char *key;
    char *value;
} entry;

struct rk_config {
    entry *items;
    size_t count, cap;
};

/* ---- secrets: what an error message may quote ---- */

static const char *find_ci(const char *b, const char *e, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = b; p + n <= e; p++)
        if (!strncasecmp(p, needle, n))
            return p;
    return NULL;
}

static bool is_secret_n(const char *key, size_t len)
{
    return (len > 11 && !strncasecmp(key, "credential", 10) &&
            (key[10] == '.' || (key[10] == 's' && key[11] == '.'))) ||
           find_ci(key, key + len, "pass");
}

bool rk__config_is_secret(const char *key) { return key && is_secret_n(key, strlen(key)); }

bool rk__config_may_quote(const char *key, const char *value)
{
    /* '@', ':' and '/' are how a URI or user:password pasted into the wrong key looks. */
    return !rk__config_is_secret(key) && !strpbrk(value, "@:/");
}

/* Whether the text after an entry with this key may be the rest of its value: a ';' inside a
 * password or a URI splits it, and the next "entry" is then a piece of the secret. */
static bool secret_bearing(const char *key)
{
    return rk__config_is_secret(key) || find_ci(key, key + strlen(key), "uri");
}

/* How much of a malformed entry may be quoted: its leading key characters, and only when they
 * look like a redkit key (all have a '.'; a lone word is more likely a value that lost its key).
 * A secret key is cut after "pass"/"password", so
 * "credential.passwordhunter2" shows as 'credential.password'. 0: quote nothing. */
static int quotable(const char *b, const char *e, const char *prev)
{
    const char *p = b;
    while (p < e && (isalnum((unsigned char)*p) || strchr("._-", *p)))
        p++;
    if ((prev && secret_bearing(prev)) || !memchr(b, '.', (size_t)(p - b)))
        return 0;
    if (!is_secret_n(b, (size_t)(p - b)))
        return (int)(p - b);
    const char *m = find_ci(b, p, "password");
    if (m)
        return (int)(m + 8 - b);
    m = find_ci(b, p, "pass");
    return (int)((m ? m + 4 : p) - b); /* credential.username: the name is no secret */
}

/* "configuration entry 'key' <problem>", or by its number when nothing of it can be quoted. */
static int bad_entry(const char *what, size_t n, const char *b, const char *e, const char *prev,
                     const char *problem)
{
    int q = quotable(b, e, prev);
    if (q)
        return rk__err(RK_EINVAL, "configuration %s '%.*s' %s", what, q, b, problem);
    int pq = prev ? quotable(prev, prev + strlen(prev), NULL) : 0;
    if (prev && secret_bearing(prev))
        return rk__err(RK_EINVAL,
                       "configuration %s %zu (after '%.*s') %s; is it part of the value before "
                       "it? (not shown: it may be part of a secret)",
                       what, n, pq, prev, problem);
    return rk__err(RK_EINVAL, "configuration %s %zu (not shown: it may be a value) %s", what, n,
                   problem);
}

int rk_config_new(rk_config **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_config_new: out is NULL");
    *out = rk__calloc(1, sizeof **out);
    return *out ? RK_OK : rk__err(RK_ENOMEM, "cannot allocate a configuration");
}

/* Every entry is wiped, not only the credential.* ones: a password can sit under any key (a
 * URI, a store's section, a typo), and configurations are small. */
static void entry_free(entry *e)
{
    rk__free_secret(e->key);
    rk__free_secret(e->value);
}

void rk_config_free(rk_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->count; i++)
        entry_free(&cfg->items[i]);
    rk__free(cfg->items);
    rk__free(cfg);
}

static entry *find(const rk_config *cfg, const char *key, size_t klen)
{
    for (size_t i = 0; i < cfg->count; i++)
        if (!strncasecmp(cfg->items[i].key, key, klen) && cfg->items[i].key[klen] == '\0')
            return &cfg->items[i];
    return NULL;
}

static int set_n(rk_config *cfg, const char *key, size_t klen, const char *value, size_t vlen)
{
    if (klen == 0)
        return rk__err(RK_EINVAL, "configuration key is empty");
    entry *e = find(cfg, key, klen);
    char *v = rk__strndup(value, vlen);
    if (!v)
        return rk__err(RK_ENOMEM, "cannot allocate a configuration value");
    if (e) {
        rk__free_secret(e->value);
        e->value = v;
        return RK_OK;
    }
    if (cfg->count == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 8;
        entry *items = rk__realloc(cfg->items, cap * sizeof *items);
        if (!items) {
            rk__free_secret(v);
            return rk__err(RK_ENOMEM, "cannot grow a configuration");
        }
        cfg->items = items;
        cfg->cap = cap;
    }
    char *k = rk__strndup(key, klen);
    if (!k) {
        rk__free_secret(v);
        return rk__err(RK_ENOMEM, "cannot allocate a configuration key");
    }
    cfg->items[cfg->count++] = (entry){k, v};
    return RK_OK;
}

static void remove_key(rk_config *cfg, const char *key)
{
    entry *e = find(cfg, key, strlen(key));
    if (!e)
        return;
    entry_free(e);
    size_t i = (size_t)(e - cfg->items);
    memmove(e, e + 1, (cfg->count - i - 1) * sizeof *e);
    cfg->count--;
}

int rk_config_set(rk_config *cfg, const char *key, const char *value)
{
    if (!cfg || !key)
        return rk__err(RK_EINVAL, "rk_config_set: %s is NULL", cfg ? "key" : "cfg");
    if (!value) {
        remove_key(cfg, key);
        return RK_OK;
    }
    return set_n(cfg, key, strlen(key), value, strlen(value));
}

const char *rk_config_get(const rk_config *cfg, const char *key)
{
    if (!cfg || !key)
        return NULL;
    entry *e = find(cfg, key, strlen(key));
    return e ? e->value : NULL;
}

size_t rk_config_count(const rk_config *cfg) { return cfg ? cfg->count : 0; }

bool rk_config_entry(const rk_config *cfg, size_t index, const char **key, const char **value)
{
    if (!cfg || index >= cfg->count)
        return false;
    if (key)
        *key = cfg->items[index].key;
    if (value)
        *value = cfg->items[index].value;
    return true;
}

int rk_config_from_tuples(rk_config **out, ...)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_config_from_tuples: out is NULL");
    *out = NULL;
    rk_config *cfg;
    int rc = rk_config_new(&cfg);
    va_list ap;
    va_start(ap, out);
    const char *prev = NULL;
    size_t n = 1;
    for (const char *k; rc == RK_OK && (k = va_arg(ap, const char *)) != NULL; n++) {
        const char *v = va_arg(ap, const char *);
        rc = v ? rk_config_set(cfg, k, v)
               : bad_entry("tuple", n, k, k + strlen(k), prev, "has no value");
        prev = k;
    }
    va_end(ap);
    if (rc != RK_OK) {
        rk_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return RK_OK;
}

static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* Entry `n` (from 1, blank ones counted), after the one with key `prev`. The messages never
 * quote a value: see bad_entry. */
static int parse_entry(rk_config *cfg, const char *b, const char *e, size_t n, char prev[128])
{
    trim(&b, &e);
    if (b == e)
        return RK_OK;
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (!eq)
        return bad_entry("entry", n, b, e, *prev ? prev : NULL, "has no '=' (expected key=value)");
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (kb == ke)
        return rk__err(RK_EINVAL, "configuration entry %zu has an empty key (nothing before '=')",
                       n);
    int rc = set_n(cfg, kb, (size_t)(ke - kb), vb, (size_t)(ve - vb));
    snprintf(prev, 128, "%.*s", (int)(ke - kb), kb);
    return rc;
}

int rk_config_from_string(rk_config **out, const char *s)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_config_from_string: out is NULL");
    *out = NULL;
    rk_config *cfg;
    int rc = rk_config_new(&cfg);
    size_t n = 1;
    char prev[128] = "";
    for (const char *p = s ? s : ""; rc == RK_OK && *p; n++) {
        const char *end = strchr(p, ';');
        if (!end)
            end = p + strlen(p);
        rc = parse_entry(cfg, p, end, n, prev);
        p = *end ? end + 1 : end;
    }
    if (rc != RK_OK) {
        rk_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return RK_OK;
}

int rk__config_copy(rk_config **out, const rk_config *cfg)
{
    *out = NULL;
    if (!cfg)
        return RK_OK;
    rk_config *c;
    int rc = rk_config_new(&c);
    for (size_t i = 0; rc == RK_OK && i < cfg->count; i++)
        rc = rk_config_set(c, cfg->items[i].key, cfg->items[i].value);
    if (rc != RK_OK) {
        rk_config_free(c);
        return rc;
    }
    *out = c;
    return RK_OK;
}

int rk__config_u64(const rk_config *cfg, const char *key, uint64_t def, uint64_t min, uint64_t max,
                   uint64_t *out)
{
    const char *v = rk_config_get(cfg, key);
    if (!v) {
        *out = def;
        return RK_OK;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if ((!isdigit((unsigned char)*v) || *end || errno) && !rk__config_may_quote(key, v))
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "option %s: the value is not a non-negative integer (not shown: it "
                             "may hold a secret)",
                             key);
    if (!isdigit((unsigned char)*v) || *end || errno)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "option %s: '%s' is not a non-negative integer", key, v);
    if (n < min || n > max)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "option %s: %llu is outside [%llu, %llu]", key, n,
                             (unsigned long long)min, (unsigned long long)max);
    *out = n;
    return RK_OK;
}

int rk__config_bool(const rk_config *cfg, const char *key, bool def, bool *out)
{
    static const char *yes[] = {"true", "1", "yes", "on"}, *no[] = {"false", "0", "no", "off"};
    const char *v = rk_config_get(cfg, key);
    *out = def;
    if (!v)
        return RK_OK;
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i]))
            return *out = true, RK_OK;
        if (!strcasecmp(v, no[i]))
            return *out = false, RK_OK;
    }
    if (!rk__config_may_quote(key, v))
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "option %s: the value is not a boolean (true/false; not shown: it "
                             "may hold a secret)",
                             key);
    return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                         "option %s: '%s' is not a boolean (true/false)", key, v);
}

int rk__config_enum(const rk_config *cfg, const char *key, const rk__config_word *words, int def,
                    const char *expected, int *out)
{
    const char *v = rk_config_get(cfg, key);
    *out = def;
    if (!v)
        return RK_OK;
    for (const rk__config_word *w = words; w->name; w++)
        if (!strcasecmp(v, w->name))
            return *out = w->value, RK_OK;
    if (!rk__config_may_quote(key, v))
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "option %s: the value is not one of %s (not shown: it may hold a "
                             "secret)",
                             key, expected);
    return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                         "option %s: '%s' is not one of %s", key, v, expected);
}

static bool has_prefix(const char *key, const char *prefix, size_t plen)
{
    return !strncasecmp(key, prefix, plen) && key[plen] == '.';
}

int rk__config_section(rk_config **out, const rk_config *cfg, const char *section)
{
    rk_config *c;
    int rc = rk_config_new(&c);
    size_t plen = strlen(section);
    for (size_t i = 0; rc == RK_OK && cfg && i < cfg->count; i++)
        if (has_prefix(cfg->items[i].key, section, plen) && cfg->items[i].key[plen + 1])
            rc = rk_config_set(c, cfg->items[i].key + plen + 1, cfg->items[i].value);
    if (rc != RK_OK) {
        rk_config_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

int rk__config_subsections(char **names, size_t *count, const rk_config *cfg, const char *prefix)
{
    size_t plen = strlen(prefix), cap = 0, used = 0;
    char *buf = NULL;
    *names = NULL;
    *count = 0;
    for (size_t i = 0; cfg && i < cfg->count; i++) {
        const char *k = cfg->items[i].key;
        if (!has_prefix(k, prefix, plen))
            continue;
        const char *name = k + plen + 1, *dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name), seen = 0;
        for (const char *p = buf; p && seen < *count; p += strlen(p) + 1, seen++)
            if (strlen(p) == n && !strncasecmp(p, name, n))
                break;
        if (n == 0 || seen < *count)
            continue;
        if (used + n + 1 > cap) {
            cap = (used + n + 1) * 2;
            char *nb = rk__realloc(buf, cap);
            if (!nb) {
                rk__free(buf);
                return rk__err(RK_ENOMEM, "cannot list configuration sections");
            }
            buf = nb;
        }
        memcpy(buf + used, name, n);
        buf[used + n] = '\0';
        used += n + 1;
        (*count)++;
    }
    *names = buf;
    return RK_OK;
}
