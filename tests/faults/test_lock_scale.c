/* rk_lock with many processes on one key, against private redis-servers: a waiter killed in the
 * queue must not cost the next one the killed waiter's lease, a holder stopped past its lease
 * is fenced off by its number, and clients that only poll (pip-services ports: SET NX PX,
 * retried) must get turns on a key redkit waiters hand to each other. Processes report through
 * memory shared before fork() and their exit status; times are CLOCK_MONOTONIC, which every process
 * on the machine shares. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_env.h"

/* How long a test waits for Redis to show a state it is arranging (a waiter queued). */
enum { STATE_WAIT_MS = 5000 };

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void write_byte(int fd, char c) { ASSERT_EQ(write(fd, &c, 1), 1); }

static ssize_t read_byte(int fd, char *c)
{
    ssize_t n;
    while ((n = read(fd, c, 1)) < 0 && errno == EINTR)
        ;
    return n;
}

/* The lock key as sent: this process's prefix (shared by its children) and `key`. */
static const char *full(const char *key)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s%s", rkt_prefix(), key);
    return buf;
}

/* Poll until `n` waiters are queued for `key` (docs/wire-format.md: the lock queue). */
static void wait_queued(const rkt_server *s, const char *key, long long n)
{
    char queue[160];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%s}", full(key));
    uint64_t deadline = rkt_now_ms() + STATE_WAIT_MS;
    long long have;
    while ((have = rkt_server_int(s, "LLEN", queue)) != n) {
        if (rkt_now_ms() >= deadline)
            rkt_fail(__FILE__, __LINE__, "%s holds %lld waiters after %d ms, expected %lld", queue,
                     have, STATE_WAIT_MS, n);
        sleep_ms(1);
    }
}

/* The child's exit status, failing when a signal ended it. */
static int wait_child(pid_t pid)
{
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        rkt_fail(__FILE__, __LINE__, "child %d was killed by signal %d", (int)pid,
                 WTERMSIG(status));
    ASSERT_TRUE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* ---- a killed waiter is skipped at once ---- */

/* The killed waiter's lease is what the next waiter would wait out if the release handed the
 * lock to the dead process; the next waiter's own timeout ends the test well before it. */
enum { DEAD_TTL = 30000, LIVE_WAIT = 20000, NEXT_BOUND_MS = 100 };

typedef struct {
    int rc;                  /* the live waiter's rk_lock_acquire */
    uint64_t returned_at_ms; /* when that call returned */
    char error[256];         /* rk_last_error() when it failed */
} waiter_report;

/* D: queue for the lock and never come back (the parent SIGKILLs it while it waits). Its poll
 * interval is a minute, so its heartbeat in the queue is still current when the holder
 * releases: only a check that its process is gone can skip it, not a stale heartbeat. */
static void doomed_waiter(const rkt_server *s)
{
    rk_lock *l = rkt_open_lock(rkt_server_config(s, "options.retry_timeout=60000"));
    rk_lock_acquire(l, NULL, "dead", DEAD_TTL, LIVE_WAIT);
}

/* L: wait behind D, report when the call returned, and give the lock back. */
static void live_waiter(const rkt_server *s, waiter_report *rep)
{
    rk_lock *l = rkt_open_lock(rkt_server_config(s, NULL));
    rep->rc = rk_lock_acquire(l, NULL, "dead", DEAD_TTL, LIVE_WAIT);
    rep->returned_at_ms = rkt_now_ms();
    if (rep->rc != RK_OK)
        snprintf(rep->error, sizeof rep->error, "%s: %s", rk_last_error()->name,
                 rk_last_error()->message);
    else
        ASSERT_OK(rk_lock_release(l, NULL, "dead"));
    rk_lock_free(l);
}

static void killed_waiter_is_skipped(void)
{
    rkt_server s;
    int status;
    rkt_server_start(&s, NULL);
    (void)rkt_prefix(); /* shared by the children */
    waiter_report *rep = rkt_shared_alloc(sizeof *rep);
    rk_lock *holder = rkt_open_lock(rkt_server_config(&s, NULL));
    ASSERT_OK(rk_lock_acquire(holder, NULL, "dead", DEAD_TTL, 0));
    pid_t dead = fork();
    if (dead == 0) {
        doomed_waiter(&s);
        _exit(0);
    }
    ASSERT_TRUE(dead > 0);
    wait_queued(&s, "dead", 1);
    pid_t live = fork();
    if (live == 0) {
        live_waiter(&s, rep);
        _exit(0);
    }
    ASSERT_TRUE(live > 0);
    wait_queued(&s, "dead", 2); /* D first, L behind it */
    uint64_t killed_at = rkt_now_ms();
    ASSERT_EQ(kill(dead, SIGKILL), 0);
    ASSERT_EQ(waitpid(dead, &status, 0), dead);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    uint64_t released_at = rkt_now_ms();
    ASSERT_OK(rk_lock_release(holder, NULL, "dead"));
    ASSERT_EQ(wait_child(live), 0);
    /* A lock handed to the killed waiter is still held, with the rest of its 30 s lease. */
    if (rep->rc != RK_OK)
        rkt_fail(__FILE__, __LINE__,
                 "the live waiter did not get the lock: %s (%d), %" PRIu64
                 " ms after the release; the key is still held for %lld ms (PTTL)",
                 rep->error, rep->rc, rep->returned_at_ms - released_at,
                 rkt_server_int(&s, "PTTL", full("dead")));
    uint64_t took = rep->returned_at_ms - released_at;
    printf("     the live waiter got the lock %" PRIu64 " ms after the release (released %" PRIu64
           " ms after the kill)\n",
           took, released_at - killed_at);
    ASSERT_LT(took, NEXT_BOUND_MS);
    ASSERT_EQ(rkt_server_int(&s, "EXISTS", full("dead")),
              0); /* its release freed it: nobody holds it */
    rk_lock_free(holder);
    munmap(rep, sizeof *rep);
    rkt_server_stop(&s);
}

/* ---- fencing: the store refuses a holder whose lease ended ---- */

enum { FENCED_TTL = 500 };

/* The store: a hash that takes a write only with a fencing number above the highest it has
 * seen, as the resource a lock protects should. */
static const char store_script[] =
    "if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'fence') or '0') then "
    "redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2]) return 1 "
    "else return 0 end";

/* 1 if the store took `value`, written with fencing number `n`; 0 if it refused it. */
static long long store_write(const rkt_server *s, uint64_t n, const char *value)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, n);
    redisContext *c = rkt_raw_port(s->port);
    redisReply *r = rkt_cmd(c, "EVAL", store_script, "1", full("store"), num, value, NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER);
    long long took = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return took;
}

/* The store's field, "" when absent. */
static void store_field(const rkt_server *s, const char *field, char *out, size_t cap)
{
    redisContext *c = rkt_raw_port(s->port);
    redisReply *r = rkt_cmd(c, "HGET", full("store"), field, NULL);
    snprintf(out, cap, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
}

typedef struct {
    uint64_t number; /* the stale holder's fencing number */
    long long wrote; /* the store's answer to its write after SIGCONT; -1 until then */
} stale_report;

/* The child: take the lock for 500 ms, read its number, and stop before writing (a GC pause, a
 * swapped-out process, a stopped VM); once resumed, past its lease, write with that number. */
static void stale_holder(const rkt_server *s, stale_report *rep)
{
    /* A stopped process outlives a failed test (only SIGKILL or SIGCONT reaches it): it dies
     * with the parent instead. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rk_lock *l = rkt_open_lock(rkt_server_config(s, "options.lock_fencing=true"));
    ASSERT_OK(rk_lock_acquire(l, NULL, "fenced", FENCED_TTL, 0));
    ASSERT_OK(rk_lock_fencing_token(l, "fenced", &rep->number));
    raise(SIGSTOP);
    rep->wrote = store_write(s, rep->number, "stale");
    rk_lock_free(l);
}

/* Poll until `key` is gone (expired or deleted). */
static void wait_gone(const rkt_server *s, const char *key)
{
    uint64_t deadline = rkt_now_ms() + STATE_WAIT_MS;
    while (rkt_server_int(s, "EXISTS", full(key)) != 0) {
        if (rkt_now_ms() >= deadline)
            rkt_fail(__FILE__, __LINE__, "%s still exists after %d ms", full(key), STATE_WAIT_MS);
        sleep_ms(1);
    }
}

static void fencing_rejects_stale_holder(void)
{
    rkt_server s;
    int status;
    char value[64], fence[32], mine_str[32];
    rkt_server_start(&s, NULL);
    (void)rkt_prefix(); /* shared by the child */
    stale_report *rep = rkt_shared_alloc(sizeof *rep);
    rep->wrote = -1;
    pid_t pid = fork();
    if (pid == 0) {
        stale_holder(&s, rep);
        _exit(0);
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(waitpid(pid, &status, WUNTRACED), pid);
    if (!WIFSTOPPED(status))
        rkt_fail(__FILE__, __LINE__, "the holder ended before it stopped itself (status 0x%x)",
                 (unsigned)status);
    wait_gone(&s, "fenced"); /* its lease ran out: nobody released it */
    rk_lock *l = rkt_open_lock(rkt_server_config(&s, "options.lock_fencing=true"));
    ASSERT_OK(rk_lock_acquire(l, NULL, "fenced", 10000, 5000));
    uint64_t mine = 0;
    ASSERT_OK(rk_lock_fencing_token(l, "fenced", &mine));
    ASSERT_LT(rep->number, mine);
    ASSERT_EQ(store_write(&s, mine, "fresh"), 1);
    ASSERT_EQ(kill(pid, SIGCONT), 0);
    ASSERT_EQ(wait_child(pid), 0);
    ASSERT_EQ(rep->wrote, 0); /* refused: its number is below the one the store has seen */
    store_field(&s, "value", value, sizeof value);
    store_field(&s, "fence", fence, sizeof fence);
    snprintf(mine_str, sizeof mine_str, "%" PRIu64, mine);
    ASSERT_STR_EQ(value, "fresh");
    ASSERT_STR_EQ(fence, mine_str);
    printf("     the stopped holder's number %" PRIu64
           " was refused after the new holder's %" PRIu64 "\n",
           rep->number, mine);
    ASSERT_OK(rk_lock_release(l, NULL, "fenced"));
    rk_lock_free(l);
    munmap(rep, sizeof *rep);
    rkt_server_stop(&s);
}

/* ---- room for clients that poll ---- */

enum {
    WORKERS = 4,            /* redkit processes contending in a loop */
    RUN_MS = 3000,          /* how long they contend */
    WORKER_TTL = 5000,      /* their lease, far beyond a 1 ms hold */
    WORKER_WAIT = 5000,     /* their acquire timeout */
    POLL_EVERY_MS = 100,    /* the poller's retry interval (pip-services retryTimeout) */
    POLL_GIVE_UP_MS = 3000, /* the poller's acquire timeout */
    MIN_POLLER_TURNS = 5    /* with the option on, over RUN_MS */
};

#define POLLER_LEASE_MS "3000"

/* One run, shared by the parent, the workers and the poller. */
typedef struct {
    _Atomic uint64_t deadline_ms; /* nobody starts an acquisition after it */
    atomic_int inside;            /* processes inside the critical section right now */
    atomic_int overlaps;          /* entries that found another process inside */
    atomic_int worker_turns, worker_failures;
    char worker_error[256]; /* the first failure, written by whoever counted it first */
    /* Written by the poller only. */
    int poller_turns, poller_timeouts, poller_lost;
    uint64_t poller_longest_wait_ms;
} contention;

/* Every process, redkit or poller, enters through here: the counter shows any overlap. */
static void critical_section(contention *c)
{
    if (atomic_fetch_add(&c->inside, 1) != 0)
        atomic_fetch_add(&c->overlaps, 1);
    sleep_ms(1); /* the hold */
    atomic_fetch_sub(&c->inside, 1);
}

/* Tell the parent we are connected, then wait until it closes the gate (EOF), so that every
 * process starts together, after the deadline is set. */
static void start_gate(int ready_fd, int gate_fd)
{
    char c;
    write_byte(ready_fd, 'r');
    ASSERT_EQ(read_byte(gate_fd, &c), 0);
}

static void worker_failed(contention *c, int rc)
{
    if (atomic_fetch_add(&c->worker_failures, 1) == 0)
        snprintf(c->worker_error, sizeof c->worker_error, "%s (%d): %s", rk_last_error()->name, rc,
                 rk_last_error()->message);
}

/* A redkit process: acquire, hold 1 ms, release, think 1 ms, until the run ends. */
static void worker(const rkt_server *s, contention *c, const char *key, const char *extra,
                   int ready_fd, int gate_fd)
{
    rk_lock *l = rkt_open_lock(rkt_server_config(s, extra));
    start_gate(ready_fd, gate_fd);
    while (rkt_now_ms() < atomic_load(&c->deadline_ms)) {
        int rc = rk_lock_acquire(l, NULL, key, WORKER_TTL, WORKER_WAIT);
        if (rc != RK_OK) {
            worker_failed(c, rc);
            continue;
        }
        critical_section(c);
        atomic_fetch_add(&c->worker_turns, 1);
        ASSERT_OK(rk_lock_release(l, NULL, key));
        sleep_ms(1); /* think */
    }
    rk_lock_free(l);
}

/* The pip-services acquire attempt: SET NX PX with our token. */
static bool poll_once(redisContext *r, const char *key, const char *token)
{
    redisReply *rep = rkt_cmd(r, "SET", key, token, "NX", "PX", POLLER_LEASE_MS, NULL);
    bool ok = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return ok;
}

/* The pip-services release: delete the key only if it still holds our token; WATCH makes the
 * GET and the DEL one step. False when the key held something else (our lease was lost). */
static bool poll_release(redisContext *r, const char *key, const char *token)
{
    freeReplyObject(rkt_cmd(r, "WATCH", key, NULL));
    redisReply *got = rkt_cmd(r, "GET", key, NULL);
    bool ours = got->type == REDIS_REPLY_STRING && !strcmp(got->str, token);
    freeReplyObject(got);
    if (!ours) {
        freeReplyObject(rkt_cmd(r, "UNWATCH", NULL));
        return false;
    }
    freeReplyObject(rkt_cmd(r, "MULTI", NULL));
    freeReplyObject(rkt_cmd(r, "DEL", key, NULL));
    redisReply *exec = rkt_cmd(r, "EXEC", NULL);
    bool done = exec->type == REDIS_REPLY_ARRAY; /* nil: the key changed after WATCH */
    freeReplyObject(exec);
    return done;
}

typedef enum { POLL_ACQUIRED, POLL_TIMED_OUT, POLL_RUN_OVER } poll_outcome;

/* One pip-services acquireLock: try every POLL_EVERY_MS until it works or POLL_GIVE_UP_MS have
 * passed (a timeout). It also stops at the end of the run: every turn it counts was taken
 * while the redkit processes were contending. `*waited` is how long it tried. */
static poll_outcome poll_acquire(redisContext *r, const contention *c, const char *key,
                                 const char *token, uint64_t *waited)
{
    uint64_t began = rkt_now_ms();
    for (;;) {
        uint64_t now = rkt_now_ms();
        *waited = now - began;
        if (*waited >= POLL_GIVE_UP_MS)
            return POLL_TIMED_OUT; /* checked first: a starved first attempt times out */
        if (now >= atomic_load(&c->deadline_ms))
            return POLL_RUN_OVER;
        if (poll_once(r, key, token)) {
            *waited = rkt_now_ms() - began;
            return POLL_ACQUIRED;
        }
        sleep_ms(POLL_EVERY_MS);
    }
}

/* The poller: acquire, hold 1 ms, release, come back at its next poll, until the run ends. It
 * does not come straight back: it would re-take the key it just freed before any redkit
 * waiter looked, and count turns nobody yielded to it. */
static void poller(const rkt_server *s, contention *c, const char *key, int ready_fd, int gate_fd)
{
    redisContext *r = rkt_raw_port(s->port);
    start_gate(ready_fd, gate_fd);
    for (unsigned n = 0; rkt_now_ms() < atomic_load(&c->deadline_ms); n++) {
        char token[33];
        uint64_t waited;
        snprintf(token, sizeof token, "%016llx%016llx", (unsigned long long)getpid(),
                 (unsigned long long)n);
        poll_outcome o = poll_acquire(r, c, key, token, &waited);
        if (waited > c->poller_longest_wait_ms)
            c->poller_longest_wait_ms = waited;
        c->poller_timeouts += o == POLL_TIMED_OUT;
        if (o != POLL_ACQUIRED)
            continue;
        critical_section(c);
        c->poller_turns++;
        c->poller_lost += !poll_release(r, key, token);
        sleep_ms(POLL_EVERY_MS);
    }
    redisFree(r);
}

/* Read one byte from each of `n` children, failing after STATE_WAIT_MS: a child that died
 * before it was ready would otherwise block the test until ctest's timeout. Children still at
 * the gate then see it close with the test and leave (their deadline is 0). */
static void wait_ready(int fd, int n)
{
    uint64_t deadline = rkt_now_ms() + STATE_WAIT_MS;
    for (int got = 0; got < n;) {
        uint64_t now = rkt_now_ms();
        if (now >= deadline)
            rkt_fail(__FILE__, __LINE__, "%d of %d processes ready after %d ms", got, n,
                     STATE_WAIT_MS);
        struct pollfd p = {fd, POLLIN, 0};
        char c;
        if (poll(&p, 1, (int)(deadline - now)) == 1 && read_byte(fd, &c) == 1)
            got++;
    }
}

/* Fork the workers (configured with `extra`) and the poller on `key`, start them together for
 * RUN_MS, and wait for all of them. The caller unmaps the result. */
static contention *contend(const rkt_server *s, const char *key, const char *extra)
{
    contention *c = rkt_shared_alloc(sizeof *c);
    pid_t pids[WORKERS + 1];
    int ready[2], gate[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(gate), 0);
    for (int i = 0; i <= WORKERS; i++) {
        if ((pids[i] = fork()) == 0) {
            close(gate[1]); /* or the gate would never read EOF */
            if (i < WORKERS)
                worker(s, c, key, extra, ready[1], gate[0]); /* the library adds the prefix */
            else
                poller(s, c, full(key), ready[1], gate[0]);
            _exit(0);
        }
        ASSERT_TRUE(pids[i] > 0);
    }
    wait_ready(ready[0], WORKERS + 1);
    atomic_store(&c->deadline_ms, rkt_now_ms() + RUN_MS);
    close(gate[1]);
    for (int i = 0; i <= WORKERS; i++)
        ASSERT_EQ(wait_child(pids[i]), 0);
    close(gate[0]), close(ready[0]), close(ready[1]);
    return c;
}

static void print_run(const char *what, const contention *c)
{
    printf("     %s: the poller got %d turns, timed out %d times, longest wait %" PRIu64
           " ms; redkit processes %d turns, %d failed acquisitions\n",
           what, c->poller_turns, c->poller_timeouts, c->poller_longest_wait_ms,
           atomic_load(&c->worker_turns), atomic_load(&c->worker_failures));
    if (atomic_load(&c->worker_failures))
        printf("     first redkit failure: %s\n", c->worker_error);
}

/* Mutual exclusion holds with or without the option: nobody entered while another was inside,
 * and the poller's lease (3 s for a 1 ms hold) was never taken from it. */
static void assert_exclusive(const contention *c)
{
    ASSERT_EQ(atomic_load(&c->overlaps), 0);
    ASSERT_EQ(c->poller_lost, 0);
}

static void pollers_get_a_turn(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    (void)rkt_prefix(); /* shared by the children */
    /* Without the option the key goes from waiter to waiter and is hardly ever free when the
     * poller looks: reported, not asserted. */
    contention *off = contend(&s, "polled-off", NULL);
    print_run("option off", off);
    assert_exclusive(off);
    contention *on = contend(&s, "polled-on", "options.lock_yield_to_pollers=200");
    print_run("options.lock_yield_to_pollers=200", on);
    assert_exclusive(on);
    ASSERT_GE(on->poller_turns, MIN_POLLER_TURNS);
    ASSERT_EQ(on->poller_timeouts, 0);
    /* Yielding must not starve redkit's own waiters either. */
    ASSERT_EQ(atomic_load(&on->worker_failures), 0);
    munmap(off, sizeof *off);
    munmap(on, sizeof *on);
    rkt_server_stop(&s);
}

RKT_MAIN(RKT_CASE(killed_waiter_is_skipped), RKT_CASE(fencing_rejects_stale_holder),
         RKT_CASE(pollers_get_a_turn))
