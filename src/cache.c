#include "redkit/cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "cache_int.h"
#include "clock.h"
#include "component.h"
#include "error_int.h"
#include "events.h"
#include "keys.h"
#include "nearcache.h"

struct rk_cache {
    rk__component base;
};

/* The near cache lives and dies with its open's client. */
static const rk__client_ext_ops near_ops = {NULL, rk__nearcache_after_fork, rk__nearcache_free};

/* The near cache of an open, when options.near_cache_size turned it on. */
static rk__nearcache *near(const rk__client *cl)
{
    return cl->ext_ops == &near_ops ? cl->ext : NULL;
}

/* Each open gets its own near cache, tied to its client's connections (nearcache.h). */
static int prepare(rk__component *base, rk__client *cl)
{
    rk__nearcache *nc;
    (void)base;
    if (!cl->opts.near_cache_size)
        return RK_OK;
    int rc = rk__nearcache_new(&nc, &cl->opts, cl->stats);
    if (rc == RK_OK) {
        rk__nearcache_hook(nc, &cl->hook);
        cl->ext = nc;
        cl->ext_ops = &near_ops;
    }
    return rc;
}

int rk_cache_new(rk_cache **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_cache_new: out is NULL");
    rk_cache *c = rk__malloc(sizeof *c);
    if (!c)
        return *out = NULL, rk__err(RK_ENOMEM, "cannot allocate a cache");
    int rc = rk__component_init(&c->base, "cache", false);
    c->base.prepare = prepare;
    if (rc != RK_OK) {
        rk__free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

int rk_cache_get_stats(rk_cache *c, rk_stats *out)
{
    if (!c)
        return rk__err(RK_EINVAL, "rk_cache_get_stats: cache is NULL");
    return rk__component_stats(&c->base, out);
}

void rk_cache_free(rk_cache *c)
{
    if (!c)
        return;
    rk__component_destroy(&c->base);
    rk__free(c);
}

int rk_cache_configure(rk_cache *c, const rk_config *cfg)
{
    if (!c)
        return rk__err(RK_EINVAL, "rk_cache_configure: cache is NULL");
    return rk__component_configure(&c->base, cfg);
}

int rk_cache_set_references(rk_cache *c, const rk_references *refs)
{
    if (!c)
        return rk__err(RK_EINVAL, "rk_cache_set_references: cache is NULL");
    return rk__component_set_references(&c->base, refs);
}

int rk_cache_open(rk_cache *c, const rk_context *ctx)
{
    if (!c)
        return rk__ret(rk__err(RK_EINVAL, "rk_cache_open: cache is NULL"), ctx);
    return rk__ret(rk__component_open(&c->base, ctx), ctx);
}

bool rk_cache_is_open(const rk_cache *c) { return c && rk__component_is_open(&c->base); }

int rk_cache_close(rk_cache *c, const rk_context *ctx)
{
    if (!c)
        return rk__ret(rk__err(RK_EINVAL, "rk_cache_close: cache is NULL"), ctx);
    return rk__component_close(&c->base);
}

/* A public call of `op`, begun at `t0_us`, returned `rc`: counted in the handle's statistics. */
static int counted(rk_cache *c, rk__op op, uint64_t t0_us, int rc)
{
    return c ? rk__stats_call(&c->base.stats, op, t0_us, rc) : rc;
}

/* Common entry checks; `*cl` is the client to run with, referenced until end(). */
static int begin(rk_cache *c, rk__client **cl)
{
    *cl = NULL;
    if (!c)
        return rk__err(RK_EINVAL, "cache is NULL");
    return (*cl = rk__component_begin(&c->base)) ? RK_OK : RK_ENOTOPEN;
}

static int begin_key(rk_cache *c, const char *key, rk__client **cl)
{
    *cl = NULL;
    int rc = c ? rk__check_key(key, "key") : RK_OK;
    return rc == RK_OK ? begin(c, cl) : rc;
}

/* Give the client back and pass `rc` through. */
static int end(rk__client *cl, int rc)
{
    rk__component_end(cl);
    return rc;
}

/* "PX <ms>" arguments for a TTL; returns how many (0 for no expiry). */
static int ttl_args(const rk__client *cl, uint64_t ttl_ms, char *buf, size_t cap, const char **argv,
                    size_t *argvlen)
{
    if (ttl_ms == RK_TTL_NONE)
        return 0;
    argv[0] = "PX", argvlen[0] = 2;
    argv[1] = buf;
    argvlen[1] = (size_t)snprintf(buf, cap, "%" PRIu64, ttl_ms ? ttl_ms : cl->opts.default_ttl_ms);
    return 2;
}

/* One command routed by its first key (argv[1]). */
static int one(rk__client *cl, int argc, const char **argv, const size_t *argvlen,
               redisReply **reply)
{
    rk__cmd cmd = {argc, argv, argvlen};
    return rk__client_exec(cl, argv[1], argvlen[1], rk__client_deadline(cl, RK__NO_TIMEOUT), &cmd,
                           1, reply);
}

/* "<verb> <prefix><key>" in one round trip (GET, PTTL). */
static int key_cmd(rk__client *cl, const char *verb, const char *key, redisReply **reply)
{
    rk__name k;
    const char *argv[2] = {verb};
    size_t argvlen[2] = {strlen(verb)};
    int rc = rk__name_key(&k, &cl->opts, key);
    if (rc == RK_OK) {
        argv[1] = k.str, argvlen[1] = k.len;
        rc = rk__client_exec_read(cl, k.str, k.len, rk__client_deadline(cl, RK__NO_TIMEOUT),
                                  &(rk__cmd){2, argv, argvlen}, 1, reply);
    }
    rk__name_free(&k);
    return rc;
}

/* Redis refuses an expiry past LLONG_MAX ms from now with a bare "invalid expire time"; the
 * lock's bound (2^62 - 1 ms) turns that into RK_EINVAL naming the argument. */
#define MAX_TTL_MS ((uint64_t)INT64_MAX / 2)

static int check_ttl(uint64_t ttl_ms)
{
    if (ttl_ms == RK_TTL_NONE || ttl_ms <= MAX_TTL_MS)
        return RK_OK;
    return rk__err(RK_EINVAL,
                   "ttl_ms %" PRIu64 " is too large (at most %" PRIu64 ", or RK_TTL_NONE)", ttl_ms,
                   MAX_TTL_MS);
}

static int store_with(rk__client *cl, const char *key, const void *value, size_t len,
                      uint64_t ttl_ms)
{
    char ttl[24];
    rk__name k;
    const char *argv[5] = {"SET"};
    size_t argvlen[5] = {3};
    int rc = rk__name_key(&k, &cl->opts, key);
    if (rc != RK_OK)
        return rc;
    argv[1] = k.str, argvlen[1] = k.len;
    argv[2] = value ? value : "", argvlen[2] = len;
    int argc = 3 + ttl_args(cl, ttl_ms, ttl, sizeof ttl, &argv[3], &argvlen[3]);
    redisReply *r;
    if ((rc = one(cl, argc, argv, argvlen, &r)) == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_STATUS, "SET");
        rk__reply_free(r);
    }
    if (near(cl)) /* after the reply, even a failed one: the write may have happened */
        rk__nearcache_drop(near(cl), k.str, k.len);
    rk__name_free(&k);
    return rc == RK_OK ? RK_OK : rk__err_prefix("store '%s': ", key);
}

static int store(rk_cache *c, const char *key, const void *value, size_t len, uint64_t ttl_ms)
{
    rk__client *cl;
    int rc = begin_key(c, key, &cl);
    if (rc == RK_OK && !value && len)
        rc = rk__err(RK_EINVAL, "store '%s': value is NULL but len is %zu", key, len);
    if (rc == RK_OK && check_ttl(ttl_ms) != RK_OK)
        rc = rk__err_prefix("store '%s': ", key);
    if (rc == RK_OK)
        rc = store_with(cl, key, value, len, ttl_ms);
    return end(cl, rc);
}

int rk_cache_store(rk_cache *c, const rk_context *ctx, const char *key, const void *value,
                   size_t len, uint64_t ttl_ms)
{
    uint64_t t0 = rk__now_us();
    return rk__ret(counted(c, RK__OP_STORE, t0, store(c, key, value, len, ttl_ms)), ctx);
}

/* A GET reply into `*out` (freed). */
static int take_get(redisReply *r, const char *key, rk_buf *out)
{
    if (r->type == REDIS_REPLY_NIL) {
        rk__reply_free(r);
        return rk__err(RK_ENOTFOUND, "retrieve '%s': key not found", key);
    }
    if (rk__reply_expect(r, REDIS_REPLY_STRING, "GET") != RK_OK) {
        rk__reply_free(r);
        return rk__err_prefix("retrieve '%s': ", key);
    }
    rk_buf_free(out);
    out->data = rk__reply_take_str(r, &out->len);
    return RK_OK;
}

/* A near-cache miss on one connection: GET and PTTL in one write (after CLIENT TRACKING when
 * the connection is not yet pointed at its node's listener), the key marked pending before. */
typedef struct {
    rk__nearcache *nc;
    const char *key;
    size_t klen;
    redisReply *get; /* the caller's */
} miss_arg;

/* The class of a key's reply the retry loop must act on (a redirect): the attempt fails. */
static int act_on(rk__conn *c, redisReply *r)
{
    rk__reply_class cls = rk__reply_classify(r);
    if (rk__class_action(cls) == RK__ACT_DONE)
        return RK_OK;
    c->cls = cls;
    rk__reply_redirect(r, &c->redirect);
    return rk__reply_error(r, "GET");
}

static long long pttl_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? r->integer : -3; /* -3: not cached */
}

static int miss_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    miss_arg *a = arg;
    rk__nearcache_read rd;
    char digits[24];
    const char *tv[5], *gv[2] = {"GET", a->key}, *pv[2] = {"PTTL", a->key};
    size_t tl[5], gl[2] = {3, a->klen}, pl[2] = {4, a->klen}, n = 0;
    rk__cmd cmds[3];
    redisReply *r[3];
    rk__nearcache_prepare(a->nc, c, &rd);
    if (rd.redirect)
        cmds[n] = (rk__cmd){rk__nearcache_tracking_cmd(&rd, digits, tv, tl), tv, tl}, n++;
    cmds[n++] = (rk__cmd){2, gv, gl};
    cmds[n++] = (rk__cmd){2, pv, pl};
    uint64_t ticket = rk__nearcache_begin(a->nc, &rd, a->key, a->klen);
    int rc = rk__conn_exec(c, cmds, n, r, deadline);
    redisReply *get = rc == RK_OK ? r[n - 2] : NULL;
    bool tracked = rc == RK_OK && (!rd.redirect || rk__nearcache_tracked(c, &rd, r[0]));
    if (rc == RK_OK)
        rc = act_on(c, get);
    bool keep = rc == RK_OK && tracked && get->type == REDIS_REPLY_STRING;
    rk__nearcache_fill(a->nc, &rd, a->key, a->klen, ticket, keep ? get->str : NULL,
                       keep ? get->len : 0, rc == RK_OK ? pttl_of(r[n - 1]) : -3);
    for (size_t i = 0; i < n; i++) /* all NULL when the exchange failed */
        if (rc != RK_OK || r[i] != get)
            rk__reply_free(r[i]);
    if (rc == RK_OK)
        a->get = get;
    return rc;
}

/* A near-cache lookup of `key` (as the caller gave it) under its Redis name, counted. */
static int near_get(rk__client *cl, rk__nearcache *nc, const char *key, const char *name,
                    size_t len, rk_buf *out)
{
    int rc = rk__nearcache_get(nc, name, len, out);
    if (rc == RK_OK || rc == RK_ENOTFOUND)
        rk__emit(cl->stats, &(rk__event){.type = rc ? RK_EVENT_NEAR_MISS : RK_EVENT_NEAR_HIT,
                                         .key = key,
                                         .key_len = strlen(key)});
    return rc;
}

static int retrieve_near(rk__client *cl, rk__nearcache *nc, const char *key, rk_buf *out)
{
    rk__name k;
    int rc = rk__name_key(&k, &cl->opts, key);
    if (rc == RK_OK && (rc = near_get(cl, nc, key, k.str, k.len, out)) == RK_ENOTFOUND) {
        miss_arg a = {nc, k.str, k.len, NULL};
        rc = rk__client_run_read(cl, "GET", k.str, k.len, rk__client_deadline(cl, RK__NO_TIMEOUT),
                                 miss_fn, &a);
        rc = rc == RK_OK ? take_get(a.get, key, out) : rk__err_prefix("retrieve '%s': ", key);
    }
    rk__name_free(&k);
    return rc;
}

static int retrieve_with(rk__client *cl, const char *key, rk_buf *out)
{
    redisReply *r;
    if (near(cl))
        return retrieve_near(cl, near(cl), key, out);
    if (key_cmd(cl, "GET", key, &r) != RK_OK)
        return rk__err_prefix("retrieve '%s': ", key);
    return take_get(r, key, out);
}

static int retrieve(rk_cache *c, const char *key, rk_buf *out)
{
    rk__client *cl;
    int rc = begin_key(c, key, &cl);
    if (rc == RK_OK && !out)
        rc = rk__err(RK_EINVAL, "retrieve '%s': out is NULL", key);
    if (rc == RK_OK)
        rc = retrieve_with(cl, key, out);
    return end(cl, rc);
}

int rk_cache_retrieve(rk_cache *c, const rk_context *ctx, const char *key, rk_buf *out)
{
    uint64_t t0 = rk__now_us();
    return rk__ret(counted(c, RK__OP_RETRIEVE, t0, retrieve(c, key, out)), ctx);
}

static int ttl_with(rk__client *cl, const char *key, uint64_t *ttl_ms)
{
    redisReply *r;
    *ttl_ms = 0;
    int rc = key_cmd(cl, "PTTL", key, &r);
    if (rc == RK_OK) {
        rc = rk__reply_expect(r, REDIS_REPLY_INTEGER, "PTTL");
        long long left = rc == RK_OK ? r->integer : 0;
        rk__reply_free(r);
        /* PTTL answers -1 for a key without expiry and -2 for a missing one. */
        if (rc == RK_OK && left < -1)
            return rk__err(RK_ENOTFOUND, "ttl '%s': key not found", key);
        *ttl_ms = left == -1 ? RK_TTL_NONE : (uint64_t)left;
    }
    return rc == RK_OK ? RK_OK : rk__err_prefix("ttl '%s': ", key);
}

static int ttl_of(rk_cache *c, const char *key, uint64_t *ttl_ms)
{
    rk__client *cl;
    int rc = begin_key(c, key, &cl);
    if (rc == RK_OK && !ttl_ms)
        rc = rk__err(RK_EINVAL, "ttl '%s': ttl_ms is NULL", key);
    if (rc == RK_OK)
        rc = ttl_with(cl, key, ttl_ms);
    return end(cl, rc);
}

int rk_cache_ttl(rk_cache *c, const rk_context *ctx, const char *key, uint64_t *ttl_ms)
{
    uint64_t t0 = rk__now_us();
    return rk__ret(counted(c, RK__OP_TTL, t0, ttl_of(c, key, ttl_ms)), ctx);
}

/* Argument vectors "<verb> <prefix><key>..." for a batch, the keys packed in one block. */
typedef struct {
    const char **argv;
    size_t *argvlen;
    char *block;
} key_argv;

static void key_argv_free(key_argv *k)
{
    rk__free(k->argv);
    rk__free(k->argvlen);
    rk__free(k->block);
}

static int key_argv_build(key_argv *k, const rk__options *o, const char *verb,
                          const char *const *keys, size_t n)
{
    size_t total = 0, plen = o->prefix_len;
    memset(k, 0, sizeof *k);
    if (n >= INT32_MAX)
        return rk__err(RK_EINVAL, "%s: %zu keys is too many for one command", verb, n);
    for (size_t i = 0; i < n; i++) {
        int rc = rk__check_key(keys ? keys[i] : NULL, "key");
        if (rc != RK_OK)
            return rk__err_prefix("%s: keys[%zu]: ", verb, i);
        total += rk__name_key_len(o, keys[i]);
    }
    k->argv = rk__malloc((n + 1) * sizeof *k->argv);
    k->argvlen = rk__malloc((n + 1) * sizeof *k->argvlen);
    k->block = plen ? rk__malloc(total + 1) : NULL;
    if (!k->argv || !k->argvlen || (plen && !k->block)) {
        key_argv_free(k);
        return rk__err(RK_ENOMEM, "%s: cannot allocate %zu keys", verb, n);
    }
    k->argv[0] = verb, k->argvlen[0] = strlen(verb);
    char *p = k->block;
    for (size_t i = 0; i < n; i++) {
        if (!plen) { /* the keys as given: no copy */
            k->argv[i + 1] = keys[i];
            k->argvlen[i + 1] = strlen(keys[i]);
            continue;
        }
        char *end = rk__name_key_put(p, o, keys[i]);
        k->argv[i + 1] = p;
        k->argvlen[i + 1] = (size_t)(end - p);
        p = end;
    }
    return RK_OK;
}

/* In a cluster a multi-key command must stay in one slot: `<verb> key` once per key instead,
 * each sent to its key's node (rk__client_exec_each). `*replies` (n) is the caller's to free. */
static int each_key(rk__client *cl, const char *verb, const key_argv *k, size_t n,
                    redisReply ***replies)
{
    rk__cmd *cmds = rk__malloc(n * sizeof *cmds);
    const char **argv = rk__malloc(2 * n * sizeof *argv);
    size_t *lens = rk__malloc(2 * n * sizeof *lens);
    *replies = rk__calloc(n, sizeof **replies);
    int rc = cmds && argv && lens && *replies
                 ? RK_OK
                 : rk__err(RK_ENOMEM, "%s: cannot allocate %zu commands", verb, n);
    for (size_t i = 0; rc == RK_OK && i < n; i++) {
        argv[2 * i] = verb, lens[2 * i] = strlen(verb);
        argv[2 * i + 1] = k->argv[i + 1], lens[2 * i + 1] = k->argvlen[i + 1];
        cmds[i] = (rk__cmd){2, argv + 2 * i, lens + 2 * i};
    }
    if (rc == RK_OK)
        rc = rk__client_exec_each(cl, rk__client_deadline(cl, RK__NO_TIMEOUT), cmds, n, *replies);
    rk__free(cmds);
    rk__free(argv);
    rk__free(lens);
    if (rc != RK_OK) {
        rk__free(*replies);
        *replies = NULL;
    }
    return rc;
}

static void replies_free(redisReply **r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        rk__reply_free(r[i]);
    rk__free(r);
}

/* Either one multi-key command, or (cluster) `verb key` per key; `expect` checks each reply. */
static int multi_key(rk__client *cl, const key_argv *k, size_t n, const char *verb, int expect,
                     redisReply **one_r, redisReply ***each_r)
{
    *one_r = NULL, *each_r = NULL;
    if (!cl->cluster)
        return one(cl, (int)n + 1, k->argv, k->argvlen, one_r);
    int rc = each_key(cl, verb, k, n, each_r);
    for (size_t i = 0; rc == RK_OK && i < n; i++)
        if ((*each_r)[i]->type != REDIS_REPLY_NIL) /* GET of a missing key */
            rc = rk__reply_expect((*each_r)[i], expect, verb);
    return rc;
}

static int remove_with(rk__client *cl, const char *const *keys, size_t n)
{
    key_argv k;
    int rc = key_argv_build(&k, &cl->opts, "DEL", keys, n);
    if (rc != RK_OK)
        return rc;
    redisReply *r, **each;
    if ((rc = multi_key(cl, &k, n, "DEL", REDIS_REPLY_INTEGER, &r, &each)) == RK_OK && r)
        rc = rk__reply_expect(r, REDIS_REPLY_INTEGER, "DEL");
    for (size_t i = 0; near(cl) && i < n; i++)
        rk__nearcache_drop(near(cl), k.argv[i + 1], k.argvlen[i + 1]);
    rk__reply_free(r);
    replies_free(each, n);
    key_argv_free(&k);
    if (rc != RK_OK)
        return n == 1 ? rk__err_prefix("remove '%s': ", keys[0])
                      : rk__err_prefix("remove of %zu keys: ", n);
    return RK_OK;
}

static int remove_many(rk_cache *c, const char *const *keys, size_t n)
{
    rk__client *cl;
    int rc = begin(c, &cl);
    if (rc == RK_OK && n)
        rc = remove_with(cl, keys, n);
    return end(cl, rc);
}

int rk_cache_remove(rk_cache *c, const rk_context *ctx, const char *key)
{
    uint64_t t0 = rk__now_us();
    int rc = c ? rk__check_key(key, "key") : RK_OK;
    rc = rc == RK_OK ? remove_many(c, &key, 1) : rk__err_prefix("remove: ");
    return rk__ret(counted(c, RK__OP_REMOVE, t0, rc), ctx);
}

int rk_cache_remove_many(rk_cache *c, const rk_context *ctx, const char *const *keys, size_t n)
{
    uint64_t t0 = rk__now_us();
    return rk__ret(counted(c, RK__OP_REMOVE_MANY, t0, remove_many(c, keys, n)), ctx);
}

int rk__cache_take_values(redisReply *r, size_t n, rk_buf *outs)
{
    int rc = rk__reply_expect(r, REDIS_REPLY_ARRAY, "MGET");
    if (rc == RK_OK && r->elements != n)
        rc = rk__err(RK_EREPLY, "MGET returned %zu values for %zu keys", r->elements, n);
    for (size_t i = 0; rc == RK_OK && i < n; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            outs[i].data = e->str, outs[i].len = e->len;
            e->str = NULL;
        }
    }
    return rc;
}

/* The misses of a batch that one node serves, read in one write: GET and PTTL per key. */
typedef struct {
    rk__nearcache *nc;
    const key_argv *k;
    const size_t *idx; /* into the batch's keys */
    size_t n;
    rk_buf *outs;
    bool *redo; /* a key the node did not serve (a redirect): read alone afterwards */
} batch_arg;

static void batch_take(batch_arg *a, const rk__nearcache_read *rd, const uint64_t *tickets,
                       redisReply **r, bool tracked)
{
    for (size_t j = 0; j < a->n; j++) {
        size_t i = a->idx[j];
        redisReply *get = r[2 * j], *pttl = r[2 * j + 1];
        bool value = get->type == REDIS_REPLY_STRING; /* anything else reads as a miss (MGET) */
        a->redo[i] = rk__class_action(rk__reply_classify(get)) != RK__ACT_DONE;
        rk__nearcache_fill(a->nc, rd, a->k->argv[i + 1], a->k->argvlen[i + 1], tickets[j],
                           value && tracked ? get->str : NULL, value ? get->len : 0, pttl_of(pttl));
        if (value) {
            rk_buf_free(&a->outs[i]);
            a->outs[i].data = get->str, a->outs[i].len = get->len;
            get->str = NULL;
        }
    }
}

static int batch_fn(rk__conn *c, void *arg, uint64_t deadline)
{
    batch_arg *a = arg;
    rk__nearcache_read rd;
    char digits[24];
    const char *tv[5];
    size_t tl[5], t = 0, m = 2 * a->n;
    rk__nearcache_prepare(a->nc, c, &rd);
    t = rd.redirect ? 1 : 0;
    rk__cmd *cmds = rk__malloc((m + t) * sizeof *cmds);
    const char **argv = rk__malloc(2 * m * sizeof *argv);
    size_t *lens = rk__malloc(2 * m * sizeof *lens);
    redisReply **r = rk__calloc(m + t, sizeof *r);
    uint64_t *tickets = rk__calloc(a->n, sizeof *tickets);
    int rc = cmds && argv && lens && r && tickets
                 ? RK_OK
                 : rk__err(RK_ENOMEM, "cannot allocate a read of %zu keys", a->n);
    if (rc == RK_OK && t)
        cmds[0] = (rk__cmd){rk__nearcache_tracking_cmd(&rd, digits, tv, tl), tv, tl};
    for (size_t j = 0; rc == RK_OK && j < m; j++) {
        size_t i = a->idx[j / 2];
        argv[2 * j] = j % 2 ? "PTTL" : "GET", lens[2 * j] = j % 2 ? 4 : 3;
        argv[2 * j + 1] = a->k->argv[i + 1], lens[2 * j + 1] = a->k->argvlen[i + 1];
        cmds[t + j] = (rk__cmd){2, argv + 2 * j, lens + 2 * j};
    }
    for (size_t j = 0; rc == RK_OK && j < a->n; j++)
        tickets[j] = rk__nearcache_begin(a->nc, &rd, a->k->argv[a->idx[j] + 1],
                                         a->k->argvlen[a->idx[j] + 1]);
    if (rc == RK_OK && (rc = rk__conn_exec(c, cmds, m + t, r, deadline)) == RK_OK) {
        bool tracked = !t || rk__nearcache_tracked(c, &rd, r[0]);
        batch_take(a, &rd, tickets, r + t, tracked);
        c->cls = RK__REPLY_OK; /* per key: redo[] */
    }
    for (size_t j = 0; rc != RK_OK && tickets && j < a->n; j++) /* drop our marks */
        rk__nearcache_fill(a->nc, &rd, a->k->argv[a->idx[j] + 1], a->k->argvlen[a->idx[j] + 1],
                           tickets[j], NULL, 0, -3);
    for (size_t j = 0; r && j < m + t; j++)
        rk__reply_free(r[j]);
    rk__free(cmds);
    rk__free(argv);
    rk__free(lens);
    rk__free(r);
    rk__free(tickets);
    return rc;
}

/* The node a read of `key` goes to (a replica with options.read_from=replica). */
static rk__node *read_node(rk__client *cl, const char *key, size_t klen)
{
    rk__topology *t = cl->topo;
    return t->ops->route_read ? t->ops->route_read(t, key, klen) : t->ops->route(t, key, klen);
}

/* The misses miss[0..m), grouped per node (one group on a single server), then what a node
 * redirected, alone. */
static int fetch_misses(rk__client *cl, rk__nearcache *nc, const key_argv *k, size_t *miss,
                        size_t m, rk_buf *outs, bool *redo)
{
    uint64_t deadline = rk__client_deadline(cl, RK__NO_TIMEOUT);
    rk__node **node = cl->cluster ? rk__malloc(m * sizeof *node) : NULL;
    int rc = node || !cl->cluster ? RK_OK : rk__err(RK_ENOMEM, "cannot group %zu keys", m);
    for (size_t j = 0; node && j < m; j++)
        node[j] = read_node(cl, k->argv[miss[j] + 1], k->argvlen[miss[j] + 1]);
    for (size_t start = 0; rc == RK_OK && start < m;) {
        size_t end = node ? start + 1 : m;
        for (size_t j = end; node && j < m; j++) { /* miss[start]'s node's misses next to it */
            if (node[j] != node[start])
                continue;
            size_t tmp = miss[end];
            rk__node *tnode = node[end];
            miss[end] = miss[j], node[end] = node[j];
            miss[j] = tmp, node[j] = tnode;
            end++;
        }
        batch_arg a = {nc, k, miss + start, end - start, outs, redo};
        const char *first = k->argv[miss[start] + 1];
        rc = rk__client_run_read(cl, "GET", first, k->argvlen[miss[start] + 1], deadline, batch_fn,
                                 &a);
        start = end;
    }
    rk__free(node);
    for (size_t j = 0; rc == RK_OK && j < m; j++) {
        size_t i = miss[j];
        if (!redo[i])
            continue;
        miss_arg a = {nc, k->argv[i + 1], k->argvlen[i + 1], NULL};
        if ((rc = rk__client_run_read(cl, "GET", a.key, a.klen, deadline, miss_fn, &a)) == RK_OK &&
            a.get->type == REDIS_REPLY_STRING)
            outs[i].data = rk__reply_take_str(a.get, &outs[i].len);
        else
            rk__reply_free(a.get);
    }
    return rc;
}

/* Hits from the near cache, the misses from Redis (and into the near cache). */
static int retrieve_many_near(rk__client *cl, rk__nearcache *nc, const char *const *keys,
                              const key_argv *k, size_t n, rk_buf *outs)
{
    size_t *miss = rk__malloc(n * sizeof *miss), m = 0;
    bool *redo = rk__calloc(n, sizeof *redo);
    int rc = miss && redo ? RK_OK : rk__err(RK_ENOMEM, "cannot allocate a read of %zu keys", n);
    for (size_t i = 0; rc == RK_OK && i < n; i++) {
        rc = near_get(cl, nc, keys[i], k->argv[i + 1], k->argvlen[i + 1], &outs[i]);
        if (rc == RK_ENOTFOUND)
            miss[m++] = i, rc = RK_OK;
    }
    if (rc == RK_OK && m)
        rc = fetch_misses(cl, nc, k, miss, m, outs, redo);
    for (size_t i = 0; rc != RK_OK && i < n; i++)
        rk_buf_free(&outs[i]);
    rk__free(miss);
    rk__free(redo);
    return rc;
}

static int retrieve_many_with(rk__client *cl, const char *const *keys, size_t n, rk_buf *outs)
{
    key_argv k;
    int rc = key_argv_build(&k, &cl->opts, "MGET", keys, n);
    if (rc != RK_OK)
        return rc;
    if (near(cl)) {
        for (size_t i = 0; i < n; i++)
            rk_buf_free(&outs[i]);
        rc = retrieve_many_near(cl, near(cl), keys, &k, n, outs);
        key_argv_free(&k);
        return rc == RK_OK ? RK_OK : rk__err_prefix("retrieve of %zu keys: ", n);
    }
    for (size_t i = 0; i < n; i++)
        rk_buf_free(&outs[i]);
    redisReply *r, **each;
    if ((rc = multi_key(cl, &k, n, "GET", REDIS_REPLY_STRING, &r, &each)) == RK_OK && r)
        rc = rk__cache_take_values(r, n, outs);
    for (size_t i = 0; rc == RK_OK && each && i < n; i++) {
        outs[i].data = each[i]->str, outs[i].len = each[i]->len;
        each[i]->str = NULL;
    }
    rk__reply_free(r);
    replies_free(each, n);
    key_argv_free(&k);
    return rc == RK_OK ? RK_OK : rk__err_prefix("retrieve of %zu keys: ", n);
}

static int retrieve_many(rk_cache *c, const char *const *keys, size_t n, rk_buf *outs)
{
    rk__client *cl;
    int rc = begin(c, &cl);
    if (rc == RK_OK && n && !outs)
        rc = rk__err(RK_EINVAL, "retrieve_many: outs is NULL");
    if (rc == RK_OK && n)
        rc = retrieve_many_with(cl, keys, n, outs);
    return end(cl, rc);
}

int rk_cache_retrieve_many(rk_cache *c, const rk_context *ctx, const char *const *keys, size_t n,
                           rk_buf *outs)
{
    uint64_t t0 = rk__now_us();
    return rk__ret(counted(c, RK__OP_RETRIEVE_MANY, t0, retrieve_many(c, keys, n, outs)), ctx);
}

/* One SET per entry; the vectors of all entries live in one allocation. */
typedef struct {
    rk__cmd *cmds;
    const char **argv;
    size_t *argvlen;
    char *text; /* prefixed keys and TTL digits */
} set_batch;

static void set_batch_free(set_batch *b)
{
    rk__free(b->cmds);
    rk__free(b->argv);
    rk__free(b->argvlen);
    rk__free(b->text);
}

static int check_entries(const rk_cache_entry *e, size_t n)
{
    if (n && !e)
        return rk__err(RK_EINVAL, "store_many: entries is NULL");
    for (size_t i = 0; i < n; i++) {
        if (rk__check_key(e[i].key, "key") != RK_OK)
            return rk__err_prefix("store_many: entries[%zu]: ", i);
        if (!e[i].value && e[i].len)
            return rk__err(RK_EINVAL, "store_many: entries[%zu] ('%s'): value is NULL", i,
                           e[i].key);
        if (check_ttl(e[i].ttl_ms) != RK_OK)
            return rk__err_prefix("store_many: entries[%zu] ('%s'): ", i, e[i].key);
    }
    return RK_OK;
}

static int set_batch_build(set_batch *b, const rk__client *cl, const rk_cache_entry *e, size_t n)
{
    size_t text = 0;
    for (size_t i = 0; i < n; i++)
        text += rk__name_key_len(&cl->opts, e[i].key) + 24;
    b->cmds = rk__malloc(n * sizeof *b->cmds);
    b->argv = rk__malloc(n * 5 * sizeof *b->argv);
    b->argvlen = rk__malloc(n * 5 * sizeof *b->argvlen);
    b->text = rk__malloc(text);
    if (!b->cmds || !b->argv || !b->argvlen || !b->text) /* store_many() frees what we got */
        return rk__err(RK_ENOMEM, "store_many: cannot allocate %zu commands", n);
    char *p = b->text;
    for (size_t i = 0; i < n; i++) {
        const char **argv = b->argv + 5 * i;
        size_t *len = b->argvlen + 5 * i;
        char *end = rk__name_key_put(p, &cl->opts, e[i].key);
        argv[0] = "SET", len[0] = 3;
        argv[1] = p, len[1] = (size_t)(end - p);
        argv[2] = e[i].value ? e[i].value : "", len[2] = e[i].len;
        p = end;
        int extra = ttl_args(cl, e[i].ttl_ms, p, 24, &argv[3], &len[3]);
        if (extra)
            p += len[4];
        b->cmds[i] = (rk__cmd){3 + extra, argv, len};
    }
    return RK_OK;
}

static int store_many_with(rk__client *cl, const rk_cache_entry *e, size_t n)
{
    set_batch b = {0};
    int rc;
    redisReply **r = rk__calloc(n, sizeof *r);
    if (!r)
        return rk__err(RK_ENOMEM, "store_many: cannot allocate %zu replies", n);
    if ((rc = set_batch_build(&b, cl, e, n)) == RK_OK &&
        (rc = rk__client_exec_each(cl, rk__client_deadline(cl, RK__NO_TIMEOUT), b.cmds, n, r)) ==
            RK_OK) {
        for (size_t i = 0; i < n; i++)
            if (rc == RK_OK && rk__reply_expect(r[i], REDIS_REPLY_STATUS, "SET") != RK_OK)
                rc = rk__err_prefix("store_many: '%s': ", e[i].key);
    }
    for (size_t i = 0; near(cl) && b.cmds && i < n; i++)
        rk__nearcache_drop(near(cl), b.cmds[i].argv[1], b.cmds[i].argvlen[1]);
    for (size_t i = 0; i < n; i++)
        rk__reply_free(r[i]);
    rk__free(r);
    set_batch_free(&b);
    return rc;
}

static int store_many(rk_cache *c, const rk_cache_entry *e, size_t n)
{
    rk__client *cl;
    int rc = begin(c, &cl);
    if (rc == RK_OK)
        rc = check_entries(e, n);
    if (rc == RK_OK && n)
        rc = store_many_with(cl, e, n);
    return end(cl, rc);
}

int rk_cache_store_many(rk_cache *c, const rk_context *ctx, const rk_cache_entry *entries, size_t n)
{
    uint64_t t0 = rk__now_us();
    return rk__ret(counted(c, RK__OP_STORE_MANY, t0, store_many(c, entries, n)), ctx);
}

int rk_cache_near_cache_size(rk_cache *c, uint64_t *entries, uint64_t *bytes)
{
    if (!c || !entries || !bytes)
        return rk__err(RK_EINVAL, "rk_cache_near_cache_size: %s is NULL",
                       !c         ? "cache"
                       : !entries ? "entries"
                                  : "bytes");
    *entries = *bytes = 0;
    rk__client *cl = rk__component_is_open(&c->base) ? rk__component_begin(&c->base) : NULL;
    if (cl && near(cl))
        rk__nearcache_size(near(cl), entries, bytes);
    rk__component_end(cl);
    return RK_OK;
}
