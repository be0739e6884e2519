/* From configuration and references to what a component runs with: its options (validated at
 * configure) and its endpoints, the seeds (resolved at open, through discovery and the
 * credential store when the configuration asks for them). */
#ifndef RK_RESOLVE_H
#define RK_RESOLVE_H

#include "endpoint.h"
#include "redkit/config.h"

/* options.cluster */
typedef enum rk__cluster_mode {
    RK__CLUSTER_AUTO, /* Redis Cluster when the servers are one: found out at open */
    RK__CLUSTER_ON,
    RK__CLUSTER_OFF,
} rk__cluster_mode;

/* options.lock_mode */
typedef enum rk__lock_mode {
    RK__LOCK_SINGLE, /* one deployment (server, Sentinel or Cluster) holds each lock */
    RK__LOCK_QUORUM, /* every endpoint is an independent master; a majority holds each lock */
} rk__lock_mode;

typedef struct rk__options {
    uint64_t connect_timeout_ms; /* options.connect_timeout, 5000 */
    uint64_t timeout_ms;         /* options.timeout, 30000: one operation, reconnects included */
    uint64_t retries;            /* options.retries, 3 */
    uint64_t db;                 /* options.db_num, 0 */
    uint64_t retry_timeout_ms;   /* options.retry_timeout, 100 */
    uint64_t max_connections;    /* options.max_connections, 8: per node, shared one included */
    bool auto_pipeline;          /* options.auto_pipeline, true (pipeline.h) */
    uint64_t default_ttl_ms;     /* options.default_ttl, 60000 */
    char *prefix;                /* options.prefix, "" */
    size_t prefix_len;
    char *resource_tag;           /* options.resource_tag (memolock), NULL */
    uint64_t lock_timeout_ms;     /* options.lock_timeout (memolock), 5000 */
    bool lock_fencing;            /* options.lock_fencing (lock), false */
    uint64_t lock_yield_ms;       /* options.lock_yield_to_pollers (lock), 0: never */
    rk__cluster_mode cluster;     /* options.cluster, auto */
    uint64_t max_redirects;       /* options.max_redirects, 5: MOVED/ASK followed per call */
    uint64_t topology_refresh_ms; /* options.topology_refresh, 60000 */
    bool read_replicas;           /* options.read_from=replica; master by default */
    char *sentinel_master;        /* options.sentinel_master: Sentinel mode when set, NULL */
    char *sentinel_username;      /* options.sentinel_username: the sentinels' own AUTH, NULL */
    char *sentinel_password;      /* options.sentinel_password, NULL; a secret: never shown */
    uint64_t lock_replicas;       /* options.lock_replicas (lock), 0..16, 0 */
    uint64_t lock_replicas_timeout_ms; /* options.lock_replicas_timeout (lock), 100 */
    uint64_t near_cache_size;          /* options.near_cache_size (cache): entries, 0 = off */
    uint64_t near_cache_bytes;         /* options.near_cache_bytes (cache), 64 MiB */
    rk__lock_mode lock_mode;           /* options.lock_mode (lock), single */
    uint64_t quorum_node_timeout_ms;   /* options.quorum_node_timeout (lock), 50 */
} rk__options;

/* Parse and validate every option; RK_EINVAL names the key. `o` is cleared first. Clear wipes
 * the sentinel password. */
int rk__options_parse(rk__options *o, const rk_config *cfg);
void rk__options_clear(rk__options *o);
int rk__options_copy(rk__options *dst, const rk__options *src); /* RK_OK or RK_ENOMEM */

/* Every configured endpoint, in configuration order: each host of a multi-host URI,
 * connection.*, or each connections.<name>.* (connection.* is then ignored; a discovery_key is
 * resolved, and one the discovery does not know is skipped), each with the credential
 * (credential.* or credentials.<name>.*: the first without store_key, else the store's) and the
 * TLS options applied (with options.sentinel_master they are the sentinels, and the credential is
 * the master's: see rk__topology_sentinel_new). n >= 1 on success; free with rk__seeds_free
 * (endpoint.h). RK_ENOCONN when nothing is configured or discovered, RK_EREF when a lookup needs a
 * missing reference, RK_EINVAL for bad values (the key named, never a password), for seeds mixing
 * TLS and plaintext, and for a URI database other than 0 with options.cluster=true. */
int rk__resolve_seeds(rk__endpoint **eps, size_t *n, const rk_config *cfg,
                      const rk_references *refs, const rk__options *o, const rk_context *ctx);

/* The first seed of rk__resolve_seeds, for callers that want one endpoint. */
int rk__resolve_endpoint(rk__endpoint *ep, const rk_config *cfg, const rk_references *refs,
                         const rk__options *o, const rk_context *ctx);

#endif
