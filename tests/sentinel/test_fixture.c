/* The Sentinel fixture itself (tests/support/sentinel_env.h), checked with raw hiredis only: the
 * roles and the sentinels' agreement it promises, a failover after the master is SIGKILLed
 * (timed), SENTINEL FAILOVER with the old master staying up as a replica, and passwords. */
#include <unistd.h>

#include "sentinel_env.h"

#define NAME "rkt-master"

static void start(rkt_sentinel *s)
{
    uint64_t t0 = rkt_now_ms();
    rkt_sentinel_start(s, NAME);
    printf("     sentinel fixture started in %llu ms\n", (unsigned long long)(rkt_now_ms() - t0));
}

static redisReply *on_node(const rkt_sentinel *s, int i, const char *a, const char *b,
                           const char *c)
{
    redisContext *ctx = rkt_sentinel_node_raw(s, i);
    redisReply *r = rkt_cmd(ctx, a, b, c, NULL);
    redisFree(ctx);
    return r;
}

static redisReply *on_sentinel(const rkt_sentinel *s, int k, const char *sub)
{
    redisContext *ctx = rkt_sentinel_sentinel_raw(s, k);
    redisReply *r = rkt_cmd(ctx, "SENTINEL", sub, s->name, NULL);
    redisFree(ctx);
    return r;
}

static void expect_role(const rkt_sentinel *s, int i, const char *want)
{
    redisReply *r = on_node(s, i, "ROLE", NULL, NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    ASSERT_STR_EQ(r->element[0]->str, want);
    freeReplyObject(r);
}

/* Asked on a new connection each time: converting a node into a replica, a sentinel kills its
 * clients (CLIENT KILL TYPE normal). */
static bool is_master(const rkt_sentinel *s, int i)
{
    for (;;) {
        redisContext *ctx = rkt_sentinel_node_raw(s, i);
        redisReply *r = redisCommand(ctx, "ROLE");
        redisFree(ctx);
        if (!r)
            continue; /* killed just now */
        bool master = r->type == REDIS_REPLY_ARRAY && !strcmp(r->element[0]->str, "master");
        freeReplyObject(r);
        return master;
    }
}

/* The value of `name` in a flat [name, value...] array. */
static const char *kv(const redisReply *r, const char *name)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, name))
            return r->element[i + 1]->str;
    rkt_fail(__FILE__, __LINE__, "no %s in the reply", name);
}

/* A key written on the master reaches the replica: WAIT says so, and GET there. */
static void replicated(const rkt_sentinel *s, int master, const char *key, const char *value)
{
    redisContext *ctx = rkt_sentinel_node_raw(s, master);
    freeReplyObject(rkt_cmd(ctx, "SET", key, value, NULL));
    redisReply *acked = rkt_cmd(ctx, "WAIT", "1", "5000", NULL);
    ASSERT_EQ(acked->integer, 1);
    freeReplyObject(acked);
    redisFree(ctx);
    redisReply *r = on_node(s, 1 - master, "GET", key, NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    ASSERT_STR_EQ(r->str, value);
    freeReplyObject(r);
}

/* ---- layout and agreement ---- */

static void one_master_one_replica_three_sentinels(void)
{
    rkt_sentinel s;
    start(&s);
    expect_role(&s, 0, "master");
    expect_role(&s, 1, "slave");
    ASSERT_EQ(rkt_sentinel_master(&s), 0);
    char master_port[16];
    snprintf(master_port, sizeof master_port, "%d", s.node[0].port);
    for (int k = 0; k < RKT_SENTINELS; k++) {
        redisReply *m = on_sentinel(&s, k, "MASTER");
        ASSERT_STR_EQ(kv(m, "name"), NAME);
        ASSERT_STR_EQ(kv(m, "port"), master_port);
        ASSERT_STR_EQ(kv(m, "flags"), "master");
        ASSERT_STR_EQ(kv(m, "quorum"), "2");
        ASSERT_STR_EQ(kv(m, "down-after-milliseconds"), "1000");
        ASSERT_STR_EQ(kv(m, "failover-timeout"), "5000");
        ASSERT_STR_EQ(kv(m, "num-slaves"), "1");
        ASSERT_STR_EQ(kv(m, "num-other-sentinels"), "2");
        freeReplyObject(m);
        redisReply *ok = on_sentinel(&s, k, "CKQUORUM"); /* 3 usable sentinels, majority 2 */
        ASSERT_EQ(ok->type, REDIS_REPLY_STATUS);
        ASSERT_CONTAINS(ok->str, "OK 3 usable Sentinels");
        freeReplyObject(ok);
    }
    replicated(&s, 0, "fixture:a", "1");

    rk_config *cfg = rkt_sentinel_config(&s, "options.timeout=1000");
    char uri[300];
    snprintf(uri, sizeof uri, "redis://%s", s.sentinels);
    ASSERT_STR_EQ(rk_config_get(cfg, "connection.uri"), uri);
    ASSERT_STR_EQ(rk_config_get(cfg, "options.sentinel_master"), NAME);
    ASSERT_STR_EQ(rk_config_get(cfg, "options.prefix"), rkt_prefix());
    ASSERT_STR_EQ(rk_config_get(cfg, "options.timeout"), "1000");
    rk_config_free(cfg);
    rkt_sentinel_stop(&s);
}

/* ---- failovers ---- */

/* The master dies: after down-after-milliseconds the sentinels agree it is down, elect a
 * leader, which promotes the replica and announces +switch-master. */
static void killed_master_is_replaced(void)
{
    rkt_sentinel s;
    start(&s);
    replicated(&s, 0, "fixture:before", "kept"); /* the replica has it: the failover keeps it */
    rkt_sentinel_watch w;
    rkt_sentinel_watch_start(&s, &w);
    uint64_t t0 = rkt_now_ms();
    rkt_server_kill(&s.node[0]);
    uint64_t last = rkt_sentinel_watch_wait(&w, 30000) - t0, first = last;
    int m = rkt_sentinel_wait_failover(&s, 0, 30000);
    uint64_t named = rkt_now_ms() - t0;
    for (int k = 0; k < RKT_SENTINELS; k++) {
        ASSERT_EQ(w.to_port[k], s.node[1].port);
        if (w.at_ms[k] - t0 < first)
            first = w.at_ms[k] - t0;
    }
    rkt_sentinel_watch_stop(&w);
    printf("     SIGKILL: +switch-master from the first sentinel after %llu ms, from the last "
           "after %llu ms; all name node 1 and it says master after %llu ms\n",
           (unsigned long long)first, (unsigned long long)last, (unsigned long long)named);
    ASSERT_EQ(m, 1);
    ASSERT_EQ(rkt_sentinel_master(&s), 1);
    redisReply *r = on_node(&s, 1, "GET", "fixture:before", NULL);
    ASSERT_STR_EQ(r->str, "kept");
    freeReplyObject(r);

    rkt_sentinel_stop(&s);
}

/* SENTINEL FAILOVER: the replica is promoted with the old master up; the old master keeps
 * saying master for a while after the switch (the window a client must not write in), then is
 * converted into a replica of the new one. */
static void sentinel_failover_keeps_the_old_master_as_replica(void)
{
    rkt_sentinel s;
    start(&s);
    rkt_sentinel_watch w;
    rkt_sentinel_watch_start(&s, &w);
    uint64_t t0 = rkt_now_ms();
    rkt_sentinel_failover(&s);
    uint64_t switched = rkt_sentinel_watch_wait(&w, 30000);
    rkt_sentinel_watch_stop(&w);
    ASSERT_EQ(rkt_sentinel_wait_failover(&s, 0, 30000), 1);
    uint64_t still_master = 0;
    while (is_master(&s, 0)) {
        still_master = rkt_now_ms() - switched;
        ASSERT_LT(still_master, 60000);
        usleep(20 * 1000);
    }
    printf("     SENTINEL FAILOVER: switch announced after %llu ms; the old master still said "
           "master %llu ms after that\n",
           (unsigned long long)(switched - t0), (unsigned long long)still_master);
    rkt_sentinel_wait_ok(&s, 30000);
    expect_role(&s, 0, "slave");
    expect_role(&s, 1, "master");
    replicated(&s, 1, "fixture:failover", "3");
    /* And back: a second forced failover right after the first is accepted. */
    rkt_sentinel_failover(&s);
    ASSERT_EQ(rkt_sentinel_wait_failover(&s, 1, 30000), 0);
    rkt_sentinel_stop(&s);
}

/* ---- passwords ---- */

static void passwords_on_nodes_and_sentinels(void)
{
    rkt_sentinel s;
    rkt_sentinel_start_auth(&s, NAME, "master-secret", "sentinel-secret");
    /* Without the password neither kind of process answers. */
    for (int i = 0; i < 2; i++) {
        redisContext *c = rkt_raw_port(i ? s.sentinel[0].port : s.node[0].port);
        redisReply *r = rkt_cmd(c, i ? "SENTINEL" : "GET", i ? "MASTERS" : "k", NULL);
        ASSERT_EQ(r->type, REDIS_REPLY_ERROR);
        ASSERT_CONTAINS(r->str, "NOAUTH");
        freeReplyObject(r);
        redisFree(c);
    }
    replicated(&s, 0, "fixture:auth", "4");
    rkt_sentinel_failover(&s); /* the sentinels reach the nodes and each other */
    ASSERT_EQ(rkt_sentinel_wait_failover(&s, 0, 30000), 1);
    rkt_sentinel_wait_ok(&s, 30000); /* the old master syncs from the new one with masterauth */
    rk_config *cfg = rkt_sentinel_config(&s, NULL);
    ASSERT_TRUE(rk_config_get(cfg, "credential.password") == NULL); /* the caller's to add */
    rk_config_free(cfg);
    rkt_sentinel_stop(&s);
}

RKT_MAIN(RKT_CASE(one_master_one_replica_three_sentinels), RKT_CASE(killed_master_is_replaced),
         RKT_CASE(sentinel_failover_keeps_the_old_master_as_replica),
         RKT_CASE(passwords_on_nodes_and_sentinels))
