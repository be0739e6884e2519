/* Redis Sentinel, end to end on private servers: 1 master, 1 replica and 3 sentinels (quorum 2)
 * started here, a cache and a lock that find the master through the sentinels, a failover
 * (SENTINEL FAILOVER) that calls live through, and sentinels that do not answer. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_env.h"

#define MASTER "mymaster"
#define SENTINELS 3

static rkt_server master, replica, sentinels[SENTINELS];
static bool started;

static void stop_all(void)
{
    for (int i = 0; i < SENTINELS; i++)
        rkt_server_stop(&sentinels[i]);
    rkt_server_stop(&replica);
    rkt_server_stop(&master);
}

/* The value of `field` in a flat [field, value, ...] reply (SENTINEL MASTER), or -1. */
static long long field(const redisReply *r, const char *name)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, name))
            return atoll(r->element[i + 1]->str);
    return -1;
}

/* Every sentinel knows the replica and the two other sentinels (hello messages, every 2 s). */
static void wait_sentinels_ready(void)
{
    uint64_t until = rkt_now_ms() + 30000;
    for (int i = 0; i < SENTINELS; i++) {
        redisContext *c = rkt_server_admin(&sentinels[i]);
        for (;;) {
            redisReply *r = rkt_cmd(c, "SENTINEL", "MASTER", MASTER, NULL);
            bool ready = field(r, "num-slaves") == 1 && field(r, "num-other-sentinels") == 2;
            freeReplyObject(r);
            if (ready)
                break;
            if (rkt_now_ms() > until)
                rkt_fail(__FILE__, __LINE__,
                         "sentinel %d did not see the replica and the other "
                         "sentinels within 30 s",
                         sentinels[i].port);
            usleep(100000);
        }
        redisFree(c);
    }
}

static void start_all(void)
{
    char args[64], conf[512];
    if (started)
        return;
    started = true;
    atexit(stop_all);
    rkt_server_start(&master, NULL);
    snprintf(args, sizeof args, "--replicaof 127.0.0.1 %d", master.port);
    rkt_server_start(&replica, args);
    snprintf(conf, sizeof conf,
             "sentinel monitor " MASTER " 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds " MASTER " 1000\n"
             "sentinel failover-timeout " MASTER " 5000\n",
             master.port);
    for (int i = 0; i < SENTINELS; i++)
        rkt_server_start_conf(&sentinels[i], conf, "--sentinel");
    wait_sentinels_ready();
}

/* connection.uri listing the sentinels, plus `extra`. */
static rk_config *sentinel_config(const char *extra)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "connection.uri=redis://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d;"
             "options.sentinel_master=" MASTER ";options.prefix=%s;%s",
             sentinels[0].port, sentinels[1].port, sentinels[2].port, rkt_prefix(),
             extra ? extra : "");
    return rkt_settings(buf);
}

/* The port the sentinel names for the master. */
static int named_port(const rkt_server *sentinel)
{
    redisContext *c = rkt_server_admin(sentinel);
    redisReply *r = rkt_cmd(c, "SENTINEL", "get-master-addr-by-name", MASTER, NULL);
    int port = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : -1;
    freeReplyObject(r);
    redisFree(c);
    return port;
}

/* Whether `key` (prefixed) holds a value on the server. */
static bool has_key(const rkt_server *s, const char *key)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    return rkt_server_int(s, "EXISTS", full) == 1;
}

static bool is_master(const rkt_server *s)
{
    redisContext *c = rkt_server_admin(s);
    redisReply *r = rkt_cmd(c, "ROLE", NULL);
    bool yes =
        r->type == REDIS_REPLY_ARRAY && r->elements > 0 && !strcmp(r->element[0]->str, "master");
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

/* The server that is the master now (the sentinels agree on it). */
static const rkt_server *current_master(void)
{
    int port = named_port(&sentinels[0]);
    return port == master.port ? &master : &replica;
}

/* ---- cases ---- */

static void store_and_retrieve(void)
{
    start_all();
    rk_cache *c = rkt_open_cache(sentinel_config(NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "basic", "v1", 2, 60000));
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, "basic", &out));
    ASSERT_EQ(out.len, 2);
    ASSERT_MEM_EQ(out.data, "v1", 2);
    rk_buf_free(&out);
    ASSERT_TRUE(has_key(current_master(), "basic")); /* on the master the sentinels name */
    rk_cache_free(c);
}

static void unknown_master_name(void)
{
    start_all();
    char buf[512];
    snprintf(buf, sizeof buf,
             "connection.uri=redis://127.0.0.1:%d,127.0.0.1:%d;options.sentinel_master=nosuch",
             sentinels[0].port, sentinels[1].port);
    rk_cache *c;
    ASSERT_RC(rkt_try_open_cache(rkt_settings(buf), &c), RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, "do not know a master named 'nosuch'");
    rk_cache_free(c);
}

/* ---- a failover under load ---- */

typedef struct loader {
    rk_cache *cache;
    atomic_bool stop;
    atomic_long ok;
    long failed;
    long lost; /* a value read back missing: written to the old master as it was demoted */
    char first_error[300];
} loader;

static void *load(void *arg)
{
    loader *l = arg;
    for (unsigned i = 0; !atomic_load(&l->stop); i++) {
        char key[32], val[16];
        snprintf(key, sizeof key, "load:%u", i % 32);
        int n = snprintf(val, sizeof val, "%u", i);
        int rc = rk_cache_store(l->cache, NULL, key, val, (size_t)n, 60000);
        rk_buf out = RK_BUF_INIT;
        if (rc == RK_OK)
            rc = rk_cache_retrieve(l->cache, NULL, key, &out);
        rk_buf_free(&out);
        if (rc == RK_OK) {
            atomic_fetch_add(&l->ok, 1);
        } else if (rc == RK_ENOTFOUND) {
            /* The store reached the old master after the replica was promoted and before the
             * sentinels announced it (+switch-master, when the client switches), and the read
             * went to the new one: replication is asynchronous, and Sentinel loses such a
             * write (docs/RELIABILITY.md). Only a call in that moment can meet it. */
            l->lost++;
        } else if (l->failed++ == 0) {
            snprintf(l->first_error, sizeof l->first_error, "%s: %s", rk_last_error()->name,
                     rk_last_error()->message);
        }
        usleep(2000);
    }
    return NULL;
}

/* A lock waiter blocked across the failover: its subscriber must follow the master. */
typedef struct waiter {
    rk_lock *lock;
    int rc;
    uint64_t done_at;
} waiter;

static void *wait_lock(void *arg)
{
    waiter *w = arg;
    w->rc = rk_lock_acquire(w->lock, NULL, "failover-lock", 30000, 25000);
    w->done_at = rkt_now_ms();
    return NULL;
}

/* Connections subscribed to a lock inbox on `s`. */
static long long inbox_subscribers(const rkt_server *s)
{
    redisContext *c = rkt_server_admin(s);
    redisReply *r = rkt_cmd(c, "PUBSUB", "CHANNELS", "redkit:lock-wake:*", NULL);
    long long n = r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static void wait_for(bool (*cond)(const void *), const void *arg, uint64_t ms, const char *what)
{
    uint64_t until = rkt_now_ms() + ms;
    while (!cond(arg)) {
        if (rkt_now_ms() > until)
            rkt_fail(__FILE__, __LINE__, "%s: not within %llu ms", what, (unsigned long long)ms);
        usleep(20000);
    }
}

static bool all_name(const void *arg)
{
    int port = *(const int *)arg;
    for (int i = 0; i < SENTINELS; i++)
        if (named_port(&sentinels[i]) != port)
            return false;
    return true;
}

static bool has_inbox(const void *arg) { return inbox_subscribers(arg) >= 1; }

static void failover(const rkt_server *to)
{
    redisContext *c = rkt_server_admin(&sentinels[1]);
    uint64_t until = rkt_now_ms() + 20000;
    for (;;) { /* NOGOODSLAVE until the sentinel has its replica's INFO */
        redisReply *r = rkt_cmd(c, "SENTINEL", "FAILOVER", MASTER, NULL);
        bool ok = r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (ok)
            break;
        if (rkt_now_ms() > until)
            rkt_fail(__FILE__, __LINE__, "SENTINEL FAILOVER was refused for 20 s");
        usleep(200000);
    }
    redisFree(c);
    wait_for(all_name, &to->port, 20000, "every sentinel names the new master");
}

static void calls_live_through_a_failover(void)
{
    start_all();
    const rkt_server *old = current_master(), *next = old == &master ? &replica : &master;
    loader l = {.cache = rkt_open_cache(sentinel_config("options.timeout=10000"))};
    rk_lock *holder = rkt_open_lock(sentinel_config(NULL));
    waiter w = {.lock = rkt_open_lock(sentinel_config("options.timeout=10000"))};
    pthread_t load_thread, wait_thread;
    ASSERT_OK(rk_lock_acquire(holder, NULL, "failover-lock", 30000, 1000));
    atomic_init(&l.stop, false);
    atomic_init(&l.ok, 0);
    pthread_create(&load_thread, NULL, load, &l);
    pthread_create(&wait_thread, NULL, wait_lock, &w);
    wait_for(has_inbox, old, 10000, "the waiter listens on the old master");

    failover(next);
    uint64_t named_at = rkt_now_ms();
    /* The client switches when a sentinel announces it (+switch-master), which each one has
     * done by now: from then on, every write lands on the new master. (Without that, writes
     * would go on to the old master, alive, until the sentinels turn it into a replica.) */
    char key[32];
    uint64_t until = named_at + 3000;
    for (unsigned i = 0;; i++) {
        snprintf(key, sizeof key, "probe:%u", i);
        ASSERT_OK(rk_cache_store(l.cache, NULL, key, "x", 1, 60000));
        if (has_key(next, key))
            break;
        if (rkt_now_ms() > until)
            rkt_fail(__FILE__, __LINE__,
                     "writes still miss the new master 3 s after the sentinels named it");
        usleep(50000);
    }
    for (unsigned i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "after:%u", i);
        ASSERT_OK(rk_cache_store(l.cache, NULL, key, "y", 1, 60000));
        ASSERT_TRUE(has_key(next, key));
    }
    ASSERT_TRUE(is_master(next));
    wait_for(has_inbox, next, 10000, "the waiter's subscriber follows the master");

    long before = atomic_load(&l.ok);
    usleep(300000);
    ASSERT_GE(atomic_load(&l.ok), before + 10); /* still going */
    atomic_store(&l.stop, true);
    pthread_join(load_thread, NULL);
    if (l.failed)
        rkt_fail(__FILE__, __LINE__, "%ld calls failed across the failover, the first: %s",
                 l.failed, l.first_error);
    /* One store and read every 2 ms: at most the pair in flight at the switch meets it. */
    printf("     %ld store+retrieve pairs, %ld lost at the switch\n", atomic_load(&l.ok), l.lost);
    ASSERT_LT(l.lost, 2);

    uint64_t released = rkt_now_ms();
    ASSERT_OK(rk_lock_release(holder, NULL, "failover-lock"));
    pthread_join(wait_thread, NULL);
    ASSERT_OK(w.rc);
    ASSERT_LT(w.done_at - released, 2000); /* handed over, not found by a late poll */
    ASSERT_OK(rk_lock_release(w.lock, NULL, "failover-lock"));
    rk_lock_free(w.lock);
    rk_lock_free(holder);
    rk_cache_free(l.cache);
}

/* SIGKILL of the master: calls fail on it until the sentinels agree it is down (1 s) and
 * promote the replica; they find the new master themselves and the load sees no failure. */
static void calls_live_through_a_master_crash(void)
{
    start_all();
    rkt_server *old = (rkt_server *)current_master(), *next = old == &master ? &replica : &master;
    loader l = {.cache = rkt_open_cache(sentinel_config("options.timeout=10000"))};
    pthread_t load_thread;
    atomic_init(&l.stop, false);
    atomic_init(&l.ok, 0);
    pthread_create(&load_thread, NULL, load, &l);
    usleep(200000);
    rkt_server_kill(old);
    wait_for(all_name, &next->port, 20000, "every sentinel names the new master");
    long before = atomic_load(&l.ok);
    uint64_t until = rkt_now_ms() + 5000;
    while (atomic_load(&l.ok) < before + 20 && rkt_now_ms() < until)
        usleep(10000);
    ASSERT_GE(atomic_load(&l.ok), before + 20);
    atomic_store(&l.stop, true);
    pthread_join(load_thread, NULL);
    if (l.failed)
        rkt_fail(__FILE__, __LINE__, "%ld calls failed across the crash, the first: %s", l.failed,
                 l.first_error);
    ASSERT_OK(rk_cache_store(l.cache, NULL, "after-crash", "z", 1, 60000));
    ASSERT_TRUE(has_key(next, "after-crash"));
    rk_cache_free(l.cache);
    /* back as a replica of the new master, for the cases after this one */
    rkt_server_restart(old);
}

/* ---- sentinels that do not answer ---- */

/* A loopback socket that accepts connections (the kernel does) and never answers. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ASSERT_TRUE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 8) == 0 &&
                getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void no_sentinel_answers(void)
{
    int dead[2] = {rkt_free_port(), rkt_free_port()}, silent;
    int fd = silent_listener(&silent);
    char buf[512], names[128];
    snprintf(buf, sizeof buf,
             "connection.uri=redis://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d;"
             "options.sentinel_master=" MASTER ";options.connect_timeout=300;options.retries=1",
             dead[0], silent, dead[1]);
    rk_cache *c;
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rkt_try_open_cache(rkt_settings(buf), &c), RK_ENOCONN);
    uint64_t took = rkt_now_ms() - t0;
    ASSERT_ERROR(RK_ENOCONN, "NO_CONNECTION", "NoResponse");
    snprintf(names, sizeof names,
             "sentinels 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d: none answered", dead[0], silent,
             dead[1]);
    ASSERT_CONTAINS(rk_last_error()->message, names);
    /* two rounds (options.retries=1), the silent one bounded by options.connect_timeout each */
    ASSERT_GE(took, 600);
    ASSERT_LT(took, 3000);
    rk_cache_free(c);
    close(fd);
}

RKT_MAIN(RKT_CASE(store_and_retrieve), RKT_CASE(unknown_master_name),
         RKT_CASE(calls_live_through_a_failover), RKT_CASE(calls_live_through_a_master_crash),
         RKT_CASE(no_sentinel_answers))
