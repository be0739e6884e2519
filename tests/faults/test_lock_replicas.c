/* options.lock_replicas: a grant counts only once WAIT says enough replicas have it. A master
 * with one replica; the replica paused (SIGSTOP) makes every grant fail to replicate, and such
 * a grant is released, never kept. */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "redis_env.h"

static rkt_server master, replica;

static void start_pair(void)
{
    char extra[64];
    rkt_server_start(&master, NULL);
    snprintf(extra, sizeof extra, "--replicaof 127.0.0.1 %d", master.port);
    rkt_server_start(&replica, extra);
    redisContext *c = rkt_server_admin(&master);
    for (;;) { /* the replica is attached and has caught up */
        redisReply *r = rkt_cmd(c, "WAIT", "1", "100", NULL);
        bool attached = r->integer == 1;
        freeReplyObject(r);
        if (attached)
            break;
    }
    redisFree(c);
}

static rk_lock *open_lock(void)
{
    return rkt_open_lock(rkt_server_config(&master, "options.lock_replicas=1"));
}

static long long exists(const char *key)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    return rkt_server_int(&master, "EXISTS", full);
}

static void granted_when_replicated(void)
{
    rk_lock *l = open_lock();
    bool got = false;
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "r1", 5000, &got));
    ASSERT_TRUE(got);
    ASSERT_OK(rk_lock_release(l, NULL, "r1"));
    ASSERT_OK(rk_lock_acquire(l, NULL, "r1", 5000, 1000));
    ASSERT_OK(rk_lock_release(l, NULL, "r1"));
    rk_lock_free(l);
}

static void refused_while_the_replica_is_paused(void)
{
    rk_lock *l = open_lock();
    kill(replica.pid, SIGSTOP);
    bool got = true;
    ASSERT_RC(rk_lock_try_acquire(l, NULL, "r2", 5000, &got), RK_EIO);
    ASSERT_FALSE(got);
    ASSERT_ERROR(RK_EIO, "LOCK_NOT_REPLICATED", "FailedInvocation");
    ASSERT_CONTAINS(rk_last_error()->message, "0 of the 1 replicas");
    ASSERT_EQ(exists("r2"), 0); /* released, not kept */
    ASSERT_RC(rk_lock_acquire(l, NULL, "r2", 5000, 400), RK_ETIMEDOUT);
    ASSERT_ERROR(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict");
    ASSERT_CONTAINS(rk_last_error()->cause, "replicas asked for (options.lock_replicas)");
    ASSERT_EQ(exists("r2"), 0);
    kill(replica.pid, SIGCONT);
    ASSERT_OK(rk_lock_acquire(l, NULL, "r2", 5000, 5000));
    ASSERT_EQ(exists("r2"), 1);
    ASSERT_OK(rk_lock_release(l, NULL, "r2"));
    rk_lock_free(l);
}

typedef struct {
    rk_lock *l;
    int rc;
} waiter;

static void *wait_for_it(void *arg)
{
    waiter *w = arg;
    w->rc = rk_lock_acquire(w->l, NULL, "r3", 5000, 10000);
    return NULL;
}

/* A waiter handed the lock by a release checks its replication too (the grant was written by
 * the releaser's connection, so the waiter re-asserts it before WAIT). */
static void hand_off_is_checked(void)
{
    rk_lock *a = open_lock(), *b = open_lock();
    ASSERT_OK(rk_lock_acquire(a, NULL, "r3", 5000, 1000));
    waiter w = {b, -1};
    pthread_t t;
    pthread_create(&t, NULL, wait_for_it, &w);
    char queue[128];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%sr3}", rkt_prefix());
    while (rkt_server_int(&master, "LLEN", queue) < 1)
        usleep(1000); /* b is queued */
    ASSERT_OK(rk_lock_release(a, NULL, "r3"));
    pthread_join(t, NULL);
    ASSERT_OK(w.rc);
    ASSERT_OK(rk_lock_release(b, NULL, "r3"));
    rk_lock_free(a);
    rk_lock_free(b);
}

int main(int argc, char **argv)
{
    static const rkt_case cases[] = {
        RKT_CASE(granted_when_replicated),
        RKT_CASE(refused_while_the_replica_is_paused),
        RKT_CASE(hand_off_is_checked),
    };
    start_pair();
    int rc = rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    rkt_server_stop(&replica);
    rkt_server_stop(&master);
    return rc;
}
