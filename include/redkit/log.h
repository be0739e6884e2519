/**
 * @file redkit/log.h
 * @brief Where redkit's diagnostics go.
 *
 * redkit never writes to stderr itself. What it has to say outside the result of a call (today,
 * that options.tls_verify=false leaves a connection unauthenticated, and that the renewal of a
 * watched lock failed and will be retried) goes to one process-wide log handler, by default a
 * printer to stderr.
 */
#ifndef REDKIT_LOG_H
#define REDKIT_LOG_H

#include "common.h"

RK_BEGIN_DECLS

/** Message levels, most severe first. */
enum { RK_LOG_ERROR = 1, RK_LOG_WARN = 2, RK_LOG_INFO = 3, RK_LOG_DEBUG = 4 };

/**
 * Receives one message: `level` is an RK_LOG_* value and `message` a single line without a
 * trailing newline, valid during the call only. `ud` is the pointer given with the handler.
 * It may be called from any thread that uses redkit, several at once, so it must be thread-safe;
 * it must not call rk_set_log_handler() (that would deadlock).
 */
typedef void (*rk_log_fn)(void *ud, int level, const char *message);

/**
 * Send redkit's messages to `fn`, process-wide. NULL restores the default, which prints warnings
 * and errors to stderr as "redkit: warning: ..." / "redkit: error: ..." and drops the rest.
 * Thread-safe: a message never reaches a handler with another handler's `ud`, and once this
 * returns the previous handler is not running and will not be called again, so its `ud` may be
 * released.
 */
RK_EXTERN void rk_set_log_handler(rk_log_fn fn, void *ud);

RK_END_DECLS

#endif
