/* A small test runner: typed assertions that print both sides and rk_last_error() on failure,
 * and a table of cases. `prog` runs every case; `prog NAME...` runs the named ones. A failed
 * assertion ends the program with status 1. */
#ifndef RKT_HARNESS_H
#define RKT_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redkit.h"

typedef struct rkt_case {
    const char *name;
    void (*fn)(void);
} rkt_case;

int rkt_run(const rkt_case *cases, size_t n, int argc, char **argv);
void rkt_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define RKT_CASE(fn)                                                                               \
    {                                                                                              \
#fn, fn                                                                                    \
    }
#define RKT_MAIN(...)                                                                              \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const rkt_case cases[] = {__VA_ARGS__};                                             \
        return rkt_run(cases, sizeof cases / sizeof cases[0], argc, argv);                         \
    }

#define ASSERT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c))                                                                                  \
            rkt_fail(__FILE__, __LINE__, "expected true: %s", #c);                                 \
    } while (0)

#define ASSERT_FALSE(c) ASSERT_TRUE(!(c))

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            rkt_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);                \
    } while (0)

#define ASSERT_GE(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ < b_)                                                                               \
            rkt_fail(__FILE__, __LINE__, "%s >= %s: %lld < %lld", #a, #b, a_, b_);                 \
    } while (0)

#define ASSERT_LT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ >= b_)                                                                              \
            rkt_fail(__FILE__, __LINE__, "%s < %s: %lld >= %lld", #a, #b, a_, b_);                 \
    } while (0)

/* The call returned `code`; on a mismatch the thread's rk_last_error() is printed too. */
#define ASSERT_RC(expr, code)                                                                      \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != (code))                                                                         \
            rkt_fail(__FILE__, __LINE__,                                                           \
                     "%s returned %d (%s), expected %d (%s); last error: "                         \
                     "%s/%s: %s [cause: %s]",                                                      \
                     #expr, rc_, rk_strerror(rc_), (int)(code), rk_strerror(code),                 \
                     rk_last_error()->name, rk_last_error()->category, rk_last_error()->message,   \
                     rk_last_error()->cause ? rk_last_error()->cause : "-");                       \
    } while (0)

#define ASSERT_OK(expr) ASSERT_RC(expr, RK_OK)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_))                                                          \
            rkt_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", \
                     b_ ? b_ : "(null)");                                                          \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            rkt_fail(__FILE__, __LINE__, "%s contains \"%s\": \"%s\"", #hay, n_,                   \
                     h_ ? h_ : "(null)");                                                          \
    } while (0)

#define ASSERT_NOT_CONTAINS(hay, needle)                                                           \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ && strstr(h_, n_))                                                                  \
            rkt_fail(__FILE__, __LINE__, "%s must not contain \"%s\": \"%s\"", #hay, n_, h_);      \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                                     \
    do {                                                                                           \
        if (memcmp((a), (b), (n)))                                                                 \
            rkt_fail(__FILE__, __LINE__, "%s and %s differ in their first %zu bytes", #a, #b,      \
                     (size_t)(n));                                                                 \
    } while (0)

/* The last error has this pip-services name and category. */
#define ASSERT_ERROR(code_, name_, category_)                                                      \
    do {                                                                                           \
        const rk_error *e_ = rk_last_error();                                                      \
        ASSERT_EQ(e_->code, code_);                                                                \
        ASSERT_STR_EQ(e_->name, name_);                                                            \
        ASSERT_STR_EQ(e_->category, category_);                                                    \
    } while (0)

#endif
