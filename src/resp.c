#include "resp.h"

#include <string.h>

#include "alloc.h"
#include "error_int.h"

/* ---- classes ---- */

static const struct {
    const char *prefix;
    rk__reply_class cls;
} classes[] = {
    {"MOVED ", RK__REPLY_MOVED},      {"ASK ", RK__REPLY_ASK},
    {"TRYAGAIN", RK__REPLY_TRYAGAIN}, {"CLUSTERDOWN", RK__REPLY_CLUSTERDOWN},
    {"LOADING", RK__REPLY_LOADING},   {"READONLY", RK__REPLY_READONLY},
    {"BUSY", RK__REPLY_BUSY},         {"NOSCRIPT", RK__REPLY_NOSCRIPT},
    {"NOAUTH", RK__REPLY_AUTH},       {"WRONGPASS", RK__REPLY_AUTH},
    {"OOM", RK__REPLY_OOM},
};

rk__reply_class rk__reply_classify(const redisReply *r)
{
    if (!r)
        return RK__REPLY_CONN;
    if (r->type != REDIS_REPLY_ERROR)
        return RK__REPLY_OK;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        size_t n = strlen(classes[i].prefix);
        /* "BUSYKEY" is an ordinary error of RESTORE, not a busy server. */
        if (r->len >= n && !memcmp(r->str, classes[i].prefix, n) &&
            (classes[i].cls != RK__REPLY_BUSY || r->len == n || r->str[n] == ' '))
            return classes[i].cls;
    }
    return RK__REPLY_ERR;
}

rk__action rk__class_action(rk__reply_class c)
{
    switch (c) {
    case RK__REPLY_TRYAGAIN:
    case RK__REPLY_LOADING:
    case RK__REPLY_BUSY:
        return RK__ACT_RETRY;
    case RK__REPLY_CONN:
        return RK__ACT_RECONNECT;
    case RK__REPLY_MOVED:
    case RK__REPLY_ASK:
        return RK__ACT_REDIRECT;
    case RK__REPLY_CLUSTERDOWN:
    case RK__REPLY_READONLY:
        return RK__ACT_REFRESH;
    default: /* OK, ERR, NOSCRIPT (the script layer answers it), AUTH, OOM */
        return RK__ACT_DONE;
    }
}

bool rk__reply_redirect(const redisReply *r, rk__redirect *out)
{
    out->cls = rk__reply_classify(r);
    if (out->cls != RK__REPLY_MOVED && out->cls != RK__REPLY_ASK)
        return (out->cls = RK__REPLY_OK), false;
    char addr[sizeof out->host + 8];
    unsigned slot, port;
    char *colon;
    /* IPv6 addresses have colons of their own: the port follows the last one. */
    if (sscanf(r->str, "%*s %u %263s", &slot, addr) != 2 || slot >= 16384 ||
        !(colon = strrchr(addr, ':')) || (size_t)(colon - addr) >= sizeof out->host ||
        sscanf(colon + 1, "%u", &port) != 1 || port == 0 || port > 65535)
        return (out->cls = RK__REPLY_OK), false;
    *colon = '\0';
    memcpy(out->host, addr, (size_t)(colon - addr) + 1);
    out->slot = slot;
    out->port = (uint16_t)port;
    return true;
}

const char *rk__class_name(rk__reply_class c)
{
    if (c == RK__REPLY_MOVED || c == RK__REPLY_ASK) /* their prefixes end in a space */
        return c == RK__REPLY_MOVED ? "MOVED" : "ASK";
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (classes[i].cls == c)
            return classes[i].prefix;
    return c == RK__REPLY_CONN ? "connection" : c == RK__REPLY_OK ? "OK" : "ERR";
}

/* ---- replies, built with redkit's allocator ---- */

static void *attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static redisReply *new_reply(int type)
{
    redisReply *r = rk__calloc(1, sizeof *r);
    if (r)
        r->type = type;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = new_reply(task->type);
    if (!r)
        return NULL;
    if (!(r->str = rk__strndup(str, len))) {
        rk__free(r);
        return NULL;
    }
    r->len = len;
    return attach(task, r);
}

static void *create_array(const redisReadTask *task, int elements)
{
    redisReply *r = new_reply(REDIS_REPLY_ARRAY);
    if (!r)
        return NULL;
    if (elements > 0 && !(r->element = rk__calloc((size_t)elements, sizeof *r->element))) {
        rk__free(r);
        return NULL;
    }
    r->elements = elements > 0 ? (size_t)elements : 0;
    return attach(task, r);
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = new_reply(REDIS_REPLY_INTEGER);
    if (!r)
        return NULL;
    r->integer = value;
    return attach(task, r);
}

static void *create_nil(const redisReadTask *task)
{
    redisReply *r = new_reply(REDIS_REPLY_NIL);
    return r ? attach(task, r) : NULL;
}

void rk__reply_free(redisReply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->elements; i++)
        rk__reply_free(r->element[i]);
    rk__free(r->element);
    rk__free(r->str);
    rk__free(r);
}

static void free_object(void *r) { rk__reply_free(r); }

static redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer,
                                                    create_nil, free_object};

redisReader *rk__reader_new(void) { return redisReaderCreateWithFunctions(&reply_functions); }

char *rk__reply_take_str(redisReply *r, size_t *len)
{
    char *s = r->str;
    *len = r->len;
    r->str = NULL;
    rk__reply_free(r);
    return s;
}

redisReply *rk__reply_new_string(char *str, size_t len)
{
    redisReply *r = new_reply(REDIS_REPLY_STRING);
    if (!r) {
        rk__free(str);
        return NULL;
    }
    r->str = str;
    r->len = len;
    return r;
}

int rk__reply_error(const redisReply *r, const char *what)
{
    if (rk__reply_classify(r) == RK__REPLY_AUTH)
        return rk__err_cause(RK_EAUTH, r->str, "%s refused: not authenticated (Unauthorized)",
                             what);
    return rk__err_reply(r->str, "%s failed: %s", what, r->str);
}

int rk__reply_expect(const redisReply *r, int type, const char *what)
{
    if (r->type == type)
        return RK_OK;
    if (r->type == REDIS_REPLY_ERROR)
        return rk__reply_error(r, what);
    return rk__err(RK_EREPLY, "%s: unexpected reply type %d", what, r->type);
}
