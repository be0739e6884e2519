/* The topology of a Redis Cluster: which master (and replica) serves each of the 16384 slots.
 *
 * Routing is the hot path and takes no lock: the slot map is an array of node numbers read and
 * written atomically, and nodes are only ever added (a node that leaves the cluster keeps its
 * idle pool until the topology is freed), so a node pointer read once stays valid. Learning
 * the map again (CLUSTER SLOTS) happens on a connection of its own, at most once a second
 * whatever the number of threads that ask for it. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "conn.h"
#include "error_int.h"
#include "resolve.h"
#include "slot.h"
#include "topology.h"

#define MIN_REFRESH_MS 1000u /* at most one refresh a second, whatever asks for it */
#define DOWN_MS 1000u        /* a node that refused a connection is avoided this long */
#define NO_NODE 0u           /* map entries are node numbers + 1 */

typedef struct cluster {
    rk__topology base;
    pthread_mutex_t mu; /* adding nodes */
    rk__node_set set;
    _Atomic uint16_t owner[RK__SLOTS];   /* master of each slot */
    _Atomic uint16_t replica[RK__SLOTS]; /* a replica of its shard, for reads */
    rk__endpoint tmpl; /* credentials, TLS options, timeouts and READONLY of every node */
    void *tls_ctx;
    size_t max_connections;
    uint64_t every_ms;
    _Atomic uint64_t last_refresh;
    atomic_uint next_source; /* round robin over the nodes asked for the map */
    bool read_replicas;
} cluster;

static rk__node *node_at(cluster *c, unsigned number) { return rk__node_set_at(&c->set, number); }

/* The number of the node at host:port, added if new; NO_NODE when out of room or memory.
 * Lock held. */
static unsigned find_or_add_locked(cluster *c, const char *host, uint16_t port)
{
    return rk__node_set_add(&c->set, &c->tmpl, host, port, c->tls_ctx, c->max_connections);
}

static unsigned find_or_add(cluster *c, const char *host, uint16_t port)
{
    pthread_mutex_lock(&c->mu);
    unsigned number = find_or_add_locked(c, host, port);
    pthread_mutex_unlock(&c->mu);
    return number;
}

/* ---- the map, from CLUSTER SLOTS ---- */

/* A node of a CLUSTER SLOTS entry: [host, port, id, ...]. An empty host is the node that
 * answered; "?" is a node whose address is unknown (skipped). */
static unsigned entry_node(cluster *c, const redisReply *e, const rk__node *answered)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->integer < 1 || e->element[1]->integer > 65535)
        return NO_NODE;
    const char *host = e->element[0]->len ? e->element[0]->str : answered->ep.host;
    if (!host || !strcmp(host, "?"))
        return NO_NODE;
    return find_or_add_locked(c, host, (uint16_t)e->element[1]->integer);
}

/* Apply a CLUSTER SLOTS reply: every slot it covers gets its master and first replica, every
 * slot it does not is unknown (routed anywhere, to be redirected). */
static bool apply_slots(cluster *c, const redisReply *r, const rk__node *answered)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return false;
    uint16_t *owner = rk__calloc(2 * RK__SLOTS, sizeof *owner), *replica = owner + RK__SLOTS;
    if (!owner)
        return false;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        unsigned m = entry_node(c, e->element[2], answered);
        unsigned rep = e->elements > 3 ? entry_node(c, e->element[3], answered) : NO_NODE;
        for (long long s = from < 0 ? 0 : from; s <= to && s < RK__SLOTS; s++)
            owner[s] = (uint16_t)m, replica[s] = (uint16_t)rep;
    }
    pthread_mutex_unlock(&c->mu);
    bool changed = false;
    for (unsigned s = 0; s < RK__SLOTS; s++) {
        changed |= atomic_exchange(&c->owner[s], owner[s]) != owner[s];
        atomic_store(&c->replica[s], replica[s]);
    }
    if (changed)
        atomic_fetch_add(&c->base.changes, 1);
    rk__free(owner);
    return true;
}

/* Ask `n` for the map on a connection of our own (not one a caller waits for). */
static bool load_from(cluster *c, rk__node *n, uint64_t deadline)
{
    rk__conn *conn;
    uint64_t until = rk__deadline(n->ep.connect_timeout_ms);
    if (rk__conn_open(&conn, &n->ep, c->tls_ctx, until < deadline ? until : deadline) != RK_OK) {
        atomic_store(&n->down_until, rk__now_ms() + DOWN_MS);
        return false;
    }
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    redisReply *r = NULL;
    bool ok =
        rk__conn_exec(conn, &(rk__cmd){2, argv, (size_t[]){7, 5}}, 1, &r, deadline) == RK_OK &&
        apply_slots(c, r, n);
    rk__reply_free(r);
    rk__conn_free(conn);
    return ok;
}

/* Ask the nodes in turn, those that refused a connection lately last, until one answers. */
static void load(cluster *c, uint64_t deadline)
{
    size_t count = atomic_load(&c->set.count);
    unsigned start = atomic_fetch_add(&c->next_source, 1);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < count && rk__remaining_ms(deadline); i++) {
            rk__node *n = c->set.nodes[(start + i) % count];
            bool down = atomic_load(&n->down_until) > rk__now_ms();
            if (down == (pass == 0))
                continue;
            if (load_from(c, n, deadline))
                return;
        }
    }
}

/* ---- the ops ---- */

static rk__node *any_node(cluster *c)
{
    rk__node *n = node_at(c, atomic_load(&c->owner[0]));
    return n ? n : c->set.nodes[0];
}

static rk__node *route(rk__topology *t, const char *key, size_t len)
{
    cluster *c = (cluster *)t;
    if (!key)
        return any_node(c);
    rk__node *n = node_at(c, atomic_load(&c->owner[rk__slot(key, len)]));
    return n ? n : any_node(c); /* unknown slot: any node redirects us */
}

static rk__node *route_read(rk__topology *t, const char *key, size_t len)
{
    cluster *c = (cluster *)t;
    if (c->read_replicas && key) {
        rk__node *r = node_at(c, atomic_load(&c->replica[rk__slot(key, len)]));
        if (r && atomic_load(&r->down_until) <= rk__now_ms())
            return r;
    }
    return route(t, key, len);
}

static bool refresh(rk__topology *t, rk__node *node, rk__reply_class cls, uint64_t deadline)
{
    cluster *c = (cluster *)t;
    uint64_t now = rk__now_ms(), last = atomic_load(&c->last_refresh);
    if (node && cls == RK__REPLY_CONN)
        atomic_store(&node->down_until, now + DOWN_MS);
    /* One thread refreshes; the others retry after their back-off and see its result. */
    if (now - last >= MIN_REFRESH_MS &&
        atomic_compare_exchange_strong(&c->last_refresh, &last, now)) {
        load(c, deadline);
        atomic_store(&t->refresh_at, rk__now_ms() + c->every_ms);
    }
    return true; /* a master may be promoted, a slot may come back: retry until the deadline */
}

static rk__node *redirected(rk__topology *t, const rk__redirect *r, rk__node *from)
{
    cluster *c = (cluster *)t;
    unsigned number = find_or_add(c, r->host[0] ? r->host : from->ep.host, r->port);
    if (number != NO_NODE && r->cls == RK__REPLY_MOVED) {
        atomic_store(&c->owner[r->slot], (uint16_t)number);
        atomic_store(&t->refresh_at, 0); /* the rest of the map has likely moved too */
    }
    return node_at(c, number);
}

static rk__node *pick(rk__topology *t, unsigned failures)
{
    cluster *c = (cluster *)t;
    size_t count = atomic_load(&c->set.count);
    unsigned first = atomic_load(&c->owner[0]);
    return c->set.nodes[((first ? first - 1 : 0) + failures) % count];
}

static void close_all(rk__topology *t) { rk__node_set_close(&((cluster *)t)->set); }

static void after_fork(rk__topology *t)
{
    cluster *c = (cluster *)t;
    pthread_mutex_init(&c->mu, NULL); /* a parent's thread may have held it */
    rk__node_set_after_fork(&c->set);
}

static void free_cluster(rk__topology *t)
{
    cluster *c = (cluster *)t;
    rk__node_set_destroy(&c->set);
    rk__endpoint_clear(&c->tmpl);
    pthread_mutex_destroy(&c->mu);
    rk__free(c);
}

static const rk__topology_ops cluster_ops = {
    .name = "cluster",
    .route = route,
    .refresh = refresh,
    .close = close_all,
    .after_fork = after_fork,
    .free = free_cluster,
    .route_read = route_read,
    .redirected = redirected,
    .pick = pick,
};

static int add_seeds(cluster *c, const rk__endpoint *seeds, size_t nseeds)
{
    for (size_t i = 0; i < nseeds; i++)
        if (seeds[i].host && find_or_add_locked(c, seeds[i].host, seeds[i].port) == NO_NODE)
            return rk__err(RK_ENOMEM, "cannot add cluster node %s", seeds[i].host);
    return atomic_load(&c->set.count)
               ? RK_OK
               : rk__err(RK_EINVAL, "a cluster needs TCP endpoints, not a Unix socket");
}

int rk__topology_cluster_new(rk__topology **out, const rk__endpoint *seeds, size_t nseeds,
                             size_t from, const redisReply *slots, void *tls_ctx,
                             const rk__options *o)
{
    *out = NULL;
    cluster *c = rk__calloc(1, sizeof *c);
    if (!c || rk__endpoint_copy(&c->tmpl, &seeds[from]) != RK_OK) {
        rk__free(c);
        return rk__err(RK_ENOMEM, "cannot allocate a cluster topology");
    }
    c->base.ops = &cluster_ops;
    c->base.follows = true; /* a replica is promoted within the node timeout */
    c->tmpl.db = 0;
    c->tmpl.readonly = o->read_replicas; /* READONLY on a master is harmless */
    c->tls_ctx = tls_ctx;
    c->max_connections = o->max_connections;
    c->every_ms = o->topology_refresh_ms;
    c->read_replicas = o->read_replicas;
    atomic_init(&c->base.refresh_at, rk__now_ms() + c->every_ms);
    atomic_init(&c->last_refresh, rk__now_ms());
    pthread_mutex_init(&c->mu, NULL);
    int rc = add_seeds(c, seeds, nseeds);
    rk__node *answered =
        rc == RK_OK ? node_at(c, find_or_add_locked(c, seeds[from].host, seeds[from].port)) : NULL;
    if (rc == RK_OK && (!answered || !apply_slots(c, slots, answered)))
        rc = rk__err(RK_EREPLY, "CLUSTER SLOTS: the reply is not a slot map");
    if (rc != RK_OK) {
        free_cluster(&c->base);
        return rc;
    }
    *out = &c->base;
    return RK_OK;
}
