#include "scripts.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "error_int.h"

/* The SHA1 fields are filled on first use. */

rk__script rk__script_release = {
    .name = "unlock",
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
              "  redis.call('DEL', KEYS[1])\n"
              "  if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], KEYS[1]) end\n"
              "  return 1\n"
              "end\n"
              "return 0\n",
};

rk__script rk__script_extend = {
    .name = "lock extend",
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
              "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
              "end\n"
              "return 0\n",
};

rk__script rk__script_memo_store = {
    .name = "memolock store",
    .source = "if ARGV[2] == '' then\n"
              "  redis.call('SET', KEYS[1], ARGV[1])\n"
              "else\n"
              "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
              "end\n"
              "redis.call('PUBLISH', ARGV[3], ARGV[1])\n"
              "if redis.call('GET', KEYS[2]) == ARGV[4] then\n"
              "  redis.call('DEL', KEYS[2])\n"
              "  return 1\n"
              "end\n"
              "return 0\n",
};

rk__script rk__script_memo_check = {
    .name = "memolock check",
    .source = "local v = redis.call('GET', KEYS[1])\n"
              "if v then return {1, v} end\n"
              "if ARGV[2] == '0' then return {0} end\n"
              "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])\n"
              "   or redis.call('GET', KEYS[2]) == ARGV[1] then\n"
              "  return {2}\n"
              "end\n"
              "return {0}\n",
};

/* The fair lock. Waiters queue their tokens in a list (KEYS[2]) and keep "alive_until:ttl" in
 * a hash (KEYS[3]), refreshed on every poll; entries that stop being refreshed are skipped, so a
 * dead waiter never holds the queue up for long. Times come from the server's clock. */
#define RK__LUA_NOW                                                                                \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

rk__script rk__script_lock_acquire = {
    .name = "lock acquire",
    .source =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end\n" RK__LUA_NOW
        "local head = redis.call('LINDEX', KEYS[2], 0)\n"
        "while head do\n"
        "  local meta = redis.call('HGET', KEYS[3], head)\n"
        "  if meta and tonumber(string.match(meta, '^(%d+)')) >= now then break end\n"
        "  redis.call('LPOP', KEYS[2])\n"
        "  redis.call('HDEL', KEYS[3], head)\n"
        "  head = redis.call('LINDEX', KEYS[2], 0)\n"
        "end\n"
        "if (not head or head == ARGV[1])\n"
        "   and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
        "  if head then\n"
        "    redis.call('LPOP', KEYS[2])\n"
        "    redis.call('HDEL', KEYS[3], head)\n"
        "  end\n"
        "  return 1\n"
        "end\n"
        "if ARGV[3] ~= '0' then\n"
        "  local alive = tonumber(ARGV[3])\n"
        "  if redis.call('HSET', KEYS[3], ARGV[1], (now + alive) .. ':' .. ARGV[2]) == 1 then\n"
        "    redis.call('RPUSH', KEYS[2], ARGV[1])\n"
        "  end\n"
        "  redis.call('PEXPIRE', KEYS[2], alive * 2)\n"
        "  redis.call('PEXPIRE', KEYS[3], alive * 2)\n"
        "end\n"
        "return 0\n",
};

rk__script rk__script_lock_release = {
    .name = "lock release",
    .source = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n" RK__LUA_NOW
              "local nxt = redis.call('LPOP', KEYS[2])\n"
              "while nxt do\n"
              "  local meta = redis.call('HGET', KEYS[3], nxt)\n"
              "  redis.call('HDEL', KEYS[3], nxt)\n"
              "  if meta then\n"
              "    local alive, ttl = string.match(meta, '^(%d+):(%d+)$')\n"
              "    if tonumber(alive) >= now then\n"
              "      redis.call('SET', KEYS[1], nxt, 'PX', ttl)\n"
              "      redis.call('PUBLISH', ARGV[2], nxt)\n"
              "      return 2\n"
              "    end\n"
              "  end\n"
              "  nxt = redis.call('LPOP', KEYS[2])\n"
              "end\n"
              "redis.call('DEL', KEYS[1])\n"
              "redis.call('PUBLISH', ARGV[2], '')\n"
              "return 1\n",
};

rk__script rk__script_lock_leave = {
    .name = "lock leave",
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end\n"
              "redis.call('LREM', KEYS[2], 1, ARGV[1])\n"
              "redis.call('HDEL', KEYS[3], ARGV[1])\n"
              "return 0\n",
};

static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void hash_one(rk__script *s)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)s->source, strlen(s->source), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
}

static void hash_all(void)
{
    hash_one(&rk__script_release);
    hash_one(&rk__script_extend);
    hash_one(&rk__script_memo_store);
    hash_one(&rk__script_memo_check);
    hash_one(&rk__script_lock_acquire);
    hash_one(&rk__script_lock_release);
    hash_one(&rk__script_lock_leave);
}

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

int rk__script_run(rk__conn *c, rk__script *script, int nkeys, int nargs, const char *const *args,
                   const size_t *lens, redisReply **reply, uint64_t deadline)
{
    pthread_once(&sha_once, hash_all);
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
