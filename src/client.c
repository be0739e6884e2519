#include "client.h"

#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"
#include "events.h"
#include "log.h"
#include "retry.h"
#include "tls.h"
#include "token.h"

/* ---- lifecycle ---- */

static void shards_free(rk__client *cl)
{
    for (size_t i = 0; i < cl->nshards; i++)
        rk__subscriber_free(cl->shards[i].sub);
    rk__free(cl->shards);
    cl->shards = NULL;
    cl->nshards = 0;
}

static void client_free(rk__client *cl)
{
    if (cl->topo)
        cl->topo->ops->free(cl->topo);
    if (cl->ext_ops) /* after the topology: every connection is gone */
        cl->ext_ops->free(cl->ext);
    rk__subscriber_free(cl->sub);
    shards_free(cl);
    rk__seeds_free(cl->seeds, cl->nseeds);
    rk__tls_ctx_free(cl->tls_ctx);
    rk__options_clear(&cl->opts);
    pthread_mutex_destroy(&cl->mu);
    rk__free(cl);
}

/* One TLS context per open: the trust store and client certificate are loaded once, and a bad
 * file fails the open before any connection is tried. */
static int make_tls(rk__client *cl, const rk__endpoint *ep)
{
    char peer[80];
    if (!ep->tls && ep->tls_opts.unused) /* once per open: a CA file suggests TLS was meant */
        rk__log(RK_LOG_WARN,
                "%s is set but the connection to %s is not TLS: it is plaintext (use rediss:// "
                "or options.tls=true)",
                ep->tls_opts.unused, rk__endpoint_name(ep, peer, sizeof peer));
    if (!ep->tls)
        return RK_OK;
    int rc = rk__tls_ctx_new(&cl->tls_ctx, &ep->tls_opts);
    if (rc == RK_OK && ep->tls_opts.insecure) { /* once per open, so it cannot go unnoticed */
        rk__log(RK_LOG_WARN,
                "options.tls_verify=false: the TLS certificate of %s is not verified, so anyone "
                "on the network path can impersonate the server (insecure)",
                rk__endpoint_name(ep, peer, sizeof peer));
    }
    return rc;
}

/* The seeds and a single-node topology over them; connect() finds out whether they are a
 * cluster. */
static int build(rk__client *cl, const rk_config *cfg, const rk_references *refs,
                 const rk_context *ctx, bool pubsub)
{
    int rc = rk__resolve_seeds(&cl->seeds, &cl->nseeds, cfg, refs, &cl->opts, ctx);
    for (size_t i = 0; rc == RK_OK && i < cl->nseeds; i++)
        cl->seeds[i].hook = &cl->hook; /* inert until a component sets hook.open */
    if (rc == RK_OK)
        rc = make_tls(cl, &cl->seeds[0]);
    if (rc == RK_OK)
        rc = rk__topology_single_new(&cl->topo, cl->seeds, cl->nseeds, cl->tls_ctx,
                                     cl->opts.max_connections);
    if (rc == RK_OK && pubsub)
        rc = rk__subscriber_new(&cl->sub, cl->kind);
    return rc;
}

int rk__client_new(rk__client **out, const char *kind, const rk__options *opts,
                   const rk_config *cfg, const rk_references *refs, const rk_context *ctx,
                   bool pubsub)
{
    *out = NULL;
    rk__client *cl = rk__calloc(1, sizeof *cl);
    if (!cl)
        return rk__err(RK_ENOMEM, "cannot allocate a %s client", kind);
    cl->kind = kind;
    atomic_init(&cl->refs, 1);
    atomic_init(&cl->closed, false);
    pthread_mutex_init(&cl->mu, NULL);
    int rc = rk__options_copy(&cl->opts, opts);
    if (rc == RK_OK)
        rc = rk__token_new(cl->id);
    if (rc == RK_OK)
        rc = build(cl, cfg, refs, ctx, pubsub);
    if (rc != RK_OK) {
        client_free(cl);
        return rc;
    }
    *out = cl;
    return RK_OK;
}

void rk__client_ref(rk__client *cl) { atomic_fetch_add(&cl->refs, 1); }

void rk__client_unref(rk__client *cl)
{
    if (cl && atomic_fetch_sub(&cl->refs, 1) == 1)
        client_free(cl);
}

void rk__client_stop_waiters(rk__client *cl)
{
    if (cl->sub)
        rk__subscriber_close(cl->sub);
    pthread_mutex_lock(&cl->mu);
    cl->stopped = true; /* no shard subscriber starts after this */
    for (size_t i = 0; i < cl->nshards; i++)
        rk__subscriber_close(cl->shards[i].sub);
    pthread_mutex_unlock(&cl->mu);
}

void rk__client_close(rk__client *cl)
{
    atomic_store(&cl->closed, true);
    rk__client_stop_waiters(cl);
    cl->topo->ops->close(cl->topo);
    if (cl->ext_ops && cl->ext_ops->close)
        cl->ext_ops->close(cl->ext);
}

void rk__client_after_fork(rk__client *cl)
{
    /* A new id: the parent still listens on the old one, and would count as a receiver of
     * hand-offs to a dead child (at worst, with no entropy, that stays so). */
    (void)rk__token_new(cl->id);
    if (cl->sub)
        rk__subscriber_after_fork(cl->sub);
    pthread_mutex_init(&cl->mu, NULL); /* a parent's thread may have held it */
    for (size_t i = 0; i < cl->nshards; i++)
        rk__subscriber_after_fork(cl->shards[i].sub);
    if (cl->ext_ops)
        cl->ext_ops->after_fork(cl->ext);
    /* Last: a topology may start a thread (Sentinel's watcher) that reaches the subscriber. */
    cl->topo->ops->after_fork(cl->topo);
}

int rk__client_not_open(const char *kind)
{
    return rk__err(RK_ENOTOPEN, "Connection is not opened (%s)", kind);
}

/* ---- deadlines ---- */

uint64_t rk__client_deadline(const rk__client *cl, uint64_t timeout_ms)
{
    return rk__deadline(timeout_ms == RK__NO_TIMEOUT ? cl->opts.timeout_ms : timeout_ms);
}

uint64_t rk__client_grace(const rk__client *cl)
{
    uint64_t ms = cl->opts.connect_timeout_ms;
    return rk__deadline(ms < RK__GRACE_MS ? ms : RK__GRACE_MS);
}

/* ---- the retry loop ---- */

/* Where one attempt goes and what came of it. */
typedef struct attempt_state {
    const char *name; /* the command, for events; NULL when the caller did not say */
    rk__node *node;   /* where it went */
    rk__node *ask;    /* the next attempt goes here, after ASKING (an ASK redirect) */
    rk__reply_class cls;
    rk__redirect redirect;
} attempt_state;

static int asking(rk__conn *c, uint64_t deadline)
{
    const char *argv[1] = {"ASKING"};
    redisReply *r;
    int rc = rk__conn_exec(c, &(rk__cmd){1, argv, (size_t[]){6}}, 1, &r, deadline);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_STATUS, "ASKING");
        rk__reply_free(r);
    }
    return rc;
}

static rk__node *route(rk__client *cl, const char *key, size_t klen, bool read)
{
    rk__topology *t = cl->topo;
    return read && t->ops->route_read ? t->ops->route_read(t, key, klen)
                                      : t->ops->route(t, key, klen);
}

static void node_event(rk__client *cl, rk_event_type type, const rk__node *node, const char *name,
                       uint64_t duration_us, int outcome)
{
    rk__emit(cl->stats,
             &(rk__event){type, NULL, 0, node ? &node->ep : NULL, name, duration_us, outcome});
}

/* A connection's first use (`fresh`, opened in `us`) raises its connect event; a failed
 * connect raises one too. */
static void note_connect(rk__client *cl, const rk__node *node, bool fresh, uint64_t us, int rc)
{
    if (fresh || rc == RK_EIO || rc == RK_EAUTH)
        node_event(cl, RK_EVENT_CONNECT, node, NULL, us, rc);
}

/* One attempt's command event, and the disconnect of the connection it found broken. */
static void note_command(rk__client *cl, const attempt_state *st, uint64_t took_us, int rc,
                         bool dropped)
{
    node_event(cl, RK_EVENT_COMMAND, st->node, st->name, took_us, rc);
    if (dropped)
        node_event(cl, RK_EVENT_DISCONNECT, st->node, NULL, 0, rc);
}

/* A pipeline for rk__client_exec: `shared` when it may go on the node's auto-pipelined
 * connection (options.auto_pipeline and rk__pipe_shareable). */
typedef struct {
    const rk__cmd *cmds;
    size_t n;
    redisReply **replies;
    bool shared;
} exec_arg;

static int exec_fn(rk__conn *c, void *arg, uint64_t deadline);
static int exec_settle(exec_arg *a, int rc, rk__reply_class cls);

/* An exec on the node's shared connection: the same classification and events as on a
 * borrowed one. */
static int attempt_shared(rk__client *cl, attempt_state *st, exec_arg *a, uint64_t deadline)
{
    rk__pipe_info info;
    uint64_t t0 = rk__now_us();
    int rc = rk__pipe_exec(&st->node->pool.pipe, a->cmds, a->n, a->replies, deadline, &st->cls,
                           &st->redirect, &info);
    uint64_t took = rk__now_us() - t0;
    note_connect(cl, st->node, info.opened, info.open_us, info.open_rc);
    note_command(cl, st, took, rc, info.dropped); /* dropped: by one caller per connection */
    return exec_settle(a, rc, st->cls);
}

/* One attempt on the node serving `key` (or the node an ASK named). */
static int attempt(rk__client *cl, attempt_state *st, const char *key, size_t klen, bool read,
                   uint64_t deadline, rk__conn_fn fn, void *arg)
{
    rk__conn *c;
    bool ask = st->ask != NULL;
    st->node = ask ? st->ask : route(cl, key, klen, read);
    st->ask = NULL;
    int rc;
    if (fn == exec_fn && !ask && ((exec_arg *)arg)->shared) { /* ASKING needs its own */
        /* A free connection serves at once; sharing pays a thread hop, so it is for when
         * every connection is busy. */
        if ((rc = rk__pool_get_free(&st->node->pool, &c, deadline)) == RK_OK && !c)
            return attempt_shared(cl, st, arg, deadline);
    } else {
        rc = rk__pool_get(&st->node->pool, &c, deadline);
    }
    st->cls = rc == RK_EIO ? RK__REPLY_CONN : RK__REPLY_ERR; /* a refused connect is retried */
    bool fresh = rc == RK_OK && !c->announced;
    if (fresh)
        c->announced = true;
    note_connect(cl, st->node, fresh, fresh ? c->connect_us : 0, rc);
    if (rc != RK_OK)
        return rc;
    uint64_t t0 = rk__now_us();
    if ((rc = ask ? asking(c, deadline) : RK_OK) == RK_OK)
        rc = fn(c, arg, deadline);
    note_command(cl, st, rk__now_us() - t0, rc, c->broken);
    st->cls = c->broken ? RK__REPLY_CONN : c->cls;
    if (rk__class_action(st->cls) == RK__ACT_REDIRECT) /* rare: the copy stays off the hot path */
        st->redirect = c->redirect;
    else
        st->redirect.cls = RK__REPLY_OK;
    rk__pool_put(&st->node->pool, c);
    return rc;
}

/* Ask the topology to learn the picture again; a changed cluster map raises an event. */
static bool refresh(rk__client *cl, rk__node *node, rk__reply_class cls, uint64_t deadline)
{
    rk__topology *t = cl->topo;
    unsigned before = atomic_load(&t->changes);
    bool moved = t->ops->refresh(t, node, cls, deadline);
    if (atomic_load(&t->changes) != before)
        node_event(cl, RK_EVENT_TOPOLOGY, node, NULL, 0, RK_OK);
    return moved;
}

/* Whether the loop goes round again after a failure of class `cls`. */
static bool again(rk__client *cl, rk__node *node, rk__reply_class cls, int rc, uint64_t deadline,
                  unsigned *reconnects)
{
    rk__topology *t = cl->topo;
    if (rc == RK_ETIMEDOUT || rk__remaining_ms(deadline) == 0)
        return false;
    switch (rk__class_action(cls)) {
    case RK__ACT_RETRY:
        return true;
    case RK__ACT_RECONNECT: /* only what the loop can cure: the transport failed */
        if (rc != RK_EIO)
            return false;
        /* One server of several: the next one. A cluster or Sentinel: learn the topology
         * again (a replica may be promoted) and keep trying until the deadline. */
        node_event(cl, RK_EVENT_RECONNECT, node, NULL, 0, rc);
        if (refresh(cl, node, cls, deadline) && t->follows)
            return true;
        return (*reconnects)++ < cl->opts.retries;
    case RK__ACT_REFRESH:
        return refresh(cl, node, cls, deadline);
    default:
        return false;
    }
}

/* The hook where operators see the retry policy at work (rk_set_log_handler, debug level). */
static void note_retry(const rk__client *cl, const rk__node *node, rk__reply_class cls, unsigned n)
{
    char peer[80];
    rk__log(RK_LOG_DEBUG, "%s: %s from %s, retry %u after %llu ms", cl->kind, rk__class_name(cls),
            rk__endpoint_name(&node->ep, peer, sizeof peer), n + 1,
            (unsigned long long)rk__backoff_ms(n));
}

/* A MOVED or ASK: learn where the slot went and go there at once (no back-off: nothing is
 * wrong, the map was out of date). False when the redirect cannot be followed. */
static bool follow(rk__client *cl, attempt_state *st, const char *key, size_t klen,
                   unsigned *redirects, int *rc)
{
    rk__topology *t = cl->topo;
    char peer[80];
    rk__endpoint_name(&st->node->ep, peer, sizeof peer);
    if (!t->ops->redirected || st->redirect.cls == RK__REPLY_OK)
        return false; /* not a cluster to us: the error stands */
    if (++*redirects > cl->opts.max_redirects) {
        *rc = rk__err(RK_EREPLY,
                      "key '%.*s': more than options.max_redirects=%llu redirects, the last "
                      "one a %s to %s:%u from %s",
                      (int)(klen > 100 ? 100 : klen), key ? key : "",
                      (unsigned long long)cl->opts.max_redirects,
                      st->redirect.cls == RK__REPLY_ASK ? "ASK" : "MOVED", st->redirect.host,
                      (unsigned)st->redirect.port, peer);
        return false;
    }
    rk__node *target = t->ops->redirected(t, &st->redirect, st->node);
    node_event(cl, RK_EVENT_REDIRECT, target, st->redirect.cls == RK__REPLY_ASK ? "ASK" : "MOVED",
               0, target ? RK_OK : RK_ENOMEM);
    rk__log(RK_LOG_DEBUG, "%s: %s slot %u to %s:%u from %s", cl->kind,
            st->redirect.cls == RK__REPLY_ASK ? "ASK" : "MOVED", st->redirect.slot,
            st->redirect.host, (unsigned)st->redirect.port, peer);
    if (st->redirect.cls == RK__REPLY_ASK)
        st->ask = target;
    return target != NULL;
}

/* The periodic refresh of a cluster's map, by whichever call finds it due. */
static void maybe_refresh(rk__client *cl, uint64_t deadline)
{
    rk__topology *t = cl->topo;
    uint64_t at = atomic_load_explicit(&t->refresh_at, memory_order_relaxed);
    if (at != UINT64_MAX && rk__now_ms() >= at)
        refresh(cl, NULL, RK__REPLY_OK, deadline);
}

static int run(rk__client *cl, const char *name, const char *key, size_t klen, bool read,
               uint64_t deadline, rk__conn_fn fn, void *arg)
{
    unsigned reconnects = 0, redirects = 0;
    uint64_t op = rk__deadline(cl->opts.timeout_ms); /* one operation inside a longer wait */
    if (op < deadline)
        deadline = op;
    attempt_state st; /* not zeroed: `redirect` is large and written before it is read */
    st.ask = NULL;
    st.name = name;
    for (unsigned n = 0;; n++) {
        if (atomic_load(&cl->closed))
            return rk__client_not_open(cl->kind);
        maybe_refresh(cl, deadline);
        int rc = attempt(cl, &st, key, klen, read, deadline, fn, arg);
        if (rc != RK_OK && atomic_load(&cl->closed)) /* our socket was shut down by close */
            return rk__client_not_open(cl->kind);
        if (rc == RK_OK)
            return rc;
        if (rk__class_action(st.cls) == RK__ACT_REDIRECT) {
            if (!follow(cl, &st, key, klen, &redirects, &rc) || rk__remaining_ms(deadline) == 0)
                return rc;
            /* Redirected again: the nodes disagree while a slot changes hands (each learns
             * the new owner over the cluster bus): give them a moment. */
            if (redirects > 1)
                rk__backoff(redirects - 1, deadline);
            continue;
        }
        if (st.cls == RK__REPLY_TRYAGAIN) /* a migration in progress, not a redirect loop */
            redirects = 0;
        if (!again(cl, st.node, st.cls, rc, deadline, &reconnects))
            return rc;
        note_retry(cl, st.node, st.cls, n);
        rk__backoff(n, deadline);
    }
}

int rk__client_run(rk__client *cl, const char *key, size_t klen, uint64_t deadline, rk__conn_fn fn,
                   void *arg)
{
    return run(cl, NULL, key, klen, false, deadline, fn, arg);
}

int rk__client_run_read(rk__client *cl, const char *name, const char *key, size_t klen,
                        uint64_t deadline, rk__conn_fn fn, void *arg)
{
    return run(cl, name, key, klen, true, deadline, fn, arg);
}

/* ---- pipelines and scripts ---- */

/* A reply class the loop acts on (LOADING, MOVED, ...) means the command did not run: fail the
 * attempt so that it is retried, rather than hand the caller an error reply. */
static int exec_settle(exec_arg *a, int rc, rk__reply_class cls)
{
    if (rc == RK_OK && rk__class_action(cls) != RK__ACT_DONE)
        for (size_t i = 0; rc == RK_OK && i < a->n; i++)
            if (rk__reply_classify(a->replies[i]) == cls)
                rc = rk__reply_error(a->replies[i], "command");
    for (size_t i = 0; rc != RK_OK && i < a->n; i++) {
        rk__reply_free(a->replies[i]);
        a->replies[i] = NULL;
    }
    return rc;
}

static int exec_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    exec_arg *a = arg;
    int rc = rk__conn_exec(c, a->cmds, a->n, a->replies, deadline); /* sets c->cls: read after */
    return exec_settle(a, rc, c->cls);
}

static int exec(rk__client *cl, const char *key, size_t klen, bool read, uint64_t deadline,
                const rk__cmd *cmds, size_t n, redisReply **replies)
{
    exec_arg a = {cmds, n, replies, cl->opts.auto_pipeline && rk__pipe_shareable(cmds, n)};
    return run(cl, cmds[0].argv[0], key, klen, read, deadline, exec_fn, &a);
}

int rk__client_exec(rk__client *cl, const char *key, size_t klen, uint64_t deadline,
                    const rk__cmd *cmds, size_t n, redisReply **replies)
{
    return exec(cl, key, klen, false, deadline, cmds, n, replies);
}

int rk__client_exec_read(rk__client *cl, const char *key, size_t klen, uint64_t deadline,
                         const rk__cmd *cmds, size_t n, redisReply **replies)
{
    return exec(cl, key, klen, true, deadline, cmds, n, replies);
}

typedef struct {
    const rk__script *script;
    int nkeys, nargs;
    const char *const *args;
    const size_t *lens;
    redisReply *reply;
} eval_arg;

static int eval_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    eval_arg *a = arg;
    rk__reply_free(a->reply);
    a->reply = NULL;
    int rc =
        rk__script_run(c, a->script, a->nkeys, a->nargs, a->args, a->lens, &a->reply, deadline);
    if (rc == RK_OK && a->reply->type == REDIS_REPLY_ERROR) {
        rc = rk__reply_error(a->reply, a->script->name);
        rk__reply_free(a->reply);
        a->reply = NULL;
    }
    return rc;
}

int rk__client_eval(rk__client *cl, const char *key, size_t klen, uint64_t deadline,
                    const rk__script *script, int nkeys, int nargs, const char *const *args,
                    const size_t *lens, redisReply **reply)
{
    eval_arg a = {script, nkeys, nargs, args, lens, NULL};
    int rc = run(cl, script->name, key, klen, false, deadline, eval_fn, &a);
    *reply = a.reply;
    return rc;
}

/* ---- batches: each command to the node of its key ---- */

typedef struct {
    const rk__cmd *cmds;
    const size_t *idx; /* the group's commands, as indexes into cmds */
    size_t n;
    redisReply **replies; /* the caller's, indexed like cmds */
} group_arg;

/* One node's share of a batch, pipelined. Replies the loop would act on (MOVED, ASK, ...) are
 * kept: each such command is re-run alone afterwards, with the whole policy. */
static int group_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    group_arg *g = arg;
    rk__cmd stack[64], *cmds = g->n <= 64 ? stack : rk__malloc(g->n * sizeof *cmds);
    redisReply *rstack[64], **r = g->n <= 64 ? rstack : rk__malloc(g->n * sizeof *r);
    int rc = cmds && r ? RK_OK : rk__err(RK_ENOMEM, "cannot allocate a pipeline of %zu", g->n);
    for (size_t i = 0; rc == RK_OK && i < g->n; i++)
        cmds[i] = g->cmds[g->idx[i]];
    if (rc == RK_OK && (rc = rk__conn_exec(c, cmds, g->n, r, deadline)) == RK_OK) {
        for (size_t i = 0; i < g->n; i++) {
            rk__reply_free(g->replies[g->idx[i]]);
            g->replies[g->idx[i]] = r[i];
        }
        c->cls = RK__REPLY_OK; /* per command, below */
    }
    if (cmds != stack)
        rk__free(cmds);
    if (r != rstack)
        rk__free(r);
    return rc;
}

/* The commands' indexes in `order`, grouped by the node of their key (argv[1]) in the order
 * the nodes first appear; group g ends at ends[g]. Returns the number of groups. */
static size_t group_by_node(rk__client *cl, const rk__cmd *cmds, size_t n, rk__node **node_of,
                            size_t *order, size_t *ends)
{
    for (size_t i = 0; i < n; i++)
        node_of[i] = route(cl, cmds[i].argv[1], cmds[i].argvlen[1], false);
    size_t k = 0, groups = 0;
    for (size_t i = 0; i < n; i++) {
        rk__node *node = node_of[i];
        if (!node) /* placed with an earlier command's group */
            continue;
        for (size_t j = i; j < n; j++)
            if (node_of[j] == node)
                order[k++] = j, node_of[j] = NULL;
        ends[groups++] = k;
    }
    return groups;
}

static int run_groups(rk__client *cl, uint64_t deadline, const rk__cmd *cmds, size_t n,
                      redisReply **replies, rk__node **node_of, size_t *order, size_t *ends)
{
    size_t groups = group_by_node(cl, cmds, n, node_of, order, ends);
    int rc = RK_OK;
    for (size_t g = 0, start = 0; rc == RK_OK && g < groups; start = ends[g++]) {
        group_arg a = {cmds, order + start, ends[g] - start, replies};
        const rk__cmd *first = &cmds[order[start]];
        rc = run(cl, first->argv[0], first->argv[1], first->argvlen[1], false, deadline, group_fn,
                 &a);
    }
    /* What a node answered with a redirect or a retry class, once more alone. */
    for (size_t i = 0; rc == RK_OK && i < n; i++) {
        if (rk__class_action(rk__reply_classify(replies[i])) == RK__ACT_DONE)
            continue;
        rk__reply_free(replies[i]);
        replies[i] = NULL;
        rc = rk__client_exec(cl, cmds[i].argv[1], cmds[i].argvlen[1], deadline, &cmds[i], 1,
                             &replies[i]);
    }
    return rc;
}

int rk__client_exec_each(rk__client *cl, uint64_t deadline, const rk__cmd *cmds, size_t n,
                         redisReply **replies)
{
    if (!cl->cluster)
        return rk__client_exec(cl, NULL, 0, deadline, cmds, n, replies);
    rk__node **node_of = rk__malloc(n * sizeof *node_of);
    size_t *order = rk__malloc(2 * n * sizeof *order);
    int rc = node_of && order ? RK_OK : rk__err(RK_ENOMEM, "cannot group %zu commands", n);
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    if (rc == RK_OK)
        rc = run_groups(cl, deadline, cmds, n, replies, node_of, order, order + n);
    for (size_t i = 0; rc != RK_OK && i < n; i++) {
        rk__reply_free(replies[i]);
        replies[i] = NULL;
    }
    rk__free(node_of);
    rk__free(order);
    return rc;
}

/* ---- reaching the server ---- */

static int ping_fn(rk__conn *conn, void *arg, uint64_t deadline)
{
    (void)arg;
    const char *argv[1] = {"PING"};
    size_t len[1] = {4};
    redisReply *r;
    int rc = rk__conn_exec(conn, &(rk__cmd){1, argv, len}, 1, &r, deadline);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_STATUS, "PING");
        rk__reply_free(r);
    }
    return rc;
}

/* The seed the single-node topology is on now (the one that answered). */
static size_t seed_of(const rk__client *cl, const rk__node *node)
{
    for (size_t i = 0; i < cl->nseeds; i++)
        if (&cl->seeds[i] == &node->ep ||
            (node->ep.port == cl->seeds[i].port && node->ep.host && cl->seeds[i].host &&
             !strcmp(node->ep.host, cl->seeds[i].host)))
            return i;
    return 0;
}

static int not_a_cluster(rk__client *cl, const redisReply *r)
{
    char peer[80];
    rk__node *node = cl->topo->ops->route(cl->topo, NULL, 0);
    rk__endpoint_name(&node->ep, peer, sizeof peer);
    if (cl->opts.cluster == RK__CLUSTER_ON)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "options.cluster=true but %s is not a cluster node (%.*s)", peer,
                             r->type == REDIS_REPLY_ERROR ? (int)r->len : 0, r->str ? r->str : "");
    return RK_OK; /* auto: one server (or the first of several that answers) */
}

/* Ask the first seed that answers whether it is a cluster node; if so, trade the single-node
 * topology for a cluster map. The connection used stays in the pool of whichever wins. */
static int discover(rk__client *cl, uint64_t deadline)
{
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    redisReply *r;
    int rc = rk__client_exec(cl, NULL, 0, deadline, &(rk__cmd){2, argv, (size_t[]){7, 5}}, 1, &r);
    if (rc != RK_OK)
        return rc == RK_EREPLY && cl->opts.db && strstr(rk_last_error()->message, "cluster mode")
                   ? rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                                   "options.db_num (or the URI's database) is %llu, but a "
                                   "cluster has database 0 only",
                                   (unsigned long long)cl->opts.db)
                   : rc;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = not_a_cluster(cl, r);
        rk__reply_free(r);
        return rc;
    }
    rk__topology *t;
    size_t from = seed_of(cl, cl->topo->ops->route(cl->topo, NULL, 0));
    rc = rk__topology_cluster_new(&t, cl->seeds, cl->nseeds, from, r, cl->tls_ctx, &cl->opts);
    rk__reply_free(r);
    if (rc == RK_OK) {
        cl->topo->ops->free(cl->topo); /* nobody else has seen this client yet */
        cl->topo = t;
        cl->cluster = true;
    }
    return rc;
}

static const rk__endpoint *pick_endpoint(void *arg, unsigned failures)
{
    rk__topology *t = ((rk__client *)arg)->topo;
    rk__node *n = t->ops->pick ? t->ops->pick(t, failures) : t->ops->route(t, NULL, 0);
    return &n->ep;
}

/* The master moved: the classic subscriber follows it (its picker names the new master). */
static void master_switched(void *arg)
{
    rk__client *cl = arg;
    node_event(cl, RK_EVENT_FAILOVER, NULL, NULL, 0, RK_OK);
    if (cl->sub)
        rk__subscriber_reconnect(cl->sub);
}

/* The seeds are sentinels: trade the single-node topology for the master they name. */
static int follow_sentinels(rk__client *cl, uint64_t deadline)
{
    rk__topology *t;
    int rc = rk__topology_sentinel_new(&t, cl->seeds, cl->nseeds, cl->tls_ctx, &cl->opts, deadline,
                                       master_switched, cl);
    if (rc == RK_OK) {
        cl->topo->ops->free(cl->topo); /* nobody else has seen this client yet */
        cl->topo = t;
    }
    return rc;
}

int rk__client_connect(rk__client *cl, uint64_t deadline)
{
    int rc = cl->opts.sentinel_master              ? follow_sentinels(cl, deadline)
             : cl->opts.cluster == RK__CLUSTER_OFF ? RK_OK
                                                   : discover(cl, deadline);
    if (rc == RK_OK && cl->sub) { /* classic Pub/Sub reaches every node of a cluster */
        rk__subscriber_set_picker(cl->sub, pick_endpoint, cl);
        rk__subscriber_open(cl->sub, pick_endpoint(cl, 0), cl->tls_ctx, cl->opts.timeout_ms);
    }
    return rc == RK_OK ? run(cl, "PING", NULL, 0, false, deadline, ping_fn, NULL) : rc;
}

/* ---- subscribers ---- */

/* The sharded subscriber of the node serving `channel`, started on first use. */
static rk__subscriber *shard_subscriber(rk__client *cl, const rk__name *channel)
{
    rk__node *node = cl->topo->ops->route(cl->topo, channel->str, channel->len);
    rk__subscriber *sub = NULL;
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->nshards && !sub; i++)
        if (cl->shards[i].node == node)
            sub = cl->shards[i].sub;
    if (!sub && !cl->stopped) {
        void *grown = rk__realloc(cl->shards, (cl->nshards + 1) * sizeof *cl->shards);
        if (grown && rk__subscriber_new_sharded(&sub, cl->kind) == RK_OK) {
            cl->shards = grown;
            cl->shards[cl->nshards++] = (rk__shard_sub){node, sub};
            rk__subscriber_open(sub, &node->ep, cl->tls_ctx, cl->opts.timeout_ms);
        } else if (grown) {
            cl->shards = grown;
        }
    }
    pthread_mutex_unlock(&cl->mu);
    return sub ? sub : cl->sub; /* out of memory, or closing: a closed one fails the join */
}

rk__subscriber *rk__client_subscriber(rk__client *cl, const rk__name *channel, bool sharded)
{
    return sharded && cl->cluster ? shard_subscriber(cl, channel) : cl->sub;
}
