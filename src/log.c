#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

/* Messages are delivered under the read side, so handlers run in parallel, and swapped under
 * the write side, so fn and ud change together and an old handler is done once the swap
 * returns. NULL fn means the default. */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static rk_log_fn handler;
static void *handler_ud;

void rk_set_log_handler(rk_log_fn fn, void *ud)
{
    pthread_rwlock_wrlock(&lock);
    handler = fn;
    handler_ud = fn ? ud : NULL;
    pthread_rwlock_unlock(&lock);
}

/* One fprintf per message, so that lines from concurrent threads do not interleave. */
static void print_default(int level, const char *message)
{
    fprintf(stderr, "redkit: %s: %s\n", level == RK_LOG_ERROR ? "error" : "warning", message);
}

void rk__log(int level, const char *fmt, ...)
{
    int saved_errno = errno;
    pthread_rwlock_rdlock(&lock);
    /* The default drops info and debug: skip formatting what nobody will read. */
    if (handler || level <= RK_LOG_WARN) {
        char message[RK__LOG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        if (handler)
            handler(handler_ud, level, message);
        else
            print_default(level, message);
    }
    pthread_rwlock_unlock(&lock);
    errno = saved_errno;
}
