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
 *  RK_ENOTOPEN. Held permits are not released (they expire). */
RK_EXTERN int rk_semaphore_close(rk_semaphore *s, const rk_context *ctx);

/** Close if needed and free. NULL-safe. */
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
 * Give back the permit this handle holds on `key` (to the first live waiter, if any).
 * @return RK_OK if released, not held or already expired.
 */
RK_EXTERN int rk_semaphore_release(rk_semaphore *s, const rk_context *ctx, const char *key);

/**
 * Make the permit this handle holds on `key` expire `ttl_ms` from now.
 * @return RK_OK, or RK_ENOTOWNER if the handle holds none or it expired.
 */
RK_EXTERN int rk_semaphore_extend(rk_semaphore *s, const rk_context *ctx, const char *key,
                                  uint64_t ttl_ms);

RK_END_DECLS

#endif
