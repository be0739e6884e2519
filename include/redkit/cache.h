/**
 * @file redkit/cache.h
 * @brief Distributed cache on Redis: the pip-services RedisCache component.
 *
 * Values are opaque bytes stored with `SET <prefix><key> <value> PX <ttl>`, so any Redis client
 * can read what redkit writes and vice versa.
 *
 * Lifecycle: rk_cache_new() -> rk_cache_configure() [-> rk_cache_set_references()]
 * -> rk_cache_open() -> operations -> rk_cache_close() -> rk_cache_free().
 *
 * Thread safety: every function except rk_cache_free() may be called from any thread at any
 * time, including concurrently with close (calls in flight then fail with RK_ENOTOPEN at once).
 * Operations share a pool of up to `options.max_connections` connections. rk_cache_free() must
 * not race with other calls. A handle may be used in a child after fork(): the child's first
 * call opens fresh connections and never touches the parent's.
 *
 * Configuration keys: `connection.*` / `connections.<name>.*` (host, port, uri, discovery_key),
 * `credential.*` (username, password, store_key), `options.connect_timeout` (ms, 5000),
 * `options.timeout` (ms: the deadline of each call, connects and retries included, 30000),
 * `options.retries` (3),
 * `options.db_num` (0), `options.max_connections` (8), `options.prefix` (none),
 * `options.default_ttl` (ms, used when ttl_ms is 0, 60000),
 * `options.near_cache_size` (entries, 0 = no near cache), `options.near_cache_bytes` (67108864).
 *
 * Near cache: with `options.near_cache_size` > 0, values read are kept in this process (an LRU
 * bounded by both options) and served again without I/O, as copies. Redis keeps them honest
 * (`CLIENT TRACKING` redirected to one connection per node subscribed to
 * `__redis__:invalidate`, Redis 6+): a write by anyone drops the local copy when its
 * invalidation arrives, and this handle's own writes drop theirs before they return. A local
 * entry never outlives the key's TTL in Redis; everything is dropped when an invalidation
 * connection is lost, on FLUSHALL/FLUSHDB, and when a tracked connection closes. A forked
 * child does not use its parent's near cache. Its events and counters: rk_cache_get_stats().
 */
#ifndef REDKIT_CACHE_H
#define REDKIT_CACHE_H

#include "config.h"
#include "stats.h"

RK_BEGIN_DECLS

typedef struct rk_cache rk_cache;

/** One entry of rk_cache_store_many(). */
typedef struct rk_cache_entry {
    const char *key;
    const void *value;
    size_t len;
    uint64_t ttl_ms; /**< 0: options.default_ttl; RK_TTL_NONE: no expiry */
} rk_cache_entry;

RK_EXTERN int rk_cache_new(rk_cache **out);

/** Copy and validate the configuration. @return RK_OK or RK_EINVAL naming the bad key. */
RK_EXTERN int rk_cache_configure(rk_cache *c, const rk_config *cfg);

/** Copy the references used to resolve discovery and credential store keys at open. */
RK_EXTERN int rk_cache_set_references(rk_cache *c, const rk_references *refs);

/**
 * Resolve the connection, connect, authenticate, select the database and PING.
 * @return RK_OK, RK_ENOCONN, RK_EREF, RK_EAUTH, RK_EIO, RK_ETIMEDOUT, RK_EINVAL or RK_ENOMEM.
 *         Opening an open cache is a no-op.
 */
RK_EXTERN int rk_cache_open(rk_cache *c, const rk_context *ctx);

RK_EXTERN bool rk_cache_is_open(const rk_cache *c);

/** Close all connections. Operations already running finish; later ones get RK_ENOTOPEN. */
RK_EXTERN int rk_cache_close(rk_cache *c, const rk_context *ctx);

/** Close if needed and free. NULL-safe. */
RK_EXTERN void rk_cache_free(rk_cache *c);

/** Copy this handle's statistics (redkit/stats.h) into `out` (from rk_stats_new()). Safe at any
 * time, from any thread, open or not; it never waits for a call. The near cache counts the
 * events `near_hit`, `near_miss`, `near_invalidation`, `near_flush` and `near_eviction`. */
RK_EXTERN int rk_cache_get_stats(rk_cache *c, rk_stats *out);

/** What the near cache holds now: `*entries` and `*bytes` (keys + values); both 0 without a
 * near cache or when closed. Read without a lock. @return RK_OK or RK_EINVAL (a NULL argument). */
RK_EXTERN int rk_cache_near_cache_size(rk_cache *c, uint64_t *entries, uint64_t *bytes);

/**
 * Store `len` bytes under `key` for `ttl_ms` (0: options.default_ttl, RK_TTL_NONE: forever).
 * @return RK_OK, RK_EINVAL (NULL/empty key, NULL value with len > 0), RK_ENOTOPEN, RK_EIO, ...
 */
RK_EXTERN int rk_cache_store(rk_cache *c, const rk_context *ctx, const char *key, const void *value,
                             size_t len, uint64_t ttl_ms);

/**
 * Copy the value of `key` into `*out` (replacing and freeing its previous content).
 * @return RK_OK, RK_ENOTFOUND on a miss (out left empty), or another error.
 */
RK_EXTERN int rk_cache_retrieve(rk_cache *c, const rk_context *ctx, const char *key, rk_buf *out);

/**
 * The time `key` has left (`PTTL`): `*ttl_ms` receives the remaining milliseconds, or
 * RK_TTL_NONE for a value stored without expiry.
 * @return RK_OK, RK_ENOTFOUND on a miss (`*ttl_ms` set to 0), or another error.
 */
RK_EXTERN int rk_cache_ttl(rk_cache *c, const rk_context *ctx, const char *key, uint64_t *ttl_ms);

/** Delete `key`. @return RK_OK even if the key was absent. */
RK_EXTERN int rk_cache_remove(rk_cache *c, const rk_context *ctx, const char *key);

/**
 * Store `n` entries in one round trip (pipelined SETs). All or none are validated first.
 * In a Redis Cluster the SETs are pipelined per node, one node after the other. A node that
 * fails fails the call with an error naming it: the entries sent to the nodes before it (and
 * possibly some of its own) may already be stored, the rest are not.
 */
RK_EXTERN int rk_cache_store_many(rk_cache *c, const rk_context *ctx, const rk_cache_entry *entries,
                                  size_t n);

/**
 * Retrieve `n` keys in one round trip (MGET; in a Redis Cluster one GET per key, pipelined
 * per node). `outs[i]` receives the value of `keys[i]`;
 * a miss leaves `outs[i].data` NULL (an empty value has non-NULL data and len 0).
 * On failure every `outs[i]` is left empty.
 */
RK_EXTERN int rk_cache_retrieve_many(rk_cache *c, const rk_context *ctx, const char *const *keys,
                                     size_t n, rk_buf *outs);

/**
 * Delete `n` keys in one round trip (DEL; in a Redis Cluster one DEL per key, pipelined per
 * node). A node that fails fails the call with an error naming it: keys on the nodes before it
 * (and possibly some of its own) may already be deleted.
 */
RK_EXTERN int rk_cache_remove_many(rk_cache *c, const rk_context *ctx, const char *const *keys,
                                   size_t n);

RK_END_DECLS

#endif
