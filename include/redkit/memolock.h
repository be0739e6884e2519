/**
 * @file redkit/memolock.h
 * @brief Stampede-proof cache fill across processes, wire-compatible with redis-memolock.
 *
 * Many callers ask for the same resource at once; exactly one of them (the lock winner)
 * computes it, stores it in Redis with a TTL and publishes it; every other caller receives that
 * value through Pub/Sub as soon as it exists, without polling and without computing it again.
 *
 * Wire protocol (shared with the Go and C# redis-memolock clients), for tag T and id I:
 * - value `T:I` (a Redis string, the raw bytes);
 * - lock `T/lock:I` holding a fresh random owner token while someone computes;
 * - channel `T/notif:I`; the published payload is the value itself, and the value is always
 *   SET before it is PUBLISHed.
 * All three names start with `options.prefix` (empty by default): with prefix P they are
 * `PT:I`, `PT/lock:I` and `PT/notif:I`, and a Go or C# client sharing them must use the same
 * prefix in its tag. The winner stores, publishes and releases its lock in one owner-checked
 * Lua script. An external producer completes a rk_memolock_get_external() call with
 * `SET PT:I <value> PX <ttl>` then `PUBLISH PT/notif:I <value>`; rk_memolock_get_external2()
 * hands it these two names, so it need not rebuild them.
 *
 * Subscriptions: each process subscribes with SUBSCRIBE to the channels of the ids it is
 * waiting for (one shared connection per memolock object), not with the reference's
 * `PSUBSCRIBE T/notif:*`. A pattern would send every value computed anywhere to every process;
 * per-id channels carry only what a process waits for, at the price of one SUBSCRIBE round trip
 * for a cold id (channels stay subscribed for a second after their last waiter leaves).
 *
 * Guarantees the reference lacks:
 * - one deadline (`timeout_ms`, monotonic clock) bounds the whole call for waiters: every
 *   connect, command, retry and re-check (a stalled server included); the fetch callback itself
 *   is not interrupted, so a call that runs it returns when it ends;
 * - if the winner's fetch fails, its lock is released and its caller gets RK_EFETCH; if the
 *   winner dies its lock expires after `options.lock_timeout`; waiters re-check at least every
 *   `options.retry_timeout` ms and take over with `SET NX` when the lock is gone, but only when
 *   their deadline leaves a whole lease (`options.lock_timeout`) for the fetch: with less time
 *   left a waiter returns RK_ETIMEDOUT at its deadline and leaves the lock to the next caller;
 * - after the subscriber connection reconnects every waiter re-reads its key (Pub/Sub loses
 *   messages sent while disconnected);
 * - inside one process, concurrent calls for the same id share one Redis round trip and one
 *   wait (singleflight): they get the same value, or the same error;
 * - timeouts, late hits and close never crash or leak; close() returns waiters RK_ENOTOPEN
 *   promptly, even against a stalled server;
 * - after fork() the child's first call drops the inherited connections and calls in flight.
 *
 * This is about doing less work, not about mutual exclusion for correctness: a fetch that runs
 * longer than its lease can overlap with a successor's (see docs/RELIABILITY.md).
 *
 * Thread safety: all functions except rk_memolock_free() are thread-safe.
 *
 * Configuration: the connection and credential keys of rk_cache, plus `options.resource_tag`
 * (required), `options.lock_timeout` (ms, 5000: the winner's lease), `options.retry_timeout`
 * (ms, 100), `options.default_ttl` (ms, 60000: used when a fetch sets ttl 0).
 */
#ifndef REDKIT_MEMOLOCK_H
#define REDKIT_MEMOLOCK_H

#include "config.h"
#include "stats.h"

RK_BEGIN_DECLS

typedef struct rk_memolock rk_memolock;

/** Handed to a renewable fetch; valid only during the fetch call. */
typedef struct rk_memolock_renewer rk_memolock_renewer;

/**
 * Compute the value: fill `*value` (with rk_buf_set) and `*ttl_ms` (0: options.default_ttl,
 * RK_TTL_NONE: no expiry). Return 0, or non-zero to fail (the call returns RK_EFETCH).
 */
typedef int (*rk_memolock_fetch_fn)(void *ud, rk_buf *value, uint64_t *ttl_ms);

/** As ::rk_memolock_fetch_fn, able to extend its lease with rk_memolock_renew(). */
typedef int (*rk_memolock_renewable_fetch_fn)(void *ud, rk_memolock_renewer *renew, rk_buf *value,
                                              uint64_t *ttl_ms);

/**
 * Start external work that will SET and PUBLISH the value (see the wire protocol above).
 * Return 0 if it started; non-zero fails the call with RK_EFETCH and releases the lock.
 */
typedef int (*rk_memolock_external_fn)(void *ud);

/**
 * As ::rk_memolock_external_fn, told where the value goes: `value_key` is `<prefix><tag>:<id>`
 * (SET the value there) and `channel` is `<prefix><tag>/notif:<id>` (then PUBLISH the value
 * there). Both are valid only during the callback: copy them if the producer needs them later.
 */
typedef int (*rk_memolock_external2_fn)(void *ud, const char *value_key, const char *channel);

RK_EXTERN int rk_memolock_new(rk_memolock **out);

/** Copy and validate the configuration; `options.resource_tag` is required. */
RK_EXTERN int rk_memolock_configure(rk_memolock *m, const rk_config *cfg);
RK_EXTERN int rk_memolock_set_references(rk_memolock *m, const rk_references *refs);
RK_EXTERN int rk_memolock_open(rk_memolock *m, const rk_context *ctx);
RK_EXTERN bool rk_memolock_is_open(const rk_memolock *m);

/** Close; pending calls return RK_ENOTOPEN promptly. */
RK_EXTERN int rk_memolock_close(rk_memolock *m, const rk_context *ctx);

/** Close if needed and free. NULL-safe. */
RK_EXTERN void rk_memolock_free(rk_memolock *m);

/** Copy this handle's statistics (redkit/stats.h) into `out` (from rk_stats_new()). Safe at any
 * time, from any thread, open or not; it never waits for a call. */
RK_EXTERN int rk_memolock_get_stats(rk_memolock *m, rk_stats *out);

/**
 * The value of `id`: from Redis if present, else computed by `fn` in exactly one caller across
 * all processes and handed to the others. `*out` receives a copy (its old content is freed).
 * @return RK_OK; RK_ETIMEDOUT ("TIMEOUT") when no value arrived within `timeout_ms`;
 *         RK_EFETCH when this caller's `fn` failed (or that of the in-process caller it shared
 *         a wait with); RK_ENOTOPEN on close; RK_EINVAL, RK_EIO, ...
 */
RK_EXTERN int rk_memolock_get(rk_memolock *m, const rk_context *ctx, const char *id,
                              uint64_t timeout_ms, rk_memolock_fetch_fn fn, void *ud, rk_buf *out);

/** As rk_memolock_get(), with a fetch that can extend its lease. */
RK_EXTERN int rk_memolock_get_renewable(rk_memolock *m, const rk_context *ctx, const char *id,
                                        uint64_t timeout_ms, rk_memolock_renewable_fetch_fn fn,
                                        void *ud, rk_buf *out);

/**
 * Extend the running fetch's lease to `extension_ms` from now (owner-checked, milliseconds).
 * @return RK_OK, or RK_ENOTOWNER if the lease was lost (expired or taken over).
 */
RK_EXTERN int rk_memolock_renew(rk_memolock_renewer *r, uint64_t extension_ms);

/**
 * As rk_memolock_get(), but the winner calls `fn` to start an external producer and then waits
 * like everyone else for the value to be SET and PUBLISHed.
 *
 * A call starts its producer at most once. After starting it, the call only waits for the
 * value until its deadline: if the producer outlives the lease (`options.lock_timeout`), the
 * lock expires but this call does not take it again, and returns RK_ETIMEDOUT at its deadline
 * if no value came. Another call (from any process, or a later one from this process) that
 * finds the lock expired may start a second producer: give the lease the producer's whole
 * running time, since nothing renews it.
 */
RK_EXTERN int rk_memolock_get_external(rk_memolock *m, const rk_context *ctx, const char *id,
                                       uint64_t timeout_ms, rk_memolock_external_fn fn, void *ud,
                                       rk_buf *out);

/**
 * As rk_memolock_get_external(), with a producer that is handed the value key and channel
 * names (prefix included), so it completes the call without rebuilding them.
 */
RK_EXTERN int rk_memolock_get_external2(rk_memolock *m, const rk_context *ctx, const char *id,
                                        uint64_t timeout_ms, rk_memolock_external2_fn fn, void *ud,
                                        rk_buf *out);

RK_END_DECLS

#endif
