/* A private Redis Cluster for tests: 3 masters and 3 replicas on loopback, started and joined
 * by the test itself, with helpers to find who serves a key, wait for the cluster to settle
 * after a failover, and move a slot in steps a test can act between. Everything is asked of
 * the servers with raw hiredis, never through redkit: this is the oracle the cluster client is
 * tested against. */
#ifndef RKT_CLUSTER_ENV_H
#define RKT_CLUSTER_ENV_H

#include "redis_env.h"

enum { RKT_CLUSTER_NODES = 6, RKT_CLUSTER_MASTERS = 3, RKT_CLUSTER_SLOTS = 16384 };

/* node[0..2] start as the masters (slots 0-5460, 5461-10922, 10923-16383) and node[3 + i] as
 * the replica of node[i]; a failover changes that, so ask rkt_cluster_master_of and
 * rkt_cluster_replica_of rather than relying on it. A killed node (rkt_server_kill) has pid 0
 * and is left alone by every helper until rkt_server_restart brings it back. */
typedef struct rkt_cluster {
    rkt_server node[RKT_CLUSTER_NODES];
    int n;                          /* RKT_CLUSTER_NODES */
    char id[RKT_CLUSTER_NODES][41]; /* CLUSTER MYID of each node */
    char seeds[256];                /* "127.0.0.1:p0,127.0.0.1:p1,127.0.0.1:p2" (the masters) */
} rkt_cluster;

/* Start, join and wait until every node says cluster_state:ok, agrees on the slot map, and
 * each replica is connected to its master: about 2.3 s, as a new master does not say ok
 * before it has run for 2 s. `extra_args` go to every redis-server after the cluster's own
 * (the last occurrence wins, so "--cluster-node-timeout 1000" overrides). The servers are
 * killed when the calling thread exits: call it from the test's main thread. */
void rkt_cluster_start(rkt_cluster *c, const char *extra_args);
void rkt_cluster_stop(rkt_cluster *c);

/* connection.uri=redis://<seeds>, rkt_prefix() as options.prefix, then `extra` ("k=v;k=v"). */
rk_config *rkt_cluster_config(const rkt_cluster *c, const char *extra);

/* The index in node[] of the master serving `slot` (or `key`'s slot) now, as a live node's
 * CLUSTER SLOTS says; -1 when nobody does. */
int rkt_cluster_owner(rkt_cluster *c, int slot);
int rkt_cluster_master_of(rkt_cluster *c, const char *key);
/* The index of a replica of node[master], as a live node's CLUSTER REPLICAS says; -1: none. */
int rkt_cluster_replica_of(rkt_cluster *c, int master);

/* Block until every live node says cluster_state:ok, all of them report the same slot owners,
 * replicas and failed nodes, and every live replica's link to its master is up; fails the
 * test after `timeout_ms`, naming the node that was not there yet. */
void rkt_cluster_wait_ok(rkt_cluster *c, uint64_t timeout_ms);
/* After rkt_server_kill of master node[dead_master]: block until none of the slots is owned by
 * it any more (its replica took over) and rkt_cluster_wait_ok holds. With the default
 * --cluster-node-timeout 2000 that takes about 4-5 s. */
void rkt_cluster_wait_promoted(rkt_cluster *c, int dead_master, uint64_t timeout_ms);

/* Moving `slot` from master node[from] to master node[to], in steps:
 * begin:        CLUSTER SETSLOT IMPORTING on `to`, then MIGRATING on `from`;
 * migrate_some: up to `count` of its keys (CLUSTER GETKEYSINSLOT, MIGRATE ... KEYS); returns
 *               how many moved, 0 when none were left;
 * finish:       the rest of the keys, then SETSLOT NODE on `to`, `from` and the other masters,
 *               and rkt_cluster_wait_ok so that every node knows the new owner on return.
 * Between begin and finish `from` answers ASK for the keys already moved. */
void rkt_cluster_slot_begin(rkt_cluster *c, int slot, int from, int to);
int rkt_cluster_slot_migrate_some(rkt_cluster *c, int slot, int from, int to, int count);
void rkt_cluster_slot_finish(rkt_cluster *c, int slot, int from, int to);

/* The hash slot of a key, computed here (CRC16-XMODEM mod 16384 of the hash tag, if any),
 * independently of the library's own. */
int rkt_cluster_keyslot(const char *key, size_t len);

#endif
