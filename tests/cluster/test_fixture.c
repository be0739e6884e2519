/* The cluster fixture itself (tests/support/cluster_env.h), checked with raw hiredis only: the
 * layout it promises, its local key-slot oracle against CLUSTER KEYSLOT, a failover after a
 * master is killed, and a slot moved with keys in it. */
#include "cluster_env.h"

static void start(rkt_cluster *c)
{
    uint64_t t0 = rkt_now_ms();
    rkt_cluster_start(c, NULL);
    printf("cluster started in %llu ms\n", (unsigned long long)(rkt_now_ms() - t0));
}

static redisReply *on(const rkt_cluster *c, int i, const char *cmd, const char *key)
{
    redisContext *ctx = rkt_server_admin(&c->node[i]);
    redisReply *r = rkt_cmd(ctx, cmd, key, NULL);
    redisFree(ctx);
    return r;
}

/* The reply of `cmd key` on node i is a string (or status, or error) equal to `want`. */
static void expect_str(const rkt_cluster *c, int i, const char *cmd, const char *key,
                       const char *want)
{
    redisReply *r = on(c, i, cmd, key);
    ASSERT_TRUE(r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
                r->type == REDIS_REPLY_ERROR);
    ASSERT_STR_EQ(r->str, want);
    freeReplyObject(r);
}

static long long info_field(const rkt_cluster *c, int i, const char *field)
{
    redisReply *r = on(c, i, "CLUSTER", "INFO");
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    const char *at = strstr(r->str, field);
    ASSERT_TRUE(at != NULL);
    long long v = atoll(at + strlen(field) + 1);
    freeReplyObject(r);
    return v;
}

/* ---- layout ---- */

static void three_masters_three_replicas(void)
{
    rkt_cluster c;
    start(&c);
    int masters = 0, replicas = 0;
    for (int i = 0; i < c.n; i++) {
        redisReply *r = on(&c, i, "ROLE", NULL);
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
        if (!strcmp(r->element[0]->str, "master"))
            masters++;
        else if (!strcmp(r->element[3]->str, "connected"))
            replicas++;
        freeReplyObject(r);
        ASSERT_EQ(info_field(&c, i, "cluster_slots_ok"), RKT_CLUSTER_SLOTS);
        ASSERT_EQ(info_field(&c, i, "cluster_known_nodes"), c.n);
    }
    ASSERT_EQ(masters, 3);
    ASSERT_EQ(replicas, 3);
    for (int m = 0; m < RKT_CLUSTER_MASTERS; m++)
        ASSERT_EQ(rkt_cluster_replica_of(&c, m), m + RKT_CLUSTER_MASTERS);
    ASSERT_EQ(rkt_cluster_owner(&c, 0), 0);
    ASSERT_EQ(rkt_cluster_owner(&c, 8000), 1);
    ASSERT_EQ(rkt_cluster_owner(&c, RKT_CLUSTER_SLOTS - 1), 2);
    ASSERT_EQ(rkt_cluster_master_of(&c, "{user1}:a"),
              rkt_cluster_owner(&c, rkt_cluster_keyslot("user1", 5)));

    rk_config *cfg = rkt_cluster_config(&c, "options.timeout=1000");
    char uri[300];
    snprintf(uri, sizeof uri, "redis://%s", c.seeds);
    ASSERT_STR_EQ(rk_config_get(cfg, "connection.uri"), uri);
    ASSERT_STR_EQ(rk_config_get(cfg, "options.timeout"), "1000");
    rk_config_free(cfg);
    rkt_cluster_stop(&c);
}

/* ---- the key-slot oracle ---- */

static int server_keyslot(redisContext *ctx, const char *key, size_t len)
{
    redisReply *r = redisCommand(ctx, "CLUSTER KEYSLOT %b", key, len);
    ASSERT_TRUE(r != NULL && r->type == REDIS_REPLY_INTEGER);
    int slot = (int)r->integer;
    freeReplyObject(r);
    return slot;
}

/* CLUSTER KEYSLOT works on any cluster-enabled server, joined or not. */
static void keyslot_matches_the_server(void)
{
    static const char *const keys[] = {"",          "a",
                                       "foo",       "123456789",
                                       "{user1}:a", "{user1}:b",
                                       "user1",     "a{}b",
                                       "{}",        "{}a",
                                       "a{b}{c}",   "a{b}c",
                                       "{",         "}",
                                       "}{",        "a}b{c}",
                                       "{a",        "a{",
                                       "{{a}}",     "{}{a}",
                                       "x{user1}y", "t1234:{user1}:a",
                                       "\xff\xfe",  "long key with spaces and more"};
    rkt_server s;
    rkt_server_start(&s, "--cluster-enabled yes --cluster-config-file nodes.conf");
    redisContext *ctx = rkt_server_admin(&s);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t len = strlen(keys[i]);
        int want = server_keyslot(ctx, keys[i], len);
        if (rkt_cluster_keyslot(keys[i], len) != want)
            rkt_fail(__FILE__, __LINE__, "keyslot(\"%s\") = %d, the server says %d", keys[i],
                     rkt_cluster_keyslot(keys[i], len), want);
    }
    ASSERT_EQ(rkt_cluster_keyslot("123456789", 9), 0x31C3 % RKT_CLUSTER_SLOTS);
    ASSERT_EQ(rkt_cluster_keyslot("{user1}:a", 9), rkt_cluster_keyslot("user1", 5));
    ASSERT_EQ(rkt_cluster_keyslot("a\0{b}", 5), rkt_cluster_keyslot("b", 1));
    ASSERT_EQ(server_keyslot(ctx, "a\0{b}", 5), rkt_cluster_keyslot("b", 1));
    ASSERT_EQ(server_keyslot(ctx, "a\0b", 3), rkt_cluster_keyslot("a\0b", 3));
    redisFree(ctx);
    rkt_server_stop(&s);
}

/* ---- failover ---- */

static void killed_master_is_replaced_by_its_replica(void)
{
    rkt_cluster c;
    start(&c);
    const char *key = "{user1}:a";
    int m = rkt_cluster_master_of(&c, key);
    int r = rkt_cluster_replica_of(&c, m);
    ASSERT_TRUE(m >= 0 && r >= 0 && r != m);
    redisContext *ctx = rkt_server_admin(&c.node[m]);
    freeReplyObject(rkt_cmd(ctx, "SET", key, "before", NULL));
    redisReply *acked = rkt_cmd(ctx, "WAIT", "1", "5000", NULL);
    ASSERT_EQ(acked->integer, 1); /* the replica has it: a failover must not lose it */
    freeReplyObject(acked);
    redisFree(ctx);

    uint64_t t0 = rkt_now_ms();
    rkt_server_kill(&c.node[m]);
    rkt_cluster_wait_promoted(&c, m, 30000);
    printf("replica promoted and cluster ok %llu ms after the kill\n",
           (unsigned long long)(rkt_now_ms() - t0));
    ASSERT_EQ(rkt_cluster_master_of(&c, key), r);
    expect_str(&c, r, "GET", key, "before");
    ASSERT_EQ(rkt_cluster_replica_of(&c, r), -1);

    /* Back on its port and dir, the old master rejoins as the new one's replica. */
    t0 = rkt_now_ms();
    rkt_server_restart(&c.node[m]);
    rkt_cluster_wait_ok(&c, 30000);
    printf("old master back as a replica in %llu ms\n", (unsigned long long)(rkt_now_ms() - t0));
    ASSERT_EQ(rkt_cluster_replica_of(&c, r), m);
    ASSERT_EQ(rkt_cluster_master_of(&c, key), r);
    rkt_cluster_stop(&c);
}

/* ---- moving a slot ---- */

enum { KEYS = 10, EARLY = 4 };

static long long keys_in_slot(const rkt_cluster *c, int i, int slot)
{
    char s[16];
    snprintf(s, sizeof s, "%d", slot);
    redisContext *ctx = rkt_server_admin(&c->node[i]);
    redisReply *r = rkt_cmd(ctx, "CLUSTER", "COUNTKEYSINSLOT", s, NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(ctx);
    return n;
}

static void key_name(char *buf, size_t n, int i) { snprintf(buf, n, "{moving}:%d", i); }

static void moved_slot_takes_its_keys(void)
{
    rkt_cluster c;
    start(&c);
    int slot = rkt_cluster_keyslot("moving", 6);
    int from = rkt_cluster_owner(&c, slot);
    int to = (from + 1) % RKT_CLUSTER_MASTERS;
    char key[32], port[16], ask[64], moved[64];
    for (int i = 0; i < KEYS; i++) {
        key_name(key, sizeof key, i);
        redisContext *ctx = rkt_server_admin(&c.node[from]);
        freeReplyObject(rkt_cmd(ctx, "SET", key, key, NULL));
        redisFree(ctx);
    }
    snprintf(port, sizeof port, "%d", c.node[to].port);
    snprintf(ask, sizeof ask, "ASK %d 127.0.0.1:%s", slot, port);
    snprintf(moved, sizeof moved, "MOVED %d 127.0.0.1:%s", slot, port);

    rkt_cluster_slot_begin(&c, slot, from, to);
    ASSERT_EQ(rkt_cluster_slot_migrate_some(&c, slot, from, to, EARLY), EARLY);
    /* Half way: the source sends the moved keys on with ASK and still serves the others. */
    ASSERT_EQ(keys_in_slot(&c, from, slot), KEYS - EARLY);
    ASSERT_EQ(keys_in_slot(&c, to, slot), EARLY);
    int asked = 0;
    for (int i = 0; i < KEYS; i++) {
        key_name(key, sizeof key, i);
        redisReply *g = on(&c, from, "GET", key);
        if (g->type == REDIS_REPLY_ERROR) {
            ASSERT_STR_EQ(g->str, ask);
            asked++;
        } else {
            ASSERT_STR_EQ(g->str, key);
        }
        freeReplyObject(g);
    }
    ASSERT_EQ(asked, EARLY);

    rkt_cluster_slot_finish(&c, slot, from, to);
    ASSERT_EQ(rkt_cluster_owner(&c, slot), to);
    ASSERT_EQ(keys_in_slot(&c, from, slot), 0);
    ASSERT_EQ(keys_in_slot(&c, to, slot), KEYS);
    for (int i = 0; i < KEYS; i++) {
        key_name(key, sizeof key, i);
        expect_str(&c, to, "GET", key, key);
        expect_str(&c, from, "GET", key, moved);
    }
    /* Every other node, replicas too, sends a new key of the slot to the new owner. */
    for (int i = 0; i < c.n; i++)
        if (i != to)
            expect_str(&c, i, "GET", "{moving}:new", moved);
    rkt_cluster_stop(&c);
}

RKT_MAIN(RKT_CASE(three_masters_three_replicas), RKT_CASE(keyslot_matches_the_server),
         RKT_CASE(killed_master_is_replaced_by_its_replica), RKT_CASE(moved_slot_takes_its_keys))
