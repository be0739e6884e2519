/**
 * @file redkit/error.h
 * @brief Return codes and the per-thread description of the last failure.
 *
 * Every function that can fail returns RK_OK (0) or one of the negative codes below. Codes are
 * never renumbered; new ones are added at the end. When a call fails, rk_last_error() describes
 * it in pip-services terms (code name and category) with a message naming the key, option or
 * host at fault.
 */
#ifndef REDKIT_ERROR_H
#define REDKIT_ERROR_H

#include "common.h"

RK_BEGIN_DECLS

enum {
    RK_OK = 0,
    RK_ERROR = -1,      /**< unexpected failure */
    RK_EINVAL = -2,     /**< bad argument or configuration value */
    RK_ENOMEM = -3,     /**< out of memory */
    RK_ENOCONN = -4,    /**< no connection configured or resolvable ("NO_CONNECTION") */
    RK_ENOTOPEN = -5,   /**< component not opened, or closed while waiting ("NOT_OPENED") */
    RK_EIO = -6,        /**< socket error or connection lost; reconnects were exhausted */
    RK_ETIMEDOUT = -7,  /**< a deadline passed ("TIMEOUT", "LOCK_TIMEOUT") */
    RK_EAUTH = -8,      /**< the server refused the credentials ("UNAUTHORIZED") */
    RK_EREPLY = -9,     /**< the server answered with an error reply (name = its prefix) */
    RK_ENOTFOUND = -10, /**< cache miss */
    RK_EREF = -11,      /**< discovery or credential store missing ("REF_ERROR") */
    RK_ENOTOWNER = -12, /**< the lock is no longer ours: expired or taken over ("NOT_OWNER") */
    RK_EFETCH = -13     /**< a memolock fetch callback failed ("FETCH_FAILED") */
};

/** Description of a failure. All strings are owned by redkit. */
typedef struct rk_error {
    int code;             /**< RK_E* */
    const char *name;     /**< pip-services error code: "NO_CONNECTION", "LOCK_TIMEOUT", ... */
    const char *category; /**< pip-services category: "Misconfiguration", "Conflict", ... */
    const char *message;  /**< human text naming the key, host or option at fault */
    const char *trace_id; /**< from the rk_context of the failed call, or NULL */
    const char *cause;    /**< lower-level text (socket error, Redis error reply), or NULL */
} rk_error;

/**
 * The calling thread's last failure. Never NULL: before any failure it describes RK_OK.
 * The struct and its strings stay valid until the thread's next redkit call.
 */
RK_EXTERN const rk_error *rk_last_error(void);

/** Static English text for a code. Never NULL; unknown codes give "unknown error code". */
RK_EXTERN const char *rk_strerror(int code);

RK_END_DECLS

#endif
