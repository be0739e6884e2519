/* Helpers for the TLS tests: the TLS fixture server (tests/support/tls-fixture.sh, located
 * through the environment), its certificates, and private TLS servers a test restarts or
 * configures differently. Administration goes through each server's plain Unix socket, since
 * hiredis 0.14 has no TLS. */
#ifndef RKT_TLS_ENV_H
#define RKT_TLS_ENV_H

#include "redis_env.h"

/* The fixture: TLS on 127.0.0.1 (certificate for DNS:localhost and IP:127.0.0.1). */
int rkt_tls_port(void);

/* "<certificate dir>/<file>" (ca.crt, client.key, other-ca.crt, cadir, ...). The result is
 * valid until the eighth next call. */
const char *rkt_tls_file(const char *file);

/* hiredis on the fixture's Unix socket. */
redisContext *rkt_tls_admin(void);

/* "connection.uri=rediss://localhost:<port>;options.tls_ca_file=<ca.crt>;options.prefix=<p>;"
 * followed by `extra` (may be NULL), for `port` (0: the fixture). Into a static buffer. */
const char *rkt_tls_settings(int port, const char *extra);

/* Configure and open a cache with a settings string; returns what open returned. */
int rkt_tls_open(const char *settings, rk_cache **out);

/* Store, read back and remove one key. */
void rkt_tls_roundtrip(rk_cache *c);

/* A private redis-server speaking TLS only, with the fixture's certificates; client
 * certificates are not asked for unless `extra_args` has "--tls-auth-clients yes". */
typedef struct rkt_tls_server {
    pid_t pid;
    int port;
    char dir[128];
    char sock[160];
    char extra[512]; /* extra command-line arguments, space-separated */
} rkt_tls_server;

void rkt_tls_server_start(rkt_tls_server *s, const char *extra_args);
void rkt_tls_server_restart(rkt_tls_server *s); /* SIGKILL, then the same port and dir */
void rkt_tls_server_stop(rkt_tls_server *s);
redisContext *rkt_tls_server_admin(const rkt_tls_server *s);

/* Run `fn` with the process' stderr sent to a buffer; returns the text (static buffer). */
const char *rkt_capture_stderr(void (*fn)(void *), void *arg);

#endif
