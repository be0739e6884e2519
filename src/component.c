#include "component.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "config_int.h"
#include "error_int.h"
#include "references_int.h"

int rk__component_init(rk__component *c, const char *kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    atomic_init(&c->active, NULL);
    atomic_init(&c->open, false);
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return rk__err(RK_ENOMEM, "cannot create a mutex");
    int rc = rk__pool_init(&c->pool);
    if (rc != RK_OK)
        pthread_mutex_destroy(&c->mu);
    return rc;
}

void rk__component_destroy(rk__component *c)
{
    rk__component_close(c);
    rk__pool_destroy(&c->pool);
    pthread_mutex_destroy(&c->mu);
    rk_config_free(c->cfg);
    rk_references_free(c->refs);
    for (rk__settings *s = c->all, *next; s; s = next) {
        next = s->older;
        rk__options_clear(&s->opts);
        rk__endpoint_clear(&s->ep);
        rk__free(s);
    }
}

int rk__component_configure(rk__component *c, const rk_config *cfg)
{
    rk__options check;
    rk_config *copy;
    int rc = rk__options_parse(&check, cfg); /* report bad values now, not at open */
    if (rc != RK_OK)
        return rc;
    rk__options_clear(&check);
    if ((rc = rk__config_copy(&copy, cfg)) != RK_OK)
        return rc;
    pthread_mutex_lock(&c->mu);
    rk_config_free(c->cfg);
    c->cfg = copy;
    pthread_mutex_unlock(&c->mu);
    return RK_OK;
}

int rk__component_set_references(rk__component *c, const rk_references *refs)
{
    rk_references *copy;
    int rc = rk__references_copy(&copy, refs);
    if (rc != RK_OK)
        return rc;
    pthread_mutex_lock(&c->mu);
    rk_references_free(c->refs);
    c->refs = copy;
    pthread_mutex_unlock(&c->mu);
    return RK_OK;
}

static int ping(rk__conn *conn, void *arg, uint64_t deadline)
{
    (void)arg;
    const char *argv[1] = {"PING"};
    size_t len[1] = {4};
    redisReply *r;
    int rc = rk__conn_exec(conn, &(rk__cmd){1, argv, len}, 1, &r, deadline);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_STATUS, "PING");
        rk__reply_free(r);
    }
    return rc;
}

/* A restarted server answers -LOADING until its data set is in memory. The command did not run,
 * so it is retried, like a lost connection, until the operation's deadline. */
static bool loading(int rc) { return rc == RK_EREPLY && !strcmp(rk_last_error()->name, "LOADING"); }

static int run(rk__pool *p, uint64_t deadline, rk__conn_fn fn, void *arg)
{
    int rc;
    for (uint64_t ms = 10; loading(rc = rk__pool_run(p, deadline, fn, arg));
         ms += ms < 100 ? 10 : 0) {
        uint64_t left = rk__remaining_ms(deadline);
        struct timespec ts = {0, (long)(ms < left ? ms : left) * 1000000L};
        if (left == 0)
            break;
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return rc;
}

/* Resolve the settings for this open. They join the component's list even on failure. */
static int make_settings(rk__component *c, const rk_context *ctx, rk__settings **out)
{
    rk__settings *s = rk__calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return rk__err(RK_ENOMEM, "cannot allocate settings");
    s->older = c->all;
    c->all = s;
    int rc = rk__options_parse(&s->opts, c->cfg);
    if (rc == RK_OK)
        rc = rk__resolve_endpoint(&s->ep, c->cfg, c->refs, &s->opts, ctx);
    *out = s;
    return rc;
}

int rk__component_open(rk__component *c, const rk_context *ctx)
{
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->open)) {
        pthread_mutex_unlock(&c->mu);
        return RK_OK;
    }
    rk__settings *s = NULL;
    int rc = make_settings(c, ctx, &s);
    if (rc == RK_OK) {
        rk__pool_open(&c->pool, &s->ep, s->opts.max_connections, s->opts.retries);
        rc = run(&c->pool, rk__deadline(s->opts.timeout_ms), ping, NULL);
        if (rc != RK_OK)
            rk__pool_close(&c->pool);
    }
    if (rc == RK_OK) {
        atomic_store(&c->active, s);
        atomic_store(&c->open, true);
    } else {
        rk__err_prefix("%s open: ", c->kind);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int rk__component_close(rk__component *c)
{
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->open, false);
    rk__pool_close(&c->pool);
    pthread_mutex_unlock(&c->mu);
    return RK_OK;
}

bool rk__component_is_open(const rk__component *c) { return atomic_load(&c->open); }

const rk__settings *rk__component_begin(rk__component *c)
{
    rk__settings *s = atomic_load(&c->active);
    if (!s || !atomic_load(&c->open)) {
        rk__err(RK_ENOTOPEN, "Connection is not opened (%s)", c->kind);
        return NULL;
    }
    return s;
}

int rk__component_run(rk__component *c, const rk__settings *s, rk__conn_fn fn, void *arg)
{
    return run(&c->pool, rk__deadline(s->opts.timeout_ms), fn, arg);
}

typedef struct {
    const rk__cmd *cmds;
    size_t n;
    redisReply **replies;
} exec_arg;

static int exec_fn(rk__conn *conn, void *arg, uint64_t deadline)
{
    exec_arg *a = arg;
    int rc = rk__conn_exec(conn, a->cmds, a->n, a->replies, deadline);
    for (size_t i = 0; rc == RK_OK && i < a->n; i++) /* run() retries these */
        if (a->replies[i]->type == REDIS_REPLY_ERROR && !strncmp(a->replies[i]->str, "LOADING", 7))
            rc = rk__reply_error(a->replies[i], "command");
    for (size_t i = 0; rc != RK_OK && i < a->n; i++) {
        rk__reply_free(a->replies[i]);
        a->replies[i] = NULL;
    }
    return rc;
}

int rk__component_exec(rk__component *c, const rk__settings *s, const rk__cmd *cmds, size_t n,
                       redisReply **replies)
{
    exec_arg a = {cmds, n, replies};
    return rk__component_run(c, s, exec_fn, &a);
}

int rk__check_key(const char *key, const char *what)
{
    if (!key)
        return rk__err(RK_EINVAL, "%s is NULL", what);
    if (!*key)
        return rk__err(RK_EINVAL, "%s is empty", what);
    return RK_OK;
}

int rk__prefixed_key(const rk__settings *s, const char *key, char *buf, size_t cap,
                     const char **out, size_t *len, char **heap)
{
    size_t klen = strlen(key), plen = s->opts.prefix_len;
    *heap = NULL;
    *len = plen + klen;
    if (!plen) {
        *out = key;
        return RK_OK;
    }
    char *dst = buf;
    if (*len >= cap && !(dst = *heap = rk__malloc(*len + 1)))
        return rk__err(RK_ENOMEM, "cannot allocate a key of %zu bytes", *len);
    memcpy(dst, s->opts.prefix, plen);
    memcpy(dst + plen, key, klen + 1);
    *out = dst;
    return RK_OK;
}
