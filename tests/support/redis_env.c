#include "redis_env.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t rkt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *rkt_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        rkt_fail(__FILE__, __LINE__, "%s is not set: run this test through ctest", name);
    return v;
}

const char *rkt_host(void) { return rkt_env("REDKIT_TEST_HOST"); }
int rkt_port(void) { return atoi(rkt_env("REDKIT_TEST_PORT")); }
const char *rkt_socket(void) { return rkt_env("REDKIT_TEST_SOCKET"); }

const char *rkt_prefix(void)
{
    static char prefix[32];
    if (!prefix[0])
        snprintf(prefix, sizeof prefix, "t%d:", (int)getpid());
    return prefix;
}

static rk_config *config_for(const char *host, int port, const char *extra)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "connection.host=%s;connection.port=%d;options.prefix=%s;%s", host,
             port, rkt_prefix(), extra ? extra : "");
    return rkt_settings(buf);
}

rk_config *rkt_config(const char *extra) { return config_for(rkt_host(), rkt_port(), extra); }

static const struct timeval raw_timeout = {5, 0};

/* A hung server fails the test after the timeout instead of blocking it until ctest's. */
static redisContext *checked(redisContext *c, const char *where)
{
    if (!c || c->err)
        rkt_fail(__FILE__, __LINE__, "raw connection to %s failed: %s", where,
                 c ? c->errstr : "out of memory");
    redisSetTimeout(c, raw_timeout);
    return c;
}

redisContext *rkt_raw_port(int port)
{
    char where[32];
    snprintf(where, sizeof where, "port %d", port);
    return checked(redisConnectWithTimeout("127.0.0.1", port, raw_timeout), where);
}

redisContext *rkt_raw_socket(const char *path)
{
    return checked(redisConnectUnixWithTimeout(path, raw_timeout), path);
}

redisContext *rkt_raw(void) { return rkt_raw_port(rkt_port()); }

redisReply *rkt_cmd(redisContext *c, ...)
{
    const char *argv[32];
    size_t len[32];
    int argc = 0;
    va_list ap;
    va_start(ap, c);
    for (const char *a; argc < 32 && (a = va_arg(ap, const char *)) != NULL; argc++) {
        argv[argc] = a;
        len[argc] = strlen(a);
    }
    va_end(ap);
    redisReply *r = redisCommandArgv(c, argc, argv, len);
    if (!r)
        rkt_fail(__FILE__, __LINE__, "raw %s failed: %s", argv[0], c->errstr);
    return r;
}

void rkt_wait_subscribers(redisContext *c, const char *channel, long long n)
{
    for (;;) {
        redisReply *r = rkt_cmd(c, "PUBSUB", "NUMSUB", channel, NULL);
        long long have = r->element[1]->integer;
        freeReplyObject(r);
        if (have >= n)
            break;
        usleep(1000);
    }
}

void rkt_wait_shard_subscribers(redisContext *c, const char *channel, long long n)
{
    for (;;) {
        redisReply *r = rkt_cmd(c, "PUBSUB", "SHARDNUMSUB", channel, NULL);
        long long have = r->element[1]->integer;
        freeReplyObject(r);
        if (have >= n)
            break;
        usleep(1000);
    }
}

/* ---- private servers ---- */

int rkt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        rkt_fail(__FILE__, __LINE__, "cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

/* The command line: what every test server shares, its ports, then the test's own arguments
 * (which may override any of it, the last occurrence wins). Points into `a` and `s`. */
typedef struct server_argv {
    const char *v[64];
    int n;
    char port[16], cert[300], key[300], ca[300], extra[sizeof(((rkt_server *)0)->extra)];
} server_argv;

static void arg(server_argv *a, const char *name, const char *value)
{
    a->v[a->n++] = name;
    a->v[a->n++] = value;
}

static void tls_ports(server_argv *a, const rkt_server *s)
{
    snprintf(a->cert, sizeof a->cert, "%s/server.crt", s->certs);
    snprintf(a->key, sizeof a->key, "%s/server.key", s->certs);
    snprintf(a->ca, sizeof a->ca, "%s/ca.crt", s->certs);
    arg(a, "--port", "0");
    arg(a, "--tls-port", a->port);
    arg(a, "--tls-cert-file", a->cert);
    arg(a, "--tls-key-file", a->key);
    arg(a, "--tls-ca-cert-file", a->ca);
    arg(a, "--tls-auth-clients", "no"); /* as most clients connect; extra may say yes */
}

static void build_argv(server_argv *a, const rkt_server *s)
{
    a->n = 0;
    a->v[a->n++] = "redis-server";
    if (s->conf[0]) /* only as the first argument is it taken for the config file */
        a->v[a->n++] = s->conf;
    snprintf(a->port, sizeof a->port, "%d", s->port);
    if (s->certs[0])
        tls_ports(a, s);
    else
        arg(a, "--port", a->port);
    arg(a, "--bind", "127.0.0.1");
    arg(a, "--unixsocket", s->sock);
    arg(a, "--save", "");
    arg(a, "--appendonly", "no");
    arg(a, "--dir", s->dir);
    arg(a, "--enable-debug-command", "local");
    arg(a, "--logfile", "redis.log");
    snprintf(a->extra, sizeof a->extra, "%s", s->extra);
    for (char *save, *tok = strtok_r(a->extra, " ", &save); tok && a->n < 63;
         tok = strtok_r(NULL, " ", &save))
        a->v[a->n++] = tok;
    a->v[a->n] = NULL;
}

static __attribute__((noreturn)) void exec_server(const server_argv *a, pid_t parent)
{
    /* A failed assertion exits the test without stopping its servers: the kernel kills them
     * then. A parent already gone before prctl would never send the signal. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    /* It logs to its own file; holding the test's stdout open would keep ctest waiting for
     * output until its timeout whenever a server outlived its test. */
    int null = open("/dev/null", O_RDWR);
    dup2(null, STDIN_FILENO), dup2(null, STDOUT_FILENO), dup2(null, STDERR_FILENO);
    execvp("redis-server", (char *const *)a->v);
    _exit(127);
}

static void spawn(rkt_server *s)
{
    server_argv a;
    build_argv(&a, s);
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid < 0)
        rkt_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (s->pid == 0)
        exec_server(&a, parent);
}

/* The Unix socket answers PING (NOAUTH and LOADING count): TCP and TLS ports are set up before
 * it. Fails if the server died instead, e.g. because its port was taken. A cluster node may
 * accept on the socket and then exit (its bus port, port + 10000, taken or above 65535): no
 * answer is not up, and the next round sees it gone. */
static bool ready(rkt_server *s)
{
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
            return false;
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectUnixWithTimeout(s->sock, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool up = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR);
            freeReplyObject(r);
            redisFree(c);
            if (up)
                return true;
        } else if (c) {
            redisFree(c);
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void reap(rkt_server *s, int sig)
{
    if (s->pid > 0) {
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

/* Nothing is left running when it did not come up. */
static bool launch(rkt_server *s)
{
    spawn(s);
    if (ready(s))
        return true;
    reap(s, SIGKILL);
    return false;
}

static void prepare(rkt_server *s, const char *cert_dir, const char *extra_args)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/redkit-srv.XXXXXX");
    if (!mkdtemp(s->dir))
        rkt_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    snprintf(s->certs, sizeof s->certs, "%s", cert_dir ? cert_dir : "");
    snprintf(s->extra, sizeof s->extra, "%s", extra_args ? extra_args : "");
}

/* On another free port each time. */
static void launch_anywhere(rkt_server *s)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        s->port = rkt_free_port();
        if (launch(s))
            return;
    }
    rkt_fail(__FILE__, __LINE__, "cannot start redis-server (log in %s)", s->dir);
}

static void start(rkt_server *s, const char *cert_dir, const char *extra_args)
{
    prepare(s, cert_dir, extra_args);
    launch_anywhere(s);
}

static void write_conf(rkt_server *s, const char *conf)
{
    snprintf(s->conf, sizeof s->conf, "%s/redis.conf", s->dir);
    FILE *f = fopen(s->conf, "w");
    if (!f || fputs(conf, f) < 0 || fclose(f) != 0)
        rkt_fail(__FILE__, __LINE__, "cannot write %s: %s", s->conf, strerror(errno));
}

/* All spawned before any is waited for: their start-up is what takes time. One that did not
 * come up (its port taken meanwhile, even by a sibling) starts again elsewhere. */
static void start_all(rkt_server *s, int n, const char *const *conf, const char *extra_args)
{
    for (int i = 0; i < n; i++) {
        prepare(&s[i], NULL, extra_args);
        if (conf)
            write_conf(&s[i], conf[i]);
        s[i].port = rkt_free_port();
        spawn(&s[i]);
    }
    for (int i = 0; i < n; i++)
        if (!ready(&s[i])) {
            reap(&s[i], SIGKILL);
            launch_anywhere(&s[i]);
        }
}

void rkt_servers_start(rkt_server *s, int n, const char *extra_args)
{
    start_all(s, n, NULL, extra_args);
}

void rkt_servers_start_conf(rkt_server *s, int n, const char *const *conf, const char *extra_args)
{
    start_all(s, n, conf, extra_args);
}

void rkt_server_start(rkt_server *s, const char *extra_args) { start(s, NULL, extra_args); }

void rkt_server_start_conf(rkt_server *s, const char *conf, const char *extra_args)
{
    prepare(s, NULL, extra_args);
    write_conf(s, conf);
    launch_anywhere(s);
}

void rkt_server_start_tls(rkt_server *s, const char *cert_dir, const char *extra_args)
{
    start(s, cert_dir, extra_args);
}

void rkt_server_kill(rkt_server *s) { reap(s, SIGKILL); }

/* Retried rather than moved to another port: its clients must find it where they left it. */
void rkt_server_restart(rkt_server *s)
{
    rkt_server_kill(s);
    for (int attempt = 0; attempt < 50; attempt++)
        if (launch(s))
            return;
    rkt_fail(__FILE__, __LINE__, "cannot restart redis-server on port %d (log in %s)", s->port,
             s->dir);
}

void rkt_server_stop(rkt_server *s)
{
    reap(s, SIGTERM);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
}

redisContext *rkt_server_admin(const rkt_server *s) { return rkt_raw_socket(s->sock); }

rk_config *rkt_server_config(const rkt_server *s, const char *extra)
{
    if (s->certs[0])
        rkt_fail(__FILE__, __LINE__, "the server on port %d speaks TLS only", s->port);
    return config_for("127.0.0.1", s->port, extra);
}

/* ---- opening components ---- */

rk_config *rkt_settings(const char *settings)
{
    rk_config *cfg;
    ASSERT_OK(rk_config_from_string(&cfg, settings));
    return cfg;
}

int rkt_try_open_cache(rk_config *cfg, rk_cache **out)
{
    ASSERT_OK(rk_cache_new(out));
    ASSERT_OK(rk_cache_configure(*out, cfg));
    rk_config_free(cfg);
    return rk_cache_open(*out, NULL);
}

rk_cache *rkt_open_cache(rk_config *cfg)
{
    rk_cache *c;
    ASSERT_OK(rkt_try_open_cache(cfg, &c));
    return c;
}

rk_lock *rkt_open_lock(rk_config *cfg)
{
    rk_lock *l;
    ASSERT_OK(rk_lock_new(&l));
    ASSERT_OK(rk_lock_configure(l, cfg));
    rk_config_free(cfg);
    ASSERT_OK(rk_lock_open(l, NULL));
    return l;
}

rk_semaphore *rkt_open_semaphore(rk_config *cfg)
{
    rk_semaphore *s;
    ASSERT_OK(rk_semaphore_new(&s));
    ASSERT_OK(rk_semaphore_configure(s, cfg));
    rk_config_free(cfg);
    ASSERT_OK(rk_semaphore_open(s, NULL));
    return s;
}

rk_memolock *rkt_open_memolock(rk_config *cfg)
{
    rk_memolock *m;
    ASSERT_OK(rk_memolock_new(&m));
    ASSERT_OK(rk_memolock_configure(m, cfg));
    rk_config_free(cfg);
    ASSERT_OK(rk_memolock_open(m, NULL));
    return m;
}

int rkt_server_unanswered(const rkt_server *s)
{
    char line[512];
    int n = 0;
    FILE *f = fopen("/proc/net/tcp", "r");
    ASSERT_TRUE(f != NULL);
    while (fgets(line, sizeof line, f)) {
        unsigned port, state, rx_queue;
        if (sscanf(line, " %*u: %*x:%x %*x:%*x %x %*x:%x", &port, &state, &rx_queue) == 3 &&
            port == (unsigned)s->port && state == 1 /* ESTABLISHED */ && rx_queue > 0)
            n++;
    }
    fclose(f);
    return n;
}

void *rkt_shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(p != MAP_FAILED);
    memset(p, 0, size);
    return p;
}

void rkt_trio_new(rkt_trio *t, const rk_config *cfg)
{
    ASSERT_OK(rk_cache_new(&t->cache));
    ASSERT_OK(rk_lock_new(&t->lock));
    ASSERT_OK(rk_memolock_new(&t->memo));
    if (!cfg)
        return;
    ASSERT_OK(rk_cache_configure(t->cache, cfg));
    ASSERT_OK(rk_lock_configure(t->lock, cfg));
    ASSERT_OK(rk_memolock_configure(t->memo, cfg));
}

void rkt_trio_free(rkt_trio *t)
{
    rk_cache_free(t->cache);
    rk_lock_free(t->lock);
    rk_memolock_free(t->memo);
}

long long rkt_server_int(const rkt_server *s, const char *cmd, const char *key)
{
    redisContext *c = rkt_raw_port(s->port);
    redisReply *r = rkt_cmd(c, cmd, key, NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

rkt_near rkt_near_stats(rk_cache *c)
{
    rk_stats *s;
    rkt_near n;
    ASSERT_OK(rk_stats_new(&s));
    ASSERT_OK(rk_cache_get_stats(c, s));
    n.hits = rk_stats_events(s, RK_EVENT_NEAR_HIT, false);
    n.misses = rk_stats_events(s, RK_EVENT_NEAR_MISS, false);
    n.invalidations = rk_stats_events(s, RK_EVENT_NEAR_INVALIDATION, false);
    n.evictions = rk_stats_events(s, RK_EVENT_NEAR_EVICTION, false);
    n.flushes = rk_stats_events(s, RK_EVENT_NEAR_FLUSH, false);
    rk_stats_free(s);
    ASSERT_OK(rk_cache_near_cache_size(c, &n.entries, &n.bytes));
    return n;
}
