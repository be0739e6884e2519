/**
 * @file redkit/config.h
 * @brief pip-services style configuration (ConfigParams) and references (discovery, credentials).
 *
 * A configuration is a flat map of dotted keys to string values, e.g.
 * `connection.host=localhost;connection.port=6379;options.timeout=5000`. Keys are matched
 * case-insensitively; setting a key again replaces its value. The keys every component reads are
 * listed in README.md ("Configuration").
 *
 * An ::rk_config is not thread-safe; components copy it in their `_configure` call.
 */
#ifndef REDKIT_CONFIG_H
#define REDKIT_CONFIG_H

#include "common.h"

RK_BEGIN_DECLS

typedef struct rk_config rk_config;

/** Create an empty configuration. */
RK_EXTERN int rk_config_new(rk_config **out);

/**
 * Create a configuration from key/value string pairs terminated by NULL:
 * `rk_config_from_tuples(&cfg, "connection.host", "localhost", "connection.port", "6379", NULL)`.
 * @return RK_OK, RK_EINVAL (a key without value, or an empty key) or RK_ENOMEM.
 */
RK_EXTERN int rk_config_from_tuples(rk_config **out, ...);

/**
 * Parse `"a.b=1;c=2"`: entries are separated by ';', each is split on its first '=', and keys
 * and values are trimmed of surrounding blanks. Empty entries are skipped.
 * @return RK_OK, RK_EINVAL (an entry without '=' or with an empty key; the message names it)
 *         or RK_ENOMEM.
 */
RK_EXTERN int rk_config_from_string(rk_config **out, const char *s);

/** Set (or replace) one key. A NULL value removes the key. */
RK_EXTERN int rk_config_set(rk_config *cfg, const char *key, const char *value);

/** The value of `key`, or NULL if absent. Borrowed: valid until the key is set again or freed. */
RK_EXTERN const char *rk_config_get(const rk_config *cfg, const char *key);

/** Number of keys. */
RK_EXTERN size_t rk_config_count(const rk_config *cfg);

/** Key and value at `index` (insertion order), for iteration. Returns false past the end. */
RK_EXTERN bool rk_config_entry(const rk_config *cfg, size_t index, const char **key,
                               const char **value);

/** Free the configuration. NULL-safe. */
RK_EXTERN void rk_config_free(rk_config *cfg);

/**
 * References: where components look up connections (`connection.discovery_key`) and
 * credentials (`credential.store_key`), as pip-services IDiscovery and ICredentialStore.
 * A components copies the references in its `_set_references` call; the callbacks' `ud` must
 * stay valid while the component is open.
 */
typedef struct rk_references rk_references;

/**
 * Resolve `discovery_key` to connection parameters (host, port, uri, ...) without the
 * `connection.` prefix. Set `*connection_out` to a new configuration (redkit frees it), or leave
 * it NULL when the key is unknown. Return RK_OK, or a negative code to fail the open.
 */
typedef int (*rk_discovery_fn)(void *ud, const rk_context *ctx, const char *discovery_key,
                               rk_config **connection_out);

/** As ::rk_discovery_fn, for credentials (username/user, password/pass). */
typedef int (*rk_credential_store_fn)(void *ud, const rk_context *ctx, const char *store_key,
                                      rk_config **credential_out);

RK_EXTERN int rk_references_new(rk_references **out);
RK_EXTERN int rk_references_set_discovery(rk_references *refs, rk_discovery_fn fn, void *ud);
RK_EXTERN int rk_references_set_credential_store(rk_references *refs, rk_credential_store_fn fn,
                                                 void *ud);

/**
 * In-memory discovery, like pip-services MemoryDiscovery: `cfg` holds `<discovery_key>.host`,
 * `<discovery_key>.port`, ... entries. The configuration is copied.
 */
RK_EXTERN int rk_references_set_memory_discovery(rk_references *refs, const rk_config *cfg);

/** In-memory credential store: `<store_key>.user`/`.username`, `<store_key>.pass`/`.password`. */
RK_EXTERN int rk_references_set_memory_credential_store(rk_references *refs, const rk_config *cfg);

RK_EXTERN void rk_references_free(rk_references *refs);

RK_END_DECLS

#endif
