/* Setting the calling thread's rk_error. Each setter returns the code, so failures read
 * `return rk__err(RK_EINVAL, "key is empty");`. Messages name what was wrong; they never contain
 * credentials. */
#ifndef RK_ERROR_INT_H
#define RK_ERROR_INT_H

#include <stdbool.h>

#include "redkit/error.h"

#if defined(__GNUC__)
#define RK__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RK__PRINTF(f, a)
#endif

/* Default name and category of the code. */
int rk__err(int code, const char *fmt, ...) RK__PRINTF(2, 3);

/* With a lower-level cause (socket error text, Redis error reply). */
int rk__err_cause(int code, const char *cause, const char *fmt, ...) RK__PRINTF(3, 4);

/* With an explicit pip-services name and category (NULL keeps the code's default). */
int rk__err_named(int code, const char *name, const char *category, const char *cause,
                  const char *fmt, ...) RK__PRINTF(5, 6);

/* Prefix the current message with context ("retrieve 'k1': ..."). Returns the current code. */
int rk__err_prefix(const char *fmt, ...) RK__PRINTF(1, 2);

/* Record the trace id of the failed call; returns rc unchanged, so public functions end with
 * `return rk__ret(rc, ctx);`. */
int rk__ret(int rc, const rk_context *ctx);

/* A Redis error reply: the name is its upper-case prefix ("WRONGTYPE", "NOPERM"), or
 * "REDIS_ERROR" for a plain "ERR". The reply text becomes the cause. */
int rk__err_reply(const char *reply, const char *fmt, ...) RK__PRINTF(2, 3);

/* A copy of the thread's error, to report it after calls that may overwrite it (clean-up after a
 * failure, a memolock result shared with other threads). */
typedef struct rk__err_saved {
    int code;
    char name[32], category[32], message[512], cause[256];
    bool has_cause;
} rk__err_saved;

void rk__err_save(rk__err_saved *s);
int rk__err_restore(const rk__err_saved *s); /* returns the saved code */

#endif
