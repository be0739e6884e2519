/* A thread-safe pool of connections to one endpoint. Connections are created lazily, up to
 * `max`; an operation borrows one, runs, and returns it. rk__pool_run() owns the reconnect
 * policy: a connection failure drops the connection and the operation is run again on a fresh
 * one, up to `retries` times and never past the operation's deadline. Every operation redkit
 * runs through the pool is safe to repeat (see docs/RELIABILITY.md). */
#ifndef RK_POOL_H
#define RK_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "endpoint.h"

typedef struct rk__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a connection came back, or the pool closed */
    const rk__endpoint *ep; /* immutable while open; owned by the component */
    rk__conn *idle;
    size_t total; /* connections alive: idle + borrowed + being created */
    size_t max;
    uint64_t retries;
    uint64_t gen; /* bumped on close: older connections are dropped when returned */
    bool open;
} rk__pool;

int rk__pool_init(rk__pool *p);
void rk__pool_destroy(rk__pool *p);

/* Start serving `ep` (which must stay valid until the next open or destroy). */
void rk__pool_open(rk__pool *p, const rk__endpoint *ep, size_t max, uint64_t retries);

/* Stop: idle connections are closed now, borrowed ones when they come back; waiters for a
 * connection get RK_ENOTOPEN. */
void rk__pool_close(rk__pool *p);

bool rk__pool_is_open(rk__pool *p);

/* An operation on one connection. It must be safe to run again after a connection failure. */
typedef int (*rk__conn_fn)(rk__conn *c, void *arg, uint64_t deadline);

/* Borrow a connection and run `fn`, reconnecting and re-running after connection failures. */
int rk__pool_run(rk__pool *p, uint64_t deadline, rk__conn_fn fn, void *arg);

/* Borrow and return directly, for callers that keep a connection (the subscriber does not). */
int rk__pool_get(rk__pool *p, rk__conn **out, uint64_t deadline);
void rk__pool_put(rk__pool *p, rk__conn *c);

#endif
