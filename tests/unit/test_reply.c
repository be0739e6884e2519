/* The reply path on canned RESP bytes: hiredis' parser building replies with redkit's allocator,
 * and the mapping of replies to redkit errors. */
#include "conn.h"
#include "harness.h"

static redisReply *parse_all(const char *bytes, size_t len)
{
    redisReader *r = rk__reader_new();
    void *reply = NULL;
    ASSERT_TRUE(r != NULL);
    /* Byte by byte: partial input must never produce a reply early. */
    for (size_t i = 0; i < len; i++) {
        ASSERT_EQ(redisReaderFeed(r, bytes + i, 1), REDIS_OK);
        ASSERT_EQ(redisReaderGetReply(r, &reply), REDIS_OK);
        if (i + 1 < len)
            ASSERT_TRUE(reply == NULL);
    }
    ASSERT_TRUE(reply != NULL);
    redisReaderFree(r);
    return reply;
}

#define PARSE(lit) parse_all(lit, sizeof lit - 1)

static void scalars(void)
{
    redisReply *r = PARSE("+OK\r\n");
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS);
    ASSERT_STR_EQ(r->str, "OK");
    rk__reply_free(r);
    r = PARSE(":-42\r\n");
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER);
    ASSERT_EQ(r->integer, -42);
    rk__reply_free(r);
    r = PARSE("$-1\r\n");
    ASSERT_EQ(r->type, REDIS_REPLY_NIL);
    rk__reply_free(r);
}

static void binary_bulk(void)
{
    redisReply *r = PARSE("$5\r\na\0b\r\n\r\n");
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    ASSERT_EQ(r->len, 5);
    ASSERT_MEM_EQ(r->str, "a\0b\r\n", 5);
    size_t len;
    char *s = rk__reply_take_str(r, &len);
    ASSERT_EQ(len, 5);
    ASSERT_EQ(s[5], '\0'); /* always NUL-terminated for rk_buf */
    rk_buf b = {s, len};
    rk_buf_free(&b);
}

static void nested_arrays(void)
{
    redisReply *r = PARSE("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*2\r\n:1\r\n$-1\r\n");
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(r->elements, 3);
    ASSERT_STR_EQ(r->element[0]->str, "message");
    ASSERT_EQ(r->element[2]->elements, 2);
    ASSERT_EQ(r->element[2]->element[1]->type, REDIS_REPLY_NIL);
    rk__reply_free(r);
    r = PARSE("*0\r\n");
    ASSERT_EQ(r->elements, 0);
    rk__reply_free(r);
}

static void protocol_errors(void)
{
    static const char *bad[] = {"!oops\r\n", "$abc\r\n", "*-5x\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReader *r = rk__reader_new();
        void *reply = NULL;
        redisReaderFeed(r, bad[i], strlen(bad[i]));
        ASSERT_EQ(redisReaderGetReply(r, &reply), REDIS_ERR);
        ASSERT_TRUE(reply == NULL);
        redisReaderFree(r);
    }
}

static void error_mapping(void)
{
    redisReply *r = PARSE("-NOAUTH Authentication required.\r\n");
    ASSERT_EQ(rk__reply_expect(r, REDIS_REPLY_STRING, "GET"), RK_EAUTH);
    ASSERT_ERROR(RK_EAUTH, "UNAUTHORIZED", "Unauthorized");
    rk__reply_free(r);
    r = PARSE("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    ASSERT_EQ(rk__reply_expect(r, REDIS_REPLY_STRING, "GET"), RK_EREPLY);
    ASSERT_ERROR(RK_EREPLY, "WRONGTYPE", "FailedInvocation");
    ASSERT_CONTAINS(rk_last_error()->message, "GET failed");
    rk__reply_free(r);
    r = PARSE(":1\r\n");
    ASSERT_EQ(rk__reply_expect(r, REDIS_REPLY_STRING, "GET"), RK_EREPLY);
    ASSERT_CONTAINS(rk_last_error()->message, "unexpected reply type");
    ASSERT_OK(rk__reply_expect(r, REDIS_REPLY_INTEGER, "DEL"));
    rk__reply_free(r);
}

/* Every server error the retry loop knows, as the server sends it, and what the loop does. */
static void error_classes(void)
{
    static const struct {
        const char *wire;
        rk__reply_class cls;
        rk__action act;
    } rows[] = {
        {"-MOVED 3999 127.0.0.1:6381\r\n", RK__REPLY_MOVED, RK__ACT_REDIRECT},
        {"-ASK 3999 127.0.0.1:6381\r\n", RK__REPLY_ASK, RK__ACT_REDIRECT},
        {"-TRYAGAIN Multiple keys request during rehashing of slot\r\n", RK__REPLY_TRYAGAIN,
         RK__ACT_RETRY},
        {"-CLUSTERDOWN The cluster is down\r\n", RK__REPLY_CLUSTERDOWN, RK__ACT_REFRESH},
        {"-LOADING Redis is loading the dataset in memory\r\n", RK__REPLY_LOADING, RK__ACT_RETRY},
        {"-READONLY You can't write against a read only replica.\r\n", RK__REPLY_READONLY,
         RK__ACT_REFRESH},
        {"-BUSY Redis is busy running a script.\r\n", RK__REPLY_BUSY, RK__ACT_RETRY},
        {"-BUSYKEY Target key name already exists.\r\n", RK__REPLY_ERR, RK__ACT_DONE},
        {"-NOSCRIPT No matching script.\r\n", RK__REPLY_NOSCRIPT, RK__ACT_DONE},
        {"-NOAUTH Authentication required.\r\n", RK__REPLY_AUTH, RK__ACT_DONE},
        {"-WRONGPASS invalid username-password pair\r\n", RK__REPLY_AUTH, RK__ACT_DONE},
        {"-OOM command not allowed when used memory > 'maxmemory'.\r\n", RK__REPLY_OOM,
         RK__ACT_DONE},
        {"-ERR unknown command\r\n", RK__REPLY_ERR, RK__ACT_DONE},
        {"-WRONGTYPE Operation against a key\r\n", RK__REPLY_ERR, RK__ACT_DONE},
        {"-MOVEDX not a redirect\r\n", RK__REPLY_ERR, RK__ACT_DONE},
        {"+OK\r\n", RK__REPLY_OK, RK__ACT_DONE},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        redisReply *r = parse_all(rows[i].wire, strlen(rows[i].wire));
        ASSERT_EQ(rk__reply_classify(r), rows[i].cls);
        ASSERT_EQ(rk__class_action(rows[i].cls), rows[i].act);
        rk__reply_free(r);
    }
    /* no reply at all: the connection failed, and a fresh one is tried */
    ASSERT_EQ(rk__reply_classify(NULL), RK__REPLY_CONN);
    ASSERT_EQ(rk__class_action(RK__REPLY_CONN), RK__ACT_RECONNECT);
}

/* Where MOVED and ASK send a command: slot, host (IPv6 included, empty allowed) and port. */
static void redirects(void)
{
    static const struct {
        const char *wire;
        bool ok;
        rk__reply_class cls;
        unsigned slot;
        const char *host;
        unsigned port;
    } rows[] = {
        {"-MOVED 3999 127.0.0.1:6381\r\n", true, RK__REPLY_MOVED, 3999, "127.0.0.1", 6381},
        {"-ASK 0 ::1:7000\r\n", true, RK__REPLY_ASK, 0, "::1", 7000},
        {"-MOVED 16383 :7001\r\n", true, RK__REPLY_MOVED, 16383, "", 7001},
        {"-MOVED 16384 h:1\r\n", false, RK__REPLY_OK, 0, "", 0},
        {"-MOVED 1 h:0\r\n", false, RK__REPLY_OK, 0, "", 0},
        {"-MOVED 1 h:65536\r\n", false, RK__REPLY_OK, 0, "", 0},
        {"-MOVED 1 nocolon\r\n", false, RK__REPLY_OK, 0, "", 0},
        {"-MOVED\r\n", false, RK__REPLY_OK, 0, "", 0},
        {"-ERR MOVED 1 h:1\r\n", false, RK__REPLY_OK, 0, "", 0},
        {"+MOVED 1 h:1\r\n", false, RK__REPLY_OK, 0, "", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        redisReply *r = parse_all(rows[i].wire, strlen(rows[i].wire));
        rk__redirect to;
        ASSERT_EQ(rk__reply_redirect(r, &to), rows[i].ok);
        ASSERT_EQ(to.cls, rows[i].cls);
        if (rows[i].ok) {
            ASSERT_EQ(to.slot, rows[i].slot);
            ASSERT_STR_EQ(to.host, rows[i].host);
            ASSERT_EQ(to.port, rows[i].port);
        }
        rk__reply_free(r);
    }
    ASSERT_STR_EQ(rk__class_name(RK__REPLY_MOVED), "MOVED");
    ASSERT_STR_EQ(rk__class_name(RK__REPLY_ASK), "ASK");
}

RKT_MAIN(RKT_CASE(scalars), RKT_CASE(binary_bulk), RKT_CASE(nested_arrays),
         RKT_CASE(protocol_errors), RKT_CASE(error_mapping), RKT_CASE(error_classes),
         RKT_CASE(redirects))
