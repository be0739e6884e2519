/* The one back-off of redkit: how long to pause before retry number `attempt` (0 = the first
 * retry). The first retry goes at once (a connection that died while idle is replaced without
 * delay); then 50, 100, 200 and 400 ms, and 400 ms from there on. Used by the client's retry
 * loop and by the subscriber's reconnects. */
#ifndef RK_RETRY_H
#define RK_RETRY_H

#include <stdint.h>

uint64_t rk__backoff_ms(unsigned attempt);

/* Sleep the back-off of `attempt`, never past `deadline`. */
void rk__backoff(unsigned attempt, uint64_t deadline);

#endif
