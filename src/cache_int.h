/* Cache internals shared with the tests: the MGET reply mapping is fuzzed on its own
 * (tests/fuzz/fuzz_reply.c), since a hostile or broken server controls its input. */
#ifndef RK_CACHE_INT_H
#define RK_CACHE_INT_H

#include <hiredis/hiredis.h>

#include "redkit/common.h"

/* Move the values of an MGET reply for `n` keys into outs[0..n): a STRING element's bytes are
 * taken out of the reply, anything else leaves outs[i] empty (a miss). On failure (an error
 * reply, another type, a count other than n) no outs[i] is touched. */
int rk__cache_take_values(redisReply *r, size_t n, rk_buf *outs);

#endif
