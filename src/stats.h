/* A handle's statistics: event counts, public calls by operation and latency histograms, all
 * plain atomic counters updated with relaxed increments (no lock on the hot path, and a reader
 * may see one counter a moment ahead of another). They live in the component, so they cover
 * the handle's whole life across close and open. */
#ifndef RK_STATS_H
#define RK_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "clock.h"
#include "redkit/stats.h"

/* Four buckets per power of two from 1 us: 4 * 35 of them reach 2^36 us (19 hours). */
#define RK__HIST_SUB 4u
#define RK__HIST_BUCKETS 140u

/* The public operations counted, named as in rk_stats_calls(). */
typedef enum {
    RK__OP_STORE,
    RK__OP_RETRIEVE,
    RK__OP_REMOVE,
    RK__OP_TTL,
    RK__OP_STORE_MANY,
    RK__OP_RETRIEVE_MANY,
    RK__OP_REMOVE_MANY,
    RK__OP_TRY_ACQUIRE,
    RK__OP_ACQUIRE,
    RK__OP_RELEASE,
    RK__OP_EXTEND,
    RK__OP_GET,
    RK__OPS
} rk__op;

typedef struct rk__hist {
    _Atomic uint64_t sum_us; /* the count is the buckets' sum: one increment less per sample */
    _Atomic uint64_t bucket[RK__HIST_BUCKETS];
} rk__hist;

typedef struct rk__stats {
    const char *component;
    _Atomic uint64_t events[RK_EVENT_TYPES][2]; /* [type][failed] */
    _Atomic uint64_t calls[RK__OPS][2];         /* [op][failed] */
    rk__hist hist[RK_HISTOGRAMS];
} rk__stats;

void rk__stats_init(rk__stats *s, const char *component);

void rk__hist_add(rk__hist *h, uint64_t us);

/* The bucket of `us`, and the first value above bucket `i` (its exclusive upper bound). */
unsigned rk__hist_bucket(uint64_t us);
uint64_t rk__hist_upper(unsigned i);

/* A public call of `op` that began at `started_us` returned `rc`; returns `rc`. */
int rk__stats_call(rk__stats *s, rk__op op, uint64_t started_us, int rc);

/* Count an event; an event type with a duration also feeds its histogram. */
void rk__stats_event(rk__stats *s, rk_event_type type, uint64_t duration_us, int outcome);

/* Copy the counters into a snapshot (rk_*_get_stats). */
void rk__stats_snapshot(const rk__stats *s, rk_stats *out);

#endif
