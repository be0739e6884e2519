/* The subscriber's sharded mode and endpoint picker, through the internal API: shard channels
 * against the fixture (a plain redis-server 7, where SSUBSCRIBE and SPUBLISH work too), the
 * re-check after a killed connection, a picker moving past a dead node, and, against a scripted
 * fake server, what only a cluster sends: MOVED to SSUBSCRIBE and an unasked sunsubscribe. */
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
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

/* ---- against a scripted fake server: what a cluster node sends ---- */

typedef struct fake {
    int lfd, fd;
    redisReader *rd;
} fake;

static void fake_start(fake *f)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_TRUE(f->lfd >= 0);
    ASSERT_EQ(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(f->lfd, 1), 0);
    ASSERT_EQ(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
    f->fd = -1;
    f->rd = redisReaderCreate(); /* requests are RESP arrays too */
}

static int fake_port(const fake *f)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(f->lfd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

static void readable_or_fail(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1)
        rkt_fail(__FILE__, __LINE__, "the subscriber sent nothing for 10 s");
}

static void fake_send(fake *f, const char *resp)
{
    ASSERT_EQ(write(f->fd, resp, strlen(resp)), (ssize_t)strlen(resp));
}

static redisReply *fake_read(fake *f)
{
    if (f->fd < 0) {
        readable_or_fail(f->lfd);
        f->fd = accept(f->lfd, NULL, NULL);
        ASSERT_TRUE(f->fd >= 0);
    }
    void *r = NULL;
    while (redisReaderGetReply(f->rd, &r) == REDIS_OK && !r) {
        char buf[512];
        readable_or_fail(f->fd);
        ssize_t n = read(f->fd, buf, sizeof buf);
        if (n <= 0)
            rkt_fail(__FILE__, __LINE__, "the subscriber hung up");
        redisReaderFeed(f->rd, buf, (size_t)n);
    }
    ASSERT_TRUE(r != NULL);
    return r;
}

/* The next command the subscriber sends, as "VERB arg" (a PING, on a slow machine, is
 * answered and skipped). */
static const char *fake_next(fake *f)
{
    static char line[256];
    redisReply *cmd;
    while ((cmd = fake_read(f))->elements == 1) {
        ASSERT_STR_EQ(cmd->element[0]->str, "PING");
        freeReplyObject(cmd);
        fake_send(f, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    }
    ASSERT_TRUE(cmd->type == REDIS_REPLY_ARRAY && cmd->elements == 2);
    snprintf(line, sizeof line, "%s %s", cmd->element[0]->str, cmd->element[1]->str);
    freeReplyObject(cmd);
    return line;
}

static void fake_stop(fake *f)
{
    if (f->fd >= 0)
        close(f->fd);
    close(f->lfd);
    redisReaderFree(f->rd);
}

#define MOVED "-MOVED 3999 127.0.0.1:7001\r\n"
#define CONFIRM(ch) "*3\r\n$10\r\nssubscribe\r\n$1\r\n" ch "\r\n:1\r\n"
#define DROPPED(ch) "*3\r\n$12\r\nsunsubscribe\r\n$1\r\n" ch "\r\n:0\r\n"
#define SMESSAGE(ch, m) "*3\r\n$8\r\nsmessage\r\n$1\r\n" ch "\r\n$2\r\n" m "\r\n"

/* A MOVED reply is matched to its channel although it does not name it: of two SSUBSCRIBEs
 * in a row, the first is refused and the second confirmed. */
static void moved_is_matched_to_its_channel(void)
{
    fake f;
    fake_start(&f);
    rk__endpoint ep = endpoint_at(fake_port(&f));
    rk__subscriber *s;
    ASSERT_OK(rk__subscriber_new_sharded(&s, "test"));
    rk__subscriber_open(s, &ep, NULL, 2000);
    rk__waiter wa, wb;
    join(s, &wa, "a", 0); /* no waiting for the confirmation: this thread is the server */
    join(s, &wb, "b", 0);
    char first[64], second[64];
    snprintf(first, sizeof first, "%s", fake_next(&f)); /* in one write or two, either order */
    snprintf(second, sizeof second, "%s", fake_next(&f));
    ASSERT_TRUE(!strcmp(first, "SSUBSCRIBE a") || !strcmp(first, "SSUBSCRIBE b"));
    ASSERT_TRUE(!strcmp(second, "SSUBSCRIBE a") || !strcmp(second, "SSUBSCRIBE b"));
    const char *refused = first + 11, *taken = second + 11;
    ASSERT_TRUE(*refused != *taken);
    fake_send(&f, MOVED);
    fake_send(&f, *taken == 'a' ? CONFIRM("a") : CONFIRM("b"));
    ASSERT_EQ(wait_for(s, &wa, 10000, NULL), RK__WAKE_RECHECK);
    ASSERT_EQ(wait_for(s, &wb, 10000, NULL), RK__WAKE_RECHECK);
    ASSERT_FALSE(rk__subscriber_active(s, refused, 1));
    ASSERT_TRUE(rk__subscriber_active(s, taken, 1));
    rk__subscriber_leave(s, &wa);
    rk__subscriber_leave(s, &wb);
    rk__subscriber_free(s);
    fake_stop(&f);
}

/* Refused or dropped channels are asked for again after a pause, doubled while refused. */
static void refused_channel_retried_later(void)
{
    fake f;
    fake_start(&f);
    rk__endpoint ep = endpoint_at(fake_port(&f));
    rk__subscriber *s;
    ASSERT_OK(rk__subscriber_new_sharded(&s, "test"));
    rk__subscriber_open(s, &ep, NULL, 2000);
    rk__waiter w;
    join(s, &w, "c", 0);
    ASSERT_STR_EQ(fake_next(&f), "SSUBSCRIBE c");
    uint64_t t0 = rkt_now_ms();
    fake_send(&f, MOVED);
    ASSERT_EQ(wait_for(s, &w, 10000, NULL), RK__WAKE_RECHECK);
    ASSERT_FALSE(rk__subscriber_active(s, "c", 1));
    ASSERT_STR_EQ(fake_next(&f), "SSUBSCRIBE c");
    uint64_t t1 = rkt_now_ms();
    ASSERT_GE(t1 - t0, 450); /* not at once */
    fake_send(&f, MOVED);
    ASSERT_EQ(wait_for(s, &w, 10000, NULL), RK__WAKE_RECHECK);
    ASSERT_STR_EQ(fake_next(&f), "SSUBSCRIBE c");
    ASSERT_GE(rkt_now_ms() - t1, 900); /* refused twice: twice the pause */
    fake_send(&f, CONFIRM("c"));
    ASSERT_EQ(wait_for(s, &w, 10000, NULL), RK__WAKE_RECHECK); /* subscribed at last */
    ASSERT_TRUE(rk__subscriber_active(s, "c", 1));
    fake_send(&f, SMESSAGE("c", "hi"));
    expect_message(s, &w, "hi");

    /* The slot moves away: the node drops the channel unasked. */
    uint64_t t2 = rkt_now_ms();
    fake_send(&f, DROPPED("c"));
    ASSERT_EQ(wait_for(s, &w, 10000, NULL), RK__WAKE_RECHECK);
    ASSERT_FALSE(rk__subscriber_active(s, "c", 1));
    ASSERT_STR_EQ(fake_next(&f), "SSUBSCRIBE c");
    ASSERT_GE(rkt_now_ms() - t2, 450); /* confirmed in between: the first pause again */
    fake_send(&f, CONFIRM("c"));
    ASSERT_EQ(wait_for(s, &w, 10000, NULL), RK__WAKE_RECHECK);

    /* Unused, it lingers, then goes with a SUNSUBSCRIBE of its own. */
    rk__subscriber_leave(s, &w);
    ASSERT_STR_EQ(fake_next(&f), "SUNSUBSCRIBE c");
    fake_send(&f, DROPPED("c"));
    rk__subscriber_free(s);
    fake_stop(&f);
}

RKT_MAIN(RKT_CASE(shard_message_wakes), RKT_CASE(recheck_after_kill), RKT_CASE(picker_moves_on),
         RKT_CASE(moved_is_matched_to_its_channel), RKT_CASE(refused_channel_retried_later))
