#include "scripts.h"

#include <stdio.h>
#include <string.h>

#include "error_int.h"

#define MAX_ARGS 16

static int run_once(rk__conn *c, const char *verb, const char *body, int nkeys, int nargs,
                    const char *const *args, const size_t *lens, redisReply **reply,
                    uint64_t deadline)
{
    const char *argv[MAX_ARGS + 3];
    size_t argvlen[MAX_ARGS + 3];
    char nk[8];
    argv[0] = verb, argvlen[0] = strlen(verb);
    argv[1] = body, argvlen[1] = strlen(body);
    argv[2] = nk, argvlen[2] = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    for (int i = 0; i < nargs; i++)
        argv[3 + i] = args[i], argvlen[3 + i] = lens[i];
    rk__cmd cmd = {3 + nargs, argv, argvlen};
    return rk__conn_exec(c, &cmd, 1, reply, deadline);
}

int rk__script_run(rk__conn *c, const rk__script *script, int nkeys, int nargs,
                   const char *const *args, const size_t *lens, redisReply **reply,
                   uint64_t deadline)
{
    if (nargs > MAX_ARGS)
        return rk__err(RK_EINVAL, "%s script: too many arguments", script->name);
    int rc = run_once(c, "EVALSHA", script->sha, nkeys, nargs, args, lens, reply, deadline);
    if (rc == RK_OK && (*reply)->type == REDIS_REPLY_ERROR &&
        !strncmp((*reply)->str, "NOSCRIPT", 8)) {
        rk__reply_free(*reply);
        rc = run_once(c, "EVAL", script->source, nkeys, nargs, args, lens, reply, deadline);
    }
    return rc;
}
