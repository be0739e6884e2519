/* The three components on a real Redis Cluster (3 masters + 3 replicas): keys on every shard,
 * batches spread over ~1000 slots, locks with and without hash tags (never a CROSSSLOT), the
 * memolock's single fetch with its value and lock in one slot or in two, a Go-style PSUBSCRIBE
 * waiter on any node, the semaphore, replica reads, and the configuration errors of cluster mode.
 * One cluster serves every case; each case uses keys of its own. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "cluster_env.h"
#include "subscriber.h"

static rkt_cluster cluster;

static rk_config *cfg(const char *extra) { return rkt_cluster_config(&cluster, extra); }

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

static void cache_on_every_shard(void)
{
    rk_cache *c = rkt_open_cache(cfg(NULL));
    for (int m = 0; m < RKT_CLUSTER_MASTERS; m++) {
        char key[64];
        key_on_master(key, sizeof key, "shard", m);
        ASSERT_OK(rk_cache_store(c, NULL, key, "v\0x", 3, 60000));
        rk_buf out = RK_BUF_INIT;
        ASSERT_OK(rk_cache_retrieve(c, NULL, key, &out));
        ASSERT_EQ(out.len, 3u);
        ASSERT_MEM_EQ(out.data, "v\0x", 3);
        rk_buf_free(&out);
        char full[256];
        snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
        redisContext *raw = rkt_raw_port(cluster.node[m].port);
        redisReply *r = rkt_cmd(raw, "GET", full, NULL); /* it really lives on that master */
        ASSERT_EQ(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
        redisFree(raw);
        ASSERT_OK(rk_cache_remove(c, NULL, key));
        ASSERT_RC(rk_cache_retrieve(c, NULL, key, &out), RK_ENOTFOUND);
    }
    rk_cache_free(c);
}

static int fixed_fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    *ttl_ms = 60000;
    return rk_buf_set(value, "shard-value", 11);
}

/* The lock (held, refused to another handle, released, taken by it) and the memolock on each
 * master. */
static void lock_and_memolock_on_every_shard(void)
{
    rk_lock *a = rkt_open_lock(cfg(NULL)), *b = rkt_open_lock(cfg(NULL));
    rk_memolock *m = rkt_open_memolock(cfg("options.resource_tag=every"));
    for (int master = 0; master < RKT_CLUSTER_MASTERS; master++) {
        char key[64], id[64], value_key[160];
        key_on_master(key, sizeof key, "shard-lock", master);
        ASSERT_OK(rk_lock_acquire(a, NULL, key, 5000, 1000));
        bool got = true;
        ASSERT_OK(rk_lock_try_acquire(b, NULL, key, 5000, &got));
        ASSERT_FALSE(got);
        ASSERT_OK(rk_lock_release(a, NULL, key));
        ASSERT_OK(rk_lock_acquire(b, NULL, key, 5000, 1000));
        ASSERT_OK(rk_lock_release(b, NULL, key));
        for (int i = 0;; i++) { /* an id whose value lives on this master */
            snprintf(id, sizeof id, "id-%d", i);
            snprintf(value_key, sizeof value_key, "%severy:%s", rkt_prefix(), id);
            if (rkt_cluster_master_of(&cluster, value_key) == master)
                break;
        }
        rk_buf out = RK_BUF_INIT;
        ASSERT_OK(rk_memolock_get(m, NULL, id, 2000, fixed_fetch, NULL, &out));
        ASSERT_MEM_EQ(out.data, "shard-value", 11);
        rk_buf_free(&out);
        redisContext *raw = rkt_raw_port(cluster.node[master].port);
        redisReply *r = rkt_cmd(raw, "GET", value_key, NULL); /* stored on that master */
        ASSERT_EQ(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
        redisFree(raw);
    }
    rk_memolock_free(m);
    rk_lock_free(a);
    rk_lock_free(b);
}

#define MANY 1000

static void batches_over_a_thousand_slots(void)
{
    rk_cache *c = rkt_open_cache(cfg(NULL));
    static char keys[MANY][32];
    static const char *kp[MANY];
    static rk_cache_entry e[MANY];
    static rk_buf outs[MANY];
    bool slot_seen[RKT_CLUSTER_SLOTS] = {false};
    /* A key per slot, whatever the test's prefix: how many distinct slots a thousand
     * consecutive names reach depends on it (930 to 980 seen). */
    for (int i = 0, j = 0; i < MANY; j++) {
        char full[256];
        snprintf(keys[i], sizeof keys[i], "many:%d", j);
        int n = snprintf(full, sizeof full, "%s%s", rkt_prefix(), keys[i]);
        int s = rkt_cluster_keyslot(full, (size_t)n);
        if (slot_seen[s])
            continue;
        slot_seen[s] = true;
        kp[i] = keys[i];
        e[i] = (rk_cache_entry){keys[i], keys[i], strlen(keys[i]), 60000};
        i++;
    }
    ASSERT_OK(rk_cache_store_many(c, NULL, e, MANY / 2)); /* half: the rest stay missing */
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, kp, MANY, outs));
    for (int i = 0; i < MANY; i++) {
        if (i < MANY / 2) {
            ASSERT_EQ(outs[i].len, strlen(keys[i]));
            ASSERT_MEM_EQ(outs[i].data, keys[i], outs[i].len);
        } else {
            ASSERT_TRUE(outs[i].data == NULL);
        }
        rk_buf_free(&outs[i]);
    }
    ASSERT_OK(rk_cache_remove_many(c, NULL, kp, MANY));
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, kp, MANY, outs));
    for (int i = 0; i < MANY; i++)
        ASSERT_TRUE(outs[i].data == NULL);
    rk_cache_free(c);
}

/* Two handles contend for each key: acquire, hand-off, release; the scripts touch the lock,
 * its queue, heartbeats and fence, so a CROSSSLOT would fail them. */
typedef struct {
    rk_lock *lock;
    const char *key;
    atomic_int *inside;
    atomic_int overlaps;
} contender;

static void *contend(void *arg)
{
    contender *c = arg;
    for (int i = 0; i < 20; i++) {
        ASSERT_OK(rk_lock_acquire(c->lock, NULL, c->key, 5000, 10000));
        if (atomic_fetch_add(c->inside, 1) != 0)
            atomic_fetch_add(&c->overlaps, 1);
        usleep(500);
        atomic_fetch_sub(c->inside, 1);
        ASSERT_OK(rk_lock_release(c->lock, NULL, c->key));
    }
    return NULL;
}

static void locks_with_and_without_tags(void)
{
    const char *keys[] = {"orders:42", "user:{7}:profile", "{tag}", "x{a}{b}y"};
    rk_lock *a = rkt_open_lock(cfg("options.lock_fencing=true"));
    rk_lock *b = rkt_open_lock(cfg("options.lock_fencing=true"));
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        atomic_int inside = 0;
        contender ca = {a, keys[k], &inside, 0}, cb = {b, keys[k], &inside, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, contend, &ca);
        pthread_create(&tb, NULL, contend, &cb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        ASSERT_EQ(atomic_load(&ca.overlaps) + atomic_load(&cb.overlaps), 0);
        bool got;
        ASSERT_OK(rk_lock_try_acquire(a, NULL, keys[k], 1000, &got));
        ASSERT_TRUE(got);
        uint64_t fence;
        ASSERT_OK(rk_lock_fencing_token(a, keys[k], &fence));
        ASSERT_GE(fence, 41u); /* 40 grants above, then this one */
        ASSERT_OK(rk_lock_release(a, NULL, keys[k]));
    }
    /* Braces without a valid tag cannot share a slot with their queue: refused, clearly. */
    const char *bad[] = {"a{}b", "a}b", "a{b"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ASSERT_RC(rk_lock_acquire(a, NULL, bad[k], 1000, 100), RK_EINVAL);
        ASSERT_CONTAINS(rk_last_error()->message, "hash tag");
    }
    rk_lock_free(a);
    rk_lock_free(b);
}

/* ---- semaphore ---- */

typedef struct {
    rk_semaphore *sem;
    const char *key;
    atomic_int *inside;
    atomic_int over;
} sem_holder;

static void *hold_permits(void *arg)
{
    sem_holder *h = arg;
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(rk_semaphore_acquire(h->sem, NULL, h->key, 2, 5000, 10000));
        if (atomic_fetch_add(h->inside, 1) >= 2)
            atomic_fetch_add(&h->over, 1);
        usleep(500);
        atomic_fetch_sub(h->inside, 1);
        ASSERT_OK(rk_semaphore_release(h->sem, NULL, h->key));
    }
    return NULL;
}

/* The semaphore's set, queue and heartbeats share the key's slot (no CROSSSLOT), its hand-offs
 * go out on shard channels, and 3 handles on a limit of 2 never hold 3 permits at once. */
static void semaphore_with_and_without_tags(void)
{
    const char *keys[] = {"jobs:42", "user:{7}:jobs"};
    rk_semaphore *s[3];
    for (int i = 0; i < 3; i++) {
        rk_config *c = cfg(NULL);
        ASSERT_OK(rk_semaphore_new(&s[i]));
        ASSERT_OK(rk_semaphore_configure(s[i], c));
        rk_config_free(c);
        ASSERT_OK(rk_semaphore_open(s[i], NULL));
    }
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        atomic_int inside = 0;
        sem_holder h[3];
        pthread_t t[3];
        for (int i = 0; i < 3; i++) {
            h[i] = (sem_holder){s[i], keys[k], &inside, 0};
            pthread_create(&t[i], NULL, hold_permits, &h[i]);
        }
        for (int i = 0; i < 3; i++) {
            pthread_join(t[i], NULL);
            ASSERT_EQ(atomic_load(&h[i].over), 0);
        }
    }
    ASSERT_RC(rk_semaphore_acquire(s[0], NULL, "a{}b", 1, 1000, 100), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "hash tag");
    for (int i = 0; i < 3; i++)
        rk_semaphore_free(s[i]);
}

/* ---- memolock ---- */

typedef struct {
    rk_memolock *m;
    const char *id;
    atomic_int *fetches;
    rk_buf out;
} memo_caller;

static int slow_fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    memo_caller *c = ud;
    atomic_fetch_add(c->fetches, 1);
    usleep(200 * 1000);
    *ttl_ms = 60000;
    return rk_buf_set(value, "computed", 8);
}

static void *memo_call(void *arg)
{
    memo_caller *c = arg;
    ASSERT_OK(rk_memolock_get(c->m, NULL, c->id, 5000, slow_fetch, c, &c->out));
    return NULL;
}

/* Four handles (four "processes"), eight callers, one id: one fetch. */
static void one_fetch_per_id(const char *tag, const char *id)
{
    char extra[128];
    snprintf(extra, sizeof extra, "options.resource_tag=%s", tag);
    rk_memolock *m[4];
    for (int i = 0; i < 4; i++)
        m[i] = rkt_open_memolock(cfg(extra));
    atomic_int fetches = 0;
    memo_caller c[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (memo_caller){m[i % 4], id, &fetches, RK_BUF_INIT};
        pthread_create(&t[i], NULL, memo_call, &c[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ASSERT_EQ(c[i].out.len, 8u);
        ASSERT_MEM_EQ(c[i].out.data, "computed", 8);
        rk_buf_free(&c[i].out);
    }
    ASSERT_EQ(atomic_load(&fetches), 1);
    for (int i = 0; i < 4; i++)
        rk_memolock_free(m[i]);
}

static void memolock_one_fetch_value_and_lock_apart(void)
{
    char value[128], lock[128];
    snprintf(value, sizeof value, "%squery:id-1", rkt_prefix());
    snprintf(lock, sizeof lock, "%squery/lock:id-1", rkt_prefix());
    ASSERT_TRUE(rkt_cluster_keyslot(value, strlen(value)) !=
                rkt_cluster_keyslot(lock, strlen(lock))); /* the single-key path */
    one_fetch_per_id("query", "id-1");
}

static void memolock_one_fetch_value_and_lock_together(void)
{
    one_fetch_per_id("{query}", "id-2"); /* "{query}:id-2" and "{query}/lock:id-2": one slot */
}

/* A Go or C# waiter PSUBSCRIBEs the notification pattern on whatever node it is connected to;
 * the value published by redkit reaches it there (classic Pub/Sub is cluster-wide). */
static void go_style_waiter_hears_the_value(void)
{
    rk_memolock *m = rkt_open_memolock(cfg("options.resource_tag=report"));
    char pattern[128];
    snprintf(pattern, sizeof pattern, "%sreport/notif:*", rkt_prefix());
    for (int node = 0; node < RKT_CLUSTER_NODES; node += 5) { /* a master and a replica */
        redisContext *sub = rkt_raw_port(cluster.node[node].port);
        redisReply *r = rkt_cmd(sub, "PSUBSCRIBE", pattern, NULL);
        freeReplyObject(r);
        char id[32];
        snprintf(id, sizeof id, "go-%d", node);
        atomic_int fetches = 0;
        memo_caller c = {m, id, &fetches, RK_BUF_INIT};
        memo_call(&c);
        rk_buf_free(&c.out);
        ASSERT_EQ(redisGetReply(sub, (void **)&r), REDIS_OK);
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
        ASSERT_EQ(r->elements, 4u); /* pmessage, pattern, channel, value */
        ASSERT_CONTAINS(r->element[2]->str, id);
        ASSERT_STR_EQ(r->element[3]->str, "computed");
        freeReplyObject(r);
        redisFree(sub);
    }
    rk_memolock_free(m);
}

/* ---- reads from replicas ---- */

static void reads_from_replicas(void)
{
    char key[64];
    key_on_master(key, sizeof key, "replica-read", 0);
    rk_cache *w = rkt_open_cache(cfg(NULL));
    ASSERT_OK(rk_cache_store(w, NULL, key, "r", 1, 60000));
    rk_cache_free(w);
    /* Opened after a write: CLUSTER SLOTS lists a replica only once it has replicated data. */
    rk_cache *c = rkt_open_cache(cfg("options.read_from=replica"));
    int replica = rkt_cluster_replica_of(&cluster, 0);
    ASSERT_GE(replica, 0);
    redisContext *master = rkt_raw_port(cluster.node[0].port);
    redisReply *r = rkt_cmd(master, "WAIT", "1", "5000", NULL); /* the replica has the key */
    ASSERT_EQ(r->integer, 1);
    freeReplyObject(r);
    redisFree(master);
    redisContext *raw = rkt_raw_port(cluster.node[replica].port);
    r = rkt_cmd(raw, "CONFIG", "RESETSTAT", NULL);
    freeReplyObject(r);
    rk_buf out = RK_BUF_INIT;
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(rk_cache_retrieve(c, NULL, key, &out));
        ASSERT_MEM_EQ(out.data, "r", 1);
    }
    rk_buf_free(&out);
    r = rkt_cmd(raw, "INFO", "commandstats", NULL);
    ASSERT_CONTAINS(r->str, "cmdstat_get:calls=10,"); /* served by the replica */
    freeReplyObject(r);
    redisFree(raw);
    /* Writes still go to the master. */
    ASSERT_OK(rk_cache_store(c, NULL, key, "w", 1, 60000));
    rk_cache_free(c);
}

/* ---- the sharded subscriber against real cluster nodes ---- */

static rk__endpoint node_endpoint(int node)
{
    static char loopback[] = "127.0.0.1";
    return (rk__endpoint){
        .host = loopback, .port = (uint16_t)cluster.node[node].port, .connect_timeout_ms = 2000};
}

/* A node refuses a shard channel of another node's slot (MOVED): the join does not wait for a
 * confirmation that cannot come. When the slot of a subscribed channel moves away the node
 * drops the subscription (sunsubscribe) and the waiter is asked to re-check. */
static void shard_channel_refused_then_dropped(void)
{
    char ch[128];
    snprintf(ch, sizeof ch, "%s{shard-sub}:inbox", rkt_prefix());
    int slot = rkt_cluster_keyslot("shard-sub", 9);
    int owner = rkt_cluster_owner(&cluster, slot), other = (owner + 1) % RKT_CLUSTER_MASTERS;
    ASSERT_GE(owner, 0);
    rk__endpoint wrong = node_endpoint(other), right = node_endpoint(owner);
    rk__subscriber *s;
    ASSERT_OK(rk__subscriber_new_sharded(&s, "test"));
    rk__subscriber_open(s, &wrong, NULL, 5000);
    rk__waiter w;
    uint64_t t0 = rkt_now_ms();
    ASSERT_OK(rk__subscriber_join(s, &w, ch, strlen(ch), true, NULL, 0, t0 + 5000));
    ASSERT_LT(rkt_now_ms() - t0, 2000u); /* refused, not timed out */
    ASSERT_FALSE(rk__subscriber_active(s, ch, strlen(ch)));
    rk__subscriber_leave(s, &w);
    rk__subscriber_free(s);

    ASSERT_OK(rk__subscriber_new_sharded(&s, "test"));
    rk__subscriber_open(s, &right, NULL, 5000);
    ASSERT_OK(rk__subscriber_join(s, &w, ch, strlen(ch), true, NULL, 0, rkt_now_ms() + 5000));
    ASSERT_TRUE(rk__subscriber_active(s, ch, strlen(ch)));
    rkt_cluster_slot_begin(&cluster, slot, owner, other);
    rkt_cluster_slot_finish(&cluster, slot, owner, other);
    rk__wake why;
    rk_buf payload = RK_BUF_INIT;
    ASSERT_OK(rk__subscriber_wait(s, &w, rkt_now_ms() + 10000, &why, &payload));
    ASSERT_EQ(why, RK__WAKE_RECHECK);
    rk_buf_free(&payload);
    rk__subscriber_leave(s, &w);
    rk__subscriber_free(s);
}

/* ---- the slot map ---- */

static atomic_int moved_seen;

static void count_moved(void *ud, int level, const char *message)
{
    (void)ud, (void)level;
    if (strstr(message, "MOVED slot"))
        atomic_fetch_add(&moved_seen, 1);
}

/* Move the slot of `tag` to the next master; returns the slot. */
static int move_slot_of(const char *tag)
{
    int slot = rkt_cluster_keyslot(tag, strlen(tag));
    int from = rkt_cluster_owner(&cluster, slot), to = -1;
    for (int s = 0; to < 0 && s < RKT_CLUSTER_SLOTS; s += 1000)
        if (rkt_cluster_owner(&cluster, s) != from)
            to = rkt_cluster_owner(&cluster, s);
    rkt_cluster_slot_begin(&cluster, slot, from, to);
    rkt_cluster_slot_finish(&cluster, slot, from, to);
    return slot;
}

/* A MOVED updates the map: the next call on that slot goes straight to the new owner. */
static void moved_is_followed_and_learned(void)
{
    rk_cache *c = rkt_open_cache(cfg(NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "{learn}:a", "1", 1, 60000));
    move_slot_of("learn");
    atomic_store(&moved_seen, 0);
    rk_set_log_handler(count_moved, NULL);
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "{learn}:a", &out)); /* MOVED, followed */
    ASSERT_OK(rk_cache_retrieve(c, NULL, "{learn}:a", &out)); /* straight there */
    rk_set_log_handler(NULL, NULL);
    ASSERT_MEM_EQ(out.data, "1", 1);
    ASSERT_EQ(atomic_load(&moved_seen), 1);
    rk_buf_free(&out);
    rk_cache_free(c);
}

/* Auto-pipelining per node: 16 threads share each node's connection while the slot of half
 * their keys moves (MOVED, ASK or TRYAGAIN on a shared connection); every caller gets its own
 * values. */
typedef struct shard_worker {
    rk_cache *cache;
    int id;
    atomic_bool *stop;
    atomic_long ops;
    char bad[320]; /* the first mismatch, each part cut to fit */
} shard_worker;

static void *shard_main(void *arg)
{
    shard_worker *w = arg;
    char key[64], val[96];
    rk_buf b = RK_BUF_INIT;
    for (int r = 0; !atomic_load(w->stop) && !w->bad[0]; r++) {
        snprintf(key, sizeof key, r % 2 ? "{moving}:t%d" : "{t%d}:k", w->id);
        snprintf(val, sizeof val, "%s=%d", key, r);
        int rc = rk_cache_store(w->cache, NULL, key, val, strlen(val), 60000);
        if (rc == RK_OK)
            rc = rk_cache_retrieve(w->cache, NULL, key, &b);
        if (rc != RK_OK)
            snprintf(w->bad, sizeof w->bad, "'%s': %s", key, rk_last_error()->message);
        else if (strcmp(b.data, val) != 0)
            snprintf(w->bad, sizeof w->bad, "'%.63s': wanted '%.95s', got '%.100s'", key, val,
                     b.data);
        atomic_fetch_add(&w->ops, 1);
    }
    rk_buf_free(&b);
    return NULL;
}

static void wait_ops(shard_worker *w, int n, long each)
{
    for (int i = 0; i < n; i++)
        while (atomic_load(&w[i].ops) < each && !w[i].bad[0])
            usleep(1000);
}

static void threads_share_nodes_through_a_move(void)
{
    enum { N = 16 };
    rk_cache *c = rkt_open_cache(cfg(NULL));
    atomic_bool stop = false;
    shard_worker w[N];
    pthread_t tid[N];
    for (int i = 0; i < N; i++) {
        w[i] = (shard_worker){.cache = c, .id = i, .stop = &stop};
        ASSERT_EQ(pthread_create(&tid[i], NULL, shard_main, &w[i]), 0);
    }
    wait_ops(w, N, 20);
    move_slot_of("moving");
    long after = atomic_load(&w[0].ops) + 20;
    wait_ops(w, N, after);
    atomic_store(&stop, true);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(pthread_join(tid[i], NULL), 0);
        if (w[i].bad[0])
            rkt_fail(__FILE__, __LINE__, "thread %d: %s", i, w[i].bad);
    }
    rk_cache_free(c);
}

/* options.topology_refresh: the map is learned again on its own, without a MOVED. */
static void the_map_is_refreshed_periodically(void)
{
    rk_cache *c = rkt_open_cache(cfg("options.topology_refresh=100"));
    ASSERT_OK(rk_cache_store(c, NULL, "{periodic}:a", "1", 1, 60000));
    move_slot_of("periodic");
    /* The refresh runs inside the first call after it is due, and at most once a second: time
     * passing is what is under test here, so the test lets it pass. */
    usleep(1100 * 1000);
    rk_buf out = RK_BUF_INIT;
    ASSERT_RC(rk_cache_retrieve(c, NULL, "{elsewhere}:none", &out), RK_ENOTFOUND);
    atomic_store(&moved_seen, 0);
    rk_set_log_handler(count_moved, NULL);
    ASSERT_OK(rk_cache_retrieve(c, NULL, "{periodic}:a", &out));
    rk_set_log_handler(NULL, NULL);
    ASSERT_EQ(atomic_load(&moved_seen), 0);
    rk_buf_free(&out);
    rk_cache_free(c);
}

/* Past options.max_redirects the call fails, naming the key and the node. */
static void too_many_redirects(void)
{
    rk_cache *c = rkt_open_cache(cfg("options.max_redirects=0"));
    ASSERT_OK(rk_cache_store(c, NULL, "{redirects}:a", "1", 1, 60000));
    move_slot_of("redirects");
    rk_buf out = RK_BUF_INIT;
    ASSERT_RC(rk_cache_retrieve(c, NULL, "{redirects}:a", &out), RK_EREPLY);
    ASSERT_CONTAINS(rk_last_error()->message, "{redirects}:a");
    ASSERT_CONTAINS(rk_last_error()->message, "options.max_redirects=0");
    ASSERT_CONTAINS(rk_last_error()->message, "MOVED to 127.0.0.1:");
    rk_cache_free(c);
}

/* ---- configuration ---- */

static void cluster_true_refuses_a_single_server(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c;
    ASSERT_RC(rkt_try_open_cache(rkt_server_config(&s, "options.cluster=true"), &c), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.cluster=true");
    rk_cache_free(c);
    /* auto (the default) serves it as one server, and so does false. */
    c = rkt_open_cache(rkt_server_config(&s, NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "k", "v", 1, 1000));
    rk_cache_free(c);
    rkt_server_stop(&s);
}

static void cluster_with_a_database_number(void)
{
    rk_cache *c;
    ASSERT_RC(rkt_try_open_cache(cfg("options.db_num=2"), &c), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.db_num");
    rk_cache_free(c);
}

static void cluster_false_sees_redirects_as_errors(void)
{
    char key[64];
    key_on_master(key, sizeof key, "moved", 1);
    char extra[128]; /* one seed, a master that does not serve the key */
    snprintf(extra, sizeof extra, "connection.uri=redis://127.0.0.1:%d;options.cluster=false",
             cluster.node[0].port);
    rk_cache *c = rkt_open_cache(cfg(extra));
    ASSERT_RC(rk_cache_store(c, NULL, key, "v", 1, 1000), RK_EREPLY);
    ASSERT_CONTAINS(rk_last_error()->message, "MOVED");
    rk_cache_free(c);
}

int main(int argc, char **argv)
{
    static const rkt_case cases[] = {
        RKT_CASE(cache_on_every_shard),
        RKT_CASE(lock_and_memolock_on_every_shard),
        RKT_CASE(batches_over_a_thousand_slots),
        RKT_CASE(locks_with_and_without_tags),
        RKT_CASE(semaphore_with_and_without_tags),
        RKT_CASE(memolock_one_fetch_value_and_lock_apart),
        RKT_CASE(memolock_one_fetch_value_and_lock_together),
        RKT_CASE(go_style_waiter_hears_the_value),
        RKT_CASE(reads_from_replicas),
        RKT_CASE(shard_channel_refused_then_dropped),
        RKT_CASE(moved_is_followed_and_learned),
        RKT_CASE(threads_share_nodes_through_a_move),
        RKT_CASE(the_map_is_refreshed_periodically),
        RKT_CASE(too_many_redirects),
        RKT_CASE(cluster_true_refuses_a_single_server),
        RKT_CASE(cluster_with_a_database_number),
        RKT_CASE(cluster_false_sees_redirects_as_errors),
    };
    rkt_cluster_start(&cluster, NULL);
    int rc = rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    rkt_cluster_stop(&cluster);
    return rc;
}
