/* Diagnostics for the application, through the handler set with rk_set_log_handler (the
 * default prints warnings and errors to stderr). For what is worth telling outside the result
 * of a call; failures of a call go to rk_last_error() instead. */
#ifndef RK_LOG_H
#define RK_LOG_H

#include "error_int.h"
#include "redkit/log.h"

#define RK__LOG_MAX 1024

/* Format a message (cut to RK__LOG_MAX - 1 bytes) and hand it to the handler, on the calling
 * thread. Keeps errno, so it can sit between a failing call and the code that reads errno. */
void rk__log(int level, const char *fmt, ...) RK__PRINTF(2, 3);

#endif
