#include "redkit/lock.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "component.h"
#include "error_int.h"
#include "events.h"
#include "holder.h"
#include "keys.h"
#include "quorum.h"
#include "retry.h"
#include "scripts.h"
#include "slot.h"
#include "token.h"
#include "wait.h"
#include "watchdog.h"

struct rk_lock {
    rk__component base; /* first: the component's hooks get it back as an rk_lock */
    rk__holder hold;    /* full key -> held: the locks this handle acquired; queued waiters */
    rk__watchdog *wd;   /* renews the locks rk_lock_watch() was asked to */
};

static void drain(rk__component *c, rk__client *cl);
static void after_fork(rk__component *c);
static int opened(rk__component *c, rk__client *cl);
static rk__lease renew(void *ud, const char *key, const char *token, uint64_t ttl_ms,
                       uint64_t timeout_ms);
static void lost(void *ud, const char *key);

int rk_lock_new(rk_lock **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_lock_new: out is NULL");
    *out = NULL;
    rk_lock *l = rk__calloc(1, sizeof *l);
    if (!l)
        return rk__err(RK_ENOMEM, "cannot allocate a lock");
    int rc = rk__component_init(&l->base, "lock", true);
    if (rc == RK_OK && (rc = rk__holder_init(&l->hold)) != RK_OK)
        rk__component_destroy(&l->base);
    if (rc == RK_OK && (rc = rk__watchdog_new(&l->wd, renew, lost, l)) != RK_OK) {
        rk__holder_destroy(&l->hold);
        rk__component_destroy(&l->base);
    }
    if (rc != RK_OK) {
        rk__free(l);
        return rc;
    }
    l->base.drain = drain;
    l->base.after_fork = after_fork;
    l->base.opened = opened;
    *out = l;
    return RK_OK;
}

int rk_lock_get_stats(rk_lock *l, rk_stats *out)
{
    if (!l)
        return rk__err(RK_EINVAL, "rk_lock_get_stats: lock is NULL");
    return rk__component_stats(&l->base, out);
}

void rk_lock_free(rk_lock *l)
{
    if (!l)
        return;
    rk_lock_close(l, NULL); /* ends the watchdog's thread while the handle is whole */
    rk__component_destroy(&l->base);
    rk__watchdog_free(l->wd);
    rk__holder_destroy(&l->hold);
    rk__free(l);
}

int rk_lock_configure(rk_lock *l, const rk_config *cfg)
{
    if (!l)
        return rk__err(RK_EINVAL, "rk_lock_configure: lock is NULL");
    return rk__component_configure(&l->base, cfg);
}

int rk_lock_set_references(rk_lock *l, const rk_references *refs)
{
    if (!l)
        return rk__err(RK_EINVAL, "rk_lock_set_references: lock is NULL");
    return rk__component_set_references(&l->base, refs);
}

int rk_lock_open(rk_lock *l, const rk_context *ctx)
{
    if (!l)
        return rk__ret(rk__err(RK_EINVAL, "rk_lock_open: lock is NULL"), ctx);
    return rk__ret(rk__component_open(&l->base, ctx), ctx);
}

bool rk_lock_is_open(const rk_lock *l) { return l && rk__component_is_open(&l->base); }

/* Close has stopped the waiters; give them until the connect timeout to leave their queues. */
static void drain(rk__component *c, rk__client *cl)
{
    rk_lock *l = (rk_lock *)c;
    rk__watchdog_stop(l->wd); /* joined once the client is closed, which ends a renewal at once */
    rk__holder_drain(&l->hold, cl->opts.connect_timeout_ms);
}

/* options.lock_mode=quorum: the nodes (quorum.h) open with the client, and a majority must
 * answer. */
static int opened(rk__component *c, rk__client *cl)
{
    (void)c;
    if (cl->opts.lock_mode != RK__LOCK_QUORUM)
        return RK_OK;
    return rk__quorum_attach(cl, rk__client_deadline(cl, RK__NO_TIMEOUT));
}

static bool quorum(const rk__client *cl) { return cl->opts.lock_mode == RK__LOCK_QUORUM; }

static void after_fork(rk__component *c)
{
    rk_lock *l = (rk_lock *)c;
    rk__holder_after_fork(&l->hold);
    rk__watchdog_after_fork(l->wd);
}

int rk_lock_close(rk_lock *l, const rk_context *ctx)
{
    if (!l)
        return rk__ret(rk__err(RK_EINVAL, "rk_lock_close: lock is NULL"), ctx);
    int rc = rk__component_close(&l->base);
    rk__watchdog_join(l->wd);
    return rc;
}

/* ---- one operation's view: client, deadline, names ---- */

typedef struct {
    rk__client *cl;
    uint64_t deadline; /* of the whole public call */
    const char *key;   /* the caller's key, for messages */
    rk__name full;     /* <p><key>: the lock itself */
    /* Built on first use by op_names(): the queue's keys, the fencing counter, our inbox. */
    rk__name queue, waiters, fence, inbox;
    bool named;
    rk__stats *stats; /* the handle's, NULL without one */
    rk__op kind;      /* the public call counted at op_end, RK__OPS for none */
    uint64_t t0_us;   /* when it began */
} lock_op;

static int op_begin(lock_op *op, rk_lock *l, const char *key, uint64_t timeout_ms)
{
    memset(op, 0, sizeof *op);
    op->kind = RK__OPS;
    op->t0_us = rk__now_us();
    if (!l)
        return rk__err(RK_EINVAL, "lock is NULL");
    op->stats = &l->base.stats;
    int rc = rk__check_key(key, "key");
    if (rc != RK_OK)
        return rc;
    op->key = key;
    if (!(op->cl = rk__component_begin(&l->base)))
        return RK_ENOTOPEN;
    op->deadline = rk__client_deadline(op->cl, timeout_ms);
    if ((rc = rk__name_key(&op->full, &op->cl->opts, key)) != RK_OK)
        return rc;
    /* Its queue, heartbeats and fencing counter must share its slot: see keys.h. */
    if (op->cl->cluster && rk__braces_without_tag(op->full.str, op->full.len))
        return rk__err(RK_EINVAL,
                       "lock '%s': in a cluster a lock key with braces needs a valid hash tag "
                       "('{tag}', not empty), so that its queue can share its slot",
                       key);
    return RK_OK;
}

static int op_end(lock_op *op, int rc)
{
    if (op->stats && op->kind != RK__OPS)
        rk__stats_call(op->stats, op->kind, op->t0_us, rc);
    rk__name_free(&op->full);
    rk__name_free(&op->queue);
    rk__name_free(&op->waiters);
    rk__name_free(&op->fence);
    rk__name_free(&op->inbox);
    rk__component_end(op->cl);
    return rc;
}

static void lock_event(const lock_op *op, rk_event_type type, uint64_t since_us, int outcome)
{
    rk__emit(op->stats, &(rk__event){type, op->key, op->key ? strlen(op->key) : 0, NULL, NULL,
                                     since_us ? rk__now_us() - since_us : 0, outcome});
}

static int op_names(lock_op *op)
{
    if (op->named)
        return RK_OK;
    int rc = rk__name_lock_queue(&op->queue, &op->full);
    if (rc == RK_OK)
        rc = rk__name_lock_waiters(&op->waiters, &op->full);
    if (rc == RK_OK)
        rc = rk__name_lock_fence(&op->fence, &op->full);
    if (rc == RK_OK)
        rc = rk__name_lock_inbox(&op->inbox, op->cl->id, op->cl->cluster ? &op->full : NULL);
    op->named = rc == RK_OK;
    return rc == RK_OK ? RK_OK : rk__err_prefix("lock '%s': ", op->key);
}

/* ---- what this handle holds, per key ---- */

/* One acquisition: its token (first, as holder.h wants), its ttl, its fencing number (0 without
 * fencing) and when it was granted (the hold time's start). */
typedef struct held {
    char token[RK__TOKEN_LEN + 1];
    uint64_t ttl_ms;
    uint64_t fence;
    uint64_t granted_us;
} held;
_Static_assert(offsetof(held, token) == 0, "rk__holder_forget() reads a record's token first");

static int remember(rk_lock *l, const lock_op *op, const held *h)
{
    held *copy = rk__malloc(sizeof *copy);
    if (!copy)
        return rk__err(RK_ENOMEM, "cannot remember the token of lock '%s'", op->key);
    *copy = *h;
    copy->granted_us = rk__now_us();
    lock_event(op, RK_EVENT_LOCK_GRANTED, op->t0_us, RK_OK);
    return rk__holder_put(&l->hold, op->full.str, op->full.len, copy);
}

/* What this handle holds on the key; an empty token when it holds nothing. */
static void recall(rk_lock *l, const lock_op *op, held *out)
{
    rk__holder_get(&l->hold, op->full.str, op->full.len, out, sizeof *out);
}

/* Forget the token, unless another acquisition replaced it meanwhile. */
static void forget(rk_lock *l, const lock_op *op, const char *token)
{
    rk__holder_forget(&l->hold, op->full.str, op->full.len, token);
}

/* ---- scripts ---- */

/* Run a lock script that answers an integer, routed by the lock key. */
static int script(const lock_op *op, const rk__script *sc, uint64_t deadline, int nkeys, int nargs,
                  const char *const *args, const size_t *lens, long long *result)
{
    redisReply *r;
    int rc = rk__client_eval(op->cl, op->full.str, op->full.len, deadline, sc, nkeys, nargs, args,
                             lens, &r);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_INTEGER, sc->name);
        *result = r->integer;
        rk__reply_free(r);
    }
    return rc;
}

static const char *flag(bool on) { return on ? "1" : "0"; }

/* ---- try_acquire: SET key token NX PX ttl ---- */

typedef struct {
    const lock_op *op;
    const char *token;
    uint64_t ttl_ms;
    bool sent; /* a previous attempt may have succeeded before its reply was lost */
    bool acquired;
} try_arg;

static int try_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    try_arg *a = arg;
    char ttl[24];
    const char *set[6] = {"SET", a->op->full.str, a->token, "NX", "PX", ttl};
    size_t setlen[6] = {3,
                        a->op->full.len,
                        RK__TOKEN_LEN,
                        2,
                        2,
                        (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, a->ttl_ms)};
    const char *get[2] = {"GET", a->op->full.str};
    size_t getlen[2] = {3, a->op->full.len};
    rk__cmd cmds[2] = {{6, set, setlen}, {2, get, getlen}};
    redisReply *r[2] = {NULL, NULL};
    size_t n = a->sent ? 2 : 1;
    a->sent = true;
    int rc = rk__conn_exec(c, cmds, n, r, deadline);
    if (rc == RK_OK && r[0]->type == REDIS_REPLY_ERROR)
        rc = rk__reply_error(r[0], "SET NX");
    if (rc == RK_OK)
        a->acquired = r[0]->type == REDIS_REPLY_STATUS ||
                      (n == 2 && r[1]->type == REDIS_REPLY_STRING && r[1]->len == RK__TOKEN_LEN &&
                       !memcmp(r[1]->str, a->token, RK__TOKEN_LEN));
    rk__reply_free(r[0]);
    rk__reply_free(r[1]);
    return rc;
}

/* The pip-services SET NX alone, or with fencing the same in a script that counts the grant. */
static int try_grant(lock_op *op, const char *token, uint64_t ttl_ms, bool *sent, held *h)
{
    if (!op->cl->opts.lock_fencing) {
        try_arg a = {op, token, ttl_ms, false, false};
        int rc = rk__client_run(op->cl, op->full.str, op->full.len, op->deadline, try_fn, &a);
        *sent = a.sent;
        h->fence = a.acquired;
        return rc;
    }
    char ttl[24];
    long long fence = 0;
    int rc = op_names(op);
    if (rc == RK_OK) {
        const char *args[4] = {op->full.str, op->fence.str, token, ttl};
        size_t lens[4] = {op->full.len, op->fence.len, RK__TOKEN_LEN,
                          (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms)};
        *sent = true;
        rc = script(op, &rk__script_lock_try, op->deadline, 2, 4, args, lens, &fence);
    }
    h->fence = rc == RK_OK && fence > 0 ? (uint64_t)fence : 0;
    return rc;
}

/* ---- replication (options.lock_replicas) ----
 * Replication is asynchronous: a grant the master acknowledged can die with it and be granted
 * again on the promoted replica. After each grant the holder asks WAIT how many replicas have
 * it. WAIT counts what its own connection wrote, and a hand-off was written by the releaser's,
 * so the holder first re-asserts its lease (an owner-checked PEXPIRE) on the connection that
 * then WAITs. */

typedef struct {
    lock_op *op;
    const char *token;
    uint64_t ttl_ms;
    long long held, acks;
} repl_arg;

static int repl_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    repl_arg *a = arg;
    const rk__options *o = &a->op->cl->opts;
    char ttl[24], n[24], ms[24];
    const char *args[3] = {a->op->full.str, a->token, ttl};
    size_t lens[3] = {a->op->full.len, RK__TOKEN_LEN,
                      (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, a->ttl_ms)};
    const char *wait[3] = {"WAIT", n, ms};
    size_t wlens[3] = {4, (size_t)snprintf(n, sizeof n, "%" PRIu64, o->lock_replicas),
                       (size_t)snprintf(ms, sizeof ms, "%" PRIu64, o->lock_replicas_timeout_ms)};
    redisReply *r = NULL, *w = NULL;
    /* One round trip: if the lease was gone, WAIT only confirms nothing new. */
    int rc = rk__script_run_then(c, &rk__script_extend, 1, 3, args, lens,
                                 &(rk__cmd){3, wait, wlens}, &r, &w, deadline);
    if (rc == RK_OK)
        rc = rk__reply_expect(r, REDIS_REPLY_INTEGER, "lock extend");
    if (rc == RK_OK)
        rc = rk__reply_expect(w, REDIS_REPLY_INTEGER, "WAIT");
    a->held = rc == RK_OK ? r->integer : 0;
    a->acks = rc == RK_OK ? w->integer : 0;
    rk__reply_free(r);
    rk__reply_free(w);
    return rc;
}

/* RK_OK once options.lock_replicas replicas have our grant; RK_EIO (LOCK_NOT_REPLICATED)
 * when fewer acknowledged it in time, or the lease was already gone. */
static int replicated(lock_op *op, const char *token, uint64_t ttl_ms)
{
    const rk__options *o = &op->cl->opts;
    repl_arg a = {op, token, ttl_ms, 0, 0};
    uint64_t deadline = rk__client_deadline(op->cl, RK__NO_TIMEOUT);
    int rc = rk__client_run(op->cl, op->full.str, op->full.len, deadline, repl_fn, &a);
    if (rc != RK_OK || (a.held == 1 && a.acks >= (long long)o->lock_replicas))
        return rc;
    return rk__err_named(RK_EIO, "LOCK_NOT_REPLICATED", "FailedInvocation", NULL,
                         "lock '%s' was granted, but %s%lld of the %" PRIu64
                         " replicas asked for (options.lock_replicas) acknowledged it within "
                         "%" PRIu64 " ms: released",
                         op->key, a.held == 1 ? "" : "its lease had already expired and ", a.acks,
                         o->lock_replicas, o->lock_replicas_timeout_ms);
}

static int give_back(lock_op *op, const char *token);
static int release_token(lock_op *op, const char *token, uint64_t deadline, bool *was_held);

/* Hand back a grant that did not replicate; the caller's error (LOCK_NOT_REPLICATED) stands. */
static void drop_unreplicated(lock_op *op, const char *token)
{
    rk__err_saved why;
    rk__err_save(&why);
    release_token(op, token, rk__client_grace(op->cl), NULL);
    rk__err_restore(&why);
}

static int try_once(rk_lock *l, lock_op *op, uint64_t ttl_ms, bool *acquired)
{
    held h = {"", ttl_ms, 0, 0};
    bool sent = false;
    int rc = rk__token_new(h.token);
    if (rc == RK_OK && quorum(op->cl)) {
        sent = true;
        rc = rk__quorum_try(op->cl, &op->full, h.token, ttl_ms, op->deadline, acquired);
        h.fence = rc == RK_OK && *acquired;
    } else if (rc == RK_OK) {
        rc = try_grant(op, h.token, ttl_ms, &sent, &h);
    }
    *acquired = rc == RK_OK && h.fence > 0;
    if (*acquired && op->cl->opts.lock_replicas &&
        (rc = replicated(op, h.token, ttl_ms)) != RK_OK) {
        drop_unreplicated(op, h.token);
        *acquired = false;
        return rc;
    }
    if (!op->cl->opts.lock_fencing)
        h.fence = 0;
    if (*acquired)
        rc = remember(l, op, &h);
    /* Out of memory after the SET went out (reading its reply, or remembering the token): the
     * lock may be ours without this handle knowing it, so it could neither be released nor
     * re-acquired until its TTL ran out. The server is fine, so hand it back now. */
    if (rc == RK_ENOMEM && sent)
        rc = give_back(op, h.token);
    *acquired = *acquired && rc == RK_OK;
    return rc;
}

static int check_ttl(const char *key, uint64_t ttl_ms)
{
    if (ttl_ms == 0)
        return rk__err(RK_EINVAL, "lock '%s': ttl_ms must be greater than 0", key);
    if (ttl_ms > INT64_MAX / 2)
        return rk__err(RK_EINVAL, "lock '%s': ttl_ms %" PRIu64 " is too large", key, ttl_ms);
    return RK_OK;
}

int rk_lock_try_acquire(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms,
                        bool *acquired)
{
    lock_op op;
    if (acquired)
        *acquired = false;
    int rc = op_begin(&op, l, key, RK__NO_TIMEOUT);
    op.kind = RK__OP_TRY_ACQUIRE;
    if (rc == RK_OK && !acquired)
        rc = rk__err(RK_EINVAL, "try_acquire '%s': acquired is NULL", key);
    if (rc == RK_OK)
        rc = check_ttl(key, ttl_ms);
    if (rc == RK_OK && (rc = try_once(l, &op, ttl_ms, acquired)) != RK_OK)
        rk__err_prefix("try_acquire '%s': ", key);
    return rk__ret(op_end(&op, rc), ctx);
}

/* ---- the fair queue: acquire, release, leave ---- */

/* Hand the lock to the first live waiter, or free it; nothing if `token` no longer holds it.
 * `*held` (may be NULL) tells whether it did hold it. */
static int release_token(lock_op *op, const char *token, uint64_t deadline, bool *was_held)
{
    if (quorum(op->cl))
        return rk__quorum_release(op->cl, &op->full, token, deadline, was_held);
    char yield[24], standback[24];
    long long result = 0;
    const rk__options *o = &op->cl->opts;
    int rc = op_names(op);
    if (rc == RK_OK) {
        const char *args[9] = {op->full.str,  op->queue.str, op->waiters.str,
                               op->fence.str, token,         flag(o->lock_fencing),
                               yield,         standback,     flag(op->cl->cluster)};
        size_t lens[9] = {
            op->full.len,
            op->queue.len,
            op->waiters.len,
            op->fence.len,
            RK__TOKEN_LEN,
            1,
            (size_t)snprintf(yield, sizeof yield, "%" PRIu64, o->lock_yield_ms),
            (size_t)snprintf(standback, sizeof standback, "%" PRIu64, o->retry_timeout_ms + 10),
            1};
        rc = script(op, &rk__script_lock_release, deadline, 4, 9, args, lens, &result);
    }
    if (rc == RK_OK && result == 2)
        lock_event(op, RK_EVENT_LOCK_HANDOFF, 0, RK_OK);
    if (was_held)
        *was_held = rc == RK_OK && result != 0;
    return rc;
}

/* Leave the queue; the lock may have been handed to us meanwhile (`*acquired`). */
static int leave_queue(lock_op *op, const char *token, uint64_t deadline, bool *acquired)
{
    *acquired = false;
    if (quorum(op->cl)) /* no queue */
        return RK_OK;
    long long result = 0;
    int rc = op_names(op);
    if (rc == RK_OK) {
        const char *args[4] = {op->full.str, op->queue.str, op->waiters.str, token};
        size_t lens[4] = {op->full.len, op->queue.len, op->waiters.len, RK__TOKEN_LEN};
        rc = script(op, &rk__script_lock_leave, deadline, 3, 4, args, lens, &result);
    }
    *acquired = rc == RK_OK && result == 1;
    return rc;
}

/* Give back a lock we may hold, and our place in its queue, after the handle could not record
 * the outcome (out of memory reading the reply or remembering the token); then report
 * RK_ENOMEM: the error of the failed acquisition is kept when this works, replaced when not. */
static int give_back(lock_op *op, const char *token)
{
    bool handed;
    uint64_t grace = rk__client_grace(op->cl);
    int rc = release_token(op, token, grace, NULL);
    if (rc == RK_OK)
        rc = leave_queue(op, token, grace, &handed);
    if (rc == RK_OK)
        return RK_ENOMEM;
    char why[256];
    snprintf(why, sizeof why, "%s", rk_last_error()->message);
    return rk__err_cause(RK_ENOMEM, why,
                         "out of memory acquiring lock '%s', which may stay held until its "
                         "TTL: giving it back failed",
                         op->key);
}

/* One attempt at the fair lock; `alive_ms` > 0 also queues (or refreshes) us as a waiter.
 * `*fence` becomes the grant's fencing number (1 without fencing), or 0 when not granted;
 * `*behind` (may be NULL) whether live waiters are ahead of us in the queue. */
static int fair_attempt(lock_op *op, const char *token, uint64_t ttl_ms, uint64_t alive_ms,
                        uint64_t deadline, uint64_t *fence, bool *behind)
{
    char ttl[24], alive[24];
    long long result = 0;
    int rc = op_names(op);
    if (rc == RK_OK) {
        const char *args[9] = {op->full.str,  op->queue.str, op->waiters.str,
                               op->fence.str, token,         ttl,
                               alive,         op->inbox.str, flag(op->cl->opts.lock_fencing)};
        size_t lens[9] = {op->full.len,
                          op->queue.len,
                          op->waiters.len,
                          op->fence.len,
                          RK__TOKEN_LEN,
                          (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms),
                          (size_t)snprintf(alive, sizeof alive, "%" PRIu64, alive_ms),
                          op->inbox.len,
                          1};
        rc = script(op, &rk__script_lock_acquire, deadline, 4, 9, args, lens, &result);
    }
    *fence = rc == RK_OK && result > 0 ? (uint64_t)result : 0;
    if (behind)
        *behind = rc == RK_OK && result < 0;
    return rc;
}

/* ---- acquire: queue up, then wait to be handed the lock ---- */

static int lock_timeout(const char *key)
{
    return rk__err_named(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict", NULL,
                         "Acquiring lock %s failed on timeout", key);
}

/* Waiters keep a heartbeat (holder.h); a dead one is skipped at once: nobody hears the
 * hand-off on its inbox. The first in line looks at the lock every retry_timeout, as a
 * pip-services holder's release is announced to nobody. */

/* A queued acquisition, as the shared wait loop sees it. */
typedef struct {
    lock_op *op;
    const char *token;
    uint64_t ttl_ms;
    uint64_t fence; /* > 0 once granted */
    bool behind;    /* live waiters are ahead of us */
} queued;

/* Re-check: the acquire script with queueing doubles as our heartbeat. */
static int queued_check(void *arg, bool *done)
{
    queued *q = arg;
    int rc = fair_attempt(q->op, q->token, q->ttl_ms, rk__holder_alive_ms(q->op->cl),
                          q->op->deadline, &q->fence, &q->behind);
    *done = q->fence > 0;
    return rc;
}

/* The hand-off, on our inbox: "<token>" or "<token>:<fencing number>" (the subscriber passes
 * only messages that start with our token). The release script set the lock to our token. */
static rk__seen queued_message(void *arg, rk_buf *msg)
{
    queued *q = arg;
    if (msg->len < RK__TOKEN_LEN || memcmp(msg->data, q->token, RK__TOKEN_LEN))
        return RK__SEEN_IGNORE;
    unsigned long long fence = 1;
    if (msg->len > RK__TOKEN_LEN + 1 && msg->data[RK__TOKEN_LEN] == ':')
        fence = strtoull(msg->data + RK__TOKEN_LEN + 1, NULL, 10);
    q->fence = fence ? fence : 1;
    return RK__SEEN_DONE;
}

/* Out of time: leave the queue, unless the lock was handed to us just now (then the next
 * check, made at once, reads its fencing number). */
static int queued_expired(void *arg)
{
    queued *q = arg;
    bool handed;
    int rc = leave_queue(q->op, q->token, rk__client_grace(q->op->cl), &handed);
    if (rc == RK_OK && handed)
        rc = fair_attempt(q->op, q->token, q->ttl_ms, 0, rk__client_grace(q->op->cl), &q->fence,
                          NULL);
    return rc == RK_OK && !q->fence ? lock_timeout(q->op->key) : rc;
}

static uint64_t queued_recheck_ms(void *arg)
{
    queued *q = arg;
    return q->behind ? rk__holder_heartbeat_ms(q->op->cl) : q->op->cl->opts.retry_timeout_ms;
}

static const rk__wait_ops queued_ops = {queued_check, queued_message, queued_expired,
                                        queued_recheck_ms};

/* The call ended without the lock (closed, failed, timed out mid-command): leave the queue, and
 * pass on a lock handed to us meanwhile, which nobody would release. */
static void give_up_place(lock_op *op, const char *token)
{
    bool handed = false;
    uint64_t grace = rk__client_grace(op->cl);
    if (leave_queue(op, token, grace, &handed) == RK_OK && handed)
        release_token(op, token, grace, NULL);
}

static int wait_in_line(rk_lock *l, lock_op *op, const char *token, uint64_t ttl_ms,
                        uint64_t *fence)
{
    queued q = {op, token, ttl_ms, 0, false};
    lock_event(op, RK_EVENT_LOCK_WAIT, 0, RK_OK);
    rk__holder_count_waiting(&l->hold, +1);
    int rc = op_names(op);
    if (rc == RK_OK)
        rc = rk__wait(op->cl, &op->inbox, true, token, op->deadline, &queued_ops, &q);
    if (rc != RK_OK && rc != RK_ENOMEM) { /* ENOMEM: give_back() does it, and reports it */
        rk__err_saved why;
        rk__err_save(&why);
        give_up_place(op, token);
        rk__err_restore(&why);
    }
    rk__holder_count_waiting(&l->hold, -1);
    *fence = rc == RK_OK ? q.fence : 0;
    return rc;
}

/* Quorum mode: one attempt, then random retries woken by releases (quorum.h). No queue, no
 * fencing: each node would hand the lock to its own first waiter. */
static int acquire_quorum(rk_lock *l, lock_op *op, uint64_t ttl_ms, uint64_t timeout_ms, held *out)
{
    held h = {"", ttl_ms, 0, 0};
    bool acquired = false;
    uint64_t first = timeout_ms ? op->deadline : rk__client_deadline(op->cl, RK__NO_TIMEOUT);
    int rc = rk__token_new(h.token);
    if (rc == RK_OK)
        rc = rk__quorum_try(op->cl, &op->full, h.token, ttl_ms, first, &acquired);
    if (rc == RK_OK && !acquired)
        rc = timeout_ms == 0
                 ? lock_timeout(op->key)
                 : rk__quorum_acquire(op->cl, &op->full, op->key, h.token, ttl_ms, op->deadline);
    if (rc == RK_OK && (rc = remember(l, op, &h)) != RK_OK)
        rc = give_back(op, h.token);
    *out = h;
    return rc;
}

static int acquire_once(rk_lock *l, lock_op *op, uint64_t ttl_ms, uint64_t timeout_ms, held *out)
{
    if (quorum(op->cl))
        return acquire_quorum(l, op, ttl_ms, timeout_ms, out);
    held h = {"", ttl_ms, 0, 0};
    uint64_t fence = 0;
    int rc = rk__token_new(h.token);
    /* A handle that waited a moment ago still has its inbox subscribed: its keys are likely
     * contended, so it queues at once, which spares the hot path one script. Otherwise it
     * tries first and subscribes only if needed. */
    bool hot = rc == RK_OK && timeout_ms > 0 && op_names(op) == RK_OK &&
               rk__subscriber_active(rk__client_subscriber(op->cl, &op->inbox, true), op->inbox.str,
                                     op->inbox.len);
    /* A single attempt (timeout 0) still gets a whole operation's time for its round trip. */
    uint64_t first = timeout_ms ? op->deadline : rk__client_deadline(op->cl, RK__NO_TIMEOUT);
    if (rc == RK_OK && !hot)
        rc = fair_attempt(op, h.token, ttl_ms, 0, first, &fence, NULL);
    if (rc == RK_OK && !fence)
        rc = timeout_ms == 0 ? lock_timeout(op->key) : wait_in_line(l, op, h.token, ttl_ms, &fence);
    h.fence = op->cl->opts.lock_fencing ? fence : 0;
    if (rc == RK_OK && fence)
        rc = remember(l, op, &h);
    if (rc == RK_ENOMEM) /* the script may have run: the lock or a queue place may be ours */
        rc = give_back(op, h.token);
    *out = h;
    return rc;
}

/* With options.lock_replicas, a grant that did not replicate is released and tried again
 * until the deadline, when LOCK_TIMEOUT carries why. */
static int acquire(rk_lock *l, lock_op *op, uint64_t ttl_ms, uint64_t timeout_ms)
{
    enum { AGAIN = 1 }; /* not an RK_ code: the grant did not replicate, time is left */
    char why[256] = ""; /* the last grant that did not replicate */
    for (unsigned n = 1;; n++) {
        held h;
        int rc = acquire_once(l, op, ttl_ms, timeout_ms, &h);
        if (rc == RK_OK && op->cl->opts.lock_replicas &&
            (rc = replicated(op, h.token, ttl_ms)) != RK_OK) {
            drop_unreplicated(op, h.token);
            forget(l, op, h.token);
            if (rc == RK_EIO) {
                snprintf(why, sizeof why, "%s", rk_last_error()->message);
                rc = timeout_ms && rk__remaining_ms(op->deadline) ? AGAIN : RK_ETIMEDOUT;
            }
        }
        if (rc == RK_ETIMEDOUT && *why)
            return rk__err_named(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict", why,
                                 "Acquiring lock %s failed on timeout", op->key);
        if (rc != AGAIN)
            return rc;
        rk__backoff(n, op->deadline);
    }
}

int rk_lock_acquire(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms,
                    uint64_t timeout_ms)
{
    lock_op op;
    int rc = op_begin(&op, l, key, timeout_ms);
    op.kind = RK__OP_ACQUIRE;
    if (rc == RK_OK)
        rc = check_ttl(key, ttl_ms);
    if (rc == RK_OK)
        rc = acquire(l, &op, ttl_ms, timeout_ms);
    if (rc == RK_ETIMEDOUT)
        lock_event(&op, RK_EVENT_LOCK_TIMEOUT, op.t0_us, rc);
    return rk__ret(op_end(&op, rc), ctx);
}

/* ---- release and extend ---- */

int rk_lock_release(rk_lock *l, const rk_context *ctx, const char *key)
{
    lock_op op;
    held h;
    bool was_held;
    int rc = op_begin(&op, l, key, RK__NO_TIMEOUT);
    op.kind = RK__OP_RELEASE;
    if (rc == RK_OK) {
        rk__watchdog_unwatch(l->wd, key, NULL); /* before the script: see rk__watchdog_unwatch */
        recall(l, &op, &h);
    }
    if (rc == RK_OK && *h.token) {
        if ((rc = release_token(&op, h.token, op.deadline, &was_held)) == RK_OK) {
            forget(l, &op, h.token); /* released, handed over, or expired: ours no more */
            lock_event(&op, RK_EVENT_LOCK_RELEASED, h.granted_us, was_held ? RK_OK : RK_ENOTOWNER);
        } else
            rk__err_prefix("release '%s': ", key);
    }
    return rk__ret(op_end(&op, rc), ctx);
}

/* Compare-and-PEXPIRE on the lock's server, or on every quorum node: `*extended`. */
static int extend_run(lock_op *op, const char *token, uint64_t ttl_ms, bool *extended)
{
    if (quorum(op->cl))
        return rk__quorum_extend(op->cl, &op->full, token, ttl_ms, op->deadline, extended);
    char ttl[24];
    long long result = 0;
    const char *args[3] = {op->full.str, token, ttl};
    size_t lens[3] = {op->full.len, RK__TOKEN_LEN,
                      (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms)};
    int rc = script(op, &rk__script_extend, op->deadline, 1, 3, args, lens, &result);
    *extended = rc == RK_OK && result == 1;
    return rc;
}

/* Extend the lease of `token` (compare-and-PEXPIRE: a key gone stays gone). */
static int extend_token(lock_op *op, const char *token, uint64_t ttl_ms)
{
    bool extended = false;
    if (extend_run(op, token, ttl_ms, &extended) != RK_OK)
        return rk__err_prefix("extend '%s': ", op->key);
    if (!extended)
        return rk__err(RK_ENOTOWNER, "extend '%s': the lock expired or another owner holds it",
                       op->key);
    return RK_OK;
}

int rk_lock_extend(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms)
{
    lock_op op;
    held h;
    int rc = op_begin(&op, l, key, RK__NO_TIMEOUT);
    op.kind = RK__OP_EXTEND;
    if (rc == RK_OK)
        rc = check_ttl(key, ttl_ms);
    if (rc == RK_OK)
        recall(l, &op, &h);
    if (rc == RK_OK && !*h.token)
        rc = rk__err(RK_ENOTOWNER, "extend '%s': this handle does not hold the lock", key);
    if (rc == RK_OK)
        rc = extend_token(&op, h.token, ttl_ms);
    return rk__ret(op_end(&op, rc), ctx);
}

/* What this handle holds on `key`, for the accessors below, which write to `out` (named
 * `param` in messages): RK_EINVAL when it is NULL, RK_ENOTOWNER when nothing is held. */
static int holding(rk_lock *l, lock_op *op, const char *key, const char *what, const void *out,
                   const char *param, held *h)
{
    int rc = op_begin(op, l, key, RK__NO_TIMEOUT);
    if (rc == RK_OK && !out)
        rc = rk__err(RK_EINVAL, "%s '%s': %s is NULL", what, key, param);
    if (rc == RK_OK)
        recall(l, op, h);
    if (rc == RK_OK && !*h->token)
        rc = rk__err(RK_ENOTOWNER, "%s '%s': this handle does not hold the lock", what, key);
    return rc;
}

int rk_lock_token(rk_lock *l, const char *key, char token[RK_LOCK_TOKEN_SIZE])
{
    lock_op op;
    held h;
    int rc = holding(l, &op, key, "token", token, "token", &h);
    if (rc == RK_OK)
        memcpy(token, h.token, sizeof h.token);
    else if (token)
        *token = '\0';
    return rk__ret(op_end(&op, rc), NULL);
}

int rk_lock_fencing_token(rk_lock *l, const char *key, uint64_t *out)
{
    lock_op op;
    held h;
    if (out)
        *out = 0;
    int rc = holding(l, &op, key, "fencing token", out, "out", &h);
    if (rc == RK_OK && !op.cl->opts.lock_fencing)
        rc = rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                           "fencing token '%s': options.lock_fencing is off (set it to true)", key);
    if (rc == RK_OK)
        *out = h.fence;
    return rk__ret(op_end(&op, rc), NULL);
}

static bool is_token(const char *s)
{
    size_t n = 0;
    while (n < RK__TOKEN_LEN && ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
        n++;
    return n == RK__TOKEN_LEN && !s[n];
}

int rk_lock_release_token(rk_lock *l, const rk_context *ctx, const char *key, const char *token)
{
    lock_op op;
    bool was_held = false;
    int rc = op_begin(&op, l, key, RK__NO_TIMEOUT);
    if (rc == RK_OK && (!token || !is_token(token)))
        rc = rk__err(RK_EINVAL, "release '%s': token is not 32 lowercase hex characters", key);
    if (rc == RK_OK)
        rk__watchdog_unwatch(l->wd, key, token); /* if it is the lease watched on `key` */
    if (rc == RK_OK && (rc = release_token(&op, token, op.deadline, &was_held)) != RK_OK)
        rk__err_prefix("release '%s': ", key);
    if (rc == RK_OK) {
        forget(l, &op, token); /* in case this handle acquired it */
        if (!was_held)
            rc = rk__err(RK_ENOTOWNER, "release '%s': the token does not hold the lock", key);
    }
    return rk__ret(op_end(&op, rc), ctx);
}

/* ---- the lease watchdog ---- */

/* The watchdog renews the lease it watches, by its token, not whatever the handle holds now: a
 * renewal in flight while the key is released and acquired again must not cut the new lease to
 * the old TTL. It answers within the time the lease has left. */
static rk__lease renew(void *ud, const char *key, const char *token, uint64_t ttl_ms,
                       uint64_t timeout_ms)
{
    lock_op op;
    int rc = op_begin(&op, ud, key, timeout_ms);
    if (rc == RK_OK)
        rc = extend_token(&op, token, ttl_ms);
    lock_event(&op, RK_EVENT_LOCK_RENEWED, 0, rc);
    op_end(&op, rc);
    return rc == RK_OK ? RK__LEASE_RENEWED : rc == RK_ENOTOWNER ? RK__LEASE_LOST : RK__LEASE_FAILED;
}

/* The watchdog found a watched lease lost: counted before the user's handler hears of it. */
static void lost(void *ud, const char *key)
{
    rk_lock *l = ud;
    rk__emit(&l->base.stats,
             &(rk__event){RK_EVENT_LOCK_LOST, key, strlen(key), NULL, NULL, 0, RK_ENOTOWNER});
}

int rk_lock_set_lost_handler(rk_lock *l, rk_lock_lost_fn fn, void *ud)
{
    if (!l)
        return rk__err(RK_EINVAL, "rk_lock_set_lost_handler: lock is NULL");
    rk__component_check_fork(&l->base); /* the watchdog's mutex may be a parent thread's */
    rk__watchdog_set_lost(l->wd, fn, ud);
    return RK_OK;
}

/* Renew now, which also tells that the lease is still ours, then let the watchdog go on. */
int rk_lock_watch(rk_lock *l, const char *key)
{
    lock_op op;
    held h = {"", 0, 0};
    int rc = op_begin(&op, l, key, RK__NO_TIMEOUT);
    if (rc == RK_OK)
        recall(l, &op, &h);
    if (rc == RK_OK && !*h.token)
        rc = rk__err(RK_ENOTOWNER, "watch '%s': this handle does not hold the lock", key);
    uint64_t since = rk__now_ms(); /* the renewed lease runs from no earlier than this */
    if (rc == RK_OK && (rc = extend_token(&op, h.token, h.ttl_ms)) == RK_OK)
        rc = rk__watchdog_watch(l->wd, key, h.token, h.ttl_ms, since);
    /* A close that stopped the watchdog before our watch: nothing else would end it. */
    if (rc == RK_OK && !rk_lock_is_open(l)) {
        rk__watchdog_unwatch(l->wd, key, h.token);
        rc = rk__client_not_open("lock");
    }
    return rk__ret(op_end(&op, rc), NULL);
}
