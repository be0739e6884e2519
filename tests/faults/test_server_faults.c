/* Fault injection against private redis-server processes (never the shared fixture): the
 * server killed and restarted under load, paused (CLIENT PAUSE, DEBUG SLEEP), and a fake
 * server that cuts its replies in half. Every call must end with a clean error within
 * options.timeout (or succeed), never hang, never crash, never hand back a partial value, and
 * the component must work again afterwards without being reopened. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "redis_env.h"

/* Slack on top of a deadline for scheduling on a loaded 2-core CI machine. */
#define SLACK_MS 400

static rk_config *config_for_port(int port, const char *extra)
{
    char buf[512];
    snprintf(buf, sizeof buf, "connection.host=127.0.0.1;connection.port=%d;%s", port,
             extra ? extra : "");
    return rkt_settings(buf);
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Poll `cond` every millisecond until it holds; fail after `limit_ms`. Used to wait for
 * progress made by other threads, never for time itself to pass. */
#define WAIT_FOR(cond, limit_ms, what)                                                             \
    do {                                                                                           \
        uint64_t until_ = rkt_now_ms() + (limit_ms);                                               \
        while (!(cond)) {                                                                          \
            if (rkt_now_ms() > until_)                                                             \
                rkt_fail(__FILE__, __LINE__, "timed out waiting for %s", what);                    \
            pause_ms(1);                                                                           \
        }                                                                                          \
    } while (0)

/* ---- server killed and restarted while 4 threads work ---- */

enum { WORKERS = 4, OP_TIMEOUT = 1000 };
enum { RUNNING, DOWN, RESTARTED, STOPPING };

typedef struct {
    int id;
    rk_cache *cache;
    atomic_int *phase;
    atomic_int ok_before, failed_down, ok_after, failed_after;
    atomic_int done;
    int unexpected_rc;      /* first code outside the allowed set, 0 if none */
    uint64_t slowest_ms;    /* longest single call */
    unsigned lost_restarts; /* a stored value gone: the server restarted in between */
} worker;

/* One store + retrieve of this worker's own key. Allowed: RK_OK, RK_EIO (server down or
 * restarting), RK_ENOTFOUND on the retrieve (the restarted server forgot the value). */
static void one_round(worker *w, unsigned i)
{
    char key[32], val[32];
    rk_buf b = RK_BUF_INIT;
    snprintf(key, sizeof key, "w%d", w->id);
    int len = snprintf(val, sizeof val, "v%d-%u", w->id, i);
    int phase = atomic_load(w->phase);
    uint64_t t0 = rkt_now_ms();
    int rc = rk_cache_store(w->cache, NULL, key, val, (size_t)len, 60000);
    uint64_t t1 = rkt_now_ms();
    int rc2 = rc == RK_OK ? rk_cache_retrieve(w->cache, NULL, key, &b) : rc;
    uint64_t t2 = rkt_now_ms();
    if (t1 - t0 > w->slowest_ms)
        w->slowest_ms = t1 - t0;
    if (t2 - t1 > w->slowest_ms)
        w->slowest_ms = t2 - t1;
    if ((rc != RK_OK && rc != RK_EIO) || (rc2 != RK_OK && rc2 != RK_EIO && rc2 != RK_ENOTFOUND)) {
        if (!w->unexpected_rc)
            w->unexpected_rc = rc != RK_OK ? rc : rc2;
    } else if (rc2 == RK_OK) {
        ASSERT_EQ(b.len, (size_t)len); /* never a partial or foreign value */
        ASSERT_MEM_EQ(b.data, val, (size_t)len);
    } else if (rc2 == RK_ENOTFOUND) {
        w->lost_restarts++;
    }
    rk_buf_free(&b);
    bool ok = rc == RK_OK && rc2 == RK_OK;
    if (ok && phase == RUNNING)
        atomic_fetch_add(&w->ok_before, 1);
    else if (!ok && phase == DOWN)
        atomic_fetch_add(&w->failed_down, 1);
    else if (phase == RESTARTED)
        atomic_fetch_add(ok ? &w->ok_after : &w->failed_after, 1);
}

static void *work(void *arg)
{
    worker *w = arg;
    for (unsigned i = 0; atomic_load(w->phase) != STOPPING; i++)
        one_round(w, i);
    atomic_store(&w->done, 1);
    return NULL;
}

/* Every worker's counter at `offset` has reached `min`. */
static bool all_reached(worker *ws, size_t offset, int min)
{
    for (int i = 0; i < WORKERS; i++)
        if (atomic_load((atomic_int *)((char *)&ws[i] + offset)) < min)
            return false;
    return true;
}

#define ALL_WORKERS(field, min) all_reached(ws, offsetof(worker, field), min)

static void kill_and_restart_under_load(void)
{
    rkt_server s;
    worker ws[WORKERS] = {0};
    pthread_t t[WORKERS];
    atomic_int phase = RUNNING;
    char extra[128];
    rkt_server_start(&s, NULL);
    snprintf(extra, sizeof extra, "options.timeout=%d;options.retries=3;options.max_connections=4",
             OP_TIMEOUT);
    rk_cache *c = rkt_open_cache(config_for_port(s.port, extra));
    for (int i = 0; i < WORKERS; i++) {
        ws[i].id = i, ws[i].cache = c, ws[i].phase = &phase;
        pthread_create(&t[i], NULL, work, &ws[i]);
    }
    WAIT_FOR(ALL_WORKERS(ok_before, 50), 10000, "50 rounds per thread before the kill");
    rkt_server_kill(&s);
    atomic_store(&phase, DOWN);
    WAIT_FOR(ALL_WORKERS(failed_down, 3), 10000, "every thread to see the outage");
    rkt_server_restart(&s);
    atomic_store(&phase, RESTARTED);
    WAIT_FOR(ALL_WORKERS(ok_after, 50), 10000, "50 rounds per thread after the restart");
    atomic_store(&phase, STOPPING);
    WAIT_FOR(ALL_WORKERS(done, 1), OP_TIMEOUT * 2 + SLACK_MS, "the threads to stop");
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
        if (ws[i].unexpected_rc)
            rkt_fail(__FILE__, __LINE__, "thread %d got %s", i, rk_strerror(ws[i].unexpected_rc));
        ASSERT_LT(ws[i].slowest_ms, OP_TIMEOUT + SLACK_MS);
        printf("     thread %d: %d ok before, %d failed while down, %d ok / %d failed after, "
               "slowest call %" PRIu64 " ms, %u values lost to the restart\n",
               i, atomic_load(&ws[i].ok_before), atomic_load(&ws[i].failed_down),
               atomic_load(&ws[i].ok_after), atomic_load(&ws[i].failed_after), ws[i].slowest_ms,
               ws[i].lost_restarts);
    }
    ASSERT_TRUE(rk_cache_is_open(c)); /* never reopened */
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* ---- paused server: CLIENT PAUSE and DEBUG SLEEP ---- */

enum { PAUSED_TIMEOUT = 500 };

/* The call failed with TIMEOUT on its deadline: not early, not late. */
#define ASSERT_TIMED_OUT(expr)                                                                     \
    do {                                                                                           \
        uint64_t t0_ = rkt_now_ms();                                                               \
        ASSERT_RC(expr, RK_ETIMEDOUT);                                                             \
        uint64_t took_ = rkt_now_ms() - t0_;                                                       \
        ASSERT_EQ(rk_last_error()->code, RK_ETIMEDOUT);                                            \
        ASSERT_GE(took_, PAUSED_TIMEOUT - 50);                                                     \
        ASSERT_LT(took_, PAUSED_TIMEOUT + SLACK_MS);                                               \
    } while (0)

typedef struct {
    rk_cache *cache;
    int rc;
    uint64_t took;
} paused_call;

static void *retrieve_paused(void *arg)
{
    paused_call *p = arg;
    rk_buf b = RK_BUF_INIT;
    uint64_t t0 = rkt_now_ms();
    p->rc = rk_cache_retrieve(p->cache, NULL, "paused", &b);
    p->took = rkt_now_ms() - t0;
    ASSERT_TRUE(b.data == NULL);
    return NULL;
}

static void roundtrip(rk_cache *c, const char *value)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_store(c, NULL, "paused", value, strlen(value), 60000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "paused", &b));
    ASSERT_STR_EQ(b.data, value);
    rk_buf_free(&b);
}

static void client_pause(void)
{
    rkt_server s;
    char extra[96];
    pthread_t t[4];
    paused_call calls[4];
    bool ok;
    rkt_server_start(&s, NULL);
    snprintf(extra, sizeof extra, "options.timeout=%d;options.max_connections=4", PAUSED_TIMEOUT);
    rk_cache *c = rkt_open_cache(config_for_port(s.port, extra));
    rk_lock *l = rkt_open_lock(config_for_port(s.port, extra));
    roundtrip(c, "before");
    redisContext *raw = rkt_raw_port(s.port);
    uint64_t paused_at = rkt_now_ms();
    freeReplyObject(rkt_cmd(raw, "CLIENT", "PAUSE", "3000", "ALL", NULL));
    /* Four callers at once each time out on their own deadline, not one after another. */
    for (int i = 0; i < 4; i++) {
        calls[i] = (paused_call){c, 0, 0};
        pthread_create(&t[i], NULL, retrieve_paused, &calls[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ASSERT_RC(calls[i].rc, RK_ETIMEDOUT);
        ASSERT_GE(calls[i].took, PAUSED_TIMEOUT - 50);
        ASSERT_LT(calls[i].took, PAUSED_TIMEOUT + SLACK_MS);
    }
    ASSERT_TIMED_OUT(rk_cache_store(c, NULL, "paused", "during", 6, 60000));
    ASSERT_TIMED_OUT(rk_lock_try_acquire(l, NULL, "paused-lock", 1000, &ok));
    ASSERT_FALSE(ok);
    ASSERT_LT(rkt_now_ms() - paused_at, 3000); /* all of it happened during the pause */
    /* A raw PING is answered when the pause ends. */
    redisReply *r = rkt_cmd(raw, "PING", NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(raw);
    roundtrip(c, "after");
    /* The timed-out SET NX may still have run once the pause ended (Redis executes what it
     * had already read): then it holds a token nobody knows, and only its TTL frees it. */
    ASSERT_OK(rk_lock_acquire(l, NULL, "paused-lock", 1000, 3000));
    ASSERT_OK(rk_lock_release(l, NULL, "paused-lock"));
    rk_lock_free(l);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* Send DEBUG SLEEP without waiting for its reply: the whole server stops for `seconds`. */
static redisContext *debug_sleep(int port, const char *seconds)
{
    redisContext *raw = rkt_raw_port(port);
    int done = 0;
    ASSERT_EQ(redisAppendCommand(raw, "DEBUG SLEEP %s", seconds), REDIS_OK);
    while (!done)
        ASSERT_EQ(redisBufferWrite(raw, &done), REDIS_OK);
    return raw;
}

static void debug_sleep_server(void)
{
    rkt_server s;
    char extra[64];
    rkt_server_start(&s, NULL);
    snprintf(extra, sizeof extra, "options.timeout=%d", PAUSED_TIMEOUT);
    rk_cache *c = rkt_open_cache(config_for_port(s.port, extra)), *late;
    rk_config *cfg = config_for_port(s.port, extra);
    roundtrip(c, "before");
    ASSERT_OK(rk_cache_new(&late));
    ASSERT_OK(rk_cache_configure(late, cfg));
    rk_config_free(cfg);
    redisContext *raw = debug_sleep(s.port, "2");
    pause_ms(50); /* let the server read the command and start sleeping */
    ASSERT_TIMED_OUT(rk_cache_store(c, NULL, "paused", "during", 6, 60000));
    ASSERT_TIMED_OUT(rk_cache_open(late, NULL)); /* connects, but PING gets no answer */
    ASSERT_FALSE(rk_cache_is_open(late));
    void *reply;
    ASSERT_EQ(redisGetReply(raw, &reply), REDIS_OK); /* the sleep is over */
    freeReplyObject(reply);
    redisFree(raw);
    roundtrip(c, "after");
    ASSERT_OK(rk_cache_open(late, NULL));
    rk_cache_free(late);
    rk_cache_free(c);
    rkt_server_stop(&s);
}

/* ---- restarted server still loading its data set ---- */

enum { LOADED_KEYS = 3000 };

/* A restarted server answers -LOADING until its data set is in memory (here slowed down to
 * ~0.1 ms per key). Those commands did not run: redkit retries them until the operation's
 * deadline, then fails with RK_ETIMEDOUT or the server's LOADING error. */
static void restarted_server_loading(void)
{
    rkt_server s;
    char n[16];
    bool ok;
    rkt_server_start(&s, "--key-load-delay 100 --loading-process-events-interval-bytes 1024");
    redisContext *raw = rkt_raw_port(s.port);
    snprintf(n, sizeof n, "%d", LOADED_KEYS);
    freeReplyObject(rkt_cmd(raw, "DEBUG", "POPULATE", n, NULL));
    freeReplyObject(rkt_cmd(raw, "SAVE", NULL));
    redisFree(raw);
    rk_cache *patient = rkt_open_cache(config_for_port(s.port, "options.timeout=10000")),
             *hasty = rkt_open_cache(config_for_port(s.port, "options.timeout=200"));
    rk_lock *l = rkt_open_lock(config_for_port(s.port, "options.timeout=10000"));
    rkt_server_restart(&s);
    raw = rkt_raw_port(s.port);
    redisReply *r = rkt_cmd(raw, "PING", NULL);
    ASSERT_TRUE(r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LOADING", 7));
    freeReplyObject(r);
    uint64_t t0 = rkt_now_ms();
    int rc = rk_cache_store(hasty, NULL, "k", "v", 1, 60000);
    if (rc != RK_ETIMEDOUT) /* the deadline passed mid-round trip, or on a LOADING reply */
        ASSERT_STR_EQ(rk_last_error()->name, "LOADING");
    ASSERT_TRUE(rc == RK_ETIMEDOUT || rc == RK_EREPLY);
    ASSERT_GE(rkt_now_ms() - t0, 200);
    ASSERT_LT(rkt_now_ms() - t0, 200 + SLACK_MS);
    ASSERT_OK(rk_lock_try_acquire(l, NULL, "while-loading", 10000, &ok));
    ASSERT_TRUE(ok);
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_retrieve(patient, NULL, "key:1", &b));
    ASSERT_STR_EQ(b.data, "value:1");
    printf("     waited %" PRIu64 " ms for the server to load %d keys\n", rkt_now_ms() - t0,
           LOADED_KEYS);
    ASSERT_OK(rk_lock_release(l, NULL, "while-loading"));
    ASSERT_OK(rk_cache_store(hasty, NULL, "k", "v", 1, 60000));
    rk_buf_free(&b);
    redisFree(raw);
    rk_lock_free(l);
    rk_cache_free(patient);
    rk_cache_free(hasty);
    rkt_server_stop(&s);
}

/* ---- a fake server that cuts its replies short ---- */

typedef enum { CUT_HALF, CUT_GARBAGE, CUT_WRONG_TYPE } cut_mode;

typedef struct {
    int listen_fd, port;
    cut_mode mode;
    atomic_bool stop;
    atomic_int connections, commands;
    pthread_t thread;
} fake_server;

/* The command name of the first complete RESP command in buf[0..len), or NULL if incomplete.
 * `*used` receives its length. Enough for the single commands redkit sends here. */
static const char *command_name(const char *buf, size_t len, size_t *used, char *name, size_t cap)
{
    const char *end = buf + len, *p = buf;
    if (len < 4 || *p != '*')
        return NULL;
    long argc = strtol(p + 1, NULL, 10);
    for (long i = 0; i < argc; i++) {
        const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!crlf || crlf + 2 >= end || crlf[2] != '$')
            return NULL;
        long n = strtol(crlf + 3, NULL, 10);
        const char *data = memmem(crlf + 2, (size_t)(end - crlf - 2), "\r\n", 2);
        if (!data || data + 2 + n + 2 > end)
            return NULL;
        if (i == 0)
            snprintf(name, cap, "%.*s", (int)n, data + 2);
        p = data + 2 + n;
    }
    *used = (size_t)(p + 2 - buf);
    return name;
}

static void write_all(int fd, const char *s)
{
    for (size_t len = strlen(s); len > 0;) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        s += n, len -= (size_t)n;
    }
}

/* Answer PING (and CLUSTER, as a server without cluster support does: the open asks)
 * properly; cut (or garble) the reply to anything else, then hang up. */
static void serve(fake_server *f, int fd)
{
    static const char *half[] = {"$10\r\nhello", "*2\r\n$1\r\na\r\n", "+O"};
    char buf[8192], name[32];
    size_t len = 0, used;
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        const char *cmd;
        while ((cmd = command_name(buf, len, &used, name, sizeof name)) != NULL) {
            memmove(buf, buf + used, len - used);
            len -= used;
            if (!strcasecmp(cmd, "PING")) {
                write_all(fd, "+PONG\r\n");
                continue;
            }
            if (!strcasecmp(cmd, "CLUSTER")) {
                write_all(fd, "-ERR This instance has cluster support disabled\r\n");
                continue;
            }
            atomic_fetch_add(&f->commands, 1);
            if (f->mode == CUT_GARBAGE)
                write_all(fd, "!this is not RESP\r\n");
            else if (f->mode == CUT_WRONG_TYPE)
                write_all(fd, ":1\r\n");
            else
                write_all(fd, half[!strcasecmp(cmd, "MGET") ? 1 : !strcasecmp(cmd, "GET") ? 0 : 2]);
            if (f->mode == CUT_HALF)
                return;
        }
    }
}

static void *fake_main(void *arg)
{
    fake_server *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {f->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->connections, 1);
        serve(f, fd);
        close(fd);
    }
    return NULL;
}

static void fake_start(fake_server *f, cut_mode mode)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sa;
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_TRUE(f->listen_fd >= 0);
    ASSERT_EQ(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(f->listen_fd, 16), 0);
    ASSERT_EQ(getsockname(f->listen_fd, (struct sockaddr *)&sa, &slen), 0);
    f->port = ntohs(sa.sin_port);
    pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_stop(fake_server *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

enum { RETRIES = 2 };

static void cut_mid_reply(void)
{
    fake_server f;
    char extra[96];
    fake_start(&f, CUT_HALF);
    snprintf(extra, sizeof extra, "options.timeout=3000;options.retries=%d", RETRIES);
    rk_cache *c = rkt_open_cache(config_for_port(f.port, extra));
    /* retrieve: the half "hello" never reaches the caller, whose buffer is left alone. */
    rk_buf b = RK_BUF_INIT, kept = RK_BUF_INIT;
    ASSERT_OK(rk_buf_set(&kept, "previous", 8));
    int commands = atomic_load(&f.commands);
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", &b), RK_EIO);
    ASSERT_LT(rkt_now_ms() - t0, 3000);
    ASSERT_ERROR(RK_EIO, "CONNECTION_FAILED", "NoResponse");
    ASSERT_CONTAINS(rk_last_error()->message, "retrieve 'k'");
    ASSERT_CONTAINS(rk_last_error()->message, "connection closed by the server while reading");
    ASSERT_TRUE(b.data == NULL && b.len == 0);
    ASSERT_EQ(atomic_load(&f.commands) - commands, RETRIES + 1); /* retried, and no more */
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", &kept), RK_EIO);
    ASSERT_STR_EQ(kept.data, "previous");
    /* retrieve_many: half an array; every output is left empty. */
    const char *keys[2] = {"a", "b"};
    rk_buf outs[2] = {RK_BUF_INIT, RK_BUF_INIT};
    ASSERT_OK(rk_buf_set(&outs[0], "stale", 5));
    ASSERT_RC(rk_cache_retrieve_many(c, NULL, keys, 2, outs), RK_EIO);
    ASSERT_TRUE(outs[0].data == NULL && outs[1].data == NULL);
    /* store and lock acquisition: half a status line. */
    ASSERT_RC(rk_cache_store(c, NULL, "k", "v", 1, 1000), RK_EIO);
    rk_lock *l = rkt_open_lock(config_for_port(f.port, extra));
    bool ok = true;
    ASSERT_RC(rk_lock_try_acquire(l, NULL, "k", 1000, &ok), RK_EIO);
    ASSERT_FALSE(ok);
    ASSERT_CONTAINS(rk_last_error()->message, "try_acquire 'k'");
    rk_lock_free(l);
    rk_buf_free(&kept);
    rk_cache_free(c);
    fake_stop(&f);
}

/* Garbage and wrong reply types: clean errors, nothing half-parsed handed back. */
static void bad_replies(void)
{
    fake_server f;
    rk_buf b = RK_BUF_INIT;
    fake_start(&f, CUT_GARBAGE);
    rk_cache *c = rkt_open_cache(config_for_port(f.port, "options.timeout=3000;options.retries=1"));
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", &b), RK_EIO);
    ASSERT_CONTAINS(rk_last_error()->message, "cannot parse the server's reply");
    ASSERT_TRUE(b.data == NULL);
    rk_cache_free(c);
    fake_stop(&f);
    fake_start(&f, CUT_WRONG_TYPE);
    c = rkt_open_cache(config_for_port(f.port, "options.timeout=3000"));
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", &b), RK_EREPLY);
    ASSERT_CONTAINS(rk_last_error()->message, "retrieve 'k': GET: unexpected reply type");
    ASSERT_TRUE(b.data == NULL);
    ASSERT_RC(rk_cache_store(c, NULL, "k", "v", 1, 1000), RK_EREPLY);
    ASSERT_EQ(atomic_load(&f.connections), 1); /* a reply of the wrong type is not a lost line */
    rk_cache_free(c);
    fake_stop(&f);
}

RKT_MAIN(RKT_CASE(kill_and_restart_under_load), RKT_CASE(client_pause),
         RKT_CASE(debug_sleep_server), RKT_CASE(restarted_server_loading), RKT_CASE(cut_mid_reply),
         RKT_CASE(bad_replies))
