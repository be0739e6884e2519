/* Auto-pipelining: the calls of many threads to one node share a connection when the pool has
 * none free (the client tries rk__pool_get_free first: a borrowed connection costs no thread
 * hop, so sharing is for when every connection is busy). Each call queues its commands;
 * whichever caller finds the connection free becomes the leader: it writes every queued
 * command in one write, then reads replies in order, handing each to its caller and waking it,
 * until its own have come. Then it hands the connection on to a caller still waiting for a
 * reply (or returns it to the pool when nobody is). Over plain TCP a caller that finds a
 * leader reading writes the queue itself (one writer at a time), so a command goes out at once
 * rather than after the leader's read; TLS (one SSL object) keeps reads and writes in the
 * leader's thread. A lone caller is always its own leader: no thread hop, no extra system
 * call.
 *
 * One pipe per node, beside its pool (pool.h), whose connections it borrows: the shared
 * connection counts towards options.max_connections, is shut down by the pool's close and
 * retire, and is forgotten by the pool's after_fork like any borrowed one.
 *
 * A caller never waits past its own deadline: it leaves, and its replies are discarded when
 * they arrive. A failed connection fails exactly the calls written on it (the client's retry
 * loop decides what runs again); calls still queued go on a new connection. */
#ifndef RK_PIPELINE_H
#define RK_PIPELINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "resp.h"

struct rk__pool;
typedef struct rk__pipe_req rk__pipe_req;

typedef struct rk__pipe {
    pthread_mutex_t mu;
    struct rk__pool *pool;
    rk__conn *conn; /* borrowed from the pool while there is work */
    rk__conn *dead; /* a failed one a writer still holds: the writer gives it back */
    bool busy;      /* a leader reads the connection (and, with TLS, is its only writer) */
    bool writing;   /* someone writes to it: over plain TCP, any caller while a leader reads */
    pthread_cond_t written; /* a write ended: a leader whose call is still queued waits on it */
    bool closed;            /* the pool closed: every call fails with RK_ENOTOPEN */
    rk__pipe_req *queue, *queue_tail; /* not written yet */
    /* Written and waiting for replies, oldest first: a ring of (request, replies still due).
     * A request whose caller left is NULL: its replies are read and dropped. */
    struct rk__pipe_slot *ring;
    size_t ring_cap, ring_head, ring_len;
} rk__pipe;

int rk__pipe_init(rk__pipe *p, struct rk__pool *pool);
void rk__pipe_destroy(rk__pipe *p);

/* Whether `n` commands may share a connection: not when they block it (WAIT, BLPOP, ...),
 * change its state (SELECT, WATCH, SUBSCRIBE, ...), or open a MULTI they do not close. */
bool rk__pipe_shareable(const rk__cmd *cmds, size_t n);

/* What one call did to the shared connection, for the client's events: it opened a
 * connection never used before (`opened`, in `open_us`), failed to open one (`open_rc`), or
 * found it broken and dropped it (`dropped`, once per connection). */
typedef struct rk__pipe_info {
    bool opened, dropped;
    uint64_t open_us;
    int open_rc;
} rk__pipe_info;

/* Run `n` commands on the shared connection before `deadline`: as rk__conn_exec, plus what the
 * retry loop needs: `*cls`, the first error class among the replies (RK__REPLY_CONN when the
 * connection failed) and, for a MOVED or ASK, where it points. On failure every replies[i] is
 * NULL and the calling thread's error says why. */
int rk__pipe_exec(rk__pipe *p, const rk__cmd *cmds, size_t n, redisReply **replies,
                  uint64_t deadline, rk__reply_class *cls, rk__redirect *redirect,
                  rk__pipe_info *info);

/* The pool closed: queued calls fail with RK_ENOTOPEN now; the leader's read fails, as the pool
 * shut its connection down. */
void rk__pipe_close(rk__pipe *p);

/* In a forked child: forget the parent's calls and connection (the pool drops it). */
void rk__pipe_after_fork(rk__pipe *p);

#endif
