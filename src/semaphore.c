#include "redkit/semaphore.h"

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
#include "scripts.h"
#include "slot.h"
#include "token.h"
#include "wait.h"
#include "watchdog.h"

struct rk_semaphore {
    rk__component base; /* first: the component's hooks get it back as an rk_semaphore */
    rk__holder hold;    /* full key -> permit: the permits this handle holds; queued waiters */
    rk__watchdog *wd;   /* renews the permits rk_semaphore_watch() was asked to */
};

static void drain(rk__component *c, rk__client *cl);
static void after_fork(rk__component *c);
static rk__lease renew(void *ud, const char *key, const char *token, uint64_t ttl_ms,
                       uint64_t timeout_ms);
static void lost(void *ud, const char *key);

int rk_semaphore_new(rk_semaphore **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_semaphore_new: out is NULL");
    *out = NULL;
    rk_semaphore *s = rk__calloc(1, sizeof *s);
    if (!s)
        return rk__err(RK_ENOMEM, "cannot allocate a semaphore");
    int rc = rk__component_init(&s->base, "semaphore", true);
    if (rc == RK_OK && (rc = rk__holder_init(&s->hold)) != RK_OK)
        rk__component_destroy(&s->base);
    if (rc == RK_OK && (rc = rk__watchdog_new(&s->wd, renew, lost, s)) != RK_OK) {
        rk__holder_destroy(&s->hold);
        rk__component_destroy(&s->base);
    }
    if (rc != RK_OK) {
        rk__free(s);
        return rc;
    }
    s->base.drain = drain;
    s->base.after_fork = after_fork;
    *out = s;
    return RK_OK;
}

void rk_semaphore_free(rk_semaphore *s)
{
    if (!s)
        return;
    rk_semaphore_close(s, NULL); /* ends the watchdog's thread while the handle is whole */
    rk__component_destroy(&s->base);
    rk__watchdog_free(s->wd);
    rk__holder_destroy(&s->hold);
    rk__free(s);
}

int rk_semaphore_get_stats(rk_semaphore *s, rk_stats *out)
{
    if (!s)
        return rk__err(RK_EINVAL, "rk_semaphore_get_stats: semaphore is NULL");
    return rk__component_stats(&s->base, out);
}

int rk_semaphore_configure(rk_semaphore *s, const rk_config *cfg)
{
    if (!s)
        return rk__err(RK_EINVAL, "rk_semaphore_configure: semaphore is NULL");
    return rk__component_configure(&s->base, cfg);
}

int rk_semaphore_set_references(rk_semaphore *s, const rk_references *refs)
{
    if (!s)
        return rk__err(RK_EINVAL, "rk_semaphore_set_references: semaphore is NULL");
    return rk__component_set_references(&s->base, refs);
}

int rk_semaphore_open(rk_semaphore *s, const rk_context *ctx)
{
    if (!s)
        return rk__ret(rk__err(RK_EINVAL, "rk_semaphore_open: semaphore is NULL"), ctx);
    return rk__ret(rk__component_open(&s->base, ctx), ctx);
}

bool rk_semaphore_is_open(const rk_semaphore *s) { return s && rk__component_is_open(&s->base); }

int rk_semaphore_close(rk_semaphore *s, const rk_context *ctx)
{
    if (!s)
        return rk__ret(rk__err(RK_EINVAL, "rk_semaphore_close: semaphore is NULL"), ctx);
    int rc = rk__component_close(&s->base);
    rk__watchdog_join(s->wd);
    return rc;
}

/* As the lock's: waiters stopped by close get until the connect timeout to leave their queues. */
static void drain(rk__component *c, rk__client *cl)
{
    rk_semaphore *s = (rk_semaphore *)c;
    rk__watchdog_stop(s->wd); /* joined once the client is closed, which ends a renewal at once */
    rk__holder_drain(&s->hold, cl->opts.connect_timeout_ms);
}

static void after_fork(rk__component *c)
{
    rk_semaphore *s = (rk_semaphore *)c;
    rk__holder_after_fork(&s->hold);
    rk__watchdog_after_fork(s->wd);
}

/* ---- one operation's view: client, deadline, names ---- */

typedef struct {
    rk__client *cl;
    uint64_t deadline; /* of the whole public call */
    const char *key;   /* the caller's key, for messages */
    rk__name full;     /* <p><key>: routes, and names the rest */
    rk__name permits, queue, waiters, inbox;
} sem_op;

static int op_names(sem_op *op)
{
    int rc = rk__name_sem(&op->permits, &op->full);
    if (rc == RK_OK)
        rc = rk__name_sem_queue(&op->queue, &op->full);
    if (rc == RK_OK)
        rc = rk__name_sem_waiters(&op->waiters, &op->full);
    if (rc == RK_OK)
        rc = rk__name_sem_inbox(&op->inbox, op->cl->id, op->cl->cluster ? &op->full : NULL);
    return rc;
}

static int op_begin(sem_op *op, rk_semaphore *s, const char *key, uint64_t timeout_ms)
{
    memset(op, 0, sizeof *op);
    if (!s)
        return rk__err(RK_EINVAL, "semaphore is NULL");
    int rc = rk__check_key(key, "key");
    if (rc != RK_OK)
        return rc;
    op->key = key;
    if (!(op->cl = rk__component_begin(&s->base)))
        return RK_ENOTOPEN;
    op->deadline = rk__client_deadline(op->cl, timeout_ms);
    if ((rc = rk__name_key(&op->full, &op->cl->opts, key)) != RK_OK)
        return rc;
    if (op->cl->cluster && rk__braces_without_tag(op->full.str, op->full.len))
        return rk__err(RK_EINVAL,
                       "semaphore '%s': in a cluster a key with braces needs a valid hash tag "
                       "('{tag}', not empty), so that its permits and queue share one slot",
                       key);
    if (op_names(op) != RK_OK)
        return rk__err_prefix("semaphore '%s': ", key);
    return RK_OK;
}

static int op_end(sem_op *op, int rc)
{
    rk__name_free(&op->full);
    rk__name_free(&op->permits);
    rk__name_free(&op->queue);
    rk__name_free(&op->waiters);
    rk__name_free(&op->inbox);
    rk__component_end(op->cl);
    return rc;
}

static int check_args(const char *key, uint32_t limit, uint64_t ttl_ms)
{
    if (limit == 0)
        return rk__err(RK_EINVAL, "semaphore '%s': limit must be greater than 0", key);
    if (ttl_ms == 0)
        return rk__err(RK_EINVAL, "semaphore '%s': ttl_ms must be greater than 0", key);
    if (ttl_ms > INT64_MAX / 4)
        return rk__err(RK_EINVAL, "semaphore '%s': ttl_ms %" PRIu64 " is too large", key, ttl_ms);
    return RK_OK;
}

/* ---- what this handle holds, per key ---- */

/* The TTL is kept for the watchdog, which renews a permit by the lease it was acquired for. */
typedef struct permit {
    char token[RK__TOKEN_LEN + 1];
    uint64_t ttl_ms;
} permit;
_Static_assert(offsetof(permit, token) == 0, "rk__holder_forget() reads a record's token first");

static int remember(rk_semaphore *s, const sem_op *op, const char *token, uint64_t ttl_ms)
{
    permit *copy = rk__malloc(sizeof *copy);
    if (!copy)
        return rk__err(RK_ENOMEM, "cannot remember the permit of semaphore '%s'", op->key);
    memcpy(copy->token, token, RK__TOKEN_LEN + 1);
    copy->ttl_ms = ttl_ms;
    return rk__holder_put(&s->hold, op->full.str, op->full.len, copy);
}

/* This handle's permit on the key, or an empty token */
static void recall(rk_semaphore *s, const sem_op *op, permit *out)
{
    rk__holder_get(&s->hold, op->full.str, op->full.len, out, sizeof *out);
}

/* Forget the token, unless another acquisition replaced it meanwhile. */
static void forget(rk_semaphore *s, const sem_op *op, const char *token)
{
    rk__holder_forget(&s->hold, op->full.str, op->full.len, token);
}

/* ---- the script (src/lua/semaphore.lua) ---- */

typedef struct {
    const char *what; /* acquire, release, extend, leave */
    const char *token;
    uint32_t limit;
    uint64_t ttl_ms;
    uint64_t alive_ms; /* acquire: > 0 queues (or refreshes) us as a waiter */
} sem_call;

static int run(const sem_op *op, const sem_call *c, uint64_t deadline, long long *result)
{
    char limit[16], ttl[24], alive[24];
    const char *args[10] = {op->permits.str,
                            op->queue.str,
                            op->waiters.str,
                            c->what,
                            c->token,
                            limit,
                            ttl,
                            alive,
                            op->inbox.str,
                            op->cl->cluster ? "1" : "0"};
    size_t lens[10] = {op->permits.len,
                       op->queue.len,
                       op->waiters.len,
                       strlen(c->what),
                       RK__TOKEN_LEN,
                       (size_t)snprintf(limit, sizeof limit, "%" PRIu32, c->limit),
                       (size_t)snprintf(ttl, sizeof ttl, "%" PRIu64, c->ttl_ms),
                       (size_t)snprintf(alive, sizeof alive, "%" PRIu64, c->alive_ms),
                       op->inbox.len,
                       1};
    redisReply *r;
    int rc = rk__client_eval(op->cl, op->full.str, op->full.len, deadline, &rk__script_semaphore, 3,
                             10, args, lens, &r);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_INTEGER, "semaphore");
        *result = r->integer;
        rk__reply_free(r);
    }
    return rc;
}

/* Leave the queue; a permit may have been handed to us meanwhile (`*handed`). */
static int leave_queue(const sem_op *op, const char *token, uint64_t deadline, bool *handed)
{
    long long result = 0;
    int rc = run(op, &(sem_call){"leave", token, 0, 0, 0}, deadline, &result);
    *handed = rc == RK_OK && result == 1;
    return rc;
}

static int release_token(const sem_op *op, const char *token, uint64_t deadline)
{
    long long result = 0;
    return run(op, &(sem_call){"release", token, 0, 0, 0}, deadline, &result);
}

/* A permit the handle could not record (out of memory): give it back, and any queue place. */
static int give_back(const sem_op *op, const char *token)
{
    bool handed;
    uint64_t grace = rk__client_grace(op->cl);
    if (leave_queue(op, token, grace, &handed) == RK_OK)
        release_token(op, token, grace);
    return rk__err(RK_ENOMEM, "out of memory acquiring a permit of semaphore '%s'", op->key);
}

/* The permit this handle remembers on the key, if it is still live: `*live` (an expired one is
 * forgotten). Asked with a limit of 0, the acquire script grants nothing new. */
static int held_live(rk_semaphore *s, const sem_op *op, bool *live)
{
    permit p;
    long long result = 0;
    *live = false;
    recall(s, op, &p);
    if (!*p.token)
        return RK_OK;
    int rc = run(op, &(sem_call){"acquire", p.token, 0, 1, 0}, op->deadline, &result);
    *live = rc == RK_OK && result == 1;
    if (rc == RK_OK && !*live)
        forget(s, op, p.token);
    return rc;
}

/* ---- try_acquire ---- */

int rk_semaphore_try_acquire(rk_semaphore *s, const rk_context *ctx, const char *key,
                             uint32_t limit, uint64_t ttl_ms, bool *acquired)
{
    sem_op op;
    char token[RK__TOKEN_LEN + 1];
    long long result = 0;
    bool live = false;
    if (acquired)
        *acquired = false;
    int rc = op_begin(&op, s, key, RK__NO_TIMEOUT);
    if (rc == RK_OK && !acquired)
        rc = rk__err(RK_EINVAL, "try_acquire '%s': acquired is NULL", key);
    if (rc == RK_OK)
        rc = check_args(key, limit, ttl_ms);
    if (rc == RK_OK)
        rc = held_live(s, &op, &live);
    if (rc == RK_OK && !live && (rc = rk__token_new(token)) == RK_OK)
        rc = run(&op, &(sem_call){"acquire", token, limit, ttl_ms, 0}, op.deadline, &result);
    if (rc == RK_OK && result == 1 && (rc = remember(s, &op, token, ttl_ms)) != RK_OK)
        rc = give_back(&op, token);
    if (rc == RK_OK)
        *acquired = result == 1;
    else
        rk__err_prefix("try_acquire '%s': ", key);
    return rk__ret(op_end(&op, rc), ctx);
}

/* ---- acquire: queue up, then wait to be handed a permit ---- */

static int sem_timeout(const char *key)
{
    return rk__err_named(RK_ETIMEDOUT, "SEMAPHORE_TIMEOUT", "Conflict", NULL,
                         "Acquiring a permit of semaphore %s failed on timeout", key);
}

/* The lock's heartbeat rules (holder.h). */
typedef struct {
    const sem_op *op;
    const char *token;
    uint32_t limit;
    uint64_t ttl_ms;
    bool granted;
    bool behind; /* live waiters are ahead of us */
} queued;

static int queued_check(void *arg, bool *done)
{
    queued *q = arg;
    long long result = 0;
    sem_call c = {"acquire", q->token, q->limit, q->ttl_ms, rk__holder_alive_ms(q->op->cl)};
    int rc = run(q->op, &c, q->op->deadline, &result);
    q->granted = rc == RK_OK && result == 1;
    q->behind = rc == RK_OK && result < 0;
    *done = q->granted;
    return rc;
}

/* The hand-off: our token on our inbox (the subscriber passes only messages starting with it). */
static rk__seen queued_message(void *arg, rk_buf *msg)
{
    queued *q = arg;
    if (msg->len != RK__TOKEN_LEN || memcmp(msg->data, q->token, RK__TOKEN_LEN))
        return RK__SEEN_IGNORE;
    q->granted = true;
    return RK__SEEN_DONE;
}

/* Out of time: leave the queue, unless a permit was handed to us just now. */
static int queued_expired(void *arg)
{
    queued *q = arg;
    int rc = leave_queue(q->op, q->token, rk__client_grace(q->op->cl), &q->granted);
    return rc == RK_OK && !q->granted ? sem_timeout(q->op->key) : rc;
}

static uint64_t queued_recheck_ms(void *arg)
{
    queued *q = arg;
    return q->behind ? rk__holder_heartbeat_ms(q->op->cl) : q->op->cl->opts.retry_timeout_ms;
}

static const rk__wait_ops queued_ops = {queued_check, queued_message, queued_expired,
                                        queued_recheck_ms};

/* The call ended without a permit (closed, failed, timed out mid-command): leave the queue, and
 * pass on a permit handed to us meanwhile, which nobody would release. */
static void give_up_place(const sem_op *op, const char *token)
{
    rk__err_saved why;
    bool handed = false;
    uint64_t grace = rk__client_grace(op->cl);
    rk__err_save(&why);
    if (leave_queue(op, token, grace, &handed) == RK_OK && handed)
        release_token(op, token, grace);
    rk__err_restore(&why);
}

static int wait_in_line(rk_semaphore *s, const sem_op *op, const char *token, uint32_t limit,
                        uint64_t ttl_ms)
{
    queued q = {op, token, limit, ttl_ms, false, false};
    rk__holder_count_waiting(&s->hold, +1);
    int rc = rk__wait(op->cl, &op->inbox, true, token, op->deadline, &queued_ops, &q);
    if (rc != RK_OK) /* leaving twice is harmless; a place left behind costs a heartbeat */
        give_up_place(op, token);
    rk__holder_count_waiting(&s->hold, -1);
    return rc;
}

static int acquire(rk_semaphore *s, const sem_op *op, uint32_t limit, uint64_t ttl_ms,
                   uint64_t timeout_ms)
{
    char token[RK__TOKEN_LEN + 1];
    long long result = 0;
    int rc = rk__token_new(token);
    /* A handle whose inbox is still subscribed waited a moment ago: the key is likely
     * contended, so it queues at once, which spares the hot path one script. */
    bool hot = rc == RK_OK && timeout_ms > 0 &&
               rk__subscriber_active(rk__client_subscriber(op->cl, &op->inbox, true), op->inbox.str,
                                     op->inbox.len);
    uint64_t first = timeout_ms ? op->deadline : rk__client_deadline(op->cl, RK__NO_TIMEOUT);
    if (rc == RK_OK && !hot)
        rc = run(op, &(sem_call){"acquire", token, limit, ttl_ms, 0}, first, &result);
    if (rc == RK_OK && result != 1)
        rc = timeout_ms == 0 ? sem_timeout(op->key) : wait_in_line(s, op, token, limit, ttl_ms);
    if (rc == RK_OK && (rc = remember(s, op, token, ttl_ms)) != RK_OK)
        rc = give_back(op, token);
    return rc;
}

int rk_semaphore_acquire(rk_semaphore *s, const rk_context *ctx, const char *key, uint32_t limit,
                         uint64_t ttl_ms, uint64_t timeout_ms)
{
    sem_op op;
    bool live = false;
    int rc = op_begin(&op, s, key, timeout_ms);
    if (rc == RK_OK)
        rc = check_args(key, limit, ttl_ms);
    if (rc == RK_OK && (rc = held_live(s, &op, &live)) == RK_OK && live)
        rc = rk__err(RK_EINVAL,
                     "acquire '%s': this handle already holds a permit of the semaphore (one per "
                     "key and handle: release it first)",
                     key);
    if (rc == RK_OK)
        rc = acquire(s, &op, limit, ttl_ms, timeout_ms);
    return rk__ret(op_end(&op, rc), ctx);
}

/* ---- release and extend ---- */

int rk_semaphore_release(rk_semaphore *s, const rk_context *ctx, const char *key)
{
    sem_op op;
    permit p = {"", 0};
    int rc = op_begin(&op, s, key, RK__NO_TIMEOUT);
    if (rc == RK_OK) {
        rk__watchdog_unwatch(s->wd, key, NULL); /* before the script: see rk__watchdog_unwatch */
        recall(s, &op, &p);
    }
    if (rc == RK_OK && *p.token) {
        if ((rc = release_token(&op, p.token, op.deadline)) == RK_OK)
            forget(s, &op, p.token); /* released, or expired: ours no more */
        else
            rk__err_prefix("release '%s': ", key);
    }
    return rk__ret(op_end(&op, rc), ctx);
}

/* Make the permit of `token` end `ttl_ms` from now; one gone (released, expired, removed) stays
 * gone and is forgotten, unless a later acquisition replaced it meanwhile. */
static int extend_token(rk_semaphore *s, const sem_op *op, const char *token, uint64_t ttl_ms)
{
    long long result = 0;
    if (run(op, &(sem_call){"extend", token, 0, ttl_ms, 0}, op->deadline, &result) != RK_OK)
        return rk__err_prefix("extend '%s': ", op->key);
    if (result == 1)
        return RK_OK;
    forget(s, op, token);
    return rk__err(RK_ENOTOWNER, "extend '%s': the permit of the semaphore expired or was removed",
                   op->key);
}

int rk_semaphore_extend(rk_semaphore *s, const rk_context *ctx, const char *key, uint64_t ttl_ms)
{
    sem_op op;
    permit p = {"", 0};
    int rc = op_begin(&op, s, key, RK__NO_TIMEOUT);
    if (rc == RK_OK)
        rc = check_args(key, 1, ttl_ms);
    if (rc == RK_OK)
        recall(s, &op, &p);
    if (rc == RK_OK && !*p.token)
        rc =
            rk__err(RK_ENOTOWNER, "extend '%s': this handle holds no permit of the semaphore", key);
    if (rc == RK_OK)
        rc = extend_token(s, &op, p.token, ttl_ms);
    return rk__ret(op_end(&op, rc), ctx);
}

/* ---- the lease watchdog ---- */

/* As the lock's: the watchdog renews the permit it watches, by its token, not whatever the handle
 * holds now, so a renewal in flight across a release and a new acquisition cannot cut the new
 * permit to the old TTL. It answers within the time the permit has left. */
static rk__lease renew(void *ud, const char *key, const char *token, uint64_t ttl_ms,
                       uint64_t timeout_ms)
{
    sem_op op;
    rk_semaphore *s = ud;
    int rc = op_begin(&op, s, key, timeout_ms);
    if (rc == RK_OK)
        rc = extend_token(s, &op, token, ttl_ms);
    rk__emit(&s->base.stats,
             &(rk__event){RK_EVENT_LOCK_RENEWED, key, strlen(key), NULL, NULL, 0, rc});
    op_end(&op, rc);
    return rc == RK_OK ? RK__LEASE_RENEWED : rc == RK_ENOTOWNER ? RK__LEASE_LOST : RK__LEASE_FAILED;
}

/* The watchdog found a watched permit lost: counted before the user's handler hears of it. */
static void lost(void *ud, const char *key)
{
    rk_semaphore *s = ud;
    rk__emit(&s->base.stats,
             &(rk__event){RK_EVENT_LOCK_LOST, key, strlen(key), NULL, NULL, 0, RK_ENOTOWNER});
}

int rk_semaphore_set_lost_handler(rk_semaphore *s, rk_semaphore_lost_fn fn, void *ud)
{
    if (!s)
        return rk__err(RK_EINVAL, "rk_semaphore_set_lost_handler: semaphore is NULL");
    rk__component_check_fork(&s->base); /* the watchdog's mutex may be a parent thread's */
    rk__watchdog_set_lost(s->wd, fn, ud);
    return RK_OK;
}

/* Renew now, which also tells that the permit is still ours, then let the watchdog go on. */
int rk_semaphore_watch(rk_semaphore *s, const char *key)
{
    sem_op op;
    permit p = {"", 0};
    int rc = op_begin(&op, s, key, RK__NO_TIMEOUT);
    if (rc == RK_OK)
        recall(s, &op, &p);
    if (rc == RK_OK && !*p.token)
        rc = rk__err(RK_ENOTOWNER, "watch '%s': this handle holds no permit of the semaphore", key);
    uint64_t since = rk__now_ms(); /* the renewed permit runs from no earlier than this */
    if (rc == RK_OK && (rc = extend_token(s, &op, p.token, p.ttl_ms)) == RK_OK)
        rc = rk__watchdog_watch(s->wd, key, p.token, p.ttl_ms, since);
    /* A close that stopped the watchdog before our watch: nothing else would end it. */
    if (rc == RK_OK && !rk_semaphore_is_open(s)) {
        rk__watchdog_unwatch(s->wd, key, p.token);
        rc = rk__client_not_open("semaphore");
    }
    return rk__ret(op_end(&op, rc), NULL);
}
