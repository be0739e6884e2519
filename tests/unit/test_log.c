/* The log handler: a custom handler gets every level, NULL restores the stderr printer (warnings
 * and errors only, in the exact format the TLS warning always had), and swapping handlers while
 * threads log never pairs a handler with another's ud nor runs a handler after its swap. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "log.h"
#include "resolve.h"

typedef struct {
    int calls, level;
    char message[RK__LOG_MAX];
} record;

static void record_handler(void *ud, int level, const char *message)
{
    record *r = ud;
    r->calls++;
    r->level = level;
    snprintf(r->message, sizeof r->message, "%s", message);
}

static void custom_handler_gets_level_and_message(void)
{
    record rec = {0};
    rk_set_log_handler(record_handler, &rec);
    rk__log(RK_LOG_WARN, "tls %s:%d", "cache", 6380);
    ASSERT_EQ(rec.calls, 1);
    ASSERT_EQ(rec.level, RK_LOG_WARN);
    ASSERT_STR_EQ(rec.message, "tls cache:6380");
    /* Levels the default drops still reach a custom handler. */
    rk__log(RK_LOG_DEBUG, "d");
    ASSERT_EQ(rec.calls, 2);
    ASSERT_EQ(rec.level, RK_LOG_DEBUG);
    rk__log(RK_LOG_ERROR, "e");
    ASSERT_EQ(rec.level, RK_LOG_ERROR);
    rk_set_log_handler(NULL, NULL);
    ASSERT_EQ(rec.calls, 3);
}

/* Run `fn` with stderr going into `out` (through a pipe large enough for a few lines). */
static void capture_stderr(void (*fn)(void), char *out, size_t cap)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ASSERT_TRUE(saved >= 0);
    ASSERT_TRUE(dup2(fds[1], STDERR_FILENO) >= 0);
    close(fds[1]);
    fn();
    fflush(stderr);
    ASSERT_TRUE(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fds[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
}

static void log_every_level(void)
{
    rk__log(RK_LOG_DEBUG, "debug %d", 4);
    rk__log(RK_LOG_WARN, "warn %d", 2);
    rk__log(RK_LOG_INFO, "info %d", 3);
    rk__log(RK_LOG_ERROR, "error %d", 1);
}

static void null_restores_the_stderr_printer(void)
{
    record rec = {0};
    char err[1024];
    rk_set_log_handler(record_handler, &rec);
    capture_stderr(log_every_level, err, sizeof err);
    ASSERT_STR_EQ(err, "");
    ASSERT_EQ(rec.calls, 4);
    rk_set_log_handler(NULL, NULL);
    capture_stderr(log_every_level, err, sizeof err);
    ASSERT_STR_EQ(err, "redkit: warning: warn 2\nredkit: error: error 1\n");
    ASSERT_EQ(rec.calls, 4);
}

/* The warning comes when a client (what one open runs with) builds its TLS context. */
static void resolve_insecure_tls(void)
{
    rk__options o;
    rk__client *cl;
    rk_config *cfg;
    ASSERT_OK(rk_config_from_string(&cfg, "connection.uri=rediss://cache.internal:6380;"
                                          "options.tls_verify=false"));
    ASSERT_OK(rk__options_parse(&o, cfg));
    ASSERT_OK(rk__client_new(&cl, "cache", &o, cfg, NULL, NULL, false));
    rk__client_unref(cl);
    rk__options_clear(&o);
    rk_config_free(cfg);
}

/* The one message redkit logs today keeps the line it printed before there was a handler. */
static void insecure_tls_warning_is_unchanged(void)
{
    char err[1024];
    capture_stderr(resolve_insecure_tls, err, sizeof err);
    ASSERT_STR_EQ(err, "redkit: warning: options.tls_verify=false: the TLS certificate of "
                       "cache.internal:6380 is not verified, so anyone on the network path can "
                       "impersonate the server (insecure)\n");
    record rec = {0};
    rk_set_log_handler(record_handler, &rec);
    resolve_insecure_tls();
    rk_set_log_handler(NULL, NULL);
    ASSERT_EQ(rec.calls, 1);
    ASSERT_EQ(rec.level, RK_LOG_WARN);
    ASSERT_CONTAINS(rec.message, "cache.internal:6380 is not verified");
}

/* Open a cache with `settings` (nobody listens on 127.0.0.1:1, so it fails after the client
 * is built, which is where the warning comes); the log goes to `rec`. */
static void open_logged(const char *settings, record *rec)
{
    rk_config *cfg;
    rk_cache *c;
    ASSERT_OK(rk_config_from_string(&cfg, settings));
    ASSERT_OK(rk_config_set(cfg, "options.retries", "0"));
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_cache_configure(c, cfg));
    rk_set_log_handler(record_handler, rec);
    ASSERT_TRUE(rk_cache_open(c, NULL) != RK_OK);
    rk_set_log_handler(NULL, NULL);
    rk_cache_free(c);
    rk_config_free(cfg);
}

/* options.tls_* on a plain connection does nothing: a warning per open names the option and
 * says the connection is not TLS, and none comes without such an option or with TLS on. */
static void tls_options_on_plain_connection_warn(void)
{
    record rec = {0};
    open_logged("connection.uri=redis://127.0.0.1:1;options.tls_ca_file=/etc/redis/ca.crt", &rec);
    ASSERT_EQ(rec.calls, 1);
    ASSERT_EQ(rec.level, RK_LOG_WARN);
    ASSERT_STR_EQ(rec.message, "options.tls_ca_file is set but the connection to 127.0.0.1:1 is "
                               "not TLS: it is plaintext (use rediss:// or options.tls=true)");
    open_logged("connection.uri=redis://127.0.0.1:1;options.tls_ca_file=/etc/redis/ca.crt", &rec);
    ASSERT_EQ(rec.calls, 2); /* once per open */
    record host = {0};
    open_logged("connection.host=127.0.0.1;connection.port=1;options.tls=false;"
                "options.tls_server_name=cache.internal",
                &host);
    ASSERT_EQ(host.calls, 1);
    ASSERT_CONTAINS(host.message, "options.tls_server_name is set but the connection to "
                                  "127.0.0.1:1 is not TLS");
    record verify = {0};
    open_logged("connection.uri=redis://127.0.0.1:1;options.tls_verify=false", &verify);
    ASSERT_EQ(verify.calls, 1);
    ASSERT_CONTAINS(verify.message, "options.tls_verify is set");
    record quiet = {0};
    open_logged("connection.uri=redis://127.0.0.1:1", &quiet);
    ASSERT_EQ(quiet.calls, 0);
    /* TLS on: the options are used (the open fails on the missing CA file), no such warning. */
    open_logged("connection.uri=rediss://127.0.0.1:1;options.tls_ca_file=/nonexistent/ca.crt",
                &quiet);
    ASSERT_EQ(quiet.calls, 0);
}

static void long_messages_are_cut_errno_is_kept(void)
{
    static char big[3 * RK__LOG_MAX];
    memset(big, 'x', sizeof big - 1);
    record rec = {0};
    rk_set_log_handler(record_handler, &rec);
    errno = EAGAIN;
    rk__log(RK_LOG_INFO, "%s", big);
    ASSERT_EQ(errno, EAGAIN);
    rk_set_log_handler(NULL, NULL);
    ASSERT_EQ(strlen(rec.message), RK__LOG_MAX - 1);
}

/* ---- concurrency: 8 threads log while another swaps between two handlers ---- */

#define LOGGERS 8
#define MESSAGES 2000

typedef struct {
    atomic_int running; /* calls in progress */
    atomic_long calls;
} sink;

static sink sink_a, sink_b;
static atomic_int mismatches;
static atomic_int loggers_left;
static atomic_bool go; /* loggers start together, once the swapper is about to run */

static void deliver(sink *expected, void *ud, int level, const char *message)
{
    if (ud != expected || level != RK_LOG_DEBUG || strncmp(message, "thread ", 7))
        atomic_fetch_add(&mismatches, 1);
    atomic_fetch_add(&expected->running, 1);
    atomic_fetch_add(&expected->calls, 1);
    atomic_fetch_sub(&expected->running, 1);
}

static void handler_a(void *ud, int level, const char *message)
{
    deliver(&sink_a, ud, level, message);
}

static void handler_b(void *ud, int level, const char *message)
{
    deliver(&sink_b, ud, level, message);
}

static void *logger(void *arg)
{
    int id = (int)(intptr_t)arg;
    while (!atomic_load(&go))
        sched_yield();
    for (int i = 0; i < MESSAGES; i++)
        rk__log(RK_LOG_DEBUG, "thread %d message %d", id, i);
    atomic_fetch_sub(&loggers_left, 1);
    return NULL;
}

static void swap_while_threads_log(void)
{
    pthread_t t[LOGGERS];
    rk_set_log_handler(handler_a, &sink_a);
    atomic_store(&loggers_left, LOGGERS);
    for (int i = 0; i < LOGGERS; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, logger, (void *)(intptr_t)i), 0);
    atomic_store(&go, true);
    /* Once a swap returns, the handler it replaced must be idle. */
    do {
        rk_set_log_handler(handler_b, &sink_b);
        ASSERT_EQ(atomic_load(&sink_a.running), 0);
        rk_set_log_handler(handler_a, &sink_a);
        ASSERT_EQ(atomic_load(&sink_b.running), 0);
    } while (atomic_load(&loggers_left) > 0);
    for (int i = 0; i < LOGGERS; i++)
        pthread_join(t[i], NULL);
    rk_set_log_handler(NULL, NULL);
    ASSERT_EQ(atomic_load(&mismatches), 0);
    ASSERT_EQ(atomic_load(&sink_a.calls) + atomic_load(&sink_b.calls), LOGGERS * MESSAGES);
}

RKT_MAIN(RKT_CASE(custom_handler_gets_level_and_message),
         RKT_CASE(null_restores_the_stderr_printer), RKT_CASE(insecure_tls_warning_is_unchanged),
         RKT_CASE(tls_options_on_plain_connection_warn),
         RKT_CASE(long_messages_are_cut_errno_is_kept), RKT_CASE(swap_while_threads_log))
