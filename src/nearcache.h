/* The near cache: values this process read from Redis, served again without I/O, and kept honest
 * by Redis itself (server-assisted client-side caching, CLIENT TRACKING in the RESP2 redirect
 * mode, since hiredis 0.14 has no RESP3).
 *
 * The store is an LRU over a hash map, bounded by entries and bytes (keys + values), under one
 * lock; a hit copies the value out. Keys are the Redis keys (prefix included), since that is
 * what invalidations name.
 *
 * Per node, a listener thread holds a connection subscribed to __redis__:invalidate and knows
 * its CLIENT ID; every invalidation it receives drops the keys it names. A data connection to
 * the node learns its listener when it opens (the connection hook); the first cacheable read on
 * it after the listener's id changed sends `CLIENT TRACKING on REDIRECT <id>` in the same write,
 * before the read, so no read is cached unless its connection is tracked by a live listener.
 *
 * Correctness rules, each against a way of serving a stale value:
 * - a read marks its key pending (a ticket) before it is sent; an invalidation or a flush that
 *   arrives before the reply removes the mark, and the reply is then returned but not cached;
 * - the listener is the source of truth: when it drops (EOF, error, no answer to PING) or an
 *   invalidation says "all" (FLUSHALL, FLUSHDB), everything is flushed, and nothing is cached
 *   until it is back and the connection re-pointed at its new id;
 * - a tracked data connection that closes takes its tracking with it (Redis stops invalidating
 *   the keys it read), so that flushes everything too;
 * - a miss reads GET and PTTL in one round trip; the entry expires locally no later than the
 *   key does in Redis;
 * - the handle's own writes drop their keys after the write's reply (pending marks included),
 *   so a read after a write in this process never sees the older value. */
#ifndef RK_NEARCACHE_H
#define RK_NEARCACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "redkit/common.h"
#include "resolve.h"
#include "stats.h"

typedef struct rk__nearcache rk__nearcache;

/* A near cache bounded by o->near_cache_size entries and o->near_cache_bytes. It raises its
 * invalidation, flush and eviction events into `stats` (the handle's, which outlives it; the
 * caller raises hits and misses, knowing the key as given), delivering them to a handler only
 * where no lock is held (a flush noticed under a pool's lock is delivered by the listener). No
 * thread starts before the first connection. */
int rk__nearcache_new(rk__nearcache **out, const rk__options *o, rk__stats *stats);

/* Stop the listeners (joining their threads) and free everything. NULL-safe. Every connection
 * that uses the hook must be gone. */
void rk__nearcache_free(void *nc);

/* In a forked child: the listener threads are the parent's, so nothing is served or cached any
 * more in this process (the parent's listeners keep the parent's cache honest). */
void rk__nearcache_after_fork(void *nc);

/* The connection hook (conn.h) that ties each new data connection to its node's listener. */
void rk__nearcache_hook(rk__nearcache *nc, rk__conn_hook *hook);

/* A hit: a copy of the value of `key` (the Redis key) in `*out` (its old content freed): RK_OK.
 * RK_ENOTFOUND on a miss (out untouched), RK_ENOMEM. */
int rk__nearcache_get(rk__nearcache *nc, const char *key, size_t klen, rk_buf *out);

/* What a read on connection `c` may cache, decided just before its commands are encoded. */
typedef struct rk__nearcache_read {
    void *listener;    /* c's node's listener, NULL: nothing is cached */
    uint64_t epoch;    /* the listener's state seen: a change since means "do not cache" */
    uint64_t redirect; /* != 0: send CLIENT TRACKING on REDIRECT <redirect> first */
    uint64_t sent_ms;  /* monotonic time before the read was sent: the base of its TTL */
} rk__nearcache_read;

void rk__nearcache_prepare(rk__nearcache *nc, rk__conn *c, rk__nearcache_read *rd);

/* The three arguments of CLIENT TRACKING on REDIRECT <id> ("<id>" written into `digits`). */
int rk__nearcache_tracking_cmd(const rk__nearcache_read *rd, char digits[24], const char **argv,
                               size_t *argvlen);

/* The reply to that command: tracking is on for `c` when it is +OK. False otherwise. */
bool rk__nearcache_tracked(rk__conn *c, const rk__nearcache_read *rd, const redisReply *r);

/* Mark `key` pending before its read is sent; returns the ticket, 0 when it will not be
 * cached (the listener is down or changed, or out of memory). */
uint64_t rk__nearcache_begin(rk__nearcache *nc, const rk__nearcache_read *rd, const char *key,
                             size_t klen);

/* The read's reply: cache `value` (`vlen` bytes) for `pttl_ms` (-1: no expiry) if the mark of
 * `ticket` is still there, else just remove our mark. `value` NULL or pttl_ms < -1: the key is
 * not cached. Ticket 0 is a no-op. */
void rk__nearcache_fill(rk__nearcache *nc, const rk__nearcache_read *rd, const char *key,
                        size_t klen, uint64_t ticket, const char *value, size_t vlen,
                        long long pttl_ms);

/* This handle wrote `key`: drop its entry or mark. */
void rk__nearcache_drop(rk__nearcache *nc, const char *key, size_t klen);

/* Entries and bytes held now. */
void rk__nearcache_size(rk__nearcache *nc, uint64_t *entries, uint64_t *bytes);

#endif
