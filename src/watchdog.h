/* A lease watchdog: one thread that keeps an owner's leases alive. It knows nothing about Redis:
 * the owner (a lock handle) renews a lease through one callback and hears through another that
 * a lease is lost.
 *
 * A watched key is renewed every ttl/3. A renewal that gets no answer (connection, timeout) is
 * retried at the next tick. The lease is lost when a renewal says so, or when a whole TTL has
 * passed since the last renewal that worked: it has then expired wherever it is kept, answer or
 * not. A lost key is reported once and no longer watched.
 *
 * The thread starts on the first watch and sleeps on a monotonic condition variable until the
 * next renewal is due. It holds no lock while it renews, logs or reports, so the callbacks may
 * call the watchdog back. A key unwatched (or stopped) while its renewal is in flight is never
 * reported, whatever that renewal found: unwatch before ending a lease. */
#ifndef RK_WATCHDOG_H
#define RK_WATCHDOG_H

#include <stdint.h>

typedef struct rk__watchdog rk__watchdog;

typedef enum {
    RK__LEASE_RENEWED, /* it runs for another TTL from the renewal */
    RK__LEASE_FAILED,  /* no answer: retried at the next tick */
    RK__LEASE_LOST     /* it is gone: expired, released or taken over */
} rk__lease;

/* Renew `lease` (the string given to watch: a lock token) on `key` for `ttl_ms`, answering
 * within `timeout_ms`, the time the lease has left: a later answer could not save it. A failure
 * leaves its reason in rk_last_error(). */
typedef rk__lease (*rk__renew_fn)(void *ud, const char *key, const char *lease, uint64_t ttl_ms,
                                  uint64_t timeout_ms);

/* `key` is lost; rk_last_error() says why (the renewal's error, or RK_ETIMEDOUT). */
typedef void (*rk__lost_fn)(void *ud, const char *key);

/* `renew` and `noticed` (optional: the owner hears of a loss, before the lost handler) get
 * `ud`. */
int rk__watchdog_new(rk__watchdog **out, rk__renew_fn renew, rk__lost_fn noticed, void *ud);

/* Stop, wait for the thread, free. Not from the thread itself (a lost handler). NULL-safe. */
void rk__watchdog_free(rk__watchdog *w);

/* Set (NULL: clear) the lost handler. Once this returns, the previous one is not running (unless
 * this is called from it) and will not be called again, so its `ud` may be released. */
void rk__watchdog_set_lost(rk__watchdog *w, rk__lost_fn fn, void *ud);

/* Watch `lease` on `key`, last renewed at `since` (rk__now_ms), replacing any watch of `key`;
 * the first renewal is due ttl/3 after `since`. Starts the thread if needed. */
int rk__watchdog_watch(rk__watchdog *w, const char *key, const char *lease, uint64_t ttl_ms,
                       uint64_t since);

/* Stop renewing `key` if the lease watched on it is `lease` (NULL: whichever), without a
 * callback, now or from a renewal in flight. */
void rk__watchdog_unwatch(rk__watchdog *w, const char *key, const char *lease);

/* Unwatch every key and tell the thread to end, without waiting for it: a renewal in flight
 * ends when the owner's client closes. rk__watchdog_join() then waits for the thread. */
void rk__watchdog_stop(rk__watchdog *w);

/* Wait until a stopped thread has ended. Returns at once when called from the thread itself (a
 * lost handler closing its handle: the thread ends after the handler) or when a watch kept the
 * thread on meanwhile. */
void rk__watchdog_join(rk__watchdog *w);

/* In a forked child: forget the parent's keys and thread, which does not exist here. The lost
 * handler stays. */
void rk__watchdog_after_fork(rk__watchdog *w);

#endif
