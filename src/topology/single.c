/* The topology of one server (TCP, Unix socket or TLS), which may be reached at several
 * endpoints (a failover pair, a proxy per zone): they are tried in configuration order, and the
 * one that answered keeps serving until a connection to it fails. */
#include "topology.h"

#include <stdatomic.h>

#include "alloc.h"
#include "error_int.h"
#include "log.h"

typedef struct single {
    rk__topology base;
    atomic_size_t cur; /* the node serving now */
    size_t n;
    rk__node nodes[]; /* never freed before the topology: callers keep pointers to them */
} single;

static rk__node *route(rk__topology *t, const char *key, size_t len)
{
    single *s = (single *)t;
    (void)key, (void)len;
    return &s->nodes[atomic_load_explicit(&s->cur, memory_order_relaxed)];
}

/* After a failed connection, move on to the next endpoint: only the first of the threads that
 * saw `node` fail moves, so that concurrent failures do not skip endpoints. */
static bool refresh(rk__topology *t, rk__node *node, rk__reply_class cls, uint64_t deadline)
{
    single *s = (single *)t;
    (void)deadline;
    if (cls != RK__REPLY_CONN || s->n < 2)
        return false; /* nothing else to learn, or nowhere else to go */
    size_t i = (size_t)(node - s->nodes), next = (i + 1) % s->n;
    if (atomic_compare_exchange_strong(&s->cur, &i, next)) {
        char from[80], to[80];
        rk__log(RK_LOG_INFO, "connection to %s failed: trying %s, the next configured endpoint",
                rk__endpoint_name(&node->ep, from, sizeof from),
                rk__endpoint_name(&s->nodes[next].ep, to, sizeof to));
    }
    return true;
}

/* The subscriber's endpoint after `failures` connects failed in a row: the serving one, then
 * the others in turn, so that it follows a failover pair before any call has failed over, and
 * a quorum lock's waiters (whose every node announces releases) keep hearing them while their
 * first node is down. */
static rk__node *pick(rk__topology *t, unsigned failures)
{
    single *s = (single *)t;
    return &s->nodes[(atomic_load_explicit(&s->cur, memory_order_relaxed) + failures) % s->n];
}

static void close_all(rk__topology *t)
{
    single *s = (single *)t;
    for (size_t i = 0; i < s->n; i++)
        rk__pool_close(&s->nodes[i].pool);
}

static void after_fork(rk__topology *t)
{
    single *s = (single *)t;
    for (size_t i = 0; i < s->n; i++)
        rk__pool_after_fork(&s->nodes[i].pool);
}

static void free_single(rk__topology *t)
{
    single *s = (single *)t;
    for (size_t i = 0; i < s->n; i++)
        rk__node_destroy(&s->nodes[i]);
    rk__free(t);
}

static const rk__topology_ops single_ops = {.name = "single",
                                            .route = route,
                                            .refresh = refresh,
                                            .close = close_all,
                                            .after_fork = after_fork,
                                            .free = free_single,
                                            .pick = pick};

int rk__topology_single_new(rk__topology **out, const rk__endpoint *eps, size_t n, void *tls_ctx,
                            size_t max_connections)
{
    *out = NULL;
    if (n == 0)
        return rk__err(RK_EINVAL, "a topology needs at least one endpoint");
    single *s = rk__calloc(1, sizeof *s + n * sizeof s->nodes[0]);
    if (!s)
        return rk__err(RK_ENOMEM, "cannot allocate a topology");
    atomic_init(&s->cur, 0);
    atomic_init(&s->base.refresh_at, UINT64_MAX); /* nothing to learn periodically */
    for (size_t i = 0; i < n; i++, s->n++) {
        int rc = rk__node_init(&s->nodes[i], &eps[i], tls_ctx, max_connections);
        if (rc != RK_OK) {
            free_single(&s->base); /* the nodes before this one */
            return rc;
        }
    }
    s->base.ops = &single_ops;
    *out = &s->base;
    return RK_OK;
}
