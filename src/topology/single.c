/* The topology of one server (TCP, Unix socket or TLS). */
#include "topology.h"

#include "alloc.h"
#include "error_int.h"

typedef struct single {
    rk__topology base;
    rk__node node;
} single;

static rk__node *route(rk__topology *t, const char *key, size_t len)
{
    (void)key, (void)len;
    return &((single *)t)->node;
}

static bool refresh(rk__topology *t, rk__node *node, rk__reply_class cls, uint64_t deadline)
{
    (void)t, (void)node, (void)cls, (void)deadline;
    return false; /* one server: there is nowhere else to go */
}

static void close_all(rk__topology *t) { rk__pool_close(&((single *)t)->node.pool); }

static void after_fork(rk__topology *t) { rk__pool_after_fork(&((single *)t)->node.pool); }

static void free_single(rk__topology *t)
{
    rk__node_destroy(&((single *)t)->node);
    rk__free(t);
}

static const rk__topology_ops single_ops = {"single",  route,      refresh,
                                            close_all, after_fork, free_single};

int rk__topology_single_new(rk__topology **out, const rk__endpoint *ep, void *tls_ctx,
                            size_t max_connections)
{
    single *s = rk__calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return rk__err(RK_ENOMEM, "cannot allocate a topology");
    int rc = rk__node_init(&s->node, ep, tls_ctx, max_connections);
    if (rc != RK_OK) {
        rk__free(s);
        return rc;
    }
    s->base.ops = &single_ops;
    *out = &s->base;
    return RK_OK;
}
