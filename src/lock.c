#include "redkit/lock.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "component.h"
#include "error_int.h"
#include "map.h"
#include "scripts.h"
#include "subscriber.h"
#include "token.h"

#define CHANNEL_PREFIX "redkit:lock-released:"
#define QUEUE_PREFIX "redkit:lock-queue:"
#define WAITERS_PREFIX "redkit:lock-waiters:"
#define KEYBUF 256

struct rk_lock {
    rk__component base;
    rk__subscriber *sub;
    pthread_mutex_t mu; /* guards tokens and waiting */
    rk__map tokens;     /* full key -> token (heap string) of locks this handle acquired */
    /* Acquisitions queued in Redis: close lets them leave the queue before the pool goes, or
     * a release could hand the lock to a token nobody is waiting for. */
    unsigned waiting;
    pthread_cond_t none_waiting;
};

int rk_lock_new(rk_lock **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_lock_new: out is NULL");
    *out = NULL;
    rk_lock *l = rk__calloc(1, sizeof *l);
    if (!l)
        return rk__err(RK_ENOMEM, "cannot allocate a lock");
    int rc = rk__component_init(&l->base, "lock");
    if (rc == RK_OK && (rc = rk__subscriber_new(&l->sub, "lock")) != RK_OK)
        rk__component_destroy(&l->base);
    if (rc == RK_OK && pthread_mutex_init(&l->mu, NULL) != 0) {
        rk__subscriber_free(l->sub);
        rk__component_destroy(&l->base);
        rc = rk__err(RK_ENOMEM, "cannot create a mutex");
    }
    if (rc == RK_OK && pthread_cond_init(&l->none_waiting, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        rk__subscriber_free(l->sub);
        rk__component_destroy(&l->base);
        rc = rk__err(RK_ENOMEM, "cannot create a condition variable");
    }
    if (rc != RK_OK) {
        rk__free(l);
        return rc;
    }
    *out = l;
    return RK_OK;
}

void rk_lock_free(rk_lock *l)
{
    if (!l)
        return;
    rk__subscriber_free(l->sub);
    rk__component_destroy(&l->base);
    rk__map_clear(&l->tokens, rk__free);
    pthread_cond_destroy(&l->none_waiting);
    pthread_mutex_destroy(&l->mu);
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
    int rc = rk__component_open(&l->base, ctx);
    const rk__settings *s = rc == RK_OK ? rk__component_begin(&l->base) : NULL;
    if (s)
        rk__subscriber_open(l->sub, &s->ep, s->opts.timeout_ms);
    return rk__ret(rc, ctx);
}

bool rk_lock_is_open(const rk_lock *l) { return l && rk__component_is_open(&l->base); }

int rk_lock_close(rk_lock *l, const rk_context *ctx)
{
    if (!l)
        return rk__ret(rk__err(RK_EINVAL, "rk_lock_close: lock is NULL"), ctx);
    rk__subscriber_close(l->sub); /* wakes every waiter with RK_ENOTOPEN */
    pthread_mutex_lock(&l->mu);
    while (l->waiting)
        pthread_cond_wait(&l->none_waiting, &l->mu);
    pthread_mutex_unlock(&l->mu);
    return rk__component_close(&l->base);
}

/* ---- one operation's view: settings, full key, channel ---- */

typedef struct {
    const rk__settings *s;
    const char *key; /* the caller's key, for messages */
    const char *full;
    size_t full_len;
    char *heap;
    /* Built on first use by op_names(): the release channel and the waiters' queue keys. */
    const char *channel, *queue, *waiters;
    size_t channel_len, queue_len, waiters_len;
    char *names;
    char buf[KEYBUF];
} lock_op;

static int op_begin(lock_op *op, rk_lock *l, const char *key)
{
    memset(op, 0, offsetof(lock_op, buf));
    if (!l)
        return rk__err(RK_EINVAL, "lock is NULL");
    int rc = rk__check_key(key, "key");
    if (rc != RK_OK)
        return rc;
    op->key = key;
    if (!(op->s = rk__component_begin(&l->base)))
        return RK_ENOTOPEN;
    return rk__prefixed_key(op->s, key, op->buf, sizeof op->buf, &op->full, &op->full_len,
                            &op->heap);
}

static void op_end(lock_op *op)
{
    rk__free(op->heap);
    rk__free(op->names);
}

/* "<prefix><full key>" into `dst`; returns the length. */
static size_t join_name(char *dst, const char *prefix, const lock_op *op)
{
    size_t n = strlen(prefix);
    memcpy(dst, prefix, n);
    memcpy(dst + n, op->full, op->full_len + 1);
    return n + op->full_len;
}

/* redkit:lock-released:<key> (Pub/Sub), redkit:lock-queue:<key> (list of waiting tokens) and
 * redkit:lock-waiters:<key> (hash of their heartbeats), in one allocation. */
static int op_names(lock_op *op)
{
    if (op->names)
        return RK_OK;
    size_t cap = 3 * (op->full_len + 32);
    char *p = op->names = rk__malloc(cap);
    if (!p)
        return rk__err(RK_ENOMEM, "lock '%s': cannot allocate its key names", op->key);
    op->channel_len = join_name(p, CHANNEL_PREFIX, op);
    op->channel = p, p += op->channel_len + 1;
    op->queue_len = join_name(p, QUEUE_PREFIX, op);
    op->queue = p, p += op->queue_len + 1;
    op->waiters_len = join_name(p, WAITERS_PREFIX, op);
    op->waiters = p;
    return RK_OK;
}

/* ---- tokens remembered per key ---- */

static int remember(rk_lock *l, const lock_op *op, const char *token)
{
    char *copy = rk__strdup(token), *old = NULL;
    if (!copy)
        return rk__err(RK_ENOMEM, "cannot remember the token of lock '%s'", op->key);
    pthread_mutex_lock(&l->mu);
    int rc = rk__map_put(&l->tokens, op->full, op->full_len, copy, (void **)&old);
    pthread_mutex_unlock(&l->mu);
    rk__free(rc == RK_OK ? old : copy);
    return rc;
}

/* Copy of the token this handle holds for the key, or "" when it holds none. */
static void recall(rk_lock *l, const lock_op *op, char token[RK__TOKEN_LEN + 1])
{
    pthread_mutex_lock(&l->mu);
    const char *t = rk__map_get(&l->tokens, op->full, op->full_len);
    snprintf(token, RK__TOKEN_LEN + 1, "%s", t ? t : "");
    pthread_mutex_unlock(&l->mu);
}

/* Forget the token, unless another acquisition replaced it meanwhile. */
static void forget(rk_lock *l, const lock_op *op, const char *token)
{
    pthread_mutex_lock(&l->mu);
    const char *t = rk__map_get(&l->tokens, op->full, op->full_len);
    if (t && !strcmp(t, token))
        rk__free(rk__map_remove(&l->tokens, op->full, op->full_len));
    pthread_mutex_unlock(&l->mu);
}

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
    const char *set[6] = {"SET", a->op->full, a->token, "NX", "PX", ttl};
    size_t setlen[6] = {3,
                        a->op->full_len,
                        RK__TOKEN_LEN,
                        2,
                        2,
                        (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, a->ttl_ms)};
    const char *get[2] = {"GET", a->op->full};
    size_t getlen[2] = {3, a->op->full_len};
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

static int give_back(rk_lock *l, lock_op *op, const char *token);

static int try_once(rk_lock *l, lock_op *op, uint64_t ttl_ms, bool *acquired)
{
    char token[RK__TOKEN_LEN + 1];
    int rc = rk__token_new(token);
    try_arg a = {op, token, ttl_ms, false, false};
    if (rc == RK_OK)
        rc = rk__component_run(&l->base, op->s, try_fn, &a);
    if (rc == RK_OK && a.acquired)
        rc = remember(l, op, token);
    /* Out of memory after the SET went out (reading its reply, or remembering the token): the
     * lock may be ours without this handle knowing it, so it could neither be released nor
     * re-acquired until its TTL ran out. The server is fine, so hand it back now. */
    if (rc == RK_ENOMEM && a.sent)
        rc = give_back(l, op, token);
    *acquired = rc == RK_OK && a.acquired;
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
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK && !acquired)
        rc = rk__err(RK_EINVAL, "try_acquire '%s': acquired is NULL", key);
    if (rc == RK_OK)
        rc = check_ttl(key, ttl_ms);
    if (rc == RK_OK && (rc = try_once(l, &op, ttl_ms, acquired)) != RK_OK)
        rk__err_prefix("try_acquire '%s': ", key);
    op_end(&op);
    return rk__ret(rc, ctx);
}

/* ---- scripts: release, extend, and the fair queue ---- */

typedef struct {
    const rk__script *script;
    int nkeys, nargs;
    const char *args[6];
    size_t lens[6];
    long long result;
} script_arg;

static int script_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    script_arg *a = arg;
    redisReply *r;
    int rc = rk__script_run(c, a->script, a->nkeys, a->nargs, a->args, a->lens, &r, deadline);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_INTEGER, a->script->name);
        a->result = r->integer;
        rk__reply_free(r);
    }
    return rc;
}

/* Hand the lock to the first live waiter, or delete it; nothing if `token` no longer holds it.
 * `*held` (may be NULL) tells whether it did hold it. */
static int release_token(rk_lock *l, lock_op *op, const char *token, bool *held)
{
    int rc = op_names(op);
    script_arg a = {&rk__script_lock_release,
                    3,
                    5,
                    {op->full, op->queue, op->waiters, token, op->channel},
                    {op->full_len, op->queue_len, op->waiters_len, RK__TOKEN_LEN, op->channel_len},
                    0};
    if (rc == RK_OK)
        rc = rk__component_run(&l->base, op->s, script_fn, &a);
    if (held)
        *held = rc == RK_OK && a.result != 0;
    return rc;
}

static int leave_queue(rk_lock *l, lock_op *op, const char *token, bool *acquired);

/* Give back a lock we may hold, and our place in its queue, after the handle could not record
 * the outcome (out of memory reading the reply or remembering the token); then report
 * RK_ENOMEM: the error of the failed acquisition is kept when this works, replaced when not. */
static int give_back(rk_lock *l, lock_op *op, const char *token)
{
    bool held;
    int rc = release_token(l, op, token, NULL);
    if (rc == RK_OK)
        rc = leave_queue(l, op, token, &held);
    if (rc == RK_OK)
        return RK_ENOMEM;
    char why[256];
    snprintf(why, sizeof why, "%s", rk_last_error()->message);
    return rk__err_cause(RK_ENOMEM, why,
                         "out of memory acquiring lock '%s', which may stay held until its "
                         "TTL: giving it back failed",
                         op->key);
}

/* One attempt at the fair lock; `alive_ms` > 0 also queues (or refreshes) us as a waiter. */
static int fair_attempt(rk_lock *l, lock_op *op, const char *token, uint64_t ttl_ms,
                        uint64_t alive_ms, bool *acquired)
{
    char ttl[24], alive[24];
    int rc = op_names(op);
    script_arg a = {&rk__script_lock_acquire,
                    3,
                    6,
                    {op->full, op->queue, op->waiters, token, ttl, alive},
                    {op->full_len, op->queue_len, op->waiters_len, RK__TOKEN_LEN,
                     (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms),
                     (size_t)snprintf(alive, sizeof alive, "%" PRIu64, alive_ms)},
                    0};
    if (rc == RK_OK)
        rc = rk__component_run(&l->base, op->s, script_fn, &a);
    *acquired = rc == RK_OK && a.result == 1;
    return rc;
}

/* Leave the queue at the deadline; the lock may have been handed to us meanwhile. */
static int leave_queue(rk_lock *l, lock_op *op, const char *token, bool *acquired)
{
    script_arg a = {&rk__script_lock_leave,
                    3,
                    4,
                    {op->full, op->queue, op->waiters, token},
                    {op->full_len, op->queue_len, op->waiters_len, RK__TOKEN_LEN},
                    0};
    int rc = rk__component_run(&l->base, op->s, script_fn, &a);
    *acquired = rc == RK_OK && a.result == 1;
    return rc;
}

/* ---- acquire: queue up, then wait to be handed the lock ---- */

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static int lock_timeout(const char *key)
{
    return rk__err_named(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict", NULL,
                         "Acquiring lock %s failed on timeout", key);
}

/* A release publishes the token it handed the lock to, or "" when it freed it. */
typedef enum { TURN_POLL, TURN_OURS } turn;

static int wait_turn(rk_lock *l, rk__waiter *w, const char *token, uint64_t until, turn *t)
{
    rk_buf msg = RK_BUF_INIT;
    int rc;
    *t = TURN_POLL;
    for (;;) {
        rk__wake why;
        rc = rk__subscriber_wait(l->sub, w, until, &why, &msg);
        if (rc != RK_OK || why != RK__WAKE_MESSAGE)
            break; /* our poll is due, or the subscription was re-made: look again */
        bool token_sized = msg.len == RK__TOKEN_LEN;
        if (token_sized && !memcmp(msg.data, token, RK__TOKEN_LEN)) {
            *t = TURN_OURS;
            break;
        }
        if (!token_sized)
            break; /* freed with nobody queued: try at once */
        /* handed to another waiter: keep our place until our next poll */
    }
    rk_buf_free(&msg);
    return rc;
}

/* Waiters poll every retry_timeout; three missed polls (plus scheduling slack) and the others
 * consider them gone, so a crashed waiter cannot stall the queue for long. */
static uint64_t alive_ms(const rk__settings *s) { return 3 * s->opts.retry_timeout_ms + 500; }

/* Leave the queue; the lock may have been handed to us meanwhile, and nobody would release it. */
static void closed_while_waiting(rk_lock *l, lock_op *op, const char *token, bool *acquired)
{
    if (!*acquired)
        leave_queue(l, op, token, acquired);
    if (*acquired)
        release_token(l, op, token, NULL);
    *acquired = false;
}

static int wait_in_line(rk_lock *l, lock_op *op, const char *token, uint64_t ttl_ms,
                        uint64_t deadline, bool *acquired)
{
    uint64_t retry = op->s->opts.retry_timeout_ms;
    rk__waiter w;
    pthread_mutex_lock(&l->mu);
    l->waiting++;
    pthread_mutex_unlock(&l->mu);
    int rc = op_names(op);
    if (rc == RK_OK)
        rc = rk__subscriber_join(l->sub, &w, op->channel, op->channel_len, true,
                                 min_u64(deadline, rk__deadline(retry)));
    if (rc != RK_ENOTOPEN && rc != RK_ENOMEM)
        rc = RK_OK; /* without a subscription the polls below still find our turn */
    while (rc == RK_OK) {
        if ((rc = fair_attempt(l, op, token, ttl_ms, alive_ms(op->s), acquired)) || *acquired)
            break;
        if (rk__now_ms() >= deadline) {
            if ((rc = leave_queue(l, op, token, acquired)) == RK_OK && !*acquired)
                rc = lock_timeout(op->key);
            break;
        }
        turn t;
        rc = wait_turn(l, &w, token, min_u64(deadline, rk__deadline(retry)), &t);
        if (rc == RK_OK && t == TURN_OURS) {
            *acquired = true; /* the release script set the lock to our token */
            break;
        }
    }
    rk__subscriber_leave(l->sub, &w);
    if (rc == RK_ENOTOPEN) /* closed while waiting: best effort, do not hold up the queue */
        closed_while_waiting(l, op, token, acquired);
    pthread_mutex_lock(&l->mu);
    if (--l->waiting == 0)
        pthread_cond_broadcast(&l->none_waiting);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int acquire(rk_lock *l, lock_op *op, uint64_t ttl_ms, uint64_t timeout_ms)
{
    char token[RK__TOKEN_LEN + 1];
    bool acquired = false;
    uint64_t deadline = rk__deadline(timeout_ms);
    int rc = rk__token_new(token);
    /* A key contended a moment ago still has its release channel subscribed: queue at once,
     * which spares the hot path one script. Otherwise try first and subscribe only if needed. */
    bool hot = rc == RK_OK && timeout_ms > 0 && op_names(op) == RK_OK &&
               rk__subscriber_active(l->sub, op->channel, op->channel_len);
    if (rc == RK_OK && !hot)
        rc = fair_attempt(l, op, token, ttl_ms, 0, &acquired);
    if (rc == RK_OK && !acquired)
        rc = timeout_ms == 0 ? lock_timeout(op->key)
                             : wait_in_line(l, op, token, ttl_ms, deadline, &acquired);
    if (acquired)
        rc = remember(l, op, token);
    if (rc == RK_ENOMEM) /* the script may have run: the lock or a queue place may be ours */
        rc = give_back(l, op, token);
    return rc;
}

int rk_lock_acquire(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms,
                    uint64_t timeout_ms)
{
    lock_op op;
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK)
        rc = check_ttl(key, ttl_ms);
    if (rc == RK_OK)
        rc = acquire(l, &op, ttl_ms, timeout_ms);
    op_end(&op);
    return rk__ret(rc, ctx);
}

/* ---- release and extend ---- */

int rk_lock_release(rk_lock *l, const rk_context *ctx, const char *key)
{
    lock_op op;
    char token[RK__TOKEN_LEN + 1];
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK)
        recall(l, &op, token);
    if (rc == RK_OK && *token) {
        if ((rc = release_token(l, &op, token, NULL)) == RK_OK)
            forget(l, &op, token); /* released, handed over, or expired: ours no more */
        else
            rk__err_prefix("release '%s': ", key);
    }
    op_end(&op);
    return rk__ret(rc, ctx);
}

int rk_lock_extend(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms)
{
    lock_op op;
    char token[RK__TOKEN_LEN + 1], ttl[24];
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK)
        rc = check_ttl(key, ttl_ms);
    if (rc == RK_OK)
        recall(l, &op, token);
    if (rc == RK_OK && !*token)
        rc = rk__err(RK_ENOTOWNER, "extend '%s': this handle does not hold the lock", key);
    if (rc == RK_OK) {
        script_arg a = {
            &rk__script_extend,
            1,
            3,
            {op.full, token, ttl},
            {op.full_len, RK__TOKEN_LEN, (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms)},
            0};
        if ((rc = rk__component_run(&l->base, op.s, script_fn, &a)) != RK_OK)
            rk__err_prefix("extend '%s': ", key);
        else if (a.result != 1)
            rc = rk__err(RK_ENOTOWNER, "extend '%s': the lock expired or another owner holds it",
                         key);
    }
    op_end(&op);
    return rk__ret(rc, ctx);
}

int rk_lock_token(rk_lock *l, const char *key, char token[RK_LOCK_TOKEN_SIZE])
{
    lock_op op;
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK && !token)
        rc = rk__err(RK_EINVAL, "token '%s': token is NULL", key);
    if (rc == RK_OK) {
        recall(l, &op, token);
        if (!*token)
            rc = rk__err(RK_ENOTOWNER, "token '%s': this handle does not hold the lock", key);
    }
    op_end(&op);
    return rk__ret(rc, NULL);
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
    bool held = false;
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK && (!token || !is_token(token)))
        rc = rk__err(RK_EINVAL, "release '%s': token is not 32 lowercase hex characters", key);
    if (rc == RK_OK && (rc = release_token(l, &op, token, &held)) != RK_OK)
        rk__err_prefix("release '%s': ", key);
    if (rc == RK_OK) {
        forget(l, &op, token); /* in case this handle acquired it */
        if (!held)
            rc = rk__err(RK_ENOTOWNER, "release '%s': the token does not hold the lock", key);
    }
    op_end(&op);
    return rk__ret(rc, ctx);
}
