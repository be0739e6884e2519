#include "map.h"

#include <string.h>

#include "alloc.h"
#include "error_int.h"

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static rk__map_entry **slot(const rk__map *m, const char *key, size_t klen, uint64_t h)
{
    rk__map_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->klen == klen && !memcmp((*pp)->key, key, klen)))
        pp = &(*pp)->next;
    return pp;
}

void *rk__map_get(const rk__map *m, const char *key, size_t klen)
{
    if (!m->count)
        return NULL;
    rk__map_entry *e = *slot(m, key, klen, hash_bytes(key, klen));
    return e ? e->value : NULL;
}

static int grow(rk__map *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    rk__map_entry **b = rk__calloc(n, sizeof *b);
    if (!b)
        return RK_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        rk__map_entry *e = m->buckets[i];
        while (e) {
            rk__map_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    rk__free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return RK_OK;
}

int rk__map_put(rk__map *m, const char *key, size_t klen, void *value, void **old)
{
    if (old)
        *old = NULL;
    if (m->count >= m->nbuckets && grow(m) != RK_OK)
        return rk__err(RK_ENOMEM, "cannot grow a hash table to %zu entries", m->count + 1);
    uint64_t h = hash_bytes(key, klen);
    rk__map_entry **pp = slot(m, key, klen, h);
    if (*pp) {
        if (old)
            *old = (*pp)->value;
        (*pp)->value = value;
        return RK_OK;
    }
    rk__map_entry *e = rk__malloc(sizeof *e + klen + 1);
    if (!e)
        return rk__err(RK_ENOMEM, "cannot allocate a hash table entry of %zu bytes", klen);
    e->next = NULL;
    e->hash = h;
    e->value = value;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    *pp = e;
    m->count++;
    return RK_OK;
}

void *rk__map_remove(rk__map *m, const char *key, size_t klen)
{
    if (!m->count)
        return NULL;
    rk__map_entry **pp = slot(m, key, klen, hash_bytes(key, klen));
    rk__map_entry *e = *pp;
    if (!e)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    rk__free(e);
    m->count--;
    return v;
}

rk__map_entry *rk__map_next(const rk__map *m, rk__map_entry *it)
{
    size_t i = 0;
    if (it) {
        if (it->next)
            return it->next;
        i = (it->hash & (m->nbuckets - 1)) + 1;
    }
    for (; i < m->nbuckets; i++)
        if (m->buckets[i])
            return m->buckets[i];
    return NULL;
}

void rk__map_clear(rk__map *m, void (*free_value)(void *))
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        rk__map_entry *e = m->buckets[i];
        while (e) {
            rk__map_entry *next = e->next;
            if (free_value)
                free_value(e->value);
            rk__free(e);
            e = next;
        }
    }
    rk__free(m->buckets);
    *m = (rk__map)RK__MAP_INIT;
}
