#include "losses.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "redis_env.h"

void rkt_losses_init(rkt_losses *g)
{
    pthread_condattr_t a;
    memset(g, 0, sizeof *g);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &a);
    pthread_condattr_destroy(&a);
}

void rkt_on_lost(void *ud, const char *key)
{
    rkt_losses *g = ud;
    pthread_mutex_lock(&g->mu);
    if (g->calls++ == 0) {
        g->first_at = rkt_now_ms();
        g->code = rk_last_error()->code;
        snprintf(g->key, sizeof g->key, "%s", key);
        snprintf(g->why, sizeof g->why, "%s", rk_last_error()->message);
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int rkt_wait_losses(rkt_losses *g, int n, uint64_t ms)
{
    struct timespec ts;
    rk__timespec_at(&ts, rkt_now_ms() + ms);
    pthread_mutex_lock(&g->mu);
    while (g->calls < n && pthread_cond_timedwait(&g->cv, &g->mu, &ts) == 0)
        ;
    int calls = g->calls;
    pthread_mutex_unlock(&g->mu);
    return calls;
}

int rkt_losses_now(rkt_losses *g) { return rkt_wait_losses(g, 0, 0); }

void rkt_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}
