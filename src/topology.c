#include "topology.h"

#include "error_int.h"

int rk__node_init(rk__node *n, const rk__endpoint *ep, void *tls_ctx, size_t max_connections)
{
    int rc = rk__endpoint_copy(&n->ep, ep);
    if (rc == RK_OK && (rc = rk__pool_init(&n->pool)) != RK_OK)
        rk__endpoint_clear(&n->ep);
    if (rc == RK_OK)
        rk__pool_open(&n->pool, &n->ep, tls_ctx, max_connections);
    return rc;
}

void rk__node_destroy(rk__node *n)
{
    rk__pool_destroy(&n->pool);
    rk__endpoint_clear(&n->ep);
}
