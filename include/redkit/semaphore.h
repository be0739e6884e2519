/**
 * @file redkit/semaphore.h
 * @brief Distributed semaphore on Redis: at most `limit` holders of a key at once.
 *
 * A permit is a member of a sorted set scored by its expiry on the server's clock, so each one
 * ends on its own lease (a crashed holder frees its permit after its TTL). Waiters queue first
 * come, first served, and a release hands its permit straight to the first live waiter,
 * announced on that waiter's own channel, as rk_lock does. Every operation is one Lua script.
 * Names (docs/wire-format.md): `redkit:sem:{<prefix><key>}`, its queue and heartbeats; a
 * semaphore never touches `<prefix><key>` itself, so a lock and a semaphore of the same key do not
 * exclude each other. In a Redis Cluster all of a key's names share its slot.
 *
 * Limits: the limit belongs to each call, not to the key. A caller is admitted while fewer permits
 * than its own limit are held (and no live waiter is ahead of it), so a caller passing a larger
 * limit may be admitted when one passing a smaller limit would wait, and a waiter at the head of
 * the queue whose limit is reached holds back those behind it (first come, first served). Lowering
 * the limit takes effect as holders leave; raising it, at once. Give every caller of one key the
 * same limit unless that is what you want.
 *
 * Ownership: a handle holds at most one permit per key, and remembers its token, so release()
 * and extend() need none. All threads of a handle act as the same holder.
 *
 * Leases: a permit expires after its TTL even if its holder still runs, as a lock does
 * (redkit/lock.h). rk_semaphore_watch() renews a permit from a background thread for as long as
 * it is held, and reports its loss to a handler.
 *
 * Thread safety: all functions except rk_semaphore_free() are thread-safe.
 *
 * Configuration: the connection/credential keys of rk_lock, `options.prefix`, `options.timeout`
 * and `options.retry_timeout` (ms, 100): the longest a waiter goes without looking again.
 */
#ifndef REDKIT_SEMAPHORE_H
#define REDKIT_SEMAPHORE_H

#include "config.h"
#include "stats.h"

RK_BEGIN_DECLS

typedef struct rk_semaphore rk_semaphore;

RK_EXTERN int rk_semaphore_new(rk_semaphore **out);
RK_EXTERN int rk_semaphore_configure(rk_semaphore *s, const rk_config *cfg);
RK_EXTERN int rk_semaphore_set_references(rk_semaphore *s, const rk_references *refs);
RK_EXTERN int rk_semaphore_open(rk_semaphore *s, const rk_context *ctx);
RK_EXTERN bool rk_semaphore_is_open(const rk_semaphore *s);

/** Close connections; waiters in rk_semaphore_acquire() leave the queue and return
 *  RK_ENOTOPEN. Held permits are not released (they expire). Watched permits are no longer
 *  renewed, without a lost callback; a callback already running has returned when close does,
 *  unless close is called from it. */
RK_EXTERN int rk_semaphore_close(rk_semaphore *s, const rk_context *ctx);

/** Close if needed and free. NULL-safe. Not from a lost handler. */
RK_EXTERN void rk_semaphore_free(rk_semaphore *s);

/** Copy this handle's statistics (redkit/stats.h: its commands and connection events) into
 * `out` (from rk_stats_new()). Safe at any time, from any thread, open or not. */
RK_EXTERN int rk_semaphore_get_stats(rk_semaphore *s, rk_stats *out);

/**
 * One attempt: `*acquired` is true if one of the `limit` permits of `key` is now ours for
 * `ttl_ms`. A key whose permit this handle still holds is not entered again (`*acquired` false).
 * @return RK_OK (whatever the outcome), RK_EINVAL (NULL/empty key, limit 0, ttl_ms 0), or an
 *         I/O error.
 */
RK_EXTERN int rk_semaphore_try_acquire(rk_semaphore *s, const rk_context *ctx, const char *key,
                                       uint32_t limit, uint64_t ttl_ms, bool *acquired);

/**
 * Acquire a permit, waiting up to `timeout_ms` (0: one attempt) in a first-come, first-served
 * queue. A release hands its permit to the next waiter; waiters also look again at least every
 * `options.retry_timeout` ms (a permit that expired is noticed then). A waiter that runs out of
 * time leaves the queue within a further 250 ms at most.
 * @return RK_OK, RK_ETIMEDOUT ("SEMAPHORE_TIMEOUT", category "Conflict"), RK_EINVAL (limit 0,
 *         ttl_ms 0, or this handle already holds a live permit of `key`), RK_ENOTOPEN, ...
 */
RK_EXTERN int rk_semaphore_acquire(rk_semaphore *s, const rk_context *ctx, const char *key,
                                   uint32_t limit, uint64_t ttl_ms, uint64_t timeout_ms);

/**
 * Give back the permit this handle holds on `key` (to the first live waiter, if any). A watch of
 * `key` ends first, without a lost callback, even if the release then fails.
 * @return RK_OK if released, not held or already expired.
 */
RK_EXTERN int rk_semaphore_release(rk_semaphore *s, const rk_context *ctx, const char *key);

/**
 * Make the permit this handle holds on `key` expire `ttl_ms` from now.
 * @return RK_OK, or RK_ENOTOWNER if the handle holds none or it expired.
 */
RK_EXTERN int rk_semaphore_extend(rk_semaphore *s, const rk_context *ctx, const char *key,
                                  uint64_t ttl_ms);

/**
 * Called once, from the watchdog thread, when a watched permit turns out to be lost: a renewal
 * found it gone (expired, released by its token elsewhere, removed from the server), or no
 * renewal got through for a whole TTL (Redis unreachable: the permit has expired whatever Redis
 * says later). rk_last_error() on that thread tells which. The key is no longer watched. The
 * handler may call this handle's functions (release, acquire, watch, even close), except
 * rk_semaphore_free().
 */
typedef void (*rk_semaphore_lost_fn)(void *ud, const char *key);

/**
 * Set (or clear with NULL) the handle's lost handler, for every watched key. Once this returns
 * the previous handler is not running (unless this is called from it) and will not be called
 * again, so its `ud` may be released. Works before open, and survives close and open.
 * @return RK_OK, or RK_EINVAL if `s` is NULL.
 */
RK_EXTERN int rk_semaphore_set_lost_handler(rk_semaphore *s, rk_semaphore_lost_fn fn, void *ud);

/**
 * Renew the permit this handle holds on `key` every ttl/3 from a background thread until it is
 * released or the handle closes; RK_ENOTOWNER if the handle holds none.
 *
 * ttl is the `ttl_ms` of the acquisition that got the permit. The permit is renewed once right
 * away, within this call, so a permit already lost is reported here. Each renewal is
 * rk_semaphore_extend() by the watched acquisition's token: it never re-creates a released or
 * expired permit, nor touches a later acquisition of the key. A renewal without an answer
 * (connection lost, timeout) is retried at the next tick; the first failure in a row is logged as
 * a warning (rk_set_log_handler()). A renewal that finds the permit gone, or a whole TTL without
 * a renewal that got through, calls the lost handler once and ends the watch.
 * rk_semaphore_release() ends the watch before releasing, close and free end them all, all
 * without a callback. Watching a watched key again starts over. One thread per handle, started
 * on the first watch; after fork() a child watches nothing until it calls this itself.
 * @return RK_OK, RK_ENOTOWNER (not held, or found lost), RK_EINVAL, RK_ENOTOPEN, or the error
 *         of the first renewal (the key is then not watched).
 */
RK_EXTERN int rk_semaphore_watch(rk_semaphore *s, const char *key);

RK_END_DECLS

#endif
