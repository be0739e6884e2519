/* What components need from rk_references: copying, and the two lookups. */
#ifndef RK_REFERENCES_INT_H
#define RK_REFERENCES_INT_H

#include "redkit/config.h"

/* Deep copy (memory stores included); `*out` is NULL when `refs` is NULL. */
int rk__references_copy(rk_references **out, const rk_references *refs);

/* Resolve through the configured discovery. RK_EREF when `refs` has none; `*out` stays NULL
 * when the key is unknown. */
int rk__references_discover(const rk_references *refs, const rk_context *ctx, const char *key,
                            rk_config **out);

/* Same for the credential store. */
int rk__references_credential(const rk_references *refs, const rk_context *ctx, const char *key,
                              rk_config **out);

#endif
