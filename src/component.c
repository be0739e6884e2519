#include "component.h"

#include <sched.h>
#include <string.h>

#include "clock.h"
#include "config_int.h"
#include "error_int.h"
#include "references_int.h"

/* ---- fork: every handle notices it on its next call ---- */

static atomic_uint fork_generation;
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void in_child(void)
{
    /* Only the forking thread exists now; whoever held this lock does not. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    fork_mu = fresh;
    atomic_fetch_add(&fork_generation, 1);
}

static void watch_forks(void) { pthread_atfork(NULL, NULL, in_child); }

/* In a forked child, the first call on the handle drops what the parent left in it. */
static void check_fork(rk__component *c)
{
    unsigned g = atomic_load(&fork_generation);
    if (atomic_load(&c->fork_gen) == g)
        return;
    pthread_mutex_lock(&fork_mu);
    if (atomic_load(&c->fork_gen) != g) {
        pthread_mutex_init(&c->mu, NULL); /* it may have been held by a parent's thread */
        atomic_store(&c->pins, 0);
        rk__client *cl = atomic_load(&c->active);
        if (cl)
            rk__client_after_fork(cl);
        if (c->after_fork)
            c->after_fork(c);
        atomic_store(&c->fork_gen, g);
    }
    pthread_mutex_unlock(&fork_mu);
}

void rk__component_check_fork(rk__component *c) { check_fork(c); }

/* ---- lifecycle ---- */

int rk__component_init(rk__component *c, const char *kind, bool pubsub)
{
    pthread_once(&fork_once, watch_forks);
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->pubsub = pubsub;
    rk__stats_init(&c->stats, kind);
    atomic_init(&c->active, NULL);
    atomic_init(&c->pins, 0);
    atomic_init(&c->fork_gen, atomic_load(&fork_generation));
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return rk__err(RK_ENOMEM, "cannot create a mutex");
    int rc = rk__options_parse(&c->opts, NULL); /* defaults until configured */
    if (rc != RK_OK)
        pthread_mutex_destroy(&c->mu);
    return rc;
}

void rk__component_destroy(rk__component *c)
{
    rk__component_close(c);
    pthread_mutex_destroy(&c->mu);
    rk_config_free(c->cfg);
    rk_references_free(c->refs);
    rk__options_clear(&c->opts);
}

int rk__component_configure(rk__component *c, const rk_config *cfg)
{
    rk__options opts;
    rk_config *copy;
    int rc = rk__options_parse(&opts, cfg); /* bad values are reported now, not at open */
    if (rc != RK_OK)
        return rc;
    if ((rc = rk__config_copy(&copy, cfg)) != RK_OK) {
        rk__options_clear(&opts);
        return rc;
    }
    check_fork(c);
    pthread_mutex_lock(&c->mu);
    rk_config_free(c->cfg);
    rk__options_clear(&c->opts);
    c->cfg = copy;
    c->opts = opts;
    pthread_mutex_unlock(&c->mu);
    return RK_OK;
}

int rk__component_set_references(rk__component *c, const rk_references *refs)
{
    rk_references *copy;
    int rc = rk__references_copy(&copy, refs);
    if (rc != RK_OK)
        return rc;
    check_fork(c);
    pthread_mutex_lock(&c->mu);
    rk_references_free(c->refs);
    c->refs = copy;
    pthread_mutex_unlock(&c->mu);
    return RK_OK;
}

static int open_client(rk__component *c, const rk_context *ctx, rk__client **out)
{
    int rc = c->validate ? c->validate(&c->opts) : RK_OK;
    if (rc == RK_OK)
        rc = rk__client_new(out, c->kind, &c->opts, c->cfg, c->refs, ctx, c->pubsub);
    if (rc == RK_OK)
        (*out)->stats = &c->stats; /* the component outlives every open's client */
    if (rc == RK_OK && c->prepare && (rc = c->prepare(c, *out)) != RK_OK) {
        rk__client_unref(*out);
        *out = NULL;
    }
    if (rc == RK_OK)
        rc = rk__client_connect(*out, rk__client_deadline(*out, RK__NO_TIMEOUT));
    if (rc == RK_OK && c->opened)
        rc = c->opened(c, *out);
    if (rc != RK_OK && *out) {
        rk__client_close(*out);
        rk__client_unref(*out); /* a failed open keeps nothing */
        *out = NULL;
    }
    return rc;
}

int rk__component_open(rk__component *c, const rk_context *ctx)
{
    check_fork(c);
    pthread_mutex_lock(&c->mu);
    rk__client *cl = NULL;
    int rc = atomic_load(&c->active) ? RK_OK : open_client(c, ctx, &cl);
    if (cl)
        atomic_store(&c->active, cl);
    else if (rc != RK_OK)
        rk__err_prefix("%s open: ", c->kind);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int rk__component_close(rk__component *c)
{
    check_fork(c);
    pthread_mutex_lock(&c->mu);
    rk__client *cl = atomic_exchange(&c->active, NULL);
    while (atomic_load(&c->pins)) /* a call about to take its reference: a few instructions */
        sched_yield();
    if (cl) {
        rk__client_stop_waiters(cl);
        if (c->drain)
            c->drain(c, cl);
        rk__client_close(cl);
        rk__client_unref(cl); /* calls still running hold their own references */
    }
    pthread_mutex_unlock(&c->mu);
    return RK_OK;
}

bool rk__component_is_open(const rk__component *c)
{
    return atomic_load(&((rk__component *)c)->active) != NULL;
}

rk__client *rk__component_begin(rk__component *c)
{
    check_fork(c);
    atomic_fetch_add(&c->pins, 1);
    rk__client *cl = atomic_load(&c->active);
    if (cl)
        rk__client_ref(cl);
    atomic_fetch_sub(&c->pins, 1);
    if (!cl)
        rk__client_not_open(c->kind);
    return cl;
}

void rk__component_end(rk__client *cl) { rk__client_unref(cl); }

int rk__component_stats(rk__component *c, rk_stats *out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_%s_get_stats: out is NULL", c->kind);
    rk__stats_snapshot(&c->stats, out);
    return RK_OK;
}

int rk__check_key(const char *key, const char *what)
{
    if (!key)
        return rk__err(RK_EINVAL, "%s is NULL", what);
    if (!*key)
        return rk__err(RK_EINVAL, "%s is empty", what);
    return RK_OK;
}
