/* Helpers for the TLS tests: the TLS fixture server (tests/support/tls-fixture.sh, located
 * through the environment) and its certificates, which private TLS servers
 * (rkt_server_start_tls) use too. Administration goes through each server's plain Unix socket,
 * since hiredis 0.14 has no TLS. */
#ifndef RKT_TLS_ENV_H
#define RKT_TLS_ENV_H

#include "redis_env.h"

/* The fixture: TLS on 127.0.0.1 (certificate for DNS:localhost and IP:127.0.0.1). */
int rkt_tls_port(void);

/* The fixture's certificate directory (for rkt_server_start_tls too), and "<that dir>/<file>"
 * (ca.crt, client.key, other-ca.crt, cadir, ...), valid until the eighth next call. */
const char *rkt_tls_certs(void);
const char *rkt_tls_file(const char *file);

/* hiredis on the fixture's Unix socket. */
redisContext *rkt_tls_admin(void);

/* "connection.uri=rediss://localhost:<port>;options.tls_ca_file=<ca.crt>;options.prefix=<p>;"
 * followed by `extra` (may be NULL), for `port` (0: the fixture). Into a static buffer. */
const char *rkt_tls_settings(int port, const char *extra);
/* The same, parsed: for the rkt_open_* helpers. */
rk_config *rkt_tls_config(int port, const char *extra);

/* Store, read back and remove one key. */
void rkt_tls_roundtrip(rk_cache *c);

/* Run `fn` with the process' stderr sent to a buffer; returns the text (static buffer). */
const char *rkt_capture_stderr(void (*fn)(void *), void *arg);

#endif
