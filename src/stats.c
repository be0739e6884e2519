#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"

struct rk_stats {
    char component[16];
    uint64_t events[RK_EVENT_TYPES][2];
    uint64_t calls[RK__OPS][2];
    struct {
        uint64_t count, sum_us, bucket[RK__HIST_BUCKETS];
    } hist[RK_HISTOGRAMS];
};

static const char *const op_names[RK__OPS] = {
    "store",       "retrieve",    "remove",  "ttl",     "store_many", "retrieve_many",
    "remove_many", "try_acquire", "acquire", "release", "extend",     "get",
};

void rk__stats_init(rk__stats *s, const char *component)
{
    memset(s, 0, sizeof *s);
    s->component = component;
}

/* ---- histograms ---- */

/* Below 4 us one bucket per microsecond; above, bucket (e - 1) * 4 + m for a value whose top
 * bit is bit e and whose next two bits are m: four buckets per power of two. */
unsigned rk__hist_bucket(uint64_t us)
{
    if (us < RK__HIST_SUB)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us);
    unsigned i = (e - 1) * RK__HIST_SUB + (unsigned)((us >> (e - 2)) & 3u);
    return i < RK__HIST_BUCKETS ? i : RK__HIST_BUCKETS - 1;
}

uint64_t rk__hist_upper(unsigned i)
{
    if (i < RK__HIST_SUB)
        return i + 1u;
    unsigned e = i / RK__HIST_SUB + 1, m = i % RK__HIST_SUB;
    return (uint64_t)(RK__HIST_SUB + m + 1) << (e - 2);
}

void rk__hist_add(rk__hist *h, uint64_t us)
{
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->bucket[rk__hist_bucket(us)], 1, memory_order_relaxed);
}

/* ---- counting ---- */

int rk__stats_call(rk__stats *s, rk__op op, uint64_t started_us, int rc)
{
    atomic_fetch_add_explicit(&s->calls[op][rc != RK_OK && rc != RK_ENOTFOUND], 1,
                              memory_order_relaxed); /* a miss is an answer */
    rk__hist_add(&s->hist[RK_HIST_CALL], rk__now_us() - started_us);
    return rc;
}

/* The histogram an event's duration goes to, or -1. */
static int hist_of(rk_event_type type)
{
    switch (type) {
    case RK_EVENT_COMMAND:
        return RK_HIST_COMMAND;
    case RK_EVENT_LOCK_GRANTED:
        return RK_HIST_LOCK_WAIT;
    case RK_EVENT_LOCK_RELEASED:
        return RK_HIST_LOCK_HOLD;
    case RK_EVENT_MEMO_SERVED:
        return RK_HIST_MEMO_WAIT;
    default:
        return -1;
    }
}

void rk__stats_event(rk__stats *s, rk_event_type type, uint64_t duration_us, int outcome)
{
    atomic_fetch_add_explicit(&s->events[type][outcome != RK_OK], 1, memory_order_relaxed);
    int h = hist_of(type);
    if (h >= 0 && outcome == RK_OK)
        rk__hist_add(&s->hist[h], duration_us);
}

/* ---- snapshots ---- */

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void rk__stats_snapshot(const rk__stats *s, rk_stats *out)
{
    snprintf(out->component, sizeof out->component, "%s", s->component ? s->component : "");
    for (unsigned t = 0; t < RK_EVENT_TYPES; t++)
        for (unsigned f = 0; f < 2; f++)
            out->events[t][f] = load(&s->events[t][f]);
    for (unsigned o = 0; o < RK__OPS; o++)
        for (unsigned f = 0; f < 2; f++)
            out->calls[o][f] = load(&s->calls[o][f]);
    for (unsigned h = 0; h < RK_HISTOGRAMS; h++) {
        out->hist[h].sum_us = load(&s->hist[h].sum_us);
        /* The count is the sum of the buckets read, so that the two always agree. */
        out->hist[h].count = 0;
        for (unsigned i = 0; i < RK__HIST_BUCKETS; i++)
            out->hist[h].count += out->hist[h].bucket[i] = load(&s->hist[h].bucket[i]);
    }
}

int rk_stats_new(rk_stats **out)
{
    if (!out)
        return rk__err(RK_EINVAL, "rk_stats_new: out is NULL");
    *out = rk__calloc(1, sizeof **out);
    return *out ? RK_OK : rk__err(RK_ENOMEM, "cannot allocate a statistics snapshot");
}

void rk_stats_free(rk_stats *s) { rk__free(s); }

uint64_t rk_stats_events(const rk_stats *s, rk_event_type type, bool failed)
{
    if (!s || (unsigned)type >= RK_EVENT_TYPES)
        return 0;
    return failed ? s->events[type][1] : s->events[type][0] + s->events[type][1];
}

uint64_t rk_stats_calls(const rk_stats *s, const char *op, bool failed)
{
    for (unsigned o = 0; s && op && o < RK__OPS; o++)
        if (strcmp(op, op_names[o]) == 0)
            return failed ? s->calls[o][1] : s->calls[o][0] + s->calls[o][1];
    return 0;
}

uint64_t rk_stats_count(const rk_stats *s, rk_histogram h)
{
    return s && (unsigned)h < RK_HISTOGRAMS ? s->hist[h].count : 0;
}

uint64_t rk_stats_sum_us(const rk_stats *s, rk_histogram h)
{
    return s && (unsigned)h < RK_HISTOGRAMS ? s->hist[h].sum_us : 0;
}

uint64_t rk_stats_quantile_us(const rk_stats *s, rk_histogram h, double q)
{
    if (!s || (unsigned)h >= RK_HISTOGRAMS || !(q > 0 && q <= 1) || s->hist[h].count == 0)
        return 0;
    double want = q * (double)s->hist[h].count;
    uint64_t rank = (uint64_t)want, seen = 0;
    if ((double)rank < want)
        rank++; /* the ceiling, without libm */
    for (unsigned i = 0; i < RK__HIST_BUCKETS; i++)
        if ((seen += s->hist[h].bucket[i]) >= rank)
            return rk__hist_upper(i);
    return rk__hist_upper(RK__HIST_BUCKETS - 1);
}

/* ---- the Prometheus page ---- */

static const char *const hist_names[RK_HISTOGRAMS][2] = {
    {"call", "Public calls, retries and waits included."},
    {"command", "Round trips of a command or pipeline."},
    {"lock_wait", "Lock acquisitions, from the call to the grant."},
    {"lock_hold", "Locks held, from the grant to the release."},
    {"memolock_wait", "Memolock waiters, until another call's value reached them."},
};

typedef struct page {
    rk_buf *out;
    int rc;
} page;

static void put(page *p, const char *fmt, ...) RK__PRINTF(2, 3);

static void put(page *p, const char *fmt, ...)
{
    if (p->rc != RK_OK)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    char *grown = rk__realloc(p->out->data, p->out->len + len + 1);
    if (!grown) {
        p->rc = rk__err(RK_ENOMEM, "cannot grow the Prometheus page to %zu bytes",
                        p->out->len + len + 1);
        return;
    }
    memcpy(grown + p->out->len, line, len);
    p->out->len += len;
    grown[p->out->len] = '\0';
    p->out->data = grown;
}

/* `component="cache",handle="..."`: the handle's name escaped as the format says (backslash,
 * quote, newline), cut to what a label reasonably holds. */
static void labels(char *buf, size_t cap, const rk_stats *s, const char *handle)
{
    size_t n = (size_t)snprintf(buf, cap, "component=\"%s\"", s->component);
    if (!handle || n >= cap)
        return;
    n += (size_t)snprintf(buf + n, cap - n, ",handle=\"");
    for (const char *c = handle; *c && n + 4 < cap; c++) {
        if (*c == '\\' || *c == '"' || *c == '\n')
            buf[n++] = '\\';
        buf[n++] = *c == '\n' ? 'n' : *c;
    }
    snprintf(buf + n, cap - n, "\"");
}

#define FOR_HANDLES(i) for (size_t i = 0; i < n; i++)

static void events_family(page *p, const rk_stats *const *stats, const char *const *lab, size_t n)
{
    put(p, "# HELP redkit_events_total Events raised, by type and outcome.\n"
           "# TYPE redkit_events_total counter\n");
    FOR_HANDLES(i)
    for (unsigned t = 0; t < RK_EVENT_TYPES; t++)
        for (unsigned f = 0; f < 2; f++)
            if (stats[i]->events[t][f])
                put(p, "redkit_events_total{%s,event=\"%s\",outcome=\"%s\"} %llu\n", lab[i],
                    rk_event_name((rk_event_type)t), f ? "error" : "ok",
                    (unsigned long long)stats[i]->events[t][f]);
}

static void calls_family(page *p, const rk_stats *const *stats, const char *const *lab, size_t n)
{
    put(p, "# HELP redkit_calls_total Public calls returned, by operation and outcome.\n"
           "# TYPE redkit_calls_total counter\n");
    FOR_HANDLES(i)
    for (unsigned o = 0; o < RK__OPS; o++)
        for (unsigned f = 0; f < 2; f++)
            if (stats[i]->calls[o][f])
                put(p, "redkit_calls_total{%s,op=\"%s\",outcome=\"%s\"} %llu\n", lab[i],
                    op_names[o], f ? "error" : "ok", (unsigned long long)stats[i]->calls[o][f]);
}

/* Cumulative buckets at each power of two microseconds (every fourth bucket boundary) up to
 * about two minutes; slower samples are in +Inf only. */
#define PAGE_MAX_US (1ull << 27)
static void hist_family(page *p, unsigned h, const rk_stats *const *stats, const char *const *lab,
                        size_t n)
{
    const char *name = hist_names[h][0];
    put(p, "# HELP redkit_%s_seconds %s\n# TYPE redkit_%s_seconds histogram\n", name,
        hist_names[h][1], name);
    FOR_HANDLES(i)
    {
        uint64_t cum = 0;
        for (unsigned b = 0; b < RK__HIST_BUCKETS; b++) {
            cum += stats[i]->hist[h].bucket[b];
            uint64_t upper = rk__hist_upper(b);
            if ((upper & (upper - 1)) == 0 && upper <= PAGE_MAX_US) /* a power of two */
                put(p, "redkit_%s_seconds_bucket{%s,le=\"%.6f\"} %llu\n", name, lab[i],
                    (double)upper / 1e6, (unsigned long long)cum);
        }
        put(p, "redkit_%s_seconds_bucket{%s,le=\"+Inf\"} %llu\n", name, lab[i],
            (unsigned long long)stats[i]->hist[h].count);
        put(p, "redkit_%s_seconds_sum{%s} %.6f\n", name, lab[i],
            (double)stats[i]->hist[h].sum_us / 1e6);
        put(p, "redkit_%s_seconds_count{%s} %llu\n", name, lab[i],
            (unsigned long long)stats[i]->hist[h].count);
    }
}

int rk_stats_format_prometheus(rk_buf *out, const rk_stats *const *stats,
                               const char *const *handles, size_t n)
{
    if (!out || (n && !stats))
        return rk__err(RK_EINVAL, "rk_stats_format_prometheus: %s is NULL", !out ? "out" : "stats");
    for (size_t i = 0; i < n; i++)
        if (!stats[i])
            return rk__err(RK_EINVAL, "rk_stats_format_prometheus: stats[%zu] is NULL", i);
    char(*lab)[256] = rk__calloc(n ? n : 1, sizeof *lab);
    const char **labp = rk__calloc(n ? n : 1, sizeof *labp);
    page p = {out, RK_OK};
    if (!lab || !labp)
        p.rc = rk__err(RK_ENOMEM, "cannot format statistics");
    for (size_t i = 0; p.rc == RK_OK && i < n; i++) {
        labels(lab[i], sizeof lab[i], stats[i], handles ? handles[i] : NULL);
        labp[i] = lab[i];
    }
    events_family(&p, stats, labp, n);
    calls_family(&p, stats, labp, n);
    for (unsigned h = 0; h < RK_HISTOGRAMS; h++)
        hist_family(&p, h, stats, labp, n);
    rk__free(lab);
    rk__free(labp);
    return p.rc;
}
