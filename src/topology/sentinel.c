/* The topology of a master that Redis Sentinel names: every key goes to it, and the sentinels
 * say where it is (https://redis.io/docs/latest/develop/reference/sentinel-clients/).
 *
 * Routing is the hot path and takes no lock: the master is an atomic node pointer, and nodes
 * are only ever added (a demoted master keeps its emptied pool until the topology is freed), so
 * a node pointer read once stays valid. The master is found again, by one thread at a time, when
 * a call sees READONLY or a failed connection from it; and a watcher thread, subscribed to
 * +switch-master on one sentinel, follows a failover as soon as it is announced. Either way
 * the old master's pool is retired at the switch (its connections dropped, no new one made), so
 * nothing more is written to a master that was demoted while it stayed up (a paused or
 * partitioned one). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "conn.h"
#include "error_int.h"
#include "log.h"
#include "retry.h"
#include "topology.h"

#define MIN_RESOLVE_MS 100u /* calls ask the sentinels at most this often */
#define PING_IDLE_MS 1000u  /* the watcher pings its sentinel after this long without traffic */
#define CHANNEL "+switch-master"

typedef struct sentinel {
    rk__topology base;
    pthread_mutex_t mu; /* adding nodes, switching the master, the watcher's connection */
    rk__node_set set;   /* every master met */
    _Atomic(rk__node *) master;
    _Atomic uint64_t epoch;  /* switches so far: an answer asked before one is stale */
    rk__endpoint *sentinels; /* the seeds, with the sentinels' own credentials */
    size_t nsentinels;
    atomic_size_t first; /* the sentinel that answered last: asked first */
    rk__endpoint tmpl;   /* the master's credentials, database, TLS options and timeouts */
    char *name;          /* options.sentinel_master */
    void *tls_ctx;
    size_t max_connections;
    uint64_t retries;
    uint64_t connect_timeout_ms;
    _Atomic uint64_t last_resolve;
    atomic_bool resolving; /* a call is asking the sentinels: the others just retry */
    atomic_bool stop;      /* closed: the watcher ends, resolving gives up */
    void (*on_switch)(void *arg);
    void *on_switch_arg;
    pthread_t thread; /* the watcher */
    bool running;
    int wake_fd;          /* written at close: the watcher leaves its wait at once */
    rk__conn *watch_conn; /* the watcher's, shut down by close; guarded by mu */
} sentinel;

/* ---- nodes ---- */

/* The node at host:port, added if new; NULL when out of room or memory. */
static rk__node *find_or_add(sentinel *s, const char *host, uint16_t port)
{
    pthread_mutex_lock(&s->mu);
    rk__node *found = rk__node_set_at(
        &s->set, rk__node_set_add(&s->set, &s->tmpl, host, port, s->tls_ctx, s->max_connections));
    pthread_mutex_unlock(&s->mu);
    if (!found)
        rk__err(RK_ENOMEM, "cannot add the master %s:%u (%zu masters seen)", host, (unsigned)port,
                atomic_load(&s->set.count));
    return found;
}

/* Make `n` the master, unless another switch happened since `seen` (the answer that named `n`
 * was asked before it, so it is the older news). The old master is retired at once: a call
 * blocked on it fails now, and one that picked it just before cannot connect to it any more;
 * both retry on `n`. */
static void switch_to(sentinel *s, rk__node *n, uint64_t seen, const char *why)
{
    pthread_mutex_lock(&s->mu);
    rk__node *old = atomic_load(&s->master);
    bool moved = seen == atomic_load(&s->epoch) && old != n;
    if (moved) {
        rk__pool_revive(&n->pool); /* it may have been a master before */
        atomic_store(&s->master, n);
        atomic_fetch_add(&s->epoch, 1);
        if (old)
            rk__pool_retire(&old->pool);
    }
    pthread_mutex_unlock(&s->mu);
    char from[80], to[80];
    if (moved && !old)
        rk__log(RK_LOG_DEBUG, "sentinel: master '%s' is %s (%s)", s->name,
                rk__endpoint_name(&n->ep, to, sizeof to), why);
    if (!moved || !old)
        return;
    rk__log(RK_LOG_INFO, "sentinel: master '%s' moved from %s to %s (%s)", s->name,
            rk__endpoint_name(&old->ep, from, sizeof from),
            rk__endpoint_name(&n->ep, to, sizeof to), why);
    if (s->on_switch)
        s->on_switch(s->on_switch_arg);
}

/* ---- asking the sentinels ---- */

typedef struct answer {
    char host[256];
    uint16_t port;
    size_t from; /* the sentinel that answered */
} answer;

/* [host, port]; RK_ENOTFOUND for nil: the sentinel does not know the name. */
static int parse_address(const redisReply *r, answer *a, const char *peer)
{
    if (r->type == REDIS_REPLY_NIL)
        return RK_ENOTFOUND; /* no message: the caller names every sentinel that said so */
    if (r->type == REDIS_REPLY_ERROR) {
        rk__reply_error(r, "SENTINEL get-master-addr-by-name (is it a sentinel?)");
        return rk__err_prefix("%s: ", peer);
    }
    char *end = NULL;
    unsigned long port = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len > 0 && r->element[0]->len < sizeof a->host)
        port = strtoul(r->element[1]->str, &end, 10);
    if (!end || *end || port == 0 || port > 65535)
        return rk__err(RK_EREPLY,
                       "%s: SENTINEL get-master-addr-by-name: the reply is not an address", peer);
    memcpy(a->host, r->element[0]->str, r->element[0]->len + 1);
    a->port = (uint16_t)port;
    return RK_OK;
}

/* Ask sentinel `i` on a connection of our own, bounded by options.connect_timeout (a sentinel
 * that accepts and never answers holds us no longer than one that refuses). */
static int ask(sentinel *s, size_t i, uint64_t deadline, answer *a)
{
    rk__conn *c;
    uint64_t until = rk__deadline(s->connect_timeout_ms);
    if (until > deadline)
        until = deadline;
    int rc = rk__conn_open(&c, &s->sentinels[i], s->tls_ctx, until);
    if (rc != RK_OK)
        return rc;
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", s->name};
    size_t len[3] = {8, 23, strlen(s->name)};
    redisReply *r;
    if ((rc = rk__conn_exec(c, &(rk__cmd){3, argv, len}, 1, &r, until)) == RK_OK) {
        rc = parse_address(r, a, c->tr.peer);
        rk__reply_free(r);
    }
    rk__conn_free(c);
    a->from = i;
    return rc;
}

/* Whether the list "a, b, c" has `name` as one of its items. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

/* "a, b, c" into buf (each once), cut with "..." when the next one does not fit. */
static void append_name(char *buf, size_t cap, const rk__endpoint *ep)
{
    char name[80];
    size_t used = strlen(buf);
    rk__endpoint_name(ep, name, sizeof name);
    if ((used >= 3 && !strcmp(buf + used - 3, "...")) || listed(buf, name))
        return;                            /* already cut, or already there */
    if (used + 2 + strlen(name) + 5 < cap) /* room left for a later ", ..." */
        snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", name);
    else
        snprintf(buf + used, cap - used, "%s...", used ? ", " : "");
}

typedef struct tally {
    char asked[300];     /* the sentinels asked, in order */
    char unknown[300];   /* those that do not know the name */
    size_t failed, auth; /* no answer; of which refused our credentials */
    rk__err_saved last;  /* the last failure */
} tally;

static int no_answer(const sentinel *s, tally *t)
{
    if (!t->asked[0])
        return rk__err(RK_ETIMEDOUT,
                       "master '%s': the deadline passed before a sentinel could be asked",
                       s->name);
    if (t->unknown[0])
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "options.sentinel_master: sentinels %s do not know a master named "
                             "'%s'%s",
                             t->unknown, s->name,
                             t->failed ? " (and the others did not answer)" : "");
    if (t->auth == t->failed)
        return rk__err_named(RK_EAUTH, NULL, NULL, t->last.message,
                             "sentinels %s: authentication failed (options.sentinel_username "
                             "and options.sentinel_password are the sentinels' credentials)",
                             t->asked);
    return rk__err_named(RK_ENOCONN, NULL, "NoResponse", t->last.message,
                         "sentinels %s: none answered (where is master '%s'?)", t->asked, s->name);
}

/* Ask the sentinels in turn, from the one that answered last, until one names the master.
 * `t` gathers what every round of one resolve saw, so that a round the deadline cuts short
 * still reports every sentinel tried. */
static int ask_all(sentinel *s, uint64_t deadline, answer *a, tally *t)
{
    size_t start = atomic_load(&s->first);
    for (size_t k = 0; k < s->nsentinels && rk__remaining_ms(deadline) > 0; k++) {
        size_t i = (start + k) % s->nsentinels;
        if (atomic_load(&s->stop))
            return rk__err(RK_ENOTOPEN, "Connection is not opened (closed while asking the "
                                        "sentinels)");
        append_name(t->asked, sizeof t->asked, &s->sentinels[i]);
        int rc = ask(s, i, deadline, a);
        if (rc == RK_OK) {
            atomic_store(&s->first, i);
            return RK_OK;
        }
        if (rc == RK_ENOTFOUND) {
            append_name(t->unknown, sizeof t->unknown, &s->sentinels[i]);
            continue;
        }
        t->failed++;
        t->auth += rc == RK_EAUTH;
        rk__err_save(&t->last);
    }
    return no_answer(s, t);
}

/* ---- checking the master ---- */

static bool is_word(const redisReply *r, const char *word)
{
    return r->type == REDIS_REPLY_STRING && r->len == strlen(word) && !memcmp(r->str, word, r->len);
}

/* ROLE, on a connection of our own: the node's pool lends nothing while it is a retired master
 * (a failback names it again). A sentinel may name a replica for a moment during a failover:
 * *not_master says so. */
static int check_role(sentinel *s, rk__node *n, uint64_t deadline, bool *not_master)
{
    rk__conn *c;
    redisReply *r = NULL;
    const char *argv[1] = {"ROLE"};
    uint64_t until = rk__deadline(s->connect_timeout_ms); /* a stalled node holds us no longer */
    *not_master = false;
    if (until > deadline)
        until = deadline;
    int rc = rk__conn_open(&c, &n->ep, s->tls_ctx, until);
    if (rc != RK_OK)
        return rc;
    rc = rk__conn_exec(c, &(rk__cmd){1, argv, (size_t[]){4}}, 1, &r, until);
    rk__conn_free(c);
    if (rc != RK_OK)
        return rc;
    /* A user whose ACL denies ROLE cannot check: the sentinels' word is taken, and a replica
     * would still answer writes with READONLY. */
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && !is_word(r->element[0], "master")) {
        const redisReply *role = r->element[0];
        *not_master = true;
        rc = rk__err(RK_EIO, "it is a %.*s (ROLE), not a master: a failover is in progress",
                     role->type == REDIS_REPLY_STRING ? (int)(role->len > 20 ? 20 : role->len) : 7,
                     role->type == REDIS_REPLY_STRING ? role->str : "unknown");
    }
    rk__reply_free(r);
    return rc;
}

/* The node the answer names, if it answers ROLE as the master. */
static int check_master(sentinel *s, const answer *a, uint64_t deadline, rk__node **out,
                        bool *not_master)
{
    char from[80];
    *not_master = false;
    *out = find_or_add(s, a->host, a->port);
    if (!*out)
        return RK_ENOMEM;
    int rc = check_role(s, *out, deadline, not_master);
    if (rc != RK_OK)
        rk__err_prefix("master '%s' at %s:%u, named by sentinel %s: ", s->name, a->host,
                       (unsigned)a->port,
                       rk__endpoint_name(&s->sentinels[a->from], from, sizeof from));
    return rc;
}

/* Find the master and switch to it. Rounds are repeated after a back-off: while the node named
 * is not a master yet (a failover in progress) until the deadline, after any other failure up
 * to options.retries times. A name no sentinel knows is final. */
static int resolve(sentinel *s, uint64_t deadline)
{
    unsigned failures = 0;
    tally t;
    memset(&t, 0, sizeof t);
    for (unsigned round = 1;; round++) {
        uint64_t seen = atomic_load(&s->epoch);
        bool not_master = false;
        rk__node *n = NULL;
        answer a;
        int rc = ask_all(s, deadline, &a, &t);
        if (rc == RK_OK)
            rc = check_master(s, &a, deadline, &n, &not_master);
        if (rc == RK_OK) {
            char from[80];
            snprintf(from, sizeof from, "named by sentinel ");
            rk__endpoint_name(&s->sentinels[a.from], from + strlen(from),
                              sizeof from - strlen(from));
            switch_to(s, n, seen, from);
            return RK_OK;
        }
        if (atomic_load(&s->epoch) != seen)
            return RK_OK; /* found meanwhile (the watcher, another call): nothing to wait for */
        if (rc == RK_EINVAL || rc == RK_EAUTH || rc == RK_ENOMEM || rc == RK_ENOTOPEN ||
            atomic_load(&s->stop) || rk__remaining_ms(deadline) == 0 ||
            (!not_master && failures++ >= s->retries))
            return rc;
        rk__backoff(round, deadline);
    }
}

/* ---- the watcher: +switch-master on one sentinel ---- */

/* "<name> <old ip> <old port> <new ip> <new port>": switch when it is about our master. */
static void on_message(sentinel *s, const redisReply *r, const char *peer)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_word(r->element[0], "message") ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    char *text = rk__strndup(r->element[2]->str, r->element[2]->len), *save = NULL, *tok[6];
    size_t n = 0;
    for (char *t = text ? strtok_r(text, " ", &save) : NULL; t && n < 6;
         t = strtok_r(NULL, " ", &save))
        tok[n++] = t;
    char *end = NULL;
    unsigned long port = n == 5 ? strtoul(tok[4], &end, 10) : 0;
    if (n == 5 && !strcmp(tok[0], s->name) && end && !*end && port > 0 && port < 65536) {
        rk__node *node = find_or_add(s, tok[3], (uint16_t)port);
        char why[120];
        snprintf(why, sizeof why, "+switch-master from sentinel %s", peer);
        if (node)
            switch_to(s, node, atomic_load(&s->epoch), why);
    }
    rk__free(text);
}

/* Subscribed now: a switch announced before is looked for once, since it was not heard. */
static void catch_up(sentinel *s)
{
    answer a;
    tally t;
    memset(&t, 0, sizeof t);
    uint64_t deadline = rk__deadline(s->connect_timeout_ms);
    rk__node *m = atomic_load(&s->master);
    if (ask_all(s, deadline, &a, &t) == RK_OK && !rk__node_is_at(m, a.host, a.port))
        resolve(s, deadline); /* ROLE-checked: the sentinel we asked may lag behind */
}

/* Wait for traffic or the next ping; false when the sentinel stopped answering. */
static bool wait_traffic(sentinel *s, rk__conn *c, bool subscribed, uint64_t since,
                         uint64_t *ping_sent)
{
    static const char *const ping[1] = {"PING"};
    uint64_t now = rk__now_ms(), cto = s->connect_timeout_ms;
    uint64_t until = !subscribed  ? since + cto
                     : *ping_sent ? *ping_sent + cto
                                  : since + PING_IDLE_MS;
    if (now >= until && (!subscribed || *ping_sent))
        return false; /* no confirmation, or no pong: move to another sentinel */
    if (now >= until) {
        *ping_sent = now;
        return rk__conn_send(c, &(rk__cmd){1, ping, (size_t[]){4}}, 1, rk__deadline(cto)) == RK_OK;
    }
    bool readable = false, woken = false;
    int rc = rk__conn_wait(c, s->wake_fd, until, &readable, &woken);
    return rc == RK_OK && (!readable || rk__conn_fill(c, rk__deadline(cto)) == RK_OK);
}

/* Follow +switch-master on `c` until it fails or close. True if it was subscribed. */
static bool listen_on(sentinel *s, rk__conn *c)
{
    const char *argv[2] = {"SUBSCRIBE", CHANNEL};
    bool subscribed = false;
    uint64_t since = rk__now_ms(), ping_sent = 0;
    if (rk__conn_send(c, &(rk__cmd){2, argv, (size_t[]){9, strlen(CHANNEL)}}, 1,
                      rk__deadline(s->connect_timeout_ms)) != RK_OK)
        return false;
    while (!atomic_load(&s->stop)) {
        redisReply *r;
        int rc;
        while ((rc = rk__conn_buffered(c, &r)) == RK_OK && r) {
            since = rk__now_ms();
            ping_sent = 0;
            bool confirmed = !subscribed && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                             is_word(r->element[0], "subscribe");
            if (!confirmed)
                on_message(s, r, c->tr.peer);
            rk__reply_free(r);
            if (confirmed) {
                subscribed = true;
                catch_up(s);
            }
        }
        if (rc != RK_OK || atomic_load(&s->stop) ||
            !wait_traffic(s, c, subscribed, since, &ping_sent))
            break;
    }
    return subscribed;
}

/* One sentinel, until its connection fails: true if it was subscribed. */
static bool watch_one(sentinel *s, size_t i)
{
    rk__conn *c;
    /* Bounded by connect_timeout (conn_open), which is how long a close can wait for it. */
    if (rk__conn_open(&c, &s->sentinels[i], s->tls_ctx, UINT64_MAX) != RK_OK)
        return false;
    pthread_mutex_lock(&s->mu);
    bool stop = atomic_load(&s->stop);
    if (!stop)
        s->watch_conn = c;
    pthread_mutex_unlock(&s->mu);
    bool subscribed = !stop && listen_on(s, c);
    pthread_mutex_lock(&s->mu);
    s->watch_conn = NULL;
    pthread_mutex_unlock(&s->mu);
    rk__conn_free(c);
    return subscribed;
}

static void *watch(void *arg)
{
    sentinel *s = arg;
    size_t i = atomic_load(&s->first);
    unsigned failures = 0;
    while (!atomic_load(&s->stop)) {
        failures = watch_one(s, i) ? 0 : failures + 1;
        i = (i + 1) % s->nsentinels;     /* a sentinel that failed: the next one */
        if (failures >= s->nsentinels) { /* none answers: pause, but not past a close */
            struct pollfd p = {s->wake_fd, POLLIN, 0};
            poll(&p, 1, (int)rk__backoff_ms(failures / (unsigned)s->nsentinels));
        }
    }
    return NULL;
}

static void start_watcher(sentinel *s)
{
    pthread_mutex_lock(&s->mu);
    s->running = !atomic_load(&s->stop) && pthread_create(&s->thread, NULL, watch, s) == 0;
    bool failed = !s->running && !atomic_load(&s->stop);
    pthread_mutex_unlock(&s->mu);
    if (failed) /* calls still find a new master themselves, only later */
        rk__log(RK_LOG_WARN,
                "sentinel: cannot start the thread that follows +switch-master for "
                "master '%s': failovers are noticed on failed calls only",
                s->name);
}

static void stop_watcher(sentinel *s)
{
    uint64_t one = 1;
    atomic_store(&s->stop, true);
    ssize_t w = write(s->wake_fd, &one, sizeof one); /* never read: it stays woken */
    (void)w;
    pthread_mutex_lock(&s->mu);
    if (s->watch_conn)
        rk__conn_shutdown(s->watch_conn);
    bool running = s->running;
    s->running = false;
    pthread_mutex_unlock(&s->mu);
    if (running)
        pthread_join(s->thread, NULL);
}

/* ---- the ops ---- */

static rk__node *route(rk__topology *t, const char *key, size_t len)
{
    (void)key, (void)len;
    return atomic_load_explicit(&((sentinel *)t)->master, memory_order_acquire);
}

static rk__node *pick(rk__topology *t, unsigned failures)
{
    (void)failures;
    return route(t, NULL, 0);
}

/* READONLY or a failed connection from the master: ask the sentinels where it is now. One
 * thread asks; the others retry after their back-off and find its answer. */
static bool refresh(rk__topology *t, rk__node *node, rk__reply_class cls, uint64_t deadline)
{
    sentinel *s = (sentinel *)t;
    if (cls == RK__REPLY_OK)
        return false; /* no periodic refresh */
    if (node && node != atomic_load(&s->master))
        return true; /* it moved already: the retry goes to the new master */
    if (rk__now_ms() - atomic_load(&s->last_resolve) >= MIN_RESOLVE_MS &&
        !atomic_exchange(&s->resolving, true)) {
        resolve(s, deadline);
        atomic_store(&s->last_resolve, rk__now_ms());
        atomic_store(&s->resolving, false);
    }
    return true; /* a replica may be promoted: retry until the deadline */
}

static void close_all(rk__topology *t)
{
    sentinel *s = (sentinel *)t;
    atomic_store(&s->stop, true);
    rk__node_set_close(&s->set);
    stop_watcher(s);
}

/* The watcher was the parent's thread: start one of our own. */
static void after_fork(rk__topology *t)
{
    sentinel *s = (sentinel *)t;
    pthread_mutex_init(&s->mu, NULL); /* a parent's thread may have held it */
    rk__node_set_after_fork(&s->set);
    if (s->watch_conn) /* the parent's session, and its thread may have been reading it */
        rk__conn_drop_in_use(s->watch_conn);
    s->watch_conn = NULL;
    close(s->wake_fd); /* shared with the parent */
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_store(&s->resolving, false);
    s->running = false;
    if (s->wake_fd >= 0)
        start_watcher(s);
}

static void free_sentinel(rk__topology *t)
{
    sentinel *s = (sentinel *)t;
    if (s->wake_fd >= 0) {
        stop_watcher(s);
        close(s->wake_fd);
    }
    rk__node_set_destroy(&s->set);
    rk__seeds_free(s->sentinels, s->nsentinels);
    rk__endpoint_clear(&s->tmpl);
    rk__free(s->name);
    pthread_mutex_destroy(&s->mu);
    rk__free(s);
}

static const rk__topology_ops sentinel_ops = {
    .name = "sentinel",
    .route = route,
    .refresh = refresh,
    .close = close_all,
    .after_fork = after_fork,
    .free = free_sentinel,
    .pick = pick,
};

/* ---- construction ---- */

static int set_secret(char **dst, const char *value)
{
    rk__free_secret(*dst);
    *dst = value ? rk__strdup(value) : NULL;
    return !value || *dst ? RK_OK : rk__err(RK_ENOMEM, "cannot copy a sentinel credential");
}

/* The seeds as sentinels: their own credentials, no database (a sentinel has none). */
static int copy_sentinels(sentinel *s, const rk__endpoint *seeds, size_t n, const rk__options *o)
{
    if (!(s->sentinels = rk__calloc(n, sizeof *s->sentinels)))
        return rk__err(RK_ENOMEM, "cannot list the sentinels");
    for (size_t i = 0; i < n; i++) {
        rk__endpoint *ep = &s->sentinels[i];
        int rc = rk__endpoint_copy(ep, &seeds[i]);
        if (rc != RK_OK)
            return rc;
        s->nsentinels++; /* freed with the topology from now on */
        if ((rc = set_secret(&ep->username, o->sentinel_username)) != RK_OK ||
            (rc = set_secret(&ep->password, o->sentinel_password)) != RK_OK)
            return rc;
        ep->db = 0;
        ep->readonly = false;
        ep->hook = NULL; /* a component's step is for data connections, not sentinels */
    }
    return RK_OK;
}

/* What every master connection shares: the seeds' credential, database and TLS options. */
static int master_template(sentinel *s, const rk__endpoint *seed)
{
    if (rk__endpoint_copy(&s->tmpl, seed) != RK_OK)
        return rk__err(RK_ENOMEM, "cannot allocate a sentinel topology");
    rk__free(s->tmpl.host);
    rk__free(s->tmpl.path);
    s->tmpl.host = s->tmpl.path = NULL; /* the sentinels say where */
    s->tmpl.readonly = false;
    return RK_OK;
}

static int init(sentinel *s, const rk__endpoint *seeds, size_t nseeds, const rk__options *o)
{
    s->base.ops = &sentinel_ops;
    s->base.follows = true; /* a failover takes seconds */
    atomic_init(&s->base.refresh_at, UINT64_MAX);
    pthread_mutex_init(&s->mu, NULL);
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0)
        return rk__err_cause(RK_ERROR, strerror(errno), "cannot create a sentinel topology");
    s->max_connections = o->max_connections;
    s->retries = o->retries;
    s->connect_timeout_ms = o->connect_timeout_ms;
    if (!(s->name = rk__strdup(o->sentinel_master)))
        return rk__err(RK_ENOMEM, "cannot allocate a sentinel topology");
    int rc = copy_sentinels(s, seeds, nseeds, o);
    return rc == RK_OK ? master_template(s, &seeds[0]) : rc;
}

int rk__topology_sentinel_new(rk__topology **out, const rk__endpoint *seeds, size_t nseeds,
                              void *tls_ctx, const rk__options *o, uint64_t deadline,
                              void (*on_switch)(void *arg), void *arg)
{
    *out = NULL;
    if (nseeds == 0 || !o->sentinel_master)
        return rk__err(RK_EINVAL, "a sentinel topology needs sentinels and a master name");
    sentinel *s = rk__calloc(1, sizeof *s);
    if (!s)
        return rk__err(RK_ENOMEM, "cannot allocate a sentinel topology");
    s->wake_fd = -1;
    s->tls_ctx = tls_ctx;
    s->on_switch = on_switch;
    s->on_switch_arg = arg;
    int rc = init(s, seeds, nseeds, o);
    if (rc == RK_OK)
        rc = resolve(s, deadline);
    if (rc != RK_OK) {
        free_sentinel(&s->base);
        return rc;
    }
    start_watcher(s);
    *out = &s->base;
    return RK_OK;
}
