/* No freed memory keeps a password: an allocator (installed with rk_set_allocator before any
 * other redkit call) scans every block redkit frees, or moves with realloc, for "hunter2" and
 * counts the blocks that still hold it. Each case runs a whole life (configure, open against a
 * private server with requirepass, operations, close, free) of a cache, a lock and a memolock,
 * or a failed one (wrong password, nobody listening, an unresolvable host, a bad URI, a bad
 * configuration string), then expects no such block. hiredis' reader buffer and OpenSSL keep
 * their own allocators and are not seen here. */
#include <stdatomic.h>
#include <stddef.h>

#include "redis_env.h"

#define SECRET "hunter2"

/* ---- the scanning allocator ---- */

static atomic_int dirty_blocks;

/* The size of each block sits in front of it, keeping malloc's alignment for the caller. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define SCAN_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED(p, n)
#endif
#endif
#ifndef SCAN_DEFINED
#define SCAN_DEFINED(p, n) ((void)(p), (void)(n))
#endif

typedef union {
    size_t size;
    max_align_t align;
} header;

static void scan(const header *h)
{
    const char *p = (const char *)(h + 1);
    /* Blocks may hold bytes never written (struct padding): reading them is the point here. */
    SCAN_DEFINED(p, h->size);
    size_t n = sizeof SECRET - 1;
    for (size_t i = 0; i + n <= h->size; i++)
        if (!memcmp(p + i, SECRET, n)) {
            atomic_fetch_add(&dirty_blocks, 1);
            return;
        }
}

static void *scan_malloc(void *ud, size_t size)
{
    (void)ud;
    header *h = size <= SIZE_MAX - sizeof *h ? malloc(sizeof *h + size) : NULL;
    if (!h)
        return NULL;
    h->size = size;
    return h + 1;
}

static void scan_free(void *ud, void *p)
{
    (void)ud;
    if (!p)
        return;
    header *h = (header *)p - 1;
    scan(h);
    free(h);
}

/* Always a move, so that the old block is scanned like any freed one. */
static void *scan_realloc(void *ud, void *p, size_t size)
{
    void *n = scan_malloc(ud, size);
    if (n && p) {
        size_t old = ((header *)p - 1)->size;
        memcpy(n, p, old < size ? old : size);
        scan_free(ud, p);
    }
    return n;
}

/* ---- cases ---- */

static rkt_server plain, locked, long_pw_server;
static char long_pw[496];

static void start_servers(void)
{
    static bool started;
    if (started)
        return;
    started = true;
    /* Over 512 bytes with the AUTH around it: the handshake's batch goes to the heap. */
    memset(long_pw, 'x', sizeof long_pw - 1);
    memcpy(long_pw + 200, SECRET, sizeof SECRET - 1);
    char arg[sizeof long_pw + 32];
    snprintf(arg, sizeof arg, "--requirepass %s", long_pw);
    rkt_server_start(&locked, "--requirepass " SECRET);
    rkt_server_start(&long_pw_server, arg);
    rkt_server_start(&plain, "--requirepass s3cret");
}

static int fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    *ttl_ms = 0;
    return rk_buf_set(value, "computed", 8);
}

/* Configure, open, use, close and free one of each component with `cfg` (which is freed). */
static void whole_life(rk_config *cfg)
{
    rkt_trio t;
    rk_buf b = RK_BUF_INIT;
    rkt_trio_new(&t, cfg);
    rk_config_free(cfg);
    rk_cache *c = t.cache;
    rk_lock *l = t.lock;
    rk_memolock *m = t.memo;
    ASSERT_OK(rk_cache_open(c, NULL));
    ASSERT_OK(rk_lock_open(l, NULL));
    ASSERT_OK(rk_memolock_open(m, NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "k", "v", 1, 10000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "k", &b));
    ASSERT_OK(rk_lock_acquire(l, NULL, "lk", 10000, 1000));
    ASSERT_OK(rk_lock_release(l, NULL, "lk"));
    ASSERT_OK(rk_memolock_get(m, NULL, "mk", 1000, fetch, NULL, &b));
    ASSERT_OK(rk_cache_close(c, NULL));
    ASSERT_OK(rk_lock_close(l, NULL));
    ASSERT_OK(rk_memolock_close(m, NULL));
    rkt_trio_free(&t);
    rk_buf_free(&b);
}

static void begin(void)
{
    start_servers();
    atomic_store(&dirty_blocks, 0);
}

#define ASSERT_CLEAN() ASSERT_EQ(atomic_load(&dirty_blocks), 0)

/* The scanner works: a buffer (user data, not wiped) with the password is seen. */
static void scanner_sees_the_password(void)
{
    begin();
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_buf_set(&b, "x" SECRET "x", 9));
    rk_buf_free(&b);
    ASSERT_EQ(atomic_load(&dirty_blocks), 1);
}

static void credential_password(void)
{
    begin();
    whole_life(rkt_server_config(&locked, "options.resource_tag=t;credential.password=" SECRET));
    ASSERT_CLEAN();
}

static void uri_password(void)
{
    begin();
    char uri[128];
    snprintf(uri, sizeof uri, "redis://default:" SECRET "@127.0.0.1:%d", locked.port);
    rk_config *cfg = rkt_server_config(&locked, "options.resource_tag=t");
    ASSERT_OK(rk_config_set(cfg, "connection.host", NULL));
    ASSERT_OK(rk_config_set(cfg, "connection.port", NULL));
    ASSERT_OK(rk_config_set(cfg, "connection.uri", uri));
    whole_life(cfg);
    ASSERT_CLEAN();
}

static void long_password_and_user(void)
{
    begin();
    rk_config *cfg = rkt_server_config(&long_pw_server, "options.resource_tag=t;"
                                                        "credential.username=default");
    ASSERT_OK(rk_config_set(cfg, "credential.password", long_pw));
    whole_life(cfg);
    ASSERT_CLEAN();
}

/* The password in a memory credential store, through the component's copy of the references. */
static void credential_store(void)
{
    begin();
    rk_config *store = rkt_settings("app.user=default;app.pass=" SECRET);
    rk_references *refs;
    rk_cache *c;
    ASSERT_OK(rk_references_new(&refs));
    ASSERT_OK(rk_references_set_memory_credential_store(refs, store));
    rk_config_free(store);
    ASSERT_OK(rk_cache_new(&c));
    rk_config *cfg = rkt_server_config(&locked, "credential.store_key=app");
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_config_free(cfg);
    ASSERT_OK(rk_cache_set_references(c, refs));
    rk_references_free(refs);
    ASSERT_OK(rk_cache_open(c, NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "k", "v", 1, 10000));
    rk_cache_free(c);
    ASSERT_CLEAN();
}

/* An open that fails with `rc`, from a configuration of `extra` plus the password. */
static void failed_open(rk_config *cfg, int rc)
{
    rk_cache *c;
    ASSERT_OK(rk_config_set(cfg, "options.retries", "0"));
    ASSERT_OK(rk_config_set(cfg, "options.connect_timeout", "1000"));
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_config_free(cfg);
    ASSERT_RC(rk_cache_open(c, NULL), rc);
    ASSERT_NOT_CONTAINS(rk_last_error()->message, SECRET);
    rk_cache_free(c);
}

static void failed_opens(void)
{
    begin();
    failed_open(rkt_server_config(&plain, "credential.password=" SECRET), RK_EAUTH);
    failed_open(rkt_settings("connection.host=127.0.0.1;connection.port=1;"
                             "credential.password=" SECRET),
                RK_EIO);
    failed_open(rkt_settings("connection.host=nonexistent.invalid;credential.password=" SECRET),
                RK_EINVAL); /* "cannot resolve host" */
    failed_open(rkt_settings("connection.uri=redis://admin:" SECRET), RK_EINVAL);
    failed_open(rkt_settings("connection.uri=redis://u:" SECRET "%zz@h"), RK_EINVAL);
    failed_open(rkt_settings("connection.uri=redis://u:" SECRET "/x@h:1"), RK_EINVAL);
    ASSERT_CLEAN();
}

/* Values replaced, removed, or in a string that fails to parse. */
static void config_edits(void)
{
    begin();
    rk_config *cfg;
    ASSERT_OK(rk_config_from_string(&cfg, "credential.password=" SECRET));
    ASSERT_OK(rk_config_set(cfg, "credential.password", "other"));
    ASSERT_OK(rk_config_set(cfg, "credential.pass", SECRET));
    ASSERT_OK(rk_config_set(cfg, "credential.pass", NULL));
    for (int i = 0; i < 20; i++) { /* the entries array grows (realloc) with the secret in it */
        char k[16];
        snprintf(k, sizeof k, "k.%d", i);
        ASSERT_OK(rk_config_set(cfg, k, SECRET));
    }
    rk_config_free(cfg);
    ASSERT_RC(rk_config_from_string(&cfg, "credential.password=" SECRET ";oops"), RK_EINVAL);
    ASSERT_RC(rk_config_from_tuples(&cfg, "credential.password", SECRET, "x", NULL), RK_EINVAL);
    ASSERT_CLEAN();
}

static void stop_servers(void)
{
    rkt_server_stop(&locked);
    rkt_server_stop(&long_pw_server);
    rkt_server_stop(&plain);
}

int main(int argc, char **argv)
{
    static const rk_allocator scanning = {scan_malloc, scan_realloc, scan_free, NULL};
    if (rk_set_allocator(&scanning) != RK_OK) /* before any other redkit call */
        return 1;
    static const rkt_case cases[] = {RKT_CASE(scanner_sees_the_password),
                                     RKT_CASE(credential_password),
                                     RKT_CASE(uri_password),
                                     RKT_CASE(long_password_and_user),
                                     RKT_CASE(credential_store),
                                     RKT_CASE(failed_opens),
                                     RKT_CASE(config_edits)};
    int rc = rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    stop_servers();
    return rc;
}
