/* Cluster section: redkit against a Redis Cluster. Single-key operations are compared with the
 * same operations through redkit on the master that serves the key, reached directly
 * (options.cluster=false), so the only difference is the cluster routing. Batches of 1,000 keys
 * spread over every master are compared with what an application would write by hand with
 * hiredis: one connection per master, the keys grouped by owner (CRC16 against a slot map read
 * once), each node's commands pipelined, one node after the other. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define VALUE_LEN 100
#define NKEYS 1000
#define NSLOTS 16384
#define MAX_MASTERS 64
#define KEY "bench:cluster:k"
#define TTL_ARG "60000"   /* what redkit sends for ttl 0 (options.default_ttl) */
#define SETUP_TTL 3600000 /* the values read must outlive any --secs x --rounds */

static char value[VALUE_LEN];
static char keys[NKEYS][32];

/* ---- slots, as the cluster computes them ---- */

static uint16_t crc_table[256];

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t crc = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
        crc_table[i] = crc;
    }
}

/* CRC16-XMODEM of the key, or of its hash tag (the part between the first '{' and the next
 * '}', when not empty). */
static unsigned key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *from = open + 1, *close = memchr(from, '}', len - (size_t)(from - key));
        if (close && close > from)
            key = from, len = (size_t)(close - from);
    }
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ (unsigned char)key[i]) & 0xff]);
    return crc & (NSLOTS - 1);
}

/* ---- the hand-written baseline: one hiredis connection per master ---- */

typedef struct master {
    bench_target t;
    redisContext *c;
    size_t n, idx[NKEYS]; /* this call's keys for the node, as indexes into keys[] */
} master;

typedef struct pipe_ctx {
    master m[MAX_MASTERS];
    size_t nm;
    uint8_t owner[NSLOTS]; /* index into m[] */
    const char *keys[NKEYS];
    size_t lens[NKEYS];
    redisReply *replies[NKEYS]; /* in key order, like redkit's outs */
} pipe_ctx;

/* This call's keys grouped by the master that owns their slot. */
static void group_keys(pipe_ctx *x)
{
    for (size_t m = 0; m < x->nm; m++)
        x->m[m].n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        master *m = &x->m[x->owner[key_slot(x->keys[i], x->lens[i])]];
        m->idx[m->n++] = i;
    }
}

/* Append the node's commands, then read its replies: the first read writes the pipeline. */
static bool node_pipeline(pipe_ctx *x, master *m, int argc, const char **argv, size_t *lens)
{
    for (size_t k = 0; k < m->n; k++) {
        argv[1] = x->keys[m->idx[k]], lens[1] = x->lens[m->idx[k]];
        if (redisAppendCommandArgv(m->c, argc, argv, lens) != REDIS_OK)
            return false;
    }
    for (size_t k = 0; k < m->n; k++) {
        void *r = NULL;
        if (redisGetReply(m->c, &r) != REDIS_OK)
            return false;
        x->replies[m->idx[k]] = r;
    }
    return true;
}

/* Every reply of the call has `type` (and a string the value's length); all are freed. */
static bool take_replies(pipe_ctx *x, int type)
{
    bool ok = true;
    for (size_t i = 0; i < NKEYS; i++) {
        redisReply *r = x->replies[i];
        ok = ok && r && r->type == type && (type != REDIS_REPLY_STRING || r->len == VALUE_LEN);
        if (r)
            freeReplyObject(r);
        x->replies[i] = NULL;
    }
    return ok;
}

static bool pipe_run(pipe_ctx *x, int argc, const char **argv, size_t *lens, int type)
{
    group_keys(x);
    bool ok = true;
    for (size_t m = 0; ok && m < x->nm; m++)
        ok = node_pipeline(x, &x->m[m], argc, argv, lens);
    return take_replies(x, type) && ok;
}

static bool pipe_get(void *p)
{
    const char *argv[] = {"GET", NULL};
    size_t lens[] = {3, 0};
    return pipe_run(p, 2, argv, lens, REDIS_REPLY_STRING);
}

static bool pipe_set(void *p)
{
    const char *argv[] = {"SET", NULL, value, "PX", TTL_ARG};
    size_t lens[] = {3, 0, VALUE_LEN, 2, sizeof TTL_ARG - 1};
    return pipe_run(p, 5, argv, lens, REDIS_REPLY_STATUS);
}

/* ---- redkit ---- */

typedef struct rk_side {
    rk_cache *cache;
    rk_buf buf;
    const char *keys[NKEYS];
    rk_buf outs[NKEYS];
    rk_cache_entry entries[NKEYS];
} rk_side;

static bool rk_get(void *p)
{
    rk_side *x = p;
    return rk_cache_retrieve(x->cache, NULL, KEY, &x->buf) == RK_OK && x->buf.len == VALUE_LEN;
}

static bool rk_set(void *p)
{
    rk_side *x = p;
    return rk_cache_store(x->cache, NULL, KEY, value, VALUE_LEN, 0) == RK_OK;
}

static bool rk_mget(void *p)
{
    rk_side *x = p;
    return rk_cache_retrieve_many(x->cache, NULL, x->keys, NKEYS, x->outs) == RK_OK &&
           x->outs[0].len == VALUE_LEN && x->outs[NKEYS - 1].len == VALUE_LEN;
}

static bool rk_mset(void *p)
{
    rk_side *x = p;
    return rk_cache_store_many(x->cache, NULL, x->entries, NKEYS) == RK_OK;
}

/* A redkit cache on `url`; `cluster` is options.cluster ("auto": redkit's default). */
static rk_side *rk_side_open(const bench_target *t, const char *cluster)
{
    rk_side *x = calloc(1, sizeof *x);
    if (!x)
        die("out of memory");
    rk_config *cfg =
        bench_config(t, "options.max_connections", "8", "options.cluster", cluster, NULL);
    if (rk_cache_new(&x->cache) != RK_OK || rk_cache_configure(x->cache, cfg) != RK_OK ||
        rk_cache_open(x->cache, NULL) != RK_OK)
        die("cannot open a cache on %s: %s", t->url, rk_last_error()->message);
    rk_config_free(cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        x->keys[i] = keys[i];
        x->entries[i] = (rk_cache_entry){keys[i], value, VALUE_LEN, 0};
    }
    return x;
}

static void rk_side_free(rk_side *x)
{
    rk_cache_free(x->cache);
    rk_buf_free(&x->buf);
    for (size_t i = 0; i < NKEYS; i++)
        rk_buf_free(&x->outs[i]);
    free(x);
}

/* ---- the slot map, read once from CLUSTER SLOTS ---- */

static size_t add_master(pipe_ctx *x, const bench_target *seed, const redisReply *node)
{
    const char *host = node->element[0]->len ? node->element[0]->str : seed->host;
    int port = (int)node->element[1]->integer;
    for (size_t m = 0; m < x->nm; m++)
        if (x->m[m].t.port == port && !strcmp(x->m[m].t.host, host))
            return m;
    if (x->nm == MAX_MASTERS)
        die("more than %d masters", MAX_MASTERS);
    char url[512];
    if (seed->password[0])
        snprintf(url, sizeof url, "redis://:%s@%s:%d", seed->password, host, port);
    else
        snprintf(url, sizeof url, "redis://%s:%d", host, port);
    if (bench_target_parse(&x->m[x->nm].t, url) != 0)
        die("cannot make a URL of master %s:%d", host, port);
    return x->nm++;
}

static bool slots_entry_ok(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements >= 3 &&
           e->element[0]->type == REDIS_REPLY_INTEGER &&
           e->element[1]->type == REDIS_REPLY_INTEGER && e->element[2]->type == REDIS_REPLY_ARRAY &&
           e->element[2]->elements >= 2 && e->element[2]->element[0]->type == REDIS_REPLY_STRING &&
           e->element[2]->element[1]->type == REDIS_REPLY_INTEGER;
}

/* Fill x->owner and x->m[].t from the seed's CLUSTER SLOTS; every slot must be served. */
static void load_slots(pipe_ctx *x, const bench_target *seed)
{
    redisContext *c = bench_hiredis(seed);
    redisReply *r = c ? redisCommand(c, "CLUSTER SLOTS") : NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        die("CLUSTER SLOTS failed on %s:%d", seed->host, seed->port);
    static bool seen[NSLOTS];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (!slots_entry_ok(e))
            die("CLUSTER SLOTS: unexpected entry %zu", i);
        size_t m = add_master(x, seed, e->element[2]);
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
            if (s >= 0 && s < NSLOTS)
                x->owner[s] = (uint8_t)m, seen[s] = true;
    }
    freeReplyObject(r);
    redisFree(c);
    for (size_t s = 0; s < NSLOTS; s++)
        if (!seen[s])
            die("slot %zu has no master: the cluster is not ready", s);
}

/* Our CRC16 must agree with the server's, or the baseline would be redirected. */
static void check_slots(redisContext *c, const pipe_ctx *x)
{
    for (size_t i = 0; i <= 10; i++) {
        const char *k = i < 10 ? x->keys[i] : KEY;
        redisReply *r = redisCommand(c, "CLUSTER KEYSLOT %s", k);
        if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != key_slot(k, strlen(k)))
            die("CLUSTER KEYSLOT %s disagrees with the bench's CRC16", k);
        freeReplyObject(r);
    }
}

static pipe_ctx *pipe_open(const bench_target *seed)
{
    pipe_ctx *x = calloc(1, sizeof *x);
    if (!x)
        die("out of memory");
    for (size_t i = 0; i < NKEYS; i++)
        x->keys[i] = keys[i], x->lens[i] = strlen(keys[i]);
    load_slots(x, seed);
    for (size_t m = 0; m < x->nm; m++)
        if (!(x->m[m].c = bench_hiredis(&x->m[m].t)))
            die("no hiredis baseline");
    check_slots(x->m[0].c, x);
    return x;
}

static void pipe_free(pipe_ctx *x)
{
    for (size_t m = 0; m < x->nm; m++)
        redisFree(x->m[m].c);
    free(x);
}

/* ---- a private cluster (tests/support/cluster.sh) ---- */

static char script[512], state_dir[400];
static int stop_id = -1; /* the cleanup's `cluster.sh stop`, while a cluster may be up */

/* The script's servers outlive it: stopped here, or by the cleanup on a failure or a signal. */
static void stop_cluster(void)
{
    if (stop_id < 0)
        return;
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "'%s' stop '%s' >/dev/null 2>&1", script, state_dir);
    if (system(cmd) != 0)
        progress("cluster: '%s' failed", cmd);
    untrack_command(stop_id);
    stop_id = -1;
}

/* The last line of `path` (the script's reason for failing) into `why`. */
static void last_line(const char *path, char *why, size_t cap)
{
    char line[256];
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '\n')
            snprintf(why, cap, "%.*s", (int)strcspn(line, "\n"), line);
    if (f)
        fclose(f);
}

static bool read_seeds(char *url, size_t cap)
{
    char path[450], seeds[300];
    snprintf(path, sizeof path, "%s/seeds", state_dir);
    FILE *f = fopen(path, "r");
    bool ok = f && fscanf(f, "%299s", seeds) == 1;
    if (f)
        fclose(f);
    if (ok)
        snprintf(url, cap, "redis://%s", seeds);
    return ok;
}

/* Start 3 masters + 3 replicas; the seeds' URL into `url`, or false with the reason in `why`. */
static bool start_cluster(const bench_opts *o, char *url, size_t cap, char *why, size_t whycap)
{
    char log[450], cmd[1400];
    snprintf(script, sizeof script, "%s/tests/support/cluster.sh", REDKIT_SOURCE_DIR);
    if (access(script, X_OK) != 0) {
        snprintf(why, whycap, "no tests/support/cluster.sh in the source tree: use --cluster-url");
        return false;
    }
    snprintf(state_dir, sizeof state_dir, "%s/cluster", o->tmpdir);
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
        die("cannot create %s: %s", state_dir, strerror(errno));
    track_path(state_dir);
    snprintf(log, sizeof log, "%s/start.log", state_dir);
    track_path(log);
    /* Before the start: the script records its servers first, so a half-started cluster
     * is stopped too. */
    stop_id = track_command((const char *const[]){script, "stop", state_dir, NULL});
    snprintf(cmd, sizeof cmd, "'%s' start '%s' >'%s' 2>&1", script, state_dir, log);
    if (system(cmd) != 0 || !read_seeds(url, cap)) {
        snprintf(why, whycap, "cluster.sh start failed");
        last_line(log, why, whycap);
        stop_cluster();
        return false;
    }
    return true;
}

/* ---- the section ---- */

static void report_missing(const char *why)
{
    report_na("cluster", "retrieve 100 B", why);
    report_na("cluster", "retrieve_many 1000", why);
    report_goal("cluster retrieve >= 0.95 x one master direct", NAN, ">=", 0.95, why);
    report_goal("cluster store >= 0.95 x one master direct", NAN, ">=", 0.95, why);
    report_goal("cluster retrieve_many of 1000 >= 0.8 x per-node pipeline", NAN, ">=", 0.8, why);
}

static void init_data(void)
{
    crc_init();
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < NKEYS; i++)
        snprintf(keys[i], sizeof keys[i], "bench:cluster:%04zu", i);
}

/* Values that outlive the measurement, stored through the cluster client (which proves it
 * found the cluster: without it these SETs would be answered MOVED). */
static void store_values(rk_side *cl)
{
    for (size_t i = 0; i < NKEYS; i++)
        cl->entries[i].ttl_ms = SETUP_TTL;
    if (rk_cache_store_many(cl->cache, NULL, cl->entries, NKEYS) != RK_OK ||
        rk_cache_store(cl->cache, NULL, KEY, value, VALUE_LEN, SETUP_TTL) != RK_OK)
        die("cannot store the cluster test keys: %s", rk_last_error()->message);
    for (size_t i = 0; i < NKEYS; i++)
        cl->entries[i].ttl_ms = 0;
}

static void measure(const bench_opts *o, const bench_target *seed)
{
    pipe_ctx *hp = pipe_open(seed);
    const bench_target *own = &hp->m[hp->owner[key_slot(KEY, sizeof KEY - 1)]].t;
    rk_side *cl = rk_side_open(seed, "auto"), *one = rk_side_open(own, "false");
    store_values(cl);
    progress("cluster: %zu masters, %s on %s, %d rounds of %.1f s", hp->nm, KEY, own->url,
             o->rounds, o->secs);
    double get = compare(o, "cluster", "retrieve 100 B", rk_get, cl, "redkit cluster", rk_get, one,
                         "redkit one master direct", 1, "ops/s");
    double set = compare(o, "cluster", "store 100 B", rk_set, cl, "redkit cluster", rk_set, one,
                         "redkit one master direct", 1, "ops/s");
    double mget = compare(o, "cluster", "retrieve_many 1000", rk_mget, cl, "redkit", pipe_get, hp,
                          "hiredis per-node pipeline", NKEYS, "keys/s");
    compare(o, "cluster", "store_many 1000", rk_mset, cl, "redkit", pipe_set, hp,
            "hiredis per-node pipeline", NKEYS, "keys/s");
    report_goal("cluster retrieve >= 0.95 x one master direct", get, ">=", 0.95, NULL);
    report_goal("cluster store >= 0.95 x one master direct", set, ">=", 0.95, NULL);
    report_goal("cluster retrieve_many of 1000 >= 0.8 x per-node pipeline", mget, ">=", 0.8, NULL);
    rk_cache_remove_many(cl->cache, NULL, cl->keys, NKEYS); /* an external cluster stays clean */
    rk_cache_remove(cl->cache, NULL, KEY);
    rk_side_free(cl);
    rk_side_free(one);
    pipe_free(hp);
}

void bench_cluster(const bench_opts *o)
{
    char url[512], why[200];
    bench_target seed;
    init_data();
    if (o->cluster_url) {
        snprintf(url, sizeof url, "%s", o->cluster_url);
    } else {
        progress("cluster: starting a private cluster (3 masters, 3 replicas)");
        if (!start_cluster(o, url, sizeof url, why, sizeof why)) {
            report_missing(why);
            return;
        }
    }
    /* The target keeps the whole URL for redkit, and the first seed for hiredis. */
    memset(&seed, 0, sizeof seed);
    if (bench_target_parse(&seed, url) != 0 || seed.tls || seed.path[0])
        die("--cluster-url must be redis://[:password@]host:port[,host:port...]");
    report_note("cluster: %s%s", o->cluster_url ? "" : "private cluster ", url);
    measure(o, &seed);
    stop_cluster();
}
