/* Fuzz target: the configuration string parser (rk_config_from_string) and everything that
 * reads a configuration before a connection is made: option validation, sections, memory
 * discovery / credential stores and endpoint resolution (which parses connection.uri). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "error_int.h"
#include "fuzz.h"
#include "redkit.h"
#include "resolve.h"

static bool trimmed(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || (!isspace((unsigned char)s[0]) && !isspace((unsigned char)s[n - 1]));
}

/* Parsed entries are trimmed, free of separators, unique (case-insensitively) and found again
 * by rk_config_get; printing them back and re-parsing gives the same configuration. */
static void check_parsed(const rk_config *cfg)
{
    size_t n = rk_config_count(cfg), need = 1;
    const char *k, *v, *k2;
    for (size_t i = 0; rk_config_entry(cfg, i, &k, &v); i++) {
        FUZZ_CHECK(*k && trimmed(k) && trimmed(v));
        FUZZ_CHECK(!strchr(k, ';') && !strchr(k, '=') && !strchr(v, ';'));
        FUZZ_CHECK(rk_config_get(cfg, k) == v);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(rk_config_entry(cfg, j, &k2, NULL) && strcasecmp(k, k2) != 0);
        need += strlen(k) + strlen(v) + 2;
    }
    char *text = malloc(need), *p = text;
    FUZZ_CHECK(text != NULL);
    *p = '\0';
    for (size_t i = 0; rk_config_entry(cfg, i, &k, &v); i++)
        p += sprintf(p, "%s=%s;", k, v);
    rk_config *again;
    FUZZ_CHECK(rk_config_from_string(&again, text) == RK_OK);
    FUZZ_CHECK(rk_config_count(again) == n);
    for (size_t i = 0; rk_config_entry(cfg, i, &k, &v); i++)
        FUZZ_CHECK(rk_config_get(again, k) && !strcmp(rk_config_get(again, k), v));
    rk_config_free(again);
    free(text);
}

static void check_failure(int rc)
{
    FUZZ_CHECK(rc == RK_EINVAL || rc == RK_ENOMEM);
    FUZZ_CHECK(rk_last_error()->code == rc && *rk_last_error()->message);
}

/* Resolve with the configuration doubling as memory discovery and credential store, so that
 * discovery_key / store_key entries resolve through the references too. */
static void resolve(const rk_config *cfg)
{
    rk__options o;
    int rc = rk__options_parse(&o, cfg);
    if (rc != RK_OK) {
        check_failure(rc);
        FUZZ_CHECK(strstr(rk_last_error()->message, "option") != NULL);
        return;
    }
    rk_references *refs;
    FUZZ_CHECK(rk_references_new(&refs) == RK_OK);
    FUZZ_CHECK(rk_references_set_memory_discovery(refs, cfg) == RK_OK);
    FUZZ_CHECK(rk_references_set_memory_credential_store(refs, cfg) == RK_OK);
    rk__endpoint *eps;
    size_t n;
    rc = rk__resolve_seeds(&eps, &n, cfg, refs, &o, NULL);
    FUZZ_CHECK((rc == RK_OK) == (eps != NULL) && (rc == RK_OK) == (n >= 1));
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK((eps[i].host != NULL) != (eps[i].path != NULL));
        FUZZ_CHECK(eps[i].path || eps[i].port > 0);
        FUZZ_CHECK(eps[i].tls == eps[0].tls);
        FUZZ_CHECK(o.cluster != RK__CLUSTER_ON || eps[i].db == 0);
    }
    if (rc != RK_OK)
        FUZZ_CHECK(rc == RK_EINVAL || rc == RK_ENOCONN || rc == RK_ENOMEM);
    rk__seeds_free(eps, n);
    rk_references_free(refs);
    rk__options_clear(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_string(data, size);
    rk_config *cfg = (rk_config *)&cfg;
    int rc = rk_config_from_string(&cfg, s);
    if (rc != RK_OK) {
        check_failure(rc);
        FUZZ_CHECK(cfg == NULL);
        free(s);
        return 0;
    }
    check_parsed(cfg);
    resolve(cfg);
    rk_cache *cache;
    FUZZ_CHECK(rk_cache_new(&cache) == RK_OK);
    rc = rk_cache_configure(cache, cfg);
    FUZZ_CHECK(rc == RK_OK || rc == RK_EINVAL);
    rk_cache_free(cache);
    rk_config_free(cfg);
    free(s);
    return 0;
}
