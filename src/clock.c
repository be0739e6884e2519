#include "clock.h"

#include <time.h>

uint64_t rk__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rk__deadline(uint64_t ms)
{
    uint64_t now = rk__now_ms();
    return ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
}

uint64_t rk__remaining_ms(uint64_t deadline)
{
    uint64_t now = rk__now_ms();
    return deadline > now ? deadline - now : 0;
}

void rk__timespec_at(struct timespec *ts, uint64_t deadline_ms)
{
    /* Far deadlines are clamped to a day: the waits using them re-check in a loop anyway. */
    uint64_t now = rk__now_ms();
    if (deadline_ms > now + 86400000u)
        deadline_ms = now + 86400000u;
    ts->tv_sec = (time_t)(deadline_ms / 1000u);
    ts->tv_nsec = (long)(deadline_ms % 1000u) * 1000000L;
}

uint64_t rk__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
