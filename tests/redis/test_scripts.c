/* The Lua scripts embedded at build time: each SHA1 is the one Redis computes, EVALSHA falls
 * back to EVAL once after SCRIPT FLUSH and not again, and memo_check's look-only mode. Each case
 * has a private server, so INFO commandstats counts this test's commands only. */
#include "clock.h"
#include "conn.h"
#include "redis_env.h"
#include "scripts.h"

/* One valid call of each script, on throw-away keys. */
typedef struct {
    const rk__script *script;
    int nkeys, nargs;
    const char *args[9];
} script_call;

static const script_call calls[] = {
    {&rk__script_release, 1, 3, {"s:lock", "tok", ""}},
    {&rk__script_extend, 1, 3, {"s:lock", "tok", "1000"}},
    {&rk__script_memo_store, 2, 6, {"s:value", "s:lock", "v", "1000", "s:notif", "tok"}},
    {&rk__script_memo_check, 2, 4, {"s:value", "s:lock", "tok", "1000"}},
    {&rk__script_lock_acquire,
     4,
     9,
     {"s:lock", "s:queue", "s:waiters", "s:fence", "tok", "1000", "0", "s:inbox", "1"}},
    {&rk__script_lock_release,
     4,
     8,
     {"s:lock", "s:queue", "s:waiters", "s:fence", "tok", "1", "0", "110"}},
    {&rk__script_lock_try, 2, 4, {"s:lock2", "s:fence2", "tok", "1000"}},
    {&rk__script_lock_leave, 3, 4, {"s:lock", "s:queue", "s:waiters", "tok"}},
};

#define NCALLS (sizeof calls / sizeof calls[0])

static rkt_server server;
static char host[] = "127.0.0.1";

static rk__conn *conn_open(void)
{
    rk__endpoint ep = {.host = host, .port = (uint16_t)server.port, .connect_timeout_ms = 5000};
    rk__conn *c;
    ASSERT_OK(rk__conn_open(&c, &ep, NULL, rk__deadline(10000)));
    return c;
}

/* The script's reply, which must not be an error. */
static redisReply *run(rk__conn *c, const script_call *call)
{
    size_t lens[9];
    for (int i = 0; i < call->nargs; i++)
        lens[i] = strlen(call->args[i]);
    redisReply *r;
    ASSERT_OK(rk__script_run(c, call->script, call->nkeys, call->nargs, call->args, lens, &r,
                             rk__deadline(10000)));
    if (r->type == REDIS_REPLY_ERROR)
        rkt_fail(__FILE__, __LINE__, "%s script: %s", call->script->name, r->str);
    return r;
}

static void run_and_free(rk__conn *c, const script_call *call) { rk__reply_free(run(c, call)); }

/* calls= of `cmd` in INFO commandstats (0 before its first call). */
static long long calls_of(redisContext *raw, const char *cmd)
{
    char field[64];
    snprintf(field, sizeof field, "\r\ncmdstat_%s:calls=", cmd);
    redisReply *r = rkt_cmd(raw, "INFO", "commandstats", NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    /* INFO starts with a "# Commandstats" header, so every stat line follows a CRLF. */
    const char *at = strstr(r->str, field);
    long long n = at ? strtoll(at + strlen(field), NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

static void sha_is_what_script_load_returns(void)
{
    rkt_server_start(&server, NULL);
    redisContext *raw = rkt_raw_port(server.port);
    for (size_t i = 0; i < NCALLS; i++) {
        redisReply *r = rkt_cmd(raw, "SCRIPT", "LOAD", calls[i].script->source, NULL);
        ASSERT_EQ(r->type, REDIS_REPLY_STRING);
        ASSERT_STR_EQ(calls[i].script->sha, r->str);
        freeReplyObject(r);
    }
    redisFree(raw);
    rkt_server_stop(&server);
}

static void noscript_costs_one_eval_then_evalsha_alone(void)
{
    rkt_server_start(&server, NULL);
    rk__conn *c = conn_open();
    redisContext *raw = rkt_raw_port(server.port);
    freeReplyObject(rkt_cmd(raw, "SCRIPT", "FLUSH", NULL));
    for (size_t i = 0; i < NCALLS; i++) {
        long long eval = calls_of(raw, "eval"), evalsha = calls_of(raw, "evalsha");
        run_and_free(c, &calls[i]); /* NOSCRIPT, then EVAL loads it */
        ASSERT_EQ(calls_of(raw, "evalsha"), evalsha + 1);
        ASSERT_EQ(calls_of(raw, "eval"), eval + 1);
        run_and_free(c, &calls[i]);
        ASSERT_EQ(calls_of(raw, "evalsha"), evalsha + 2);
        ASSERT_EQ(calls_of(raw, "eval"), eval + 1);
    }
    redisFree(raw);
    rk__conn_free(c);
    rkt_server_stop(&server);
}

static long long element_int(const redisReply *r, size_t i)
{
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    ASSERT_TRUE(r->elements > i);
    ASSERT_EQ(r->element[i]->type, REDIS_REPLY_INTEGER);
    return r->element[i]->integer;
}

static long long exists(redisContext *raw, const char *key)
{
    redisReply *r = rkt_cmd(raw, "EXISTS", key, NULL);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* A lock ttl of '0' looks for the value and never takes the lock, free or not. */
static void memo_check_with_ttl_0_only_looks(void)
{
    rkt_server_start(&server, NULL);
    rk__conn *c = conn_open();
    redisContext *raw = rkt_raw_port(server.port);
    script_call look = {&rk__script_memo_check, 2, 4, {"m:value", "m:lock", "tok", "0"}};
    redisReply *r = run(c, &look);
    ASSERT_EQ(r->elements, 1);
    ASSERT_EQ(element_int(r, 0), 0);
    ASSERT_EQ(exists(raw, "m:lock"), 0);
    rk__reply_free(r);

    freeReplyObject(rkt_cmd(raw, "SET", "m:value", "hello", NULL));
    r = run(c, &look);
    ASSERT_EQ(r->elements, 2);
    ASSERT_EQ(element_int(r, 0), 1);
    ASSERT_STR_EQ(r->element[1]->str, "hello");
    rk__reply_free(r);

    /* With a real ttl the same call takes the free lock, as before. */
    freeReplyObject(rkt_cmd(raw, "DEL", "m:value", NULL));
    script_call take = {&rk__script_memo_check, 2, 4, {"m:value", "m:lock", "tok", "1000"}};
    r = run(c, &take);
    ASSERT_EQ(element_int(r, 0), 2);
    ASSERT_EQ(exists(raw, "m:lock"), 1);
    rk__reply_free(r);
    redisFree(raw);
    rk__conn_free(c);
    rkt_server_stop(&server);
}

RKT_MAIN(RKT_CASE(sha_is_what_script_load_returns),
         RKT_CASE(noscript_costs_one_eval_then_evalsha_alone),
         RKT_CASE(memo_check_with_ttl_0_only_looks))
