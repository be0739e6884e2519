/* No growth per open: a service that retries rk_cache_open while Redis is down (one handle,
 * configured once, opened again and again) must stay flat, in redkit's own heap (counted through
 * rk_set_allocator) and in the process's resident memory (which also sees OpenSSL, whose
 * allocations do not go through redkit's allocator).
 *
 * Under AddressSanitizer freed memory sits in quarantine and RSS only grows, so the program
 * re-executes itself with the quarantine off rather than skipping the RSS checks. */
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis_env.h"

#if defined(__SANITIZE_ADDRESS__)
#define RKT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RKT_ASAN 1
#endif
#endif

/* ---- redkit's live heap ---- */

static atomic_llong live_bytes;

/* The size of each block sits in front of it, keeping malloc's alignment for the caller. */
typedef union {
    size_t size;
    max_align_t align;
} header;

static void *count_malloc(void *ud, size_t size)
{
    (void)ud;
    header *h = size <= SIZE_MAX - sizeof *h ? malloc(sizeof *h + size) : NULL;
    if (!h)
        return NULL;
    h->size = size;
    atomic_fetch_add(&live_bytes, (long long)size);
    return h + 1;
}

static void *count_realloc(void *ud, void *p, size_t size)
{
    if (!p)
        return count_malloc(ud, size);
    header *old = (header *)p - 1;
    size_t old_size = old->size;
    header *h = size <= SIZE_MAX - sizeof *h ? realloc(old, sizeof *h + size) : NULL;
    if (!h)
        return NULL;
    h->size = size;
    atomic_fetch_add(&live_bytes, (long long)size - (long long)old_size);
    return h + 1;
}

static void count_free(void *ud, void *p)
{
    (void)ud;
    if (!p)
        return;
    header *h = (header *)p - 1;
    atomic_fetch_sub(&live_bytes, (long long)h->size);
    free(h);
}

/* ---- the process ---- */

static long long rss_bytes(void)
{
    long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(fscanf(f, "%lld %lld", &size, &resident), 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* A loopback port that refuses connections while `*fd` stays open: bound but never listening,
 * so no server started meanwhile (other tests pick free ports too) can take it. */
static int dead_port(int *fd)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_TRUE(*fd >= 0);
    ASSERT_EQ(bind(*fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

static rk_cache *configured_cache(rk_config *cfg)
{
    rk_cache *c;
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_config_free(cfg);
    return c;
}

/* `n` opens of the same handle, each refused. Returns the elapsed ms. */
static uint64_t failed_opens(rk_cache *c, int n)
{
    uint64_t t0 = rkt_now_ms();
    for (int i = 0; i < n; i++)
        ASSERT_RC(rk_cache_open(c, NULL), RK_EIO);
    return rkt_now_ms() - t0;
}

enum { PLAIN_WARMUP = 100, PLAIN_OPENS = 50000, PLAIN_HEAP_LIMIT = 64 * 1024 };
enum { PLAIN_RSS_LIMIT = 8 * 1024 * 1024 };

static void failed_opens_keep_heap_flat(void)
{
    int fd;
    char cfg_text[256];
    snprintf(cfg_text, sizeof cfg_text,
             "connection.host=127.0.0.1;connection.port=%d;options.retries=0;"
             "options.connect_timeout=2000",
             dead_port(&fd));
    rk_cache *c = configured_cache(rkt_settings(cfg_text));
    failed_opens(c, PLAIN_WARMUP);
    long long heap0 = atomic_load(&live_bytes), rss0 = rss_bytes();
    uint64_t took = failed_opens(c, PLAIN_OPENS);
    long long heap = atomic_load(&live_bytes) - heap0, rss = rss_bytes() - rss0;
    printf("     %d failed opens in %" PRIu64 " ms: redkit heap %+lld bytes (%.1f per open), "
           "RSS %+lld KiB\n",
           PLAIN_OPENS, took, heap, (double)heap / PLAIN_OPENS, rss / 1024);
    rk_cache_free(c);
    close(fd);
    ASSERT_LT(heap, PLAIN_HEAP_LIMIT);
    ASSERT_LT(rss, PLAIN_RSS_LIMIT);
}

/* ---- successful opens: each open's client goes with its close ---- */

enum { CYCLE_WARMUP = 50, CYCLES = 2000 };

/* One open / use / close of a lock handle (its subscriber included) and of a cache. */
static void cycle(rk_lock *l, rk_cache *c)
{
    bool got;
    rk_buf v = RK_BUF_INIT;
    ASSERT_OK(rk_lock_open(l, NULL));
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "cycle", 10000, &got));
    ASSERT_TRUE(got);
    ASSERT_OK(rk_lock_release(l, NULL, "cycle"));
    ASSERT_OK(rk_lock_close(l, NULL));
    ASSERT_OK(rk_cache_open(c, NULL));
    ASSERT_OK(rk_cache_store(c, NULL, "cycle-value", "v", 1, 10000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "cycle-value", &v));
    rk_buf_free(&v);
    ASSERT_OK(rk_cache_close(c, NULL));
}

static void open_close_cycles_keep_heap_flat(void)
{
    rkt_server s;
    rkt_server_start(&s, NULL);
    rk_lock *l;
    ASSERT_OK(rk_lock_new(&l));
    rk_config *cfg = rkt_server_config(&s, NULL);
    ASSERT_OK(rk_lock_configure(l, cfg));
    rk_cache *c = configured_cache(cfg);
    for (int i = 0; i < CYCLE_WARMUP; i++)
        cycle(l, c);
    long long heap0 = atomic_load(&live_bytes);
    uint64_t t0 = rkt_now_ms();
    for (int i = 0; i < CYCLES; i++)
        cycle(l, c);
    long long heap = atomic_load(&live_bytes) - heap0;
    printf("     %d open/use/close cycles of a lock and a cache in %" PRIu64
           " ms: redkit heap %+lld bytes\n",
           CYCLES, rkt_now_ms() - t0, heap);
    rk_lock_free(l);
    rk_cache_free(c);
    rkt_server_stop(&s);
    ASSERT_EQ(heap, 0);
}

/* ---- TLS: every open loads the CA bundle ---- */

enum { CERTS = 150, TLS_WARMUP = 10, TLS_OPENS = 300, TLS_RSS_LIMIT = 30 * 1024 * 1024 };

/* CERTS self-signed certificates sharing one P-256 key, in one PEM bundle under `dir`. */
static void make_bundle(const char *dir, char *bundle, size_t cap)
{
    char cmd[1024], line[128];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
             "-out k.pem 2>/dev/null && for i in $(seq %d); do openssl req -x509 -new -key k.pem "
             "-subj /CN=ca$i -days 1 || exit 1; done > bundle.pem",
             dir, CERTS);
    ASSERT_EQ(system(cmd), 0);
    snprintf(bundle, cap, "%s/bundle.pem", dir);
    int certs = 0;
    FILE *f = fopen(bundle, "r");
    ASSERT_TRUE(f != NULL);
    while (fgets(line, sizeof line, f))
        certs += strstr(line, "BEGIN CERTIFICATE") != NULL;
    fclose(f);
    ASSERT_EQ(certs, CERTS);
}

static void failed_tls_opens_keep_rss_flat(void)
{
    int fd;
    char dir[] = "/tmp/redkit-growth.XXXXXX", bundle[128], uri[64], cmd[128];
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    make_bundle(dir, bundle, sizeof bundle);
    snprintf(uri, sizeof uri, "rediss://127.0.0.1:%d", dead_port(&fd));
    rk_config *cfg;
    ASSERT_OK(rk_config_from_tuples(&cfg, "connection.uri", uri, "options.tls_ca_file", bundle,
                                    "options.retries", "0", NULL));
    rk_cache *c = configured_cache(cfg);
    failed_opens(c, TLS_WARMUP); /* RK_EIO: the bundle loaded, then the connection was refused */
    long long rss0 = rss_bytes();
    uint64_t took = failed_opens(c, TLS_OPENS);
    long long rss = rss_bytes() - rss0;
    printf("     %d failed TLS opens (%d CA certificates) in %" PRIu64 " ms: RSS %+lld KiB "
           "(%.1f KiB per open)\n",
           TLS_OPENS, CERTS, took, rss / 1024, (double)rss / 1024 / TLS_OPENS);
    rk_cache_free(c);
    close(fd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
    ASSERT_LT(rss, TLS_RSS_LIMIT);
}

/* ---- main ---- */

/* Under ASan, run again with the quarantine off (once: the option is then in the environment). */
static void without_asan_quarantine(char **argv)
{
#ifdef RKT_ASAN
    static const char off[] = "quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
    const char *old = getenv("ASAN_OPTIONS");
    char options[2048];
    if (old && strstr(old, off))
        return;
    snprintf(options, sizeof options, "%s%s%s", old ? old : "", old && *old ? ":" : "", off);
    setenv("ASAN_OPTIONS", options, 1);
    execv("/proc/self/exe", argv);
    perror("re-executing without the ASan quarantine");
    exit(1);
#else
    (void)argv;
#endif
}

int main(int argc, char **argv)
{
    static const rk_allocator counting = {count_malloc, count_realloc, count_free, NULL};
    static const rkt_case cases[] = {RKT_CASE(failed_opens_keep_heap_flat),
                                     RKT_CASE(open_close_cycles_keep_heap_flat),
                                     RKT_CASE(failed_tls_opens_keep_rss_flat)};
    without_asan_quarantine(argv);
    /* Before any other redkit call, so that every block redkit frees is one we counted. */
    if (rk_set_allocator(&counting) != RK_OK) {
        fprintf(stderr, "rk_set_allocator failed: %s\n", rk_last_error()->message);
        return 1;
    }
    return rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
