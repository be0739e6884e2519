/**
 * @file redkit/lock.h
 * @brief Distributed lock on Redis: the pip-services RedisLock component, made safe.
 *
 * Wire format (compatible with the pip-services Node/Go/Python/Java/.NET ports):
 * - acquire: `SET <prefix><key> <token> NX PX <ttl>`, token = 32 lowercase hex characters from the
 *   OS CSPRNG, fresh for every acquisition;
 * - waiting: redkit waiters queue first come, first served (`redkit:lock-queue:<prefix><key>`);
 * - release: one Lua script, only if the key still holds our token, hands the lock to the first
 *   live waiter (sets the key to its token) and publishes that token on the waiter's own
 *   channel (`redkit:lock-wake:<id>`, one per handle), so a release wakes exactly one process;
 *   nobody hearing it means the waiter's process is gone, and the lock goes to the next one, or
 *   is deleted. pip-services services neither queue nor publish: a redkit waiter behind one of
 *   them notices the release at its next poll (every `options.retry_timeout` ms). See
 *   docs/wire-format.md.
 *
 * Ownership: the handle remembers the token of each key it acquired, so release() needs no
 * token. Every thread using the handle acts as the same owner: a thread may release a lock
 * another thread of the same handle acquired. Give independent owners their own handles.
 *
 * Thread safety: all functions except rk_lock_free() are thread-safe. One subscriber
 * connection per handle, opened on the first wait, carries the release notifications.
 *
 * Leases: a lock expires after its TTL even if its holder still runs (process pause, GC, slow
 * network). redkit never deletes a successor's lock, but cannot stop a paused holder from
 * acting after its lease ended; see docs/RELIABILITY.md. rk_lock_watch() renews a lease from a
 * background thread for as long as it is held, and reports its loss to a handler.
 *
 * Configuration: the connection/credential keys of rk_cache plus `options.retry_timeout`
 * (ms, 100): the longest a waiter goes without re-trying; `options.lock_fencing` (false):
 * number every grant (see rk_lock_fencing_token()); `options.lock_yield_to_pollers` (ms, 0 =
 * off): once a key has passed from waiter to waiter without being free for that long, the next
 * release frees it and queued redkit waiters stand back for `options.retry_timeout` + 10 ms, so
 * that clients that poll (the pip-services ports) get a turn.
 */
#ifndef REDKIT_LOCK_H
#define REDKIT_LOCK_H

#include "config.h"
#include "stats.h"

RK_BEGIN_DECLS

typedef struct rk_lock rk_lock;

RK_EXTERN int rk_lock_new(rk_lock **out);
RK_EXTERN int rk_lock_configure(rk_lock *l, const rk_config *cfg);
RK_EXTERN int rk_lock_set_references(rk_lock *l, const rk_references *refs);
RK_EXTERN int rk_lock_open(rk_lock *l, const rk_context *ctx);
RK_EXTERN bool rk_lock_is_open(const rk_lock *l);

/**
 * Close connections; waiters in rk_lock_acquire() leave the queue and return RK_ENOTOPEN.
 * Watched locks are no longer renewed (and expire), without a lost callback; a callback already
 * running has returned when close does, unless close is called from it.
 */
RK_EXTERN int rk_lock_close(rk_lock *l, const rk_context *ctx);

/** Close if needed and free. Held locks are not released (they expire). NULL-safe. Not from a
 *  lost handler. */
RK_EXTERN void rk_lock_free(rk_lock *l);

/** Copy this handle's statistics (redkit/stats.h) into `out` (from rk_stats_new()). Safe at any
 * time, from any thread, open or not; it never waits for a call. */
RK_EXTERN int rk_lock_get_stats(rk_lock *l, rk_stats *out);

/**
 * One attempt: `*acquired` is true if the lock is now ours for `ttl_ms`.
 * A key this handle already holds is not re-entered (`*acquired` false).
 * @return RK_OK (whatever the outcome), RK_EINVAL (NULL/empty key, ttl_ms 0), or an I/O error.
 */
RK_EXTERN int rk_lock_try_acquire(rk_lock *l, const rk_context *ctx, const char *key,
                                  uint64_t ttl_ms, bool *acquired);

/**
 * Acquire, waiting up to `timeout_ms` (0: one attempt) in a first-come, first-served queue.
 * The holder's release hands the lock straight to the next waiter; waiters also poll at least
 * every `options.retry_timeout` ms. `timeout_ms` bounds the whole call, a stalled server
 * included (one attempt, timeout 0, gets `options.timeout`); a waiter that runs out of time
 * leaves the queue within a further 250 ms at most. After fork() a child does not hold the
 * locks its parent acquired through the same handle.
 * @return RK_OK, RK_ETIMEDOUT ("LOCK_TIMEOUT", category "Conflict"), RK_ENOTOPEN, ...
 */
RK_EXTERN int rk_lock_acquire(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms,
                              uint64_t timeout_ms);

/**
 * Release the lock this handle holds on `key`: deleted only if it still carries our token.
 * A watch of `key` ends first, without a lost callback, even if the release then fails.
 * @return RK_OK if released, not held, expired or taken over by someone else.
 */
RK_EXTERN int rk_lock_release(rk_lock *l, const rk_context *ctx, const char *key);

/**
 * Extend a lock we hold to expire `ttl_ms` from now.
 * @return RK_OK, or RK_ENOTOWNER if it expired or someone else holds it.
 */
RK_EXTERN int rk_lock_extend(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms);

/** Size of a lock token: 32 lowercase hex characters and a NUL. */
#define RK_LOCK_TOKEN_SIZE 33

/**
 * Copy the token of the lock this handle holds on `key`, to hand the lease to another process
 * (which releases it with rk_lock_release_token()). The handle still considers it held.
 * @return RK_OK, or RK_ENOTOWNER if this handle holds no lock on `key`.
 */
RK_EXTERN int rk_lock_token(rk_lock *l, const char *key, char token[RK_LOCK_TOKEN_SIZE]);

/**
 * The fencing number of the lock this handle holds on `key`: every grant of the key (try,
 * acquire, hand-off) takes the next value of a counter kept in Redis
 * (`redkit:lock-fence:<prefix><key>`, no expiry), so numbers are strictly increasing across all
 * holders, processes and restarts of redkit (not across a Redis restart that loses data). Pass
 * it to the resource the lock protects, which rejects a number lower than the highest it has
 * seen: a holder paused past its lease is then refused after its successor wrote.
 * @return RK_OK, RK_EINVAL (BAD_CONFIG) when `options.lock_fencing` is off, RK_ENOTOWNER when the
 *         handle does not hold `key`.
 */
RK_EXTERN int rk_lock_fencing_token(rk_lock *l, const char *key, uint64_t *out);

/**
 * Release the lock on `key` if `token` still holds it, whoever acquired it: the same atomic
 * compare-and-delete as rk_lock_release(), handing the lock to the next waiter. If this handle
 * watches `key` with that token, the watch ends first, without a lost callback.
 * @return RK_OK if released, RK_ENOTOWNER if `token` does not hold it (expired or another
 *         owner's), RK_EINVAL if `token` is not a token.
 */
RK_EXTERN int rk_lock_release_token(rk_lock *l, const rk_context *ctx, const char *key,
                                    const char *token);

/**
 * Called once, from the watchdog thread, when a watched lock turns out to be lost: a renewal
 * found the key gone or another owner's (rk_lock_extend()'s RK_ENOTOWNER), or no renewal got
 * through for a whole TTL (Redis unreachable: the lease has expired whatever Redis says later).
 * rk_last_error() on that thread tells which. The key is no longer watched. The handler may call
 * this handle's functions (release, acquire, watch, even close), except rk_lock_free().
 */
typedef void (*rk_lock_lost_fn)(void *ud, const char *key);

/**
 * Set (or clear with NULL) the handle's lost handler, for every watched key. Once this returns
 * the previous handler is not running (unless this is called from it) and will not be called
 * again, so its `ud` may be released. Works before open, and survives close and open.
 * @return RK_OK, or RK_EINVAL if `l` is NULL.
 */
RK_EXTERN int rk_lock_set_lost_handler(rk_lock *l, rk_lock_lost_fn fn, void *ud);

/**
 * Renew the held lock `key` every ttl/3 from a background thread until it is released or the
 * handle closes; RK_ENOTOWNER if the handle does not hold `key`.
 *
 * ttl is the `ttl_ms` of the acquisition that got the lock. The lock is renewed once right away,
 * within this call, so a lease already lost is reported here. Each renewal is rk_lock_extend()'s
 * compare-and-PEXPIRE, by the watched acquisition's token: it never re-creates a released key,
 * nor touches a later acquisition of it. A renewal without an answer (connection lost, timeout)
 * is retried at the next tick; the first failure in a row is logged as a warning
 * (rk_set_log_handler()). A renewal that finds the lock lost, or a whole TTL without a renewal
 * that got through, calls the lost handler once and ends the watch. rk_lock_release() and
 * rk_lock_release_token() end the watch before releasing, close and free end them all, all
 * without a callback. Watching a watched key again starts over. One thread per handle, started
 * on the first watch; after fork() a child watches nothing until it calls this itself.
 * @return RK_OK, RK_ENOTOWNER (not held, or found lost), RK_EINVAL, RK_ENOTOPEN, or the error
 *         of the first renewal (the key is then not watched).
 */
RK_EXTERN int rk_lock_watch(rk_lock *l, const char *key);

RK_END_DECLS

#endif
