/**
 * @file redkit/common.h
 * @brief Types shared by every redkit module: call context, byte buffers, TTL constants.
 *
 * Ownership rules that hold across the whole API:
 * - every pointer passed in is borrowed for the duration of the call; anything kept is copied;
 * - objects returned through a `**out` parameter belong to the caller, who frees them with the
 *   matching `_free` function (all `_free` functions accept NULL);
 * - byte results come back in an ::rk_buf released with rk_buf_free().
 */
#ifndef REDKIT_COMMON_H
#define REDKIT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define RK_BEGIN_DECLS extern "C" {
#define RK_END_DECLS }
#else
#define RK_BEGIN_DECLS
#define RK_END_DECLS
#endif

#if defined(__GNUC__)
#define RK_EXTERN __attribute__((visibility("default")))
#else
#define RK_EXTERN
#endif

#define RK_VERSION_MAJOR 0
#define RK_VERSION_MINOR 1
#define RK_VERSION_PATCH 0
#define RK_VERSION_STRING "0.1.0"

RK_BEGIN_DECLS

/**
 * The version of the library actually loaded, RK_VERSION_STRING when it was built: compare it
 * with the RK_VERSION_STRING a program was compiled against to catch a stale libredkit.so.
 */
RK_EXTERN const char *rk_version(void);

/** Per-call context, as in pip-services. May be NULL everywhere. */
typedef struct rk_context {
    const char *trace_id; /**< copied into ::rk_error::trace_id when the call fails */
} rk_context;

/** A byte buffer owned by the caller. `data` is always NUL-terminated (not counted in `len`). */
typedef struct rk_buf {
    char *data;
    size_t len;
} rk_buf;

#define RK_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/** Store without expiry (cache store, memolock fetch TTL). */
#define RK_TTL_NONE UINT64_MAX

/** Release the buffer's memory and reset it to empty. NULL-safe. */
RK_EXTERN void rk_buf_free(rk_buf *buf);

/**
 * Replace the buffer's content with a copy of `len` bytes from `data` (which may be NULL when
 * `len` is 0). Uses redkit's allocator, so the result is released with rk_buf_free().
 * @return RK_OK, RK_EINVAL (buf NULL, or data NULL with len > 0) or RK_ENOMEM.
 */
RK_EXTERN int rk_buf_set(rk_buf *buf, const void *data, size_t len);

/**
 * Memory functions redkit uses for everything it allocates itself (hiredis' parser buffer and
 * OpenSSL keep their own). All three must be set; `ud` is passed back to each.
 */
typedef struct rk_allocator {
    void *(*malloc_fn)(void *ud, size_t size);
    void *(*realloc_fn)(void *ud, void *ptr, size_t size);
    void (*free_fn)(void *ud, void *ptr);
    void *ud;
} rk_allocator;

/**
 * Install an allocator, or restore malloc/realloc/free with NULL. Not thread-safe: call it before
 * any other redkit function, or while no redkit object exists.
 * @return RK_OK or RK_EINVAL when a function pointer is missing.
 */
RK_EXTERN int rk_set_allocator(const rk_allocator *allocator);

RK_END_DECLS

#endif
