#include "cluster_env.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

/* How often the waits look again: the cluster announces nothing, so they poll (bounded). */
enum { POLL_MS = 20, START_TIMEOUT_MS = 30000, MIGRATE_BATCH = 100 };

/* On top of rkt_server's own arguments. The replica validity factor 0 lets a replica fail over
 * however long ago it last heard from its master (a test may have paused things); without
 * --repl-diskless-sync-delay 0 a master waits 5 s for more replicas before the first sync; a
 * stopped cluster's data is thrown away, so no master waits for its replicas to catch up. */
static const char cluster_args[] =
    "--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 "
    "--cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0 --shutdown-timeout 0";

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool live(const rkt_cluster *c, int i) { return c->node[i].pid > 0; }

static int index_of_port(const rkt_cluster *c, long long port)
{
    for (int i = 0; i < c->n; i++)
        if (c->node[i].port == port)
            return i;
    return -1;
}

/* ---- commands on one node ---- */

/* `argv` is NULL-terminated; the reply must be freed. Fails the test when node i does not
 * answer. */
static redisReply *node_cmd(const rkt_cluster *c, int i, const char **argv)
{
    size_t len[32];
    int argc = 0;
    for (; argv[argc] && argc < 32; argc++)
        len[argc] = strlen(argv[argc]);
    redisContext *ctx = rkt_server_admin(&c->node[i]);
    redisReply *r = redisCommandArgv(ctx, argc, argv, len);
    if (!r)
        rkt_fail(__FILE__, __LINE__, "%s on node %d (port %d) failed: %s", argv[0], i,
                 c->node[i].port, ctx->errstr);
    redisFree(ctx);
    return r;
}

/* The command must answer +OK. */
static void node_ok(const rkt_cluster *c, int i, const char **argv)
{
    redisReply *r = node_cmd(c, i, argv);
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
        rkt_fail(__FILE__, __LINE__, "%s %s on node %d (port %d): %s", argv[0],
                 argv[1] ? argv[1] : "", i, c->node[i].port,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
}

/* The first live node, for questions any of them can answer. */
static int any_live(const rkt_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (live(c, i))
            return i;
    rkt_fail(__FILE__, __LINE__, "no cluster node is running");
}

/* ---- what a node believes ---- */

/* A node's picture of the cluster, which all nodes share once it has settled: slot owners
 * from CLUSTER SLOTS (which leaves out migration states, so nodes agree on it while a slot
 * moves), replicas and failures from CLUSTER NODES (CLUSTER SLOTS omits a replica until it has
 * replicated a byte, so it cannot tell them). */
typedef struct view {
    short owner[RKT_CLUSTER_SLOTS];      /* index in node[], -1: nobody */
    signed char of[RKT_CLUSTER_NODES];   /* index of each replica's master, -1: not a replica */
    signed char down[RKT_CLUSTER_NODES]; /* flagged fail or fail? */
} view;

static int index_of_id(const rkt_cluster *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->id[i], id))
            return i;
    return -1;
}

/* Each range is [start, end, master, replica...], each node as [ip, port, id, ...]. */
static bool read_owners(const rkt_cluster *c, const redisReply *r, view *v)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i], *master;
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            (master = range->element[2])->type != REDIS_REPLY_ARRAY || master->elements < 2)
            return false;
        int owner = index_of_port(c, master->element[1]->integer);
        for (long long s = range->element[0]->integer; s <= range->element[1]->integer; s++)
            if (s >= 0 && s < RKT_CLUSTER_SLOTS)
                v->owner[s] = (short)owner;
    }
    return true;
}

/* Lines "<id> <ip>:<port>@<cport>[,<hostname>] <flags> <master id or -> ...". */
static bool read_roles(const rkt_cluster *c, const redisReply *r, view *v)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return false;
    for (const char *line = r->str; line && *line; line = strchr(line, '\n'), line += !!line) {
        char flags[128], master[64];
        int port;
        if (sscanf(line, "%*s %*[^:]:%d@%*s %127s %63s", &port, flags, master) != 3)
            return false;
        int i = index_of_port(c, port);
        if (i < 0)
            continue;
        v->down[i] = strstr(flags, "fail") != NULL;
        if (strstr(flags, "slave"))
            v->of[i] = (signed char)index_of_id(c, master);
    }
    return true;
}

/* On a connection that may fail: a node may be dead or restarting while we poll. */
static bool read_view(const rkt_cluster *c, redisContext *ctx, view *v)
{
    memset(v, -1, sizeof *v);
    memset(v->down, 0, sizeof v->down);
    redisReply *slots = redisCommand(ctx, "CLUSTER SLOTS");
    redisReply *nodes = slots ? redisCommand(ctx, "CLUSTER NODES") : NULL;
    bool ok = read_owners(c, slots, v) && read_roles(c, nodes, v);
    freeReplyObject(slots);
    freeReplyObject(nodes);
    return ok;
}

static void view_of(const rkt_cluster *c, int i, view *v)
{
    redisContext *ctx = rkt_server_admin(&c->node[i]);
    if (!read_view(c, ctx, v))
        rkt_fail(__FILE__, __LINE__, "unexpected CLUSTER SLOTS or NODES reply from node %d", i);
    redisFree(ctx);
}

/* ---- waiting for agreement ---- */

/* The checks ask on a connection that may fail: a node may be dead or restarting while we
 * poll. */
static bool state_ok(redisContext *ctx)
{
    redisReply *r = redisCommand(ctx, "CLUSTER INFO");
    bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
    freeReplyObject(r);
    return ok;
}

/* A master, or a replica whose link to its master is up. */
static bool link_up(redisContext *ctx)
{
    redisReply *r = redisCommand(ctx, "ROLE");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              (strcmp(r->element[0]->str, "slave") != 0 ||
               (r->elements > 3 && r->element[3]->type == REDIS_REPLY_STRING &&
                !strcmp(r->element[3]->str, "connected")));
    freeReplyObject(r);
    return ok;
}

/* Node i is fine on its own; its view goes to `v`, or `why` says what is missing. */
static bool node_settled(const rkt_cluster *c, int i, view *v, char *why, size_t n)
{
    struct timeval tv = {1, 0};
    redisContext *ctx = redisConnectUnixWithTimeout(c->node[i].sock, tv);
    const char *missing = NULL;
    if (!ctx || ctx->err || redisSetTimeout(ctx, tv) != REDIS_OK)
        missing = "does not answer";
    else if (!state_ok(ctx))
        missing = "does not say cluster_state:ok";
    else if (!link_up(ctx))
        missing = "is a replica not connected to its master";
    else if (!read_view(c, ctx, v))
        missing = "gives no slot map";
    redisFree(ctx);
    if (missing)
        snprintf(why, n, "node %d (port %d) %s", i, c->node[i].port, missing);
    return !missing;
}

/* Every live node settled, all with the first one's view, and none of the slots on `dead`
 * (-1: no such condition). */
static bool settled(const rkt_cluster *c, int dead, view *first, view *other, char *why, size_t n)
{
    int ref = -1;
    for (int i = 0; i < c->n; i++) {
        if (!live(c, i))
            continue;
        if (!node_settled(c, i, ref < 0 ? first : other, why, n))
            return false;
        if (ref < 0) {
            ref = i;
        } else if (memcmp(first, other, sizeof *first) != 0) {
            snprintf(why, n, "nodes %d and %d (ports %d, %d) disagree on the slot map", ref, i,
                     c->node[ref].port, c->node[i].port);
            return false;
        }
    }
    for (int s = 0; dead >= 0 && s < RKT_CLUSTER_SLOTS; s++)
        if (first->owner[s] == dead) {
            snprintf(why, n, "slot %d is still on the dead node %d", s, dead);
            return false;
        }
    return true;
}

static void wait_settled(rkt_cluster *c, int dead, uint64_t timeout_ms)
{
    view *v = calloc(2, sizeof *v);
    ASSERT_TRUE(v != NULL);
    char why[160] = "";
    uint64_t t0 = rkt_now_ms();
    while (!settled(c, dead, &v[0], &v[1], why, sizeof why)) {
        if (rkt_now_ms() - t0 > timeout_ms)
            rkt_fail(__FILE__, __LINE__, "the cluster did not settle within %llu ms: %s",
                     (unsigned long long)timeout_ms, why);
        sleep_ms(POLL_MS);
    }
    free(v);
}

void rkt_cluster_wait_ok(rkt_cluster *c, uint64_t timeout_ms) { wait_settled(c, -1, timeout_ms); }

void rkt_cluster_wait_promoted(rkt_cluster *c, int dead_master, uint64_t timeout_ms)
{
    if (live(c, dead_master))
        rkt_fail(__FILE__, __LINE__, "node %d is still running: rkt_server_kill it first",
                 dead_master);
    wait_settled(c, dead_master, timeout_ms);
}

/* ---- starting ---- */

/* Distinct config epochs up front spare the nodes their collision resolution; they are only
 * accepted before a node knows any other. */
static void assign_slots(rkt_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        char epoch[16];
        snprintf(epoch, sizeof epoch, "%d", i + 1);
        node_ok(c, i, (const char *[]){"CLUSTER", "SET-CONFIG-EPOCH", epoch, NULL});
    }
    static const char *const ranges[RKT_CLUSTER_MASTERS][2] = {
        {"0", "5460"}, {"5461", "10922"}, {"10923", "16383"}}; /* as redis-cli splits them */
    for (int m = 0; m < RKT_CLUSTER_MASTERS; m++)
        node_ok(c, m,
                (const char *[]){"CLUSTER", "ADDSLOTSRANGE", ranges[m][0], ranges[m][1], NULL});
}

/* Every node meets every other itself rather than waiting for gossip to introduce them. */
static void meet(rkt_cluster *c)
{
    for (int j = 1; j < c->n; j++) {
        char port[16];
        snprintf(port, sizeof port, "%d", c->node[j].port);
        for (int i = 0; i < j; i++)
            node_ok(c, i, (const char *[]){"CLUSTER", "MEET", "127.0.0.1", port, NULL});
    }
}

/* A replica accepts CLUSTER REPLICATE once it has shaken hands with its master after MEET. */
static void replicate(rkt_cluster *c)
{
    uint64_t t0 = rkt_now_ms();
    for (int r = RKT_CLUSTER_MASTERS; r < c->n; r++) {
        for (;;) {
            const char *master = c->id[r - RKT_CLUSTER_MASTERS];
            redisReply *rep =
                node_cmd(c, r, (const char *[]){"CLUSTER", "REPLICATE", master, NULL});
            bool ok = rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            if (ok)
                break;
            if (rkt_now_ms() - t0 > START_TIMEOUT_MS)
                rkt_fail(__FILE__, __LINE__, "node %d never learnt about its master", r);
            sleep_ms(POLL_MS);
        }
    }
}

static void read_ids(rkt_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        redisReply *r = node_cmd(c, i, (const char *[]){"CLUSTER", "MYID", NULL});
        if (r->type != REDIS_REPLY_STRING || r->len >= sizeof c->id[i])
            rkt_fail(__FILE__, __LINE__, "unexpected CLUSTER MYID reply from node %d", i);
        memcpy(c->id[i], r->str, r->len + 1);
        freeReplyObject(r);
    }
}

/* What the waits cannot see: the layout the header promises. */
static void check_layout(rkt_cluster *c)
{
    view *v = malloc(sizeof *v);
    ASSERT_TRUE(v != NULL);
    view_of(c, 0, v);
    for (int m = 0; m < RKT_CLUSTER_MASTERS; m++)
        if (v->of[RKT_CLUSTER_MASTERS + m] != m)
            rkt_fail(__FILE__, __LINE__, "node %d is not the replica of node %d",
                     RKT_CLUSTER_MASTERS + m, m);
    free(v);
}

void rkt_cluster_start(rkt_cluster *c, const char *extra_args)
{
    /* A node that drops a raw hiredis connection (a failover, a migration) must fail the
     * command that writes to it, not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    memset(c, 0, sizeof *c);
    c->n = RKT_CLUSTER_NODES;
    char args[sizeof c->node[0].extra];
    if (snprintf(args, sizeof args, "%s %s", cluster_args, extra_args ? extra_args : "") >=
        (int)sizeof args)
        rkt_fail(__FILE__, __LINE__, "extra arguments too long: %s", extra_args);
    rkt_servers_start(c->node, c->n, args);
    read_ids(c);
    assign_slots(c);
    meet(c);
    replicate(c);
    rkt_cluster_wait_ok(c, START_TIMEOUT_MS);
    check_layout(c);
    snprintf(c->seeds, sizeof c->seeds, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", c->node[0].port,
             c->node[1].port, c->node[2].port);
}

void rkt_cluster_stop(rkt_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        rkt_server_stop(&c->node[i]);
    c->n = 0;
}

rk_config *rkt_cluster_config(const rkt_cluster *c, const char *extra)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "connection.uri=redis://%s;options.prefix=%s;%s", c->seeds,
             rkt_prefix(), extra ? extra : "");
    return rkt_settings(buf);
}

/* ---- who serves what ---- */

int rkt_cluster_owner(rkt_cluster *c, int slot)
{
    ASSERT_TRUE(slot >= 0 && slot < RKT_CLUSTER_SLOTS);
    view *v = malloc(sizeof *v);
    ASSERT_TRUE(v != NULL);
    view_of(c, any_live(c), v);
    int owner = v->owner[slot];
    free(v);
    return owner;
}

int rkt_cluster_master_of(rkt_cluster *c, const char *key)
{
    redisReply *r = node_cmd(c, any_live(c), (const char *[]){"CLUSTER", "KEYSLOT", key, NULL});
    if (r->type != REDIS_REPLY_INTEGER)
        rkt_fail(__FILE__, __LINE__, "CLUSTER KEYSLOT %s: %s", key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    int slot = (int)r->integer;
    freeReplyObject(r);
    return rkt_cluster_owner(c, slot);
}

/* A CLUSTER NODES line, as read_roles reads it; -1 for a failed node. */
static int line_node(const rkt_cluster *c, const char *line)
{
    int port;
    char flags[128];
    if (sscanf(line, "%*s %*[^:]:%d@%*s %127s", &port, flags) != 2 || strstr(flags, "fail"))
        return -1;
    return index_of_port(c, port);
}

int rkt_cluster_replica_of(rkt_cluster *c, int master)
{
    redisReply *r =
        node_cmd(c, any_live(c), (const char *[]){"CLUSTER", "REPLICAS", c->id[master], NULL});
    int replica = -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && replica < 0; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            replica = line_node(c, r->element[i]->str);
    freeReplyObject(r);
    return replica;
}

/* ---- moving a slot ---- */

void rkt_cluster_slot_begin(rkt_cluster *c, int slot, int from, int to)
{
    char s[16];
    snprintf(s, sizeof s, "%d", slot);
    node_ok(c, to, (const char *[]){"CLUSTER", "SETSLOT", s, "IMPORTING", c->id[from], NULL});
    node_ok(c, from, (const char *[]){"CLUSTER", "SETSLOT", s, "MIGRATING", c->id[to], NULL});
}

/* MIGRATE 127.0.0.1 <port> "" 0 <timeout> KEYS <keys...>, the keys as GETKEYSINSLOT gave them
 * (binary-safe). */
static void migrate_keys(rkt_cluster *c, int from, int to, const redisReply *keys)
{
    size_t argc = 7 + keys->elements;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *len = calloc(argc, sizeof *len);
    ASSERT_TRUE(argv && len);
    char port[16];
    snprintf(port, sizeof port, "%d", c->node[to].port);
    const char *head[] = {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS"};
    for (size_t i = 0; i < 7; i++)
        argv[i] = head[i], len[i] = strlen(head[i]);
    for (size_t i = 0; i < keys->elements; i++)
        argv[7 + i] = keys->element[i]->str, len[7 + i] = keys->element[i]->len;
    redisContext *ctx = rkt_server_admin(&c->node[from]);
    redisReply *r = redisCommandArgv(ctx, (int)argc, argv, len);
    /* NOKEY: the keys went between GETKEYSINSLOT and MIGRATE (a lock released meanwhile). */
    if (!r || r->type != REDIS_REPLY_STATUS ||
        (strcmp(r->str, "OK") != 0 && strcmp(r->str, "NOKEY") != 0))
        rkt_fail(__FILE__, __LINE__, "MIGRATE from node %d to node %d: %s", from, to,
                 !r ? ctx->errstr
                 : r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS
                     ? r->str
                     : "unexpected reply");
    freeReplyObject(r);
    redisFree(ctx);
    free(argv);
    free(len);
}

int rkt_cluster_slot_migrate_some(rkt_cluster *c, int slot, int from, int to, int count)
{
    char s[16], n[16];
    snprintf(s, sizeof s, "%d", slot);
    snprintf(n, sizeof n, "%d", count);
    redisReply *keys = node_cmd(c, from, (const char *[]){"CLUSTER", "GETKEYSINSLOT", s, n, NULL});
    if (keys->type != REDIS_REPLY_ARRAY)
        rkt_fail(__FILE__, __LINE__, "CLUSTER GETKEYSINSLOT %d on node %d: %s", slot, from,
                 keys->type == REDIS_REPLY_ERROR ? keys->str : "unexpected reply");
    int moved = (int)keys->elements;
    if (moved > 0)
        migrate_keys(c, from, to, keys);
    freeReplyObject(keys);
    return moved;
}

static bool is_master(const rkt_cluster *c, int i)
{
    redisReply *r = node_cmd(c, i, (const char *[]){"ROLE", NULL});
    bool master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                  r->element[0]->type == REDIS_REPLY_STRING &&
                  !strcmp(r->element[0]->str, "master");
    freeReplyObject(r);
    return master;
}

/* The target first (so the slot is never without an owner that accepts it), then the source,
 * then the other masters; replicas learn it from gossip, which rkt_cluster_wait_ok waits for. */
void rkt_cluster_slot_finish(rkt_cluster *c, int slot, int from, int to)
{
    while (rkt_cluster_slot_migrate_some(c, slot, from, to, MIGRATE_BATCH) > 0)
        ;
    char s[16];
    snprintf(s, sizeof s, "%d", slot);
    const char *setslot[] = {"CLUSTER", "SETSLOT", s, "NODE", c->id[to], NULL};
    node_ok(c, to, setslot);
    node_ok(c, from, setslot);
    for (int i = 0; i < c->n; i++)
        if (i != to && i != from && live(c, i) && is_master(c, i))
            node_ok(c, i, setslot);
    rkt_cluster_wait_ok(c, START_TIMEOUT_MS);
}

/* ---- the key's slot, computed here ---- */

/* CRC16-XMODEM (polynomial 0x1021, initial value 0), bit by bit: speed does not matter here,
 * obviousness does. */
static unsigned crc16(const char *p, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)p[i] << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

/* Only what lies between the first '{' and the first '}' after it is hashed, unless that is
 * empty or there is no such '}'. */
int rkt_cluster_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - key);
        }
    }
    return (int)(crc16(key, len) % RKT_CLUSTER_SLOTS);
}
