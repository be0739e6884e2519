/* Where the nodes are. The client asks its topology which node serves a key and tells it when a
 * reply says the picture is out of date; each kind of deployment is one implementation in
 * topology/ (today `single`: one server; Cluster and Sentinel add theirs). */
#ifndef RK_TOPOLOGY_H
#define RK_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "pool.h"
#include "resp.h"

/* One server and the connections to it. */
typedef struct rk__node {
    rk__endpoint ep;
    rk__pool pool;
} rk__node;

typedef struct rk__topology rk__topology;

typedef struct rk__topology_ops {
    const char *name;
    /* The node serving `key` (`len` bytes), or any node when `key` is NULL. */
    rk__node *(*route)(rk__topology *t, const char *key, size_t len);
    /* A reply of class `cls` (MOVED, ASK, READONLY, CLUSTERDOWN) came from `node`: learn the
     * topology again before `deadline`. True when a retry can go somewhere new. */
    bool (*refresh)(rk__topology *t, rk__node *node, rk__reply_class cls, uint64_t deadline);
    /* Close every pool (borrowed connections are shut down). */
    void (*close)(rk__topology *t);
    /* In a forked child: drop the parent's connections. */
    void (*after_fork)(rk__topology *t);
    void (*free)(rk__topology *t);
} rk__topology_ops;

struct rk__topology {
    const rk__topology_ops *ops;
};

/* Node helpers shared by the implementations. */
int rk__node_init(rk__node *n, const rk__endpoint *ep, void *tls_ctx, size_t max_connections);
void rk__node_destroy(rk__node *n);

/* One server: every key goes to it and nothing can be refreshed. */
int rk__topology_single_new(rk__topology **out, const rk__endpoint *eps, size_t n, void *tls_ctx,
                            size_t max_connections);

#endif
