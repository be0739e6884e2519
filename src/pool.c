#include "pool.h"

#include <errno.h>
#include <time.h>

#include "clock.h"
#include "error_int.h"

/* Connections idle longer than this are checked before reuse: a server restart leaves them
 * dead, and finding that out before writing avoids a failed attempt. Hot connections skip the
 * check (a system call) since a failure there is retried anyway. */
#define IDLE_CHECK_MS 1000u

/* Pause between reconnect attempts grows by this much per attempt, bounded by the deadline. */
#define RECONNECT_BACKOFF_MS 50u

int rk__pool_init(rk__pool *p)
{
    pthread_condattr_t attr;
    *p = (rk__pool){.max = 1};
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

static void close_idle(rk__pool *p)
{
    while (p->idle) {
        rk__conn *c = p->idle;
        p->idle = c->next;
        rk__conn_free(c);
        p->total--;
    }
}

void rk__pool_destroy(rk__pool *p)
{
    rk__pool_close(p);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

void rk__pool_open(rk__pool *p, const rk__endpoint *ep, size_t max, uint64_t retries)
{
    pthread_mutex_lock(&p->mu);
    p->ep = ep;
    p->max = max ? max : 1;
    p->retries = retries;
    p->open = true;
    pthread_mutex_unlock(&p->mu);
}

void rk__pool_close(rk__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->open = false;
    p->gen++;
    close_idle(p);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool rk__pool_is_open(rk__pool *p)
{
    pthread_mutex_lock(&p->mu);
    bool open = p->open;
    pthread_mutex_unlock(&p->mu);
    return open;
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

int rk__pool_get(rk__pool *p, rk__conn **out, uint64_t deadline)
{
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (!p->open) {
            pthread_mutex_unlock(&p->mu);
            return rk__err(RK_ENOTOPEN, "Connection is not opened");
        }
        rk__conn *c = pop_idle(p);
        if (c) {
            pthread_mutex_unlock(&p->mu);
            if (rk__now_ms() - c->idle_since < IDLE_CHECK_MS || rk__transport_alive(&c->tr)) {
                *out = c;
                return RK_OK;
            }
            rk__conn_free(c);
            pthread_mutex_lock(&p->mu);
            p->total--;
            continue;
        }
        if (p->total < p->max)
            break;
        int rc = wait_slot(p, deadline);
        if (rc != RK_OK) {
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
    }
    /* Reserve the slot, then connect without holding the lock. */
    p->total++;
    const rk__endpoint *ep = p->ep;
    uint64_t gen = p->gen;
    pthread_mutex_unlock(&p->mu);
    rk__conn *c;
    int rc = rk__conn_open(&c, ep, deadline);
    if (rc != RK_OK) {
        pthread_mutex_lock(&p->mu);
        p->total--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    c->gen = gen;
    *out = c;
    return RK_OK;
}

void rk__pool_put(rk__pool *p, rk__conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&p->mu);
    if (c->broken || !p->open || c->gen != p->gen) {
        p->total--;
        pthread_mutex_unlock(&p->mu);
        rk__conn_free(c);
        pthread_mutex_lock(&p->mu);
    } else {
        c->idle_since = rk__now_ms();
        c->next = p->idle;
        p->idle = c;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static bool retryable(int rc) { return rc == RK_EIO; }

static void backoff(unsigned attempt, uint64_t deadline)
{
    uint64_t ms = RECONNECT_BACKOFF_MS * attempt, left = rk__remaining_ms(deadline);
    if (ms > left)
        ms = left;
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int rk__pool_run(rk__pool *p, uint64_t deadline, rk__conn_fn fn, void *arg)
{
    pthread_mutex_lock(&p->mu);
    uint64_t retries = p->retries;
    pthread_mutex_unlock(&p->mu);
    for (unsigned attempt = 0;; attempt++) {
        rk__conn *c;
        int rc = rk__pool_get(p, &c, deadline);
        bool conn_failed = rc != RK_OK;
        if (rc == RK_OK) {
            rc = fn(c, arg, deadline);
            conn_failed = c->broken;
            rk__pool_put(p, c);
        }
        if (rc == RK_OK || !conn_failed || !retryable(rc) || attempt >= retries ||
            rk__remaining_ms(deadline) == 0)
            return rc;
        if (attempt > 0)
            backoff(attempt, deadline);
    }
}
