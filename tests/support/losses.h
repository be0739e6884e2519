/* Lost-lease callbacks (rk_lock_lost_fn, rk_semaphore_lost_fn) recorded for the watchdog tests:
 * how many came, and the first one's key, time and error, with a wait that ends on the event. */
#ifndef RKT_LOSSES_H
#define RKT_LOSSES_H

#include <pthread.h>
#include <stdint.h>

typedef struct rkt_losses {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic */
    int calls;
    uint64_t first_at; /* rkt_now_ms() of the first call */
    int code;          /* rk_last_error() in the handler */
    char key[64], why[512];
} rkt_losses;

void rkt_losses_init(rkt_losses *g);

/* The lost handler: `ud` is an rkt_losses. */
void rkt_on_lost(void *ud, const char *key);

/* The number of losses once `n` were reported or `ms` passed. */
int rkt_wait_losses(rkt_losses *g, int n, uint64_t ms);
int rkt_losses_now(rkt_losses *g);

/* Sleep for a test's scenario (a lease outliving its TTL), not to wait for an event. */
void rkt_sleep_ms(unsigned ms);

#endif
