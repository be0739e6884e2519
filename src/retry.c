#include "retry.h"

#include <errno.h>
#include <time.h>

#include "clock.h"

#define BACKOFF_BASE_MS 25u
#define BACKOFF_MAX_MS 400u

uint64_t rk__backoff_ms(unsigned attempt)
{
    if (attempt == 0)
        return 0;
    uint64_t ms = (uint64_t)BACKOFF_BASE_MS << (attempt < 5 ? attempt : 5);
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

void rk__backoff(unsigned attempt, uint64_t deadline)
{
    uint64_t ms = rk__backoff_ms(attempt), left = rk__remaining_ms(deadline);
    if (ms > left)
        ms = left;
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (ms && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
