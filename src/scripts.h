/* The Lua scripts redkit runs, in one place with their SHA1. They are sent with EVALSHA and
 * fall back to EVAL when the server answers NOSCRIPT (after a restart or SCRIPT FLUSH). */
#ifndef RK_SCRIPTS_H
#define RK_SCRIPTS_H

#include "conn.h"

typedef struct rk__script {
    const char *name;
    const char *source;
    char sha[41];
} rk__script;

/* KEYS[1] lock, ARGV[1] token, ARGV[2] channel: delete if ours, then notify waiters on the
 * channel unless it is "" (the memolock's channel carries values only). 1/0. No hand-off. */
extern rk__script rk__script_release;

/* The fair lock: KEYS[1] lock, KEYS[2] waiter queue (list), KEYS[3] waiter heartbeats (hash).
 * acquire, ARGV token, ttl ms, alive ms (0: do not queue): 1 if the lock is ours (free with no
 * live waiter ahead, or handed to us already), else 0 after queueing/refreshing our entry. */
extern rk__script rk__script_lock_acquire;
/* release, ARGV token, channel: hand the lock to the first live waiter and publish its token
 * (2), or delete it and publish "" (1); 0 when it is not ours. */
extern rk__script rk__script_lock_release;
/* leave, ARGV token: a waiter gives up; 1 if the lock was handed to it meanwhile, else 0. */
extern rk__script rk__script_lock_leave;
/* KEYS[1] lock, ARGV[1] token, ARGV[2] ttl ms: PEXPIRE if ours. 1/0. */
extern rk__script rk__script_extend;
/* KEYS[1] value, KEYS[2] lock, ARGV[1] value, ARGV[2] ttl ms or "" (none), ARGV[3] channel,
 * ARGV[4] token: store, publish, release the lock if ours. 1 if the lock was ours, else 0. */
extern rk__script rk__script_memo_store;

/* KEYS[1] value, KEYS[2] lock, ARGV[1] token, ARGV[2] lock ttl ms: {1, value} when the value
 * exists, {2} when the lock is (now) ours, {0} when someone else holds it. Matching the token
 * makes a re-run after a lost reply recognise the lock it took. */
extern rk__script rk__script_memo_check;

/* Run `script` with `nkeys` keys followed by arguments (args[i], lens[i]); one reply. */
int rk__script_run(rk__conn *c, rk__script *script, int nkeys, int nargs, const char *const *args,
                   const size_t *lens, redisReply **reply, uint64_t deadline);

#endif
