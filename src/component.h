/* What the cache, the lock and the memolock share: configure / set_references / open / close,
 * and the client each open runs with. Options are parsed once, at configure. Open builds a
 * client (client.h); every call takes a reference to it (begin/end), so that a close neither
 * waits for calls nor frees what they use, and a failed or closed open keeps nothing.
 *
 * A forked child never reuses what it inherited: the first call after fork() drops the
 * parent's connections, subscriber state and component state (lock tokens, memolock calls in
 * flight), and opens fresh connections. */
#ifndef RK_COMPONENT_H
#define RK_COMPONENT_H

#include <pthread.h>
#include <stdatomic.h>

#include "client.h"
#include "stats.h"

typedef struct rk__component rk__component;

struct rk__component {
    const char *kind;   /* "cache", "lock", "memolock": used in messages */
    bool pubsub;        /* its calls wait on channels */
    pthread_mutex_t mu; /* serialises configure, set_references, open and close */
    rk_config *cfg;
    rk_references *refs;
    rk__options opts; /* parsed at configure */
    rk__client *_Atomic active;
    atomic_uint pins; /* calls between reading `active` and taking their reference */
    atomic_uint fork_gen;
    rk__stats stats; /* the handle's whole life, across opens */
    /* Optional: an extra check of the options at open (memolock: resource_tag). */
    int (*validate)(const rk__options *o);
    /* Optional: once the client is connected, before open returns (lock: reach the quorum's
     * nodes); a failure fails the open. */
    int (*opened)(rk__component *c, rk__client *cl);
    /* Optional: between stopping the waiters and closing the client (lock: let waiters leave
     * their queue), bounded by the component. */
    void (*drain)(rk__component *c, rk__client *cl);
    /* Optional: between building the client and connecting it (the cache: its near cache's
     * handshake step, client.h `hook`). */
    int (*prepare)(rk__component *c, rk__client *cl);
    /* Optional: drop the component's own inherited state in a forked child. */
    void (*after_fork)(rk__component *c);
};

int rk__component_init(rk__component *c, const char *kind, bool pubsub);
void rk__component_destroy(rk__component *c);

int rk__component_configure(rk__component *c, const rk_config *cfg);
int rk__component_set_references(rk__component *c, const rk_references *refs);

/* Resolve, connect and PING. Returns RK_OK if already open. */
int rk__component_open(rk__component *c, const rk_context *ctx);
int rk__component_close(rk__component *c);
bool rk__component_is_open(const rk__component *c);

/* The client of an open component, referenced for the call (give it back with
 * rk__component_end), or NULL after setting RK_ENOTOPEN. */
rk__client *rk__component_begin(rk__component *c);
void rk__component_end(rk__client *cl);

/* In a forked child, drop what the parent left in the handle (once). Every entry point above
 * does it; a component's own entry point that uses none of them calls it first. */
void rk__component_check_fork(rk__component *c);

/* Copy the handle's statistics into a snapshot. */
int rk__component_stats(rk__component *c, rk_stats *out);

/* RK_EINVAL unless `key` is a non-empty string; `what` names the argument ("key", "id"). */
int rk__check_key(const char *key, const char *what);

#endif
