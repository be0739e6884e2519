#include "subscriber.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "conn.h"
#include "error_int.h"
#include "map.h"
#include "retry.h"

#define LINGER_MS 1000u    /* keep an unused channel subscribed this long */
#define PING_IDLE_MS 5000u /* PING after this long without traffic */
#define MAX_POLL_MS 1000u
#define BATCH 512      /* channels per SUBSCRIBE / UNSUBSCRIBE */
#define SHARD_BATCH 32 /* SSUBSCRIBE / SUNSUBSCRIBE per write; small, as waiters send too */
/* A shard channel the server refused or dropped (its slot lives elsewhere) is subscribed again
 * no sooner than this, doubled per refusal up to 16 times as long: a node that keeps answering
 * MOVED gets one command per channel now and then, while the waiters poll. */
#define RESUBSCRIBE_MS (LINGER_MS / 2)
#define MAX_REFUSALS 4u
/* The thread takes the reader role back after it has been free this long: waiters of a busy
 * key come back sooner and find it free without waking the thread, and a connection nobody
 * reads goes unwatched (a server restart unnoticed) at most this long. */
#define TAKEOVER_MS 20u

typedef enum { CH_NEW, CH_SUBSCRIBING, CH_ACTIVE, CH_UNSUBSCRIBING } ch_state;

typedef struct rk__channel {
    ch_state state;
    size_t refs;
    uint64_t idle_since;
    rk__waiter *waiters;
    uint64_t id;       /* names it in `pending`, where a pointer could outlive it */
    uint64_t retry_at; /* sharded: refused, not subscribed again before this */
    unsigned refusals; /* sharded: refusals since it was last confirmed */
} rk__channel;

/* A sharded command awaiting its reply. id 0: a PING. */
typedef struct pending {
    uint64_t id;
    bool subscribe;
} pending;

struct rk__subscriber {
    const char *kind;
    pthread_mutex_t mu;
    rk__map channels; /* name -> rk__channel; only the thread removes entries */
    const rk__endpoint *ep;
    void *tls_ctx;
    uint64_t timeout_ms;
    bool open, running, stopping;
    bool dirty; /* some channel needs SUBSCRIBE */
    pthread_t thread;
    pthread_cond_t thread_cv; /* the reader role came back to the thread, or stop */
    int wake_fd;
    /* The reader role: whoever holds it owns `conn` and does the I/O, without the lock while it
     * blocks. The thread holds it while nobody waits; a waiting thread takes it, so that the
     * message it waits for wakes it directly instead of waking the thread, which would then
     * have to wake it (two scheduler hops per message on a busy machine). */
    const void *reader;     /* NULL, THREAD_READS, or the rk__waiter reading */
    rk__waiter *want_first; /* waiters queued for the role, FIFO */
    rk__waiter *want_last;
    rk__conn *conn;         /* used by the reader only */
    uint64_t role_freed_at; /* when a waiter last gave the role up with nobody to take it */
    unsigned failures;      /* consecutive failed connects */
    unsigned moves;         /* rk__subscriber_reconnect calls: a connect begun before is stale */
    uint64_t last_traffic, ping_sent, next_sweep;
    const rk__endpoint *(*pick)(void *arg, unsigned failures); /* NULL: always `ep` */
    void *pick_arg;
    uint64_t next_id;
    /* Sharded mode. An error reply does not name its channel, so the commands sent are queued
     * (FIFO, reused from index 0 once empty) to know which channel a MOVED is about. */
    bool sharded;
    uint64_t resubscribe_at; /* earliest retry_at of a refused channel; 0: none */
    pending *pend;
    size_t pend_head, pend_len, pend_cap;
};

static const char thread_reads[1];
#define THREAD_READS ((const void *)thread_reads)

static pthread_condattr_t mono_attr;
static pthread_once_t attr_once = PTHREAD_ONCE_INIT;

static void init_attr(void)
{
    pthread_condattr_init(&mono_attr);
    pthread_condattr_setclock(&mono_attr, CLOCK_MONOTONIC);
}

static void wake_thread(rk__subscriber *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->wake_fd, &one, sizeof one);
    (void)n; /* a full counter already means "wake up" */
}

static int new_subscriber(rk__subscriber **out, const char *kind, bool sharded)
{
    pthread_once(&attr_once, init_attr);
    rk__subscriber *s = rk__calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return rk__err(RK_ENOMEM, "cannot allocate a %s subscriber", kind);
    s->kind = kind;
    s->sharded = sharded;
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0 || pthread_mutex_init(&s->mu, NULL) != 0) {
        if (s->wake_fd >= 0)
            close(s->wake_fd);
        rk__free(s);
        return rk__err_cause(RK_ERROR, strerror(errno), "cannot create a %s subscriber", kind);
    }
    if (pthread_cond_init(&s->thread_cv, &mono_attr) != 0) {
        pthread_mutex_destroy(&s->mu);
        close(s->wake_fd);
        rk__free(s);
        return rk__err_cause(RK_ERROR, strerror(errno), "cannot create a %s subscriber", kind);
    }
    *out = s;
    return RK_OK;
}

int rk__subscriber_new(rk__subscriber **out, const char *kind)
{
    return new_subscriber(out, kind, false);
}

int rk__subscriber_new_sharded(rk__subscriber **out, const char *kind)
{
    return new_subscriber(out, kind, true);
}

void rk__subscriber_set_picker(rk__subscriber *s,
                               const rk__endpoint *(*pick)(void *arg, unsigned failures), void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->pick = pick;
    s->pick_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

static void free_channel(void *c) { rk__free(c); }

void rk__subscriber_free(rk__subscriber *s)
{
    if (!s)
        return;
    rk__subscriber_close(s);
    rk__map_clear(&s->channels, free_channel);
    pthread_cond_destroy(&s->thread_cv);
    pthread_mutex_destroy(&s->mu);
    close(s->wake_fd);
    rk__free(s->pend);
    rk__free(s);
}

void rk__subscriber_open(rk__subscriber *s, const rk__endpoint *ep, void *tls_ctx,
                         uint64_t timeout_ms)
{
    pthread_mutex_lock(&s->mu);
    s->ep = ep;
    s->tls_ctx = tls_ctx;
    s->timeout_ms = timeout_ms;
    s->open = true;
    pthread_mutex_unlock(&s->mu);
}

static void wake_waiters(rk__channel *ch)
{
    for (rk__waiter *w = ch->waiters; w; w = w->next)
        pthread_cond_signal(&w->cv);
}

void rk__subscriber_close(rk__subscriber *s)
{
    pthread_mutex_lock(&s->mu);
    bool running = s->running;
    s->open = false;
    s->stopping = true;
    wake_thread(s);
    pthread_cond_signal(&s->thread_cv);
    pthread_mutex_unlock(&s->mu);
    if (running)
        pthread_join(s->thread, NULL);
    pthread_mutex_lock(&s->mu);
    s->running = s->stopping = false;
    for (rk__map_entry *e = rk__map_next(&s->channels, NULL); e; e = rk__map_next(&s->channels, e))
        wake_waiters(e->value);
    pthread_mutex_unlock(&s->mu);
}

void rk__subscriber_reconnect(rk__subscriber *s)
{
    pthread_mutex_lock(&s->mu);
    s->moves++;
    if (s->conn) /* its reader fails now, and the thread connects again */
        rk__conn_shutdown(s->conn);
    pthread_mutex_unlock(&s->mu);
}

void rk__subscriber_after_fork(rk__subscriber *s)
{
    /* The dispatch thread and every waiter were the parent's: none exists here, and the lock
     * may have been held by one of them. Channels go (their waiters live on the parent's
     * stacks); the connection is the parent's session, the wake fd is shared with it. */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->thread_cv, &mono_attr);
    for (rk__map_entry *e = rk__map_next(&s->channels, NULL); e; e = rk__map_next(&s->channels, e))
        ((rk__channel *)e->value)->waiters = NULL;
    rk__map_clear(&s->channels, free_channel);
    if (s->conn && !s->reader) /* nobody was reading it: whole */
        rk__conn_abandon(s->conn);
    else if (s->conn) /* perhaps in the middle of a read */
        rk__conn_drop_in_use(s->conn);
    s->conn = NULL;
    close(s->wake_fd);
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->running = s->stopping = s->dirty = false;
    s->reader = NULL;
    s->want_first = s->want_last = NULL;
    s->failures = 0;
    s->pend_head = s->pend_len = 0;
    s->resubscribe_at = 0;
}

/* ---- the dispatch thread ---- */

static void drop_conn(rk__subscriber *s)
{
    rk__conn_free(s->conn);
    s->conn = NULL;
    s->pend_head = s->pend_len = 0; /* their replies will never come */
    for (rk__map_entry *e = rk__map_next(&s->channels, NULL); e; e = rk__map_next(&s->channels, e))
        ((rk__channel *)e->value)->state = CH_NEW;
}

/* Forget channels nobody waits on; everything else must be subscribed again. */
static void reset_channels(rk__subscriber *s)
{
    rk__map_entry *e = rk__map_next(&s->channels, NULL), *next;
    for (; e; e = next) {
        next = rk__map_next(&s->channels, e);
        rk__channel *ch = e->value;
        if (ch->refs == 0) {
            rk__free(rk__map_remove(&s->channels, e->key, e->klen));
        } else {
            ch->state = CH_NEW;
            ch->retry_at = 0; /* a refusal was about the old connection, maybe another node */
            ch->refusals = 0;
            s->dirty = true;
        }
    }
    s->resubscribe_at = 0;
}

static void deliver(rk__subscriber *s, const redisReply *name, const redisReply *payload)
{
    rk__channel *ch = rk__map_get(&s->channels, name->str, name->len);
    if (!ch)
        return;
    for (rk__waiter *w = ch->waiters; w; w = w->next) {
        if (w->match && (payload->type != REDIS_REPLY_STRING || payload->len < w->match_len ||
                         memcmp(payload->str, w->match, w->match_len)))
            continue; /* addressed to another waiter of the channel */
        if (w->want_payload && payload->type == REDIS_REPLY_STRING &&
            rk_buf_set(&w->payload, payload->str, payload->len) != RK_OK)
            w->recheck = true; /* no memory for the copy: let the waiter read Redis */
        else
            w->message = true;
        pthread_cond_signal(&w->cv);
    }
}

static void confirmed(rk__subscriber *s, const char *name, size_t len, bool subscribed)
{
    rk__channel *ch = rk__map_get(&s->channels, name, len);
    if (!ch)
        return;
    if (subscribed && ch->state == CH_SUBSCRIBING) {
        ch->state = CH_ACTIVE;
        ch->refusals = 0;
        for (rk__waiter *w = ch->waiters; w; w = w->next)
            w->recheck = true;
        wake_waiters(ch);
    } else if (!subscribed && ch->state == CH_UNSUBSCRIBING) {
        if (ch->refs == 0) {
            rk__free(rk__map_remove(&s->channels, name, len));
        } else {
            ch->state = CH_NEW; /* a waiter came back meanwhile */
            s->dirty = true;
        }
    }
}

static bool is(const redisReply *r, const char *word)
{
    return r->type == REDIS_REPLY_STRING && r->len == strlen(word) && !memcmp(r->str, word, r->len);
}

/* ---- sharded mode: the commands awaiting replies ---- */

static bool pend_reserve(rk__subscriber *s, size_t k)
{
    if (s->pend_head + s->pend_len + k <= s->pend_cap)
        return true;
    if (s->pend_len) /* (s->pend may still be NULL) */
        memmove(s->pend, s->pend + s->pend_head, s->pend_len * sizeof *s->pend);
    s->pend_head = 0;
    if (s->pend_len + k <= s->pend_cap)
        return true;
    size_t cap = 2 * (s->pend_len + k);
    pending *p = rk__realloc(s->pend, cap * sizeof *p);
    if (!p)
        return false;
    s->pend = p;
    s->pend_cap = cap;
    return true;
}

/* After pend_reserve. */
static void pend_push(rk__subscriber *s, uint64_t id, bool subscribe)
{
    s->pend[s->pend_head + s->pend_len++] = (pending){id, subscribe};
}

static const pending *pend_first(const rk__subscriber *s)
{
    return s->pend_len ? &s->pend[s->pend_head] : NULL;
}

static void pend_pop(rk__subscriber *s)
{
    if (s->pend_len && --s->pend_len)
        s->pend_head++;
    else
        s->pend_head = 0;
}

/* A linear search, for the rare error reply. */
static rk__map_entry *entry_by_id(const rk__subscriber *s, uint64_t id)
{
    for (rk__map_entry *e = rk__map_next(&s->channels, NULL); e; e = rk__map_next(&s->channels, e))
        if (((rk__channel *)e->value)->id == id)
            return e;
    return NULL;
}

/* ---- sharded mode: replies ---- */

/* Not subscribed although waiters may be there: the server refused it (MOVED: its slot lives on
 * another node) or dropped it (its slot moved away). Messages are lost meanwhile, so the
 * waiters re-check and poll; the channel is tried again later, not at once, since this node
 * will most likely refuse it again. */
static void lost(rk__subscriber *s, rk__channel *ch, const char *name, size_t len)
{
    if (ch->refs == 0) {
        rk__free(rk__map_remove(&s->channels, name, len));
        return;
    }
    unsigned shift = ch->refusals < MAX_REFUSALS ? ch->refusals++ : MAX_REFUSALS;
    ch->state = CH_NEW;
    ch->retry_at = rk__now_ms() + ((uint64_t)RESUBSCRIBE_MS << shift);
    if (!s->resubscribe_at || ch->retry_at < s->resubscribe_at)
        s->resubscribe_at = ch->retry_at;
    for (rk__waiter *w = ch->waiters; w; w = w->next)
        w->recheck = true;
    wake_waiters(ch);
}

/* An error reply (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, NOPERM...) answers the oldest command
 * awaiting a reply. */
static void refused(rk__subscriber *s)
{
    const pending *p = pend_first(s);
    rk__map_entry *e = p && p->id ? entry_by_id(s, p->id) : NULL;
    bool subscribe = p && p->subscribe;
    pend_pop(s);
    if (!e)
        return;
    rk__channel *ch = e->value;
    if (subscribe && ch->state == CH_SUBSCRIBING)
        lost(s, ch, e->key, e->klen);
    else if (!subscribe && ch->state == CH_UNSUBSCRIBING)
        confirmed(s, e->key, e->klen, false); /* this node does not hold it for us either way */
}

/* The reply to our SUNSUBSCRIBE, or the server dropping the channel on its own. */
static void shard_unsubscribed(rk__subscriber *s, const redisReply *name)
{
    rk__channel *ch = rk__map_get(&s->channels, name->str, name->len);
    const pending *p = pend_first(s);
    if (ch && p && !p->subscribe && p->id == ch->id)
        pend_pop(s);
    if (!ch || ch->state == CH_NEW)
        return;
    if (ch->state == CH_UNSUBSCRIBING)
        confirmed(s, name->str, name->len, false);
    else
        lost(s, ch, name->str, name->len);
}

/* smessage and sunsubscribe may come unasked; anything else answers the oldest command. */
static void handle_sharded(rk__subscriber *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        refused(s);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        pend_pop(s); /* +PONG, to a PING outside subscribe mode */
        return;
    }
    const redisReply *kind = r->element[0], *name = r->element[1];
    if (is(kind, "smessage") && r->elements == 3 && name->type == REDIS_REPLY_STRING) {
        deliver(s, name, r->element[2]);
    } else if (is(kind, "ssubscribe")) {
        pend_pop(s);
        if (name->type == REDIS_REPLY_STRING)
            confirmed(s, name->str, name->len, true);
    } else if (is(kind, "sunsubscribe") && name->type == REDIS_REPLY_STRING) {
        shard_unsubscribed(s, name);
    } else if (is(kind, "pong")) {
        pend_pop(s);
    }
}

static void handle(rk__subscriber *s, const redisReply *r)
{
    if (s->sharded) {
        handle_sharded(s, r);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return; /* +PONG outside subscribe mode, or an error reply (e.g. NOPERM) */
    const redisReply *kind = r->element[0], *name = r->element[1];
    if (is(kind, "message") && r->elements == 3 && name->type == REDIS_REPLY_STRING)
        deliver(s, name, r->element[2]);
    else if ((is(kind, "subscribe") || is(kind, "unsubscribe")) && name->type == REDIS_REPLY_STRING)
        confirmed(s, name->str, name->len, is(kind, "subscribe"));
}

/* Whether `ch`, refused lately, must wait before it is subscribed again (and when). */
static bool deferred(rk__subscriber *s, const rk__channel *ch, uint64_t now)
{
    if (now >= ch->retry_at)
        return false;
    if (!s->resubscribe_at || ch->retry_at < s->resubscribe_at)
        s->resubscribe_at = ch->retry_at;
    return true;
}

/* Gather channel names in `want` state (switching them to `next`), up to `cap`. */
static size_t collect(rk__subscriber *s, const char **argv, size_t *len, size_t cap, ch_state want,
                      ch_state next, uint64_t now)
{
    size_t n = 1;
    rk__map_entry *e = rk__map_next(&s->channels, NULL), *following;
    for (; e && n <= cap; e = following) {
        following = rk__map_next(&s->channels, e);
        rk__channel *ch = e->value;
        bool expired = ch->refs == 0 && now - ch->idle_since >= LINGER_MS;
        if (want == CH_ACTIVE && ch->refs == 0 && ch->state == CH_NEW && expired) {
            rk__free(rk__map_remove(&s->channels, e->key, e->klen)); /* never subscribed */
            continue;
        }
        if (ch->state != want || (want == CH_ACTIVE && !expired) ||
            (want == CH_NEW && (ch->refs == 0 || deferred(s, ch, now))))
            continue;
        ch->state = next;
        argv[n] = e->key;
        len[n++] = e->klen;
    }
    return n - 1;
}

/* SUBSCRIBE (or UNSUBSCRIBE) of every channel in `want` state, BATCH channels a command. */
static int send_batches(rk__subscriber *s, ch_state want, ch_state next, uint64_t now,
                        uint64_t deadline)
{
    const char *argv[BATCH + 1];
    size_t len[BATCH + 1], n;
    int rc = RK_OK;
    argv[0] = want == CH_NEW ? "SUBSCRIBE" : "UNSUBSCRIBE";
    len[0] = strlen(argv[0]);
    while (rc == RK_OK && (n = collect(s, argv, len, BATCH, want, next, now)) > 0)
        rc = rk__conn_send(s->conn, &(rk__cmd){(int)n + 1, argv, len}, 1, deadline);
    return rc;
}

/* Sharded: one SSUBSCRIBE (or SUNSUBSCRIBE) per channel, pipelined, since in a cluster one
 * command may only name channels of one slot (CROSSSLOT) and the subscriber knows no slots. */
static int send_each(rk__subscriber *s, ch_state want, ch_state next, uint64_t now,
                     uint64_t deadline)
{
    const char *names[SHARD_BATCH + 1], *argv[2 * SHARD_BATCH];
    size_t lens[SHARD_BATCH + 1], len[2 * SHARD_BATCH], n;
    rk__cmd cmds[SHARD_BATCH];
    const char *verb = want == CH_NEW ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
    int rc = RK_OK;
    while (rc == RK_OK) {
        if (!pend_reserve(s, SHARD_BATCH)) {
            s->dirty |= want == CH_NEW; /* no memory to track replies: next turn */
            break;
        }
        if ((n = collect(s, names, lens, SHARD_BATCH, want, next, now)) == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            argv[2 * i] = verb, len[2 * i] = strlen(verb);
            argv[2 * i + 1] = names[i + 1], len[2 * i + 1] = lens[i + 1];
            cmds[i] = (rk__cmd){2, argv + 2 * i, len + 2 * i};
            rk__channel *ch = rk__map_get(&s->channels, names[i + 1], lens[i + 1]);
            pend_push(s, ch->id, want == CH_NEW);
        }
        rc = rk__conn_send(s->conn, cmds, n, deadline);
    }
    return rc;
}

static int send_set(rk__subscriber *s, ch_state want, ch_state next, uint64_t now,
                    uint64_t deadline)
{
    return s->sharded ? send_each(s, want, next, now, deadline)
                      : send_batches(s, want, next, now, deadline);
}

static int send_ping(rk__subscriber *s, uint64_t now, uint64_t deadline)
{
    static const char *const argv[1] = {"PING"};
    static const size_t len[1] = {4};
    if (s->sharded) {
        if (!pend_reserve(s, 1))
            return RK_OK; /* no memory to track its reply: next turn */
        pend_push(s, 0, false);
    }
    s->ping_sent = now;
    return rk__conn_send(s->conn, &(rk__cmd){1, argv, len}, 1, deadline);
}

static int send_changes(rk__subscriber *s)
{
    uint64_t now = rk__now_ms(), deadline = rk__deadline(s->timeout_ms);
    int rc = RK_OK;
    if (s->resubscribe_at && now >= s->resubscribe_at) {
        s->resubscribe_at = 0; /* collect sets it again for channels still refused */
        s->dirty = true;
    }
    if (s->dirty) {
        s->dirty = false;
        rc = send_set(s, CH_NEW, CH_SUBSCRIBING, now, deadline);
    }
    if (rc == RK_OK && now >= s->next_sweep) {
        s->next_sweep = now + LINGER_MS / 2;
        rc = send_set(s, CH_ACTIVE, CH_UNSUBSCRIBING, now, deadline);
    }
    if (rc == RK_OK && !s->ping_sent && now - s->last_traffic >= PING_IDLE_MS)
        rc = send_ping(s, now, deadline);
    return rc;
}

/* Dispatch every complete reply buffered in the parser. Called with the lock held. */
static int dispatch(rk__subscriber *s)
{
    int rc = RK_OK;
    for (redisReply *r; (rc = rk__conn_buffered(s->conn, &r)) == RK_OK && r;) {
        s->last_traffic = rk__now_ms();
        s->ping_sent = 0;
        handle(s, r);
        rk__reply_free(r);
    }
    return rc;
}

static void connect_now(rk__subscriber *s, unsigned *failures)
{
    rk__conn *c = NULL;
    const rk__endpoint *ep = s->ep;
    const rk__endpoint *(*pick)(void *, unsigned) = s->pick;
    void *tls_ctx = s->tls_ctx, *pick_arg = s->pick_arg;
    unsigned failed = *failures, moves = s->moves;
    pthread_mutex_unlock(&s->mu);
    /* Unlocked: the picker may take its own locks (a cluster's topology). */
    if (pick)
        ep = pick(pick_arg, failed);
    /* Bounded by connect_timeout (conn_open), which is how long a close can wait for it. */
    int rc = ep ? rk__conn_open(&c, ep, tls_ctx, UINT64_MAX)
                : rk__err(RK_ENOTOPEN, "%s subscriber: no node to connect to", s->kind);
    pthread_mutex_lock(&s->mu);
    if (rc == RK_OK && moves != s->moves) { /* the picker's answer changed meanwhile: ask again */
        rk__conn_free(c);
        return;
    }
    if (rc == RK_OK) {
        *failures = 0;
        s->conn = c;
        s->last_traffic = rk__now_ms();
        s->ping_sent = 0;
        reset_channels(s);
        return;
    }
    /* Waiters keep polling on their timers meanwhile. */
    uint64_t pause = rk__backoff_ms(++*failures);
    struct pollfd p = {s->wake_fd, POLLIN, 0};
    pthread_mutex_unlock(&s->mu);
    poll(&p, 1, (int)pause);
    pthread_mutex_lock(&s->mu);
}

static uint64_t poll_until(const rk__subscriber *s)
{
    uint64_t now = rk__now_ms(), until = now + MAX_POLL_MS;
    if (s->ping_sent) {
        uint64_t dead = s->ping_sent + s->timeout_ms;
        if (dead < until)
            until = dead;
    }
    if (s->resubscribe_at && s->resubscribe_at < until)
        until = s->resubscribe_at;
    return until;
}

/* One turn of I/O by the reader: send pending subscription changes, wait until the server
 * sends something, the wake fd is written or `until`, and dispatch what arrived. Called and
 * returns with the lock held; a failure drops the connection (the thread reconnects). */
static void io_turn(rk__subscriber *s, uint64_t until)
{
    uint64_t drain;
    if (send_changes(s) != RK_OK ||
        (s->ping_sent && rk__now_ms() - s->ping_sent >= s->timeout_ms)) {
        drop_conn(s); /* no answer to PING: the connection is dead */
        return;
    }
    bool readable, woken;
    uint64_t limit = poll_until(s);
    rk__conn *c = s->conn;
    pthread_mutex_unlock(&s->mu);
    /* Only the reader touches the connection, so it reads without the lock. */
    int rc = rk__conn_wait(c, s->wake_fd, until < limit ? until : limit, &readable, &woken);
    if (woken)
        while (read(s->wake_fd, &drain, sizeof drain) > 0)
            ;
    if (rc == RK_OK && readable)
        rc = rk__conn_fill(c, rk__deadline(s->timeout_ms));
    pthread_mutex_lock(&s->mu);
    if (rc != RK_OK || (readable && dispatch(s) != RK_OK))
        drop_conn(s);
}

static void unqueue_reader(rk__subscriber *s, rk__waiter *w)
{
    rk__waiter **p = &s->want_first, *prev = NULL;
    while (*p && *p != w)
        prev = *p, p = &(*p)->next_reader;
    if (*p) {
        *p = w->next_reader;
        if (s->want_last == w)
            s->want_last = prev;
    }
    w->wants_to_read = false;
    w->next_reader = NULL;
}

/* Hand the reader role to the first queued waiter. Lock held; the role is free. */
static bool hand_role(rk__subscriber *s)
{
    rk__waiter *w = s->want_first;
    if (!w || !s->conn || !s->open)
        return false;
    unqueue_reader(s, w);
    s->reader = w;
    pthread_cond_signal(&w->cv);
    return true;
}

static void *run(void *arg)
{
    rk__subscriber *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        uint64_t now = rk__now_ms(), back = s->role_freed_at + TAKEOVER_MS;
        if (s->reader || (s->conn && now < back && !s->want_first && !s->dirty)) {
            /* A waiter reads for everyone, or will probably be back for the role soon; pending
             * subscriptions (after a reconnect) cannot wait. A waiter gives the role up without
             * waking us: while nobody waits nothing needs reading at once (a new waiter takes
             * the role itself), so the thread looks again only every MAX_POLL_MS, not every
             * few ms of a long wait (64 processes queued on one lock: 50 wake-ups a second
             * each, for nothing). */
            struct timespec ts;
            rk__timespec_at(&ts, s->reader ? now + MAX_POLL_MS : back);
            pthread_cond_timedwait(&s->thread_cv, &s->mu, &ts);
            continue;
        }
        if (!s->conn) {
            connect_now(s, &s->failures);
            continue;
        }
        if (hand_role(s))
            continue;
        s->reader = THREAD_READS;
        io_turn(s, UINT64_MAX);
        s->reader = NULL;
    }
    while (s->reader) /* a waiter in its turn gives the role back once it sees the close */
        pthread_cond_wait(&s->thread_cv, &s->mu);
    drop_conn(s);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Wait as the reader when the role is free (or ours), else queue for it, asking the thread to
 * step aside, and sleep until a message, the role, or `until`. Lock held. */
static void wait_turn(rk__subscriber *s, rk__waiter *w, uint64_t until, const struct timespec *ts)
{
    if (s->conn && (s->reader == w || !s->reader)) {
        if (w->wants_to_read)
            unqueue_reader(s, w);
        s->reader = w;
        io_turn(s, until);
        if (!s->conn) { /* the connection failed: the thread reconnects */
            s->reader = NULL;
            pthread_cond_signal(&s->thread_cv);
        }
        return;
    }
    if (!w->wants_to_read && s->conn) {
        w->wants_to_read = true;
        w->next_reader = NULL;
        if (s->want_last)
            s->want_last->next_reader = w;
        else
            s->want_first = w;
        s->want_last = w;
        if (s->reader == THREAD_READS)
            wake_thread(s); /* leave poll() and hand the role over */
    }
    pthread_cond_timedwait(&w->cv, &s->mu, ts);
}

/* Done waiting: leave the queue, and pass the role on if we hold it. Lock held. */
static void release_role(rk__subscriber *s, rk__waiter *w)
{
    if (w->wants_to_read)
        unqueue_reader(s, w);
    if (s->reader != w)
        return;
    s->reader = NULL;
    if (hand_role(s))
        return;
    s->role_freed_at = rk__now_ms();
    if (!s->open || !s->conn)
        pthread_cond_signal(&s->thread_cv);
}

/* ---- waiters ---- */

/* Whether join should wait on for the subscription: not when the channel was refused (lost()
 * asks for a re-check), nor while it waits to be tried again. */
static bool unconfirmed(const rk__subscriber *s, const rk__waiter *w, uint64_t until)
{
    uint64_t now = rk__now_ms();
    return s->open && w->chan->state != CH_ACTIVE && !w->recheck && now < until &&
           now >= w->chan->retry_at;
}

int rk__subscriber_join(rk__subscriber *s, rk__waiter *w, const char *channel, size_t len,
                        bool want_payload, const char *match, size_t match_len,
                        uint64_t confirm_until)
{
    memset(w, 0, sizeof *w);
    w->want_payload = want_payload;
    w->match = match;
    w->match_len = match_len;
    pthread_mutex_lock(&s->mu);
    if (!s->open) {
        pthread_mutex_unlock(&s->mu);
        return rk__err(RK_ENOTOPEN, "Connection is not opened (%s closed)", s->kind);
    }
    rk__channel *ch = rk__map_get(&s->channels, channel, len);
    if (!ch) {
        if (!(ch = rk__calloc(1, sizeof *ch)) ||
            rk__map_put(&s->channels, channel, len, ch, NULL) != RK_OK) {
            rk__free(ch);
            pthread_mutex_unlock(&s->mu);
            return rk__err(RK_ENOMEM, "%s subscriber: cannot register a channel", s->kind);
        }
        ch->id = ++s->next_id;
    }
    pthread_cond_init(&w->cv, &mono_attr);
    w->chan = ch;
    w->next = ch->waiters;
    if (ch->waiters)
        ch->waiters->prev = w;
    ch->waiters = w;
    ch->refs++;
    if (ch->state == CH_NEW) {
        s->dirty = true;
        wake_thread(s);                     /* the reader, in poll() */
        pthread_cond_signal(&s->thread_cv); /* the thread, if it is idle */
    }
    int rc = RK_OK;
    if (!s->running) {
        s->stopping = false;
        if (pthread_create(&s->thread, NULL, run, s) == 0)
            s->running = true;
        else
            rc = rk__err(RK_ERROR, "%s subscriber: cannot start its thread", s->kind);
    }
    struct timespec ts;
    rk__timespec_at(&ts, confirm_until);
    while (rc == RK_OK && unconfirmed(s, w, confirm_until))
        wait_turn(s, w, confirm_until, &ts);
    release_role(s, w);
    w->recheck = false; /* the caller checks Redis next anyway */
    if (rc == RK_OK && !s->open)
        rc = rk__err(RK_ENOTOPEN, "Connection is not opened (%s closed)", s->kind);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int rk__subscriber_wait(rk__subscriber *s, rk__waiter *w, uint64_t until, rk__wake *why,
                        rk_buf *payload)
{
    struct timespec ts;
    rk__timespec_at(&ts, until);
    pthread_mutex_lock(&s->mu);
    while (s->open && !w->message && !w->recheck && rk__now_ms() < until)
        wait_turn(s, w, until, &ts);
    release_role(s, w);
    *why = w->message ? RK__WAKE_MESSAGE : w->recheck ? RK__WAKE_RECHECK : RK__WAKE_TIMER;
    if (*why == RK__WAKE_MESSAGE && payload) {
        rk_buf_free(payload);
        *payload = w->payload;
        w->payload = (rk_buf)RK_BUF_INIT;
    }
    w->message = w->recheck = false;
    bool open = s->open;
    pthread_mutex_unlock(&s->mu);
    return open ? RK_OK : rk__err(RK_ENOTOPEN, "Connection is not opened (%s closed)", s->kind);
}

bool rk__subscriber_active(rk__subscriber *s, const char *channel, size_t len)
{
    pthread_mutex_lock(&s->mu);
    rk__channel *ch = s->open ? rk__map_get(&s->channels, channel, len) : NULL;
    bool active = ch && ch->state == CH_ACTIVE;
    pthread_mutex_unlock(&s->mu);
    return active;
}

void rk__subscriber_leave(rk__subscriber *s, rk__waiter *w)
{
    rk__channel *ch = w->chan;
    if (!ch)
        return;
    pthread_mutex_lock(&s->mu);
    if (w->prev)
        w->prev->next = w->next;
    else
        ch->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (--ch->refs == 0) {
        ch->idle_since = rk__now_ms();
        if (s->next_sweep > ch->idle_since + LINGER_MS)
            s->next_sweep = ch->idle_since + LINGER_MS;
    }
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&w->cv);
    rk_buf_free(&w->payload);
    w->chan = NULL;
}
