/* Monotonic milliseconds. Every deadline in redkit is a value of this clock, never wall time. */
#ifndef RK_CLOCK_H
#define RK_CLOCK_H

#include <stdint.h>

uint64_t rk__now_ms(void);

/* Monotonic microseconds: what durations (statistics, events) are measured with. */
uint64_t rk__now_us(void);

/* now + ms, saturating (RK_TTL_NONE-like "forever" values stay forever). */
uint64_t rk__deadline(uint64_t ms);

/* Milliseconds left until `deadline`, 0 if passed. */
uint64_t rk__remaining_ms(uint64_t deadline);

/* Absolute CLOCK_MONOTONIC timespec for pthread_cond_timedwait on a monotonic condvar. */
struct timespec;
void rk__timespec_at(struct timespec *ts, uint64_t deadline_ms);

#endif
