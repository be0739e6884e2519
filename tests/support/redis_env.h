/* Helpers for tests against real redis-server processes: the shared ctest fixture (whose
 * location comes from the environment), private servers (plain or TLS) a test starts, kills,
 * pauses and restarts itself, and opening a cache, lock or memolock on either. */
#ifndef RKT_REDIS_ENV_H
#define RKT_REDIS_ENV_H

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include "harness.h"

/* The value of environment variable `name`; the test fails when it is unset or empty (the
 * fixtures' locations come from ctest through run-test.sh). */
const char *rkt_env(const char *name);

/* The fixture server (fails the test when run outside ctest). */
const char *rkt_host(void);
int rkt_port(void);
const char *rkt_socket(void);

/* A configuration for the fixture server: connection.host/port, a key prefix unique to this
 * process (so parallel tests never share keys), then `extra` ("k=v;k=v", may be NULL). */
rk_config *rkt_config(const char *extra);

/* The prefix rkt_config() sets, e.g. "t1234:". */
const char *rkt_prefix(void);

/* A raw hiredis connection to the fixture (or to `port`, or to the Unix socket at `path`), to
 * inspect and arrange state. */
redisContext *rkt_raw(void);
redisContext *rkt_raw_port(int port);
redisContext *rkt_raw_socket(const char *path);

/* Run a command given as NULL-terminated strings; the reply must be freed with
 * freeReplyObject. Fails the test on a connection error. */
redisReply *rkt_cmd(redisContext *c, ...);

/* Monotonic milliseconds. */
uint64_t rkt_now_ms(void);

/* A loopback TCP port nobody listens on right now. */
int rkt_free_port(void);

/* Block until `n` connections of the server behind `c` are subscribed to `channel`. */
void rkt_wait_subscribers(redisContext *c, const char *channel, long long n);
/* The same for a shard channel (SSUBSCRIBE). */
void rkt_wait_shard_subscribers(redisContext *c, const char *channel, long long n);

/* A private redis-server on a free loopback port, with its data, log (redis.log) and a plain
 * Unix socket in a temp dir. It is killed when the thread that started it exits (a failed
 * assertion exits without stopping it), so start servers from the test's main thread. */
typedef struct rkt_server {
    pid_t pid;
    int port;        /* plain TCP, or TLS only for rkt_server_start_tls */
    char dir[128];   /* kept when a test fails, for its redis.log */
    char sock[160];  /* plain on TLS servers too: hiredis 0.14 has no TLS */
    char certs[256]; /* TLS: the directory with server.crt, server.key and ca.crt; else "" */
    char extra[512]; /* extra command-line arguments, space-separated */
    char conf[176];  /* its config file, the first argument (rkt_servers_start_conf); else "" */
} rkt_server;

void rkt_server_start(rkt_server *s, const char *extra_args);
/* With `conf` written to redis.conf in its dir, which becomes its configuration file (the first
 * argument; the command line still wins): a sentinel needs one it can rewrite, e.g.
 * rkt_server_start_conf(s, "sentinel monitor m 127.0.0.1 6379 2\n", "--sentinel"). */
void rkt_server_start_conf(rkt_server *s, const char *conf, const char *extra_args);
/* `n` of them, started side by side (faster than one after the other). */
void rkt_servers_start(rkt_server *s, int n, const char *extra_args);
/* The same, each reading <dir>/redis.conf, written with conf[i] first: Redis Sentinel needs a
 * config file, and rewrites it with what it has learnt (as CONFIG REWRITE does on a server a
 * sentinel reconfigures), so that a restart finds it. Command-line arguments still win. */
void rkt_servers_start_conf(rkt_server *s, int n, const char *const *conf, const char *extra_args);
/* TLS only on s->port (plain TCP off). Client certificates are not asked for unless
 * `extra_args` has "--tls-auth-clients yes". */
void rkt_server_start_tls(rkt_server *s, const char *cert_dir, const char *extra_args);
void rkt_server_kill(rkt_server *s);                 /* SIGKILL, keeping the dir for a restart */
void rkt_server_restart(rkt_server *s);              /* SIGKILL, then the same port and dir */
void rkt_server_stop(rkt_server *s);                 /* SIGTERM, wait, remove the dir */
redisContext *rkt_server_admin(const rkt_server *s); /* hiredis on its Unix socket */
/* Like rkt_config(), for a plain server (a TLS one needs rkt_tls_config(s->port, extra)). */
rk_config *rkt_server_config(const rkt_server *s, const char *extra);

/* ---- opening components ----
 * Each opener takes a configuration (rkt_config, rkt_server_config, rkt_settings, ...) and
 * frees it, so that one expression opens a component: rkt_open_lock(rkt_config(extra)). */

/* A settings string parsed, or the test fails. */
rk_config *rkt_settings(const char *settings);

/* New and configured (or the test fails), then opened: returns what open returned. *out is set
 * either way, and the caller frees it. */
int rkt_try_open_cache(rk_config *cfg, rk_cache **out);

/* New, configured and opened, or the test fails. */
rk_cache *rkt_open_cache(rk_config *cfg);
rk_lock *rkt_open_lock(rk_config *cfg);
rk_memolock *rkt_open_memolock(rk_config *cfg);
rk_semaphore *rkt_open_semaphore(rk_config *cfg);

/* The integer reply of `cmd key` on the private server `s`, or -1 for any other reply. */
long long rkt_server_int(const rkt_server *s, const char *cmd, const char *key);

/* One of each component, for tests that do the same to all three. */
typedef struct rkt_trio {
    rk_cache *cache;
    rk_lock *lock;
    rk_memolock *memo;
} rkt_trio;

/* New handles, each configured with `cfg` (borrowed; NULL: not configured). */
void rkt_trio_new(rkt_trio *t, const rk_config *cfg);
void rkt_trio_free(rkt_trio *t);

/* Connections to the (stopped) server `s` holding a request it has not read yet
 * (/proc/net/tcp): a call is then surely blocked on it. */
int rkt_server_unanswered(const rkt_server *s);

/* The near cache's counters (rk_cache_get_stats events) and size, for its tests. */
typedef struct rkt_near {
    uint64_t hits, misses, invalidations, evictions, flushes, entries, bytes;
} rkt_near;
rkt_near rkt_near_stats(rk_cache *c);

/* Zeroed memory shared with forked children (MAP_SHARED); unmap it with munmap. */
void *rkt_shared_alloc(size_t size);

#endif
