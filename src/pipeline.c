#include "pipeline.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"
#include "pool.h"

/* One call's commands, on its caller's stack for the duration of the call. */
struct rk__pipe_req {
    const rk__cmd *cmds;
    size_t n;
    redisReply **replies;
    size_t got;   /* replies received so far */
    bool sending; /* its commands are being encoded: the caller may not leave yet */
    bool written;
    bool done;
    bool waiting; /* cv is initialised: the caller sleeps on it */
    int rc;
    rk__reply_class cls;
    rk__redirect *redirect;
    rk__err_saved err; /* a failure seen by another thread (the leader) */
    rk__pipe_info *info;
    pthread_cond_t cv;
    rk__pipe_req *next;
};

typedef struct rk__pipe_slot {
    rk__pipe_req *req; /* NULL: the caller left, drop its replies */
    size_t due;
} rk__pipe_slot;

/* A leader reads up to this many buffered replies before taking the lock to hand them out. */
#define DRAIN 64

/* ---- which commands may share ---- */

/* Commands that block the connection server-side, or whose effect outlives the command on the
 * connection (its database, its watch list, its subscriptions, its identity). */
static const char *const exclusive[] = {
    "WAIT",      "WAITAOF",    "BLPOP",      "BRPOP",       "BRPOPLPUSH",   "BLMOVE",
    "BLMPOP",    "BZPOPMIN",   "BZPOPMAX",   "BZMPOP",      "XREAD",        "XREADGROUP",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "MONITOR",   "WATCH",      "UNWATCH",    "SELECT",      "AUTH",         "HELLO",
    "CLIENT",    "RESET",      "QUIT",       "ASKING",      "READONLY",     "READWRITE",
    "SYNC",      "PSYNC",      "SHUTDOWN",   "DEBUG",
};

static bool is(const rk__cmd *c, const char *name)
{
    size_t len = strlen(name);
    return c->argc > 0 && c->argvlen[0] == len && strncasecmp(c->argv[0], name, len) == 0;
}

bool rk__pipe_shareable(const rk__cmd *cmds, size_t n)
{
    bool multi = false; /* a MULTI must be closed in the same call: it is written contiguously */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof exclusive / sizeof *exclusive; k++)
            if (is(&cmds[i], exclusive[k]))
                return false;
        if (is(&cmds[i], "MULTI"))
            multi = true;
        else if (is(&cmds[i], "EXEC") || is(&cmds[i], "DISCARD"))
            multi = false;
    }
    return !multi;
}

/* ---- lifecycle ---- */

static int init_locks(rk__pipe *p)
{
    pthread_condattr_t attr;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        return rk__err(RK_ENOMEM, "cannot create a mutex");
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->written, &attr) != 0) {
        pthread_mutex_destroy(&p->mu);
        return rk__err(RK_ENOMEM, "cannot create a condition variable");
    }
    pthread_condattr_destroy(&attr);
    return RK_OK;
}

int rk__pipe_init(rk__pipe *p, struct rk__pool *pool)
{
    *p = (rk__pipe){.pool = pool};
    return init_locks(p);
}

void rk__pipe_destroy(rk__pipe *p)
{
    rk__free(p->ring);
    p->ring = NULL;
    pthread_cond_destroy(&p->written);
    pthread_mutex_destroy(&p->mu);
}

void rk__pipe_after_fork(rk__pipe *p)
{
    /* The parent's callers do not exist here; the pool drops the connections. */
    init_locks(p);
    p->conn = p->dead = NULL;
    p->busy = p->writing = false;
    p->queue = p->queue_tail = NULL;
    p->ring_head = p->ring_len = 0;
}

/* ---- finishing calls (lock held) ---- */

static void wake(rk__pipe_req *r)
{
    if (r->waiting)
        pthread_cond_signal(&r->cv);
}

static void fail(rk__pipe_req *r, int rc, const rk__err_saved *err)
{
    for (size_t i = 0; i < r->got; i++) {
        rk__reply_free(r->replies[i]);
        r->replies[i] = NULL;
    }
    r->got = 0;
    r->rc = rc;
    r->err = *err;
    r->cls = rc == RK_EIO ? RK__REPLY_CONN : RK__REPLY_ERR;
    r->done = true;
    wake(r);
}

/* Every call not written yet fails with the current error (a connect that failed, close). */
static void fail_queue(rk__pipe *p, int rc)
{
    rk__err_saved err;
    rk__err_save(&err);
    for (rk__pipe_req *r = p->queue, *next; r; r = next) {
        next = r->next;
        fail(r, rc, &err);
    }
    p->queue = p->queue_tail = NULL;
}

static rk__pipe_slot *slot(rk__pipe *p, size_t i)
{
    return &p->ring[(p->ring_head + i) % p->ring_cap];
}

/* The connection failed: every call written on it fails, and it goes back to the pool, which
 * drops it (it is broken). Calls still queued are written on the next one. */
static void fail_ring(rk__pipe *p, int rc, rk__pipe_req *by)
{
    if (by)
        by->info->dropped = true;
    rk__err_saved err;
    rk__err_save(&err);
    for (size_t i = 0; i < p->ring_len; i++)
        if (slot(p, i)->req)
            fail(slot(p, i)->req, rc, &err);
    p->ring_head = p->ring_len = 0;
    p->conn->broken = true;
    if (p->writing) /* its writer gives it back */
        p->dead = p->conn;
    else
        rk__pool_put(p->pool, p->conn);
    p->conn = NULL;
}

/* The caller's deadline passed: it leaves, and replies still due to it are dropped. */
static void abandon(rk__pipe *p, rk__pipe_req *me)
{
    if (!me->written) {
        rk__pipe_req **pp = &p->queue, *prev = NULL;
        while (*pp != me)
            prev = *pp, pp = &(*pp)->next;
        *pp = me->next;
        if (p->queue_tail == me)
            p->queue_tail = prev;
    } else {
        for (size_t i = 0; i < p->ring_len; i++)
            if (slot(p, i)->req == me)
                slot(p, i)->req = NULL;
    }
    char peer[80];
    rk__err_saved err;
    int rc = rk__err(RK_ETIMEDOUT, "%s: no reply before the deadline (auto-pipelined)",
                     rk__endpoint_name(p->pool->ep, peer, sizeof peer));
    rk__err_save(&err);
    fail(me, rc, &err);
}

/* ---- the leader ---- */

/* Borrow the connection from the pool (the lock is released meanwhile). */
static bool borrow(rk__pipe *p, rk__pipe_req *me, uint64_t deadline)
{
    pthread_mutex_unlock(&p->mu);
    rk__conn *c;
    int rc = rk__pool_get(p->pool, &c, deadline);
    pthread_mutex_lock(&p->mu);
    me->info->open_rc = rc;
    if (rc != RK_OK) {
        fail_queue(p, rc);
        return false;
    }
    if (!c->announced) /* its first use: the caller raises its connect event */
        c->announced = me->info->opened = true, me->info->open_us = c->connect_us;
    p->conn = c;
    return true;
}

/* The leader's own call, when it was in neither the queue nor the ring that just failed (it
 * was handed the connection, and close reset the ring meanwhile). */
static void fail_me(rk__pipe_req *me)
{
    if (me->done)
        return;
    rk__err_saved err;
    rk__err_save(&err);
    fail(me, rk_last_error()->code, &err);
}

static bool ring_reserve(rk__pipe *p, size_t more)
{
    if (p->ring_len + more <= p->ring_cap)
        return true;
    size_t cap = p->ring_cap ? p->ring_cap : 16;
    while (cap < p->ring_len + more)
        cap *= 2;
    rk__pipe_slot *grown = rk__malloc(cap * sizeof *grown);
    if (!grown)
        return false;
    for (size_t i = 0; i < p->ring_len; i++)
        grown[i] = *slot(p, i);
    rk__free(p->ring);
    p->ring = grown;
    p->ring_cap = cap;
    p->ring_head = 0;
    return true;
}

/* Nobody reads, writes or waits: the connection goes back to the pool (which a classic call
 * may then borrow). */
static bool release_if_idle(rk__pipe *p)
{
    if (p->busy || p->writing || p->ring_len || p->queue)
        return false;
    if (p->conn)
        rk__pool_put(p->pool, p->conn);
    p->conn = NULL;
    return true;
}

/* The calls of `batch` (linked by `next`) go back to the front of the queue. */
static void requeue(rk__pipe *p, rk__pipe_req *batch)
{
    rk__pipe_req *tail = batch;
    while (tail->next)
        tail = tail->next;
    tail->next = p->queue;
    if (!p->queue)
        p->queue_tail = tail;
    p->queue = batch;
}

/* Encode the queue outside the lock. Its callers wait for that to end (`sending`) before
 * they may leave: their commands are read meanwhile. Then the calls move to the ring. False
 * when nothing is to be written (the encoding failed, or the connection did meanwhile). */
static bool encode_queue(rk__pipe *p, rk__conn *c, char *stack, size_t cap, char **buf, size_t *len)
{
    size_t calls = 0, total = 0;
    for (rk__pipe_req *r = p->queue; r; r = r->next)
        calls++, total += r->n;
    rk__cmd cstack[DRAIN], *cmds = total <= DRAIN ? cstack : rk__malloc(total * sizeof *cmds);
    if (!cmds || !ring_reserve(p, calls)) {
        if (cmds != cstack)
            rk__free(cmds);
        fail_queue(p, rk__err(RK_ENOMEM, "cannot queue %zu commands", total));
        return false;
    }
    rk__pipe_req *batch = p->queue;
    size_t k = 0;
    for (rk__pipe_req *r = batch; r; r = r->next) {
        r->sending = true;
        for (size_t i = 0; i < r->n; i++)
            cmds[k++] = r->cmds[i];
    }
    p->queue = p->queue_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    int rc = rk__conn_encode(c, cmds, k, stack, cap, buf, len);
    pthread_mutex_lock(&p->mu);
    if (cmds != cstack)
        rk__free(cmds);
    for (rk__pipe_req *r = batch; r; r = r->next)
        r->sending = false;
    pthread_cond_broadcast(&p->written);
    if (rc != RK_OK) { /* nothing written: only these calls fail */
        rk__err_saved err;
        rk__err_save(&err);
        for (rk__pipe_req *r = batch, *next; r; r = next) {
            next = r->next;
            fail(r, rc, &err);
        }
        return false;
    }
    if (c != p->conn) { /* it failed meanwhile: these go on the next one */
        requeue(p, batch);
        if (p->closed) /* there is none */
            fail_queue(p, rk__err(RK_ENOTOPEN, "Connection is not opened"));
        if (*buf != stack)
            rk__free(*buf);
        return false;
    }
    for (rk__pipe_req *r = batch; r; r = r->next) {
        *slot(p, p->ring_len++) = (rk__pipe_slot){r, r->n};
        r->written = true;
    }
    return true;
}

/* Write every queued call in one write, unless someone else is writing (they will). The
 * leader fails the ring itself when the write fails; another writer shuts the connection down,
 * so that the leader's read fails and does. */
static void write_queue(rk__pipe *p, rk__pipe_req *me, uint64_t deadline, bool leader)
{
    if (p->writing || !p->queue || !p->conn)
        return;
    rk__conn *c = p->conn;
    char stack[512], *buf;
    size_t len;
    p->writing = true;
    if (encode_queue(p, c, stack, sizeof stack, &buf, &len)) {
        pthread_mutex_unlock(&p->mu);
        int rc = rk__conn_write(c, buf, len, deadline);
        if (buf != stack)
            rk__free(buf);
        pthread_mutex_lock(&p->mu);
        if (c == p->conn && rc != RK_OK && (leader || !p->busy))
            fail_ring(p, rc, me);
        else if (c == p->conn && rc != RK_OK)
            rk__conn_shutdown(c);
    }
    p->writing = false;
    pthread_cond_broadcast(&p->written);
    if (c == p->dead) { /* the leader failed its calls meanwhile */
        rk__pool_put(p->pool, c);
        p->dead = NULL;
    }
    release_if_idle(p); /* the leader may have left while we wrote */
}

/* The next reply goes to the oldest call in the ring. False on a reply nobody waits for. */
static bool hand_out(rk__pipe *p, redisReply *r)
{
    if (p->ring_len == 0) {
        rk__reply_free(r);
        return false;
    }
    rk__pipe_slot *s = slot(p, 0);
    rk__pipe_req *q = s->req;
    if (q) {
        q->replies[q->got++] = r;
        rk__reply_class cls = r->type == REDIS_REPLY_ERROR ? rk__reply_classify(r) : RK__REPLY_OK;
        if (q->cls == RK__REPLY_OK && cls != RK__REPLY_OK) {
            q->cls = cls;
            if (rk__class_action(cls) == RK__ACT_REDIRECT)
                rk__reply_redirect(r, q->redirect);
        }
    } else {
        rk__reply_free(r);
    }
    if (--s->due == 0) {
        p->ring_head = (p->ring_head + 1) % p->ring_cap;
        p->ring_len--;
        if (q) {
            q->rc = RK_OK;
            q->done = true;
            wake(q);
        }
    }
    return true;
}

/* Read what the server has sent (waiting for it until the leader's own deadline) and hand it
 * out. The leader's deadline passing leaves the connection whole for the others. */
static void read_some(rk__pipe *p, rk__pipe_req *me, uint64_t deadline)
{
    rk__conn *c = p->conn;
    redisReply *got[DRAIN];
    size_t k = 0;
    int rc = RK_OK;
    pthread_mutex_unlock(&p->mu);
    while (k < DRAIN) {
        redisReply *r;
        if ((rc = rk__conn_buffered(c, &r)) != RK_OK)
            break;
        if (r)
            got[k++] = r;
        else if (k > 0 || (rc = rk__conn_fill_until(c, deadline)) != RK_OK)
            break;
    }
    pthread_mutex_lock(&p->mu);
    bool stray = false;
    for (size_t i = 0; i < k; i++)
        stray |= !hand_out(p, got[i]);
    if (stray)
        rc = rk__err(RK_EIO, "%s: a reply nobody asked for (protocol out of step)", c->tr.peer);
    if (rc == RK_ETIMEDOUT && !c->broken && !stray) {
        if (!me->done && !me->sending) /* else once its encoding ends (lead) */
            abandon(p, me);
    } else if (rc != RK_OK) {
        fail_ring(p, rc, me);
    }
}

/* The leader leaves: the connection goes back to the pool when nobody needs it, else to the
 * oldest call still waiting (which leads next). */
static void step_down(rk__pipe *p)
{
    p->busy = false;
    if (release_if_idle(p))
        return;
    for (size_t i = 0; i < p->ring_len; i++)
        if (slot(p, i)->req) {
            wake(slot(p, i)->req);
            return;
        }
    if (p->queue)
        wake(p->queue);
    /* else only abandoned replies are due: the next caller reads them. */
}

/* The leader's call is still queued behind another thread's write: wait for it to end. */
static void wait_written(rk__pipe *p, rk__pipe_req *me, uint64_t deadline)
{
    struct timespec ts;
    rk__timespec_at(&ts, deadline);
    int w = pthread_cond_timedwait(&p->written, &p->mu, &ts);
    if (!me->done && !me->written && !me->sending && w == ETIMEDOUT &&
        rk__remaining_ms(deadline) == 0)
        abandon(p, me);
}

static void lead(rk__pipe *p, rk__pipe_req *me, uint64_t deadline)
{
    p->busy = true;
    while (!me->done) {
        if (!p->conn && !p->writing && !borrow(p, me, deadline)) {
            fail_me(me);
            break;
        }
        write_queue(p, me, deadline, true);
        if (me->done)
            break;
        /* Queued behind another thread's write: read meanwhile if anything is due (that
         * writer may be blocked on a full socket until someone reads), else wait for it. */
        if (me->sending || !p->conn || (!me->written && p->ring_len == 0))
            wait_written(p, me, deadline);
        else
            read_some(p, me, deadline);
    }
    /* What queued up meanwhile goes on the wire now, not once the next leader is awake. */
    if (rk__remaining_ms(deadline) > 0)
        write_queue(p, me, deadline, true);
    step_down(p);
}

/* Over plain TCP, a caller may write while the leader reads. */
static bool may_write(const rk__pipe *p)
{
    return p->busy && p->queue && !p->writing && p->conn && !p->conn->tr.ssl;
}

/* ---- callers ---- */

static int wait_turn(rk__pipe *p, rk__pipe_req *me, uint64_t deadline)
{
    if (!me->waiting) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        int rc = pthread_cond_init(&me->cv, &attr);
        pthread_condattr_destroy(&attr);
        if (rc != 0)
            return ENOMEM;
        me->waiting = true;
    }
    struct timespec ts;
    rk__timespec_at(&ts, deadline);
    return pthread_cond_timedwait(&me->cv, &p->mu, &ts);
}

static void enqueue(rk__pipe *p, rk__pipe_req *me)
{
    if (p->queue_tail)
        p->queue_tail->next = me;
    else
        p->queue = me;
    p->queue_tail = me;
}

int rk__pipe_exec(rk__pipe *p, const rk__cmd *cmds, size_t n, redisReply **replies,
                  uint64_t deadline, rk__reply_class *cls, rk__redirect *redirect,
                  rk__pipe_info *info)
{
    rk__pipe_req me;
    me.cmds = cmds, me.n = n, me.replies = replies, me.got = 0;
    me.sending = me.written = me.done = me.waiting = false;
    me.rc = RK_OK, me.cls = RK__REPLY_OK, me.redirect = redirect, me.next = NULL;
    *info = (rk__pipe_info){false, false, 0, RK_OK};
    me.info = info;
    redirect->cls = RK__REPLY_OK;
    memset(replies, 0, n * sizeof *replies);
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        pthread_mutex_unlock(&p->mu);
        *cls = RK__REPLY_ERR;
        return rk__err(RK_ENOTOPEN, "Connection is not opened");
    }
    enqueue(p, &me);
    while (!me.done) {
        if (!p->busy) {
            lead(p, &me, deadline);
            break;
        }
        if (may_write(p)) {
            write_queue(p, &me, deadline, false);
            if (p->queue && !p->writing) /* it came after: its caller writes it */
                wake(p->queue);
            continue;
        }
        int w = wait_turn(p, &me, deadline);
        if (me.done || (w != ENOMEM && (w != ETIMEDOUT || rk__remaining_ms(deadline) > 0)))
            continue;
        if (me.sending) { /* a writer reads our commands: a moment, then leave */
            pthread_cond_wait(&p->written, &p->mu);
            continue;
        }
        abandon(p, &me);
        if (w == ENOMEM) {
            me.rc = rk__err(RK_ENOMEM, "cannot create a condition variable");
            rk__err_save(&me.err);
        }
        if (!p->busy)
            step_down(p); /* it may have been handed the connection meanwhile */
    }
    pthread_mutex_unlock(&p->mu);
    if (me.waiting)
        pthread_cond_destroy(&me.cv);
    *cls = me.cls;
    if (me.rc != RK_OK)
        rk__err_restore(&me.err);
    return me.rc;
}

void rk__pipe_close(rk__pipe *p)
{
    rk__err_saved mine; /* the closing thread's own error is not close's to change */
    rk__err_save(&mine);
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    (void)rk__err(RK_ENOTOPEN, "Connection is not opened");
    fail_queue(p, RK_ENOTOPEN);
    /* Nobody reads it: a caller handed the connection may not be awake yet. */
    if (!p->busy && !p->writing && p->conn)
        fail_ring(p, RK_ENOTOPEN, NULL);
    pthread_mutex_unlock(&p->mu);
    rk__err_restore(&mine);
}
