/* Fork safety: handles opened (and used) before fork() keep working in both the parent and the
 * child, without the two processes sharing a connection or the child inheriting the parent's
 * lock ownership or its subscriber thread (which does not exist in the child). The child ends
 * with _exit, and alarm() turns a hung child into a failure. Results cross back to the parent in
 * shared memory (MAP_SHARED before fork) and the child's exit status. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_env.h"

enum { CHILD_ALARM_S = 40 };

/* The child's exit status, failing on a crash, a hang (SIGALRM) or a non-zero exit. */
static int wait_child(pid_t pid)
{
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        rkt_fail(__FILE__, __LINE__, "the child was killed by signal %d%s", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (alarm: it hung)" : "");
    ASSERT_TRUE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static redisReply *raw(const rkt_server *s, const char *cmd, const char *key)
{
    redisContext *c = rkt_raw_port(s->port);
    redisReply *r = rkt_cmd(c, cmd, key, NULL);
    redisFree(c);
    return r;
}

/* ---- cache: both processes hammer the handle opened before fork ---- */

enum { PAIRS = 10000, BUDGET_MS = 25000 }; /* per process: 20,000 pairs in all */

typedef struct {
    int pairs, mismatches, errors;
    bool over_budget;
    char first_mismatch[128], first_error[256];
} tally;

/* Store "<pid>:<i>" under our own key and read it back, PAIRS times. Another process's value,
 * or a reply meant for it, is a mismatch. */
static void hammer(rk_cache *c, tally *t)
{
    char key[32], want[32];
    rk_buf got = RK_BUF_INIT;
    uint64_t t0 = rkt_now_ms();
    snprintf(key, sizeof key, "fork:%d", (int)getpid());
    for (int i = 0; i < PAIRS; i++) {
        if (rkt_now_ms() - t0 > BUDGET_MS) {
            t->over_budget = true;
            break;
        }
        size_t len = (size_t)snprintf(want, sizeof want, "%d:%d", (int)getpid(), i);
        t->pairs++;
        if (rk_cache_store(c, NULL, key, want, len, 60000) != RK_OK ||
            rk_cache_retrieve(c, NULL, key, &got) != RK_OK) {
            if (t->errors++ == 0)
                snprintf(t->first_error, sizeof t->first_error, "%s: %s", rk_last_error()->name,
                         rk_last_error()->message);
            continue;
        }
        if (got.len != len || memcmp(got.data, want, len)) {
            if (t->mismatches++ == 0)
                snprintf(t->first_mismatch, sizeof t->first_mismatch, "wanted %s, got %.*s", want,
                         (int)(got.len < 64 ? got.len : 64), got.data);
        }
    }
    rk_buf_free(&got);
}

static void print_tally(const char *who, const tally *t)
{
    printf("     %s: %d pairs, %d mismatches, %d errors%s\n", who, t->pairs, t->mismatches,
           t->errors, t->over_budget ? ", stopped at the time budget" : "");
    if (t->mismatches)
        printf("       first mismatch: %s\n", t->first_mismatch);
    if (t->errors)
        printf("       first error: %s\n", t->first_error);
}

static void cache_shared_by_parent_and_child(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, "options.timeout=2000"));
    ASSERT_OK(rk_cache_store(c, NULL, "before-fork", "x", 1, 60000)); /* a pooled connection */
    tally parent = {0}, *child = rkt_shared_alloc(sizeof *child);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        hammer(c, child);
        _exit(child->errors || child->over_budget ? 2 : child->mismatches ? 1 : 0);
    }
    ASSERT_TRUE(pid > 0);
    hammer(c, &parent);
    int status = wait_child(pid);
    print_tally("parent", &parent);
    print_tally("child", child);
    printf("     child exit status %d\n", status);
    ASSERT_EQ(parent.mismatches, 0);
    ASSERT_EQ(parent.errors, 0);
    ASSERT_FALSE(parent.over_budget);
    ASSERT_EQ(status, 0);
    munmap(child, sizeof *child);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* ---- lock: the child does not inherit the parent's ownership ---- */

typedef struct {
    int token_rc;          /* rk_lock_token on the parent's key */
    int release_rc;        /* rk_lock_release on the parent's key */
    int acquire_rc;        /* a key of its own */
    int own_token_rc;      /* rk_lock_token on it */
    int own_release_rc;    /* and its release */
    char own_message[256]; /* rk_last_error() after a failure of its own key */
} lock_report;

static void lock_child(rk_lock *l, lock_report *r)
{
    char token[RK_LOCK_TOKEN_SIZE];
    r->token_rc = rk_lock_token(l, "parents", token);
    r->release_rc = rk_lock_release(l, NULL, "parents");
    r->acquire_rc = rk_lock_acquire(l, NULL, "childs", 10000, 2000);
    r->own_token_rc = rk_lock_token(l, "childs", token);
    r->own_release_rc = rk_lock_release(l, NULL, "childs");
    if (r->acquire_rc || r->own_token_rc || r->own_release_rc)
        snprintf(r->own_message, sizeof r->own_message, "%s", rk_last_error()->message);
}

static const char *full(const char *key)
{
    static char buf[2][256];
    static int next;
    char *b = buf[next++ % 2];
    snprintf(b, 256, "%s%s", rkt_prefix(), key);
    return b;
}

static void lock_ownership_not_inherited(void)
{
    rkt_server s;
    char token[RK_LOCK_TOKEN_SIZE];
    rkt_server_start(&s, NULL);
    rk_lock *l = rkt_open_lock(rkt_server_config(&s, NULL));
    ASSERT_OK(rk_lock_acquire(l, NULL, "parents", 30000, 0));
    ASSERT_OK(rk_lock_token(l, "parents", token));
    lock_report *r = rkt_shared_alloc(sizeof *r);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        lock_child(l, r);
        _exit(0);
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(wait_child(pid), 0);
    printf("     child: token of the parent's key %s (%d), its release %s (%d); own key: "
           "acquire %d, token %d, release %d %s\n",
           rk_strerror(r->token_rc), r->token_rc, rk_strerror(r->release_rc), r->release_rc,
           r->acquire_rc, r->own_token_rc, r->own_release_rc, r->own_message);
    redisReply *held = raw(&s, "GET", full("parents"));
    printf("     the parent's lock after the child: %s\n",
           held->type == REDIS_REPLY_STRING ? held->str : "(gone)");
    ASSERT_EQ(r->token_rc, RK_ENOTOWNER); /* the child holds nothing */
    ASSERT_EQ(r->release_rc, RK_OK);      /* releasing what one does not hold is not an error */
    ASSERT_TRUE(held->type == REDIS_REPLY_STRING);
    ASSERT_STR_EQ(held->str, token); /* ...and it left the parent's lock alone */
    freeReplyObject(held);
    ASSERT_EQ(r->acquire_rc, RK_OK); /* the inherited handle works for the child's own keys */
    ASSERT_EQ(r->own_token_rc, RK_OK);
    ASSERT_EQ(r->own_release_rc, RK_OK);
    ASSERT_EQ(rkt_server_int(&s, "EXISTS", full("childs")), 0);
    ASSERT_OK(rk_lock_release(l, NULL, "parents")); /* the parent still owns its lock */
    ASSERT_EQ(rkt_server_int(&s, "EXISTS", full("parents")), 0);
    munmap(r, sizeof *r);
    rk_lock_free(l);
    rkt_server_stop(&s);
}

/* ---- memolock: in use in the parent (its subscriber thread runs, a call waits), then in the
 * child ---- */

#define TAG "fk"

static const char *memo_name(const char *kind, const char *id)
{
    static char buf[3][256];
    static int next;
    char *b = buf[next++ % 3];
    snprintf(b, 256, "%s" TAG "%s%s", rkt_prefix(), kind, id);
    return b;
}

static int fetch_pid(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    char text[32];
    *ttl_ms = 60000;
    return rk_buf_set(value, text, (size_t)snprintf(text, sizeof text, "fetched by %d", getpid()));
}

/* Bounded PUBSUB NUMSUB wait: false if nobody subscribed to `channel` within `ms`. */
static bool subscribed_within(const rkt_server *s, const char *channel, uint64_t ms)
{
    redisContext *c = rkt_raw_port(s->port);
    bool seen = false;
    for (uint64_t until = rkt_now_ms() + ms; !seen && rkt_now_ms() < until;) {
        redisReply *r = rkt_cmd(c, "PUBSUB", "NUMSUB", channel, NULL);
        seen = r->element[1]->integer >= 1;
        freeReplyObject(r);
        if (!seen)
            usleep(1000);
    }
    redisFree(c);
    return seen;
}

/* What an external producer does for the waiters: SET the value, then PUBLISH it. */
static void produce(const rkt_server *s, const char *id, const char *value)
{
    redisContext *c = rkt_raw_port(s->port);
    freeReplyObject(rkt_cmd(c, "SET", memo_name(":", id), value, "PX", "60000", NULL));
    freeReplyObject(rkt_cmd(c, "PUBLISH", memo_name("/notif:", id), value, NULL));
    redisFree(c);
}

/* A winner that is still computing: its lock, held by hand. */
static void hold_lock(const rkt_server *s, const char *id)
{
    redisContext *c = rkt_raw_port(s->port);
    freeReplyObject(
        rkt_cmd(c, "SET", memo_name("/lock:", id), "someone-else", "PX", "60000", NULL));
    redisFree(c);
}

typedef struct {
    rk_memolock *m;
    const char *id;
    pthread_t thread;
    int rc;
    rk_buf out;
} get_job;

static void *get_thread(void *arg)
{
    get_job *j = arg;
    j->rc = rk_memolock_get(j->m, NULL, j->id, 20000, fetch_pid, NULL, &j->out);
    return NULL;
}

/* Start a get of `id` in a thread of the parent, waiting (through its subscription) for a
 * value only produce() will give it. */
static void start_waiting(const rkt_server *s, get_job *j, rk_memolock *m, const char *id)
{
    *j = (get_job){m, id, 0, -1, RK_BUF_INIT};
    hold_lock(s, id);
    pthread_create(&j->thread, NULL, get_thread, j);
    ASSERT_TRUE(subscribed_within(s, memo_name("/notif:", id), 5000));
}

static void finish_waiting(const rkt_server *s, get_job *j)
{
    produce(s, j->id, "published");
    pthread_join(j->thread, NULL);
    ASSERT_EQ(j->rc, RK_OK);
    ASSERT_STR_EQ(j->out.data, "published");
    rk_buf_free(&j->out);
}

/* The parent with its memolock in use at the fork: a call already served by the subscriber, and
 * one still waiting (`pending`), so the subscriber thread and connection are busy. */
typedef struct {
    rkt_server s;
    rk_memolock *m;
    get_job pending;
} memo_parent;

static void memo_parent_start(memo_parent *p)
{
    get_job warm;
    rkt_server_start(&p->s, NULL);
    p->m = rkt_open_memolock(rkt_server_config(&p->s, "options.resource_tag=" TAG));
    start_waiting(&p->s, &warm, p->m, "warm");
    finish_waiting(&p->s, &warm);
    start_waiting(&p->s, &p->pending, p->m, "pending");
}

/* After the child: the call that waited across the fork gets its value, and the handle still
 * fetches and still hears publications. */
static void memo_parent_check(memo_parent *p)
{
    char want[32];
    rk_buf out = RK_BUF_INIT;
    get_job after;
    finish_waiting(&p->s, &p->pending);
    ASSERT_OK(rk_memolock_get(p->m, NULL, "parent-fresh", 10000, fetch_pid, NULL, &out));
    snprintf(want, sizeof want, "fetched by %d", (int)getpid());
    ASSERT_STR_EQ(out.data, want);
    rk_buf_free(&out);
    start_waiting(&p->s, &after, p->m, "parent-after");
    finish_waiting(&p->s, &after);
    rk_memolock_free(p->m);
    rkt_server_stop(&p->s);
}

typedef struct {
    int fetch_rc, stored_rc, wait_rc;
    char fetched[64], stored[64], waited[64];
} memo_report;

static void copy_value(char *dst, size_t cap, int rc, const rk_buf *v)
{
    snprintf(dst, cap, "%s", rc == RK_OK && v->data ? v->data : "");
}

/* In the child: a fresh id (its own fetch runs) and an id the parent stored before fork. */
static void memo_child(rk_memolock *m, memo_report *r)
{
    rk_buf out = RK_BUF_INIT;
    r->fetch_rc = rk_memolock_get(m, NULL, "fresh", 10000, fetch_pid, NULL, &out);
    copy_value(r->fetched, sizeof r->fetched, r->fetch_rc, &out);
    r->stored_rc = rk_memolock_get(m, NULL, "stored", 10000, fetch_pid, NULL, &out);
    copy_value(r->stored, sizeof r->stored, r->stored_rc, &out);
    rk_buf_free(&out);
}

/* Run `child(m, r)` in a child process (alarm-bounded, then _exit(0)); returns its pid. */
static pid_t fork_memo_child(void (*child)(rk_memolock *, memo_report *), rk_memolock *m,
                             memo_report *r)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        child(m, r);
        _exit(0);
    }
    ASSERT_TRUE(pid > 0);
    return pid;
}

static void memolock_works_in_child(void)
{
    memo_parent p;
    char want[32];
    memo_parent_start(&p);
    redisContext *c = rkt_raw_port(p.s.port);
    freeReplyObject(rkt_cmd(c, "SET", memo_name(":", "stored"), "stored before fork", NULL));
    redisFree(c);
    memo_report *r = rkt_shared_alloc(sizeof *r);
    pid_t pid = fork_memo_child(memo_child, p.m, r);
    ASSERT_EQ(wait_child(pid), 0);
    printf("     child: fresh id %d \"%s\", stored id %d \"%s\"\n", r->fetch_rc, r->fetched,
           r->stored_rc, r->stored);
    snprintf(want, sizeof want, "fetched by %d", (int)pid);
    ASSERT_EQ(r->fetch_rc, RK_OK);
    ASSERT_STR_EQ(r->fetched, want);
    ASSERT_EQ(r->stored_rc, RK_OK);
    ASSERT_STR_EQ(r->stored, "stored before fork");
    memo_parent_check(&p);
    munmap(r, sizeof *r);
}

/* In the child, a waiter behind a winner that is still computing gets the value the winner
 * publishes, through its own subscription (wire format: waiters SUBSCRIBE, then re-check). */
static void memo_child_waits(rk_memolock *m, memo_report *r)
{
    rk_buf out = RK_BUF_INIT;
    r->wait_rc = rk_memolock_get(m, NULL, "awaited", 10000, fetch_pid, NULL, &out);
    copy_value(r->waited, sizeof r->waited, r->wait_rc, &out);
    rk_buf_free(&out);
}

static void memolock_child_waiter_is_notified(void)
{
    memo_parent p;
    memo_parent_start(&p);
    hold_lock(&p.s, "awaited");
    memo_report *r = rkt_shared_alloc(sizeof *r);
    pid_t pid = fork_memo_child(memo_child_waits, p.m, r);
    /* Publish once the child listens; if it never does, publish anyway so that it can finish. */
    uint64_t t0 = rkt_now_ms();
    bool subscribed = subscribed_within(&p.s, memo_name("/notif:", "awaited"), 5000);
    uint64_t waited = rkt_now_ms() - t0;
    produce(&p.s, "awaited", "published");
    ASSERT_EQ(wait_child(pid), 0);
    printf("     the child %s after %" PRIu64 " ms; its get: %d \"%s\"\n",
           subscribed ? "subscribed" : "had not subscribed", waited, r->wait_rc, r->waited);
    ASSERT_TRUE(subscribed);
    ASSERT_EQ(r->wait_rc, RK_OK);
    ASSERT_STR_EQ(r->waited, "published");
    memo_parent_check(&p);
    munmap(r, sizeof *r);
}

/* ---- the child closes and frees what it inherited; the parent's handles are unaffected ---- */

static void child_closes_and_frees(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&s, NULL));
    rk_lock *l = rkt_open_lock(rkt_server_config(&s, NULL));
    rk_memolock *m = rkt_open_memolock(rkt_server_config(&s, "options.resource_tag=" TAG));
    rk_buf v = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get(m, NULL, "before", 5000, fetch_pid, NULL, &v));
    ASSERT_OK(rk_lock_acquire(l, NULL, "held", 30000, 0));
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        int rc = rk_cache_close(c, NULL) | rk_lock_close(l, NULL) | rk_memolock_close(m, NULL);
        rk_cache_free(c);
        rk_lock_free(l);
        rk_memolock_free(m);
        _exit(rc == RK_OK ? 0 : 1);
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(wait_child(pid), 0);
    /* The child's close shut nothing of the parent's down, and released none of its locks. */
    ASSERT_EQ(rkt_server_int(&s, "EXISTS", full("held")), 1);
    ASSERT_OK(rk_cache_store(c, NULL, "after", "x", 1, 10000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "after", &v));
    ASSERT_STR_EQ(v.data, "x");
    ASSERT_OK(rk_memolock_get(m, NULL, "after", 5000, fetch_pid, NULL, &v));
    ASSERT_OK(rk_lock_release(l, NULL, "held"));
    ASSERT_EQ(rkt_server_int(&s, "EXISTS", full("held")), 0);
    rk_buf_free(&v);
    rk_cache_free(c);
    rk_lock_free(l);
    rk_memolock_free(m);
    rkt_server_stop(&s);
}

RKT_MAIN(RKT_CASE(cache_shared_by_parent_and_child), RKT_CASE(lock_ownership_not_inherited),
         RKT_CASE(memolock_works_in_child), RKT_CASE(memolock_child_waiter_is_notified),
         RKT_CASE(child_closes_and_frees))
