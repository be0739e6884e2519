/**
 * @file redkit/stats.h
 * @brief What redkit does, for operators: typed events, counters and latency histograms.
 *
 * Two views of the same facts:
 * - **events**, delivered as they happen to one process-wide handler (rk_set_event_handler):
 *   a command done, a connection made or lost, a cluster redirect, a lock granted or handed
 *   off, a memolock value served...;
 * - **statistics** per handle (rk_cache_get_stats(), rk_lock_get_stats(),
 *   rk_memolock_get_stats()): how many of each event and how many failed, public calls by
 *   operation, and latency histograms, counted whether or not a handler is set. They are
 *   updated with atomic increments, so reading them never slows a call, and they cover the
 *   handle's whole life, across close and open.
 *
 * Histograms have fixed log-scale buckets (four per power of two, 1 us to about 19 hours), so
 * their memory is bounded and a quantile is exact to within 25%, reported as the upper bound
 * of its bucket.
 */
#ifndef REDKIT_STATS_H
#define REDKIT_STATS_H

#include "common.h"

RK_BEGIN_DECLS

/** What happened. The comment says what ::rk_event's `name`, `node` and `duration_us` hold. */
typedef enum rk_event_type {
    RK_EVENT_COMMAND,           /**< a command or pipeline answered; name: the (first) command,
                                     node, duration of the round trip, outcome */
    RK_EVENT_CONNECT,           /**< a connection was opened; node, duration of connect and
                                     handshake, outcome (a failed connect too) */
    RK_EVENT_DISCONNECT,        /**< a connection broke and was dropped; node */
    RK_EVENT_RECONNECT,         /**< a call tries again after a lost connection; node */
    RK_EVENT_TOPOLOGY,          /**< the cluster slot map was learnt again and changed */
    RK_EVENT_REDIRECT,          /**< a cluster redirect was followed; name "MOVED" or "ASK",
                                     node: where it pointed */
    RK_EVENT_FAILOVER,          /**< Sentinel named a new master */
    RK_EVENT_LOCK_WAIT,         /**< an acquire found the lock taken and started waiting; key */
    RK_EVENT_LOCK_GRANTED,      /**< a lock was acquired; key, duration of the wait */
    RK_EVENT_LOCK_HANDOFF,      /**< a release handed the lock straight to a waiter; key */
    RK_EVENT_LOCK_TIMEOUT,      /**< an acquire gave up (LOCK_TIMEOUT); key, duration */
    RK_EVENT_LOCK_RELEASED,     /**< a held lock was released; key, duration it was held */
    RK_EVENT_LOCK_LOST,         /**< a watched lock or permit was found lost (_watch); key */
    RK_EVENT_LOCK_RENEWED,      /**< a watched lease was renewed; key, outcome */
    RK_EVENT_MEMO_FETCH_START,  /**< this call won the key and runs the fetch; key */
    RK_EVENT_MEMO_FETCH_DONE,   /**< its fetch returned a value; key, duration of the fetch */
    RK_EVENT_MEMO_FETCH_FAILED, /**< its fetch failed; key, duration, outcome */
    RK_EVENT_MEMO_SERVED,       /**< a waiter got the value another call fetched; key, wait */
    RK_EVENT_MEMO_TIMEOUT,      /**< a waiter gave up; key, duration */
    RK_EVENT_MEMO_TAKEOVER,     /**< a waiter took the fetch over from a winner whose lease
                                     lapsed; key */
    RK_EVENT_NEAR_HIT,          /**< the near cache answered; key */
    RK_EVENT_NEAR_MISS,         /**< the near cache did not have the key; key */
    RK_EVENT_NEAR_INVALIDATION, /**< Redis invalidated a key held locally; key */
    RK_EVENT_NEAR_FLUSH,        /**< the whole near cache was dropped; node */
    RK_EVENT_NEAR_EVICTION,     /**< an entry made room in the near cache (its bounds) */
    RK_EVENT_TYPES              /**< the number of event types in this version */
} rk_event_type;

/** One event, valid during the handler's call only. Absent fields are NULL or 0. */
typedef struct rk_event {
    rk_event_type type;
    const char *component; /**< "cache", "lock", "memolock" or "semaphore" */
    const char *key;       /**< the key as the caller gave it (no prefix), binary-safe */
    size_t key_len;
    const char *node; /**< "host:port" or the socket path */
    const char *name; /**< the command, or the redirect */
    uint64_t duration_us;
    int outcome; /**< RK_OK or the RK_E* code */
} rk_event;

/**
 * Receives events. It is called on whichever thread raised the event (a caller's, or one of
 * redkit's own: the Pub/Sub reader, the lock watchdog, the Sentinel watcher), several at once,
 * so it must be thread-safe, and it holds up that thread while it runs: keep it short.
 * It must not call into redkit: a redkit call made from a handler runs, but the events it
 * raises are counted and not delivered (no recursion), and it must not call
 * rk_set_event_handler() (that would deadlock).
 */
typedef void (*rk_event_fn)(void *ud, const rk_event *ev);

/**
 * Deliver every event of the process to `fn` (NULL: none, the default, which costs one relaxed
 * atomic load per event). Once this returns, the previous handler is not running and will not
 * be called again, so its `ud` may be released.
 */
RK_EXTERN void rk_set_event_handler(rk_event_fn fn, void *ud);

/** A ready-made handler: each event as one line to the log handler (rk_set_log_handler) at
 * RK_LOG_DEBUG, e.g. "lock: lock_granted key 'orders:42' after 1532 us". `ud` is unused. */
RK_EXTERN void rk_event_log(void *ud, const rk_event *ev);

/** "command", "lock_granted", ...; "unknown" for a value out of range. */
RK_EXTERN const char *rk_event_name(rk_event_type type);

/** The latency histograms a handle keeps. */
typedef enum rk_histogram {
    RK_HIST_CALL,      /**< public calls, whole (retries and waits included) */
    RK_HIST_COMMAND,   /**< each command or pipeline round trip */
    RK_HIST_LOCK_WAIT, /**< acquire: from the call to the grant (0 when free at once) */
    RK_HIST_LOCK_HOLD, /**< from the grant to the release */
    RK_HIST_MEMO_WAIT, /**< memolock: a waiter's wait for a value fetched by another */
    RK_HISTOGRAMS      /**< the number of histograms in this version */
} rk_histogram;

/** A snapshot of one handle's statistics. */
typedef struct rk_stats rk_stats;

RK_EXTERN int rk_stats_new(rk_stats **out);
RK_EXTERN void rk_stats_free(rk_stats *s);

/** How many events of `type` the handle raised; with `failed`, only those whose outcome was an
 * error. */
RK_EXTERN uint64_t rk_stats_events(const rk_stats *s, rk_event_type type, bool failed);

/** How many public calls of operation `op` ("store", "retrieve", "acquire", "get", ...: the
 * function's name without its rk_<component>_ prefix) returned; with `failed`, only those
 * that returned an error. 0 for an operation the handle does not have. */
RK_EXTERN uint64_t rk_stats_calls(const rk_stats *s, const char *op, bool failed);

/** The number of samples in a histogram, and their sum in microseconds. */
RK_EXTERN uint64_t rk_stats_count(const rk_stats *s, rk_histogram h);
RK_EXTERN uint64_t rk_stats_sum_us(const rk_stats *s, rk_histogram h);

/** The `q` quantile (0 < q <= 1, e.g. 0.99) of a histogram in microseconds, as the upper bound
 * of the bucket it falls in; 0 when the histogram is empty. */
RK_EXTERN uint64_t rk_stats_quantile_us(const rk_stats *s, rk_histogram h, double q);

/**
 * Write the snapshots of `n` handles to `out` (appended) as one page in the Prometheus text
 * exposition format (version 0.0.4): counters `redkit_events_total` and `redkit_calls_total`,
 * histograms `redkit_<name>_seconds` (buckets at powers of two microseconds), each sample
 * labelled with the handle's `component` and `handle="<handles[i]>"` (escaped; no label when
 * `handles` or `handles[i]` is NULL). The metrics of all handles are grouped per name, as the
 * format requires, so build one page from every handle rather than concatenating pages.
 */
RK_EXTERN int rk_stats_format_prometheus(rk_buf *out, const rk_stats *const *stats,
                                         const char *const *handles, size_t n);

RK_END_DECLS

#endif
