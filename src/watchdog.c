#include "watchdog.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"
#include "log.h"
#include "map.h"

/* One watched lease. While it is being renewed or logged, the thread uses it unlocked: an
 * unwatch then only marks it gone, and the thread frees it. */
typedef struct watched {
    uint64_t ttl_ms;
    uint64_t renewed; /* the lease runs from no earlier than this: `since`, or the last renewal */
    uint64_t due;     /* of the next renewal */
    bool gone;        /* unwatched while the thread used it */
    bool failing;     /* renewals failed since the last that worked: warned once */
    char why[256];    /* the last failure, for the report if the lease runs out */
    char *lease;      /* in names, after the key */
    char names[];     /* key NUL lease NUL */
} watched;

struct rk__watchdog {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the thread's: a watch, or stop */
    pthread_cond_t idle; /* the thread ended, or a report returned */
    rk__map keys;        /* key -> watched */
    rk__renew_fn renew;
    rk__lost_fn noticed; /* the owner's own hearing of a loss, before the user's */
    void *renew_ud;
    rk__lost_fn lost;
    void *lost_ud;
    watched *busy; /* used unlocked by the thread right now */
    pthread_t thread;
    bool running;   /* the thread exists, not joined yet */
    bool stopping;  /* it must end */
    bool exited;    /* it ended: joining it returns at once */
    bool reporting; /* it runs the lost handler */
};

static pthread_condattr_t mono_attr;
static pthread_once_t attr_once = PTHREAD_ONCE_INIT;

static void init_attr(void)
{
    pthread_condattr_init(&mono_attr);
    pthread_condattr_setclock(&mono_attr, CLOCK_MONOTONIC);
}

static uint64_t every(uint64_t ttl_ms) { return ttl_ms / 3 ? ttl_ms / 3 : 1; }

static bool on_thread(const rk__watchdog *w)
{
    return w->running && pthread_equal(w->thread, pthread_self());
}

int rk__watchdog_new(rk__watchdog **out, rk__renew_fn renew, rk__lost_fn noticed, void *ud)
{
    pthread_once(&attr_once, init_attr);
    *out = NULL;
    rk__watchdog *w = rk__calloc(1, sizeof *w);
    if (!w)
        return rk__err(RK_ENOMEM, "cannot allocate a lease watchdog");
    bool mu = pthread_mutex_init(&w->mu, NULL) == 0;
    bool wake = mu && pthread_cond_init(&w->wake, &mono_attr) == 0;
    if (!wake || pthread_cond_init(&w->idle, &mono_attr) != 0) {
        if (wake)
            pthread_cond_destroy(&w->wake);
        if (mu)
            pthread_mutex_destroy(&w->mu);
        rk__free(w);
        return rk__err(RK_ENOMEM, "cannot create the lease watchdog's mutex and conditions");
    }
    w->renew = renew;
    w->noticed = noticed;
    w->renew_ud = ud;
    *out = w;
    return RK_OK;
}

void rk__watchdog_free(rk__watchdog *w)
{
    if (!w)
        return;
    rk__watchdog_stop(w);
    rk__watchdog_join(w);
    pthread_cond_destroy(&w->idle);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    rk__free(w);
}

void rk__watchdog_set_lost(rk__watchdog *w, rk__lost_fn fn, void *ud)
{
    pthread_mutex_lock(&w->mu);
    while (w->reporting && !on_thread(w))
        pthread_cond_wait(&w->idle, &w->mu);
    w->lost = fn;
    w->lost_ud = fn ? ud : NULL;
    pthread_mutex_unlock(&w->mu);
}

/* ---- the schedule (everything under mu) ---- */

/* Out of the schedule: freed now, or by the thread once it is done with it. */
static void drop(rk__watchdog *w, watched *k)
{
    if (k == w->busy)
        k->gone = true;
    else
        rk__free(k);
}

static void drop_all(rk__watchdog *w)
{
    for (rk__map_entry *e = rk__map_next(&w->keys, NULL); e; e = rk__map_next(&w->keys, e))
        drop(w, e->value);
    rk__map_clear(&w->keys, NULL);
}

/* The renewal due soonest, or NULL. A handle watches a few keys: a scan is enough. */
static watched *next_due(const rk__watchdog *w)
{
    watched *next = NULL;
    for (rk__map_entry *e = rk__map_next(&w->keys, NULL); e; e = rk__map_next(&w->keys, e)) {
        watched *k = e->value;
        if (!next || k->due < next->due)
            next = k;
    }
    return next;
}

/* ---- the thread ---- */

/* Renew with the lock released; `k` stays allocated meanwhile. */
static rk__lease renew(rk__watchdog *w, watched *k, uint64_t left_ms)
{
    w->busy = k;
    pthread_mutex_unlock(&w->mu);
    rk__lease r = w->renew(w->renew_ud, k->names, k->lease, k->ttl_ms, left_ms);
    if (r == RK__LEASE_FAILED) /* this thread's error: read it before its next call */
        snprintf(k->why, sizeof k->why, "%s", rk_last_error()->message);
    pthread_mutex_lock(&w->mu);
    w->busy = NULL;
    return r;
}

/* Try again at the next tick, and at the latest when the lease runs out (then it is lost). The
 * first failure in a row is logged: nobody else hears of it until the lease is lost. */
static void retry(rk__watchdog *w, watched *k, uint64_t sent, uint64_t expiry)
{
    uint64_t next = sent + every(k->ttl_ms);
    k->due = next < expiry ? next : expiry;
    if (k->failing)
        return;
    k->failing = true;
    w->busy = k;
    pthread_mutex_unlock(&w->mu);
    rk__log(RK_LOG_WARN, "could not renew the lease on '%s', retrying: %s", k->names, k->why);
    pthread_mutex_lock(&w->mu);
    w->busy = NULL;
    if (k->gone)
        rk__free(k);
}

/* `k` is lost: out of the schedule, then reported once, unlocked. */
static void report(rk__watchdog *w, watched *k, bool said_lost)
{
    rk__map_remove(&w->keys, k->names, strlen(k->names));
    if (!said_lost) /* the renewal's own error tells the other case */
        rk__err(RK_ETIMEDOUT,
                "the lease on '%s' was not renewed within its TTL (%" PRIu64 " ms)%s%s", k->names,
                k->ttl_ms, *k->why ? ": " : "", k->why);
    rk__lost_fn fn = w->lost;
    void *ud = w->lost_ud;
    w->reporting = fn != NULL;
    pthread_mutex_unlock(&w->mu);
    if (w->noticed)
        w->noticed(w->renew_ud, k->names);
    if (fn)
        fn(ud, k->names);
    rk__free(k);
    pthread_mutex_lock(&w->mu);
    w->reporting = false;
    pthread_cond_broadcast(&w->idle);
}

/* Renew `k` now, unless its lease has run out already, and act on the answer unless `k` was
 * unwatched meanwhile. */
static void tick(rk__watchdog *w, watched *k)
{
    uint64_t sent = rk__now_ms(), expiry = k->renewed + k->ttl_ms;
    rk__lease r = sent < expiry ? renew(w, k, expiry - sent) : RK__LEASE_FAILED;
    if (k->gone) {
        rk__free(k);
    } else if (r == RK__LEASE_RENEWED) {
        k->renewed = sent;
        k->due = sent + every(k->ttl_ms);
        k->failing = false;
        k->why[0] = '\0';
    } else if (r == RK__LEASE_LOST || rk__now_ms() >= expiry) {
        report(w, k, r == RK__LEASE_LOST);
    } else {
        retry(w, k, sent, expiry);
    }
}

static void sleep_until(rk__watchdog *w, uint64_t due)
{
    struct timespec ts;
    rk__timespec_at(&ts, due);
    pthread_cond_timedwait(&w->wake, &w->mu, &ts);
}

static void *run(void *arg)
{
    rk__watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        watched *k = next_due(w);
        if (k && k->due <= rk__now_ms())
            tick(w, k);
        else
            sleep_until(w, k ? k->due : UINT64_MAX);
    }
    w->exited = true;
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* A thread to serve the schedule. One told to stop but still running (a renewal in flight, or a
 * lost handler that closed the handle) is kept on rather than waited for. */
static int start(rk__watchdog *w, const char *key)
{
    if (w->running && !w->exited) {
        w->stopping = false;
        pthread_cond_broadcast(&w->idle); /* a join waiting for it gives up */
        return RK_OK;
    }
    if (w->running)
        pthread_join(w->thread, NULL); /* it has ended: returns at once */
    w->running = w->stopping = w->exited = false;
    if (pthread_create(&w->thread, NULL, run, w) != 0)
        return rk__err(RK_ERROR, "watch '%s': cannot start the lease watchdog's thread", key);
    w->running = true;
    return RK_OK;
}

/* ---- watch, unwatch, stop ---- */

static watched *new_watched(const char *key, const char *lease, uint64_t ttl_ms, uint64_t since)
{
    size_t klen = strlen(key), llen = strlen(lease);
    watched *k = rk__malloc(sizeof *k + klen + llen + 2);
    if (!k)
        return NULL;
    memset(k, 0, sizeof *k);
    memcpy(k->names, key, klen + 1);
    k->lease = k->names + klen + 1;
    memcpy(k->lease, lease, llen + 1);
    k->ttl_ms = ttl_ms;
    k->renewed = since;
    k->due = since + every(ttl_ms);
    return k;
}

int rk__watchdog_watch(rk__watchdog *w, const char *key, const char *lease, uint64_t ttl_ms,
                       uint64_t since)
{
    watched *k = new_watched(key, lease, ttl_ms, since), *old = NULL;
    if (!k)
        return rk__err(RK_ENOMEM, "watch '%s': cannot allocate its schedule", key);
    pthread_mutex_lock(&w->mu);
    int rc = start(w, key);
    if (rc == RK_OK && (rc = rk__map_put(&w->keys, key, strlen(key), k, (void **)&old)) != RK_OK)
        rk__err_prefix("watch '%s': ", key);
    if (old)
        drop(w, old);
    if (rc == RK_OK)
        pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    if (rc != RK_OK)
        rk__free(k);
    return rc;
}

void rk__watchdog_unwatch(rk__watchdog *w, const char *key, const char *lease)
{
    size_t klen = strlen(key);
    pthread_mutex_lock(&w->mu);
    watched *k = rk__map_get(&w->keys, key, klen);
    if (k && (!lease || !strcmp(k->lease, lease)))
        drop(w, rk__map_remove(&w->keys, key, klen));
    pthread_mutex_unlock(&w->mu);
}

void rk__watchdog_stop(rk__watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    drop_all(w);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

void rk__watchdog_join(rk__watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->running && w->stopping && !w->exited && !on_thread(w))
        pthread_cond_wait(&w->idle, &w->mu);
    if (w->running && w->exited) {
        pthread_join(w->thread, NULL);
        w->running = w->exited = false;
    }
    pthread_mutex_unlock(&w->mu);
}

void rk__watchdog_after_fork(rk__watchdog *w)
{
    /* The thread was the parent's: it is not here, and it may have held the mutex. */
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, &mono_attr);
    pthread_cond_init(&w->idle, &mono_attr);
    if (w->busy && w->busy->gone) /* out of the map, so drop_all would not see it */
        rk__free(w->busy);
    w->busy = NULL;
    drop_all(w);
    w->running = w->stopping = w->exited = w->reporting = false;
}
