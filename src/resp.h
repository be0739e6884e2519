/* RESP replies: building them with redkit's allocator (hiredis' reader parses, these functions
 * allocate), and the one place that says what a server error means. Every error reply is put in
 * a class, and every class maps to one action of the client's retry loop, before anything
 * becomes an rk_error. */
#ifndef RK_RESP_H
#define RK_RESP_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a reply (or its absence) says about the command that was sent. */
typedef enum rk__reply_class {
    RK__REPLY_OK,          /* not an error reply */
    RK__REPLY_ERR,         /* the command ran and failed: ERR, WRONGTYPE, NOPERM, ... */
    RK__REPLY_MOVED,       /* the slot lives elsewhere for good (cluster) */
    RK__REPLY_ASK,         /* the slot is migrating: ask the target once (cluster) */
    RK__REPLY_TRYAGAIN,    /* a multi-key command during a migration (cluster) */
    RK__REPLY_CLUSTERDOWN, /* the cluster cannot serve the slot right now */
    RK__REPLY_LOADING,     /* a restarted server is loading its data set */
    RK__REPLY_READONLY,    /* a write reached a replica: the master moved */
    RK__REPLY_BUSY,        /* a script is running and blocks the server */
    RK__REPLY_NOSCRIPT,    /* EVALSHA of a script the server does not have */
    RK__REPLY_AUTH,        /* NOAUTH, WRONGPASS */
    RK__REPLY_OOM,         /* the server is over maxmemory */
    RK__REPLY_CONN,        /* no reply: the connection failed */
} rk__reply_class;

/* What the client's retry loop does about a class. None of the retried classes means the
 * command ran, so retrying cannot apply it twice. */
typedef enum rk__action {
    RK__ACT_DONE,      /* return the result as it is */
    RK__ACT_RETRY,     /* back off, then retry on the same node until the deadline */
    RK__ACT_RECONNECT, /* retry on a fresh connection, up to options.retries */
    RK__ACT_REDIRECT,  /* retry at the node the error names (ASK: once, map unchanged) */
    RK__ACT_REFRESH,   /* the topology changed: refresh it, then retry */
} rk__action;

rk__reply_class rk__reply_classify(const redisReply *r);

/* Where a MOVED or ASK reply sends the command: "MOVED 3999 127.0.0.1:6381". An empty host
 * (a node that does not know its own address) means the node that answered. */
typedef struct rk__redirect {
    rk__reply_class cls; /* MOVED or ASK; RK__REPLY_OK when there is none */
    unsigned slot;
    uint16_t port;
    char host[256];
} rk__redirect;

/* Parse a MOVED or ASK reply into `*out`; false (and out->cls OK) for anything else. */
bool rk__reply_redirect(const redisReply *r, rk__redirect *out);
rk__action rk__class_action(rk__reply_class c);
const char *rk__class_name(rk__reply_class c);

/* A reply parser building replies with redkit's allocator (free them with rk__reply_free). */
redisReader *rk__reader_new(void);

void rk__reply_free(redisReply *r);

/* Take the string out of a STRING reply (NUL-terminated, redkit-allocated) and free the reply. */
char *rk__reply_take_str(redisReply *r, size_t *len);

/* A bulk string reply owning `str` (`len` bytes, NUL-terminated; redkit's allocator), or NULL
 * when out of memory (`str` is then freed). */
redisReply *rk__reply_new_string(char *str, size_t len);

/* Map an ERROR reply to RK_EAUTH (NOAUTH, WRONGPASS) or RK_EREPLY; `what` names the command.
 * Callers prefix the operation and key. */
int rk__reply_error(const redisReply *r, const char *what);

/* Fail with RK_EREPLY unless `r` has type `type`: an ERROR reply maps as above, any other type
 * is a protocol surprise. */
int rk__reply_expect(const redisReply *r, int type, const char *what);

#endif
