#include "redkit/memolock.h"

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

struct rk_memolock {
    rk__component base;
    rk__subscriber *sub;
    pthread_mutex_t mu; /* guards flights and closed */
    rk__map flights;    /* id -> flight: the calls in progress in this process */
    bool closed;
};

/* One call in progress for an id; later callers in this process join it (singleflight). */
typedef struct flight {
    pthread_cond_t cv;
    size_t refs;
    bool done;
    int rc;
    rk_buf value;
    char name[32], category[32], message[512], cause[256];
    bool has_cause;
} flight;

typedef enum { FETCH_PLAIN, FETCH_RENEWABLE, FETCH_EXTERNAL } fetch_kind;

typedef struct fetcher {
    fetch_kind kind;
    rk_memolock_fetch_fn plain;
    rk_memolock_renewable_fetch_fn renewable;
    rk_memolock_external_fn external;
    void *ud;
} fetcher;

/* The wire names of one id: "<p><tag>:<id>", "<p><tag>/lock:<id>", "<p><tag>/notif:<id>". */
typedef struct names {
    const rk__settings *s;
    const char *id;
    char *block;
    const char *value, *lock, *channel;
    size_t value_len, lock_len, channel_len;
} names;

struct rk_memolock_renewer {
    rk_memolock *m;
    const names *n;
    const char *token;
};

/* What one atomic check of Redis found. */
typedef enum { CHECK_BUSY = 0, CHECK_HIT = 1, CHECK_WON = 2 } check_state;

static pthread_condattr_t mono_attr;
static pthread_once_t attr_once = PTHREAD_ONCE_INIT;

static void init_attr(void)
{
    pthread_condattr_init(&mono_attr);
    pthread_condattr_setclock(&mono_attr, CLOCK_MONOTONIC);
}

/* ---- lifecycle ---- */

int rk_memolock_new(rk_memolock **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_memolock_new: out is NULL");
    pthread_once(&attr_once, init_attr);
    *out = NULL;
    rk_memolock *m = rk__calloc(1, sizeof *m);
    if (!m)
        return rk__err(RK_ENOMEM, "cannot allocate a memolock");
    int rc = rk__component_init(&m->base, "memolock");
    if (rc == RK_OK && (rc = rk__subscriber_new(&m->sub, "memolock")) != RK_OK)
        rk__component_destroy(&m->base);
    if (rc == RK_OK && pthread_mutex_init(&m->mu, NULL) != 0) {
        rk__subscriber_free(m->sub);
        rk__component_destroy(&m->base);
        rc = rk__err(RK_ENOMEM, "cannot create a mutex");
    }
    if (rc != RK_OK) {
        rk__free(m);
        return rc;
    }
    *out = m;
    return RK_OK;
}

void rk_memolock_free(rk_memolock *m)
{
    if (!m)
        return;
    rk_memolock_close(m, NULL);
    rk__subscriber_free(m->sub);
    rk__component_destroy(&m->base);
    rk__map_clear(&m->flights, NULL); /* empty: every call ended before free */
    pthread_mutex_destroy(&m->mu);
    rk__free(m);
}

int rk_memolock_configure(rk_memolock *m, const rk_config *cfg)
{
    if (!m)
        return rk__err(RK_EINVAL, "rk_memolock_configure: memolock is NULL");
    const char *tag = rk_config_get(cfg, "options.resource_tag");
    if (!tag || !*tag)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "option options.resource_tag is required (e.g. \"query\")");
    return rk__component_configure(&m->base, cfg);
}

int rk_memolock_set_references(rk_memolock *m, const rk_references *refs)
{
    if (!m)
        return rk__err(RK_EINVAL, "rk_memolock_set_references: memolock is NULL");
    return rk__component_set_references(&m->base, refs);
}

int rk_memolock_open(rk_memolock *m, const rk_context *ctx)
{
    if (!m)
        return rk__ret(rk__err(RK_EINVAL, "rk_memolock_open: memolock is NULL"), ctx);
    int rc = rk__component_open(&m->base, ctx);
    const rk__settings *s = rc == RK_OK ? rk__component_begin(&m->base) : NULL;
    if (s && !s->opts.resource_tag)
        rc = rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                           "memolock open: options.resource_tag is required");
    if (rc == RK_OK) {
        rk__subscriber_open(m->sub, &s->ep, s->opts.timeout_ms);
        pthread_mutex_lock(&m->mu);
        m->closed = false;
        pthread_mutex_unlock(&m->mu);
    } else if (s) {
        rk__component_close(&m->base);
    }
    return rk__ret(rc, ctx);
}

bool rk_memolock_is_open(const rk_memolock *m) { return m && rk__component_is_open(&m->base); }

int rk_memolock_close(rk_memolock *m, const rk_context *ctx)
{
    if (!m)
        return rk__ret(rk__err(RK_EINVAL, "rk_memolock_close: memolock is NULL"), ctx);
    pthread_mutex_lock(&m->mu);
    m->closed = true;
    for (rk__map_entry *e = rk__map_next(&m->flights, NULL); e; e = rk__map_next(&m->flights, e))
        pthread_cond_broadcast(&((flight *)e->value)->cv);
    pthread_mutex_unlock(&m->mu);
    rk__subscriber_close(m->sub);
    return rk__component_close(&m->base);
}

/* ---- names ---- */

static int names_build(names *n, const rk__settings *s, const char *id)
{
    const char *p = s->opts.prefix ? s->opts.prefix : "", *tag = s->opts.resource_tag;
    size_t base = strlen(p) + strlen(tag) + strlen(id), cap = 3 * base + 32;
    memset(n, 0, sizeof *n);
    n->s = s;
    n->id = id;
    if (!(n->block = rk__malloc(cap)))
        return rk__err(RK_ENOMEM, "memolock '%s': cannot allocate its key names", id);
    char *value = n->block, *lock, *channel;
    n->value_len = (size_t)snprintf(value, cap, "%s%s:%s", p, tag, id);
    lock = value + n->value_len + 1;
    n->lock_len = (size_t)snprintf(lock, cap - n->value_len - 1, "%s%s/lock:%s", p, tag, id);
    channel = lock + n->lock_len + 1;
    n->channel_len = (size_t)snprintf(channel, cap - n->value_len - n->lock_len - 2,
                                      "%s%s/notif:%s", p, tag, id);
    n->value = value, n->lock = lock, n->channel = channel;
    return RK_OK;
}

/* ---- the Redis steps: check, store, release, renew ---- */

typedef struct {
    const names *n;
    const rk__script *script;
    int nkeys, nargs;
    const char *args[6];
    size_t lens[6];
    redisReply *reply;
} script_call;

static int script_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    script_call *sc = arg;
    rk__reply_free(sc->reply);
    sc->reply = NULL;
    int rc = rk__script_run(c, sc->script, sc->nkeys, sc->nargs, sc->args, sc->lens, &sc->reply,
                            deadline);
    if (rc == RK_OK && sc->reply->type == REDIS_REPLY_ERROR) {
        rc = rk__reply_error(sc->reply, sc->script->name);
        rk__reply_free(sc->reply);
        sc->reply = NULL;
    }
    return rc;
}

static int run_script(rk_memolock *m, script_call *sc)
{
    int rc = rk__component_run(&m->base, sc->n->s, script_fn, sc);
    if (rc != RK_OK)
        rk__err_prefix("memolock '%s': ", sc->n->value);
    return rc;
}

static char *ttl_text(char *buf, size_t cap, uint64_t ms)
{
    snprintf(buf, cap, "%" PRIu64, ms);
    return buf;
}

/* One atomic look: the value if it exists, else the lock if it is free. */
static int check(rk_memolock *m, const names *n, const char *token, check_state *state, rk_buf *out)
{
    char ttl[24];
    script_call sc = {
        n,
        &rk__script_memo_check,
        2,
        4,
        {n->value, n->lock, token, ttl_text(ttl, sizeof ttl, n->s->opts.lock_timeout_ms)},
        {n->value_len, n->lock_len, RK__TOKEN_LEN, strlen(ttl)},
        NULL};
    int rc = run_script(m, &sc);
    if (rc != RK_OK)
        return rc;
    redisReply *r = sc.reply;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        (r->element[0]->integer == CHECK_HIT && r->elements < 2))
        rc = rk__err(RK_EREPLY, "memolock '%s': unexpected reply to the check script", n->value);
    else if ((*state = (check_state)r->element[0]->integer) == CHECK_HIT) {
        redisReply *v = r->element[1];
        rk_buf_free(out);
        out->data = v->str, out->len = v->len;
        v->str = NULL;
    }
    rk__reply_free(r);
    return rc;
}

/* Store, publish and release in one script; the value is stored even if the lease was lost. */
static int store(rk_memolock *m, const names *n, const char *token, const rk_buf *v,
                 uint64_t ttl_ms)
{
    char ttl[24] = "";
    if (ttl_ms != RK_TTL_NONE)
        ttl_text(ttl, sizeof ttl, ttl_ms ? ttl_ms : n->s->opts.default_ttl_ms);
    script_call sc = {
        n,
        &rk__script_memo_store,
        2,
        6,
        {n->value, n->lock, v->data ? v->data : "", ttl, n->channel, token},
        {n->value_len, n->lock_len, v->len, strlen(ttl), n->channel_len, RK__TOKEN_LEN},
        NULL};
    int rc = run_script(m, &sc);
    rk__reply_free(sc.reply);
    return rc;
}

static int release(rk_memolock *m, const names *n, const char *token)
{
    script_call sc = {
        n, &rk__script_release, 1, 3, {n->lock, token, ""}, {n->lock_len, RK__TOKEN_LEN, 0}, NULL};
    int rc = run_script(m, &sc);
    rk__reply_free(sc.reply);
    return rc;
}

int rk_memolock_renew(rk_memolock_renewer *r, uint64_t extension_ms)
{
    if (!r)
        return rk__err(RK_EINVAL, "rk_memolock_renew: renewer is NULL");
    if (extension_ms == 0 || extension_ms > INT64_MAX / 2)
        return rk__err(RK_EINVAL, "memolock '%s': renew extension_ms %" PRIu64 " is out of range",
                       r->n->value, extension_ms);
    char ttl[24];
    script_call sc = {r->n,
                      &rk__script_extend,
                      1,
                      3,
                      {r->n->lock, r->token, ttl_text(ttl, sizeof ttl, extension_ms)},
                      {r->n->lock_len, RK__TOKEN_LEN, strlen(ttl)},
                      NULL};
    int rc = run_script(r->m, &sc);
    if (rc == RK_OK && (sc.reply->type != REDIS_REPLY_INTEGER || sc.reply->integer != 1))
        rc = rk__err(RK_ENOTOWNER, "memolock '%s': the lease expired or was taken over",
                     r->n->value);
    rk__reply_free(sc.reply);
    return rc;
}

/* ---- the winner ---- */

/* Call the user's function; returns what it returned (0: value filled, or external started). */
static int call_fetch(rk_memolock *m, const names *n, const fetcher *f, const char *token,
                      rk_buf *value, uint64_t *ttl_ms)
{
    rk_memolock_renewer renewer = {m, n, token};
    if (f->kind == FETCH_PLAIN)
        return f->plain(f->ud, value, ttl_ms);
    if (f->kind == FETCH_RENEWABLE)
        return f->renewable(f->ud, &renewer, value, ttl_ms);
    return f->external(f->ud);
}

/* We hold the lock: compute, then store + publish + unlock. An external fetch only starts. */
static int produce(rk_memolock *m, const names *n, const fetcher *f, const char *token, rk_buf *out)
{
    rk_buf value = RK_BUF_INIT;
    uint64_t ttl_ms = 0;
    int r = call_fetch(m, n, f, token, &value, &ttl_ms);
    if (r != 0) {
        rk_buf_free(&value);
        release(m, n, token); /* let a waiter take over now rather than at lease expiry */
        return rk__err(RK_EFETCH, "memolock '%s': the fetch callback failed (returned %d)",
                       n->value, r);
    }
    if (f->kind == FETCH_EXTERNAL)
        return RK_OK;
    /* The value is good even if Redis fails now: the caller gets it, waiters re-check. */
    store(m, n, token, &value, ttl_ms);
    rk_buf_free(out);
    *out = value;
    return out->data ? RK_OK : rk_buf_set(out, "", 0);
}

/* ---- waiting for someone else's value ---- */

typedef struct {
    char own[RK__TOKEN_LEN + 1]; /* the lock we took for an external producer, or "" */
    bool done;
} wait_state;

static int step(rk_memolock *m, const names *n, const fetcher *f, wait_state *w, rk_buf *out)
{
    char token[RK__TOKEN_LEN + 1];
    check_state state = CHECK_BUSY;
    int rc = rk__token_new(token);
    if (rc == RK_OK)
        rc = check(m, n, token, &state, out);
    if (rc != RK_OK || state == CHECK_BUSY)
        return rc;
    if (state == CHECK_HIT)
        return w->done = true, RK_OK;
    rc = produce(m, n, f, token, out); /* the lock was free: take over */
    if (rc == RK_OK && f->kind == FETCH_EXTERNAL)
        memcpy(w->own, token, sizeof token);
    else
        w->done = true;
    return rc;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static int timed_out(const char *what, uint64_t timeout_ms)
{
    return rk__err(RK_ETIMEDOUT, "memolock '%s': no value within %" PRIu64 " ms", what, timeout_ms);
}

static int await(rk_memolock *m, const names *n, const fetcher *f, uint64_t deadline,
                 uint64_t timeout_ms, wait_state *w, rk_buf *out)
{
    rk__waiter waiter;
    uint64_t retry = n->s->opts.retry_timeout_ms;
    int rc = rk__subscriber_join(m->sub, &waiter, n->channel, n->channel_len, true,
                                 min_u64(deadline, rk__deadline(retry)));
    if (rc != RK_ENOTOPEN)
        rc = RK_OK; /* without a subscription the re-check timer still finds the value */
    while (rc == RK_OK) {
        /* Re-check after joining: a value published before we subscribed is in Redis. */
        if ((rc = step(m, n, f, w, out)) != RK_OK || w->done)
            break;
        if (rk__now_ms() >= deadline) {
            rc = timed_out(n->value, timeout_ms);
            break;
        }
        rk__wake why;
        rc = rk__subscriber_wait(m->sub, &waiter, min_u64(deadline, rk__deadline(retry)), &why,
                                 out); /* a message's payload is the value itself */
        if (rc == RK_OK && why == RK__WAKE_MESSAGE)
            break;
    }
    rk__subscriber_leave(m->sub, &waiter);
    return rc;
}

/* The Redis side of a call: hit, produce, or wait for the producer. */
static int lead(rk_memolock *m, const names *n, const fetcher *f, uint64_t deadline,
                uint64_t timeout_ms, rk_buf *out)
{
    wait_state w = {"", false};
    int rc = step(m, n, f, &w, out);
    if (rc == RK_OK && !w.done)
        rc = await(m, n, f, deadline, timeout_ms, &w, out);
    if (w.own[0])
        release(m, n, w.own); /* our external producer is done with it: no cooldown */
    return rc;
}

/* ---- singleflight ---- */

static void flight_keep_error(flight *fl)
{
    const rk_error *e = rk_last_error();
    snprintf(fl->name, sizeof fl->name, "%s", e->name);
    snprintf(fl->category, sizeof fl->category, "%s", e->category);
    snprintf(fl->message, sizeof fl->message, "%s", e->message);
    fl->has_cause = e->cause != NULL;
    snprintf(fl->cause, sizeof fl->cause, "%s", e->cause ? e->cause : "");
}

static void flight_unref(flight *fl)
{
    if (--fl->refs)
        return;
    pthread_cond_destroy(&fl->cv);
    rk_buf_free(&fl->value);
    rk__free(fl);
}

/* The leader finished: publish its result to the followers. */
static void flight_finish(rk_memolock *m, flight *fl, const char *id, int rc, const rk_buf *v)
{
    pthread_mutex_lock(&m->mu);
    fl->done = true;
    fl->rc = rc;
    if (rc == RK_OK && fl->refs > 1 && rk_buf_set(&fl->value, v->data, v->len) != RK_OK)
        fl->rc = RK_ENOMEM;
    if (fl->rc != RK_OK)
        flight_keep_error(fl);
    rk__map_remove(&m->flights, id, strlen(id));
    pthread_cond_broadcast(&fl->cv);
    flight_unref(fl);
    pthread_mutex_unlock(&m->mu);
}

/* Wait for the leader's result (mutex held). RK_ETIMEDOUT is ours when our deadline passed. */
static int flight_follow(rk_memolock *m, flight *fl, uint64_t deadline, rk_buf *out)
{
    struct timespec ts;
    rk__timespec_at(&ts, deadline);
    while (!fl->done && !m->closed && rk__now_ms() < deadline)
        pthread_cond_timedwait(&fl->cv, &m->mu, &ts);
    if (!fl->done)
        return m->closed ? rk__err(RK_ENOTOPEN, "Connection is not opened (memolock closed)")
                         : RK_ETIMEDOUT;
    if (fl->rc == RK_OK)
        return rk_buf_set(out, fl->value.data, fl->value.len);
    return rk__err_named(fl->rc, fl->name, fl->category, fl->has_cause ? fl->cause : NULL, "%s",
                         fl->message);
}

/* Join the id's flight as a follower (returns its result), or become its leader. */
static int flight_join(rk_memolock *m, const char *id, uint64_t deadline, flight **lead_out,
                       rk_buf *out)
{
    *lead_out = NULL;
    pthread_mutex_lock(&m->mu);
    flight *fl = rk__map_get(&m->flights, id, strlen(id));
    int rc = RK_OK;
    if (fl) {
        fl->refs++;
        rc = flight_follow(m, fl, deadline, out);
        flight_unref(fl);
    } else if (!(fl = rk__calloc(1, sizeof *fl)) ||
               rk__map_put(&m->flights, id, strlen(id), fl, NULL) != RK_OK) {
        rk__free(fl);
        rc = rk__err(RK_ENOMEM, "memolock: cannot register a call for id '%s'", id);
    } else {
        pthread_cond_init(&fl->cv, &mono_attr);
        fl->refs = 1;
        *lead_out = fl;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- entry points ---- */

static int check_args(rk_memolock *m, const char *id, bool have_fn, rk_buf *out)
{
    if (!m)
        return rk__err(RK_EINVAL, "memolock is NULL");
    int rc = rk__check_key(id, "id");
    if (rc == RK_OK && !have_fn)
        rc = rk__err(RK_EINVAL, "memolock get '%s': fetch function is NULL", id);
    if (rc == RK_OK && !out)
        rc = rk__err(RK_EINVAL, "memolock get '%s': out is NULL", id);
    return rc;
}

static int get(rk_memolock *m, const char *id, uint64_t timeout_ms, const fetcher *f, rk_buf *out)
{
    uint64_t deadline = rk__deadline(timeout_ms);
    for (;;) {
        const rk__settings *s = rk__component_begin(&m->base);
        if (!s)
            return RK_ENOTOPEN;
        flight *fl;
        int rc = flight_join(m, id, deadline, &fl, out);
        if (!fl) {
            /* A leader that gave up earlier than us leaves us time to try ourselves. */
            if (rc == RK_ETIMEDOUT && rk__now_ms() < deadline)
                continue;
            return rc == RK_ETIMEDOUT ? timed_out(id, timeout_ms) : rc;
        }
        names n;
        if ((rc = names_build(&n, s, id)) == RK_OK)
            rc = lead(m, &n, f, deadline, timeout_ms, out);
        rk__free(n.block);
        flight_finish(m, fl, id, rc, out);
        return rc;
    }
}

int rk_memolock_get(rk_memolock *m, const rk_context *ctx, const char *id, uint64_t timeout_ms,
                    rk_memolock_fetch_fn fn, void *ud, rk_buf *out)
{
    fetcher f = {FETCH_PLAIN, fn, NULL, NULL, ud};
    int rc = check_args(m, id, fn != NULL, out);
    return rk__ret(rc == RK_OK ? get(m, id, timeout_ms, &f, out) : rc, ctx);
}

int rk_memolock_get_renewable(rk_memolock *m, const rk_context *ctx, const char *id,
                              uint64_t timeout_ms, rk_memolock_renewable_fetch_fn fn, void *ud,
                              rk_buf *out)
{
    fetcher f = {FETCH_RENEWABLE, NULL, fn, NULL, ud};
    int rc = check_args(m, id, fn != NULL, out);
    return rk__ret(rc == RK_OK ? get(m, id, timeout_ms, &f, out) : rc, ctx);
}

int rk_memolock_get_external(rk_memolock *m, const rk_context *ctx, const char *id,
                             uint64_t timeout_ms, rk_memolock_external_fn fn, void *ud, rk_buf *out)
{
    fetcher f = {FETCH_EXTERNAL, NULL, NULL, fn, ud};
    int rc = check_args(m, id, fn != NULL, out);
    return rk__ret(rc == RK_OK ? get(m, id, timeout_ms, &f, out) : rc, ctx);
}
