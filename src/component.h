/* What the cache, the lock and the memolock share: configure / set_references / open / close,
 * the pool, and the settings they run with. Settings are resolved at open into an immutable
 * block that operations read without locking; blocks live until the component is freed, so a
 * close and re-open never pulls settings from under a running operation. */
#ifndef RK_COMPONENT_H
#define RK_COMPONENT_H

#include <pthread.h>
#include <stdatomic.h>

#include "pool.h"
#include "resolve.h"

typedef struct rk__settings {
    rk__options opts;
    rk__endpoint ep;
    struct rk__settings *older;
} rk__settings;

typedef struct rk__component {
    const char *kind;   /* "cache", "lock", "memolock": used in messages */
    pthread_mutex_t mu; /* serialises configure, set_references, open and close */
    rk_config *cfg;
    rk_references *refs;
    rk__settings *_Atomic active; /* NULL until the first open */
    atomic_bool open;
    rk__settings *all;
    rk__pool pool;
} rk__component;

int rk__component_init(rk__component *c, const char *kind);
void rk__component_destroy(rk__component *c);

int rk__component_configure(rk__component *c, const rk_config *cfg);
int rk__component_set_references(rk__component *c, const rk_references *refs);

/* Resolve, connect and PING. Returns RK_OK if already open. */
int rk__component_open(rk__component *c, const rk_context *ctx);
int rk__component_close(rk__component *c);
bool rk__component_is_open(const rk__component *c);

/* The settings of an open component, or NULL after setting RK_ENOTOPEN. */
const rk__settings *rk__component_begin(rk__component *c);

/* Run `fn` on a pooled connection with the operation deadline (options.timeout). */
int rk__component_run(rk__component *c, const rk__settings *s, rk__conn_fn fn, void *arg);

/* Run `n` commands as one pipeline; replies as rk__conn_exec. */
int rk__component_exec(rk__component *c, const rk__settings *s, const rk__cmd *cmds, size_t n,
                       redisReply **replies);

/* Build "<prefix><key>" into `buf` (cap bytes) or a new allocation; `*out` points to the result
 * and `*heap` is what to free (NULL when `buf` or the key itself was used). */
int rk__prefixed_key(const rk__settings *s, const char *key, char *buf, size_t cap,
                     const char **out, size_t *len, char **heap);

/* RK_EINVAL unless `key` is a non-empty string; `what` names the argument ("key", "id"). */
int rk__check_key(const char *key, const char *what);

#endif
