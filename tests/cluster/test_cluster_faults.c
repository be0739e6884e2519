/* A Redis Cluster changing under load: a master SIGKILLed (its replica promoted), a manual
 * CLUSTER FAILOVER, a slot migrated while processes take a lock in it, and a batch with a node
 * down. Every case starts from a settled cluster and leaves one behind. */
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_env.h"

static rkt_cluster cluster;

static rk_config *cfg(const char *extra) { return rkt_cluster_config(&cluster, extra); }

/* ---- load from 4 threads ---- */

#define THREADS 4
#define KEYS 64

typedef struct {
    rk_cache *cache;
    int id;
    uint64_t timeout_ms; /* options.timeout: the deadline of each call */
    atomic_bool *stop;
    long ok, failed;
    uint64_t worst_ms; /* the longest call */
    int first_code;    /* of the first failure */
    char first_message[256];
} loader;

static void *load(void *arg)
{
    loader *l = arg;
    for (unsigned i = 0; !atomic_load(l->stop); i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "load:%d:%u", l->id, i % KEYS);
        int n = snprintf(val, sizeof val, "%u", i);
        uint64_t t0 = rkt_now_ms();
        int rc = rk_cache_store(l->cache, NULL, key, val, (size_t)n, 60000);
        rk_buf out = RK_BUF_INIT;
        if (rc == RK_OK)
            rc = rk_cache_retrieve(l->cache, NULL, key, &out);
        if (rc == RK_OK && (out.len != (size_t)n || memcmp(out.data, val, (size_t)n)))
            rkt_fail(__FILE__, __LINE__, "%s read back %.*s, not %s", key, (int)out.len,
                     out.data ? out.data : "", val);
        rk_buf_free(&out);
        uint64_t took = rkt_now_ms() - t0;
        if (took > l->worst_ms)
            l->worst_ms = took;
        if (rc == RK_OK) {
            __atomic_fetch_add(&l->ok, 1, __ATOMIC_RELAXED); /* load_progress() reads it */
            continue;
        }
        if (l->failed++ == 0) {
            l->first_code = rc;
            snprintf(l->first_message, sizeof l->first_message, "%s", rk_last_error()->message);
        }
    }
    return NULL;
}

typedef struct {
    loader l[THREADS];
    pthread_t t[THREADS];
    atomic_bool stop;
} load_run;

static void load_start(load_run *r, rk_cache *c, uint64_t timeout_ms)
{
    atomic_init(&r->stop, false);
    for (int i = 0; i < THREADS; i++) {
        r->l[i] = (loader){.cache = c, .id = i, .timeout_ms = timeout_ms, .stop = &r->stop};
        pthread_create(&r->t[i], NULL, load, &r->l[i]);
    }
}

/* Let the load run until every thread has done `more` more successful operations. */
static void load_progress(load_run *r, long more)
{
    long target[THREADS];
    for (int i = 0; i < THREADS; i++)
        target[i] = __atomic_load_n(&r->l[i].ok, __ATOMIC_RELAXED) + more;
    for (int i = 0; i < THREADS; i++)
        while (__atomic_load_n(&r->l[i].ok, __ATOMIC_RELAXED) < target[i])
            usleep(1000);
}

static void load_stop(load_run *r, long *ok, long *failed, uint64_t *worst)
{
    atomic_store(&r->stop, true);
    *ok = *failed = 0, *worst = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(r->t[i], NULL);
        *ok += r->l[i].ok, *failed += r->l[i].failed;
        if (r->l[i].worst_ms > *worst)
            *worst = r->l[i].worst_ms;
        if (r->l[i].failed)
            printf("     thread %d: first failure %d: %s\n", i, r->l[i].first_code,
                   r->l[i].first_message);
    }
}

/* A master dies: calls on its shard fail before their deadline, clearly, or wait for the
 * promotion; once the replica is master every call succeeds again. */
static void master_killed_under_load(void)
{
    rk_cache *c = rkt_open_cache(cfg("options.timeout=2000;options.connect_timeout=500"));
    load_run r;
    load_start(&r, c, 2000);
    load_progress(&r, 50);
    int victim = rkt_cluster_master_of(&cluster, "anything-on-the-first-master{a}");
    ASSERT_GE(victim, 0);
    rkt_server_kill(&cluster.node[victim]);
    rkt_cluster_wait_promoted(&cluster, victim, 30000);
    load_progress(&r, 1); /* the load went on */
    long ok, failed;
    uint64_t worst;
    load_stop(&r, &ok, &failed, &worst);
    printf("     during the failover: %ld ok, %ld failed, longest call %llu ms\n", ok, failed,
           (unsigned long long)worst);
    /* Two calls (store + retrieve), each bounded by options.timeout, plus scheduling slack. */
    ASSERT_LT(worst, 2 * 2000 + 1000);
    for (int i = 0; i < THREADS; i++)
        if (r.l[i].failed) {
            ASSERT_TRUE(r.l[i].first_code == RK_EIO || r.l[i].first_code == RK_ETIMEDOUT ||
                        r.l[i].first_code == RK_EREPLY);
            ASSERT_TRUE(strlen(r.l[i].first_message) > 10);
        }
    /* Promoted: every key of every shard works again. */
    for (int i = 0; i < 3 * KEYS; i++) {
        char key[32];
        snprintf(key, sizeof key, "after:%d", i);
        ASSERT_OK(rk_cache_store(c, NULL, key, "v", 1, 60000));
    }
    rk_cache_free(c);
    rkt_server_restart(&cluster.node[victim]); /* it comes back as a replica */
    rkt_cluster_wait_ok(&cluster, 30000);
}

/* A replica takes over by CLUSTER FAILOVER (no data loss): no call fails. */
static void manual_failover_under_load(void)
{
    rk_cache *c = rkt_open_cache(cfg(NULL));
    load_run r;
    load_start(&r, c, 30000);
    load_progress(&r, 50);
    int master = rkt_cluster_master_of(&cluster, "x{b}");
    int replica = rkt_cluster_replica_of(&cluster, master);
    ASSERT_GE(replica, 0);
    redisContext *raw = rkt_raw_port(cluster.node[replica].port);
    redisReply *rep = rkt_cmd(raw, "CLUSTER", "FAILOVER", NULL);
    ASSERT_EQ(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(raw);
    while (rkt_cluster_master_of(&cluster, "x{b}") != replica)
        usleep(10 * 1000); /* CLUSTER SLOTS is the only word of it */
    rkt_cluster_wait_ok(&cluster, 30000);
    load_progress(&r, 50);
    long ok, failed;
    uint64_t worst;
    load_stop(&r, &ok, &failed, &worst);
    printf("     across the failover: %ld ok, %ld failed, longest call %llu ms\n", ok, failed,
           (unsigned long long)worst);
    ASSERT_EQ(failed, 0);
    rk_cache_free(c);
}

/* ---- a slot migrated while 4 processes take a lock in it ---- */

typedef struct {
    atomic_int inside, overlaps, asks, tryagains, errors;
    atomic_bool stop;
    atomic_int grants;
    char first_error[256];
} shared_state;

static shared_state *shared;

static void count_redirects(void *ud, int level, const char *message)
{
    (void)ud, (void)level;
    if (strstr(message, "ASK slot"))
        atomic_fetch_add(&shared->asks, 1);
    if (strstr(message, "TRYAGAIN from"))
        atomic_fetch_add(&shared->tryagains, 1);
}

static void count_error(void)
{
    if (atomic_fetch_add(&shared->errors, 1) == 0)
        snprintf(shared->first_error, sizeof shared->first_error, "%s", rk_last_error()->message);
}

static void lock_worker(const char *key)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no worker behind */
    rk_set_log_handler(count_redirects, NULL);
    rk_lock *l = rkt_open_lock(cfg("options.lock_fencing=true;options.retry_timeout=20"));
    while (!atomic_load(&shared->stop)) {
        if (rk_lock_acquire(l, NULL, key, 5000, 20000) != RK_OK) {
            count_error();
            continue;
        }
        if (atomic_fetch_add(&shared->inside, 1) != 0)
            atomic_fetch_add(&shared->overlaps, 1);
        usleep(300);
        atomic_fetch_sub(&shared->inside, 1);
        atomic_fetch_add(&shared->grants, 1);
        if (rk_lock_release(l, NULL, key) != RK_OK)
            count_error();
    }
    rk_lock_free(l);
}

static void wait_grants(int more)
{
    int target = atomic_load(&shared->grants) + more;
    uint64_t t0 = rkt_now_ms();
    while (atomic_load(&shared->grants) < target) {
        if (rkt_now_ms() - t0 > 30000)
            rkt_fail(__FILE__, __LINE__, "no progress: %d grants, %d ASK, %d TRYAGAIN, %d errors: %s",
                     atomic_load(&shared->grants), atomic_load(&shared->asks),
                     atomic_load(&shared->tryagains), atomic_load(&shared->errors),
                     shared->first_error);

        usleep(1000);
    }
}

/* Until *counter reaches `n`, or `ms` pass. */
static void wait_count(atomic_int *counter, int n, uint64_t ms)
{
    uint64_t until = rkt_now_ms() + ms;
    while (atomic_load(counter) < n && rkt_now_ms() < until)
        usleep(1000);
}

static void slot_migrated_under_a_lock(void)
{
    shared = rkt_shared_alloc(sizeof *shared);
    char key[64], full[128];
    snprintf(key, sizeof key, "mig:{slot-under-test}");
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    int slot = rkt_cluster_keyslot("slot-under-test", 15);
    int from = rkt_cluster_owner(&cluster, slot), to = -1;
    for (int s = 0; to < 0 && s < RKT_CLUSTER_SLOTS; s += 1000) /* another master */
        if (rkt_cluster_owner(&cluster, s) != from)
            to = rkt_cluster_owner(&cluster, s);
    ASSERT_GE(from, 0);
    ASSERT_GE(to, 0);
    pid_t pids[4];
    for (int p = 0; p < 4; p++)
        if ((pids[p] = fork()) == 0) {
            lock_worker(key);
            _exit(0);
        }
    wait_grants(40);
    rkt_cluster_slot_begin(&cluster, slot, from, to);
    /* One key at a time, as a slow resharding would, the lock going round meanwhile. While the
     * lock's keys are split between the nodes its scripts meet TRYAGAIN; once the source has
     * none of them (all moved, the slot still MIGRATING) they meet ASK. Each state is held
     * until the clients have met it (or, for a split, a moment: a split may not last). */
    while (rkt_cluster_slot_migrate_some(&cluster, slot, from, to, 1) > 0)
        wait_count(&shared->tryagains, 1, 300);
    wait_count(&shared->asks, 1, 30000);
    rkt_cluster_slot_finish(&cluster, slot, from, to);
    wait_grants(40); /* and on, at the new owner */
    atomic_store(&shared->stop, true);
    for (int p = 0; p < 4; p++) {
        int status;
        ASSERT_EQ(waitpid(pids[p], &status, 0), pids[p]);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    printf("     %d grants, %d overlaps, %d ASK, %d TRYAGAIN, %d errors %s\n",
           atomic_load(&shared->grants), atomic_load(&shared->overlaps),
           atomic_load(&shared->asks), atomic_load(&shared->tryagains),
           atomic_load(&shared->errors), shared->first_error);
    ASSERT_EQ(atomic_load(&shared->overlaps), 0);
    ASSERT_EQ(atomic_load(&shared->errors), 0);
    ASSERT_GE(atomic_load(&shared->asks), 1);
    ASSERT_GE(atomic_load(&shared->tryagains), 1);
    ASSERT_EQ(rkt_cluster_owner(&cluster, slot), to);
}

/* ---- a batch with a node down ---- */

static void batch_with_a_node_down(void)
{
    rk_cache *c = rkt_open_cache(cfg("options.timeout=1000;options.connect_timeout=300"));
    static char keys[300][16];
    rk_cache_entry e[300];
    for (int i = 0; i < 300; i++) {
        snprintf(keys[i], sizeof keys[i], "batch:%d", i);
        e[i] = (rk_cache_entry){keys[i], "v", 1, 60000};
    }
    ASSERT_OK(rk_cache_store_many(c, NULL, e, 300));
    int victim = rkt_cluster_master_of(&cluster, "down{c}");
    char port[16];
    snprintf(port, sizeof port, ":%d", cluster.node[victim].port);
    kill(cluster.node[victim].pid, SIGSTOP); /* no answer, and no failover within the call */
    ASSERT_RC(rk_cache_store_many(c, NULL, e, 300), RK_ETIMEDOUT);
    ASSERT_CONTAINS(rk_last_error()->message, port); /* the error names the node */
    kill(cluster.node[victim].pid, SIGCONT);
    ASSERT_OK(rk_cache_store_many(c, NULL, e, 300));
    rk_cache_free(c);
}

int main(int argc, char **argv)
{
    static const rkt_case cases[] = {
        RKT_CASE(batch_with_a_node_down),
        RKT_CASE(slot_migrated_under_a_lock),
        RKT_CASE(manual_failover_under_load),
        RKT_CASE(master_killed_under_load),
    };
    rkt_cluster_start(&cluster, NULL);
    int rc = rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    rkt_cluster_stop(&cluster);
    return rc;
}
