/* One Pub/Sub connection and a dispatch thread, shared by every waiter of a component.
 *
 * A waiter joins a channel, re-checks Redis, then sleeps until a message on its channel, a
 * re-check request or its own timer. SUBSCRIBE happens when a channel's first waiter joins and
 * the channel stays subscribed a while (linger) after its last waiter leaves, so hot keys do
 * not pay a round trip per wait. Pub/Sub loses messages sent while disconnected: after a
 * reconnect every channel is subscribed again and each of its waiters is asked to re-check
 * once the subscription is confirmed. Waiters must re-check Redis on every wake-up and poll on
 * their own timer, so a lost message costs at most their polling interval.
 *
 * A sharded subscriber uses Redis 7's shard channels (SSUBSCRIBE, smessage) instead. In a
 * cluster a node refuses a shard channel whose slot it does not serve (MOVED) and drops one
 * whose slot moves away: its waiters are then asked to re-check, and it is tried again after a
 * pause (growing while the node keeps refusing), not at once. */
#ifndef RK_SUBSCRIBER_H
#define RK_SUBSCRIBER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "endpoint.h"
#include "redkit/common.h"

typedef struct rk__subscriber rk__subscriber;
struct rk__channel;

/* Lives on the waiting thread's stack between join and leave. */
typedef struct rk__waiter {
    struct rk__waiter *next, *prev;
    struct rk__waiter *next_reader; /* queued for the reader role */
    struct rk__channel *chan;
    pthread_cond_t cv;
    bool want_payload;
    const char *match; /* only messages whose payload starts with this wake us (NULL: all) */
    size_t match_len;
    bool message;       /* a message arrived since the last wait */
    bool recheck;       /* the subscription was (re)confirmed: state may have changed unseen */
    bool wants_to_read; /* in the subscriber's queue for the reader role */
    rk_buf payload;     /* last message, when want_payload; guarded by the subscriber's mutex */
} rk__waiter;

typedef enum { RK__WAKE_TIMER, RK__WAKE_MESSAGE, RK__WAKE_RECHECK } rk__wake;

int rk__subscriber_new(rk__subscriber **out, const char *kind);
/* The same over shard channels: SSUBSCRIBE / SUNSUBSCRIBE, one channel per command. */
int rk__subscriber_new_sharded(rk__subscriber **out, const char *kind);
void rk__subscriber_free(rk__subscriber *s);

/* Serve `ep` with `tls_ctx` (both valid until free). `timeout_ms` bounds a read once data is
 * announced and how long an unanswered PING is tolerated. */
void rk__subscriber_open(rk__subscriber *s, const rk__endpoint *ep, void *tls_ctx,
                         uint64_t timeout_ms);

/* Before open: on every (re)connect, connect to pick(arg, failures) instead of open's `ep`
 * (which may then be NULL), `failures` counting the connects failed in a row, so that a
 * subscriber can move to another node of a cluster when its own dies. The endpoint returned
 * must stay valid until free; NULL counts as a failed connect. Called from the subscriber's
 * thread, without its lock. */
void rk__subscriber_set_picker(rk__subscriber *s,
                               const rk__endpoint *(*pick)(void *arg, unsigned failures),
                               void *arg);

/* Stop the thread and drop the connection; waiters return RK_ENOTOPEN. Returns within about
 * one connect timeout (the longest the thread can be inside a connect). */
void rk__subscriber_close(rk__subscriber *s);

/* The node the picker names has changed (a Sentinel failover): drop the connection, so that the
 * thread connects again where the picker now says and subscribes every channel there (waiters
 * are asked to re-check). A connect in progress is dropped too. */
void rk__subscriber_reconnect(rk__subscriber *s);

/* In a forked child: forget the parent's thread, waiters and connection; the next join starts
 * afresh. */
void rk__subscriber_after_fork(rk__subscriber *s);

/* Register `w` on `channel` and wait until the subscription is confirmed, refused or
 * `confirm_until` passes (the waiter then relies on its timer until it is). With `match` (kept by
 * reference until leave), only messages whose payload starts with it reach `w`: many waiters can
 * share one channel, each woken only by what is addressed to it. RK_ENOTOPEN after close. */
int rk__subscriber_join(rk__subscriber *s, rk__waiter *w, const char *channel, size_t len,
                        bool want_payload, const char *match, size_t match_len,
                        uint64_t confirm_until);

/* Sleep until a message, a re-check request or `until`. `*why` says which; for a message the
 * payload (if wanted) is moved into `*payload` (freed first), which the caller then owns: the
 * dispatch thread may already be writing the next one into the waiter. RK_ENOTOPEN after
 * close. */
int rk__subscriber_wait(rk__subscriber *s, rk__waiter *w, uint64_t until, rk__wake *why,
                        rk_buf *payload);

/* Whether `channel` is subscribed and confirmed now: a waiter joining it hears the next message
 * without waiting for a SUBSCRIBE. */
bool rk__subscriber_active(rk__subscriber *s, const char *channel, size_t len);

/* Unregister; frees w->payload. Safe after a failed join. */
void rk__subscriber_leave(rk__subscriber *s, rk__waiter *w);

#endif
