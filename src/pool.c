#include "pool.h"

#include <errno.h>
#include <time.h>

#include "clock.h"
#include "error_int.h"

/* Connections idle longer than this are checked before reuse: a server restart leaves them
 * dead, and finding that out before writing avoids a failed attempt. Hot connections skip the
 * check (a system call) since a failure there is retried anyway. */
#define IDLE_CHECK_MS 1000u

static int init_locks(rk__pool *p)
{
    pthread_condattr_t attr;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        return rk__err(RK_ENOMEM, "cannot create a mutex");
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->cv, &attr) != 0) {
        pthread_mutex_destroy(&p->mu);
        return rk__err(RK_ENOMEM, "cannot create a condition variable");
    }
    pthread_condattr_destroy(&attr);
    return RK_OK;
}

int rk__pool_init(rk__pool *p)
{
    *p = (rk__pool){.max = 1};
    int rc = init_locks(p);
    if (rc == RK_OK && (rc = rk__pipe_init(&p->pipe, p)) != RK_OK) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
    }
    return rc;
}

static void link_all(rk__pool *p, rk__conn *c)
{
    c->prev_all = NULL;
    c->next_all = p->all;
    if (p->all)
        p->all->prev_all = c;
    p->all = c;
}

static void unlink_all(rk__pool *p, rk__conn *c)
{
    if (c->prev_all)
        c->prev_all->next_all = c->next_all;
    else
        p->all = c->next_all;
    if (c->next_all)
        c->next_all->prev_all = c->prev_all;
}

/* Drop a connection that is neither idle nor borrowed any more. Lock held. */
static void drop(rk__pool *p, rk__conn *c)
{
    unlink_all(p, c);
    p->total--;
    rk__conn_free(c);
}

static void close_idle(rk__pool *p)
{
    while (p->idle) {
        rk__conn *c = p->idle;
        p->idle = c->next;
        drop(p, c);
    }
}

void rk__pool_destroy(rk__pool *p)
{
    rk__pool_close(p);
    rk__pipe_destroy(&p->pipe);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

void rk__pool_open(rk__pool *p, const rk__endpoint *ep, void *tls_ctx, size_t max)
{
    pthread_mutex_lock(&p->mu);
    p->ep = ep;
    p->tls_ctx = tls_ctx;
    p->max = max ? max : 1;
    p->open = true;
    pthread_mutex_unlock(&p->mu);
}

/* A new generation: every connection made before it is dropped. Lock held. */
static void drop_all(rk__pool *p)
{
    p->gen++;
    close_idle(p);
    for (rk__conn *c = p->all; c; c = c->next_all)
        rk__conn_shutdown(c); /* borrowed: its user fails now and gives it back */
    pthread_cond_broadcast(&p->cv);
}

void rk__pool_close(rk__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->open = false;
    drop_all(p);
    pthread_mutex_unlock(&p->mu);
    rk__pipe_close(&p->pipe); /* after: it gives its connection back */
}

void rk__pool_retire(rk__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->retired = true;
    drop_all(p);
    pthread_mutex_unlock(&p->mu);
}

void rk__pool_revive(rk__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->retired = false;
    pthread_mutex_unlock(&p->mu);
}

/* RK_EIO rather than RK_ENOTOPEN: the caller retries, on whichever node now serves. */
static int retired(const rk__pool *p, const char *what)
{
    char peer[80];
    return rk__err(RK_EIO, "%s: %s: the node's role changed (a demoted master)",
                   rk__endpoint_name(p->ep, peer, sizeof peer), what);
}

void rk__pool_after_fork(rk__pool *p)
{
    init_locks(p); /* the parent's lock state means nothing here */
    for (rk__conn *c = p->idle; c; c = c->next)
        c->gen = UINT64_MAX; /* idle: whole, so it can be freed */
    for (rk__conn *c = p->all, *next; c; c = next) {
        next = c->next_all;
        if (c->gen == UINT64_MAX)
            rk__conn_abandon(c);
        else /* borrowed by a parent's thread, perhaps in the middle of a read */
            rk__conn_drop_in_use(c);
    }
    p->all = p->idle = NULL;
    p->total = p->waiting = 0;
    p->gen++;
    rk__pipe_after_fork(&p->pipe);
}

static rk__conn *pop_idle(rk__pool *p)
{
    rk__conn *c = p->idle;
    if (c)
        p->idle = c->next;
    return c;
}

/* Wait (with the lock held) for a connection to come back or a slot to free up. */
static int wait_slot(rk__pool *p, uint64_t deadline)
{
    struct timespec ts;
    rk__timespec_at(&ts, deadline);
    int rc = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    if (rc == ETIMEDOUT && rk__remaining_ms(deadline) == 0)
        return rk__err(RK_ETIMEDOUT, "all %zu connections stayed busy until the deadline", p->max);
    return RK_OK;
}

/* A connection that sat idle for a while may have died with a server restart. */
static bool fresh(rk__conn *c)
{
    return rk__now_ms() - c->idle_since < IDLE_CHECK_MS || rk__conn_alive(c);
}

static int connect_slot(rk__pool *p, rk__conn **out, uint64_t deadline)
{
    /* The slot is reserved; connect without holding the lock. */
    p->total++;
    const rk__endpoint *ep = p->ep;
    void *tls_ctx = p->tls_ctx;
    uint64_t gen = p->gen;
    pthread_mutex_unlock(&p->mu);
    rk__conn *c;
    int rc = rk__conn_open(&c, ep, tls_ctx, deadline);
    pthread_mutex_lock(&p->mu);
    if (rc != RK_OK) {
        p->total--;
        pthread_cond_signal(&p->cv);
    } else if (!p->open || gen != p->gen || p->retired) { /* nobody would shut it down */
        p->total--;
        rk__conn_free(c);
        rc = p->open ? retired(p, "connection dropped as it opened")
                     : rk__err(RK_ENOTOPEN, "Connection is not opened");
    } else {
        c->gen = gen;
        link_all(p, c);
        *out = c;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* With `wait` false, a caller that would have to wait (every connection busy, or others
 * already waiting, who come first) gets RK_OK and no connection. */
static int get(rk__pool *p, rk__conn **out, uint64_t deadline, bool wait)
{
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (!p->open || p->retired) {
            int rc = p->open ? retired(p, "not used now")
                             : rk__err(RK_ENOTOPEN, "Connection is not opened");
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        if (!wait && p->waiting)
            break;
        rk__conn *c = pop_idle(p);
        if (c && fresh(c)) {
            pthread_mutex_unlock(&p->mu);
            *out = c;
            return RK_OK;
        }
        if (c) {
            drop(p, c);
            continue;
        }
        if (p->total < p->max)
            return connect_slot(p, out, deadline);
        if (!wait)
            break;
        p->waiting++;
        int rc = wait_slot(p, deadline);
        p->waiting--;
        if (rc != RK_OK) {
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return RK_OK;
}

int rk__pool_get(rk__pool *p, rk__conn **out, uint64_t deadline)
{
    return get(p, out, deadline, true);
}

int rk__pool_get_free(rk__pool *p, rk__conn **out, uint64_t deadline)
{
    return get(p, out, deadline, false);
}

void rk__pool_put(rk__pool *p, rk__conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&p->mu);
    if (c->broken || !p->open || c->gen != p->gen) {
        drop(p, c);
    } else {
        c->idle_since = rk__now_ms();
        c->next = p->idle;
        p->idle = c;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
