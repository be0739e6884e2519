/* A small hash map from byte-string keys to pointers (lock tokens, subscribed channels,
 * in-flight memolock ids). Not thread-safe; owners guard it with their own mutex. */
#ifndef RK_MAP_H
#define RK_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rk__map_entry {
    struct rk__map_entry *next;
    uint64_t hash;
    void *value;
    size_t klen;
    char key[]; /* NUL-terminated copy */
} rk__map_entry;

typedef struct rk__map {
    rk__map_entry **buckets;
    size_t nbuckets;
    size_t count;
} rk__map;

#define RK__MAP_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void *rk__map_get(const rk__map *m, const char *key, size_t klen);

/* Insert or replace. Returns RK_OK or RK_ENOMEM (map unchanged). `*old` (if not NULL) receives
 * the replaced value, or NULL. */
int rk__map_put(rk__map *m, const char *key, size_t klen, void *value, void **old);

/* Remove and return the value, or NULL if absent. */
void *rk__map_remove(rk__map *m, const char *key, size_t klen);

/* Iterate: start with `it = NULL`; returns the next entry or NULL at the end. To remove the
 * current entry, fetch the next one first. Do not insert while iterating. */
rk__map_entry *rk__map_next(const rk__map *m, rk__map_entry *it);

/* Remove everything, calling free_value (if not NULL) on each value. */
void rk__map_clear(rk__map *m, void (*free_value)(void *));

#endif
