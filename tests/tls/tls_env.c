#include "tls_env.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        rkt_fail(__FILE__, __LINE__, "%s is not set: run this test through ctest", name);
    return v;
}

int rkt_tls_port(void) { return atoi(env("REDKIT_TLS_PORT")); }

const char *rkt_tls_file(const char *file)
{
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", env("REDKIT_TLS_CERTS"), file);
    return b;
}

static redisContext *admin_at(const char *sock)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    if (!c || c->err)
        rkt_fail(__FILE__, __LINE__, "admin connection to %s failed: %s", sock,
                 c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);
    return c;
}

redisContext *rkt_tls_admin(void) { return admin_at(env("REDKIT_TLS_SOCKET")); }

const char *rkt_tls_settings(int port, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "connection.uri=rediss://localhost:%d;options.tls_ca_file=%s;options.prefix=%s;%s",
             port ? port : rkt_tls_port(), rkt_tls_file("ca.crt"), rkt_prefix(),
             extra ? extra : "");
    return buf;
}

int rkt_tls_open(const char *settings, rk_cache **out)
{
    rk_config *cfg;
    ASSERT_OK(rk_config_from_string(&cfg, settings));
    ASSERT_OK(rk_cache_new(out));
    ASSERT_OK(rk_cache_configure(*out, cfg));
    rk_config_free(cfg);
    return rk_cache_open(*out, NULL);
}

void rkt_tls_roundtrip(rk_cache *c)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_store(c, NULL, "tls-roundtrip", "ok", 2, 5000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "tls-roundtrip", &b));
    ASSERT_STR_EQ(b.data, "ok");
    rk_buf_free(&b);
    ASSERT_OK(rk_cache_remove(c, NULL, "tls-roundtrip"));
}

/* ---- private TLS servers ---- */

static void spawn(rkt_tls_server *s)
{
    char port[16], cert[512], key[512], ca[512];
    const char *argv[64];
    char extra[sizeof s->extra];
    int argc = 0;
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(cert, sizeof cert, "%s", rkt_tls_file("server.crt"));
    snprintf(key, sizeof key, "%s", rkt_tls_file("server.key"));
    snprintf(ca, sizeof ca, "%s", rkt_tls_file("ca.crt"));
    argv[argc++] = "redis-server";
    argv[argc++] = "--port", argv[argc++] = "0";
    argv[argc++] = "--tls-port", argv[argc++] = port;
    argv[argc++] = "--tls-cert-file", argv[argc++] = cert;
    argv[argc++] = "--tls-key-file", argv[argc++] = key;
    argv[argc++] = "--tls-ca-cert-file", argv[argc++] = ca;
    argv[argc++] = "--tls-auth-clients", argv[argc++] = "no"; /* extra_args may say yes */
    argv[argc++] = "--bind", argv[argc++] = "127.0.0.1";
    argv[argc++] = "--unixsocket", argv[argc++] = s->sock;
    argv[argc++] = "--save", argv[argc++] = "";
    argv[argc++] = "--appendonly", argv[argc++] = "no";
    argv[argc++] = "--dir", argv[argc++] = s->dir;
    argv[argc++] = "--logfile", argv[argc++] = "redis.log";
    snprintf(extra, sizeof extra, "%s", s->extra);
    for (char *save, *tok = strtok_r(extra, " ", &save); tok && argc < 62;
         tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        /* Not our stdout: a test that fails leaves no server holding ctest's pipe open. */
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
}

/* The server answers PING on its Unix socket: its TLS port was set up before that. */
static int ready(rkt_tls_server *s)
{
    for (int i = 0; i < 1000; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            return 0; /* e.g. the port was taken */
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectUnixWithTimeout(s->sock, tv);
        if (c && !c->err) {
            redisReply *r = rkt_cmd(c, "PING", NULL);
            int ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 1;
        } else if (c) {
            redisFree(c);
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void reap(rkt_tls_server *s, int sig)
{
    if (s->pid > 0) {
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    unlink(s->sock);
}

/* Servers still running when a failed assertion exits the test: killed on the way out. */
static rkt_tls_server *live[8];

static void kill_live(void)
{
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (live[i])
            rkt_tls_server_stop(live[i]);
}

static void track(rkt_tls_server *s, bool add)
{
    static bool registered;
    if (!registered)
        registered = atexit(kill_live) == 0;
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
        if (add ? live[i] == NULL : live[i] == s) {
            live[i] = add ? s : NULL;
            return;
        }
    }
}

void rkt_tls_server_start(rkt_tls_server *s, const char *extra_args)
{
    memset(s, 0, sizeof *s);
    track(s, true);
    snprintf(s->dir, sizeof s->dir, "/tmp/redkit-tlssrv.XXXXXX");
    if (!mkdtemp(s->dir))
        rkt_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    snprintf(s->extra, sizeof s->extra, "%s", extra_args ? extra_args : "");
    for (int attempt = 0; attempt < 10; attempt++) {
        s->port = rkt_free_port();
        spawn(s);
        if (ready(s))
            return;
        reap(s, SIGKILL);
    }
    rkt_fail(__FILE__, __LINE__, "cannot start a TLS redis-server (log in %s)", s->dir);
}

void rkt_tls_server_restart(rkt_tls_server *s)
{
    reap(s, SIGKILL);
    for (int attempt = 0; attempt < 50; attempt++) {
        spawn(s);
        if (ready(s))
            return;
        reap(s, SIGKILL);
    }
    rkt_fail(__FILE__, __LINE__, "cannot restart the TLS redis-server on port %d", s->port);
}

void rkt_tls_server_stop(rkt_tls_server *s)
{
    track(s, false);
    reap(s, SIGTERM);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
}

redisContext *rkt_tls_server_admin(const rkt_tls_server *s) { return admin_at(s->sock); }

const char *rkt_capture_stderr(void (*fn)(void *), void *arg)
{
    static char text[8192];
    char path[] = "/tmp/redkit-stderr.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    if (fd < 0 || saved < 0)
        rkt_fail(__FILE__, __LINE__, "cannot capture stderr: %s", strerror(errno));
    unlink(path);
    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return text;
}
