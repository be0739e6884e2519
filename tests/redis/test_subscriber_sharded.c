/* The subscriber's sharded mode and endpoint picker, through the internal API: shard channels
 * against the fixture (a plain redis-server 7, where SSUBSCRIBE and SPUBLISH work too), the
 * re-check after a killed connection, and a picker moving past a dead node. What only a
 * cluster sends (MOVED to SSUBSCRIBE, an unasked sunsubscribe when a slot moves) is tested
 * against a real cluster in tests/cluster/test_cluster.c. */
#include <stdatomic.h>
#include <unistd.h>

#include "redis_env.h"
#include "subscriber.h"

static rk__endpoint endpoint_at(int port)
{
    static char loopback[] = "127.0.0.1";
    return (rk__endpoint){.host = loopback, .port = (uint16_t)port, .connect_timeout_ms = 2000};
}

static const char *channel(const char *tag)
{
    static char buf[4][128];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, 128, "%s%s", rkt_prefix(), tag);
    return b;
}

static long long cmd_int(redisContext *c, const char *cmd, const char *ch, const char *payload)
{
    redisReply *r = rkt_cmd(c, cmd, ch, payload, NULL);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static void join(rk__subscriber *s, rk__waiter *w, const char *ch, uint64_t confirm_ms)
{
    ASSERT_OK(rk__subscriber_join(s, w, ch, strlen(ch), true, NULL, 0, rkt_now_ms() + confirm_ms));
}

static rk__wake wait_for(rk__subscriber *s, rk__waiter *w, uint64_t ms, rk_buf *payload)
{
    rk__wake why;
    ASSERT_OK(rk__subscriber_wait(s, w, rkt_now_ms() + ms, &why, payload));
    return why;
}

static void expect_message(rk__subscriber *s, rk__waiter *w, const char *payload)
{
    rk_buf got = RK_BUF_INIT;
    ASSERT_EQ(wait_for(s, w, 10000, &got), RK__WAKE_MESSAGE);
    ASSERT_STR_EQ(got.data, payload);
    rk_buf_free(&got);
}

/* ---- against redis-server ---- */

static void shard_message_wakes(void)
{
    rk__subscriber *s;
    rk__endpoint ep = endpoint_at(rkt_port());
    const char *ch = channel("shard");
    ASSERT_OK(rk__subscriber_new_sharded(&s, "test"));
    rk__subscriber_open(s, &ep, NULL, 2000);
    rk__waiter w;
    join(s, &w, ch, 10000);
    ASSERT_TRUE(rk__subscriber_active(s, ch, strlen(ch)));
    redisContext *c = rkt_raw();
    rkt_wait_shard_subscribers(c, ch, 1);
    /* The classic PUBLISH first, on the same connection: had it reached the waiter, it would be
     * the message it gets. */
    ASSERT_EQ(cmd_int(c, "PUBLISH", ch, "classic"), 0);
    ASSERT_EQ(cmd_int(c, "SPUBLISH", ch, "sharded"), 1);
    expect_message(s, &w, "sharded");
    rk__subscriber_leave(s, &w);
    redisFree(c);
    rk__subscriber_free(s);
}

static void recheck_after_kill(void)
{
    rkt_server srv;
    rkt_server_start(&srv, NULL);
    rk__subscriber *s;
    rk__endpoint ep = endpoint_at(srv.port);
    const char *ch = channel("killed");
    ASSERT_OK(rk__subscriber_new_sharded(&s, "test"));
    rk__subscriber_open(s, &ep, NULL, 2000);
    rk__waiter w;
    join(s, &w, ch, 10000);
    redisContext *c = rkt_server_admin(&srv);
    rkt_wait_shard_subscribers(c, ch, 1);
    /* Killed, and a message sent while it is down: lost, which the re-check makes up for. */
    freeReplyObject(rkt_cmd(c, "MULTI", NULL));
    freeReplyObject(rkt_cmd(c, "CLIENT", "KILL", "TYPE", "pubsub", NULL));
    freeReplyObject(rkt_cmd(c, "SPUBLISH", ch, "lost", NULL));
    redisReply *r = rkt_cmd(c, "EXEC", NULL);
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(r->element[0]->integer, 1);
    ASSERT_EQ(r->element[1]->integer, 0);
    freeReplyObject(r);
    ASSERT_EQ(wait_for(s, &w, 10000, NULL), RK__WAKE_RECHECK); /* once subscribed again */
    ASSERT_EQ(cmd_int(c, "SPUBLISH", ch, "after"), 1);
    expect_message(s, &w, "after");
    rk__subscriber_leave(s, &w);
    redisFree(c);
    rk__subscriber_free(s);
    rkt_server_stop(&srv);
}

typedef struct picker {
    rk__endpoint dead, live;
    atomic_uint calls;
    atomic_uint failures[4]; /* what the first calls were told */
} picker;

static const rk__endpoint *pick(void *arg, unsigned failures)
{
    picker *p = arg;
    unsigned n = atomic_fetch_add(&p->calls, 1);
    if (n < 4)
        atomic_store(&p->failures[n], failures);
    return n == 0 ? &p->dead : &p->live;
}

static void picker_moves_on(void)
{
    picker p = {.dead = endpoint_at(rkt_free_port()), .live = endpoint_at(rkt_port())};
    rk__subscriber *s;
    const char *ch = channel("picked");
    ASSERT_OK(rk__subscriber_new(&s, "test"));
    rk__subscriber_set_picker(s, pick, &p);
    rk__subscriber_open(s, NULL, NULL, 2000);
    rk__waiter w;
    join(s, &w, ch, 10000);
    ASSERT_TRUE(rk__subscriber_active(s, ch, strlen(ch)));
    ASSERT_EQ(atomic_load(&p.calls), 2);
    ASSERT_EQ(atomic_load(&p.failures[0]), 0);
    ASSERT_EQ(atomic_load(&p.failures[1]), 1);
    redisContext *c = rkt_raw();
    ASSERT_EQ(cmd_int(c, "PUBLISH", ch, "via the picker"), 1);
    expect_message(s, &w, "via the picker");
    rk__subscriber_leave(s, &w);
    redisFree(c);
    rk__subscriber_free(s);
}

RKT_MAIN(RKT_CASE(shard_message_wakes), RKT_CASE(recheck_after_kill), RKT_CASE(picker_moves_on))
