/* Helpers for tests against real redis-server processes: the shared ctest fixture (whose
 * location comes from the environment) and private servers a test starts, kills, pauses and
 * restarts itself. */
#ifndef RKT_REDIS_ENV_H
#define RKT_REDIS_ENV_H

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include "harness.h"

/* The fixture server (fails the test when run outside ctest). */
const char *rkt_host(void);
int rkt_port(void);
const char *rkt_socket(void);

/* A configuration for the fixture server: connection.host/port, a key prefix unique to this
 * process (so parallel tests never share keys), then `extra` ("k=v;k=v", may be NULL). */
rk_config *rkt_config(const char *extra);

/* The prefix rkt_config() sets, e.g. "t1234:". */
const char *rkt_prefix(void);

/* A raw hiredis connection to the fixture (or to `port`), to inspect and arrange state. */
redisContext *rkt_raw(void);
redisContext *rkt_raw_port(int port);

/* Run a command given as NULL-terminated strings; the reply must be freed with
 * freeReplyObject. Fails the test on a connection error. */
redisReply *rkt_cmd(redisContext *c, ...);

/* Monotonic milliseconds. */
uint64_t rkt_now_ms(void);

/* A loopback TCP port nobody listens on right now. */
int rkt_free_port(void);

/* Block until `n` connections of the server behind `c` are subscribed to `channel`. */
void rkt_wait_subscribers(redisContext *c, const char *channel, long long n);

/* A private redis-server on a free loopback port and a socket in a temp dir. */
typedef struct rkt_server {
    pid_t pid;
    int port;
    char dir[128];
    char sock[160];
    char extra[512]; /* extra command-line arguments, space-separated */
} rkt_server;

void rkt_server_start(rkt_server *s, const char *extra_args);
void rkt_server_kill(rkt_server *s);    /* SIGKILL */
void rkt_server_restart(rkt_server *s); /* same port and dir */
void rkt_server_stop(rkt_server *s);    /* SIGTERM, wait, remove the dir */
rk_config *rkt_server_config(const rkt_server *s, const char *extra);

#endif
