/* One Redis connection: a transport, a hiredis reply parser, and the AUTH/SELECT handshake.
 * conn owns the wire: nothing above it touches a socket or the parser. hiredis is used only to
 * parse replies (built by resp.c with redkit's allocator); commands are encoded here. A
 * connection is used by one thread at a time; any transport or protocol failure marks it
 * broken. */
#ifndef RK_CONN_H
#define RK_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "resp.h"
#include "transport.h"

#define RK__READ_CHUNK 16384

struct rk__conn;

/* A component's extension of the handshake (the near cache's CLIENT TRACKING): `open` runs on
 * every new connection to an endpoint that names the hook, after AUTH/SELECT/READONLY (a
 * failure fails the connect); `close` runs when such a connection is freed. Both may use the
 * connection's hook_data and hook_tag. */
typedef struct rk__conn_hook {
    int (*open)(void *arg, struct rk__conn *c, const rk__endpoint *ep, void *tls_ctx,
                uint64_t deadline);
    void (*close)(void *arg, struct rk__conn *c);
    void *arg;
} rk__conn_hook;

typedef struct rk__conn {
    rk__transport tr;
    redisReader *reader;
    bool broken;
    bool secret_send;      /* the handshake: the encoded batch holds the password, wipe it */
    rk__reply_class cls;   /* first error class read since the last send: the retry loop's input */
    rk__redirect redirect; /* where the first MOVED or ASK since the last send pointed */
    uint64_t idle_since;   /* monotonic ms, set by the pool */
    uint64_t gen;          /* pool generation that created it */
    uint64_t connect_us;   /* how long connect and handshake took */
    bool announced;        /* its connect event was raised (by the client, on first use) */
    struct rk__conn *next; /* idle list */
    const rk__conn_hook *hook; /* the endpoint's, when its open step ran */
    void *hook_data;           /* the hook's state for this connection */
    uint64_t hook_tag;
    struct rk__conn *prev_all; /* every connection of the pool, for close and fork */
    struct rk__conn *next_all;
    redisReply *big; /* a large bulk reply read past the parser, next in line (conn.c) */
    char rbuf[RK__READ_CHUNK];
} rk__conn;

/* A command as argument vectors (binary-safe). */
typedef struct rk__cmd {
    int argc;
    const char *const *argv;
    const size_t *argvlen;
} rk__cmd;

/* Connect (TLS with `tls_ctx` when the endpoint says so), then AUTH and SELECT, before
 * `deadline` and within ep->connect_timeout_ms. RK_EAUTH when the server refuses the
 * credentials. */
int rk__conn_open(rk__conn **out, const rk__endpoint *ep, void *tls_ctx, uint64_t deadline);
void rk__conn_free(rk__conn *c);

/* Send `n` commands in one write and read their `n` replies into `replies` (caller frees each
 * with rk__reply_free). Error replies are returned as replies, not failures. On failure every
 * replies[i] is NULL and the connection is broken. */
int rk__conn_exec(rk__conn *c, const rk__cmd *cmds, size_t n, redisReply **replies,
                  uint64_t deadline);

/* The two halves of rk__conn_send, for a connection another thread may be reading meanwhile
 * (plain TCP only, pipeline.h): they touch no state of the connection but its socket's send
 * timeout, and the caller decides what a failure means. Encode `n` commands into `stack`
 * (`cap` bytes) when they fit, else into one allocated buffer (the caller frees `*out` when it
 * is not `stack`); then write them. */
int rk__conn_encode(const rk__conn *c, const rk__cmd *cmds, size_t n, char *stack, size_t cap,
                    char **out, size_t *len);
int rk__conn_write(rk__conn *c, const char *buf, size_t len, uint64_t deadline);

/* Lower-level halves, for the subscriber: send without reading, and read one reply. */
int rk__conn_send(rk__conn *c, const rk__cmd *cmds, size_t n, uint64_t deadline);
int rk__conn_recv(rk__conn *c, redisReply **reply, uint64_t deadline);

/* A reply already buffered, without reading: `*reply` is NULL when none is complete. */
int rk__conn_buffered(rk__conn *c, redisReply **reply);

/* Wait until the connection or `wake_fd` (ignored if < 0) is readable, or `until` passes. */
int rk__conn_wait(rk__conn *c, int wake_fd, uint64_t until, bool *readable, bool *woken);

/* One read from the socket into the parser (then take replies with rk__conn_buffered). */
int rk__conn_fill(rk__conn *c, uint64_t deadline);

/* As rk__conn_fill, but a deadline that passes before any byte arrives leaves the connection
 * usable (RK_ETIMEDOUT, not broken): a timed read consumes nothing, so the replies that other
 * callers wait for on a shared connection (pipeline.h) are still there for them. */
int rk__conn_fill_until(rk__conn *c, uint64_t deadline);

/* Non-blocking check that an idle connection is still usable (no EOF, no stray bytes). */
bool rk__conn_alive(rk__conn *c);

/* From another thread: make the connection's current reader or writer fail now. */
void rk__conn_shutdown(rk__conn *c);

/* Free a connection inherited across fork() without disturbing the parent's session. */
void rk__conn_abandon(rk__conn *c);

/* In a forked child, a connection another thread of the parent was using at the fork: its
 * reader and TLS state may be half-updated, so only its socket is closed, and its memory is
 * left behind, kept reachable (once per fork and connection in use). */
void rk__conn_drop_in_use(rk__conn *c);

#endif
