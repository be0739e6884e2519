/* A private Redis Sentinel deployment for tests: one master, one replica and three sentinels on
 * loopback (quorum 2, down-after-milliseconds 1000, failover-timeout 5000), started by the test
 * itself, with helpers to find the master, wait for a failover and time the sentinels'
 * announcement of it. Everything is asked of the servers with raw hiredis, never through
 * redkit: this is the oracle the Sentinel client is tested against. */
#ifndef RKT_SENTINEL_ENV_H
#define RKT_SENTINEL_ENV_H

#include "redis_env.h"

enum {
    RKT_SENTINEL_NODES = 2, /* data nodes: a master and its replica */
    RKT_SENTINELS = 3,
    RKT_SENTINEL_QUORUM = 2,
    RKT_SENTINEL_DOWN_AFTER_MS = 1000,
    RKT_SENTINEL_FAILOVER_TIMEOUT_MS = 5000,
};

/* node[0] starts as the master and node[1] as its replica; a failover swaps them, so ask
 * rkt_sentinel_master rather than relying on it. Each process is an rkt_server a test may
 * SIGKILL (rkt_server_kill: pid 0, left alone by every helper until rkt_server_restart),
 * SIGSTOP and SIGCONT. Every process reads a config file in its dir that it rewrites with what
 * it learns (a sentinel its state, a data node the role a sentinel gives it), so a restarted
 * process comes back as what it was. */
typedef struct rkt_sentinel {
    rkt_server node[RKT_SENTINEL_NODES];
    rkt_server sentinel[RKT_SENTINELS];
    char name[64];              /* the master's name the sentinels monitor */
    char sentinels[256];        /* "127.0.0.1:p0,127.0.0.1:p1,127.0.0.1:p2" */
    char master_password[64];   /* requirepass (and masterauth) of the data nodes; "" none */
    char sentinel_password[64]; /* requirepass of the sentinels; "" none */
} rkt_sentinel;

/* Start everything, then wait until rkt_sentinel_wait_ok holds: about 2.3 s, as sentinels
 * find each other through hello messages published every 2 s. The processes are killed when
 * the calling thread exits: call it from the test's main thread. */
void rkt_sentinel_start(rkt_sentinel *s, const char *name);
/* The same with passwords (NULL: none): the data nodes' requirepass and masterauth, which the
 * sentinels are given (sentinel auth-pass), and the sentinels' own requirepass (sentinel-pass,
 * which they use with each other). */
void rkt_sentinel_start_auth(rkt_sentinel *s, const char *name, const char *master_password,
                             const char *sentinel_password);
void rkt_sentinel_stop(rkt_sentinel *s);

/* connection.uri=redis://<sentinels>, options.sentinel_master=<name>, rkt_prefix() as
 * options.prefix, then `extra` ("k=v;k=v"; passwords are the caller's to add). */
rk_config *rkt_sentinel_config(const rkt_sentinel *s, const char *extra);

/* Raw hiredis on the Unix socket of node[i] or sentinel[i], authenticated when the fixture has
 * passwords; fails the test when it does not answer within 5 s. */
redisContext *rkt_sentinel_node_raw(const rkt_sentinel *s, int i);
redisContext *rkt_sentinel_sentinel_raw(const rkt_sentinel *s, int i);

/* The index in node[] of the master now: what the first live sentinel that answers says
 * (SENTINEL get-master-addr-by-name), confirmed by that node's ROLE; -1 when it says nothing,
 * names neither node, or the node named is not a master (down, paused, or not yet promoted). */
int rkt_sentinel_master(rkt_sentinel *s);

/* Block until every live sentinel names the same master, whose ROLE says master, with no
 * failover in progress; lists every other live data node as a replica that is neither down nor
 * disconnected, with its link to the master up (as its own ROLE says too); and knows every
 * other sentinel. Fails the test after `timeout_ms`, saying what was missing. */
void rkt_sentinel_wait_ok(rkt_sentinel *s, uint64_t timeout_ms);

/* After node[old_master] was killed, paused or failed over: block until every live sentinel
 * names the other node and that node's ROLE says master; returns its index. A demoted old
 * master stays a master until a sentinel converts it, 10 to 20 s after the switch: wait for
 * that with rkt_sentinel_wait_ok. */
int rkt_sentinel_wait_failover(rkt_sentinel *s, int old_master, uint64_t timeout_ms);

/* SENTINEL FAILOVER <name> on a live sentinel: the replica is promoted without agreement from
 * the others, and the old master is reconfigured as its replica. Fails the test unless +OK. */
void rkt_sentinel_failover(rkt_sentinel *s);

/* When the sentinels announce a switch: subscriptions to +switch-master on every live
 * sentinel, opened before the failover is provoked. */
typedef struct rkt_sentinel_watch {
    redisContext *sub[RKT_SENTINELS]; /* NULL: that sentinel was down */
    uint64_t at_ms[RKT_SENTINELS];    /* rkt_now_ms() when it announced, 0: not yet */
    int to_port[RKT_SENTINELS];       /* the new master's port it announced */
    char name[64];
} rkt_sentinel_watch;

void rkt_sentinel_watch_start(const rkt_sentinel *s, rkt_sentinel_watch *w);
/* Block until every watched sentinel has announced a switch of s->name; returns when the last
 * one did (rkt_now_ms). The times are when the messages were read: call it right after
 * provoking the failover, before rkt_sentinel_wait_failover. Fails the test after
 * `timeout_ms`. */
uint64_t rkt_sentinel_watch_wait(rkt_sentinel_watch *w, uint64_t timeout_ms);
void rkt_sentinel_watch_stop(rkt_sentinel_watch *w);

#endif
