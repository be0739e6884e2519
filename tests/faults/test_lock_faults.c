/* rk_lock under faults, with real processes against private redis-servers: a holder stopped
 * (SIGSTOP) past its lease, and mutual exclusion under stress (16 processes x 200
 * acquisitions), also across a server restart. Critical sections are recorded as intervals of
 * the system-wide monotonic clock in memory shared by every process, and must never overlap. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_env.h"

#define SLACK_MS 400

/* The raw value of the lock key (its owner's token), "" when absent. */
static void raw_get(const rkt_server *s, const char *key, char *out, size_t cap)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s", rkt_prefix(), key);
    redisContext *c = rkt_raw_port(s->port);
    redisReply *r = rkt_cmd(c, "GET", full, NULL);
    snprintf(out, cap, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
}

static void write_byte(int fd, char c) { ASSERT_EQ(write(fd, &c, 1), 1); }

static char read_byte(int fd)
{
    char c;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
        ;
    ASSERT_EQ(n, 1);
    return c;
}

/* ---- a holder stopped past its TTL ---- */

enum { PAUSED_TTL = 300 };

/* The child: take the lock, report, get stopped by the parent; once resumed, find out that the
 * lease is gone (extend) and release, which must leave the new owner's lock alone. */
static void paused_holder(const rkt_server *s, int to_parent, int from_parent)
{
    rk_lock *l = rkt_open_lock(rkt_server_config(s, NULL));
    ASSERT_OK(rk_lock_acquire(l, NULL, "paused", PAUSED_TTL, 0));
    write_byte(to_parent, 'h');
    ASSERT_EQ(read_byte(from_parent), 'r'); /* stopped in here, past the lease */
    int extend_rc = rk_lock_extend(l, NULL, "paused", PAUSED_TTL);
    int release_rc = rk_lock_release(l, NULL, "paused");
    write_byte(to_parent, (char)-extend_rc);
    write_byte(to_parent, (char)-release_rc);
    rk_lock_free(l);
}

static void stopped_holder_past_ttl(void)
{
    rkt_server s;
    int up[2], down[2], status;
    char before[64], after[64];
    rkt_server_start(&s, NULL);
    (void)rkt_prefix(); /* shared by the child */
    ASSERT_EQ(pipe(up), 0);
    ASSERT_EQ(pipe(down), 0);
    pid_t pid = fork();
    if (pid == 0) {
        paused_holder(&s, up[1], down[0]);
        _exit(0);
    }
    ASSERT_EQ(read_byte(up[0]), 'h');
    uint64_t stopped_at = rkt_now_ms();
    ASSERT_EQ(kill(pid, SIGSTOP), 0);
    ASSERT_EQ(waitpid(pid, &status, WUNTRACED), pid);
    ASSERT_TRUE(WIFSTOPPED(status));
    /* Another process waits for the lock: it gets it when the stopped holder's lease runs out
     * (no release is published, so at the waiter's next poll). */
    rk_lock *other = rkt_open_lock(rkt_server_config(&s, "options.retry_timeout=50"));
    ASSERT_OK(rk_lock_acquire(other, NULL, "paused", 10000, 5000));
    uint64_t took = rkt_now_ms() - stopped_at;
    ASSERT_LT(took, PAUSED_TTL + 50 + SLACK_MS);
    raw_get(&s, "paused", before, sizeof before);
    ASSERT_EQ(strlen(before), 32);
    /* Resume the first holder; it acts as if it still held the lock. */
    write_byte(down[1], 'r');
    ASSERT_EQ(kill(pid, SIGCONT), 0);
    int extend_rc = -read_byte(up[0]), release_rc = -read_byte(up[0]);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_RC(extend_rc, RK_ENOTOWNER); /* it can learn that its lease is gone */
    ASSERT_RC(release_rc, RK_OK);       /* releasing a lost lock is not an error... */
    raw_get(&s, "paused", after, sizeof after);
    ASSERT_STR_EQ(after, before); /* ...and did not delete the new owner's lock */
    ASSERT_OK(rk_lock_extend(other, NULL, "paused", 10000));
    ASSERT_OK(rk_lock_release(other, NULL, "paused"));
    raw_get(&s, "paused", after, sizeof after);
    ASSERT_STR_EQ(after, "");
    printf("     the second process acquired %" PRIu64 " ms after the holder was stopped "
           "(ttl %d ms)\n",
           took, PAUSED_TTL);
    rk_lock_free(other);
    close(up[0]), close(up[1]), close(down[0]), close(down[1]);
    rkt_server_stop(&s);
}

/* ---- mutual exclusion under stress ---- */

enum { PROCS = 16, ROUNDS = 200, STRESS_TTL = 5000, MAX_FAILURES = 2000 };

typedef struct {
    uint64_t start_ns, end_ns;
    int proc;
} interval;

/* Shared by every process (MAP_SHARED before fork). */
typedef struct {
    atomic_int acquired;        /* critical sections entered, all processes */
    atomic_int failed_acquire;  /* acquisitions that returned an error */
    atomic_int failed_release;  /* release calls that returned an error */
    atomic_int timed_out;       /* of failed_acquire: RK_ETIMEDOUT */
    atomic_int other_error;     /* an error other than RK_EIO / RK_ETIMEDOUT */
    atomic_int too_many_errors; /* a process gave up */
    interval iv[PROCS * ROUNDS];
} shared;

/* With a restart: the worker entering the middle critical section writes to [1] ("holding"),
 * then waits inside it for the parent's "restarted" on [0]. */
static int restart_fds[2] = {-1, -1};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hold_us(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void count_failure(shared *sh, int rc)
{
    if (rc == RK_ETIMEDOUT)
        atomic_fetch_add(&sh->timed_out, 1);
    else if (rc != RK_EIO) {
        fprintf(stderr, "unexpected error: %s: %s\n", rk_strerror(rc), rk_last_error()->message);
        atomic_fetch_add(&sh->other_error, 1);
    }
}

/* A failed release leaves the lock held (by us) until it expires: try again, since the server
 * may be back; the library's own reconnects back off between attempts. */
static void release(shared *sh, rk_lock *l)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int rc = rk_lock_release(l, NULL, "stress");
        if (rc == RK_OK)
            return;
        atomic_fetch_add(&sh->failed_release, 1);
        count_failure(sh, rc);
    }
}

static void stress_worker(const rkt_server *s, shared *sh, int proc)
{
    rk_lock *l = rkt_open_lock(rkt_server_config(s, "options.timeout=3000;options.retries=5"));
    unsigned seed = (unsigned)proc * 7919u + 1, failures = 0;
    for (int done = 0; done < ROUNDS;) {
        int rc = rk_lock_acquire(l, NULL, "stress", STRESS_TTL, 10000);
        if (rc != RK_OK) {
            atomic_fetch_add(&sh->failed_acquire, 1);
            count_failure(sh, rc);
            if (++failures > MAX_FAILURES) {
                atomic_fetch_add(&sh->too_many_errors, 1);
                break;
            }
            continue;
        }
        interval *iv = &sh->iv[proc * ROUNDS + done++];
        iv->proc = proc;
        iv->start_ns = now_ns();
        /* Halfway through, one holder stays inside while the server restarts under it. */
        if (atomic_fetch_add(&sh->acquired, 1) + 1 == PROCS * ROUNDS / 2 && restart_fds[0] >= 0) {
            write_byte(restart_fds[1], 'h');
            ASSERT_EQ(read_byte(restart_fds[0]), 'r');
        }
        hold_us((unsigned)rand_r(&seed) % 2001u); /* the critical section: 0-2 ms */
        iv->end_ns = now_ns();
        release(sh, l);
    }
    rk_lock_free(l);
}

/* Lua scripts the server has run or refused since it started (INFO commandstats). */
static long long script_calls(int port)
{
    long long n = 0;
    redisContext *c = rkt_raw_port(port);
    redisReply *r = rkt_cmd(c, "INFO", "commandstats", NULL);
    for (const char *p = r->str; (p = strstr(p, "cmdstat_eval")) != NULL; p++) {
        const char *calls = strstr(p, "calls=");
        n += calls ? atoll(calls + 6) : 0;
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static int by_start(const void *a, const void *b)
{
    const interval *x = a, *y = b;
    return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

/* Sort by start; any section starting before the latest end so far overlaps it. */
static int count_overlaps(interval *iv, size_t n)
{
    int overlaps = 0;
    qsort(iv, n, sizeof *iv, by_start);
    const interval *latest = &iv[0];
    for (size_t i = 1; i < n; i++) {
        if (iv[i].start_ns < latest->end_ns) {
            if (overlaps++ == 0)
                fprintf(stderr,
                        "overlap: process %d held [%" PRIu64 ", %" PRIu64 "] ns, process %d "
                        "entered at %" PRIu64 "\n",
                        latest->proc, latest->start_ns, latest->end_ns, iv[i].proc, iv[i].start_ns);
        }
        if (iv[i].end_ns > latest->end_ns)
            latest = &iv[i];
    }
    return overlaps;
}

/* Every process runs ROUNDS critical sections; with `restart`, the server is killed and
 * restarted on the same port while the middle one runs (its holder leaves only once the server
 * is back, so the lock must survive the restart). Its append-only file is fsynced
 * before each reply, so locks acknowledged before the kill survive it (without persistence a
 * restart forgets every lock: see docs/RELIABILITY.md). */
static void stress(bool restart)
{
    rkt_server s;
    pid_t pids[PROCS];
    int status;
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    int up[2] = {-1, -1}, down[2] = {-1, -1};
    if (restart) {
        ASSERT_EQ(pipe(up), 0);
        ASSERT_EQ(pipe(down), 0);
    }
    restart_fds[0] = down[0], restart_fds[1] = up[1];
    rkt_server_start(&s, restart ? "--appendonly yes --appendfsync always" : NULL);
    (void)rkt_prefix();
    uint64_t t0 = rkt_now_ms();
    for (int i = 0; i < PROCS; i++) {
        if ((pids[i] = fork()) == 0) {
            stress_worker(&s, sh, i);
            _exit(0);
        }
        ASSERT_TRUE(pids[i] > 0);
    }
    uint64_t restarted_after = 0;
    if (restart) {
        /* Progress made by the workers, not time, decides when to pull the plug: while a
         * holder is inside its critical section, which it leaves only after the restart. */
        ASSERT_EQ(read_byte(up[0]), 'h');
        restarted_after = (uint64_t)atomic_load(&sh->acquired);
        rkt_server_restart(&s);
        /* Stay inside until every waiter has had its go at the restarted server. */
        long long before = script_calls(s.port);
        while (script_calls(s.port) < before + PROCS - 1)
            hold_us(1000);
        write_byte(down[1], 'r');
    }
    for (int i = 0; i < PROCS; i++) {
        ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    uint64_t took = rkt_now_ms() - t0;
    int acquired = atomic_load(&sh->acquired);
    printf("     %d processes: %d critical sections in %" PRIu64 " ms (%.0f/s)", PROCS, acquired,
           took, acquired * 1000.0 / (double)(took ? took : 1));
    if (restart)
        printf(", server restarted after %" PRIu64, restarted_after);
    printf("; %d acquisitions failed (%d timed out), %d releases failed\n",
           atomic_load(&sh->failed_acquire), atomic_load(&sh->timed_out),
           atomic_load(&sh->failed_release));
    ASSERT_EQ(atomic_load(&sh->too_many_errors), 0);
    ASSERT_EQ(atomic_load(&sh->other_error), 0);
    ASSERT_EQ(acquired, PROCS * ROUNDS);
    ASSERT_EQ(count_overlaps(sh->iv, PROCS * ROUNDS), 0);
    if (!restart)
        ASSERT_EQ(atomic_load(&sh->failed_acquire) + atomic_load(&sh->failed_release), 0);
    munmap(sh, sizeof *sh);
    if (restart)
        close(up[0]), close(up[1]), close(down[0]), close(down[1]);
    restart_fds[0] = restart_fds[1] = -1;
    rkt_server_stop(&s);
}

static void mutual_exclusion_stress(void) { stress(false); }
static void mutual_exclusion_across_restart(void) { stress(true); }

RKT_MAIN(RKT_CASE(stopped_holder_past_ttl), RKT_CASE(mutual_exclusion_stress),
         RKT_CASE(mutual_exclusion_across_restart))
