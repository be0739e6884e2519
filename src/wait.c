#include "wait.h"

#include <string.h>

#include "clock.h"
#include "error_int.h"

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Sleep until `until`, handing each message to `ops`; `*done` when one settles the wait. */
static int listen(rk__subscriber *sub, rk__waiter *w, uint64_t until, const rk__wait_ops *ops,
                  void *arg, bool *done)
{
    rk_buf msg = RK_BUF_INIT;
    int rc;
    for (;;) {
        rk__wake why;
        rc = rk__subscriber_wait(sub, w, until, &why, &msg);
        if (rc != RK_OK || why != RK__WAKE_MESSAGE)
            break; /* the re-check is due, or the subscription was (re)made: look again */
        rk__seen seen = ops->message(arg, &msg);
        if (seen == RK__SEEN_DONE)
            *done = true;
        if (seen != RK__SEEN_IGNORE)
            break;
    }
    rk_buf_free(&msg);
    return rc;
}

int rk__wait(rk__client *cl, const rk__name *channel, bool sharded, const char *match,
             uint64_t deadline, const rk__wait_ops *ops, void *arg)
{
    uint64_t retry = cl->opts.retry_timeout_ms;
    bool done = false;
    rk__waiter w;
    rk__subscriber *sub = rk__client_subscriber(cl, channel, sharded);
    int rc = rk__subscriber_join(sub, &w, channel->str, channel->len, true, match,
                                 match ? strlen(match) : 0, min_u64(deadline, rk__deadline(retry)));
    if (rc != RK_ENOTOPEN)
        rc = RK_OK; /* without a subscription the re-checks still see the end of the wait */
    while (rc == RK_OK && !done) {
        if ((rc = ops->check(arg, &done)) != RK_OK || done)
            break;
        uint64_t next = ops->recheck_ms ? ops->recheck_ms(arg) : retry;
        if (rk__now_ms() < deadline)
            rc = listen(sub, &w, min_u64(deadline, rk__deadline(next)), ops, arg, &done);
        if (rc == RK_OK && !done && rk__now_ms() >= deadline) {
            rc = ops->expired(arg); /* the last look at Redis, on its own (short) time */
            break;
        }
    }
    rk__subscriber_leave(sub, &w);
    return rc;
}
