#include "scripts.h"

#include <stdio.h>
#include <string.h>

#include "error_int.h"

#define MAX_ARGS 16

/* The script's command, then `then` (may be NULL) in the same write: two replies. */
static int run_once(rk__conn *c, const char *verb, const char *body, int nkeys, int nargs,
                    const char *const *args, const size_t *lens, const rk__cmd *then,
                    redisReply **replies, uint64_t deadline)
{
    const char *argv[MAX_ARGS + 3];
    size_t argvlen[MAX_ARGS + 3];
    char nk[8];
    argv[0] = verb, argvlen[0] = strlen(verb);
    argv[1] = body, argvlen[1] = strlen(body);
    argv[2] = nk, argvlen[2] = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    for (int i = 0; i < nargs; i++)
        argv[3 + i] = args[i], argvlen[3 + i] = lens[i];
    rk__cmd cmds[2] = {{3 + nargs, argv, argvlen}};
    if (then)
        cmds[1] = *then;
    return rk__conn_exec(c, cmds, then ? 2 : 1, replies, deadline);
}

int rk__script_run_then(rk__conn *c, const rk__script *script, int nkeys, int nargs,
                        const char *const *args, const size_t *lens, const rk__cmd *then,
                        redisReply **reply, redisReply **then_reply, uint64_t deadline)
{
    redisReply *r[2] = {NULL, NULL};
    if (nargs > MAX_ARGS)
        return rk__err(RK_EINVAL, "%s script: too many arguments", script->name);
    int rc = run_once(c, "EVALSHA", script->sha, nkeys, nargs, args, lens, then, r, deadline);
    if (rc == RK_OK && r[0]->type == REDIS_REPLY_ERROR && !strncmp(r[0]->str, "NOSCRIPT", 8)) {
        rk__reply_free(r[0]); /* `then` ran before the script: run both again */
        rk__reply_free(r[1]);
        rc = run_once(c, "EVAL", script->source, nkeys, nargs, args, lens, then, r, deadline);
    }
    *reply = r[0];
    if (then_reply)
        *then_reply = r[1];
    return rc;
}

int rk__script_run(rk__conn *c, const rk__script *script, int nkeys, int nargs,
                   const char *const *args, const size_t *lens, redisReply **reply,
                   uint64_t deadline)
{
    return rk__script_run_then(c, script, nkeys, nargs, args, lens, NULL, reply, NULL, deadline);
}
