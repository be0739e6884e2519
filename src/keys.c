#include "keys.h"

#include <string.h>

#include "alloc.h"
#include "error_int.h"
#include "slot.h"

void rk__name_free(rk__name *n)
{
    if (!n)
        return;
    rk__free(n->heap);
    n->heap = NULL;
    n->str = NULL;
    n->len = 0;
}

/* Concatenate `count` parts of the given lengths. */
static int join_n(rk__name *n, const char *const *parts, const size_t *lens, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += lens[i];
    char *dst = n->buf;
    n->heap = NULL;
    if (total >= sizeof n->buf && !(dst = n->heap = rk__malloc(total + 1)))
        return rk__err(RK_ENOMEM, "cannot allocate a key name of %zu bytes", total);
    char *p = dst;
    for (int i = 0; i < count; i++)
        p = (char *)memcpy(p, parts[i], lens[i]) + lens[i];
    *p = '\0';
    n->str = dst;
    n->len = total;
    return RK_OK;
}

/* Concatenate up to four strings (NULL ends the list early). */
static int join(rk__name *n, const char *a, const char *b, const char *c, const char *d)
{
    const char *parts[4] = {a, b, c, d};
    size_t lens[4];
    int count = 0;
    while (count < 4 && parts[count]) {
        lens[count] = strlen(parts[count]);
        count++;
    }
    return join_n(n, parts, lens, count);
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

/* `<kind><K>` when K has a hash tag of its own, else `<kind>{K}`: either way the name hashes to
 * K's slot, so the lock's scripts can touch all its keys on one cluster node. */
static int lock_name(rk__name *n, const char *kind, const rk__name *k)
{
    size_t s, len;
    if (rk__hash_tag(k->str, k->len, &s, &len))
        return join(n, kind, k->str, NULL, NULL);
    return join(n, kind, "{", k->str, "}");
}

int rk__name_lock_queue(rk__name *n, const rk__name *k)
{
    return lock_name(n, "redkit:lock-queue:", k);
}

int rk__name_lock_waiters(rk__name *n, const rk__name *k)
{
    return lock_name(n, "redkit:lock-waiters:", k);
}

int rk__name_lock_fence(rk__name *n, const rk__name *k)
{
    return lock_name(n, "redkit:lock-fence:", k);
}

int rk__name_lock_freed(rk__name *n, const rk__name *k)
{
    return lock_name(n, "redkit:lock-freed:", k);
}

/* A handle's inbox: `<kind><id>`, or in a cluster `<kind><id>:{K}` (`:{tag}` with K's own tag). */
static int inbox_name(rk__name *n, const char *kind, const char *id, const rk__name *k)
{
    if (!k)
        return join(n, kind, id, NULL, NULL);
    size_t start, len, klen = strlen(kind);
    if (rk__hash_tag(k->str, k->len, &start, &len)) { /* K's own tag, braces included */
        const char *parts[4] = {kind, id, ":", k->str + start - 1};
        return join_n(n, parts, (size_t[4]){klen, strlen(id), 1, len + 2}, 4);
    }
    const char *parts[5] = {kind, id, ":{", k->str, "}"};
    return join_n(n, parts, (size_t[5]){klen, strlen(id), 2, k->len, 1}, 5);
}

int rk__name_lock_inbox(rk__name *n, const char *id, const rk__name *k)
{
    return inbox_name(n, "redkit:lock-wake:", id, k);
}

int rk__name_sem(rk__name *n, const rk__name *k) { return lock_name(n, "redkit:sem:", k); }

int rk__name_sem_queue(rk__name *n, const rk__name *k)
{
    return lock_name(n, "redkit:sem-queue:", k);
}

int rk__name_sem_waiters(rk__name *n, const rk__name *k)
{
    return lock_name(n, "redkit:sem-waiters:", k);
}

int rk__name_sem_inbox(rk__name *n, const char *id, const rk__name *k)
{
    return inbox_name(n, "redkit:sem-wake:", id, k);
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
