#include "events.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* As the log handler: delivered under the read side (handlers run in parallel), swapped under
 * the write side, so that fn and ud change together and an old handler is done once the swap
 * returns. */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static rk_event_fn handler;
static void *handler_ud;
atomic_bool rk__events_on;

/* Set while this thread runs the handler: a redkit call made from it raises events that are
 * counted but not delivered, so a handler cannot recurse into itself. */
static _Thread_local bool in_handler;

static const char *const names[RK_EVENT_TYPES] = {
    "command",         "connect",           "disconnect",        "reconnect",    "topology",
    "redirect",        "failover",          "lock_wait",         "lock_granted", "lock_handoff",
    "lock_timeout",    "lock_released",     "lock_lost",         "lock_renewed", "memo_fetch_start",
    "memo_fetch_done", "memo_fetch_failed", "memo_served",       "memo_timeout", "memo_takeover",
    "near_hit",        "near_miss",         "near_invalidation", "near_flush",   "near_eviction",
};

const char *rk_event_name(rk_event_type type)
{
    return (unsigned)type < RK_EVENT_TYPES ? names[type] : "unknown";
}

void rk_set_event_handler(rk_event_fn fn, void *ud)
{
    pthread_rwlock_wrlock(&lock);
    handler = fn;
    handler_ud = fn ? ud : NULL;
    atomic_store(&rk__events_on, fn != NULL);
    pthread_rwlock_unlock(&lock);
}

void rk__event_deliver(rk__stats *s, const rk__event *ev)
{
    if (in_handler)
        return;
    char node[80];
    rk_event pub = {
        .type = ev->type,
        .component = s && s->component ? s->component : "",
        .key = ev->key,
        .key_len = ev->key ? ev->key_len : 0,
        .node = ev->node ? rk__endpoint_name(ev->node, node, sizeof node) : NULL,
        .name = ev->name,
        .duration_us = ev->duration_us,
        .outcome = ev->outcome,
    };
    pthread_rwlock_rdlock(&lock);
    if (handler) {
        in_handler = true;
        handler(handler_ud, &pub);
        in_handler = false;
    }
    pthread_rwlock_unlock(&lock);
}

void rk_event_log(void *ud, const rk_event *ev)
{
    (void)ud;
    char line[RK__LOG_MAX], *p = line, *end = line + sizeof line;
    p += snprintf(p, (size_t)(end - p), "%s: %s", ev->component, rk_event_name(ev->type));
    if (ev->name && p < end)
        p += snprintf(p, (size_t)(end - p), " %s", ev->name);
    if (ev->key && p < end)
        p += snprintf(p, (size_t)(end - p), " key '%.*s'",
                      (int)(ev->key_len > 200 ? 200 : ev->key_len), ev->key);
    if (ev->node && p < end)
        p += snprintf(p, (size_t)(end - p), " node %s", ev->node);
    if (ev->duration_us && p < end)
        p += snprintf(p, (size_t)(end - p), " %llu us", (unsigned long long)ev->duration_us);
    if (ev->outcome != RK_OK && p < end)
        snprintf(p, (size_t)(end - p), " failed: %s", rk_strerror(ev->outcome));
    rk__log(RK_LOG_DEBUG, "%s", line);
}
