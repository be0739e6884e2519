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
#define KEYBUF 256

struct rk_lock {
    rk__component base;
    rk__subscriber *sub;
    pthread_mutex_t mu; /* guards tokens */
    rk__map tokens;     /* full key -> token (heap string) of locks this handle acquired */
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
    rk__subscriber_close(l->sub);
    return rk__component_close(&l->base);
}

/* ---- one operation's view: settings, full key, channel ---- */

typedef struct {
    const rk__settings *s;
    const char *key; /* the caller's key, for messages */
    const char *full;
    size_t full_len;
    char *heap;
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

static void op_end(lock_op *op) { rk__free(op->heap); }

/* "redkit:lock-released:<full key>" in a new allocation. */
static char *channel_name(const lock_op *op, size_t *len)
{
    *len = sizeof CHANNEL_PREFIX - 1 + op->full_len;
    char *ch = rk__malloc(*len + 1);
    if (ch) {
        memcpy(ch, CHANNEL_PREFIX, sizeof CHANNEL_PREFIX - 1);
        memcpy(ch + sizeof CHANNEL_PREFIX - 1, op->full, op->full_len + 1);
    }
    return ch;
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

static int try_once(rk_lock *l, const lock_op *op, uint64_t ttl_ms, bool *acquired)
{
    char token[RK__TOKEN_LEN + 1];
    int rc = rk__token_new(token);
    try_arg a = {op, token, ttl_ms, false, false};
    if (rc == RK_OK)
        rc = rk__component_run(&l->base, op->s, try_fn, &a);
    if (rc == RK_OK && a.acquired && (rc = remember(l, op, token)) != RK_OK)
        rc = rk__err_prefix("lock '%s' was acquired but: ", op->key);
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

/* ---- acquire: try, then wait for release notifications with a polling fallback ---- */

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static int lock_timeout(const char *key)
{
    return rk__err_named(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict", NULL,
                         "Acquiring lock %s failed on timeout", key);
}

static int wait_and_retry(rk_lock *l, const lock_op *op, uint64_t ttl_ms, uint64_t deadline)
{
    size_t chlen;
    char *ch = channel_name(op, &chlen);
    if (!ch)
        return rk__err(RK_ENOMEM, "cannot allocate the channel of lock '%s'", op->key);
    uint64_t retry = op->s->opts.retry_timeout_ms;
    rk__waiter w;
    int rc =
        rk__subscriber_join(l->sub, &w, ch, chlen, false, min_u64(deadline, rk__deadline(retry)));
    if (rc != RK_ENOTOPEN)
        rc = RK_OK; /* without a subscription the timer below still bounds every wait */
    for (bool acquired = false; rc == RK_OK;) {
        if ((rc = try_once(l, op, ttl_ms, &acquired)) != RK_OK || acquired)
            break;
        if (rk__now_ms() >= deadline) {
            rc = lock_timeout(op->key);
            break;
        }
        rk__wake why;
        rc = rk__subscriber_wait(l->sub, &w, min_u64(deadline, rk__deadline(retry)), &why);
    }
    rk__subscriber_leave(l->sub, &w);
    rk__free(ch);
    return rc;
}

int rk_lock_acquire(rk_lock *l, const rk_context *ctx, const char *key, uint64_t ttl_ms,
                    uint64_t timeout_ms)
{
    lock_op op;
    bool acquired = false;
    uint64_t deadline = rk__deadline(timeout_ms);
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK)
        rc = check_ttl(key, ttl_ms);
    if (rc == RK_OK)
        rc = try_once(l, &op, ttl_ms, &acquired);
    if (rc == RK_OK && !acquired)
        rc = timeout_ms == 0 ? lock_timeout(key) : wait_and_retry(l, &op, ttl_ms, deadline);
    op_end(&op);
    return rk__ret(rc, ctx);
}

/* ---- release and extend: owner-checked scripts ---- */

typedef struct {
    const lock_op *op;
    rk__script *script;
    const char *args[3];
    size_t lens[3];
    long long result;
} script_arg;

static int script_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    script_arg *a = arg;
    redisReply *r;
    int rc = rk__script_run(c, a->script, 1, 3, a->args, a->lens, &r, deadline);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_INTEGER, a->script->name);
        a->result = r->integer;
        rk__reply_free(r);
    }
    return rc;
}

int rk_lock_release(rk_lock *l, const rk_context *ctx, const char *key)
{
    lock_op op;
    char token[RK__TOKEN_LEN + 1];
    size_t chlen = 0;
    char *ch = NULL;
    int rc = op_begin(&op, l, key);
    if (rc == RK_OK)
        recall(l, &op, token);
    if (rc == RK_OK && *token && !(ch = channel_name(&op, &chlen)))
        rc = rk__err(RK_ENOMEM, "release '%s': cannot allocate its channel", key);
    if (rc == RK_OK && *token) {
        script_arg a = {
            &op, &rk__script_release, {op.full, token, ch}, {op.full_len, RK__TOKEN_LEN, chlen}, 0};
        if ((rc = rk__component_run(&l->base, op.s, script_fn, &a)) == RK_OK)
            forget(l, &op, token); /* released, or expired/taken over: ours no more */
        else
            rk__err_prefix("release '%s': ", key);
    }
    rk__free(ch);
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
            &op,
            &rk__script_extend,
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
