/* Where the bench connects: URL parsing for the hiredis baselines, and private redis-servers
 * (plain TCP and TLS, with throw-away certificates) started on free loopback ports. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

/* ---- targets ---- */

static int copy_part(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        return -1;
    memcpy(dst, src, len);
    dst[len] = 0;
    return 0;
}

static int parse_unix(bench_target *t, const char *rest)
{
    const char *q = strchr(rest, '?');
    size_t len = q ? (size_t)(q - rest) : strlen(rest);
    if (copy_part(t->path, sizeof t->path, rest, len) != 0 || !len)
        return -1;
    if (q && !strncmp(q, "?db=", 4))
        t->db = atoi(q + 4);
    return 0;
}

static int parse_tcp(bench_target *t, const char *rest)
{
    const char *at = strrchr(rest, '@'), *slash;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon &&
            copy_part(t->password, sizeof t->password, colon + 1, (size_t)(at - colon - 1)) != 0)
            return -1;
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    size_t hlen = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *colon = memchr(rest, ':', hlen);
    t->port = 6379;
    if (colon) {
        t->port = atoi(colon + 1);
        hlen = (size_t)(colon - rest);
    }
    if (copy_part(t->host, sizeof t->host, rest, hlen) != 0 || !hlen || t->port <= 0 ||
        t->port > 65535)
        return -1;
    if (slash && slash[1])
        t->db = atoi(slash + 1);
    return 0;
}

int bench_target_parse(bench_target *t, const char *url)
{
    char ca[sizeof t->ca_file];
    snprintf(ca, sizeof ca, "%s", t->ca_file);
    memset(t, 0, sizeof *t);
    snprintf(t->ca_file, sizeof t->ca_file, "%s", ca);
    if (snprintf(t->url, sizeof t->url, "%s", url) >= (int)sizeof t->url)
        return -1;
    if (!strncmp(url, "unix://", 7))
        return parse_unix(t, url + 7);
    if (!strncmp(url, "rediss://", 9)) {
        t->tls = true;
        return parse_tcp(t, url + 9);
    }
    if (!strncmp(url, "redis://", 8))
        return parse_tcp(t, url + 8);
    return -1;
}

static bool reply_ok(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok;
}

redisContext *bench_hiredis(const bench_target *t)
{
    struct timeval tv = {5, 0};
    redisContext *c = t->path[0] ? redisConnectUnixWithTimeout(t->path, tv)
                                 : redisConnectWithTimeout(t->host, t->port, tv);
    if (!c || c->err) {
        fprintf(stderr, "redkit-bench: hiredis cannot connect to %s: %s\n", t->url,
                c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    char db[16];
    snprintf(db, sizeof db, "%d", t->db);
    const char *auth[] = {"AUTH", t->password}, *sel[] = {"SELECT", db};
    if ((t->password[0] && !reply_ok(c, 2, auth)) || (t->db && !reply_ok(c, 2, sel))) {
        fprintf(stderr, "redkit-bench: AUTH or SELECT refused by %s\n", t->url);
        redisFree(c);
        return NULL;
    }
    return c;
}

rk_config *bench_config(const bench_target *t, ...)
{
    rk_config *cfg;
    if (rk_config_new(&cfg) != RK_OK || rk_config_set(cfg, "connection.uri", t->url) != RK_OK)
        die("cannot build a configuration: %s", rk_last_error()->message);
    if (t->tls && t->ca_file[0])
        rk_config_set(cfg, "options.tls_ca_file", t->ca_file);
    va_list ap;
    va_start(ap, t);
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        if (rk_config_set(cfg, k, v) != RK_OK)
            die("cannot set %s: %s", k, rk_last_error()->message);
    }
    va_end(ap);
    return cfg;
}

rk_cache *bench_open_cache(const bench_target *t, rk_config *cfg)
{
    rk_cache *c;
    if (rk_cache_new(&c) != RK_OK || rk_cache_configure(c, cfg) != RK_OK ||
        rk_cache_open(c, NULL) != RK_OK)
        die("cannot open a cache on %s: %s", t->url, rk_last_error()->message);
    rk_config_free(cfg);
    return c;
}

long bench_counter(redisContext *c, const char *verb, const char *key)
{
    const char *argv[] = {verb, key};
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    long v = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1000;
    if (r)
        freeReplyObject(r);
    return v;
}

/* ---- private servers ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        die("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

static pid_t exec_server(const char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the bench */
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execvp(argv[0], (char *const *)argv); /* execvp does not write them */
        _exit(127);
    }
    track_pid(pid);
    return pid;
}

static bool wait_ready(const bench_target *t, pid_t pid)
{
    for (int i = 0; i < 500; i++) {
        redisContext *c = redisConnect(t->host, t->port);
        if (c && !c->err) {
            const char *ping[] = {"PING"};
            bool ok = reply_ok(c, 1, ping);
            redisFree(c);
            if (ok)
                return true;
            c = NULL; /* freed: not again below */
        }
        redisFree(c);
        if (kill(pid, 0) != 0)
            return false;
        sleep_ns(10000000);
    }
    return false;
}

static void path_in(char *dst, size_t cap, const char *dir, const char *name, bool track)
{
    snprintf(dst, cap, "%s/%s", dir, name);
    if (track)
        track_path(dst);
}

static bool make_certs(const char *dir)
{
    static const char *files[] = {"ca.key",     "ca.crt",     "ca.srl",  "server.key",
                                  "server.csr", "server.crt", "ext.cnf", "openssl.log"};
    char p[400], cmd[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        path_in(p, sizeof p, dir, files[i], true);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.crt -days 2 -subj /CN=redkit-bench-ca && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj /CN=localhost && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out server.crt -days 2 -extfile ext.cnf",
             dir);
    char full[4200];
    snprintf(full, sizeof full, "(%s) > '%s/openssl.log' 2>&1", cmd, dir);
    return system(full) == 0;
}

/* A redkit cache open over TLS proves both the server and redkit's TLS work. */
static const char *probe_tls(const bench_target *t, pid_t pid)
{
    static char why[200];
    rk_config *cfg = bench_config(t, "options.connect_timeout", "1000", "options.retries", "0",
                                  "options.timeout", "2000", NULL);
    rk_cache *c;
    rk_cache_new(&c);
    rk_cache_configure(c, cfg);
    rk_config_free(cfg);
    int rc = RK_ERROR;
    for (int i = 0; i < 50 && rc != RK_OK && kill(pid, 0) == 0; i++) {
        if ((rc = rk_cache_open(c, NULL)) != RK_OK) {
            snprintf(why, sizeof why, "tls unavailable: %s", rk_last_error()->message);
            sleep_ns(100000000);
        }
    }
    rk_cache_free(c);
    return rc == RK_OK ? NULL : why;
}

static void start_tls(bench_opts *o, const char *dir)
{
    char crt[400], key[400], ca[400], log[400], port[16];
    if (!make_certs(dir)) {
        o->tls_missing = "tls unavailable: openssl could not make certificates";
        return;
    }
    path_in(crt, sizeof crt, dir, "server.crt", false);
    path_in(key, sizeof key, dir, "server.key", false);
    path_in(ca, sizeof ca, dir, "ca.crt", false);
    path_in(log, sizeof log, dir, "redis-tls.log", true);
    int p = free_port();
    snprintf(port, sizeof port, "%d", p);
    const char *argv[] = {"redis-server",
                          "--port",
                          "0",
                          "--tls-port",
                          port,
                          "--bind",
                          "127.0.0.1",
                          "--tls-cert-file",
                          crt,
                          "--tls-key-file",
                          key,
                          "--tls-ca-cert-file",
                          ca,
                          "--tls-auth-clients",
                          "no",
                          "--save",
                          "",
                          "--appendonly",
                          "no",
                          "--dir",
                          dir,
                          "--logfile",
                          log,
                          NULL};
    pid_t pid = exec_server(argv);
    char url[128];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d", p);
    snprintf(o->tls.ca_file, sizeof o->tls.ca_file, "%s", ca);
    bench_target_parse(&o->tls, url);
    o->tls_missing = probe_tls(&o->tls, pid);
    if (o->tls_missing)
        o->tls.url[0] = 0;
}

void server_start(bench_opts *o, bool want_tls)
{
    static char dir[] = "/tmp/redkit-bench.XXXXXX";
    if (!mkdtemp(dir))
        die("cannot create a temp dir: %s", strerror(errno));
    track_path(dir);
    o->tmpdir = dir;
    char log[400], port[16], url[128];
    path_in(log, sizeof log, dir, "redis.log", true);
    for (int attempt = 0; attempt < 5; attempt++) {
        int p = free_port();
        snprintf(port, sizeof port, "%d", p);
        const char *argv[] = {
            "redis-server", "--port", port,    "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no",     "--dir", dir,      "--logfile", log,      NULL};
        pid_t pid = exec_server(argv);
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", p);
        bench_target_parse(&o->plain, url);
        if (wait_ready(&o->plain, pid)) {
            o->own_server = true;
            if (want_tls)
                start_tls(o, dir);
            else
                o->tls_missing = "not selected";
            return;
        }
        kill(pid, SIGKILL);
        reap(pid);
    }
    die("could not start redis-server (is it installed? see %s)", log);
}

pid_t server_spawn(const bench_opts *o, int index, bench_target *t)
{
    char log[400], name[32], rdb[32], port[16], url[128];
    snprintf(name, sizeof name, "redis-%d.log", index);
    snprintf(rdb, sizeof rdb, "dump-%d.rdb", index);
    path_in(log, sizeof log, o->tmpdir, name, true);
    for (int attempt = 0; attempt < 5; attempt++) {
        int p = free_port();
        snprintf(port, sizeof port, "%d", p);
        const char *argv[] = {"redis-server", "--port",       port, "--bind",
                              "127.0.0.1",    "--save",       "",   "--appendonly",
                              "no",           "--dbfilename", rdb,  "--dir",
                              o->tmpdir,      "--logfile",    log,  NULL};
        pid_t pid = exec_server(argv);
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", p);
        bench_target_parse(t, url);
        if (wait_ready(t, pid))
            return pid;
        kill(pid, SIGKILL);
        reap(pid);
    }
    die("could not start redis-server (see %s)", log);
}

double load_average(void)
{
    double l = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = 0;
        fclose(f);
    }
    return l;
}
