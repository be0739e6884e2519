/* The Lua scripts redkit runs. Each is src/lua/<name>.lua, whose header says what its KEYS and
 * ARGV are and what it returns; the build embeds it here with its SHA1 (cmake/embed_lua.cmake).
 * They are sent with EVALSHA and fall back to EVAL when the server answers NOSCRIPT (after a
 * restart or SCRIPT FLUSH). */
#ifndef RK_SCRIPTS_H
#define RK_SCRIPTS_H

#include "conn.h"

typedef struct rk__script {
    const char *name; /* in error messages */
    const char *source;
    char sha[41]; /* lowercase hex, as SCRIPT LOAD answers */
} rk__script;

/* Compare-and-delete, shared by the lock and the memolock. */
extern const rk__script rk__script_release;
/* The fair lock, with its waiter queue. */
extern const rk__script rk__script_lock_acquire;
extern const rk__script rk__script_lock_release;
extern const rk__script rk__script_lock_leave;
extern const rk__script rk__script_lock_try;
/* The quorum lock's release on one node: compare-and-delete, then PUBLISH. */
extern const rk__script rk__script_quorum_release;
/* The semaphore: acquire, release, extend and leave, one script. */
extern const rk__script rk__script_semaphore;
/* Compare-and-PEXPIRE: lock extend, memolock renew. */
extern const rk__script rk__script_extend;
/* The memolock: look for the value or take the lock; store, publish and release. */
extern const rk__script rk__script_memo_check;
extern const rk__script rk__script_memo_store;

/* Run `script` with `nkeys` keys followed by arguments (args[i], lens[i]); one reply. */
int rk__script_run(rk__conn *c, const rk__script *script, int nkeys, int nargs,
                   const char *const *args, const size_t *lens, redisReply **reply,
                   uint64_t deadline);

/* The same, followed in the same write by `then` (a command that depends on what the script
 * did on this connection, like WAIT), whose reply goes to `*then_reply`. After NOSCRIPT both
 * are sent again, the script as EVAL. */
int rk__script_run_then(rk__conn *c, const rk__script *script, int nkeys, int nargs,
                        const char *const *args, const size_t *lens, const rk__cmd *then,
                        redisReply **reply, redisReply **then_reply, uint64_t deadline);

#endif
