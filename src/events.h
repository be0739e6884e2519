/* Raising events: each one is counted in the handle's statistics and, when the application set
 * a handler (rk_set_event_handler), delivered to it on the raising thread. Without a handler an
 * event costs its counter increments and one relaxed load, so the hot path raises them freely;
 * what is only needed for delivery (a node's name) is built only when a handler is set. */
#ifndef RK_EVENTS_H
#define RK_EVENTS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "endpoint.h"
#include "stats.h"

typedef struct rk__event {
    rk_event_type type;
    const char *key; /* as the caller gave it */
    size_t key_len;
    const rk__endpoint *node;
    const char *name;
    uint64_t duration_us;
    int outcome;
} rk__event;

extern atomic_bool rk__events_on;

/* Count `ev` in `s` (NULL: not counted) and deliver it if a handler is set. */
void rk__event_deliver(rk__stats *s, const rk__event *ev);

static inline void rk__emit(rk__stats *s, const rk__event *ev)
{
    if (s)
        rk__stats_event(s, ev->type, ev->duration_us, ev->outcome);
    if (atomic_load_explicit(&rk__events_on, memory_order_relaxed))
        rk__event_deliver(s, ev);
}

#endif
