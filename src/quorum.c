#include "quorum.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"
#include "log.h"
#include "pool.h"
#include "scripts.h"
#include "token.h"
#include "wait.h"

typedef struct qnode {
    const rk__endpoint *ep; /* one of the client's seeds */
    rk__pool pool;
    _Atomic uint64_t down_until; /* monotonic ms: a failed connect skips the node until then */
} qnode;

typedef struct rk__quorum {
    size_t n;
    qnode *nodes;
    uint64_t node_timeout_ms, retry_ms;
} rk__quorum;

static size_t majority(const rk__quorum *q) { return q->n / 2 + 1; }

/* ---- the nodes' lifecycle, with the client's (rk__client_ext_ops) ---- */

static void q_close(void *ext)
{
    rk__quorum *q = ext;
    for (size_t i = 0; i < q->n; i++)
        rk__pool_close(&q->nodes[i].pool);
}

static void q_after_fork(void *ext)
{
    rk__quorum *q = ext;
    for (size_t i = 0; i < q->n; i++)
        rk__pool_after_fork(&q->nodes[i].pool);
}

static void q_free(void *ext)
{
    rk__quorum *q = ext;
    for (size_t i = 0; q && i < q->n; i++)
        rk__pool_destroy(&q->nodes[i].pool);
    if (q)
        rk__free(q->nodes);
    rk__free(q);
}

static const rk__client_ext_ops quorum_ops = {q_close, q_after_fork, q_free};

static int q_new(rk__quorum **out, rk__client *cl)
{
    rk__quorum *q = rk__calloc(1, sizeof *q);
    if (!q || !(q->nodes = rk__calloc(cl->nseeds, sizeof *q->nodes))) {
        rk__free(q);
        return rk__err(RK_ENOMEM, "cannot allocate the quorum's %zu nodes", cl->nseeds);
    }
    q->node_timeout_ms = cl->opts.quorum_node_timeout_ms;
    q->retry_ms = cl->opts.retry_timeout_ms;
    for (size_t i = 0; i < cl->nseeds; i++, q->n++) {
        if (rk__pool_init(&q->nodes[i].pool) != RK_OK) {
            q_free(q);
            return rk__err(RK_ENOMEM, "cannot create a connection pool");
        }
        q->nodes[i].ep = &cl->seeds[i];
        atomic_init(&q->nodes[i].down_until, 0);
        rk__pool_open(&q->nodes[i].pool, &cl->seeds[i], cl->tls_ctx, cl->opts.max_connections);
    }
    *out = q;
    return RK_OK;
}

/* ---- one command on every node at once ---- */

/* A script (EVALSHA, then EVAL on a node that answers NOSCRIPT) or, without one, a command. */
typedef struct q_cmd {
    const rk__script *script;
    int nkeys, nargs;
    const char *const *args;
    const size_t *lens;
} q_cmd;

#define Q_MAX_ARGS 8

static void encode(const q_cmd *qc, bool eval, const char **argv, size_t *argvlen, char *nk,
                   rk__cmd *cmd)
{
    int argc = 0;
    if (qc->script) {
        argv[0] = eval ? "EVAL" : "EVALSHA", argvlen[0] = eval ? 4 : 7;
        argv[1] = eval ? qc->script->source : qc->script->sha;
        argvlen[1] = strlen(argv[1]);
        argv[2] = nk, argvlen[2] = (size_t)snprintf(nk, 8, "%d", qc->nkeys);
        argc = 3;
    }
    for (int i = 0; i < qc->nargs; i++, argc++)
        argv[argc] = qc->args[i], argvlen[argc] = qc->lens[i];
    *cmd = (rk__cmd){argc, argv, argvlen};
}

static bool noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8);
}

/* What became of one node in one attempt: the command went out, the node was too slow to take it
 * (a refusal this time, like a late reply), or it is down: it refused the connection, or did so
 * within the last retry interval. Only down nodes make a call fail before its deadline. */
typedef enum { Q_SENT, Q_SLOW, Q_DOWN } q_reach;

/* Send on a connection to the node (`*out`). A node that refused a connection is skipped for
 * `skip_ms`, so that a dead node costs one connect attempt per retry interval, not one per call.
 * An idle connection the node closed meanwhile (a restart) fails its write: one more try, on a
 * fresh connection. */
static q_reach send_to(qnode *node, const rk__cmd *cmd, uint64_t until, uint64_t skip_ms,
                       rk__conn **out)
{
    *out = NULL;
    if (atomic_load(&node->down_until) > rk__now_ms())
        return Q_DOWN;
    for (int attempt = 0; attempt < 2; attempt++) {
        rk__conn *c = NULL;
        int rc = rk__pool_get(&node->pool, &c, until);
        if (rc == RK_ETIMEDOUT)
            return Q_SLOW;
        if (rc != RK_OK) {
            atomic_store(&node->down_until, rk__now_ms() + skip_ms);
            return Q_DOWN;
        }
        if (rk__conn_send(c, cmd, 1, until) == RK_OK) {
            *out = c;
            return Q_SENT;
        }
        rk__pool_put(&node->pool, c); /* broken: closed */
    }
    return Q_SLOW;
}

static redisReply *recv_from(qnode *node, rk__conn *c, const q_cmd *qc, uint64_t until)
{
    redisReply *r = NULL;
    if (rk__conn_recv(c, &r, until) == RK_OK && noscript(r)) {
        const char *argv[Q_MAX_ARGS + 3];
        size_t argvlen[Q_MAX_ARGS + 3];
        char nk[8];
        rk__cmd cmd;
        rk__reply_free(r);
        r = NULL;
        encode(qc, true, argv, argvlen, nk, &cmd);
        if (rk__conn_send(c, &cmd, 1, until) != RK_OK || rk__conn_recv(c, &r, until) != RK_OK)
            r = NULL;
    }
    if (!r)
        c->broken = true; /* a reply may still be on its way: never reuse it */
    rk__pool_put(&node->pool, c);
    return r;
}

/* Run `qc` on every node, all writes first, then every read, each bounded by `until`.
 * replies[i] is NULL for a node that did not answer; a reply may be an error reply. Returns how
 * many nodes are up (not Q_DOWN): a slow node is a refusal for this attempt, not a lost node. */
static size_t each(rk__quorum *q, const q_cmd *qc, uint64_t until, redisReply **replies)
{
    size_t reached = 0;
    const char *argv[Q_MAX_ARGS + 3];
    size_t argvlen[Q_MAX_ARGS + 3];
    char nk[8];
    rk__cmd cmd;
    rk__conn *conns[RK__URI_MAX_HOSTS];
    rk__err_saved keep; /* a node's failure is a refusal, not the call's error */
    rk__err_save(&keep);
    encode(qc, false, argv, argvlen, nk, &cmd);
    for (size_t i = 0; i < q->n; i++) {
        replies[i] = NULL;
        reached += send_to(&q->nodes[i], &cmd, until, q->retry_ms, &conns[i]) != Q_DOWN;
    }
    for (size_t i = 0; i < q->n; i++)
        if (conns[i])
            replies[i] = recv_from(&q->nodes[i], conns[i], qc, until);
    rk__err_restore(&keep);
    return reached;
}

static void free_replies(const rk__quorum *q, redisReply **replies)
{
    for (size_t i = 0; i < q->n; i++)
        rk__reply_free(replies[i]);
}

static size_t answered(const rk__quorum *q, redisReply *const *replies)
{
    size_t k = 0;
    for (size_t i = 0; i < q->n; i++)
        k += replies[i] != NULL;
    return k;
}

/* "a:1, b:2": the nodes without a reply. Endpoint names carry no credentials. */
static const char *missing(const rk__quorum *q, redisReply *const *replies, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < q->n && used < cap; i++) {
        char name[96];
        if (replies[i])
            continue;
        int w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "",
                         rk__endpoint_name(q->nodes[i].ep, name, sizeof name));
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

static int unreachable(const rk__quorum *q, redisReply *const *replies, const char *what)
{
    char names[512];
    return rk__err_named(RK_EIO, "QUORUM_UNREACHABLE", "NoResponse", NULL,
                         "%s: only %zu of the %zu quorum nodes answered, a majority (%zu) is "
                         "needed; no answer from %s",
                         what, answered(q, replies), q->n, majority(q),
                         missing(q, replies, names, sizeof names));
}

/* ---- open ---- */

int rk__quorum_attach(rk__client *cl, uint64_t deadline)
{
    if (cl->nseeds < 3)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "options.lock_mode=quorum needs at least 3 endpoints (independent "
                             "masters), got %zu",
                             cl->nseeds);
    if (cl->nseeds > RK__URI_MAX_HOSTS)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "options.lock_mode=quorum takes at most %d endpoints, got %zu",
                             RK__URI_MAX_HOSTS, cl->nseeds);
    if (cl->nseeds % 2 == 0)
        rk__log(RK_LOG_WARN,
                "options.lock_mode=quorum over %zu nodes: an even count tolerates no more failed "
                "nodes than %zu would (a majority is %zu)",
                cl->nseeds, cl->nseeds - 1, cl->nseeds / 2 + 1);
    rk__quorum *q = NULL;
    int rc = q_new(&q, cl);
    if (rc != RK_OK)
        return rc;
    const char *ping[1] = {"PING"};
    size_t plen[1] = {4};
    redisReply *replies[RK__URI_MAX_HOSTS];
    uint64_t until = rk__deadline(cl->opts.connect_timeout_ms);
    each(q, &(q_cmd){NULL, 0, 1, ping, plen}, until < deadline ? until : deadline, replies);
    if (answered(q, replies) < majority(q))
        rc = unreachable(q, replies, "lock open");
    free_replies(q, replies);
    if (rc != RK_OK) {
        q_close(q);
        q_free(q);
        return rc;
    }
    cl->ext = q;
    cl->ext_ops = &quorum_ops;
    return RK_OK;
}

/* ---- the lock ---- */

static uint64_t node_until(const rk__quorum *q, uint64_t deadline)
{
    uint64_t until = rk__deadline(q->node_timeout_ms);
    return until < deadline ? until : deadline;
}

/* How many nodes answered `want` (an integer, or OK for SET). */
static size_t count_int(const rk__quorum *q, redisReply *const *replies, long long want)
{
    size_t k = 0;
    for (size_t i = 0; i < q->n; i++)
        k += replies[i] && replies[i]->type == REDIS_REPLY_INTEGER && replies[i]->integer == want;
    return k;
}

static size_t count_ok(const rk__quorum *q, redisReply *const *replies)
{
    size_t k = 0;
    for (size_t i = 0; i < q->n; i++)
        k += replies[i] && replies[i]->type == REDIS_REPLY_STATUS;
    return k;
}

/* What is left of a lease of `ttl_ms` taken over `elapsed_ms`, less the clock drift allowance. */
static bool still_valid(uint64_t ttl_ms, uint64_t elapsed_ms)
{
    uint64_t spent = elapsed_ms + ttl_ms / 100 + 2;
    return ttl_ms > spent;
}

int rk__quorum_try(rk__client *cl, const rk__name *key, const char *token, uint64_t ttl_ms,
                   uint64_t deadline, bool *acquired)
{
    rk__quorum *q = cl->ext;
    char ttl[24];
    const char *set[6] = {"SET", key->str, token, "NX", "PX", ttl};
    size_t lens[6] = {3, key->len, RK__TOKEN_LEN,
                      2, 2,        (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms)};
    redisReply *replies[RK__URI_MAX_HOSTS];
    uint64_t start = rk__now_ms();
    size_t reached = each(q, &(q_cmd){NULL, 0, 6, set, lens}, node_until(q, deadline), replies);
    size_t granted = count_ok(q, replies);
    *acquired = granted >= majority(q) && still_valid(ttl_ms, rk__now_ms() - start);
    int rc = RK_OK;
    if (reached < majority(q)) /* no majority can grant anything: say so now, not at timeout */
        rc = unreachable(q, replies, "lock");
    free_replies(q, replies);
    if (!*acquired && granted) /* give back what we got: nobody else could take it meanwhile */
        rk__quorum_release(cl, key, token, rk__client_grace(cl), NULL);
    return rc;
}

int rk__quorum_release(rk__client *cl, const rk__name *key, const char *token, uint64_t deadline,
                       bool *was_held)
{
    rk__quorum *q = cl->ext;
    rk__name chan = RK__NAME_INIT;
    int rc = rk__name_lock_freed(&chan, key);
    if (rc != RK_OK)
        return rc;
    const char *args[3] = {key->str, token, chan.str};
    size_t lens[3] = {key->len, RK__TOKEN_LEN, chan.len};
    redisReply *replies[RK__URI_MAX_HOSTS];
    /* A release is worth the whole operation's time on each node: a key left behind holds the
     * lock there for its TTL. */
    uint64_t until = rk__deadline(cl->opts.timeout_ms);
    each(q, &(q_cmd){&rk__script_quorum_release, 1, 3, args, lens},
         until < deadline ? until : deadline, replies);
    if (was_held)
        *was_held = count_int(q, replies, 1) > 0;
    free_replies(q, replies);
    rk__name_free(&chan);
    return RK_OK;
}

int rk__quorum_extend(rk__client *cl, const rk__name *key, const char *token, uint64_t ttl_ms,
                      uint64_t deadline, bool *extended)
{
    rk__quorum *q = cl->ext;
    char ttl[24];
    const char *args[3] = {key->str, token, ttl};
    size_t lens[3] = {key->len, RK__TOKEN_LEN,
                      (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms)};
    redisReply *replies[RK__URI_MAX_HOSTS];
    uint64_t start = rk__now_ms();
    size_t reached =
        each(q, &(q_cmd){&rk__script_extend, 1, 3, args, lens}, node_until(q, deadline), replies);
    *extended =
        count_int(q, replies, 1) >= majority(q) && still_valid(ttl_ms, rk__now_ms() - start);
    int rc = reached < majority(q) ? unreachable(q, replies, "extend") : RK_OK;
    free_replies(q, replies);
    return rc;
}

/* ---- waiting: random retries, woken early by a release ---- */

typedef struct q_wait {
    rk__client *cl;
    const rk__name *key;
    const char *caller_key, *token;
    uint64_t ttl_ms, deadline;
    uint64_t rnd;
} q_wait;

static int q_check(void *arg, bool *done)
{
    q_wait *w = arg;
    return rk__quorum_try(w->cl, w->key, w->token, w->ttl_ms, w->deadline, done);
}

static rk__seen q_message(void *arg, rk_buf *msg)
{
    (void)arg;
    (void)msg;
    return RK__SEEN_RECHECK; /* a release somewhere: try now */
}

static int q_expired(void *arg)
{
    q_wait *w = arg;
    return rk__err_named(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict", NULL,
                         "Acquiring lock %s failed on timeout", w->caller_key);
}

/* A random pause in [1, retry_timeout], so that contenders who split the votes do not meet
 * again at once (xorshift: no need for more). */
static uint64_t q_recheck_ms(void *arg)
{
    q_wait *w = arg;
    w->rnd ^= w->rnd << 13;
    w->rnd ^= w->rnd >> 7;
    w->rnd ^= w->rnd << 17;
    return 1 + w->rnd % w->cl->opts.retry_timeout_ms;
}

static const rk__wait_ops q_ops = {q_check, q_message, q_expired, q_recheck_ms};

int rk__quorum_acquire(rk__client *cl, const rk__name *key, const char *caller_key,
                       const char *token, uint64_t ttl_ms, uint64_t deadline)
{
    rk__name chan = RK__NAME_INIT;
    uint64_t seed = rk__now_ms() ^ (uint64_t)(uintptr_t)&chan;
    for (int i = 0; i < 16; i++)
        seed = seed * 31 + (unsigned char)token[i];
    q_wait w = {cl, key, caller_key, token, ttl_ms, deadline, seed | 1};
    int rc = rk__name_lock_freed(&chan, key);
    if (rc == RK_OK)
        rc = rk__wait(cl, &chan, false, NULL, deadline, &q_ops, &w);
    rk__name_free(&chan);
    return rc;
}
