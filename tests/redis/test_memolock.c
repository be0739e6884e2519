/* rk_memolock against real redis-servers: one fetch per cold id across threads and processes,
 * takeover after a failed or killed winner, external producers, renewal, Pub/Sub loss, timeouts,
 * close, singleflight, and the exact wire names shared with the Go and C# clients. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_env.h"

static int server_port; /* 0: the fixture; else a private server */

static rk_memolock *open_memo(const char *tag, const char *extra)
{
    char buf[512];
    snprintf(buf, sizeof buf, "options.resource_tag=%s;%s", tag, extra ? extra : "");
    rk_config *cfg = rkt_config(buf);
    if (server_port) {
        rk_config_set(cfg, "connection.port", NULL);
        snprintf(buf, sizeof buf, "%d", server_port);
        rk_config_set(cfg, "connection.port", buf);
    }
    return rkt_open_memolock(cfg);
}

static redisContext *raw(void) { return server_port ? rkt_raw_port(server_port) : rkt_raw(); }

/* "<prefix><tag><sep><id>": the names the reference clients use, under our test prefix. */
static const char *name(const char *tag, const char *sep, const char *id)
{
    static _Thread_local char buf[4][256];
    static _Thread_local int next;
    char *b = buf[next++ % 4];
    snprintf(b, 256, "%s%s%s%s", rkt_prefix(), tag, sep, id);
    return b;
}

static long long raw_int(const char *cmd, const char *key)
{
    redisContext *c = raw();
    redisReply *r = rkt_cmd(c, cmd, key, NULL);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : -99;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* A fetch that counts its calls in Redis (so processes share the count) and takes a while. */
typedef struct {
    const char *counter; /* Redis key incremented per call */
    unsigned sleep_ms;
    const char *value;
    uint64_t ttl_ms;
    int fail; /* return this instead of a value when non-zero */
} slow_fetch;

static int fetch_slow(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    slow_fetch *f = ud;
    raw_int("INCR", f->counter);
    usleep(f->sleep_ms * 1000);
    if (f->fail)
        return f->fail;
    *ttl_ms = f->ttl_ms;
    return rk_buf_set(value, f->value, strlen(f->value));
}

static void basic_hit_and_miss(void)
{
    rk_memolock *m = open_memo("query", NULL);
    slow_fetch f = {name("cnt", ":", "basic"), 0, "<query set result basic>", 5000, 0};
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get(m, NULL, "basic", 5000, fetch_slow, &f, &out));
    ASSERT_STR_EQ(out.data, "<query set result basic>");
    ASSERT_OK(rk_memolock_get(m, NULL, "basic", 5000, fetch_slow, &f, &out));
    ASSERT_STR_EQ(out.data, "<query set result basic>");
    ASSERT_EQ(raw_int("GET", f.counter), 1); /* the second call was a hit */
    long long pttl = raw_int("PTTL", name("query", ":", "basic"));
    ASSERT_TRUE(pttl > 0 && pttl <= 5000);
    ASSERT_EQ(raw_int("EXISTS", name("query", "/lock:", "basic")), 0); /* released at once */
    rk_buf_free(&out);
    rk_memolock_free(m);
}

static void ttl_choices(void)
{
    rk_memolock *m = open_memo("ttl", "options.default_ttl=77777");
    slow_fetch forever = {name("cnt", ":", "ttl"), 0, "v", RK_TTL_NONE, 0};
    slow_fetch dflt = {name("cnt", ":", "ttl"), 0, "v", 0, 0};
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get(m, NULL, "forever", 5000, fetch_slow, &forever, &out));
    ASSERT_EQ(raw_int("PTTL", name("ttl", ":", "forever")), -1);
    ASSERT_OK(rk_memolock_get(m, NULL, "default", 5000, fetch_slow, &dflt, &out));
    long long pttl = raw_int("PTTL", name("ttl", ":", "default"));
    ASSERT_TRUE(pttl > 70000 && pttl <= 77777);
    raw_int("DEL", name("ttl", ":", "forever"));
    rk_buf_free(&out);
    rk_memolock_free(m);
}

/* ---- 64 threads and 8 processes, one cold id: one fetch, the same bytes everywhere ---- */

enum { THREADS = 64, PROCS = 8 };
static pthread_barrier_t barrier;
static rk_memolock *shared;
static slow_fetch stampede_fetch;

static void *stampede_thread(void *arg)
{
    rk_buf out = RK_BUF_INIT;
    pthread_barrier_wait(&barrier);
    ASSERT_OK(rk_memolock_get(shared, NULL, "hot", 20000, fetch_slow, &stampede_fetch, &out));
    ASSERT_STR_EQ(out.data, "the one value");
    rk_buf_free(&out);
    (void)arg;
    return NULL;
}

static void stampede_process(int go_fd)
{
    char c;
    rk_memolock *m = open_memo("stampede", NULL); /* its own handle: a different "host" */
    rk_buf out = RK_BUF_INIT;
    ASSERT_EQ(read(go_fd, &c, 1), 1);
    ASSERT_OK(rk_memolock_get(m, NULL, "hot", 20000, fetch_slow, &stampede_fetch, &out));
    ASSERT_STR_EQ(out.data, "the one value");
    rk_buf_free(&out);
    rk_memolock_free(m);
}

static void stampede_threads_and_processes(void)
{
    int go[2];
    pid_t pids[PROCS];
    pthread_t t[THREADS];
    stampede_fetch = (slow_fetch){name("cnt", ":", "stampede"), 300, "the one value", 10000, 0};
    ASSERT_EQ(pipe(go), 0);
    (void)rkt_prefix();
    for (int i = 0; i < PROCS; i++)
        if ((pids[i] = fork()) == 0) {
            close(go[1]);
            stampede_process(go[0]);
            _exit(0);
        }
    close(go[0]);
    shared = open_memo("stampede", NULL);
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, stampede_thread, NULL);
    ASSERT_EQ(write(go[1], "gggggggg", PROCS), PROCS); /* release everyone at once */
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < PROCS; i++) {
        int status;
        ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(go[1]);
    ASSERT_EQ(raw_int("GET", stampede_fetch.counter), 1);
    pthread_barrier_destroy(&barrier);
    rk_memolock_free(shared);
}

/* ---- the winner fails: its caller gets the error, a waiter elsewhere takes over ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool in_fetch, may_fail;
    int calls;
} gate;

static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0};

static int fetch_gated_fail(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud, (void)value, (void)ttl_ms;
    pthread_mutex_lock(&g.mu);
    g.in_fetch = true;
    pthread_cond_broadcast(&g.cv);
    while (!g.may_fail)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    return 42;
}

static int fetch_count(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    pthread_mutex_lock(&g.mu);
    g.calls++;
    pthread_mutex_unlock(&g.mu);
    *ttl_ms = 5000;
    return rk_buf_set(value, "second try", 10);
}

typedef struct {
    rk_memolock *m;
    const char *id;
    uint64_t timeout_ms;
    rk_memolock_fetch_fn fn;
    void *ud;
    int rc;
    rk_buf out;
    uint64_t elapsed_ms;
} get_job;

static void *get_thread(void *arg)
{
    get_job *j = arg;
    uint64_t t0 = rkt_now_ms();
    j->rc = rk_memolock_get(j->m, NULL, j->id, j->timeout_ms, j->fn, j->ud, &j->out);
    j->elapsed_ms = rkt_now_ms() - t0;
    return NULL;
}

/* Block until `n` clients listen on the id's notification channel. */
static void wait_subscribers(const char *channel, long long n)
{
    redisContext *c = raw();
    rkt_wait_subscribers(c, channel, n);
    redisFree(c);
}

static void winner_failure_hands_over(void)
{
    rk_memolock *a = open_memo("fail", "options.retry_timeout=50"),
                *b = open_memo("fail", "options.retry_timeout=50");
    get_job winner = {a, "x", 10000, fetch_gated_fail, NULL, -1, RK_BUF_INIT, 0};
    get_job waiter = {b, "x", 10000, fetch_count, NULL, -1, RK_BUF_INIT, 0};
    pthread_t tw, tv;
    pthread_create(&tw, NULL, get_thread, &winner);
    pthread_mutex_lock(&g.mu);
    while (!g.in_fetch)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    pthread_create(&tv, NULL, get_thread, &waiter);
    wait_subscribers(name("fail", "/notif:", "x"), 1); /* b waits behind a's lock */
    pthread_mutex_lock(&g.mu);
    g.may_fail = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(tw, NULL);
    pthread_join(tv, NULL);
    ASSERT_EQ(winner.rc, RK_EFETCH);
    ASSERT_OK(waiter.rc);
    ASSERT_STR_EQ(waiter.out.data, "second try");
    ASSERT_EQ(g.calls, 1);
    rk_buf_free(&waiter.out);
    rk_memolock_free(a);
    rk_memolock_free(b);
}

/* Callers sharing one handle share the winner's failure instead of stampeding the backend. */
static int fetch_fail_slow(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)value, (void)ttl_ms;
    atomic_fetch_add((atomic_int *)ud, 1);
    usleep(200 * 1000);
    return 7;
}

static void singleflight_shares_failure(void)
{
    enum { N = 8 };
    atomic_int calls = 0;
    rk_memolock *m = open_memo("sharedfail", NULL);
    get_job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (get_job){m, "y", 10000, fetch_fail_slow, &calls, -1, RK_BUF_INIT, 0};
        pthread_create(&t[i], NULL, get_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ASSERT_EQ(jobs[i].rc, RK_EFETCH);
    }
    ASSERT_EQ(atomic_load(&calls), 1);
    ASSERT_EQ(raw_int("EXISTS", name("sharedfail", "/lock:", "y")), 0);
    rk_memolock_free(m);
}

/* ---- the winner process dies mid-fetch: another completes after the lease expires ---- */

static int fetch_then_hang(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)value, (void)ttl_ms;
    ASSERT_EQ(write(*(int *)ud, "f", 1), 1);
    pause();
    return 1;
}

static void killed_winner_is_replaced(void)
{
    int fds[2];
    char c;
    ASSERT_EQ(pipe(fds), 0);
    (void)rkt_prefix();
    pid_t pid = fork();
    if (pid == 0) {
        rk_memolock *m = open_memo("killed", "options.lock_timeout=500");
        rk_buf out = RK_BUF_INIT;
        rk_memolock_get(m, NULL, "z", 60000, fetch_then_hang, &fds[1], &out);
        _exit(1);
    }
    ASSERT_EQ(read(fds[0], &c, 1), 1); /* the child holds the lock and is fetching */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    rk_memolock *m = open_memo("killed", "options.lock_timeout=500;options.retry_timeout=50");
    rk_buf out = RK_BUF_INIT;
    g.calls = 0;
    uint64_t t0 = rkt_now_ms();
    ASSERT_OK(rk_memolock_get(m, NULL, "z", 10000, fetch_count, NULL, &out));
    ASSERT_STR_EQ(out.data, "second try");
    ASSERT_LT(rkt_now_ms() - t0, 500 + 50 + 1000); /* lease + re-check + slack */
    rk_buf_free(&out);
    rk_memolock_free(m);
    close(fds[0]);
    close(fds[1]);
}

/* ---- an external producer (here redis-cli) sets and publishes the value ---- */

static int start_redis_cli(void *ud)
{
    char cmd[1024];
    const char *id = ud;
    int port = server_port ? server_port : rkt_port();
    snprintf(cmd, sizeof cmd,
             "(sleep 0.1; redis-cli -p %d SET '%s' 'run' PX 10000 >/dev/null;"
             " redis-cli -p %d PUBLISH '%s' 'run' >/dev/null) &",
             port, name("ext", ":", id), port, name("ext", "/notif:", id));
    return system(cmd);
}

static void external_producer(void)
{
    rk_memolock *m = open_memo("ext", "options.retry_timeout=60000");
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get_external(m, NULL, "running", 10000, start_redis_cli,
                                       (void *)"running", &out));
    ASSERT_STR_EQ(out.data, "run");
    ASSERT_EQ(raw_int("EXISTS", name("ext", "/lock:", "running")), 0); /* no cooldown */
    rk_buf_free(&out);
    rk_memolock_free(m);
}

/* ---- the external2 producer is told the names, prefix included, and completes the call ---- */

typedef struct {
    char value_key[256], channel[256];
    unsigned delay_ms; /* before the producer SETs and PUBLISHes; 0: it never does */
    atomic_int starts;
} ext_job;

/* Start redis-cli on exactly the names redkit handed us, as an external producer would. */
static int start_told(void *ud, const char *value_key, const char *channel)
{
    ext_job *j = ud;
    char cmd[1024];
    int port = server_port ? server_port : rkt_port();
    atomic_fetch_add(&j->starts, 1);
    snprintf(j->value_key, sizeof j->value_key, "%s", value_key);
    snprintf(j->channel, sizeof j->channel, "%s", channel);
    if (!j->delay_ms)
        return 0;
    snprintf(cmd, sizeof cmd,
             "(sleep %u.%03u; redis-cli -p %d SET '%s' 'told' PX 10000 >/dev/null;"
             " redis-cli -p %d PUBLISH '%s' 'told' >/dev/null) &",
             j->delay_ms / 1000, j->delay_ms % 1000, port, value_key, port, channel);
    return system(cmd);
}

static void external2_told_the_names(void)
{
    rk_memolock *m = open_memo("ext2", "options.retry_timeout=60000"); /* the PUBLISH ends it */
    ext_job j = {"", "", 100, 0};
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get_external2(m, NULL, "names", 10000, start_told, &j, &out));
    ASSERT_STR_EQ(j.value_key, name("ext2", ":", "names"));
    ASSERT_STR_EQ(j.channel, name("ext2", "/notif:", "names"));
    ASSERT_STR_EQ(out.data, "told");
    ASSERT_EQ(atomic_load(&j.starts), 1);
    ASSERT_EQ(raw_int("EXISTS", name("ext2", "/lock:", "names")), 0);
    raw_int("DEL", name("ext2", ":", "names"));
    rk_buf_free(&out);
    rk_memolock_free(m);
}

/* A producer slower than its lease: the lock expires under the call, whose re-checks every
 * 50 ms find it free, yet the call waits for the producer it started instead of starting
 * another. */
static void external_slower_than_lease_starts_once(void)
{
    rk_memolock *m = open_memo("ext2", "options.lock_timeout=200;options.retry_timeout=50");
    ext_job j = {"", "", 900, 0}; /* four and a half leases */
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get_external2(m, NULL, "slow", 10000, start_told, &j, &out));
    ASSERT_STR_EQ(out.data, "told");
    ASSERT_EQ(atomic_load(&j.starts), 1);
    raw_int("DEL", name("ext2", ":", "slow"));
    rk_buf_free(&out);
    rk_memolock_free(m);
}

/* A producer that never delivers: one start, then RK_ETIMEDOUT at the deadline. */
static void external_never_done_starts_once(void)
{
    rk_memolock *m = open_memo("ext2", "options.lock_timeout=200;options.retry_timeout=50");
    ext_job j = {"", "", 0, 0};
    rk_buf out = RK_BUF_INIT;
    ASSERT_RC(rk_memolock_get_external2(m, NULL, "never", 1500, start_told, &j, &out),
              RK_ETIMEDOUT);
    ASSERT_EQ(atomic_load(&j.starts), 1);
    rk_memolock_free(m);
}

/* ---- renewable fetch longer than its lease; renewal after loss reports it ---- */

typedef struct {
    unsigned rounds;
    bool lose_lock;
    int renew_rc;
    atomic_int calls;
} renew_job;

/* Renewed every 150 ms: a 2000 ms lease leaves a loaded machine (CI runs two tests at once on
 * two cores, under memcheck too) over 1.8 s of slack per renewal; 600 and 1200 ms were once
 * not enough. */
#define LEASE_MS 2000

static int fetch_renewing(void *ud, rk_memolock_renewer *r, rk_buf *value, uint64_t *ttl_ms)
{
    renew_job *j = ud;
    atomic_fetch_add(&j->calls, 1);
    pthread_mutex_lock(&g.mu);
    g.in_fetch = true; /* the lease is taken: the second caller may start */
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (unsigned i = 0; i < j->rounds; i++) {
        usleep(150 * 1000);
        if (j->lose_lock)
            raw_int("DEL", name("renew", "/lock:", "lost"));
        if ((j->renew_rc = rk_memolock_renew(r, LEASE_MS)) != RK_OK)
            return 1;
    }
    *ttl_ms = 5000;
    return rk_buf_set(value, "https://somewhere/report.pdf", 28);
}

static int fetch_renewing_plain(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    return fetch_renewing(ud, NULL, value, ttl_ms);
}

typedef struct {
    rk_memolock *m;
    renew_job *rj;
    int rc;
    rk_buf out;
} renewable_job;

static void *renewable_thread(void *arg)
{
    renewable_job *j = arg;
    j->rc = rk_memolock_get_renewable(j->m, NULL, "long", 10000, fetch_renewing, j->rj, &j->out);
    return NULL;
}

static void renewable_runs_once(void)
{
    rk_memolock *a = open_memo("renew", "options.lock_timeout=2000"),
                *b = open_memo("renew", "options.lock_timeout=2000;options.retry_timeout=50");
    renew_job rj = {24, false, -1, 0}; /* 3600 ms of work on a 2000 ms lease */
    renewable_job winner = {a, &rj, -1, RK_BUF_INIT};
    get_job other = {b, "long", 10000, fetch_renewing_plain, &rj, -1, RK_BUF_INIT, 0};
    pthread_t t;
    g.in_fetch = false;
    pthread_create(&t, NULL, renewable_thread, &winner);
    pthread_mutex_lock(&g.mu);
    while (!g.in_fetch)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    get_thread(&other); /* waits behind a lease that is renewed past its 2000 ms */
    pthread_join(t, NULL);
    ASSERT_OK(winner.rc);
    rk_buf out = winner.out;
    ASSERT_OK(other.rc);
    ASSERT_STR_EQ(out.data, "https://somewhere/report.pdf");
    ASSERT_STR_EQ(other.out.data, "https://somewhere/report.pdf");
    ASSERT_EQ(atomic_load(&rj.calls), 1);
    rk_buf_free(&out);
    rk_buf_free(&other.out);
    rk_memolock_free(a);
    rk_memolock_free(b);
}

static void renew_after_loss(void)
{
    rk_memolock *m = open_memo("renew", NULL);
    renew_job rj = {1, true, -1, 0};
    rk_buf out = RK_BUF_INIT;
    ASSERT_RC(rk_memolock_get_renewable(m, NULL, "lost", 10000, fetch_renewing, &rj, &out),
              RK_EFETCH);
    ASSERT_EQ(rj.renew_rc, RK_ENOTOWNER);
    rk_memolock_free(m);
}

/* ---- Pub/Sub connection killed: the message is lost, the re-check after reconnect finds it ----
 */

static void subscriber_killed_while_waiting(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    server_port = s.port;
    rk_memolock *m = open_memo("sub", "options.retry_timeout=60000");
    redisContext *c = raw();
    freeReplyObject(rkt_cmd(c, "SET", name("sub", "/lock:", "k"), "someone-else", NULL));
    get_job j = {m, "k", 30000, fetch_count, NULL, -1, RK_BUF_INIT, 0};
    pthread_t t;
    pthread_create(&t, NULL, get_thread, &j);
    wait_subscribers(name("sub", "/notif:", "k"), 1);
    /* Kill the subscriber, then produce while it is down: the PUBLISH reaches nobody. */
    freeReplyObject(rkt_cmd(c, "MULTI", NULL));
    freeReplyObject(rkt_cmd(c, "CLIENT", "KILL", "TYPE", "pubsub", NULL));
    freeReplyObject(rkt_cmd(c, "SET", name("sub", ":", "k"), "made meanwhile", NULL));
    freeReplyObject(rkt_cmd(c, "PUBLISH", name("sub", "/notif:", "k"), "made meanwhile", NULL));
    redisReply *r = rkt_cmd(c, "EXEC", NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(r->element[2]->integer, 0); /* the PUBLISH reached nobody */
    freeReplyObject(r);
    pthread_join(t, NULL);
    ASSERT_OK(j.rc);
    ASSERT_STR_EQ(j.out.data, "made meanwhile");
    ASSERT_LT(j.elapsed_ms, 30000); /* not the 60 s polling interval: the reconnect re-check */
    rk_buf_free(&j.out);
    redisFree(c);
    rk_memolock_free(m);
    server_port = 0;
    rkt_server_stop(&s);
}

/* ---- timeouts and close ---- */

static void waiter_times_out(void)
{
    rk_memolock *m = open_memo("slow", NULL);
    raw_int("DEL", name("slow", ":", "t"));
    redisContext *c = raw();
    freeReplyObject(rkt_cmd(c, "SET", name("slow", "/lock:", "t"), "other", "PX", "10000", NULL));
    redisFree(c);
    rk_buf out = RK_BUF_INIT;
    rk_context ctx = {"trace-memo"};
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_memolock_get(m, &ctx, "t", 300, fetch_count, NULL, &out), RK_ETIMEDOUT);
    uint64_t took = rkt_now_ms() - t0;
    ASSERT_ERROR(RK_ETIMEDOUT, "TIMEOUT", "NoResponse");
    ASSERT_STR_EQ(rk_last_error()->trace_id, "trace-memo");
    ASSERT_GE(took, 300);
    ASSERT_LT(took, 2000);
    ASSERT_TRUE(out.data == NULL);
    raw_int("DEL", name("slow", "/lock:", "t"));
    rk_memolock_free(m);
}

static void close_releases_waiters(void)
{
    rk_memolock *m = open_memo("closing", "options.retry_timeout=60000");
    redisContext *c = raw();
    freeReplyObject(
        rkt_cmd(c, "SET", name("closing", "/lock:", "w"), "other", "PX", "60000", NULL));
    redisFree(c);
    enum { N = 4 };
    get_job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (get_job){m, "w", 60000, fetch_count, NULL, -1, RK_BUF_INIT, 0};
        pthread_create(&t[i], NULL, get_thread, &jobs[i]);
    }
    wait_subscribers(name("closing", "/notif:", "w"), 1);
    ASSERT_OK(rk_memolock_close(m, NULL));
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ASSERT_EQ(jobs[i].rc, RK_ENOTOPEN);
        ASSERT_LT(jobs[i].elapsed_ms, 60000);
    }
    raw_int("DEL", name("closing", "/lock:", "w"));
    ASSERT_OK(rk_memolock_open(m, NULL)); /* usable again after re-open */
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get(m, NULL, "w", 5000, fetch_count, NULL, &out));
    rk_buf_free(&out);
    rk_memolock_free(m);
}

/* ---- singleflight: 16 callers in one process, one round trip to Redis ---- */

static long long info_stat(const char *info, const char *cmd, const char *field)
{
    char key[64];
    snprintf(key, sizeof key, "cmdstat_%s:", cmd);
    const char *line = strstr(info, key), *p = line ? strstr(line, field) : NULL;
    return p && p < strchr(line, '\n') ? atoll(p + strlen(field)) : 0;
}

/* Scripts that ran: EVALs plus EVALSHAs that did not fail with NOSCRIPT. */
static long long script_runs(redisContext *c)
{
    redisReply *r = rkt_cmd(c, "INFO", "commandstats", NULL);
    long long n = info_stat(r->str, "eval", "calls=") + info_stat(r->str, "evalsha", "calls=") -
                  info_stat(r->str, "evalsha", "failed_calls=");
    freeReplyObject(r);
    return n;
}

/* The flight's fetch starts its work only once every caller has entered rk_memolock_get, so a
 * slow machine (valgrind) cannot start a caller after the flight landed, as a cache hit. */
enum { SF_CALLERS = 16 };
static atomic_int sf_entered;

static void *sf_thread(void *arg)
{
    atomic_fetch_add(&sf_entered, 1);
    return get_thread(arg);
}

static int fetch_after_all(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    while (atomic_load(&sf_entered) < SF_CALLERS)
        sched_yield();
    return fetch_slow(ud, value, ttl_ms);
}

static void singleflight_one_round_trip(void)
{
    enum { N = SF_CALLERS };
    rkt_server s;
    rkt_server_start(&s, NULL);
    server_port = s.port;
    rk_memolock *m = open_memo("sf", NULL);
    slow_fetch f = {name("cnt", ":", "sf"), 200, "shared", 5000, 0};
    get_job jobs[N];
    pthread_t t[N];
    redisContext *c = raw();
    long long before = script_runs(c);
    atomic_store(&sf_entered, 0);
    for (int i = 0; i < N; i++) {
        jobs[i] = (get_job){m, "one", 10000, fetch_after_all, &f, -1, RK_BUF_INIT, 0};
        pthread_create(&t[i], NULL, sf_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ASSERT_OK(jobs[i].rc);
        ASSERT_STR_EQ(jobs[i].out.data, "shared");
        rk_buf_free(&jobs[i].out);
    }
    ASSERT_EQ(script_runs(c) - before, 2); /* one check and one store for all 16 callers */
    ASSERT_EQ(raw_int("GET", f.counter), 1);
    redisFree(c);
    rk_memolock_free(m);
    server_port = 0;
    rkt_server_stop(&s);
}

/* ---- names on the wire: exactly the reference ones ---- */

static int fetch_inspect(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    redisContext *c = raw();
    redisReply *r = rkt_cmd(c, "GET", name("likes", "/lock:", "kristoff"), NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    ASSERT_EQ(r->len, 32); /* a fresh owner token */
    freeReplyObject(r);
    r = rkt_cmd(c, "PTTL", name("likes", "/lock:", "kristoff"), NULL);
    ASSERT_TRUE(r->integer > 0 && r->integer <= 5000);
    freeReplyObject(r);
    redisFree(c);
    *ttl_ms = 4000;
    return rk_buf_set(value, "42", 2);
}

static void wire_names(void)
{
    rk_memolock *m = open_memo("likes", NULL);
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get(m, NULL, "kristoff", 5000, fetch_inspect, NULL, &out));
    redisContext *c = raw();
    redisReply *r = rkt_cmd(c, "GET", name("likes", ":", "kristoff"), NULL);
    ASSERT_STR_EQ(r->str, "42");
    freeReplyObject(r);
    redisFree(c);
    rk_buf_free(&out);
    rk_memolock_free(m);
}

static void bad_input(void)
{
    rk_memolock *m = open_memo("bad", NULL), *unopened;
    rk_buf out = RK_BUF_INIT;
    ASSERT_RC(rk_memolock_get(m, NULL, NULL, 100, fetch_count, NULL, &out), RK_EINVAL);
    ASSERT_RC(rk_memolock_get(m, NULL, "", 100, fetch_count, NULL, &out), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "id is empty");
    ASSERT_RC(rk_memolock_get(m, NULL, "i", 100, NULL, NULL, &out), RK_EINVAL);
    ASSERT_RC(rk_memolock_get(m, NULL, "i", 100, fetch_count, NULL, NULL), RK_EINVAL);
    ASSERT_RC(rk_memolock_renew(NULL, 100), RK_EINVAL);
    ASSERT_OK(rk_memolock_new(&unopened));
    ASSERT_RC(rk_memolock_get(unopened, NULL, "i", 100, fetch_count, NULL, &out), RK_ENOTOPEN);
    rk_config *cfg = rkt_config(NULL);
    ASSERT_RC(rk_memolock_configure(unopened, cfg), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.resource_tag");
    rk_config_free(cfg);
    rk_memolock_free(unopened);
    rk_memolock_free(m);
}

RKT_MAIN(RKT_CASE(basic_hit_and_miss), RKT_CASE(ttl_choices),
         RKT_CASE(stampede_threads_and_processes), RKT_CASE(winner_failure_hands_over),
         RKT_CASE(singleflight_shares_failure), RKT_CASE(killed_winner_is_replaced),
         RKT_CASE(external_producer), RKT_CASE(external2_told_the_names),
         RKT_CASE(external_slower_than_lease_starts_once),
         RKT_CASE(external_never_done_starts_once), RKT_CASE(renewable_runs_once),
         RKT_CASE(renew_after_loss), RKT_CASE(subscriber_killed_while_waiting),
         RKT_CASE(waiter_times_out), RKT_CASE(close_releases_waiters),
         RKT_CASE(singleflight_one_round_trip), RKT_CASE(wire_names), RKT_CASE(bad_input))
