#include "conn.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "error_int.h"

/* ---- I/O ---- */

static int broken(rk__conn *c, int rc)
{
    c->broken = true;
    return rc;
}

/* Commands are encoded here rather than with redisFormatCommandArgv, whose sprintf calls were
 * half of the client instructions of a GET, and straight into one buffer for the whole pipeline
 * instead of being formatted one by one and copied. RESP: "*<argc>\r\n", then
 * "$<len>\r\n<bytes>\r\n" per argument. */

static size_t digits(size_t v)
{
    size_t n = 1;
    while (v >= 10)
        v /= 10, n++;
    return n;
}

static char *put_header(char *p, char kind, size_t v)
{
    size_t n = digits(v);
    *p++ = kind;
    for (size_t i = n; i > 0; i--, v /= 10)
        p[i - 1] = (char)('0' + v % 10);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Encoded size of one command, or 0 if it is too large to send. */
static size_t encoded_len(const rk__cmd *cmd)
{
    size_t total = 1 + digits((size_t)cmd->argc) + 2;
    for (int i = 0; i < cmd->argc; i++) {
        size_t len = cmd->argvlen[i];
        if (len > INT_MAX - 1024 || total > INT_MAX - 1024 - len)
            return 0;
        total += 1 + digits(len) + 2 + len + 2;
    }
    return total;
}

static char *encode(char *p, const rk__cmd *cmd)
{
    p = put_header(p, '*', (size_t)cmd->argc);
    for (int i = 0; i < cmd->argc; i++) {
        p = put_header(p, '$', cmd->argvlen[i]);
        memcpy(p, cmd->argv[i], cmd->argvlen[i]);
        p += cmd->argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return p;
}

int rk__conn_encode(const rk__conn *c, const rk__cmd *cmds, size_t n, char *stack, size_t cap,
                    char **out, size_t *len)
{
    size_t total = 0;
    *out = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t one = encoded_len(&cmds[i]);
        if (one == 0)
            return rk__err(RK_EINVAL, "%s: a command larger than 2 GiB cannot be sent", c->tr.peer);
        total += one;
    }
    char *buf = total <= cap ? stack : rk__malloc(total);
    if (!buf)
        return rk__err(RK_ENOMEM, "%s: cannot buffer %zu bytes of commands", c->tr.peer, total);
    char *p = buf;
    for (size_t i = 0; i < n; i++)
        p = encode(p, &cmds[i]);
    *out = buf;
    *len = (size_t)(p - buf);
    return RK_OK;
}

int rk__conn_write(rk__conn *c, const char *buf, size_t len, uint64_t deadline)
{
    return rk__transport_write(&c->tr, buf, len, deadline);
}

/* One write for the whole batch; a small batch is encoded on the stack. */
int rk__conn_send(rk__conn *c, const rk__cmd *cmds, size_t n, uint64_t deadline)
{
    char stack[512], *buf;
    size_t len;
    int rc = rk__conn_encode(c, cmds, n, stack, sizeof stack, &buf, &len);
    if (rc != RK_OK) /* nothing written: the connection is still whole */
        return rc;
    c->cls = c->redirect.cls = RK__REPLY_OK;
    rc = rk__conn_write(c, buf, len, deadline);
    if (c->secret_send)
        rk__wipe(buf, len);
    if (buf != stack)
        rk__free(buf);
    return rc == RK_OK ? RK_OK : broken(c, rc);
}

int rk__conn_buffered(rk__conn *c, redisReply **reply)
{
    void *r = NULL;
    *reply = NULL;
    if (c->big) { /* read past the parser, which has nothing after it */
        *reply = c->big;
        c->big = NULL;
        return RK_OK;
    }
    if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
        if (c->reader->err == REDIS_ERR_OOM)
            return broken(c, rk__err(RK_ENOMEM, "%s: out of memory reading a reply", c->tr.peer));
        return broken(c, rk__err_cause(RK_EIO, c->reader->errstr,
                                       "%s: cannot parse the server's reply", c->tr.peer));
    }
    if (r && c->cls == RK__REPLY_OK && (c->cls = rk__reply_classify(r)) != RK__REPLY_OK)
        rk__reply_redirect(r, &c->redirect);
    *reply = r;
    return RK_OK;
}

/* ---- large values ----
 * A bulk string of at least BIG_BULK bytes is read from the socket straight into the reply's
 * own buffer, instead of into rbuf, then the parser's buffer, then a copy of that (at 1 MiB,
 * those copies were nearly all of the client's instructions). Only a bulk string that is a
 * whole reply (not inside an array), so that the parser's state is simple to take over: it has
 * read the '$' and waits for the rest. This relies on the layout of hiredis 0.14's reader
 * (read.h), the only version redkit builds with. */
#define BIG_BULK (64u * 1024u)

/* The parser waits for the rest of a top-level bulk string of at least BIG_BULK bytes: its
 * length `*len` and the bytes of its header after the '$' (`*hdr`: "<len>" and CRLF). */
static bool big_bulk_ahead(const redisReader *r, size_t *hdr, size_t *len)
{
    if (r->ridx != 0 || r->rstack[0].type != REDIS_REPLY_STRING || r->rstack[0].parent)
        return false; /* the type is set once the '$' is read (it may be compacted away) */
    const char *start = r->buf + r->pos, *p = start, *end = r->buf + r->len;
    size_t v = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - start < 11)
        v = v * 10 + (size_t)(*p++ - '0');
    if (p == start || end - p < 2 || p[0] != '\r' || p[1] != '\n' || v < BIG_BULK)
        return false;
    *hdr = (size_t)(p + 2 - start);
    *len = v;
    return true;
}

/* Read the rest of the bulk string into its own buffer; the parser is left between replies,
 * and the reply waits in c->big. A timeout mid-value breaks the connection. */
static int read_big(rk__conn *c, size_t hdr, size_t len, uint64_t deadline)
{
    redisReader *r = c->reader;
    size_t want = len + 2, have = r->len - r->pos - hdr; /* < want, or the parser had it */
    char *str = rk__malloc(want);
    if (!str)
        return broken(
            c, rk__err(RK_ENOMEM, "%s: cannot allocate a reply of %zu bytes", c->tr.peer, len));
    memcpy(str, r->buf + r->pos + hdr, have);
    r->pos = r->len; /* all of it was this reply's */
    r->ridx = -1;
    while (have < want) {
        size_t got;
        int rc = rk__transport_read(&c->tr, str + have, want - have, &got, deadline);
        if (rc != RK_OK) {
            rk__free(str);
            return broken(c, rc);
        }
        have += got;
    }
    if (str[len] != '\r' || str[len + 1] != '\n') {
        rk__free(str);
        return broken(c, rk__err(RK_EIO,
                                 "%s: cannot parse the server's reply (a bulk string "
                                 "of %zu bytes without its CRLF)",
                                 c->tr.peer, len));
    }
    str[len] = '\0';
    if (!(c->big = rk__reply_new_string(str, len)))
        return broken(c, rk__err(RK_ENOMEM, "%s: out of memory reading a reply", c->tr.peer));
    return RK_OK;
}

static int fill(rk__conn *c, uint64_t deadline, bool keep_on_timeout)
{
    size_t got, hdr, len;
    if (big_bulk_ahead(c->reader, &hdr, &len))
        return read_big(c, hdr, len, deadline);
    int rc = rk__transport_read(&c->tr, c->rbuf, sizeof c->rbuf, &got, deadline);
    if (rc == RK_ETIMEDOUT && keep_on_timeout)
        return rc;
    if (rc != RK_OK)
        return broken(c, rc);
    if (redisReaderFeed(c->reader, c->rbuf, got) != REDIS_OK)
        return broken(c, rk__err(RK_ENOMEM, "%s: cannot buffer the reply", c->tr.peer));
    return RK_OK;
}

int rk__conn_fill(rk__conn *c, uint64_t deadline) { return fill(c, deadline, false); }

int rk__conn_fill_until(rk__conn *c, uint64_t deadline) { return fill(c, deadline, true); }

int rk__conn_wait(rk__conn *c, int wake_fd, uint64_t until, bool *readable, bool *woken)
{
    return rk__transport_poll(&c->tr, wake_fd, until, readable, woken);
}

int rk__conn_recv(rk__conn *c, redisReply **reply, uint64_t deadline)
{
    for (;;) {
        int rc = rk__conn_buffered(c, reply);
        if (rc != RK_OK || *reply || (rc = rk__conn_fill(c, deadline)) != RK_OK)
            return rc;
    }
}

int rk__conn_exec(rk__conn *c, const rk__cmd *cmds, size_t n, redisReply **replies,
                  uint64_t deadline)
{
    memset(replies, 0, n * sizeof *replies);
    if (c->broken)
        return rk__err(RK_EIO, "%s: connection is broken", c->tr.peer);
    int rc = rk__conn_send(c, cmds, n, deadline);
    for (size_t i = 0; rc == RK_OK && i < n; i++)
        rc = rk__conn_recv(c, &replies[i], deadline);
    if (rc != RK_OK) {
        for (size_t i = 0; i < n; i++) {
            rk__reply_free(replies[i]);
            replies[i] = NULL;
        }
    }
    return rc;
}

/* ---- handshake ---- */

static int handshake(rk__conn *c, const rk__endpoint *ep, uint64_t deadline)
{
    char db[16];
    const char *auth[3] = {"AUTH", ep->username, ep->password};
    size_t authlen[3] = {4, ep->username ? strlen(ep->username) : 0,
                         ep->password ? strlen(ep->password) : 0};
    const char *auth1[2] = {"AUTH", ep->password};
    size_t auth1len[2] = {4, authlen[2]};
    const char *sel[2] = {"SELECT", db};
    size_t sellen[2] = {6, (size_t)snprintf(db, sizeof db, "%u", ep->db)};
    const char *ro[1] = {"READONLY"};
    size_t rolen[1] = {8};
    rk__cmd cmds[3];
    const char *what[3];
    size_t n = 0;
    if (ep->password)
        cmds[n] = ep->username ? (rk__cmd){3, auth, authlen} : (rk__cmd){2, auth1, auth1len},
        what[n++] = NULL;
    if (ep->db)
        cmds[n] = (rk__cmd){2, sel, sellen}, what[n++] = "SELECT of the database";
    if (ep->readonly) /* reads from a cluster replica */
        cmds[n] = (rk__cmd){1, ro, rolen}, what[n++] = "READONLY";
    if (n == 0)
        return RK_OK;
    redisReply *replies[3];
    c->secret_send = ep->password != NULL;
    int rc = rk__conn_exec(c, cmds, n, replies, deadline);
    c->secret_send = false;
    for (size_t i = 0; rc == RK_OK && i < n; i++) {
        if (replies[i]->type != REDIS_REPLY_ERROR)
            continue;
        if (!what[i]) {
            rc = rk__err_cause(RK_EAUTH, replies[i]->str,
                               "%s: authentication failed for user '%s' (Unauthorized)", c->tr.peer,
                               ep->username ? ep->username : "default");
        } else {
            rc = rk__reply_error(replies[i], what[i]);
            rk__err_prefix("%s: ", c->tr.peer);
        }
    }
    for (size_t i = 0; i < n; i++)
        rk__reply_free(replies[i]);
    return rc;
}

int rk__conn_open(rk__conn **out, const rk__endpoint *ep, void *tls_ctx, uint64_t deadline)
{
    *out = NULL;
    rk__conn *c = rk__malloc(sizeof *c);
    if (!c)
        return rk__err(RK_ENOMEM, "cannot allocate a connection");
    memset(c, 0, offsetof(rk__conn, rbuf));
    c->tr.fd = -1;
    if (!(c->reader = rk__reader_new())) {
        rk__free(c);
        return rk__err(RK_ENOMEM, "cannot allocate a reply parser");
    }
    /* connect_timeout covers the whole set-up, so a server that accepts and then stalls holds
     * a connect (and a close waiting on it) no longer than a refused one. */
    uint64_t connect_deadline = rk__deadline(ep->connect_timeout_ms);
    if (connect_deadline > deadline)
        connect_deadline = deadline;
    uint64_t t0 = rk__now_us();
    int rc = rk__transport_connect(&c->tr, ep, tls_ctx, connect_deadline);
    if (rc == RK_OK)
        rc = handshake(c, ep, connect_deadline);
    c->connect_us = rk__now_us() - t0;
    if (rc == RK_OK && ep->hook && ep->hook->open &&
        (rc = ep->hook->open(ep->hook->arg, c, ep, tls_ctx, connect_deadline)) == RK_OK)
        c->hook = ep->hook;
    if (rc != RK_OK) {
        rk__conn_free(c);
        return rc;
    }
    *out = c;
    return RK_OK;
}

void rk__conn_free(rk__conn *c)
{
    if (!c)
        return;
    if (c->hook && c->hook->close)
        c->hook->close(c->hook->arg, c);
    rk__transport_close(&c->tr);
    if (c->reader)
        redisReaderFree(c->reader);
    rk__reply_free(c->big);
    rk__free(c);
}

void rk__conn_shutdown(rk__conn *c) { rk__transport_shutdown(&c->tr); }

bool rk__conn_alive(rk__conn *c) { return !c->broken && rk__transport_alive(&c->tr); }

/* What forked children left behind: connections a parent thread was using at the fork, whose
 * reader and TLS state may be half-updated, so they are never freed. They are kept reachable
 * on purpose (a leak checker sees memory kept, not lost), linked through their idle-list
 * pointer, which nothing else uses any more. */
static rk__conn *_Atomic left_behind;

void rk__conn_drop_in_use(rk__conn *c)
{
    rk__transport_abandon_fd(&c->tr);
    c->next = atomic_load(&left_behind);
    while (!atomic_compare_exchange_weak(&left_behind, &c->next, c))
        ;
}

void rk__conn_abandon(rk__conn *c)
{
    rk__transport_abandon(&c->tr);
    rk__conn_free(c);
}
