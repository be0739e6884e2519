/* redkit demo: the seed tutorial, step by step, against a real server. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const char cli_demo_usage[] =
    "redkit demo [--clients 8]\n"
    "    Walk through the cache (store, retrieve, TTL, remove, expiry), the lock (a second\n"
    "    owner times out, then is woken by the release) and the memolock (N concurrent clients,\n"
    "    exactly one computation), printing each step with its timing. Uses keys under a\n"
    "    private prefix and removes them at the end.\n";

#define MAX_CLIENTS 64
#define COMPUTE_MS 200

typedef struct demo {
    const cli_global *g;
    char prefix[64];
    char tag[64];
    int clients;
    uint64_t t0_us;
} demo;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double ms_since(uint64_t start_us) { return (double)(now_us() - start_us) / 1000.0; }

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* The user's configuration with the demo's own key prefix and extra keys (NULL-terminated). */
static int demo_config(const demo *d, rk_config **cfg, const char *k, const char *v)
{
    return cli_config(d->g, cfg, "options.prefix", d->prefix, k, v, NULL);
}

/* ---- cache ---- */

static int open_cache(const demo *d, rk_cache **c)
{
    rk_config *cfg;
    int rc = demo_config(d, &cfg, NULL, NULL);
    *c = NULL;
    if (rc)
        return rc;
    if (rk_cache_new(c) || rk_cache_configure(*c, cfg) || rk_cache_open(*c, NULL))
        rc = cli_fail(true);
    rk_config_free(cfg);
    return rc;
}

static int show_get(rk_cache *c, const char *key, bool expect_hit)
{
    rk_buf v = RK_BUF_INIT;
    uint64_t t = now_us();
    int rc = rk_cache_retrieve(c, NULL, key, &v);
    if (rc == RK_OK)
        say("  retrieve %-9s -> \"%s\"  (%.2f ms)\n", key, v.data, ms_since(t));
    else if (rc == RK_ENOTFOUND)
        say("  retrieve %-9s -> miss: %s  (%.2f ms)\n", key, rk_last_error()->name, ms_since(t));
    rk_buf_free(&v);
    if (rc != RK_OK && rc != RK_ENOTFOUND)
        return cli_fail(false);
    if ((rc == RK_OK) != expect_hit) {
        cli_note("expected a %s for %s", expect_hit ? "hit" : "miss", key);
        return EX_SOFTWARE;
    }
    return 0;
}

static int show_store(rk_cache *c, const char *key, const char *value, uint64_t ttl_ms)
{
    uint64_t t = now_us();
    if (rk_cache_store(c, NULL, key, value, strlen(value), ttl_ms) != RK_OK)
        return cli_fail(false);
    say("  store    %-9s  = \"%s\" for %llu ms  (%.2f ms)\n", key, value,
        (unsigned long long)ttl_ms, ms_since(t));
    return 0;
}

static int show_ttl(rk_cache *c, const char *key)
{
    uint64_t left, t = now_us();
    if (rk_cache_ttl(c, NULL, key, &left) != RK_OK)
        return cli_fail(false);
    say("  ttl      %-9s -> %llu ms left  (%.2f ms)\n", key, (unsigned long long)left, ms_since(t));
    return 0;
}

static int cache_steps(rk_cache *c)
{
    int rc;
    if ((rc = show_store(c, "greeting", "hello from redkit", 30000)) ||
        (rc = show_get(c, "greeting", true)) || (rc = show_ttl(c, "greeting")))
        return rc;
    uint64_t t = now_us();
    if (rk_cache_remove(c, NULL, "greeting") != RK_OK)
        return cli_fail(false);
    say("  remove   %-9s  (%.2f ms)\n", "greeting", ms_since(t));
    if ((rc = show_get(c, "greeting", false)) ||
        (rc = show_store(c, "flash", "short-lived", 300)) || (rc = show_get(c, "flash", true)))
        return rc;
    say("  ... 400 ms later, the TTL has run out:\n");
    sleep_ms(400);
    return show_get(c, "flash", false);
}

static int demo_cache(const demo *d)
{
    rk_cache *c;
    say("\n1. Cache: store, retrieve, TTL, remove, expire\n");
    int rc = open_cache(d, &c);
    if (rc == 0)
        rc = cache_steps(c);
    rk_cache_free(c);
    return rc;
}

/* ---- lock ---- */

/* Two handles are two owners, as two processes would be. A long retry interval shows that the
 * second owner is woken by the release notification, not by polling. */
static int open_lock(const demo *d, rk_lock **l)
{
    rk_config *cfg;
    int rc = demo_config(d, &cfg, "options.retry_timeout", "2000");
    *l = NULL;
    if (rc)
        return rc;
    if (rk_lock_new(l) || rk_lock_configure(*l, cfg) || rk_lock_open(*l, NULL))
        rc = cli_fail(true);
    rk_config_free(cfg);
    return rc;
}

typedef struct late_release {
    rk_lock *lock;
    uint64_t at_us;
} late_release;

static void *release_later(void *arg)
{
    late_release *lr = arg;
    sleep_ms(300);
    lr->at_us = now_us();
    rk_lock_release(lr->lock, NULL, "report");
    return NULL;
}

static int contend(rk_lock *b)
{
    uint64_t t = now_us();
    int rc = rk_lock_acquire(b, NULL, "report", 10000, 500);
    const rk_error *e = rk_last_error();
    if (rc == RK_OK) {
        cli_note("owner B should not have got the lock");
        return EX_SOFTWARE;
    }
    if (rc != RK_ETIMEDOUT)
        return cli_fail(false);
    say("  owner B waits up to 500 ms  -> %s (%s) after %.0f ms: %s\n", e->name, e->category,
        ms_since(t), e->message);
    return 0;
}

static int handover(rk_lock *a, rk_lock *b)
{
    late_release lr = {a, 0};
    pthread_t th;
    say("  owner B waits up to 5 s; owner A works for 300 ms more, then releases\n");
    if (pthread_create(&th, NULL, release_later, &lr) != 0)
        return EX_OSERR;
    uint64_t t = now_us();
    int rc = rk_lock_acquire(b, NULL, "report", 10000, 5000);
    uint64_t got = now_us();
    pthread_join(th, NULL);
    if (rc != RK_OK)
        return cli_fail(false);
    double after = got > lr.at_us ? (double)(got - lr.at_us) / 1000.0 : 0.0;
    say("  owner B acquires \"report\" after %.0f ms, %.1f ms after A's release: %s\n",
        (double)(got - t) / 1000.0, after,
        after < 1000 ? "woken by the release notification (B re-checks only every 2 s here)"
                     : "found it free on a periodic re-check");
    rk_lock_release(b, NULL, "report");
    say("  owner B releases \"report\"\n");
    return 0;
}

static int lock_steps(rk_lock *a, rk_lock *b)
{
    uint64_t t = now_us();
    if (rk_lock_acquire(a, NULL, "report", 10000, 0) != RK_OK)
        return cli_fail(false);
    say("  owner A acquires \"report\" for 10 s  (%.2f ms)\n", ms_since(t));
    int rc = contend(b);
    return rc ? rc : handover(a, b);
}

static int demo_lock(const demo *d)
{
    rk_lock *a = NULL, *b = NULL;
    say("\n2. Lock: one owner at a time\n");
    int rc = open_lock(d, &a);
    if (rc == 0)
        rc = open_lock(d, &b);
    if (rc == 0)
        rc = lock_steps(a, b);
    rk_lock_free(a);
    rk_lock_free(b);
    return rc;
}

/* ---- memolock ---- */

/* Holds the clients back until all are ready, so their requests really are concurrent. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate;

typedef struct client {
    rk_memolock *m;
    int index;
    atomic_int *computations;
    gate *start;
    int rc;
    rk_error err; /* copied: rk_last_error() is per thread */
    char err_msg[256];
    rk_buf value;
    double took_ms;
} client;

static int compute(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    client *c = ud;
    char text[96];
    atomic_fetch_add(c->computations, 1);
    sleep_ms(COMPUTE_MS); /* the expensive part */
    snprintf(text, sizeof text, "report computed by client %d", c->index + 1);
    *ttl_ms = 60000;
    return rk_buf_set(value, text, strlen(text));
}

static void *client_main(void *arg)
{
    client *c = arg;
    pthread_mutex_lock(&c->start->mu);
    while (!c->start->open)
        pthread_cond_wait(&c->start->cv, &c->start->mu);
    pthread_mutex_unlock(&c->start->mu);
    uint64_t t = now_us();
    c->rc = rk_memolock_get(c->m, NULL, "report-2024", 10000, compute, c, &c->value);
    c->took_ms = ms_since(t);
    if (c->rc != RK_OK) {
        c->err = *rk_last_error();
        snprintf(c->err_msg, sizeof c->err_msg, "%s", c->err.message);
    }
    return NULL;
}

static int open_memolock(const demo *d, rk_memolock **m)
{
    rk_config *cfg;
    int rc = demo_config(d, &cfg, "options.resource_tag", d->tag);
    *m = NULL;
    if (rc)
        return rc;
    if (rk_memolock_new(m) || rk_memolock_configure(*m, cfg) || rk_memolock_open(*m, NULL))
        rc = cli_fail(true);
    rk_config_free(cfg);
    return rc;
}

static int open_clients(const demo *d, client *cs, atomic_int *count, gate *g)
{
    for (int i = 0; i < d->clients; i++) {
        cs[i] = (client){.index = i, .computations = count, .start = g};
        int rc = open_memolock(d, &cs[i].m);
        if (rc)
            return rc;
    }
    return 0;
}

static int report_clients(const client *cs, int n, int computations)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (cs[i].rc != RK_OK) {
            say("  client %d: %s (%s): %s\n", i + 1, cs[i].err.name, cs[i].err.category,
                cs[i].err_msg);
            rc = EX_SOFTWARE;
        } else {
            say("  client %d: \"%s\" after %.0f ms\n", i + 1, cs[i].value.data, cs[i].took_ms);
            if (strcmp(cs[i].value.data, cs[0].value.data) != 0)
                rc = EX_SOFTWARE;
        }
    }
    say("  => %d computation%s for %d concurrent requests%s\n", computations,
        computations == 1 ? "" : "s", n, computations == 1 ? ": exactly once" : "");
    return computations == 1 ? rc : EX_SOFTWARE;
}

static int run_clients(client *cs, int n, gate *g)
{
    pthread_t th[MAX_CLIENTS];
    int started = 0;
    while (started < n && pthread_create(&th[started], NULL, client_main, &cs[started]) == 0)
        started++;
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (started == n)
        return 0;
    cli_note("cannot start %d client threads", n);
    return EX_OSERR;
}

/* A later request finds the stored value: no computation. */
static int later_request(client *c0, atomic_int *count)
{
    rk_buf v = RK_BUF_INIT;
    uint64_t t = now_us();
    int before = atomic_load(count);
    int rc = rk_memolock_get(c0->m, NULL, "report-2024", 10000, compute, c0, &v);
    if (rc != RK_OK)
        return cli_fail(false);
    say("  a later request: \"%s\" from Redis in %.1f ms, %d new computations\n", v.data,
        ms_since(t), atomic_load(count) - before);
    rk_buf_free(&v);
    return atomic_load(count) == before ? 0 : EX_SOFTWARE;
}

static int demo_memolock(const demo *d)
{
    client cs[MAX_CLIENTS];
    atomic_int computations;
    gate start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    atomic_init(&computations, 0);
    say("\n3. Memolock: %d concurrent requests, one computation\n"
        "  %d clients, each with its own connections as if on %d hosts, ask for \"report-2024\"\n"
        "  at the same moment; computing it takes %d ms.\n",
        d->clients, d->clients, d->clients, COMPUTE_MS);
    memset(cs, 0, sizeof cs);
    int rc = open_clients(d, cs, &computations, &start);
    if (rc == 0)
        rc = run_clients(cs, d->clients, &start);
    if (rc == 0)
        rc = report_clients(cs, d->clients, atomic_load(&computations));
    if (rc == 0)
        rc = later_request(&cs[0], &computations);
    for (int i = 0; i < d->clients; i++) {
        rk_memolock_free(cs[i].m);
        rk_buf_free(&cs[i].value);
    }
    return rc;
}

/* ---- cleanup ---- */

static void cleanup(const demo *d)
{
    rk_cache *c;
    char value_key[128];
    snprintf(value_key, sizeof value_key, "%s:report-2024", d->tag);
    const char *keys[] = {"greeting", "flash", "report", value_key};
    if (open_cache(d, &c) == 0 && rk_cache_remove_many(c, NULL, keys, 4) == RK_OK)
        say("\nRemoved the demo's keys (prefix %s).\n", d->prefix);
    rk_cache_free(c);
}

int cmd_demo(cli_global *g, int argc, char **argv)
{
    const char *clients = NULL;
    const cli_opt opts[] = {{"clients", &clients, NULL, 0}, {NULL, NULL, NULL, 0}};
    cli_args a;
    int rc = cli_parse(argc, argv, opts, g, 0, false, &a);
    if (rc || a.help) {
        if (a.help)
            fputs(cli_demo_usage, stdout);
        return rc;
    }
    demo d = {.g = g, .clients = clients ? atoi(clients) : 8, .t0_us = now_us()};
    if (d.clients < 2 || d.clients > MAX_CLIENTS)
        return cli_usage_error("--clients must be between 2 and %d", MAX_CLIENTS);
    snprintf(d.prefix, sizeof d.prefix, "redkit-demo-%d:", (int)getpid());
    snprintf(d.tag, sizeof d.tag, "memo");
    say("redkit %s demo (keys under the prefix %s)\n", RK_VERSION_STRING, d.prefix);
    if ((rc = demo_cache(&d)) == 0 && (rc = demo_lock(&d)) == 0)
        rc = demo_memolock(&d);
    cleanup(&d);
    if (rc == 0)
        say("\nAll done in %.0f ms. Next: 'redkit --help' for the command-line tool, README.md\n"
            "for the C library.\n",
            ms_since(d.t0_us));
    return rc;
}
