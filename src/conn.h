/* One Redis connection: a transport, a hiredis reply parser, and the AUTH/SELECT handshake.
 * hiredis is used only to parse replies (redisReader, building replies with redkit's
 * allocator); commands are encoded in conn.c. A connection is used by one thread
 * at a time; any transport or protocol failure marks it broken. */
#ifndef RK_CONN_H
#define RK_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "transport.h"

#define RK__READ_CHUNK 16384

typedef struct rk__conn {
    rk__transport tr;
    redisReader *reader;
    bool broken;
    uint64_t idle_since; /* monotonic ms, set by the pool */
    uint64_t gen;        /* pool generation that created it */
    struct rk__conn *next;
    char rbuf[RK__READ_CHUNK];
} rk__conn;

/* A command as argument vectors (binary-safe). */
typedef struct rk__cmd {
    int argc;
    const char *const *argv;
    const size_t *argvlen;
} rk__cmd;

/* Connect, then AUTH and SELECT as the endpoint says, before `deadline` (each attempt is also
 * bounded by ep->connect_timeout_ms). RK_EAUTH when the server refuses the credentials. */
int rk__conn_open(rk__conn **out, const rk__endpoint *ep, uint64_t deadline);
void rk__conn_free(rk__conn *c);

/* Send `n` commands in one write and read their `n` replies into `replies` (caller frees each
 * with rk__reply_free). Error replies are returned as replies, not failures. On failure every
 * replies[i] is NULL and the connection is broken. */
int rk__conn_exec(rk__conn *c, const rk__cmd *cmds, size_t n, redisReply **replies,
                  uint64_t deadline);

/* Lower-level halves, for the subscriber: send without reading, and read one reply. */
int rk__conn_send(rk__conn *c, const rk__cmd *cmds, size_t n, uint64_t deadline);
int rk__conn_recv(rk__conn *c, redisReply **reply, uint64_t deadline);

/* A reply already buffered, without reading: `*reply` is NULL when none is complete. */
int rk__conn_buffered(rk__conn *c, redisReply **reply);

/* A reply parser building replies with redkit's allocator (free them with rk__reply_free). */
redisReader *rk__reader_new(void);

void rk__reply_free(redisReply *r);

/* Take the string out of a STRING reply (NUL-terminated, redkit-allocated) and free the reply. */
char *rk__reply_take_str(redisReply *r, size_t *len);

/* Map an ERROR reply to RK_EAUTH (NOAUTH, WRONGPASS) or RK_EREPLY; `what` names the command.
 * Callers prefix the operation and key. */
int rk__reply_error(const redisReply *r, const char *what);

/* Fail with RK_EREPLY unless `r` has type `type`: an ERROR reply maps as above, any other type
 * is a protocol surprise. */
int rk__reply_expect(const redisReply *r, int type, const char *what);

#endif
