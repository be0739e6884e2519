/* Quorum locks (options.lock_mode=quorum, the Redlock algorithm): every configured endpoint is an
 * independent master with its own connection pool, and a lock is held when a majority of them
 * hold its key. Each node keeps the pip-services format (`SET K token NX PX ttl`, a
 * compare-and-delete release), so a pip-services client pointed at one node is still excluded
 * there.
 *
 * "All nodes at once" needs no threads: the command is written on one connection per node, then
 * each reply is read, every read bounded by options.quorum_node_timeout, so one attempt costs one
 * round trip of wall time, not N. A node that does not answer in time counts as a refusal; one
 * that cannot be connected to is skipped for options.retry_timeout and then tried again, lazily.
 *
 * The lock (lock.c) calls these instead of its queue when the client's options say quorum; the
 * state lives with the client (rk__client_ext_ops): opened with it, closed with it, reset after a
 * fork. */
#ifndef RK_QUORUM_H
#define RK_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "keys.h"

/* Build one pool per seed and PING them all before `deadline`: RK_OK when a majority answers
 * (the others are retried lazily); RK_EINVAL with fewer than 3 endpoints (an even count is
 * logged as a warning: it tolerates no more failures than one node fewer); RK_EIO
 * (QUORUM_UNREACHABLE) naming the nodes that did not answer, never a password. */
int rk__quorum_attach(rk__client *cl, uint64_t deadline);

/* One attempt: `SET K token NX PX ttl` on every node at once. `*acquired` when a majority
 * granted it and time is left of the lease: ttl - elapsed - (ttl x 0.01 + 2 ms) > 0; otherwise
 * the grants are released at once. RK_EIO (QUORUM_UNREACHABLE, naming them) when so many nodes are
 * unreachable that no majority could grant it. */
int rk__quorum_try(rk__client *cl, const rk__name *key, const char *token, uint64_t ttl_ms,
                   uint64_t deadline, bool *acquired);

/* Try until `deadline`, sleeping a random time up to options.retry_timeout between attempts,
 * woken early by a release on any node the client's subscriber hears; LOCK_TIMEOUT after. */
int rk__quorum_acquire(rk__client *cl, const rk__name *key, const char *caller_key,
                       const char *token, uint64_t ttl_ms, uint64_t deadline);

/* Compare-and-delete on every node (and announce it). `*was_held` (may be NULL): some node
 * still held `token`. */
int rk__quorum_release(rk__client *cl, const rk__name *key, const char *token, uint64_t deadline,
                       bool *was_held);

/* Compare-and-PEXPIRE on every node: `*extended` when a majority extended it with time left. */
int rk__quorum_extend(rk__client *cl, const rk__name *key, const char *token, uint64_t ttl_ms,
                      uint64_t deadline, bool *extended);

#endif
