/* Allocation failure: an allocator (installed with rk_set_allocator) that fails the Nth
 * allocation, swept over N for each operation until the operation runs without reaching N.
 * At every N the call must return RK_ENOMEM (or succeed, where a failure is absorbed by
 * design, e.g. a waiter without a subscription polls), leave the object usable (the same call
 * succeeds next), leave Redis consistent (a failed acquire holds no lock), and leak nothing:
 * once the objects are freed, every block redkit allocated has been given back.
 *
 * hiredis' own buffers (its parser's input buffer, formatted commands) use libc malloc and are
 * outside this sweep; valgrind and LSan cover their leaks. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "redis_env.h"

/* ---- the failing allocator ---- */

static atomic_size_t n_allocs; /* allocations since arm() */
static atomic_size_t fail_at;  /* 0: never fail */
static atomic_long live;       /* blocks currently allocated through redkit */
static atomic_bool injected;   /* the armed failure happened */
static _Thread_local bool injected_here;

static bool should_fail(void)
{
    size_t at = atomic_load(&fail_at);
    if (!at || atomic_fetch_add(&n_allocs, 1) + 1 != at)
        return false;
    atomic_store(&injected, true);
    injected_here = true;
    return true;
}

static void *oom_malloc(void *ud, size_t size)
{
    (void)ud;
    void *p = should_fail() ? NULL : malloc(size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *oom_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    void *p = should_fail() ? NULL : realloc(ptr, size);
    if (p && !ptr)
        atomic_fetch_add(&live, 1);
    return p;
}

static void oom_free(void *ud, void *ptr)
{
    (void)ud;
    if (ptr)
        atomic_fetch_sub(&live, 1);
    free(ptr);
}

/* Installed before main(): every redkit allocation of this program goes through it. */
__attribute__((constructor)) static void install(void)
{
    static const rk_allocator a = {oom_malloc, oom_realloc, oom_free, NULL};
    if (rk_set_allocator(&a) != RK_OK)
        abort();
}

static void arm(size_t n)
{
    atomic_store(&injected, false);
    injected_here = false;
    atomic_store(&n_allocs, 0);
    atomic_store(&fail_at, n);
}

static void disarm(void) { atomic_store(&fail_at, 0); }

/* ---- the sweep ---- */

typedef struct fixture {
    rk_cache *cache;
    rk_lock *lock, *other;
    rk_config *cfg;
    rk_buf buf;
    rk_buf bufs[3];
    int rc;
} fixture;

typedef struct op {
    const char *name;
    void (*setup)(fixture *f);
    int (*run)(fixture *f);
    /* Called after a failed run: assert Redis and the objects are consistent, then show the
     * object still works by running the operation (or its equivalent) successfully. */
    void (*recover)(fixture *f);
    /* Called after a successful run: assert its effect. */
    void (*verify)(fixture *f);
    bool absorbs; /* some injected failures may legitimately end in RK_OK */
} op;

static void teardown(fixture *f)
{
    rk_cache_free(f->cache);
    rk_lock_free(f->lock);
    rk_lock_free(f->other);
    rk_config_free(f->cfg);
    rk_buf_free(&f->buf);
    for (int i = 0; i < 3; i++)
        rk_buf_free(&f->bufs[i]);
}

static void sweep(const op *o)
{
    long base = atomic_load(&live);
    size_t failed = 0, absorbed = 0;
    for (size_t n = 1;; n++) {
        fixture f = {0};
        if (o->setup)
            o->setup(&f);
        arm(n);
        f.rc = o->run(&f);
        disarm();
        bool hit = atomic_load(&injected);
        if (hit && f.rc == RK_OK) {
            ASSERT_TRUE(o->absorbs);
            absorbed++;
        }
        if (hit && f.rc != RK_OK) {
            ASSERT_RC(f.rc, RK_ENOMEM);
            ASSERT_ERROR(RK_ENOMEM, "OUT_OF_MEMORY", "Internal");
            ASSERT_TRUE(*rk_last_error()->message);
            failed++;
            o->recover(&f);
        } else {
            ASSERT_OK(f.rc);
            o->verify(&f);
        }
        teardown(&f);
        if (atomic_load(&live) != base)
            rkt_fail(__FILE__, __LINE__, "%s: failing allocation %zu leaked %ld block(s)", o->name,
                     n, atomic_load(&live) - base);
        if (!hit) {
            printf("     %-24s %zu allocations: %zu failed with RK_ENOMEM, %zu absorbed\n", o->name,
                   n - 1, failed, absorbed);
            ASSERT_GE(n, 2); /* the operation allocates, so the sweep did something */
            return;
        }
    }
}

/* ---- helpers ---- */

static const char *full(const char *key)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s%s", rkt_prefix(), key);
    return buf;
}

static long long raw_exists(const char *key)
{
    redisContext *c = rkt_raw();
    redisReply *r = rkt_cmd(c, "EXISTS", full(key), NULL);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static void raw_del(const char *key)
{
    redisContext *c = rkt_raw();
    freeReplyObject(rkt_cmd(c, "DEL", full(key), NULL));
    redisFree(c);
}

static rk_cache *new_cache(fixture *f, bool open)
{
    f->cfg = rkt_config("options.retry_timeout=20");
    ASSERT_OK(rk_cache_new(&f->cache));
    ASSERT_OK(rk_cache_configure(f->cache, f->cfg));
    if (open)
        ASSERT_OK(rk_cache_open(f->cache, NULL));
    return f->cache;
}

static rk_lock *new_lock(fixture *f, rk_lock **slot, bool open)
{
    if (!f->cfg)
        f->cfg = rkt_config("options.retry_timeout=20");
    ASSERT_OK(rk_lock_new(slot));
    ASSERT_OK(rk_lock_configure(*slot, f->cfg));
    if (open)
        ASSERT_OK(rk_lock_open(*slot, NULL));
    return *slot;
}

static void assert_value(rk_cache *c, const char *key, const char *want)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(c, NULL, key, &b));
    ASSERT_STR_EQ(b.data, want);
    rk_buf_free(&b);
}

/* ---- configuration ---- */

static int run_config(fixture *f)
{
    rk_config *cfg;
    int rc = rk_config_from_string(&cfg, "connection.uri=redis://u:p@h:1/2;options.timeout=5;"
                                         "options.prefix=app:;a=1;b=2;c=3;d=4;e=5;f=6;g=7;h=8");
    if (rc == RK_OK)
        f->cfg = cfg;
    else
        ASSERT_TRUE(cfg == NULL);
    return rc;
}

static void recover_config(fixture *f) { ASSERT_OK(run_config(f)); }
static void verify_config(fixture *f) { ASSERT_EQ(rk_config_count(f->cfg), 11); }

static void setup_unopened_cache(fixture *f) { new_cache(f, false); }

static int run_configure(fixture *f) { return rk_cache_configure(f->cache, f->cfg); }
static void recover_configure(fixture *f) { ASSERT_OK(run_configure(f)); }
static void verify_nothing(fixture *f) { (void)f; }

/* ---- cache ---- */

static int run_cache_open(fixture *f) { return rk_cache_open(f->cache, NULL); }

static void verify_cache_open(fixture *f)
{
    ASSERT_TRUE(rk_cache_is_open(f->cache));
    ASSERT_OK(rk_cache_store(f->cache, NULL, "oom-open", "v", 1, 5000));
    assert_value(f->cache, "oom-open", "v");
}

static void recover_cache_open(fixture *f)
{
    ASSERT_FALSE(rk_cache_is_open(f->cache));
    ASSERT_OK(run_cache_open(f));
    verify_cache_open(f);
}

static void setup_cache(fixture *f)
{
    new_cache(f, true);
    ASSERT_OK(rk_cache_store(f->cache, NULL, "oom-k", "old", 3, 5000));
}

static int run_store(fixture *f) { return rk_cache_store(f->cache, NULL, "oom-k", "new", 3, 5000); }

static void recover_store(fixture *f)
{
    ASSERT_OK(run_store(f));
    assert_value(f->cache, "oom-k", "new");
}

static void verify_store(fixture *f) { assert_value(f->cache, "oom-k", "new"); }

static int run_retrieve(fixture *f) { return rk_cache_retrieve(f->cache, NULL, "oom-k", &f->buf); }

static void verify_retrieve(fixture *f) { ASSERT_STR_EQ(f->buf.data, "old"); }

static void recover_retrieve(fixture *f)
{
    ASSERT_TRUE(f->buf.data == NULL && f->buf.len == 0); /* no partial value */
    ASSERT_OK(run_retrieve(f));
    verify_retrieve(f);
}

static const char *const many_keys[3] = {"oom-k", "oom-missing", "oom-k"};

static int run_retrieve_many(fixture *f)
{
    return rk_cache_retrieve_many(f->cache, NULL, many_keys, 3, f->bufs);
}

static void verify_retrieve_many(fixture *f)
{
    ASSERT_STR_EQ(f->bufs[0].data, "old");
    ASSERT_TRUE(f->bufs[1].data == NULL);
    ASSERT_STR_EQ(f->bufs[2].data, "old");
}

static void recover_retrieve_many(fixture *f)
{
    for (int i = 0; i < 3; i++)
        ASSERT_TRUE(f->bufs[i].data == NULL);
    ASSERT_OK(run_retrieve_many(f));
    verify_retrieve_many(f);
}

static int run_store_many(fixture *f)
{
    rk_cache_entry e[2] = {{"oom-k", "a", 1, 5000}, {"oom-k2", "b", 1, RK_TTL_NONE}};
    return rk_cache_store_many(f->cache, NULL, e, 2);
}

static void verify_store_many(fixture *f)
{
    assert_value(f->cache, "oom-k", "a");
    assert_value(f->cache, "oom-k2", "b");
    ASSERT_OK(rk_cache_remove(f->cache, NULL, "oom-k2"));
}

static void recover_store_many(fixture *f)
{
    ASSERT_OK(run_store_many(f));
    verify_store_many(f);
}

static int run_remove(fixture *f) { return rk_cache_remove(f->cache, NULL, "oom-k"); }
static void verify_remove(fixture *f)
{
    (void)f;
    ASSERT_EQ(raw_exists("oom-k"), 0);
}

static void recover_remove(fixture *f)
{
    ASSERT_OK(run_remove(f));
    verify_remove(f);
}

/* ---- lock ---- */

static void setup_unopened_lock(fixture *f) { new_lock(f, &f->lock, false); }

static int run_lock_open(fixture *f) { return rk_lock_open(f->lock, NULL); }

/* The handle holds the key: nobody else gets it, and its release frees it. */
static void assert_holds(fixture *f, const char *key)
{
    bool ok = true;
    rk_lock *probe;
    ASSERT_OK(rk_lock_new(&probe));
    ASSERT_OK(rk_lock_configure(probe, f->cfg));
    ASSERT_OK(rk_lock_open(probe, NULL));
    ASSERT_OK(rk_lock_try_acquire(probe, NULL, key, 5000, &ok));
    ASSERT_FALSE(ok);
    rk_lock_free(probe);
    ASSERT_OK(rk_lock_release(f->lock, NULL, key));
    ASSERT_EQ(raw_exists(key), 0);
}

static void verify_lock_open(fixture *f)
{
    ASSERT_TRUE(rk_lock_is_open(f->lock));
    ASSERT_OK(rk_lock_acquire(f->lock, NULL, "oom-lock", 5000, 0));
    assert_holds(f, "oom-lock");
}

static void recover_lock_open(fixture *f)
{
    ASSERT_FALSE(rk_lock_is_open(f->lock));
    ASSERT_OK(run_lock_open(f));
    verify_lock_open(f);
}

static void setup_lock(fixture *f)
{
    raw_del("oom-lock");
    new_lock(f, &f->lock, true);
}

static int run_try_acquire(fixture *f)
{
    bool ok = false;
    int rc = rk_lock_try_acquire(f->lock, NULL, "oom-lock", 5000, &ok);
    ASSERT_TRUE(rc != RK_OK || ok);
    return rc;
}

static void verify_acquired(fixture *f) { assert_holds(f, "oom-lock"); }

/* A failed acquisition holds nothing: the lock was not taken, or was given back. */
static void recover_try_acquire(fixture *f)
{
    ASSERT_EQ(raw_exists("oom-lock"), 0);
    ASSERT_OK(run_try_acquire(f));
    verify_acquired(f);
}

static int run_acquire(fixture *f) { return rk_lock_acquire(f->lock, NULL, "oom-lock", 5000, 0); }

static void recover_acquire(fixture *f)
{
    ASSERT_EQ(raw_exists("oom-lock"), 0);
    ASSERT_OK(run_acquire(f));
    verify_acquired(f);
}

/* Contended: another handle holds the lock for 60 ms; the acquisition waits for it (through
 * the subscriber thread and its own polling), so failures also land in the subscriber. */
static void setup_contended(fixture *f)
{
    setup_lock(f);
    new_lock(f, &f->other, true);
    ASSERT_OK(rk_lock_acquire(f->other, NULL, "oom-lock", 60, 0));
}

static int run_acquire_wait(fixture *f)
{
    return rk_lock_acquire(f->lock, NULL, "oom-lock", 5000, 5000);
}

static void recover_acquire_wait(fixture *f)
{
    ASSERT_OK(rk_lock_release(f->other, NULL, "oom-lock")); /* if its lease has not run out */
    ASSERT_EQ(raw_exists("oom-lock"), 0);                   /* ours was never kept */
    ASSERT_OK(run_acquire_wait(f));
    verify_acquired(f);
}

static void setup_held(fixture *f)
{
    setup_lock(f);
    ASSERT_OK(rk_lock_acquire(f->lock, NULL, "oom-lock", 5000, 0));
}

static int run_release(fixture *f) { return rk_lock_release(f->lock, NULL, "oom-lock"); }

static void verify_released(fixture *f)
{
    ASSERT_EQ(raw_exists("oom-lock"), 0);
    ASSERT_OK(run_acquire(f)); /* and the handle can take it again */
    assert_holds(f, "oom-lock");
}

/* Whether or not the script ran before the failure, releasing again completes it. */
static void recover_release(fixture *f)
{
    ASSERT_OK(run_release(f));
    verify_released(f);
}

static int run_extend(fixture *f) { return rk_lock_extend(f->lock, NULL, "oom-lock", 9000); }

static void verify_extended(fixture *f)
{
    redisContext *c = rkt_raw();
    redisReply *r = rkt_cmd(c, "PTTL", full("oom-lock"), NULL);
    ASSERT_GE(r->integer, 5500);
    freeReplyObject(r);
    redisFree(c);
    assert_holds(f, "oom-lock");
}

static void recover_extend(fixture *f)
{
    ASSERT_OK(run_extend(f));
    verify_extended(f);
}

static int run_watch(fixture *f) { return rk_lock_watch(f->lock, "oom-lock"); }

/* A failed watch leaves the lock held, and watching it again works. Releasing it (in
 * assert_holds) ends the watch, and freeing the handle gives the watchdog's memory back. */
static void recover_watch(fixture *f)
{
    ASSERT_OK(run_watch(f));
    assert_holds(f, "oom-lock");
}

/* ---- cases ---- */

static void configuration(void)
{
    sweep(&(op){"config_from_string", NULL, run_config, recover_config, verify_config, false});
    sweep(&(op){"cache_configure", setup_unopened_cache, run_configure, recover_configure,
                verify_nothing, false});
}

static void cache(void)
{
    sweep(&(op){"cache_open", setup_unopened_cache, run_cache_open, recover_cache_open,
                verify_cache_open, false});
    sweep(&(op){"cache_store", setup_cache, run_store, recover_store, verify_store, false});
    sweep(&(op){"cache_retrieve", setup_cache, run_retrieve, recover_retrieve, verify_retrieve,
                false});
    sweep(&(op){"cache_retrieve_many", setup_cache, run_retrieve_many, recover_retrieve_many,
                verify_retrieve_many, false});
    sweep(&(op){"cache_store_many", setup_cache, run_store_many, recover_store_many,
                verify_store_many, false});
    sweep(&(op){"cache_remove", setup_cache, run_remove, recover_remove, verify_remove, false});
}

static void lock(void)
{
    sweep(&(op){"lock_open", setup_unopened_lock, run_lock_open, recover_lock_open,
                verify_lock_open, false});
    sweep(&(op){"lock_try_acquire", setup_lock, run_try_acquire, recover_try_acquire,
                verify_acquired, false});
    sweep(&(op){"lock_acquire", setup_lock, run_acquire, recover_acquire, verify_acquired, false});
    /* A waiter whose subscription failed falls back to polling, by design. */
    sweep(&(op){"lock_acquire_contended", setup_contended, run_acquire_wait, recover_acquire_wait,
                verify_acquired, true});
    sweep(&(op){"lock_release", setup_held, run_release, recover_release, verify_released, false});
    sweep(&(op){"lock_extend", setup_held, run_extend, recover_extend, verify_extended, false});
    sweep(&(op){"lock_watch", setup_held, run_watch, recover_watch, verify_acquired, false});
}

RKT_MAIN(RKT_CASE(configuration), RKT_CASE(cache), RKT_CASE(lock))
