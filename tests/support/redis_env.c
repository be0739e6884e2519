#include "redis_env.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
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

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        rkt_fail(__FILE__, __LINE__, "%s is not set: run this test through ctest", name);
    return v;
}

const char *rkt_host(void) { return env("REDKIT_TEST_HOST"); }
int rkt_port(void) { return atoi(env("REDKIT_TEST_PORT")); }
const char *rkt_socket(void) { return env("REDKIT_TEST_SOCKET"); }

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
    rk_config *cfg;
    snprintf(buf, sizeof buf, "connection.host=%s;connection.port=%d;options.prefix=%s;%s", host,
             port, rkt_prefix(), extra ? extra : "");
    if (rk_config_from_string(&cfg, buf) != RK_OK)
        rkt_fail(__FILE__, __LINE__, "bad test configuration: %s", rk_last_error()->message);
    return cfg;
}

rk_config *rkt_config(const char *extra) { return config_for(rkt_host(), rkt_port(), extra); }

redisContext *rkt_raw_port(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err)
        rkt_fail(__FILE__, __LINE__, "raw connection to port %d failed: %s", port,
                 c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);
    return c;
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

static void spawn(rkt_server *s)
{
    char port[16];
    const char *argv[64];
    char extra[sizeof s->extra];
    int argc = 0;
    snprintf(port, sizeof port, "%d", s->port);
    argv[argc++] = "redis-server";
    argv[argc++] = "--port", argv[argc++] = port;
    argv[argc++] = "--bind", argv[argc++] = "127.0.0.1";
    argv[argc++] = "--unixsocket", argv[argc++] = s->sock;
    argv[argc++] = "--save", argv[argc++] = "";
    argv[argc++] = "--appendonly", argv[argc++] = "no";
    argv[argc++] = "--dir", argv[argc++] = s->dir;
    argv[argc++] = "--enable-debug-command", argv[argc++] = "local";
    argv[argc++] = "--logfile", argv[argc++] = "redis.log";
    snprintf(extra, sizeof extra, "%s", s->extra);
    for (char *save, *tok = strtok_r(extra, " ", &save); tok && argc < 62;
         tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        /* It logs to its own file; holding the test's stdout open would keep ctest waiting
         * for output until its timeout whenever a failed test leaves the server running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion exits without stopping us */
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO), dup2(null, STDOUT_FILENO), dup2(null, STDERR_FILENO);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
}

/* Wait until the server answers PING, or fail if it died (e.g. port taken). */
static int ready(rkt_server *s)
{
    for (int i = 0; i < 1000; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            return 0;
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
        if (c && !c->err) {
            redisReply *r = rkt_cmd(c, "PING", NULL); /* NOAUTH also means it is up */
            int ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR);
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

void rkt_server_start(rkt_server *s, const char *extra_args)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/redkit-srv.XXXXXX");
    if (!mkdtemp(s->dir))
        rkt_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    snprintf(s->extra, sizeof s->extra, "%s", extra_args ? extra_args : "");
    for (int attempt = 0; attempt < 10; attempt++) {
        s->port = rkt_free_port();
        spawn(s);
        if (ready(s))
            return;
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    rkt_fail(__FILE__, __LINE__, "cannot start redis-server (log in %s)", s->dir);
}

void rkt_server_kill(rkt_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

void rkt_server_restart(rkt_server *s)
{
    rkt_server_kill(s);
    for (int attempt = 0; attempt < 50; attempt++) {
        spawn(s);
        if (ready(s))
            return;
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    rkt_fail(__FILE__, __LINE__, "cannot restart redis-server on port %d", s->port);
}

void rkt_server_stop(rkt_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
}

rk_config *rkt_server_config(const rkt_server *s, const char *extra)
{
    return config_for("127.0.0.1", s->port, extra);
}
