/* The near cache on a Redis Cluster (3 masters + 3 replicas): one invalidation connection per
 * node the cache reads from, writes on every shard invalidate, retrieve_many uses and fills per
 * key across shards, and replica reads are tracked on the replicas. */
#include <unistd.h>

#include "cluster_env.h"

static rkt_cluster cluster;

static rkt_near stats(rk_cache *c) { return rkt_near_stats(c); }

/* A key of ours (under the test prefix) whose slot master node[m] serves. */
static void key_on_master(char *out, size_t cap, const char *stem, int m)
{
    for (int i = 0;; i++) {
        snprintf(out, cap, "%s:%d", stem, i);
        char full[256];
        snprintf(full, sizeof full, "%s%s", rkt_prefix(), out);
        if (rkt_cluster_master_of(&cluster, full) == m)
            return;
    }
}

static bool reads(rk_cache *c, const char *key, const char *want)
{
    rk_buf b = RK_BUF_INIT;
    int rc = rk_cache_retrieve(c, NULL, key, &b);
    bool ok = rc == RK_OK && b.len == strlen(want) && !memcmp(b.data, want, b.len);
    rk_buf_free(&b);
    return ok;
}

static void cached(rk_cache *c, const char *key, const char *want)
{
    uint64_t until = rkt_now_ms() + 10000;
    for (;;) {
        uint64_t hits = stats(c).hits;
        ASSERT_TRUE(reads(c, key, want));
        ASSERT_TRUE(reads(c, key, want));
        if (stats(c).hits > hits)
            return;
        ASSERT_LT(rkt_now_ms(), until);
        usleep(1000);
    }
}

static void raw_set(int node, const char *key, const char *value)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    redisContext *r = rkt_raw_port(cluster.node[node].port);
    freeReplyObject(rkt_cmd(r, "SET", full, value, NULL));
    redisFree(r);
}

static long long subscribers(int node)
{
    redisContext *r = rkt_raw_port(cluster.node[node].port);
    redisReply *rep = rkt_cmd(r, "PUBSUB", "NUMSUB", "__redis__:invalidate", NULL);
    long long n = rep->element[1]->integer;
    freeReplyObject(rep);
    redisFree(r);
    return n;
}

static void every_shard(void)
{
    rk_cache *c = rkt_open_cache(rkt_cluster_config(&cluster, "options.near_cache_size=100"));
    char keys[RKT_CLUSTER_MASTERS][64];
    for (int m = 0; m < RKT_CLUSTER_MASTERS; m++) {
        key_on_master(keys[m], sizeof keys[m], "near", m);
        ASSERT_OK(rk_cache_store(c, NULL, keys[m], "v1", 2, 60000));
        cached(c, keys[m], "v1");
        ASSERT_GE(subscribers(m), 1); /* the node's invalidation connection */
    }
    for (int m = 0; m < RKT_CLUSTER_MASTERS; m++) {
        raw_set(m, keys[m], "v2");
        uint64_t until = rkt_now_ms() + 2000;
        while (!reads(c, keys[m], "v2")) {
            ASSERT_LT(rkt_now_ms(), until);
            usleep(200);
        }
        cached(c, keys[m], "v2");
    }
    /* A batch over every shard: hits served, misses read per node and kept. */
    const char *batch[2 * RKT_CLUSTER_MASTERS];
    char more[RKT_CLUSTER_MASTERS][64];
    for (int m = 0; m < RKT_CLUSTER_MASTERS; m++) {
        key_on_master(more[m], sizeof more[m], "more", m);
        ASSERT_OK(rk_cache_store(c, NULL, more[m], "m", 1, 60000));
        batch[2 * m] = keys[m], batch[2 * m + 1] = more[m];
    }
    rk_buf outs[2 * RKT_CLUSTER_MASTERS] = {RK_BUF_INIT};
    rkt_near s0 = stats(c);
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, batch, 2 * RKT_CLUSTER_MASTERS, outs));
    rkt_near s1 = stats(c);
    ASSERT_EQ(s1.hits - s0.hits, RKT_CLUSTER_MASTERS);
    ASSERT_EQ(s1.misses - s0.misses, RKT_CLUSTER_MASTERS);
    for (int i = 0; i < 2 * RKT_CLUSTER_MASTERS; i++)
        ASSERT_TRUE(outs[i].len == (i % 2 ? 1u : 2u));
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, batch, 2 * RKT_CLUSTER_MASTERS, outs));
    ASSERT_EQ(stats(c).hits - s1.hits, 2 * RKT_CLUSTER_MASTERS);
    for (int i = 0; i < 2 * RKT_CLUSTER_MASTERS; i++)
        rk_buf_free(&outs[i]);
    rk_cache_free(c);
}

/* options.read_from=replica: the replica's own listener hears of writes made on the master. */
static void replica_reads(void)
{
    rk_cache *c = rkt_open_cache(
        rkt_cluster_config(&cluster, "options.near_cache_size=100;options.read_from=replica"));
    char key[64];
    key_on_master(key, sizeof key, "rep", 0);
    ASSERT_OK(rk_cache_store(c, NULL, key, "v1", 2, 60000));
    uint64_t until = rkt_now_ms() + 5000;
    while (!reads(c, key, "v1")) { /* the replica may lag behind */
        ASSERT_LT(rkt_now_ms(), until);
        usleep(1000);
    }
    cached(c, key, "v1");
    raw_set(0, key, "v2");
    until = rkt_now_ms() + 5000;
    while (!reads(c, key, "v2")) {
        ASSERT_LT(rkt_now_ms(), until);
        usleep(200);
    }
    rk_cache_free(c);
}

int main(int argc, char **argv)
{
    static const rkt_case cases[] = {RKT_CASE(every_shard), RKT_CASE(replica_reads)};
    rkt_cluster_start(&cluster, NULL);
    int rc = rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    rkt_cluster_stop(&cluster);
    return rc;
}
