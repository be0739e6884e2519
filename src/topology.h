/* Where the nodes are. The client asks its topology which node serves a key and tells it when a
 * reply says the picture is out of date; each kind of deployment is one implementation in
 * topology/: `single` (one server), `cluster` (a Redis Cluster), `sentinel` (a master that
 * Redis Sentinel names). */
#ifndef RK_TOPOLOGY_H
#define RK_TOPOLOGY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "pool.h"
#include "resolve.h"
#include "resp.h"

/* One server and the connections to it. Nodes live as long as their topology: a pointer to
 * one stays valid across every change of the picture. */
typedef struct rk__node {
    rk__endpoint ep;
    rk__pool pool;
    _Atomic uint64_t down_until; /* after a failed connect: prefer other nodes until then */
} rk__node;

typedef struct rk__topology rk__topology;

typedef struct rk__topology_ops {
    const char *name;
    /* The node serving `key` (`len` bytes), or any node when `key` is NULL. */
    rk__node *(*route)(rk__topology *t, const char *key, size_t len);
    /* A reply of class `cls` (READONLY, CLUSTERDOWN, a failed connection) came from `node`, or
     * `node` is NULL and the periodic refresh is due: learn the topology again before
     * `deadline`. True when a retry can go somewhere new. */
    bool (*refresh)(rk__topology *t, rk__node *node, rk__reply_class cls, uint64_t deadline);
    /* Close every pool (borrowed connections are shut down). */
    void (*close)(rk__topology *t);
    /* In a forked child: drop the parent's connections. */
    void (*after_fork)(rk__topology *t);
    void (*free)(rk__topology *t);
    /* Optional (NULL: as route): the node for a read that may be served by a replica. */
    rk__node *(*route_read)(rk__topology *t, const char *key, size_t len);
    /* Optional: the node a MOVED or ASK names (a MOVED also updates the map), NULL when it
     * cannot be reached (out of memory). */
    rk__node *(*redirected)(rk__topology *t, const rk__redirect *r, rk__node *from);
    /* Optional (NULL: route(NULL)): a node for a connection not tied to a key (Pub/Sub), the
     * `failures`-th choice after that many failed connects in a row. */
    rk__node *(*pick)(rk__topology *t, unsigned failures);
} rk__topology_ops;

struct rk__topology {
    const rk__topology_ops *ops;
    _Atomic uint64_t refresh_at; /* monotonic ms of the next periodic refresh; UINT64_MAX: none */
    /* The deployment moves its data on its own (a promoted replica, a moved slot): after a failed
     * connection, the client refreshes and retries until the deadline, not options.retries
     * times, since the cure (a failover) takes seconds. */
    bool follows;
    /* Bumped each time a refresh finds the picture changed (a cluster's slot map): the client
     * raises a topology event when a refresh it asked for moved it. */
    atomic_uint changes;
};

/* Whether `n` is the node at host:port (as written: no name resolution). */
bool rk__node_is_at(const rk__node *n, const char *host, uint16_t port);

/* The nodes a topology has met (cluster masters and replicas, Sentinel masters), only ever
 * added: a node's pointer and number (index + 1) stay valid until the set is destroyed, and
 * lock-free readers see a node once `count` says so. Additions are serialised by the caller. */
#define RK__MAX_NODES 1024u
typedef struct rk__node_set {
    rk__node *nodes[RK__MAX_NODES];
    atomic_size_t count;
} rk__node_set;

/* The number of the node at host:port, added as a copy of `tmpl` at that address if new; 0
 * when out of room or memory. */
unsigned rk__node_set_add(rk__node_set *set, const rk__endpoint *tmpl, const char *host,
                          uint16_t port, void *tls_ctx, size_t max_connections);
/* The node of a number, NULL for 0 or one not added (yet). */
rk__node *rk__node_set_at(rk__node_set *set, unsigned number);
/* Close, or forget after a fork, every node's pool; free every node. */
void rk__node_set_close(rk__node_set *set);
void rk__node_set_after_fork(rk__node_set *set);
void rk__node_set_destroy(rk__node_set *set);

/* Node helpers shared by the implementations. */
int rk__node_init(rk__node *n, const rk__endpoint *ep, void *tls_ctx, size_t max_connections);
void rk__node_destroy(rk__node *n);

/* One server, reached at the first of `n` endpoints that answers: every key goes to it; a
 * failed connection moves on to the next endpoint (refresh with RK__REPLY_CONN). */
int rk__topology_single_new(rk__topology **out, const rk__endpoint *eps, size_t n, void *tls_ctx,
                            size_t max_connections);

/* A Redis Cluster, from the reply of CLUSTER SLOTS that `seeds[from]` gave: slots to masters
 * (CRC16 with hash tags, slot.h), one pool per node (`o->max_connections` each), refreshed
 * every `o->topology_refresh_ms`, after a MOVED, and after a failed connection or CLUSTERDOWN,
 * at most once a second. With `o->read_replicas`, reads go to a replica of the slot's shard
 * (READONLY), or to its master when none is up. */
int rk__topology_cluster_new(rk__topology **out, const rk__endpoint *seeds, size_t nseeds,
                             size_t from, const redisReply *slots, void *tls_ctx,
                             const rk__options *o);

/* The master that Redis Sentinel names `o->sentinel_master`, the seeds being the sentinels
 * (authenticated with options.sentinel_username/password; the seeds' credential and database
 * are the master's, TLS applies to both). Found before `deadline`: the sentinels are asked in
 * turn (each bounded by options.connect_timeout), and the address they give must answer ROLE
 * as a master. It is found again after READONLY or a failed connection to it, and a thread
 * subscribed to +switch-master on a sentinel follows a failover as soon as one announces it.
 * When the master changes, the old one's pool is retired (rk__pool_retire) and
 * `on_switch(arg)` is called (from any thread, no lock held). RK_ENOCONN when no sentinel
 * answers, RK_EINVAL when they do not know the master name. */
int rk__topology_sentinel_new(rk__topology **out, const rk__endpoint *seeds, size_t nseeds,
                              void *tls_ctx, const rk__options *o, uint64_t deadline,
                              void (*on_switch)(void *arg), void *arg);

#endif
