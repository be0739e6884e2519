/* Every name redkit puts on the wire is built here, and only here: cache and lock keys, the lock
 * queue, its heartbeats and its channel, the semaphore's permits, queue and channel, and the
 * memolock's value, lock and channel. docs/wire-format.md lists them; tests/unit/test_keys.c checks
 * each builder against that document's examples, so the two cannot drift apart. */
#ifndef RK_KEYS_H
#define RK_KEYS_H

#include <stddef.h>

#include "resolve.h"

/* A name, in `buf` when it fits, else on the heap; with no prefix a key is used as given. */
#define RK__NAME_BUF 200
typedef struct rk__name {
    const char *str;
    size_t len;
    char *heap;
    char buf[RK__NAME_BUF];
} rk__name;

#define RK__NAME_INIT                                                                              \
    {                                                                                              \
        NULL, 0, NULL, { 0 }                                                                       \
    }

void rk__name_free(rk__name *n); /* leaves it empty; NULL-safe */

/* `<p><key>`: a cache key, or a lock key (the pip-services format). */
int rk__name_key(rk__name *n, const rk__options *o, const char *key);

/* The same into a caller's buffer of at least rk__name_key_len() bytes (batches build all their
 * keys in one block); returns the end of what was written. */
size_t rk__name_key_len(const rk__options *o, const char *key);
char *rk__name_key_put(char *dst, const rk__options *o, const char *key);

/* From a lock key `K`: `redkit:lock-queue:{K}` (list of waiting tokens),
 * `redkit:lock-waiters:{K}` (hash of their heartbeats) and `redkit:lock-fence:{K}` (the
 * fencing counter). When K has a hash tag of its own (`user:{1}`) it serves, and the names are
 * `redkit:lock-queue:K`: either way they hash to K's cluster slot. */
int rk__name_lock_queue(rk__name *n, const rk__name *lock_key);
int rk__name_lock_waiters(rk__name *n, const rk__name *lock_key);
int rk__name_lock_fence(rk__name *n, const rk__name *lock_key);

/* With options.lock_mode=quorum, `redkit:lock-freed:{K}`: each node's release announces itself
 * there, and waiters subscribed on one node try again at once. */
int rk__name_lock_freed(rk__name *n, const rk__name *lock_key);

/* The channel where a lock handle's waiters hear that the lock was handed to them; `id` is the
 * client's (one per open, 32 hex). `redkit:lock-wake:<id>` for every key on one server (one
 * subscription per handle); in a cluster, where the release script publishes on K's shard,
 * `redkit:lock-wake:<id>:{K}` (or `:{tag}` with K's own tag) for lock key `k`. */
int rk__name_lock_inbox(rk__name *n, const char *id, const rk__name *k);

/* From a semaphore key `K` (`<p><key>`), in a namespace of its own so that a lock and a
 * semaphore of the same key never meet: `redkit:sem:{K}` (sorted set of the permits held,
 * token -> expiry on the server's clock), `redkit:sem-queue:{K}` and `redkit:sem-waiters:{K}`
 * (the waiters, as the lock's), hash-tagged like the lock's names. */
int rk__name_sem(rk__name *n, const rk__name *sem_key);
int rk__name_sem_queue(rk__name *n, const rk__name *sem_key);
int rk__name_sem_waiters(rk__name *n, const rk__name *sem_key);
/* A semaphore handle's inbox: `redkit:sem-wake:<id>`, or `redkit:sem-wake:<id>:{K}` in a
 * cluster, as rk__name_lock_inbox(). */
int rk__name_sem_inbox(rk__name *n, const char *id, const rk__name *k);

/* For tag T (options.resource_tag) and id I: `<p>T:I` (the value), `<p>T/lock:I` (the
 * computing caller's lock) and `<p>T/notif:I` (the channel carrying the value): the names of
 * redis-memolock (Go, C#). */
int rk__name_memo_value(rk__name *n, const rk__options *o, const char *id);
int rk__name_memo_lock(rk__name *n, const rk__options *o, const char *id);
int rk__name_memo_channel(rk__name *n, const rk__options *o, const char *id);

#endif
