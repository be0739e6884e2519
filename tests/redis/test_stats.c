/* Statistics and events (redkit/stats.h) against what a test did: exact counts for scripted
 * sequences (calls, commands, a reconnect, a lock hand-off, a memolock waiter served), the
 * event handler's delivery, a Prometheus page that parses, and readers racing 16 writers. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "redis_env.h"

static uint64_t events(rk_stats *s, rk_event_type t) { return rk_stats_events(s, t, false); }

static rk_stats *snap_cache(rk_cache *c)
{
    rk_stats *s;
    ASSERT_OK(rk_stats_new(&s));
    ASSERT_OK(rk_cache_get_stats(c, s));
    return s;
}

/* ---- a scripted cache sequence ---- */

static void cache_calls_and_commands_are_counted(void)
{
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    rk_stats *s = snap_cache(c);
    /* open: one connection, CLUSTER SLOTS (is it a cluster?) and PING */
    ASSERT_EQ(events(s, RK_EVENT_CONNECT), 1);
    ASSERT_EQ(events(s, RK_EVENT_COMMAND), 2);
    rk_buf b = RK_BUF_INIT;
    for (int i = 0; i < 3; i++)
        ASSERT_OK(rk_cache_store(c, NULL, "st:a", "v", 1, 60000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "st:a", &b));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "st:a", &b));
    ASSERT_EQ(rk_cache_retrieve(c, NULL, "st:missing", &b), RK_ENOTFOUND);
    ASSERT_OK(rk_cache_remove(c, NULL, "st:a"));
    ASSERT_EQ(rk_cache_retrieve(NULL, NULL, "st:a", &b), RK_EINVAL); /* no handle: not counted */
    ASSERT_EQ(rk_cache_store(c, NULL, "", "v", 1, 1000), RK_EINVAL);
    ASSERT_OK(rk_cache_get_stats(c, s));
    ASSERT_EQ(rk_stats_calls(s, "store", false), 4);
    ASSERT_EQ(rk_stats_calls(s, "store", true), 1); /* the empty key */
    ASSERT_EQ(rk_stats_calls(s, "retrieve", false), 3);
    ASSERT_EQ(rk_stats_calls(s, "retrieve", true), 0); /* a miss is an answer */
    ASSERT_EQ(rk_stats_calls(s, "remove", false), 1);
    ASSERT_EQ(rk_stats_calls(s, "acquire", false), 0);
    ASSERT_EQ(rk_stats_calls(s, "no such op", false), 0);
    ASSERT_EQ(rk_stats_count(s, RK_HIST_CALL), 8);
    ASSERT_EQ(events(s, RK_EVENT_COMMAND), 2 + 7);
    ASSERT_EQ(rk_stats_count(s, RK_HIST_COMMAND), 2 + 7);
    ASSERT_EQ(rk_stats_events(s, RK_EVENT_COMMAND, true), 0);
    ASSERT_EQ(events(s, RK_EVENT_CONNECT), 1);
    ASSERT_EQ(events(s, RK_EVENT_DISCONNECT) + events(s, RK_EVENT_RECONNECT), 0);
    uint64_t p50 = rk_stats_quantile_us(s, RK_HIST_COMMAND, 0.5),
             p100 = rk_stats_quantile_us(s, RK_HIST_COMMAND, 1.0);
    ASSERT_TRUE(p50 > 0 && p50 <= p100);
    ASSERT_TRUE(rk_stats_sum_us(s, RK_HIST_COMMAND) > 0);
    ASSERT_EQ(rk_stats_quantile_us(s, RK_HIST_LOCK_WAIT, 0.5), 0); /* empty */
    ASSERT_EQ(rk_stats_quantile_us(s, RK_HIST_COMMAND, 0), 0);     /* not a quantile */
    /* They outlive a close and keep counting after the next open. */
    ASSERT_OK(rk_cache_close(c, NULL));
    ASSERT_OK(rk_cache_open(c, NULL));
    ASSERT_EQ(rk_cache_retrieve(c, NULL, "st:missing2", &b), RK_ENOTFOUND);
    ASSERT_OK(rk_cache_get_stats(c, s));
    ASSERT_EQ(rk_stats_calls(s, "retrieve", false), 4);
    ASSERT_EQ(events(s, RK_EVENT_CONNECT), 2);
    rk_buf_free(&b);
    rk_stats_free(s);
    rk_cache_free(c);
}

/* ---- a reconnect ---- */

typedef struct {
    rk_cache *c;
    int rc;
} store_job;

static void *store_thread(void *arg)
{
    store_job *j = arg;
    j->rc = rk_cache_store(j->c, NULL, "st:paused", "v", 1, 60000);
    return NULL;
}

/* The id of the one normal client other than `admin` whose last command is `cmd`, or 0. */
static long long client_running(redisContext *admin, const char *cmd)
{
    redisReply *me = rkt_cmd(admin, "CLIENT", "ID", NULL);
    redisReply *r = rkt_cmd(admin, "CLIENT", "LIST", "TYPE", "normal", NULL);
    long long id = 0;
    char want[32];
    snprintf(want, sizeof want, " cmd=%s ", cmd);
    for (char *line = r->str; line && *line && !id; line = strchr(line, '\n') + 1) {
        long long this = strtoll(line + 3, NULL, 10); /* "id=<n> ..." */
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (this != me->integer && strstr(line, want))
            id = this;
        if (!end)
            break;
        *end = '\n';
    }
    freeReplyObject(r);
    freeReplyObject(me);
    return id;
}

static void a_lost_connection_is_a_disconnect_and_a_reconnect(void)
{
    rkt_server srv;
    rkt_server_start(&srv, NULL);
    rk_cache *c = rkt_open_cache(rkt_server_config(&srv, "options.timeout=10000"));
    redisContext *admin = rkt_server_admin(&srv);
    /* Writes held by the server: the store is in flight while its connection is killed. */
    freeReplyObject(rkt_cmd(admin, "CLIENT", "PAUSE", "20000", "WRITE", NULL));
    store_job j = {c, RK_ERROR};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, store_thread, &j), 0);
    long long id = 0;
    for (uint64_t until = rkt_now_ms() + 10000; !id && rkt_now_ms() < until;)
        id = client_running(admin, "set");
    ASSERT_TRUE(id > 0);
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    freeReplyObject(rkt_cmd(admin, "CLIENT", "KILL", "ID", ids, NULL));
    /* The retry is on a new connection, paused too until the writes are let through. */
    long long again = 0;
    for (uint64_t until = rkt_now_ms() + 10000; !again && rkt_now_ms() < until;)
        again = client_running(admin, "set");
    ASSERT_TRUE(again > 0 && again != id);
    freeReplyObject(rkt_cmd(admin, "CLIENT", "UNPAUSE", NULL));
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_OK(j.rc);
    rk_stats *s = snap_cache(c);
    ASSERT_EQ(events(s, RK_EVENT_DISCONNECT), 1);
    ASSERT_EQ(events(s, RK_EVENT_RECONNECT), 1);
    ASSERT_EQ(rk_stats_events(s, RK_EVENT_RECONNECT, true), 1); /* it carries the loss */
    ASSERT_EQ(events(s, RK_EVENT_CONNECT), 2);
    ASSERT_EQ(rk_stats_events(s, RK_EVENT_COMMAND, true), 1); /* the lost SET */
    ASSERT_EQ(rk_stats_calls(s, "store", false), 1);
    ASSERT_EQ(rk_stats_calls(s, "store", true), 0);
    rk_stats_free(s);
    redisFree(admin);
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

/* ---- a lock hand-off ---- */

typedef struct {
    rk_lock *l;
    int rc;
} acquire_job;

static void *acquire_thread(void *arg)
{
    acquire_job *j = arg;
    j->rc = rk_lock_acquire(j->l, NULL, "st:lock", 10000, 10000);
    return NULL;
}

static rk_stats *snap_lock(rk_lock *l)
{
    rk_stats *s;
    ASSERT_OK(rk_stats_new(&s));
    ASSERT_OK(rk_lock_get_stats(l, s));
    return s;
}

static void a_hand_off_is_counted_on_both_sides(void)
{
    rk_lock *a = rkt_open_lock(rkt_config(NULL)), *b = rkt_open_lock(rkt_config(NULL));
    ASSERT_OK(rk_lock_acquire(a, NULL, "st:lock", 10000, 1000));
    acquire_job j = {b, RK_ERROR};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, acquire_thread, &j), 0);
    /* b is in the queue once it is there in Redis. */
    char queue[128];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%sst:lock}", rkt_prefix());
    redisContext *raw = rkt_raw();
    for (uint64_t until = rkt_now_ms() + 10000;;) {
        redisReply *r = rkt_cmd(raw, "LLEN", queue, NULL);
        long long n = r->integer;
        freeReplyObject(r);
        if (n > 0)
            break;
        ASSERT_TRUE(rkt_now_ms() < until);
    }
    redisFree(raw);
    ASSERT_OK(rk_lock_release(a, NULL, "st:lock"));
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_OK(j.rc);
    ASSERT_OK(rk_lock_release(b, NULL, "st:lock"));
    rk_stats *sa = snap_lock(a), *sb = snap_lock(b);
    ASSERT_EQ(events(sa, RK_EVENT_LOCK_GRANTED), 1);
    ASSERT_EQ(events(sa, RK_EVENT_LOCK_WAIT), 0);
    ASSERT_EQ(events(sa, RK_EVENT_LOCK_HANDOFF), 1);
    ASSERT_EQ(events(sa, RK_EVENT_LOCK_RELEASED), 1);
    ASSERT_EQ(rk_stats_count(sa, RK_HIST_LOCK_HOLD), 1);
    ASSERT_EQ(events(sb, RK_EVENT_LOCK_WAIT), 1);
    ASSERT_EQ(events(sb, RK_EVENT_LOCK_GRANTED), 1);
    ASSERT_EQ(events(sb, RK_EVENT_LOCK_HANDOFF), 0); /* nobody waited behind b */
    ASSERT_EQ(events(sb, RK_EVENT_LOCK_RELEASED), 1);
    ASSERT_EQ(rk_stats_count(sb, RK_HIST_LOCK_WAIT), 1);
    ASSERT_TRUE(rk_stats_sum_us(sb, RK_HIST_LOCK_WAIT) > 0);
    ASSERT_EQ(rk_stats_calls(sb, "acquire", false), 1);
    ASSERT_EQ(rk_stats_calls(sa, "release", false), 1);
    /* A timeout. */
    ASSERT_OK(rk_lock_acquire(a, NULL, "st:lock", 10000, 1000));
    ASSERT_EQ(rk_lock_acquire(b, NULL, "st:lock", 10000, 100), RK_ETIMEDOUT);
    ASSERT_OK(rk_lock_release(a, NULL, "st:lock"));
    ASSERT_OK(rk_lock_get_stats(b, sb));
    ASSERT_EQ(events(sb, RK_EVENT_LOCK_TIMEOUT), 1);
    ASSERT_EQ(rk_stats_calls(sb, "acquire", true), 1);
    rk_stats_free(sa);
    rk_stats_free(sb);
    rk_lock_free(a);
    rk_lock_free(b);
}

/* ---- a memolock waiter served ---- */

/* "<prefix>st<sep><id>" in `buf`: a thread of its own each, the winner's fetch and the test. */
static const char *memo_name(char *buf, size_t cap, const char *sep, const char *id)
{
    snprintf(buf, cap, "%sst%s%s", rkt_prefix(), sep, id);
    return buf;
}

/* The winner's fetch: returns its value once the other handle waits for it (or after 30 s,
 * failing the test, rather than hang if the other handle never waits). */
static int slow_fetch(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    redisContext *raw = rkt_raw();
    char channel[128];
    memo_name(channel, sizeof channel, "/notif:", "k");
    long long waiting = 0;
    for (uint64_t until = rkt_now_ms() + 30000; !waiting && rkt_now_ms() < until;) {
        redisReply *r = rkt_cmd(raw, "PUBSUB", "NUMSUB", channel, NULL);
        waiting = r->element[1]->integer;
        freeReplyObject(r);
    }
    redisFree(raw);
    ASSERT_TRUE(waiting > 0);
    *ttl_ms = 60000;
    return rk_buf_set(value, "computed", 8);
}

typedef struct {
    rk_memolock *m;
    int rc;
    rk_buf out;
} get_job;

static void *get_thread(void *arg)
{
    get_job *j = arg;
    j->rc = rk_memolock_get(j->m, NULL, "k", 60000, slow_fetch, NULL, &j->out);
    return NULL;
}

static void a_memolock_waiter_is_served(void)
{
    /* A lease longer than the test: b never takes a's fetch over, however loaded the machine. */
    rk_memolock *a = rkt_open_memolock(
                    rkt_config("options.resource_tag=st;options.lock_timeout=60000")),
                *b = rkt_open_memolock(
                    rkt_config("options.resource_tag=st;options.lock_timeout=60000"));
    get_job ja = {a, RK_ERROR, RK_BUF_INIT}, jb = {b, RK_ERROR, RK_BUF_INIT};
    pthread_t ta, tb;
    ASSERT_EQ(pthread_create(&ta, NULL, get_thread, &ja), 0);
    /* b starts once a holds the key's lock, so that a is the winner. */
    redisContext *raw = rkt_raw();
    char name[128];
    for (uint64_t until = rkt_now_ms() + 10000;;) {
        redisReply *r = rkt_cmd(raw, "EXISTS", memo_name(name, sizeof name, "/lock:", "k"), NULL);
        long long n = r->integer;
        freeReplyObject(r);
        if (n)
            break;
        ASSERT_TRUE(rkt_now_ms() < until);
    }
    ASSERT_EQ(pthread_create(&tb, NULL, get_thread, &jb), 0);
    ASSERT_EQ(pthread_join(ta, NULL), 0);
    ASSERT_EQ(pthread_join(tb, NULL), 0);
    ASSERT_OK(ja.rc);
    ASSERT_OK(jb.rc);
    ASSERT_STR_EQ(jb.out.data, "computed");
    rk_stats *sa, *sb;
    ASSERT_OK(rk_stats_new(&sa));
    ASSERT_OK(rk_stats_new(&sb));
    ASSERT_OK(rk_memolock_get_stats(a, sa));
    ASSERT_OK(rk_memolock_get_stats(b, sb));
    ASSERT_EQ(events(sa, RK_EVENT_MEMO_FETCH_START), 1);
    ASSERT_EQ(events(sa, RK_EVENT_MEMO_FETCH_DONE), 1);
    ASSERT_EQ(events(sa, RK_EVENT_MEMO_SERVED), 0);
    ASSERT_EQ(events(sb, RK_EVENT_MEMO_FETCH_START), 0);
    ASSERT_EQ(events(sb, RK_EVENT_MEMO_SERVED), 1);
    ASSERT_EQ(rk_stats_count(sb, RK_HIST_MEMO_WAIT), 1);
    ASSERT_EQ(rk_stats_calls(sa, "get", false), 1);
    ASSERT_EQ(rk_stats_calls(sb, "get", false), 1);
    freeReplyObject(rkt_cmd(raw, "DEL", memo_name(name, sizeof name, ":", "k"), NULL));
    redisFree(raw);
    rk_buf_free(&ja.out);
    rk_buf_free(&jb.out);
    rk_stats_free(sa);
    rk_stats_free(sb);
    rk_memolock_free(a);
    rk_memolock_free(b);
}

/* ---- the handler ---- */

enum { LOGGED = 64 };
typedef struct {
    pthread_mutex_t mu;
    int n;
    rk_event_type type[LOGGED];
    char name[LOGGED][16];
    char node[LOGGED][64];
    rk_cache *reenter; /* a handle the handler calls back into, or NULL */
} recorder;

static void record(void *ud, const rk_event *ev)
{
    recorder *r = ud;
    pthread_mutex_lock(&r->mu);
    if (r->n < LOGGED) {
        r->type[r->n] = ev->type;
        snprintf(r->name[r->n], sizeof r->name[0], "%s", ev->name ? ev->name : "");
        snprintf(r->node[r->n], sizeof r->node[0], "%s", ev->node ? ev->node : "");
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    if (r->reenter) { /* its events are counted, not delivered: no recursion */
        rk_buf b = RK_BUF_INIT;
        rk_cache_retrieve(r->reenter, NULL, "st:reenter", &b);
        rk_buf_free(&b);
    }
}

static void the_handler_gets_each_event_once(void)
{
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    recorder r = {PTHREAD_MUTEX_INITIALIZER, 0, {0}, {{0}}, {{0}}, NULL};
    rk_set_event_handler(record, &r);
    ASSERT_OK(rk_cache_store(c, NULL, "st:h", "v", 1, 60000));
    ASSERT_EQ(r.n, 1);
    ASSERT_EQ(r.type[0], RK_EVENT_COMMAND);
    ASSERT_STR_EQ(r.name[0], "SET");
    char node[64];
    snprintf(node, sizeof node, "%s:%d", rkt_host(), rkt_port());
    ASSERT_STR_EQ(r.node[0], node);
    r.reenter = c;
    ASSERT_OK(rk_cache_remove(c, NULL, "st:h"));
    ASSERT_EQ(r.n, 2); /* the DEL; not the GET the handler made */
    ASSERT_STR_EQ(r.name[1], "DEL");
    rk_stats *s = snap_cache(c);
    ASSERT_EQ(rk_stats_calls(s, "retrieve", false), 1); /* but counted */
    rk_set_event_handler(NULL, NULL);
    ASSERT_OK(rk_cache_store(c, NULL, "st:h", "v", 1, 60000));
    ASSERT_EQ(r.n, 2);
    /* The ready-made handler writes to the log handler. */
    rk_set_event_handler(rk_event_log, NULL);
    ASSERT_OK(rk_cache_remove(c, NULL, "st:h"));
    rk_set_event_handler(NULL, NULL);
    ASSERT_STR_EQ(rk_event_name(RK_EVENT_LOCK_GRANTED), "lock_granted");
    ASSERT_STR_EQ(rk_event_name((rk_event_type)999), "unknown");
    rk_stats_free(s);
    rk_cache_free(c);
}

/* ---- the Prometheus page ---- */

static bool metric_name(const char **p)
{
    const char *s = *p;
    if (!(*s == '_' || *s == ':' || ((*s | 32) >= 'a' && (*s | 32) <= 'z')))
        return false;
    while (*s == '_' || *s == ':' || ((*s | 32) >= 'a' && (*s | 32) <= 'z') ||
           (*s >= '0' && *s <= '9'))
        s++;
    *p = s;
    return true;
}

/* name{k="v",...} value: returns the family (name without _bucket/_sum/_count) in `fam`. */
static void check_sample(const char *line, char *fam, size_t cap, double *value, char *le)
{
    const char *p = line;
    ASSERT_TRUE(metric_name(&p));
    snprintf(fam, cap, "%.*s", (int)(p - line), line);
    *le = '\0';
    if (*p == '{') {
        p++;
        while (*p != '}') {
            const char *k = p;
            ASSERT_TRUE(metric_name(&p));
            ASSERT_TRUE(p[0] == '=' && p[1] == '"');
            bool is_le = p - k == 2 && !strncmp(k, "le", 2);
            p += 2;
            char *v = le;
            while (*p != '"') {
                ASSERT_TRUE(*p && *p != '\n');
                if (*p == '\\')
                    p++;
                if (is_le)
                    *v++ = *p;
                p++;
            }
            if (is_le)
                *v = '\0';
            p++;
            ASSERT_TRUE(*p == ',' || *p == '}');
            if (*p == ',')
                p++;
        }
        p++;
    }
    ASSERT_TRUE(*p == ' ');
    char *end;
    *value = strtod(p + 1, &end);
    ASSERT_TRUE(end != p + 1 && *end == '\0');
    for (const char *suffix = NULL, *const *s = (const char *[]){"_bucket", "_sum", "_count", NULL};
         *s; s++) {
        size_t n = strlen(fam), m = strlen(*s);
        if (n > m && !strcmp(fam + n - m, *s) && strstr(fam, "_seconds")) {
            suffix = *s;
            fam[n - m] = '\0';
            (void)suffix;
            break;
        }
    }
}

/* Every line is HELP, TYPE or a sample; a family's lines are together, TYPE before samples;
 * histogram buckets are cumulative and +Inf equals _count. Returns the samples seen. */
static int check_page(char *page)
{
    char done[32][64] = {{0}}, cur[64] = "";
    int ndone = 0, samples = 0;
    double last_bucket = -1, inf = -1;
    for (char *line = strtok(page, "\n"); line; line = strtok(NULL, "\n")) {
        char fam[64], le[32];
        if (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7)) {
            const char *p = line + 7;
            ASSERT_TRUE(metric_name(&p) && *p == ' ');
            snprintf(fam, sizeof fam, "%.*s", (int)(p - line - 7), line + 7);
            if (!line[2] || line[2] == 'T')
                ASSERT_TRUE(!strcmp(p + 1, "counter") || !strcmp(p + 1, "histogram"));
        } else {
            double v;
            check_sample(line, fam, sizeof fam, &v, le);
            ASSERT_STR_EQ(fam, cur); /* samples follow their family's HELP and TYPE */
            samples++;
            if (*le) {
                ASSERT_TRUE(v >= last_bucket);
                last_bucket = v;
                if (!strcmp(le, "+Inf"))
                    inf = v, last_bucket = -1;
            } else if (strstr(line, "_count{")) {
                ASSERT_TRUE(v == inf);
            }
        }
        if (strcmp(fam, cur)) {
            for (int i = 0; i < ndone; i++)
                ASSERT_TRUE(strcmp(done[i], fam)); /* a family comes back: not grouped */
            if (*cur)
                snprintf(done[ndone++], sizeof done[0], "%s", cur);
            snprintf(cur, sizeof cur, "%s", fam);
        }
    }
    return samples;
}

static void the_prometheus_page_parses(void)
{
    rk_cache *c = rkt_open_cache(rkt_config(NULL));
    rk_lock *l = rkt_open_lock(rkt_config(NULL));
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_store(c, NULL, "st:p", "v", 1, 60000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "st:p", &b));
    ASSERT_OK(rk_lock_acquire(l, NULL, "st:plock", 10000, 1000));
    ASSERT_OK(rk_lock_release(l, NULL, "st:plock"));
    rk_stats *s[2];
    ASSERT_OK(rk_stats_new(&s[0]));
    ASSERT_OK(rk_stats_new(&s[1]));
    ASSERT_OK(rk_cache_get_stats(c, s[0]));
    ASSERT_OK(rk_lock_get_stats(l, s[1]));
    rk_buf page = RK_BUF_INIT;
    const char *names[2] = {"sessions \"eu\"\\1", NULL};
    ASSERT_OK(rk_stats_format_prometheus(&page, (const rk_stats *const *)s, names, 2));
    ASSERT_TRUE(strstr(page.data, "redkit_calls_total{component=\"cache\",handle=\"sessions "
                                  "\\\"eu\\\"\\\\1\",op=\"store\",outcome=\"ok\"} 1\n") != NULL);
    ASSERT_TRUE(strstr(page.data, "redkit_lock_hold_seconds_count{component=\"lock\"} 1\n"));
    ASSERT_TRUE(check_page(page.data) > 50);
    ASSERT_EQ(rk_stats_format_prometheus(NULL, (const rk_stats *const *)s, NULL, 2), RK_EINVAL);
    rk_buf_free(&page);
    rk_buf_free(&b);
    rk_stats_free(s[0]);
    rk_stats_free(s[1]);
    rk_lock_free(l);
    rk_cache_free(c);
}

/* ---- readers during load ---- */

enum { WRITERS = 16, ROUNDS = 200 };

static rk_cache *shared_cache;
static atomic_bool load_done;

static void *writer(void *arg)
{
    (void)arg;
    rk_buf b = RK_BUF_INIT;
    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_OK(rk_cache_store(shared_cache, NULL, "st:load", "v", 1, 60000));
        ASSERT_OK(rk_cache_retrieve(shared_cache, NULL, "st:load", &b));
    }
    rk_buf_free(&b);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    rk_stats *s;
    ASSERT_OK(rk_stats_new(&s));
    uint64_t last = 0;
    while (!atomic_load(&load_done)) {
        ASSERT_OK(rk_cache_get_stats(shared_cache, s));
        uint64_t now = rk_stats_calls(s, "store", false);
        ASSERT_TRUE(now >= last); /* counters never go back */
        last = now;
        (void)rk_stats_quantile_us(s, RK_HIST_CALL, 0.99);
    }
    rk_stats_free(s);
    return NULL;
}

static void stats_read_during_16_thread_load(void)
{
    shared_cache = rkt_open_cache(rkt_config("options.max_connections=16"));
    pthread_t w[WRITERS], r[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&r[i], NULL, reader, NULL), 0);
    for (int i = 0; i < WRITERS; i++)
        ASSERT_EQ(pthread_create(&w[i], NULL, writer, NULL), 0);
    for (int i = 0; i < WRITERS; i++)
        ASSERT_EQ(pthread_join(w[i], NULL), 0);
    atomic_store(&load_done, true);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_join(r[i], NULL), 0);
    rk_stats *s = snap_cache(shared_cache);
    ASSERT_EQ(rk_stats_calls(s, "store", false), WRITERS * ROUNDS);
    ASSERT_EQ(rk_stats_calls(s, "retrieve", false), WRITERS * ROUNDS);
    ASSERT_EQ(rk_stats_count(s, RK_HIST_CALL), 2 * WRITERS * ROUNDS);
    rk_stats_free(s);
    rk_cache_free(shared_cache);
}

RKT_MAIN(RKT_CASE(cache_calls_and_commands_are_counted),
         RKT_CASE(a_lost_connection_is_a_disconnect_and_a_reconnect),
         RKT_CASE(a_hand_off_is_counted_on_both_sides), RKT_CASE(a_memolock_waiter_is_served),
         RKT_CASE(the_handler_gets_each_event_once), RKT_CASE(the_prometheus_page_parses),
         RKT_CASE(stats_read_during_16_thread_load))
