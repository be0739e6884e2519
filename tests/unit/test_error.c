/* The error model: codes, static texts, pip-services names and categories, per-thread state. */
#include <pthread.h>

#include "error_int.h"
#include "harness.h"

static void every_code_has_text(void)
{
    for (int code = RK_OK; code >= RK_EFETCH; code--) {
        ASSERT_TRUE(rk_strerror(code) != NULL);
        ASSERT_TRUE(strcmp(rk_strerror(code), "unknown error code") != 0);
    }
    ASSERT_STR_EQ(rk_strerror(-99), "unknown error code");
    ASSERT_STR_EQ(rk_strerror(RK_ENOTFOUND), "key not found");
}

static void defaults_per_code(void)
{
    static const struct {
        int code;
        const char *name, *category;
    } want[] = {{RK_EINVAL, "INVALID_ARGUMENT", "BadRequest"},
                {RK_ENOCONN, "NO_CONNECTION", "Misconfiguration"},
                {RK_ENOTOPEN, "NOT_OPENED", "InvalidState"},
                {RK_EIO, "CONNECTION_FAILED", "NoResponse"},
                {RK_ETIMEDOUT, "TIMEOUT", "NoResponse"},
                {RK_EAUTH, "UNAUTHORIZED", "Unauthorized"},
                {RK_ENOTFOUND, "NOT_FOUND", "NotFound"},
                {RK_EREF, "REF_ERROR", "Internal"},
                {RK_ENOTOWNER, "NOT_OWNER", "Conflict"},
                {RK_EFETCH, "FETCH_FAILED", "FailedInvocation"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ASSERT_EQ(rk__err(want[i].code, "m%d", (int)i), want[i].code);
        ASSERT_ERROR(want[i].code, want[i].name, want[i].category);
        ASSERT_TRUE(rk_last_error()->cause == NULL);
    }
}

static void named_cause_prefix_trace(void)
{
    rk_context ctx = {"trace-42"};
    ASSERT_EQ(rk__err_named(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict", "because", "Acquiring %s",
                            "lock k"),
              RK_ETIMEDOUT);
    ASSERT_EQ(rk__err_prefix("acquire '%s': ", "k"), RK_ETIMEDOUT);
    ASSERT_EQ(rk__ret(RK_ETIMEDOUT, &ctx), RK_ETIMEDOUT);
    const rk_error *e = rk_last_error();
    ASSERT_ERROR(RK_ETIMEDOUT, "LOCK_TIMEOUT", "Conflict");
    ASSERT_STR_EQ(e->message, "acquire 'k': Acquiring lock k");
    ASSERT_STR_EQ(e->cause, "because");
    ASSERT_STR_EQ(e->trace_id, "trace-42");
    ASSERT_EQ(rk__ret(RK_OK, &ctx), RK_OK); /* success leaves the last failure alone */
    ASSERT_EQ(rk_last_error()->code, RK_ETIMEDOUT);
}

static void reply_names(void)
{
    rk__err_reply("WRONGTYPE Operation against a key", "x");
    ASSERT_ERROR(RK_EREPLY, "WRONGTYPE", "FailedInvocation");
    ASSERT_STR_EQ(rk_last_error()->cause, "WRONGTYPE Operation against a key");
    rk__err_reply("NOPERM this user has no permissions", "x");
    ASSERT_STR_EQ(rk_last_error()->name, "NOPERM");
    rk__err_reply("ERR unknown command", "x");
    ASSERT_STR_EQ(rk_last_error()->name, "REDIS_ERROR");
    rk__err_reply("weird lower case", "x");
    ASSERT_STR_EQ(rk_last_error()->name, "REDIS_ERROR");
}

static void long_messages_are_cut_not_overflowed(void)
{
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rk__err(RK_EINVAL, "%s", big);
    rk__err_prefix("%s", big);
    ASSERT_EQ(strlen(rk_last_error()->message), 511);
}

static void *other_thread(void *arg)
{
    (void)arg;
    rk__err(RK_EAUTH, "in another thread");
    return NULL;
}

static void per_thread(void)
{
    pthread_t t;
    rk__err(RK_ENOTFOUND, "mine");
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);
    ASSERT_EQ(rk_last_error()->code, RK_ENOTFOUND);
    ASSERT_STR_EQ(rk_last_error()->message, "mine");
}

RKT_MAIN(RKT_CASE(every_code_has_text), RKT_CASE(defaults_per_code),
         RKT_CASE(named_cause_prefix_trace), RKT_CASE(reply_names),
         RKT_CASE(long_messages_are_cut_not_overflowed), RKT_CASE(per_thread))
