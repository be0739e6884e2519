#include "redkit/memolock.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "component.h"
#include "error_int.h"
#include "events.h"
#include "keys.h"
#include "map.h"
#include "scripts.h"
#include "slot.h"
#include "token.h"
#include "wait.h"

struct rk_memolock {
    rk__component base; /* first: the component's hooks get it back as an rk_memolock */
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
    rk__err_saved err;
} flight;

typedef enum { FETCH_PLAIN, FETCH_RENEWABLE, FETCH_EXTERNAL } fetch_kind;

typedef struct fetcher {
    fetch_kind kind;
    rk_memolock_fetch_fn plain;
    rk_memolock_renewable_fetch_fn renewable;
    rk_memolock_external_fn external;
    rk_memolock_external2_fn external2; /* FETCH_EXTERNAL told the names; else `external` */
    void *ud;
} fetcher;

/* One call's view: its client and deadline, and the wire names of its id. */
typedef struct names {
    rk__client *cl;
    uint64_t deadline;
    const char *id;
    rk__name value, lock, channel;
    bool apart; /* in a cluster, the value and the lock hash to different slots */
} names;

struct rk_memolock_renewer {
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

static int validate(const rk__options *o)
{
    if (o->resource_tag)
        return RK_OK;
    return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                         "options.resource_tag is required");
}

/* Calls in flight were the parent's threads': a child joining one would wait for nobody. */
static void after_fork(rk__component *c)
{
    rk_memolock *m = (rk_memolock *)c;
    pthread_mutex_init(&m->mu, NULL);
    rk__map_clear(&m->flights, rk__free);
}

int rk_memolock_new(rk_memolock **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_memolock_new: out is NULL");
    pthread_once(&attr_once, init_attr);
    *out = NULL;
    rk_memolock *m = rk__calloc(1, sizeof *m);
    if (!m)
        return rk__err(RK_ENOMEM, "cannot allocate a memolock");
    int rc = rk__component_init(&m->base, "memolock", true);
    if (rc == RK_OK && pthread_mutex_init(&m->mu, NULL) != 0) {
        rk__component_destroy(&m->base);
        rc = rk__err(RK_ENOMEM, "cannot create a mutex");
    }
    if (rc != RK_OK) {
        rk__free(m);
        return rc;
    }
    m->base.validate = validate;
    m->base.after_fork = after_fork;
    *out = m;
    return RK_OK;
}

int rk_memolock_get_stats(rk_memolock *m, rk_stats *out)
{
    if (!m)
        return rk__err(RK_EINVAL, "rk_memolock_get_stats: memolock is NULL");
    return rk__component_stats(&m->base, out);
}

void rk_memolock_free(rk_memolock *m)
{
    if (!m)
        return;
    rk_memolock_close(m, NULL);
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
    if (rc == RK_OK) {
        pthread_mutex_lock(&m->mu);
        m->closed = false;
        pthread_mutex_unlock(&m->mu);
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
    return rk__component_close(&m->base);
}

/* ---- names ---- */

static int names_build(names *n, rk__client *cl, uint64_t deadline, const char *id)
{
    const rk__options *o = &cl->opts;
    *n = (names){cl, deadline, id, RK__NAME_INIT, RK__NAME_INIT, RK__NAME_INIT, false};
    int rc = rk__name_memo_value(&n->value, o, id);
    if (rc == RK_OK)
        rc = rk__name_memo_lock(&n->lock, o, id);
    if (rc == RK_OK)
        rc = rk__name_memo_channel(&n->channel, o, id);
    n->apart = rc == RK_OK && cl->cluster &&
               rk__slot(n->value.str, n->value.len) != rk__slot(n->lock.str, n->lock.len);
    return rc == RK_OK ? RK_OK : rk__err_prefix("memolock '%s': ", id);
}

static void names_free(names *n)
{
    rk__name_free(&n->value);
    rk__name_free(&n->lock);
    rk__name_free(&n->channel);
}

static void memo_event(const names *n, rk_event_type type, uint64_t since_us, int outcome)
{
    rk__emit(n->cl->stats, &(rk__event){type, n->id, strlen(n->id), NULL, NULL,
                                        since_us ? rk__now_us() - since_us : 0, outcome});
}

/* ---- the Redis steps: check, store, release, renew ---- */

/* Run a script routed by its first key. */
static int run_script(const names *n, const rk__script *sc, uint64_t deadline, int nkeys, int nargs,
                      const char *const *args, const size_t *lens, redisReply **reply)
{
    int rc =
        rk__client_eval(n->cl, args[0], lens[0], deadline, sc, nkeys, nargs, args, lens, reply);
    if (rc != RK_OK)
        rk__err_prefix("memolock '%s': ", n->value.str);
    return rc;
}

/* One command on one key (argv[1]) whose reply the caller reads. */
static int run_cmd(const names *n, uint64_t deadline, int argc, const char **argv,
                   const size_t *lens, redisReply **reply)
{
    rk__cmd cmd = {argc, argv, lens};
    int rc = rk__client_exec(n->cl, argv[1], lens[1], deadline, &cmd, 1, reply);
    if (rc == RK_OK && (*reply)->type == REDIS_REPLY_ERROR) {
        rc = rk__reply_error(*reply, argv[0]);
        rk__reply_free(*reply);
        *reply = NULL;
    }
    if (rc != RK_OK)
        rk__err_prefix("memolock '%s': ", n->value.str);
    return rc;
}

static char *ttl_text(char *buf, size_t cap, uint64_t ms)
{
    snprintf(buf, cap, "%" PRIu64, ms);
    return buf;
}

static int check_apart(const names *n, const char *token, const char *ttl, check_state *state,
                       rk_buf *out);

/* One atomic look: the value if it exists, else the lock if it is free and `may_take`. */
static int check(const names *n, const char *token, bool may_take, check_state *state, rk_buf *out)
{
    char ttl[24] = "0"; /* 0: look for the value only */
    if (may_take)
        ttl_text(ttl, sizeof ttl, n->cl->opts.lock_timeout_ms);
    if (n->apart)
        return check_apart(n, token, ttl, state, out);
    const char *args[4] = {n->value.str, n->lock.str, token, ttl};
    size_t lens[4] = {n->value.len, n->lock.len, RK__TOKEN_LEN, strlen(ttl)};
    redisReply *r;
    int rc = run_script(n, &rk__script_memo_check, n->deadline, 2, 4, args, lens, &r);
    if (rc != RK_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        (r->element[0]->integer == CHECK_HIT && r->elements < 2))
        rc =
            rk__err(RK_EREPLY, "memolock '%s': unexpected reply to the check script", n->value.str);
    else if ((*state = (check_state)r->element[0]->integer) == CHECK_HIT) {
        redisReply *v = r->element[1];
        rk_buf_free(out);
        out->data = v->str, out->len = v->len;
        v->str = NULL;
    }
    rk__reply_free(r);
    return rc;
}

/* A step that must run even when the call's deadline passed (the fetch may have taken it):
 * storing a computed value, releasing our lock. It gets a whole operation's time. */
static uint64_t late_deadline(const names *n) { return rk__client_deadline(n->cl, RK__NO_TIMEOUT); }

static int store_apart(const names *n, const char *token, const rk_buf *v, const char *ttl);

/* Store, publish and release in one script; the value is stored even if the lease was lost. */
static int store(const names *n, const char *token, const rk_buf *v, uint64_t ttl_ms)
{
    char ttl[24] = "";
    if (ttl_ms != RK_TTL_NONE)
        ttl_text(ttl, sizeof ttl, ttl_ms ? ttl_ms : n->cl->opts.default_ttl_ms);
    if (n->apart)
        return store_apart(n, token, v, ttl);
    const char *args[6] = {n->value.str, n->lock.str,    v->data ? v->data : "",
                           ttl,          n->channel.str, token};
    size_t lens[6] = {n->value.len, n->lock.len,    v->len,
                      strlen(ttl),  n->channel.len, RK__TOKEN_LEN};
    redisReply *r = NULL;
    int rc = run_script(n, &rk__script_memo_store, late_deadline(n), 2, 6, args, lens, &r);
    rk__reply_free(r);
    return rc;
}

static int release(const names *n, const char *token)
{
    const char *args[3] = {n->lock.str, token, ""};
    size_t lens[3] = {n->lock.len, RK__TOKEN_LEN, 0};
    redisReply *r = NULL;
    int rc = run_script(n, &rk__script_release, late_deadline(n), 1, 3, args, lens, &r);
    rk__reply_free(r);
    return rc;
}

/* ---- the same steps when the value and the lock live on different cluster nodes ----
 * No script can touch both, so each step is a single-key command. What the script made atomic
 * can now interleave, and at worst costs a second fetch, never a wrong value: a value is only
 * ever stored by a caller that computed it, and a caller only computes after finding no value
 * twice, before and after its lock was taken. */

static int get_value(const names *n, bool *found, rk_buf *out)
{
    const char *argv[2] = {"GET", n->value.str};
    redisReply *r;
    int rc = run_cmd(n, n->deadline, 2, argv, (size_t[]){3, n->value.len}, &r);
    *found = rc == RK_OK && r->type == REDIS_REPLY_STRING;
    if (*found) {
        rk_buf_free(out);
        out->data = r->str, out->len = r->len;
        r->str = NULL;
    }
    rk__reply_free(r);
    return rc;
}

/* SET NX; a nil may be our own SET re-run after a lost reply, so the token decides. */
static int take_lock(const names *n, const char *token, const char *ttl, bool *won)
{
    const char *set[6] = {"SET", n->lock.str, token, "NX", "PX", ttl};
    const char *get[2] = {"GET", n->lock.str};
    redisReply *r;
    int rc = run_cmd(n, n->deadline, 6, set,
                     (size_t[]){3, n->lock.len, RK__TOKEN_LEN, 2, 2, strlen(ttl)}, &r);
    *won = rc == RK_OK && r->type == REDIS_REPLY_STATUS;
    rk__reply_free(r);
    if (rc != RK_OK || *won)
        return rc;
    if ((rc = run_cmd(n, n->deadline, 2, get, (size_t[]){3, n->lock.len}, &r)) == RK_OK)
        *won = r->type == REDIS_REPLY_STRING && r->len == RK__TOKEN_LEN &&
               !memcmp(r->str, token, RK__TOKEN_LEN);
    rk__reply_free(r);
    return rc;
}

static int check_apart(const names *n, const char *token, const char *ttl, check_state *state,
                       rk_buf *out)
{
    bool found, won = false;
    *state = CHECK_BUSY;
    int rc = get_value(n, &found, out);
    if (rc == RK_OK && !found && strcmp(ttl, "0"))
        rc = take_lock(n, token, ttl, &won);
    /* A value stored between our look and our SET: its producer had just released the lock. */
    if (rc == RK_OK && won && (rc = get_value(n, &found, out)) == RK_OK && found)
        release(n, token);
    if (rc == RK_OK)
        *state = found ? CHECK_HIT : won ? CHECK_WON : CHECK_BUSY;
    return rc;
}

/* Store, then publish (classic Pub/Sub reaches every node), then release. */
static int store_apart(const names *n, const char *token, const rk_buf *v, const char *ttl)
{
    const char *set[5] = {"SET", n->value.str, v->data ? v->data : "", "PX", ttl};
    const char *pub[3] = {"PUBLISH", n->channel.str, v->data ? v->data : ""};
    redisReply *r = NULL;
    int rc = run_cmd(n, late_deadline(n), *ttl ? 5 : 3, set,
                     (size_t[]){3, n->value.len, v->len, 2, strlen(ttl)}, &r);
    rk__reply_free(r);
    if (rc == RK_OK) {
        r = NULL;
        rc = run_cmd(n, late_deadline(n), 3, pub, (size_t[]){7, n->channel.len, v->len}, &r);
        rk__reply_free(r);
    }
    int released = release(n, token);
    return rc == RK_OK ? released : rc;
}

int rk_memolock_renew(rk_memolock_renewer *r, uint64_t extension_ms)
{
    if (!r)
        return rk__err(RK_EINVAL, "rk_memolock_renew: renewer is NULL");
    if (extension_ms == 0 || extension_ms > INT64_MAX / 2)
        return rk__err(RK_EINVAL, "memolock '%s': renew extension_ms %" PRIu64 " is out of range",
                       r->n->value.str, extension_ms);
    char ttl[24];
    const char *args[3] = {r->n->lock.str, r->token, ttl_text(ttl, sizeof ttl, extension_ms)};
    size_t lens[3] = {r->n->lock.len, RK__TOKEN_LEN, strlen(ttl)};
    redisReply *reply = NULL;
    int rc = run_script(r->n, &rk__script_extend, late_deadline(r->n), 1, 3, args, lens, &reply);
    if (rc == RK_OK && (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1))
        rc = rk__err(RK_ENOTOWNER, "memolock '%s': the lease expired or was taken over",
                     r->n->value.str);
    rk__reply_free(reply);
    return rc;
}

/* ---- the winner ---- */

/* Call the user's function; returns what it returned (0: value filled, or external started). */
static int call_fetch(const names *n, const fetcher *f, const char *token, rk_buf *value,
                      uint64_t *ttl_ms)
{
    rk_memolock_renewer renewer = {n, token};
    if (f->kind == FETCH_PLAIN)
        return f->plain(f->ud, value, ttl_ms);
    if (f->kind == FETCH_RENEWABLE)
        return f->renewable(f->ud, &renewer, value, ttl_ms);
    if (f->external2)
        return f->external2(f->ud, n->value.str, n->channel.str);
    return f->external(f->ud);
}

/* We hold the lock: compute, then store + publish + unlock. An external fetch only starts. */
static int produce(const names *n, const fetcher *f, const char *token, rk_buf *out)
{
    rk_buf value = RK_BUF_INIT;
    uint64_t ttl_ms = 0, t0 = rk__now_us();
    memo_event(n, RK_EVENT_MEMO_FETCH_START, 0, RK_OK);
    int r = call_fetch(n, f, token, &value, &ttl_ms);
    memo_event(n, r ? RK_EVENT_MEMO_FETCH_FAILED : RK_EVENT_MEMO_FETCH_DONE, t0,
               r ? RK_EFETCH : RK_OK);
    if (r != 0) {
        rk_buf_free(&value);
        release(n, token); /* let a waiter take over now rather than at lease expiry */
        return rk__err(RK_EFETCH, "memolock '%s': the fetch callback failed (returned %d)",
                       n->value.str, r);
    }
    if (f->kind == FETCH_EXTERNAL)
        return RK_OK;
    /* The value is good even if Redis fails now: the caller gets it, waiters re-check. */
    store(n, token, &value, ttl_ms);
    rk_buf_free(out);
    *out = value;
    return out->data ? RK_OK : rk_buf_set(out, "", 0);
}

/* ---- waiting for someone else's value ---- */

typedef struct {
    const names *n;
    const fetcher *f;
    uint64_t timeout_ms;
    rk_buf *out;
    char own[RK__TOKEN_LEN + 1]; /* the lock we took for an external producer, or "" */
    bool done;
    bool produced;  /* this call ran the fetch */
    uint64_t t0_us; /* when the call began waiting */
} wait_state;

/* Look at Redis: a hit ends the call; a free lock makes us the producer when `may_take`. */
static int step(wait_state *w, bool may_take)
{
    char token[RK__TOKEN_LEN + 1];
    check_state state = CHECK_BUSY;
    int rc = rk__token_new(token);
    if (rc == RK_OK)
        rc = check(w->n, token, may_take, &state, w->out);
    if (rc != RK_OK || state == CHECK_BUSY)
        return rc;
    if (state == CHECK_HIT)
        return w->done = true, RK_OK;
    w->produced = true;
    rc = produce(w->n, w->f, token, w->out);
    if (rc == RK_OK && w->f->kind == FETCH_EXTERNAL)
        memcpy(w->own, token, sizeof token);
    else
        w->done = true;
    return rc;
}

/* A waiter takes over a vanished winner's work only when its deadline leaves a whole lease
 * (options.lock_timeout) for the fetch, which is what a fetch is expected to fit in; with less
 * time it returns RK_ETIMEDOUT at its deadline and leaves the lock to the next caller, rather
 * than start a fetch it cannot finish in time. */
static int waiting_check(void *arg, bool *done)
{
    wait_state *w = arg;
    bool may_take = rk__remaining_ms(w->n->deadline) >= w->n->cl->opts.lock_timeout_ms;
    /* Once our external producer started, its lease expiring means only that it is slow:
     * taking the lock again would start a second producer in this call. */
    int rc = step(w, may_take && !w->own[0]);
    if (w->done)
        memo_event(w->n, w->produced ? RK_EVENT_MEMO_TAKEOVER : RK_EVENT_MEMO_SERVED, w->t0_us, rc);
    *done = w->done;
    return rc;
}

static rk__seen waiting_message(void *arg, rk_buf *msg)
{
    wait_state *w = arg; /* the payload is the value itself */
    rk_buf_free(w->out);
    *w->out = *msg;
    *msg = (rk_buf)RK_BUF_INIT;
    if (!w->out->data && rk_buf_set(w->out, "", 0) != RK_OK)
        return RK__SEEN_RECHECK;
    w->done = true;
    memo_event(w->n, RK_EVENT_MEMO_SERVED, w->t0_us, RK_OK);
    return RK__SEEN_DONE;
}

static int timed_out(const char *what, uint64_t timeout_ms)
{
    return rk__err(RK_ETIMEDOUT, "memolock '%s': no value within %" PRIu64 " ms", what, timeout_ms);
}

static int waiting_expired(void *arg)
{
    wait_state *w = arg;
    return timed_out(w->n->value.str, w->timeout_ms);
}

static const rk__wait_ops waiting_ops = {waiting_check, waiting_message, waiting_expired, NULL};

/* The Redis side of a call: hit, produce, or wait for the producer. */
static int lead(const names *n, const fetcher *f, uint64_t timeout_ms, rk_buf *out)
{
    wait_state w = {n, f, timeout_ms, out, "", false, false, 0};
    int rc = step(&w, true); /* the first look may always produce */
    w.t0_us = rk__now_us();
    if (rc == RK_OK && !w.done)
        rc = timeout_ms ? rk__wait(n->cl, &n->channel, false, NULL, n->deadline, &waiting_ops, &w)
                        : timed_out(n->value.str, timeout_ms);
    if (w.own[0])
        release(n, w.own); /* our external producer is done with it: no cooldown */
    return rc;
}

/* ---- singleflight ---- */

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
        rk__err_save(&fl->err);
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
    return rk__err_restore(&fl->err);
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
    uint64_t t0 = rk__now_us();
    rk__client *cl = rk__component_begin(&m->base);
    if (!cl)
        return rk__stats_call(&m->base.stats, RK__OP_GET, t0, RK_ENOTOPEN);
    /* A call that does not wait (timeout 0) still gets an operation's time for its one look. */
    uint64_t deadline = rk__client_deadline(cl, timeout_ms ? timeout_ms : RK__NO_TIMEOUT);
    int rc;
    for (;;) {
        flight *fl;
        rc = flight_join(m, id, deadline, &fl, out);
        if (!fl) {
            /* A leader that gave up earlier than us leaves us time to try ourselves. */
            if (rc == RK_ETIMEDOUT && rk__now_ms() < deadline)
                continue;
            rc = rc == RK_ETIMEDOUT ? timed_out(id, timeout_ms) : rc;
            break;
        }
        names n;
        if ((rc = names_build(&n, cl, deadline, id)) == RK_OK)
            rc = lead(&n, f, timeout_ms, out);
        names_free(&n);
        flight_finish(m, fl, id, rc, out);
        break;
    }
    if (rc == RK_ETIMEDOUT)
        rk__emit(&m->base.stats, &(rk__event){RK_EVENT_MEMO_TIMEOUT, id, strlen(id), NULL, NULL,
                                              rk__now_us() - t0, rc});
    rk__component_end(cl);
    return rk__stats_call(&m->base.stats, RK__OP_GET, t0, rc);
}

int rk_memolock_get(rk_memolock *m, const rk_context *ctx, const char *id, uint64_t timeout_ms,
                    rk_memolock_fetch_fn fn, void *ud, rk_buf *out)
{
    fetcher f = {FETCH_PLAIN, fn, NULL, NULL, NULL, ud};
    int rc = check_args(m, id, fn != NULL, out);
    return rk__ret(rc == RK_OK ? get(m, id, timeout_ms, &f, out) : rc, ctx);
}

int rk_memolock_get_renewable(rk_memolock *m, const rk_context *ctx, const char *id,
                              uint64_t timeout_ms, rk_memolock_renewable_fetch_fn fn, void *ud,
                              rk_buf *out)
{
    fetcher f = {FETCH_RENEWABLE, NULL, fn, NULL, NULL, ud};
    int rc = check_args(m, id, fn != NULL, out);
    return rk__ret(rc == RK_OK ? get(m, id, timeout_ms, &f, out) : rc, ctx);
}

int rk_memolock_get_external(rk_memolock *m, const rk_context *ctx, const char *id,
                             uint64_t timeout_ms, rk_memolock_external_fn fn, void *ud, rk_buf *out)
{
    fetcher f = {FETCH_EXTERNAL, NULL, NULL, fn, NULL, ud};
    int rc = check_args(m, id, fn != NULL, out);
    return rk__ret(rc == RK_OK ? get(m, id, timeout_ms, &f, out) : rc, ctx);
}

int rk_memolock_get_external2(rk_memolock *m, const rk_context *ctx, const char *id,
                              uint64_t timeout_ms, rk_memolock_external2_fn fn, void *ud,
                              rk_buf *out)
{
    fetcher f = {FETCH_EXTERNAL, NULL, NULL, NULL, fn, ud};
    int rc = check_args(m, id, fn != NULL, out);
    return rk__ret(rc == RK_OK ? get(m, id, timeout_ms, &f, out) : rc, ctx);
}
