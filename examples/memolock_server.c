/* The redis-memolock extended example as a small HTTP server on 127.0.0.1 (libmicrohttpd).
 *
 *   memolock_server [--url redis://127.0.0.1:6379 | unix:///path/redis.sock] [--port 8080]
 *   (--port 0 picks a free port and prints it)
 *
 *   GET /query/simple/<id>      2 s of work, cached 5 s
 *   GET /report/renewable/<id>  8 s of work on a 5 s lease renewed after 2 s, cached 5 s
 *   GET /ext/<id>               an external program (redis-cli) produces the value
 *   GET /metrics                the three memolocks' statistics, for Prometheus
 *
 * However many requests arrive at once, "cache miss" is printed once per id: one request
 * computes, the others (in this or any other process) receive its value through Pub/Sub. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <redkit.h>

static rk_memolock *query, *report, *ext;
static const char *redis_url = "redis://127.0.0.1:6379";

static rk_memolock *open_memolock(const char *tag, const char *lock_timeout)
{
    rk_config *cfg;
    rk_memolock *m;
    rk_config_from_tuples(&cfg, "connection.uri", redis_url, "options.resource_tag", tag,
                          "options.lock_timeout", lock_timeout, NULL);
    if (rk_memolock_new(&m) || rk_memolock_configure(m, cfg) || rk_memolock_open(m, NULL)) {
        const rk_error *e = rk_last_error();
        fprintf(stderr, "memolock %s: %s (%s/%s)\n", tag, e->message, e->name, e->category);
        exit(1);
    }
    rk_config_free(cfg);
    return m;
}

static int simple_query(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    const char *id = ud;
    char body[256];
    printf("(query/simple/%s) cache miss: working hard!\n", id);
    sleep(2);
    *ttl_ms = 5000;
    return rk_buf_set(value, body,
                      (size_t)snprintf(body, sizeof body, "<query set result %s>", id));
}

static int renewable_report(void *ud, rk_memolock_renewer *renew, rk_buf *value, uint64_t *ttl_ms)
{
    const char *id = ud;
    char body[256];
    printf("(report/renewable/%s) cache miss: working super-hard! (1)\n", id);
    sleep(2);
    if (rk_memolock_renew(renew, 20000) != RK_OK) /* milliseconds, owner-checked */
        return 1;
    sleep(6);
    printf("(report/renewable/%s) working super-hard! (2)\n", id);
    *ttl_ms = 5000;
    return rk_buf_set(value, body,
                      (size_t)snprintf(body, sizeof body, "https://somewhere/%s-report.pdf", id));
}

/* redis-cli arguments reaching the same server as redis_url. */
static void redis_cli_target(char *buf, size_t cap)
{
    if (!strncmp(redis_url, "unix://", 7))
        snprintf(buf, cap, "-s '%s'", redis_url + 7);
    else
        snprintf(buf, cap, "-u '%s'", redis_url);
}

/* The "external program": upper-cases the id a second later, then SETs and PUBLISHes it on
 * the names redkit hands it, which carry options.prefix when one is configured. */
static int start_external(void *ud, const char *value_key, const char *channel)
{
    const char *id = ud;
    char target[512], cmd[2048];
    if (strchr(id, '\'') || strchr(value_key, '\'') || strchr(channel, '\''))
        return 1; /* they are quoted for the shell below */
    printf("(ext/%s) cache miss: starting the external program\n", id);
    redis_cli_target(target, sizeof target);
    snprintf(cmd, sizeof cmd,
             "(sleep 1; v=$(printf %%s '%s' | tr a-z A-Z);"
             " redis-cli %s SET '%s' \"$v\" PX 10000 >/dev/null;"
             " redis-cli %s PUBLISH '%s' \"$v\" >/dev/null) &",
             id, target, value_key, target, channel);
    return system(cmd);
}

/* One page for all handles: Prometheus wants each metric's samples together. */
static int metrics(rk_buf *body)
{
    rk_memolock *handles[3] = {query, report, ext};
    const char *names[3] = {"query", "report", "ext"};
    rk_stats *stats[3] = {NULL, NULL, NULL};
    int rc = RK_OK;
    for (int i = 0; i < 3 && rc == RK_OK; i++)
        if ((rc = rk_stats_new(&stats[i])) == RK_OK)
            rc = rk_memolock_get_stats(handles[i], stats[i]);
    if (rc == RK_OK)
        rc = rk_stats_format_prometheus(body, (const rk_stats *const *)stats, names, 3);
    for (int i = 0; i < 3; i++)
        rk_stats_free(stats[i]);
    return rc;
}

static int route(const char *url, rk_buf *body)
{
    const char *id;
    if (!strncmp(url, "/query/simple/", 14) && *(id = url + 14))
        return rk_memolock_get(query, NULL, id, 10000, simple_query, (void *)id, body);
    if (!strncmp(url, "/report/renewable/", 18) && *(id = url + 18))
        return rk_memolock_get_renewable(report, NULL, id, 10000, renewable_report, (void *)id,
                                         body);
    if (!strncmp(url, "/ext/", 5) && *(id = url + 5))
        return rk_memolock_get_external2(ext, NULL, id, 10000, start_external, (void *)id, body);
    if (!strcmp(url, "/metrics"))
        return metrics(body);
    return RK_ENOTFOUND;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text,
                             size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)cls, (void)method, (void)version, (void)upload, (void)upload_size, (void)state;
    rk_buf body = RK_BUF_INIT;
    int rc = route(url, &body);
    if (rc == RK_ENOTFOUND)
        return reply(conn, MHD_HTTP_NOT_FOUND, "not found\n", 10);
    if (rc != RK_OK) {
        char err[640];
        const rk_error *e = rk_last_error();
        int n = snprintf(err, sizeof err, "ERROR: %s: %s\n", e->name, e->message);
        return reply(conn, rc == RK_ETIMEDOUT ? MHD_HTTP_GATEWAY_TIMEOUT : 500, err, (size_t)n);
    }
    enum MHD_Result ok = reply(conn, MHD_HTTP_OK, body.data, body.len);
    rk_buf_free(&body);
    return ok;
}

int main(int argc, char **argv)
{
    unsigned short port = 8080;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            redis_url = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = (unsigned short)atoi(argv[i + 1]);
    }
    sigset_t stop;
    int sig;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before any thread starts: only main takes them */
    setvbuf(stdout, NULL, _IOLBF, 0);
    query = open_memolock("query", "5000");
    report = open_memolock("report", "5000");
    ext = open_memolock("ext", "15000");
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, port,
        NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET,
                                                       .sin_port = htons(port),
                                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%u\n", port);
        return 1;
    }
    port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port; /* --port 0: the chosen one */
    printf("Listening to 127.0.0.1:%u\n"
           "GET /query/simple/{id}     -> simple caching\n"
           "GET /report/renewable/{id} -> renewable lock\n"
           "GET /ext/{id}              -> external program interop\n"
           "GET /metrics               -> statistics (Prometheus)\n",
           port);
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    rk_memolock_free(query);
    rk_memolock_free(report);
    rk_memolock_free(ext);
    return 0;
}
