/* rk_semaphore against the fixture server: the limit across handles and processes, FIFO
 * hand-offs by notification, leases that end on their own (a SIGKILLed holder), limits that
 * differ between callers, and a namespace apart from the lock's. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_env.h"

/* `<before><prefix><key><after>`: a name as the library builds it. */
static const char *name(const char *before, const char *key, const char *after)
{
    static _Thread_local char buf[160];
    snprintf(buf, sizeof buf, "%s%s%s%s", before, rkt_prefix(), key, after);
    return buf;
}

static long long raw_int(const char *cmd, const char *name)
{
    redisContext *c = rkt_raw();
    redisReply *r = rkt_cmd(c, cmd, name, NULL);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static long long held(const char *key) { return raw_int("ZCARD", name("redkit:sem:{", key, "}")); }

static long long queued(const char *key)
{
    return raw_int("LLEN", name("redkit:sem-queue:{", key, "}"));
}

static rk_semaphore *open_sem(const char *extra)
{
    rk_semaphore *s;
    rk_config *cfg = rkt_config(extra);
    ASSERT_OK(rk_semaphore_new(&s));
    ASSERT_OK(rk_semaphore_configure(s, cfg));
    rk_config_free(cfg);
    ASSERT_OK(rk_semaphore_open(s, NULL));
    return s;
}

static void at_most_limit_handles(void)
{
    rk_semaphore *s[3] = {open_sem(NULL), open_sem(NULL), open_sem(NULL)};
    bool ok;
    ASSERT_OK(rk_semaphore_try_acquire(s[0], NULL, "sem1", 2, 5000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_try_acquire(s[1], NULL, "sem1", 2, 5000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_try_acquire(s[2], NULL, "sem1", 2, 5000, &ok));
    ASSERT_FALSE(ok);
    ASSERT_EQ(held("sem1"), 2);
    /* One permit per key and handle: not entered again. */
    ASSERT_OK(rk_semaphore_try_acquire(s[0], NULL, "sem1", 2, 5000, &ok));
    ASSERT_FALSE(ok);
    ASSERT_RC(rk_semaphore_acquire(s[0], NULL, "sem1", 5, 5000, 100), RK_EINVAL);
    ASSERT_OK(rk_semaphore_release(s[0], NULL, "sem1"));
    ASSERT_OK(rk_semaphore_release(s[0], NULL, "sem1")); /* not held: fine */
    ASSERT_OK(rk_semaphore_try_acquire(s[2], NULL, "sem1", 2, 5000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_release(s[1], NULL, "sem1"));
    ASSERT_OK(rk_semaphore_release(s[2], NULL, "sem1"));
    ASSERT_EQ(held("sem1"), 0);
    rk_stats *st;
    ASSERT_OK(rk_stats_new(&st));
    ASSERT_OK(rk_semaphore_get_stats(s[0], st));
    ASSERT_GE(rk_stats_count(st, RK_HIST_COMMAND), 4); /* its scripts, counted like any command */
    rk_stats_free(st);
    for (int i = 0; i < 3; i++)
        rk_semaphore_free(s[i]);
}

static void bad_arguments(void)
{
    rk_semaphore *s = open_sem(NULL);
    bool ok = true;
    ASSERT_RC(rk_semaphore_try_acquire(s, NULL, "sem2", 0, 5000, &ok), RK_EINVAL);
    ASSERT_FALSE(ok);
    ASSERT_TRUE(strstr(rk_last_error()->message, "limit must be greater than 0") != NULL);
    ASSERT_RC(rk_semaphore_acquire(s, NULL, "sem2", 0, 5000, 100), RK_EINVAL);
    ASSERT_RC(rk_semaphore_acquire(s, NULL, "sem2", 1, 0, 100), RK_EINVAL);
    ASSERT_RC(rk_semaphore_acquire(s, NULL, "", 1, 100, 100), RK_EINVAL);
    ASSERT_RC(rk_semaphore_extend(s, NULL, "sem2", 1000), RK_ENOTOWNER);
    ASSERT_RC(rk_semaphore_try_acquire(NULL, NULL, "sem2", 1, 100, &ok), RK_EINVAL);
    ASSERT_EQ(held("sem2"), 0);
    rk_semaphore_free(s);
    rk_semaphore *closed;
    ASSERT_OK(rk_semaphore_new(&closed));
    ASSERT_RC(rk_semaphore_acquire(closed, NULL, "sem2", 1, 100, 100), RK_ENOTOPEN);
    rk_semaphore_free(closed);
}

static void timeout_leaves_the_queue(void)
{
    rk_semaphore *a = open_sem(NULL), *b = open_sem(NULL);
    ASSERT_OK(rk_semaphore_acquire(a, NULL, "sem3", 1, 5000, 0));
    ASSERT_RC(rk_semaphore_acquire(b, NULL, "sem3", 1, 5000, 0), RK_ETIMEDOUT);
    rk_context ctx = {"t-sem"};
    ASSERT_RC(rk_semaphore_acquire(b, &ctx, "sem3", 1, 5000, 300), RK_ETIMEDOUT);
    ASSERT_ERROR(RK_ETIMEDOUT, "SEMAPHORE_TIMEOUT", "Conflict");
    ASSERT_STR_EQ(rk_last_error()->message,
                  "Acquiring a permit of semaphore sem3 failed on timeout");
    ASSERT_STR_EQ(rk_last_error()->trace_id, "t-sem");
    ASSERT_EQ(queued("sem3"), 0);
    ASSERT_OK(rk_semaphore_release(a, NULL, "sem3"));
    ASSERT_EQ(held("sem3"), 0); /* nobody waiting: the permit is not handed to the gone waiter */
    rk_semaphore_free(a);
    rk_semaphore_free(b);
}

typedef struct {
    rk_semaphore *s;
    const char *key;
    int rc;
} waiter_arg;

static void *waiter(void *p)
{
    waiter_arg *w = p;
    w->rc = rk_semaphore_acquire(w->s, NULL, w->key, 1, 5000, 20000);
    return NULL;
}

/* Waiters poll only every 30 s here: being served in order within the test's time takes the
 * releases' hand-offs. */
static void release_hands_off_in_order(void)
{
    const char *slow = "options.retry_timeout=30000";
    rk_semaphore *holder = open_sem(slow), *w[3] = {open_sem(slow), open_sem(slow), open_sem(slow)};
    ASSERT_OK(rk_semaphore_acquire(holder, NULL, "sem4", 1, 60000, 0));
    pthread_t th[3];
    waiter_arg args[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (waiter_arg){w[i], "sem4", -1};
        ASSERT_EQ(pthread_create(&th[i], NULL, waiter, &args[i]), 0);
        while (queued("sem4") < i + 1) /* queued in this order */
            usleep(1000);
    }
    ASSERT_OK(rk_semaphore_release(holder, NULL, "sem4"));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        ASSERT_OK(args[i].rc);
        ASSERT_EQ(queued("sem4"), 2 - i); /* the others still wait: first come, first served */
        ASSERT_OK(rk_semaphore_release(w[i], NULL, "sem4"));
    }
    ASSERT_EQ(held("sem4"), 0);
    rk_semaphore_free(holder);
    for (int i = 0; i < 3; i++)
        rk_semaphore_free(w[i]);
}

/* The documented rule: each call is admitted while fewer permits than its own limit are held. */
static void limits_belong_to_calls(void)
{
    rk_semaphore *s[4] = {open_sem(NULL), open_sem(NULL), open_sem(NULL), open_sem(NULL)};
    bool ok;
    ASSERT_OK(rk_semaphore_try_acquire(s[0], NULL, "sem5", 2, 5000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_try_acquire(s[1], NULL, "sem5", 2, 5000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_try_acquire(s[2], NULL, "sem5", 2, 5000, &ok));
    ASSERT_FALSE(ok); /* 2 held, limit 2 */
    ASSERT_OK(rk_semaphore_try_acquire(s[2], NULL, "sem5", 3, 5000, &ok));
    ASSERT_TRUE(ok); /* 2 held, limit 3 */
    ASSERT_OK(rk_semaphore_try_acquire(s[3], NULL, "sem5", 1, 5000, &ok));
    ASSERT_FALSE(ok); /* 3 held, limit 1: lowering waits for the holders to leave */
    ASSERT_OK(rk_semaphore_release(s[0], NULL, "sem5"));
    ASSERT_OK(rk_semaphore_release(s[1], NULL, "sem5"));
    ASSERT_OK(rk_semaphore_try_acquire(s[3], NULL, "sem5", 1, 5000, &ok));
    ASSERT_FALSE(ok); /* still 1 held */
    ASSERT_OK(rk_semaphore_release(s[2], NULL, "sem5"));
    ASSERT_OK(rk_semaphore_try_acquire(s[3], NULL, "sem5", 1, 5000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_release(s[3], NULL, "sem5"));
    for (int i = 0; i < 4; i++)
        rk_semaphore_free(s[i]);
}

/* A queued waiter whose limit is reached holds back a later one whose limit is not. */
static void queue_head_holds_back_larger_limits(void)
{
    rk_semaphore *h = open_sem(NULL), *w = open_sem(NULL), *late = open_sem(NULL);
    ASSERT_OK(rk_semaphore_acquire(h, NULL, "sem6", 1, 5000, 0));
    pthread_t th;
    waiter_arg a = {w, "sem6", -1}; /* limit 1 */
    ASSERT_EQ(pthread_create(&th, NULL, waiter, &a), 0);
    while (queued("sem6") < 1)
        usleep(1000);
    bool ok = true;
    ASSERT_OK(rk_semaphore_try_acquire(late, NULL, "sem6", 5, 5000, &ok));
    ASSERT_FALSE(ok);
    ASSERT_OK(rk_semaphore_release(h, NULL, "sem6"));
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_OK(a.rc);
    ASSERT_OK(rk_semaphore_try_acquire(late, NULL, "sem6", 5, 5000, &ok));
    ASSERT_TRUE(ok); /* nobody queued now: 1 held, limit 5 */
    ASSERT_OK(rk_semaphore_release(w, NULL, "sem6"));
    ASSERT_OK(rk_semaphore_release(late, NULL, "sem6"));
    rk_semaphore_free(h);
    rk_semaphore_free(w);
    rk_semaphore_free(late);
}

/* `lock run K` and `lock run K --limit 1` do not exclude each other. */
static void own_namespace(void)
{
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    rk_semaphore *s = open_sem(NULL);
    ASSERT_OK(rk_lock_acquire(l, NULL, "shared", 5000, 0));
    ASSERT_OK(rk_semaphore_acquire(s, NULL, "shared", 1, 5000, 0));
    ASSERT_EQ(held("shared"), 1);
    ASSERT_OK(rk_semaphore_release(s, NULL, "shared"));
    ASSERT_EQ(raw_int("EXISTS", name("", "shared", "")), 1); /* the lock's key is untouched */
    ASSERT_OK(rk_lock_release(l, NULL, "shared"));
    rk_lock_free(l);
    rk_semaphore_free(s);
}

static void extend_and_expire(void)
{
    rk_semaphore *s = open_sem(NULL), *t = open_sem(NULL);
    bool ok;
    ASSERT_OK(rk_semaphore_try_acquire(s, NULL, "sem7", 1, 300, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_extend(s, NULL, "sem7", 60000));
    ASSERT_GE(raw_int("PTTL", name("redkit:sem:{", "sem7", "}")), 30000);
    ASSERT_OK(rk_semaphore_extend(s, NULL, "sem7", 200));
    while (held("sem7") > 0) /* the lease ends on its own: no event to wait for */
        usleep(20000);
    ASSERT_RC(rk_semaphore_extend(s, NULL, "sem7", 1000), RK_ENOTOWNER);
    ASSERT_OK(rk_semaphore_try_acquire(t, NULL, "sem7", 1, 5000, &ok));
    ASSERT_TRUE(ok);
    ASSERT_OK(rk_semaphore_try_acquire(s, NULL, "sem7", 1, 5000, &ok));
    ASSERT_FALSE(ok);
    ASSERT_OK(rk_semaphore_release(t, NULL, "sem7"));
    ASSERT_OK(rk_semaphore_acquire(s, NULL, "sem7", 1, 5000, 0)); /* its old permit is gone */
    ASSERT_OK(rk_semaphore_release(s, NULL, "sem7"));
    rk_semaphore_free(s);
    rk_semaphore_free(t);
}

/* A holder SIGKILLed mid-lease: its permit comes back after its TTL, to a waiter. */
static void killed_holder_permit_returns(void)
{
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    (void)rkt_prefix();
    pid_t pid = fork();
    if (pid == 0) {
        rk_semaphore *s = open_sem(NULL);
        ASSERT_OK(rk_semaphore_acquire(s, NULL, "sem8", 1, 1000, 0));
        ASSERT_EQ(write(ready[1], "x", 1), 1);
        pause();
        _exit(0);
    }
    char x;
    ASSERT_EQ(read(ready[0], &x, 1), 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    rk_semaphore *s = open_sem("options.retry_timeout=50");
    bool ok = true;
    ASSERT_OK(rk_semaphore_try_acquire(s, NULL, "sem8", 1, 5000, &ok));
    ASSERT_FALSE(ok); /* still leased */
    ASSERT_OK(rk_semaphore_acquire(s, NULL, "sem8", 1, 5000, 10000));
    ASSERT_OK(rk_semaphore_release(s, NULL, "sem8"));
    rk_semaphore_free(s);
}

/* 16 processes on a limit of 3: an in-Redis counter of the holders never exceeds 3 (and does
 * reach it), and every process gets all its rounds. */
enum { PROCS = 16, ROUNDS = 8, LIMIT = 3 };

typedef struct {
    _Atomic long long max;
    _Atomic int over, rounds;
} tally;

static void holder_worker(tally *t)
{
    rk_semaphore *s = open_sem("options.retry_timeout=50");
    redisContext *c = rkt_raw();
    const char *counter = name("", "sem9:holders", "");
    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_OK(rk_semaphore_acquire(s, NULL, "sem9", LIMIT, 10000, 60000));
        redisReply *r = rkt_cmd(c, "INCR", counter, NULL);
        long long n = r->integer, m = atomic_load(&t->max);
        freeReplyObject(r);
        while (n > m && !atomic_compare_exchange_weak(&t->max, &m, n))
            ;
        if (n > LIMIT)
            atomic_fetch_add(&t->over, 1);
        usleep(3000); /* the work: long enough for others to pile up */
        freeReplyObject(rkt_cmd(c, "DECR", counter, NULL));
        ASSERT_OK(rk_semaphore_release(s, NULL, "sem9"));
        atomic_fetch_add(&t->rounds, 1);
    }
    redisFree(c);
    rk_semaphore_free(s);
}

static void sixteen_processes_limit_three(void)
{
    tally *t = rkt_shared_alloc(sizeof *t);
    pid_t pids[PROCS];
    (void)rkt_prefix(); /* fix the key prefix before forking: every worker shares it */
    for (int i = 0; i < PROCS; i++) {
        if ((pids[i] = fork()) == 0) {
            holder_worker(t);
            _exit(0);
        }
    }
    for (int i = 0; i < PROCS; i++) {
        int status;
        ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ASSERT_EQ(atomic_load(&t->over), 0);
    ASSERT_EQ(atomic_load(&t->max), LIMIT);
    ASSERT_EQ(atomic_load(&t->rounds), PROCS * ROUNDS);
    ASSERT_EQ(held("sem9"), 0);
    ASSERT_EQ(queued("sem9"), 0);
    munmap(t, sizeof *t);
}

RKT_MAIN(RKT_CASE(at_most_limit_handles), RKT_CASE(bad_arguments),
         RKT_CASE(timeout_leaves_the_queue), RKT_CASE(release_hands_off_in_order),
         RKT_CASE(limits_belong_to_calls), RKT_CASE(queue_head_holds_back_larger_limits),
         RKT_CASE(own_namespace), RKT_CASE(extend_and_expire),
         RKT_CASE(killed_holder_permit_returns), RKT_CASE(sixteen_processes_limit_three))
