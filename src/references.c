#include <stdio.h>

#include "alloc.h"
#include "config_int.h"
#include "error_int.h"
#include "references_int.h"

struct rk_references {
    rk_discovery_fn discovery;
    void *discovery_ud;
    rk_credential_store_fn store;
    void *store_ud;
    rk_config *memory_discovery; /* owned; discovery_ud points here when used */
    rk_config *memory_store;
};

int rk_references_new(rk_references **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_references_new: out is NULL");
    *out = rk__calloc(1, sizeof **out);
    return *out ? RK_OK : rk__err(RK_ENOMEM, "cannot allocate references");
}

void rk_references_free(rk_references *refs)
{
    if (!refs)
        return;
    rk_config_free(refs->memory_discovery);
    rk_config_free(refs->memory_store);
    rk__free(refs);
}

int rk_references_set_discovery(rk_references *refs, rk_discovery_fn fn, void *ud)
{
    if (!refs)
        return rk__err(RK_EINVAL, "rk_references_set_discovery: refs is NULL");
    refs->discovery = fn;
    refs->discovery_ud = ud;
    return RK_OK;
}

int rk_references_set_credential_store(rk_references *refs, rk_credential_store_fn fn, void *ud)
{
    if (!refs)
        return rk__err(RK_EINVAL, "rk_references_set_credential_store: refs is NULL");
    refs->store = fn;
    refs->store_ud = ud;
    return RK_OK;
}

/* Both memory stores answer with the `<key>.*` section of their configuration. */
static int memory_lookup(void *ud, const rk_context *ctx, const char *key, rk_config **out)
{
    (void)ctx;
    int rc = rk__config_section(out, ud, key);
    if (rc == RK_OK && rk_config_count(*out) == 0) {
        rk_config_free(*out);
        *out = NULL;
    }
    return rc;
}

static int set_memory(rk_config **slot, const rk_config *cfg)
{
    rk_config *copy;
    int rc = rk__config_copy(&copy, cfg);
    if (rc != RK_OK)
        return rc;
    if (!copy && (rc = rk_config_new(&copy)) != RK_OK)
        return rc;
    rk_config_free(*slot);
    *slot = copy;
    return RK_OK;
}

int rk_references_set_memory_discovery(rk_references *refs, const rk_config *cfg)
{
    if (!refs)
        return rk__err(RK_EINVAL, "rk_references_set_memory_discovery: refs is NULL");
    int rc = set_memory(&refs->memory_discovery, cfg);
    if (rc == RK_OK)
        rc = rk_references_set_discovery(refs, memory_lookup, refs->memory_discovery);
    return rc;
}

int rk_references_set_memory_credential_store(rk_references *refs, const rk_config *cfg)
{
    if (!refs)
        return rk__err(RK_EINVAL, "rk_references_set_memory_credential_store: refs is NULL");
    int rc = set_memory(&refs->memory_store, cfg);
    if (rc == RK_OK)
        rc = rk_references_set_credential_store(refs, memory_lookup, refs->memory_store);
    return rc;
}

int rk__references_copy(rk_references **out, const rk_references *refs)
{
    *out = NULL;
    if (!refs)
        return RK_OK;
    rk_references *r;
    int rc = rk_references_new(&r);
    if (rc != RK_OK)
        return rc;
    *r = *refs;
    r->memory_discovery = r->memory_store = NULL;
    if (refs->memory_discovery && refs->discovery_ud == refs->memory_discovery)
        rc = rk_references_set_memory_discovery(r, refs->memory_discovery);
    if (rc == RK_OK && refs->memory_store && refs->store_ud == refs->memory_store)
        rc = rk_references_set_memory_credential_store(r, refs->memory_store);
    if (rc != RK_OK) {
        rk_references_free(r);
        return rc;
    }
    *out = r;
    return RK_OK;
}

/* `shown` is the key as messages may quote it: NULL for a credential.store_key, since no
 * credential.* value is ever quoted (a password typed there must not surface). */
static int lookup(rk_discovery_fn fn, void *ud, const char *what, const rk_context *ctx,
                  const char *key, const char *shown, rk_config **out)
{
    *out = NULL;
    char quoted[160] = "credential.store_key";
    if (shown)
        snprintf(quoted, sizeof quoted, "'%s'", shown);
    if (!fn)
        return rk__err(RK_EREF, "Failed to obtain reference to %s (needed for %s%s)", what,
                       shown ? "key " : "", quoted);
    int rc = fn(ud, ctx, key, out);
    if (rc == RK_OK)
        return RK_OK;
    rk_config_free(*out);
    *out = NULL;
    if (rc > 0)
        rc = RK_ERROR;
    if (rk_last_error()->code != rc)
        rk__err(rc, "%s lookup of %s failed", what, quoted);
    return rc;
}

int rk__references_discover(const rk_references *refs, const rk_context *ctx, const char *key,
                            rk_config **out)
{
    return lookup(refs ? refs->discovery : NULL, refs ? refs->discovery_ud : NULL, "discovery", ctx,
                  key, key, out);
}

int rk__references_credential(const rk_references *refs, const rk_context *ctx, const char *key,
                              rk_config **out)
{
    return lookup(refs ? refs->store : NULL, refs ? refs->store_ud : NULL, "credential store", ctx,
                  key, NULL, out);
}
