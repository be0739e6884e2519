/* What a handle that holds leases and queues for them (the lock, the semaphore) keeps between
 * calls: a record per key it holds, and how many of its acquisitions wait in a Redis queue.
 * Both components share it so that close drains, and a forked child forgets, the same way. */
#ifndef RK_HOLDER_H
#define RK_HOLDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "map.h"

typedef struct {
    pthread_mutex_t mu; /* guards held and waiting */
    /* full key -> the component's record, which starts with its NUL-terminated token */
    rk__map held;
    /* Acquisitions queued in Redis: close lets them leave the queue before the client goes, or
     * a release could hand the lease to a token nobody is waiting for. */
    unsigned waiting;
    pthread_cond_t none_waiting;
} rk__holder;

/* RK_OK, or RK_ENOMEM with a message. */
int rk__holder_init(rk__holder *h);
void rk__holder_destroy(rk__holder *h);

/* The parent's leases are the parent's: a child releasing them would end the parent's lease. */
void rk__holder_after_fork(rk__holder *h);

/* Close has stopped the waiters; wait up to `timeout_ms` for them to leave their queues. */
void rk__holder_drain(rk__holder *h, uint64_t timeout_ms);
void rk__holder_count_waiting(rk__holder *h, int delta);

/* Store `rec` (rk__malloc'd; the holder owns it, even on failure) under the key, replacing and
 * freeing any record there. RK_OK or RK_ENOMEM. */
int rk__holder_put(rk__holder *h, const char *key, size_t klen, void *rec);

/* Copy the record under the key to `out`, or zeroes (an empty token) when there is none. */
void rk__holder_get(rk__holder *h, const char *key, size_t klen, void *out, size_t size);

/* Forget the key's record, unless another acquisition replaced `token` meanwhile. */
void rk__holder_forget(rk__holder *h, const char *key, size_t klen, const char *token);

/* A queued waiter's heartbeat: three missed polls (plus scheduling slack) and the others
 * consider it gone, so a stopped waiter cannot stall the queue for long. */
uint64_t rk__holder_alive_ms(const rk__client *cl);

/* The first in line polls every retry_timeout; waiters behind it only keep their heartbeat
 * fresh, four times per alive window: at 64 processes that halves the scripts per grant. */
uint64_t rk__holder_heartbeat_ms(const rk__client *cl);

#endif
