#include "holder.h"

#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"

/* Drain's wait is bounded by a monotonic deadline: a clock step must not stretch a close. */
static pthread_condattr_t mono_attr;
static pthread_once_t attr_once = PTHREAD_ONCE_INIT;

static void init_attr(void)
{
    pthread_condattr_init(&mono_attr);
    pthread_condattr_setclock(&mono_attr, CLOCK_MONOTONIC);
}

int rk__holder_init(rk__holder *h)
{
    pthread_once(&attr_once, init_attr);
    memset(h, 0, sizeof *h);
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        return rk__err(RK_ENOMEM, "cannot create a mutex");
    if (pthread_cond_init(&h->none_waiting, &mono_attr) != 0) {
        pthread_mutex_destroy(&h->mu);
        return rk__err(RK_ENOMEM, "cannot create a condition variable");
    }
    return RK_OK;
}

void rk__holder_destroy(rk__holder *h)
{
    rk__map_clear(&h->held, rk__free);
    pthread_cond_destroy(&h->none_waiting);
    pthread_mutex_destroy(&h->mu);
}

void rk__holder_after_fork(rk__holder *h)
{
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->none_waiting, &mono_attr);
    rk__map_clear(&h->held, rk__free);
    h->waiting = 0;
}

/* Each waiter leaves within RK__GRACE_MS on a live server. A server that does not answer holds
 * them longer: closing the client then shuts their sockets down. */
void rk__holder_drain(rk__holder *h, uint64_t timeout_ms)
{
    struct timespec ts;
    rk__timespec_at(&ts, rk__deadline(timeout_ms));
    pthread_mutex_lock(&h->mu);
    while (h->waiting && pthread_cond_timedwait(&h->none_waiting, &h->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&h->mu);
}

void rk__holder_count_waiting(rk__holder *h, int delta)
{
    pthread_mutex_lock(&h->mu);
    h->waiting += (unsigned)delta;
    if (h->waiting == 0)
        pthread_cond_broadcast(&h->none_waiting);
    pthread_mutex_unlock(&h->mu);
}

int rk__holder_put(rk__holder *h, const char *key, size_t klen, void *rec)
{
    void *old = NULL;
    pthread_mutex_lock(&h->mu);
    int rc = rk__map_put(&h->held, key, klen, rec, &old);
    pthread_mutex_unlock(&h->mu);
    rk__free(rc == RK_OK ? old : rec);
    return rc;
}

void rk__holder_get(rk__holder *h, const char *key, size_t klen, void *out, size_t size)
{
    pthread_mutex_lock(&h->mu);
    const void *rec = rk__map_get(&h->held, key, klen);
    if (rec)
        memcpy(out, rec, size);
    else
        memset(out, 0, size);
    pthread_mutex_unlock(&h->mu);
}

void rk__holder_forget(rk__holder *h, const char *key, size_t klen, const char *token)
{
    pthread_mutex_lock(&h->mu);
    const char *held = rk__map_get(&h->held, key, klen); /* a record starts with its token */
    if (held && !strcmp(held, token))
        rk__free(rk__map_remove(&h->held, key, klen));
    pthread_mutex_unlock(&h->mu);
}

uint64_t rk__holder_alive_ms(const rk__client *cl) { return 3 * cl->opts.retry_timeout_ms + 500; }

uint64_t rk__holder_heartbeat_ms(const rk__client *cl)
{
    uint64_t beat = rk__holder_alive_ms(cl) / 4, retry = cl->opts.retry_timeout_ms;
    return beat > retry ? beat : retry;
}
