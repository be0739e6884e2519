#include "client.h"

#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"
#include "log.h"
#include "retry.h"
#include "tls.h"
#include "token.h"

/* ---- lifecycle ---- */

static void client_free(rk__client *cl)
{
    if (cl->topo)
        cl->topo->ops->free(cl->topo);
    rk__subscriber_free(cl->sub);
    rk__tls_ctx_free(cl->tls_ctx);
    rk__options_clear(&cl->opts);
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

static int build(rk__client *cl, const rk_config *cfg, const rk_references *refs,
                 const rk_context *ctx, bool pubsub)
{
    rk__endpoint *eps;
    size_t n;
    int rc = rk__resolve_seeds(&eps, &n, cfg, refs, &cl->opts, ctx);
    if (rc != RK_OK)
        return rc;
    if ((rc = make_tls(cl, &eps[0])) == RK_OK) /* the seeds share their TLS options */
        rc = rk__topology_single_new(&cl->topo, eps, n, cl->tls_ctx, cl->opts.max_connections);
    rk__seeds_free(eps, n); /* the topology keeps its own copy per node */
    if (rc == RK_OK && pubsub && (rc = rk__subscriber_new(&cl->sub, cl->kind)) == RK_OK) {
        rk__node *any = cl->topo->ops->route(cl->topo, NULL, 0); /* Pub/Sub reaches all nodes */
        rk__subscriber_open(cl->sub, &any->ep, cl->tls_ctx, cl->opts.timeout_ms);
    }
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
}

void rk__client_close(rk__client *cl)
{
    atomic_store(&cl->closed, true);
    rk__client_stop_waiters(cl);
    cl->topo->ops->close(cl->topo);
}

void rk__client_after_fork(rk__client *cl)
{
    /* A new id: the parent still listens on the old one, and would count as a receiver of
     * hand-offs to a dead child (at worst, with no entropy, that stays so). */
    (void)rk__token_new(cl->id);
    cl->topo->ops->after_fork(cl->topo);
    if (cl->sub)
        rk__subscriber_after_fork(cl->sub);
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

/* One attempt on the node serving `key`; `*cls` says what went wrong, if anything. */
static int attempt(rk__client *cl, rk__node **node, const char *key, size_t klen, uint64_t deadline,
                   rk__conn_fn fn, void *arg, rk__reply_class *cls)
{
    rk__conn *c;
    *node = cl->topo->ops->route(cl->topo, key, klen);
    int rc = rk__pool_get(&(*node)->pool, &c, deadline);
    *cls = rc == RK_EIO ? RK__REPLY_CONN : RK__REPLY_ERR; /* a refused connect is retried */
    if (rc != RK_OK)
        return rc;
    rc = fn(c, arg, deadline);
    *cls = c->broken ? RK__REPLY_CONN : c->cls;
    rk__pool_put(&(*node)->pool, c);
    return rc;
}

/* Whether the loop goes round again after a failure of class `cls`. */
static bool again(rk__client *cl, rk__node *node, rk__reply_class cls, int rc, uint64_t deadline,
                  unsigned *reconnects)
{
    if (rc == RK_ETIMEDOUT || rk__remaining_ms(deadline) == 0)
        return false;
    switch (rk__class_action(cls)) {
    case RK__ACT_RETRY:
        return true;
    case RK__ACT_RECONNECT: /* only what the loop can cure: the transport failed */
        if (rc != RK_EIO)
            return false;
        cl->topo->ops->refresh(cl->topo, node, cls, deadline); /* the next endpoint, if any */
        return (*reconnects)++ < cl->opts.retries;
    case RK__ACT_REDIRECT:
    case RK__ACT_REFRESH:
        return cl->topo->ops->refresh(cl->topo, node, cls, deadline);
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

int rk__client_run(rk__client *cl, const char *key, size_t klen, uint64_t deadline, rk__conn_fn fn,
                   void *arg)
{
    unsigned reconnects = 0;
    uint64_t op = rk__deadline(cl->opts.timeout_ms); /* one operation inside a longer wait */
    if (op < deadline)
        deadline = op;
    for (unsigned n = 0;; n++) {
        if (atomic_load(&cl->closed))
            return rk__client_not_open(cl->kind);
        rk__node *node;
        rk__reply_class cls;
        int rc = attempt(cl, &node, key, klen, deadline, fn, arg, &cls);
        if (rc != RK_OK && atomic_load(&cl->closed)) /* our socket was shut down by close */
            return rk__client_not_open(cl->kind);
        if (rc == RK_OK || !again(cl, node, cls, rc, deadline, &reconnects))
            return rc;
        note_retry(cl, node, cls, n);
        rk__backoff(n, deadline);
    }
}

/* ---- pipelines and scripts ---- */

typedef struct {
    const rk__cmd *cmds;
    size_t n;
    redisReply **replies;
} exec_arg;

/* A reply class the loop acts on (LOADING, MOVED, ...) means the command did not run: fail the
 * attempt so that it is retried, rather than hand the caller an error reply. */
static int exec_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    exec_arg *a = arg;
    int rc = rk__conn_exec(c, a->cmds, a->n, a->replies, deadline);
    if (rc == RK_OK && rk__class_action(c->cls) != RK__ACT_DONE)
        for (size_t i = 0; rc == RK_OK && i < a->n; i++)
            if (rk__reply_classify(a->replies[i]) == c->cls)
                rc = rk__reply_error(a->replies[i], "command");
    for (size_t i = 0; rc != RK_OK && i < a->n; i++) {
        rk__reply_free(a->replies[i]);
        a->replies[i] = NULL;
    }
    return rc;
}

int rk__client_exec(rk__client *cl, const char *key, size_t klen, uint64_t deadline,
                    const rk__cmd *cmds, size_t n, redisReply **replies)
{
    exec_arg a = {cmds, n, replies};
    return rk__client_run(cl, key, klen, deadline, exec_fn, &a);
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
    int rc = rk__client_run(cl, key, klen, deadline, eval_fn, &a);
    *reply = a.reply;
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

int rk__client_ping(rk__client *cl, uint64_t deadline)
{
    return rk__client_run(cl, NULL, 0, deadline, ping_fn, NULL);
}
