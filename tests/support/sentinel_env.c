#include "sentinel_env.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

/* How often the waits look again: apart from +switch-master (which rkt_sentinel_watch hears),
 * the sentinels announce nothing a test can wait on, so they poll (bounded). */
enum { POLL_MS = 20, START_TIMEOUT_MS = 30000, ANSWER_MS = 1000 };

/* On top of rkt_server's own arguments. Without --repl-diskless-sync-delay 0 a master waits 5 s
 * for more replicas before a sync (the first one, and a demoted master's after a failover); a
 * stopped deployment's data is thrown away, so no master waits for its replica to catch up. */
static const char node_args[] = "--repl-diskless-sync-delay 0 --shutdown-timeout 0";
static const char sentinel_args[] = "--sentinel";

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool live(const rkt_server *srv) { return srv->pid > 0; }

static int node_of_port(const rkt_sentinel *s, long long port)
{
    for (int i = 0; i < RKT_SENTINEL_NODES; i++)
        if (s->node[i].port == port)
            return i;
    return -1;
}

/* ---- connections ---- */

/* On the Unix socket, authenticated; NULL when the process does not answer within `ms` (it
 * may be dead, paused or restarting while we poll) or refuses the password. */
static redisContext *try_connect(const rkt_server *srv, const char *password, unsigned ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    redisContext *c = redisConnectUnixWithTimeout(srv->sock, tv);
    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    if (password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static redisContext *must_connect(const rkt_server *srv, const char *password, const char *what)
{
    redisContext *c = try_connect(srv, password, 5000);
    if (!c)
        rkt_fail(__FILE__, __LINE__, "%s (port %d) does not answer (log in %s)", what, srv->port,
                 srv->dir);
    return c;
}

redisContext *rkt_sentinel_node_raw(const rkt_sentinel *s, int i)
{
    ASSERT_TRUE(i >= 0 && i < RKT_SENTINEL_NODES);
    return must_connect(&s->node[i], s->master_password, "data node");
}

redisContext *rkt_sentinel_sentinel_raw(const rkt_sentinel *s, int i)
{
    ASSERT_TRUE(i >= 0 && i < RKT_SENTINELS);
    return must_connect(&s->sentinel[i], s->sentinel_password, "sentinel");
}

/* ---- what one process says ---- */

/* The value of `name` in a flat [name, value, name, value...] reply, as SENTINEL MASTER and
 * each entry of SENTINEL REPLICAS / SENTINELS give them; NULL when absent. */
static const char *field(const redisReply *kv, const char *name)
{
    if (!kv || kv->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING && !strcmp(kv->element[i]->str, name) &&
            kv->element[i + 1]->type == REDIS_REPLY_STRING)
            return kv->element[i + 1]->str;
    return NULL;
}

/* The port of the master a sentinel names, -1 when it names none or does not answer. */
static int named_port(redisContext *c, const char *name)
{
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
    int port = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                       r->element[1]->type == REDIS_REPLY_STRING
                   ? atoi(r->element[1]->str)
                   : -1;
    freeReplyObject(r);
    return port;
}

/* What ROLE says: a master, or a replica of the master on `master_port` with its link up. */
typedef enum { ROLE_NONE, ROLE_MASTER, ROLE_REPLICA, ROLE_REPLICA_UP } role;

static role role_of(redisContext *c, int master_port)
{
    redisReply *r = redisCommand(c, "ROLE");
    role ro = ROLE_NONE;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        if (!strcmp(r->element[0]->str, "master"))
            ro = ROLE_MASTER;
        else if (!strcmp(r->element[0]->str, "slave"))
            ro = r->elements > 3 && r->element[2]->type == REDIS_REPLY_INTEGER &&
                         r->element[2]->integer == master_port &&
                         r->element[3]->type == REDIS_REPLY_STRING &&
                         !strcmp(r->element[3]->str, "connected")
                     ? ROLE_REPLICA_UP
                     : ROLE_REPLICA;
    }
    freeReplyObject(r);
    return ro;
}

static role node_role(const rkt_sentinel *s, int i, int master_port)
{
    redisContext *c = try_connect(&s->node[i], s->master_password, ANSWER_MS);
    role ro = c ? role_of(c, master_port) : ROLE_NONE;
    redisFree(c);
    return ro;
}

/* ---- settled ---- */

/* The entry of SENTINEL REPLICAS / SENTINELS whose port is `port`, in `list`. */
static const redisReply *entry_of(const redisReply *list, int port)
{
    for (size_t i = 0; list && list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
        const char *p = field(list->element[i], "port");
        if (p && atoi(p) == port)
            return list->element[i];
    }
    return NULL;
}

/* Sentinel `k` sees node[m] as the master with no failover going on (flags exactly "master"). */
static bool sees_master(const rkt_sentinel *s, redisContext *c, int k, int m, char *why, size_t n)
{
    redisReply *r = redisCommand(c, "SENTINEL MASTER %s", s->name);
    const char *flags = field(r, "flags");
    bool ok = flags && !strcmp(flags, "master");
    if (!ok)
        snprintf(why, n, "sentinel %d sees master node %d as \"%s\"", k, m, flags ? flags : "?");
    freeReplyObject(r);
    return ok;
}

/* ... and every other live node as a healthy replica of it: not down, not disconnected, its
 * link to the master up (which the sentinel learns from the replica's own INFO, so it has heard
 * from it, as a failover needs). */
static bool sees_replicas(const rkt_sentinel *s, redisContext *c, int k, int m, char *why, size_t n)
{
    redisReply *r = redisCommand(c, "SENTINEL REPLICAS %s", s->name);
    bool ok = r != NULL;
    for (int i = 0; ok && i < RKT_SENTINEL_NODES; i++) {
        if (i == m || !live(&s->node[i]))
            continue;
        const redisReply *e = entry_of(r, s->node[i].port);
        const char *flags = field(e, "flags"), *link = field(e, "master-link-status"),
                   *of = field(e, "master-port");
        ok = flags && !strcmp(flags, "slave") && link && !strcmp(link, "ok") && of &&
             atoi(of) == s->node[m].port;
        if (!ok)
            snprintf(why, n, "sentinel %d sees node %d as \"%s\", link %s, replica of %s", k, i,
                     flags ? flags : "unknown", link ? link : "?", of ? of : "?");
    }
    freeReplyObject(r);
    return ok;
}

/* ... and knows every other sentinel, live or not (a failover needs their votes). */
static bool knows_sentinels(const rkt_sentinel *s, redisContext *c, int k, char *why, size_t n)
{
    redisReply *r = redisCommand(c, "SENTINEL SENTINELS %s", s->name);
    bool ok = r != NULL;
    for (int j = 0; ok && j < RKT_SENTINELS; j++)
        if (j != k && !(ok = entry_of(r, s->sentinel[j].port) != NULL))
            snprintf(why, n, "sentinel %d does not know sentinel %d yet", k, j);
    freeReplyObject(r);
    return ok;
}

/* Sentinel k is settled, naming node *m (which it sets when -1; all must agree). */
static bool sentinel_settled(const rkt_sentinel *s, int k, int *m, char *why, size_t n)
{
    redisContext *c = try_connect(&s->sentinel[k], s->sentinel_password, ANSWER_MS);
    bool ok = false;
    int named = c ? node_of_port(s, named_port(c, s->name)) : -1;
    if (!c)
        snprintf(why, n, "sentinel %d (port %d) does not answer", k, s->sentinel[k].port);
    else if (named < 0)
        snprintf(why, n, "sentinel %d names no master", k);
    else if (*m >= 0 && named != *m)
        snprintf(why, n, "sentinels disagree: node %d or node %d", *m, named);
    else
        ok = sees_master(s, c, k, named, why, n) && sees_replicas(s, c, k, named, why, n) &&
             knows_sentinels(s, c, k, why, n);
    *m = named;
    redisFree(c);
    return ok;
}

static bool settled(const rkt_sentinel *s, char *why, size_t n)
{
    int m = -1;
    for (int k = 0; k < RKT_SENTINELS; k++)
        if (live(&s->sentinel[k]) && !sentinel_settled(s, k, &m, why, n))
            return false;
    if (m < 0) {
        snprintf(why, n, "no sentinel is running");
        return false;
    }
    if (node_role(s, m, 0) != ROLE_MASTER) {
        snprintf(why, n, "node %d, named master, does not say so (ROLE)", m);
        return false;
    }
    for (int i = 0; i < RKT_SENTINEL_NODES; i++)
        if (i != m && live(&s->node[i]) && node_role(s, i, s->node[m].port) != ROLE_REPLICA_UP) {
            snprintf(why, n, "node %d is not a replica of node %d with its link up (ROLE)", i, m);
            return false;
        }
    return true;
}

void rkt_sentinel_wait_ok(rkt_sentinel *s, uint64_t timeout_ms)
{
    char why[200] = "";
    uint64_t t0 = rkt_now_ms();
    while (!settled(s, why, sizeof why)) {
        if (rkt_now_ms() - t0 > timeout_ms)
            rkt_fail(__FILE__, __LINE__, "the sentinels did not settle within %llu ms: %s",
                     (unsigned long long)timeout_ms, why);
        sleep_ms(POLL_MS);
    }
}

/* ---- who is master ---- */

int rkt_sentinel_master(rkt_sentinel *s)
{
    for (int k = 0; k < RKT_SENTINELS; k++) {
        redisContext *c = live(&s->sentinel[k])
                              ? try_connect(&s->sentinel[k], s->sentinel_password, ANSWER_MS)
                              : NULL;
        if (!c)
            continue;
        int m = node_of_port(s, named_port(c, s->name));
        redisFree(c);
        return m >= 0 && live(&s->node[m]) && node_role(s, m, 0) == ROLE_MASTER ? m : -1;
    }
    return -1;
}

/* Every live sentinel names node[m], and it says master. */
static bool all_name(const rkt_sentinel *s, int m, char *why, size_t n)
{
    for (int k = 0; k < RKT_SENTINELS; k++) {
        if (!live(&s->sentinel[k]))
            continue;
        redisContext *c = try_connect(&s->sentinel[k], s->sentinel_password, ANSWER_MS);
        int port = c ? named_port(c, s->name) : -1;
        redisFree(c);
        if (port != s->node[m].port) {
            snprintf(why, n, "sentinel %d names port %d", k, port);
            return false;
        }
    }
    if (node_role(s, m, 0) != ROLE_MASTER) {
        snprintf(why, n, "node %d is named but does not say master yet", m);
        return false;
    }
    return true;
}

int rkt_sentinel_wait_failover(rkt_sentinel *s, int old_master, uint64_t timeout_ms)
{
    ASSERT_TRUE(old_master >= 0 && old_master < RKT_SENTINEL_NODES);
    int m = 1 - old_master; /* two data nodes: the other one */
    char why[160] = "";
    uint64_t t0 = rkt_now_ms();
    while (!all_name(s, m, why, sizeof why)) {
        if (rkt_now_ms() - t0 > timeout_ms)
            rkt_fail(__FILE__, __LINE__, "no failover from node %d within %llu ms: %s", old_master,
                     (unsigned long long)timeout_ms, why);
        sleep_ms(POLL_MS);
    }
    return m;
}

/* The last replicaof line of a config file is the one that counts. */
void rkt_sentinel_failover(rkt_sentinel *s)
{
    for (int k = 0; k < RKT_SENTINELS; k++) {
        if (!live(&s->sentinel[k]))
            continue;
        redisContext *c = rkt_sentinel_sentinel_raw(s, k);
        redisReply *r = rkt_cmd(c, "SENTINEL", "FAILOVER", s->name, NULL);
        if (r->type != REDIS_REPLY_STATUS)
            rkt_fail(__FILE__, __LINE__, "SENTINEL FAILOVER %s on sentinel %d: %s", s->name, k,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        redisFree(c);
        return;
    }
    rkt_fail(__FILE__, __LINE__, "no sentinel is running");
}

/* ---- the +switch-master announcements ---- */

void rkt_sentinel_watch_start(const rkt_sentinel *s, rkt_sentinel_watch *w)
{
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", s->name);
    for (int k = 0; k < RKT_SENTINELS; k++) {
        if (!live(&s->sentinel[k]))
            continue;
        w->sub[k] = rkt_sentinel_sentinel_raw(s, k);
        redisReply *r = rkt_cmd(w->sub[k], "SUBSCRIBE", "+switch-master", NULL);
        freeReplyObject(r); /* the confirmation: the subscription is in place on return */
    }
}

/* A message ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
 * about our master: records it. */
static void heard(rkt_sentinel_watch *w, int k, redisReply *r)
{
    char name[64];
    int to;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_STRING &&
        sscanf(r->element[2]->str, "%63s %*s %*d %*s %d", name, &to) == 2 &&
        !strcmp(name, w->name)) {
        w->at_ms[k] = rkt_now_ms();
        w->to_port[k] = to;
    }
    freeReplyObject(r);
}

/* Read what sentinel k has sent: what hiredis holds already, else one read when poll said
 * there is something (so that the wait never blocks past its deadline). */
static void read_sentinel(rkt_sentinel_watch *w, int k, bool readable)
{
    void *r = NULL;
    if (redisGetReplyFromReader(w->sub[k], &r) == REDIS_OK && !r && readable &&
        redisBufferRead(w->sub[k]) == REDIS_OK)
        redisGetReplyFromReader(w->sub[k], &r);
    if (w->sub[k]->err)
        rkt_fail(__FILE__, __LINE__, "sentinel %d's subscription broke: %s", k, w->sub[k]->errstr);
    if (r)
        heard(w, k, r);
}

static bool all_heard(const rkt_sentinel_watch *w, uint64_t *last)
{
    *last = 0;
    for (int k = 0; k < RKT_SENTINELS; k++) {
        if (w->sub[k] && !w->at_ms[k])
            return false;
        if (w->at_ms[k] > *last)
            *last = w->at_ms[k];
    }
    return true;
}

uint64_t rkt_sentinel_watch_wait(rkt_sentinel_watch *w, uint64_t timeout_ms)
{
    uint64_t t0 = rkt_now_ms(), last;
    while (!all_heard(w, &last)) {
        uint64_t spent = rkt_now_ms() - t0;
        if (spent > timeout_ms)
            rkt_fail(__FILE__, __LINE__,
                     "not every sentinel announced +switch-master within "
                     "%llu ms",
                     (unsigned long long)timeout_ms);
        struct pollfd p[RKT_SENTINELS];
        int k_of[RKT_SENTINELS], n = 0;
        for (int k = 0; k < RKT_SENTINELS; k++)
            if (w->sub[k] && !w->at_ms[k]) {
                read_sentinel(w, k, false);
                p[n] = (struct pollfd){.fd = w->sub[k]->fd, .events = POLLIN};
                k_of[n++] = k;
            }
        if (poll(p, (nfds_t)n, (int)(timeout_ms - spent) + 1) > 0)
            for (int i = 0; i < n; i++)
                if (p[i].revents && !w->at_ms[k_of[i]])
                    read_sentinel(w, k_of[i], true);
    }
    return last;
}

void rkt_sentinel_watch_stop(rkt_sentinel_watch *w)
{
    for (int k = 0; k < RKT_SENTINELS; k++)
        redisFree(w->sub[k]);
    memset(w->sub, 0, sizeof w->sub);
}

/* ---- starting ---- */

/* The data nodes' passwords: their own, and the one a replica (a demoted master too) gives its
 * master. */
static void node_conf(const rkt_sentinel *s, char *buf, size_t n, int master_port)
{
    int at = 0;
    if (s->master_password[0])
        at = snprintf(buf, n, "requirepass %s\nmasterauth %s\n", s->master_password,
                      s->master_password);
    else
        buf[0] = '\0';
    if (master_port > 0)
        snprintf(buf + at, n - (size_t)at, "replicaof 127.0.0.1 %d\n", master_port);
}

/* What the issue asks for; resolve-hostnames no (the default) spells out that every address is
 * an IP, as the client is given them. */
static void sentinel_conf(const rkt_sentinel *s, char *buf, size_t n)
{
    const char *nm = s->name;
    int at = snprintf(buf, n,
                      "sentinel resolve-hostnames no\n"
                      "sentinel monitor %s 127.0.0.1 %d %d\n"
                      "sentinel down-after-milliseconds %s %d\n"
                      "sentinel failover-timeout %s %d\n",
                      nm, s->node[0].port, RKT_SENTINEL_QUORUM, nm, RKT_SENTINEL_DOWN_AFTER_MS, nm,
                      RKT_SENTINEL_FAILOVER_TIMEOUT_MS);
    if (s->master_password[0])
        at += snprintf(buf + at, n - (size_t)at, "sentinel auth-pass %s %s\n", nm,
                       s->master_password);
    if (s->sentinel_password[0])
        snprintf(buf + at, n - (size_t)at, "requirepass %s\nsentinel sentinel-pass %s\n",
                 s->sentinel_password, s->sentinel_password);
}

/* The master first: the replica's and the sentinels' configurations name its port. */
static void start_processes(rkt_sentinel *s)
{
    char conf[1024];
    const char *confs[RKT_SENTINELS] = {conf, conf, conf};
    node_conf(s, conf, sizeof conf, 0);
    rkt_servers_start_conf(&s->node[0], 1, confs, node_args);
    node_conf(s, conf, sizeof conf, s->node[0].port);
    rkt_servers_start_conf(&s->node[1], 1, confs, node_args);
    sentinel_conf(s, conf, sizeof conf);
    rkt_servers_start_conf(s->sentinel, RKT_SENTINELS, confs, sentinel_args);
}

static void copy_checked(char *dst, size_t n, const char *src, const char *what)
{
    if (strlen(src) >= n || strpbrk(src, " \t\r\n\""))
        rkt_fail(__FILE__, __LINE__, "%s \"%s\": too long, or blanks or quotes in it", what, src);
    snprintf(dst, n, "%s", src);
}

void rkt_sentinel_start_auth(rkt_sentinel *s, const char *name, const char *master_password,
                             const char *sentinel_password)
{
    memset(s, 0, sizeof *s);
    copy_checked(s->name, sizeof s->name, name, "master name");
    copy_checked(s->master_password, sizeof s->master_password,
                 master_password ? master_password : "", "password");
    copy_checked(s->sentinel_password, sizeof s->sentinel_password,
                 sentinel_password ? sentinel_password : "", "password");
    start_processes(s);
    rkt_sentinel_wait_ok(s, START_TIMEOUT_MS);
    if (rkt_sentinel_master(s) != 0)
        rkt_fail(__FILE__, __LINE__, "node 0 is not the master after the start");
    snprintf(s->sentinels, sizeof s->sentinels, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
             s->sentinel[0].port, s->sentinel[1].port, s->sentinel[2].port);
}

void rkt_sentinel_start(rkt_sentinel *s, const char *name)
{
    rkt_sentinel_start_auth(s, name, NULL, NULL);
}

/* A paused process would never see the SIGTERM that stops it: it is resumed first. */
static void stop_one(rkt_server *srv)
{
    if (live(srv))
        kill(srv->pid, SIGCONT);
    rkt_server_stop(srv);
}

void rkt_sentinel_stop(rkt_sentinel *s)
{
    for (int k = 0; k < RKT_SENTINELS; k++)
        stop_one(&s->sentinel[k]);
    for (int i = 0; i < RKT_SENTINEL_NODES; i++)
        stop_one(&s->node[i]);
}

rk_config *rkt_sentinel_config(const rkt_sentinel *s, const char *extra)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "connection.uri=redis://%s;options.sentinel_master=%s;"
             "options.prefix=%s;%s",
             s->sentinels, s->name, rkt_prefix(), extra ? extra : "");
    return rkt_settings(buf);
}
