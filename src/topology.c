#include "topology.h"

#include <string.h>

#include "alloc.h"
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

bool rk__node_is_at(const rk__node *n, const char *host, uint16_t port)
{
    return n->ep.port == port && n->ep.host && !strcmp(n->ep.host, host);
}

unsigned rk__node_set_add(rk__node_set *set, const rk__endpoint *tmpl, const char *host,
                          uint16_t port, void *tls_ctx, size_t max_connections)
{
    size_t count = atomic_load(&set->count);
    for (size_t i = 0; i < count; i++)
        if (rk__node_is_at(set->nodes[i], host, port))
            return (unsigned)i + 1;
    rk__node *n = count < RK__MAX_NODES ? rk__calloc(1, sizeof *n) : NULL;
    if (!n)
        return 0;
    rk__endpoint ep = *tmpl; /* borrowed strings: node_init copies them */
    ep.host = (char *)host;
    ep.port = port;
    ep.path = NULL;
    if (rk__node_init(n, &ep, tls_ctx, max_connections) != RK_OK) {
        rk__free(n);
        return 0;
    }
    set->nodes[count] = n;
    atomic_store(&set->count, count + 1); /* publishes the node to lock-free readers */
    return (unsigned)count + 1;
}

rk__node *rk__node_set_at(rk__node_set *set, unsigned number)
{
    return number == 0 || number > atomic_load(&set->count) ? NULL : set->nodes[number - 1];
}

void rk__node_set_close(rk__node_set *set)
{
    for (size_t i = 0, n = atomic_load(&set->count); i < n; i++)
        rk__pool_close(&set->nodes[i]->pool);
}

void rk__node_set_after_fork(rk__node_set *set)
{
    for (size_t i = 0, n = atomic_load(&set->count); i < n; i++)
        rk__pool_after_fork(&set->nodes[i]->pool);
}

void rk__node_set_destroy(rk__node_set *set)
{
    for (size_t i = 0, n = atomic_load(&set->count); i < n; i++) {
        rk__node_destroy(set->nodes[i]);
        rk__free(set->nodes[i]);
    }
    atomic_store(&set->count, 0);
}
