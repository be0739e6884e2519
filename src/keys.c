#include "keys.h"

#include <string.h>

#include "alloc.h"
#include "error_int.h"

void rk__name_free(rk__name *n)
{
    if (!n)
        return;
    rk__free(n->heap);
    n->heap = NULL;
    n->str = NULL;
    n->len = 0;
}

/* Concatenate up to four parts (NULL ends the list early). */
static int join(rk__name *n, const char *a, const char *b, const char *c, const char *d)
{
    const char *parts[4] = {a, b, c, d};
    size_t lens[4] = {0}, total = 0;
    for (int i = 0; i < 4 && parts[i]; i++)
        total += lens[i] = strlen(parts[i]);
    char *dst = n->buf;
    n->heap = NULL;
    if (total >= sizeof n->buf && !(dst = n->heap = rk__malloc(total + 1)))
        return rk__err(RK_ENOMEM, "cannot allocate a key name of %zu bytes", total);
    char *p = dst;
    for (int i = 0; i < 4 && parts[i]; i++)
        p = (char *)memcpy(p, parts[i], lens[i]) + lens[i];
    *p = '\0';
    n->str = dst;
    n->len = total;
    return RK_OK;
}

static const char *prefix(const rk__options *o) { return o->prefix ? o->prefix : ""; }

int rk__name_key(rk__name *n, const rk__options *o, const char *key)
{
    if (o->prefix_len)
        return join(n, o->prefix, key, NULL, NULL);
    n->heap = NULL; /* the hot path: no prefix, no copy */
    n->str = key;
    n->len = strlen(key);
    return RK_OK;
}

size_t rk__name_key_len(const rk__options *o, const char *key)
{
    return o->prefix_len + strlen(key);
}

char *rk__name_key_put(char *dst, const rk__options *o, const char *key)
{
    size_t klen = strlen(key);
    memcpy(dst, prefix(o), o->prefix_len);
    memcpy(dst + o->prefix_len, key, klen);
    return dst + o->prefix_len + klen;
}

int rk__name_lock_queue(rk__name *n, const rk__name *k)
{
    return join(n, "redkit:lock-queue:", k->str, NULL, NULL);
}

int rk__name_lock_waiters(rk__name *n, const rk__name *k)
{
    return join(n, "redkit:lock-waiters:", k->str, NULL, NULL);
}

int rk__name_lock_fence(rk__name *n, const rk__name *k)
{
    return join(n, "redkit:lock-fence:", k->str, NULL, NULL);
}

int rk__name_lock_inbox(rk__name *n, const char *id)
{
    return join(n, "redkit:lock-wake:", id, NULL, NULL);
}

static int memo(rk__name *n, const rk__options *o, const char *kind, const char *id)
{
    return join(n, prefix(o), o->resource_tag ? o->resource_tag : "", kind, id);
}

int rk__name_memo_value(rk__name *n, const rk__options *o, const char *id)
{
    return memo(n, o, ":", id);
}

int rk__name_memo_lock(rk__name *n, const rk__options *o, const char *id)
{
    return memo(n, o, "/lock:", id);
}

int rk__name_memo_channel(rk__name *n, const rk__options *o, const char *id)
{
    return memo(n, o, "/notif:", id);
}
