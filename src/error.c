#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error_int.h"

#define RK__ERRORS(X)                                                                              \
    X(RK_OK, "OK", "", "success")                                                                  \
    X(RK_ERROR, "UNKNOWN", "Unknown", "unexpected error")                                          \
    X(RK_EINVAL, "INVALID_ARGUMENT", "BadRequest", "invalid argument or configuration")            \
    X(RK_ENOMEM, "OUT_OF_MEMORY", "Internal", "out of memory")                                     \
    X(RK_ENOCONN, "NO_CONNECTION", "Misconfiguration", "connection is not configured")             \
    X(RK_ENOTOPEN, "NOT_OPENED", "InvalidState", "component is not opened")                        \
    X(RK_EIO, "CONNECTION_FAILED", "NoResponse", "connection to Redis failed")                     \
    X(RK_ETIMEDOUT, "TIMEOUT", "NoResponse", "operation timed out")                                \
    X(RK_EAUTH, "UNAUTHORIZED", "Unauthorized", "authentication failed")                           \
    X(RK_EREPLY, "REDIS_ERROR", "FailedInvocation", "Redis returned an error")                     \
    X(RK_ENOTFOUND, "NOT_FOUND", "NotFound", "key not found")                                      \
    X(RK_EREF, "REF_ERROR", "Internal", "required reference is missing")                           \
    X(RK_ENOTOWNER, "NOT_OWNER", "Conflict", "lock is no longer held by this owner")               \
    X(RK_EFETCH, "FETCH_FAILED", "FailedInvocation", "fetch callback failed")

typedef struct {
    int code;
    const char *name, *category, *text;
} code_info;

static const code_info codes[] = {
#define RK__ROW(c, n, cat, t) {c, n, cat, t},
    RK__ERRORS(RK__ROW)
#undef RK__ROW
};

static const code_info *lookup(int code)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].code == code)
            return &codes[i];
    return &codes[1];
}

const char *rk_strerror(int code)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].code == code)
            return codes[i].text;
    return "unknown error code";
}

typedef struct {
    rk_error pub;
    char name[32];
    char category[32];
    char message[512];
    char cause[256];
    char trace_id[128];
} tls_error;

static _Thread_local tls_error last = {
    {RK_OK, "OK", "", "success", NULL, NULL}, "", "", "", "", ""};

const rk_error *rk_last_error(void) { return &last.pub; }

RK__PRINTF(5, 0)
static void set_v(int code, const char *name, const char *category, const char *cause,
                  const char *fmt, va_list ap)
{
    const code_info *info = lookup(code);
    last.pub.code = code;
    snprintf(last.name, sizeof last.name, "%s", name ? name : info->name);
    last.pub.name = last.name;
    /* Copied: a caller may pass text it is about to free (a saved error). */
    snprintf(last.category, sizeof last.category, "%s", category ? category : info->category);
    last.pub.category = last.category;
    vsnprintf(last.message, sizeof last.message, fmt, ap);
    last.pub.message = last.message;
    if (cause) {
        snprintf(last.cause, sizeof last.cause, "%s", cause);
        last.pub.cause = last.cause;
    } else {
        last.pub.cause = NULL;
    }
    last.pub.trace_id = NULL;
}

int rk__err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(code, NULL, NULL, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int rk__err_cause(int code, const char *cause, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(code, NULL, NULL, cause, fmt, ap);
    va_end(ap);
    return code;
}

int rk__err_named(int code, const char *name, const char *category, const char *cause,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(code, name, category, cause, fmt, ap);
    va_end(ap);
    return code;
}

/* "WRONGTYPE Operation against..." -> "WRONGTYPE"; "ERR ..." -> NULL (the default name). */
static const char *reply_name(const char *reply, char *buf, size_t cap)
{
    size_t n = 0;
    while (reply[n] && isupper((unsigned char)reply[n]) && n + 1 < cap)
        n++;
    if (n == 0 || (reply[n] && reply[n] != ' ') || (n == 3 && !memcmp(reply, "ERR", 3)))
        return NULL;
    memcpy(buf, reply, n);
    buf[n] = '\0';
    return buf;
}

int rk__err_reply(const char *reply, const char *fmt, ...)
{
    char name[32];
    va_list ap;
    va_start(ap, fmt);
    set_v(RK_EREPLY, reply_name(reply, name, sizeof name), NULL, reply, fmt, ap);
    va_end(ap);
    return RK_EREPLY;
}

int rk__err_prefix(const char *fmt, ...)
{
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t cap = sizeof last.message - 1, plen = strlen(prefix), mlen = strlen(last.message);
    if (plen + mlen > cap)
        mlen = cap - plen; /* keep the prefix whole; the tail of the message gives way */
    memmove(last.message + plen, last.message, mlen);
    memcpy(last.message, prefix, plen);
    last.message[plen + mlen] = '\0';
    return last.pub.code;
}

int rk__ret(int rc, const rk_context *ctx)
{
    if (rc < 0 && ctx && ctx->trace_id) {
        snprintf(last.trace_id, sizeof last.trace_id, "%s", ctx->trace_id);
        last.pub.trace_id = last.trace_id;
    }
    return rc;
}

void rk__err_save(rk__err_saved *s)
{
    const rk_error *e = rk_last_error();
    s->code = e->code;
    snprintf(s->name, sizeof s->name, "%s", e->name);
    snprintf(s->category, sizeof s->category, "%s", e->category);
    snprintf(s->message, sizeof s->message, "%s", e->message);
    s->has_cause = e->cause != NULL;
    snprintf(s->cause, sizeof s->cause, "%s", e->cause ? e->cause : "");
}

int rk__err_restore(const rk__err_saved *s)
{
    return rk__err_named(s->code, s->name, s->category, s->has_cause ? s->cause : NULL, "%s",
                         s->message);
}
