#include "nearcache.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"
#include "events.h"
#include "log.h"
#include "map.h"
#include "retry.h"

/* A silent listener connection is asked PING this often; no answer within the ping timeout
 * means it is dead (a RESP2 client hears nothing when its redirect target goes away). */
#define PING_EVERY_MS 1000u
/* How often a listener looks for tracked data connections the server closed (CLIENT KILL, the
 * server's idle `timeout`): Redis drops their tracking with them, silently. */
#define SCAN_EVERY_MS 100u
#define PING_TIMEOUT_MAX_MS 5000u
#define CHANNEL "__redis__:invalidate"

typedef struct entry {
    struct entry *prev, *next; /* LRU, most recent first; only filled entries are linked */
    uint64_t ticket;           /* != 0: pending, no value yet */
    uint64_t expires;          /* monotonic ms; UINT64_MAX: no expiry */
    char *value;
    size_t vlen, klen;
    char key[];
} entry;

struct listener;

/* A data connection, as its node's listener sees it (the connection's hook_data). */
typedef struct tracked {
    struct tracked *prev, *next;
    struct listener *l;
    int fd;
    bool tracking; /* CLIENT TRACKING is on: its closing loses invalidations */
    bool dead;     /* the server closed it: already flushed for */
} tracked;

typedef struct listener {
    struct listener *next;
    tracked *conns; /* guarded by nc->mu */
    rk__nearcache *nc;
    const rk__endpoint *node_ep; /* identity: the node's endpoint, as the hook sees it */
    rk__endpoint ep;             /* own copy, without the hook */
    void *tls_ctx;
    pthread_t thread;
    bool started;
    /* Guarded by nc->mu. */
    bool up;
    uint64_t id;    /* CLIENT ID while up */
    uint64_t epoch; /* bumped when it comes up and when it goes down */
} listener;

struct rk__nearcache {
    pthread_mutex_t mu;
    rk__map map; /* Redis key -> entry */
    entry *head, *tail;
    size_t count, bytes; /* filled entries */
    size_t max_entries, max_bytes;
    uint64_t next_ticket;
    listener *listeners;
    bool disabled; /* a forked child */
    int wake_fd;   /* written once, to stop every listener */
    atomic_bool stopping;
    atomic_bool warned; /* a server refused the near cache's commands: said once */
    atomic_uint_fast64_t entries_now, bytes_now;
    uint64_t connect_timeout_ms, ping_timeout_ms;
    size_t prefix_len; /* options.prefix: events name keys as the caller gave them */
    rk__stats *stats;
    atomic_uint undelivered_flushes; /* counted, for a listener to deliver (no lock held) */
};

/* Count an event (atomics: fine under the lock); delivery is the caller's, after unlocking. */
static void note(rk__nearcache *nc, rk_event_type type)
{
    rk__stats_event(nc->stats, type, 0, RK_OK);
}

static bool delivering(void) { return atomic_load_explicit(&rk__events_on, memory_order_relaxed); }

static void deliver(rk__nearcache *nc, rk_event_type type, const char *key, size_t klen,
                    const rk__endpoint *node)
{
    if (key && klen >= nc->prefix_len)
        key += nc->prefix_len, klen -= nc->prefix_len;
    rk__event_deliver(nc->stats,
                      &(rk__event){.type = type, .key = key, .key_len = klen, .node = node});
}

/* ---- the store (lock held) ---- */

static void unlink_lru(rk__nearcache *nc, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        nc->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        nc->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(rk__nearcache *nc, entry *e)
{
    e->prev = NULL;
    e->next = nc->head;
    if (nc->head)
        nc->head->prev = e;
    nc->head = e;
    if (!nc->tail)
        nc->tail = e;
}

static void publish_size(rk__nearcache *nc)
{
    atomic_store_explicit(&nc->entries_now, nc->count, memory_order_relaxed);
    atomic_store_explicit(&nc->bytes_now, nc->bytes, memory_order_relaxed);
}

static void entry_free(void *p)
{
    entry *e = p;
    if (e)
        rk__free(e->value);
    rk__free(e);
}

/* Take `e` out of the map and the LRU and free it. */
static void remove_entry(rk__nearcache *nc, entry *e)
{
    if (!e->ticket) {
        unlink_lru(nc, e);
        nc->count--;
        nc->bytes -= e->klen + e->vlen;
    }
    rk__map_remove(&nc->map, e->key, e->klen);
    entry_free(e);
}

static bool remove_key(rk__nearcache *nc, const char *key, size_t klen)
{
    entry *e = rk__map_get(&nc->map, key, klen);
    if (e)
        remove_entry(nc, e);
    return e != NULL;
}

static void flush_locked(rk__nearcache *nc, const char *why)
{
    if (nc->map.count)
        rk__log(RK_LOG_DEBUG, "near cache: %zu entries flushed (%s)", nc->count, why);
    rk__map_clear(&nc->map, entry_free);
    nc->head = nc->tail = NULL;
    nc->count = nc->bytes = 0;
    publish_size(nc);
    note(nc, RK_EVENT_NEAR_FLUSH);
    if (delivering())
        atomic_fetch_add(&nc->undelivered_flushes, 1);
}

static void flush(rk__nearcache *nc, const char *why)
{
    pthread_mutex_lock(&nc->mu);
    flush_locked(nc, why);
    pthread_mutex_unlock(&nc->mu);
}

/* Returns how many entries went. */
static unsigned evict(rk__nearcache *nc)
{
    unsigned n = 0;
    for (; nc->tail && (nc->count > nc->max_entries || nc->bytes > nc->max_bytes); n++) {
        remove_entry(nc, nc->tail);
        note(nc, RK_EVENT_NEAR_EVICTION);
    }
    return n;
}

int rk__nearcache_get(rk__nearcache *nc, const char *key, size_t klen, rk_buf *out)
{
    int rc = RK_ENOTFOUND;
    size_t vlen = 0;
    pthread_mutex_lock(&nc->mu);
    entry *e = nc->disabled ? NULL : rk__map_get(&nc->map, key, klen);
    if (e && !e->ticket && e->expires != UINT64_MAX && rk__now_ms() >= e->expires) {
        remove_entry(nc, e); /* the key has expired in Redis too */
        publish_size(nc);
        e = NULL;
    }
    if (e && !e->ticket) {
        vlen = e->vlen;
        char *copy = rk__malloc(e->vlen + 1);
        if (copy) {
            memcpy(copy, e->value, e->vlen);
            copy[e->vlen] = '\0';
            rk_buf_free(out);
            out->data = copy, out->len = e->vlen;
            if (nc->head != e) {
                unlink_lru(nc, e);
                push_front(nc, e);
            }
        }
        rc = copy ? RK_OK : RK_ENOMEM;
    }
    pthread_mutex_unlock(&nc->mu);
    if (rc == RK_ENOMEM)
        return rk__err(RK_ENOMEM, "near cache: cannot copy a value of %zu bytes", vlen);
    return rc;
}

/* ---- reads: pending marks and fills ---- */

void rk__nearcache_prepare(rk__nearcache *nc, rk__conn *c, rk__nearcache_read *rd)
{
    tracked *t = c->hook_data;
    listener *l = t ? t->l : NULL;
    *rd = (rk__nearcache_read){0};
    if (!l)
        return;
    pthread_mutex_lock(&nc->mu);
    if (l->up && !nc->disabled && !t->dead) {
        rd->listener = l;
        rd->epoch = l->epoch;
        rd->redirect = c->hook_tag == l->id ? 0 : l->id;
    }
    pthread_mutex_unlock(&nc->mu);
    rd->sent_ms = rk__now_ms();
}

int rk__nearcache_tracking_cmd(const rk__nearcache_read *rd, char digits[24], const char **argv,
                               size_t *argvlen)
{
    argv[0] = "CLIENT", argvlen[0] = 6;
    argv[1] = "TRACKING", argvlen[1] = 8;
    argv[2] = "on", argvlen[2] = 2;
    argv[3] = "REDIRECT", argvlen[3] = 8;
    argv[4] = digits;
    argvlen[4] = (size_t)snprintf(digits, 24, "%" PRIu64, rd->redirect);
    return 5;
}

bool rk__nearcache_tracked(rk__conn *c, const rk__nearcache_read *rd, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_STATUS) {
        tracked *t = c->hook_data;
        pthread_mutex_lock(&t->l->nc->mu);
        t->tracking = true;
        pthread_mutex_unlock(&t->l->nc->mu);
        c->hook_tag = rd->redirect;
        return true;
    }
    /* Redis < 6, an ACL without CLIENT, or a listener gone meanwhile: reads stay uncached. An
     * operator wonders why nothing hits: say it once. */
    tracked *t = c->hook_data;
    bool once = !atomic_exchange(&t->l->nc->warned, true);
    rk__log(once ? RK_LOG_WARN : RK_LOG_DEBUG,
            "near cache: %s refused CLIENT TRACKING (%.*s): its reads are not cached", c->tr.peer,
            r && r->str ? (int)r->len : 0, r && r->str ? r->str : "");
    return false;
}

uint64_t rk__nearcache_begin(rk__nearcache *nc, const rk__nearcache_read *rd, const char *key,
                             size_t klen)
{
    listener *l = rd->listener;
    uint64_t ticket = 0;
    if (!l)
        return 0;
    pthread_mutex_lock(&nc->mu);
    if (l->up && l->epoch == rd->epoch && !nc->disabled) {
        entry *e = rk__map_get(&nc->map, key, klen);
        if (e) /* an old value, or another reader's mark: ours replaces it */
            remove_entry(nc, e);
        if ((e = rk__calloc(1, sizeof *e + klen + 1))) {
            memcpy(e->key, key, klen);
            e->klen = klen;
            e->ticket = ++nc->next_ticket;
            if (rk__map_put(&nc->map, key, klen, e, NULL) == RK_OK)
                ticket = e->ticket;
            else
                rk__free(e);
        }
        publish_size(nc);
    }
    pthread_mutex_unlock(&nc->mu);
    return ticket;
}

static uint64_t expiry(const rk__nearcache_read *rd, long long pttl_ms)
{
    return pttl_ms < 0 ? UINT64_MAX : rd->sent_ms + (uint64_t)pttl_ms;
}

void rk__nearcache_fill(rk__nearcache *nc, const rk__nearcache_read *rd, const char *key,
                        size_t klen, uint64_t ticket, const char *value, size_t vlen,
                        long long pttl_ms)
{
    if (!ticket)
        return;
    /* Copied before the lock; an entry bigger than the whole store is not worth keeping. */
    bool keep = value && pttl_ms >= -1 && klen + vlen <= nc->max_bytes;
    char *copy = keep ? rk__malloc(vlen ? vlen : 1) : NULL;
    unsigned evicted = 0;
    if (copy)
        memcpy(copy, value, vlen);
    pthread_mutex_lock(&nc->mu);
    entry *e = rk__map_get(&nc->map, key, klen);
    if (e && e->ticket == ticket) {
        if (copy) {
            e->ticket = 0;
            e->value = copy, e->vlen = vlen;
            e->expires = expiry(rd, pttl_ms);
            copy = NULL;
            push_front(nc, e);
            nc->count++;
            nc->bytes += klen + vlen;
            evicted = evict(nc);
        } else {
            remove_entry(nc, e);
        }
        publish_size(nc);
    }
    pthread_mutex_unlock(&nc->mu);
    rk__free(copy); /* invalidated (or flushed) while the read was in flight */
    while (evicted-- && delivering())
        deliver(nc, RK_EVENT_NEAR_EVICTION, NULL, 0, NULL);
}

void rk__nearcache_drop(rk__nearcache *nc, const char *key, size_t klen)
{
    pthread_mutex_lock(&nc->mu);
    if (remove_key(nc, key, klen))
        publish_size(nc);
    pthread_mutex_unlock(&nc->mu);
}

void rk__nearcache_size(rk__nearcache *nc, uint64_t *entries, uint64_t *bytes)
{
    *entries = atomic_load_explicit(&nc->entries_now, memory_order_relaxed);
    *bytes = atomic_load_explicit(&nc->bytes_now, memory_order_relaxed);
}

/* ---- listeners: one thread per node ---- */

static void set_up(listener *l, uint64_t id)
{
    rk__nearcache *nc = l->nc;
    pthread_mutex_lock(&nc->mu);
    l->up = true;
    l->id = id;
    l->epoch++;
    pthread_mutex_unlock(&nc->mu);
}

static void set_down(listener *l, const char *why)
{
    rk__nearcache *nc = l->nc;
    pthread_mutex_lock(&nc->mu);
    l->up = false;
    l->id = 0;
    l->epoch++;
    flush_locked(nc, why);
    pthread_mutex_unlock(&nc->mu);
}

/* Flushes counted where a handler could not be called (a pool's lock held): delivered here. */
static void deliver_flushes(listener *l)
{
    for (unsigned n = atomic_exchange(&l->nc->undelivered_flushes, 0); n; n--)
        deliver(l->nc, RK_EVENT_NEAR_FLUSH, NULL, 0, &l->ep);
}

/* Drop the keys of an invalidation, 64 at a time, each one held delivered after unlocking. */
static void invalidate(listener *l, const redisReply *keys)
{
    rk__nearcache *nc = l->nc;
    for (size_t from = 0; from < keys->elements; from += 64) {
        uint64_t held = 0;
        size_t n = keys->elements - from < 64 ? keys->elements - from : 64;
        pthread_mutex_lock(&nc->mu);
        for (size_t i = 0; i < n; i++) {
            const redisReply *k = keys->element[from + i];
            if (k->type == REDIS_REPLY_STRING && remove_key(nc, k->str, k->len)) {
                note(nc, RK_EVENT_NEAR_INVALIDATION);
                held |= (uint64_t)1 << i;
            }
        }
        publish_size(nc);
        pthread_mutex_unlock(&nc->mu);
        for (size_t i = 0; held && i < n && delivering(); i++)
            if (held & ((uint64_t)1 << i))
                deliver(nc, RK_EVENT_NEAR_INVALIDATION, keys->element[from + i]->str,
                        keys->element[from + i]->len, &l->ep);
    }
}

/* A message on the channel: the keys to drop, or nil for all of them (FLUSHALL, FLUSHDB). */
static void on_message(listener *l, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0)
        return; /* a subscribe confirmation, a pong */
    const redisReply *keys = r->element[2];
    if (keys->type == REDIS_REPLY_NIL)
        flush(l->nc, "invalidation of every key");
    else if (keys->type == REDIS_REPLY_ARRAY)
        invalidate(l, keys);
}

/* Tracked connections the server has closed: what they read is no longer invalidated. */
static void scan(listener *l)
{
    rk__nearcache *nc = l->nc;
    pthread_mutex_lock(&nc->mu);
    for (tracked *t = l->conns; t; t = t->next) {
        struct pollfd p = {t->fd, POLLRDHUP, 0};
        if (!t->tracking || t->dead || poll(&p, 1, 0) != 1)
            continue;
        t->dead = true;
        flush_locked(nc, "the server closed a tracked data connection");
    }
    pthread_mutex_unlock(&nc->mu);
}

/* Connect, learn the connection's id and subscribe to the invalidation channel. */
static int subscribe(listener *l, rk__conn **out, uint64_t *id)
{
    const char *idv[2] = {"CLIENT", "ID"}, *subv[2] = {"SUBSCRIBE", CHANNEL};
    rk__cmd cmds[2] = {{2, idv, (size_t[]){6, 2}}, {2, subv, (size_t[]){9, sizeof CHANNEL - 1}}};
    redisReply *r[2];
    int rc = rk__conn_open(out, &l->ep, l->tls_ctx, UINT64_MAX);
    if (rc == RK_OK &&
        (rc = rk__conn_exec(*out, cmds, 2, r, rk__deadline(l->nc->ping_timeout_ms))) == RK_OK) {
        const redisReply *bad = r[0]->type != REDIS_REPLY_INTEGER ? r[0] : r[1];
        if (r[0]->type != REDIS_REPLY_INTEGER || r[1]->type != REDIS_REPLY_ARRAY)
            rc = rk__err_reply(bad->type == REDIS_REPLY_ERROR ? bad->str : "an unexpected reply",
                               "near cache: %s: cannot subscribe to " CHANNEL, (*out)->tr.peer);
        *id = rc == RK_OK ? (uint64_t)r[0]->integer : 0;
        rk__reply_free(r[0]);
        rk__reply_free(r[1]);
    }
    if (rc != RK_OK) {
        rk__conn_free(*out);
        *out = NULL;
    }
    return rc;
}

static void pause_ms(rk__nearcache *nc, uint64_t ms)
{
    struct pollfd p = {nc->wake_fd, POLLIN, 0};
    poll(&p, 1, (int)ms);
}

/* Read invalidations until the connection fails, stops answering PING, or the cache closes. */
static void serve(listener *l, rk__conn *c)
{
    rk__nearcache *nc = l->nc;
    const char *ping[1] = {"PING"};
    uint64_t last = rk__now_ms(), ping_sent = 0, scan_at = 0;
    while (!atomic_load(&nc->stopping)) {
        redisReply *r;
        if (rk__conn_buffered(c, &r) != RK_OK)
            return;
        if (r) {
            on_message(l, r);
            rk__reply_free(r);
            last = rk__now_ms(), ping_sent = 0;
            continue;
        }
        deliver_flushes(l);
        uint64_t now = rk__now_ms();
        if (now >= scan_at) {
            scan(l);
            scan_at = now + SCAN_EVERY_MS;
        }
        if (ping_sent && now - ping_sent >= nc->ping_timeout_ms) {
            rk__log(RK_LOG_WARN, "near cache: %s: no answer to PING on the invalidation connection",
                    c->tr.peer);
            return;
        }
        if (!ping_sent && now - last >= PING_EVERY_MS) {
            if (rk__conn_send(c, &(rk__cmd){1, ping, (size_t[]){4}}, 1, rk__deadline(1000)))
                return;
            ping_sent = now;
        }
        bool readable, woken;
        uint64_t until = ping_sent ? ping_sent + nc->ping_timeout_ms : last + PING_EVERY_MS;
        if (scan_at < until)
            until = scan_at;
        if (rk__conn_wait(c, nc->wake_fd, until, &readable, &woken) != RK_OK || woken)
            return;
        if (readable && rk__conn_fill(c, rk__deadline(nc->ping_timeout_ms)) != RK_OK)
            return;
    }
}

static void *listen_main(void *arg)
{
    listener *l = arg;
    rk__nearcache *nc = l->nc;
    char peer[80];
    unsigned failures = 0;
    rk__endpoint_name(&l->ep, peer, sizeof peer);
    while (!atomic_load(&nc->stopping)) {
        rk__conn *c;
        uint64_t id;
        int rc = subscribe(l, &c, &id);
        if (rc != RK_OK) {
            /* A refusal (an ACL without SUBSCRIBE or CLIENT) is a configuration problem; a
             * server that is down is not news. */
            bool once = rc == RK_EREPLY && !atomic_exchange(&nc->warned, true);
            if (once || failures++ == 0)
                rk__log(once ? RK_LOG_WARN : RK_LOG_DEBUG, "%s: reads from %s are not cached",
                        rk_last_error()->message, peer);
            pause_ms(nc, rk__backoff_ms(failures < 3 ? 3 : failures));
            continue;
        }
        failures = 0;
        set_up(l, id);
        serve(l, c);
        set_down(l, "the invalidation connection was lost");
        rk__conn_free(c);
        deliver_flushes(l);
    }
    return NULL;
}

static listener *listener_new(rk__nearcache *nc, const rk__endpoint *ep, void *tls_ctx)
{
    listener *l = rk__calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (rk__endpoint_copy(&l->ep, ep) != RK_OK) {
        rk__free(l);
        return NULL;
    }
    l->ep.hook = NULL;
    l->ep.readonly = false; /* a replica's listener subscribes; READONLY is for reads */
    l->nc = nc;
    l->node_ep = ep;
    l->tls_ctx = tls_ctx;
    l->started = pthread_create(&l->thread, NULL, listen_main, l) == 0;
    if (!l->started)
        rk__log(RK_LOG_WARN,
                "near cache: cannot start an invalidation thread: reads on %s "
                "are not cached",
                l->ep.host ? l->ep.host : "a node");
    return l;
}

/* The hook: tie the connection to its node's listener, started with the node's first
 * connection. Tracking itself is enabled by the first cacheable read (prepare). */
static int hook_open(void *arg, rk__conn *c, const rk__endpoint *ep, void *tls_ctx,
                     uint64_t deadline)
{
    (void)deadline;
    rk__nearcache *nc = arg;
    listener *l;
    tracked *t = rk__calloc(1, sizeof *t);
    c->hook_data = NULL;
    c->hook_tag = 0;
    if (!t)
        return RK_OK; /* out of memory: reads on this connection are not cached */
    pthread_mutex_lock(&nc->mu);
    for (l = nc->listeners; l && l->node_ep != ep; l = l->next)
        ;
    if (!l && !nc->disabled && !atomic_load(&nc->stopping) && (l = listener_new(nc, ep, tls_ctx))) {
        l->next = nc->listeners;
        nc->listeners = l;
    }
    if (l) {
        t->l = l;
        t->fd = c->tr.fd;
        t->next = l->conns;
        if (l->conns)
            l->conns->prev = t;
        l->conns = t;
        c->hook_data = t;
    }
    pthread_mutex_unlock(&nc->mu);
    if (!l)
        rk__free(t);
    return RK_OK;
}

/* Redis forgets what a closed connection read: its keys would never be invalidated. */
static void hook_close(void *arg, rk__conn *c)
{
    rk__nearcache *nc = arg;
    tracked *t = c->hook_data;
    if (!t)
        return;
    pthread_mutex_lock(&nc->mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        t->l->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (t->tracking && !t->dead)
        flush_locked(nc, "a tracked data connection closed");
    pthread_mutex_unlock(&nc->mu);
    rk__free(t);
    c->hook_data = NULL;
}

void rk__nearcache_hook(rk__nearcache *nc, rk__conn_hook *hook)
{
    *hook = (rk__conn_hook){hook_open, hook_close, nc};
}

/* ---- lifecycle ---- */

int rk__nearcache_new(rk__nearcache **out, const rk__options *o, rk__stats *stats)
{
    rk__nearcache *nc = rk__calloc(1, sizeof *nc);
    *out = NULL;
    if (!nc)
        return rk__err(RK_ENOMEM, "cannot allocate a near cache");
    if ((nc->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rk__free(nc);
        return rk__err_cause(RK_ERROR, strerror(errno), "cannot create a near cache");
    }
    pthread_mutex_init(&nc->mu, NULL);
    nc->max_entries = (size_t)o->near_cache_size;
    nc->max_bytes = (size_t)o->near_cache_bytes;
    nc->connect_timeout_ms = o->connect_timeout_ms;
    nc->ping_timeout_ms = o->timeout_ms < PING_TIMEOUT_MAX_MS ? o->timeout_ms : PING_TIMEOUT_MAX_MS;
    nc->stats = stats;
    nc->prefix_len = o->prefix_len;
    atomic_init(&nc->stopping, false);
    atomic_init(&nc->warned, false);
    atomic_init(&nc->undelivered_flushes, 0);
    *out = nc;
    return RK_OK;
}

void rk__nearcache_free(void *arg)
{
    rk__nearcache *nc = arg;
    if (!nc)
        return;
    atomic_store(&nc->stopping, true);
    uint64_t one = 1;
    if (write(nc->wake_fd, &one, sizeof one) < 0) { /* cannot fail on a fresh eventfd */
    }
    for (listener *l = nc->listeners, *next; l; l = next) {
        next = l->next;
        if (l->started)
            pthread_join(l->thread, NULL);
        rk__endpoint_clear(&l->ep);
        rk__free(l);
    }
    rk__map_clear(&nc->map, entry_free);
    close(nc->wake_fd);
    pthread_mutex_destroy(&nc->mu);
    rk__free(nc);
}

void rk__nearcache_after_fork(void *arg)
{
    rk__nearcache *nc = arg;
    pthread_mutex_init(&nc->mu, NULL); /* a parent's thread may have held it */
    nc->disabled = true;
    for (listener *l = nc->listeners; l; l = l->next)
        l->started = l->up = false;  /* their threads are the parent's */
    nc->map = (rk__map)RK__MAP_INIT; /* it may be half-updated: leave it behind */
    nc->head = nc->tail = NULL;
    nc->count = nc->bytes = 0;
    publish_size(nc);
}
