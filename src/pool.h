/* A thread-safe pool of connections to one node. Connections are created lazily, up to `max`;
 * an operation borrows one, runs, and returns it. The client's retry loop decides what a failed
 * connection means; the pool only hands out, takes back and drops connections. */
#ifndef RK_POOL_H
#define RK_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "endpoint.h"
#include "pipeline.h"

typedef struct rk__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a connection came back, or the pool closed */
    const rk__endpoint *ep; /* immutable while open; owned by the client */
    void *tls_ctx;          /* the client's, or NULL */
    rk__conn *idle;
    rk__conn *all; /* every live connection, idle or borrowed */
    size_t total;  /* connections alive: idle + borrowed + being created */
    size_t max;
    size_t waiting; /* callers waiting for a connection */
    uint64_t gen;   /* bumped on close: older connections are dropped when returned */
    bool open;
    bool retired;  /* the node's role changed: no connection is lent until revived */
    rk__pipe pipe; /* auto-pipelined calls share one of these connections (pipeline.h) */
} rk__pool;

int rk__pool_init(rk__pool *p);
void rk__pool_destroy(rk__pool *p);

/* Start serving `ep` (which must stay valid until destroy). */
void rk__pool_open(rk__pool *p, const rk__endpoint *ep, void *tls_ctx, size_t max);

/* Stop: idle connections are closed now; borrowed ones are shut down, so that a call blocked on
 * a stalled server fails at once, and closed when they come back. Waiters for a connection get
 * RK_ENOTOPEN. */
void rk__pool_close(rk__pool *p);

/* Stop serving a node whose role changed (a demoted master) until it is revived: idle
 * connections are closed now, borrowed ones shut down (their users fail at once and retry
 * elsewhere) and closed when they come back, and a borrow fails with RK_EIO, so that a caller
 * that picked the node just before the change cannot reach it on a new connection either. A
 * closed pool stays closed. */
void rk__pool_retire(rk__pool *p);
void rk__pool_revive(rk__pool *p);

/* In a forked child: forget every inherited connection without touching the parent's sessions,
 * and start empty. The pool's lock may have been held by a thread that does not exist here. */
void rk__pool_after_fork(rk__pool *p);

/* Borrow a connection (RK_ENOTOPEN once closed, RK_ETIMEDOUT when all stay busy) and give it
 * back; a broken connection given back is closed. */
int rk__pool_get(rk__pool *p, rk__conn **out, uint64_t deadline);
void rk__pool_put(rk__pool *p, rk__conn *c);

/* As rk__pool_get, but only a connection that is free now: idle, or one more that may be
 * opened, and nobody already waiting for one. Else RK_OK and *out NULL (the auto-pipelined
 * calls then share the pipe's connection instead of waiting). */
int rk__pool_get_free(rk__pool *p, rk__conn **out, uint64_t deadline);

#endif
