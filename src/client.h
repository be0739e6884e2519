/* The client layer: everything between a component's logic and the wire. A client is what one
 * open of a component runs with: its options, its TLS context, its topology (which node serves
 * a key, one connection pool per node), its Pub/Sub subscriber, and the one retry loop.
 *
 * A component asks the client to run a command, a pipeline or a script for a routing key before
 * a deadline; the client picks the node, borrows a connection, and classifies what comes back
 * (resp.h): retry on the same node, reconnect, follow a redirect, refresh the topology, or
 * return. Nothing above the client knows about nodes or connections; nothing below it knows
 * about components.
 *
 * Lifetime: created by open, shared by reference. Every call takes a reference for its
 * duration (rk__component_begin/end), so close never waits for a call and a call never sees its
 * client freed; the last reference frees everything, TLS context included. */
#ifndef RK_CLIENT_H
#define RK_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "keys.h"
#include "resolve.h"
#include "scripts.h"
#include "stats.h"
#include "subscriber.h"
#include "topology.h"

/* A sharded Pub/Sub subscriber on one cluster node (SSUBSCRIBE: lock hand-offs). */
typedef struct rk__shard_sub {
    rk__node *node;
    rk__subscriber *sub;
} rk__shard_sub;

/* A component's own state for one open, living and dying with the client (the cache's near
 * cache, the quorum lock's node pools): closed with it (`close` may be NULL), reset in a
 * forked child, and freed by the last reference once every connection is gone. */
typedef struct rk__client_ext_ops {
    void (*close)(void *ext);
    void (*after_fork)(void *ext);
    void (*free)(void *ext);
} rk__client_ext_ops;

typedef struct rk__client {
    const char *kind; /* "cache", "lock", "memolock": used in messages */
    rk__options opts;
    rk__endpoint *seeds; /* every configured endpoint (resolve.h) */
    size_t nseeds;
    void *tls_ctx;
    rk__topology *topo;  /* fixed once connected */
    bool cluster;        /* the topology is a Redis Cluster (known once connected) */
    rk__subscriber *sub; /* classic Pub/Sub; NULL for components that never wait on a channel */
    pthread_mutex_t mu;  /* guards shards */
    rk__shard_sub *shards;
    size_t nshards;
    bool stopped;     /* waiters stopped: no new shard subscriber */
    char id[33];      /* random, per open (and per process): names this client's inbox */
    rk__stats *stats; /* the component's: where this client's events are counted */
    /* A component's handshake step on every data connection (set before connect, see
     * rk__component.prepare). */
    rk__conn_hook hook;
    void *ext; /* set once at open, before any call: see rk__client_ext_ops */
    const rk__client_ext_ops *ext_ops;
    atomic_uint refs;
    atomic_bool closed;
} rk__client;

/* Resolve the seeds (discovery, credential store) and build the TLS context and a single-node
 * topology over them. No I/O beyond what the references' callbacks do. `pubsub`: the component
 * waits on channels. */
int rk__client_new(rk__client **out, const char *kind, const rk__options *opts,
                   const rk_config *cfg, const rk_references *refs, const rk_context *ctx,
                   bool pubsub);

/* Reach the server before `deadline`: with options.sentinel_master, ask the sentinels (the
 * seeds) for the master and switch to the sentinel topology; else, unless options.cluster=false,
 * ask the first seed that answers for its cluster slots and, if it is a cluster node, switch to
 * the cluster topology (options.cluster=true refuses a server that is not); then PING through
 * the retry loop. */
int rk__client_connect(rk__client *cl, uint64_t deadline);

void rk__client_ref(rk__client *cl);
void rk__client_unref(rk__client *cl); /* NULL-safe; the last one frees */

/* Close in two steps. Waiters first: every subscriber wait returns RK_ENOTOPEN, while commands
 * still run (a lock waiter leaves its queue). Then everything: later calls fail with
 * RK_ENOTOPEN, and calls blocked on a connection fail at once (its socket is shut down). */
void rk__client_stop_waiters(rk__client *cl);
void rk__client_close(rk__client *cl);

/* In a forked child: drop every inherited connection and the subscriber's thread state, so the
 * child's first call opens fresh connections and the parent's sessions are left alone. */
void rk__client_after_fork(rk__client *cl);

/* The deadline of a public call: now + timeout_ms for a call with a timeout (a lock acquire, a
 * memolock get), else now + options.timeout. One per call, passed down to every wait, connect,
 * read and retry; each Redis operation inside it (rk__client_run) is further bounded by
 * now + options.timeout, so a long wait still gives up on a single stalled command. */
uint64_t rk__client_deadline(const rk__client *cl, uint64_t timeout_ms);
#define RK__NO_TIMEOUT UINT64_MAX

/* The short deadline of clean-up after a call's own deadline passed or its handle closed
 * (leaving a lock queue): min(options.connect_timeout, RK__GRACE_MS) from now. */
#define RK__GRACE_MS 250u
uint64_t rk__client_grace(const rk__client *cl);

/* An operation on one connection. It must be safe to run again after a connection failure,
 * and it reports a server error as a failure (its class is read from the connection). */
typedef int (*rk__conn_fn)(rk__conn *c, void *arg, uint64_t deadline);

/* Run `fn` on a connection to the node serving `key` (NULL: any node) under the retry policy:
 * back off and retry what the server could not do yet (LOADING, BUSY, TRYAGAIN), reconnect up
 * to options.retries times (in a cluster or with Sentinel: learn the topology again and retry
 * until the deadline), follow MOVED and ASK (ASKING first) up to options.max_redirects times. */
int rk__client_run(rk__client *cl, const char *key, size_t klen, uint64_t deadline, rk__conn_fn fn,
                   void *arg);

/* As rk__client_run, for an operation that only reads: with options.read_from=replica a cluster
 * runs it on a replica of the key's shard. `name`: its (first) command, for events. */
int rk__client_run_read(rk__client *cl, const char *name, const char *key, size_t klen,
                        uint64_t deadline, rk__conn_fn fn, void *arg);

/* Send `n` commands as one pipeline and read their replies (error replies are returned as
 * replies, except the classes the retry loop acts on). */
int rk__client_exec(rk__client *cl, const char *key, size_t klen, uint64_t deadline,
                    const rk__cmd *cmds, size_t n, redisReply **replies);

/* As rk__client_exec, for read-only commands: with options.read_from=replica a cluster serves
 * them from a replica of the key's shard. */
int rk__client_exec_read(rk__client *cl, const char *key, size_t klen, uint64_t deadline,
                         const rk__cmd *cmds, size_t n, redisReply **replies);

/* Send `n` single-key commands, each to the node serving its key (argv[1]): one pipeline per
 * node in a cluster, one pipeline in all on a single server. Replies in the order of `cmds`.
 * A command answered with a redirect is re-run alone. A node that fails fails the call (its
 * error names it); commands sent to other nodes before may have run. */
int rk__client_exec_each(rk__client *cl, uint64_t deadline, const rk__cmd *cmds, size_t n,
                         redisReply **replies);

/* The subscriber where a wait on `channel` listens: the classic one, or with `sharded` in a
 * cluster the sharded subscriber of the node serving the channel's slot. */
rk__subscriber *rk__client_subscriber(rk__client *cl, const rk__name *channel, bool sharded);

/* Run a script (EVALSHA, EVAL after NOSCRIPT) on `nargs` arguments, the first `nkeys` keys; an
 * error reply becomes a failure. `*reply` is the caller's to free. */
int rk__client_eval(rk__client *cl, const char *key, size_t klen, uint64_t deadline,
                    const rk__script *script, int nkeys, int nargs, const char *const *args,
                    const size_t *lens, redisReply **reply);

/* RK_ENOTOPEN naming the component. */
int rk__client_not_open(const char *kind);

#endif
