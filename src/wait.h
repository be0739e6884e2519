/* The one way redkit waits for something another process does (a lock handed over, a memolock
 * value published): join the channel that announces it, look at Redis (the thing may have
 * happened before we joined), then sleep until a message, the re-check interval
 * (options.retry_timeout) or the deadline, and look again. Pub/Sub loses messages across
 * reconnects, so the re-checks are what guarantees progress; messages only make it fast. */
#ifndef RK_WAIT_H
#define RK_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "keys.h"

typedef enum {
    RK__SEEN_IGNORE,  /* not for us: keep sleeping until the re-check is due */
    RK__SEEN_RECHECK, /* something changed: look at Redis now */
    RK__SEEN_DONE,    /* the message settles the wait */
} rk__seen;

typedef struct rk__wait_ops {
    /* Look at Redis; set `*done` when the wait is over. */
    int (*check)(void *arg, bool *done);
    /* A message on the channel; its payload is in `msg` (the callback may take it). */
    rk__seen (*message)(void *arg, rk_buf *msg);
    /* The deadline passed: the last step, and the call's result. */
    int (*expired)(void *arg);
    /* Optional: ms until the next look at Redis (default options.retry_timeout). */
    uint64_t (*recheck_ms)(void *arg);
} rk__wait_ops;

/* Wait on `channel` until `ops` say done, the deadline passes (ops->expired) or the client's
 * waiters are stopped (RK_ENOTOPEN). With `match` (NULL: every message), only messages whose
 * payload starts with it are handed to ops->message. `sharded`: in a cluster the channel is a
 * shard channel (SSUBSCRIBE on the node serving its slot). */
int rk__wait(rk__client *cl, const rk__name *channel, bool sharded, const char *match,
             uint64_t deadline, const rk__wait_ops *ops, void *arg);

#endif
